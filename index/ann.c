/* ann.c — approximate nearest-neighbour index per embedding column (see ann.h). */
#include "index/ann.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/le_bytes.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "index/knn.h"

static const char ann_magic[8] = {'C', 'S', 'A', 'N', 'N', 0, 0, 1};

/* flags */
#define ANN_DEFAULT_FACTORY 1u /* factory chosen by cs_ann_default_factory, not the user */

typedef struct {
    uint32_t dim, flags;
    uint64_t rows, payload, fingerprint;
    uint64_t trained_rows; /* column rows when the index was trained */
    char column[64], factory[128];
} ann_header;

struct cs_ann {
    char *path;
    ann_header h;
    cs_faiss *f;
};

/* ---- header ---- */

static void encode_header(const ann_header *h, unsigned char *b) {
    memset(b, 0, CS_ANN_HEADER_SIZE);
    memcpy(b, ann_magic, 8);
    cs_put_le32(b + 8, 1);
    cs_put_le32(b + 12, h->dim);
    cs_put_le64(b + 16, h->rows);
    cs_put_le64(b + 24, h->payload);
    cs_put_le64(b + 32, h->fingerprint);
    memcpy(b + 40, h->column, 64);
    memcpy(b + 104, h->factory, 128);
    cs_put_le64(b + 232, h->trained_rows);
    cs_put_le32(b + 240, h->flags);
}

static int decode_header(const unsigned char *b, ann_header *h, const char *path, cs_err *err) {
    if (memcmp(b, ann_magic, 8)) return cs_fail(err, CS_EFORMAT, "%s: not a copyscope ANN index (bad magic)", path);
    if (cs_get_le32(b + 8) != 1) return cs_fail(err, CS_EFORMAT, "%s: unsupported ANN index version %u", path, cs_get_le32(b + 8));
    h->dim = cs_get_le32(b + 12);
    h->rows = cs_get_le64(b + 16);
    h->payload = cs_get_le64(b + 24);
    h->fingerprint = cs_get_le64(b + 32);
    memcpy(h->column, b + 40, 64);
    memcpy(h->factory, b + 104, 128);
    h->trained_rows = cs_get_le64(b + 232);
    h->flags = cs_get_le32(b + 240);
    if (h->column[63] || h->factory[127] || !h->dim || h->dim > CS_VS_MAX_DIM)
        return cs_fail(err, CS_EFORMAT, "%s: corrupt ANN index header", path);
    return 0;
}

/* A column opened at 8 bits (cs_vecstore_open_store_raw: vs->q8, vecs
 * NULL) is read here through cs_vs_q8_decode, row by row or chunk by chunk:
 * the floats are those the decoded column holds, so the index, its
 * fingerprint and every score are the same bits, while the column stays at
 * dim + 4 bytes a row in memory. */
static void rows_f32(const cs_vecstore *vs, int64_t r, int64_t n, float *out) {
    if (vs->q8) cs_vs_q8_decode(vs->q8 + (size_t)r * CS_VS_Q8_ROW(vs->dim), n, vs->dim, out);
    else memcpy(out, vs->vecs + r * vs->dim, sizeof(float) * (size_t)n * vs->dim);
}

/* FNV-1a over the first min(rows, 64) ids and vectors (as float32) of the
 * column; 0 out of memory (never a real index's: it is checked as such). */
static uint64_t fingerprint(const cs_vecstore *vs, int64_t rows) {
    int64_t m = rows < 64 ? rows : 64;
    uint64_t h = 0xcbf29ce484222325ULL;
    float *v = malloc(sizeof(float) * (size_t)(m ? m : 1) * vs->dim);
    if (!v) return 0;
    if (m) rows_f32(vs, 0, m, v);
    const unsigned char *p[2] = {(const unsigned char *)vs->ids, (const unsigned char *)v};
    size_t len[2] = {(size_t)m * sizeof(int64_t), (size_t)m * vs->dim * sizeof(float)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < len[k]; i++) h = (h ^ p[k][i]) * 0x100000001b3ULL;
    free(v);
    return h;
}

/* ---- defaults ---- */

