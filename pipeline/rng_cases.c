/* rng_cases.c — the ../shared/refs/rng cases (see rng_cases.h). */
#include "pipeline/rng_cases.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"

/* README tolerances */
#define TOL_EXACT 0.0
#define TOL_TORCH_FLOAT 2e-6 /* torch's numel >= 16 path (avx_mathfun); we aim for 0 */
#define TOL_LATENT 1e-4      /* sd-tiny sampler latents, rel */
#define TOL_U8 1.0

static int add(cs_rng_report *r, const char *metric, double e, double tol, long long nd, long long n,
               cs_err *err, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

#include <stdarg.h>
static int add(cs_rng_report *r, const char *metric, double e, double tol, long long nd, long long n,
               cs_err *err, const char *fmt, ...) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        cs_rng_check *c = realloc(r->c, sizeof *c * cap);
        if (!c) return cs_fail(err, CS_ENOMEM, "rng cases: out of memory");
        r->c = c;
        r->cap = cap;
    }
    cs_rng_check *c = &r->c[r->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->metric = metric;
    c->err = e;
    c->tol = tol;
    c->n_diff = nd;
    c->n = n;
    return 0;
}

int cs_rng_report_ok(const cs_rng_report *r) {
    for (int i = 0; i < r->n; i++)
        if (!(r->c[i].err <= r->c[i].tol)) return 0;
    return r->n > 0;
}

void cs_rng_report_free(cs_rng_report *r) {
    free(r->c);
    memset(r, 0, sizeof *r);
}

/* max |a - b| (NaN counts as infinite) and how many differ */
static double max_abs(const float *a, const float *b, size_t n, long long *nd) {
    double m = 0;
    *nd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != 0) ++*nd;
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static double rel_err(const float *a, const float *b, size_t n, long long *nd) {
    double mr = 0, m = max_abs(a, b, n, nd);
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    return mr > 0 ? m / mr : m;
}

static int add_abs(cs_rng_report *r, const float *ours, const float *ref, size_t n, double tol,
                   const char *name, cs_err *err) {
    long long nd;
    double e = max_abs(ours, ref, n, &nd);
    return add(r, "abs", e, tol, nd, (long long)n, err, "%s", name);
}

/* "s{seed}" -> seed */
static int parse_seed(const char *p, uint64_t *seed) {
    if (p[0] != 's') return -1;
    char *end;
    errno = 0;
    *seed = strtoull(p + 1, &end, 10);
    return errno || end == p + 1 || (*end && *end != '/') ? -1 : 0;
}

static int f32_of(const cs_safetensors *st, const cs_safetensors_tensor *t, const float **p, int *owned,
                  cs_err *err) {
    return cs_safetensors_get_f32(st, t->name, -1, NULL, p, owned, err);
}

/* an I64 tensor as uint32 words */
static int words_of(const cs_safetensors *st, const cs_safetensors_tensor *t, uint32_t **out, cs_err *err) {
    if (t->dtype != CS_DT_I64) return cs_fail(err, CS_EFORMAT, "%s: %s: not I64", st->path, t->name);
    *out = malloc(sizeof(uint32_t) * (size_t)t->numel + 1);
    if (!*out) return cs_fail(err, CS_ENOMEM, "out of memory");
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        (*out)[i] = (uint32_t)v;
    }
    return 0;
}

static cJSON *load_json(const char *path, cs_err *err);

/* ---- torch_cpu.safetensors ---- */

static int torch_tensor(const cs_safetensors *st, const cs_safetensors_tensor *t, cs_rng_report *r, cs_err *err) {
    char name[160];
    snprintf(name, sizeof name, "torch_cpu/%s", t->name);
    const char *kind = t->name, *sp = strchr(kind, '/');
    uint64_t seed;
    if (!sp || parse_seed(sp + 1, &seed)) return 0; /* not a case */
    size_t n = (size_t)t->numel;
    cs_torch_gen g;
    cs_torch_seed(&g, seed);
    if (!strncmp(kind, "mt_u32/", 7)) {
        uint32_t *w;
        if (words_of(st, t, &w, err)) return -1;
        long long nd = 0;
        for (size_t i = 0; i < n; i++) nd += cs_torch_u32(&g) != w[i];
        free(w);
        return add(r, "abs", nd ? 1 : 0, TOL_EXACT, nd, (long long)n, err, "%s", name);
    }
    const float *ref;
    int owned;
    if (f32_of(st, t, &ref, &owned, err)) return -1;
    float *out = malloc(sizeof(float) * (n + 1));
    int rc = -1;
    if (!out) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (!strncmp(kind, "rand/", 5)) cs_torch_rand(&g, out, n);
    else cs_torch_randn(&g, out, n);
    /* bit-exact expected below 16 (double path), README's 2e-6 above; the
     * scalar-kernel reference (randn_default_isa) differs from AVX2 torch */
    double tol = !strncmp(kind, "rand/", 5) || n < 16 ? TOL_EXACT : TOL_TORCH_FLOAT;
    rc = add_abs(r, out, ref, n, tol, name, err);
out:
    free(out);
    if (owned) free((void *)ref);
    return rc;
}

