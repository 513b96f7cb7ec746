/* lf_scan.c — the vote index's search: our scan of FAISS's PQ lists and
 * its multi-index cells, our PQ encoder, and the votes per reference. */
#include "index/localfeat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "index/faiss_shim.h"
#include "index/lf_index_internal.h"

enum { MAXPROBE = 64 }; /* cells our coarse step picks at most */

/* ---- our own scan of the PQ lists ----
 * FAISS (Debian's generic build) computes a query's 16 x 256 distance table
 * with one scalar 8-dimension call per entry (fvec_L2sqr_ref, the largest
 * part of the retrieval's profile) and keeps results through virtual list
 * accessors and a general heap. Here: the table from the centroids
 * transposed (blocks of 32 or 64 centroids kept in registers over the
 * dimensions, AVX-512 or AVX2 where cpuid has it, the same sums in the same
 * order at every level: identical bits, cs_lf_index_simd), the multi-index's
 * cells ours (coarse), the probed lists' first lines prefetched, the codes
 * summed from the table with one gather per sub-quantizer for 8 (AVX2) or
 * 16 (AVX-512) codes at a time, and the best CS_LF_NN kept by (distance,
 * vector number). With AVX-512 VBMI most codes are first excluded by a
 * lower bound of their sums from byte tables looked up in registers
 * (bound64), and only the rest summed: the same rows. */

void lf_scan_setup(cs_lf_index *ix) {
    const float *c;
    int m, dsub;
    free(ix->ct);
    ix->ct = NULL;
    free(ix->ict);
    ix->ict = NULL;
    free(ix->icn);
    ix->icn = NULL;
    if (cs_faiss_pq_parts(ix->f, &m, &dsub, &c) || m * dsub != 128) return;
    if (!(ix->ct = malloc(sizeof(float) * 128 * 256))) return; /* FAISS's search then */
    for (int s = 0; s < m; s++)
        for (int j = 0; j < 256; j++)
            for (int u = 0; u < dsub; u++) ix->ct[((size_t)s * dsub + u) * 256 + j] = c[((size_t)s * 256 + j) * dsub + u];
    ix->pq_m = m, ix->pq_dsub = dsub;
    int b;
    if (cs_faiss_imi_parts(ix->f, &b, &c) || b < 3 || b > 12 || cs_faiss_nprobe(ix->f) > MAXPROBE) return;
    size_t k2 = (size_t)1 << b;
    ix->ict = malloc(sizeof(float) * 128 * k2);
    ix->icn = malloc(sizeof(float) * 2 * k2);
    if (!ix->ict || !ix->icn) { /* FAISS's coarse search then */
        free(ix->ict), free(ix->icn);
        ix->ict = ix->icn = NULL;
        return;
    }
    for (int h = 0; h < 2; h++)
        for (size_t j = 0; j < k2; j++) {
            float nn = 0;
            for (int u = 0; u < 64; u++) {
                const float v = c[((size_t)h * k2 + j) * 64 + u];
                ix->ict[((size_t)h * 64 + u) * k2 + j] = v;
                nn += v * v;
            }
            ix->icn[h * k2 + j] = nn;
        }
    ix->imi_b = b;
}

/* the widest SIMD our scan uses, at most max (see cs_lf_index_simd) */
static int simd_level(int max) {
#if defined(__x86_64__)
    if (max >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")) return 2;
    if (max >= 1 && __builtin_cpu_supports("avx2")) return 1;
#endif
    (void)max;
    return 0;
}

int cs_lf_index_simd(cs_lf_index *ix, int max) {
    ix->simd_max = max;
    return simd_level(max);
}

static int has_vbmi(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}

int cs_lf_index_prune(cs_lf_index *ix, int prune) {
    ix->no_prune = !prune;
    ix->no_bytes = prune < 2;
    return prune >= 2 && !has_vbmi() ? 1 : prune > 2 ? 2 : prune;
}

int cs_lf_index_faiss_scan(cs_lf_index *ix, int faiss_scan) {
    if (faiss_scan) {
        free(ix->ct);
        ix->ct = NULL;
    } else if (!ix->ct) {
        lf_scan_setup(ix);
    }
    return ix->ct != NULL;
}

/* lut[m][ks] = squared distances of x's m sub-vectors to the ks centroids
 * of each (ct[m][dsub][ks], ks a multiple of 8) */
static void table_c(const float *ct, const float *x, int m, int dsub, int ks, float *lut) {
    for (int s = 0; s < m; s++) {
        float *t = lut + (size_t)s * ks;
        for (int j = 0; j < ks; j++) t[j] = 0;
        for (int u = 0; u < dsub; u++) {
            const float xv = x[s * dsub + u], *c = ct + ((size_t)s * dsub + u) * ks;
            for (int j = 0; j < ks; j++) {
                float d = xv - c[j];
                t[j] += d * d;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
/* table_c with the lanes of a vector: multiply and add separately (no FMA),
 * each entry summed over u = 0..dsub-1 from 0 as in C, so the same bits.
 * 32 (AVX2) or 64 (AVX-512) entries at a time are kept in registers over
 * the dsub dimensions (the table is not loaded and stored per dimension). */
__attribute__((target("avx2"))) static void table_avx2(const float *ct, const float *x, int m, int dsub, int ks,
                                                       float *lut) {
    for (int s = 0; s < m; s++) {
        const float *xs = x + s * dsub, *cs = ct + (size_t)s * dsub * ks;
        float *t = lut + (size_t)s * ks;
        int j = 0;
        for (; j + 32 <= ks; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < dsub; u++) {
                const __m256 xv = _mm256_set1_ps(xs[u]);
                const float *c = cs + (size_t)u * ks + j;
                __m256 d0 = _mm256_sub_ps(xv, _mm256_loadu_ps(c)), d1 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 8));
                __m256 d2 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 16)), d3 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 24));
                a0 = _mm256_add_ps(a0, _mm256_mul_ps(d0, d0)), a1 = _mm256_add_ps(a1, _mm256_mul_ps(d1, d1));
                a2 = _mm256_add_ps(a2, _mm256_mul_ps(d2, d2)), a3 = _mm256_add_ps(a3, _mm256_mul_ps(d3, d3));
            }
            _mm256_storeu_ps(t + j, a0), _mm256_storeu_ps(t + j + 8, a1);
            _mm256_storeu_ps(t + j + 16, a2), _mm256_storeu_ps(t + j + 24, a3);
        }
        for (; j < ks; j += 8) {
            __m256 a = _mm256_setzero_ps();
            for (int u = 0; u < dsub; u++) {
                __m256 d = _mm256_sub_ps(_mm256_set1_ps(xs[u]), _mm256_loadu_ps(cs + (size_t)u * ks + j));
                a = _mm256_add_ps(a, _mm256_mul_ps(d, d));
            }
            _mm256_storeu_ps(t + j, a);
        }
    }
}

