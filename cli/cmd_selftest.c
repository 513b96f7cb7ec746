/* cmd_selftest.c — `copyscope selftest --refs DIR [--base DIR] [--vocab FILE]`:
 * runs every case of a reference folder and prints, per case and output,
 * the max absolute and relative error (rel = max|out-ref|/max|ref|) beside
 * the tolerance. Exits 1 when any output is above its tolerance or a case
 * cannot run. The folder's kind is read from its files:
 *   cases/index.json   a model's cases (sd-tiny, sd2-tiny, sdxl-tiny, or any
 *                      folder laid out like them): the weights named there,
 *                      config.json (if any) as an override;
 *   model_index.json   a diffusers folder: the cases of --cases DIR (default:
 *                      --base DIR's cases/), F16 weights at the README's
 *                      looser tolerance;
 *   index.json with "lora_file"  a LoRA and its merged outputs, on --base.
 *
 * Cases are dispatched on their "op": network ops in cli/selftest_ops.c,
 * sampler ops (schedule, kdiff_sampler, ddim, txt2img) in
 * pipeline/sampler_cases.c, sgm's SDXL sampler ops in pipeline/sgm_cases.c;
 * an op without a handler is reported as skipped. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/selftest.h"
#include "cli/selftest_sampler.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"

/* 16-bit weights: each F16 weight is rounded by up to 2^-11 = 4.9e-4, so a
 * network's output moves by rel ~1e-3 (sd-tiny-diffusers-f16/README.md); the
 * accepted rel is 2e-3 for networks (100 x the F32 2e-5) and for sampler
 * latents (20 x 1e-4); BF16 keeps 3 mantissa bits fewer (2^-8): 8 x that.
 * image_u8 keeps its 1 count. */
#define F16_NET_SCALE 100.0
#define F16_SAMPLER_SCALE 20.0
#define BF16_EXTRA 8.0

/* Sampler-side ops: pipeline/sampler_cases.c via cli/selftest_sampler.c. */
static int run_sampler(st_ctx *c, const char *op, const char *file, const cJSON *params,
                       st_result *r, cs_err *err) {
    char *pj = params ? cJSON_PrintUnformatted(params) : NULL;
    cs_case_report cr;
    int rc = selftest_sampler_case(c->model, c->config[0] ? c->config : NULL, c->vocab, file, op,
                                   pj, &cr, err);
    free(pj);
    if (rc) return -1;
    for (int i = 0; i < cr.n && r->n < ST_MAX_CHECKS; i++) {
        st_check *k = &r->c[r->n++];
        snprintf(k->name, sizeof k->name, "%s", cr.c[i].name);
        k->max_abs = NAN;
        k->rel = cr.c[i].rel;
        k->tol = cr.c[i].tol;
        if (c->f16 && strcmp(k->name, "image_u8"))
            k->tol *= F16_SAMPLER_SCALE * (c->f16 == 2 ? BF16_EXTRA : 1.0);
    }
    return 0;
}
#define SAMPLER_OP(fn, op)                                                                     \
    static int fn(st_ctx *c, const char *file, const cJSON *params, st_result *r, cs_err *err) { \
        return run_sampler(c, op, file, params, r, err);                                       \
    }
SAMPLER_OP(run_schedule, "schedule")
SAMPLER_OP(run_kdiff_sampler, "kdiff_sampler")
SAMPLER_OP(run_ddim, "ddim")
SAMPLER_OP(run_txt2img, "txt2img")
SAMPLER_OP(run_sgm_sampler, "sampler")

/* op -> handler: the network ops (selftest_ops.c), then the sampler ops. */
static const struct {
    const char *op;
    st_handler run;
} handlers[] = {
    {"schedule", run_schedule},
    {"kdiff_sampler", run_kdiff_sampler},
    {"ddim", run_ddim},
    {"txt2img", run_txt2img},
    {"sampler", run_sgm_sampler},
};

