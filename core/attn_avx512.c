/* attn_avx512.c — see attn.h. Compiled with -mavx512f (Makefile).
 *
 * Layout: for head h, Q, K, V are [dh, T] row blocks (row stride ld), so
 *   S^T [keys, queries] = K^T Q: the micro-kernel's A is K read in place
 *     (key j, feature d at k[d*ldk + j]: rows of the register tile are 14
 *     consecutive keys), its B the Q rows (32 consecutive queries);
 *   O^T [dh, queries] += V P^T: A is V in place (rows d), B the rows of S^T.
 * Neither product packs anything except ragged edges (fewer than 14 keys or
 * features left; for features, only in the last head), which are copied into
 * a zero-padded panel so nothing past the matrices is read. The softmax
 * runs down the columns of S^T: 16 queries per zmm.
 *
 * bf16 (flags of attn.h): the operands of a product are rounded to bf16
 * once per call, into pair rows (the 32-bit word of a row pair holds the
 * even k in its low half, as vdpbf16ps takes them), zero-padded so the
 * kernel needs no edge copies: for S^T, Q and K as [dh/2][T] pair rows per
 * head; for O^T, V as its own rows ([dh][T/2]: consecutive keys pair up)
 * and P as [keys/2][64] pair rows written by the softmax, which stays fp32
 * (the scores, their max and sums, the rescaling and O^T are fp32). */
#include "core/attn.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_internal.h"
#include "core/parallel.h"

#define MR CS_GEMM_MR
#define NR CS_GEMM_NR
#define BQ 64  /* queries per item (2 register tiles wide) */
#define BK 140 /* keys per block (10 register tiles tall): S^T 35 KB */

typedef struct {
    float *out;
    const float *q, *k, *v;
    int ldo, ldq, ldk, ldv, Tq, Tk, heads, dh, nqb;
    float scale;
    float *ws;
    size_t ws_stride;
    int bf16;                /* CS_ATTN_BF16_* */
    uint32_t *qp, *kp, *vp;  /* bf16 pair rows (see the top) */
    int dhq, dhr, tqp, tkp, tk2; /* dh pairs, dh rounded up to MR rows; padded Tq, Tk; Tk pairs */
} att_job;