void cs_ann_default_factory(int64_t n, char *buf, size_t cap) {
    int64_t want = (int64_t)(4 * sqrt((double)(n > 0 ? n : 1))), nlist = 1;
    while (nlist * 2 <= want * 3 / 2 && nlist * 2 * CS_ANN_TRAIN_PER_LIST <= n) nlist *= 2;
    if (nlist == 1) snprintf(buf, cap, "Flat"); /* under 200 rows: exact is as fast */
    else snprintf(buf, cap, "IVF%lld,Flat", (long long)nlist);
}

int cs_ann_default_nprobe(int64_t nlist) {
    int64_t p = nlist / 512 > 8 ? nlist / 512 : 8;
    if (p > nlist / 2) p = nlist / 2;
    return p > 0 ? (int)p : 1;
}

/* ---- reading and writing the file ---- */

static int read_ann(cs_ann **out, const char *path, cs_err *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return cs_fail(err, CS_ENOTFOUND, "%s: no such file", path);
        return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    }
    cs_ann *a = calloc(1, sizeof *a);
    unsigned char b[CS_ANN_HEADER_SIZE];
    struct stat st;
    int rc = -1;
    if (!a || !(a->path = strdup(path))) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(b, 1, sizeof b, fp) != sizeof b) {
        cs_fail(err, CS_EFORMAT, "%s: truncated ANN index (no complete header)", path);
        goto out;
    }
    if (decode_header(b, &a->h, path, err)) goto out;
    if (fstat(fileno(fp), &st) || (uint64_t)st.st_size != CS_ANN_HEADER_SIZE + a->h.payload) {
        cs_fail(err, CS_EFORMAT, "%s: truncated ANN index (%lld bytes, header says %llu)", path,
                (long long)st.st_size, (unsigned long long)(CS_ANN_HEADER_SIZE + a->h.payload));
        goto out;
    }
    if (cs_faiss_read_fp(&a->f, fp, path, err)) goto out;
    if (cs_faiss_dim(a->f) != (int)a->h.dim || (uint64_t)cs_faiss_ntotal(a->f) != a->h.rows) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt ANN index (FAISS index of %d-d x %lld, header %u-d x %llu)", path,
                cs_faiss_dim(a->f), (long long)cs_faiss_ntotal(a->f), a->h.dim, (unsigned long long)a->h.rows);
        goto out;
    }
    rc = 0;
out:
    fclose(fp);
    if (rc) cs_ann_close(a);
    else *out = a;
    return rc;
}

/* Writes header + index to path through a temporary file renamed over it. */
static int write_ann(cs_ann *a, const char *path, cs_err *err) {
    cs_atomic_file af;
    if (cs_atomic_open(&af, path, err)) return -1;
    FILE *fp = af.f;
    const char *tmp = af.tmp;
    unsigned char b[CS_ANN_HEADER_SIZE];
    a->h.payload = 0;
    encode_header(&a->h, b);
    int rc = fwrite(b, 1, sizeof b, fp) != sizeof b ? cs_fail(err, CS_EIO, "%s: %s", tmp, strerror(errno)) : 0;
    if (!rc) rc = cs_faiss_write_fp(a->f, fp, tmp, err);
    long end = rc ? -1 : ftell(fp);
    if (!rc && end < CS_ANN_HEADER_SIZE) rc = cs_fail(err, CS_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc) {
        a->h.payload = (uint64_t)end - CS_ANN_HEADER_SIZE;
        encode_header(&a->h, b);
        if (fseek(fp, 0, SEEK_SET) || fwrite(b, 1, sizeof b, fp) != sizeof b)
            rc = cs_fail(err, CS_EIO, "%s: %s", tmp, strerror(errno));
    }
    return cs_atomic_finish(&af, !rc, err) || rc ? -1 : 0;
}

/* ---- checks against the column ---- */

