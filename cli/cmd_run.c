/* cmd_run.c — `copyscope run SUITE.json`: generate -> analyze -> report in
 * one resumable command, ending with a one-screen summary.
 *
 * It calls the library entry points directly (cs_generate, cs_analyze_run,
 * cs_report_render), not the binary. Resuming: generate skips the images
 * whose row and file exist; the analysis is skipped when every generation of
 * the run already has a finding from an analysis with the same settings over
 * the same number of references; when only generations without a finding are
 * missing, only those are analysed (cs_analyze_opts.only_new: the prompts'
 * cliques and summaries are recomputed over all their generations); else
 * (settings or index changed, last analysis unfinished, --reanalyze) the whole
 * run is analysed again, which replaces its findings; reports are always
 * rewritten (cheap, atomic).
 *
 * Under mpirun (copyscope-mpi) every rank runs it: rank 0 checks the suite
 * and the store, each rank samples its part of the suite (generate's
 * part_k/part_n), the analysis's match batches are spread over the ranks
 * (cli/cmd_mpi_analyze.c), and rank 0 alone writes the rows, the reports and
 * the summary: the same as one process's. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analyze/analyze.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "cli/cli_mpi_text.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/safe_text.h"
#include "core/store.h"
#include "pipeline/generate.h"
#include "pipeline/suite.h"
#include "reports/report.h"
#include "reports/run_summary.h"

enum { CLI_GATE = 3 };
enum { TEXT_LATEST = -2, TEXT_ALL = 0, TEXT_NONE = -1 };

typedef struct {
    const char *suite, *db, *out, *model, *config, *vocab;
    const char *descriptors, *embedder, *precision;
    int samples, threads, reanalyze, fail_on, settings_changed, out_given, json;
    int64_t top, text_audit;
    int formats[4], n_formats;
    cs_an_settings set;
    char command[2048];
} run_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope run SUITE.json [--db PATH] [--out DIR] [-j N] [--model SPEC]\n"
            "                     [--format LIST] [options]\n\n"
            "The whole image audit in one command: generate the suite's images (copyscope\n"
            "generate), find copies of references among them (copyscope analyze), write the\n"
            "report (copyscope report) and print a summary: counts by verdict, the worst\n"
            "finding of each prompt, how the expected copies and completion tasks came out,\n"
            "the text audit's verdicts (when one ran on this database) and the report paths.\n"
            "Resumable: running it again skips the images already made and, when nothing\n"
            "changed, the analysis; the reports are rewritten.\n\n"
            "options:\n"
            "  --db PATH          the store and reference index (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  --out DIR          output folder (default ./copyscope-out): images under\n"
            "                     DIR/generations/, reports DIR/<suite name>-report.<ext>; a run\n"
            "                     that exists keeps its images where it made them (said; moved\n"
            "                     into DIR/generations/ they are found there)\n"
            "  --model SPEC       SD 1.x checkpoint, 'empirical' or 'empirical:INDEXDB' (default: the suite's)\n"
            "  --vocab PATH       CLIP BPE vocabulary (SD models)\n"
            "  --config JSON      SD architecture config\n"
            "  -n N               samples per prompt (overrides the suite)\n"
            "  -j, --jobs N       threads (default: all cores)\n"
            "  --precision P      sampling products in fp32 (default) or bf16 (AVX512_BF16 CPUs)\n"
            "  --format LIST      report formats, comma list of html,json,csv,md (default html,json)\n"
            "  --top N            findings shown in the HTML gallery (default %d)\n"
            "  --text-audit WHICH text findings in the report: latest (default), all, none or an audit id\n"
            "  --set NAME=VALUE   analysis threshold (repeatable; copyscope analyze --settings)\n"
            "  --descriptors LIST, --embedder SPEC   as for copyscope analyze\n"
            "  --reanalyze        analyse again even if nothing changed\n"
            "  --fail-on VERDICT  exit 3 when a generation is at least VERDICT (copy | near-copy | partial)\n"
            "  --json             the summary as one JSON object on stdout (the rest on stderr)\n\n"
            "exit status: 0 done, 1 error, 2 usage error, 3 --fail-on tripped\n",
            CS_REPORT_DEFAULT_TOP);
}

static void header(int step, const char *what, const char *detail) {
    printf("\n== run [%d/3] %s%s%s\n", step, what, detail ? ": " : "", detail ? detail : "");
    fflush(stdout);
}

static int parse_formats(run_opts *o, const char *list) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    o->n_formats = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int f = cs_report_format_parse(t);
        if (f < 0) return -1;
        int dup = 0;
        for (int i = 0; i < o->n_formats; i++) dup |= o->formats[i] == f;
        if (!dup && o->n_formats < 4) o->formats[o->n_formats++] = f;
    }
    return o->n_formats ? 0 : -1;
}

static const char *format_ext(int f) {
    return f == CS_REPORT_HTML ? "html" : f == CS_REPORT_JSON ? "json" : f == CS_REPORT_CSV ? "csv" : "md";
}

/* Returns -1 to continue, else the exit status (help or usage error). */
/* Long: one case per option of the getopt switch, in --help's order. */
static int parse_args(run_opts *o, int argc, char **argv) {
    static const struct option lo[] = {
        {"db", required_argument, 0, 'd'},         {"out", required_argument, 0, 'o'},
        {"model", required_argument, 0, 'm'},      {"vocab", required_argument, 0, 'v'},
        {"config", required_argument, 0, 'c'},     {"jobs", required_argument, 0, 'j'},
        {"format", required_argument, 0, 'F'},     {"top", required_argument, 0, 'T'},
        {"text-audit", required_argument, 0, 'X'},
        {"set", required_argument, 0, 's'},        {"descriptors", required_argument, 0, 'D'},
        {"embedder", required_argument, 0, 'e'},   {"reanalyze", no_argument, 0, 'R'},
        {"fail-on", required_argument, 0, 'f'},    {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'P'},
        {"json", no_argument, 0, 'J'},             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    cs_an_settings_default(&o->set);
    o->text_audit = TEXT_LATEST;
    o->fail_on = -1;
    parse_formats(o, "html,json");
    cs_err err = {0};
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:j:h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o->db = optarg; break;
        case 'o': o->out = optarg; break;
        case 'm': o->model = optarg; break;
        case 'v': o->vocab = optarg; break;
        case 'c': o->config = optarg; break;
        case 'D': o->descriptors = optarg; o->settings_changed = 1; break;
        case 'e': o->embedder = optarg; o->settings_changed = 1; break;
        case 'R': o->reanalyze = 1; break;
        case 'P':
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
                return cli_usage_error("run: bad --precision '%s' (fp32 or bf16)", optarg);
            o->precision = optarg;
            break;
        case 'J': o->json = 1; break;
        case 'n':
            o->samples = (int)strtol(optarg, &end, 10);
            if (*end || o->samples <= 0 || o->samples > 100000)
                return cli_usage_error("run: bad -n '%s' (1..100000)", optarg);
            break;
        case 'j':
            if ((o->threads = cli_parse_jobs(optarg)) < 0) return cli_usage_error("run: bad -j '%s'", optarg);
            break;
        case 'F':
            if (parse_formats(o, optarg))
                return cli_usage_error("run: --format: '%s' is not a list of html, json, csv, md", optarg);
            break;
        case 'T':
            o->top = strtoll(optarg, &end, 10);
            if (*end || o->top <= 0) return cli_usage_error("run: bad --top '%s'", optarg);
            break;
        case 'X':
            if (!strcmp(optarg, "latest")) o->text_audit = TEXT_LATEST;
            else if (!strcmp(optarg, "all")) o->text_audit = TEXT_ALL;
            else if (!strcmp(optarg, "none")) o->text_audit = TEXT_NONE;
            else {
                o->text_audit = strtoll(optarg, &end, 10);
                if (*end || o->text_audit <= 0)
                    return cli_usage_error("run: --text-audit: '%s' is not latest, all, none or an id", optarg);
            }
            break;
        case 's':
            if (cs_an_settings_set(&o->set, optarg, &err)) return cli_usage_error("run: %s", err.msg);
            break;
        case 'f':
            o->fail_on = cs_verdict_parse(optarg);
            if (o->fail_on <= 0)
                return cli_usage_error("run: --fail-on: '%s' is not copy, near-copy or partial", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("run");
        }
    }
    if (optind != argc - 1) {
        return cli_usage_error("run: give one SUITE.json"), cli_usage_hint("run");
    }
    o->suite = argv[optind];
    if (!o->db) o->db = cli_default_db();
    o->out_given = o->out != NULL;
    if (!o->out) o->out = "copyscope-out";
    /* the command line as a shell would take it back (recorded in runs.command) */
    size_t k = 0, cap = sizeof o->command;
    for (int i = 0; i < argc && k + 8 < cap; i++) {
        const char *a = argv[i];
        int plain = *a != 0;
        for (const char *p = a; *p; p++)
            plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("_./:=,+-@%", *p) != NULL;
        k += (size_t)snprintf(o->command + k, cap - k, "%s", i ? " " : "copyscope ");
        if (plain) {
            k += (size_t)snprintf(o->command + k, k < cap ? cap - k : 0, "%s", a);
            continue;
        }
        o->command[k++] = '\'';
        for (const char *p = a; *p && k + 6 < cap; p++) {
            if (*p == '\'') {
                memcpy(o->command + k, "'\\''", 4);
                k += 4;
            } else
                o->command[k++] = *p;
        }
        o->command[k++] = '\'';
        o->command[k] = 0;
    }
    return -1;
}

