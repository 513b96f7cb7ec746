/* sampler_cases.c — the sd-tiny schedule/sampler/txt2img cases (see .h). */
#include "pipeline/sampler_cases.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "core/safetensors.h"
#include "pipeline/sampler.h"
#include "pipeline/schedule.h"

int cs_sampler_case_op(const char *op) {
    return !strcmp(op, "schedule") || !strcmp(op, "kdiff_sampler") || !strcmp(op, "ddim") ||
           !strcmp(op, "txt2img");
}

int cs_case_report_ok(const cs_case_report *r) {
    for (int i = 0; i < r->n; i++)
        if (!(r->c[i].rel <= r->c[i].tol)) return 0;
    return r->n > 0;
}

static void add(cs_case_report *r, const char *name, double rel, double tol) {
    if (r->n >= CS_CASE_MAX_CHECKS) return;
    cs_case_check *c = &r->c[r->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->rel = rel;
    c->tol = tol;
}

/* A float tensor of the case; numel checked against want (0 = any). */
static const float *get(const cs_safetensors *st, const char *name, size_t want, int *owned,
                        size_t *numel, cs_err *err) {
    const float *p;
    if (cs_safetensors_get_f32(st, name, -1, NULL, &p, owned, err)) return NULL;
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    if (want && (size_t)t->numel != want) {
        if (*owned) free((void *)p);
        cs_fail(err, CS_EFORMAT, "%s: %s: %lld values, expected %zu", st->path, name,
                (long long)t->numel, want);
        return NULL;
    }
    if (numel) *numel = (size_t)t->numel;
    return p;
}

typedef struct {
    const float *p[12];
    int owned[12];
    int n;
} holds;

static const float *hold(holds *H, const float *p, int owned) {
    H->p[H->n] = p;
    H->owned[H->n++] = owned;
    return p;
}

static void release(holds *H) {
    for (int i = 0; i < H->n; i++)
        if (H->owned[i]) free((void *)H->p[i]);
    H->n = 0;
}

#define GET(var, name, want)                                                                   \
    do {                                                                                       \
        int ow_ = 0;                                                                           \
        var = get(&st, name, want, &ow_, NULL, err);                                           \
        if (!var) goto out;                                                                    \
        hold(&H, var, ow_);                                                                    \
    } while (0)

static int run_schedule(const char *file, cs_case_report *r, cs_err *err) {
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    holds H = {0};
    int rc = -1;
    const float *ac, *sig, *sd, *td, *sk, *tk, *cin;
    GET(ac, "alphas_cumprod", 1000);
    GET(sig, "sigmas", 1000);
    GET(sd, "sigmas_discrete", 9);
    GET(td, "t_discrete", 8);
    GET(sk, "sigmas_karras", 9);
    GET(tk, "t_karras", 8);
    GET(cin, "c_in_karras", 8);
    cs_schedule s;
    cs_schedule_sd(&s);
    add(r, "alphas_cumprod", nn_rel_err(s.alphas_cumprod, ac, 1000), 1e-6);
    add(r, "sigmas", nn_rel_err(s.sigmas, sig, 1000), 1e-6);
    float o[9], t[8], c[8];
    cs_schedule_sigmas(&s, CS_SPACING_DISCRETE, 8, o);
    add(r, "sigmas_discrete", nn_rel_err(o, sd, 9), 1e-5);
    for (int i = 0; i < 8; i++) t[i] = cs_sigma_to_t(&s, o[i]);
    add(r, "t_discrete", nn_rel_err(t, td, 8), 1e-5);
    cs_schedule_sigmas(&s, CS_SPACING_KARRAS, 8, o);
    add(r, "sigmas_karras", nn_rel_err(o, sk, 9), 1e-5);
    for (int i = 0; i < 8; i++) {
        t[i] = cs_sigma_to_t(&s, o[i]);
        c[i] = 1.0f / sqrtf(o[i] * o[i] + 1.0f);
    }
    add(r, "t_karras", nn_rel_err(t, tk, 8), 1e-5);
    add(r, "c_in_karras", nn_rel_err(c, cin, 8), 1e-5);
    rc = 0;
out:
    release(&H);
    cs_safetensors_close(&st);
    return rc;
}

static int param_str(const cJSON *p, const char *k, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, k);
    if (!cJSON_IsString(v)) return -1;
    *out = v->valuestring;
    return 0;
}

