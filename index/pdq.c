/* pdq.c — PDQ hashing, bit-exact with the reference C++ tool
 * (../shared/refs/pdq/ALGORITHM.md, step numbers below refer to it).
 *
 * Exactness rules that shape the code: every float operation happens in the
 * reference's order (float32, no FMA: C17 mode compiles with fp-contract off,
 * and no target enabled here has FMA); SIMD only ever runs across independent
 * outputs (columns, rows), never across the terms of one sum. The one
 * rewrite is x / c -> x * (1/c) for c a power of two, which is exact.
 *
 * Speed (a 512x512 image is ~0.45 ms here, the reference ~1.8 ms):
 * - the luma is written transposed (4x4 tiles), and each box-filter pass runs
 *   down the rows of its input with a strip of columns in SIMD registers and
 *   writes its output transposed (8x8 / 4x4 tiles), so all four passes are
 *   vectorised "down" passes with no per-element serial dependency;
 * - the last two passes only produce what the 64x64 decimation samples;
 * - the DCT is two small matrix products over the 16 kept frequencies.
 * AVX2 code (luma rows, box passes) is chosen at run time; the SSE2/scalar
 * code gives the same bits (tests run both). */
#include "index/pdq.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <xmmintrin.h>
#endif

const char *const cs_pdq_dihedral_names[CS_PDQ_NDIHEDRAL] = {
    "orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1"};

#define PRE_RESIZE 512 /* the reference tool's pre-resize target (step 1) */

static int force_baseline; /* tests: run the SSE2/scalar code even where AVX2 exists */

void cs_pdq_force_baseline(int on) { force_baseline = on; }

/* ---- DCT matrix (step 5) ---- */

static float dct_d[16 * 64];  /* D[i][k], i = frequency - 1 */
static float dct_dt[64 * 16]; /* D transposed: Dt[k][i] */
static pthread_once_t dct_once = PTHREAD_ONCE_INIT;

static void dct_init(void) {
    const float scale = (float)sqrt(2.0 / 64.0); /* rounded to float before the multiply */
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 64; k++) {
            float v = (float)((double)scale * cos(M_PI / 2 / 64.0 * (i + 1) * (2 * k + 1)));
            dct_d[i * 64 + k] = v;
            dct_dt[k * 16 + i] = v;
        }
}

/* ---- luma (step 2) with the reference pre-resize (step 1) ---- */

/* 1 if every pixel has R == G == B. Checks 8 pixels (24 bytes = 3 words)
 * at a time: d = bytes XOR their right neighbours must be 0 at the byte
 * positions k with k % 3 != 2. */
static int all_grey(const cs_image *img) {
    size_t n = (size_t)img->w * (size_t)img->h, i = 0;
    const uint8_t *p = img->rgb;
    uint64_t acc = 0;
    for (; i + 9 <= n; i += 8) { /* reads 24 bytes + 1 of the next pixel */
        uint64_t w0, w1, w2, w3 = p[3 * i + 24];
        memcpy(&w0, p + 3 * i, 8);
        memcpy(&w1, p + 3 * i + 8, 8);
        memcpy(&w2, p + 3 * i + 16, 8);
        acc |= ((w0 ^ (w0 >> 8 | w1 << 56)) & 0xFFFF00FFFF00FFFFULL) |
               ((w1 ^ (w1 >> 8 | w2 << 56)) & 0xFF00FFFF00FFFF00ULL) |
               ((w2 ^ (w2 >> 8 | w3 << 56)) & 0x00FFFF00FFFF00FFULL);
        if (acc) return 0;
    }
    for (; i < n; i++)
        if (p[3 * i] != p[3 * i + 1] || p[3 * i + 1] != p[3 * i + 2]) return 0;
    return 1;
}

/* Luma by table: 0.299f*R etc. depend only on the byte, so
 * (tr[R] + tg[G]) + tb[B] is the reference's float expression exactly; grey
 * images use tv[g] = g (the reference's grey path, which is not the RGB
 * formula at R = G = B: that differs in the last bit for 35 grey levels). */
typedef struct {
    float tr[256], tg[256], tb[256], tv[256];
} luma_tables;
static luma_tables lt_tab;
static pthread_once_t lt_once = PTHREAD_ONCE_INIT;

static void lt_init(void) {
    for (int v = 0; v < 256; v++) {
        lt_tab.tr[v] = 0.299f * (float)v;
        lt_tab.tg[v] = 0.587f * (float)v;
        lt_tab.tb[v] = 0.114f * (float)v;
        lt_tab.tv[v] = (float)v;
    }
}

