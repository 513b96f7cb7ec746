/* cmd_mpi_lf_add.c — `index add` under mpirun: the local-feature vote
 * index, with only the quantizer's training serial. Rank 0 opens the
 * records (<db>.lfrec) and, where one process would build <db>.lfvote from
 * scratch, trains only its quantizer (cs_lf_quant_train: the same sample,
 * the same bytes) and sends it to every rank with each record's descriptor
 * count and shard; each rank encodes its shards' parts
 * (<db>.shards/K-of-N.db.lfpart, lf_part_open), so that the first analysis
 * does no index work; rank 0 then puts <db>.lfvote together from the parts'
 * lists (cs_lf_part_into: one process's file, byte for byte) and writes
 * <db>.lfquant beside it (the quantizer and counts the analysis's rank 0
 * reads instead of the whole index). Where one process would only load the
 * index, or append new records to it (an incremental add keeps the first
 * records' cells), rank 0 does exactly that, as before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/shard.h"
#include "index/lf_quant.h"

static double cpu_now(void) {
    struct timespec t;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) ? 0 : (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* what rank 0 does with <db>.lfvote */
enum { V_CURRENT, V_OPENED, V_ASSEMBLE };

typedef struct {
    int64_t n, qlen;
    uint64_t fp;
    int32_t status, mode;
    int64_t ns;       /* V_ASSEMBLE: the PQ's sample, nsub sub-quantizers to train on the ranks */
    int32_t nsub, pad;
    char factory[64];
} parts_head;

/* Whether one process (cs_lf_index_open_fp) would build <db>.lfvote from
 * scratch for these records, by its header: a missing, corrupt or
 * other-version file, or one of other records that is no prefix of these
 * with the same factory (lf_index.c's prefix_index). Its layout
 * (lf_index.c, cs_lf_index_save): "CSLV", version 1 at 4, the records'
 * fingerprint at 16 and count at 24, the factory at 40. When in doubt
 * (the same records, or a possible prefix) the answer is no: rank 0 then
 * opens the index as one process does, which is always right. */
static int built_from_scratch(const char *path, int64_t n, uint64_t fp, int64_t nd) {
    uint8_t h[108];
    FILE *f = fopen(path, "rb");
    int got = f && fread(h, 1, sizeof h, f) == sizeof h;
    if (f) fclose(f);
    if (!got || memcmp(h, "CSLV", 4) || h[4] != 1 || h[5] || h[6] || h[7] || h[40 + 63]) return 1;
    uint64_t hfp = 0, m = 0;
    for (int i = 7; i >= 0; i--) hfp = hfp << 8 | h[16 + i], m = m << 8 | h[24 + i];
    if (hfp == fp && m == (uint64_t)n) return 0;
    char fac[64];
    int np;
    cs_lf_default_factory(nd, fac, sizeof fac, &np);
    return !(m > 0 && m < (uint64_t)n && !strcmp(fac, (const char *)h + 40));
}

/* Rank 0: the records (<db>.lfrec written when stale), each record's shard,
 * and the quantizer and counts: from <db>.lfquant when current, trained
 * alone when <db>.lfvote is to be built from scratch (V_ASSEMBLE), else
 * from the index opened as one process opens it (V_OPENED). */
