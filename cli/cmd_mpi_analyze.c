/* cmd_mpi_analyze.c — `analyze` under mpirun (cli/cli_mpi.h): rank 0 runs
 * the analysis as one process would, scans included; the verification of
 * each batch's candidates (analyze/match.h: cs_an_match_batch_v) runs on
 * the rank that owns the reference: shard k of a sharded store belongs to
 * rank k mod N (ids past offset k), the rows of an unsharded one in N
 * contiguous runs. Rank 0 broadcasts the batch's generations and candidate
 * list, each rank verifies its own (cs_an_verify, per pair: the same floats
 * wherever it runs) and rank 0 gathers them in list order, then applies the
 * ratio test, the rivals and the verdicts. Decoding, the embedding and
 * local-feature searches, the scans, the cliques and every write stay on
 * rank 0. The other ranks still load the whole reference side (the union);
 * a rank holding only its shard is the next step (docs/SCALE.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/match.h"
#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/shard.h"

enum { RULE_SLOT = 32, MAX_RULES = 128 };

/* Who verifies a row: shard k's references (ids past off[k]) on rank
 * k mod size; without shards, contiguous runs of rows. */
typedef struct {
    long long *off;
    int n_off;
} owners;

static void owners_open(owners *o, cs_store *s) {
    int n = cs_store_shards(s);
    o->off = n > 0 ? calloc((size_t)n, sizeof *o->off) : NULL;
    o->n_off = o->off && !cs_store_shard_offsets(s, o->off, n) ? n : 0;
}

static int owner_of(const owners *o, const cs_an_refs *r, int32_t row) {
    int size = cs_mpi_size();
    if (row < 0 || row >= r->n) return 0; /* never a candidate (match.c skips them) */
    if (!o->n_off) return (int)((int64_t)row * size / (r->n > 0 ? r->n : 1));
    int k = 0;
    while (k + 1 < o->n_off && o->off[k + 1] < r->ids[row]) k++;
    return k % size;
}

/* A result's rule fields point at the sender's string literals: they travel
 * as names and come back as pointers into this table (rank 0's). */
struct cli_mpi_an {
    char *rules[MAX_RULES];
    int n_rules;
    int64_t *lens; /* [size] the gather's reply lengths */
    int64_t *done; /* [size] candidates each rank verified */
    owners own;
    const cs_an_refs *r; /* the batch's (rank 0's) */
    const cs_an_settings *s;
    int threads;
    int64_t batches, sent, received; /* bytes broadcast and gathered */
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

/* A round: the batch's size and candidate count (nq < 0: stop). */
typedef struct {
    int64_t nq, nreq;
} round_head;

/* One rank's reply: status, count, then count x (candidate, rule name). */
typedef struct {
    int64_t status, n;
} reply_head;

enum { ITEM = sizeof(cs_an_cand) + RULE_SLOT };

static int64_t reply_size(int64_t n) { return (int64_t)sizeof(reply_head) + n * ITEM; }

/* The rank's share of a round: reqs of generation i are req[first[i] ..
 * first[i + 1]); cand[j] receives req j's verification where mine[j]. */
typedef struct {
    const cs_an_refs *r;
    const cs_an_settings *s;
    const cs_an_query *q;
    const vreq *req;
    const int64_t *first;
    const uint8_t *mine;
    cs_an_cand *cand;
} share;

static void verify_gen(void *vctx, int64_t i, int thread) {
    (void)thread;
    share *x = vctx;
    const int D = cs_tl2_dim(&x->r->cfg);
    float *qp = NULL, q16[2 * CS_AN_Q16];
    for (int64_t j = x->first[i]; j < x->first[i + 1]; j++) {
        if (!x->mine[j]) continue;
        if (!qp) {
            if (!(qp = malloc(sizeof(float) * 2 * (size_t)D))) return; /* the caller sees row -1 */
            cs_an_query_prep(qp, qp + D, q16, x->q + i, &x->r->cfg);
        }
        cs_an_cand *c = &x->cand[j];
        memset(c, 0, sizeof *c);
        c->row = x->req[j].row;
        c->emb_cos = x->req[j].emb_cos;
        c->lf = x->req[j].lf;
        cs_an_verify(c, x->r, x->req[j].align, qp, qp + D, q16, x->q + i, x->req[j].gen_q, x->s);
    }
    free(qp);
}

/* Verifies the reqs this rank owns into cand (indexed like req); returns
 * how many, -1 when out of memory. */
static int64_t verify_mine(const owners *o, const cs_an_refs *r, const cs_an_settings *s, int threads,
                           const cs_an_query *q, int64_t nq, const vreq *req, int64_t nreq, cs_an_cand *cand) {
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(nq + 1));
    uint8_t *mine = malloc((size_t)(nreq > 0 ? nreq : 1));
    if (!first || !mine) {
        free(first);
        free(mine);
        return -1;
    }
    int64_t n = 0, j = 0;
    for (int64_t i = 0; i <= nq; i++) {
        while (j < nreq && req[j].qi < i) j++;
        first[i] = j;
    }
    for (j = 0; j < nreq; j++) {
        mine[j] = req[j].row >= 0 && req[j].row < r->n && owner_of(o, r, req[j].row) == cs_mpi_rank();
        if (mine[j]) cand[j].row = -1;
        n += mine[j];
    }
    share x = {r, s, q, req, first, mine, cand};
    cs_parallel_for(threads, nq, verify_gen, &x);
    for (j = 0; j < nreq; j++)
        if (mine[j] && cand[j].row < 0) n = -1;
    free(first);
    free(mine);
    return n;
}

