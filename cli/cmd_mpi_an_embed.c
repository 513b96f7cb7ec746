/* cmd_mpi_an_embed.c — `analyze` under mpirun: the embedding search
 * (cs_analyze_opts.embed_search, before the batches' matches). Each rank
 * searches the column rows of the references it owns (analyze/an_mpi.h)
 * and rank 0 merges the lists by (score, column row), the whole column's
 * lists bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"

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

/* A rank's lists of an EMBED round: status, nq * k, then the scores and the
 * column rows. */
static int64_t emb_reply_size(int64_t m) {
    return (int64_t)sizeof(reply_head) + m * (int64_t)(sizeof(float) + sizeof(int64_t));
}

/* One embedding search (cs_analyze_opts.embed_search): the queries to every
 * rank, this rank's rows searched here, the others' lists gathered and
 * merged by (score, column row), which gives the whole column's lists
 * (cli/cmd_mpi_embed.c); then the rows' ids. */
int embed_all(void *ctx, const cs_an_refs *r, const char *column, const float *q, int nq, int dim, int k,
                     int64_t *ids, float *scores, cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    double t0 = cs_now_s();
    if (strlen(column) >= sizeof ((round_head *)0)->col)
        return cs_fail(err, CS_EUSAGE, "analyze: embedding column name too long: %s", column);
    if (init_ranks(c, r, err)) return -1;
    int timed = getenv("CS_MPI_TIMING") && !strcmp(getenv("CS_MPI_TIMING"), "1");
    round_head h = {R_EMBED, nq, 0, k, dim, 0, timed, {0}, 0};
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
    void *all = NULL;
    int rc = gather_replies(c, timed, rc0, &e0, "the embedding lists", &all, &c->t_emb_wait, &c->t_emb_gather, err);
    double t2 = cs_now_s();
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
    c->t_emb_merge += t3 - t2;
    c->n_emb += nq;
    return rc;
}

/* A rank > 0's EMBED round: the queries received, its rows searched (the
 * column opened at the first), its lists sent to rank 0; -1 when it could
 * not (its message printed, the failure sent). */
int emb_round(const round_head *h, cs_store *s, cs_an_emb_part *e, const owners *own, const int64_t *ids,
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
    send_reply(buf, rh.status ? (int64_t)sizeof rh : emb_reply_size(m), (int)h->timed);
    free(buf);
    free(q);
    free(sc);
    free(rows);
    return rh.status ? -1 : 0;
}