/* gen_seq/s42/call{k} or global_seq/s42/{k}_...: one generator through the calls in name order */
static int torch_sequences(const cs_safetensors *st, const char *prefix, cs_rng_report *r, cs_err *err) {
    cs_torch_gen g;
    int started = 0;
    size_t plen = strlen(prefix);
    for (int i = 0; i < st->n; i++) {
        const cs_safetensors_tensor *t = &st->tensors[i];
        if (strncmp(t->name, prefix, plen)) continue;
        if (!started) {
            uint64_t seed;
            const char *sp = strchr(t->name, '/');
            if (!sp || parse_seed(sp + 1, &seed)) return cs_fail(err, CS_EFORMAT, "%s: %s: no seed", st->path, t->name);
            cs_torch_seed(&g, seed);
            started = 1;
        }
        const float *ref;
        int owned;
        if (f32_of(st, t, &ref, &owned, err)) return -1;
        size_t n = (size_t)t->numel;
        float *out = malloc(sizeof(float) * n);
        if (!out) {
            if (owned) free((void *)ref);
            return cs_fail(err, CS_ENOMEM, "out of memory");
        }
        cs_torch_randn(&g, out, n);
        char name[160];
        snprintf(name, sizeof name, "torch_cpu_sequences/%s", t->name);
        int rc = add_abs(r, out, ref, n, n < 16 ? TOL_EXACT : TOL_TORCH_FLOAT, name, err);
        free(out);
        if (owned) free((void *)ref);
        if (rc) return -1;
    }
    if (!started) return cs_fail(err, CS_EFORMAT, "%s: no %s tensors", st->path, prefix);
    return 0;
}

/* ---- philox.safetensors ---- */

static int philox_tensor(const cs_safetensors *st, const cs_safetensors_tensor *t, cs_rng_report *r, cs_err *err) {
    char name[160];
    snprintf(name, sizeof name, "philox/%s", t->name);
    const char *sp = strchr(t->name, '/');
    uint64_t seed;
    if (!sp || parse_seed(sp + 1, &seed)) return 0;
    size_t n = (size_t)t->numel;
    if (!strncmp(t->name, "philox_u32/", 11)) {
        if (t->ndim != 2 || t->shape[0] != 4) return cs_fail(err, CS_EFORMAT, "%s: %s: not [4, n]", st->path, t->name);
        uint32_t *w;
        if (words_of(st, t, &w, err)) return -1;
        size_t m = (size_t)t->shape[1];
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        long long nd = 0;
        for (size_t i = 0; i < m; i++) {
            uint32_t ctr[4] = {0, 0, (uint32_t)i, 0}, o[4];
            cs_philox4x32_10(ctr, key, o);
            for (int k = 0; k < 4; k++) nd += o[k] != w[k * m + i];
        }
        free(w);
        return add(r, "abs", nd ? 1 : 0, TOL_EXACT, nd, (long long)n, err, "%s", name);
    }
    if (strncmp(t->name, "randn/", 6)) return 0;
    const float *ref;
    int owned;
    if (f32_of(st, t, &ref, &owned, err)) return -1;
    float *out = malloc(sizeof(float) * n);
    int rc = -1;
    if (out) {
        cs_philox g;
        cs_philox_seed(&g, seed);
        cs_philox_randn(&g, out, n);
        rc = add_abs(r, out, ref, n, TOL_EXACT, name, err);
    } else {
        cs_fail(err, CS_ENOMEM, "out of memory");
    }
    free(out);
    if (owned) free((void *)ref);
    return rc;
}

