/* cmd_mpi_analyze.c — `analyze` under mpirun (cli/cli_mpi.h). Shard k of a
 * sharded store belongs to rank k mod N (ids past offset k); the rows of an
 * unsharded one go in N contiguous runs. For each batch of generations
 * (analyze/match.h: cs_an_match_batch_sv) rank 0 broadcasts the
 * generations, every rank scans only the references it owns (tiled L2,
 * layout, PDQ, pHash, dHash: per-shard top-k lists under global rows) and
 * rank 0 merges the lists by (score, row), which is the whole index's list
 * exactly (test_tl2_shard.c). Then rank 0 sends each rank the candidates
 * whose reference it owns (a scatter), each verifies them (cs_an_verify,
 * per pair: the same floats wherever it runs), and rank 0 gathers them in
 * list order and applies the ratio test, the rivals and the verdicts. A
 * rank > 0 of a sharded store loads only its shards' thumbnails and hashes
 * (opened directly, not the union), so its memory is its shards'. Rank 0
 * keeps the whole index's thumbnails and hashes (the rivals, the reports)
 * but not its prepared floats (o->match_scans: 4x the thumbnails), only
 * those of its own share. The embedding search (cs_analyze_opts.
 * embed_search, before the batches' matches) is spread the same way: each
 * rank searches the column rows of the references it owns
 * (analyze/an_mpi.h) and rank 0 merges the lists by (score, column row),
 * the whole column's lists bit for bit. The local-feature search, the
 * cliques and every write stay on rank 0 (docs/SCALE.md). CS_MPI_DEBUG=1
 * prints each rank's resident and scanned reference counts, peak memory and
 * embedding rows held and searched to stderr; CS_MPI_TIMING=1 splits the
 * merge's time from the wait for the slowest rank (a barrier). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "analyze/an_mpi.h"
#include "analyze/match.h"
#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/fs.h"
#include "core/shard.h"
#include "core/sorted.h"
#include "index/hamming.h"
#include "index/refs.h"

enum { RULE_SLOT = 32, MAX_RULES = 128 };
enum { R_STOP = 0, R_INIT, R_SCAN, R_VERIFY, R_EMBED };

/* Who owns a row: shard k's references (ids past off[k]) on rank k mod
 * size; without shards, contiguous runs of rows. */
typedef struct {
    long long *off;
    int n_off;
} owners;

static void owners_open(owners *o, cs_store *s) {
    int n = cs_store_shards(s);
    o->off = n > 0 ? calloc((size_t)n, sizeof *o->off) : NULL;
    o->n_off = o->off && !cs_store_shard_offsets(s, o->off, n) ? n : 0;
}

/* row of the whole index (ids[n], ascending) */
static int owner_of(const owners *o, const int64_t *ids, int64_t n, int32_t row) {
    int size = cs_mpi_size();
    if (row < 0 || row >= n) return 0; /* never a candidate (match.c skips them) */
    if (!o->n_off) return (int)((int64_t)row * size / n);
    int k = 0;
    while (k + 1 < o->n_off && o->off[k + 1] < ids[row]) k++;
    return k % size;
}

/* Who owns reference id (a row of an embedding column): its row's owner;
 * an id the index does not hold goes with its shard (rank 0 unsharded):
 * its hits are dropped after the merge, as one process drops them, but they
 * still take their places in the lists. */
static int owner_of_id(const owners *o, const int64_t *ids, int64_t n, int64_t id) {
    int64_t g = cs_sorted_find(ids, 8, n, id);
    if (g >= 0) return owner_of(o, ids, n, (int32_t)g);
    if (!o->n_off) return 0;
    int k = 0;
    while (k + 1 < o->n_off && o->off[k + 1] < id) k++;
    return k % cs_mpi_size();
}

typedef struct {
    const owners *o;
    const int64_t *ids;
    int64_t n;
} id_owner;

static int id_owner_fn(void *ctx, int64_t id) {
    const id_owner *x = ctx;
    return owner_of_id(x->o, x->ids, x->n, id);
}

/* This rank's part of the embedding column of store s (analyze/an_mpi.h). */
static int emb_open(cs_an_emb_part *p, cs_store *s, const char *column, int dim, id_owner *io, cs_err *err) {
    /* raw: a q8 column's rows of this rank stay 8-bit (not the whole column decoded) */
    return cs_an_emb_part_open_store(p, s, column, dim, cs_mpi_rank(), id_owner_fn, io, err);
}

/* What a rank scans and verifies: r (the whole index, or only its shards'
 * references), r's rows as rows of the whole index (grow, ascending; NULL:
 * the same) and the runs of r's rows it owns. */
typedef struct {
    const cs_an_refs *r;
    int32_t *grow;
    int64_t *run; /* [2 * nrun]: lo, hi */
    int nrun;
    int64_t scanned;
} side;

static void side_free(side *d) {
    free(d->grow);
    free(d->run);
    memset(d, 0, sizeof *d);
}

/* The runs of rows of the whole index r (ids[n]) this rank owns. */
static int side_runs(side *d, const owners *o, const int64_t *ids, int64_t n) {
    int rank = cs_mpi_rank();
    d->nrun = 0;
    d->scanned = 0;
    for (int64_t i = 0; i < n;) {
        if (owner_of(o, ids, n, (int32_t)i) != rank) {
            i++;
            continue;
        }
        int64_t j = i;
        while (j < n && owner_of(o, ids, n, (int32_t)j) == rank) j++;
        int64_t *t = realloc(d->run, sizeof *t * 2 * (size_t)(d->nrun + 1));
        if (!t) return -1;
        d->run = t;
        d->run[2 * d->nrun] = i;
        d->run[2 * d->nrun + 1] = j;
        d->nrun++;
        d->scanned += j - i;
        i = j;
    }
    return 0;
}

/* r's row of a row of the whole index, -1 when r does not hold it */
static int64_t local_row(const side *d, int32_t row) {
    if (!d->grow) return row >= 0 && row < d->r->n ? row : -1;
    return cs_sorted_find(d->grow, 4, d->r->n, row);
}

/* This rank's share of a batch's scans, into raw (cleared here). */
static int side_scan(const side *d, const cs_an_query *q, int64_t nq, int k, int what, int threads, cs_an_hit *raw,
                     cs_err *err) {
    cs_an_raw_clear(raw, nq, k);
    for (int i = 0; i < d->nrun; i++)
        if (cs_an_scan_rows(d->r, d->run[2 * i], d->run[2 * i + 1], d->grow, q, nq, k, what, threads, raw, err))
            return -1;
    return 0;
}

/* Rank 0's share as references of their own (sub), copied from the whole
 * index r (which rank 0 keeps without prepared floats: o->match_scans):
 * thumbnails, ids and hashes of its runs' rows, prepared for the scans;
 * d then scans and verifies sub's rows, one run. */