/* 16 words: bf16(lo) in the low half, bf16(hi) in the high (nearest even) */
static inline __m512i pair16(__m512 lo, __m512 hi) {
    __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
    __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
    return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

/* dst[j] (j < npad) = pair(r0[j], r1[j]), values past n and a NULL r1 as 0 */
static void pair_rows(uint32_t *dst, const float *r0, const float *r1, int n, int npad) {
    for (int j = 0; j < npad; j += 16) {
        __mmask16 km = (__mmask16)(n - j >= 16 ? 0xffff : n - j <= 0 ? 0 : (1u << (n - j)) - 1);
        __m512 lo = _mm512_maskz_loadu_ps(km, r0 + j);
        __m512 hi = r1 ? _mm512_maskz_loadu_ps(km, r1 + j) : _mm512_setzero_ps();
        _mm512_storeu_si512(dst + j, pair16(lo, hi));
    }
}

/* dst[j] (j < n2pad) = pair(r[2j], r[2j + 1]), values past n (and a NULL r) as 0 */
static void pair_cols(uint32_t *dst, const float *r, int n, int n2pad) {
    for (int j = 0; j < n2pad; j += 16) {
        int e = 2 * j, left = n - e;
        __mmask16 k0 = (__mmask16)(!r || left <= 0 ? 0 : left >= 16 ? 0xffff : (1u << left) - 1);
        __mmask16 k1 = (__mmask16)(!r || left <= 16 ? 0 : left >= 32 ? 0xffff : (1u << (left - 16)) - 1);
        __m512 x0 = k0 ? _mm512_maskz_loadu_ps(k0, r + e) : _mm512_setzero_ps();
        __m512 x1 = k1 ? _mm512_maskz_loadu_ps(k1, r + e + 16) : _mm512_setzero_ps();
        _mm512_storeu_si512(dst + j, (__m512i)_mm512_cvtne2ps_pbh(x1, x0)); /* x0's 16 values, then x1's */
    }
}

/* item h: head h's operands into the pair rows */
static void att_pack(void *vj, int64_t h, int thread) {
    (void)thread;
    const att_job *j = vj;
    int dh = j->dh;
    if (j->bf16 & CS_ATTN_BF16_QK) {
        const float *q = j->q + (size_t)h * dh * j->ldq, *k = j->k + (size_t)h * dh * j->ldk;
        for (int p = 0; p < j->dhq; p++) {
            int d = 2 * p, d1 = d + 1 < dh;
            pair_rows(j->qp + ((size_t)h * j->dhq + p) * j->tqp, q + (size_t)d * j->ldq,
                      d1 ? q + (size_t)(d + 1) * j->ldq : NULL, j->Tq, j->tqp);
            pair_rows(j->kp + ((size_t)h * j->dhq + p) * j->tkp, k + (size_t)d * j->ldk,
                      d1 ? k + (size_t)(d + 1) * j->ldk : NULL, j->Tk, j->tkp);
        }
    }
    if (j->bf16 & CS_ATTN_BF16_PV) {
        const float *v = j->v + (size_t)h * dh * j->ldv;
        for (int d = 0; d < j->dhr; d++)
            pair_cols(j->vp + ((size_t)h * j->dhr + d) * j->tk2, d < dh ? v + (size_t)d * j->ldv : NULL, j->Tk,
                      j->tk2);
    }
}

/* exp(x) for x <= 88; 0 below -87 and for -inf (scores minus their max). */
static inline __m512 exp512(__m512 x) {
    __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.f), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(88.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(p, n));
}

static unsigned lane_mask(int n) { return n >= 16 ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1; }

