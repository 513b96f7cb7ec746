/* main.c — the copyscope binary: git-style subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "cli/cli_mpi_text.h"
#include "core/mpi_comm.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"index", cmd_index, "build and search the reference index (add, query, stats, ls, ann, background)"},
    {"hash", cmd_hash, "print every perceptual hash of image files"},
    {"generate", cmd_generate, "run a prompt suite through a model, store the images"},
    {"analyze", cmd_analyze, "find copies of references among generations"},
    {"report", cmd_report, "export findings as HTML, JSON, CSV or Markdown"},
    {"text", cmd_text, "text regurgitation audit (index, prompts, generate, audit, trace)"},
    {"run", cmd_run, "generate, analyze and report in one resumable command"},
    {"selftest", cmd_selftest, "check the SD 1.x implementation against reference cases"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

int cli_fail(const cs_err *err) {
    fprintf(stderr, "copyscope: %s\n", err && err->msg[0] ? err->msg : "unknown error");
    return CLI_FAIL;
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("copyscope: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_USAGE;
}

int cli_usage_hint(const char *cmd) {
    fprintf(stderr, "see 'copyscope %s --help'\n", cmd);
    return CLI_USAGE;
}

const char *cli_default_db(void) {
    const char *e = getenv("COPYSCOPE_DB");
    return e && *e ? e : "copyscope.db";
}

int cli_parse_jobs(const char *s) {
    if (!s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < 0 || v > 1024) return -1;
    return (int)v;
}

static void usage(FILE *f) {
    fprintf(f, "usage: copyscope <command> [options]\n\n"
               "Finds where generative models copy their training data.\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'copyscope <command> --help' describes a command. Global: --version, --help.\n");
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("copyscope %s\n", CS_VERSION);
        return CLI_OK;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    return cli_usage_error("unknown command '%s' (see copyscope --help)", argv[1]);
}

/* Under mpirun (copyscope-mpi) every rank starts here; see cli/cli_mpi.h. */
int main(int argc, char **argv) {
    if (cs_mpi_init(&argc, &argv)) {
        fprintf(stderr, "copyscope: MPI_Init failed\n");
        return CLI_FAIL;
    }
    int rc = cli_mpi_gate(argc, argv) || cli_mpi_gate_text_run(argc, argv) ? dispatch(argc, argv) : CLI_OK;
    cs_mpi_finalize();
    return rc;
}
