/* cmd_mpi_an_verify.c — `analyze` under mpirun: the verification of each
 * batch's candidates and their thumbnails. Rank 0 sends each rank the
 * candidates whose reference it owns (a scatter), each verifies them
 * (cs_an_verify, per pair: the same floats wherever it runs), and rank 0
 * gathers them in list order and applies the ratio test, the rivals and the
 * verdicts. Rank 0 holds only each batch's candidates' thumbnails (and its
 * own share's), sent by their owners with the verifications. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"

enum { ITEM = sizeof(cs_an_cand) + RULE_SLOT }; /* a verified candidate in a reply: it, its rule's name */

static int64_t reply_size(int64_t n) { return (int64_t)sizeof(reply_head) + n * ITEM; }

/* A result's rule fields point at the sender's string literals: they travel
 * as names and come back as pointers into this table (rank 0's). */
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

/* The rank's share of a round: reqs of generation i are req[first[i] ..
 * first[i + 1]); cand[j] receives req j's verification where loc[j] >= 0
 * (r's row of the candidate). */
typedef struct {
    const side *d;
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
    /* The generation with its local-feature hits named by this rank's rows:
     * the refinement takes a hit's 256 px part measurement (q->lf_part,
     * made by rank 0's local stage) by the candidate's row, which here is
     * the rank's own (c->row below), not the whole index's. */
    cs_an_query *ql = NULL;
    for (int64_t j = x->first[i]; j < x->first[i + 1]; j++) {
        if (x->loc[j] < 0) continue;
        if (!qp) {
            qp = malloc(sizeof(float) * 2 * (size_t)D);
            ql = malloc(sizeof *ql);
            if (!qp || !ql) { /* the caller sees row -1 */
                free(qp);
                free(ql);
                return;
            }
            *ql = x->q[i];
            for (int k = 0; k < ql->n_lf && k < CS_AN_LFK; k++) {
                int64_t lr = local_row(x->d, ql->lf_row[k]);
                ql->lf_row[k] = lr < 0 ? -1 : (int32_t)lr;
            }
            cs_an_query_prep(qp, qp + D, q16, ql, &x->r->cfg);
        }
        cs_an_cand *c = &x->cand[j];
        memset(c, 0, sizeof *c);
        c->row = (int32_t)x->loc[j];
        c->emb_cos = x->req[j].emb_cos;
        c->emb_calibrated = x->q[i].emb_calibrated;
        c->lf = x->req[j].lf;
        cs_an_verify(c, x->r, x->req[j].align, qp, qp + D, q16, ql, x->req[j].gen_q, x->s);
        c->row = x->req[j].row; /* the whole index's row again */
    }
    free(qp);
    free(ql);
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
    share x = {d, d->r, s, q, req, first, loc, cand};
    if (n >= 0) cs_parallel_for(threads, nq, verify_gen, &x);
    for (j = 0; j < nreq; j++)
        if (mine[j] && cand[j].row < 0) n = -1;
    free(first);
    free(loc);
    return n < 0 ? -1 : n;
}

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
int verify_all(void *ctx, const cs_an_query *q, int64_t nq, const cs_an_result *res, cs_an_pending *pend,
                      cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    const int fill = c->range && c->r->thumbs == c->range;
    round_head h = {R_VERIFY, nq, 0, 0, fill, !c->q_sent, 0, {0}, 0};
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
    int64_t qbytes = 0;
    if (h.with_q) {
        cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
        qbytes = nq * (int64_t)sizeof *q + send_srcs(q, nq);
    }
    void *none = NULL;
    int64_t got = 0, scattered = 0;
    for (int k = 0; k < size; k++) scattered += c->lens[k];
    int sc = cs_mpi_scatterv(out, c->lens, &none, &got);
    free(none);
    free(out);
    free(pos);
    c->batches++;
    c->sent += (int64_t)sizeof h + qbytes + scattered;
    int64_t n0 = verify_mine(&c->me, mine, c->s, c->threads, q, nq, req, h.nreq, cand);
    cs_err e0 = {CS_ENOMEM, "analyze: out of memory verifying candidates"};
    void *all = NULL;
    double tw = 0, tg = 0;
    int rc = gather_replies(c, 0, n0 < 0, &e0, "the verifications", &all, &tw, &tg, err);
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
 * unsharded store the same: each rank, rank 0 included, reads only its run
 * of rows (load_shards), and rank 0 no <db>.thumbs. */
int load_thumbs(void *ctx, cs_store *s, cs_ref_thumbs *th, cs_err *err) {
    cli_mpi_an *c = ctx;
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

/* A rank > 0's VERIFY round: its candidates received (scattered), verified,
 * sent back with their rules' names, and the thumbnails of their rows when
 * rank 0 asks (h->what); -1 when it could not (its message printed, the
 * failure sent). */
int verify_round(const round_head *h, const side *me, const owners *own, const int64_t *ids, int64_t n,
                 const cs_an_settings *set, const cs_an_query *q, int threads, int failed) {
    int rank = cs_mpi_rank(), size = cs_mpi_size();
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
        mine[j] = owner_of(own, ids, n, req[j].row) == rank;
        theirs += !mine[j];
    }
    int64_t nv = failed || sc || theirs ? -1 : verify_mine(me, mine, set, threads, q, h->nq, req, nreq, cand);
    /* h->what: rank 0 wants the thumbnails of the candidates' rows too (cand_rows' order) */
    int32_t *trow = h->what && nv >= 0 ? malloc(sizeof *trow * (size_t)(nreq > 0 ? nreq : 1)) : NULL;
    int64_t nd = trow ? cand_rows(req, NULL, nreq, rank, n, trow) : 0;
    /* (a rank that owns no reference, more ranks than shards, verifies and
     * sends nothing: it holds no thumbnails and needs none) */
    if (h->what && nv >= 0 && (!trow || (nd > 0 && !me->r->has_thumbs))) nv = -1;
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
            int64_t loc = local_row(me, trow[t]);
            if (loc >= 0) memcpy(it, me->r->thumbs + (size_t)loc * TPX, TPX);
            else memset(it, 0, TPX); /* not held: verify_mine has failed it already */
        }
    } else if (!failed)
        fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size,
                theirs ? "sent candidates of another rank" : "out of memory verifying candidates");
    send_reply(buf ? buf : (char *)&rh, buf ? blen : (int64_t)sizeof rh, 0);
    free(buf);
    free(trow);
    free(cand);
    free(req);
    free(mine);
    return rh.status ? -1 : 0;
}
