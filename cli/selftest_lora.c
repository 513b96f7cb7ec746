/* selftest_lora.c — a LoRA reference folder (../shared/refs/lora layout:
 * index.json with lora_file, expected_file, multipliers; expected.safetensors
 * with the base inputs and, per multiplier mM, unet_eps/mM,
 * te_last_hidden_state/mM, e2e_x_final/mM, e2e_image_u8/mM): the LoRA is
 * merged into the base model (--base) at each multiplier and the outputs are
 * recomputed. The e2e recipe is the base's txt2img_e2e case (its params). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/selftest.h"
#include "core/nn.h"
#include "pipeline/model.h"
#include "pipeline/sampler.h"

static void print_check(const char *mult, const st_check *k, int *n_ok, int *n_fail) {
    int pass = k->rel <= k->tol;
    printf("lora m=%-6s %-28s %11.3g %11.3g %9.2g  %s\n", mult, k->name, k->max_abs, k->rel,
           k->tol, pass ? "ok" : "FAIL");
    if (pass) (*n_ok)++;
    else (*n_fail)++;
}

/* the base's txt2img_e2e params (prompt, sampler, schedule, steps, cfg) */
static cJSON *e2e_params(const char *base, cs_err *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/cases/index.json", base);
    char *t = sd_read_text(p, 64u << 20, err);
    cJSON *root = t ? cJSON_Parse(t) : NULL, *out = NULL;
    free(t);
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(cs, "op");
        if (cJSON_IsString(op) && !strcmp(op->valuestring, "txt2img"))
            out = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cs, "params"), 1);
    }
    cJSON_Delete(root);
    if (!out) cs_fail(err, CS_EFORMAT, "%s: no txt2img case for the LoRA e2e recipe", p);
    return out;
}

static int run_e2e(const char *model, const char *config, const char *vocab, const cs_lora *lo,
                   const cJSON *p, const float *noise, int C, int h, int w, float *x, float *img,
                   cs_err *err) {
    cs_model_opts mo = {.config = config, .vocab = vocab, .loras = lo, .n_loras = 1};
    cs_model *m = NULL;
    cs_cond *cond = NULL, *unc = NULL;
    int rc = -1;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(p, "prompt");
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(p, "uncond_prompt");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(p, "sampler");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "sigma_schedule");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "steps");
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(p, "cfg_scale");
    cs_sample_opts o = {.steps = cJSON_IsNumber(st) ? st->valueint : 8,
                        .guidance = cJSON_IsNumber(cf) ? (float)cf->valuedouble : 7.5f,
                        .whitebox_k = 1};
    if (!cJSON_IsString(pr) || !cJSON_IsString(sa) || !cJSON_IsString(sp) ||
        cs_sampler_parse(sa->valuestring, &o.sampler) || cs_spacing_parse(sp->valuestring, &o.spacing))
        return cs_fail(err, CS_EFORMAT, "base txt2img params: prompt/sampler/sigma_schedule");
    if (cs_model_sd_open(&m, model, &mo, err)) return -1;
    if (m->channels != C) {
        cs_fail(err, CS_EFORMAT, "e2e_noise has %d channels, the model %d", C, m->channels);
    } else if (!m->cond_new(m, pr->valuestring, &cond, err) &&
               !m->cond_new(m, cJSON_IsString(un) ? un->valuestring : "", &unc, err)) {
        size_t n = (size_t)C * h * w;
        float *nb = malloc(sizeof(float) * n);
        if (nb) {
            memcpy(nb, noise, sizeof(float) * n);
            cs_noise_buffer b = {nb, n, 0};
            cs_noise src = cs_noise_from_buffer(&b);
            rc = cs_sample(m, &o, cond, unc, h, w, &src, NULL, x, NULL, err);
            if (!rc) rc = m->decode(m, x, 1, h, w, img, err);
        }
        free(nb);
    }
    if (cond) m->cond_free(m, cond);
    if (unc) m->cond_free(m, unc);
    cs_model_free(m);
    return rc;
}

/* The UNet on the stored (base) context and the text encoder, each checked against its
 * reference for this multiplier. Returns the UNet input's element count. */
static size_t check_nets(sd_model *sd, const cs_safetensors *st, const char *mult, st_result *r, cs_err *err) {
    char key[40];
    /* UNet on the stored (base) context */
    int B = st_dim(st, "x", 0), C = st_dim(st, "x", 1), h = st_dim(st, "x", 2), w = st_dim(st, "x", 3);
    size_t n = (size_t)B * C * h * w;
    snprintf(key, sizeof key, "unet_eps/m%s", mult);
    const float *x = st_case_get(st, "x", n, NULL, err), *t = st_case_get(st, "timesteps", B, NULL, err);
    const float *ctx = st_case_get(st, "context", (size_t)B * 77 * sd_context_dim(sd), NULL, err);
    const float *ref = st_case_get(st, key, n, NULL, err);
    float *o = malloc(sizeof(float) * (n + 1));
    if (x && t && ctx && ref && o && !sd_unet_eps(sd, x, t, ctx, B, h, w, o, err))
        st_add_check(r, key, o, ref, n, TOL_NET);
    else
        printf("lora m=%s: %s: FAIL: %s\n", mult, key, err->msg);
    free(o);
    /* text encoder */
    size_t ni;
    const float *idf = st_case_get(st, "ids", 0, &ni, err);
    snprintf(key, sizeof key, "te_last_hidden_state/m%s", mult);
    int Bt = (int)(ni / 77);
    size_t nt = (size_t)Bt * 77 * sd_context_dim(sd);
    ref = idf ? st_case_get(st, key, nt, NULL, err) : NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (ni + 1));
    o = malloc(sizeof(float) * (nt + 1));
    for (size_t i = 0; idf && ids && i < ni; i++) ids[i] = (int32_t)idf[i];
    if (ref && ids && o && !sd_text_encode(sd, ids, Bt, 1, o, err))
        st_add_check(r, key, o, ref, nt, TOL_NET);
    else
        printf("lora m=%s: %s: FAIL: %s\n", mult, key, err->msg);
    free(ids);
    free(o);
    return n;
}