static int check_column(const cs_ann *a, const char *column, const cs_vecstore *vs, cs_err *err) {
    if (strcmp(a->h.column, column))
        return cs_fail(err, CS_EFORMAT, "%s: built for column '%s', not '%s'", a->path, a->h.column, column);
    if ((int)a->h.dim != vs->dim)
        return cs_fail(err, CS_EFORMAT, "%s: dimension %u, column %s has %d", a->path, a->h.dim, column, vs->dim);
    if ((int64_t)a->h.rows > vs->n)
        return cs_fail(err, CS_EFORMAT,
                       "%s: holds %llu rows but column %s has only %lld (the column shrank: rebuild with "
                       "copyscope index ann --rebuild)",
                       a->path, (unsigned long long)a->h.rows, column, (long long)vs->n);
    if (fingerprint(vs, (int64_t)a->h.rows) != a->h.fingerprint)
        return cs_fail(err, CS_EFORMAT,
                       "%s: was not built from the vectors of column %s (rebuild with copyscope index ann --rebuild)",
                       a->path, column);
    return 0;
}

int cs_ann_open(cs_ann **out, const char *path, const char *column, const cs_vecstore *vs, cs_err *err) {
    if (read_ann(out, path, err)) return -1;
    if (check_column(*out, column, vs, err)) {
        cs_ann_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int64_t cs_ann_rows(const cs_ann *a) { return (int64_t)a->h.rows; }
const char *cs_ann_factory(const cs_ann *a) { return a->h.factory; }
cs_faiss *cs_ann_faiss(cs_ann *a) { return a->f; }

void cs_ann_close(cs_ann *a) {
    if (!a) return;
    cs_faiss_free(a->f);
    free(a->path);
    free(a);
}

/* ---- building ---- */

static int train(cs_ann *a, const cs_vecstore *vs, int progress, cs_err *err) {
    if (cs_faiss_is_trained(a->f)) return 0;
    int64_t nlist = cs_faiss_nlist(a->f), ntrain = vs->n;
    if (nlist > 0) {
        int64_t want = nlist * CS_ANN_TRAIN_PER_LIST;
        if (want > CS_ANN_MAX_TRAIN) want = CS_ANN_MAX_TRAIN > nlist * 39 ? CS_ANN_MAX_TRAIN : nlist * 39;
        if (ntrain > want) ntrain = want;
        if (ntrain < nlist)
            return cs_fail(err, CS_EUSAGE, "%s: %lld rows cannot train %lld IVF lists (use a smaller factory)",
                           a->path, (long long)vs->n, (long long)nlist);
        if (cs_faiss_set_train_iters(a->f, CS_ANN_TRAIN_ITERS, err)) return -1;
    } else if (ntrain > CS_ANN_MAX_TRAIN) {
        ntrain = CS_ANN_MAX_TRAIN;
    }
    /* evenly spaced rows: the column's order is insertion order, which may
     * follow the source's folders, so a prefix would be a biased sample */
    float *x = malloc(sizeof(float) * (size_t)ntrain * vs->dim);
    if (!x) return cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld training vectors", a->path, (long long)ntrain);
    for (int64_t i = 0; i < ntrain; i++) rows_f32(vs, i * vs->n / ntrain, 1, x + i * vs->dim);
    cs_progress *p = progress ? cs_progress_start("ann train", 0, "vec") : NULL;
    int rc = cs_faiss_train(a->f, ntrain, x, err);
    if (p) cs_progress_add(p, ntrain);
    cs_progress_end(p);
    free(x);
    return rc ? cs_wrap(err, "%s", a->path) : 0;
}

static int add_rows(cs_ann *a, const cs_vecstore *vs, int64_t from, int progress, cs_err *err) {
    enum { CHUNK = 65536 };
    /* a q8 column: each chunk decoded into one buffer (the same chunks as a float column's) */
    float *buf = vs->q8 ? malloc(sizeof(float) * CHUNK * vs->dim) : NULL;
    if (vs->q8 && !buf) return cs_fail(err, CS_ENOMEM, "%s: out of memory", a->path);
    cs_progress *p = progress ? cs_progress_start("ann add", vs->n - from, "vec") : NULL;
    int rc = 0;
    for (int64_t r = from; r < vs->n && !rc; r += CHUNK) {
        int64_t nb = vs->n - r < CHUNK ? vs->n - r : CHUNK;
        if (buf) rows_f32(vs, r, nb, buf);
        rc = cs_faiss_add(a->f, nb, buf ? buf : vs->vecs + r * vs->dim, err);
        if (p) cs_progress_add(p, nb);
    }
    cs_progress_end(p);
    free(buf);
    return rc ? cs_wrap(err, "%s", a->path) : 0;
}

/* Whether an index whose factory was the default has been outgrown: the
 * column now has 4x the rows it was trained on and the default for its size
 * differs (e.g. IVF64 trained at 10,000 rows, IVF4096 due at 1M: lists of
 * 16,000 vectors would make every probe scan 60x more). It is then trained
 * anew; a factory the user chose is kept whatever the size. */
static int outgrown(const cs_ann *a, int64_t n, const cs_ann_opts *o) {
    if (o->factory || !(a->h.flags & ANN_DEFAULT_FACTORY) || (uint64_t)n < 4 * a->h.trained_rows) return 0;
    char want[128];
    cs_ann_default_factory(n, want, sizeof want);
    return strcmp(want, a->h.factory) != 0;
}

/* The stats of an index that holds rows rows, saved at path. */
static void fill_stats(cs_ann_stats *st, const cs_ann *a, const char *path, int64_t rows) {
    st->rows = rows;
    st->nprobe = cs_faiss_nprobe(a->f);
    snprintf(st->factory, sizeof st->factory, "%s", a->h.factory);
    struct stat fs;
    st->file_bytes = stat(path, &fs) ? 0 : (int64_t)fs.st_size;
}

int cs_ann_build_vs(const char *path, const char *column, const cs_vecstore *vs, const cs_ann_opts *o,
                    cs_ann_stats *st, cs_err *err) {
    cs_ann_opts def = {0};
    cs_ann_stats dummy;
    if (!o) o = &def;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (strlen(column) >= 64) return cs_fail(err, CS_EUSAGE, "%s: column name too long", column);
    if (vs->n == 0) return cs_fail(err, CS_EUSAGE, "%s: column %s is empty: nothing to index", path, column);
    if (o->factory && strlen(o->factory) >= 128) return cs_fail(err, CS_EUSAGE, "%s: factory string too long", path);
    cs_faiss_set_threads(o->threads > 0 ? o->threads : cs_threads());
    cs_ann *a = NULL;
    int rc = 0;
    /* an existing index of the same factory is updated, unless rebuilding */
    if (!o->rebuild && access(path, F_OK) == 0) {
        if (cs_ann_open(&a, path, column, vs, err)) return -1;
        if ((o->factory && strcmp(o->factory, a->h.factory)) || outgrown(a, vs->n, o)) {
            cs_ann_close(a);
            a = NULL;
        }
    }
    if (a) {
        st->rows_before = (int64_t)a->h.rows;
        if (o->nprobe > 0 && cs_faiss_nlist(a->f) > 0 && o->nprobe != cs_faiss_nprobe(a->f)) {
            if (cs_faiss_set_param(a->f, "nprobe", o->nprobe, err)) rc = cs_wrap(err, "%s", path);
        } else if ((int64_t)a->h.rows == vs->n) { /* nothing new: leave the file alone */
            fill_stats(st, a, path, vs->n);
            cs_ann_close(a);
            return 0;
        }
    } else {
        a = calloc(1, sizeof *a);
        if (!a || !(a->path = strdup(path))) {
            cs_ann_close(a);
            return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        }
        if (o->factory) snprintf(a->h.factory, sizeof a->h.factory, "%s", o->factory);
        else cs_ann_default_factory(vs->n, a->h.factory, sizeof a->h.factory);
        a->h.flags = o->factory ? 0 : ANN_DEFAULT_FACTORY;
        a->h.trained_rows = (uint64_t)vs->n;
        snprintf(a->h.column, sizeof a->h.column, "%s", column);
        a->h.dim = (uint32_t)vs->dim;
        if (cs_faiss_new(&a->f, vs->dim, a->h.factory, 1, err)) rc = cs_wrap(err, "%s", path);
        double t = cs_now_s();
        if (!rc) rc = train(a, vs, o->progress, err);
        st->trained = 1;
        st->train_s = cs_now_s() - t;
        if (!rc && cs_faiss_nlist(a->f) > 0) {
            int np = o->nprobe > 0 ? o->nprobe : cs_ann_default_nprobe(cs_faiss_nlist(a->f));
            if (cs_faiss_set_param(a->f, "nprobe", np, err)) rc = cs_wrap(err, "%s", path);
        }
    }
    double t = cs_now_s();
    if (!rc) rc = add_rows(a, vs, (int64_t)a->h.rows, o->progress, err);
    st->add_s = cs_now_s() - t;
    if (!rc) {
        a->h.rows = (uint64_t)vs->n;
        a->h.fingerprint = fingerprint(vs, vs->n);
        rc = write_ann(a, path, err);
    }
    if (!rc) fill_stats(st, a, path, vs->n);
    cs_ann_close(a);
    return rc;
}

/* ---- searching ---- */

typedef struct {
    float s;
    int64_t r;
} cand;

/* best first; equal scores by row, as cs_knn_exact orders them */
static int cmp_cand(const void *x, const void *y) {
    const cand *a = x, *b = y;
    if (a->s != b->s) return a->s < b->s ? 1 : -1;
    return (a->r > b->r) - (a->r < b->r);
}

typedef struct {
    const cs_vecstore *vs;
    const float *q;
    const int64_t *cand_rows; /* [nq][kc] from FAISS */
    const float *tail_s;      /* [nq][k] exact over the unindexed tail, or NULL */
    const int64_t *tail_r;
    int kc, k;
    float *scores;
    int64_t *rows;
    cand *work; /* [threads][kc + k] */
    float *row; /* [threads][dim]: a q8 row decoded */
} merge_ctx;

/* One query: exact scores of its candidates plus the tail's hits, top k. */
static void merge_one(void *vctx, int64_t i, int thread) {
    merge_ctx *c = vctx;
    int dim = c->vs->dim, m = 0;
    cand *w = c->work + (size_t)thread * (c->kc + c->k);
    const float *q = c->q + i * dim;
    for (int j = 0; j < c->kc; j++) {
        int64_t r = c->cand_rows[i * c->kc + j];
        if (r < 0 || r >= c->vs->n) continue;
        int dup = 0; /* an index may return a row twice (e.g. several lists) */
        for (int t = 0; t < m && !dup; t++) dup = w[t].r == r;
        if (dup) continue;
        const float *v = c->vs->vecs ? c->vs->vecs + r * dim : c->row + (size_t)thread * dim;
        if (!c->vs->vecs) rows_f32(c->vs, r, 1, (float *)v);
        float s = 0;
        for (int d = 0; d < dim; d++) s += q[d] * v[d];
        if (s == s) w[m++] = (cand){s, r};
    }
    for (int j = 0; c->tail_r && j < c->k; j++)
        if (c->tail_r[i * c->k + j] >= 0) w[m++] = (cand){c->tail_s[i * c->k + j], c->tail_r[i * c->k + j]};
    qsort(w, (size_t)m, sizeof *w, cmp_cand);
    for (int j = 0; j < c->k; j++) {
        c->scores[i * c->k + j] = j < m ? w[j].s : -INFINITY;
        c->rows[i * c->k + j] = j < m ? w[j].r : -1;
    }
}

int cs_ann_search(cs_ann *a, const cs_vecstore *vs, const float *q, int64_t nq, int k,
                  const cs_ann_search_opts *o, float *scores, int64_t *rows, cs_err *err) {
    cs_ann_search_opts def = {0};
    if (!o) o = &def;
    if (k < 1 || k > CS_KNN_MAX_K) return cs_fail(err, CS_EUSAGE, "%s: k = %d out of 1..%d", a->path, k, CS_KNN_MAX_K);
    if (nq <= 0) return 0;
    int threads = o->threads > 0 ? o->threads : cs_threads();
    int refine = o->refine > 0 ? o->refine : strstr(a->h.factory, ",Flat") || !strcmp(a->h.factory, "Flat") ? 1 : 8;
    int64_t indexed = (int64_t)a->h.rows, tail = vs->n - indexed;
    int kc = k * refine;
    if (kc > indexed) kc = indexed > 0 ? (int)indexed : 1;
    cs_faiss_set_threads(threads);
    if (o->nprobe > 0 && cs_faiss_nlist(a->f) > 0 && cs_faiss_set_param(a->f, "nprobe", o->nprobe, err))
        return cs_wrap(err, "%s", a->path);
    float *cs = malloc(sizeof(float) * (size_t)nq * kc);
    int64_t *cr = malloc(sizeof(int64_t) * (size_t)nq * kc);
    float *ts = tail > 0 ? malloc(sizeof(float) * (size_t)nq * k) : NULL;
    int64_t *tr = tail > 0 ? malloc(sizeof(int64_t) * (size_t)nq * k) : NULL;
    cand *work = malloc(sizeof(cand) * (size_t)threads * (kc + k));
    float *row = vs->q8 ? malloc(sizeof(float) * (size_t)threads * vs->dim) : NULL;
    int rc = 0;
    if (!cs || !cr || !work || (tail > 0 && (!ts || !tr)) || (vs->q8 && !row))
        rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", a->path);
    if (!rc && cs_faiss_search(a->f, nq, q, kc, cs, cr, err)) rc = cs_wrap(err, "%s", a->path);
    if (!rc && tail > 0) { /* rows appended since the build: exact, then renumbered */
        rc = vs->q8 ? cs_knn_exact_q8(vs->q8 + (size_t)indexed * CS_VS_Q8_ROW(vs->dim), tail, vs->dim, q, nq, k,
                                      threads, ts, tr, err)
                    : cs_knn_exact(vs->vecs + indexed * vs->dim, tail, vs->dim, q, nq, k, threads, ts, tr, err);
        for (int64_t i = 0; !rc && i < nq * k; i++)
            if (tr[i] >= 0) tr[i] += indexed;
    }
    if (!rc) {
        merge_ctx c = {vs, q, cr, ts, tr, kc, k, scores, rows, work, row};
        cs_parallel_for(threads, nq, merge_one, &c);
    }
    free(cs), free(cr), free(ts), free(tr), free(work), free(row);
    return rc;
}

/* ---- through the store ---- */

char *cs_ann_path(const cs_store *s, const char *column) {
    char suffix[128];
    snprintf(suffix, sizeof suffix, "ann-%s.faiss", column);
    return cs_store_sidecar(s, suffix);
}

int cs_ann_build(cs_store *s, const char *column, const cs_ann_opts *o, cs_ann_stats *st, cs_err *err) {
    cs_vecstore vs;
    if (cs_vecstore_open_store_raw(&vs, s, column, 0, err)) return -1; /* a q8 column stays at 8 bits */
    char *path = cs_ann_path(s, column);
    int rc = path ? cs_ann_build_vs(path, column, &vs, o, st, err) : cs_fail(err, CS_ENOMEM, "out of memory");
    free(path);
    cs_vecstore_close(&vs);
    return rc;
}

int cs_ann_search_store(cs_store *s, const char *column, const float *q, int nq, int dim, int k,
                        const cs_ann_search_opts *o, int64_t *ref_ids, float *scores, cs_err *err) {
    cs_vecstore vs;
    if (cs_vecstore_open_store_raw(&vs, s, column, dim, err)) return -1; /* a q8 column stays at 8 bits */
    char *path = cs_ann_path(s, column);
    int64_t *rows = malloc((size_t)(nq ? nq : 1) * k * sizeof *rows);
    cs_ann *a = NULL;
    int rc = 0;
    if (!path || !rows) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    if (!rc && access(path, F_OK))
        rc = cs_fail(err, CS_ENOTFOUND, "%s: no approximate index for column %s (build it with: copyscope index ann "
                     "--embedder %s)", path, column, column);
    if (!rc) rc = cs_ann_open(&a, path, column, &vs, err);
    if (!rc) rc = cs_ann_search(a, &vs, q, nq, k, o, scores, rows, err);
    for (int64_t i = 0; !rc && i < (int64_t)nq * k; i++) ref_ids[i] = rows[i] >= 0 ? vs.ids[rows[i]] : -1;
    cs_ann_close(a);
    free(rows);
    free(path);
    cs_vecstore_close(&vs);
    return rc;
}
