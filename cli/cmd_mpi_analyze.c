/* cmd_mpi_analyze.c — `analyze` under mpirun (cli/cli_mpi.h), the driver:
 * rank 0's hooks into the analysis and the loop of the other ranks; the
 * jobs are in cmd_mpi_an_scan.c, cmd_mpi_an_embed.c, cmd_mpi_an_lf.c and
 * cmd_mpi_an_verify.c (cli/cmd_mpi_an.h). Shard k of a sharded store
 * belongs to rank k mod N (ids past offset k); the rows of an unsharded
 * one go in N contiguous runs. For each batch of generations
 * (analyze/match.h: cs_an_match_batch_sv) rank 0 broadcasts the
 * generations, every rank scans only the references it owns (tiled L2,
 * layout, PDQ, pHash, dHash: per-shard top-k lists under global rows) and
 * rank 0 merges the lists by (score, row), which is the whole index's list
 * exactly (test_tl2_shard.c). Then rank 0 sends each rank the candidates
 * whose reference it owns (a scatter), each verifies them (cs_an_verify,
 * per pair: the same floats wherever it runs), and rank 0 gathers them in
 * list order and applies the ratio test, the rivals and the verdicts.
 * Every rank loads only the thumbnails and hashes of the references it
 * owns (its shards', opened directly, not the union; or its run of an
 * unsharded store's rows, read by id range), so its memory is its share's,
 * and the completion audits run over the ranks (cmd_mpi_an_compl.c). Rank 0
 * keeps the whole index's catalogue rows but of the pixels only its share
 * and each batch's candidates'. The embedding search (cs_analyze_opts.
 * embed_search, before the batches' matches) is spread the same way: each
 * rank searches the column rows of the references it owns
 * (analyze/an_mpi.h) and rank 0 merges the lists by (score, column row),
 * the whole column's lists bit for bit; and so is the local-feature vote
 * search (cs_analyze_opts.lf_search): each rank searches the descriptors
 * of the references it owns, rank 0 merges each query descriptor's nearest
 * by (distance, number) and votes. The SIFT extraction and verification,
 * the cliques and every write stay on rank 0 (docs/SCALE.md).
 * CS_MPI_DEBUG=1 prints each rank's resident and scanned reference counts,
 * peak memory, embedding rows and local-feature descriptors held and
 * searched to stderr; CS_MPI_TIMING=1 splits the merges' time from the
 * wait for the slowest rank (a barrier). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "analyze/fine_ref.h"
#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"

int gather_replies(cli_mpi_an *c, int timed, int rc0, const cs_err *e0, const char *what, void **all,
                   double *wait, double *gather, cs_err *err) {
    double t1 = cs_now_s();
    if (timed) cs_mpi_barrier(); /* every rank's work done: what follows is the gather alone */
    double t2 = cs_now_s();
    reply_head h0 = {rc0 ? -1 : 0, 0};
    *all = NULL;
    int rc = 0;
    if (cs_mpi_gatherv(&h0, sizeof h0, all, c->lens))
        rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory gathering %s", what);
    *wait += t2 - t1;
    *gather += cs_now_s() - t2;
    if (!rc && rc0) rc = cs_fail(err, e0->code ? e0->code : CS_ENOMEM, "%s", e0->msg);
    return rc;
}

void send_reply(const void *buf, int64_t len, int timed) {
    if (timed) cs_mpi_barrier();
    void *none = NULL;
    int64_t dummy[1];
    cs_mpi_gatherv(buf, len, &none, dummy);
}

static long long thumbs_rss_kib(long long *size, const void *range);

int64_t send_srcs(const cs_an_query *q, int64_t nq) {
    int64_t len = 0;
    for (int64_t i = 0; i < nq; i++) len += (int64_t)(q[i].src ? strlen(q[i].src) : 0) + 1;
    char *b = malloc((size_t)(len > 0 ? len : 1));
    if (!b) { /* the others wait for the blob: stop the job */
        fprintf(stderr, "copyscope: analyze: out of memory for %lld generations' paths\n", (long long)nq);
        exit(CLI_FAIL);
    }
    char *p = b;
    for (int64_t i = 0; i < nq; i++) {
        size_t l = q[i].src ? strlen(q[i].src) : 0;
        if (l) memcpy(p, q[i].src, l);
        p[l] = 0;
        p += l + 1;
    }
    cs_mpi_bcast(&len, sizeof len);
    cs_mpi_bcast(b, len);
    free(b);
    return (int64_t)sizeof len + len;
}

void recv_srcs(cs_an_query *q, int64_t nq, char **blob) {
    int64_t len = 0;
    cs_mpi_bcast(&len, sizeof len);
    free(*blob);
    if (!(*blob = malloc((size_t)(len > 0 ? len : 1)))) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: out of memory for the generations' paths\n",
                cs_mpi_rank(), cs_mpi_size());
        exit(CLI_FAIL);
    }
    cs_mpi_bcast(*blob, len);
    /* never rank 0's pointers: each src into this rank's blob, or NULL
     * (a path cut short, which cannot happen, also gives NULL) */
    const char *p = *blob, *end = *blob + len;
    for (int64_t i = 0; i < nq; i++) {
        const char *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        q[i].src = z && z > p ? p : NULL;
        p = z ? z + 1 : end;
    }
}