/* Rank 0's verifier (cs_an_verify_fn): the round to every rank, its own
 * candidates here, the others' gathered into place. */
static int verify_all(void *ctx, const cs_an_query *q, int64_t nq, const cs_an_result *res, cs_an_pending *pend,
                      cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    round_head h = {nq, 0};
    for (int64_t i = 0; i < nq; i++) h.nreq += pend[i].nc;
    vreq *req = calloc((size_t)(h.nreq > 0 ? h.nreq : 1), sizeof *req);
    cs_an_cand *cand = malloc(sizeof *cand * (size_t)(h.nreq > 0 ? h.nreq : 1));
    int *who = malloc(sizeof *who * (size_t)(h.nreq > 0 ? h.nreq : 1)); /* each candidate's owner */
    if (!req || !cand || !who) { /* the others wait for a round: stop the job */
        fprintf(stderr, "copyscope: analyze: out of memory for %lld candidates\n", (long long)h.nreq);
        exit(CLI_FAIL);
    }
    for (int64_t i = 0, j = 0; i < nq; i++)
        for (int m = 0; m < pend[i].nc; m++, j++)
            req[j] = (vreq){(int32_t)i, pend[i].cand[m].row, res[i].gen_pdq_quality, pend[i].align[m],
                            pend[i].cand[m].emb_cos, pend[i].cand[m].lf};
    for (int64_t j = 0; j < h.nreq; j++) who[j] = owner_of(&c->own, c->r, req[j].row);
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
    cs_mpi_bcast(req, h.nreq * (int64_t)sizeof *req);
    c->batches++;
    c->sent += (int64_t)sizeof h + nq * (int64_t)sizeof *q + h.nreq * (int64_t)sizeof *req;
    int64_t n0 = verify_mine(&c->own, c->r, c->s, c->threads, q, nq, req, h.nreq, cand);
    reply_head h0 = {n0 < 0 ? -1 : 0, 0};
    void *all = NULL;
    int rc = cs_mpi_gatherv(&h0, sizeof h0, &all, c->lens) ? cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering the verifications") : 0;
    if (!rc && n0 < 0) rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory verifying candidates");
    if (!rc) c->done[0] += n0;
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int k = 1; k < size && !rc; p += c->lens[k], k++) {
        reply_head rh;
        memcpy(&rh, p, sizeof rh);
        int64_t want = 0;
        for (int64_t j = 0; j < h.nreq; j++) want += who[j] == k;
        if (rh.status || rh.n != want || c->lens[k] != reply_size(rh.n)) {
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
    }
    for (int64_t i = 0, j = 0; !rc && i < nq; i++)
        for (int m = 0; m < pend[i].nc; m++, j++) pend[i].cand[m] = cand[j];
    free(all);
    free(req);
    free(cand);
    free(who);
    return rc;
}

/* Rank 0's matcher: the scans here, the verification by verify_all. */
static int mpi_match(void *ctx, const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s,
                     int threads, cs_an_result *res, cs_err *err) {
    cli_mpi_an *c = ctx;
    c->r = r;
    c->s = s;
    c->threads = threads > 0 ? threads : cs_threads();
    return cs_an_match_batch_v(r, q, nq, s, threads, res, verify_all, c, err);
}