static int parts_prepare(const char *db, int nsh, parts_head *h, uint8_t **cnt, int32_t **shard, uint8_t **qb,
                         cs_lf_qtrain **t, char *note, size_t cap, cs_err *err) {
    cs_store *s = NULL;
    cs_lf_records rec = {0};
    cs_lf_index *ix = NULL;
    char rnote[512] = "";
    long long *off = calloc((size_t)nsh, sizeof *off);
    char *path = NULL, *qpath = NULL;
    size_t qlen = 0;
    int rc = -1;
    if (!off) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_store_open(&s, db, err) || cs_store_shard_offsets(s, off, nsh) ||
        cs_lf_records_open(s, &rec, rnote, sizeof rnote, err))
        goto out_db;
    if (strstr(rnote, "in memory")) fprintf(stderr, "copyscope: index add: %s\n", rnote);
    h->n = rec.n, h->fp = rec.fp;
    if (rec.n == 0) { /* no local features: nothing to index */
        rc = 0;
        goto out;
    }
    *shard = malloc(sizeof **shard * (size_t)rec.n);
    path = cs_store_sidecar(s, "lfvote");
    qpath = cs_store_sidecar(s, "lfquant");
    if (!*shard || !path || !qpath) {
        cs_fail(err, CS_ENOMEM, "index add: out of memory for %lld local-feature records", (long long)rec.n);
        goto out;
    }
    /* shard k holds the ids past off[k] (as the analysis's owners read them) */
    for (int64_t i = 0, k = 0; i < rec.n; i++) {
        while (k + 1 < nsh && off[k + 1] < rec.ids[i]) k++;
        (*shard)[i] = (int32_t)k;
    }
    cs_err why = {0};
    if (!cs_lf_quant_load(qpath, path, rec.fp, rec.n, cnt, qb, &qlen, &why)) {
        h->mode = V_CURRENT;
    } else {
        int64_t nd = 0;
        if (!(*cnt = malloc((size_t)rec.n))) {
            cs_fail(err, CS_ENOMEM, "index add: out of memory for %lld local-feature records", (long long)rec.n);
            goto out;
        }
        cs_lf_quant_counts(rec.n, rec.recs, *cnt);
        for (int64_t i = 0; i < rec.n; i++) nd += (*cnt)[i];
        char fac[64];
        int np;
        cs_lf_default_factory(nd, fac, sizeof fac, &np);
        /* "Flat" has nothing to train and its build only copies the
         * descriptors: put together from parts it would cost more */
        if (strcmp(fac, "Flat") && built_from_scratch(path, rec.n, rec.fp, nd)) {
            h->mode = V_ASSEMBLE;
            double t0 = cs_now_s(), c0 = cpu_now();
            if (cs_lf_qtrain_begin(t, rec.n, rec.recs, err)) goto out;
            h->nsub = cs_lf_qtrain_subs(*t);
            const float *smp;
            h->ns = cs_lf_qtrain_sample(*t, &smp);
            snprintf(h->factory, sizeof h->factory, "%s", cs_lf_qtrain_factory(*t));
            /* one process (index add --shards N) has no ranks to name */
            snprintf(note, cap, "quantizer (%s): coarse part trained%s in %.2f s (%.2f CPU-s)", fac,
                     cs_mpi_size() > 1 ? " on rank 0" : "", cs_now_s() - t0, cpu_now() - c0);
        } else {
            h->mode = V_OPENED;
            if (cs_lf_index_open_fp(&ix, path, rec.n, rec.ids, rec.recs, rec.fp, note, cap, err)) goto out;
            if (cs_lf_index_counts(ix, rec.n, *cnt)) {
                cs_fail(err, CS_EINTERNAL, "index add: %s is not of its %lld records", path, (long long)rec.n);
                goto out;
            }
            if (cs_lf_quantizer_save(ix, qb, &qlen, err)) goto out;
            cs_err qe = {0}; /* a cache: without it the analysis reads <db>.lfvote */
            if (cs_lf_quant_save(qpath, path, rec.fp, rec.n, *cnt, *qb, qlen, &qe))
                fprintf(stderr, "copyscope: index add: not saved: %s\n", qe.msg);
        }
    }
    h->qlen = (int64_t)qlen;
    rc = 0;
    goto out;
out_db:
    if (!err->code) cs_fail(err, CS_EDB, "%s: no shard offsets", db);
out:
    cs_lf_index_free(ix);
    cs_lf_records_close(&rec);
    cs_store_close(s);
    free(path);
    free(qpath);
    free(off);
    return rc;
}

/* V_ASSEMBLE, every rank: the PQ's sub-quantizers of rank 0's quantizer t
 * (independent k-means of the same sample, FAISS's fixed seed: the bytes
 * one process trains) trained on the ranks in turn (m mod size), the
 * centroids gathered, the quantizer finished on rank 0 (*qb, h->qlen on
 * every rank). Only the coarse quantizer and the sample stay serial. */