/* The analysis options of the run: the same on every rank (copyscope-mpi:
 * the other ranks load the references with them to match their batches). */
static cs_analyze_opts analyze_opts(const run_opts *o, int64_t run_id, int need) {
    cs_analyze_opts ao = {0};
    ao.run_id = run_id;
    ao.descriptors = o->descriptors;
    ao.embedder = o->embedder;
    ao.threads = o->threads;
    ao.progress = cs_mpi_rank() == 0;
    ao.set = o->set;
    ao.only_new = need == 2;
    return ao;
}

/* Under mpirun rank 0 decides whether to analyse and says so to the other
 * ranks (need, or -1: rank 0 failed); when it analyses, they match shares
 * of its batches (cli/cmd_mpi_analyze.c) until it is done. */
static int step_analyze(cs_store *s, const run_opts *o, int64_t run_id, int64_t *analysis_id, cs_err *err) {
    char why[256] = "";
    int need = cs_analyze_needed(s, run_id, &o->set, o->reanalyze, o->settings_changed, why, sizeof why, err);
    int64_t said = need;
    cs_mpi_bcast(&said, sizeof said);
    if (need < 0) return -1;
    header(2, "analyze", need ? why : "every generation already has a finding with these settings: skipped");
    if (!need) return cli_mpi_print_cpu("run"), 0;
    cs_analyze_opts ao = analyze_opts(o, run_id, need);
    cs_analyze_summary sum;
    cli_mpi_an *mx = cli_mpi_analyze_begin(&ao, s);
    int arc = cs_analyze_run(s, &ao, &sum, err);
    cli_mpi_analyze_end(mx, o->json);
    cli_mpi_print_cpu("run"); /* CS_MPI_TIMINGS: generation and analysis, per rank */
    if (arc) return -1;
    *analysis_id = sum.analysis_id;
    printf("analysis %lld: %lld generations", (long long)sum.analysis_id, (long long)sum.n_generations);
    if (sum.n_kept) printf(" (new; %lld findings kept)", (long long)sum.n_kept);
    printf(" against %lld references, descriptors: %s\n", (long long)sum.n_refs,
           sum.descriptors[0] ? sum.descriptors : "none (empty index: cliques only)");
    if (sum.n_skipped) printf("  %lld files skipped (unreadable)\n", (long long)sum.n_skipped);
    if (sum.rt_skipped[0] && cs_mpi_rank() == 0) /* the line `copyscope analyze` prints: never a silent skip */
        fprintf(stderr, "copyscope: run: no round trip through the run's autoencoder, pixels compared with "
                        "the references only: %s\n", sum.rt_skipped);
    return 0;
}

