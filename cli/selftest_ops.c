/* selftest_ops.c — the network cases of a reference folder (sd-tiny,
 * sd2-tiny, sdxl-tiny, a diffusers copy): tokenizers, text encoders, SDXL
 * conditioning, UNet, denoiser, VAE. Each runs copyscope's own code on the
 * case's stored inputs and compares every stored output it produces. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/selftest.h"
#include "pipeline/schedule.h"

/* ---- helpers ----------------------------------------------------------------------- */

int st_need_sd(st_ctx *c, cs_err *err) {
    if (c->sd) return 0;
    return sd_load(&c->sd, c->model, c->config[0] ? c->config : NULL, err);
}

int st_need_tok(st_ctx *c, cs_err *err) {
    if (c->tok) return 0;
    if (!c->vocab) return cs_fail(err, CS_EUSAGE, "tokenizer case: --vocab FILE is required");
    if (clip_tokenizer_load(&c->tok, c->vocab, err) || clip_tokenizer_load(&c->tok2, c->vocab, err))
        return -1;
    clip_tokenizer_set_html_unescape(c->tok2, 1);
    return 0;
}

const float *st_case_get(const cs_safetensors *st, const char *name, size_t n, size_t *got,
                         cs_err *err) {
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
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

void st_add_check(st_result *r, const char *name, const float *out, const float *ref, size_t n,
                  double tol) {
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

int st_dim(const cs_safetensors *st, const char *name, int i) {
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    return t && i < t->ndim ? (int)t->shape[i] : 0;
}

static double tol_net(const st_ctx *c) { return TOL_NET * c->tol_scale; }

/* ids as int32 from a float case tensor [B,77] */
static int32_t *ids_of(const cs_safetensors *st, const char *name, int *B, cs_err *err) {
    size_t n;
    const float *f = st_case_get(st, name, 0, &n, err);
    if (!f) return NULL;
    if (n % 77) {
        cs_fail(err, CS_EFORMAT, "%s: %s: not [B, 77]", st->path, name);
        return NULL;
    }
    int32_t *ids = malloc(sizeof(int32_t) * n);
    if (!ids) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)f[i];
    *B = (int)(n / 77);
    return ids;
}

/* open_clip.tokenize pads with 0 after the end token */
static void pad_zero(int32_t *ids) {
    int after = 0;
    for (int i = 0; i < 77; i++) {
        if (after) ids[i] = 0;
        if (ids[i] == 49407) after = 1;
    }
}

/* ---- handlers ------------------------------------------------------------------------ */

static int run_tokenize(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                        cs_err *err) {
    if (st_need_tok(c, err) || st_need_sd(c, err)) return -1;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(params, "prompts");
    int n = cJSON_IsArray(prompts) ? cJSON_GetArraySize(prompts) : 0;
    if (n < 1) return cs_fail(err, CS_EFORMAT, "%s: params.prompts missing", file);
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int fam = sd_family(c->sd), xl = fam == SD_FAMILY_SDXL;
    /* SD 1.x / SDXL-L: HF tokenizer; SD 2.x / SDXL-G: open_clip.tokenize */
    const char *names[2] = {xl ? "ids_l" : "ids", "ids_g"};
    int rc = 0;
    for (int k = 0; k < 1 + xl && !rc; k++) {
        int oc = k == 1 || fam == SD_FAMILY_SD2;
        const float *ref = st_case_get(&st, names[k], (size_t)n * 77, NULL, err);
        float *ids = ref ? malloc(sizeof(float) * n * 77) : NULL;
        rc = ids ? 0 : -1;
        for (int i = 0; i < n && !rc; i++) {
            const cJSON *p = cJSON_GetArrayItem(prompts, i);
            int32_t v[77];
            if (!cJSON_IsString(p)) {
                rc = cs_fail(err, CS_EFORMAT, "%s: params.prompts[%d]: not a string", file, i);
            } else if (clip_tokenize(oc ? c->tok2 : c->tok, p->valuestring, v, err) < 0) {
                rc = -1;
            } else {
                if (oc) pad_zero(v);
                for (int j = 0; j < 77; j++) ids[i * 77 + j] = (float)v[j];
            }
        }
        if (!rc) st_add_check(r, names[k], ids, ref, (size_t)n * 77, 0.0); /* exact */
        free(ids);
    }
    cs_safetensors_close(&st);
    return rc;
}

/* SD 1.x (last_hidden_state) and SD 2.x (context): the family's context */
static int run_text_encoder(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                            cs_err *err) {
    (void)params;
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = 0, rc = -1;
    const char *oname = cs_safetensors_find(&st, "context") ? "context" : "last_hidden_state";
    int32_t *ids = ids_of(&st, "ids", &B, err);
    size_t n = (size_t)B * 77 * sd_context_dim(c->sd);
    const float *ref = ids ? st_case_get(&st, oname, n, NULL, err) : NULL;
    float *out = ref ? malloc(sizeof(float) * n) : NULL;
    if (out && !(rc = sd_text_encode(c->sd, ids, B, 1, out, err)))
        st_add_check(r, oname, out, ref, n, tol_net(c));
    free(ids);
    free(out);
    cs_safetensors_close(&st);
    return rc;
}

/* SDXL's towers one by one: every stored output */
static int run_tower(st_ctx *c, const char *file, int tower, st_result *r, cs_err *err) {
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    const char *o1 = tower ? "penultimate" : "hidden", *o2 = tower ? "last" : "last_hidden_state";
    int B = 0, rc = -1, D = st_dim(&st, o1, 2), depth = sd_text_layers(c->sd, tower);
    int E = tower ? st_dim(&st, "pooled", 1) : 0;
    int32_t *ids = ids_of(&st, tower ? "ids_g" : "ids_l", &B, err);
    size_t n = (size_t)B * 77 * D;
    const float *ref1 = ids ? st_case_get(&st, o1, n, NULL, err) : NULL;
    const float *ref2 = ref1 ? st_case_get(&st, o2, n, NULL, err) : NULL;
    const float *rp = ref2 && E ? st_case_get(&st, "pooled", (size_t)B * E, NULL, err) : NULL;
    float *out = malloc(sizeof(float) * (n + 1)), *pooled = malloc(sizeof(float) * (B * E + 1));
    if (ref2 && (!E || rp) && out && pooled &&
        !(rc = sd_text_tower(c->sd, tower, ids, B, depth - 1, 0, out, NULL, err))) {
        st_add_check(r, o1, out, ref1, n, tol_net(c));
        /* CLIP-L: last_hidden_state has the final LN; G's "last" has not */
        rc = sd_text_tower(c->sd, tower, ids, B, depth, !tower, out, E ? pooled : NULL, err);
        if (!rc) st_add_check(r, o2, out, ref2, n, tol_net(c));
        if (!rc && E) st_add_check(r, "pooled", pooled, rp, (size_t)B * E, tol_net(c));
    }
    free(ids);
    free(out);
    free(pooled);
    cs_safetensors_close(&st);
    return rc;
}

static int run_text_l(st_ctx *c, const char *file, const cJSON *p, st_result *r, cs_err *err) {
    (void)p;
    return run_tower(c, file, 0, r, err);
}

static int run_text_g(st_ctx *c, const char *file, const cJSON *p, st_result *r, cs_err *err) {
    (void)p;
    return run_tower(c, file, 1, r, err);
}

static int run_size_embed(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err) {
    (void)params, (void)c;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = st_dim(&st, "sizes", 0), rc = -1;
    const float *sizes = st_case_get(&st, "sizes", (size_t)B * 6, NULL, err);
    static const char *outs[3] = {"emb_original_size", "emb_crop_coords_top_left",
                                  "emb_target_size"};
    float *o = malloc(sizeof(float) * B * 512);
    if (sizes && o) {
        rc = 0;
        for (int k = 0; k < 3 && !rc; k++) {
            const float *ref = st_case_get(&st, outs[k], (size_t)B * 512, NULL, err);
            if (!ref) {
                rc = -1;
                break;
            }
            for (int b = 0; b < B; b++) {
                sd_size_embed(sizes[b * 6 + 2 * k], o + b * 512);
                sd_size_embed(sizes[b * 6 + 2 * k + 1], o + b * 512 + 256);
            }
            st_add_check(r, outs[k], o, ref, (size_t)B * 512, TOL_NET);
        }
    }
    free(o);
    cs_safetensors_close(&st);
    return rc;
}

static int run_conditioner(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                           cs_err *err) {
    if (st_need_sd(c, err)) return -1;
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(params, "force_zero");
    int zero = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, fz) zero |= cJSON_IsString(e) && !strcmp(e->valuestring, "txt");
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = 0, B2 = 0, rc = -1, D = sd_context_dim(c->sd), A = sd_adm_channels(c->sd);
    int E = sd_pooled_dim(c->sd);
    int32_t *il = ids_of(&st, "ids_l", &B, err), *ig = il ? ids_of(&st, "ids_g", &B2, err) : NULL;
    const float *sizes = ig ? st_case_get(&st, "sizes", (size_t)B * 6, NULL, err) : NULL;
    const float *rc_ = sizes ? st_case_get(&st, "crossattn", (size_t)B * 77 * D, NULL, err) : NULL;
    const float *rv = rc_ ? st_case_get(&st, "vector", (size_t)B * A, NULL, err) : NULL;
    float *ctx = malloc(sizeof(float) * B * 77 * D), *pooled = malloc(sizeof(float) * B * (E + 1));
    float *y = malloc(sizeof(float) * B * (A + 1));
    if (rv && ctx && pooled && y && B == B2 && !(rc = sd_text_encode_xl(c->sd, il, ig, B, 1, ctx, pooled, err))) {
        if (zero) memset(ctx, 0, sizeof(float) * B * 77 * D);
        for (int b = 0; b < B && !rc; b++)
            rc = sd_sdxl_vector(c->sd, zero ? NULL : pooled + (size_t)b * E, sizes + b * 6,
                                y + (size_t)b * A, err);
        if (!rc) {
            st_add_check(r, "crossattn", ctx, rc_, (size_t)B * 77 * D, tol_net(c));
            st_add_check(r, "vector", y, rv, (size_t)B * A, tol_net(c));
        }
    }
    free(il), free(ig), free(ctx), free(pooled), free(y);
    cs_safetensors_close(&st);
    return rc;
}