static inline float luma_px(const uint8_t *p, int grey) {
    if (grey) return lt_tab.tv[p[0]];
    return (lt_tab.tr[p[0]] + lt_tab.tg[p[1]]) + lt_tab.tb[p[2]];
}

#ifdef __SSE2__
/* out rows c0..c0+3 at positions o..o+3 = the transpose of r0..r3 (row o+k
 * holds columns c0..c0+3). */
static inline void put4x4(float *out, size_t ldo, int c0, int o, __m128 r0, __m128 r1, __m128 r2,
                          __m128 r3) {
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(out + (size_t)c0 * ldo + o, r0);
    _mm_storeu_ps(out + (size_t)(c0 + 1) * ldo + o, r1);
    _mm_storeu_ps(out + (size_t)(c0 + 2) * ldo + o, r2);
    _mm_storeu_ps(out + (size_t)(c0 + 3) * ldo + o, r3);
}
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
/* One row of luma with AVX2: the same float expression per pixel (no FMA is
 * enabled, C17 mode keeps fp-contract off). 8 pixels at a time: two 16-byte
 * loads (4 pixels each) in the two 128-bit lanes, byte shuffles pick R, G, B
 * as 32-bit integers, converted exactly to float. Chosen at run time. */
__attribute__((target("avx2"))) static void row_luma_avx2(float *restrict r,
                                                          const uint8_t *restrict p, int n,
                                                          int grey) {
    const __m256i mr = _mm256_setr_epi8(0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1,
                                        0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1);
    const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    const __m256i mg = _mm256_add_epi8(mr, _mm256_and_si256(one, _mm256_cmpgt_epi8(mr, _mm256_set1_epi8(-1))));
    const __m256i mb = _mm256_add_epi8(mr, _mm256_and_si256(two, _mm256_cmpgt_epi8(mr, _mm256_set1_epi8(-1))));
    const __m256 cr = _mm256_set1_ps(0.299f), cg = _mm256_set1_ps(0.587f), cb = _mm256_set1_ps(0.114f);
    int x = 0;
    for (; x + 10 <= n; x += 8) { /* the second load reads bytes 3x+12 .. 3x+27 < 3n */
        __m256i v = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + 3 * x))),
            _mm_loadu_si128((const __m128i *)(p + 3 * x + 12)), 1);
        __m256 R = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, mr));
        if (grey) {
            _mm256_storeu_ps(r + x, R);
            continue;
        }
        __m256 G = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, mg));
        __m256 B = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, mb));
        _mm256_storeu_ps(r + x, _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(cr, R), _mm256_mul_ps(cg, G)),
                                              _mm256_mul_ps(cb, B)));
    }
    for (; x < n; x++) r[x] = luma_px(p + 3 * x, grey);
}
#define HAVE_AVX2_LUMA 1
#else
static void row_luma_avx2(float *r, const uint8_t *p, int n, int grey) {
    (void)r, (void)p, (void)n, (void)grey;
}
#define HAVE_AVX2_LUMA 0
#endif

/* Writes the luma of img TRANSPOSED (out[x*ld + y]), after the pre-resize
 * to 512x512 when resize. Four rows at a time are computed sequentially into
 * rb (4 x OW floats of scratch), then stored transposed as 4x4 tiles. */
static void luma_transposed(float *restrict out, int ld, const cs_image *img, int resize, int grey,
                            int *sx, int *sy, float *rb) {
    int W = img->w, H = img->h, OW = resize ? PRE_RESIZE : W, OH = resize ? PRE_RESIZE : H;
    pthread_once(&lt_once, lt_init);
    int use_avx2 = 0;
#if HAVE_AVX2_LUMA
    use_avx2 = !force_baseline && __builtin_cpu_supports("avx2");
#endif
    /* CImg nearest: dst(x, y) = src(floor(x*W/512), floor(y*H/512)), in double */
    for (int x = 0; x < OW; x++) sx[x] = 3 * (resize ? (int)((double)x * W / PRE_RESIZE) : x);
    for (int y = 0; y < OH; y++) sy[y] = resize ? (int)((double)y * H / PRE_RESIZE) : y;
    for (int y0 = 0; y0 < OH; y0 += 4) {
        int ny = OH - y0 < 4 ? OH - y0 : 4;
        for (int k = 0; k < ny; k++) {
            const uint8_t *row = img->rgb + (size_t)sy[y0 + k] * W * 3;
            float *r = rb + (size_t)k * OW;
            if (!resize && use_avx2) row_luma_avx2(r, row, OW, grey);
            else if (grey)
                for (int x = 0; x < OW; x++) r[x] = lt_tab.tv[row[sx[x]]];
            else if (!resize)
                for (int x = 0; x < OW; x++, row += 3)
                    r[x] = (lt_tab.tr[row[0]] + lt_tab.tg[row[1]]) + lt_tab.tb[row[2]];
            else
                for (int x = 0; x < OW; x++) {
                    const uint8_t *p = row + sx[x];
                    r[x] = (lt_tab.tr[p[0]] + lt_tab.tg[p[1]]) + lt_tab.tb[p[2]];
                }
        }
        int x0 = 0;
#ifdef __SSE2__
        if (ny == 4)
            for (; x0 + 4 <= OW; x0 += 4)
                put4x4(out, (size_t)ld, x0, y0, _mm_loadu_ps(rb + x0), _mm_loadu_ps(rb + OW + x0),
                       _mm_loadu_ps(rb + 2 * OW + x0), _mm_loadu_ps(rb + 3 * OW + x0));
#endif
        for (; x0 < OW; x0++)
            for (int k = 0; k < ny; k++) out[(size_t)x0 * ld + y0 + k] = rb[(size_t)k * OW + x0];
    }
}