static int side_copy(side *d, cs_an_refs *sub, const cs_an_refs *r, const cs_an_settings *s, int what, cs_err *err) {
    enum { TP = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 };
    int64_t n = d->scanned, m = 0, j = 0;
    size_t cap = (size_t)(n > 0 ? n : 1);
    uint8_t *px = r->has_thumbs ? malloc(cap * TP) : NULL;
    int64_t *ids = malloc(cap * sizeof *ids), *hid = malloc(cap * sizeof *hid);
    cs_hashes *hh = calloc(cap, sizeof *hh);
    d->grow = malloc(cap * sizeof *d->grow);
    int rc = -1;
    if ((r->has_thumbs && !px) || !ids || !hid || !hh || !d->grow) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for rank 0's %lld references", (long long)n);
        goto out;
    }
    for (int i = 0; i < d->nrun; i++)
        for (int64_t row = d->run[2 * i]; row < d->run[2 * i + 1]; row++, j++) {
            if (px) memcpy(px + j * TP, r->thumbs + row * TP, TP);
            ids[j] = r->ids[row];
            d->grow[j] = (int32_t)row;
            if (!r->has_hashes || r->pdq_q[row] < 0) continue;
            memcpy(hh[m].pdq, r->pdq + row * 4, 32);
            hh[m].pdq_quality = r->pdq_q[row];
            hh[m].phash = r->phash[row];
            hh[m].dhash = r->dhash[row];
            hid[m++] = r->ids[row];
        }
    cs_an_settings s2 = *s;
    if (!(what & CS_AN_SCAN_PIX)) s2.full_scan_max = 0; /* no prepared floats: the index is not scanned */
    if (cs_an_refs_build_take(sub, n, ids, &px, &s2, err)) goto out;
    if (r->has_hashes && cs_an_refs_set_hashes(sub, hid, hh, m, err)) goto out;
    d->r = sub;
    if (d->nrun) {
        d->run[0] = 0;
        d->run[1] = n;
        d->nrun = 1;
    }
    rc = 0;
out:
    free(px);
    free(ids);
    free(hid);
    free(hh);
    return rc;
}

/* A result's rule fields point at the sender's string literals: they travel
 * as names and come back as pointers into this table (rank 0's). */
struct cli_mpi_an {
    char *rules[MAX_RULES];
    int n_rules;
    int64_t *lens; /* [size] the gather's reply lengths */
    int64_t *done; /* [size] candidates each rank verified */
    owners own;
    const cs_an_refs *r; /* the whole index (rank 0's) */
    const cs_an_settings *s;
    const cs_analyze_opts *o;
    cs_store *store;
    int threads;
    int inited, q_sent, timed;
    cs_an_emb_part emb; /* this rank's rows of the embedding column (opened at the first search) */
    int64_t n_refs; /* the whole index's (r is gone by the end) */
    side me;
    cs_an_refs mine; /* rank 0's share of the references (side_copy) */
    int64_t batches, sent, received; /* bytes broadcast and gathered */
    double t_batch, t_scan, t_gather, t_wait, t_merge;
    double t_emb, t_emb_wait, t_emb_gather, t_emb_merge; /* the embedding searches: all, the wait for the
                                                            other ranks (CS_MPI_TIMING=1), the gather, the merge */
    int64_t n_emb; /* queries searched */
    long long th_rss, th_size; /* CS_MPI_DEBUG=1: the thumbnail cache's most resident KiB after a batch, its size */
    /* a sharded store: the whole index's thumbnails as a reserved mapping (load_thumbs), untouched but for
     * each batch's candidates, written in by verify_all (fetched from their owners) and dropped at the next */
    uint8_t *range;
    size_t range_len;
    int from_shards; /* rank 0's share loaded from its shards (c->mine), not copied from the whole index */
    int64_t th_rows, th_rows_max; /* thumbnails written in: all batches, the most in one */
};

static const char *intern(cli_mpi_an *c, const char *slot) {
    if (!slot[0]) return NULL;
    const char *name = slot + 1;
    for (int i = 0; i < c->n_rules; i++)
        if (!strcmp(c->rules[i], name)) return c->rules[i];
    if (c->n_rules == MAX_RULES) return "";
    char *d = strdup(name);
    if (!d) return "";
    c->rules[c->n_rules++] = d;
    return d;
}

static void put_rule(char *slot, const char *rule) {
    memset(slot, 0, RULE_SLOT);
    if (!rule) return;
    slot[0] = 1;
    snprintf(slot + 1, RULE_SLOT - 1, "%s", rule);
}

/* One candidate to verify, as broadcast. */
typedef struct {
    int32_t qi, row, gen_q, align;
    float emb_cos;
    cs_lfv_match lf;
} vreq;

/* A round: what it is, then INIT: n references, the scans (what) and their
 * ids follow; SCAN: nq generations follow, k hits a list; VERIFY: nreq
 * candidates follow, the nq generations before them when with_q; EMBED:
 * nq embeddings of column col follow (what floats each), k hits a list. */
typedef struct {
    int64_t kind, nq, nreq, k, what, with_q;
    int64_t timed; /* SCAN: a barrier before the gather (rank 0's CS_MPI_TIMING=1) */
    char col[16];  /* EMBED: the column */
} round_head;

/* One rank's reply: status, count, then count items. */
typedef struct {
    int64_t status, n;
} reply_head;

enum { ITEM = sizeof(cs_an_cand) + RULE_SLOT };

static int64_t reply_size(int64_t n) { return (int64_t)sizeof(reply_head) + n * ITEM; }

/* The rank's share of a round: reqs of generation i are req[first[i] ..
 * first[i + 1]); cand[j] receives req j's verification where loc[j] >= 0
 * (r's row of the candidate). */
typedef struct {
    const cs_an_refs *r;
    const cs_an_settings *s;
    const cs_an_query *q;
    const vreq *req;
    const int64_t *first, *loc;
    cs_an_cand *cand;
} share;

static void verify_gen(void *vctx, int64_t i, int thread) {
    (void)thread;
    share *x = vctx;
    const int D = cs_tl2_dim(&x->r->cfg);
    float *qp = NULL, q16[2 * CS_AN_Q16];
    for (int64_t j = x->first[i]; j < x->first[i + 1]; j++) {
        if (x->loc[j] < 0) continue;
        if (!qp) {
            if (!(qp = malloc(sizeof(float) * 2 * (size_t)D))) return; /* the caller sees row -1 */
            cs_an_query_prep(qp, qp + D, q16, x->q + i, &x->r->cfg);
        }
        cs_an_cand *c = &x->cand[j];
        memset(c, 0, sizeof *c);
        c->row = (int32_t)x->loc[j];
        c->emb_cos = x->req[j].emb_cos;
        c->lf = x->req[j].lf;
        cs_an_verify(c, x->r, x->req[j].align, qp, qp + D, q16, x->q + i, x->req[j].gen_q, x->s);
        c->row = x->req[j].row; /* the whole index's row again */
    }
    free(qp);
}