/* End to end through the product's model and sampler: the final latent and the 8-bit image. */
static void check_e2e(const st_ctx *c, const cs_safetensors *st, const char *model, const char *cfg,
                      const char *lora, double mv, const char *mult, const cJSON *e2e, int f, size_t n,
                      st_result *r, int *n_fail, cs_err *err) {
    const float *noise = st_case_get(st, "e2e_noise", 0, &n, err);
    int nC = st_dim(st, "e2e_noise", 1), nh = st_dim(st, "e2e_noise", 2), nw = st_dim(st, "e2e_noise", 3);
    size_t nimg = (size_t)3 * nh * f * nw * f;
    float *xf = malloc(sizeof(float) * (n + 1)), *img = malloc(sizeof(float) * (nimg + 1));
    cs_lora cl = {lora, (float)mv};
    char kx[40], ki[40];
    snprintf(kx, sizeof kx, "e2e_x_final/m%s", mult);
    snprintf(ki, sizeof ki, "e2e_image_u8/m%s", mult);
    const float *rx = noise ? st_case_get(st, kx, n, NULL, err) : NULL;
    const float *ri = rx ? st_case_get(st, ki, nimg, NULL, err) : NULL;
    if (!e2e || !c->vocab) {
        printf("lora m=%s: e2e: FAIL: %s\n", mult, !c->vocab ? "--vocab FILE is required" : err->msg);
        (*n_fail)++;
    } else if (ri && xf && img &&
               !run_e2e(model, cfg[0] ? cfg : NULL, c->vocab, &cl, e2e, noise, nC, nh, nw, xf,
                        img, err)) {
        st_add_check(r, kx, xf, rx, n, TOL_LAT);
        double md = nn_u8_max_diff(img, ri, nimg);
        st_check *k = &r->c[r->n++];
        snprintf(k->name, sizeof k->name, "%s", ki);
        k->max_abs = md, k->rel = md / 255.0, k->tol = 1.0 / 255.0 + 1e-9;
    } else {
        printf("lora m=%s: e2e: FAIL: %s\n", mult, err->msg);
        (*n_fail)++;
    }
    free(xf);
    free(img);
}

int st_run_lora(st_ctx *c, const cJSON *index, const char *base, int verbose_fail, int *n_ok,
                int *n_fail) {
    (void)verbose_fail;
    cs_err err = {0};
    char lora[4200], expected[4200], basebuf[2048], cfg[2100] = "", model[2100];
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(index, "lora_file");
    const cJSON *ef = cJSON_GetObjectItemCaseSensitive(index, "expected_file");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(index, "multipliers");
    if (!base) { /* index "base_model": ".../<name>/model.safetensors" -> a sibling folder */
        const cJSON *bm = cJSON_GetObjectItemCaseSensitive(index, "base_model");
        const char *s = cJSON_IsString(bm) ? bm->valuestring : "";
        const char *e = strrchr(s, '/'), *b = e;
        while (b && b > s && b[-1] != '/') b--;
        if (!e || b == e) {
            printf("lora: FAIL: give the base model folder with --base DIR\n");
            (*n_fail)++;
            return -1;
        }
        snprintf(basebuf, sizeof basebuf, "%.1000s/../%.*s", c->refs, (int)(e - b) & 1023, b);
        base = basebuf;
    }
    snprintf(lora, sizeof lora, "%s/%s", c->refs, cJSON_IsString(lf) ? lf->valuestring : "");
    snprintf(expected, sizeof expected, "%s/%s", c->refs,
             cJSON_IsString(ef) ? ef->valuestring : "expected.safetensors");
    snprintf(model, sizeof model, "%.2048s/model.safetensors", base);
    snprintf(cfg, sizeof cfg, "%.2048s/config.json", base);
    FILE *cf = fopen(cfg, "rb");
    if (cf) fclose(cf);
    else cfg[0] = 0;
    printf("lora %s on %s\n", lora, model);
    cs_safetensors st;
    if (cs_safetensors_open(&st, expected, &err)) {
        printf("lora: FAIL: %s\n", err.msg);
        (*n_fail)++;
        return -1;
    }
    cJSON *e2e = e2e_params(base, &err);
    const cJSON *mj;
    cJSON_ArrayForEach(mj, ms) {
        double mv = mj->valuedouble;
        char mult[16];
        snprintf(mult, sizeof mult, "%.6g", mv);
        sd_lora_spec ls = {lora, (float)mv};
        sd_load_opts lo = {.config = cfg[0] ? cfg : NULL, .loras = &ls, .n_loras = 1};
        sd_model *sd = NULL;
        st_result r = {0};
        if (sd_load_ex(&sd, model, &lo, &err)) {
            printf("lora m=%s: FAIL: %s\n", mult, err.msg);
            (*n_fail)++;
            continue;
        }
        size_t n = check_nets(sd, &st, mult, &r, &err);
        int f = sd_vae_factor(sd);
        sd_free(sd);
        check_e2e(c, &st, model, cfg, lora, mv, mult, e2e, f, n, &r, n_fail, &err);
        for (int i = 0; i < r.n; i++) print_check(mult, &r.c[i], n_ok, n_fail);
    }
    cJSON_Delete(e2e);
    cs_safetensors_close(&st);
    return 0;
}