static double param_num(const cJSON *p, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* kdiff_sampler, ddim, txt2img: run the sampler on injected noise. */
/* Long: one reference case end to end (read its arrays, set up the sampler, sample, check each output). */
static int run_sampling(cs_model *m, const char *file, const char *op, const cJSON *p,
                        cs_case_report *r, cs_err *err) {
    if (!m || strcmp(m->kind, "sd")) return cs_fail(err, CS_EUSAGE, "%s: needs the sd-tiny model", file);
    cs_safetensors st;
    if (cs_safetensors_open(&st, file, err)) return -1;
    holds H = {0};
    int rc = -1, is_ddim = !strcmp(op, "ddim"), is_t2i = !strcmp(op, "txt2img");
    cs_cond *cond = NULL, *uncond = NULL;
    float *x = NULL, *xs = NULL, *ds = NULL, *img = NULL, *allnoise = NULL;
    cs_sample_trace tr = {0};
    const cs_safetensors_tensor *nt = cs_safetensors_find(&st, "noise");
    if (!nt || nt->ndim != 4) {
        cs_fail(err, CS_EFORMAT, "%s: noise: missing or not [1,C,h,w]", file);
        goto out;
    }
    int C = (int)nt->shape[1], h = (int)nt->shape[2], w = (int)nt->shape[3];
    size_t n = (size_t)C * h * w;
    if (C != m->channels) {
        cs_fail(err, CS_EFORMAT, "%s: noise has %d channels, the model %d", file, C, m->channels);
        goto out;
    }
    cs_sample_opts o = {.steps = (int)param_num(p, "steps", 8), .guidance = (float)param_num(p, "cfg_scale", 7.5),
                        .eta = (float)param_num(p, "eta", 0), .whitebox_k = 1};
    const char *s_name = "ddim", *sp_name = "discrete";
    if (!is_ddim && (param_str(p, "sampler", &s_name) || param_str(p, "sigma_schedule", &sp_name))) {
        cs_fail(err, CS_EFORMAT, "%s: params: sampler/sigma_schedule missing", file);
        goto out;
    }
    if (cs_sampler_parse(s_name, &o.sampler) || cs_spacing_parse(sp_name, &o.spacing)) {
        cs_fail(err, CS_EFORMAT, "%s: params: unknown sampler %s / schedule %s", file, s_name, sp_name);
        goto out;
    }
    if (is_t2i) {
        const char *prompt, *un;
        if (param_str(p, "prompt", &prompt) || param_str(p, "uncond_prompt", &un)) {
            cs_fail(err, CS_EFORMAT, "%s: params: prompt missing", file);
            goto out;
        }
        if (m->cond_new(m, prompt, &cond, err) || m->cond_new(m, un, &uncond, err)) goto out;
    } else {
        const float *cc, *uc;
        GET(cc, "cond", 0);
        GET(uc, "uncond", 0);
        if (cs_model_sd_cond_from_context(m, cc, &cond, err) ||
            cs_model_sd_cond_from_context(m, uc, &uncond, err))
            goto out;
    }
    /* noise buffer: initial noise, then noise_steps when present */
    const float *noise, *nsteps = NULL;
    GET(noise, "noise", n);
    size_t nn = 0;
    if (cs_safetensors_find(&st, "noise_steps")) {
        int ow = 0;
        nsteps = get(&st, "noise_steps", 0, &ow, &nn, err);
        if (!nsteps) goto out;
        hold(&H, nsteps, ow);
    }
    allnoise = malloc(sizeof(float) * (n + nn));
    x = malloc(sizeof(float) * n);
    int K = cs_sample_count_steps(&o);
    xs = malloc(sizeof(float) * n * (K + 1));
    ds = malloc(sizeof(float) * n * K);
    if (!allnoise || !x || !xs || !ds) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
        goto out;
    }
    memcpy(allnoise, noise, sizeof(float) * n);
    if (nn) memcpy(allnoise + n, nsteps, sizeof(float) * nn);
    cs_noise_buffer nb = {allnoise, n + nn, 0};
    cs_noise src = cs_noise_from_buffer(&nb);
    tr.x_steps = xs;
    tr.denoised_steps = ds;
    if (cs_sample(m, &o, cond, uncond, h, w, &src, NULL, x, &tr, err)) goto out;
    const float *ref;
    GET(ref, "x_final", n);
    add(r, "x_final", nn_rel_err(x, ref, n), 1e-4);
    GET(ref, "x_after_step1", n);
    add(r, "x_after_step1", nn_rel_err(xs + n, ref, n), 1e-4);
    if (!is_t2i) {
        GET(ref, "x_steps", n * (K + 1));
        add(r, "x_steps", nn_rel_err(xs, ref, n * (K + 1)), 1e-4);
        GET(ref, is_ddim ? "pred_x0_steps" : "denoised_steps", n * K);
        add(r, is_ddim ? "pred_x0_steps" : "denoised_steps", nn_rel_err(ds, ref, n * K), 1e-4);
    } else {
        int f = m->factor, H2 = h * f, W2 = w * f;
        size_t ni = (size_t)3 * H2 * W2;
        img = malloc(sizeof(float) * ni);
        if (!img) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
            goto out;
        }
        if (m->decode(m, x, 1, h, w, img, err)) goto out;
        GET(ref, "decoded", ni);
        add(r, "decoded", nn_rel_err(img, ref, ni), 1e-4);
        GET(ref, "image_u8", ni);
        double md = nn_u8_max_diff(img, ref, ni);
        add(r, "image_u8", md / 255.0, 1.0 / 255.0 + 1e-9);
    }
    rc = 0;
out:
    if (cond) m->cond_free(m, cond);
    if (uncond) m->cond_free(m, uncond);
    cs_sample_trace_free(&tr);
    free(allnoise);
    free(x);
    free(xs);
    free(ds);
    free(img);
    release(&H);
    cs_safetensors_close(&st);
    return rc;
}

int cs_sampler_case_run(cs_model *m, const char *file, const char *op, const char *params_json,
                        cs_case_report *r, cs_err *err) {
    memset(r, 0, sizeof *r);
    if (!strcmp(op, "schedule")) return run_schedule(file, r, err);
    if (!cs_sampler_case_op(op)) return cs_fail(err, CS_EUSAGE, "%s: op %s is not a sampler case", file, op);
    cJSON *p = cJSON_Parse(params_json ? params_json : "{}");
    if (!p) return cs_fail(err, CS_EFORMAT, "%s: params are not JSON", file);
    int rc = run_sampling(m, file, op, p, r, err);
    cJSON_Delete(p);
    return rc;
}