cli_mpi_an *cli_mpi_analyze_begin(cs_analyze_opts *o, cs_store *s) {
    if (cs_mpi_size() == 1) return NULL;
    cli_mpi_an *c = calloc(1, sizeof *c);
    if (c) c->lens = calloc((size_t)cs_mpi_size(), sizeof *c->lens);
    if (c) c->done = calloc((size_t)cs_mpi_size(), sizeof *c->done);
    if (!c || !c->lens || !c->done) { /* rank 0 then verifies everything itself: the same results */
        if (c) free(c->lens);
        free(c);
        return NULL;
    }
    owners_open(&c->own, s);
    o->match = mpi_match;
    o->match_ctx = c;
    o->match_batches = 1;
    return c;
}

void cli_mpi_analyze_end(cli_mpi_an *c, int quiet) {
    if (cs_mpi_size() == 1) return;
    round_head stop = {-1, 0}; /* the other ranks stop */
    cs_mpi_bcast(&stop, sizeof stop);
    if (c && !quiet) { /* the balance of the cut and the traffic */
        printf("analyze: candidates verified per rank:");
        for (int r = 0; r < cs_mpi_size(); r++) printf(" %lld", (long long)c->done[r]);
        printf("\nanalyze: %lld batches, %lld bytes broadcast, %lld bytes gathered\n", (long long)c->batches,
               (long long)c->sent, (long long)c->received);
    }
    for (int i = 0; c && i < c->n_rules; i++) free(c->rules[i]);
    if (c) free(c->lens);
    if (c) free(c->done);
    if (c) free(c->own.off);
    free(c);
}

/* Ranks > 0: load the references (read-only), then verify their share of
 * each round until rank 0 says stop. A rank that cannot load answers every
 * round with a failure, so rank 0 stops with an error instead of waiting. */
int cli_mpi_analyze_worker(const char *db, const cs_analyze_opts *o) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), failed = 0;
    cs_err err = {0};
    cs_store *s = NULL;
    cs_an_matcher *m = NULL;
    owners own = {0};
    if (cs_store_open_readonly(&s, db, &err) || cs_an_matcher_open(&m, s, o, &err)) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
        failed = 1;
    }
    if (s) owners_open(&own, s);
    int threads = o->threads > 0 ? o->threads : cs_threads();
    for (;;) {
        round_head h;
        cs_mpi_bcast(&h, sizeof h);
        if (h.nq < 0) break;
        cs_an_query *q = malloc((size_t)(h.nq > 0 ? h.nq : 1) * sizeof *q);
        vreq *req = malloc((size_t)(h.nreq > 0 ? h.nreq : 1) * sizeof *req);
        cs_an_cand *cand = malloc((size_t)(h.nreq > 0 ? h.nreq : 1) * sizeof *cand);
        if (!q || !req || !cand) { /* the round must be received to go on: stop the job (mpirun ends every rank) */
            fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld generations\n", rank, size,
                    (long long)h.nq);
            exit(CLI_FAIL);
        }
        cs_mpi_bcast(q, h.nq * (int64_t)sizeof *q);
        cs_mpi_bcast(req, h.nreq * (int64_t)sizeof *req);
        int64_t n = failed ? -1
                           : verify_mine(&own, cs_an_matcher_refs(m), cs_an_matcher_settings(m), threads, q, h.nq, req,
                                         h.nreq, cand);
        char *buf = n >= 0 ? malloc((size_t)reply_size(n)) : NULL;
        reply_head rh = {buf ? 0 : -1, buf ? n : 0};
        if (buf) {
            memcpy(buf, &rh, sizeof rh);
            char *it = buf + sizeof rh;
            for (int64_t j = 0; j < h.nreq; j++) {
                if (owner_of(&own, cs_an_matcher_refs(m), req[j].row) != rank) continue;
                memcpy(it, &cand[j], sizeof cand[j]);
                put_rule(it + sizeof cand[j], cand[j].rule);
                it += ITEM;
            }
        } else if (!failed)
            fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory verifying candidates\n", rank, size);
        void *none = NULL;
        int64_t dummy[1];
        cs_mpi_gatherv(buf ? buf : (char *)&rh, buf ? reply_size(n) : (int64_t)sizeof rh, &none, dummy);
        free(buf);
        free(cand);
        free(req);
        free(q);
        failed |= rh.status != 0;
    }
    free(own.off);
    cs_an_matcher_free(m);
    cs_store_close(s);
    return failed ? CLI_FAIL : CLI_OK;
}
