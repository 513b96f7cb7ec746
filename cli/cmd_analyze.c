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
#include "cli/cli.h"
#include "core/parallel.h"
#include "core/store.h"

enum { CLI_GATE = 3 };

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope analyze (--run ID | --images DIR...) [options]\n\n"
            "Matches generations against the reference index (every descriptor it holds:\n"
            "tiled L2 on thumbnails, PDQ/pHash/dHash, embeddings), finds near-duplicate\n"
            "cliques among each prompt's generations, and stores a verdict with evidence\n"
            "(copy, near-copy, partial, novel) per generation in the findings table.\n\n"
            "  --run ID            analyse the generations of run ID (copyscope generate)\n"
            "  --only-new          with --run: analyse only the generations without a finding\n"
            "                      (the others keep theirs); cliques and prompt summaries of the\n"
            "                      prompts concerned are recomputed over all their generations\n"
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
            "  -q, --quiet         no summary on stdout\n\n"
            "exit status: 0 done, 1 error, 2 usage error, 3 --fail-on tripped\n");
}

static void print_settings(void) {
    printf("%-18s %-10s %s\n", "setting", "default", "meaning (source)");
    for (int i = 0; i < cs_an_setting_count; i++)
        printf("%-18s %-10.6g %s (%s)\n", cs_an_setting_table[i].name, cs_an_setting_table[i].def,
               cs_an_setting_table[i].what, cs_an_setting_table[i].source);
}

int cmd_analyze(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},       {"images", required_argument, 0, 'i'},
        {"fail-on", required_argument, 0, 'f'},   {"descriptors", required_argument, 0, 'D'},
        {"embedder", required_argument, 0, 'e'},  {"set", required_argument, 0, 's'},
        {"background", required_argument, 0, 'B'}, {"only-new", no_argument, 0, 'N'},
        {"settings", no_argument, 0, 'S'},        {"db", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    cs_analyze_opts o = {0};
    cs_an_settings_default(&o.set);
    const char *db = NULL;
    int fail_on = -1, quiet = 0, jobs = 0, images = 0;
    char **dirs = calloc((size_t)argc + 1, sizeof(char *));
    int nd = 0;
    cs_err err = {0};
    if (!dirs) return cli_usage_error("analyze: out of memory");
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'r': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (!*optarg || *end || v <= 0) {
                free(dirs);
                return cli_usage_error("analyze: --run: '%s' is not a run id", optarg);
            }
            o.run_id = v;
            break;
        }
        case 'i':
            images = 1;
            dirs[nd++] = optarg;
            break;
        case 'f':
            fail_on = cs_verdict_parse(optarg);
            if (fail_on <= 0) {
                free(dirs);
                return cli_usage_error("analyze: --fail-on: '%s' is not copy, near-copy or partial", optarg);
            }
            break;
        case 'D': o.descriptors = optarg; break;
        case 'e': o.embedder = optarg; break;
        case 'B': o.background = optarg; break;
        case 'N': o.only_new = 1; break;
        case 's':
            if (cs_an_settings_set(&o.set, optarg, &err)) {
                free(dirs);
                return cli_usage_error("analyze: %s", err.msg);
            }
            break;
        case 'S':
            print_settings();
            free(dirs);
            return CLI_OK;
        case 'd': db = optarg; break;
        case 'j':
            jobs = cli_parse_jobs(optarg);
            if (jobs < 0) {
                free(dirs);
                return cli_usage_error("analyze: -j: '%s' is not a thread count", optarg);
            }
            break;
        case 'q': quiet = 1; break;
        case 'h':
            usage(stdout);
            free(dirs);
            return CLI_OK;
        default:
            usage(stderr);
            free(dirs);
            return CLI_USAGE;
        }
    }
    /* --images DIR... : further operands are more folders */
    for (int i = optind; i < argc; i++) {
        if (!images) {
            free(dirs);
            return cli_usage_error("analyze: unexpected argument '%s' (see --help)", argv[i]);
        }
        dirs[nd++] = argv[i];
    }
    if ((o.run_id > 0) == images) {
        free(dirs);
        return cli_usage_error("analyze: give exactly one of --run ID or --images DIR (see --help)");
    }
    if (o.only_new && images) {
        free(dirs);
        return cli_usage_error("analyze: --only-new needs --run ID (--images always records a new run)");
    }
    if (jobs > 0) cs_set_threads(jobs);
    o.threads = jobs;
    o.image_dirs = dirs;
    o.n_dirs = nd;
    o.progress = 1;
    cs_store *s = NULL;
    if (cs_store_open_indexed(&s, db ? db : cli_default_db(), 1, &err)) {
        free(dirs);
        return cli_fail(&err);
    }
    cs_analyze_summary sum;
    int rc = cs_analyze_run(s, &o, &sum, &err);
    if (rc) {
        cs_store_close(s);
        free(dirs);
        return cli_fail(&err);
    }
    if (sum.n_skipped > 0) {
        /* recorded in analysis_skipped; name a few here */
        sqlite3_stmt *st;
        cs_err e2 = {0};
        if (cs_store_prepare(s, &st, "SELECT path, error FROM analysis_skipped WHERE analysis_id = ? LIMIT 5", &e2) == 0) {
            sqlite3_bind_int64(st, 1, sum.analysis_id);
            while (sqlite3_step(st) == SQLITE_ROW)
                fprintf(stderr, "copyscope: skipped %s\n", (const char *)sqlite3_column_text(st, 1));
            sqlite3_finalize(st);
        }
    }
    if (!quiet && sum.analysis_id == 0) {
        printf("run %lld: every generation already has a finding (%lld kept): nothing new to analyse\n",
               (long long)sum.run_id, (long long)sum.n_kept);
    } else if (!quiet) {
        printf("analysis %lld of run %lld: %lld generations", (long long)sum.analysis_id,
               (long long)sum.run_id, (long long)sum.n_generations);
        if (sum.n_kept) printf(" (new; %lld findings kept)", (long long)sum.n_kept);
        if (sum.n_skipped) printf(" (%lld files skipped)", (long long)sum.n_skipped);
        printf(", %lld references, descriptors: %s\n", (long long)sum.n_refs,
               sum.descriptors[0] ? sum.descriptors : "none (empty index: cliques only)");
        printf("  copy %lld  near-copy %lld  partial %lld  novel %lld\n", (long long)sum.count[CS_V_COPY],
               (long long)sum.count[CS_V_NEAR], (long long)sum.count[CS_V_PARTIAL],
               (long long)sum.count[CS_V_NOVEL]);
        printf("  prompts %lld, %lld with a near-duplicate clique of >= %g generations\n",
               (long long)sum.n_prompts, (long long)sum.n_clique_prompts, o.set.clique_k);
    }
    cs_store_close(s);
    free(dirs);
    if (fail_on > 0 && sum.worst >= fail_on) {
        fprintf(stderr, "copyscope: analyze: --fail-on %s tripped (worst finding: %s)\n",
                cs_verdict_name(fail_on), cs_verdict_name(sum.worst));
        return CLI_GATE;
    }
    return CLI_OK;
}
