/* imagehash.c — aHash, dHash, pHash exactly as the imagehash library (see
 * imagehash.h and ../shared/refs/hashes.md for the arithmetic followed). */
#include "index/imagehash.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22 /* Pillow's fixed point for 8-bit resampling */
#define LANCZOS_SUPPORT 3.0

int cs_grey_from_image(cs_grey *out, const cs_image *img, cs_err *err) {
    size_t n = (size_t)img->w * (size_t)img->h;
    out->w = out->h = 0;
    out->px = malloc(n ? n : 1);
    if (!out->px) return cs_fail(err, CS_ENOMEM, "imagehash: out of memory");
    const uint8_t *p = img->rgb;
    for (size_t i = 0; i < n; i++, p += 3)
        out->px[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
    out->w = img->w;
    out->h = img->h;
    return 0;
}

void cs_grey_free(cs_grey *g) {
    if (!g) return;
    free(g->px);
    g->px = NULL;
    g->w = g->h = 0;
}

/* ---- Pillow's LANCZOS resample ---- */

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos(double x) {
    if (-LANCZOS_SUPPORT <= x && x < LANCZOS_SUPPORT) return sinc(x) * sinc(x / 3);
    return 0.0;
}

/* One pass's coefficients: for output index o, taps bounds[2o] ..
 * bounds[2o] + bounds[2o+1] - 1 with fixed-point weights kk[o*ksize + t]. */
typedef struct {
    int ksize;
    int *bounds; /* [out][2]: xmin, count */
    int *kk;     /* [out][ksize] */
} coeffs;

static int coeffs_make(coeffs *c, int in, int out) {
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale;
    double support = LANCZOS_SUPPORT * fs, ss = 1.0 / fs;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out);
    c->kk = calloc((size_t)out * ksize, sizeof(int));
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->kk || !k) {
        free(k);
        return -1;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = lanczos((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double w = ww != 0.0 ? k[x] / ww : k[x];
            c->kk[xx * ksize + x] = w < 0 ? (int)(-0.5 + w * (1 << PRECISION_BITS))
                                          : (int)(0.5 + w * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->kk);
}

/* Coefficients depend only on (in, out) and cost thousands of sin() calls,
 * while an index holds many images of the same few sizes: keep the first
 * CACHE_MAX distinct pairs for the life of the process (read-only once
 * published; the mutex only guards the table). */
#define CACHE_MAX 64
static struct {
    int in, out;
    coeffs c;
} cache[CACHE_MAX];
static int cache_n;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* *c = the coefficients for (in, out); *owned = 1 if the caller must free them. */
static int coeffs_get(coeffs *c, int in, int out, int *owned) {
    *owned = 0;
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < cache_n; i++)
        if (cache[i].in == in && cache[i].out == out) {
            *c = cache[i].c;
            pthread_mutex_unlock(&cache_mu);
            return 0;
        }
    pthread_mutex_unlock(&cache_mu);
    if (coeffs_make(c, in, out)) {
        coeffs_free(c);
        return -1;
    }
    pthread_mutex_lock(&cache_mu);
    if (cache_n < CACHE_MAX && in <= 8192) {
        cache[cache_n].in = in;
        cache[cache_n].out = out;
        cache[cache_n].c = *c;
        cache_n++;
    } else {
        *owned = 1;
    }
    pthread_mutex_unlock(&cache_mu);
    return 0;
}

static inline uint8_t clip8(int v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* The two inner loops of the resample, in integers (exact in any order), with
 * an AVX2 build chosen at run time where the compiler vectorises them. */
#define DOT_BODY                                                                            \
    int acc = 0;                                                                            \
    for (int x = 0; x < n; x++) acc += p[x] * k[x];                                         \
    return acc;
#define AXPY_BODY for (int x = 0; x < n; x++) acc[x] += p[x] * w;

static int dot_plain(const uint8_t *restrict p, const int *restrict k, int n) { DOT_BODY }
static void axpy_plain(int *restrict acc, const uint8_t *restrict p, int w, int n) { AXPY_BODY }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("avx2"), optimize("O3"))) static int
dot_avx2(const uint8_t *restrict p, const int *restrict k, int n) { DOT_BODY }
__attribute__((target("avx2"), optimize("O3"))) static void
axpy_avx2(int *restrict acc, const uint8_t *restrict p, int w, int n) { AXPY_BODY }
static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
#define dot_avx2 dot_plain
#define axpy_avx2 axpy_plain
static int have_avx2(void) { return 0; }
#endif

