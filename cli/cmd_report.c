/* Placeholder until the 'report' command lands (its owner replaces this file). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_report(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: copyscope report ... (not available in this build yet)\n");
        return CLI_OK;
    }
    return cli_usage_error("report: not available in this build yet");
}
