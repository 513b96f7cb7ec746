/* cmd_mpi_an_lf.c — `analyze` under mpirun: the local-feature vote search
 * (cs_analyze_opts.lf_search). At the first search rank 0 sends every rank
 * the vote index's trained quantizer (cells and PQ codebooks, or "Flat":
 * cs_lf_quantizer_save), every record's descriptor count and shard; each
 * rank takes its share of the records (lf_share_open: the parts of the
 * shards it owns, loaded from the files `index add` wrote, when there are
 * at least as many shards as ranks; else a contiguous run of the records
 * cut by descriptors, indexed with that quantizer by cs_lf_part_build: only
 * its records' pages of <db>.lfrec are read), and rank 0 drops the whole
 * index's codes. Then for each chunk of generations
 * rank 0 broadcasts the query descriptors, every rank returns each one's
 * CS_LF_NN nearest among its own (distance, number in the whole index), and
 * rank 0 merges them by (distance, number) and counts the votes: the whole
 * index's nearest lists, so the same votes, candidates and findings as one
 * process (index/localfeat.h says why; test_lf_shard). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/shard.h"
#include "index/lf_quant.h"

/* A rank's lists of an LF round: status, n * CS_LF_NN, then the distances
 * and the numbers. */
static int64_t lf_reply_size(int64_t m) {
    return (int64_t)sizeof(reply_head) + m * (int64_t)(sizeof(float) + sizeof(int64_t));
}

/* "<db>.shards/<k+1>-of-<n>.db.lfpart": shard k's part of the vote index. */
static char *part_file(cs_store *s, int k, int n) {
    char *sp = s ? cs_shard_path(cs_store_path(s), k, n) : NULL, *p = NULL;
    if (sp && (p = malloc(strlen(sp) + 8))) sprintf(p, "%s.lfpart", sp);
    free(sp);
    return p;
}

int lf_part_open(cs_lf_part **part, cs_store *s, int shard, const uint8_t *qb, size_t qlen, uint64_t fp, int64_t n,
                 const uint8_t *recs, const uint8_t *cnt, const uint8_t *keep, int *loaded, cs_err *err) {
    int nsh = s ? cs_store_shards(s) : 0;
    char *path = shard >= 0 && shard < nsh ? part_file(s, shard, nsh) : NULL;
    uint64_t key[2];
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += cnt[i];
    cs_lf_part_keys(qb, qlen, fp, n, keep, key);
    cs_err why = {0};
    *loaded = 0;
    if (path && !cs_lf_part_load(part, path, key, total, &why)) {
        *loaded = 1;
        free(path);
        return 0;
    }
    /* missing, stale or cut: built from the records, never trusted */
    if (path && why.code != CS_ENOTFOUND)
        fprintf(stderr, "copyscope: rank %d of %d: %s; rebuilt\n", cs_mpi_rank(), cs_mpi_size(), why.msg);
    cs_lf_records rec = {0};
    char note[512];
    int rc = 0;
    if (!recs) { /* the records rank 0 checked (<db>.lfrec), mapped: only the kept pages read */
        if (!s) rc = cs_fail(err, CS_EINTERNAL, "no store for the local-feature records");
        else if (cs_lf_records_map(s, n, fp, &rec, &(cs_err){0}) && cs_lf_records_open(s, &rec, note, sizeof note, err))
            rc = -1;
        else if (rec.n != n || rec.fp != fp)
            rc = cs_fail(err, CS_EINTERNAL, "its local-feature records (%lld) are not rank 0's (%lld)",
                         (long long)rec.n, (long long)n);
        recs = rec.recs;
    }
    if (!rc) rc = cs_lf_part_build(part, qb, qlen, n, recs, cnt, keep, err);
    cs_lf_records_close(&rec);
    cs_err se = {0};
    if (!rc && path && cs_lf_part_save(*part, path, key, &se)) /* a read-only folder: searched all the same */
        fprintf(stderr, "copyscope: rank %d of %d: part not saved: %s\n", cs_mpi_rank(), cs_mpi_size(), se.msg);
    free(path);
    return rc;
}

