/* cmd_analyze.c — `copyscope analyze`: find copies of references among
 * generations (analyze/analyze.h), usable as a CI gate with --fail-on.
 * Exit status: 0 done (gate not tripped), 1 error, 2 usage error,
 * 3 --fail-on tripped (a finding at least as severe as asked). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/store.h"

enum { CLI_GATE = 3 };

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope analyze (--run ID | --images DIR...) [options]\n\n"
            "Matches generations against the reference index (every descriptor it holds:\n"
            "tiled L2 on thumbnails, PDQ/pHash/dHash, embeddings, SIFT local features verified\n"
            "geometrically, so crops, rotations and embeds are found), finds near-duplicate\n"
            "cliques among each prompt's generations, and stores a verdict with evidence\n"
            "(copy, near-copy, partial, novel) per generation in the findings table.\n\n"
            "  --run ID            analyse the generations of run ID (copyscope generate)\n"
            "  --only-new          with --run: analyse only the generations without a finding\n"
            "                      (the others keep theirs); cliques and prompt summaries of the\n"
            "                      prompts concerned are recomputed over all their generations\n"
            "  --no-local-features skip the local-feature stage (on when the index has them)\n"
            "  --images DIR...     analyse every file under these folders (or files), recorded\n"
            "                      as a new run; prompt and seed come from a PNG 'parameters'\n"
            "                      text chunk when present; unreadable files are recorded and skipped\n"
            "  --fail-on VERDICT   exit 3 when any generation is at least VERDICT\n"
            "                      (copy | near-copy | partial)\n"
            "  --descriptors LIST  comma list the analysis must use (tl2,layout,pdq,phash,dhash,tiny,\n"
            "                      sscd); an index without one of them is an error. Default: all it has\n"
            "  --embedder SPEC     embed generations with SPEC (e.g. sscd:W.safetensors); default:\n"
            "                      tiny when the index has that column\n"
            "  --background DIR    images known not to be copies: SSCD score normalisation of the\n"
            "                      embedding cosines (cosine - sscd_beta x mean top-3 to this set);\n"
            "                      default: the column's stored set ('copyscope index background'),\n"
            "                      when it has one\n"
            "  --set NAME=VALUE    change a threshold (repeatable); --settings lists them\n"
            "  --settings          print every setting with its default and source, and exit\n"
            "  --db PATH           the store (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  -j N                threads (default: all cores)\n"
            "  -q, --quiet         no summary on stdout\n"
            "  --json              the summary as one JSON object on stdout (the rest on stderr)\n\n"
            "exit status: 0 done, 1 error, 2 usage error, 3 --fail-on tripped\n");
}

static void print_settings(void) {
    printf("%-18s %-10s %s\n", "setting", "default", "meaning (source)");
    for (int i = 0; i < cs_an_setting_count; i++)
        printf("%-18s %-10.6g %s (%s)\n", cs_an_setting_table[i].name, cs_an_setting_table[i].def,
               cs_an_setting_table[i].what, cs_an_setting_table[i].source);
}

/* The command line; o->image_dirs (malloc'd) is owned by the caller, also
 * on failure. Returns -1 to go on, else the exit status. */
typedef struct {
    cs_analyze_opts o;
    const char *db;
    int fail_on, quiet, jobs, images, json;
} analyze_args;