__attribute__((target("avx512f"))) static void table_avx512(const float *ct, const float *x, int m, int dsub, int ks,
                                                           float *lut) {
    if (ks % 64) {
        table_avx2(ct, x, m, dsub, ks, lut);
        return;
    }
    for (int s = 0; s < m; s++) {
        const float *xs = x + s * dsub, *cs = ct + (size_t)s * dsub * ks;
        float *t = lut + (size_t)s * ks;
        for (int j = 0; j < ks; j += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < dsub; u++) {
                const __m512 xv = _mm512_set1_ps(xs[u]);
                const float *c = cs + (size_t)u * ks + j;
                __m512 d0 = _mm512_sub_ps(xv, _mm512_loadu_ps(c)), d1 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 16));
                __m512 d2 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 32)), d3 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 48));
                a0 = _mm512_add_ps(a0, _mm512_mul_ps(d0, d0)), a1 = _mm512_add_ps(a1, _mm512_mul_ps(d1, d1));
                a2 = _mm512_add_ps(a2, _mm512_mul_ps(d2, d2)), a3 = _mm512_add_ps(a3, _mm512_mul_ps(d3, d3));
            }
            _mm512_storeu_ps(t + j, a0), _mm512_storeu_ps(t + j + 16, a1);
            _mm512_storeu_ps(t + j + 32, a2), _mm512_storeu_ps(t + j + 48, a3);
        }
    }
}

/* Eight 16-byte codes cb[8][16] transposed: e[j] holds sub-quantizer 2j's
 * byte of each code (bytes 0-7), then 2j + 1's (bytes 8-15); byte, word and
 * dword interleaves. */
__attribute__((target("avx2"))) static inline void transpose8(const uint8_t *cb, __m128i e[8]) {
    __m128i c[8];
    for (int k = 0; k < 8; k++) c[k] = _mm_loadu_si128((const __m128i *)(cb + 16 * k));
    __m128i a0 = _mm_unpacklo_epi8(c[0], c[1]), a1 = _mm_unpackhi_epi8(c[0], c[1]);
    __m128i a2 = _mm_unpacklo_epi8(c[2], c[3]), a3 = _mm_unpackhi_epi8(c[2], c[3]);
    __m128i a4 = _mm_unpacklo_epi8(c[4], c[5]), a5 = _mm_unpackhi_epi8(c[4], c[5]);
    __m128i a6 = _mm_unpacklo_epi8(c[6], c[7]), a7 = _mm_unpackhi_epi8(c[6], c[7]);
    __m128i b0 = _mm_unpacklo_epi16(a0, a2), b1 = _mm_unpackhi_epi16(a0, a2); /* s 0-3, 4-7: codes 0-3 */
    __m128i b2 = _mm_unpacklo_epi16(a1, a3), b3 = _mm_unpackhi_epi16(a1, a3); /* s 8-11, 12-15 */
    __m128i b4 = _mm_unpacklo_epi16(a4, a6), b5 = _mm_unpackhi_epi16(a4, a6); /* codes 4-7 */
    __m128i b6 = _mm_unpacklo_epi16(a5, a7), b7 = _mm_unpackhi_epi16(a5, a7);
    e[0] = _mm_unpacklo_epi32(b0, b4), e[1] = _mm_unpackhi_epi32(b0, b4);
    e[2] = _mm_unpacklo_epi32(b1, b5), e[3] = _mm_unpackhi_epi32(b1, b5);
    e[4] = _mm_unpacklo_epi32(b2, b6), e[5] = _mm_unpackhi_epi32(b2, b6);
    e[6] = _mm_unpacklo_epi32(b3, b7), e[7] = _mm_unpackhi_epi32(b3, b7);
}

/* The distances of eight 16-byte codes: out[k] = sum over s of
 * lut[s][cb[k][s]], added in the order s = 0..15 from 0 as the scalar loop
 * does (the same bits); one gather per sub-quantizer. */
__attribute__((target("avx2"))) static void sum8_avx2(const float *lut, const uint8_t *cb, float *out) {
    __m128i e[8];
    transpose8(cb, e);
    __m256 d = _mm256_setzero_ps();
    for (int j = 0; j < 8; j++) {
        d = _mm256_add_ps(d, _mm256_i32gather_ps(lut + (2 * j) * 256, _mm256_cvtepu8_epi32(e[j]), 4));
        d = _mm256_add_ps(d, _mm256_i32gather_ps(lut + (2 * j + 1) * 256,
                                                 _mm256_cvtepu8_epi32(_mm_srli_si128(e[j], 8)), 4));
    }
    _mm256_storeu_ps(out, d);
}

/* the same for sixteen codes cb[16][16] with 16-lane gathers. thr: the
 * distance a code must not exceed to enter the best CS_LF_NN (INFINITY:
 * no bound). Returns 0, out unwritten, where after 2, 4, ... or 14 of the
 * 16 sub-quantizers every lane's partial sum is already above thr: the table
 * entries are squared distances (>= 0) and a float sum of non-negative
 * terms never falls as terms are added (each add rounds to nearest of a
 * value >= the last), so each code's full sum would be above thr too and
 * none of the sixteen is kept: the same result without the last gathers.
 * The probed cells are the dense ones (at 200k references 57 codes per
 * probed list against 23 on average, ~1,800 codes per query descriptor),
 * and these gathers were the scan's largest cost. */