static int train_subs(parts_head *h, cs_lf_qtrain *t, uint8_t **qb, char *note, size_t cap, cs_err *err) {
    const int rank = cs_mpi_rank(), size = cs_mpi_size(), M = h->nsub, K = 256 * (128 / M);
    const float *s0 = NULL;
    float *s = NULL, *c = NULL;
    double t0 = cs_now_s(), c0 = cpu_now();
    if (rank == 0) cs_lf_qtrain_sample(t, &s0);
    else if (!(s = malloc(sizeof(float) * 128 * (size_t)h->ns))) {
        fprintf(stderr, "copyscope: index add: rank %d: out of memory for the quantizer's sample\n", rank);
        exit(CLI_FAIL); /* the broadcast must be received to go on: stop the job */
    }
    cs_mpi_bcast(rank ? s : (void *)s0, h->ns * 128 * (int64_t)sizeof(float));
    int mine = 0;
    for (int m = rank; m < M; m += size) mine++;
    size_t len = 8 + sizeof(float) * (size_t)K * (size_t)mine; /* status (8 B: aligned), the centroids */
    char *buf = calloc(1, len);
    int32_t st = buf ? 0 : -1;
    cs_err e = {0};
    for (int m = rank, j = 0; !st && m < M; m += size, j++)
        st = cs_lf_qtrain_sub(h->factory, h->ns, rank ? s : s0, m, (float *)(buf + 8) + (size_t)j * K, &e);
    if (st) fprintf(stderr, "copyscope: index add: rank %d of %d: %s\n", rank, size, e.msg[0] ? e.msg : "out of memory");
    if (buf) memcpy(buf, &st, sizeof st);
    int32_t zero = -1;
    int64_t *lens = rank == 0 ? calloc((size_t)size, sizeof *lens) : NULL;
    void *all = NULL;
    int bad = cs_mpi_gatherv(buf ? (void *)buf : (void *)&zero, buf ? (int64_t)len : 4, &all, lens);
    struct { int64_t qlen; int32_t status, pad; } r = {0, 0, 0};
    if (rank == 0) {
        c = malloc(sizeof(float) * (size_t)K * (size_t)M);
        const char *p = all;
        for (int rk = 0; !bad && rk < size; p += lens[rk], rk++) {
            int32_t rs;
            int n = 0;
            for (int m = rk; m < M; m += size) n++;
            memcpy(&rs, p, sizeof rs);
            if (rs || lens[rk] != 8 + (int64_t)sizeof(float) * K * n) {
                bad = cs_fail(err, CS_EINTERNAL, "rank %d of %d could not train its sub-quantizers", rk, size);
                break;
            }
            for (int m = rk, j = 0; c && m < M; m += size, j++)
                memcpy(c + (size_t)m * K, p + 8 + sizeof(float) * (size_t)K * j, sizeof(float) * (size_t)K);
        }
        size_t qlen = 0;
        if (!bad && !c) bad = cs_fail(err, CS_ENOMEM, "out of memory");
        if (!bad) bad = cs_lf_qtrain_end(t, c, qb, &qlen, err);
        r.qlen = (int64_t)qlen, r.status = bad ? -1 : 0;
    }
    cs_mpi_bcast(&r, sizeof r);
    h->qlen = r.qlen;
    size_t l = strlen(note);
    if (rank == 0 && !r.status && l + 1 < cap && size > 1)
        snprintf(note + l, cap - l, ", its %d sub-quantizers on the %d ranks (rank 0: %.2f s, %.2f CPU-s)", M, size,
                 cs_now_s() - t0, cpu_now() - c0);
    else if (rank == 0 && !r.status && l + 1 < cap)
        snprintf(note + l, cap - l, ", its %d sub-quantizers in this process in %.2f s (%.2f CPU-s)", M,
                 cs_now_s() - t0, cpu_now() - c0);
    free(s), free(c), free(buf), free(all), free(lens);
    if (r.status) return rank == 0 ? -1 : cs_fail(err, CS_EINTERNAL, "the quantizer could not be trained");
    return 0;
}

/* Rank 0, every part written: <db>.lfvote from the parts of shards 0..nsh-1
 * (ascending ids, so ascending descriptor numbers: cs_lf_part_into puts
 * each list's entries in one process's order, and refuses any other),
 * then <db>.lfquant. A part missing (a rank could not save it) is encoded
 * here. */
static int assemble(cs_store *s, int nsh, const parts_head *h, const uint8_t *cnt, const int32_t *shard,
                    const uint8_t *qb, uint8_t *keep, char *note, size_t cap, cs_err *err) {
    double t0 = cs_now_s(), c0 = cpu_now();
    char *path = cs_store_sidecar(s, "lfvote"), *qpath = cs_store_sidecar(s, "lfquant");
    cs_lf_index *ix = NULL;
    int rc = !path || !qpath ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    if (!rc) rc = cs_lf_index_shell(&ix, qb, (size_t)h->qlen, h->n, cnt, err);
    for (int k = 0; !rc && k < nsh; k++) {
        cs_lf_part *p = NULL;
        int loaded = 0;
        for (int64_t i = 0; i < h->n; i++) keep[i] = shard[i] == k;
        rc = lf_part_open(&p, s, k, qb, (size_t)h->qlen, h->fp, h->n, NULL, cnt, keep, &loaded, err);
        if (!rc) rc = cs_lf_part_into(ix, p, err);
        cs_lf_part_free(p);
    }
    if (!rc) rc = cs_lf_index_shell_done(ix, err);
    if (!rc) rc = cs_lf_index_save(ix, path, h->fp, h->n, err);
    cs_err qe = {0};
    if (!rc && cs_lf_quant_save(qpath, path, h->fp, h->n, cnt, qb, (size_t)h->qlen, &qe))
        fprintf(stderr, "copyscope: index add: not saved: %s\n", qe.msg);
    size_t l = strlen(note);
    if (!rc && l + 1 < cap)
        snprintf(note + l, cap - l, "%s%s put together from the %d parts in %.2f s (%.2f CPU-s)", l ? "; " : "", path,
                 nsh, cs_now_s() - t0, cpu_now() - c0);
    cs_lf_index_free(ix);
    free(path);
    free(qpath);
    return rc;
}

