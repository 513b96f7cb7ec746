/* gemm_avx512.c — see gemm.h. Compiled with -mavx512f/bw/dq/vl/bf16 (Makefile):
 * enter only through nn_sgemm's cpuid check.
 *
 * BLIS-style: op(A) is packed once per call into panels of MR rows, k-major
 * ([k][MR], so one k step is MR broadcasts) — or, fp32 and A not transposed,
 * read in place (14 row streams); each tile of C (MB x NB) packs its columns
 * of op(B) per block of K, one panel of NR columns at a time ([k][NR], two
 * zmm loads per k step), just before use. The micro-kernel keeps an MR x NR
 * block of C in 28 zmm registers: per k step 2 loads, 14 broadcasts, 28 FMAs.
 * The B panel (KC x NR, 32 KB) stays in L1 while the kernel walks the tile's
 * A panels (MB x KC, 336 KB, in L2).
 *
 * bf16: pairs of k are packed together (the low half of each 32-bit lane is
 * the even k), vdpbf16ps then does two k steps per instruction. */
#include "core/gemm.h"
#include "core/gemm_internal.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"

#define MR 14
#define NR 32
#define KC 256            /* k per packed block (bf16: 128 pairs) */
#define MB (24 * MR)      /* rows of C per tile */
#define NB_MAX 512        /* columns of C per tile (fewer for narrow C, see tiles()) */

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, bf16;
    float alpha, beta;
    const float *A, *B;
    float *C;
    void *apack;          /* panels of op(A): fp32 [K][MR] or bf16 pairs [ceil(K/2)][MR] */
    size_t apanel;        /* elements (floats or pair words) per A panel */
    char *bbuf;           /* one B block per thread */
    size_t bstride;       /* bytes per thread */
    int nb, tiles_n;
    int a_direct;         /* fp32, A not transposed: full panels read from A in place,
                             only the last (partial) panel packed, as apack's panel 0 */
} job;

/* ---- packing ------------------------------------------------------------------------ */

/* r[0..15] := the 16 x 16 transpose of rows r[0..15] (lane j of r[i] becomes
 * lane i of r[j]). */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* u[4g + c]: columns c, c+4, c+8, c+12 of rows 4g..4g+3 */
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int c = 0; c < 4; c++) {
        __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), w = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 v2 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd), w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(v, w, 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(v, w, 0xdd);
        r[c + 4] = _mm512_shuffle_f32x4(v2, w2, 0x88);
        r[c + 12] = _mm512_shuffle_f32x4(v2, w2, 0xdd);
    }
}

/* r[j] (j < 16) := lanes i < nrows hold src[i * ld + j] for j < ncols, zeros
 * elsewhere: 16 columns of a row-major block, as vectors across its rows. */
static inline void load_cols(__m512 r[16], const float *src, size_t ld, int nrows, int ncols) {
    __mmask16 km = (__mmask16)(ncols >= 16 ? 0xffff : (1u << ncols) - 1);
    for (int i = 0; i < 16; i++) r[i] = i < nrows ? _mm512_maskz_loadu_ps(km, src + (size_t)i * ld) : _mm512_setzero_ps();
    transpose16(r);
}

/* rounding to bf16, nearest even; NaN stays NaN */
static inline uint32_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* 16 lanes: (bf16(hi) << 16) | bf16(lo), the same rounding as bf16_bits. */
static inline __m512i bf16_pair16(__m512 lo, __m512 hi) {
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    __m512i l = _mm512_castps_si512(lo), h = _mm512_castps_si512(hi);
    __m512i rl = _mm512_add_epi32(l, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(l, 16), one)));
    __m512i rh = _mm512_add_epi32(h, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(h, 16), one)));
    /* NaN lanes: quiet, no rounding carry into the exponent */
    __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    __mmask16 nl = _mm512_cmpgt_epi32_mask(_mm512_and_si512(l, absmask), inf);
    __mmask16 nh = _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, absmask), inf);
    rl = _mm512_mask_or_epi32(rl, nl, l, _mm512_set1_epi32(0x400000));
    rh = _mm512_mask_or_epi32(rh, nh, h, _mm512_set1_epi32(0x400000));
    return _mm512_or_si512(_mm512_srli_epi32(rl, 16), _mm512_and_si512(rh, _mm512_set1_epi32((int)0xffff0000u)));
}