static inline int dot(const uint8_t *p, const int *k, int n) {
    return have_avx2() ? dot_avx2(p, k, n) : dot_plain(p, k, n);
}
static inline void axpy(int *acc, const uint8_t *p, int w, int n) {
    if (have_avx2()) axpy_avx2(acc, p, w, n);
    else axpy_plain(acc, p, w, n);
}

int cs_grey_resize_lanczos(uint8_t *dst, int dw, int dh, const cs_grey *src, cs_err *err) {
    int sw = src->w, sh = src->h;
    if (dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0)
        return cs_fail(err, CS_EUSAGE, "imagehash: cannot resize %dx%d to %dx%d", sw, sh, dw, dh);
    if (dw == sw && dh == sh) {
        memcpy(dst, src->px, (size_t)sw * sh);
        return 0;
    }
    int need_h = dw != sw, need_v = dh != sh, own_h = 0, own_v = 0;
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    int *acc = NULL;
    int rc = -1;
    if ((need_h && coeffs_get(&ch, sw, dw, &own_h)) || (need_v && coeffs_get(&cv, sh, dh, &own_v)))
        goto out;
    /* rows of the source the vertical pass reads (all rows if there is none) */
    int y0 = 0, y1 = sh;
    if (need_v) {
        y0 = cv.bounds[0];
        y1 = cv.bounds[2 * (dh - 1)] + cv.bounds[2 * (dh - 1) + 1];
    }
    const uint8_t *mid = src->px; /* the horizontal pass's output, rows y0..y1-1 */
    int mw = sw;
    if (need_h) {
        tmp = malloc((size_t)dw * (size_t)(y1 - y0));
        if (!tmp) goto out;
        for (int y = y0; y < y1; y++) {
            const uint8_t *row = src->px + (size_t)y * sw;
            uint8_t *o = tmp + (size_t)(y - y0) * dw;
            for (int xx = 0; xx < dw; xx++) {
                int xmin = ch.bounds[2 * xx], cnt = ch.bounds[2 * xx + 1];
                const int *k = ch.kk + (size_t)xx * ch.ksize;
                o[xx] = clip8((1 << (PRECISION_BITS - 1)) + dot(row + xmin, k, cnt));
            }
        }
        mid = tmp;
        mw = dw;
    } else {
        mid = src->px + (size_t)y0 * sw;
    }
    if (need_v) {
        acc = malloc(sizeof(int) * (size_t)mw);
        if (!acc) goto out;
        for (int yy = 0; yy < dh; yy++) {
            int ymin = cv.bounds[2 * yy] - y0, cnt = cv.bounds[2 * yy + 1];
            const int *k = cv.kk + (size_t)yy * cv.ksize;
            for (int x = 0; x < mw; x++) acc[x] = 1 << (PRECISION_BITS - 1);
            /* integer sums: any order gives the same result, so run across x */
            for (int y = 0; y < cnt; y++) axpy(acc, mid + (size_t)(ymin + y) * mw, k[y], mw);
            for (int x = 0; x < mw; x++) dst[(size_t)yy * dw + x] = clip8(acc[x]);
        }
    } else {
        memcpy(dst, mid, (size_t)dw * dh);
    }
    rc = 0;
out:
    if (rc) cs_fail(err, CS_ENOMEM, "imagehash: out of memory");
    free(tmp);
    free(acc);
    if (own_h) coeffs_free(&ch);
    if (own_v) coeffs_free(&cv);
    return rc;
}

/* ---- the hashes ---- */

static void set_bit(uint8_t *bits, int b) { bits[b / 8] |= (uint8_t)(0x80u >> (b % 8)); }