__attribute__((target("avx2,avx512f"))) static int sum16_avx512(const float *lut, const uint8_t *cb, float *out,
                                                                float thr) {
    __m128i e[8], f[8];
    transpose8(cb, e);
    transpose8(cb + 128, f);
    const __m512 t = _mm512_set1_ps(thr);
    __m512 d = _mm512_setzero_ps();
    for (int j = 0; j < 8; j++) {
        d = _mm512_add_ps(d, _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi64(e[j], f[j])),
                                                 lut + (2 * j) * 256, 4));
        d = _mm512_add_ps(d, _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi64(e[j], f[j])),
                                                 lut + (2 * j + 1) * 256, 4));
        if (j < 7 && !_mm512_cmp_ps_mask(d, t, _CMP_LE_OQ)) return 0;
    }
    _mm512_storeu_ps(out, d);
    return 1;
}

/* ---- a lower bound on the codes' sums from byte tables (AVX-512 VBMI) ----
 * At 1M references a query descriptor meets ~5,200 codes in its probed
 * lists, and the 16 gathers per 16 codes of sum16_avx512 were most of the
 * scan. Here, per query descriptor, the table lut[16][256] becomes bytes
 * q[s][j] = floor((lut[s][j] - lo[s]) x inv), lo[s] the least entry of row
 * s and inv = 255 / (the widest row's range): the finest scale at which no
 * entry saturates a byte, taken from the table itself (nothing tuned). Then
 * lo[s] + q[s][j] / inv <= lut[s][j] (floor; the float rounding of the
 * subtraction and product is a relative error of 2u at most, u = 2^-24),
 * so base + Q / inv, base = the sum of lo[s] and Q = the sum of a code's 16
 * bytes, is a lower bound of its sum. The bytes of 64 codes are looked up in
 * registers (two 128-byte permutes and a blend per sub-quantizer: no
 * gather) and summed in 16 bits (16 x 255 < 2^16). A code whose bound is
 * above the best CS_LF_NN's last distance cannot enter them; the others get
 * their float sum exactly as the other paths sum it (s = 0..15 from 0): the
 * same rows (test_lf_index: against every sum in full). */
typedef struct {
    uint8_t q[16][256];
    double base; /* sum of lo[s] */
    float inv;
} btab;

__attribute__((target("avx512f,avx512bw"))) static void btab_build(const float *lut, btab *b) {
    float lo[16], range = 0;
    b->base = 0;
    for (int s = 0; s < 16; s++) {
        __m512 mn = _mm512_loadu_ps(lut + s * 256), mx = mn;
        for (int j = 16; j < 256; j += 16) {
            const __m512 v = _mm512_loadu_ps(lut + s * 256 + j);
            mn = _mm512_min_ps(mn, v), mx = _mm512_max_ps(mx, v);
        }
        lo[s] = _mm512_reduce_min_ps(mn);
        const float r = _mm512_reduce_max_ps(mx) - lo[s];
        range = r > range ? r : range;
        b->base += lo[s];
    }
    float inv = 255.0f / range;
    if (!(range > 0) || !isfinite(inv)) inv = 1; /* every entry alike (or nearly): all bytes 0 */
    b->inv = inv;
    const __m512 iv = _mm512_set1_ps(inv);
    for (int s = 0; s < 16; s++) {
        const __m512 l = _mm512_set1_ps(lo[s]);
        for (int j = 0; j < 256; j += 16) {
            /* >= 0; truncation is floor; above 255 (a rounding of the
             * widest entry) saturates to 255, still <= the entry */
            const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(lut + s * 256 + j), l), iv);
            _mm_storeu_si128((__m128i *)(b->q[s] + j), _mm512_cvtusepi32_epi8(_mm512_cvttps_epu32(v)));
        }
    }
}

/* The largest byte sum Q that does not exclude a code from the best
 * CS_LF_NN of last distance thr; -1: every code is excluded. A code's float
 * sum S (16 non-negative terms added in order) is >= its exact sum x (1 -
 * 16u), and the exact sum >= (base + Q / inv) / (1 + 2.01u) (above); so
 * base + Q / inv > thr (1 + 2^-12) gives S > thr: that code is out (ties
 * at thr may enter, so only S > thr is excluded). The margin 2^-12 is far
 * above those roundings (19u = 2^-19.75) and far below the bound's own
 * slack (up to 16 / 255 of the widest row's range); the +1 covers the
 * rounding of this double arithmetic. */
static int btab_qthr(const btab *b, float thr) {
    if (!(thr < INFINITY)) return 65535;
    const double v = ((double)thr * (1 + 0x1p-12) - b->base) * b->inv;
    if (v >= 65534) return 65535;
    if (v < -1) return -1;
    return (int)floor(v) + 1;
}

