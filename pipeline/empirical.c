/* empirical.c — the empirical (optimal-denoiser) model, see empirical.h. */
#include "pipeline/empirical.h"

#include <ctype.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash_sha256.h"
#include "core/parallel.h"
#include "core/store.h"

typedef struct {
    cs_ref_thumbs t; /* ids, sources, captions (rgb freed after conversion) */
    int d;           /* 3*w*h */
    uint8_t *V;      /* [n][d] references as bytes, CHW: y = v / 127.5 - 1 exactly as stored */
    double *y2;      /* [n] |y_i|^2 */
    float *dots;     /* [n] workspace x.y_i */
    float *wts;      /* [B][n] workspace softmax weights */
    int64_t *active; /* [n] references with a weight that matters */
    int wts_B;       /* rows wts has room for */
    int64_t last_choice;
    float last_weight;
} emp;

struct cs_cond {
    int all;      /* every reference (the empty prompt) */
    int64_t n;    /* selected */
    uint8_t *sel; /* [N] 1 = selected (NULL when all) */
};

/* Next lower-cased word of letters/digits from *p into w (size cap); 0 at end. */
static int next_word(const char **p, char *w, size_t cap) {
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && !(isalnum(*s) || *s >= 0x80)) s++;
    if (!*s) {
        *p = (const char *)s;
        return 0;
    }
    size_t k = 0;
    while (*s && (isalnum(*s) || *s >= 0x80)) {
        if (k + 1 < cap) w[k++] = (char)tolower(*s);
        s++;
    }
    w[k] = 0;
    *p = (const char *)s;
    return 1;
}

static int caption_has_word(const char *caption, const char *word) {
    if (!caption) return 0;
    char w[256];
    const char *p = caption;
    while (next_word(&p, w, sizeof w))
        if (!strcmp(w, word)) return 1;
    return 0;
}

static int emp_cond_new(cs_model *m, const char *text, cs_cond **out, cs_err *err) {
    emp *E = m->impl;
    int64_t N = E->t.n;
    cs_cond *c = calloc(1, sizeof *c);
    if (!c) return cs_fail(err, CS_ENOMEM, "empirical: out of memory");
    char w[256];
    const char *p = text;
    if (!next_word(&p, w, sizeof w)) {
        c->all = 1;
        c->n = N;
        *out = c;
        return 0;
    }
    c->sel = malloc((size_t)N);
    if (!c->sel) {
        free(c);
        return cs_fail(err, CS_ENOMEM, "empirical: out of memory");
    }
    memset(c->sel, 1, (size_t)N);
    p = text;
    while (next_word(&p, w, sizeof w))
        for (int64_t i = 0; i < N; i++)
            if (c->sel[i] && !caption_has_word(E->t.captions[i], w)) c->sel[i] = 0;
    for (int64_t i = 0; i < N; i++) c->n += c->sel[i];
    if (!c->n) {
        free(c->sel);
        free(c);
        return cs_fail(err, CS_ENOTFOUND,
                       "%s: no reference caption contains every word of \"%s\"", m->name, text);
    }
    *out = c;
    return 0;
}

static void emp_cond_free(cs_model *m, cs_cond *c) {
    (void)m;
    if (!c) return;
    free(c->sel);
    free(c);
}

int64_t cs_empirical_cond_size(const cs_cond *c) { return c ? c->n : 0; }

/* ---- kernels: bytes x floats; AVX2+FMA where the CPU has it, plain C otherwise ---- */

__attribute__((target("avx2,fma"))) static double dot_u8_avx2(const float *x, const uint8_t *v, int d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 32 <= d; k += 32) {
        __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(v + k))));
        __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(v + k + 8))));
        __m256 f2 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(v + k + 16))));
        __m256 f3 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(v + k + 24))));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), f0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), f1, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 16), f2, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 24), f3, a3);
    }
    float l[4][8];
    _mm256_storeu_ps(l[0], a0), _mm256_storeu_ps(l[1], a1), _mm256_storeu_ps(l[2], a2), _mm256_storeu_ps(l[3], a3);
    double s = 0;
    for (int j = 0; j < 8; j++) s += (double)l[0][j] + l[1][j] + l[2][j] + l[3][j];
    for (; k < d; k++) s += (double)x[k] * v[k];
    return s;
}

