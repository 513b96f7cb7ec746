/* cmd_generate.c — `copyscope generate SUITE.json`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/parallel.h"
#include "pipeline/generate.h"
#include "pipeline/suite.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope generate SUITE.json [--model PATH|empirical|empirical:INDEXDB]\n"
            "                          [--config JSON] [--vocab PATH] [--out DIR] [-n N] [-j N] [--db PATH]\n\n"
            "Runs a prompt suite through a model: every prompt x seed becomes a PNG (with an\n"
            "A1111-style 'parameters' text chunk) and a row in the store (runs, prompts,\n"
            "generations, with the white-box signals). Everything is checked before any work;\n"
            "re-running the same suite with the same model skips the images already made.\n\n"
            "options:\n"
            "  --model SPEC    SD 1.x checkpoint (.safetensors), 'empirical' (the built-in\n"
            "                  empirical model over the --db index) or 'empirical:INDEXDB'\n"
            "                  (default: the suite's \"model\")\n"
            "  --config JSON   SD architecture config (default: the suite's, else SD 1.x)\n"
            "  --vocab PATH    CLIP BPE vocabulary, bpe_simple_vocab_16e6.txt.gz (SD models)\n"
            "  --out DIR       output folder (default ./generations); images go to\n"
            "                  DIR/<suite name>-<run id hash>/<prompt id>-<sample>-<seed>.png\n"
            "  -n N            samples per prompt (overrides the suite; extra seeds follow the last)\n"
            "  -j, --jobs N    compute threads (default: all cores)\n"
            "  --db PATH       database (default $COPYSCOPE_DB or ./copyscope.db)\n\n"
            "The suite format is described in README.md ('copyscope generate').\n");
}

static const struct option opts[] = {
    {"model", required_argument, 0, 'm'}, {"config", required_argument, 0, 'c'},
    {"vocab", required_argument, 0, 'v'}, {"out", required_argument, 0, 'o'},
    {"jobs", required_argument, 0, 'j'},  {"db", required_argument, 0, 'd'},
    {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};

int cmd_generate(int argc, char **argv) {
    cs_generate_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:j:o:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'c': o.config = optarg; break;
        case 'v': o.vocab = optarg; break;
        case 'o': o.out = optarg; break;
        case 'd': o.db = optarg; break;
        case 'n':
            o.samples = (int)strtol(optarg, &end, 10);
            if (*end || o.samples <= 0 || o.samples > 100000)
                return cli_usage_error("generate: bad -n '%s' (1..100000)", optarg);
            break;
        case 'j':
            if ((o.threads = cli_parse_jobs(optarg)) < 0) return cli_usage_error("generate: bad -j '%s'", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return cli_usage_error("generate: give one SUITE.json");
    }
    o.suite = argv[optind];
    if (!o.db) o.db = cli_default_db();
    if (o.threads > 0) cs_set_threads(o.threads);
    o.progress = 1;
    char cmd[2048];
    size_t k = 0;
    for (int i = 0; i < argc && k + 2 < sizeof cmd; i++)
        k += (size_t)snprintf(cmd + k, sizeof cmd - k, "%s%s", i ? " " : "copyscope ", argv[i]);
    o.command = cmd;
    cs_err err = {0};
    cs_generate_stats st;
    cs_suite suite; /* its ref and mask files checked before any image is made */
    if (cs_suite_load(&suite, o.suite, &err)) return cli_fail(&err);
    int bad = cs_suite_check_refs(&suite, NULL, &err);
    cs_suite_free(&suite);
    if (bad || cs_generate(&o, &st, &err)) return cli_fail(&err);
    printf("generate: run %lld: %d image%s made, %d already there; %s\n", (long long)st.run_id,
           st.generated, st.generated == 1 ? "" : "s", st.skipped, st.out_dir);
    if (st.generated && st.seconds > 0)
        printf("generate: %lld steps in %.1f s (%.2f steps/s)\n", (long long)st.steps, st.seconds,
               (double)st.steps / st.seconds);
    return CLI_OK;
}