static int philox_sequence(const cs_safetensors *st, cs_rng_report *r, cs_err *err) {
    cs_philox g;
    int started = 0;
    for (int i = 0; i < st->n; i++) {
        const cs_safetensors_tensor *t = &st->tensors[i];
        if (strncmp(t->name, "seq/", 4)) continue;
        if (!started) {
            uint64_t seed;
            if (parse_seed(t->name + 4, &seed)) return cs_fail(err, CS_EFORMAT, "%s: %s: no seed", st->path, t->name);
            cs_philox_seed(&g, seed);
            started = 1;
        }
        const float *ref;
        int owned;
        if (f32_of(st, t, &ref, &owned, err)) return -1;
        size_t n = (size_t)t->numel;
        float *out = malloc(sizeof(float) * n);
        if (!out) {
            if (owned) free((void *)ref);
            return cs_fail(err, CS_ENOMEM, "out of memory");
        }
        cs_philox_randn(&g, out, n);
        char name[160];
        snprintf(name, sizeof name, "philox/%s", t->name);
        int rc = add_abs(r, out, ref, n, TOL_EXACT, name, err);
        free(out);
        if (owned) free((void *)ref);
        if (rc) return -1;
    }
    return started ? 0 : cs_fail(err, CS_EFORMAT, "%s: no seq/ tensors", st->path);
}

/* ---- pipelines.safetensors: who draws what ---- */

typedef enum { FE_KDIFF, FE_A1111, FE_COMFY } front_end;

/* init [B,n] and steps [S,B,n] as the front end draws them */
static void draw_front_end(front_end fe, cs_rng_kind kind, uint64_t seed, uint64_t ensd, int B, size_t n,
                           int S, float *init, float *steps) {
    if (fe == FE_A1111) {
        /* per image: its own generator through our cs_noise source */
        for (int b = 0; b < B; b++) {
            cs_noise_gen g;
            cs_noise_gen_init(&g, kind, seed + (uint64_t)b, ensd);
            cs_noise src = cs_noise_gen_source(&g);
            src.fill(&src, init + (size_t)b * n, n);
            for (int s = 0; s < S; s++) src.fill(&src, steps + ((size_t)s * B + b) * n, n);
        }
        return;
    }
    cs_torch_gen g;
    cs_torch_seed(&g, seed);
    cs_torch_randn(&g, init, (size_t)B * n); /* the whole batch in one call */
    if (fe == FE_COMFY) cs_torch_seed(&g, seed + 1); /* default_noise_sampler on the CPU */
    for (int s = 0; s < S; s++) cs_torch_randn(&g, steps + (size_t)s * B * n, (size_t)B * n);
}

