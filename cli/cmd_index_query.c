/* Placeholder until 'index query' lands (its owner replaces this file). */
#include "cli/cli.h"

int cmd_index_query(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_usage_error("index query: not available in this build yet");
}
