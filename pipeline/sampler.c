/* sampler.c — the sampling loops. The k-diffusion samplers follow
 * crowsonkb/k-diffusion sampling.py and DDIM follows CompVis ddim.py,
 * operation for operation in float32, so the sd-tiny sampler cases match
 * (../shared/refs/sd-tiny/cases/README.md). */
#include "pipeline/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *names[CS_SAMPLER_COUNT] = {"euler", "euler_a", "heun", "dpmpp_2m", "ddim", "ddpm"};
static const char *a1111[CS_SAMPLER_COUNT] = {"Euler", "Euler a", "Heun", "DPM++ 2M", "DDIM", "DDPM"};

const char *cs_sampler_name(cs_sampler_kind k) { return names[k]; }
const char *cs_sampler_a1111_name(cs_sampler_kind k) { return a1111[k]; }

/* A1111's schedule names ("Schedule type", and the suffix of its older
 * combined sampler names): Uniform is k-diffusion's model.get_sigmas, our
 * "discrete"; Automatic is the sampler's own default. */
int cs_schedule_parse_any(const char *name, cs_spacing *out) {
    if (!cs_spacing_parse(name, out)) return 0;
    if (!strcasecmp(name, "automatic")) return 1;
    static const struct {
        const char *s;
        cs_spacing sp;
    } a[] = {{"uniform", CS_SPACING_DISCRETE}, {"karras", CS_SPACING_KARRAS}, {"exponential", CS_SPACING_EXPONENTIAL}};
    for (size_t i = 0; i < sizeof a / sizeof *a; i++)
        if (!strcasecmp(name, a[i].s)) {
            *out = a[i].sp;
            return 0;
        }
    return -1;
}

/* A1111 >= 1.9 (sd_samplers_kdiffusion.py): DPM++ 2M's options say
 * scheduler karras; Euler, Euler a, Heun use the model's own sigmas. */
cs_spacing cs_sampler_a1111_default_spacing(cs_sampler_kind k) {
    return k == CS_SAMPLER_DPMPP_2M ? CS_SPACING_KARRAS : CS_SPACING_DISCRETE;
}

int cs_sampler_parse_full(const char *name, cs_sampler_kind *out, cs_spacing *spacing, int *has_spacing) {
    *has_spacing = 0;
    for (int i = 0; i < CS_SAMPLER_COUNT; i++)
        if (!strcmp(name, names[i]) || !strcasecmp(name, a1111[i])) {
            *out = (cs_sampler_kind)i;
            return 0;
        }
    if (!strcmp(name, "euler_ancestral") || !strcasecmp(name, "k_euler_a") ||
        !strcasecmp(name, "Euler Ancestral")) {
        *out = CS_SAMPLER_EULER_A;
        return 0;
    }
    /* A1111 < 1.9 names the schedule in the sampler: "DPM++ 2M Karras" */
    const char *sp = strrchr(name, ' ');
    if (!sp || sp == name) return -1;
    char base[64];
    size_t n = (size_t)(sp - name);
    if (n >= sizeof base) return -1;
    memcpy(base, name, n);
    base[n] = 0;
    cs_spacing s;
    if (!strcmp(sp + 1, "discrete") || cs_schedule_parse_any(sp + 1, &s) != 0) return -1;
    int dummy;
    if (cs_sampler_parse_full(base, out, spacing, &dummy) || dummy) return -1;
    if (*out == CS_SAMPLER_DDIM || *out == CS_SAMPLER_DDPM) return -1; /* no sigma schedule */
    *spacing = s;
    *has_spacing = 1;
    return 0;
}

int cs_sampler_parse(const char *name, cs_sampler_kind *out) {
    cs_spacing sp;
    int has;
    return cs_sampler_parse_full(name, out, &sp, &has) || has ? -1 : 0;
}

static int is_ddim(cs_sampler_kind k) { return k == CS_SAMPLER_DDIM || k == CS_SAMPLER_DDPM; }