static int step_report(cs_store *s, const run_opts *o, const char *name, int64_t run_id, int64_t text_audit,
                       char paths[4][PATH_MAX], cs_err *err) {
    char what[64];
    snprintf(what, sizeof what, "%d format%s", o->n_formats, o->n_formats == 1 ? "" : "s");
    header(3, "report", what);
    for (int i = 0; i < o->n_formats; i++) {
        snprintf(paths[i], PATH_MAX, "%s/%s-report.%s", o->out, name, format_ext(o->formats[i]));
        if (cs_report_check_out(paths[i], err)) return -1;
        cs_report_opts ro = {.run_id = run_id, .top = o->top, .text_audit = text_audit,
                             .format = (cs_report_format)o->formats[i], .generator = "copyscope " CS_VERSION,
                             .threads = o->threads, .progress = 1};
        cs_buf b = {0};
        int rc = cs_report_render(s, &ro, &b, err);
        if (rc == 0) rc = cs_report_save(paths[i], b.p ? b.p : "", b.len, err);
        cs_buf_free(&b);
        if (rc) return -1;
        printf("wrote %s\n", paths[i]);
    }
    return 0;
}

/* Up to max bytes of s, cut at a UTF-8 character boundary, "..." when cut. */
static void clip(char *dst, size_t dn, const char *s, size_t max) {
    char safe[1024]; /* captions and paths come from the data: no terminal escapes */
    s = cs_term_safe(safe, sizeof safe, s);
    size_t n = strlen(s);
    if (max + 4 > dn) max = dn - 4;
    if (n <= max) {
        snprintf(dst, dn, "%s", s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    snprintf(dst, dn, "%.*s...", (int)max, s);
}

/* The last two components of a path ("img/1f600.png"): enough to recognise it. */
static const char *short_path(const char *p) {
    if (!p) return "-";
    const char *a = strrchr(p, '/');
    if (!a || a == p) return p;
    const char *b = a - 1;
    while (b > p && *b != '/') b--;
    return *b == '/' ? b + 1 : b;
}

static void print_images(const cs_run_summary *r) {
    printf("images: %lld generations", (long long)r->total);
    if (r->n_refs >= 0) /* the index size: "0 copies" means little against a handful */
        printf(" against %lld reference%s (analysis %lld)", (long long)r->n_refs, r->n_refs == 1 ? "" : "s",
               (long long)r->analysis_id);
    printf(": copy %lld, near-copy %lld, partial %lld, novel %lld\n", (long long)r->count[0], (long long)r->count[1],
           (long long)r->count[2], (long long)r->count[3]);
    for (int i = 0; i < r->n_top; i++) {
        const cs_rsum_prompt *p = &r->top[i];
        if (!i)
            printf("worst finding per prompt (memorised = copy or near-copy generations):\n"
                   "  %-20s %-10s %-9s %-26s %-24s %s\n",
                   "prompt", "verdict", "memorised", "matched reference", "its caption", "tiled L2");
        char key[24], src[32], cap[28], mem[16];
        clip(key, sizeof key, p->key, 20);
        clip(src, sizeof src, short_path(p->source), 26);
        clip(cap, sizeof cap, p->caption, 22);
        snprintf(mem, sizeof mem, "%lld/%lld", (long long)p->n_memorised, (long long)p->n_generations);
        char d[16] = "-";
        if (p->has_dist) snprintf(d, sizeof d, "%.3f", p->aligned_distance);
        printf("  %-20s %-10s %-9s %-26s %-24s %s\n", key, p->verdict, mem, src, cap, d);
    }
    if (r->n_prompts > r->n_top)
        printf("  ... and %lld more prompts: see the report\n", (long long)(r->n_prompts - r->n_top));
    if (r->n_prompts)
        printf("prompts with a memorised generation: %lld of %lld\n", (long long)r->n_memorised_prompts,
               (long long)r->n_prompts);
    if (r->n_completions > 0)
        printf("completion tasks: %lld of %lld audited completions restored the withheld region of their reference\n",
               (long long)r->n_restored, (long long)r->n_completions);
    if (r->n_expected)
        printf("expected copies (suite's expect_ref): %lld of %lld generations found as a copy of it\n",
               (long long)r->n_expected_hit, (long long)r->n_expected);
}

static void print_text(const cs_run_summary *r, int64_t text_audit) {
    if (text_audit < 0) return;
    if (r->text_n > 0) {
        char which[32] = "all text audits";
        if (text_audit > 0) snprintf(which, sizeof which, "text audit %lld", (long long)text_audit);
        printf("%s: %lld completions: verbatim %lld, near-verbatim %lld, novel %lld; longest verbatim span %lld words\n",
               which, (long long)r->text_n, (long long)r->text_verbatim, (long long)r->text_near,
               (long long)r->text_novel, (long long)r->text_longest);
    }
    for (int i = 0; i < r->n_text_top; i++) {
        const cs_rsum_text *t = &r->text_top[i];
        char key[28], doc[40];
        clip(key, sizeof key, t->key, 24);
        clip(doc, sizeof doc, short_path(t->doc), 36);
        printf("  %-24s %-14s %3lld-word span from %s (exact prefix %lld words)\n", key, t->verdict,
               (long long)t->longest_words, doc, (long long)t->exact_prefix_words);
    }
}

/* run --json: the run, what each step did and the summary. */
static cJSON *run_json(const run_opts *o, const char *name, const cs_generate_stats *gs, int64_t analysis_id,
                       const cs_run_summary *rs, int64_t text_audit) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "suite", name);
    cJSON_AddStringToObject(j, "db", o->db);
    cJSON_AddNumberToObject(j, "run_id", (double)gs->run_id);
    cJSON_AddItemToObject(j, "generate", cli_generate_json(gs));
    if (analysis_id > 0) cJSON_AddNumberToObject(j, "analysis_id", (double)analysis_id);
    else cJSON_AddNullToObject(j, "analysis_id"); /* skipped: nothing changed */
    cJSON *v = cJSON_AddObjectToObject(j, "verdicts");
    static const char *const names[4] = {"copy", "near-copy", "partial", "novel"}; /* rs->count's order */
    for (int i = 0; i < 4; i++) cJSON_AddNumberToObject(v, names[i], (double)rs->count[i]);
    cJSON_AddNumberToObject(j, "generations", (double)rs->total);
    if (rs->worst) cJSON_AddStringToObject(j, "worst", rs->worst);
    else cJSON_AddNullToObject(j, "worst");
    cJSON_AddNumberToObject(j, "prompts", (double)rs->n_prompts);
    cJSON_AddNumberToObject(j, "memorised_prompts", (double)rs->n_memorised_prompts);
    cJSON_AddNumberToObject(j, "expected_copies", (double)rs->n_expected);
    cJSON_AddNumberToObject(j, "expected_copies_found", (double)rs->n_expected_hit);
    cJSON_AddNumberToObject(j, "completions", (double)rs->n_completions);
    cJSON_AddNumberToObject(j, "completions_restored", (double)rs->n_restored);
    if (text_audit >= 0 && rs->text_n > 0) {
        cJSON *t = cJSON_AddObjectToObject(j, "text");
        cJSON_AddNumberToObject(t, "completions", (double)rs->text_n);
        cJSON_AddNumberToObject(t, "verbatim", (double)rs->text_verbatim);
        cJSON_AddNumberToObject(t, "near-verbatim", (double)rs->text_near);
        cJSON_AddNumberToObject(t, "novel", (double)rs->text_novel);
        cJSON_AddNumberToObject(t, "longest_words", (double)rs->text_longest);
    }
    return j;
}