static int run_unet(st_ctx *c, const char *file, const cJSON *params, st_result *r, cs_err *err) {
    (void)params;
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = st_dim(&st, "x", 0), C = st_dim(&st, "x", 1), h = st_dim(&st, "x", 2),
        w = st_dim(&st, "x", 3), A = sd_adm_channels(c->sd);
    size_t n = (size_t)B * C * h * w;
    const char *oname = cs_safetensors_find(&st, "v") ? "v" : "eps";
    int rc = -1;
    const float *x = NULL, *t = NULL, *ctx = NULL, *ref = NULL, *y = NULL;
    if (B < 1 || C != sd_latent_channels(c->sd))
        cs_fail(err, CS_EFORMAT, "%s: x: expected [B, %d, h, w]", file, sd_latent_channels(c->sd));
    else if ((x = st_case_get(&st, "x", n, NULL, err)) &&
             (t = st_case_get(&st, "timesteps", B, NULL, err)) &&
             (ctx = st_case_get(&st, "context", (size_t)B * 77 * sd_context_dim(c->sd), NULL, err)) &&
             (!A || (y = st_case_get(&st, "y", (size_t)B * A, NULL, err))) &&
             (ref = st_case_get(&st, oname, n, NULL, err))) {
        float *o = malloc(sizeof(float) * n);
        if (o && !(rc = sd_unet(c->sd, x, t, ctx, y, B, h, w, o, err)))
            st_add_check(r, oname, o, ref, n, tol_net(c));
        free(o);
    }
    cs_safetensors_close(&st);
    return rc;
}