/* Steps actually run: img2img runs the last round(strength * total) of them. */
static int run_steps(int total, float strength) {
    if (strength <= 0 || strength >= 1) return total;
    int n = (int)lroundf(strength * (float)total);
    return n < 1 ? 1 : n;
}

int cs_sample_count_steps(const cs_sample_opts *o) {
    int total = o->steps;
    if (is_ddim(o->sampler)) {
        int ts[CS_TRAIN_STEPS];
        total = cs_ddim_timesteps(o->steps, ts, NULL);
        if (total < 0) return 0;
    }
    return run_steps(total, o->strength);
}

int cs_sample_count_evals(const cs_sample_opts *o) {
    int n = cs_sample_count_steps(o);
    return o->sampler == CS_SAMPLER_HEUN ? 2 * n - 1 : n;
}

void cs_sample_trace_free(cs_sample_trace *t) {
    if (!t) return;
    free(t->eps_norm);
    t->eps_norm = NULL;
}

/* ---- guidance: one batched call on [uncond, cond] ---- */

typedef struct {
    cs_model *m;
    cs_cond *conds[2]; /* uncond, cond */
    int cfg;           /* batch of 2, combine */
    float g;
    int h, w;
    size_t n;   /* C*h*w */
    float *xb;  /* [2n] batched input */
    float *ob;  /* [2n] D or eps */
    float *eb;  /* [2n] eps (k-diffusion path, for the white-box norm) */
    cs_err *err;
} guide;

static double diff_norm(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s);
}

/* D (guided) at sigma; *norm = ||eps_c - eps_u|| when norm != NULL. */
static int guided_denoise(guide *G, const float *x, float sigma, float *D, double *norm) {
    size_t n = G->n;
    if (!G->cfg) {
        if (norm) *norm = NAN;
        return cs_model_denoise(G->m, x, sigma, G->conds + 1, 1, G->h, G->w, D, NULL, G->err);
    }
    memcpy(G->xb, x, n * sizeof(float));
    memcpy(G->xb + n, x, n * sizeof(float));
    if (cs_model_denoise(G->m, G->xb, sigma, G->conds, 2, G->h, G->w, G->ob, norm ? G->eb : NULL,
                         G->err))
        return -1;
    const float *u = G->ob, *c = G->ob + n;
    for (size_t i = 0; i < n; i++) D[i] = u[i] + (c[i] - u[i]) * G->g;
    if (norm) *norm = diff_norm(G->eb + n, G->eb, n);
    return 0;
}

static int guided_eps(guide *G, const float *x, int t, float *e, double *norm) {
    size_t n = G->n;
    if (!G->cfg) {
        *norm = NAN;
        return cs_model_eps_t(G->m, x, t, G->conds + 1, 1, G->h, G->w, e, G->err);
    }
    memcpy(G->xb, x, n * sizeof(float));
    memcpy(G->xb + n, x, n * sizeof(float));
    if (cs_model_eps_t(G->m, G->xb, t, G->conds, 2, G->h, G->w, G->ob, G->err)) return -1;
    const float *u = G->ob, *c = G->ob + n;
    for (size_t i = 0; i < n; i++) e[i] = u[i] + (c[i] - u[i]) * G->g;
    *norm = diff_norm(c, u, n);
    return 0;
}

static int draw(cs_noise *src, float *out, size_t n, cs_err *err) {
    if (src->fill(src, out, n)) return cs_fail(err, CS_EINTERNAL, "sampler: noise source exhausted");
    return 0;
}

/* Completion: put the reference back where mask = 1, noised to this level
 * (x0 * scale + n0 * sigma) with the same noise as the initial sample. */
static void blend_known(float *x, const cs_sample_init *init, const float *n0, float scale,
                        float sigma, int C, size_t hw) {
    if (!init || !init->mask) return;
    for (int c = 0; c < C; c++)
        for (size_t p = 0; p < hw; p++) {
            float mk = init->mask[p];
            if (mk <= 0) continue;
            size_t i = (size_t)c * hw + p;
            float known = init->x0[i] * scale + n0[i] * sigma;
            x[i] = mk * known + (1.0f - mk) * x[i];
        }
}

