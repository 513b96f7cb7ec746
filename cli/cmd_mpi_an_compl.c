/* cmd_mpi_an_compl.c — `analyze` under mpirun: the completion audits
 * (cs_analyze_opts.completion_audit, analyze/completion.h). The audit
 * measures the withheld region between the generation and its original,
 * and between the generation and every other reference (the nearest one
 * that is not the original's twin). One process reads every thumbnail for
 * it; here rank 0 reads only the original's (one row, by id) and sends it
 * with the generation's thumbnail and the region (28 KiB a task), every
 * rank scans the references it holds (its shards', or its run of rows)
 * with the same distance, and rank 0 keeps the nearest by (distance, row):
 * one process's loop keeps the first row of equal distances, and every
 * rank's rows ascend, so the merge is that row (the same audit, bit for
 * bit). No rank then needs any thumbnail but its own share's and the
 * original's: rank 0 writes no <db>.thumbs and holds no whole-index pixels
 * for a run with completion tasks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/mpi_comm.h"

enum { WH = CS_THUMB_SIZE * CS_THUMB_SIZE, TASK = 2 * TPX + WH + sizeof(float) };

/* A rank's nearest other reference: status, 1, then the distance and the row. */
typedef struct {
    reply_head h;
    float d;
    int32_t pad;
    int64_t row;
} compl_reply;

int compl_audit(void *ctx, cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb, int64_t orig_row,
                const uint8_t *withheld, const cs_an_settings *s, cs_err *err) {
    cli_mpi_an *c = ctx;
    if (c->inited && r != c->r) { /* not the index the ranks loaded: here (the same audit) */
        cs_an_completion_audit(out, r, gen_thumb, orig_row, withheld, s);
        return 0;
    }
    /* cs_an_completion_audit's early ends, in its order */
    if (!cs_an_completion_begin(out, withheld, orig_row) || orig_row < 0 || orig_row >= r->n || !r->thumbs) return 0;
    if (init_ranks(c, r, err)) return -1;
    const int grid = cs_an_completion_grid(r);
    cs_ref_thumbs orig = {0};
    /* the original's thumbnail alone, from the store (a shard's through the
     * manifest's union, found by its id range) */
    if (run_thumbs(c->store, r->ids[orig_row], r->ids[orig_row], &orig, err)) return -1;
    if (orig.n != 1) {
        cs_ref_thumbs_free(&orig);
        return cs_fail(err, CS_EIO, "%s: the thumbnail of reference %lld (a completion's original) is gone",
                       cs_store_path(c->store), (long long)r->ids[orig_row]);
    }
    if (cs_an_completion_orig(out, gen_thumb, orig.rgb, withheld, grid)) { /* out of memory: unmeasured, as there */
        cs_ref_thumbs_free(&orig);
        return 0;
    }
    uint8_t *task = malloc(TASK);
    if (!task) { /* no round started yet: the others are waiting for one */
        cs_ref_thumbs_free(&orig);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for a completion audit");
    }
    float tl2 = s->copy_tl2;
    memcpy(task, gen_thumb, TPX);
    memcpy(task + TPX, orig.rgb, TPX);
    memcpy(task + 2 * TPX, withheld, WH);
    memcpy(task + 2 * TPX + WH, &tl2, sizeof tl2);
    cs_ref_thumbs_free(&orig);
    round_head h = {R_COMPL, 1, orig_row, grid, 0, 0, 0, {0}, 0};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(task, TASK);
    c->sent += (int64_t)sizeof h + TASK;
    float best = INFINITY;
    int64_t brow = -1;
    int rc0 = cs_an_completion_other(c->me.r, c->me.grow, task, task + TPX, orig_row, task + 2 * TPX, grid, tl2, &best,
                                     &brow);
    cs_err e0 = {CS_ENOMEM, "analyze: out of memory for a completion audit"};
    void *all = NULL;
    double tw = 0, tg = 0;
    int rc = gather_replies(c, 0, rc0, &e0, "the completion audits", &all, &tw, &tg, err);
    const char *p = all ? (const char *)all + c->lens[0] : NULL;
    for (int k = 1; k < cs_mpi_size() && !rc; p += c->lens[k], k++) {
        compl_reply x;
        if (c->lens[k] != (int64_t)sizeof x) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not audit a completion (its message above)",
                         k, cs_mpi_size());
            break;
        }
        memcpy(&x, p, sizeof x);
        if (x.h.status) {
            rc = cs_fail(err, CS_EINTERNAL, "analyze: rank %d of %d could not audit a completion (its message above)",
                         k, cs_mpi_size());
            break;
        }
        c->received += c->lens[k];
        /* by (distance, row): one process's first row of equal distances */
        if (x.row >= 0 && (x.d < best || (x.d == best && (brow < 0 || x.row < brow)))) best = x.d, brow = x.row;
    }
    free(all);
    free(task);
    if (rc) return -1;
    out->d_other = best;
    out->other_row = brow;
    cs_an_completion_end(out, s);
    c->n_compl++;
    return 0;
}

int compl_round(const round_head *h, const side *me, int failed) {
    uint8_t *task = malloc(TASK);
    if (!task) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for a completion audit\n", cs_mpi_rank(),
                cs_mpi_size());
        exit(CLI_FAIL); /* the round must be received to go on: stop the job */
    }
    cs_mpi_bcast(task, TASK);
    float tl2;
    memcpy(&tl2, task + 2 * TPX + WH, sizeof tl2);
    compl_reply x = {{-1, 0}, INFINITY, 0, -1};
    if (!failed && me->r &&
        !cs_an_completion_other(me->r, me->grow, task, task + TPX, h->nreq, task + 2 * TPX, (int)h->k, tl2, &x.d,
                                &x.row))
        x.h = (reply_head){0, 1};
    else if (!failed)
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for a completion audit\n", cs_mpi_rank(),
                cs_mpi_size());
    send_reply(x.h.status ? (const void *)&x.h : (const void *)&x, x.h.status ? (int64_t)sizeof x.h : (int64_t)sizeof x,
               0);
    free(task);
    return x.h.status ? -1 : 0;
}
