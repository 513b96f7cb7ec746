/* an_mpi.c — the matcher alone (analyze.h: cs_an_matcher), for the other
 * ranks of copyscope-mpi: no MPI here (the CLI moves the bytes), only the
 * reference side loaded as cs_analyze_run loads it, so that a batch matched
 * here gives the results rank 0 would have computed itself; and one rank's
 * part of the embedding search (an_mpi.h, below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze.h"
#include "analyze/an_mpi.h"
#include "analyze/analyze_internal.h"
#include "core/parallel.h"
#include "index/knn.h"

struct cs_an_matcher {
    an_state A;
};

int cs_an_matcher_open(cs_an_matcher **out, cs_store *s, const cs_analyze_opts *o, cs_err *err) {
    cs_an_matcher *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    m->A = (an_state){.s = s, .o = o, .set = &o->set, .threads = o->threads > 0 ? o->threads : cs_threads()};
    if (an_load_refs(&m->A, err)) {
        cs_an_matcher_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int cs_an_matcher_run(cs_an_matcher *m, const cs_an_query *q, int64_t nq, cs_an_result *res, cs_err *err) {
    return cs_an_match_batch(&m->A.refs, q, nq, m->A.set, m->A.threads, res, err);
}

const cs_an_refs *cs_an_matcher_refs(const cs_an_matcher *m) { return &m->A.refs; }
const cs_an_settings *cs_an_matcher_settings(const cs_an_matcher *m) { return m->A.set; }

void cs_an_matcher_free(cs_an_matcher *m) {
    if (!m) return;
    an_state *A = &m->A;
    for (int i = 0; i < A->h.n_emb; i++) free(A->h.emb[i]);
    free(A->h.emb);
    cs_an_refs_free(&A->refs);
    cs_hash_db_free(&A->hdb);
    cs_ref_thumbs_free(&A->th);
    free(m);
}

/* ---- the embedding search, one rank's part (an_mpi.h) ----
 *
 * Why the merged lists are one process's, bit for bit: cs_knn_exact scores
 * the column in sgemm chunks of KNN_CB = 512 columns from row 0 (index/
 * knn.c), and a score's last bit may depend on the chunk's shape. So a rank
 * copies each run of its rows widened to whole chunks (from a multiple of
 * 512 to the next one, or to the column's end): every chunk it multiplies
 * is the one the whole search multiplies, holding the same rows. The rows of
 * other ranks in those chunks are set to NaN: a NaN score never enters a
 * list (knn.h), and an sgemm entry depends only on its own row and query.
 * Each rank's list is then the exact top k of the rows it owns, and the top
 * k of their union by (score, row) is the whole column's list, ties broken
 * by row as cs_knn_exact breaks them. A rank holds its rows plus at most
 * 1,022 others per run. test_tl2_shard.c checks this against the whole
 * column's search, bit for bit. */
enum { CHUNK = 512 }; /* index/knn.c's KNN_CB: the sgemm chunks start at its multiples */

static int grow(cs_an_emb_part *p, int64_t lo, int64_t hi) {
    if (p->ns && lo <= p->hi[p->ns - 1]) { /* overlaps or touches the last slice: one slice */
        p->hi[p->ns - 1] = hi;
        return 0;
    }
    int64_t *a = realloc(p->lo, sizeof *a * (size_t)(p->ns + 1));
    int64_t *b = a ? realloc(p->hi, sizeof *b * (size_t)(p->ns + 1)) : NULL;
    if (a) p->lo = a;
    if (b) p->hi = b;
    if (!a || !b) return -1;
    p->lo[p->ns] = lo;
    p->hi[p->ns++] = hi;
    return 0;
}

/* Copies the rows of p->vs (open) whose owner is rank, in runs widened to
 * whole chunks. A q8 column opened raw (p->vs.q8) stays at 8 bits: its rows
 * are copied as stored (scale + dim int8) and the padding rows get a NaN
 * scale, so every value they decode to is NaN (q x NaN, q = 0 included), as
 * the float32 padding is; cs_knn_exact_q8 decodes each 512-row chunk as
 * cs_vecstore_open would have, so the scores are the decoded column's, bit
 * for bit. */
