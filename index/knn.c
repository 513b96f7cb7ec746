/* knn.c — blocked sgemm + streaming top-k (see knn.h). */
#include "index/knn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "index/vecstore.h"

/* Block sizes: a 1024 x 4096 score block is 16 MiB, large enough that the
 * sgemm runs near peak and the heap pass is a small fraction of the time. */
#define KNN_QB 1024
#define KNN_DB 4096
/* The score block is computed in column chunks of this many references, one
 * single-threaded sgemm each, spread over our threads. OpenBLAS's own
 * threading splits a product by the thread count, and its rounding of an
 * entry depends on where that entry falls in the split (the last bit of a
 * cosine moved between -j 1 and -j 2); a fixed chunking gives the same bits
 * at any thread count. */
#define KNN_CB 512

/* Heap entry order: a is worse than b when its score is lower, or equal with
 * a higher row (earlier rows win ties, so results do not depend on blocking). */
static inline int worse(float sa, int64_t ra, float sb, int64_t rb) {
    return sa < sb || (sa == sb && ra > rb);
}

/* Restores the min-heap (worst at 0) after the root was replaced. */
static void sift_down(float *hs, int64_t *hr, int k) {
    int i = 0;
    float s = hs[0];
    int64_t r = hr[0];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= k) break;
        if (c + 1 < k && worse(hs[c + 1], hr[c + 1], hs[c], hr[c])) c++;
        if (!worse(hs[c], hr[c], s, r)) break;
        hs[i] = hs[c], hr[i] = hr[c];
        i = c;
    }
    hs[i] = s, hr[i] = r;
}

typedef struct {
    const float *q, *db; /* the query block's rows, the reference block's rows */
    const unsigned char *db8; /* instead of db: the block's q8 rows (vecstore.h), dequantised per chunk */
    float *dec;          /* [threads][KNN_CB][dim]: each thread's dequantised chunk */
    float *block;        /* [qb][nb] */
    int64_t qb, nb;
    int dim;
} score_job;

/* Columns [i * KNN_CB, ...) of the score block: one single-threaded sgemm.
 * A q8 block's chunk is first dequantised into the thread's buffer: the
 * floats a decoded column holds, so the sgemm (same shapes, same operands)
 * gives the same bits as over the decoded column. */
static void score_chunk(void *ctx, int64_t i, int thread) {
    score_job *j = ctx;
    int64_t c0 = i * KNN_CB, cn = j->nb - c0 < KNN_CB ? j->nb - c0 : KNN_CB;
    const float *b = j->db ? j->db + c0 * j->dim : NULL;
    if (j->db8) {
        float *d = j->dec + (size_t)thread * KNN_CB * (size_t)j->dim;
        cs_vs_q8_decode(j->db8 + (size_t)c0 * CS_VS_Q8_ROW(j->dim), cn, j->dim, d);
        b = d;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->qb, (int)cn, j->dim, 1.0f, j->q, j->dim,
                b, j->dim, 0.0f, j->block + c0, (int)j->nb);
}

typedef struct {
    const float *block; /* [qb][nb] scores */
    int64_t nb, row0;
    float *hs;          /* [qb][k] heaps */
    int64_t *hr;
    int k;
} heap_job;

static void heap_update(void *ctx, int64_t i, int thread) {
    (void)thread;
    heap_job *j = ctx;
    const float *c = j->block + i * j->nb;
    float *hs = j->hs + i * j->k;
    int64_t *hr = j->hr + i * j->k;
    float thr = hs[0];
    for (int64_t t = 0; t < j->nb; t++) {
        /* rows arrive in increasing order, so a tie never beats the root */
        if (c[t] > thr) {
            hs[0] = c[t];
            hr[0] = j->row0 + t;
            sift_down(hs, hr, j->k);
            thr = hs[0];
        }
    }
}

/* Heap -> descending list in place (heap sort on the worst-first heap). */
static void heap_finish(float *hs, int64_t *hr, int k) {
    for (int m = k; m > 1; m--) {
        float s = hs[0];
        int64_t r = hr[0];
        hs[0] = hs[m - 1], hr[0] = hr[m - 1];
        hs[m - 1] = s, hr[m - 1] = r;
        sift_down(hs, hr, m - 1);
    }
}

static int knn_run(const float *db, const unsigned char *db8, int64_t n, int dim, const float *q, int64_t nq,
                   int k, int threads, float *scores, int64_t *rows, cs_err *err);

int cs_knn_exact(const float *db, int64_t n, int dim, const float *q, int64_t nq, int k,
                 int threads, float *scores, int64_t *rows, cs_err *err) {
    return knn_run(db, NULL, n, dim, q, nq, k, threads, scores, rows, err);
}