/* ---- box filter (step 3) ---- */

/* The reference's 1-D running box filter of window win, applied down every
 * column of in (rows x cols, row-major): each column is an independent
 * vector, so the inner loops run across columns. Output row r is written only
 * if keep == NULL or keep[r]; the running sums are the same either way.
 * sum: cols floats of scratch. */
static void box_down(float *restrict out, const float *restrict in, int rows, int cols, int win,
                     const uint8_t *keep, float *restrict sum) {
    int half = (win + 2) / 2;
    int p1 = half - 1, p2 = win - half + 1, p3 = rows - win, p4 = half - 1;
    int ri = 0, li = 0, oi = 0, cnt = 0;
    memset(sum, 0, sizeof(float) * (size_t)cols);
    for (int n = 0; n < p1; n++, ri++, cnt++) {
        const float *a = in + (size_t)ri * cols;
        for (int c = 0; c < cols; c++) sum[c] += a[c];
    }
    for (int n = 0; n < p2; n++, ri++, oi++) {
        const float *a = in + (size_t)ri * cols;
        for (int c = 0; c < cols; c++) sum[c] += a[c];
        cnt++;
        if (keep && !keep[oi]) continue;
        float fc = (float)cnt, *o = out + (size_t)oi * cols;
        for (int c = 0; c < cols; c++) o[c] = sum[c] / fc;
    }
    for (int n = 0; n < p3; n++, ri++, li++, oi++) {
        const float *a = in + (size_t)ri * cols, *b = in + (size_t)li * cols;
        for (int c = 0; c < cols; c++) sum[c] = (sum[c] + a[c]) - b[c];
        if (keep && !keep[oi]) continue;
        float fc = (float)cnt, *o = out + (size_t)oi * cols;
        for (int c = 0; c < cols; c++) o[c] = sum[c] / fc;
    }
    for (int n = 0; n < p4; n++, li++, oi++) {
        const float *b = in + (size_t)li * cols;
        for (int c = 0; c < cols; c++) sum[c] -= b[c];
        cnt--;
        if (keep && !keep[oi]) continue;
        float fc = (float)cnt, *o = out + (size_t)oi * cols;
        for (int c = 0; c < cols; c++) o[c] = sum[c] / fc;
    }
}

/* box_down for one column c of in, scalar (the tails of box_down_t). Output
 * element r goes to out[r * os] (if keep == NULL or keep[r]). */
static void box_column(float *out, ptrdiff_t os, const float *in, ptrdiff_t is, int rows, int win,
                       const uint8_t *keep) {
    int half = (win + 2) / 2;
    int p1 = half - 1, p2 = win - half + 1, p3 = rows - win, p4 = half - 1;
    int ri = 0, li = 0, oi = 0, cnt = 0;
    float sum = 0.0f;
    for (int n = 0; n < p1; n++, ri++, cnt++) sum += in[ri * is];
    for (int n = 0; n < p2; n++, ri++, oi++) {
        sum += in[ri * is];
        cnt++;
        if (!keep || keep[oi]) out[oi * os] = sum / (float)cnt;
    }
    for (int n = 0; n < p3; n++, ri++, li++, oi++) {
        sum += in[ri * is];
        sum -= in[li * is];
        if (!keep || keep[oi]) out[oi * os] = sum / (float)cnt;
    }
    for (int n = 0; n < p4; n++, li++, oi++) {
        sum -= in[li * is];
        cnt--;
        if (!keep || keep[oi]) out[oi * os] = sum / (float)cnt;
    }
}

#ifdef __SSE2__
/* Output rows of a 16-column strip, buffered 4 at a time so they can be
 * stored transposed as 4x4 tiles. */
typedef struct {
    __m128 b[4][4]; /* [row in tile][quarter of the strip] */
    int n, o0;      /* rows buffered, first row's index */
} tile_buf;