/* The first nb (1..64) of the codes cb[][16]: bit k (k even: bit k / 2;
 * k odd: bit 32 + k / 2) set where code k's byte sum Q <= qthr (0..65535),
 * i.e. where the bound does not exclude it. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static uint64_t bound64(const btab *b, const uint8_t *cb, int nb,
                                                                             int qthr) {
    /* each register holds 4 codes x 16 bytes; permuted so that its dword s
     * holds the 4 codes' bytes s (byte 4s + k <- byte 16k + s) */
    static const uint8_t perm[64] = {
        0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51, 4, 20, 36, 52, 5, 21, 37, 53,
        6, 22, 38, 54, 7, 23, 39, 55, 8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
        12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
    const __m512i pv = _mm512_loadu_si512(perm);
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) {
        const int bytes = (nb - 4 * i) * 16;
        const __mmask64 mk = bytes >= 64 ? ~(__mmask64)0 : bytes <= 0 ? 0 : ((__mmask64)1 << bytes) - 1;
        r[i] = _mm512_permutexvar_epi8(pv, _mm512_maskz_loadu_epi8(mk, cb + 64 * i));
    }
    /* the 16 x 16 dwords transposed: t[s] dword i = r[i] dword s, so byte
     * 4i + k of t[s] is code 4i + k's byte s */
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + c]: rows 4i..4i+3, column 4L + c in 128-bit lane L */
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) { /* the 4 x 4 lanes of r[c], r[4 + c], r[8 + c], r[12 + c] */
        const __m512i v0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xee);
        const __m512i v2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44);
        const __m512i v3 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xee);
        t[c] = _mm512_shuffle_i32x4(v0, v2, 0x88), t[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        t[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88), t[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
    /* 16-bit sums of the bytes: a0 gets each pair as one word (even code +
     * 256 x odd code, modulo 2^16), a1 the odd code's byte alone; the even
     * code's sum is then a0 - 256 a1 (modulo 2^16, and it is < 2^16) */
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    for (int s = 0; s < 16; s++) {
        const uint8_t *q = b->q[s];
        const __m512i lo = _mm512_permutex2var_epi8(_mm512_loadu_si512(q), t[s], _mm512_loadu_si512(q + 64));
        const __m512i hi = _mm512_permutex2var_epi8(_mm512_loadu_si512(q + 128), t[s], _mm512_loadu_si512(q + 192));
        const __m512i v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(t[s]), lo, hi);
        a0 = _mm512_add_epi16(a0, v);
        a1 = _mm512_add_epi16(a1, _mm512_srli_epi16(v, 8));
    }
    const __m512i ev = _mm512_sub_epi16(a0, _mm512_slli_epi16(a1, 8)), qv = _mm512_set1_epi16((short)(uint16_t)qthr);
    uint64_t me = _mm512_cmple_epu16_mask(ev, qv), mo = _mm512_cmple_epu16_mask(a1, qv);
    const int ne = (nb + 1) / 2, no = nb / 2; /* even and odd codes among the nb */
    if (ne < 32) me &= ((uint64_t)1 << ne) - 1;
    if (no < 32) mo &= ((uint64_t)1 << no) - 1;
    return me | mo << 32;
}
#endif

/* The multi-index's half tables for ranking cells: t[h][j] = |c_hj|^2 -
 * 2 x_h . c_hj (the squared distance less |x_h|^2, the same for every
 * cell, so the same ranking up to rounding), each dot product one chain of
 * fused multiply-adds over u = 0..63 from 0: one operation per entry and
 * dimension where the distance took three (the coarse step at 1M cells is
 * 2 x 64 x 1,024 of them per query descriptor). fmaf in C and the FMA
 * instructions round once alike: the same bits at every level. */
static void coarse_table_c(const float *ct, const float *cn, const float *x, int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j++) {
            float acc = 0;
            for (int u = 0; u < 64; u++) acc = fmaf(x[h * 64 + u], ct[((size_t)h * 64 + u) * ks + j], acc);
            t[h * ks + j] = cn[h * ks + j] - (acc + acc);
        }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void coarse_table_avx2(const float *ct, const float *cn, const float *x,
                                                                 int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < 64; u++) {
                const __m256 xv = _mm256_set1_ps(x[h * 64 + u]);
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c), a0), a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 8), a1);
                a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 16), a2), a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 24), a3);
            }
            const float *n = cn + h * ks + j;
            float *o = t + h * ks + j;
            _mm256_storeu_ps(o, _mm256_sub_ps(_mm256_loadu_ps(n), _mm256_add_ps(a0, a0)));
            _mm256_storeu_ps(o + 8, _mm256_sub_ps(_mm256_loadu_ps(n + 8), _mm256_add_ps(a1, a1)));
            _mm256_storeu_ps(o + 16, _mm256_sub_ps(_mm256_loadu_ps(n + 16), _mm256_add_ps(a2, a2)));
            _mm256_storeu_ps(o + 24, _mm256_sub_ps(_mm256_loadu_ps(n + 24), _mm256_add_ps(a3, a3)));
        }
}

__attribute__((target("avx512f"))) static void coarse_table_avx512(const float *ct, const float *cn, const float *x,
                                                                  int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < 64; u++) {
                const __m512 xv = _mm512_set1_ps(x[h * 64 + u]);
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c), a0), a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 16), a1);
                a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 32), a2), a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 48), a3);
            }
            const float *n = cn + h * ks + j;
            float *o = t + h * ks + j;
            _mm512_storeu_ps(o, _mm512_sub_ps(_mm512_loadu_ps(n), _mm512_add_ps(a0, a0)));
            _mm512_storeu_ps(o + 16, _mm512_sub_ps(_mm512_loadu_ps(n + 16), _mm512_add_ps(a1, a1)));
            _mm512_storeu_ps(o + 32, _mm512_sub_ps(_mm512_loadu_ps(n + 32), _mm512_add_ps(a2, a2)));
            _mm512_storeu_ps(o + 48, _mm512_sub_ps(_mm512_loadu_ps(n + 48), _mm512_add_ps(a3, a3)));
        }
}

/* coarse_table_avx512 for four query descriptors x[4][128] at once, t[4][2][ks]:
 * each block of centroids is read once for the four (at 1M cells the
 * half tables' centroids are 512 KB, streamed from the caches per query
 * descriptor); every entry is the same chain as alone: the same bits */