static double cpu_now(void) {
    struct timespec t;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) ? 0 : (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* CS_MPI_DEBUG=1: how this rank got a part (of shard k of nsh, or of its
 * run of records when k < 0), and its CPU-seconds since cpu0 */
static void debug_part(const cs_lf_part *p, int loaded, double cpu0, int k, int nsh) {
    if (!debug_on()) return;
    char what[64];
    if (k >= 0) snprintf(what, sizeof what, "shard %d of %d", k + 1, nsh);
    else snprintf(what, sizeof what, "a run of the records");
    fprintf(stderr, "copyscope: mpi debug: rank %d local-feature part %s: %lld descriptors (%.3f cpu s; %s)\n",
            cs_mpi_rank(), loaded ? "loaded" : "encoded", (long long)cs_lf_part_ndesc(p), cpu_now() - cpu0, what);
}

void lf_record_shards(const owners *o, const cs_an_refs *r, const int32_t *rows, int64_t n, int32_t *shard) {
    /* A record whose reference the analysis does not hold (rows -1: an 'ok'
     * reference without a thumbnail row) has no id here: it takes the shard
     * of the records on both sides of it when they agree (ids ascend, so
     * its id lies between theirs), else -1. Any choice gives the same lists (the merge is
     * exact whoever searches a record); only a part whose records are all
     * known is the one `index add` keyed and can be loaded. */
    int32_t prev = -1;
    for (int64_t i = 0; i < n; i++) {
        shard[i] = -1;
        if (!o->n_off || rows[i] < 0 || rows[i] >= r->n) continue;
        int k = 0;
        while (k + 1 < o->n_off && o->off[k + 1] < r->ids[rows[i]]) k++;
        shard[i] = k;
    }
    for (int64_t i = 0; o->n_off && i < n;) {
        if (shard[i] >= 0) {
            prev = shard[i++];
            continue;
        }
        int64_t j = i; /* the run of unknowns [i, j) */
        while (j < n && shard[j] < 0) j++;
        int32_t fill = j < n && prev >= 0 && shard[j] == prev ? prev : -1;
        while (i < j) shard[i++] = fill;
    }
}

/* Appends part p to sh; -1 when out of memory (p freed). */
static int share_add(lf_share *sh, cs_lf_part *p, cs_err *err) {
    cs_lf_part **t = realloc(sh->p, sizeof *t * (size_t)(sh->n + 1));
    if (!t) {
        cs_lf_part_free(p);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for the local-feature parts");
    }
    sh->p = t;
    sh->p[sh->n++] = p;
    return 0;
}

int lf_share_open(lf_share *sh, cs_store *s, const int32_t *shard, int nsh, const uint8_t *qb, size_t qlen,
                  uint64_t fp, int64_t n, const uint8_t *recs, const uint8_t *cnt, cs_err *err) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), rc = 0;
    uint8_t *keep = malloc((size_t)(n > 0 ? n : 1));
    if (!keep) return cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld local-feature records", (long long)n);
    memset(sh, 0, sizeof *sh);
    if (nsh > 0 && nsh >= size) { /* its shards' parts, each as `index add` wrote it (its file when current) */
        for (int k = rank; !rc && k < nsh; k += size) {
            cs_lf_part *p = NULL;
            int loaded = 0;
            double cpu0 = cpu_now();
            for (int64_t i = 0; i < n; i++) keep[i] = shard[i] == k;
            /* a record of unknown shard (lf_record_shards) goes with shard 1: its
             * part is then built here, not loaded, and never saved as shard 1's */
            int unknown = 0;
            for (int64_t i = 0; k == 0 && i < n; i++)
                if (shard[i] < 0) keep[i] = 1, unknown = 1;
            rc = lf_part_open(&p, s, unknown ? -1 : k, qb, qlen, fp, n, recs, cnt, keep, &loaded, err);
            if (!rc) debug_part(p, loaded, cpu0, k, nsh);
            if (!rc) rc = share_add(sh, p, err);
        }
    } else { /* fewer shards than ranks, or none: a contiguous run of records each, cut by descriptors */
        int64_t total = 0, before = 0;
        for (int64_t i = 0; i < n; i++) total += cnt[i];
        /* record i goes to rank floor(size x (descriptors before it) / all):
         * every rank searches about total / size descriptors (the search's
         * cost is per descriptor), and the runs cover the records once */
        for (int64_t i = 0; i < n; i++) {
            keep[i] = total > 0 && before * size / total == rank;
            before += cnt[i];
        }
        cs_lf_part *p = NULL;
        int loaded = 0;
        double cpu0 = cpu_now();
        rc = lf_part_open(&p, s, -1, qb, qlen, fp, n, recs, cnt, keep, &loaded, err);
        if (!rc) debug_part(p, loaded, cpu0, -1, nsh);
        if (!rc) rc = share_add(sh, p, err);
    }
    free(keep);
    if (rc) lf_share_free(sh);
    return rc;
}