/* Verifies the reqs this rank owns (mine[j]) into cand (indexed like req);
 * returns how many, -1 when out of memory or a candidate it does not hold. */
static int64_t verify_mine(const side *d, const uint8_t *mine, const cs_an_settings *s, int threads,
                           const cs_an_query *q, int64_t nq, const vreq *req, int64_t nreq, cs_an_cand *cand) {
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(nq + 1));
    int64_t *loc = malloc(sizeof(int64_t) * (size_t)(nreq > 0 ? nreq : 1));
    if (!first || !loc) {
        free(first);
        free(loc);
        return -1;
    }
    int64_t n = 0, j = 0;
    for (int64_t i = 0; i <= nq; i++) {
        while (j < nreq && req[j].qi < i) j++;
        first[i] = j;
    }
    for (j = 0; j < nreq; j++) {
        loc[j] = mine[j] ? local_row(d, req[j].row) : -1;
        if (mine[j] && loc[j] < 0) n = INT64_MIN; /* owned but not held: the shards and the index disagree */
        if (mine[j]) cand[j].row = -1;
        n += mine[j];
    }
    share x = {d->r, s, q, req, first, loc, cand};
    if (n >= 0) cs_parallel_for(threads, nq, verify_gen, &x);
    for (j = 0; j < nreq; j++)
        if (mine[j] && cand[j].row < 0) n = -1;
    free(first);
    free(loc);
    return n < 0 ? -1 : n;
}

/* Rank 0's scans (cs_an_scan_fn): the generations to every rank, its own
 * share here into raw, the others' lists gathered and merged into it. */
static int scan_all(void *ctx, const cs_an_query *q, int64_t nq, int k, int what, cs_an_hit *raw, cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    c->timed = getenv("CS_MPI_TIMING") && !strcmp(getenv("CS_MPI_TIMING"), "1");
    round_head h = {R_SCAN, nq, 0, k, what, 1, c->timed, {0}};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
    c->q_sent = 1;
    c->sent += (int64_t)sizeof h + nq * (int64_t)sizeof *q;
    double t0 = cs_now_s();
    cs_err e0 = {0};
    int rc0 = side_scan(&c->me, q, nq, k, what, c->threads, raw, &e0);
    double t1 = cs_now_s();
    if (c->timed) cs_mpi_barrier(); /* every rank's scan done: what follows is the merge alone */
    double t2 = cs_now_s();
    reply_head h0 = {rc0 ? -1 : 0, 0};
    void *all = NULL;
    int rc = 0;
    if (cs_mpi_gatherv(&h0, sizeof h0, &all, c->lens))
        rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering the scans");
    double t3 = cs_now_s();
    if (!rc && rc0) rc = cs_fail(err, e0.code ? e0.code : CS_ENOMEM, "%s", e0.msg);
    const int64_t want = cs_an_raw_len(nq, k);
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int r = 1; r < size && !rc; p += c->lens[r], r++) {
        reply_head rh;
        memcpy(&rh, p, sizeof rh);
        if (rh.status || rh.n != want || c->lens[r] != (int64_t)sizeof rh + want * (int64_t)sizeof(cs_an_hit)) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not scan its references (its message above)",
                         r, size);
            break;
        }
        c->received += c->lens[r];
        cs_an_hit *lists = malloc(sizeof *lists * (size_t)want); /* aligned for the merge */
        if (!lists) {
            rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory merging the scans");
            break;
        }
        memcpy(lists, p + sizeof rh, sizeof *lists * (size_t)want);
        cs_an_raw_merge(raw, lists, want / k, k);
        free(lists);
    }
    free(all);
    double t4 = cs_now_s();
    c->t_scan += t1 - t0;
    c->t_wait += t2 - t1;
    c->t_gather += t3 - t2;
    c->t_merge += t4 - t3;
    return rc;
}

enum { TPX = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 }; /* a thumbnail's bytes */