int cli_mpi_lf_parts(const char *db, int nsh, int k0, int k1, int64_t *encoded, char *note, size_t cap,
                     cs_err *err) {
    int rank = cs_mpi_rank();
    parts_head h = {0};
    uint8_t *cnt = NULL, *qb = NULL, *keep = NULL;
    int32_t *shard = NULL;
    *encoded = 0;
    if (cap) note[0] = 0;
    cs_lf_qtrain *t = NULL;
    if (rank == 0 && parts_prepare(db, nsh, &h, &cnt, &shard, &qb, &t, note, cap, err)) h.status = -1;
    cs_mpi_bcast(&h, sizeof h);
    if (!h.status && h.mode == V_ASSEMBLE && h.nsub > 0 && train_subs(&h, t, &qb, note, cap, err)) h.status = -1;
    else if (!h.status && h.mode == V_ASSEMBLE && h.nsub == 0 && rank == 0) { /* nothing left to train */
        size_t qlen = 0;
        h.status = cs_lf_qtrain_end(t, NULL, &qb, &qlen, err) ? -1 : 0;
        h.qlen = (int64_t)qlen;
    }
    cs_lf_qtrain_free(t);
    if (h.mode == V_ASSEMBLE && h.nsub == 0) cs_mpi_bcast(&h, sizeof h);
    if (h.status) {
        free(cnt), free(shard), free(qb);
        return rank == 0 || err->code ? -1 : cs_fail(err, CS_EINTERNAL, "rank 0 could not build the vote index");
    }
    if (h.n == 0) return 0;
    if (rank) {
        cnt = malloc((size_t)h.n);
        shard = malloc(sizeof *shard * (size_t)h.n);
        qb = malloc((size_t)(h.qlen > 0 ? h.qlen : 1));
        if (!cnt || !shard || !qb) {
            fprintf(stderr, "copyscope: index add: rank %d: out of memory for %lld local-feature records\n", rank,
                    (long long)h.n);
            exit(CLI_FAIL); /* the broadcast must be received to go on: stop the job */
        }
    }
    cs_mpi_bcast(cnt, h.n);
    cs_mpi_bcast(shard, h.n * (int64_t)sizeof *shard);
    cs_mpi_bcast(qb, h.qlen);
    cs_store *s = NULL;
    int rc = (keep = malloc((size_t)h.n)) ? 0 : cs_fail(err, CS_ENOMEM, "out of memory");
    /* the store as the analysis's ranks open it (its <db>.lfrec written
     * by rank 0 above) */
    if (!rc) rc = cs_store_open_readonly(&s, db, err);
    for (int k = k0; !rc && k < k1; k++) {
        cs_lf_part *p = NULL;
        int loaded = 0;
        for (int64_t i = 0; i < h.n; i++) keep[i] = shard[i] == k;
        rc = lf_part_open(&p, s, k, qb, (size_t)h.qlen, h.fp, h.n, NULL, cnt, keep, &loaded, err);
        if (!rc && !loaded) *encoded += cs_lf_part_ndesc(p);
        cs_lf_part_free(p);
    }
    /* every part written (collective) before rank 0 reads them */
    if (h.mode == V_ASSEMBLE) {
        if (cs_mpi_any(rc)) {
            if (!rc) rc = cs_fail(err, CS_EINTERNAL, "another rank could not write its part of the vote index");
        } else if (rank == 0) {
            rc = assemble(s, nsh, &h, cnt, shard, qb, keep, note, cap, err);
        }
    }
    cs_store_close(s);
    free(cnt);
    free(shard);
    free(qb);
    free(keep);
    return rc;
}