int lf_share_knn(const lf_share *sh, int64_t nd, const uint8_t *desc, float *dist, int64_t *gid, cs_err *err) {
    const int64_t m = nd * CS_LF_NN;
    for (int64_t i = 0; i < m; i++) dist[i] = INFINITY, gid[i] = -1;
    if (sh->n == 1) return cs_lf_part_knn(sh->p[0], nd, desc, dist, gid, err);
    float *d = malloc(sizeof *d * (size_t)(m > 0 ? m : 1));
    int64_t *g = malloc(sizeof *g * (size_t)(m > 0 ? m : 1));
    int rc = d && g ? 0 : cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld query descriptors", (long long)nd);
    /* each part's lists merged by (distance, number): the lists of the
     * union of the parts, as the ranks' lists are merged on rank 0 */
    for (int i = 0; !rc && i < sh->n; i++) {
        rc = cs_lf_part_knn(sh->p[i], nd, desc, d, g, err);
        if (!rc) cs_lf_part_merge(dist, gid, d, g, nd);
    }
    free(d);
    free(g);
    return rc;
}

int64_t lf_share_ndesc(const lf_share *sh) {
    int64_t n = 0;
    for (int i = 0; i < sh->n; i++) n += cs_lf_part_ndesc(sh->p[i]);
    return n;
}

void lf_share_free(lf_share *sh) {
    for (int i = 0; i < sh->n; i++) cs_lf_part_free(sh->p[i]);
    free(sh->p);
    memset(sh, 0, sizeof *sh);
}

/* cs_analyze_opts.lf_open on rank 0. lf_init needs of the vote index only
 * its quantizer and every record's descriptor count: read from
 * <db>.lfquant (~150 KB at IMI2x5) when it was taken from <db>.lfvote as
 * that file now is and for these records, instead of the whole index (28 B
 * a descriptor, and its owners). Otherwise (a store indexed by one process,
 * or the index rebuilt since) the index is opened as one process opens it
 * (loaded, or rebuilt when stale: the same bytes), and its quantizer and
 * counts are saved for the next analysis. Only the ranks' first search
 * uses this index: a later analysis in the same run opens the whole one
 * (lf_search_all searches it here). */
int lf_open_rank0(void *ctx, const char *path, const cs_lf_records *rec, cs_lf_index **out, char *note, size_t cap,
                  cs_err *err) {
    cli_mpi_an *c = ctx;
    char *qpath = c->store ? cs_store_sidecar(c->store, "lfquant") : NULL;
    uint8_t *cnt = NULL, *qb = NULL;
    size_t qlen = 0;
    cs_err why = {0};
    *out = NULL;
    if (cap) note[0] = 0;
    if (!c->lf_inited && qpath && !cs_lf_quant_load(qpath, path, rec->fp, rec->n, &cnt, &qb, &qlen, &why)) {
        int rc = cs_lf_index_shell(out, qb, qlen, rec->n, cnt, err);
        free(cnt), free(qb), free(qpath);
        if (debug_on() && !rc)
            fprintf(stderr, "copyscope: mpi debug: rank 0 vote index: quantizer and counts read (%zu B)\n", qlen);
        return rc;
    }
    int rc = cs_lf_index_open_fp(out, path, rec->n, rec->ids, rec->recs, rec->fp, note, cap, err);
    if (!rc && !c->lf_inited && qpath && rec->n > 0) {
        cs_err qe = {0};
        if ((cnt = malloc((size_t)rec->n)) && !cs_lf_index_counts(*out, rec->n, cnt) &&
            !cs_lf_quantizer_save(*out, &qb, &qlen, &qe))
            cs_lf_quant_save(qpath, path, rec->fp, rec->n, cnt, qb, qlen, &qe); /* a cache: unsaved, read again */
        if (debug_on())
            fprintf(stderr, "copyscope: mpi debug: rank 0 vote index: whole index opened%s%s\n",
                    qe.code ? "; quantizer not saved: " : "", qe.code ? qe.msg : "");
    }
    free(cnt), free(qb), free(qpath);
    return rc;
}

/* The LFINIT round from rank 0: the quantizer, the counts and owners of the
 * records rec (rows: their rows in r), rank 0's part built, the whole
 * index's search dropped. */
