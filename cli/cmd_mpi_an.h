/* cmd_mpi_an.h — the parts of `analyze` under mpirun (cli/cmd_mpi_analyze.c,
 * the driver) that its job files share: who owns a reference, what a rank
 * scans (cmd_mpi_an_scan.c), the rounds' messages, the embedding search
 * (cmd_mpi_an_embed.c), the verification and the candidates' thumbnails
 * (cmd_mpi_an_verify.c). Internal to the CLI of copyscope-mpi. */
#ifndef CS_CMD_MPI_AN_H
#define CS_CMD_MPI_AN_H

#include <stdint.h>

#include "analyze/an_mpi.h"
#include "analyze/completion.h"
#include "analyze/match.h"
#include "cli/cli_mpi.h"
#include "core/err.h"
#include "core/store.h"
#include "index/localfeat.h"
#include "index/refs.h"

enum { RULE_SLOT = 32, MAX_RULES = 128 };
enum { R_STOP = 0, R_INIT, R_SCAN, R_VERIFY, R_EMBED, R_LFINIT, R_LF, R_COMPL };
enum { TPX = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 }; /* a thumbnail's bytes */

/* Who owns a row: shard k's references (ids past off[k]) on rank k mod
 * size; without shards, contiguous runs of rows. */
typedef struct {
    long long *off;
    int n_off;
} owners;

void owners_open(owners *o, cs_store *s);
/* row of the whole index (ids[n], ascending) */
int owner_of(const owners *o, const int64_t *ids, int64_t n, int32_t row);
/* Who owns reference id (a row of an embedding column): its row's owner;
 * an id the index does not hold goes with its shard (rank 0 unsharded):
 * its hits are dropped after the merge, as one process drops them, but they
 * still take their places in the lists. */
int owner_of_id(const owners *o, const int64_t *ids, int64_t n, int64_t id);

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

void side_free(side *d);
/* The runs of rows of the whole index r (ids[n]) this rank owns. */
int side_runs(side *d, const owners *o, const int64_t *ids, int64_t n);
/* r's row of a row of the whole index, -1 when r does not hold it */
int64_t local_row(const side *d, int32_t row);
/* This rank's share of a batch's scans, into raw (cleared here). */
int side_scan(const side *d, const cs_an_query *q, int64_t nq, int k, int what, int threads, cs_an_hit *raw,
              cs_err *err);
/* Rank 0's share as references of their own (sub), copied from the whole
 * index r (which rank 0 keeps without prepared floats: o->match_scans):
 * thumbnails, ids and hashes of its runs' rows, prepared for the scans;
 * d then scans and verifies sub's rows, one run. */
int side_copy(side *d, cs_an_refs *sub, const cs_an_refs *r, const cs_an_settings *s, int what, cs_err *err);
/* The thumbnails of s's 'ok' references with lo <= id <= hi (th: ids,
 * rgb malloc'd, in id order; free with cs_ref_thumbs_free). */
int run_thumbs(cs_store *s, int64_t lo, int64_t hi, cs_ref_thumbs *th, cs_err *err);
/* The references of this rank's shards (opened directly, not through the
 * manifest's union) that the whole index holds (ids[n]: rank 0's rows),
 * into r with their rows in the whole index (*grow). what: the scans,
 * hashes loaded only for them. */
int load_shards(cs_an_refs *r, int32_t **grow, const char *db, const owners *o, const int64_t *ids, int64_t n,
                int what, const cs_an_settings *set, cs_err *err);

/* The local-feature parts one rank searches (cmd_mpi_an_lf.c, lf_share_open):
 * the parts of its shards (k = rank, rank + size, ...) when the store has
 * at least as many shards as ranks, else one part, a contiguous run of the
 * records. */
typedef struct {
    cs_lf_part **p;
    int n;
} lf_share;

/* Rank 0's side of an analysis under mpirun (cli_mpi_analyze_begin). */
struct cli_mpi_an {
    char *rules[MAX_RULES]; /* the verified candidates' rule names, interned (cmd_mpi_an_verify.c) */
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
    /* the local-feature vote search (cmd_mpi_an_lf.c) */
    lf_share lf_part;      /* rank 0's parts: the descriptors it searches (lf_share_open) */
    const cs_lf_index *lf_ix; /* the whole index the parts were cut from (its codes dropped) */
    int64_t *lf_first;     /* [lf_nrec + 1] each record's first descriptor number in the whole index */
    int64_t lf_nrec;
    int lf_inited;
    int64_t n_lf;          /* query descriptors searched */
    int64_t n_compl;       /* completion audits spread over the ranks (cmd_mpi_an_compl.c) */
    double t_lf, t_lf_wait, t_lf_gather, t_lf_merge; /* all, the wait (CS_MPI_TIMING=1), the gather, merge + votes */
};

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
    int64_t timed; /* SCAN, EMBED: a barrier before the gather (rank 0's CS_MPI_TIMING=1) */
    char col[16];  /* EMBED: the column */
    uint64_t fp;   /* LFINIT: the records' fingerprint (cs_lf_records.fp) */
} round_head;

/* One rank's reply: status, count, then count items. */
typedef struct {
    int64_t status, n;
} reply_head;

/* The rank's own work done (rc0, its error e0): a barrier when timed (what
 * follows is then the gather alone, not the wait for the slowest rank),
 * then every rank's reply gathered into *all (rank 0's head first, c->lens
 * each reply's length); *wait and *gather (seconds) grow by the two. Fails
 * with e0 when rank 0's own work failed, "out of memory gathering what"
 * when the gather did. */
int gather_replies(cli_mpi_an *c, int timed, int rc0, const cs_err *e0, const char *what, void **all,
                   double *wait, double *gather, cs_err *err);