static inline void tile_flush(tile_buf *t, float *out, size_t ldo, int c0) {
    if (t->n == 4) {
        for (int q = 0; q < 4; q++)
            put4x4(out, ldo, c0 + 4 * q, t->o0, t->b[0][q], t->b[1][q], t->b[2][q], t->b[3][q]);
    } else {
        for (int k = 0; k < t->n; k++)
            for (int q = 0; q < 4; q++) {
                float v[4];
                _mm_storeu_ps(v, t->b[k][q]);
                for (int j = 0; j < 4; j++) out[(size_t)(c0 + 4 * q + j) * ldo + t->o0 + k] = v[j];
            }
    }
    t->n = 0;
}

/* Emits output row oi (s / cnt for the 16 columns). */
static inline void emit(tile_buf *t, float *out, size_t ldo, int c0, int oi, const __m128 s[4],
                        int cnt, const uint8_t *keep) {
    if (keep && !keep[oi]) return;
    /* x / c == x * (1/c) exactly when c is a power of two (the window of
     * every 385..512 px side, so of every pre-resized image): same real
     * number, same rounding; a multiply is much cheaper than a divide */
    int pow2 = (cnt & (cnt - 1)) == 0;
    __m128 d = _mm_set1_ps(pow2 ? 1.0f / (float)cnt : (float)cnt);
    if (t->n == 0) t->o0 = oi;
    else if (t->o0 + t->n != oi) { /* rows skipped (keep): flush what is buffered */
        tile_flush(t, out, ldo, c0);
        t->o0 = oi;
    }
    if (pow2)
        for (int q = 0; q < 4; q++) t->b[t->n][q] = _mm_mul_ps(s[q], d);
    else
        for (int q = 0; q < 4; q++) t->b[t->n][q] = _mm_div_ps(s[q], d);
    if (++t->n == 4) tile_flush(t, out, ldo, c0);
}
#endif

/* Like box_down, but writes the result TRANSPOSED (out is cols x rows, row
 * stride ldo; in has row stride ldi): the running sums of a 16-column strip
 * live in 4 SSE registers while the strip is walked down the rows, and the
 * outputs are stored as transposed 4x4 tiles. Same arithmetic per column as
 * box_column. */
static void box_down_t(float *restrict out, int ldo, const float *restrict in, int ldi, int rows,
                       int cols, int win, const uint8_t *keep) {
    int c0 = 0;
#ifdef __SSE2__
    int half = (win + 2) / 2;
    int p1 = half - 1, p2 = win - half + 1, p3 = rows - win, p4 = half - 1;
    for (; c0 + 16 <= cols; c0 += 16) {
        const float *ip = in + c0;
        __m128 s[4];
        for (int q = 0; q < 4; q++) s[q] = _mm_setzero_ps();
        tile_buf t = {.n = 0};
        int ri = 0, li = 0, oi = 0, cnt = 0;
        for (int n = 0; n < p1; n++, ri++, cnt++)
            for (int q = 0; q < 4; q++) s[q] = _mm_add_ps(s[q], _mm_loadu_ps(ip + (size_t)ri * ldi + 4 * q));
        for (int n = 0; n < p2; n++, ri++, oi++) {
            for (int q = 0; q < 4; q++) s[q] = _mm_add_ps(s[q], _mm_loadu_ps(ip + (size_t)ri * ldi + 4 * q));
            cnt++;
            emit(&t, out, (size_t)ldo, c0, oi, s, cnt, keep);
        }
        int n = 0;
        if (!keep && (cnt & (cnt - 1)) == 0 && p3 >= 8) {
            /* the bulk: 4 rows at a time straight into a 4x4 tile per quarter */
            tile_flush(&t, out, (size_t)ldo, c0);
            __m128 d = _mm_set1_ps(1.0f / (float)cnt);
            for (; n + 4 <= p3; n += 4, oi += 4) {
                __m128 v[4][4];
                for (int k = 0; k < 4; k++, ri++, li++)
                    for (int q = 0; q < 4; q++) {
                        s[q] = _mm_sub_ps(_mm_add_ps(s[q], _mm_loadu_ps(ip + (size_t)ri * ldi + 4 * q)),
                                          _mm_loadu_ps(ip + (size_t)li * ldi + 4 * q));
                        v[k][q] = _mm_mul_ps(s[q], d);
                    }
                for (int q = 0; q < 4; q++)
                    put4x4(out, (size_t)ldo, c0 + 4 * q, oi, v[0][q], v[1][q], v[2][q], v[3][q]);
            }
        }
        for (; n < p3; n++, ri++, li++, oi++) {
            for (int q = 0; q < 4; q++)
                s[q] = _mm_sub_ps(_mm_add_ps(s[q], _mm_loadu_ps(ip + (size_t)ri * ldi + 4 * q)),
                                  _mm_loadu_ps(ip + (size_t)li * ldi + 4 * q));
            emit(&t, out, (size_t)ldo, c0, oi, s, cnt, keep);
        }
        for (int n = 0; n < p4; n++, li++, oi++) {
            for (int q = 0; q < 4; q++) s[q] = _mm_sub_ps(s[q], _mm_loadu_ps(ip + (size_t)li * ldi + 4 * q));
            cnt--;
            emit(&t, out, (size_t)ldo, c0, oi, s, cnt, keep);
        }
        tile_flush(&t, out, (size_t)ldo, c0);
    }
#endif
    for (int c = c0; c < cols; c++) box_column(out + (size_t)c * ldo, 1, in + c, ldi, rows, win, keep);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define AVX2_ATTR __attribute__((target("avx2")))

/* r[0..7] (8 rows of 8 lanes) -> r[j] = lane j of the 8 rows. */
AVX2_ATTR static inline void tr8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k + 0] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