__attribute__((target("avx512f"))) static void coarse_table4_avx512(const float *ct, const float *cn, const float *x,
                                                                   int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 32) {
            __m512 a[4][2];
            for (int q = 0; q < 4; q++) a[q][0] = a[q][1] = _mm512_setzero_ps();
            for (int u = 0; u < 64; u++) {
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                const __m512 c0 = _mm512_loadu_ps(c), c1 = _mm512_loadu_ps(c + 16);
                for (int q = 0; q < 4; q++) {
                    const __m512 xv = _mm512_set1_ps(x[q * 128 + h * 64 + u]);
                    a[q][0] = _mm512_fmadd_ps(xv, c0, a[q][0]), a[q][1] = _mm512_fmadd_ps(xv, c1, a[q][1]);
                }
            }
            const __m512 n0 = _mm512_loadu_ps(cn + h * ks + j), n1 = _mm512_loadu_ps(cn + h * ks + j + 16);
            for (int q = 0; q < 4; q++) {
                float *o = t + ((size_t)q * 2 + h) * ks + j;
                _mm512_storeu_ps(o, _mm512_sub_ps(n0, _mm512_add_ps(a[q][0], a[q][0])));
                _mm512_storeu_ps(o + 16, _mm512_sub_ps(n1, _mm512_add_ps(a[q][1], a[q][1])));
            }
        }
}
#endif

typedef struct {
    const cs_lf_index *ix;
    const float *x;       /* [n][128] */
    const int64_t *lists; /* [n][nprobe] */
    int nprobe, simd; /* 0 scalar, 1 AVX2, 2 AVX-512 (cs_lf_index_simd) */
    int fma;          /* cpuid has FMA (the coarse tables' AVX2 level) */
    int bytes;        /* the byte tables' bound before any sum (bound64: AVX-512 VBMI, 16 sub-quantizers) */
    size_t per_thread;
    int64_t n;            /* query descriptors */
    float *lut;           /* [threads][per_thread]: m x 256 (+ 2 x 2^B with ict) */
    int64_t *rows;        /* [n][CS_LF_NN] */
} scan_ctx;

static void table(const scan_ctx *c, const float *ct, const float *x, int m, int dsub, int ks, float *lut) {
#if defined(__x86_64__)
    if (c->simd == 2) {
        table_avx512(ct, x, m, dsub, ks, lut);
        return;
    }
    if (c->simd == 1) {
        table_avx2(ct, x, m, dsub, ks, lut);
        return;
    }
#endif
    table_c(ct, x, m, dsub, ks, lut);
}

/* keeps the best n (d ascending, then id) of what is offered, in d[], id[] */
/* ---- our PQ encoder ----
 * FAISS's ProductQuantizer::compute_code (dsub < 16): per sub-quantizer,
 * the distance to every centroid as fvec_L2sqr_ref sums it (from 0 over
 * u = 0..dsub-1, multiply and add apart: the generic build has no FMA) and
 * the first centroid of the least distance. The distances are the query
 * table's (table_c and its SIMD levels: the same bits), so the codes are
 * FAISS's; 256 descriptors per task, any thread count. */
typedef struct {
    const cs_lf_index *ix;
    const float *x;
    uint8_t *codes;
    int64_t n;
    int simd;
    int fail;
} enc_ctx;

/* The first j of the least t[j], j < 256 (t >= 0, no NaN). */
static int argmin256_c(const float *t) {
    int best = 0;
    for (int j = 1; j < 256; j++) best = t[j] < t[best] ? j : best;
    return best;
}

#if defined(__x86_64__)
/* argmin256_c by lanes: lane l keeps its first least t[16 i + l] (strict
 * <), then the least value's lowest index over the lanes: the same j. */
__attribute__((target("avx512f"))) static int argmin256_avx512(const float *t) {
    __m512 mv = _mm512_loadu_ps(t);
    __m512i iv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), cur = iv;
    const __m512i step = _mm512_set1_epi32(16);
    for (int j = 16; j < 256; j += 16) {
        cur = _mm512_add_epi32(cur, step);
        const __m512 v = _mm512_loadu_ps(t + j);
        const __mmask16 k = _mm512_cmp_ps_mask(v, mv, _CMP_LT_OQ);
        mv = _mm512_mask_mov_ps(mv, k, v);
        iv = _mm512_mask_mov_epi32(iv, k, cur);
    }
    const __mmask16 eq = _mm512_cmp_ps_mask(mv, _mm512_set1_ps(_mm512_reduce_min_ps(mv)), _CMP_EQ_OQ);
    return _mm512_reduce_min_epi32(_mm512_mask_mov_epi32(_mm512_set1_epi32(256), eq, iv));
}
#endif

static void encode_block(void *vc, int64_t b, int thread) {
    (void)thread;
    enc_ctx *c = vc;
    const cs_lf_index *ix = c->ix;
    const int m = ix->pq_m, ks = 256;
    float *lut = malloc(sizeof(float) * (size_t)m * ks);
    if (!lut) {
        c->fail = 1;
        return;
    }
    for (int64_t i = b * 256; i < c->n && i < (b + 1) * 256; i++) {
        const float *x = c->x + i * 128;
#if defined(__x86_64__)
        if (c->simd == 2) table_avx512(ix->ct, x, m, ix->pq_dsub, ks, lut);
        else if (c->simd == 1) table_avx2(ix->ct, x, m, ix->pq_dsub, ks, lut);
        else
#endif
            table_c(ix->ct, x, m, ix->pq_dsub, ks, lut);
        for (int s = 0; s < m; s++) {
#if defined(__x86_64__)
            if (c->simd == 2) {
                c->codes[i * m + s] = (uint8_t)argmin256_avx512(lut + (size_t)s * ks);
                continue;
            }
#endif
            c->codes[i * m + s] = (uint8_t)argmin256_c(lut + (size_t)s * ks);
        }
    }
    free(lut);
}

int lf_pq_encode(const cs_lf_index *ix, int64_t n, const float *x, uint8_t *codes) {
    enc_ctx c = {ix, x, codes, n, simd_level(ix->simd_max), 0};
    cs_parallel_for(cs_threads(), (n + 255) / 256, encode_block, &c);
    return c.fail ? -1 : 0;
}

