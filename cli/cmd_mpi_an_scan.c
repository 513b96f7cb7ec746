/* cmd_mpi_an_scan.c — `analyze` under mpirun: who owns a reference, what
 * each rank holds and scans, and the scans' round (cli/cmd_mpi_an.h). Each
 * rank scans only the references it owns (tiled L2, layout, PDQ, pHash,
 * dHash: per-shard top-k lists under global rows) and rank 0 merges the
 * lists by (score, row), which is the whole index's list exactly
 * (test_tl2_shard.c). Every rank loads only the thumbnails and hashes of
 * the references it owns: its shards' (opened directly, not the union), or
 * its run of an unsharded store's rows (read by id range, load_shards). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_mpi_an.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/shard.h"
#include "core/sorted.h"
#include "index/hamming.h"

void owners_open(owners *o, cs_store *s) {
    int n = cs_store_shards(s);
    o->off = n > 0 ? calloc((size_t)n, sizeof *o->off) : NULL;
    o->n_off = o->off && !cs_store_shard_offsets(s, o->off, n) ? n : 0;
}

/* row of the whole index (ids[n], ascending) */
int owner_of(const owners *o, const int64_t *ids, int64_t n, int32_t row) {
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
int owner_of_id(const owners *o, const int64_t *ids, int64_t n, int64_t id) {
    int64_t g = cs_sorted_find(ids, 8, n, id);
    if (g >= 0) return owner_of(o, ids, n, (int32_t)g);
    if (!o->n_off) return 0;
    int k = 0;
    while (k + 1 < o->n_off && o->off[k + 1] < id) k++;
    return k % cs_mpi_size();
}

void side_free(side *d) {
    free(d->grow);
    free(d->run);
    memset(d, 0, sizeof *d);
}

/* The runs of rows of the whole index r (ids[n]) this rank owns. */
int side_runs(side *d, const owners *o, const int64_t *ids, int64_t n) {
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
int64_t local_row(const side *d, int32_t row) {
    if (!d->grow) return row >= 0 && row < d->r->n ? row : -1;
    return cs_sorted_find(d->grow, 4, d->r->n, row);
}

/* This rank's share of a batch's scans, into raw (cleared here). */
int side_scan(const side *d, const cs_an_query *q, int64_t nq, int k, int what, int threads, cs_an_hit *raw,
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
int side_copy(side *d, cs_an_refs *sub, const cs_an_refs *r, const cs_an_settings *s, int what, cs_err *err) {
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

/* The thumbnails of the 'ok' references with lo <= id <= hi into th (ids,
 * rgb malloc'd, n), in id order: a rank's run of an unsharded store, read
 * as cs_refs_load_thumbs reads the whole (the same rows and checks), the
 * rest of the index never touched. */
int run_thumbs(cs_store *s, int64_t lo, int64_t hi, cs_ref_thumbs *th, cs_err *err) {
    enum { TP = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 };
    sqlite3_stmt *q = NULL;
    int64_t cap = 0;
    int rc = 0, r = SQLITE_DONE;
    memset(th, 0, sizeof *th);
    th->w = th->h = CS_THUMB_SIZE;
    if (cs_store_prepare(s, &q, "SELECT r.id, t.w, t.h, t.rgb FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "
                         "WHERE r.status = 'ok' AND r.id BETWEEN ?1 AND ?2 ORDER BY r.id", err))
        return -1;
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const void *b = sqlite3_column_blob(q, 3);
        if (sqlite3_column_int(q, 1) != CS_THUMB_SIZE || sqlite3_column_int(q, 2) != CS_THUMB_SIZE || !b ||
            sqlite3_column_bytes(q, 3) != TP) {
            rc = cs_fail(err, CS_EFORMAT, "%s: thumbnail of reference %lld is not %dx%d RGB", cs_store_path(s),
                         (long long)id, CS_THUMB_SIZE, CS_THUMB_SIZE);
            break;
        }
        if (th->n == cap) {
            cap = cap ? 2 * cap : 1024;
            uint8_t *a = realloc(th->rgb, (size_t)cap * TP);
            int64_t *c = realloc(th->ids, sizeof *c * (size_t)cap);
            th->rgb = a ? a : th->rgb;
            th->ids = c ? c : th->ids;
            if (!a || !c) rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory for its run's thumbnails");
            if (rc) break;
        }
        memcpy(th->rgb + (size_t)th->n * TP, b, TP);
        th->ids[th->n++] = id;
    }
    if (!rc && r != SQLITE_DONE) rc = cs_store_fail(s, err, "reading thumbnails"); /* e.g. a changed source */
    sqlite3_finalize(q);
    return rc;
}

/* The hashes of the references with lo <= id <= hi (cs_hash_db_load's rows
 * of that range, packed as it packs them). */
static int run_hashes(cs_store *s, int64_t lo, int64_t hi, cs_hash_db *db, cs_err *err) {
    sqlite3_stmt *q = NULL;
    int64_t cap = 0;
    int rc = 0, r = SQLITE_DONE;
    memset(db, 0, sizeof *db);
    if (cs_store_prepare(s, &q, "SELECT ref_id, pdq, pdq_quality, phash, dhash, ahash FROM ref_hashes "
                         "WHERE ref_id BETWEEN ?1 AND ?2 ORDER BY ref_id", err))
        return -1;
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(q, 1);
        if (!b || sqlite3_column_bytes(q, 1) != 32) continue; /* malformed row: skipped, as cs_hash_db_load does */
        if (db->n == cap) {
            cap = cap ? 2 * cap : 1024;
            int64_t *a = realloc(db->ref_ids, sizeof *a * (size_t)cap);
            db->ref_ids = a ? a : db->ref_ids;
            uint64_t *pq = realloc(db->pdq, 32 * (size_t)cap);
            db->pdq = pq ? pq : db->pdq;
            int *qq = realloc(db->pdq_quality, sizeof *qq * (size_t)cap);
            db->pdq_quality = qq ? qq : db->pdq_quality;
            uint64_t *ph = realloc(db->phash, 8 * (size_t)cap);
            db->phash = ph ? ph : db->phash;
            uint64_t *dh = realloc(db->dhash, 8 * (size_t)cap);
            db->dhash = dh ? dh : db->dhash;
            uint64_t *ah = realloc(db->ahash, 8 * (size_t)cap);
            db->ahash = ah ? ah : db->ahash;
            if (!a || !pq || !qq || !ph || !dh || !ah)
                rc = cs_fail(err, CS_ENOMEM, "analyze: out of memory for hashes");
            if (rc) break;
        }
        int64_t i = db->n++;
        db->ref_ids[i] = sqlite3_column_int64(q, 0);
        cs_hamming_pack_pdq(b, db->pdq + 4 * i);
        db->pdq_quality[i] = sqlite3_column_int(q, 2);
        db->phash[i] = (uint64_t)sqlite3_column_int64(q, 3);
        db->dhash[i] = (uint64_t)sqlite3_column_int64(q, 4);
        db->ahash[i] = (uint64_t)sqlite3_column_int64(q, 5);
    }
    if (!rc && r != SQLITE_DONE) rc = cs_store_fail(s, err, "reading ref_hashes");
    sqlite3_finalize(q);
    return rc;
}

/* The references this rank owns that the whole index holds (ids[n]: rank
 * 0's rows), into r with their rows in the whole index (*grow): of a
 * sharded store, its shards (opened directly, not through the manifest's
 * union); of an unsharded one, its run of rows, read by id range from db
 * itself, so that no rank (rank 0 included) holds the whole index's pixels.
 * what: the scans, hashes loaded only for them. */
int load_shards(cs_an_refs *r, int32_t **grow, const char *db, const owners *o, const int64_t *ids, int64_t n,
                       int what, const cs_an_settings *set, cs_err *err) {
    enum { TP = CS_THUMB_SIZE * CS_THUMB_SIZE * 3 };
    int rank = cs_mpi_rank(), size = cs_mpi_size(), rc = -1;
    int64_t cnt = 0, cap = 0, nh = 0, hcap = 0;
    uint8_t *px = NULL;
    int64_t *gid = NULL, *hid = NULL;
    int32_t *gr = NULL;
    cs_hashes *hh = NULL;
    *grow = NULL;
    /* unsharded: its run of rows [lo, hi) (owner_of: contiguous), one source */
    int64_t lo = 0, hi = 0;
    if (!o->n_off) {
        while (lo < n && owner_of(o, ids, n, (int32_t)lo) != rank) lo++;
        hi = lo;
        while (hi < n && owner_of(o, ids, n, (int32_t)hi) == rank) hi++;
    }
    int first = o->n_off ? rank : 0, last = o->n_off ? o->n_off : (hi > lo ? 1 : 0);
    for (int k = first; k < last; k += o->n_off ? size : 1) {
        char *path = o->n_off ? cs_shard_path(db, k, o->n_off) : strdup(db);
        long long off = o->n_off ? o->off[k] : 0;
        cs_store *ss = NULL;
        cs_ref_thumbs th = {0};
        cs_hash_db hdb = {0};
        int bad = !path || cs_store_open_readonly(&ss, path, err);
        if (!bad && o->n_off)
            bad = cs_refs_load_thumbs(ss, &th, err) || ((what & CS_AN_SCAN_HASH) && cs_hash_db_load(ss, &hdb, err));
        else if (!bad)
            bad = run_thumbs(ss, ids[lo], ids[hi - 1], &th, err) ||
                  ((what & CS_AN_SCAN_HASH) && run_hashes(ss, ids[lo], ids[hi - 1], &hdb, err));
        if (!path && !err->code) cs_fail(err, CS_ENOMEM, "out of memory");
        for (int64_t i = 0; !bad && i < th.n; i++) {
            int64_t g = cs_sorted_find(ids, 8, n, th.ids[i] + off);
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
            hid[nh++] = hdb.ref_ids[i] + off;
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

/* Rank 0's scans (cs_an_scan_fn): the generations to every rank, its own
 * share here into raw, the others' lists gathered and merged into it. */
int scan_all(void *ctx, const cs_an_query *q, int64_t nq, int k, int what, cs_an_hit *raw, cs_err *err) {
    cli_mpi_an *c = ctx;
    int size = cs_mpi_size();
    c->timed = getenv("CS_MPI_TIMING") && !strcmp(getenv("CS_MPI_TIMING"), "1");
    round_head h = {R_SCAN, nq, 0, k, what, 1, c->timed, {0}, 0};
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast((void *)q, nq * (int64_t)sizeof *q);
    c->q_sent = 1;
    c->sent += (int64_t)sizeof h + nq * (int64_t)sizeof *q + send_srcs(q, nq);
    double t0 = cs_now_s();
    cs_err e0 = {0};
    int rc0 = side_scan(&c->me, q, nq, k, what, c->threads, raw, &e0);
    double t1 = cs_now_s();
    void *all = NULL;
    int rc = gather_replies(c, c->timed, rc0, &e0, "the scans", &all, &c->t_wait, &c->t_gather, err);
    double t3 = cs_now_s();
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
    c->t_merge += t4 - t3;
    return rc;
}

/* A rank > 0's SCAN round: its share of the generations' scans sent to
 * rank 0 (the lists, or the failure alone); -1 when it failed. */
int scan_round(const round_head *h, const side *me, const cs_an_query *q, int threads, int failed) {
    int64_t want = cs_an_raw_len(h->nq, (int)h->k);
    char *buf = malloc(sizeof(reply_head) + sizeof(cs_an_hit) * (size_t)want);
    reply_head rh = {-1, 0};
    cs_err err = {0};
    if (buf && !failed) {
        cs_an_hit *raw = malloc(sizeof *raw * (size_t)want); /* aligned */
        if (raw && !side_scan(me, q, h->nq, (int)h->k, (int)h->what, threads, raw, &err)) {
            rh = (reply_head){0, want};
            memcpy(buf + sizeof rh, raw, sizeof *raw * (size_t)want);
        } else
            fprintf(stderr, "copyscope: analyze: rank %d of %d: %s\n", cs_mpi_rank(), cs_mpi_size(),
                    raw ? err.msg : "out of memory scanning");
        free(raw);
    }
    if (buf) memcpy(buf, &rh, sizeof rh);
    int sent = buf && !rh.status; /* the lists, or the failure alone */
    send_reply(sent ? buf : (char *)&rh, (int64_t)sizeof rh + (sent ? want * (int64_t)sizeof(cs_an_hit) : 0),
               (int)h->timed);
    free(buf);
    return rh.status ? -1 : 0;
}