#define NV 4 /* 8-lane vectors per strip: 4 independent add/sub chains hide their latency */

/* Stores row oi of a strip (NV vectors) transposed, lane by lane. */
AVX2_ATTR static inline void put_lanes(float *out, size_t ldo, int c0, int oi, const __m256 *v) {
    float t[8 * NV];
    for (int q = 0; q < NV; q++) _mm256_storeu_ps(t + 8 * q, v[q]);
    for (int j = 0; j < 8 * NV; j++) out[(size_t)(c0 + j) * ldo + oi] = t[j];
}

/* x / c, or x * (1/c) when c is a power of two (bit-identical, see emit). */
AVX2_ATTR static inline void scale_all(__m256 *out, const __m256 *s, int cnt) {
    if ((cnt & (cnt - 1)) == 0) {
        __m256 d = _mm256_set1_ps(1.0f / (float)cnt);
        for (int q = 0; q < NV; q++) out[q] = _mm256_mul_ps(s[q], d);
    } else {
        __m256 d = _mm256_set1_ps((float)cnt);
        for (int q = 0; q < NV; q++) out[q] = _mm256_div_ps(s[q], d);
    }
}

/* box_down_t with AVX2: strips of 8*NV columns; without keep, the bulk is
 * done 8 rows at a time and stored as transposed 8x8 tiles; with keep, only
 * the kept rows are stored (lane by lane).
 * Long: the strip loop and its two store paths are one kernel. */