static void offer(float *d, int64_t *id, int n, int *have, float v, int64_t i) {
    if (*have == n && (v > d[n - 1] || (v == d[n - 1] && i >= id[n - 1]))) return;
    int k = *have < n ? (*have)++ : n - 1;
    for (; k > 0 && (v < d[k - 1] || (v == d[k - 1] && i < id[k - 1])); k--) d[k] = d[k - 1], id[k] = id[k - 1];
    d[k] = v, id[k] = i;
}

/* The multi-index's nprobe cells nearest to x: the distance to a cell is the
 * sum of its two halves' distances, so the best P cells are among the best
 * P centroids of each half: P x P sums, the best P kept (by distance, then
 * cell number). tab: 2 x 2^B floats of scratch. */
static void coarse_tables(const scan_ctx *c, const float *x, float *tab) {
    const int k2 = 1 << c->ix->imi_b;
#if defined(__x86_64__)
    if (c->simd == 2 && k2 % 64 == 0) coarse_table_avx512(c->ix->ict, c->ix->icn, x, k2, tab);
    else if (c->simd >= 1 && c->fma && k2 % 32 == 0) coarse_table_avx2(c->ix->ict, c->ix->icn, x, k2, tab);
    else
#endif
        coarse_table_c(c->ix->ict, c->ix->icn, x, k2, tab);
}

/* The P least of one half's k2 entries t[] (by value, then j) into hd[],
 * hi[], ascending; returns how many (P, or k2 if fewer). */
static int half_best(const float *t, int k2, int P, float *hd, int64_t *hi) {
    /* a bound on the P-th smallest: the largest of P blocks' minima (P
     * distinct entries), so every entry kept is <= it; the entries above it
     * (most of them) are not offered, and fewer offers are kept */
    float bound = INFINITY;
    if (k2 >= 2 * P && k2 % P == 0) {
        const int bl = k2 / P;
        bound = -INFINITY;
        for (int g = 0; g < P; g++) {
            float mn = t[g * bl];
            for (int j = 1; j < bl; j++) mn = t[g * bl + j] < mn ? t[g * bl + j] : mn;
            bound = mn > bound ? mn : bound;
        }
    }
    int have = 0;
    for (int j = 0; j < k2; j++) { /* most are rejected here: j ascends, so a tie loses too */
        const float v = t[j];
        if (v <= bound && (have < P || v < hd[P - 1])) offer(hd, hi, P, &have, v, j);
    }
    return have;
}

#if defined(__x86_64__)
/* half_best with 16 entries compared at a time (k2 a multiple of 16): the
 * same bound (minima and maxima are exact) and the same entries offered in
 * the same order (j ascending), so the same cells. At 1M references the
 * scalar loops over 2 x 1,024 entries per query descriptor were a fifth of
 * the scan once the codes' sums went through the byte tables. */
__attribute__((target("avx512f"))) static int half_best_avx512(const float *t, int k2, int P, float *hd, int64_t *hi) {
    float bound = INFINITY;
    if (k2 >= 2 * P && k2 % P == 0) {
        const int bl = k2 / P;
        bound = -INFINITY;
        for (int g = 0; g < P; g++) {
            float mn;
            if (bl % 16 == 0) {
                __m512 m = _mm512_loadu_ps(t + g * bl);
                for (int j = 16; j < bl; j += 16) m = _mm512_min_ps(m, _mm512_loadu_ps(t + g * bl + j));
                mn = _mm512_reduce_min_ps(m);
            } else {
                mn = t[g * bl];
                for (int j = 1; j < bl; j++) mn = t[g * bl + j] < mn ? t[g * bl + j] : mn;
            }
            bound = mn > bound ? mn : bound;
        }
    }
    int have = 0;
    __m512 cut = _mm512_set1_ps(bound);
    for (int j = 0; j < k2; j += 16) {
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(t + j), cut, _CMP_LE_OQ);
        while (k) {
            const int l = __builtin_ctz(k);
            k &= k - 1;
            const float v = t[j + l];
            if (have < P || v < hd[P - 1]) {
                offer(hd, hi, P, &have, v, j + l);
                if (have == P && hd[P - 1] < bound) cut = _mm512_set1_ps(hd[P - 1]); /* the scalar test's, as <= */
            }
        }
    }
    return have;
}
#endif

/* the cells from x's half tables tab[2][2^B] (coarse_tables) */
static void coarse(const scan_ctx *c, const float *tab, int64_t *lists) {
    const int b = c->ix->imi_b, k2 = 1 << b, P = c->nprobe < k2 ? c->nprobe : k2;
    float hd[2][MAXPROBE];
    int64_t hi[2][MAXPROBE];
    for (int h = 0; h < 2; h++) {
#if defined(__x86_64__)
        if (c->bytes && k2 % 16 == 0) { /* with the byte tables (prune 1 is session 8's scan as it was: the bench's anchor) */
            half_best_avx512(tab + h * k2, k2, P, hd[h], hi[h]);
            continue;
        }
#endif
        half_best(tab + h * k2, k2, P, hd[h], hi[h]);
    }
    float bd[MAXPROBE];
    int have = 0;
    for (int a = 0; a < P; a++)
        for (int e = 0; e < P; e++) {
            float v = hd[0][a] + hd[1][e];
            if (have == P && v > bd[P - 1]) break; /* the second half's are ascending */
            offer(bd, lists, P, &have, v, hi[0][a] + (hi[1][e] << b));
        }
    for (int p = have; p < c->nprobe; p++) lists[p] = -1;
}

enum { GROUP = 4 }; /* query descriptors per task: their coarse tables in one pass */

/* d (id) into the best K, bd[] bi[] sorted by (distance, vector number) */
static inline void insert_best(float *bd, int64_t *bi, int K, float d, int64_t id) {
    if (d > bd[K - 1] || (d == bd[K - 1] && id >= bi[K - 1])) return;
    int k = K - 1;
    for (; k > 0 && (d < bd[k - 1] || (d == bd[k - 1] && id < bi[k - 1])); k--) bd[k] = bd[k - 1], bi[k] = bi[k - 1];
    bd[k] = d, bi[k] = id;
}

