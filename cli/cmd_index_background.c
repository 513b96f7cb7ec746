/* cmd_index_background.c — `copyscope index background PATH... [--embedder
 * SPEC]`: the stored background set of an embedding column
 * (index/background.h), used for SSCD score normalisation by analyze and by
 * index query --normalize. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/parallel.h"
#include "core/store.h"
#include "index/background.h"

int cmd_index_background(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope index background [--embedder SPEC] [--db PATH] [-j N] PATH...\n\n"
            "Embeds a background set for SSCD score normalisation (Pizzi et al. 2022) and stores\n"
            "it beside the index's embedding column (<db>.vec-<column>.bg). 'analyze' then lowers\n"
            "each generation's embedding cosines by sscd_beta x the mean of its top-3 similarities\n"
            "to this set (unless given --background DIR), and 'index query --normalize' does the\n"
            "same, so images that resemble everything (flat, generic) stop ranking first.\n\n"
            "The background images must come from the same distribution as the images you check\n"
            "(e.g. generations of the same model and prompts style, or other images of the same\n"
            "kind as the references) and must be known NOT to be copies of any reference: a copy\n"
            "in the set lowers the score of exactly the copies you look for. Hundreds to a few\n"
            "thousand images are enough for a stable top-3 mean.\n\n"
            "PATH: folders (walked recursively; .png .jpg .jpeg images and .tar/.tar.gz webdataset\n"
            "shards), image files, tar shards. Images are deduplicated by the sha256 of their\n"
            "bytes: rerunning, or naming the same image twice, embeds nothing again; an\n"
            "interrupted run keeps every batch of 8 it finished. Unreadable or undecodable images\n"
            "are skipped and counted (the first reason is printed). To start over, remove the\n"
            "<db>.vec-<column>.bg and .bg.ids files.\n\n"
            "  --embedder SPEC   'tiny' (default; needs 'index add --embedder tiny' first) or\n"
            "                    'sscd:WEIGHTS.safetensors' (the weights the index's sscd column\n"
            "                    was made with)\n"
            "  --db PATH         the index (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  -j, --jobs N      threads (default: all cores)\n\n"
            "exit status: 0 done (even with skipped images), 1 error, 2 usage error.\n");
}

int cmd_index_background(int argc, char **argv) {
    static const struct option opts[] = {{"embedder", required_argument, 0, 'E'},
                                         {"db", required_argument, 0, 'd'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = NULL, *spec = "tiny";
    int jobs = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': spec = optarg; break;
        case 'd': db = optarg; break;
        case 'j':
            if ((jobs = cli_parse_jobs(optarg)) < 0) return cli_usage_error("index background: bad -j '%s'", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("index background");
        }
    }
    if (optind >= argc) return cli_usage_error("index background: no PATH given (see copyscope index background --help)");
    if (jobs > 0) cs_set_threads(jobs);
    const char *pe = getenv("CS_PROGRESS");
    int progress = !(pe && !strcmp(pe, "0")); /* off a terminal: log lines (core/progress.h) */
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    cs_bg_stats st;
    int rc = cs_bg_add(s, spec, (const char *const *)argv + optind, argc - optind, jobs, progress, &st, &err);
    cs_store_close(s);
    if (rc) return cli_fail(&err);
    printf("index background: embedder %s: %lld computed, %lld already present, %lld skipped; "
           "the set holds %lld images\n",
           spec, (long long)st.computed, (long long)st.present, (long long)st.skipped, (long long)st.total);
    if (st.skipped) fprintf(stderr, "copyscope: skipped %s\n", st.skip_example);
    return CLI_OK;
}
