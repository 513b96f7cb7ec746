/* json_out.c — one behaviour for --json on every command (cli.h): stdout
 * carries exactly one JSON document, the command's summary; what it prints
 * for people goes to stderr meanwhile; errors stay "copyscope: ..." lines on
 * stderr with the usual exit status (stdout then stays empty). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"

static int saved_stdout = -1;

void cli_json_begin(void) {
    if (saved_stdout >= 0) return;
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    if (saved_stdout >= 0) dup2(STDERR_FILENO, STDOUT_FILENO);
}

int cli_json_end(cJSON *o) {
    fflush(stdout);
    if (saved_stdout >= 0) {
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
        saved_stdout = -1;
    }
    char *t = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!t) {
        fprintf(stderr, "copyscope: --json: out of memory\n");
        return CLI_FAIL;
    }
    int ok = printf("%s\n", t) > 0 && fflush(stdout) == 0;
    free(t);
    if (!ok) fprintf(stderr, "copyscope: stdout: write failed\n");
    return ok ? CLI_OK : CLI_FAIL;
}