static int cmp_row(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The distinct rows (ascending) of the reqs rank k verifies (who[j] == k;
 * who NULL: all of them), into rows[nreq]; returns how many. Both ends of a
 * VERIFY round compute it, so the thumbnails travel without their rows. */
static int64_t cand_rows(const vreq *req, const int *who, int64_t nreq, int k, int64_t n, int32_t *rows) {
    int64_t m = 0;
    for (int64_t j = 0; j < nreq; j++)
        if ((!who || who[j] == k) && req[j].row >= 0 && req[j].row < n) rows[m++] = req[j].row;
    qsort(rows, (size_t)m, sizeof *rows, cmp_row);
    int64_t d = 0;
    for (int64_t j = 0; j < m; j++)
        if (!d || rows[j] != rows[d - 1]) rows[d++] = rows[j];
    return d;
}

/* Rank 0's verifier (cs_an_verify_fn): the round to every rank, its own
 * candidates here, the others' gathered into place. With a reserved range
 * (c->range: a sharded store), each rank also sends the thumbnails of the
 * candidates it verified, and rank 0 writes them and its own into the range
 * after dropping the last batch's: the rivals (cs_an_mark_ambiguous) and
 * the later stages of the batch read only its candidates' rows. */
static int verify_all(void *ctx, const cs_an_query *q, int64_t nq, const cs_an_result *res, cs_an_pending *pend,
                      cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    const int fill = c->range && c->r->thumbs == c->range;
    round_head h = {R_VERIFY, nq, 0, 0, fill, !c->q_sent, 0, {0}};
    c->q_sent = 0;
    for (int64_t i = 0; i < nq; i++) h.nreq += pend[i].nc;
    size_t m = (size_t)(h.nreq > 0 ? h.nreq : 1);
    vreq *req = calloc(m, sizeof *req);
    cs_an_cand *cand = malloc(sizeof *cand * m);
    int *who = malloc(sizeof *who * m); /* each candidate's owner */
    uint8_t *mine = malloc(m);
    int32_t *trow = malloc(sizeof *trow * m); /* the thumbnails' rows, one rank's */
    if (!req || !cand || !who || !mine || !trow) { /* the others wait for a round: stop the job */
        fprintf(stderr, "copyscope: analyze: out of memory for %lld candidates\n", (long long)h.nreq);
        exit(CLI_FAIL);
    }
    for (int64_t i = 0, j = 0; i < nq; i++)
        for (int n = 0; n < pend[i].nc; n++, j++)
            req[j] = (vreq){(int32_t)i, pend[i].cand[n].row, res[i].gen_pdq_quality, pend[i].align[n],
                            pend[i].cand[n].emb_cos, pend[i].cand[n].lf};
    for (int64_t j = 0; j < h.nreq; j++) {
        who[j] = owner_of(&c->own, c->r->ids, c->r->n, req[j].row);
        mine[j] = req[j].row >= 0 && req[j].row < c->r->n && who[j] == 0;
    }
    /* each rank > 0 gets only its candidates, in list order (a scatter) */
    int64_t *pos = calloc((size_t)size + 1, sizeof *pos);
    vreq *out = malloc(sizeof *out * m);
    if (!pos || !out) {
        fprintf(stderr, "copyscope: analyze: out of memory for %lld candidates\n", (long long)h.nreq);
        exit(CLI_FAIL);
    }
    for (int64_t j = 0; j < h.nreq; j++)
        if (who[j] > 0) pos[who[j] + 1]++;
    for (int k = 0; k < size; k++) {
        c->lens[k] = pos[k + 1] * (int64_t)sizeof *out;
        pos[k + 1] += pos[k];
    }
    for (int64_t j = 0; j < h.nreq; j++)
        if (who[j] > 0) out[pos[who[j]]++] = req[j];
    cs_mpi_bcast(&h, sizeof h);
    if (h.with_q) cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
    void *none = NULL;
    int64_t got = 0, scattered = 0;
    for (int k = 0; k < size; k++) scattered += c->lens[k];
    int sc = cs_mpi_scatterv(out, c->lens, &none, &got);
    free(none);
    free(out);
    free(pos);
    c->batches++;
    c->sent += (int64_t)sizeof h + (h.with_q ? nq * (int64_t)sizeof *q : 0) + scattered;
    int64_t n0 = verify_mine(&c->me, mine, c->s, c->threads, q, nq, req, h.nreq, cand);
    reply_head h0 = {n0 < 0 ? -1 : 0, 0};
    void *all = NULL;
    int rc = cs_mpi_gatherv(&h0, sizeof h0, &all, c->lens) ? cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering the verifications") : 0;
    if (!rc && n0 < 0) rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory verifying candidates");
    if (!rc && sc) rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory scattering the candidates");
    if (!rc) c->done[0] += n0;
    int64_t nth = 0;
    if (!rc && fill) { /* the last batch's thumbnails dropped (read as zeros, never read again), rank 0's own in */
        madvise(c->range, c->range_len, MADV_DONTNEED);
        int64_t d = cand_rows(req, who, h.nreq, 0, c->r->n, trow);
        for (int64_t t = 0; t < d; t++) {
            int64_t loc = local_row(&c->me, trow[t]);
            if (loc < 0) {
                rc = cs_fail(err, CS_EINTERNAL, "analyze: rank 0 does not hold its candidate's row %d", (int)trow[t]);
                break;
            }
            memcpy(c->range + (size_t)trow[t] * TPX, c->mine.thumbs + (size_t)loc * TPX, TPX);
        }
        nth += d;
    }
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int k = 1; k < size && !rc; p += c->lens[k], k++) {
        reply_head rh;
        memcpy(&rh, p, sizeof rh);
        int64_t want = 0, d = fill ? cand_rows(req, who, h.nreq, k, c->r->n, trow) : 0;
        for (int64_t j = 0; j < h.nreq; j++) want += who[j] == k;
        if (rh.status || rh.n != want || c->lens[k] != reply_size(rh.n) + d * TPX) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not verify its candidates (its message above)",
                         k, size);
            break;
        }
        c->received += c->lens[k];
        c->done[k] += rh.n;
        const char *it = p + sizeof rh;
        for (int64_t j = 0; j < h.nreq; j++) {
            if (who[j] != k) continue;
            memcpy(&cand[j], it, sizeof cand[j]);
            cand[j].rule = intern(c, it + sizeof cand[j]);
            it += ITEM;
        }
        for (int64_t t = 0; t < d; t++, it += TPX) memcpy(c->range + (size_t)trow[t] * TPX, it, TPX);
        nth += d;
    }
    c->th_rows += nth;
    if (nth > c->th_rows_max) c->th_rows_max = nth;
    for (int64_t i = 0, j = 0; !rc && i < nq; i++)
        for (int n = 0; n < pend[i].nc; n++, j++) pend[i].cand[n] = cand[j];
    free(all);
    free(req);
    free(cand);
    free(who);
    free(mine);
    free(trow);
    return rc;
}

static int debug_on(void);
static long long thumbs_rss_kib(long long *size, const void *range);
static int load_shards(cs_an_refs *r, int32_t **grow, const char *db, const owners *o, const int64_t *ids, int64_t n,
                       int what, const cs_an_settings *set, cs_err *err);

/* The first round (a match or an embedding search): every rank loads the
 * references it owns (the whole index's ids broadcast). */
static int init_ranks(cli_mpi_an *c, const cs_an_refs *r, cs_err *err) {
    if (c->inited) return 0;
    const cs_an_settings *s = c->s ? c->s : &c->o->set;
    c->r = r;
    c->n_refs = r->n;
    c->inited = 1;
    round_head h = {R_INIT, r->n, 0, 0, cs_an_scan_what(r, s), 0, 0, {0}};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(r->ids, r->n * (int64_t)sizeof *r->ids);
    c->sent += (int64_t)sizeof h + r->n * (int64_t)sizeof *r->ids;
    c->me.r = r;
    /* on failure the job stops at the first round (the others wait in it) */
    if (side_runs(&c->me, &c->own, r->ids, r->n)) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    if (!c->range || r->thumbs != c->range) return side_copy(&c->me, &c->mine, r, s, (int)h.what, err);
    /* r's pixels are not here: rank 0 reads its own shards as the other ranks read theirs */
    if (load_shards(&c->mine, &c->me.grow, cs_store_path(c->store), &c->own, r->ids, r->n, (int)h.what, s, err))
        return -1;
    if (c->mine.n != c->me.scanned)
        return cs_fail(err, CS_EINTERNAL, "analyze: %lld references in rank 0's shards, %lld in the index's rows",
                       (long long)c->mine.n, (long long)c->me.scanned);
    c->me.r = &c->mine;
    c->from_shards = 1;
    if (c->me.nrun) { /* its references are one run of mine's rows */
        c->me.run[0] = 0;
        c->me.run[1] = c->mine.n;
        c->me.nrun = 1;
    }
    return 0;
}

/* A rank's lists of an EMBED round: status, nq * k, then the scores and the
 * column rows. */
static int64_t emb_reply_size(int64_t m) {
    return (int64_t)sizeof(reply_head) + m * (int64_t)(sizeof(float) + sizeof(int64_t));
}

/* One embedding search (cs_analyze_opts.embed_search): the queries to every
 * rank, this rank's rows searched here, the others' lists gathered and
 * merged by (score, column row), which gives the whole column's lists
 * (cli/cmd_mpi_embed.c); then the rows' ids. */