/* tab: x's half tables when ours (coarse_tables), else NULL */
static void scan_one(const scan_ctx *c, int64_t i, float *lut, const float *tab) {
    const int K = CS_LF_NN, m = c->ix->pq_m;
    const int64_t *lists = c->lists ? c->lists + i * c->nprobe : NULL;
    int64_t own_lists[MAXPROBE];
    if (tab) { /* the cells ourselves */
        coarse(c, tab, own_lists);
        lists = own_lists;
    }
    table(c, c->ix->ct, c->x + i * 128, m, c->ix->pq_dsub, 256, lut);
#if defined(__x86_64__)
    btab bt;
    if (c->bytes) btab_build(lut, &bt);
#endif
    float bd[CS_LF_NN];
    int64_t bi[CS_LF_NN];
    for (int k = 0; k < K; k++) bd[k] = INFINITY, bi[k] = INT64_MAX;
    /* the probed lists' codes and ids are scattered over the index (480 MB
     * of codes at 1M references): ask for the first lines of every list
     * before scanning any, so that the misses overlap */
    const uint8_t *lc[MAXPROBE];
    const int64_t *li[MAXPROBE];
    int64_t ln[MAXPROBE];
    const int gather = m == 16 ? c->simd : 0;
    for (int p0 = 0; p0 < c->nprobe; p0 += MAXPROBE) /* one group unless FAISS picked the cells */
    for (int pe = c->nprobe - p0 < MAXPROBE ? c->nprobe : p0 + MAXPROBE, p = p0; p < pe; p++) {
        if (p == p0)
            for (int q = p0; q < pe; q++) {
                ln[q - p0] = lists[q] < 0 ? 0 : cs_faiss_list(c->ix->f, lists[q], &lc[q - p0], &li[q - p0]);
                if (ln[q - p0] > 0) {
                    __builtin_prefetch(lc[q - p0]);
                    __builtin_prefetch(lc[q - p0] + 64);
                    __builtin_prefetch(li[q - p0]);
                }
            }
        const uint8_t *codes = lc[p - p0];
        const int64_t *ids = li[p - p0];
        int64_t n = ln[p - p0];
        /* eight codes at a time (sixteen with AVX-512): independent chains of
         * adds (one code's sum is a chain of m dependent adds), each summed
         * in the same order as one code alone; with SIMD one gather per
         * sub-quantizer (sum8_avx2, sum16_avx512: the same bits) */
        for (int64_t e = 0; e < n;) {
#if defined(__x86_64__)
            /* 64 codes at a time through the byte tables' bound (a tail of
             * 16 or fewer by the gathers below: one block costs 64 codes'
             * transposition); the few codes it leaves summed in full */
            if (c->bytes && n - e > 16) {
                const int nb = n - e < 64 ? (int)(n - e) : 64;
                const int qt = btab_qthr(&bt, bd[K - 1]);
                uint64_t keep = qt < 0 ? 0 : bound64(&bt, codes + e * m, nb, qt);
                while (keep) {
                    const int bit = __builtin_ctzll(keep), k = bit < 32 ? 2 * bit : 2 * (bit - 32) + 1;
                    keep &= keep - 1;
                    const uint8_t *cb = codes + (e + k) * m;
                    float d = 0;
                    for (int s = 0; s < 16; s++) d += lut[s * 256 + cb[s]];
                    insert_best(bd, bi, K, d, ids[e + k]);
                }
                e += nb;
                continue;
            }
#endif
            float d8[16] = {0};
            int nb = n - e < 8 ? (int)(n - e) : 8;
            const uint8_t *cb = codes + e * m;
            if (nb == 8 && e + 24 < n) __builtin_prefetch(cb + 24 * m);
#if defined(__x86_64__)
            if (gather == 2 && n - e >= 16) {
                nb = 16;
                if (!sum16_avx512(lut, cb, d8, c->ix->no_prune ? INFINITY : bd[K - 1])) { /* none of the 16 kept */
                    e += nb;
                    continue;
                }
            } else if (gather && nb == 8) {
                sum8_avx2(lut, cb, d8);
            } else
#endif
            if (nb == 8) {
                for (int s = 0; s < m; s++)
                    for (int k = 0; k < 8; k++) d8[k] += lut[s * 256 + cb[k * m + s]];
            } else {
                for (int k = 0; k < nb; k++)
                    for (int s = 0; s < m; s++) d8[k] += lut[s * 256 + cb[k * m + s]];
            }
            for (int b = 0; b < nb; b++) insert_best(bd, bi, K, d8[b], ids[e + b]);
            e += nb;
        }
    }
    for (int k = 0; k < K; k++) c->rows[i * K + k] = bi[k] == INT64_MAX ? -1 : bi[k];
}

/* query descriptors [GROUP g, GROUP g + GROUP) of c->n */
static void scan_group(void *vc, int64_t g, int thread) {
    const scan_ctx *c = vc;
    float *lut = c->lut + (size_t)thread * c->per_thread, *tab = lut + c->ix->pq_m * 256;
    const int64_t i0 = g * GROUP, n = c->n - i0 < GROUP ? c->n - i0 : GROUP;
    const size_t k2 = c->ix->ict ? (size_t)1 << c->ix->imi_b : 0;
    if (c->ix->ict) {
#if defined(__x86_64__)
        if (n == GROUP && c->simd == 2 && k2 % 64 == 0) coarse_table4_avx512(c->ix->ict, c->ix->icn, c->x + i0 * 128, (int)k2, tab);
        else
#endif
            for (int64_t q = 0; q < n; q++) coarse_tables(c, c->x + (i0 + q) * 128, tab + q * 2 * k2);
    }
    for (int64_t q = 0; q < n; q++) scan_one(c, i0 + q, lut, c->ix->ict ? tab + q * 2 * k2 : NULL);
}