/* The generation step's options (every rank: the same but for its part). */
static cs_generate_opts generate_opts(const run_opts *o, const char *gen_out) {
    /* a run that exists keeps its images' folder (from any folder, whatever --out: it
     * places the reports; the images are said to stay where they are) */
    cs_generate_opts go = {.suite = o->suite, .model = o->model, .config = o->config, .vocab = o->vocab,
                           .out = NULL, .out_default = gen_out, .db = o->db,
                           .samples = o->samples, .threads = o->threads, .progress = 1, .command = o->command,
                           .precision = o->precision};
    if (cs_mpi_size() > 1) { /* copyscope-mpi: each rank samples its part of the suite */
        go.part_k = cs_mpi_rank();
        go.part_n = cs_mpi_size();
        go.wait = cli_mpi_wait;
        go.progress = cs_mpi_rank() == 0;
    }
    return go;
}

/* Under mpirun: every part's counts summed (collective), each rank's on
 * rank 0's stdout; 0, or -1 when any rank failed. */
static int sum_parts(cs_generate_stats *gs, int rc) {
    if (cs_mpi_size() == 1) return rc;
    enum { SHOWN = 64 };
    int64_t v[3 + SHOWN] = {rc ? 0 : gs->generated, rc ? 0 : gs->steps, rc != 0};
    if (cs_mpi_rank() < SHOWN) v[3 + cs_mpi_rank()] = v[0];
    cs_mpi_sum_i64(v, 3 + SHOWN);
    if (v[2]) return -1;
    gs->generated = (int)v[0];
    gs->steps = v[1];
    if (cs_mpi_rank() == 0 && cs_mpi_size() <= SHOWN) {
        printf("images made per rank:");
        for (int r = 0; r < cs_mpi_size(); r++) printf(" %lld", (long long)v[3 + r]);
        printf("\n");
    }
    return 0;
}

