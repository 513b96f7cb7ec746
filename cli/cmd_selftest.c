/* Placeholder until the 'selftest' command lands (its owner replaces this file). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_selftest(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: copyscope selftest ... (not available in this build yet)\n");
        return CLI_OK;
    }
    return cli_usage_error("selftest: not available in this build yet");
}