/* k-diffusion CompVisVDenoiser (SD 2.x) or sgm DiscreteDenoiser (SDXL: sigma
 * snapped to the training grid, integer index), no guidance. */
static int run_denoiser(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                        cs_err *err) {
    (void)params;
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = st_dim(&st, "x", 0), h = st_dim(&st, "x", 2), w = st_dim(&st, "x", 3);
    int C = sd_latent_channels(c->sd), A = sd_adm_channels(c->sd), rc = -1;
    size_t per = (size_t)C * h * w, n = B * per;
    int quant = cs_safetensors_find(&st, "sigma_quantized") != NULL, vpred = sd_prediction(c->sd) == SD_PRED_V;
    const float *x = st_case_get(&st, "x", n, NULL, err);
    const float *sg = x ? st_case_get(&st, "sigma", B, NULL, err) : NULL;
    const float *ctx = sg ? st_case_get(&st, "context", (size_t)B * 77 * sd_context_dim(c->sd), NULL, err) : NULL;
    const float *y = ctx && A ? st_case_get(&st, "y", (size_t)B * A, NULL, err) : NULL;
    const float *rd = ctx && (!A || y) ? st_case_get(&st, "denoised", n, NULL, err) : NULL;
    cs_schedule sch;
    cs_schedule_from_alphas(&sch, sd_alphas_cumprod(c->sd));
    float *xin = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n), *D = malloc(sizeof(float) * n);
    float t[64], sq[64], cin[64], cout[64], cskip[64];
    if (rd && xin && o && D && B <= 64) {
        for (int b = 0; b < B; b++) {
            float s = sg[b];
            if (quant) {
                int best = 0;
                for (int i = 1; i < CS_TRAIN_STEPS; i++)
                    if (fabsf(sch.sigmas[i] - s) < fabsf(sch.sigmas[best] - s)) best = i;
                s = sch.sigmas[best];
                t[b] = (float)best;
            } else {
                t[b] = cs_sigma_to_t(&sch, s);
            }
            sq[b] = s;
            cin[b] = 1.0f / sqrtf(s * s + 1.0f);
            cskip[b] = vpred ? 1.0f / (s * s + 1.0f) : 1.0f;
            cout[b] = vpred ? -s * cin[b] : -s;
            for (size_t i = 0; i < per; i++) xin[b * per + i] = x[b * per + i] * cin[b];
        }
        if (!(rc = sd_unet(c->sd, xin, t, ctx, y, B, h, w, o, err))) {
            for (int b = 0; b < B; b++)
                for (size_t i = 0; i < per; i++)
                    D[b * per + i] = x[b * per + i] * cskip[b] + o[b * per + i] * cout[b];
            st_add_check(r, "denoised", D, rd, n, tol_net(c));
            static const char *names[] = {"t", "timestep_idx", "sigma_quantized", "c_in", "c_out",
                                          "c_skip"};
            const float *vals[] = {t, t, sq, cin, cout, cskip};
            for (int k = 0; k < 6; k++)
                if (cs_safetensors_find(&st, names[k])) {
                    const float *ref = st_case_get(&st, names[k], B, NULL, err);
                    if (ref) st_add_check(r, names[k], vals[k], ref, B, 1e-5);
                }
            if (cs_safetensors_find(&st, "v")) {
                const float *rv = st_case_get(&st, "v", n, NULL, err);
                if (rv) st_add_check(r, "v", o, rv, n, tol_net(c));
            }
        }
    }
    free(xin), free(o), free(D);
    cs_safetensors_close(&st);
    return rc;
}