static int embed_all(void *ctx, const cs_an_refs *r, const char *column, const float *q, int nq, int dim, int k,
                     int64_t *ids, float *scores, cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    double t0 = cs_now_s();
    if (strlen(column) >= sizeof ((round_head *)0)->col)
        return cs_fail(err, CS_EUSAGE, "analyze: embedding column name too long: %s", column);
    if (init_ranks(c, r, err)) return -1;
    int timed = getenv("CS_MPI_TIMING") && !strcmp(getenv("CS_MPI_TIMING"), "1");
    round_head h = {R_EMBED, nq, 0, k, dim, 0, timed, {0}};
    snprintf(h.col, sizeof h.col, "%s", column);
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast((void *)q, (int64_t)nq * dim * (int64_t)sizeof *q);
    c->sent += (int64_t)sizeof h + (int64_t)nq * dim * (int64_t)sizeof *q;
    const int64_t m = (int64_t)nq * k;
    int64_t *rows = malloc(sizeof *rows * (size_t)(m > 0 ? m : 1));
    float *ls = malloc(sizeof *ls * (size_t)(m > 0 ? m : 1));
    int64_t *lr = malloc(sizeof *lr * (size_t)(m > 0 ? m : 1));
    cs_err e0 = {0};
    id_owner io = {&c->own, r->ids, r->n};
    int rc0 = !rows || !ls || !lr ? cs_fail(&e0, CS_ENOMEM, "analyze: out of memory") : 0;
    if (!rc0 && !c->emb.open && emb_open(&c->emb, c->store, column, dim, &io, &e0)) rc0 = -1;
    int threads = c->o->threads > 0 ? c->o->threads : cs_threads();
    if (!rc0 && cs_an_emb_part_search(&c->emb, q, nq, k, threads, scores, rows, &e0)) rc0 = -1;
    double t1 = cs_now_s();
    if (timed) cs_mpi_barrier(); /* every rank's search done: what follows is the gather and merge alone */
    double tw = cs_now_s();
    reply_head h0 = {rc0 ? -1 : 0, 0};
    void *all = NULL;
    int rc = 0;
    if (cs_mpi_gatherv(&h0, sizeof h0, &all, c->lens))
        rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering the embedding lists");
    double t2 = cs_now_s();
    if (!rc && rc0) rc = cs_fail(err, e0.code ? e0.code : CS_ENOMEM, "%s", e0.msg);
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int rk = 1; rk < size && !rc; p += c->lens[rk], rk++) {
        reply_head rh;
        memcpy(&rh, p, sizeof rh);
        if (rh.status || rh.n != m || c->lens[rk] != emb_reply_size(m)) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not search its embedding rows (its message "
                         "above)", rk, size);
            break;
        }
        c->received += c->lens[rk];
        memcpy(ls, p + sizeof rh, sizeof *ls * (size_t)m); /* aligned copies */
        memcpy(lr, p + sizeof rh + sizeof *ls * (size_t)m, sizeof *lr * (size_t)m);
        cs_an_emb_part_merge(scores, rows, ls, lr, nq, k);
    }
    for (int64_t i = 0; !rc && i < m; i++) ids[i] = rows[i] >= 0 ? c->emb.vs.ids[rows[i]] : -1;
    free(all);
    free(rows);
    free(ls);
    free(lr);
    double t3 = cs_now_s();
    c->t_emb += t3 - t0;
    c->t_emb_wait += tw - t1;
    c->t_emb_gather += t2 - tw;
    c->t_emb_merge += t3 - t2;
    c->n_emb += nq;
    return rc;
}

/* Rank 0's matcher: the references' ids to every rank once (each loads its
 * share), then each batch scanned by scan_all and verified by verify_all. */
static int mpi_match(void *ctx, const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s,
                     int threads, cs_an_result *res, cs_err *err) {
    cli_mpi_an *c = ctx;
    if (c->inited && r != c->r) /* not the index the ranks loaded: match here (the same results) */
        return cs_an_match_batch(r, q, nq, s, threads, res, err);
    double t0 = cs_now_s();
    c->s = s;
    c->threads = threads > 0 ? threads : cs_threads();
    if (init_ranks(c, r, err)) return -1;
    int rc = cs_an_match_batch_sv(r, q, nq, s, threads, res, scan_all, c, verify_all, c, err);
    c->t_batch += cs_now_s() - t0;
    long long size = 0, rss = debug_on() ? thumbs_rss_kib(&size, c->range) : -1; /* (unmapped before the end) */
    if (rss > c->th_rss) c->th_rss = rss, c->th_size = size;
    return rc;
}

/* Rank 0's thumbnails (cs_analyze_opts.load_thumbs). A sharded store: the
 * rows without pixels, and for the pixels a reserved mapping of the whole
 * index's size that costs nothing until written (MAP_NORESERVE: address
 * space, no memory, no swap): verify_all writes each batch's candidates in
 * (from their owners) and drops the last batch's. Fetching from the owners
 * rather than reading the shards here: the owners hold their thumbnails
 * already (they verify with them), a batch's candidates are a few per
 * generation (12 KiB each, at most CS_AN_MAXCAND a generation) whatever the
 * index's size, and no rank, rank 0 included, ever writes or maps a
 * whole-index cache (7 TB at 600 M references). The range is address space
 * only: 12 KiB a reference, 7 TB at 600 M, within x86-64's 128 TiB. An
 * unsharded store: every rank reads the whole index as before. */
static int load_thumbs(void *ctx, cs_store *s, cs_ref_thumbs *th, cs_err *err) {
    cli_mpi_an *c = ctx;
    if (!c->own.n_off) return cs_refs_load_thumbs(s, th, err);
    if (cs_refs_load_rows(s, th, err)) return -1;
    if (th->n == 0) return 0;
    size_t len = TPX * (size_t)th->n;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { /* e.g. strict overcommit (vm.overcommit_memory = 2 ignores MAP_NORESERVE): as before */
        cs_ref_thumbs_free(th);
        return cs_refs_load_thumbs(s, th, err);
    }
    th->map = m, th->rgb = m, th->map_len = len; /* unmapped by cs_ref_thumbs_free */
    c->range = m, c->range_len = len;
    return 0;
}

cli_mpi_an *cli_mpi_analyze_begin(cs_analyze_opts *o, cs_store *s) {
    if (cs_mpi_size() == 1) return NULL;
    cli_mpi_an *c = calloc(1, sizeof *c);
    if (c) c->lens = calloc((size_t)cs_mpi_size(), sizeof *c->lens);
    if (c) c->done = calloc((size_t)cs_mpi_size(), sizeof *c->done);
    if (!c || !c->lens || !c->done) { /* rank 0 then matches everything itself: the same results */
        if (c) free(c->lens);
        free(c);
        return NULL;
    }
    owners_open(&c->own, s);
    c->o = o;
    c->store = s;
    o->embed_search = embed_all;
    o->match = mpi_match;
    o->match_ctx = c;
    o->match_batches = 1;
    o->match_scans = 1; /* rank 0 keeps the index without the prepared floats: side_copy */
    o->load_thumbs = load_thumbs;
    return c;
}

