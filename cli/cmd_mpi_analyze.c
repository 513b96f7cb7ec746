/* cmd_mpi_analyze.c — `analyze` under mpirun (cli/cli_mpi.h): rank 0 runs
 * the analysis as one process would; each round of match batches it hands
 * to cs_analyze_opts.match is sent to every rank, batch b is matched by rank
 * b mod N against the whole index (the union of the shards), and rank 0
 * gathers the results in order. A batch is matched whole, as one process
 * cuts it (its sgemm rounds by its size), so the findings, their order and
 * the report are one process's. Decoding, the embedding and local-feature
 * searches, the cliques and every write stay on rank 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"

enum { RULE_SLOT = 32, RULES_PER = 1 + CS_AN_NB, MAX_RULES = 128 };

/* A result's rule fields point at the sender's string literals: they travel
 * as names and come back as pointers into this table (rank 0's). */
struct cli_mpi_an {
    char *rules[MAX_RULES];
    int n_rules;
    int64_t *lens; /* [size] the gather's reply lengths */
    int64_t *done; /* [size] generations each rank matched */
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

/* One rank's reply: status, count, results, their rule names. */
typedef struct {
    int64_t status, n;
} reply_head;

static int64_t reply_size(int64_t n) {
    return (int64_t)sizeof(reply_head) + n * (int64_t)(sizeof(cs_an_result) + RULES_PER * RULE_SLOT);
}

static void reply_pack(char *buf, int64_t status, const cs_an_result *res, int64_t n) {
    reply_head h = {status, status ? 0 : n};
    memcpy(buf, &h, sizeof h);
    if (status) return;
    char *rb = buf + sizeof h, *names = rb + n * (int64_t)sizeof(cs_an_result);
    memcpy(rb, res, (size_t)n * sizeof *res);
    for (int64_t i = 0; i < n; i++) {
        char *s = names + i * RULES_PER * RULE_SLOT;
        /* only the fields set: the others may hold anything */
        put_rule(s, res[i].has_best ? res[i].best.rule : NULL);
        for (int k = 0; k < CS_AN_NB; k++)
            put_rule(s + (1 + k) * RULE_SLOT, k < res[i].n_nb ? res[i].nb[k].rule : NULL);
    }
}

/* Batch b of a round goes to rank b % size; a rank's results are its
 * batches' in order. */
static int64_t n_batches(int64_t nq) { return (nq + CS_AN_BATCH - 1) / CS_AN_BATCH; }
static int64_t batch_len(int64_t nq, int64_t b) {
    int64_t lo = b * CS_AN_BATCH;
    return nq - lo < CS_AN_BATCH ? nq - lo : CS_AN_BATCH;
}
static int64_t rank_count(int64_t nq, int r, int size) {
    int64_t n = 0;
    for (int64_t b = r; b < n_batches(nq); b += size) n += batch_len(nq, b);
    return n;
}

/* Rank 0's batches of the round (0, size, 2 size, ...), each one
 * cs_an_match_batch call (the cut of one process), into res in order. */
static int match_mine(const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s, int threads,
                      cs_an_result *res, cs_err *err) {
    int64_t w = 0;
    for (int64_t b = 0; b < n_batches(nq); b += cs_mpi_size()) {
        int64_t m = batch_len(nq, b);
        if (cs_an_match_batch(r, q + b * CS_AN_BATCH, m, s, threads, res + w, err)) return -1;
        w += m;
    }
    return 0;
}

/* Rank 0's matcher: the round to every rank, its own batches here, the
 * others' gathered into res. */
static int mpi_match(void *ctx, const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s,
                     int threads, cs_an_result *res, cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    int64_t head = nq;
    cs_mpi_bcast(&head, sizeof head);
    cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
    int64_t n0 = rank_count(nq, 0, size);
    cs_an_result *mine = malloc((size_t)(n0 > 0 ? n0 : 1) * sizeof *mine);
    int rc = mine ? match_mine(r, q, nq, s, threads, mine, err) : cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    reply_head h0 = {rc ? -1 : 0, 0};
    void *all = NULL;
    int grc = cs_mpi_gatherv(&h0, sizeof h0, &all, c->lens);
    for (int64_t b = 0, w = 0; !rc && b < n_batches(nq); b += size) { /* rank 0's batches into place */
        memcpy(res + b * CS_AN_BATCH, mine + w, (size_t)batch_len(nq, b) * sizeof *res);
        w += batch_len(nq, b);
    }
    c->done[0] += rc ? 0 : n0;
    free(mine);
    if (rc || grc) {
        free(all);
        return rc ? -1 : cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering the ranks' results");
    }
    const char *p = (const char *)all + c->lens[0];
    for (int k = 1; k < size && !rc; p += c->lens[k], k++) {
        reply_head h;
        memcpy(&h, p, sizeof h);
        if (h.status || h.n != rank_count(nq, k, size) || c->lens[k] != reply_size(h.n)) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not match its batches (its message above)",
                         k, size);
            break;
        }
        c->done[k] += h.n;
        const char *rb = p + sizeof h, *names = rb + h.n * (int64_t)sizeof(cs_an_result);
        int64_t w = 0;
        for (int64_t b = k; b < n_batches(nq); b += size)
            for (int64_t j = 0; j < batch_len(nq, b); j++, w++) {
                cs_an_result *d = &res[b * CS_AN_BATCH + j];
                memcpy(d, rb + w * (int64_t)sizeof *d, sizeof *d);
                const char *sl = names + w * RULES_PER * RULE_SLOT;
                d->best.rule = intern(c, sl);
                for (int t = 0; t < CS_AN_NB; t++) d->nb[t].rule = intern(c, sl + (1 + t) * RULE_SLOT);
            }
    }
    free(all);
    return rc;
}