static void att_item(void *vj, int64_t it, int thread) {
    const att_job *j = vj;
    int h = (int)(it / j->nqb), i0 = (int)(it % j->nqb) * BQ;
    int nq = j->Tq - i0 < BQ ? j->Tq - i0 : BQ, dh = j->dh;
    int bqk = j->bf16 & CS_ATTN_BF16_QK, bpv = j->bf16 & CS_ATTN_BF16_PV;
    const float *qh = j->q + (size_t)h * dh * j->ldq + i0;
    const float *kh = j->k + (size_t)h * dh * j->ldk;
    const float *vh = j->v + (size_t)h * dh * j->ldv;
    const uint32_t *qph = j->qp + (size_t)h * j->dhq * j->tqp + i0, *kph = j->kp + (size_t)h * j->dhq * j->tkp;
    const uint32_t *vph = j->vp + (size_t)h * j->dhr * j->tk2;
    float *S = j->ws + (size_t)thread * j->ws_stride; /* [BK][BQ] */
    float *O = S + (size_t)BK * BQ;                    /* [dh][BQ] */
    float *mx = O + (size_t)dh * BQ, *l = mx + BQ;     /* per query */
    float *pan = l + BQ;                               /* MR x max(dh, BK) edge panel, */
    uint32_t *P2 = (uint32_t *)pan;                    /* or bf16 P^T as [BK/2][BQ] pair rows */
    memset(S, 0, sizeof(float) * BK * BQ);
    memset(O, 0, sizeof(float) * dh * BQ);
    for (int c = 0; c < BQ; c++) mx[c] = -INFINITY, l[c] = 0.f;
    unsigned cm[4] = {lane_mask(nq), lane_mask(nq - 16), lane_mask(nq - 32), lane_mask(nq - 48)};
    for (int j0 = 0; j0 < j->Tk; j0 += BK) {
        int kn = j->Tk - j0 < BK ? j->Tk - j0 : BK;
        /* S^T [kn, nq] = scale K[:, j0..]^T Q */
        for (int ip = 0; ip < kn; ip += MR) {
            int m = kn - ip < MR ? kn - ip : MR;
            if (bqk) {
                for (int jp = 0; jp < nq; jp += NR)
                    cs_gemm_kern_bf16_strided(j->dhq, kph + j0 + ip, 1, (size_t)j->tkp, qph + jp, (size_t)j->tqp,
                                              S + (size_t)ip * BQ + jp, BQ, m, cm[jp / 16], cm[jp / 16 + 1], j->scale,
                                              0.f, 1);
                continue;
            }
            const float *a = kh + j0 + ip;
            size_t rs = 1, ks = (size_t)j->ldk;
            if (m < MR) {
                for (int d = 0; d < dh; d++)
                    for (int r = 0; r < MR; r++) pan[d * MR + r] = r < m ? a[(size_t)d * j->ldk + r] : 0.f;
                a = pan, ks = MR;
            }
            for (int jp = 0; jp < nq; jp += NR)
                cs_gemm_kern_strided(dh, a, rs, ks, qh + jp, (size_t)j->ldq, S + (size_t)ip * BQ + jp, BQ, m,
                                     cm[jp / 16], cm[jp / 16 + 1], j->scale, 0.f, 1);
        }
        /* online softmax down each column (query) */
        for (int cv = 0; cv < nq; cv += 16) {
            __m512 mo = _mm512_loadu_ps(mx + cv), mn = mo;
            for (int r = 0; r < kn; r++) mn = _mm512_max_ps(mn, _mm512_loadu_ps(S + (size_t)r * BQ + cv));
            __m512 corr = exp512(_mm512_sub_ps(mo, mn)); /* 0 on the first block (-inf) */
            __m512 sum = _mm512_setzero_ps();
            if (bpv) { /* P^T rounded to bf16 pair rows; the sum of the fp32 values, in the same order */
                for (int r = 0; r < kn; r += 2) {
                    __m512 p0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)r * BQ + cv), mn));
                    __m512 p1 = r + 1 < kn ? exp512(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)(r + 1) * BQ + cv), mn))
                                           : _mm512_setzero_ps();
                    _mm512_storeu_si512(P2 + (size_t)(r / 2) * BQ + cv, pair16(p0, p1));
                    sum = _mm512_add_ps(_mm512_add_ps(sum, p0), p1);
                }
            } else {
                for (int r = 0; r < kn; r++) {
                    __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)r * BQ + cv), mn));
                    _mm512_storeu_ps(S + (size_t)r * BQ + cv, p);
                    sum = _mm512_add_ps(sum, p);
                }
            }
            _mm512_storeu_ps(l + cv, _mm512_fmadd_ps(_mm512_loadu_ps(l + cv), corr, sum));
            _mm512_storeu_ps(mx + cv, mn);
            for (int d = 0; d < dh; d++)
                _mm512_storeu_ps(O + (size_t)d * BQ + cv, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)d * BQ + cv), corr));
        }
        /* O^T [dh, nq] += V[:, j0..j0+kn] P^T */
        for (int dp = 0; dp < dh; dp += MR) {
            int m = dh - dp < MR ? dh - dp : MR;
            if (bpv) {
                for (int jp = 0; jp < nq; jp += NR)
                    cs_gemm_kern_bf16_strided((kn + 1) / 2, vph + (size_t)dp * j->tk2 + j0 / 2, (size_t)j->tk2, 1,
                                              P2 + jp, BQ, O + (size_t)dp * BQ + jp, BQ, m, cm[jp / 16],
                                              cm[jp / 16 + 1], 1.f, 1.f, 0);
                continue;
            }
            const float *a = vh + (size_t)dp * j->ldv + j0;
            size_t rs = (size_t)j->ldv, ks = 1;
            /* a ragged edge (dh 40 = 14 + 14 + 12) reads the next head's
             * rows in place where V has them (every head but the last): the
             * kernel stores only m rows, and each row's sums are its own, so
             * the bits are the same without the copy (12 x 140 strided floats
             * per key block, for 1.1 MFLOP of products) */
            if (m < MR && (size_t)h * dh + dp + MR > (size_t)j->heads * dh) {
                for (int jj = 0; jj < kn; jj++)
                    for (int r = 0; r < MR; r++) pan[jj * MR + r] = r < m ? a[(size_t)r * j->ldv + jj] : 0.f;
                a = pan, rs = 1, ks = MR;
            }
            for (int jp = 0; jp < nq; jp += NR)
                cs_gemm_kern_strided(kn, a, rs, ks, S + jp, BQ, O + (size_t)dp * BQ + jp, BQ, m, cm[jp / 16],
                                     cm[jp / 16 + 1], 1.f, 1.f, 0);
        }
    }
    float *oh = j->out + (size_t)h * dh * j->ldo + i0;
    for (int cv = 0; cv < nq; cv += 16) {
        __mmask16 mk = (__mmask16)cm[cv / 16];
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_loadu_ps(l + cv));
        for (int d = 0; d < dh; d++)
            _mm512_mask_storeu_ps(oh + (size_t)d * j->ldo + cv, mk, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)d * BQ + cv), inv));
    }
}