/* seed and ENSD from index.json's pipeline_params */
static int pipelines(const cs_safetensors *st, uint64_t seed, uint64_t ensd, cs_rng_report *r, cs_err *err) {
    static const struct {
        const char *prefix, *steps;
        front_end fe;
        cs_rng_kind kind;
        int ensd;
    } fes[] = {
        {"kdiff_global", "step_noise", FE_KDIFF, CS_RNG_TORCH_CPU, 0},
        {"a1111_cpu", "step_noise", FE_A1111, CS_RNG_TORCH_CPU, 0},
        {"a1111_cpu_ensd", "step_noise", FE_A1111, CS_RNG_TORCH_CPU, 1},
        {"a1111_nv", "step_noise", FE_A1111, CS_RNG_PHILOX, 0},
        {"a1111_nv_ensd", "step_noise", FE_A1111, CS_RNG_PHILOX, 1},
        {"comfyui", "step_noise_cpu", FE_COMFY, CS_RNG_TORCH_CPU, 0},
    };
    for (size_t f = 0; f < sizeof fes / sizeof *fes; f++) {
        char in[96], sn[96], pre[64];
        if (fes[f].ensd) snprintf(pre, sizeof pre, "%s%llu", fes[f].prefix, (unsigned long long)ensd);
        else snprintf(pre, sizeof pre, "%s", fes[f].prefix);
        snprintf(in, sizeof in, "%s/init", pre);
        snprintf(sn, sizeof sn, "%s/%s", pre, fes[f].steps);
        const cs_safetensors_tensor *ti = cs_safetensors_find(st, in), *ts = cs_safetensors_find(st, sn);
        if (!ti || !ts || ti->ndim != 4 || ts->ndim != 5)
            return cs_fail(err, CS_EFORMAT, "%s: %s / %s: missing or not [B,C,h,w] / [S,B,C,h,w]", st->path, in, sn);
        int B = (int)ti->shape[0], S = (int)ts->shape[0];
        size_t n = (size_t)(ti->numel / B);
        float *init = malloc(sizeof(float) * B * n), *steps = malloc(sizeof(float) * (size_t)S * B * n);
        const float *ri = NULL, *rs = NULL;
        int oi = 0, os = 0, rc = -1;
        if (!init || !steps) {
            cs_fail(err, CS_ENOMEM, "out of memory");
            goto next;
        }
        if (f32_of(st, ti, &ri, &oi, err) || f32_of(st, ts, &rs, &os, err)) goto next;
        draw_front_end(fes[f].fe, fes[f].kind, seed, fes[f].ensd ? ensd : 0, B, n, S, init, steps);
        double tol = fes[f].kind == CS_RNG_PHILOX ? TOL_EXACT : TOL_TORCH_FLOAT;
        char name[128];
        snprintf(name, sizeof name, "pipelines/%s", in);
        if (add_abs(r, init, ri, B * n, tol, name, err)) goto next;
        snprintf(name, sizeof name, "pipelines/%s", sn);
        if (add_abs(r, steps, rs, (size_t)S * B * n, tol, name, err)) goto next;
        rc = 0;
    next:
        free(init);
        free(steps);
        if (oi) free((void *)ri);
        if (os) free((void *)rs);
        if (rc) return -1;
    }
    return 0;
}

int cs_rng_cases_run(const char *dir, cs_rng_report *r, cs_err *err) {
    char path[4200];
    cs_safetensors st;
    snprintf(path, sizeof path, "%s/torch_cpu.safetensors", dir);
    if (cs_safetensors_open(&st, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < st.n && !rc; i++) rc = torch_tensor(&st, &st.tensors[i], r, err);
    cs_safetensors_close(&st);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/torch_cpu_sequences.safetensors", dir);
    if (cs_safetensors_open(&st, path, err)) return -1;
    rc = torch_sequences(&st, "gen_seq/", r, err) || torch_sequences(&st, "global_seq/", r, err);
    cs_safetensors_close(&st);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/philox.safetensors", dir);
    if (cs_safetensors_open(&st, path, err)) return -1;
    for (int i = 0; i < st.n && !rc; i++) rc = philox_tensor(&st, &st.tensors[i], r, err);
    if (!rc) rc = philox_sequence(&st, r, err);
    cs_safetensors_close(&st);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/index.json", dir);
    cJSON *idx = load_json(path, err);
    if (!idx) return -1;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(idx, "pipeline_params");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pp, "seed"), *pe = cJSON_GetObjectItemCaseSensitive(pp, "ensd");
    if (!cJSON_IsNumber(ps) || !cJSON_IsNumber(pe) || ps->valuedouble < 0 || pe->valuedouble < 0) {
        cJSON_Delete(idx);
        return cs_fail(err, CS_EFORMAT, "%s: pipeline_params: seed and ensd expected", path);
    }
    uint64_t seed = (uint64_t)ps->valuedouble, ensd = (uint64_t)pe->valuedouble;
    cJSON_Delete(idx);
    snprintf(path, sizeof path, "%s/pipelines.safetensors", dir);
    if (cs_safetensors_open(&st, path, err)) return -1;
    rc = pipelines(&st, seed, ensd, r, err);
    cs_safetensors_close(&st);
    return rc ? -1 : 0;
}

/* ---- euler_a_sdtiny.safetensors: a whole A1111 txt2img with our noise ---- */

/* A noise source that records what its inner source gives. */
typedef struct {
    cs_noise inner;
    float *buf;
    size_t cap, len;
} rec_noise;

static int rec_fill(cs_noise *src, float *out, size_t n) {
    rec_noise *r = src->ctx;
    if (r->inner.fill(&r->inner, out, n)) return -1;
    if (r->len + n <= r->cap) memcpy(r->buf + r->len, out, sizeof(float) * n);
    r->len += n;
    return 0;
}