AVX2_ATTR static void box_down_t_avx2(float *restrict out, int ldo, const float *restrict in,
                                      int ldi, int rows, int cols, int win, const uint8_t *keep) {
    int half = (win + 2) / 2;
    int p1 = half - 1, p2 = win - half + 1, p3 = rows - win, p4 = half - 1;
    size_t lo = (size_t)ldo;
    int c0 = 0;
    for (; c0 + 8 * NV <= cols; c0 += 8 * NV) {
        const float *ip = in + c0;
        __m256 s[NV], v[NV];
        for (int q = 0; q < NV; q++) s[q] = _mm256_setzero_ps();
        int ri = 0, li = 0, oi = 0, cnt = 0;
        for (int n = 0; n < p1; n++, ri++, cnt++)
            for (int q = 0; q < NV; q++) s[q] = _mm256_add_ps(s[q], _mm256_loadu_ps(ip + (size_t)ri * ldi + 8 * q));
        for (int n = 0; n < p2; n++, ri++, oi++) {
            for (int q = 0; q < NV; q++) s[q] = _mm256_add_ps(s[q], _mm256_loadu_ps(ip + (size_t)ri * ldi + 8 * q));
            cnt++;
            if (!keep || keep[oi]) {
                scale_all(v, s, cnt);
                put_lanes(out, lo, c0, oi, v);
            }
        }
        /* phase 3, the bulk: the sums live in named locals (never addressed),
         * so they stay in registers */
        __m256 s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#define STEP(ri, li)                                                                          \
    do {                                                                                      \
        const float *a_ = ip + (size_t)(ri) * ldi, *b_ = ip + (size_t)(li) * ldi;             \
        s0 = _mm256_sub_ps(_mm256_add_ps(s0, _mm256_loadu_ps(a_)), _mm256_loadu_ps(b_));      \
        s1 = _mm256_sub_ps(_mm256_add_ps(s1, _mm256_loadu_ps(a_ + 8)), _mm256_loadu_ps(b_ + 8)); \
        s2 = _mm256_sub_ps(_mm256_add_ps(s2, _mm256_loadu_ps(a_ + 16)), _mm256_loadu_ps(b_ + 16)); \
        s3 = _mm256_sub_ps(_mm256_add_ps(s3, _mm256_loadu_ps(a_ + 24)), _mm256_loadu_ps(b_ + 24)); \
    } while (0)
        int n = 0;
        int pow2 = (cnt & (cnt - 1)) == 0;
        __m256 d = _mm256_set1_ps(pow2 ? 1.0f / (float)cnt : (float)cnt);
        if (!keep) {
            for (; n + 8 <= p3; n += 8, oi += 8) {
                __m256 t[NV][8];
                for (int k = 0; k < 8; k++, ri++, li++) {
                    STEP(ri, li);
                    if (pow2) {
                        t[0][k] = _mm256_mul_ps(s0, d), t[1][k] = _mm256_mul_ps(s1, d);
                        t[2][k] = _mm256_mul_ps(s2, d), t[3][k] = _mm256_mul_ps(s3, d);
                    } else {
                        t[0][k] = _mm256_div_ps(s0, d), t[1][k] = _mm256_div_ps(s1, d);
                        t[2][k] = _mm256_div_ps(s2, d), t[3][k] = _mm256_div_ps(s3, d);
                    }
                }
                for (int q = 0; q < NV; q++) {
                    tr8x8(t[q]);
                    for (int j = 0; j < 8; j++) _mm256_storeu_ps(out + (size_t)(c0 + 8 * q + j) * lo + oi, t[q][j]);
                }
            }
        }
        for (; n < p3; n++, ri++, li++, oi++) {
            STEP(ri, li);
            if (!keep || keep[oi]) {
                if (pow2) {
                    v[0] = _mm256_mul_ps(s0, d), v[1] = _mm256_mul_ps(s1, d);
                    v[2] = _mm256_mul_ps(s2, d), v[3] = _mm256_mul_ps(s3, d);
                } else {
                    v[0] = _mm256_div_ps(s0, d), v[1] = _mm256_div_ps(s1, d);
                    v[2] = _mm256_div_ps(s2, d), v[3] = _mm256_div_ps(s3, d);
                }
                put_lanes(out, lo, c0, oi, v);
            }
        }
#undef STEP
        s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
        for (int m = 0; m < p4; m++, li++, oi++) {
            for (int q = 0; q < NV; q++) s[q] = _mm256_sub_ps(s[q], _mm256_loadu_ps(ip + (size_t)li * ldi + 8 * q));
            cnt--;
            if (!keep || keep[oi]) {
                scale_all(v, s, cnt);
                put_lanes(out, lo, c0, oi, v);
            }
        }
    }
    /* the remaining columns: the SSE strips, then scalar */
    if (c0 < cols) box_down_t(out + (size_t)c0 * lo, ldo, in + c0, ldi, rows, cols - c0, win, keep);
}
#define HAVE_AVX2_BOX 1
#else
#define HAVE_AVX2_BOX 0
static void box_down_t_avx2(float *out, int ldo, const float *in, int ldi, int rows, int cols, int win,
                            const uint8_t *keep) {
    (void)out, (void)ldo, (void)in, (void)ldi, (void)rows, (void)cols, (void)win, (void)keep;
}
#endif

/* Picks the AVX2 pass when the CPU has it. */
static void box_pass(float *restrict out, int ldo, const float *restrict in, int ldi, int rows,
                     int cols, int win, const uint8_t *keep) {
#if HAVE_AVX2_BOX
    if (!force_baseline && __builtin_cpu_supports("avx2")) {
        box_down_t_avx2(out, ldo, in, ldi, rows, cols, win, keep);
        return;
    }
#endif
    box_down_t(out, ldo, in, ldi, rows, cols, win, keep);
}

/* Row stride for a buffer of n-float rows: a multiple of 16 floats (a cache
 * line) but an odd one, so walking down a column (the transposed writes)
 * spreads over all cache sets instead of a power-of-two stride's few. */
static int pad_ld(int n) {
    int ld = (n + 15) / 16 * 16;
    return (ld / 16) % 2 ? ld : ld + 16;
}

/* Decimation centres: floor((i + 0.5) * n / 64) (step 3). */
static void centres(int idx[64], int n) {
    for (int i = 0; i < 64; i++) idx[i] = (int)((i + 0.5) * n / 64.0);
}

/* Blur (2 x (horizontal, vertical)) and decimate to A (64x64). lt is the
 * luma transposed (W x H); t1 is scratch of the same size; both clobbered.
 * Each pass runs down the rows of its input and writes its output
 * transposed, so the next pass again runs down rows: lt (W x H) -> t1
 * (H x W) -> lt (W x H) -> t1 (H x W, only the 64 sampled columns) -> the
 * last pass on those 64 columns only. */