static st_handler find_handler(const char *op) {
    st_handler h = st_find_op(op);
    if (h) return h;
    for (size_t i = 0; i < sizeof handlers / sizeof *handlers; i++)
        if (!strcmp(handlers[i].op, op)) return handlers[i].run;
    return NULL;
}

/* ---- the command ----------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope selftest --refs DIR [--base DIR] [--cases DIR] [--vocab FILE]\n"
            "                          [--case NAME] [-j N]\n"
            "\n"
            "Runs the reference cases of DIR through copyscope's own tokenizers, text\n"
            "encoders, UNet, VAE and samplers, and prints per case and output the max\n"
            "absolute and relative error (rel = max|out-ref| / max|ref|) beside the\n"
            "tolerance. Exit status 1 when any is above. DIR's kind is read from its\n"
            "files: cases/index.json (a model's cases, e.g. ../shared/refs/sd2-tiny),\n"
            "model_index.json (a diffusers folder, run on --cases or --base's cases),\n"
            "index.json with \"lora_file\" (a LoRA, merged into --base).\n"
            "\n"
            "  --refs DIR     the reference folder\n"
            "  --base DIR     the base model folder (like ../shared/refs/sd-tiny) that\n"
            "                 LoRA cases run on and whose cases/ a diffusers copy runs\n"
            "  --cases DIR    the cases folder for a diffusers folder\n"
            "  --vocab FILE   CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz), for\n"
            "                 tokenizer and end-to-end cases\n"
            "  --case NAME    run only this case (repeatable)\n"
            "  -j N           threads (default: all cores)\n"
            "A reference-noise folder (torch_cpu/philox .safetensors, e.g.\n"
            "../shared/refs/rng) runs its generator, front-end and A1111 Euler a cases\n"
            "on --base (default DIR/../sd-tiny).\n");
}

static int exists(const char *dir, const char *file) {
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &sb) == 0;
}

static cJSON *read_json_file(const char *path, cs_err *err) {
    char *text = sd_read_text(path, 64u << 20, err);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) cs_fail(err, CS_EFORMAT, "%s: not valid JSON", path);
    return j;
}

/* 1 when the UNet weights (a diffusers folder's or a single file's) are F16,
 * 2 when BF16, else 0 */
static int weights_f16(const char *model) {
    char p[4200];
    cs_safetensors st;
    cs_err e = {0};
    struct stat sb;
    int dir = stat(model, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (dir) snprintf(p, sizeof p, "%.4000s/unet/diffusion_pytorch_model.safetensors", model);
    else snprintf(p, sizeof p, "%.4000s", model);
    if (cs_safetensors_open(&st, p, &e)) return 0;
    const cs_safetensors_tensor *t =
        cs_safetensors_find(&st, dir ? "conv_in.weight" : "model.diffusion_model.input_blocks.0.0.weight");
    int r = !t ? 0 : t->dtype == CS_DT_F16 ? 1 : t->dtype == CS_DT_BF16 ? 2 : 0;
    cs_safetensors_close(&st);
    return r;
}

/* Runs the cases listed in cases_dir/index.json on c's model. */
static int run_cases(st_ctx *c, const char *cases_dir, const cJSON *root, const char **only,
                     int n_only, int *n_ok, int *n_fail, int *n_skip) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    char path[8192];
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cs, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(cs, "op");
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(cs, "file");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(cs, "params");
        if (!cJSON_IsString(nm) || !cJSON_IsString(op) || !cJSON_IsString(fl)) {
            printf("(a case without name/op/file: skipped)\n");
            (*n_skip)++;
            continue;
        }
        if (n_only) {
            int want = 0;
            for (int i = 0; i < n_only; i++) want |= !strcmp(only[i], nm->valuestring);
            if (!want) continue;
        }
        st_handler h = find_handler(op->valuestring);
        if (!h) {
            printf("%-34s %-14s skipped: no handler for this op in this build\n", nm->valuestring,
                   op->valuestring);
            (*n_skip)++;
            continue;
        }
        /* "file" is relative to the folder holding cases/ */
        snprintf(path, sizeof path, "%s/../%s", cases_dir, fl->valuestring);
        st_result r = {0};
        cs_err e = {0};
        if (h(c, path, pr, &r, &e)) {
            printf("%-34s %-14s FAIL: %s\n", nm->valuestring, op->valuestring, e.msg);
            (*n_fail)++;
            continue;
        }
        int ok = 1;
        for (int i = 0; i < r.n; i++) {
            const st_check *k = &r.c[i];
            int pass = k->rel <= k->tol; /* NaN fails */
            ok &= pass;
            char ma[32];
            if (isnan(k->max_abs) && !isnan(k->rel)) snprintf(ma, sizeof ma, "-");
            else snprintf(ma, sizeof ma, "%.3g", k->max_abs);
            printf("%-34s %-14s %-20s %11s %11.3g %9.2g  %s\n", nm->valuestring, op->valuestring,
                   k->name, ma, k->rel, k->tol, pass ? "ok" : "FAIL");
        }
        if (ok && r.n > 0) (*n_ok)++;
        else (*n_fail)++;
    }
    return 0;
}