static int parse_option(analyze_args *a, int c, char **dirs, int *nd, cs_err *err) {
    cs_analyze_opts *o = &a->o;
    switch (c) {
    case 'r': {
        char *end;
        long long v = strtoll(optarg, &end, 10);
        if (!*optarg || *end || v <= 0) return cli_usage_error("analyze: --run: '%s' is not a run id", optarg);
        o->run_id = v;
        return -1;
    }
    case 'i':
        a->images = 1;
        dirs[(*nd)++] = optarg;
        return -1;
    case 'f':
        a->fail_on = cs_verdict_parse(optarg);
        if (a->fail_on <= 0)
            return cli_usage_error("analyze: --fail-on: '%s' is not copy, near-copy or partial", optarg);
        return -1;
    case 'D': o->descriptors = optarg; return -1;
    case 'e': o->embedder = optarg; return -1;
    case 'B': o->background = optarg; return -1;
    case 'N': o->only_new = 1; return -1;
    case 'L': o->no_local_features = 1; return -1;
    case 's':
        if (cs_an_settings_set(&o->set, optarg, err)) return cli_usage_error("analyze: %s", err->msg);
        return -1;
    case 'S': print_settings(); return CLI_OK;
    case 'd': a->db = optarg; return -1;
    case 'j':
        a->jobs = cli_parse_jobs(optarg);
        if (a->jobs < 0) return cli_usage_error("analyze: -j: '%s' is not a thread count", optarg);
        return -1;
    case 'q': a->quiet = 1; return -1;
    case 'J': a->json = 1; return -1;
    case 'h': usage(stdout); return CLI_OK;
    default: return cli_usage_hint("analyze");
    }
}

static int parse_args(analyze_args *a, int argc, char **argv, char **dirs, cs_err *err) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},       {"images", required_argument, 0, 'i'},
        {"fail-on", required_argument, 0, 'f'},   {"descriptors", required_argument, 0, 'D'},
        {"embedder", required_argument, 0, 'e'},  {"set", required_argument, 0, 's'},
        {"background", required_argument, 0, 'B'}, {"only-new", no_argument, 0, 'N'},
        {"settings", no_argument, 0, 'S'},        {"db", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {"json", no_argument, 0, 'J'},            {"no-local-features", no_argument, 0, 'L'},
        {0, 0, 0, 0},
    };
    int nd = 0, c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1)
        if ((rc = parse_option(a, c, dirs, &nd, err)) >= 0) return rc;
    /* --images DIR... : further operands are more folders */
    for (int i = optind; i < argc; i++) {
        if (!a->images) return cli_usage_error("analyze: unexpected argument '%s' (see --help)", argv[i]);
        dirs[nd++] = argv[i];
    }
    if ((a->o.run_id > 0) == a->images)
        return cli_usage_error("analyze: give exactly one of --run ID or --images DIR (see --help)");
    if (a->o.only_new && a->images)
        return cli_usage_error("analyze: --only-new needs --run ID (--images always records a new run)");
    a->o.threads = a->jobs;
    a->o.image_dirs = dirs;
    a->o.n_dirs = nd;
    a->o.progress = 1;
    return -1;
}

static void print_summary(const cs_analyze_summary *sum, const cs_an_settings *set) {
    if (sum->analysis_id == 0) {
        printf("run %lld: every generation already has a finding (%lld kept): nothing new to analyse\n",
               (long long)sum->run_id, (long long)sum->n_kept);
        return;
    }
    printf("analysis %lld of run %lld: %lld generations", (long long)sum->analysis_id, (long long)sum->run_id,
           (long long)sum->n_generations);
    if (sum->n_kept) printf(" (new; %lld findings kept)", (long long)sum->n_kept);
    if (sum->n_skipped) printf(" (%lld files skipped)", (long long)sum->n_skipped);
    printf(", %lld references, descriptors: %s\n", (long long)sum->n_refs,
           sum->descriptors[0] ? sum->descriptors : "none (empty index: cliques only)");
    printf("  copy %lld  near-copy %lld  partial %lld  novel %lld\n", (long long)sum->count[CS_V_COPY],
           (long long)sum->count[CS_V_NEAR], (long long)sum->count[CS_V_PARTIAL], (long long)sum->count[CS_V_NOVEL]);
    printf("  prompts %lld, %lld with a near-duplicate clique of >= %g generations\n", (long long)sum->n_prompts,
           (long long)sum->n_clique_prompts, set->clique_k);
}