static int check_n(int n, cs_err *err) {
    if (n < 2 || n > 32) return cs_fail(err, CS_EUSAGE, "imagehash: hash size %d not in 2..32", n);
    return 0;
}

int cs_ahash(const cs_grey *g, int n, uint8_t *bits, cs_err *err) {
    if (check_n(n, err)) return -1;
    uint8_t p[32 * 32];
    if (cs_grey_resize_lanczos(p, n, n, g, err)) return -1;
    /* p > mean(p)  <=>  n*n*p > sum(p), exactly */
    long sum = 0;
    for (int i = 0; i < n * n; i++) sum += p[i];
    memset(bits, 0, (size_t)(n * n + 7) / 8);
    for (int i = 0; i < n * n; i++)
        if ((long)p[i] * n * n > sum) set_bit(bits, i);
    return 0;
}

int cs_dhash(const cs_grey *g, int n, uint8_t *bits, cs_err *err) {
    if (check_n(n, err)) return -1;
    uint8_t p[33 * 32];
    if (cs_grey_resize_lanczos(p, n + 1, n, g, err)) return -1;
    memset(bits, 0, (size_t)(n * n + 7) / 8);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++)
            if (p[r * (n + 1) + c + 1] > p[r * (n + 1) + c]) set_bit(bits, r * n + c);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* C[k][i] = 2 cos(pi k (2i+1) / 2N), k < n: the rows of scipy's DCT-II we keep. */
static void dct_matrix(double *C, int n, int N) {
    for (int k = 0; k < n; k++)
        for (int i = 0; i < N; i++) C[k * N + i] = 2.0 * cos(M_PI * k * (2 * i + 1) / (2.0 * N));
}

static double c8[8 * 32];
static pthread_once_t c8_once = PTHREAD_ONCE_INIT;
static void c8_init(void) { dct_matrix(c8, 8, 32); }

int cs_phash(const cs_grey *g, int n, uint8_t *bits, cs_err *err) {
    if (check_n(n, err)) return -1;
    int N = 4 * n; /* highfreq_factor 4 */
    uint8_t *p = malloc((size_t)N * N);
    double *C = malloc(sizeof(double) * (size_t)n * N), *T = malloc(sizeof(double) * (size_t)n * N);
    double *D = malloc(sizeof(double) * (size_t)n * n), *s = malloc(sizeof(double) * (size_t)n * n);
    int rc = -1;
    if (!p || !C || !T || !D || !s) {
        cs_fail(err, CS_ENOMEM, "imagehash: out of memory");
        goto out;
    }
    if (cs_grey_resize_lanczos(p, N, N, g, err)) goto out;
    /* scipy.fftpack.dct type II, unnormalised: y[k] = 2 sum_i x[i] cos(pi k (2i+1) / 2N) */
    if (n == 8) {
        pthread_once(&c8_once, c8_init);
        memcpy(C, c8, sizeof c8);
    } else {
        dct_matrix(C, n, N);
    }
    /* along axis 0 (rows: y), then axis 1 (x); only the n x n low block is kept */
    for (int k = 0; k < n; k++)
        for (int x = 0; x < N; x++) {
            double a = 0;
            for (int y = 0; y < N; y++) a += C[k * N + y] * p[y * N + x];
            T[k * N + x] = a;
        }
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            double a = 0;
            for (int x = 0; x < N; x++) a += T[r * N + x] * C[c * N + x];
            D[r * n + c] = a;
        }
    memcpy(s, D, sizeof(double) * (size_t)n * n);
    qsort(s, (size_t)n * n, sizeof(double), cmp_double);
    int m = n * n / 2;
    double med = (s[m - 1] + s[m]) / 2; /* numpy.median of an even count */
    memset(bits, 0, (size_t)(n * n + 7) / 8);
    for (int i = 0; i < n * n; i++)
        if (D[i] > med) set_bit(bits, i);
    rc = 0;
out:
    free(p);
    free(C);
    free(T);
    free(D);
    free(s);
    return rc;
}

uint64_t cs_imagehash64(const uint8_t bits[8]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | bits[i];
    return v;
}