/* the CS_LF_NN nearest of n query descriptors x[n][128]: rows[n][CS_LF_NN] */
int lf_nearest(cs_lf_index *ix, int64_t n, const float *x, int64_t *rows, float *dist, cs_err *err) {
    if (!ix->ct) return cs_faiss_search(ix->f, n, x, CS_LF_NN, dist, rows, err);
    int nprobe = cs_faiss_nprobe(ix->f), nt = cs_threads();
    if (nprobe > MAXPROBE && ix->ict) { /* more cells than our coarse step keeps: FAISS's */
        free(ix->ict);
        free(ix->icn);
        ix->ict = ix->icn = NULL;
    }
    size_t per = (size_t)ix->pq_m * 256 + (ix->ict ? (size_t)GROUP * 2 << ix->imi_b : 0);
    int64_t *lists = ix->ict ? NULL : malloc(sizeof(int64_t) * (size_t)n * (nprobe > 0 ? nprobe : 1));
    float *lut = malloc(sizeof(float) * (size_t)nt * per);
    int rc = -1;
    if ((!ix->ict && !lists) || !lut) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    } else if (nprobe > 0 && (ix->ict || !cs_faiss_coarse(ix->f, n, x, nprobe, lists, err))) {
        scan_ctx c = {.ix = ix, .x = x, .lists = lists, .nprobe = nprobe, .per_thread = per, .lut = lut, .rows = rows};
#if defined(__x86_64__)
        c.simd = simd_level(ix->simd_max);
#if defined(__x86_64__)
        c.fma = __builtin_cpu_supports("fma");
#endif
        c.bytes = c.simd == 2 && ix->pq_m == 16 && has_vbmi() && !ix->no_bytes && !ix->no_prune;
#endif
        c.n = n;
        cs_parallel_for(nt, (n + GROUP - 1) / GROUP, scan_group, &c);
        rc = 0;
    }
    free(lists);
    free(lut);
    return rc;
}

int cs_lf_index_knn(cs_lf_index *ix, int64_t n, const uint8_t *desc, int k, int64_t *rows, cs_err *err) {
    float *x = malloc(sizeof(float) * 128 * (size_t)(n ? n : 1)), *d = malloc(sizeof(float) * (size_t)(n ? n : 1) * k);
    int rc = -1;
    if (!x || !d) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    } else {
        for (int64_t i = 0; i < 128 * n; i++) x[i] = desc[i];
        rc = n <= 0 ? 0 : k == CS_LF_NN ? lf_nearest(ix, n, x, rows, d, err) : cs_faiss_search(ix->f, n, x, k, d, rows, err);
    }
    free(x);
    free(d);
    return rc;
}

static int cmp_vote(const void *a, const void *b) {
    const cs_lf_vote *x = a, *y = b;
    if (x->votes != y->votes) return x->votes > y->votes ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}
static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* one query set's votes from its descriptors' nearest rows[n][K] */
int lf_vote(const cs_lf_index *ix, const int64_t *rows, int n, int32_t *hit, cs_lf_vote *v, int max_out,
                cs_lf_vote *out) {
    const int K = CS_LF_NN;
    /* one vote per (query keypoint, reference): dedupe within each keypoint's list */
    int nh = 0;
    for (int k = 0; k < n; k++) {
        int start = nh;
        for (int j = 0; j < K; j++) {
            int64_t r = rows[k * K + j];
            if (r < 0 || r >= ix->nd) continue;
            int32_t ref = ix->owner[r], dup = 0;
            for (int t = start; t < nh; t++) dup |= hit[t] == ref;
            if (!dup) hit[nh++] = ref;
        }
    }
    qsort(hit, (size_t)nh, sizeof *hit, cmp_i32);
    int nv = 0;
    for (int t = 0; t < nh; t++) {
        if (nv && v[nv - 1].row == hit[t]) v[nv - 1].votes++;
        else v[nv++] = (cs_lf_vote){hit[t], 1};
    }
    qsort(v, (size_t)nv, sizeof *v, cmp_vote);
    int m = nv < max_out ? nv : max_out;
    memcpy(out, v, sizeof *v * (size_t)m);
    return m;
}

int cs_lf_retrieve(cs_lf_index *ix, const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout,
                   cs_err *err) {
    /* the descriptors of CS_LF_BATCH sets go to FAISS in one search (its
     * coarse quantizer is then one matrix product, and its threads share
     * the queries); a fixed batch, so the answer does not depend on how
     * many threads there are */
    const int K = CS_LF_NN, M = CS_LF_QUERY_KP, B = CS_LF_BATCH;
    float *x = malloc(sizeof(float) * 128 * (size_t)M * B), *dist = malloc(sizeof(float) * (size_t)M * B * K);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)M * B * K);
    int32_t *hit = malloc(sizeof(int32_t) * M * K);
    cs_lf_vote *v = malloc(sizeof(cs_lf_vote) * M * K);
    int rc = -1;
    if (!x || !dist || !rows || !hit || !v) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nq; i++) nout[i] = 0;
    for (int64_t b = 0; b < nq && ix->nd > 0; b += B) {
        int64_t e = nq - b < B ? nq : b + B, nd = 0;
        for (int64_t i = b; i < e; i++)
            for (int k = 0; k < q[i].n; k++, nd++)
                for (int j = 0; j < 128; j++) x[nd * 128 + j] = q[i].desc[k][j];
        if (nd == 0) continue;
        if (lf_nearest(ix, nd, x, rows, dist, err)) goto out;
        for (int64_t i = b, at = 0; i < e; at += q[i].n, i++)
            if (q[i].n > 0) nout[i] = lf_vote(ix, rows + at * K, q[i].n, hit, v, max_out, out + i * max_out);
    }
    rc = 0;
out:
    free(x);
    free(dist);
    free(rows);
    free(hit);
    free(v);
    return rc;
}


void lf_scan_lut(const cs_lf_index *ix, const float *x, float *lut) {
    scan_ctx c = {.ix = ix};
    c.simd = simd_level(ix->simd_max); /* the table's bits are the same at every level */
    table(&c, ix->ct, x, ix->pq_m, ix->pq_dsub, 256, lut);
}
