/* cmd_generate.c — `copyscope generate SUITE.json` and, without a suite,
 * `copyscope generate -m MODEL -p PROMPT ... -o OUT.png` (one image, flags as
 * stable-diffusion.cpp's `sd` where they overlap). Both go through
 * cs_generate, so a single image is a run in the store like any other: the
 * command line becomes a one-prompt suite (JSON text, its sha256 the run's
 * suite identity). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"
#include "core/image.h"
#include "core/parallel.h"
#include "pipeline/generate.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"
#include "pipeline/suite.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope generate SUITE.json [--model PATH|empirical|empirical:INDEXDB]\n"
            "                          [--config JSON] [--vocab PATH] [--out DIR] [-n N] [-j N] [--db PATH]\n"
            "       copyscope generate -m MODEL -p PROMPT [-n NEGATIVE] [--seed S] [--steps N]\n"
            "                          [--cfg-scale G] [--sampler NAME] [--schedule NAME] [-W W -H H]\n"
            "                          [--init-img F --strength S] [--mask F] [--lora F:W] [--rng R]\n"
            "                          [--ensd N] [--vocab PATH] [--config JSON] [--db PATH] -o OUT.png\n\n"
            "Runs a prompt suite through a model: every prompt x seed becomes a PNG (with an\n"
            "A1111-style 'parameters' text chunk) and a row in the store (runs, prompts,\n"
            "generations, with the white-box signals). Everything is checked before any work;\n"
            "re-running the same suite with the same model skips the images already made.\n"
            "With -p instead of a suite, makes the one image OUT.png (stored the same way).\n\n"
            "suite options:\n"
            "  --model SPEC    SD 1.x checkpoint (.safetensors), 'empirical' (the built-in\n"
            "                  empirical model over the --db index) or 'empirical:INDEXDB'\n"
            "                  (default: the suite's \"model\")\n"
            "  --config JSON   SD architecture config (default: the suite's, else SD 1.x)\n"
            "  --vocab PATH    CLIP BPE vocabulary, bpe_simple_vocab_16e6.txt.gz (SD models)\n"
            "  --out DIR       output folder (default ./generations); images go to\n"
            "                  DIR/<suite name>-<run id hash>/<prompt id>-<sample>-<seed>.png\n"
            "  -n N            samples per prompt (overrides the suite; extra seeds follow the last)\n"
            "  -j, --jobs N    compute threads (default: all cores)\n"
            "  --precision P   products in fp32 (default) or bf16 (AVX512_BF16 CPUs)\n"
            "  --db PATH       database (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  --json          the summary as one JSON object on stdout (the rest on stderr)\n\n"
            "one-image options (as stable-diffusion.cpp's sd):\n"
            "  -m, --model SPEC         the model (as above)\n"
            "  -p, --prompt TEXT        the prompt (A1111 syntax: (word:1.3), [word], long prompts)\n"
            "  -n, --negative-prompt T  the negative prompt (default empty)\n"
            "  -s, --seed S             seed (default 42; 0..2^64-1)\n"
            "  --steps N                sampling steps (default 20)\n"
            "  --cfg-scale G            guidance scale (default 7)\n"
            "  --sampler, --sampling-method NAME\n"
            "                           euler, euler_a, heun, dpmpp_2m, ddim, ddpm or A1111's\n"
            "                           names (\"Euler a\", \"DPM++ 2M Karras\"); default euler_a\n"
            "  --schedule NAME          discrete, karras, exponential (A1111: Automatic, Karras, ...)\n"
            "  -W, --width W, -H, --height H   image size (default 512x512; with --init-img\n"
            "                           that image's size, down to a multiple of 8)\n"
            "  -i, --init-img F         img2img / inpainting source image\n"
            "  --strength S             img2img denoising strength (0, 1] (default 0.75)\n"
            "  --mask F                 inpainting mask: white = regenerate, black = keep\n"
            "  --lora F:W               merge a kohya LoRA/LoCon file at weight W\n"
            "  --rng R                  noise generator: philox (A1111 'NV', its GPU default;\n"
            "                           default), torch-cpu (A1111 'CPU', ComfyUI; sd's\n"
            "                           std_default), xoshiro\n"
            "  --ensd N                 A1111's eta noise seed delta (default 0)\n"
            "  -o, --output OUT.png     the image to write\n\n"
            "The suite format is described in README.md ('copyscope generate').\n");
}

enum { O_CONFIG = 256, O_VOCAB, O_DB, O_SEED_LONG, O_STEPS, O_CFG, O_SAMPLER, O_SCHEDULE, O_STRENGTH,
       O_MASK, O_LORA, O_RNG, O_ENSD, O_OUTDIR, O_PRECISION, O_JSON };

static const struct option opts[] = {
    {"model", required_argument, 0, 'm'},        {"config", required_argument, 0, O_CONFIG},
    {"json", no_argument, 0, O_JSON},
    {"vocab", required_argument, 0, O_VOCAB},    {"out", required_argument, 0, O_OUTDIR},
    {"jobs", required_argument, 0, 'j'},         {"db", required_argument, 0, O_DB},
    {"prompt", required_argument, 0, 'p'},       {"negative-prompt", required_argument, 0, 'n'},
    {"seed", required_argument, 0, 's'},         {"steps", required_argument, 0, O_STEPS},
    {"cfg-scale", required_argument, 0, O_CFG},  {"sampler", required_argument, 0, O_SAMPLER},
    {"sampling-method", required_argument, 0, O_SAMPLER}, {"schedule", required_argument, 0, O_SCHEDULE},
    {"width", required_argument, 0, 'W'},        {"height", required_argument, 0, 'H'},
    {"init-img", required_argument, 0, 'i'},     {"strength", required_argument, 0, O_STRENGTH},
    {"mask", required_argument, 0, O_MASK},      {"lora", required_argument, 0, O_LORA},
    {"rng", required_argument, 0, O_RNG},        {"ensd", required_argument, 0, O_ENSD},
    {"output", required_argument, 0, 'o'},       {"help", no_argument, 0, 'h'},
    {"precision", required_argument, 0, O_PRECISION},
    {0, 0, 0, 0}};

/* The one-image flags as given (validated into a suite below). */
typedef struct {
    const char *prompt, *neg, *seed, *steps, *cfg, *sampler, *schedule, *width, *height;
    const char *init, *strength, *mask, *lora, *rng, *ensd, *out;
} one_args;

