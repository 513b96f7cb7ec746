/* cmd_selftest.c — `copyscope selftest --refs DIR --vocab FILE`: runs every
 * case of a reference folder laid out like ../shared/refs/sd-tiny
 * (config.json, model.safetensors, cases/index.json) and prints, per case and
 * output, the max absolute and relative error (rel = max|out-ref|/max|ref|).
 * Exits 1 when any output is above its tolerance or a case cannot run.
 *
 * Cases are dispatched on their "op" through the handler table below; an op
 * without a handler is reported as skipped. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/selftest_sampler.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"

#define ST_MAX_CHECKS 16
#define TOL_NET 2e-5 /* text encoder / UNet / VAE, cases/README.md */

typedef struct {
    char name[48];  /* output tensor */
    double max_abs; /* NAN when the handler does not measure it */
    double rel;     /* max|out - ref| / max|ref| */
    double tol;     /* accepted rel */
} st_check;

typedef struct {
    int n;
    st_check c[ST_MAX_CHECKS];
} st_result;

/* What handlers share; the model and tokenizer are loaded on first use. */
typedef struct {
    const char *refs;  /* the reference folder */
    const char *vocab; /* --vocab, or NULL */
    char weights[4096], config[4096];
    sd_model *sd;
    clip_tokenizer *tok;
} st_ctx;

/* Runs one case: file = the case's .safetensors, params = its "params"
 * object (may be NULL). Returns 0 when it ran (r holds the checks), -1 with
 * err set when it could not. */
typedef int (*st_handler)(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err);

/* ---- helpers ----------------------------------------------------------------------- */

static int need_sd(st_ctx *c, cs_err *err) {
    if (c->sd) return 0;
    return sd_load(&c->sd, c->weights, c->config, err);
}

static int need_tok(st_ctx *c, cs_err *err) {
    if (c->tok) return 0;
    if (!c->vocab)
        return cs_fail(err, CS_EUSAGE, "tokenizer case: --vocab FILE is required");
    return clip_tokenizer_load(&c->tok, c->vocab, err);
}

/* A float32 tensor of the case file with exactly n elements (n = 0: any). */
static const float *case_get(const cs_safetensors *st, const char *name, size_t n, size_t *got,
                             cs_err *err) {
    const cs_st_tensor *t = cs_st_find(st, name);
    if (!t) {
        cs_fail(err, CS_EFORMAT, "%s: %s: missing", st->path, name);
        return NULL;
    }
    if (t->dtype != CS_DT_F32 || (n && (size_t)t->numel != n)) {
        cs_fail(err, CS_EFORMAT, "%s: %s: expected %zu float32 values", st->path, name, n);
        return NULL;
    }
    if (got) *got = (size_t)t->numel;
    return t->data;
}

static void add_check(st_result *r, const char *name, const float *out, const float *ref,
                      size_t n, double tol) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN sticks */
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    if (r->n >= ST_MAX_CHECKS) return;
    st_check *k = &r->c[r->n++];
    snprintf(k->name, sizeof k->name, "%s", name);
    k->max_abs = md;
    k->rel = mr > 0 ? md / mr : md;
    k->tol = tol;
}

static int dim(const cs_safetensors *st, const char *name, int i) {
    const cs_st_tensor *t = cs_st_find(st, name);
    return t && i < t->ndim ? (int)t->shape[i] : 0;
}

/* ---- handlers ------------------------------------------------------------------------ */

static int run_tokenize(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                        cs_err *err) {
    if (need_tok(c, err)) return -1;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(params, "prompts");
    int n = cJSON_IsArray(prompts) ? cJSON_GetArraySize(prompts) : 0;
    if (n < 1) return cs_fail(err, CS_EFORMAT, "%s: params.prompts missing", file);
    cs_safetensors st;
    if (cs_st_open(&st, file, err)) return -1;
    const float *ref = case_get(&st, "ids", (size_t)n * 77, NULL, err);
    float *ids = ref ? malloc(sizeof(float) * n * 77) : NULL;
    int rc = -1;
    if (ref && ids) {
        rc = 0;
        for (int i = 0; i < n && !rc; i++) {
            const cJSON *p = cJSON_GetArrayItem(prompts, i);
            int32_t v[77];
            if (!cJSON_IsString(p)) {
                rc = cs_fail(err, CS_EFORMAT, "%s: params.prompts[%d]: not a string", file, i);
            } else if (clip_tokenize(c->tok, p->valuestring, v, err) < 0) {
                rc = -1;
            } else {
                for (int j = 0; j < 77; j++) ids[i * 77 + j] = (float)v[j];
            }
        }
        if (!rc) add_check(r, "ids", ids, ref, (size_t)n * 77, 0.0); /* exact */
    }
    free(ids);
    cs_st_close(&st);
    return rc;
}