static int run_vae_decode(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err) {
    (void)params;
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = st_dim(&st, "z", 0), C = st_dim(&st, "z", 1), h = st_dim(&st, "z", 2), w = st_dim(&st, "z", 3);
    int f = sd_vae_factor(c->sd), rc = -1;
    size_t nz = (size_t)B * C * h * w, ni = (size_t)B * 3 * h * f * w * f;
    const float *z = NULL, *ref = NULL, *lat = NULL;
    if (B < 1 || C != sd_latent_channels(c->sd))
        cs_fail(err, CS_EFORMAT, "%s: z: expected [B, %d, h, w]", file, sd_latent_channels(c->sd));
    else if ((z = st_case_get(&st, "z", nz, NULL, err)) && (ref = st_case_get(&st, "image", ni, NULL, err))) {
        float *img = malloc(sizeof(float) * ni), *zz = malloc(sizeof(float) * nz);
        if (img && zz && !(rc = sd_vae_decode(c->sd, z, B, h, w, img, err)))
            st_add_check(r, "image", img, ref, ni, tol_net(c));
        /* the scale: latent / scale_factor = z */
        if (!rc && zz && cs_safetensors_find(&st, "latent") && (lat = st_case_get(&st, "latent", nz, NULL, err))) {
            for (size_t i = 0; i < nz; i++) zz[i] = lat[i] / sd_scale_factor(c->sd);
            st_add_check(r, "z=latent/scale", zz, z, nz, 1e-6);
        }
        free(img);
        free(zz);
    }
    cs_safetensors_close(&st);
    return rc;
}