static long long peak_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = atoll(line + 6);
    if (f) fclose(f);
    return v;
}

/* The thumbnails cache's mappings (<db>.thumbs, index/refs.h): how much of
 * them is resident (KiB, -1: none mapped) and their size (*size). A mapped
 * thumbnail costs memory only once touched: this says how many were. */
static long long thumbs_rss_kib(long long *size, const void *range) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[4352];
    long long rss = -1, sz = 0;
    int in = 0;
    while (f && fgets(line, sizeof line, f)) {
        size_t l = strlen(line), h = strspn(line, "0123456789abcdef-");
        if (l && line[l - 1] == '\n') line[--l] = 0;
        if (h > 0 && line[h] == ' ') /* a mapping's header, "lo-hi perms offset dev inode path": the cache? */
            in = (l > 7 && !strcmp(line + l - 7, ".thumbs")) ||
                 (range && strtoull(line, NULL, 16) == (unsigned long long)(uintptr_t)range); /* rank 0's range */
        else if (in && !strncmp(line, "Size:", 5)) sz += atoll(line + 5);
        else if (in && !strncmp(line, "Rss:", 4)) rss = (rss < 0 ? 0 : rss) + atoll(line + 4);
    }
    if (f) fclose(f);
    *size = sz;
    return rss;
}

static int debug_on(void) { return getenv("CS_MPI_DEBUG") && !strcmp(getenv("CS_MPI_DEBUG"), "1"); }

/* CS_MPI_DEBUG=1: the references a rank holds and scans, its peak memory */
static void debug_line(int64_t held, int64_t scanned, int64_t total, const cs_an_emb_part *e, long long trss,
                       long long tsize) {
    if (debug_on())
        fprintf(stderr, "analyze: rank %d of %d: %lld references resident, %lld scanned, of %lld; peak %lld KiB; "
                "thumbnail cache %lld of %lld KiB resident; embedding rows %lld held, %lld searched, of %lld\n",
                cs_mpi_rank(), cs_mpi_size(), (long long)held, (long long)scanned, (long long)total, peak_kib(),
                trss > 0 ? trss : 0, tsize, (long long)e->held, (long long)e->owned,
                (long long)(e->open ? e->vs.n : 0));
    if (debug_on() && e->open) /* q8: the rows stay 8-bit (dim + 4 bytes), f32: 4 dim */
        fprintf(stderr, "analyze: rank %d of %d: embedding rows kept at %zu bytes a row\n", cs_mpi_rank(), cs_mpi_size(),
                e->q8 ? CS_VS_Q8_ROW(e->vs.dim) : sizeof(float) * (size_t)e->vs.dim);
}

void cli_mpi_analyze_end(cli_mpi_an *c, int quiet) {
    if (cs_mpi_size() == 1) return;
    round_head stop = {R_STOP, 0, 0, 0, 0, 0, 0, {0}}; /* the other ranks stop */
    cs_mpi_bcast(&stop, sizeof stop);
    if (c && c->inited) debug_line(c->from_shards ? c->mine.n : c->n_refs, c->me.scanned, c->n_refs, &c->emb, c->th_rss,
                                   c->th_size);
    if (c && c->inited && c->from_shards && debug_on()) /* what rank 0 held of the thumbnails: the candidates' */
        fprintf(stderr, "analyze: rank 0 of %d: candidates' thumbnails written in %lld, at most %lld in a batch; "
                "%lld KiB resident at most after a batch, of %lld KiB reserved\n", cs_mpi_size(),
                (long long)c->th_rows, (long long)c->th_rows_max, c->th_rss > 0 ? c->th_rss : 0, c->th_size);
    if (c && !quiet) { /* the balance of the cut, the traffic, the merge's share */
        printf("analyze: candidates verified per rank:");
        for (int r = 0; r < cs_mpi_size(); r++) printf(" %lld", (long long)c->done[r]);
        printf("\nanalyze: %lld batches, %lld bytes broadcast (the candidates scattered), %lld bytes gathered\n",
               (long long)c->batches, (long long)c->sent, (long long)c->received);
        if (c->timed)
            printf("analyze: batch time %.3f s: scans here %.3f s, wait for the other ranks %.3f s, gather of the "
                   "lists %.4f s + merge %.4f s (%.2f%%)\n",
                   c->t_batch, c->t_scan, c->t_wait, c->t_gather, c->t_merge,
                   c->t_batch > 0 ? 100 * (c->t_gather + c->t_merge) / c->t_batch : 0.0);
        else /* the gather then waits for the slowest rank's scan too */
            printf("analyze: batch time %.3f s: scans here %.3f s, wait for the other ranks and gather of the lists "
                   "%.4f s + merge %.4f s (%.2f%%; CS_MPI_TIMING=1 splits the wait)\n",
                   c->t_batch, c->t_scan, c->t_gather, c->t_merge,
                   c->t_batch > 0 ? 100 * (c->t_gather + c->t_merge) / c->t_batch : 0.0);
        if (c->n_emb) /* without CS_MPI_TIMING=1 the gather also waits for the slowest rank's search */
            printf("analyze: embedding search of %lld generations %.3f s: wait for the other ranks %.4f s, gather of "
                   "the lists %.4f s + merge %.4f s (%.2f%%)\n",
                   (long long)c->n_emb, c->t_emb, c->t_emb_wait, c->t_emb_gather, c->t_emb_merge,
                   c->t_emb > 0 ? 100 * (c->t_emb_gather + c->t_emb_merge) / c->t_emb : 0.0);
    }
    for (int i = 0; c && i < c->n_rules; i++) free(c->rules[i]);
    if (c) free(c->lens);
    if (c) free(c->done);
    if (c) free(c->own.off);
    if (c) side_free(&c->me);
    if (c) cs_an_refs_free(&c->mine);
    if (c) cs_an_emb_part_close(&c->emb);
    free(c);
}

/* ---- ranks > 0 ---- */


/* The references of this rank's shards (opened directly, not through the
 * manifest's union) that the whole index holds (ids[n]: rank 0's rows),
 * into r with their rows in the whole index (*grow). what: the scans,
 * hashes loaded only for them. */