static int run_text_encoder(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                            cs_err *err) {
    (void)params;
    if (need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_st_open(&st, file, err)) return -1;
    size_t nids, nref;
    const float *idf = case_get(&st, "ids", 0, &nids, err);
    const float *ref = idf ? case_get(&st, "last_hidden_state", 0, &nref, err) : NULL;
    int rc = -1, B = (int)(nids / 77);
    if (ref && nids % 77 == 0 && nref == (size_t)B * 77 * sd_context_dim(c->sd)) {
        int32_t *ids = malloc(sizeof(int32_t) * nids);
        float *out = malloc(sizeof(float) * nref);
        if (ids && out) {
            for (size_t i = 0; i < nids; i++) ids[i] = (int32_t)idf[i];
            rc = sd_text_encode(c->sd, ids, B, 1, out, err);
            if (!rc) add_check(r, "last_hidden_state", out, ref, nref, TOL_NET);
        }
        free(ids);
        free(out);
    } else if (ref) {
        cs_fail(err, CS_EFORMAT, "%s: ids/last_hidden_state shapes do not match the model", file);
    }
    cs_st_close(&st);
    return rc;
}

static int run_unet(st_ctx *c, const char *file, const cJSON *params, st_result *r, cs_err *err) {
    (void)params;
    if (need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_st_open(&st, file, err)) return -1;
    int B = dim(&st, "x", 0), C = dim(&st, "x", 1), h = dim(&st, "x", 2), w = dim(&st, "x", 3);
    size_t n = (size_t)B * C * h * w;
    int rc = -1;
    const float *x = NULL, *t = NULL, *ctx = NULL, *ref = NULL;
    if (B < 1 || C != sd_latent_channels(c->sd))
        cs_fail(err, CS_EFORMAT, "%s: x: expected [B, %d, h, w]", file, sd_latent_channels(c->sd));
    else if ((x = case_get(&st, "x", n, NULL, err)) && (t = case_get(&st, "timesteps", B, NULL, err)) &&
             (ctx = case_get(&st, "context", (size_t)B * 77 * sd_context_dim(c->sd), NULL, err)) &&
             (ref = case_get(&st, "eps", n, NULL, err))) {
        float *eps = malloc(sizeof(float) * n);
        if (eps && !(rc = sd_unet_eps(c->sd, x, t, ctx, B, h, w, eps, err)))
            add_check(r, "eps", eps, ref, n, TOL_NET);
        free(eps);
    }
    cs_st_close(&st);
    return rc;
}

static int run_vae_decode(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err) {
    (void)params;
    if (need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_st_open(&st, file, err)) return -1;
    int B = dim(&st, "z", 0), C = dim(&st, "z", 1), h = dim(&st, "z", 2), w = dim(&st, "z", 3);
    int f = sd_vae_factor(c->sd), rc = -1;
    size_t nz = (size_t)B * C * h * w, ni = (size_t)B * 3 * h * f * w * f;
    const float *z = NULL, *ref = NULL;
    if (B < 1 || C != sd_latent_channels(c->sd))
        cs_fail(err, CS_EFORMAT, "%s: z: expected [B, %d, h, w]", file, sd_latent_channels(c->sd));
    else if ((z = case_get(&st, "z", nz, NULL, err)) && (ref = case_get(&st, "image", ni, NULL, err))) {
        float *img = malloc(sizeof(float) * ni);
        if (img && !(rc = sd_vae_decode(c->sd, z, B, h, w, img, err)))
            add_check(r, "image", img, ref, ni, TOL_NET);
        free(img);
    }
    cs_st_close(&st);
    return rc;
}

