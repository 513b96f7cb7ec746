/* cli.h — what command functions share. Only cli/ prints errors and exits.
 *
 * Each command is `int cmd_NAME(int argc, char **argv)` with argv[0] = its
 * name; it parses its own options (getopt_long), handles --help (usage on
 * stdout, exit 0) and returns the process exit status:
 *   0 success, 1 failure (a message "copyscope: <file>: <problem>" was printed),
 *   2 usage error; commands that are gates (analyze --fail-on) document others. */
#ifndef CS_CLI_H
#define CS_CLI_H

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/store.h"
#include "pipeline/generate.h"

#define CS_VERSION "0.1.0"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints "copyscope: <msg>" on stderr and returns CLI_FAIL. */
int cli_fail(const cs_err *err);
/* Prints "copyscope: <formatted>" on stderr and returns CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "see 'copyscope CMD --help'" on stderr and returns CLI_USAGE: a
 * usage error is one line (getopt's, or cli_usage_error's) and this hint,
 * never the whole help. */
int cli_usage_hint(const char *cmd);

/* --json, the same on every command (cli/json_out.c): stdout carries exactly
 * one JSON document, the command's summary; until cli_json_end, what the
 * command prints for people goes to stderr. Errors stay one "copyscope: ..."
 * line on stderr with the usual exit status (stdout then stays empty).
 * cli_json_end prints o on the real stdout and frees it; returns CLI_OK or
 * CLI_FAIL (write failed). */
void cli_json_begin(void);
int cli_json_end(cJSON *o);

/* The database path: --db wins, else $COPYSCOPE_DB, else ./copyscope.db. */
const char *cli_default_db(void);

/* Parses a -j value; 0 or absent means all cores. Returns -1 if invalid. */
int cli_parse_jobs(const char *s);

/* Prints what generate found about the run's recorded images (cmd_generate.c):
 * missing ones made again, moved ones found by their bytes. */
void cli_generate_notes(const cs_generate_stats *st);
/* The stats as the JSON object of generate --json (and run's "generate"). */
cJSON *cli_generate_json(const cs_generate_stats *st);

/* After a report of run_id (0: the one `report` picks) was written to out:
 * names the run's generated images that are missing (the report shows gaps
 * there) on stderr and returns CLI_FAIL, else CLI_OK (cmd_report.c). */
int cli_report_gaps(cs_store *s, int64_t run_id, const char *out);

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