static int load_shards(cs_an_refs *r, int32_t **grow, const char *db, const owners *o, const int64_t *ids, int64_t n,
                       int what, const cs_an_settings *set, cs_err *err) {
    enum { TP = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 };
    int rank = cs_mpi_rank(), size = cs_mpi_size(), rc = -1;
    int64_t cnt = 0, cap = 0, nh = 0, hcap = 0;
    uint8_t *px = NULL;
    int64_t *gid = NULL, *hid = NULL;
    int32_t *gr = NULL;
    cs_hashes *hh = NULL;
    *grow = NULL;
    for (int k = rank; k < o->n_off; k += size) {
        char *path = cs_shard_path(db, k, o->n_off);
        cs_store *ss = NULL;
        cs_ref_thumbs th = {0};
        cs_hash_db hdb = {0};
        int bad = !path || cs_store_open_readonly(&ss, path, err) || cs_refs_load_thumbs(ss, &th, err) ||
                  ((what & CS_AN_SCAN_HASH) && cs_hash_db_load(ss, &hdb, err));
        for (int64_t i = 0; !bad && i < th.n; i++) {
            int64_t g = cs_sorted_find(ids, 8, n, th.ids[i] + o->off[k]);
            if (g < 0) continue; /* not in the index (a duplicate of another shard's) */
            if (cnt == cap) {
                cap = cap ? 2 * cap : 1024;
                uint8_t *a = realloc(px, (size_t)cap * TP);
                int64_t *b = realloc(gid, sizeof *b * (size_t)cap);
                int32_t *c = realloc(gr, sizeof *c * (size_t)cap);
                px = a ? a : px;
                gid = b ? b : gid;
                gr = c ? c : gr;
                if (!a || !b || !c) bad = cs_fail(err, CS_ENOMEM, "analyze: out of memory for the shard's thumbnails");
                if (bad) break;
            }
            if (cnt && g <= gr[cnt - 1]) bad = cs_fail(err, CS_EINTERNAL, "%s: rows out of id order", path);
            if (bad) break;
            memcpy(px + cnt * TP, th.rgb + i * TP, TP);
            gid[cnt] = ids[g];
            gr[cnt++] = (int32_t)g;
        }
        for (int64_t i = 0; !bad && i < hdb.n; i++) {
            if (nh == hcap) {
                hcap = hcap ? 2 * hcap : 1024;
                cs_hashes *a = realloc(hh, sizeof *a * (size_t)hcap);
                int64_t *b = realloc(hid, sizeof *b * (size_t)hcap);
                hh = a ? a : hh;
                hid = b ? b : hid;
                if (!a || !b) bad = cs_fail(err, CS_ENOMEM, "analyze: out of memory for the shard's hashes");
                if (bad) break;
            }
            memcpy(hh[nh].pdq, hdb.pdq + i * 4, 32);
            hh[nh].pdq_quality = hdb.pdq_quality[i];
            hh[nh].phash = hdb.phash[i];
            hh[nh].dhash = hdb.dhash[i];
            hh[nh].ahash = hdb.ahash[i];
            hid[nh++] = hdb.ref_ids[i] + o->off[k];
        }
        cs_hash_db_free(&hdb);
        cs_ref_thumbs_free(&th);
        cs_store_close(ss);
        free(path);
        if (bad) goto out;
    }
    cs_an_settings s2 = *set;
    if (!(what & CS_AN_SCAN_PIX)) s2.full_scan_max = 0; /* the whole index is not scanned: no prepared floats */
    if (cs_an_refs_build_take(r, cnt, gid, &px, &s2, err)) goto out;
    if ((what & CS_AN_SCAN_HASH) && cs_an_refs_set_hashes(r, hid, hh, nh, err)) goto out;
    *grow = gr;
    gr = NULL;
    rc = 0;
out:
    free(px);
    free(gid);
    free(gr);
    free(hid);
    free(hh);
    return rc;
}

/* A rank > 0's EMBED round: the queries received, its rows searched (the
 * column opened at the first), its lists sent to rank 0; -1 when it could
 * not (its message printed, the failure sent). */
static int emb_round(const round_head *h, cs_store *s, cs_an_emb_part *e, const owners *own, const int64_t *ids,
                     int64_t n, int threads, int failed) {
    const int64_t m = h->nq * h->k, dim = h->what;
    float *q = malloc(sizeof *q * (size_t)(h->nq * dim > 0 ? h->nq * dim : 1));
    char *buf = malloc((size_t)emb_reply_size(m));
    if (!q || !buf) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld embeddings\n", cs_mpi_rank(),
                cs_mpi_size(), (long long)h->nq);
        exit(CLI_FAIL); /* the round must be received to go on: stop the job */
    }
    cs_mpi_bcast(q, h->nq * dim * (int64_t)sizeof *q);
    cs_err err = {0};
    reply_head rh = {-1, 0};
    float *sc = malloc(sizeof *sc * (size_t)(m > 0 ? m : 1)); /* aligned */
    int64_t *rows = malloc(sizeof *rows * (size_t)(m > 0 ? m : 1));
    id_owner io = {own, ids, n};
    if (!failed) {
        char col[sizeof h->col + 1];
        memcpy(col, h->col, sizeof h->col);
        col[sizeof h->col] = 0;
        int bad = !sc || !rows ? cs_fail(&err, CS_ENOMEM, "out of memory") : 0;
        if (!bad && !e->open && emb_open(e, s, col, (int)dim, &io, &err)) bad = 1;
        if (!bad && cs_an_emb_part_search(e, q, (int)h->nq, (int)h->k, threads, sc, rows, &err)) bad = 1;
        if (bad) fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", cs_mpi_rank(), cs_mpi_size(), err.msg);
        else {
            rh = (reply_head){0, m};
            memcpy(buf + sizeof rh, sc, sizeof *sc * (size_t)m);
            memcpy(buf + sizeof rh + sizeof *sc * (size_t)m, rows, sizeof *rows * (size_t)m);
        }
    }
    memcpy(buf, &rh, sizeof rh);
    if (h->timed) cs_mpi_barrier();
    void *none = NULL;
    int64_t dummy[1];
    cs_mpi_gatherv(buf, rh.status ? (int64_t)sizeof rh : emb_reply_size(m), &none, dummy);
    free(buf);
    free(q);
    free(sc);
    free(rows);
    return rh.status ? -1 : 0;
}

/* Ranks > 0: at INIT load the references this rank owns (a sharded store:
 * its shards only; else the whole index, scanning its run of rows), then
 * scan and verify its share of each round until rank 0 says stop. A rank
 * that cannot load answers every round with a failure, so rank 0 stops
 * with an error instead of waiting. */