cli_mpi_an *cli_mpi_analyze_begin(cs_analyze_opts *o) {
    if (cs_mpi_size() == 1) return NULL;
    cli_mpi_an *c = calloc(1, sizeof *c);
    if (c) c->lens = calloc((size_t)cs_mpi_size(), sizeof *c->lens);
    if (c) c->done = calloc((size_t)cs_mpi_size(), sizeof *c->done);
    if (!c || !c->lens || !c->done) { /* rank 0 then matches everything itself: the same results */
        if (c) free(c->lens);
        free(c);
        return NULL;
    }
    o->match = mpi_match;
    o->match_ctx = c;
    o->match_batches = cs_mpi_size();
    return c;
}

void cli_mpi_analyze_end(cli_mpi_an *c, int quiet) {
    if (cs_mpi_size() == 1) return;
    int64_t head = -1; /* the other ranks stop */
    cs_mpi_bcast(&head, sizeof head);
    if (c && !quiet) { /* the balance of the cut */
        printf("analyze: generations matched per rank:");
        for (int r = 0; r < cs_mpi_size(); r++) printf(" %lld", (long long)c->done[r]);
        printf("\n");
    }
    for (int i = 0; c && i < c->n_rules; i++) free(c->rules[i]);
    if (c) free(c->lens);
    if (c) free(c->done);
    free(c);
}

/* Ranks > 0: load the references (read-only), then match shares until rank
 * 0 says stop. A rank that cannot load answers every batch with a failure,
 * so rank 0 stops with an error instead of waiting. */
int cli_mpi_analyze_worker(const char *db, const cs_analyze_opts *o) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), failed = 0;
    cs_err err = {0};
    cs_store *s = NULL;
    cs_an_matcher *m = NULL;
    if (cs_store_open_readonly(&s, db, &err) || cs_an_matcher_open(&m, s, o, &err)) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
        failed = 1;
    }
    for (;;) {
        int64_t nq = 0;
        cs_mpi_bcast(&nq, sizeof nq);
        if (nq < 0) break;
        cs_an_query *q = malloc((size_t)(nq > 0 ? nq : 1) * sizeof *q);
        if (!q) { /* the round must be received to go on: stop the job (mpirun ends every rank) */
            fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for %lld generations\n", rank, size,
                    (long long)nq);
            exit(CLI_FAIL);
        }
        cs_mpi_bcast(q, nq * (int64_t)sizeof *q);
        int64_t n = rank_count(nq, rank, size);
        cs_an_result *res = malloc((size_t)(n > 0 ? n : 1) * sizeof *res);
        int64_t st = failed || !res ? -1 : 0;
        for (int64_t b = rank, w = 0; !st && b < n_batches(nq); w += batch_len(nq, b), b += size)
            if (cs_an_matcher_run(m, q + b * CS_AN_BATCH, batch_len(nq, b), res + w, &err)) {
                fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
                st = -1;
            }
        char *buf = malloc((size_t)reply_size(st ? 0 : n));
        reply_head fail = {-1, 0};
        if (buf) reply_pack(buf, st, res, n);
        void *none = NULL;
        int64_t dummy[1];
        cs_mpi_gatherv(buf ? buf : (char *)&fail, buf ? reply_size(st ? 0 : n) : (int64_t)sizeof fail, &none, dummy);
        free(buf);
        free(res);
        free(q);
        failed |= st != 0;
    }
    cs_an_matcher_free(m);
    cs_store_close(s);
    return failed ? CLI_FAIL : CLI_OK;
}
