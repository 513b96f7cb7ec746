/* model.c — opening models by spec, and the k-diffusion wrappers that make
 * every model a denoiser D(x, sigma) and an eps(x_vp, t) for the samplers. */
#include "pipeline/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cs_model_is_empirical_spec(const char *spec) {
    return !strcmp(spec, "empirical") || !strncmp(spec, "empirical:", 10);
}

int cs_model_open(cs_model **out, const char *spec, const cs_model_opts *opts, cs_err *err) {
    *out = NULL;
    if (cs_model_is_empirical_spec(spec)) {
        const char *db = spec[9] == ':' ? spec + 10 : (opts ? opts->db : NULL);
        if (!db || !*db)
            return cs_fail(err, CS_EUSAGE, "model empirical: needs an index (empirical:INDEXDB or --db)");
        return cs_model_empirical_open(out, db, err);
    }
    return cs_model_sd_open(out, spec, opts, err);
}

void cs_model_free(cs_model *m) {
    if (!m) return;
    if (m->destroy) m->destroy(m);
    free(m);
}

int cs_model_denoise(cs_model *m, const float *x, float sigma, cs_cond *const *conds, int B, int h,
                     int w, float *D, float *eps, cs_err *err) {
    size_t n = (size_t)B * m->channels * h * w;
    float *ts = malloc(sizeof(float) * B);
    if (!ts) return cs_fail(err, CS_ENOMEM, "denoise: out of memory");
    int rc;
    if (m->pred == CS_PRED_X0) {
        for (int b = 0; b < B; b++) ts[b] = sigma;
        rc = m->eval(m, x, ts, conds, B, h, w, D, err);
        if (!rc && eps)
            for (size_t i = 0; i < n; i++) eps[i] = (x[i] - D[i]) / sigma;
    } else {
        float *xin = malloc(sizeof(float) * n), *e = eps ? eps : malloc(sizeof(float) * n);
        if (!xin || !e) {
            free(xin);
            if (!eps) free(e);
            free(ts);
            return cs_fail(err, CS_ENOMEM, "denoise: out of memory");
        }
        /* CompVisDenoiser in float32: c_in = 1/(sigma^2+1)^0.5, c_out = -sigma.
         * sgm's DiscreteDenoiser first snaps sigma to the nearest training
         * sigma and feeds its integer index. */
        float t;
        if (m->quantize_t) {
            int best = 0;
            for (int i = 1; i < CS_TRAIN_STEPS; i++)
                if (fabsf(m->sched.sigmas[i] - sigma) < fabsf(m->sched.sigmas[best] - sigma))
                    best = i;
            sigma = m->sched.sigmas[best];
            t = (float)best;
        } else {
            t = cs_sigma_to_t(&m->sched, sigma);
        }
        float c_in = 1.0f / sqrtf(sigma * sigma + 1.0f);
        for (size_t i = 0; i < n; i++) xin[i] = x[i] * c_in;
        for (int b = 0; b < B; b++) ts[b] = t;
        rc = m->eval(m, xin, ts, conds, B, h, w, e, err);
        if (!rc && m->pred == CS_PRED_V) {
            /* CompVisVDenoiser: D = c_skip x + c_out v, c_skip = 1/(s^2+1),
             * c_out = -s/sqrt(s^2+1); the eps this implies: (x - D)/s */
            float c_skip = 1.0f / (sigma * sigma + 1.0f), c_out = -sigma * c_in;
            for (size_t i = 0; i < n; i++) {
                D[i] = x[i] * c_skip + e[i] * c_out;
                if (eps) e[i] = (x[i] - D[i]) / sigma;
            }
        } else if (!rc) {
            for (size_t i = 0; i < n; i++) D[i] = x[i] + e[i] * -sigma;
        }
        free(xin);
        if (!eps) free(e);
    }
    free(ts);
    return rc;
}

int cs_model_eps_t(cs_model *m, const float *x_vp, int t, cs_cond *const *conds, int B, int h,
                   int w, float *eps, cs_err *err) {
    size_t n = (size_t)B * m->channels * h * w;
    float *ts = malloc(sizeof(float) * B);
    if (!ts) return cs_fail(err, CS_ENOMEM, "denoise: out of memory");
    int rc;
    if (m->pred == CS_PRED_EPS) {
        for (int b = 0; b < B; b++) ts[b] = (float)t;
        rc = m->eval(m, x_vp, ts, conds, B, h, w, eps, err);
    } else if (m->pred == CS_PRED_V) {
        /* ldm predict_eps_from_z_and_v: eps = sqrt(a) v + sqrt(1-a) x */
        for (int b = 0; b < B; b++) ts[b] = (float)t;
        rc = m->eval(m, x_vp, ts, conds, B, h, w, eps, err);
        double a = m->sched.alphas_cumprod[t];
        float sa = (float)sqrt(a), s1a = (float)sqrt(1.0 - a);
        if (!rc)
            for (size_t i = 0; i < n; i++) eps[i] = sa * eps[i] + s1a * x_vp[i];
    } else {
        /* x_vp = sqrt(a) (x0 + sigma n): back to sampler space, D, then eps */
        float a = m->sched.alphas_cumprod[t], sigma = m->sched.sigmas[t], sa = sqrtf(a);
        float *x = malloc(sizeof(float) * n), *D = malloc(sizeof(float) * n);
        rc = -1;
        if (x && D) {
            for (size_t i = 0; i < n; i++) x[i] = x_vp[i] / sa;
            for (int b = 0; b < B; b++) ts[b] = sigma;
            rc = m->eval(m, x, ts, conds, B, h, w, D, err);
            if (!rc)
                for (size_t i = 0; i < n; i++) eps[i] = (x[i] - D[i]) / sigma;
        } else {
            cs_fail(err, CS_ENOMEM, "denoise: out of memory");
        }
        free(x);
        free(D);
    }
    free(ts);
    return rc;
}