int cs_knn_exact_q8(const unsigned char *db8, int64_t n, int dim, const float *q, int64_t nq, int k,
                    int threads, float *scores, int64_t *rows, cs_err *err) {
    return knn_run(NULL, db8, n, dim, q, nq, k, threads, scores, rows, err);
}

/* Long: the two block loops (queries, references) around the chunked sgemm and the heap pass. */
static int knn_run(const float *db, const unsigned char *db8, int64_t n, int dim, const float *q, int64_t nq,
                   int k, int threads, float *scores, int64_t *rows, cs_err *err) {
    if (k < 1 || k > CS_KNN_MAX_K)
        return cs_fail(err, CS_EUSAGE, "knn: k = %d out of range 1..%d", k, CS_KNN_MAX_K);
    if (dim < 1 || n < 0 || nq < 0) return cs_fail(err, CS_EUSAGE, "knn: bad sizes");
    if (threads <= 0) threads = cs_threads();
    for (int64_t i = 0; i < nq * k; i++) scores[i] = -INFINITY, rows[i] = -1;
    if (n == 0 || nq == 0) return 0;

    int64_t qb_max = nq < KNN_QB ? nq : KNN_QB;
    int64_t db_max = n < KNN_DB ? n : KNN_DB;
    float *block = malloc((size_t)qb_max * (size_t)db_max * sizeof(float));
    float *dec = db8 ? malloc((size_t)threads * KNN_CB * (size_t)dim * sizeof(float)) : NULL;
    if (!block || (db8 && !dec)) {
        free(block), free(dec);
        return cs_fail(err, CS_ENOMEM, "knn: out of memory for a score block");
    }
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int64_t q0 = 0; q0 < nq; q0 += qb_max) {
        int64_t qb = nq - q0 < qb_max ? nq - q0 : qb_max;
        heap_job j = {block, 0, 0, scores + q0 * k, rows + q0 * k, k};
        for (int64_t r0 = 0; r0 < n; r0 += db_max) {
            int64_t nb = n - r0 < db_max ? n - r0 : db_max;
            /* block[qb][nb] = q[q0.., :] . db[r0.., :]^T */
            score_job sj = {q + q0 * dim, db ? db + r0 * dim : NULL,
                            db8 ? db8 + (size_t)r0 * CS_VS_Q8_ROW(dim) : NULL, dec, block, qb, nb, dim};
            cs_parallel_for(threads, (nb + KNN_CB - 1) / KNN_CB, score_chunk, &sj);
            j.nb = nb, j.row0 = r0;
            cs_parallel_for(threads, qb, heap_update, &j);
        }
        for (int64_t i = 0; i < qb; i++) heap_finish(j.hs + i * k, j.hr + i * k, k);
    }
    openblas_set_num_threads(saved);
    free(block);
    free(dec);
    return 0;
}

int64_t cs_l2_normalize(float *v, int64_t n, int dim) {
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        float *r = v + i * dim;
        double ss = 0;
        for (int d = 0; d < dim; d++) ss += (double)r[d] * r[d];
        double nrm = sqrt(ss);
        if (!(nrm >= 1e-12)) {
            memset(r, 0, (size_t)dim * sizeof *r);
            zeros++;
            continue;
        }
        float inv = (float)(1.0 / nrm);
        for (int d = 0; d < dim; d++) r[d] *= inv;
    }
    return zeros;
}

int cs_knn_background_bias(const float *bg, int64_t nbg, int dim, const float *q, int64_t nq,
                           int threads, float *bias, cs_err *err) {
    enum { K = 3 };
    float *s = malloc((size_t)(nq ? nq : 1) * K * sizeof *s);
    int64_t *r = malloc((size_t)(nq ? nq : 1) * K * sizeof *r);
    if (!s || !r) {
        free(s), free(r);
        return cs_fail(err, CS_ENOMEM, "knn: out of memory");
    }
    int rc = cs_knn_exact(bg, nbg, dim, q, nq, K, threads, s, r, err);
    for (int64_t i = 0; !rc && i < nq; i++) {
        double sum = 0;
        int m = 0;
        for (int t = 0; t < K; t++)
            if (r[i * K + t] >= 0) sum += s[i * K + t], m++;
        bias[i] = m ? (float)(sum / m) : 0.0f;
    }
    free(s), free(r);
    return rc;
}

void cs_knn_apply_bias(float *scores, const int64_t *rows, int64_t nq, int k, const float *bias,
                       float beta) {
    for (int64_t i = 0; i < nq; i++)
        for (int t = 0; t < k; t++)
            if (rows[i * k + t] >= 0) scores[i * k + t] -= beta * bias[i];
}
