/* cli.h — what command functions share. Only cli/ prints errors and exits.
 *
 * Each command is `int cmd_NAME(int argc, char **argv)` with argv[0] = its
 * name; it parses its own options (getopt_long), handles --help (usage on
 * stdout, exit 0) and returns the process exit status:
 *   0 success, 1 failure (a message "copyscope: <file>: <problem>" was printed),
 *   2 usage error; commands that are gates (analyze --fail-on) document others. */
#ifndef CS_CLI_H
#define CS_CLI_H

#include "core/err.h"

#define CS_VERSION "0.1.0"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints "copyscope: <msg>" on stderr and returns CLI_FAIL. */
int cli_fail(const cs_err *err);
/* Prints "copyscope: <formatted>" on stderr and returns CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The database path: --db wins, else $COPYSCOPE_DB, else ./copyscope.db. */
const char *cli_default_db(void);

/* Parses a -j value; 0 or absent means all cores. Returns -1 if invalid. */
int cli_parse_jobs(const char *s);

int cmd_index(int argc, char **argv);
int cmd_index_query(int argc, char **argv); /* cli/cmd_index_query.c, called by cmd_index */
int cmd_hash(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_text(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