/* Ranks > 0 of copyscope-mpi: the collective steps of cmd_run in its order
 * (rank 0 checks the suite and the store; each rank samples its part; the
 * analysis's match batches), then rank 0 alone writes the reports. */
static int run_worker(const run_opts *o) {
    if (cs_mpi_any(0)) return CLI_FAIL; /* rank 0 said why */
    char gen_out[PATH_MAX];
    snprintf(gen_out, sizeof gen_out, "%s/generations", o->out);
    cs_generate_opts go = generate_opts(o, gen_out);
    cs_generate_stats gs;
    cs_err err = {0};
    int rc = cs_generate(&go, &gs, &err);
    if (rc) fprintf(stderr, "copyscope: run: rank %d of %d: %s\n", cs_mpi_rank(), cs_mpi_size(), err.msg);
    if (sum_parts(&gs, rc)) return CLI_FAIL;
    int64_t need = 0;
    cs_mpi_bcast(&need, sizeof need);
    if (need < 0) return CLI_FAIL;
    if (need == 0) return cli_mpi_print_cpu("run"), CLI_OK;
    cs_analyze_opts ao = analyze_opts(o, gs.run_id, (int)need);
    rc = cli_mpi_analyze_worker(o->db, &ao);
    cli_mpi_print_cpu("run");
    return rc;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc >= 0) return rc;
    if (o.threads > 0) cs_set_threads(o.threads);
    if (cs_mpi_rank() > 0) return run_worker(&o);
    if (o.json) cli_json_begin();
    cs_err err = {0};
    double t0 = cs_now_s();

    /* everything that can be checked before work: the suite, the output folder */
    cs_suite suite;
    cs_store *s = NULL; /* checked before hours of generation: an empty index would call every image novel */
    char name[256], gen_out[PATH_MAX];
    int bad = cs_suite_load(&suite, o.suite, &err), usage = 0;
    if (!bad) {
        bad = cs_store_open_indexed(&s, o.db, 1, &err) || cs_suite_check_refs(&suite, s, &err);
        snprintf(name, sizeof name, "%s", suite.name);
        cs_suite_free(&suite);
    }
    if (!bad && snprintf(gen_out, sizeof gen_out, "%s/generations", o.out) >= (int)sizeof gen_out)
        bad = usage = 1;
    if (!bad) bad = cs_mkdir_p(o.out, &err);
    if (cs_mpi_any(bad)) { /* the other ranks stop too */
        cs_store_close(s);
        return usage ? cli_usage_error("run: --out: path too long") : cli_fail(&err);
    }

    header(1, "generate", o.suite);
    cs_generate_opts go = generate_opts(&o, gen_out);
    cs_generate_stats gs;
    rc = cs_generate(&go, &gs, &err);
    if (sum_parts(&gs, rc)) {
        if (!rc) cs_fail(&err, CS_EINTERNAL, "run: another rank could not make its part (its message above)");
        goto fail;
    }
    cli_generate_notes(&gs);
    char *want = o.out_given ? cs_abs_path(gen_out) : NULL;
    size_t wl = want ? strlen(want) : 0;
    if (want && (strncmp(gs.out_dir, want, wl) || gs.out_dir[wl] != '/'))
        printf("run %lld keeps its images in %s, where it made them (move that folder into %s to have them "
               "together: they are found there); the reports go to %s\n",
               (long long)gs.run_id, gs.out_dir, want, o.out);
    free(want);
    printf("run %lld: %d image%s made, %d already there; %s\n", (long long)gs.run_id, gs.generated,
           gs.generated == 1 ? "" : "s", gs.skipped, gs.out_dir);
    if (gs.generated && gs.seconds > 0)
        printf("%lld sampler steps in %.1f s (%.1f steps/s)\n", (long long)gs.steps, gs.seconds,
               (double)gs.steps / gs.seconds);

    int64_t analysis_id = 0; /* 0: skipped, nothing changed */
    if (step_analyze(s, &o, gs.run_id, &analysis_id, &err)) goto fail;

    int64_t text_audit = o.text_audit;
    if (text_audit == TEXT_LATEST) {
        if (cs_text_audit_latest(s, &text_audit, &err)) goto fail;
        if (text_audit == 0) text_audit = TEXT_NONE;
    }
    char paths[4][PATH_MAX];
    if (step_report(s, &o, name, gs.run_id, text_audit, paths, &err)) goto fail;

    printf("\n== summary of run %lld (%s, %.1f s)\n", (long long)gs.run_id, name,
           cs_now_s() - t0);
    cs_run_summary rs;
    if (cs_run_summary_load(s, gs.run_id, text_audit, &rs, &err)) goto fail;
    print_images(&rs);
    print_text(&rs, text_audit);
    int worst = rs.worst ? cs_verdict_parse(rs.worst) : -1;
    cJSON *js = o.json ? run_json(&o, name, &gs, analysis_id, &rs, text_audit) : NULL;
    cs_run_summary_free(&rs);
    cJSON *reports = cJSON_AddArrayToObject(js, "reports");
    for (int i = 0; i < o.n_formats; i++) {
        char abs[PATH_MAX];
        printf("report: %s\n", realpath(paths[i], abs) ? abs : paths[i]);
        if (reports) cJSON_AddItemToArray(reports, cJSON_CreateString(realpath(paths[i], abs) ? abs : paths[i]));
    }
    int gaps = cli_report_gaps(s, gs.run_id, "the report");
    cs_store_close(s);
    int tripped = o.fail_on > 0 && worst >= o.fail_on;
    cJSON_AddBoolToObject(js, "images_missing", gaps != 0);
    cJSON_AddBoolToObject(js, "fail_on_tripped", tripped);
    if (o.json && cli_json_end(js)) return CLI_FAIL;
    if (gaps) return gaps;
    if (tripped) {
        fprintf(stderr, "copyscope: run: --fail-on %s tripped (worst finding: %s)\n", cs_verdict_name(o.fail_on),
                cs_verdict_name(worst));
        return CLI_GATE;
    }
    return CLI_OK;
fail:
    cs_store_close(s);
    return cli_fail(&err);
}