/* Stores the vectors v[0..n) (n = k values, each a vector across columns) as
 * rows of a panel with `width` lanes from lane 0 (mask wm): fp32 one row per
 * k, bf16 one row per pair of k (rows past n are zeros). kbase is even. */
static inline void put_rows(void *d, int bf16, int width, __mmask16 wm, const __m512 *v, int n, int kbase) {
    if (!bf16) {
        float *f = (float *)d;
        for (int j = 0; j < n; j++) _mm512_mask_storeu_ps(f + (size_t)(kbase + j) * width, wm, v[j]);
    } else {
        uint32_t *w = (uint32_t *)d;
        for (int j = 0; j < n; j += 2) {
            __m512 hi = j + 1 < n ? v[j + 1] : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(w + (size_t)((kbase + j) / 2) * width, wm, bf16_pair16(v[j], hi));
        }
    }
}

/* A panel p: rows p*MR.., all of K, as [K][MR] (bf16: [ceil(K/2)][MR] pairs);
 * rows past M are zeros. */
static void pack_a_panel(void *vg, int64_t p, int thread) {
    (void)thread;
    const job *g = vg;
    int i0 = (int)p * MR, m = g->M - i0 < MR ? g->M - i0 : MR;
    size_t slot = g->a_direct ? 0 : (size_t)p;
    void *d = g->bf16 ? (void *)((uint32_t *)g->apack + slot * g->apanel)
                      : (void *)((float *)g->apack + slot * g->apanel);
    const __mmask16 wm = (__mmask16)((1u << MR) - 1);
    __m512 v[16];
    for (int k0 = 0; k0 < g->K; k0 += 16) {
        int kn = g->K - k0 < 16 ? g->K - k0 : 16;
        if (g->ta) { /* row k of A holds op(A)[i0.., k] */
            __mmask16 mk = (__mmask16)((1u << m) - 1);
            for (int j = 0; j < kn; j++) v[j] = _mm512_maskz_loadu_ps(mk, g->A + (size_t)(k0 + j) * g->lda + i0);
        } else {
            load_cols(v, g->A + (size_t)i0 * g->lda + k0, (size_t)g->lda, m, kn);
        }
        put_rows(d, g->bf16, MR, wm, v, kn, k0);
    }
}

/* op(B)[k0..k0+kc, j0..j0+nb] into panels of NR columns: fp32 [kc][NR] or
 * bf16 pairs [ceil(kc/2)][NR]; columns past nb are zeros. */
static void pack_b(const job *g, void *dst, int k0, int kc, int j0, int nb) {
    int npan = (nb + NR - 1) / NR, kp = (kc + 1) / 2;
    __m512 v[16];
    for (int jp = 0; jp < npan; jp++) {
        int jj = j0 + jp * NR, n = nb - jp * NR < NR ? nb - jp * NR : NR;
        void *d = g->bf16 ? (void *)((uint32_t *)dst + (size_t)jp * kp * NR) : (void *)((float *)dst + (size_t)jp * kc * NR);
        for (int h = 0; h < 2; h++) { /* columns jj + 16h .. */
            int nh = n - 16 * h < 0 ? 0 : n - 16 * h > 16 ? 16 : n - 16 * h;
            __mmask16 cm = (__mmask16)(nh >= 16 ? 0xffff : (1u << nh) - 1);
            void *dh = g->bf16 ? (void *)((uint32_t *)d + 16 * h) : (void *)((float *)d + 16 * h);
            for (int kk = 0; kk < kc; kk += 16) {
                int kn = kc - kk < 16 ? kc - kk : 16;
                if (!g->tb) {
                    for (int j = 0; j < kn; j++)
                        v[j] = _mm512_maskz_loadu_ps(cm, g->B + (size_t)(k0 + kk + j) * g->ldb + jj + 16 * h);
                } else { /* op(B)[k][j] = B[j][k]: 16 rows of B, transposed */
                    load_cols(v, g->B + (size_t)(jj + 16 * h) * g->ldb + k0 + kk, (size_t)g->ldb, nh, kn);
                }
                put_rows(dh, g->bf16, NR, 0xffff, v, kn, kk);
            }
        }
    }
}

/* ---- micro-kernels -------------------------------------------------------------------- */

/* Writes the MR x NR sums (rows < m, columns under masks m0/m1) into C:
 * first block: C = beta C + alpha acc (beta = 0: C not read); later blocks:
 * C += alpha acc. */