static cJSON *load_json(const char *path, cs_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_fail(err, CS_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    cJSON *j = NULL;
    if (b && fread(b, 1, (size_t)len, f) == (size_t)len) {
        b[len] = 0;
        j = cJSON_Parse(b);
    }
    fclose(f);
    free(b);
    if (!j) cs_fail(err, CS_EFORMAT, "%s: not JSON", path);
    return j;
}

static int e2e_check(const cs_safetensors *st, const char *name, const float *ours, size_t n,
                     const char *metric, double tol, cs_rng_report *r, cs_err *err) {
    const float *ref;
    int owned;
    if (cs_safetensors_get_f32(st, name, -1, NULL, &ref, &owned, err)) return -1;
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    int rc = -1;
    if ((size_t)t->numel != n) {
        cs_fail(err, CS_EFORMAT, "%s: %s: %lld values, expected %zu", st->path, name, (long long)t->numel, n);
        goto out;
    }
    long long nd;
    double e;
    if (!strcmp(metric, "rel")) {
        e = rel_err(ours, ref, n, &nd);
    } else if (!strcmp(metric, "u8")) {
        /* A1111: astype(uint8) truncates 255 * clamp((x + 1) / 2, 0, 1) */
        e = 0;
        nd = 0;
        for (size_t i = 0; i < n; i++) {
            float v = (ours[i] + 1.0f) / 2.0f;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            double d = fabs(floorf(255.0f * v) - ref[i]);
            nd += d != 0;
            if (!(d <= e)) e = isnan(d) ? INFINITY : d;
        }
    } else {
        e = max_abs(ours, ref, n, &nd);
    }
    rc = add(r, metric, e, tol, nd, (long long)n, err, "euler_a_sdtiny/%s", name);
out:
    if (owned) free((void *)ref);
    return rc;
}

/* Long: one end-to-end case: read its refs, then sample and check each recorded array in order. */
int cs_rng_e2e_run(cs_model *m, const char *dir, cs_rng_report *r, cs_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/index.json", dir);
    cJSON *idx = load_json(path, err);
    if (!idx) return -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(idx, "e2e_params");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(p, "seed"), *jb = cJSON_GetObjectItemCaseSensitive(p, "batch"),
                *jn = cJSON_GetObjectItemCaseSensitive(p, "steps"), *jp = cJSON_GetObjectItemCaseSensitive(p, "prompt"),
                *jg = cJSON_GetObjectItemCaseSensitive(p, "cfg_scale");
    if (!cJSON_IsNumber(js) || !cJSON_IsNumber(jb) || !cJSON_IsNumber(jn) || !cJSON_IsString(jp)) {
        cJSON_Delete(idx);
        return cs_fail(err, CS_EFORMAT, "%s: e2e_params: seed, batch, steps, prompt expected", path);
    }
    uint64_t seed = (uint64_t)js->valuedouble;
    int B = jb->valueint;
    cs_sample_opts o = {.sampler = CS_SAMPLER_EULER_A, .spacing = CS_SPACING_DISCRETE, .steps = jn->valueint,
                        .guidance = cJSON_IsNumber(jg) ? (float)jg->valuedouble : 7.5f, /* README */
                        .whitebox_k = 1};
    snprintf(path, sizeof path, "%s/euler_a_sdtiny.safetensors", dir);
    cs_safetensors st;
    cs_cond *cond = NULL, *uncond = NULL;
    float *noise = NULL, *xs = NULL, *img = NULL, *x = NULL, *tmp_xs = NULL, *tmp_img = NULL;
    float *rec = NULL, *steps_noise = NULL;
    int rc = -1, opened = 0;
    if (cs_safetensors_open(&st, path, err)) goto out;
    opened = 1;
    const cs_safetensors_tensor *tn = cs_safetensors_find(&st, "a1111_cpu/noise");
    if (!tn || tn->ndim != 4 || tn->shape[0] != B || tn->shape[1] != m->channels) {
        cs_fail(err, CS_EFORMAT, "%s: a1111_cpu/noise: missing or not [%d,%d,h,w]", path, B, m->channels);
        goto out;
    }
    int h = (int)tn->shape[2], w = (int)tn->shape[3], K = o.steps, f = m->factor;
    size_t n = (size_t)m->channels * h * w, ni = (size_t)3 * h * f * w * f;
    {
        float sig[1001];
        if (K > 1000) goto out;
        cs_schedule_sigmas(&m->sched, CS_SPACING_DISCRETE, K, sig);
        if (e2e_check(&st, "sigmas", sig, (size_t)K + 1, "rel", 1e-5, r, err)) goto out;
    }
    if (m->cond_new(m, jp->valuestring, &cond, err) || m->cond_new(m, "", &uncond, err)) goto out;
    noise = malloc(sizeof(float) * n * B);
    steps_noise = malloc(sizeof(float) * n * B * (K - 1 > 0 ? K - 1 : 1));
    xs = malloc(sizeof(float) * n * B * (K + 1));
    img = malloc(sizeof(float) * ni * B);
    x = malloc(sizeof(float) * n);
    tmp_xs = malloc(sizeof(float) * n * (K + 1));
    tmp_img = malloc(sizeof(float) * ni);
    rec = malloc(sizeof(float) * n * (K + 1));
    if (!noise || !steps_noise || !xs || !img || !x || !tmp_xs || !tmp_img || !rec) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    static const struct {
        const char *prefix;
        cs_rng_kind kind;
    } src[] = {{"a1111_cpu", CS_RNG_TORCH_CPU}, {"a1111_nv", CS_RNG_PHILOX}};
    for (int k = 0; k < 2; k++) {
        for (int b = 0; b < B; b++) { /* A1111: image b is seed + b, run alone */
            cs_noise_gen g;
            cs_noise_gen_init(&g, src[k].kind, seed + (uint64_t)b, 0);
            rec_noise rn = {cs_noise_gen_source(&g), rec, n * (K + 1), 0};
            cs_noise nz = {rec_fill, &rn};
            cs_sample_trace tr = {.x_steps = tmp_xs};
            int src_rc = cs_sample(m, &o, cond, uncond, h, w, &nz, NULL, x, &tr, err);
            cs_sample_trace_free(&tr);
            if (src_rc || m->decode(m, x, 1, h, w, tmp_img, err)) goto out;
            if (rn.len != n * (size_t)K) {
                cs_fail(err, CS_EINTERNAL, "euler a drew %zu noise values, expected %zu", rn.len, n * (size_t)K);
                goto out;
            }
            memcpy(noise + b * n, rec, sizeof(float) * n);
            for (int s = 0; s + 1 < K; s++)
                memcpy(steps_noise + ((size_t)s * B + b) * n, rec + n * (s + 1), sizeof(float) * n);
            for (int s = 0; s <= K; s++) memcpy(xs + ((size_t)s * B + b) * n, tmp_xs + (size_t)s * n, sizeof(float) * n);
            memcpy(img + b * ni, tmp_img, sizeof(float) * ni);
        }
        double tn_tol = src[k].kind == CS_RNG_PHILOX ? TOL_EXACT : TOL_TORCH_FLOAT;
        char name[96];
        snprintf(name, sizeof name, "%s/noise", src[k].prefix);
        if (e2e_check(&st, name, noise, n * B, "abs", tn_tol, r, err)) goto out;
        snprintf(name, sizeof name, "%s/step_noise", src[k].prefix);
        if (e2e_check(&st, name, steps_noise, n * B * (K - 1), "abs", tn_tol, r, err)) goto out;
        snprintf(name, sizeof name, "%s/x_steps", src[k].prefix);
        if (e2e_check(&st, name, xs, n * B * (K + 1), "rel", TOL_LATENT, r, err)) goto out;
        snprintf(name, sizeof name, "%s/x_final", src[k].prefix);
        if (e2e_check(&st, name, xs + n * B * K, n * B, "rel", TOL_LATENT, r, err)) goto out;
        snprintf(name, sizeof name, "%s/image_u8", src[k].prefix);
        if (e2e_check(&st, name, img, ni * B, "u8", TOL_U8, r, err)) goto out;
    }
    rc = 0;
out:
    if (cond) m->cond_free(m, cond);
    if (uncond) m->cond_free(m, uncond);
    free(noise);
    free(steps_noise);
    free(xs);
    free(img);
    free(x);
    free(tmp_xs);
    free(tmp_img);
    free(rec);
    if (opened) cs_safetensors_close(&st);
    cJSON_Delete(idx);
    return rc;
}
