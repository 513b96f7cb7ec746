/* sgm_cases.c — see sgm_cases.h. Every sgm formula is written out here
 * (float32 as torch computes it) so the cases test copyscope's SDXL model
 * under the reference's own sampling conventions. */
#include "pipeline/sgm_cases.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "core/safetensors.h"
#include "pipeline/schedule.h"

static void add(cs_case_report *r, const char *name, double rel, double tol) {
    if (r->n >= CS_CASE_MAX_CHECKS) return;
    cs_case_check *c = &r->c[r->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->rel = rel;
    c->tol = tol;
}

static const float *get(const cs_safetensors *st, const char *name, size_t n, cs_err *err) {
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    if (!t || t->dtype != CS_DT_F32 || (n && (size_t)t->numel != n)) {
        cs_fail(err, CS_EFORMAT, "%s: %s: missing or not %zu float32 values", st->path, name, n);
        return NULL;
    }
    return t->data;
}

/* LegacyDDPMDiscretization: float64 alphas_cumprod, sigmas of the timesteps
 * int(linspace(999, 0, n, endpoint=False)), descending, then 0. */
static void sigmas_legacy(int n, float *out) {
    double ac[CS_TRAIN_STEPS], a = sqrt(0.00085), b = sqrt(0.012), step = (b - a) / 999, prod = 1;
    for (int i = 0; i < CS_TRAIN_STEPS; i++) {
        double v = i < 500 ? a + step * i : b - step * (999 - i); /* torch.linspace */
        prod *= 1.0 - v * v;
        ac[i] = prod;
    }
    for (int i = 0; i < n; i++) {
        int t = (int)(999.0 - 999.0 * i / n); /* np.linspace(999, 0, n, endpoint=False) */
        out[i] = (float)sqrt((1 - ac[t]) / ac[t]);
    }
    out[n] = 0;
}

/* EDMDiscretization(sigma_min, sigma_max, rho) in float32, then 0 */
static void sigmas_edm(int n, float smin, float smax, float rho, float *out) {
    float lo = (float)pow(smin, 1.0 / rho), hi = (float)pow(smax, 1.0 / rho);
    for (int i = 0; i < n; i++) {
        float ramp = n > 1 ? (float)i / (float)(n - 1) : 0.f;
        out[i] = powf(hi + ramp * (lo - hi), rho);
    }
    out[n] = 0;
}

static int quantize(const cs_schedule *s, float sigma) {
    int best = 0;
    for (int i = 1; i < CS_TRAIN_STEPS; i++)
        if (fabsf(s->sigmas[i] - sigma) < fabsf(s->sigmas[best] - sigma)) best = i;
    return best;
}

static int run_schedule(const char *file, cs_case_report *r, cs_err *err) {
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    cs_schedule s;
    cs_schedule_sd(&s);
    int rc = -1;
    const float *ac = get(&st, "alphas_cumprod", 1000, err), *sg = ac ? get(&st, "sigmas", 1000, err) : NULL;
    const float *sl = sg ? get(&st, "sigmas_legacy", 9, err) : NULL;
    const float *sk = sl ? get(&st, "sigmas_karras", 9, err) : NULL;
    if (sk) {
        add(r, "alphas_cumprod", nn_rel_err(s.alphas_cumprod, ac, 1000), 1e-6);
        add(r, "sigmas", nn_rel_err(s.sigmas, sg, 1000), 1e-6);
        float o[9], q[8], idx[8], cin[8];
        static const char *names[2][4] = {
            {"sigmas_legacy", "sigmas_quantized_legacy", "timestep_idx_legacy", "c_in_legacy"},
            {"sigmas_karras", "sigmas_quantized_karras", "timestep_idx_karras", "c_in_karras"}};
        rc = 0;
        for (int k = 0; k < 2 && !rc; k++) {
            if (k == 0) sigmas_legacy(8, o);
            else sigmas_edm(8, 0.0292f, 14.6146f, 7.0f, o);
            add(r, names[k][0], nn_rel_err(o, k ? sk : sl, 9), 1e-5);
            for (int i = 0; i < 8; i++) {
                int t = quantize(&s, o[i]);
                q[i] = s.sigmas[t], idx[i] = (float)t, cin[i] = 1.0f / sqrtf(q[i] * q[i] + 1.0f);
            }
            const float *rq = get(&st, names[k][1], 8, err), *ri = rq ? get(&st, names[k][2], 8, err) : NULL;
            const float *rci = ri ? get(&st, names[k][3], 8, err) : NULL;
            if (!rci) {
                rc = -1;
                break;
            }
            add(r, names[k][1], nn_rel_err(q, rq, 8), 1e-5);
            add(r, names[k][2], nn_rel_err(idx, ri, 8), 0);
            add(r, names[k][3], nn_rel_err(cin, rci, 8), 1e-5);
        }
    }
    cs_safetensors_close(&st);
    return rc;
}

/* CFG-combined D at sigma for [uc, c] */
static int denoise(cs_model *m, cs_cond **conds, const float *x, float sigma, float g, int h, int w,
                   float *D, float *xb, float *ob, cs_err *err) {
    size_t n = (size_t)m->channels * h * w;
    memcpy(xb, x, sizeof(float) * n);
    memcpy(xb + n, x, sizeof(float) * n);
    if (cs_model_denoise(m, xb, sigma, conds, 2, h, w, ob, NULL, err)) return -1;
    for (size_t i = 0; i < n; i++) D[i] = ob[i] + g * (ob[n + i] - ob[i]);
    return 0;
}

enum { SGM_EULER, SGM_EULER_A, SGM_DPMPP_2M };

/* sgm's samplers over sigmas[steps+1]; xs [(steps+1) n], ds [steps n] */
static int sgm_sample(cs_model *m, int kind, const float *sig, int steps, float g, cs_cond **conds,
                      const float *noise, const float *noise_steps, int h, int w, float *xs,
                      float *ds, cs_err *err) {
    size_t n = (size_t)m->channels * h * w;
    float *x = xs, *xb = malloc(sizeof(float) * 2 * n), *ob = malloc(sizeof(float) * 2 * n);
    int rc = -1;
    if (!xb || !ob) {
        cs_fail(err, CS_ENOMEM, "sgm sampler: out of memory");
        goto out;
    }
    float s0 = sqrtf(1.0f + sig[0] * sig[0]);
    for (size_t i = 0; i < n; i++) x[i] = noise[i] * s0;
    for (int k = 0; k < steps; k++) {
        float s = sig[k], sn = sig[k + 1], *D = ds + k * n, *xn = xs + (k + 1) * n;
        const float *xc = xs + k * n;
        if (denoise(m, conds, xc, s, g, h, w, D, xb, ob, err)) goto out;
        if (kind == SGM_EULER) {
            for (size_t i = 0; i < n; i++) xn[i] = xc[i] + (sn - s) * ((xc[i] - D[i]) / s);
        } else if (kind == SGM_EULER_A) {
            float up = fminf(sn, sqrtf(sn * sn * (s * s - sn * sn) / (s * s)));
            float down = sqrtf(sn * sn - up * up);
            const float *z = noise_steps + k * n; /* drawn on every step */
            for (size_t i = 0; i < n; i++) {
                float v = xc[i] + (down - s) * ((xc[i] - D[i]) / s);
                xn[i] = sn > 0 ? v + z[i] * up : v;
            }
        } else {
            float t = -logf(s), tn = -logf(sn), hh = tn - t;
            float m1 = expf(-tn) / expf(-t), m2 = expm1f(-hh);
            if (k == 0 || !(sn > 0)) {
                for (size_t i = 0; i < n; i++) xn[i] = m1 * xc[i] - m2 * D[i];
            } else {
                float r = (t - -logf(sig[k - 1])) / hh, m3 = 1 + 1 / (2 * r), m4 = 1 / (2 * r);
                const float *Dp = ds + (k - 1) * n;
                for (size_t i = 0; i < n; i++) xn[i] = m1 * xc[i] - m2 * (m3 * D[i] - m4 * Dp[i]);
            }
        }
    }
    rc = 0;
out:
    free(xb);
    free(ob);
    return rc;
}

static int parse_kind(const char *s, int *k) {
    if (!strcmp(s, "EulerEDMSampler")) *k = SGM_EULER;
    else if (!strcmp(s, "EulerAncestralSampler")) *k = SGM_EULER_A;
    else if (!strcmp(s, "DPMPP2MSampler")) *k = SGM_DPMPP_2M;
    else return -1;
    return 0;
}

/* Long: one sgm reference case end to end (read its arrays, sample, check each output), one cleanup. */
static int run_sampling(cs_model *m, const char *file, int t2i, const cJSON *p, cs_case_report *r,
                        cs_err *err) {
    if (!m || !m->quantize_t)
        return cs_fail(err, CS_EUSAGE, "%s: needs the SDXL model with quantize_t", file);
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(p, "sampler");
    const cJSON *di = cJSON_GetObjectItemCaseSensitive(p, "discretization");
    const cJSON *stp = cJSON_GetObjectItemCaseSensitive(p, "steps");
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(p, "cfg_scale");
    int kind, steps = cJSON_IsNumber(stp) ? stp->valueint : 0;
    if (!cJSON_IsString(sa) || parse_kind(sa->valuestring, &kind) || !cJSON_IsString(di) ||
        steps < 1 || steps > 1000 || !cJSON_IsNumber(cf))
        return cs_fail(err, CS_EFORMAT, "%s: params: sampler/discretization/steps/cfg_scale", file);
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    const cs_safetensors_tensor *nt = cs_safetensors_find(&st, "noise");
    int rc = -1, C = nt && nt->ndim == 4 ? (int)nt->shape[1] : 0;
    int h = C ? (int)nt->shape[2] : 0, w = C ? (int)nt->shape[3] : 0;
    size_t n = (size_t)C * h * w;
    float *sig = malloc(sizeof(float) * (steps + 1)), *xs = malloc(sizeof(float) * n * (steps + 1));
    float *ds = malloc(sizeof(float) * n * steps), *img = NULL;
    cs_cond *conds[2] = {0};
    const float *noise = C == m->channels ? get(&st, "noise", n, err) : NULL;
    if (!noise || !sig || !xs || !ds) {
        if (noise) cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
        else if (C != m->channels) cs_fail(err, CS_EFORMAT, "%s: noise: not [1, %d, h, w]", file, m->channels);
        goto out;
    }
    if (!strcmp(di->valuestring, "legacy")) sigmas_legacy(steps, sig);
    else sigmas_edm(steps, 0.0292f, 14.6146f, 7.0f, sig); /* the cases' EDM (rho 7) */
    if (t2i) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(p, "prompt");
        const cJSON *np = cJSON_GetObjectItemCaseSensitive(p, "negative_prompt");
        const cJSON *fz = cJSON_GetObjectItemCaseSensitive(p, "force_uc_zero_txt");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(p, "sizes");
        float sizes[6];
        if (!cJSON_IsString(pr) || !cJSON_IsString(np) || cJSON_GetArraySize(sz) != 6) {
            cs_fail(err, CS_EFORMAT, "%s: params: prompt/negative_prompt/sizes", file);
            goto out;
        }
        for (int i = 0; i < 6; i++) sizes[i] = (float)cJSON_GetArrayItem(sz, i)->valuedouble;
        cs_model_sd_set_sizes(m, sizes);
        /* the empty negative prompt is zeros (the model's default, sgm's
         * force_uc_zero_embeddings); a non-empty one is encoded */
        if (cJSON_IsTrue(fz) && *np->valuestring) {
            cs_fail(err, CS_EUSAGE, "%s: force_uc_zero_txt with a non-empty negative prompt", file);
            goto out;
        }
        if (m->cond_new(m, np->valuestring, &conds[0], err) ||
            m->cond_new(m, pr->valuestring, &conds[1], err))
            goto out;
    } else {
        const cs_safetensors_tensor *tc = cs_safetensors_find(&st, "crossattn"), *tv = cs_safetensors_find(&st, "vector");
        if (!tc || tc->ndim != 3 || !tv || tv->ndim != 2) {
            cs_fail(err, CS_EFORMAT, "%s: crossattn [1,77,D] / vector [1,A]: missing", file);
            goto out;
        }
        int D = (int)tc->shape[2], A = (int)tv->shape[1];
        const float *ca = get(&st, "crossattn", (size_t)77 * D, err);
        const float *ve = ca ? get(&st, "vector", A, err) : NULL;
        const float *uca = ve ? get(&st, "uc_crossattn", (size_t)77 * D, err) : NULL;
        const float *uve = uca ? get(&st, "uc_vector", A, err) : NULL;
        if (!uve || cs_model_sd_cond_from_context_y(m, uca, uve, &conds[0], err) ||
            cs_model_sd_cond_from_context_y(m, ca, ve, &conds[1], err))
            goto out;
    }
    const float *ns = NULL;
    if (kind == SGM_EULER_A && !(ns = get(&st, "noise_steps", n * steps, err))) goto out;
    if (sgm_sample(m, kind, sig, steps, (float)cf->valuedouble, conds, noise, ns, h, w, xs, ds, err))
        goto out;
    const float *ref;
    if (!(ref = get(&st, "sigmas", steps + 1, err))) goto out;
    add(r, "sigmas", nn_rel_err(sig, ref, steps + 1), 1e-5);
    if (!(ref = get(&st, "x_final", n, err))) goto out;
    add(r, "x_final", nn_rel_err(xs + n * steps, ref, n), 1e-4);
    if (!(ref = get(&st, "x_after_step1", n, err))) goto out;
    add(r, "x_after_step1", nn_rel_err(xs + n, ref, n), 1e-4);
    if (!t2i) {
        if (!(ref = get(&st, "x_steps", n * (steps + 1), err))) goto out;
        add(r, "x_steps", nn_rel_err(xs, ref, n * (steps + 1)), 1e-4);
        if (!(ref = get(&st, "denoised_steps", n * steps, err))) goto out;
        add(r, "denoised_steps", nn_rel_err(ds, ref, n * steps), 1e-4);
    } else {
        int f = m->factor;
        size_t ni = (size_t)3 * h * f * w * f;
        if (!(img = malloc(sizeof(float) * ni))) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
            goto out;
        }
        if (m->decode(m, xs + n * steps, 1, h, w, img, err)) goto out;
        if (!(ref = get(&st, "decoded", ni, err))) goto out;
        add(r, "decoded", nn_rel_err(img, ref, ni), 1e-4);
        if (!(ref = get(&st, "image_u8", ni, err))) goto out;
        double md = nn_u8_max_diff(img, ref, ni);
        add(r, "image_u8", md / 255.0, 1.0 / 255.0 + 1e-9);
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (conds[i]) m->cond_free(m, conds[i]);
    free(sig), free(xs), free(ds), free(img);
    cs_safetensors_close(&st);
    return rc;
}

int cs_sgm_case_is(const char *file, const char *op, const char *params_json) {
    if (!strcmp(op, "sampler")) return 1;
    if (!strcmp(op, "txt2img")) return params_json && strstr(params_json, "\"discretization\"");
    if (strcmp(op, "schedule")) return 0;
    cs_safetensors st;
    cs_err e = {0};
    if (cs_safetensors_open(&st, file, &e)) return 0;
    int is = cs_safetensors_find(&st, "sigmas_legacy") != NULL;
    cs_safetensors_close(&st);
    return is;
}

int cs_sgm_case_run(cs_model *m, const char *file, const char *op, const char *params_json,
                    cs_case_report *r, cs_err *err) {
    memset(r, 0, sizeof *r);
    if (!strcmp(op, "schedule")) return run_schedule(file, r, err);
    cJSON *p = cJSON_Parse(params_json ? params_json : "{}");
    if (!p) return cs_fail(err, CS_EFORMAT, "%s: params are not JSON", file);
    int rc = run_sampling(m, file, !strcmp(op, "txt2img"), p, r, err);
    cJSON_Delete(p);
    return rc;
}