#define STORE_ROW(i)                                                                           \
    if ((i) < m) {                                                                             \
        float *p = c + (size_t)(i) * ldc;                                                      \
        __m512 o0, o1;                                                                         \
        if (!first) {                                                                          \
            o0 = _mm512_fmadd_ps(va, c##i##a, _mm512_maskz_loadu_ps(m0, p));                   \
            o1 = _mm512_fmadd_ps(va, c##i##b, _mm512_maskz_loadu_ps(m1, p + 16));              \
        } else if (beta == 0.f) {                                                              \
            o0 = _mm512_mul_ps(va, c##i##a);                                                   \
            o1 = _mm512_mul_ps(va, c##i##b);                                                   \
        } else {                                                                               \
            o0 = _mm512_fmadd_ps(va, c##i##a, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, p)));  \
            o1 = _mm512_fmadd_ps(va, c##i##b, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, p + 16))); \
        }                                                                                      \
        _mm512_mask_storeu_ps(p, m0, o0);                                                      \
        _mm512_mask_storeu_ps(p + 16, m1, o1);                                                 \
    }

#define DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
#define ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define STORE_ALL                                                                              \
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                        \
    ALL(STORE_ROW)

/* a: op(A)[i][k] at a[i * rs + k * ks] (packed panel: rs = 1, ks = MR; rows of
 * a row-major A read in place: rs = lda, ks = 1). b: row k at b + k * ldb
 * (packed: ldb = NR, aligned; bmask: columns under m0/m1 loaded, others 0). */
static inline __attribute__((always_inline)) void kern_f32(int kc, const float *restrict a, size_t rs, size_t ks,
                                                           const float *restrict b, size_t ldb, int bmask, float *c,
                                                           int ldc, int m, __mmask16 m0, __mmask16 m1, float alpha,
                                                           float beta, int first) {
    ALL(DECL)
#define FMA_ROW(i)                                                                             \
    {                                                                                          \
        __m512 s = _mm512_set1_ps(a[(i) * rs]);                                                \
        c##i##a = _mm512_fmadd_ps(s, b0, c##i##a);                                             \
        c##i##b = _mm512_fmadd_ps(s, b1, c##i##b);                                             \
    }
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m512 b0, b1;
        if (bmask) {
            b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        } else {
            b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        }
        ALL(FMA_ROW)
        a += ks, b += ldb;
    }
    STORE_ALL
}

void cs_gemm_kern_strided(int kc, const float *a, size_t rs, size_t ks, const float *b, size_t ldb, float *c, int ldc,
                          int m, unsigned m0, unsigned m1, float alpha, float beta, int first) {
    kern_f32(kc, a, rs, ks, b, ldb, 1, c, ldc, m, (__mmask16)m0, (__mmask16)m1, alpha, beta, first);
}

/* the two uses of kern_f32, each compiled with its strides known or not */
static void kern_f32_packed(int kc, const float *a, const float *b, float *c, int ldc, int m, __mmask16 m0,
                            __mmask16 m1, float alpha, float beta, int first) {
    kern_f32(kc, a, 1, MR, b, NR, 0, c, ldc, m, m0, m1, alpha, beta, first);
}
static void kern_f32_direct(int kc, const float *a, size_t lda, const float *b, float *c, int ldc, __mmask16 m0,
                            __mmask16 m1, float alpha, float beta, int first) {
    kern_f32(kc, a, lda, 1, b, NR, 0, c, ldc, MR, m0, m1, alpha, beta, first);
}

static void kern_bf16(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c, int ldc, int m,
                      __mmask16 m0, __mmask16 m1, float alpha, float beta, int first) {
    ALL(DECL)
#define DP_ROW(i)                                                                              \
    {                                                                                          \
        __m512bh s = (__m512bh)_mm512_set1_epi32((int)a[i]);                                   \
        c##i##a = _mm512_dpbf16_ps(c##i##a, s, b0);                                            \
        c##i##b = _mm512_dpbf16_ps(c##i##b, s, b1);                                            \
    }
#pragma GCC unroll 2
    for (int q = 0; q < kp; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 16));
        ALL(DP_ROW)
        a += MR, b += NR;
    }
    STORE_ALL
}

/* The bf16 kernel with strided A and B, for the fused attention
 * (core/attn_avx512.c): a's pair word for row i, pair q at a[i * rs + q * ks]
 * (all MR rows read: the caller pads), b's pair row q at b + q * ldb (32
 * lanes read: the caller pads), C as kern_f32's (rows < m, columns under the
 * masks). */
void cs_gemm_kern_bf16_strided(int kp, const uint32_t *a, size_t rs, size_t ks, const uint32_t *b, size_t ldb, float *c,
                               int ldc, int m, unsigned um0, unsigned um1, float alpha, float beta, int first) {
    __mmask16 m0 = (__mmask16)um0, m1 = (__mmask16)um1;
    ALL(DECL)
#define DPS_ROW(i)                                                                             \
    {                                                                                          \
        __m512bh s = (__m512bh)_mm512_set1_epi32((int)a[(i) * rs]);                            \
        c##i##a = _mm512_dpbf16_ps(c##i##a, s, b0);                                            \
        c##i##b = _mm512_dpbf16_ps(c##i##b, s, b1);                                            \
    }
#pragma GCC unroll 2
    for (int q = 0; q < kp; q++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + 16));
        ALL(DPS_ROW)
        a += ks, b += ldb;
    }
    STORE_ALL
}

/* ---- tiles ------------------------------------------------------------------------------ */

/* K cut into blocks of at most KC, all of one size (a multiple of 16), so no
 * block is a short remainder that pays a full pass over C for a few k. */
static int k_block(int K) {
    int nblk = (K + KC - 1) / KC;
    int kb = (K + nblk - 1) / nblk;
    return (kb + 15) / 16 * 16;
}

/* One tile of C: per block of K, per panel of NR columns: pack that panel of
 * op(B) (KC x NR, 32 KB: it stays in L1) and run it against every A panel of
 * the tile. Packing just before use keeps the panel hot; op(B) is read from
 * memory once per tile row. */
static void tile(void *vg, int64_t t, int thread) {
    const job *g = vg;
    int tm = (int)(t / g->tiles_n), tn = (int)(t % g->tiles_n);
    int i0 = tm * MB, j0 = tn * g->nb;
    int mb = g->M - i0 < MB ? g->M - i0 : MB, nb = g->N - j0 < g->nb ? g->N - j0 : g->nb;
    void *bp = g->bbuf + (size_t)thread * g->bstride;
    int kb = k_block(g->K);
    for (int k0 = 0; k0 < g->K; k0 += kb) {
        int kc = g->K - k0 < kb ? g->K - k0 : kb;
        for (int jp = 0; jp < nb; jp += NR) {
            int n = nb - jp < NR ? nb - jp : NR;
            pack_b(g, bp, k0, kc, j0 + jp, n);
            __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
            __mmask16 m1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
            int npan = (mb + MR - 1) / MR, pf = (kc + npan - 1) / npan;
            for (int ip = 0; ip < mb; ip += MR) {
                int m = mb - ip < MR ? mb - ip : MR;
                float *c = g->C + (size_t)(i0 + ip) * g->ldc + j0 + jp;
                if (!g->tb && jp + NR < nb) { /* the next panel's rows of B, a share per A panel */
                    int r0 = ip / MR * pf;
                    for (int r = r0; r < r0 + pf && r < kc; r++) {
                        const char *row = (const char *)(g->B + (size_t)(k0 + r) * g->ldb + j0 + jp + NR);
                        _mm_prefetch(row, _MM_HINT_T0);
                        _mm_prefetch(row + 64, _MM_HINT_T0);
                    }
                }
                size_t panel = (size_t)(i0 + ip) / MR;
                if (!g->bf16) {
                    const float *b = (const float *)bp;
                    if (g->a_direct && m == MR) /* full rows of A in place */
                        kern_f32_direct(kc, g->A + (size_t)(i0 + ip) * g->lda + k0, (size_t)g->lda, b, c, g->ldc,
                                        m0, m1, g->alpha, g->beta, k0 == 0);
                    else
                        kern_f32_packed(kc, (const float *)g->apack + (g->a_direct ? 0 : panel * g->apanel) +
                                        (size_t)k0 * MR, b, c, g->ldc, m, m0, m1, g->alpha, g->beta, k0 == 0);
                } else {
                    int kp = (kc + 1) / 2;
                    const uint32_t *a = (const uint32_t *)g->apack + panel * g->apanel + (size_t)(k0 / 2) * MR;
                    kern_bf16(kp, a, (const uint32_t *)bp, c, g->ldc, m, m0, m1, g->alpha, g->beta, k0 == 0);
                }
            }
        }
    }
}

/* The packed A of the latest call is kept for the next (grown, never shrunk):
 * bf16 packs the whole weight matrix per call (29 MB for a 1280 x 11520
 * conv), and a fresh mapping of that size faulted in page by page cost as
 * much as the packing (perf: bf16 UNet at 32x32 slower than fp32). A call
 * meeting it busy (another thread's product) allocates its own. Reachable
 * from here until exit, so no leak. */
static struct {
    pthread_mutex_t mu;
    void *p;
    size_t cap;
} g_apack = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void *apack_get(size_t bytes, int *cached) {
    *cached = 0;
    if (pthread_mutex_trylock(&g_apack.mu) == 0) {
        if (g_apack.cap < bytes) {
            free(g_apack.p);
            g_apack.p = aligned_alloc(64, bytes);
            g_apack.cap = g_apack.p ? bytes : 0;
        }
        if (g_apack.p) {
            *cached = 1;
            return g_apack.p;
        }
        pthread_mutex_unlock(&g_apack.mu);
    }
    return aligned_alloc(64, bytes);
}

static void apack_put(void *p, int cached) {
    if (cached) pthread_mutex_unlock(&g_apack.mu);
    else free(p);
}

/* Columns per tile: NB_MAX, halved (to 64) while C would have fewer than 8
 * tiles, so narrow products still spread over threads. Shape only. */
static int tile_cols(int M, int N) {
    int tm = (M + MB - 1) / MB, nb = NB_MAX;
    while (nb > 64 && (int64_t)tm * ((N + nb - 1) / nb) < 8) nb /= 2;
    return nb;
}

int cs_gemm_avx512(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, int bf16, int nthreads) {
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0 || alpha == 0.f) { /* C = beta C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float *p = C + (size_t)i * ldc + j;
                *p = beta == 0.f ? 0.f : beta * *p;
            }
        return 0;
    }
    job g = {ta, tb, M, N, K, lda, ldb, ldc, bf16 ? 1 : 0, alpha, beta, A, B, C, NULL, 0, NULL, 0, 0, 0, 0};
    /* Reading A's rows in place saves packing it (a full pass over the
     * weights per call, which dominated narrow products such as 1280 x 128 x
     * 11520), at the cost of 14 load streams in the kernel. */
    g.a_direct = !bf16 && !ta;
    int panels = (M + MR - 1) / MR;
    size_t kelems = bf16 ? (size_t)(K + 1) / 2 : (size_t)K; /* 4-byte elements per panel row */
    g.apanel = kelems * MR;
    g.nb = tile_cols(M, N);
    g.tiles_n = (N + g.nb - 1) / g.nb;
    int64_t tiles = (int64_t)((M + MB - 1) / MB) * g.tiles_n;
    int nt = nthreads < 1 ? 1 : nthreads;
    if (nt > tiles) nt = (int)tiles;
    g.bstride = (size_t)KC * NR * 4; /* one panel of op(B) */
    int packed = g.a_direct ? (M % MR != 0) : panels;
    int cached;
    g.apack = apack_get(((size_t)(packed ? packed : 1) * g.apanel * 4 + 63) / 64 * 64, &cached);
    g.bbuf = aligned_alloc(64, g.bstride * nt);
    if (!g.apack || !g.bbuf) {
        if (g.apack) apack_put(g.apack, cached);
        free(g.bbuf);
        return -1;
    }
    double work = (double)M * N * K;
    int ntp = work < (1 << 21) ? 1 : nt;
    if (g.a_direct) {
        if (packed) pack_a_panel(&g, panels - 1, 0);
    } else {
        cs_parallel_for(ntp, panels, pack_a_panel, &g);
    }
    cs_parallel_for(ntp, tiles, tile, &g);
    apack_put(g.apack, cached);
    free(g.bbuf);
    return 0;
}

float cs_gemm_fma_loop(long iters) {
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
#define FV(i) __m512 r##i = _mm512_set1_ps((float)(i));
#define FF(i) r##i = _mm512_fmadd_ps(r##i, x, y);
#define FA(i) s = _mm512_add_ps(s, r##i);
#define ALL24(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                 X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
    ALL24(FV)
    for (long it = 0; it < iters; it++) { ALL24(FF) }
    __m512 s = _mm512_setzero_ps();
    ALL24(FA)
    return _mm512_reduce_add_ps(s);
}