typedef struct {
    const cs_sample_opts *o;
    int k, n_steps;
    cs_sample_trace *tr;
    size_t n;
    double first_norms_sum;
    int first_norms_count;
    float *x0_first;
} recorder;

static void record(recorder *R, int step, const float *x_after, const float *denoised, double norm) {
    cs_sample_trace *tr = R->tr;
    if (R->o->on_step) R->o->on_step(R->o->on_step_ctx);
    if (tr && tr->eps_norm) tr->eps_norm[step] = (float)norm;
    if (step < R->k && !isnan(norm)) {
        R->first_norms_sum += norm;
        R->first_norms_count++;
    }
    if (step == 0) memcpy(R->x0_first, denoised, R->n * sizeof(float));
    if (tr && tr->x_steps) memcpy(tr->x_steps + (size_t)(step + 1) * R->n, x_after, R->n * sizeof(float));
    if (tr && tr->denoised_steps) memcpy(tr->denoised_steps + (size_t)step * R->n, denoised, R->n * sizeof(float));
}

/* Long: the k-diffusion samplers share one step loop; each sampler's update is a few lines of it. */
static int sample_kdiff(guide *G, const cs_sample_opts *o, cs_noise *noise, const cs_sample_init *init,
                        float *x, float *n0, recorder *R, float *buf) {
    size_t n = G->n, hw = (size_t)G->h * G->w;
    int C = G->m->channels;
    float *sigmas = malloc(sizeof(float) * (o->steps + 1));
    if (!sigmas) return cs_fail(G->err, CS_ENOMEM, "sampler: out of memory");
    cs_schedule_sigmas(&G->m->sched, o->spacing, o->steps, sigmas);
    int i0 = o->steps - R->n_steps;
    float *D = buf, *d = buf + n, *x2 = buf + 2 * n, *old = buf + 3 * n, *tmp = buf + 4 * n;
    if (init && !init->mask)
        for (size_t i = 0; i < n; i++) x[i] = init->x0[i] + n0[i] * sigmas[i0];
    else
        for (size_t i = 0; i < n; i++) x[i] = n0[i] * sigmas[i0];
    blend_known(x, init, n0, 1.0f, sigmas[i0], C, hw);
    if (R->tr && R->tr->x_steps) memcpy(R->tr->x_steps, x, n * sizeof(float));
    int rc = 0, have_old = 0;
    float *back = buf + 5 * n;
    for (int i = i0; i < o->steps && !rc; i++) {
        float s = sigmas[i], sn = sigmas[i + 1];
        double norm;
        int U = init && init->mask && o->resample > 1 && sn > 0 ? o->resample : 1;
      again:
        if ((rc = guided_denoise(G, x, s, D, &norm))) break;
        switch (o->sampler) {
        case CS_SAMPLER_EULER: {
            float dt = sn - s;
            for (size_t j = 0; j < n; j++) x[j] = x[j] + ((x[j] - D[j]) / s) * dt;
            break;
        }
        case CS_SAMPLER_EULER_A: {
            /* get_ancestral_step, eta = 1 */
            float up = sqrtf(sn * sn * (s * s - sn * sn) / (s * s));
            if (up > sn) up = sn;
            float down = sqrtf(sn * sn - up * up), dt = down - s;
            for (size_t j = 0; j < n; j++) x[j] = x[j] + ((x[j] - D[j]) / s) * dt;
            if (sn > 0) {
                if ((rc = draw(noise, tmp, n, G->err))) break;
                for (size_t j = 0; j < n; j++) x[j] = x[j] + tmp[j] * up;
            }
            break;
        }
        case CS_SAMPLER_HEUN: {
            float dt = sn - s;
            for (size_t j = 0; j < n; j++) d[j] = (x[j] - D[j]) / s;
            if (sn == 0) {
                for (size_t j = 0; j < n; j++) x[j] = x[j] + d[j] * dt;
                break;
            }
            for (size_t j = 0; j < n; j++) x2[j] = x[j] + d[j] * dt;
            if ((rc = guided_denoise(G, x2, sn, tmp, NULL))) break;
            for (size_t j = 0; j < n; j++) {
                float d2 = (x2[j] - tmp[j]) / sn;
                x[j] = x[j] + ((d[j] + d2) / 2.0f) * dt;
            }
            break;
        }
        case CS_SAMPLER_DPMPP_2M: {
            /* t = -log sigma; sigma_fn(t) = exp(-t); first and last steps first order */
            float t = -logf(s), tn = -logf(sn), h = tn - t;
            float ratio = expf(-tn) / expf(-t), em = expm1f(-h);
            if (!have_old || sn == 0) {
                for (size_t j = 0; j < n; j++) x[j] = ratio * x[j] - em * D[j];
            } else {
                float h_last = t - -logf(sigmas[i - 1]), r = h_last / h;
                float a = 1.0f + 1.0f / (2.0f * r), b = 1.0f / (2.0f * r);
                for (size_t j = 0; j < n; j++) x[j] = ratio * x[j] - em * (a * D[j] - b * old[j]);
            }
            memcpy(old, D, n * sizeof(float));
            have_old = 1;
            break;
        }
        default:
            rc = cs_fail(G->err, CS_EINTERNAL, "sampler: not a k-diffusion sampler");
        }
        if (rc) break;
        blend_known(x, init, n0, 1.0f, sn, C, hw);
        if (--U > 0) {
            /* RePaint resampling: diffuse back to sigma and redo the step, so the
             * generated part harmonises with the known part */
            if ((rc = draw(noise, back, n, G->err))) break;
            float up = sqrtf(s * s - sn * sn);
            for (size_t j = 0; j < n; j++) x[j] += up * back[j];
            goto again;
        }
        record(R, i - i0, x, D, norm);
    }
    free(sigmas);
    return rc;
}