static double dot_u8_c(const float *x, const uint8_t *v, int d) {
    float a[8] = {0};
    int k = 0;
    for (; k + 8 <= d; k += 8)
        for (int j = 0; j < 8; j++) a[j] += x[k + j] * (float)v[k + j];
    double s = 0;
    for (int j = 0; j < 8; j++) s += a[j];
    for (; k < d; k++) s += (double)x[k] * v[k];
    return s;
}

__attribute__((target("avx2,fma"))) static void axpy_u8_avx2(float *acc, float w, const uint8_t *v, int n) {
    __m256 ww = _mm256_set1_ps(w);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(v + k))));
        _mm256_storeu_ps(acc + k, _mm256_fmadd_ps(ww, f, _mm256_loadu_ps(acc + k)));
    }
    for (; k < n; k++) acc[k] += w * v[k];
}

static void axpy_u8_c(float *acc, float w, const uint8_t *v, int n) {
    for (int k = 0; k < n; k++) acc[k] += w * v[k];
}

static int has_avx2(void) {
    static int r = -1;
    if (r < 0) {
        __builtin_cpu_init();
        r = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return r;
}

static double dot_u8(const float *x, const uint8_t *v, int d) {
    return has_avx2() ? dot_u8_avx2(x, v, d) : dot_u8_c(x, v, d);
}

static void axpy_u8(float *acc, float w, const uint8_t *v, int n) {
    if (has_avx2()) axpy_u8_avx2(acc, w, v, n);
    else axpy_u8_c(acc, w, v, n);
}

typedef struct {
    emp *E;
    const float *x; /* [d] */
    double xsum;    /* sum_k x[k] */
} dots_ctx;

#define DOT_CHUNK 32

/* dots[i] = x . y_i = (x . v_i) / 127.5 - sum(x), for a chunk of references */
static void dots_chunk(void *vctx, int64_t c, int thread) {
    (void)thread;
    dots_ctx *D = vctx;
    emp *E = D->E;
    int64_t i0 = c * DOT_CHUNK, i1 = i0 + DOT_CHUNK < E->t.n ? i0 + DOT_CHUNK : E->t.n;
    for (int64_t i = i0; i < i1; i++)
        E->dots[i] = (float)(dot_u8(D->x, E->V + (size_t)i * E->d, E->d) / 127.5 - D->xsum);
}

typedef struct {
    emp *E;
    int B;
    int64_t n_active;
    float *out;       /* [B][d] */
    const float *wsum; /* [B] sum of the weights used (1 up to rounding) */
} wsum_ctx;

#define WSUM_SLICE 512

/* out[b][k] = sum_i w[b][i] y_i[k] over the active references, one slice of k */
static void wsum_slice(void *vctx, int64_t c, int thread) {
    (void)thread;
    wsum_ctx *W = vctx;
    emp *E = W->E;
    int d = E->d, k0 = (int)c * WSUM_SLICE, len = d - k0 < WSUM_SLICE ? d - k0 : WSUM_SLICE;
    float acc[4][WSUM_SLICE];
    for (int b = 0; b < W->B; b++) memset(acc[b], 0, sizeof(float) * len);
    for (int64_t a = 0; a < W->n_active; a++) {
        int64_t i = E->active[a];
        const uint8_t *v = E->V + (size_t)i * d + k0;
        for (int b = 0; b < W->B; b++) {
            float w = E->wts[(size_t)b * E->t.n + i];
            if (w != 0) axpy_u8(acc[b], w, v, len);
        }
    }
    for (int b = 0; b < W->B; b++)
        for (int k = 0; k < len; k++) W->out[(size_t)b * d + k0 + k] = acc[b][k] / 127.5f - W->wsum[b];
}

/* Softmax weights of one branch into wts[b] (normalised; 0 below 1e-12 of
 * the largest); marks used references in mark[]. Returns the sum of weights. */
static float softmax_weights(emp *E, const cs_cond *c, float sigma, int b, uint8_t *mark) {
    int64_t N = E->t.n;
    float *w = E->wts + (size_t)b * N;
    double inv = 1.0 / (2.0 * (double)sigma * (double)sigma);
    /* logit_i = (2 x.y_i - |y_i|^2) / 2 sigma^2  (|x|^2 is the same for all i) */
    double mx = -INFINITY;
    int64_t arg = -1;
    for (int64_t i = 0; i < N; i++) {
        if (!c->all && !c->sel[i]) continue;
        double l = (2.0 * E->dots[i] - E->y2[i]) * inv;
        if (l > mx) {
            mx = l;
            arg = i;
        }
    }
    double sum = 0;
    const double cut = log(1e-12);
    for (int64_t i = 0; i < N; i++) {
        w[i] = 0;
        if (!c->all && !c->sel[i]) continue;
        double l = (2.0 * E->dots[i] - E->y2[i]) * inv - mx;
        if (l < cut) continue;
        w[i] = (float)exp(l);
        sum += w[i];
    }
    float s = 0;
    for (int64_t i = 0; i < N; i++)
        if (w[i] != 0) {
            w[i] = (float)(w[i] / sum);
            s += w[i];
            mark[i] = 1;
        }
    E->last_choice = arg;
    E->last_weight = (float)(1.0 / sum);
    return s;
}

static int emp_eval(cs_model *m, const float *x, const float *ts, cs_cond *const *conds, int B,
                    int h, int w, float *out, cs_err *err) {
    emp *E = m->impl;
    if (h != E->t.h || w != E->t.w)
        return cs_fail(err, CS_EUSAGE, "%s: works at %dx%d, not %dx%d", m->name, E->t.w, E->t.h, w, h);
    int d = E->d, nt = cs_threads();
    int64_t N = E->t.n;
    if (B > E->wts_B) {
        float *nw = realloc(E->wts, sizeof(float) * (size_t)N * B);
        if (!nw) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
        E->wts = nw;
        E->wts_B = B;
    }
    uint8_t *mark = calloc((size_t)N, 1);
    if (!mark) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    /* rows of the batch are handled in groups of up to 4 that share the same x
     * (classifier-free guidance batches one x twice): one pass for the dot
     * products, one for the weighted sums */
    for (int b0 = 0; b0 < B;) {
        const float *xb = x + (size_t)b0 * d;
        int g = 1;
        while (b0 + g < B && g < 4 && !memcmp(xb, x + (size_t)(b0 + g) * d, sizeof(float) * d)) g++;
        double xsum = 0;
        for (int k = 0; k < d; k++) xsum += xb[k];
        dots_ctx dc = {E, xb, xsum};
        cs_parallel_for(nt, (N + DOT_CHUNK - 1) / DOT_CHUNK, dots_chunk, &dc);
        memset(mark, 0, (size_t)N);
        float wsum[4];
        for (int j = 0; j < g; j++)
            wsum[j] = softmax_weights(E, conds[b0 + j], ts[b0 + j], j, mark);
        int64_t na = 0;
        for (int64_t i = 0; i < N; i++)
            if (mark[i]) E->active[na++] = i;
        wsum_ctx wc = {E, g, na, out + (size_t)b0 * d, wsum};
        cs_parallel_for(na > 64 ? nt : 1, (d + WSUM_SLICE - 1) / WSUM_SLICE, wsum_slice, &wc);
        b0 += g;
    }
    free(mark);
    return 0;
}

static int emp_identity(cs_model *m, const float *in, int B, int h, int w, float *out, cs_err *err) {
    (void)err;
    memcpy(out, in, sizeof(float) * (size_t)B * m->channels * h * w);
    return 0;
}

static void emp_destroy(cs_model *m) {
    emp *E = m->impl;
    if (!E) return;
    cs_ref_thumbs_free(&E->t);
    free(E->V);
    free(E->y2);
    free(E->dots);
    free(E->wts);
    free(E->active);
    free(E);
    m->impl = NULL;
}

typedef struct {
    emp *E;
    const uint8_t *rgb;
} conv_ctx;

static void convert_ref(void *vctx, int64_t i, int thread) {
    (void)thread;
    conv_ctx *c = vctx;
    emp *E = c->E;
    int hw = E->t.w * E->t.h;
    const uint8_t *src = c->rgb + (size_t)i * hw * 3;
    uint8_t *v = E->V + (size_t)i * E->d;
    double s = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < hw; p++) {
            v[ch * hw + p] = src[p * 3 + ch];
            double y = src[p * 3 + ch] / 127.5 - 1.0;
            s += y * y;
        }
    E->y2[i] = s;
}