static int lf_init(cli_mpi_an *c, const cs_an_refs *r, cs_lf_index *ix, const cs_lf_records *rec,
                   const int32_t *rows, cs_err *err) {
    const int64_t n = rec->n;
    uint8_t *cnt = malloc((size_t)(n > 0 ? n : 1)), *qb = NULL;
    int32_t *own = malloc(sizeof *own * (size_t)(n > 0 ? n : 1));
    size_t qlen = 0;
    int rc = -1;
    c->lf_inited = 1;
    c->lf_ix = ix;
    c->lf_nrec = n;
    c->lf_first = malloc(sizeof *c->lf_first * (size_t)(n + 1));
    if (!cnt || !own || !c->lf_first) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld local-feature records", (long long)n);
        goto out;
    }
    if (cs_lf_index_counts(ix, n, cnt)) {
        cs_fail(err, CS_EINTERNAL, "analyze: the vote index is not of its %lld records", (long long)n);
        goto out;
    }
    if (cs_lf_quantizer_save(ix, &qb, &qlen, err)) goto out;
    /* each record's shard: every rank picks the records it searches from
     * them (lf_share_open); a record the analysis does not hold (rows[i]
     * -1) is searched all the same: its votes count, as in one process,
     * but it is never verified */
    lf_record_shards(&c->own, r, rows, n, own);
    round_head h = {R_LFINIT, n, (int64_t)qlen, 0, 0, 0, 0, {0}, rec->fp};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(cnt, n);
    cs_mpi_bcast(own, n * (int64_t)sizeof *own);
    cs_mpi_bcast(qb, (int64_t)qlen);
    c->sent += (int64_t)sizeof h + n * (int64_t)(1 + sizeof *own) + (int64_t)qlen;
    /* the whole index's codes go before rank 0's part is built: its peak is
     * then the larger of the two, not their sum; it keeps its part only */
    cs_lf_index_drop_search(ix);
    if (lf_share_open(&c->lf_part, c->store, own, c->own.n_off, qb, qlen, rec->fp, n, rec->recs, cnt, err))
        goto out;
    c->lf_first[0] = 0;
    for (int64_t i = 0; i < n; i++) c->lf_first[i + 1] = c->lf_first[i] + cnt[i];
    rc = 0;
out:
    free(cnt);
    free(own);
    free(qb);
    return rc;
}

int lf_search_all(void *ctx, const cs_an_refs *r, cs_lf_index *ix, const cs_lf_records *rec, const int32_t *rows,
                  const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout, cs_err *err) {
    cli_mpi_an *c = ctx;
    const int K = CS_LF_NN;
    int size = cs_mpi_size();
    if (c->lf_inited && ix != c->lf_ix) /* another analysis's index, not the ranks': here (the same votes) */
        return cs_lf_retrieve(ix, q, nq, max_out, out, nout, err);
    double t0 = cs_now_s();
    if (init_ranks(c, r, err)) return -1;
    if (!c->lf_inited && lf_init(c, r, ix, rec, rows, err)) return -1;
    if (!c->lf_part.n) return cs_fail(err, CS_EINTERNAL, "analyze: the local-feature search could not start");
    int64_t nd = 0;
    for (int64_t i = 0; i < nq; i++) nd += q[i].n;
    const int64_t m = nd * K;
    uint8_t *desc = malloc((size_t)(nd > 0 ? nd : 1) * 128);
    float *dist = malloc(sizeof *dist * (size_t)(m > 0 ? m : 1)), *ld = malloc(sizeof *ld * (size_t)(m > 0 ? m : 1));
    int64_t *gid = malloc(sizeof *gid * (size_t)(m > 0 ? m : 1)), *lg = malloc(sizeof *lg * (size_t)(m > 0 ? m : 1));
    if (!desc || !dist || !ld || !gid || !lg) { /* the others wait for a round: stop the job */
        fprintf(stderr, "copyscope: analyze: out of memory for %lld query descriptors\n", (long long)nd);
        exit(CLI_FAIL);
    }
    for (int64_t i = 0, at = 0; i < nq; i++)
        for (int k = 0; k < q[i].n; k++) memcpy(desc + 128 * at++, q[i].desc[k], 128);
    int timed = getenv("CS_MPI_TIMING") && !strcmp(getenv("CS_MPI_TIMING"), "1");
    round_head h = {R_LF, nd, 0, K, 0, 0, timed, {0}, 0};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(desc, nd * 128);
    c->sent += (int64_t)sizeof h + nd * 128;
    cs_err e0 = {0};
    int rc0 = lf_share_knn(&c->lf_part, nd, desc, dist, gid, &e0);
    void *all = NULL;
    int rc = gather_replies(c, timed, rc0, &e0, "the nearest descriptors", &all, &c->t_lf_wait, &c->t_lf_gather, err);
    double t2 = cs_now_s();
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int rk = 1; rk < size && !rc; p += c->lens[rk], rk++) {
        reply_head rh;
        memcpy(&rh, p, sizeof rh);
        if (rh.status || rh.n != m || c->lens[rk] != lf_reply_size(m)) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not search its local features (its message "
                         "above)", rk, size);
            break;
        }
        c->received += c->lens[rk];
        memcpy(ld, p + sizeof rh, sizeof *ld * (size_t)m); /* aligned copies */
        memcpy(lg, p + sizeof rh + sizeof *ld * (size_t)m, sizeof *lg * (size_t)m);
        cs_lf_part_merge(dist, gid, ld, lg, nd);
    }
    if (!rc) rc = cs_lf_part_votes(c->lf_first, c->lf_nrec, q, nq, gid, max_out, out, nout, err);
    free(all);
    free(desc);
    free(dist);
    free(ld);
    free(gid);
    free(lg);
    double t3 = cs_now_s();
    c->t_lf += t3 - t0;
    c->t_lf_merge += t3 - t2;
    c->n_lf += nd;
    return rc;
}