/* A rank > 0's side of gather_replies: its reply of len bytes. */
void send_reply(const void *buf, int64_t len, int timed);
/* The first round (a match or an embedding search): every rank loads the
 * references it owns (the whole index's ids broadcast). */
int init_ranks(cli_mpi_an *c, const cs_an_refs *r, cs_err *err);
int debug_on(void);
/* The generations' file paths (cs_an_query.src, for part_al at 256 px,
 * analyze/an_part.h) after a broadcast of the queries' bytes, whose src is
 * rank 0's pointer: rank 0 sends one blob (its length first, then the nq
 * paths NUL-separated); a rank > 0 receives it into *blob (malloc'd, replacing
 * the last) and points each q[i].src into it (NULL for an empty path).
 * send_srcs returns the bytes sent. */
int64_t send_srcs(const cs_an_query *q, int64_t nq);
void recv_srcs(cs_an_query *q, int64_t nq, char **blob);

/* Rank 0's scans (cs_an_scan_fn) and a rank > 0's SCAN round. */
int scan_all(void *ctx, const cs_an_query *q, int64_t nq, int k, int what, cs_an_hit *raw, cs_err *err);
/* -1 when it failed (its message printed, the failure sent) */
int scan_round(const round_head *h, const side *me, const cs_an_query *q, int threads, int failed);

/* Rank 0's embedding search (cs_analyze_opts.embed_search) and a rank > 0's
 * EMBED round. */
int embed_all(void *ctx, const cs_an_refs *r, const char *column, const float *q, int nq, int dim, int k,
              int64_t *ids, float *scores, cs_err *err);
int emb_round(const round_head *h, cs_store *s, cs_an_emb_part *e, const owners *own, const int64_t *ids,
              int64_t n, int threads, int failed);

/* Rank 0's verifier (cs_an_verify_fn), thumbnails (cs_analyze_opts.
 * load_thumbs) and a rank > 0's VERIFY round. */
int verify_all(void *ctx, const cs_an_query *q, int64_t nq, const cs_an_result *res, cs_an_pending *pend,
               cs_err *err);
int load_thumbs(void *ctx, cs_store *s, cs_ref_thumbs *th, cs_err *err);
int verify_round(const round_head *h, const side *me, const owners *own, const int64_t *ids, int64_t n,
                 const cs_an_settings *set, const cs_an_query *q, int threads, int failed);

/* Rank 0's opening of the vote index (cs_analyze_opts.lf_open): at the
 * ranks' first search, the quantizer and counts from <db>.lfquant when
 * current (an index for lf_init alone), else the whole <db>.lfvote as one
 * process opens it, whose quantizer and counts are then saved there. */
int lf_open_rank0(void *ctx, const char *path, const cs_lf_records *rec, cs_lf_index **out, char *note, size_t cap,
                  cs_err *err);
/* Rank 0's local-feature vote search (cs_analyze_opts.lf_search), a rank
 * > 0's LFINIT round (its part built: *part; *total descriptors in all) and LF
 * round (-1 when it failed: its message printed, the failure sent). */
int lf_search_all(void *ctx, const cs_an_refs *r, cs_lf_index *ix, const cs_lf_records *rec, const int32_t *rows,
                  const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout, cs_err *err);
/* This rank's part of the vote index (the records with keep[i], indexed
 * with the quantizer qb[qlen]; cnt[n] every record's count, fp the records'
 * fingerprint): loaded from shard's part file beside s's shards when it is
 * current (*loaded 1), else built from recs (NULL: s's <db>.lfrec mapped)
 * and saved there atomically; shard -1: built, not saved. */
int lf_part_open(cs_lf_part **part, cs_store *s, int shard, const uint8_t *qb, size_t qlen, uint64_t fp, int64_t n,
                 const uint8_t *recs, const uint8_t *cnt, const uint8_t *keep, int *loaded, cs_err *err);
/* Which records a rank searches and its parts of them (one a shard it
 * searches, loaded from their files when current, else built and saved; or
 * one built of its run of records): shard[n] each record's shard (-1:
 * unknown, lf_record_shards), nsh the store's shards (0: unsharded), the
 * rest as lf_part_open. */
int lf_share_open(lf_share *sh, cs_store *s, const int32_t *shard, int nsh, const uint8_t *qb, size_t qlen,
                  uint64_t fp, int64_t n, const uint8_t *recs, const uint8_t *cnt, cs_err *err);
/* The nearest of nd query descriptors among all of sh's parts, merged by
 * (distance, number) (cs_lf_part_knn's lists). */
int lf_share_knn(const lf_share *sh, int64_t nd, const uint8_t *desc, float *dist, int64_t *gid, cs_err *err);
int64_t lf_share_ndesc(const lf_share *sh);
void lf_share_free(lf_share *sh);
/* Each record's shard (shard[n]) from its reference's row (rows[i], -1:
 * a record of a reference the analysis does not hold) and the owners'
 * offsets; -1 for all when unsharded. */
void lf_record_shards(const owners *o, const cs_an_refs *r, const int32_t *rows, int64_t n, int32_t *shard);
int lf_init_round(const round_head *h, cs_store *s, lf_share *part, int64_t *total, int failed);
int lf_round(const round_head *h, const lf_share *part, int failed);

/* Rank 0's completion audit (cs_analyze_opts.completion_audit) and a rank
 * > 0's COMPL round (-1 when it failed: its message printed, the failure
 * sent). */
int compl_audit(void *ctx, cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb, int64_t orig_row,
                const uint8_t *withheld, const cs_an_settings *s, cs_err *err);
int compl_round(const round_head *h, const side *me, int failed);

#endif