int cs_model_empirical_new(cs_model **out, cs_ref_thumbs *t, const char *name, cs_err *err) {
    *out = NULL;
    if (t->n <= 0) {
        cs_ref_thumbs_free(t);
        return cs_fail(err, CS_EUSAGE, "%s: the index has no references with thumbnails", name);
    }
    cs_model *m = calloc(1, sizeof *m);
    emp *E = calloc(1, sizeof *E);
    if (!m || !E) {
        free(m);
        free(E);
        cs_ref_thumbs_free(t);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", name);
    }
    E->t = *t;
    memset(t, 0, sizeof *t);
    E->d = 3 * E->t.w * E->t.h;
    int64_t N = E->t.n;
    E->V = malloc((size_t)N * E->d);
    E->y2 = malloc(sizeof(double) * (size_t)N);
    E->dots = malloc(sizeof(float) * (size_t)N);
    E->wts = malloc(sizeof(float) * (size_t)N * 2);
    E->wts_B = 2;
    E->active = malloc(sizeof(int64_t) * (size_t)N);
    E->last_choice = -1;
    m->impl = E;
    m->destroy = emp_destroy;
    if (!E->V || !E->y2 || !E->dots || !E->wts || !E->active) {
        cs_model_free(m);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld references", name, (long long)N);
    }
    conv_ctx cc = {E, E->t.rgb};
    cs_parallel_for(cs_threads(), N, convert_ref, &cc);
    /* identity: the thumbnails and captions */
    char h1[65];
    cs_sha256_hex(E->t.rgb, (size_t)N * E->d, h1);
    size_t caplen = 65;
    for (int64_t i = 0; i < N; i++) caplen += (E->t.captions[i] ? strlen(E->t.captions[i]) : 0) + 1;
    char *cat = malloc(caplen);
    if (cat) {
        size_t k = 0;
        memcpy(cat, h1, 64);
        k = 64;
        for (int64_t i = 0; i < N; i++) {
            const char *c = E->t.captions[i] ? E->t.captions[i] : "";
            size_t l = strlen(c);
            memcpy(cat + k, c, l);
            k += l;
            cat[k++] = '\n';
        }
        cs_sha256_hex(cat, k, m->hash);
        free(cat);
    } else {
        memcpy(m->hash, h1, 65);
    }
    cs_ref_thumbs_free_pixels(&E->t);
    snprintf(m->kind, sizeof m->kind, "empirical");
    snprintf(m->name, sizeof m->name, "%s", name);
    m->pred = CS_PRED_X0;
    cs_schedule_sd(&m->sched);
    m->channels = 3;
    m->factor = 1;
    m->fixed_size = E->t.w;
    m->eval = emp_eval;
    m->cond_new = emp_cond_new;
    m->cond_free = emp_cond_free;
    m->decode = emp_identity;
    m->encode = emp_identity;
    *out = m;
    return 0;
}

int cs_model_empirical_open(cs_model **out, const char *db, cs_err *err) {
    *out = NULL;
    cs_store *s;
    if (cs_store_open_readonly(&s, db, err)) return -1;
    cs_ref_thumbs t;
    memset(&t, 0, sizeof t);
    int rc = cs_refs_load_thumbs(s, &t, err);
    cs_store_close(s);
    if (rc) return -1;
    char name[300];
    snprintf(name, sizeof name, "empirical:%s", db);
    return cs_model_empirical_new(out, &t, name, err);
}

int cs_empirical_last_choice(const cs_model *m, int64_t *ref_id, const char **source, float *weight) {
    if (strcmp(m->kind, "empirical")) return -1;
    const emp *E = m->impl;
    if (E->last_choice < 0) return -1;
    if (ref_id) *ref_id = E->t.ids[E->last_choice];
    if (source) *source = E->t.sources[E->last_choice];
    if (weight) *weight = E->last_weight;
    return 0;
}