int lf_init_round(const round_head *h, cs_store *s, lf_share *part, int64_t *total, int failed) {
    const int64_t n = h->nq;
    int rank = cs_mpi_rank();
    uint8_t *cnt = malloc((size_t)(n > 0 ? n : 1));
    int32_t *shard = malloc(sizeof *shard * (size_t)(n > 0 ? n : 1));
    uint8_t *qb = malloc((size_t)(h->nreq > 0 ? h->nreq : 1));
    if (!cnt || !shard || !qb) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld local-feature records\n", rank,
                cs_mpi_size(), (long long)n);
        exit(CLI_FAIL); /* the round must be received to go on: stop the job */
    }
    cs_mpi_bcast(cnt, n);
    cs_mpi_bcast(shard, n * (int64_t)sizeof *shard);
    cs_mpi_bcast(qb, h->nreq);
    *total = 0;
    for (int64_t i = 0; i < n; i++) *total += cnt[i];
    cs_err err = {0};
    int bad = failed;
    /* its shards' part files when current, else built from the records rank
     * 0 built its index from (<db>.lfrec, checked against the table before
     * this round) and saved there; or its run of records, built */
    owners o = {0}; /* the shards as rank 0 counts them (owners_open: 0 when their offsets are unreadable) */
    if (s) owners_open(&o, s);
    if (!bad && lf_share_open(part, s, shard, o.n_off, qb, (size_t)h->nreq, h->fp, n, NULL, cnt, &err)) bad = 1;
    free(o.off);
    if (bad && !failed) fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, cs_mpi_size(), err.msg);
    free(cnt);
    free(shard);
    free(qb);
    return bad ? -1 : 0;
}

int lf_round(const round_head *h, const lf_share *part, int failed) {
    const int64_t nd = h->nq, m = nd * h->k;
    uint8_t *desc = malloc((size_t)(nd > 0 ? nd : 1) * 128);
    char *buf = malloc((size_t)lf_reply_size(m));
    float *dist = malloc(sizeof *dist * (size_t)(m > 0 ? m : 1)); /* aligned */
    int64_t *gid = malloc(sizeof *gid * (size_t)(m > 0 ? m : 1));
    if (!desc || !buf || !dist || !gid) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld query descriptors\n",
                cs_mpi_rank(), cs_mpi_size(), (long long)nd);
        exit(CLI_FAIL);
    }
    cs_mpi_bcast(desc, nd * 128);
    cs_err err = {0};
    reply_head rh = {-1, 0};
    if (!failed && part->n && h->k == CS_LF_NN) {
        if (lf_share_knn(part, nd, desc, dist, gid, &err))
            fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", cs_mpi_rank(), cs_mpi_size(), err.msg);
        else {
            rh = (reply_head){0, m};
            memcpy(buf + sizeof rh, dist, sizeof *dist * (size_t)m);
            memcpy(buf + sizeof rh + sizeof *dist * (size_t)m, gid, sizeof *gid * (size_t)m);
        }
    }
    memcpy(buf, &rh, sizeof rh);
    send_reply(buf, rh.status ? (int64_t)sizeof rh : lf_reply_size(m), (int)h->timed);
    free(desc);
    free(buf);
    free(dist);
    free(gid);
    return rh.status ? -1 : 0;
}

/* ---- `index add` into a sharded store: the vote index and its parts ---- */
