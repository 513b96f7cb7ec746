/* lf_quant.c — the vote index's quantizer on its own (lf_quant.h says
 * what for): trained as cs_lf_index_build trains it, an index shell filled
 * from the parts, and <db>.lfquant. */
#include "index/lf_quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "index/faiss_shim.h"
#include "index/lf_index_internal.h"

void cs_lf_quant_counts(int64_t n, const uint8_t *recs, uint8_t *cnt) {
    for (int64_t i = 0; i < n; i++) cnt[i] = (uint8_t)rec_nk(recs + (size_t)i * CS_LF_RECORD);
}

struct cs_lf_qtrain {
    cs_lf_index ix; /* the index being trained: its factory and FAISS index */
    int nprobe;
    float *s;       /* the PQ's sample [ns][128] (NULL: nothing left to train) */
    int64_t ns;
    int m, dsub;    /* its sub-quantizers: m of dsub dimensions, 256 centroids each */
};

void cs_lf_qtrain_free(cs_lf_qtrain *t) {
    if (!t) return;
    cs_faiss_free(t->ix.f);
    free(t->s);
    free(t);
}

int cs_lf_qtrain_subs(const cs_lf_qtrain *t) { return t->s ? t->m : 0; }
int64_t cs_lf_qtrain_sample(const cs_lf_qtrain *t, const float **s) {
    *s = t->s;
    return t->s ? t->ns : 0;
}
const char *cs_lf_qtrain_factory(const cs_lf_qtrain *t) { return t->ix.factory; }

/* cs_lf_index_build's training (index/lf_index.c), from the same sample
 * and parameters (lf_index_internal.h), in steps: test_lf_shard compares
 * the bytes */
int cs_lf_qtrain_begin(cs_lf_qtrain **out, int64_t n, const uint8_t *recs, cs_err *err) {
    *out = NULL;
    cs_lf_qtrain *t = calloc(1, sizeof *t);
    int64_t *first = lf_desc_first(n, recs);
    float *x = NULL;
    int rc = -1;
    if (!t || !first) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld records", (long long)n);
        goto out;
    }
    t->ix.simd_max = 2;
    int64_t nd = first[n], nt = 0;
    t->nprobe = CS_LF_NPROBE;
    cs_lf_default_factory(nd, t->ix.factory, sizeof t->ix.factory, &t->nprobe);
    if (lf_faiss_untrained(&t->ix.f, t->ix.factory, err)) goto out;
    if (!cs_faiss_is_trained(t->ix.f)) {
        if (!(x = lf_train_sample(n, recs, first, &nt))) {
            cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nt);
            goto out;
        }
        const float *cb;
        if (cs_faiss_pq_parts(t->ix.f, &t->m, &t->dsub, &cb) == 0) {
            /* the coarse quantizer here, the PQ's sub-quantizers wherever
             * cs_lf_qtrain_sub runs */
            if (cs_faiss_train_coarse(t->ix.f, nt, x, &t->s, &t->ns, err)) goto out;
        } else if (cs_faiss_train(t->ix.f, nt, x, err)) { /* another factory: in one step */
            goto out;
        }
    }
    rc = 0;
out:
    free(x);
    free(first);
    if (rc) cs_lf_qtrain_free(t);
    else *out = t;
    return rc;
}

int cs_lf_qtrain_sub(const char *factory, int64_t ns, const float *s, int m, float *centroids, cs_err *err) {
    cs_faiss *f = NULL;
    if (lf_faiss_untrained(&f, factory, err)) return -1;
    int rc = cs_faiss_pq_train_sub(f, m, ns, s, centroids, err);
    cs_faiss_free(f);
    return rc;
}

int cs_lf_qtrain_end(cs_lf_qtrain *t, const float *centroids, uint8_t **q, size_t *qlen, cs_err *err) {
    *q = NULL, *qlen = 0;
    for (int m = 0; t->s && m < t->m; m++)
        if (cs_faiss_pq_set_sub(t->ix.f, m, centroids + (size_t)m * 256 * t->dsub, m == t->m - 1, err)) return -1;
    if (cs_faiss_nlist(t->ix.f) > 0 && cs_faiss_set_param(t->ix.f, "nprobe", t->nprobe, err)) return -1;
    return cs_lf_quantizer_save(&t->ix, q, qlen, err);
}

int cs_lf_quant_train(int64_t n, const uint8_t *recs, uint8_t **q, size_t *qlen, cs_err *err) {
    cs_lf_qtrain *t = NULL;
    float *c = NULL;
    *q = NULL, *qlen = 0;
    if (cs_lf_qtrain_begin(&t, n, recs, err)) return -1;
    int rc = 0, M = cs_lf_qtrain_subs(t);
    if (M > 0 && !(c = malloc(sizeof(float) * 256 * (size_t)t->dsub * (size_t)M)))
        rc = cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    for (int m = 0; !rc && m < M; m++) rc = cs_faiss_pq_train_sub(t->ix.f, m, t->ns, t->s, c + (size_t)m * 256 * t->dsub, err);
    if (!rc) rc = cs_lf_qtrain_end(t, c, q, qlen, err);
    free(c);
    cs_lf_qtrain_free(t);
    return rc;
}

int cs_lf_index_shell(cs_lf_index **out, const uint8_t *q, size_t qlen, int64_t nrec, const uint8_t *cnt,
                      cs_err *err) {
    *out = NULL;
    int64_t nd = 0;
    for (int64_t i = 0; i < nrec; i++) nd += cnt[i];
    cs_lf_index *ix = calloc(1, sizeof *ix);
    int rc = -1;
    if (!ix || !(ix->owner = malloc(sizeof(int32_t) * (size_t)(nd ? nd : 1)))) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nd);
        goto out;
    }
    ix->simd_max = 2;
    if (lf_quantizer_read(ix, q, qlen, err)) goto out;
    for (int64_t i = 0, d = 0; i < nrec; i++)
        for (int k = 0; k < cnt[i]; k++) ix->owner[d++] = (int32_t)i;
    ix->nd = nd;
    lf_scan_setup(ix); /* its lists, for cs_lf_part_into */
    rc = 0;