static int run_vae_encode(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err) {
    (void)params;
    if (need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_st_open(&st, file, err)) return -1;
    int B = dim(&st, "image", 0), H = dim(&st, "image", 2), W = dim(&st, "image", 3);
    int f = sd_vae_factor(c->sd), L = sd_latent_channels(c->sd), rc = -1;
    size_t ni = (size_t)B * 3 * H * W, nl = f ? (size_t)B * L * (H / f) * (W / f) : 0;
    const float *img = NULL, *rm = NULL, *rl = NULL, *rmom = NULL, *rsc = NULL;
    if (B < 1 || dim(&st, "image", 1) != 3)
        cs_fail(err, CS_EFORMAT, "%s: image: expected [B, 3, H, W]", file);
    else if ((img = case_get(&st, "image", ni, NULL, err)) &&
             (rm = case_get(&st, "mean", nl, NULL, err)) &&
             (rl = case_get(&st, "logvar", nl, NULL, err))) {
        float *mean = malloc(sizeof(float) * nl), *lv = malloc(sizeof(float) * nl);
        if (mean && lv && !(rc = sd_vae_encode(c->sd, img, B, H, W, mean, lv, err))) {
            rmom = cs_st_find(&st, "moments") ? case_get(&st, "moments", 2 * nl, NULL, err) : NULL;
            rsc = cs_st_find(&st, "latent_mode_scaled")
                      ? case_get(&st, "latent_mode_scaled", nl, NULL, err)
                      : NULL;
            add_check(r, "mean", mean, rm, nl, TOL_NET);
            add_check(r, "logvar", lv, rl, nl, TOL_NET);
            if (rsc) {
                for (size_t i = 0; i < nl; i++) mean[i] *= SD_SCALE_FACTOR;
                add_check(r, "latent_mode_scaled", mean, rsc, nl, TOL_NET);
            }
            (void)rmom; /* moments = [mean, unclamped logvar]: covered by the two above */
        }
        free(mean);
        free(lv);
    }
    cs_st_close(&st);
    return rc;
}