static int sample_ddim(guide *G, const cs_sample_opts *o, cs_noise *noise, const cs_sample_init *init,
                       float *x, float *n0, recorder *R, float *buf) {
    size_t n = G->n, hw = (size_t)G->h * G->w;
    int C = G->m->channels;
    int ts[CS_TRAIN_STEPS];
    int K = cs_ddim_timesteps(o->steps, ts, G->err);
    if (K < 0) return -1;
    const float *ac = G->m->sched.alphas_cumprod;
    float eta = o->sampler == CS_SAMPLER_DDPM ? 1.0f : o->eta;
    float *e = buf, *px0 = buf + n, *tmp = buf + 2 * n;
    int j0 = R->n_steps - 1; /* highest DDIM index run */
    if (init && !init->mask) {
        float a = ac[ts[j0]], sa = sqrtf(a), sb = sqrtf(1.0f - a);
        for (size_t i = 0; i < n; i++) x[i] = sa * init->x0[i] + sb * n0[i];
    } else {
        memcpy(x, n0, n * sizeof(float)); /* x_T: unit variance, no sigma scaling */
    }
    if (init && init->mask) {
        float a = ac[ts[j0]];
        blend_known(x, init, n0, sqrtf(a), sqrtf(1.0f - a), C, hw);
    }
    if (R->tr && R->tr->x_steps) memcpy(R->tr->x_steps, x, n * sizeof(float));
    float *back = buf + 3 * n;
    for (int j = j0, step = 0; j >= 0; j--, step++) {
        int t = ts[j];
        float a = ac[t], ap = j > 0 ? ac[ts[j - 1]] : ac[0];
        float sig = (float)((double)eta * sqrt((1.0 - (double)ap) / (1.0 - (double)a) *
                                               (1.0 - (double)a / (double)ap)));
        double norm;
        int U = init && init->mask && o->resample > 1 && j > 0 ? o->resample : 1;
      again:
        if (guided_eps(G, x, t, e, &norm)) return -1;
        float s1a = sqrtf(1.0f - a), sa = sqrtf(a), sap = sqrtf(ap);
        float dir = sqrtf(1.0f - ap - sig * sig);
        for (size_t i = 0; i < n; i++) px0[i] = (x[i] - s1a * e[i]) / sa;
        if (sig > 0) {
            if (draw(noise, tmp, n, G->err)) return -1;
            for (size_t i = 0; i < n; i++) x[i] = sap * px0[i] + dir * e[i] + sig * tmp[i];
        } else {
            for (size_t i = 0; i < n; i++) x[i] = sap * px0[i] + dir * e[i];
        }
        blend_known(x, init, n0, sap, sqrtf(1.0f - ap), C, hw);
        if (--U > 0) {
            /* RePaint resampling: q(x_t | x_prev) back up one step, then redo it */
            if (draw(noise, back, n, G->err)) return -1;
            float r = a / ap, sr = sqrtf(r), su = sqrtf(1.0f - r);
            for (size_t i = 0; i < n; i++) x[i] = sr * x[i] + su * back[i];
            goto again;
        }
        if (j == 0 && o->final_x0) {
            memcpy(x, px0, n * sizeof(float));
            blend_known(x, init, n0, 1.0f, 0.0f, C, hw);
        }
        record(R, step, x, px0, norm);
    }
    return 0;
}