/* The first round (a match or an embedding search): every rank loads the
 * references it owns (the whole index's ids broadcast). */
int init_ranks(cli_mpi_an *c, const cs_an_refs *r, cs_err *err) {
    if (c->inited) return 0;
    const cs_an_settings *s = c->s ? c->s : &c->o->set;
    c->r = r;
    c->n_refs = r->n;
    c->inited = 1;
    round_head h = {R_INIT, r->n, 0, 0, cs_an_scan_what(r, s), 0, 0, {0}, 0};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(r->ids, r->n * (int64_t)sizeof *r->ids);
    c->sent += (int64_t)sizeof h + r->n * (int64_t)sizeof *r->ids;
    c->me.r = r;
    /* on failure the job stops at the first round (the others wait in it) */
    if (side_runs(&c->me, &c->own, r->ids, r->n)) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    /* the part veto at 256 px (an_part.h) on rank 0's share as in one
     * process: the same sources (r->fine, on rank 0's store) */
    if (!c->range || r->thumbs != c->range) {
        if (side_copy(&c->me, &c->mine, r, s, (int)h.what, err)) return -1;
        c->mine.fine = r->fine;
        return 0;
    }
    /* r's pixels are not here: rank 0 reads its own shards as the other ranks read theirs */
    if (load_shards(&c->mine, &c->me.grow, cs_store_path(c->store), &c->own, r->ids, r->n, (int)h.what, s, err))
        return -1;
    if (c->mine.n != c->me.scanned)
        return cs_fail(err, CS_EINTERNAL, "analyze: %lld references in rank 0's shards, %lld in the index's rows",
                       (long long)c->mine.n, (long long)c->me.scanned);
    c->mine.fine = r->fine;
    c->me.r = &c->mine;
    c->from_shards = 1;
    if (c->me.nrun) { /* its references are one run of mine's rows */
        c->me.run[0] = 0;
        c->me.run[1] = c->mine.n;
        c->me.nrun = 1;
    }
    return 0;
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
    o->lf_search = lf_search_all;
    o->lf_open = lf_open_rank0;
    o->completion_audit = compl_audit;
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

int debug_on(void) { return getenv("CS_MPI_DEBUG") && !strcmp(getenv("CS_MPI_DEBUG"), "1"); }

/* CS_MPI_DEBUG=1: the references a rank holds and scans, its peak memory */
static void debug_line(int64_t held, int64_t scanned, int64_t total, const cs_an_emb_part *e, long long trss,
                       long long tsize, const lf_share *lf, int64_t lf_total) {
    if (debug_on())
        fprintf(stderr, "analyze: rank %d of %d: %lld references resident, %lld scanned, of %lld; peak %lld KiB; "
                "thumbnail cache %lld of %lld KiB resident; embedding rows %lld held, %lld searched, of %lld\n",
                cs_mpi_rank(), cs_mpi_size(), (long long)held, (long long)scanned, (long long)total, peak_kib(),
                trss > 0 ? trss : 0, tsize, (long long)e->held, (long long)e->owned,
                (long long)(e->open ? e->vs.n : 0));
    if (debug_on() && e->open) /* q8: the rows stay 8-bit (dim + 4 bytes), f32: 4 dim */
        fprintf(stderr, "analyze: rank %d of %d: embedding rows kept at %zu bytes a row\n", cs_mpi_rank(), cs_mpi_size(),
                e->q8 ? CS_VS_Q8_ROW(e->vs.dim) : sizeof(float) * (size_t)e->vs.dim);
    struct rusage ru;
    if (debug_on() && !getrusage(RUSAGE_SELF, &ru)) /* its CPU-seconds (user + system), the whole command's */
        fprintf(stderr, "analyze: rank %d of %d: cpu %.3f s\n", cs_mpi_rank(), cs_mpi_size(),
                (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
                    ru.ru_stime.tv_usec * 1e-6);
    if (debug_on() && lf && lf->n) /* the local-feature descriptors it searches */
        fprintf(stderr, "analyze: rank %d of %d: local-feature descriptors %lld held and searched, of %lld\n",
                cs_mpi_rank(), cs_mpi_size(), (long long)lf_share_ndesc(lf), (long long)lf_total);
}

void cli_mpi_analyze_end(cli_mpi_an *c, int quiet) {
    if (cs_mpi_size() == 1) return;
    round_head stop = {R_STOP, 0, 0, 0, 0, 0, 0, {0}, 0}; /* the other ranks stop */
    cs_mpi_bcast(&stop, sizeof stop);
    if (c && c->inited) debug_line(c->from_shards ? c->mine.n : c->n_refs, c->me.scanned, c->n_refs, &c->emb, c->th_rss,
                                   c->th_size, &c->lf_part, c->lf_first ? c->lf_first[c->lf_nrec] : 0);
    if (c && c->inited && c->from_shards && debug_on()) /* what rank 0 held of the thumbnails: the candidates' */
        fprintf(stderr, "analyze: rank 0 of %d: candidates' thumbnails written in %lld, at most %lld in a batch; "
                "%lld KiB resident at most after a batch, of %lld KiB reserved\n", cs_mpi_size(),
                (long long)c->th_rows, (long long)c->th_rows_max, c->th_rss > 0 ? c->th_rss : 0, c->th_size);
    if (c && c->n_compl && debug_on()) /* each audit read one thumbnail here, the original's */
        fprintf(stderr, "analyze: rank 0 of %d: completion audits %lld over the ranks, the originals' thumbnails "
                "read %lld\n", cs_mpi_size(), (long long)c->n_compl, (long long)c->n_compl);
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
        if (c->n_lf) /* the same for the local-feature search; merge: the lists merged and the votes counted */
            printf("analyze: local-feature search of %lld query descriptors %.3f s: wait for the other ranks %.4f s, "
                   "gather of the lists %.4f s + merge %.4f s (%.2f%%)\n",
                   (long long)c->n_lf, c->t_lf, c->t_lf_wait, c->t_lf_gather, c->t_lf_merge,
                   c->t_lf > 0 ? 100 * (c->t_lf_gather + c->t_lf_merge) / c->t_lf : 0.0);
    }
    for (int i = 0; c && i < c->n_rules; i++) free(c->rules[i]);
    if (c) free(c->lens);
    if (c) free(c->done);
    if (c) free(c->own.off);
    if (c) side_free(&c->me);
    if (c) cs_an_refs_free(&c->mine);
    if (c) cs_an_emb_part_close(&c->emb);
    if (c) lf_share_free(&c->lf_part);
    if (c) free(c->lf_first);
    free(c);
}

/* Ranks > 0: at INIT load the references this rank owns (a sharded store:
 * its shards only; else its run of rows, read by id range), then
 * scan and verify its share of each round until rank 0 says stop. A rank
 * that cannot load answers every round with a failure, so rank 0 stops
 * with an error instead of waiting. */
int cli_mpi_analyze_worker(const char *db, const cs_analyze_opts *o) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), failed = 0;
    cs_err err = {0};
    cs_store *s = NULL;
    cs_an_refs sub = {0};
    owners own = {0};
    side me = {0};
    cs_an_emb_part emb = {0};
    lf_share lf = {0};
    int64_t lf_total = 0;
    int64_t *ids = NULL, n = 0, held = 0;
    cs_an_query *q = NULL;
    char *qsrc = NULL; /* q's paths (recv_srcs) */
    /* the references' sources by the whole index's id (the manifest's
     * main.refs holds every shard's rows; an unsharded store its own), for
     * the part veto at 256 px on this rank's candidates as in one process */
    cs_fine_refs fine;
    int fine_open = 0;
    if (cs_store_open_readonly(&s, db, &err)) {
        fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
        failed = 1;
    }
    if (s) owners_open(&own, s);
    if (s) {
        cs_fine_open(&fine, s);
        fine_open = 1;
    }
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
            else { /* only its shards, or its run of an unsharded store's rows */
                if (load_shards(&sub, &me.grow, db, &own, ids, n, (int)h.what, &o->set, &err)) failed = 1;
                else if (sub.n != me.scanned)
                    failed = cs_fail(&err, CS_EINTERNAL, "%lld references in its %s, %lld in the index's rows",
                                     (long long)sub.n, own.n_off ? "shards" : "run", (long long)me.scanned);
                sub.fine = fine_open ? &fine : NULL;
                me.r = &sub;
                if (me.nrun) { /* its references are one run of sub's rows */
                    me.run[0] = 0;
                    me.run[1] = sub.n;
                    me.nrun = 1;
                }
            }
            if (failed) fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", rank, size, err.msg);
            held = me.r ? me.r->n : 0;
            continue;
        }
        if (h.kind == R_LFINIT) {
            if (lf_init_round(&h, s, &lf, &lf_total, failed)) failed = 1;
            continue;
        }
        if (h.kind == R_LF) {
            if (lf_round(&h, &lf, failed)) failed = 1;
            continue;
        }
        if (h.kind == R_COMPL) {
            if (compl_round(&h, &me, failed)) failed = 1;
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
            recv_srcs(q, h.nq, &qsrc);
        }
        if (h.kind == R_SCAN) {
            if (scan_round(&h, &me, q, threads, failed)) failed = 1;
            continue;
        }
        if (verify_round(&h, &me, &own, ids, n, &o->set, q, threads, failed)) failed = 1; /* R_VERIFY */
    }
    long long tsize = 0, trss = debug_on() ? thumbs_rss_kib(&tsize, NULL) : -1;
    debug_line(held, me.scanned, n, &emb, trss, tsize, &lf, lf_total);
    free(q);
    free(qsrc);
    free(ids);
    side_free(&me);
    cs_an_refs_free(&sub);
    if (fine_open) cs_fine_close(&fine);
    free(own.off);
    cs_an_emb_part_close(&emb);
    lf_share_free(&lf);
    cs_store_close(s);
    return failed ? CLI_FAIL : CLI_OK;
}
