/* cmd_report.c — `copyscope report`: a run's findings as a self-contained
 * HTML file, JSON, CSV or Markdown (reports/report.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/parallel.h"
#include "core/store.h"
#include "core/store_runs.h"
#include "reports/report.h"
#include "reports/run_summary.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope report [--run ID] [--format html|json|csv|md] --out PATH [options]\n\n"
            "Writes the findings of a run (and the text audit's findings) as one file:\n"
            "  html  self-contained page (images inlined, no script, no network): summary,\n"
            "        per-prompt memorisation table, histograms, the --top most severe findings\n"
            "        as generated | reference | difference, text findings with verbatim spans\n"
            "  json  everything as data (versioned schema, reports/report-schema.md)\n"
            "  csv   one row per finding (RFC 4180): image findings, then text findings;\n"
            "        the first column, kind, is image or text\n"
            "  md    Markdown summary for an issue or a paper\n\n"
            "  --run ID          the run (default: the latest run with findings)\n"
            "  --format F        html | json | csv | md (default: from the --out extension:\n"
            "                    .html, .json, .csv, .md; another extension needs --format)\n"
            "  --out PATH        the file to write ('-' = stdout, html unless --format);\n"
            "                    written atomically; its folder must exist\n"
            "  --top N           findings shown in the HTML gallery (default %d); all are in JSON/CSV\n"
            "  --text-audit WHICH text findings: latest (default, as for copyscope run), all, none\n"
            "                    or an audit id\n"
            "  --db PATH         the store (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  -j N              threads for the pictures (default: all cores)\n"
            "  -q, --quiet       no summary line\n"
            "  --json            the summary as one JSON object on stdout (needs --out FILE)\n\n"
            "The reference attribution shown beside every matched reference (the references'\n"
            "licence or source) is kept in the store; set it with\n"
            "  copyscope index add --attribution '...'\n",
            CS_REPORT_DEFAULT_TOP);
}

int cli_report_gaps(cs_store *s, int64_t run_id, const char *out) {
    cs_err err = {0};
    int64_t id = run_id, n_missing, n_total;
    if (id <= 0 && /* the run cs_report_render picks */
        (cs_store_query_i64(s, "SELECT g.run_id FROM findings f JOIN generations g ON g.id = f.generation_id "
                               "ORDER BY g.run_id DESC LIMIT 1", 0, 0, &id, &err) ||
         (!id && cs_store_query_i64(s, "SELECT MAX(id) FROM runs", 0, 0, &id, &err))))
        return cli_fail(&err);
    char *example = NULL;
    if (id <= 0) return CLI_OK;
    if (cs_run_missing_files(s, id, &n_missing, &n_total, &example, &err)) return cli_fail(&err);
    if (n_missing)
        fprintf(stderr,
                "copyscope: report: %lld of %lld generated images of run %lld are missing (e.g. %s): %s marks "
                "them as gaps; run the suite again (copyscope run or generate) to make them again\n",
                (long long)n_missing, (long long)n_total, (long long)id, example ? example : "?", out);
    free(example);
    return n_missing ? CLI_FAIL : CLI_OK;
}

static int parse_pos(const char *s, long long *v) {
    char *end;
    *v = strtoll(s, &end, 10);
    return *s && !*end && *v > 0 ? 0 : -1;
}