int cs_sample(cs_model *m, const cs_sample_opts *o, cs_cond *cond, cs_cond *uncond, int h, int w,
              cs_noise *noise, const cs_sample_init *init, float *x_out, cs_sample_trace *trace,
              cs_err *err) {
    if (o->steps < 1) return cs_fail(err, CS_EUSAGE, "sampler: steps must be > 0");
    if (o->sampler < 0 || o->sampler >= CS_SAMPLER_COUNT)
        return cs_fail(err, CS_EUSAGE, "sampler: unknown sampler");
    if (o->strength < 0 || o->strength > 1)
        return cs_fail(err, CS_EUSAGE, "sampler: strength must be in (0, 1]");
    if (init && !init->x0) return cs_fail(err, CS_EUSAGE, "sampler: init without an image");
    int n_steps = cs_sample_count_steps(o);
    if (n_steps < 1) return cs_fail(err, CS_EUSAGE, "sampler: ddim steps %d outside 1..500", o->steps);
    size_t n = (size_t)m->channels * h * w;
    guide G = {.m = m, .conds = {uncond, cond}, .cfg = uncond && o->guidance != 1.0f,
               .g = o->guidance, .h = h, .w = w, .n = n, .err = err};
    float *n0 = malloc(sizeof(float) * n), *buf = malloc(sizeof(float) * n * 6);
    float *x0_first = malloc(sizeof(float) * n);
    if (G.cfg) {
        G.xb = malloc(sizeof(float) * 2 * n);
        G.ob = malloc(sizeof(float) * 2 * n);
        G.eb = malloc(sizeof(float) * 2 * n);
    }
    float *norms = malloc(sizeof(float) * n_steps);
    int rc = -1;
    if (!n0 || !buf || !x0_first || !norms || (G.cfg && (!G.xb || !G.ob || !G.eb))) {
        cs_fail(err, CS_ENOMEM, "sampler: out of memory");
        goto done;
    }
    if (trace) {
        trace->n_steps = n_steps;
        trace->eps_norm = norms;
        norms = NULL;
    }
    recorder R = {.o = o, .k = o->whitebox_k > 0 ? o->whitebox_k : 1, .n_steps = n_steps, .tr = trace, .n = n,
                  .x0_first = x0_first};
    if (draw(noise, n0, n, err)) goto done;
    rc = is_ddim(o->sampler) ? sample_ddim(&G, o, noise, init, x_out, n0, &R, buf)
                             : sample_kdiff(&G, o, noise, init, x_out, n0, &R, buf);
    if (!rc && trace) {
        trace->whitebox = R.first_norms_count ? (float)(R.first_norms_sum / R.first_norms_count) : NAN;
        trace->x0_final_rms = (float)(diff_norm(x0_first, x_out, n) / sqrt((double)n));
    }
done:
    if (rc && trace) cs_sample_trace_free(trace);
    free(norms);
    free(n0);
    free(buf);
    free(x0_first);
    free(G.xb);
    free(G.ob);
    free(G.eb);
    return rc;
}