static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    *out = strtoull(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !*s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* The command line as a one-prompt suite; NULL after printing the error. */
/* Long: each one-image flag parsed and checked in turn, then the one-prompt suite JSON built from them. */
static char *one_image_suite(const one_args *a, int *rc) {
    *rc = CLI_USAGE;
    unsigned long long seed = 42, ensd = 0;
    int steps = 20, W = 512, H = 512, has_w = 0, has_h = 0;
    double cfg = 7.0, strength = 0.75;
    if (a->seed && parse_u64(a->seed, &seed)) return cli_usage_error("generate: bad --seed '%s' (0..2^64-1)", a->seed), NULL;
    if (a->steps && parse_int(a->steps, 1, 1000, &steps))
        return cli_usage_error("generate: bad --steps '%s' (1..1000)", a->steps), NULL;
    if (a->cfg && parse_float(a->cfg, 0, 100, &cfg)) return cli_usage_error("generate: bad --cfg-scale '%s' (0..100)", a->cfg), NULL;
    if (a->width && (parse_int(a->width, 8, 4096, &W) || (has_w = 1, 0)))
        return cli_usage_error("generate: bad -W '%s' (8..4096)", a->width), NULL;
    if (a->height && (parse_int(a->height, 8, 4096, &H) || (has_h = 1, 0)))
        return cli_usage_error("generate: bad -H '%s' (8..4096)", a->height), NULL;
    if (a->strength && parse_float(a->strength, 1e-6, 1, &strength))
        return cli_usage_error("generate: bad --strength '%s' (0 < S <= 1)", a->strength), NULL;
    if (a->ensd && parse_u64(a->ensd, &ensd)) return cli_usage_error("generate: bad --ensd '%s'", a->ensd), NULL;
    cs_sampler_kind sk;
    cs_spacing sp;
    int has_sp;
    if (a->sampler && cs_sampler_parse_full(a->sampler, &sk, &sp, &has_sp))
        return cli_usage_error("generate: unknown --sampler '%s' (euler, euler_a, heun, dpmpp_2m, ddim, ddpm, "
                               "or A1111's names such as \"DPM++ 2M Karras\")", a->sampler), NULL;
    int sched = a->schedule ? cs_schedule_parse_any(a->schedule, &sp) : 0;
    if (sched < 0)
        return cli_usage_error("generate: unknown --schedule '%s' (discrete, karras, exponential; A1111: "
                               "Automatic, Uniform, Karras, Exponential)", a->schedule), NULL;
    if (sched == 1) sp = cs_sampler_a1111_default_spacing(a->sampler ? sk : CS_SAMPLER_EULER_A);
    cs_rng_kind rk = CS_RNG_PHILOX;
    if (a->rng && strcmp(a->rng, "std_default") && cs_rng_parse(a->rng, &rk))
        return cli_usage_error("generate: unknown --rng '%s' (philox, torch-cpu, xoshiro)", a->rng), NULL;
    if (a->rng && !strcmp(a->rng, "std_default")) rk = CS_RNG_TORCH_CPU; /* sd's name for torch's CPU stream */
    if (a->mask && !a->init) return cli_usage_error("generate: --mask needs --init-img"), NULL;
    if (a->strength && !a->init) return cli_usage_error("generate: --strength needs --init-img"), NULL;
    double lora_w = 1.0;
    char lora_path[4096] = "";
    if (a->lora) {
        /* F:W, the weight after the last colon; the path made absolute since
         * a suite's paths are relative to its folder */
        const char *c = strrchr(a->lora, ':');
        if (!c || c == a->lora || parse_float(c + 1, -100, 100, &lora_w))
            return cli_usage_error("generate: bad --lora '%s' (FILE:WEIGHT)", a->lora), NULL;
        char rel[4096];
        snprintf(rel, sizeof rel, "%.*s", (int)(c - a->lora), a->lora);
        if (!realpath(rel, lora_path)) return cli_usage_error("generate: --lora %s: no such file", rel), NULL;
    }
    cJSON *root = cJSON_CreateObject(), *arr, *it = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "name", "generate");
    if (*lora_path) {
        cJSON *lo = cJSON_CreateObject();
        cJSON_AddStringToObject(lo, "path", lora_path);
        cJSON_AddNumberToObject(lo, "weight", lora_w);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "loras"), lo);
    }
    if (a->init) {
        arr = cJSON_AddArrayToObject(root, "completions");
        cJSON_AddStringToObject(it, "ref", a->init);
        if (a->mask) cJSON_AddStringToObject(it, "mask", a->mask);
        else cJSON_AddNumberToObject(it, "strength", strength);
        if (a->mask && a->strength) cJSON_AddNumberToObject(it, "strength", strength);
    } else {
        arr = cJSON_AddArrayToObject(root, "prompts");
    }
    cJSON_AddItemToArray(arr, it);
    cJSON_AddStringToObject(it, "id", "image");
    cJSON_AddStringToObject(it, "text", a->prompt);
    if (a->neg) cJSON_AddStringToObject(it, "negative", a->neg);
    char sb[32];
    snprintf(sb, sizeof sb, "%llu", seed);
    cJSON_AddStringToObject(it, "seed", sb);
    cJSON_AddNumberToObject(it, "steps", steps);
    cJSON_AddNumberToObject(it, "guidance", cfg);
    cJSON_AddStringToObject(it, "sampler", cs_sampler_name(a->sampler ? sk : CS_SAMPLER_EULER_A));
    if (has_sp || a->schedule) cJSON_AddStringToObject(it, "schedule", cs_spacing_name(sp));
    if (a->init && !has_w && !has_h) { /* the source image's size, down to a multiple of 8 */
        cs_image im = {0};
        cs_err e = {0};
        if (!cs_image_load(&im, a->init, NULL, &e) && im.w >= 8 && im.h >= 8) {
            W = im.w / 8 * 8;
            H = im.h / 8 * 8;
            has_w = has_h = 1;
        } /* else generate names the file and the problem */
        cs_image_free(&im);
    }
    if (has_w || has_h || !a->init) {
        cJSON *sz = cJSON_AddArrayToObject(it, "size");
        cJSON_AddItemToArray(sz, cJSON_CreateNumber(W));
        cJSON_AddItemToArray(sz, cJSON_CreateNumber(H));
    }
    cJSON_AddStringToObject(it, "rng", cs_rng_name(rk));
    if (ensd) {
        snprintf(sb, sizeof sb, "%llu", ensd);
        cJSON_AddStringToObject(it, "ensd", sb);
    }
    char *j = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!j) fprintf(stderr, "copyscope: generate: out of memory\n");
    *rc = j ? CLI_OK : CLI_USAGE;
    return j;
}