int cli_mpi_analyze_worker(const char *db, const cs_analyze_opts *o) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), failed = 0;
    cs_err err = {0};
    cs_store *s = NULL;
    cs_an_matcher *m = NULL;
    cs_an_refs sub = {0};
    owners own = {0};
    side me = {0};
    cs_an_emb_part emb = {0};
    int64_t *ids = NULL, n = 0, held = 0;
    cs_an_query *q = NULL;
    if (cs_store_open_readonly(&s, db, &err)) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
        failed = 1;
    }
    if (s) owners_open(&own, s);
    int threads = o->threads > 0 ? o->threads : cs_threads();
    for (;;) {
        round_head h;
        cs_mpi_bcast(&h, sizeof h);
        if (h.kind == R_STOP) break;
        if (h.kind == R_INIT) {
            n = h.nq;
            if (!(ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1)))) {
                fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld ids\n", rank, size,
                        (long long)n);
                exit(CLI_FAIL);
            }
            cs_mpi_bcast(ids, n * (int64_t)sizeof *ids);
            if (failed) continue;
            if (side_runs(&me, &own, ids, n)) failed = cs_fail(&err, CS_ENOMEM, "out of memory");
            else if (own.n_off) { /* only its shards */
                if (load_shards(&sub, &me.grow, db, &own, ids, n, (int)h.what, &o->set, &err)) failed = 1;
                else if (sub.n != me.scanned)
                    failed = cs_fail(&err, CS_EINTERNAL, "%lld references in its shards, %lld in the index's rows",
                                     (long long)sub.n, (long long)me.scanned);
                me.r = &sub;
                if (me.nrun) { /* its references are one run of sub's rows */
                    me.run[0] = 0;
                    me.run[1] = sub.n;
                    me.nrun = 1;
                }
            } else if (cs_an_matcher_open(&m, s, o, &err)) /* the whole index, scanning its run */
                failed = 1;
            else if ((me.r = cs_an_matcher_refs(m))->n != n)
                failed = cs_fail(&err, CS_EINTERNAL, "%lld references, rank 0 has %lld", (long long)me.r->n,
                                 (long long)n);
            if (failed) fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
            held = me.r ? me.r->n : 0;
            continue;
        }
        if (h.kind == R_EMBED) {
            if (emb_round(&h, s, &emb, &own, ids, n, threads, failed)) failed = 1;
            continue;
        }
        if (h.kind == R_SCAN || h.with_q) {
            free(q);
            if (!(q = malloc((size_t)(h.nq > 0 ? h.nq : 1) * sizeof *q))) {
                fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld generations\n", rank, size,
                        (long long)h.nq);
                exit(CLI_FAIL); /* the round must be received to go on: stop the job (mpirun ends every rank) */
            }
            cs_mpi_bcast(q, h.nq * (int64_t)sizeof *q);
        }
        if (h.kind == R_SCAN) {
            int64_t want = cs_an_raw_len(h.nq, (int)h.k);
            char *buf = malloc(sizeof(reply_head) + sizeof(cs_an_hit) * (size_t)want);
            reply_head rh = {-1, 0};
            if (buf && !failed) {
                cs_an_hit *raw = malloc(sizeof *raw * (size_t)want); /* aligned */
                if (raw && !side_scan(&me, q, h.nq, (int)h.k, (int)h.what, threads, raw, &err)) {
                    rh = (reply_head){0, want};
                    memcpy(buf + sizeof rh, raw, sizeof *raw * (size_t)want);
                } else
                    fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size,
                            raw ? err.msg : "out of memory scanning");
                free(raw);
            }
            if (buf) memcpy(buf, &rh, sizeof rh);
            if (h.timed) cs_mpi_barrier();
            void *none = NULL;
            int64_t dummy[1];
            int sent = buf && !rh.status; /* the lists, or the failure alone */
            cs_mpi_gatherv(sent ? buf : (char *)&rh,
                           (int64_t)sizeof rh + (sent ? want * (int64_t)sizeof(cs_an_hit) : 0), &none, dummy);
            free(buf);
            failed |= rh.status != 0;
            continue;
        }
        /* R_VERIFY: this rank's candidates only */
        void *part = NULL;
        int64_t plen = 0;
        int sc = cs_mpi_scatterv(NULL, NULL, &part, &plen);
        vreq *req = part;
        int64_t nreq = plen / (int64_t)sizeof *req;
        cs_an_cand *cand = malloc((size_t)(nreq > 0 ? nreq : 1) * sizeof *cand);
        uint8_t *mine = malloc((size_t)(nreq > 0 ? nreq : 1));
        if (!cand || !mine || !q) {
            fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld candidates\n", rank, size,
                    (long long)nreq);
            exit(CLI_FAIL);
        }
        int theirs = 0; /* sent here but owned elsewhere: the cut disagrees with rank 0's */
        for (int64_t j = 0; j < nreq; j++) {
            mine[j] = owner_of(&own, ids, n, req[j].row) == rank;
            theirs += !mine[j];
        }
        int64_t nv = failed || sc || theirs ? -1 : verify_mine(&me, mine, &o->set, threads, q, h.nq, req, nreq, cand);
        /* h.what: rank 0 wants the thumbnails of the candidates' rows too (cand_rows' order) */
        int32_t *trow = h.what && nv >= 0 ? malloc(sizeof *trow * (size_t)(nreq > 0 ? nreq : 1)) : NULL;
        int64_t nd = trow ? cand_rows(req, NULL, nreq, rank, n, trow) : 0;
        if (h.what && nv >= 0 && (!trow || !me.r->has_thumbs)) nv = -1;
        int64_t blen = nv >= 0 ? reply_size(nv) + nd * TPX : 0;
        char *buf = nv >= 0 ? malloc((size_t)blen) : NULL;
        reply_head rh = {buf ? 0 : -1, buf ? nv : 0};
        if (buf) {
            memcpy(buf, &rh, sizeof rh);
            char *it = buf + sizeof rh;
            for (int64_t j = 0; j < nreq; j++) {
                memcpy(it, &cand[j], sizeof cand[j]);
                put_rule(it + sizeof cand[j], cand[j].rule);
                it += ITEM;
            }
            for (int64_t t = 0; t < nd; t++, it += TPX) {
                int64_t loc = local_row(&me, trow[t]);
                if (loc >= 0) memcpy(it, me.r->thumbs + (size_t)loc * TPX, TPX);
                else memset(it, 0, TPX); /* not held: verify_mine has failed it already */
            }
        } else if (!failed)
            fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size,
                    theirs ? "sent candidates of another rank" : "out of memory verifying candidates");
        void *none = NULL;
        int64_t dummy[1];
        cs_mpi_gatherv(buf ? buf : (char *)&rh, buf ? blen : (int64_t)sizeof rh, &none, dummy);
        free(buf);
        free(trow);
        free(cand);
        free(req);
        free(mine);
        failed |= rh.status != 0;
    }
    long long tsize = 0, trss = debug_on() ? thumbs_rss_kib(&tsize, NULL) : -1;
    debug_line(held, me.scanned, n, &emb, trss, tsize);
    free(q);
    free(ids);
    side_free(&me);
    cs_an_refs_free(&sub);
    free(own.off);
    cs_an_matcher_free(m);
    cs_an_emb_part_close(&emb);
    cs_store_close(s);
    return failed ? CLI_FAIL : CLI_OK;
}