/* Long: option parsing, render, save and the summary line of one short command. */
int cmd_report(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},  {"format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'o'},  {"top", required_argument, 0, 't'},
        {"text-audit", required_argument, 0, 'a'}, {"db", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},      {"help", no_argument, 0, 'h'},
        {"json", no_argument, 0, 'J'},
        {0, 0, 0, 0},
    };
    cs_report_opts o = {0};
    o.format = -1;
    const char *db = NULL, *out = NULL;
    int quiet = 0, jobs = 0, latest = 1, json = 0;
    long long v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (parse_pos(optarg, &v)) return cli_usage_error("report: --run: '%s' is not a run id", optarg);
            o.run_id = v;
            break;
        case 'f':
            o.format = cs_report_format_parse(optarg);
            if ((int)o.format < 0) return cli_usage_error("report: --format: '%s' is not html, json, csv or md", optarg);
            break;
        case 'o': out = optarg; break;
        case 't':
            if (parse_pos(optarg, &v)) return cli_usage_error("report: --top: '%s' is not a positive count", optarg);
            o.top = v;
            break;
        case 'a':
            if (!strcmp(optarg, "latest")) latest = 1;
            else if ((latest = 0), !strcmp(optarg, "all")) o.text_audit = 0;
            else if (!strcmp(optarg, "none")) o.text_audit = -1;
            else if (parse_pos(optarg, &v))
                return cli_usage_error("report: --text-audit: '%s' is not latest, all, none or an audit id", optarg);
            else o.text_audit = v;
            break;
        case 'd': db = optarg; break;
        case 'j':
            jobs = cli_parse_jobs(optarg);
            if (jobs < 0) return cli_usage_error("report: -j: '%s' is not a thread count", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("report");
        }
    }
    if (optind < argc) return cli_usage_error("report: unexpected argument '%s' (see --help)", argv[optind]);
    if (!out) return cli_usage_error("report: --out PATH is required (see --help)");
    int to_stdout = !strcmp(out, "-");
    cs_err err = {0};
    if (!to_stdout && cs_report_check_out(out, &err)) return cli_usage_error("report: %s", err.msg);
    int from_name = to_stdout ? -1 : cs_report_format_from_path(out);
    static const char *const names[] = {"html", "json", "csv", "md"};
    if ((int)o.format < 0 && !to_stdout && from_name < 0) /* r.pdf used to get HTML without a word */
        return cli_usage_error("report: --out %s: the format cannot be told from the name (.html, .json, .csv "
                               "or .md): give --format",
                               out),
               cli_usage_hint("report");
    if ((int)o.format >= 0 && from_name >= 0 && from_name != (int)o.format)
        return cli_usage_error("report: --out %s names a .%s file but --format is %s", out, names[from_name],
                               names[o.format]),
               cli_usage_hint("report");
    if ((int)o.format < 0) o.format = from_name < 0 ? CS_REPORT_HTML : (cs_report_format)from_name;
    if (json && to_stdout)
        return cli_usage_error("report: --json needs --out FILE (stdout carries the JSON summary)"),
               cli_usage_hint("report");
    if (json) cli_json_begin();
    if (jobs > 0) cs_set_threads(jobs);
    o.threads = jobs;
    o.generator = "copyscope " CS_VERSION;
    o.progress = 1;
    cs_store *s = NULL;
    if (cs_store_open_readonly(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    if (latest) { /* the latest text audit, or none: as `copyscope run` */
        int64_t id = 0;
        if (cs_text_audit_latest(s, &id, &err)) {
            cs_store_close(s);
            return cli_fail(&err);
        }
        o.text_audit = id > 0 ? id : -1;
    }
    cs_buf b = {0};
    int rc = cs_report_render(s, &o, &b, &err);
    int gaps = rc == 0 ? cli_report_gaps(s, o.run_id, to_stdout ? "the report" : out) : CLI_OK;
    cs_store_close(s);
    if (rc == 0) {
        if (to_stdout) {
            if (fwrite(b.p, 1, b.len, stdout) != b.len || fflush(stdout)) {
                cs_fail(&err, CS_EIO, "stdout: write failed");
                rc = -1;
            }
        } else {
            rc = cs_report_save(out, b.p ? b.p : "", b.len, &err);
        }
    }
    size_t len = b.len;
    cs_buf_free(&b);
    if (rc) return cli_fail(&err);
    if (!quiet && !to_stdout) printf("report: %s (%s, %zu bytes)\n", out, names[o.format], len);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "report", out);
        cJSON_AddStringToObject(j, "format", names[o.format]);
        cJSON_AddNumberToObject(j, "bytes", (double)len);
        cJSON_AddBoolToObject(j, "images_missing", gaps != 0);
        if (cli_json_end(j)) return CLI_FAIL;
    }
    return gaps;
}