out:
    if (rc) cs_lf_index_free(ix);
    else *out = ix;
    return rc;
}

int cs_lf_index_shell_done(cs_lf_index *ix, cs_err *err) {
    if (cs_faiss_ntotal(ix->f) != ix->nd)
        return cs_fail(err, CS_EINTERNAL, "localfeat: the parts hold %lld descriptors of the index's %lld",
                       (long long)cs_faiss_ntotal(ix->f), (long long)ix->nd);
    lf_scan_setup(ix);
    return 0;
}

/* ---- <db>.lfquant ----
 * "CSQF", version 1, the records' fingerprint and count, the quantizer's
 * length, <db>.lfvote's identity (size, device, inode, mtime and ctime in
 * ns), then the counts, the quantizer, and "CSQF" with the length of all
 * before it, so that a cut file is refused. */

static const char QFMAGIC[4] = {'C', 'S', 'Q', 'F'};
enum { QFHDR = 4 + 4 + 8 + 8 + 8 + 6 * 8, QFID = 32 };

/* the identity of the file at path (-1 when it is missing) */
static int vote_identity(const char *path, uint64_t id[6]) {
    struct stat st;
    if (stat(path, &st)) return -1;
    id[0] = (uint64_t)st.st_size, id[1] = (uint64_t)st.st_dev, id[2] = (uint64_t)st.st_ino;
    id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    id[4] = (uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec;
    id[5] = 0;
    return 0;
}

int cs_lf_quant_save(const char *path, const char *vote_path, uint64_t fp, int64_t n, const uint8_t *cnt,
                     const uint8_t *q, size_t qlen, cs_err *err) {
    uint64_t id[6];
    if (vote_identity(vote_path, id)) return cs_fail(err, CS_ENOTFOUND, "%s: missing", vote_path);
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    uint8_t h[QFHDR], tail[12];
    memcpy(h, QFMAGIC, 4);
    put32(h + 4, 1);
    put64(h + 8, fp);
    put64(h + 16, (uint64_t)n);
    put64(h + 24, (uint64_t)qlen);
    for (int i = 0; i < 6; i++) put64(h + QFID + 8 * i, id[i]);
    memcpy(tail, QFMAGIC, 4);
    put64(tail + 4, (uint64_t)(QFHDR + (size_t)n + qlen));
    int ok = fwrite(h, 1, QFHDR, a.f) == QFHDR && fwrite(cnt, 1, (size_t)n, a.f) == (size_t)n &&
             fwrite(q, 1, qlen, a.f) == qlen && fwrite(tail, 1, 12, a.f) == 12;
    if (!ok) {
        cs_atomic_finish(&a, 0, &(cs_err){0});
        return cs_fail(err, CS_EIO, "%s: write failed", path);
    }
    return cs_atomic_finish(&a, 1, err);
}

int cs_lf_quant_load(const char *path, const char *vote_path, uint64_t fp, int64_t n, uint8_t **cnt, uint8_t **q,
                     size_t *qlen, cs_err *err) {
    *cnt = *q = NULL, *qlen = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_ENOTFOUND, "%s: missing", path);
    uint8_t h[QFHDR], tail[12];
    uint64_t id[6];
    int rc = -1;
    if (fread(h, 1, QFHDR, f) != QFHDR || memcmp(h, QFMAGIC, 4) || get32(h + 4) != 1) {
        cs_fail(err, CS_EFORMAT, "%s: not a vote index's quantizer file (bad header)", path);
        goto out;
    }
    int same = !vote_identity(vote_path, id);
    for (int i = 0; same && i < 6; i++) same = get64(h + QFID + 8 * i) == id[i];
    if (!same || get64(h + 8) != fp || get64(h + 16) != (uint64_t)n) {
        cs_fail(err, CS_ENOTFOUND, "%s: stale (taken from another %s or for other records)", path, vote_path);
        goto out;
    }
    uint64_t ql = get64(h + 24), want = QFHDR + (uint64_t)n + ql;
    long end = -1;
    if (ql > ((uint64_t)1 << 40) || fseek(f, -12, SEEK_END) || (end = ftell(f)) < 0 || (uint64_t)end != want ||
        fread(tail, 1, 12, f) != 12 || memcmp(tail, QFMAGIC, 4) || get64(tail + 4) != want ||
        fseek(f, QFHDR, SEEK_SET)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated or corrupt (bad end)", path);
        goto out;
    }
    if (!(*cnt = malloc((size_t)(n ? n : 1))) || !(*q = malloc((size_t)(ql ? ql : 1)))) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(*cnt, 1, (size_t)n, f) != (size_t)n || fread(*q, 1, (size_t)ql, f) != (size_t)ql) {
        cs_fail(err, CS_EFORMAT, "%s: truncated", path);
        goto out;
    }
    for (int64_t i = 0; i < n; i++)
        if ((*cnt)[i] > CS_LF_REF_KP) {
            cs_fail(err, CS_EFORMAT, "%s: corrupt (record %lld: %d descriptors)", path, (long long)i, (*cnt)[i]);
            goto out;
        }
    *qlen = (size_t)ql;
    rc = 0;
out:
    fclose(f);
    if (rc) {
        free(*cnt), free(*q);
        *cnt = *q = NULL;
    }
    return rc;
}