/* selftest's options: the context's refs and vocab, the --case filter, --base, --cases and -j.
 * Returns -1 to go on, else the exit code (help or a usage error). */
typedef struct {
    const char *only[64], *base, *cases_opt;
    int n_only, jobs;
} st_args;

static int parse_args(int argc, char **argv, st_ctx *c, st_args *a) {
    static const struct option opts[] = {
        {"refs", required_argument, 0, 'r'}, {"vocab", required_argument, 0, 'v'},
        {"case", required_argument, 0, 'c'}, {"db", required_argument, 0, 'd'},
        {"base", required_argument, 0, 'b'}, {"cases", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0},
    };
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "j:", opts, NULL)) != -1) {
        switch (o) {
        case 'r': c->refs = optarg; break;
        case 'v': c->vocab = optarg; break;
        case 'b': a->base = optarg; break;
        case 'C': a->cases_opt = optarg; break;
        case 'c':
            if (a->n_only == 64) return cli_usage_error("selftest: at most 64 --case options");
            a->only[a->n_only++] = optarg;
            break;
        case 'd': break; /* accepted for uniformity; selftest uses no database */
        case 'j':
            a->jobs = cli_parse_jobs(optarg);
            if (a->jobs < 0) return cli_usage_error("selftest: -j %s: not a thread count", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("selftest");
        }
    }
    if (optind < argc) return cli_usage_error("selftest: unexpected argument '%s'", argv[optind]);
    if (!c->refs) return cli_usage_error("selftest: --refs DIR is required");
    return -1;
}