static size_t rup(size_t n, size_t m) { return (n + m - 1) / m * m; }

int cs_attn_avx512(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int Tq, int Tk, int heads, int dh, int bf16, int nthreads) {
    if (Tq <= 0 || heads <= 0) return 0;
    att_job j = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, heads, dh, (Tq + BQ - 1) / BQ, 1.f / sqrtf((float)dh),
                 NULL, 0, bf16 & (CS_ATTN_BF16_QK | CS_ATTN_BF16_PV), NULL, NULL, NULL, 0, 0, 0, 0, 0};
    int64_t items = (int64_t)heads * j.nqb;
    int nt = nthreads < 1 ? 1 : nthreads > items ? (int)items : nthreads;
    size_t span = (size_t)(dh > BK ? dh : BK), pan = MR * span;
    if (pan < (size_t)BK / 2 * BQ) pan = (size_t)BK / 2 * BQ; /* it also holds bf16 P^T */
    j.ws_stride = ((size_t)BK * BQ + (size_t)dh * BQ + 2 * BQ + pan + 15) / 16 * 16;
    if (Tk <= 0) { /* no keys: softmax over nothing, defined as zeros */
        for (int r = 0; r < heads * dh; r++) memset(out + (size_t)r * ldo, 0, sizeof(float) * Tq);
        return 0;
    }
    void *pk = NULL;
    if (j.bf16) { /* pair rows: zero-padded so the kernel's full tiles stay inside */
        j.dhq = (dh + 1) / 2, j.dhr = (int)rup((size_t)dh, MR);
        j.tqp = (int)rup((size_t)Tq, BQ), j.tkp = (int)rup((size_t)Tk + MR - 1, 16);
        j.tk2 = (int)rup(((size_t)Tk + 1) / 2, 16);
        size_t nq = j.bf16 & CS_ATTN_BF16_QK ? (size_t)heads * j.dhq * j.tqp : 0;
        size_t nk = j.bf16 & CS_ATTN_BF16_QK ? (size_t)heads * j.dhq * j.tkp : 0;
        size_t nv = j.bf16 & CS_ATTN_BF16_PV ? (size_t)heads * j.dhr * j.tk2 : 0;
        pk = aligned_alloc(64, rup((nq + nk + nv) * sizeof(uint32_t), 64) + 64);
        if (!pk) return -1;
        j.qp = pk, j.kp = j.qp + nq, j.vp = j.kp + nk;
    }
    j.ws = aligned_alloc(64, j.ws_stride * nt * sizeof(float));
    if (!j.ws) {
        free(pk);
        return -1;
    }
    if (j.bf16) cs_parallel_for(nt < heads ? nt : heads, heads, att_pack, &j);
    cs_parallel_for(nt, items, att_item, &j);
    free(j.ws);
    free(pk);
    return 0;
}
