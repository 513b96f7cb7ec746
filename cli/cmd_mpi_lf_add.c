/* cmd_mpi_lf_add.c — `index add` under mpirun: the local-feature vote
 * index. Rank 0 opens <db>.lfvote as one process's analysis would (the
 * same call: the same sample trained, the same bytes) and sends every rank
 * the quantizer, each record's descriptor count and shard; each rank then
 * writes its shards' parts (<db>.shards/K-of-N.db.lfpart, lf_part_open), so
 * that the first analysis does no index work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/shard.h"

typedef struct {
    int64_t n, qlen;
    uint64_t fp;
    int32_t status;
    int32_t pad;
} parts_head;

/* Rank 0: <db>.lfrec and <db>.lfvote as one process's analysis opens them
 * (the same call: the same sample trained, the same bytes), the counts,
 * each record's shard and the quantizer; the whole index is then freed. */
static int parts_prepare(const char *db, int nsh, parts_head *h, uint8_t **cnt, int32_t **shard, uint8_t **qb,
                         cs_err *err) {
    cs_store *s = NULL;
    cs_lf_records rec = {0};
    cs_lf_index *ix = NULL;
    char note[512] = "";
    long long *off = calloc((size_t)nsh, sizeof *off);
    char *path = NULL;
    int rc = -1;
    if (!off) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_store_open(&s, db, err) || cs_store_shard_offsets(s, off, nsh) ||
        cs_lf_records_open(s, &rec, note, sizeof note, err))
        goto out_db;
    if (strstr(note, "in memory")) fprintf(stderr, "copyscope: index add: %s\n", note);
    h->n = rec.n, h->fp = rec.fp;
    if (rec.n == 0) { /* no local features: nothing to index */
        rc = 0;
        goto out;
    }
    note[0] = 0;
    if (!(path = cs_store_sidecar(s, "lfvote"))) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_lf_index_open_fp(&ix, path, rec.n, rec.ids, rec.recs, rec.fp, note, sizeof note, err)) goto out;
    if (strstr(note, "not saved")) fprintf(stderr, "copyscope: index add: %s\n", note);
    size_t qlen = 0;
    *cnt = malloc((size_t)rec.n);
    *shard = malloc(sizeof **shard * (size_t)rec.n);
    if (!*cnt || !*shard) {
        cs_fail(err, CS_ENOMEM, "index add: out of memory for %lld local-feature records", (long long)rec.n);
        goto out;
    }
    if (cs_lf_index_counts(ix, rec.n, *cnt)) {
        cs_fail(err, CS_EINTERNAL, "index add: %s is not of its %lld records", path, (long long)rec.n);
        goto out;
    }
    if (cs_lf_quantizer_save(ix, qb, &qlen, err)) goto out;
    h->qlen = (int64_t)qlen;
    /* shard k holds the ids past off[k] (as the analysis's owners read them) */
    for (int64_t i = 0, k = 0; i < rec.n; i++) {
        while (k + 1 < nsh && off[k + 1] < rec.ids[i]) k++;
        (*shard)[i] = (int32_t)k;
    }
    rc = 0;
    goto out;
out_db:
    if (!err->code) cs_fail(err, CS_EDB, "%s: no shard offsets", db);
out:
    cs_lf_index_free(ix);
    cs_lf_records_close(&rec);
    cs_store_close(s);
    free(path);
    free(off);
    return rc;
}

int cli_mpi_lf_parts(const char *db, int nsh, int k0, int k1, int64_t *encoded, cs_err *err) {
    int rank = cs_mpi_rank();
    parts_head h = {0};
    uint8_t *cnt = NULL, *qb = NULL, *keep = NULL;
    int32_t *shard = NULL;
    *encoded = 0;
    if (rank == 0 && parts_prepare(db, nsh, &h, &cnt, &shard, &qb, err)) h.status = -1;
    cs_mpi_bcast(&h, sizeof h);
    if (h.status) return rank == 0 ? -1 : cs_fail(err, CS_EINTERNAL, "rank 0 could not build the vote index");
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
    cs_store_close(s);
    free(cnt);
    free(shard);
    free(qb);
    free(keep);
    return rc;
}