/* Long: the three kinds of reference folder recognised in turn, then the shared case run. */
int cmd_selftest(int argc, char **argv) {
    st_ctx c = {0};
    c.tol_scale = 1.0;
    st_args a = {0};
    int prc = parse_args(argc, argv, &c, &a);
    if (prc >= 0) return prc;
    const char **only = a.only, *base = a.base, *cases_opt = a.cases_opt;
    int n_only = a.n_only, jobs = a.jobs;
    nn_set_threads(jobs);

    cs_err err = {0};
    if (selftest_is_rng_refs(c.refs)) { /* reference noise (../shared/refs/rng) */
        char sd_tiny[4200];
        snprintf(sd_tiny, sizeof sd_tiny, "%.4000s/../sd-tiny", c.refs);
        int f = selftest_rng(c.refs, base ? base : sd_tiny, c.vocab, &err);
        if (f < 0) return cli_fail(&err);
        return f ? CLI_FAIL : CLI_OK;
    }
    char path[8192], cases_dir[2048];
    cJSON *root = NULL;
    int n_ok = 0, n_fail = 0, n_skip = 0;
    if (exists(c.refs, "cases/index.json")) { /* a model with its cases */
        snprintf(cases_dir, sizeof cases_dir, "%s/cases", c.refs);
        snprintf(path, sizeof path, "%s/index.json", cases_dir);
        if (!(root = read_json_file(path, &err))) return cli_fail(&err);
        const cJSON *wj = cJSON_GetObjectItemCaseSensitive(root, "weights");
        const cJSON *cj = cJSON_GetObjectItemCaseSensitive(root, "config");
        snprintf(c.model, sizeof c.model, "%s/%s", c.refs,
                 cJSON_IsString(wj) ? wj->valuestring : "model.safetensors");
        const char *cf = cJSON_IsString(cj) ? cj->valuestring : "config.json";
        if (exists(c.refs, cf)) snprintf(c.config, sizeof c.config, "%s/%s", c.refs, cf);
    } else if (exists(c.refs, "model_index.json")) { /* a diffusers folder */
        if (cases_opt) snprintf(cases_dir, sizeof cases_dir, "%s", cases_opt);
        else if (base) snprintf(cases_dir, sizeof cases_dir, "%s/cases", base);
        else return cli_usage_error("selftest: %s is a diffusers folder: give the cases it must "
                                    "reproduce with --cases DIR or --base MODEL_DIR",
                                    c.refs);
        snprintf(path, sizeof path, "%s/index.json", cases_dir);
        if (!(root = read_json_file(path, &err))) return cli_fail(&err);
        snprintf(c.model, sizeof c.model, "%s", c.refs);
        c.f16 = weights_f16(c.refs);
        printf("diffusers folder %s%s, cases of %s\n", c.refs, c.f16 ? " (16-bit weights)" : "",
               cases_dir);
    } else if (exists(c.refs, "index.json")) {
        snprintf(path, sizeof path, "%s/index.json", c.refs);
        if (!(root = read_json_file(path, &err))) return cli_fail(&err);
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "lora_file"))) {
            cJSON_Delete(root);
            cs_fail(&err, CS_EFORMAT,
                    "%s: an index.json without \"lora_file\": not a reference folder this "
                    "build runs (cases/index.json, model_index.json, or a LoRA index)",
                    c.refs);
            return cli_fail(&err);
        }
        st_run_lora(&c, root, base, 1, &n_ok, &n_fail);
        cJSON_Delete(root);
        sd_free(c.sd);
        clip_tokenizer_free(c.tok);
        clip_tokenizer_free(c.tok2);
        printf("selftest: %d checks ok, %d failed\n", n_ok, n_fail);
        return n_fail ? CLI_FAIL : CLI_OK;
    } else {
        cs_fail(&err, CS_EFORMAT,
                "%s: not a reference folder (no cases/index.json, model_index.json or "
                "index.json)",
                c.refs);
        return cli_fail(&err);
    }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "cases"))) {
        cJSON_Delete(root);
        cs_fail(&err, CS_EFORMAT, "%s: not a case index (no \"cases\" array)", path);
        return cli_fail(&err);
    }
    if (!c.f16) c.f16 = weights_f16(c.model);
    if (c.f16) c.tol_scale = F16_NET_SCALE * (c.f16 == 2 ? BF16_EXTRA : 1.0);
    if (c.f16) printf("%s: %s weights: tolerances as the README's for 16-bit weights\n", c.model,
                      c.f16 == 2 ? "BF16" : "F16");
    printf("%-34s %-14s %-20s %11s %11s %9s\n", "case", "op", "output", "max-abs", "rel", "tol");
    run_cases(&c, cases_dir, root, only, n_only, &n_ok, &n_fail, &n_skip);
    cJSON_Delete(root);
    selftest_sampler_done();
    sd_free(c.sd);
    clip_tokenizer_free(c.tok);
    clip_tokenizer_free(c.tok2);
    printf("selftest: %d cases ok, %d failed, %d skipped\n", n_ok, n_fail, n_skip);
    return n_fail ? CLI_FAIL : CLI_OK;
}