void cli_generate_notes(const cs_generate_stats *st) {
    if (st->moved)
        printf("generate: %d image%s of run %lld found moved to %s (same bytes): recorded there\n", st->moved,
               st->moved == 1 ? "" : "s", (long long)st->run_id, st->out_dir);
    if (st->missing)
        printf("generate: %d image%s recorded for run %lld no longer there (e.g. %s): made again\n", st->missing,
               st->missing == 1 ? "" : "s", (long long)st->run_id, st->missing_example);
}

cJSON *cli_generate_json(const cs_generate_stats *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run_id", (double)st->run_id);
    cJSON_AddNumberToObject(o, "generated", st->generated);
    cJSON_AddNumberToObject(o, "already_there", st->skipped);
    cJSON_AddNumberToObject(o, "missing_made_again", st->missing);
    cJSON_AddNumberToObject(o, "found_moved", st->moved);
    cJSON_AddStringToObject(o, "out_dir", st->out_dir);
    cJSON_AddNumberToObject(o, "steps", (double)st->steps);
    cJSON_AddNumberToObject(o, "seconds", st->seconds);
    return o;
}

/* Long: option parsing and the one-image / suite usage checks of one command, then one library call. */
int cmd_generate(int argc, char **argv) {
    cs_generate_opts o = {0};
    one_args a = {0};
    const char *n_arg = NULL, *o_arg = NULL;
    int c, json = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:s:W:H:i:o:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case O_CONFIG: o.config = optarg; break;
        case O_VOCAB: o.vocab = optarg; break;
        case O_OUTDIR: o.out = optarg; break;
        case O_PRECISION:
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
                return cli_usage_error("generate: bad --precision '%s' (fp32 or bf16)", optarg);
            o.precision = optarg;
            break;
        case O_DB: o.db = optarg; break;
        case O_JSON: json = 1; break;
        case 'n': n_arg = optarg; break; /* samples (suite) or negative prompt (-p) */
        case 'o': o_arg = optarg; break; /* output folder (suite) or file (-p) */
        case 'p': a.prompt = optarg; break;
        case 's': a.seed = optarg; break;
        case O_STEPS: a.steps = optarg; break;
        case O_CFG: a.cfg = optarg; break;
        case O_SAMPLER: a.sampler = optarg; break;
        case O_SCHEDULE: a.schedule = optarg; break;
        case 'W': a.width = optarg; break;
        case 'H': a.height = optarg; break;
        case 'i': a.init = optarg; break;
        case O_STRENGTH: a.strength = optarg; break;
        case O_MASK: a.mask = optarg; break;
        case O_LORA: a.lora = optarg; break;
        case O_RNG: a.rng = optarg; break;
        case O_ENSD: a.ensd = optarg; break;
        case 'j':
            if ((o.threads = cli_parse_jobs(optarg)) < 0) return cli_usage_error("generate: bad -j '%s'", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("generate");
        }
    }
    char *suite_json = NULL;
    if (a.prompt) { /* one image */
        if (optind != argc) return cli_usage_error("generate: -p makes one image: no SUITE.json with it");
        if (!o.model) return cli_usage_error("generate: -p needs -m MODEL");
        if (!o_arg) return cli_usage_error("generate: -p needs -o OUT.png");
        if (o.out) return cli_usage_error("generate: --out DIR is for suites; give -o OUT.png");
        a.neg = n_arg;
        int rc;
        if (!(suite_json = one_image_suite(&a, &rc))) return rc;
        o.suite_json = suite_json;
        o.out_file = o_arg;
        o.mask_white_generates = 1;
    } else {
        const char *only = a.seed ? "--seed" : a.steps ? "--steps" : a.cfg ? "--cfg-scale" : a.sampler ? "--sampler"
                         : a.schedule ? "--schedule" : a.width ? "-W" : a.height ? "-H" : a.init ? "--init-img"
                         : a.strength ? "--strength" : a.mask ? "--mask" : a.lora ? "--lora" : a.rng ? "--rng"
                         : a.ensd ? "--ensd" : NULL;
        if (only) return cli_usage_error("generate: %s is a one-image flag: give -p PROMPT (suites set it in JSON)", only);
        if (n_arg) {
            char *end;
            o.samples = (int)strtol(n_arg, &end, 10);
            if (*end || o.samples <= 0 || o.samples > 100000)
                return cli_usage_error("generate: bad -n '%s' (1..100000)", n_arg);
        }
        if (o_arg) o.out = o_arg;
        if (optind != argc - 1) {
            return cli_usage_error("generate: give one SUITE.json (or -p PROMPT -m MODEL -o OUT.png)"), cli_usage_hint("generate");
        }
        o.suite = argv[optind];
    }
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
    if (json) cli_json_begin();
    if (o.suite) { /* its ref and mask files checked before any image is made */
        cs_suite suite;
        if (cs_suite_load(&suite, o.suite, &err)) return cli_fail(&err);
        int bad = cs_suite_check_refs(&suite, NULL, &err);
        cs_suite_free(&suite);
        if (bad) return cli_fail(&err);
    }
    if (cs_mpi_size() > 1 && o.out_file && cs_mpi_rank() > 0) { /* one image: rank 0 makes it */
        free(suite_json);
        return CLI_OK;
    }
    if (cs_mpi_size() > 1 && !o.out_file) { /* copyscope-mpi: each rank makes its part of the suite */
        o.part_k = cs_mpi_rank();
        o.part_n = cs_mpi_size();
        o.wait = cli_mpi_wait;
        o.progress = cs_mpi_rank() == 0;
    }
    int rc = cs_generate(&o, &st, &err);
    free(suite_json);
    if (o.part_n > 1) { /* the counts of every part (the first 64 ranks' each), rank 0 prints */
        enum { SHOWN = 64 };
        int64_t v[2 + SHOWN] = {rc ? 0 : st.generated, rc ? 0 : st.steps};
        if (o.part_k < SHOWN) v[2 + o.part_k] = v[0];
        cs_mpi_sum_i64(v, 2 + SHOWN);
        st.generated = (int)v[0];
        st.steps = v[1];
        if (o.part_k == 0 && !rc && o.part_n <= SHOWN) {
            printf("generate: images made per rank:");
            for (int r = 0; r < o.part_n; r++) printf(" %lld", (long long)v[2 + r]);
            printf("\n");
        }
        if (o.part_k > 0) return rc ? cli_fail(&err) : CLI_OK;
    }
    if (rc) return cli_fail(&err);
    cli_generate_notes(&st);
    if (o.out_file) printf("generate: run %lld: %s\n", (long long)st.run_id, o.out_file);
    else
        printf("generate: run %lld: %d image%s made, %d already there; %s\n", (long long)st.run_id,
               st.generated, st.generated == 1 ? "" : "s", st.skipped, st.out_dir);
    if (st.generated && st.seconds > 0)
        printf("generate: %lld steps in %.1f s (%.2f steps/s)\n", (long long)st.steps, st.seconds,
               (double)st.steps / st.seconds);
    return json ? cli_json_end(cli_generate_json(&st)) : CLI_OK;
}
