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
 * runs down the columns of S^T: 16 queries per zmm. */
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
} att_job;

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
    const float *qh = j->q + (size_t)h * dh * j->ldq + i0;
    const float *kh = j->k + (size_t)h * dh * j->ldk;
    const float *vh = j->v + (size_t)h * dh * j->ldv;
    float *S = j->ws + (size_t)thread * j->ws_stride; /* [BK][BQ] */
    float *O = S + (size_t)BK * BQ;                    /* [dh][BQ] */
    float *mx = O + (size_t)dh * BQ, *l = mx + BQ;     /* per query */
    float *pan = l + BQ;                               /* MR x max(dh, BK) edge panel */
    memset(S, 0, sizeof(float) * BK * BQ);
    memset(O, 0, sizeof(float) * dh * BQ);
    for (int c = 0; c < BQ; c++) mx[c] = -INFINITY, l[c] = 0.f;
    unsigned cm[4] = {lane_mask(nq), lane_mask(nq - 16), lane_mask(nq - 32), lane_mask(nq - 48)};
    for (int j0 = 0; j0 < j->Tk; j0 += BK) {
        int kn = j->Tk - j0 < BK ? j->Tk - j0 : BK;
        /* S^T [kn, nq] = scale K[:, j0..]^T Q */
        for (int ip = 0; ip < kn; ip += MR) {
            int m = kn - ip < MR ? kn - ip : MR;
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
            for (int r = 0; r < kn; r++) {
                __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)r * BQ + cv), mn));
                _mm512_storeu_ps(S + (size_t)r * BQ + cv, p);
                sum = _mm512_add_ps(sum, p);
            }
            _mm512_storeu_ps(l + cv, _mm512_fmadd_ps(_mm512_loadu_ps(l + cv), corr, sum));
            _mm512_storeu_ps(mx + cv, mn);
            for (int d = 0; d < dh; d++)
                _mm512_storeu_ps(O + (size_t)d * BQ + cv, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)d * BQ + cv), corr));
        }
        /* O^T [dh, nq] += V[:, j0..j0+kn] P^T */
        for (int dp = 0; dp < dh; dp += MR) {
            int m = dh - dp < MR ? dh - dp : MR;
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

int cs_attn_avx512(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int Tq, int Tk, int heads, int dh, int nthreads) {
    if (Tq <= 0 || heads <= 0) return 0;
    att_job j = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, heads, dh, (Tq + BQ - 1) / BQ, 1.f / sqrtf((float)dh),
                 NULL, 0};
    int64_t items = (int64_t)heads * j.nqb;
    int nt = nthreads < 1 ? 1 : nthreads > items ? (int)items : nthreads;
    size_t span = (size_t)(dh > BK ? dh : BK);
    j.ws_stride = ((size_t)BK * BQ + (size_t)dh * BQ + 2 * BQ + MR * span + 15) / 16 * 16;
    j.ws = aligned_alloc(64, j.ws_stride * nt * sizeof(float));
    if (!j.ws) return -1;
    if (Tk <= 0) { /* no keys: softmax over nothing, defined as zeros */
        for (int r = 0; r < heads * dh; r++) memset(out + (size_t)r * ldo, 0, sizeof(float) * Tq);
    } else {
        cs_parallel_for(nt, items, att_item, &j);
    }
    free(j.ws);
    return 0;
}