static int run_vae_encode(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err) {
    (void)params;
    if (st_need_sd(c, err)) return -1;
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    int B = st_dim(&st, "image", 0), H = st_dim(&st, "image", 2), W = st_dim(&st, "image", 3);
    int f = sd_vae_factor(c->sd), L = sd_latent_channels(c->sd), rc = -1;
    size_t ni = (size_t)B * 3 * H * W, nl = f ? (size_t)B * L * (H / f) * (W / f) : 0;
    const float *img = NULL, *rm = NULL, *rl = NULL, *rsc = NULL;
    if (B < 1 || st_dim(&st, "image", 1) != 3)
        cs_fail(err, CS_EFORMAT, "%s: image: expected [B, 3, H, W]", file);
    else if ((img = st_case_get(&st, "image", ni, NULL, err)) &&
             (rm = st_case_get(&st, "mean", nl, NULL, err)) &&
             (rl = st_case_get(&st, "logvar", nl, NULL, err))) {
        float *mean = malloc(sizeof(float) * nl), *lv = malloc(sizeof(float) * nl);
        if (mean && lv && !(rc = sd_vae_encode(c->sd, img, B, H, W, mean, lv, err))) {
            rsc = cs_safetensors_find(&st, "latent_mode_scaled")
                      ? st_case_get(&st, "latent_mode_scaled", nl, NULL, err)
                      : NULL;
            st_add_check(r, "mean", mean, rm, nl, tol_net(c));
            st_add_check(r, "logvar", lv, rl, nl, tol_net(c));
            if (rsc) {
                for (size_t i = 0; i < nl; i++) mean[i] *= sd_scale_factor(c->sd);
                st_add_check(r, "latent_mode_scaled", mean, rsc, nl, tol_net(c));
            }
        }
        free(mean);
        free(lv);
    }
    cs_safetensors_close(&st);
    return rc;
}

static const struct {
    const char *op;
    st_handler run;
} ops[] = {
    {"tokenize", run_tokenize},     {"text_encoder", run_text_encoder},
    {"text_encoder_l", run_text_l}, {"text_encoder_g", run_text_g},
    {"size_embed", run_size_embed}, {"conditioner", run_conditioner},
    {"unet", run_unet},             {"denoiser", run_denoiser},
    {"vae_decode", run_vae_decode}, {"vae_encode", run_vae_encode},
};

st_handler st_find_op(const char *op) {
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!strcmp(ops[i].op, op)) return ops[i].run;
    return NULL;
}