/* Sampler-side ops: pipeline/sampler_cases.c via cli/selftest_sampler.c. */
static int run_sampler(st_ctx *c, const char *op, const char *file, const cJSON *params,
                       st_result *r, cs_err *err) {
    char *pj = params ? cJSON_PrintUnformatted(params) : NULL;
    cs_case_report cr;
    int rc = selftest_sampler_case(c->weights, c->config, c->vocab, file, op, pj, &cr, err);
    free(pj);
    if (rc) return -1;
    for (int i = 0; i < cr.n && r->n < ST_MAX_CHECKS; i++) {
        st_check *k = &r->c[r->n++];
        snprintf(k->name, sizeof k->name, "%s", cr.c[i].name);
        k->max_abs = NAN;
        k->rel = cr.c[i].rel;
        k->tol = cr.c[i].tol;
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

/* op -> handler. Sampler-side ops ("schedule", "kdiff_sampler", "ddim",
 * "txt2img") are added here by their owner. */
static const struct {
    const char *op;
    st_handler run;
} handlers[] = {
    {"tokenize", run_tokenize},
    {"text_encoder", run_text_encoder},
    {"unet", run_unet},
    {"vae_decode", run_vae_decode},
    {"vae_encode", run_vae_encode},
    {"schedule", run_schedule},
    {"kdiff_sampler", run_kdiff_sampler},
    {"ddim", run_ddim},
    {"txt2img", run_txt2img},
};

static st_handler find_handler(const char *op) {
    for (size_t i = 0; i < sizeof handlers / sizeof *handlers; i++)
        if (!strcmp(handlers[i].op, op)) return handlers[i].run;
    return NULL;
}

/* ---- the command ----------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope selftest --refs DIR [--vocab FILE] [--case NAME] [--base DIR] [-j N]\n"
            "\n"
            "Runs the reference cases of DIR (config.json, model.safetensors,\n"
            "cases/index.json, e.g. ../shared/refs/sd-tiny) through copyscope's own\n"
            "tokenizer, text encoder, UNet, VAE and samplers, and prints per case\n"
            "and output the max absolute and relative error (rel = max|out-ref| /\n"
            "max|ref|) beside the tolerance. Exit status 1 when any is above.\n"
            "\n"
            "  --refs DIR     the reference folder\n"
            "  --vocab FILE   CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz), for\n"
            "                 tokenizer and end-to-end cases\n"
            "  --case NAME    run only this case (repeatable)\n"
            "  --base DIR     the SD model the rng cases run on (default DIR/../sd-tiny)\n"
            "  -j N           threads (default: all cores)\n"
            "A reference-noise folder (torch_cpu/philox .safetensors, e.g.\n"
            "../shared/refs/rng) runs its generator, front-end and A1111 Euler a cases.\n");
}

static char *read_text(const char *path, cs_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_fail(err, CS_EIO, "%s: cannot open", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64l << 20)) {
        fclose(f);
        cs_fail(err, CS_ELIMIT, "%s: not a readable file under 64 MB", path);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        cs_fail(err, CS_EIO, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    return buf;
}

int cmd_selftest(int argc, char **argv) {
    static const struct option opts[] = {
        {"refs", required_argument, 0, 'r'}, {"vocab", required_argument, 0, 'v'},
        {"case", required_argument, 0, 'c'}, {"db", required_argument, 0, 'd'},
        {"base", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0},
    };
    st_ctx c = {0};
    const char *only[64];
    int n_only = 0, jobs = 0;
    const char *base = NULL;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "j:", opts, NULL)) != -1) {
        switch (o) {
        case 'r': c.refs = optarg; break;
        case 'v': c.vocab = optarg; break;
        case 'c':
            if (n_only == 64) return cli_usage_error("selftest: at most 64 --case options");
            only[n_only++] = optarg;
            break;
        case 'd': break; /* accepted for uniformity; selftest uses no database */
        case 'b': base = optarg; break;
        case 'j':
            jobs = cli_parse_jobs(optarg);
            if (jobs < 0) return cli_usage_error("selftest: -j %s: not a thread count", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("selftest: unexpected argument '%s'", argv[optind]);
    if (!c.refs) return cli_usage_error("selftest: --refs DIR is required");
    nn_set_threads(jobs);

    cs_err err = {0};
    char path[4096];
    if (selftest_is_rng_refs(c.refs)) { /* reference noise (../shared/refs/rng) */
        snprintf(path, sizeof path, "%s/../sd-tiny", c.refs);
        int f = selftest_rng(c.refs, base ? base : path, c.vocab, &err);
        if (f < 0) return cli_fail(&err);
        return f ? CLI_FAIL : CLI_OK;
    }
    snprintf(path, sizeof path, "%s/cases/index.json", c.refs);
    char *text = read_text(path, &err);
    if (!text) return cli_fail(&err);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *cases = root ? cJSON_GetObjectItemCaseSensitive(root, "cases") : NULL;
    if (!cJSON_IsArray(cases)) {
        cJSON_Delete(root);
        cs_fail(&err, CS_EFORMAT, "%s: not a case index (no \"cases\" array)", path);
        return cli_fail(&err);
    }
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(root, "weights");
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(root, "config");
    snprintf(c.weights, sizeof c.weights, "%s/%s", c.refs,
             cJSON_IsString(wj) ? wj->valuestring : "model.safetensors");
    snprintf(c.config, sizeof c.config, "%s/%s", c.refs,
             cJSON_IsString(cj) ? cj->valuestring : "config.json");

    int n_ok = 0, n_fail = 0, n_skip = 0;
    printf("%-34s %-14s %-20s %11s %11s %9s\n", "case", "op", "output", "max-abs", "rel", "tol");
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cs, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(cs, "op");
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(cs, "file");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(cs, "params");
        if (!cJSON_IsString(nm) || !cJSON_IsString(op) || !cJSON_IsString(fl)) {
            printf("(a case without name/op/file: skipped)\n");
            n_skip++;
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
            n_skip++;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", c.refs, fl->valuestring);
        st_result r = {0};
        cs_err e = {0};
        if (h(&c, path, pr, &r, &e)) {
            printf("%-34s %-14s FAIL: %s\n", nm->valuestring, op->valuestring, e.msg);
            n_fail++;
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
        if (ok && r.n > 0) n_ok++;
        else n_fail++;
    }
    cJSON_Delete(root);
    selftest_sampler_done();
    sd_free(c.sd);
    clip_tokenizer_free(c.tok);
    printf("selftest: %d cases ok, %d failed, %d skipped\n", n_ok, n_fail, n_skip);
    return n_fail ? CLI_FAIL : CLI_OK;
}