static cJSON *summary_json(const cs_analyze_summary *sum, int tripped) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run_id", (double)sum->run_id);
    cJSON_AddNumberToObject(o, "analysis_id", (double)sum->analysis_id); /* 0: nothing new to analyse */
    cJSON_AddNumberToObject(o, "generations", (double)sum->n_generations);
    cJSON_AddNumberToObject(o, "kept", (double)sum->n_kept);
    cJSON_AddNumberToObject(o, "skipped", (double)sum->n_skipped);
    cJSON_AddNumberToObject(o, "references", (double)sum->n_refs);
    cJSON_AddStringToObject(o, "descriptors", sum->descriptors);
    cJSON *v = cJSON_AddObjectToObject(o, "verdicts");
    for (int i = CS_V_NOVEL; i <= CS_V_COPY; i++) cJSON_AddNumberToObject(v, cs_verdict_name(i), (double)sum->count[i]);
    if (sum->worst >= 0) cJSON_AddStringToObject(o, "worst", cs_verdict_name(sum->worst));
    else cJSON_AddNullToObject(o, "worst");
    cJSON_AddNumberToObject(o, "prompts", (double)sum->n_prompts);
    cJSON_AddNumberToObject(o, "clique_prompts", (double)sum->n_clique_prompts);
    cJSON_AddBoolToObject(o, "fail_on_tripped", tripped);
    if (sum->rt_skipped[0]) cJSON_AddStringToObject(o, "round_trip_skipped", sum->rt_skipped);
    else cJSON_AddNullToObject(o, "round_trip_skipped");
    return o;
}

int cmd_analyze(int argc, char **argv) {
    analyze_args a = {.fail_on = -1};
    cs_an_settings_default(&a.o.set);
    cs_err err = {0};
    char **dirs = calloc((size_t)argc + 1, sizeof(char *));
    if (!dirs) return cli_usage_error("analyze: out of memory");
    int rc = parse_args(&a, argc, argv, dirs, &err);
    if (rc >= 0) {
        free(dirs);
        return rc;
    }
    if (a.jobs > 0) cs_set_threads(a.jobs);
    if (cs_mpi_rank() > 0) { /* copyscope-mpi: the other ranks match shares of rank 0's batches */
        rc = cli_mpi_analyze_worker(a.db ? a.db : cli_default_db(), &a.o);
        free(dirs);
        return rc;
    }
    if (a.json) cli_json_begin();
    cs_store *s = NULL;
    if (cs_store_open_indexed(&s, a.db ? a.db : cli_default_db(), 1, &err)) {
        cli_mpi_analyze_end(NULL, 1);
        free(dirs);
        return cli_fail(&err);
    }
    cs_analyze_summary sum;
    cli_mpi_an *mx = cli_mpi_analyze_begin(&a.o, s);
    int arc = cs_analyze_run(s, &a.o, &sum, &err);
    cli_mpi_analyze_end(mx, a.quiet || a.json);
    if (arc) {
        cs_store_close(s);
        free(dirs);
        return cli_fail(&err);
    }
    if (sum.n_skipped > 0) {
        /* recorded in analysis_skipped; name a few here */
        char *why[5];
        int n = cs_analyze_skipped(s, sum.analysis_id, why, 5);
        for (int i = 0; i < n; i++) {
            fprintf(stderr, "copyscope: skipped %s\n", why[i]);
            free(why[i]);
        }
    }
    if (sum.rt_skipped[0]) /* a recorded skip (each finding's pixel_comparison says why), never a silent one */
        fprintf(stderr, "copyscope: analyze: no round trip through the run's autoencoder, pixels compared with "
                        "the references only: %s\n", sum.rt_skipped);
    if (!a.quiet) print_summary(&sum, &a.o.set);
    cs_store_close(s);
    free(dirs);
    int tripped = a.fail_on > 0 && sum.worst >= a.fail_on;
    if (a.json && cli_json_end(summary_json(&sum, tripped))) return CLI_FAIL;
    if (tripped) {
        fprintf(stderr, "copyscope: analyze: --fail-on %s tripped (worst finding: %s)\n",
                cs_verdict_name(a.fail_on), cs_verdict_name(sum.worst));
        return CLI_GATE;
    }
    return CLI_OK;
}