static void blur_decimate(float A[64 * 64], float *lt, float *t1, int W, int H, float *sum,
                          uint8_t *keep) {
    int wx = (W + 127) / 128, wy = (H + 127) / 128, ldw = pad_ld(W), ldh = pad_ld(H);
    int ci[64], cj[64];
    centres(ci, H);
    centres(cj, W);
    box_pass(t1, ldw, lt, ldh, W, H, wx, NULL); /* pass 1, horizontal */
    box_pass(lt, ldh, t1, ldw, H, W, wy, NULL); /* pass 2, vertical */
    memset(keep, 0, (size_t)W);
    for (int j = 0; j < 64; j++) keep[cj[j]] = 1;
    box_pass(t1, ldw, lt, ldh, W, H, wx, keep); /* pass 3, horizontal, sampled columns only */
    float *g = lt; /* H x 64: the sampled columns */
    for (int y = 0; y < H; y++)
        for (int j = 0; j < 64; j++) g[(size_t)y * 64 + j] = t1[(size_t)y * ldw + cj[j]];
    memset(keep, 0, (size_t)H);
    for (int i = 0; i < 64; i++) keep[ci[i]] = 1;
    box_down(t1, g, H, 64, wy, keep, sum); /* pass 4, vertical, sampled rows only */
    for (int i = 0; i < 64; i++) memcpy(A + i * 64, t1 + (size_t)ci[i] * 64, 64 * sizeof(float));
}

/* ---- quality (step 4), DCT (step 5), threshold (step 6) ---- */

static int quality_of(const float A[64 * 64]) {
    int g = 0;
    for (int i = 0; i < 63; i++)
        for (int j = 0; j < 64; j++) {
            float u = A[i * 64 + j], v = A[(i + 1) * 64 + j];
            g += abs((int)(((u - v) * 100) / 255));
        }
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 63; j++) {
            float u = A[i * 64 + j], v = A[i * 64 + j + 1];
            g += abs((int)(((u - v) * 100) / 255));
        }
    g /= 90;
    return g > 100 ? 100 : g;
}

/* B (16x16) = D A D^T, each sum over k = 0..63 in order. */
static void dct16(float B[16 * 16], const float A[64 * 64]) {
    float T[16 * 64];
    for (int i = 0; i < 16; i++) {
        float *t = T + i * 64;
        for (int j = 0; j < 64; j++) t[j] = 0.0f;
        for (int k = 0; k < 64; k++) {
            float d = dct_d[i * 64 + k];
            const float *a = A + k * 64;
            for (int j = 0; j < 64; j++) t[j] += d * a[j];
        }
    }
    for (int i = 0; i < 16; i++) {
        float *b = B + i * 16;
        for (int j = 0; j < 16; j++) b[j] = 0.0f;
        for (int k = 0; k < 64; k++) {
            float t = T[i * 64 + k];
            const float *d = dct_dt + k * 16;
            for (int j = 0; j < 16; j++) b[j] += t * d[j];
        }
    }
}

