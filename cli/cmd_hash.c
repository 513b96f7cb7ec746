/* Placeholder until the 'hash' command lands (its owner replaces this file). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_hash(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: copyscope hash ... (not available in this build yet)\n");
        return CLI_OK;
    }
    return cli_usage_error("hash: not available in this build yet");
}