static int part_fill(cs_an_emb_part *p, int dim, int rank, cs_an_emb_owner owner, void *ctx, cs_err *err) {
    const int64_t n = p->vs.n;
    const size_t rb = p->vs.q8 ? CS_VS_Q8_ROW(dim) : sizeof(float) * (size_t)dim; /* bytes a row held */
    uint8_t *mine = malloc((size_t)(n > 0 ? n : 1));
    if (!mine) return cs_fail(err, CS_ENOMEM, "analyze: out of memory for the embedding rows");
    for (int64_t i = 0; i < n; i++) {
        mine[i] = owner(ctx, p->vs.ids[i]) == rank;
        p->owned += mine[i];
    }
    int rc = 0;
    for (int64_t i = 0; i < n && !rc;) { /* runs of its rows, widened to whole chunks */
        if (!mine[i]) {
            i++;
            continue;
        }
        int64_t j = i;
        while (j < n && mine[j]) j++;
        int64_t lo = i / CHUNK * CHUNK, hi = (j + CHUNK - 1) / CHUNK * CHUNK;
        if (grow(p, lo, hi < n ? hi : n)) rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        i = j;
    }
    for (int k = 0; k < p->ns; k++) p->held += p->hi[k] - p->lo[k];
    if (!rc && !(p->buf = malloc(rb * (size_t)(p->held > 0 ? p->held : 1))))
        rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld embedding rows", (long long)p->held);
    p->q8 = p->vs.q8 != NULL;
    unsigned char *d = p->buf;
    const float nan = NAN;
    for (int k = 0; !rc && k < p->ns; k++)
        for (int64_t i = p->lo[k]; i < p->hi[k]; i++, d += rb) {
            if (mine[i]) memcpy(d, p->q8 ? (const void *)(p->vs.q8 + (size_t)i * rb)
                                         : (const void *)(p->vs.vecs + i * dim), rb);
            else if (p->q8) {
                memcpy(d, &nan, sizeof nan);
                memset(d + sizeof nan, 0, rb - sizeof nan);
            } else
                for (int t = 0; t < dim; t++) memcpy(d + sizeof(float) * (size_t)t, &nan, sizeof nan);
        }
    free(mine);
    return rc;
}

int cs_an_emb_part_open(cs_an_emb_part *p, const char *path, int dim, int rank, cs_an_emb_owner owner, void *ctx,
                        cs_err *err) {
    memset(p, 0, sizeof *p);
    if (cs_vecstore_open(&p->vs, path, dim, 0, err)) return -1;
    p->open = 1;
    return part_fill(p, dim, rank, owner, ctx, err);
}

int cs_an_emb_part_open_store(cs_an_emb_part *p, cs_store *s, const char *column, int dim, int rank,
                              cs_an_emb_owner owner, void *ctx, cs_err *err) {
    memset(p, 0, sizeof *p);
    if (cs_vecstore_open_store_raw(&p->vs, s, column, dim, err)) return -1;
    p->open = 1;
    return part_fill(p, dim, rank, owner, ctx, err);
}

/* a is a better hit than b: the higher score, then the lower row; -1 rows last */
static int better(float sa, int64_t ra, float sb, int64_t rb) {
    if (ra < 0 || rb < 0) return rb < 0 && ra >= 0;
    return sa > sb || (sa == sb && ra < rb);
}

void cs_an_emb_part_merge(float *acc_s, int64_t *acc_r, const float *src_s, const int64_t *src_r, int64_t nq, int k) {
    float ts[CS_KNN_MAX_K];
    int64_t tr[CS_KNN_MAX_K];
    for (int64_t i = 0; i < nq; i++) {
        float *as = acc_s + i * k;
        int64_t *ar = acc_r + i * k;
        const float *bs = src_s + i * k;
        const int64_t *br = src_r + i * k;
        for (int t = 0, a = 0, b = 0; t < k; t++) {
            if (better(bs[b], br[b], as[a], ar[a])) ts[t] = bs[b], tr[t] = br[b++];
            else ts[t] = as[a], tr[t] = ar[a++];
        }
        memcpy(as, ts, sizeof(float) * (size_t)k);
        memcpy(ar, tr, sizeof(int64_t) * (size_t)k);
    }
}

int cs_an_emb_part_search(const cs_an_emb_part *p, const float *q, int nq, int k, int threads, float *scores,
                          int64_t *rows, cs_err *err) {
    for (int64_t i = 0; i < (int64_t)nq * k; i++) scores[i] = -INFINITY, rows[i] = -1;
    size_t m = (size_t)(nq > 0 ? nq : 1) * (size_t)k;
    float *s = malloc(sizeof *s * m);
    int64_t *r = malloc(sizeof *r * m);
    int rc = !s || !r ? cs_fail(err, CS_ENOMEM, "analyze: out of memory") : 0;
    const size_t rb = p->q8 ? CS_VS_Q8_ROW(p->vs.dim) : sizeof(float) * (size_t)p->vs.dim;
    const unsigned char *d = p->buf;
    for (int j = 0; !rc && j < p->ns; d += (size_t)(p->hi[j] - p->lo[j]) * rb, j++) {
        int64_t nr = p->hi[j] - p->lo[j];
        if (p->q8 ? cs_knn_exact_q8(d, nr, p->vs.dim, q, nq, k, threads, s, r, err)
                  : cs_knn_exact((const float *)(const void *)d, nr, p->vs.dim, q, nq, k, threads, s, r, err))
            rc = -1;
        for (size_t i = 0; !rc && i < m; i++)
            if (r[i] >= 0) r[i] += p->lo[j]; /* column rows */
        if (!rc) cs_an_emb_part_merge(scores, rows, s, r, nq, k);
    }
    free(s);
    free(r);
    return rc;
}

void cs_an_emb_part_close(cs_an_emb_part *p) {
    if (p->open) cs_vecstore_close(&p->vs);
    free(p->buf);
    free(p->lo);
    free(p->hi);
    memset(p, 0, sizeof *p);
}