/* k-th smallest (0-based) of v[0..n), v reordered (Hoare quickselect). */
static float select_kth(float *v, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = v[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

static void threshold(const float B[256], uint8_t hash[32]) {
    float tmp[256];
    memcpy(tmp, B, sizeof(tmp));
    float med = select_kth(tmp, 256, 127); /* the 128th smallest: lower median */
    memset(hash, 0, 32);
    for (int k = 0; k < 256; k++)
        if (B[k] > med) {
            /* bit k of the big-endian 256-bit number */
            hash[31 - k / 8] |= (uint8_t)(1u << (k % 8));
        }
}

/* The dihedral B' from B (step 8). */
static void dihedral_of(float out[256], const float B[256], int which) {
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float b = B[i * 16 + j];
            int oi = (i + j) & 1, odd_i = i & 1, odd_j = j & 1;
            switch (which) {
            case CS_PDQ_ORIG: out[i * 16 + j] = b; break;
            case CS_PDQ_ROT90: out[j * 16 + i] = odd_j ? b : -b; break;
            case CS_PDQ_ROT180: out[i * 16 + j] = oi ? -b : b; break;
            case CS_PDQ_ROT270: out[j * 16 + i] = odd_i ? b : -b; break;
            case CS_PDQ_FLIPX: out[i * 16 + j] = odd_i ? b : -b; break;
            case CS_PDQ_FLIPY: out[i * 16 + j] = odd_j ? b : -b; break;
            case CS_PDQ_FLIPPLUS1: out[j * 16 + i] = b; break;
            case CS_PDQ_FLIPMINUS1: out[j * 16 + i] = oi ? -b : b; break;
            }
        }
}

/* ---- drivers ---- */

/* Scratch for an image of W x H: lt (the transposed luma), t1, sums, keep flags. */
typedef struct {
    float *lt, *t1, *sum;
    int *sx, *sy; /* pre-resize sampling positions */
    uint8_t *keep;
    void *mem;
} scratch;

static int scratch_alloc(scratch *s, int W, int H, cs_err *err) {
    size_t n = (size_t)W * pad_ld(H), m = (size_t)(W > H ? W : H);
    if ((size_t)H * pad_ld(W) > n) n = (size_t)H * pad_ld(W);
    if (m < 64) m = 64; /* the last pass runs over 64 columns */
    if (n < 64 * 64) n = 64 * 64;
    if ((size_t)H * 64 > n) n = (size_t)H * 64; /* lt doubles as the H x 64 gather buffer */
    if (m < PRE_RESIZE) m = PRE_RESIZE;
    s->mem = malloc((2 * n + m) * sizeof(float) + 2 * m * sizeof(int) + m);
    if (!s->mem) return cs_fail(err, CS_ENOMEM, "pdq: out of memory for a %dx%d image", W, H);
    s->lt = s->mem;
    s->t1 = s->lt + n;
    s->sum = s->t1 + n;
    s->sx = (int *)(s->sum + m);
    s->sy = s->sx + m;
    s->keep = (uint8_t *)(s->sy + m);
    return 0;
}

/* Everything after the luma (s->lt, W x H transposed); clobbers the scratch. */
static void hash_luma_t(scratch *s, int W, int H, int shortcut, int ndih, cs_pdq *out) {
    pthread_once(&dct_once, dct_init);
    if (W < 5 || H < 5) {
        for (int d = 0; d < ndih; d++) {
            memset(out[d].hash, 0, 32);
            out[d].quality = 0;
        }
        return;
    }
    float A[64 * 64], B[256], Bd[256];
    if (shortcut && W == 64 && H == 64) {
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) A[y * 64 + x] = s->lt[x * pad_ld(64) + y];
    } else {
        blur_decimate(A, s->lt, s->t1, W, H, s->sum, s->keep);
    }
    int q = quality_of(A);
    dct16(B, A);
    for (int d = 0; d < ndih; d++) {
        dihedral_of(Bd, B, d);
        threshold(Bd, out[d].hash);
        out[d].quality = q;
    }
}

static int hash_image(const cs_image *img, int flags, int ndih, cs_pdq *out, cs_err *err) {
    int resize = !(flags & CS_PDQ_NORESIZE) && (img->w > PRE_RESIZE || img->h > PRE_RESIZE);
    int W = resize ? PRE_RESIZE : img->w, H = resize ? PRE_RESIZE : img->h;
    scratch s;
    if (scratch_alloc(&s, W, H, err)) return -1;
    luma_transposed(s.lt, pad_ld(H), img, resize, all_grey(img), s.sx, s.sy, s.t1);
    hash_luma_t(&s, W, H, ndih == 1, ndih, out);
    free(s.mem);
    return 0;
}

int cs_pdq_compute(const cs_image *img, int flags, cs_pdq *out, cs_err *err) {
    return hash_image(img, flags, 1, out, err);
}

int cs_pdq_dihedral(const cs_image *img, int flags, cs_pdq out[CS_PDQ_NDIHEDRAL], cs_err *err) {
    return hash_image(img, flags, CS_PDQ_NDIHEDRAL, out, err);
}

int cs_pdq_from_luma(const float *luma, int w, int h, int dihedral, cs_pdq *out, cs_err *err) {
    scratch s;
    if (scratch_alloc(&s, w, h, err)) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) s.lt[(size_t)x * pad_ld(h) + y] = luma[(size_t)y * w + x];
    hash_luma_t(&s, w, h, !dihedral, dihedral ? CS_PDQ_NDIHEDRAL : 1, out);
    free(s.mem);
    return 0;
}

/* ---- text form, distance ---- */

void cs_pdq_to_hex(const uint8_t hash[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[hash[i] >> 4];
        out[2 * i + 1] = hx[hash[i] & 15];
    }
    out[64] = 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cs_pdq_from_hex(const char *hex, uint8_t hash[32]) {
    for (int i = 0; i < 32; i++) {
        int a = hexval(hex[2 * i]), b = a < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) return -1;
        hash[i] = (uint8_t)(a << 4 | b);
    }
    return hex[64] == 0 ? 0 : -1;
}

int cs_pdq_distance(const uint8_t a[32], const uint8_t b[32]) {
    int d = 0;
    for (int i = 0; i < 32; i++) d += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return d;
}
