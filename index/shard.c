/* shard.c — the sharded store's catalogue (index/shard.h). */
#include "index/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/shard.h"
#include "core/store.h"
#include "index/refs.h"

_Static_assert(CS_THUMB_SIZE == CS_STORE_THUMB, "core/shard.c re-reads thumbnails at index/refs.h's size");

int cs_shard_prepare(const char *db, int n, cs_err *err) {
    char *dir = cs_shard_dir(db);
    if (!dir) return cs_fail(err, CS_ENOMEM, "out of memory");
    int rc = cs_mkdir_p(dir, err);
    free(dir);
    if (rc) return -1;
    cs_store *s;
    if (cs_store_open(&s, db, err)) return -1;
    /* one process reads every shard through one connection (core/shard.h):
     * refused before any work rather than after it */
    sqlite3 *h = cs_store_db(s);
    sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, 125);
    int lim = sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, -1);
    if (n > lim) {
        cs_store_close(s);
        return cs_fail(err, CS_ELIMIT,
                       "%s: %d shards: this SQLite reads at most %d at once (run fewer ranks, each with more "
                       "threads: -j)",
                       db, n, lim);
    }
    char *v = NULL;
    rc = cs_store_meta_get(s, "shards", &v, err);
    if (!rc && v && atoi(v) != n)
        rc = cs_fail(err, CS_EUSAGE, "%s: a store of %s shards; it is added to with that many (mpirun -np %s)", db, v,
                     v);
    int64_t plain = 0;
    /* refs rows with hashes in the manifest itself: a one-process store */
    if (!rc && !v && cs_store_query_i64(s, "SELECT count(*) FROM main.ref_hashes", 0, 0, &plain, err)) rc = -1;
    if (!rc && plain > 0)
        rc = cs_fail(err, CS_EUSAGE, "%s: already holds an unsharded index; shard into a new --db", db);
    free(v);
    cs_store_close(s);
    return rc;
}

static int exec1(cs_store *s, const char *sql, cs_err *err) {
    if (sqlite3_exec(cs_store_db(s), sql, NULL, NULL, NULL) != SQLITE_OK) return cs_store_fail(s, err, sql);
    return 0;
}

/* Long: attach, offsets, copy, cross-shard duplicates, meta, detach, in order. */
int cs_shard_finish(const char *db, int n, cs_shard_totals *t, cs_err *err) {
    memset(t, 0, sizeof *t);
    cs_store *s;
    if (cs_store_open(&s, db, err)) return -1;
    cs_store_detach_shards(s);
    sqlite3 *h = cs_store_db(s);
    int64_t *off = calloc((size_t)n, sizeof *off);
    size_t ocap = (size_t)n * 24 + 8, oo = 0;
    char *offs = malloc(ocap), sql[1024];
    int rc = !off || !offs ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    if (!rc) offs[0] = 0;
    int attached = 0;
    sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, 125); /* capped at the library's compile-time maximum */
    if (!rc && n > sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, -1))
        rc = cs_fail(err, CS_ELIMIT, "%s: %d shards, and this SQLite attaches at most %d files to a connection", db, n,
                     sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, -1));
    for (int k = 0; !rc && k < n; k++) {
        char *sp = cs_shard_path(db, k, n);
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof sql, "cs_cat_%d", k + 1);
        if (!sp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (sqlite3_prepare_v2(h, "ATTACH ?1 AS ?2", -1, &st, NULL) != SQLITE_OK)
            rc = cs_store_fail(s, err, "attaching a shard");
        else {
            sqlite3_bind_text(st, 1, sp, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, sql, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) rc = cs_fail(err, CS_EDB, "%s: %s", sp, sqlite3_errmsg(h));
            else attached = k + 1;
        }
        sqlite3_finalize(st);
        free(sp);
    }
    /* offsets: each shard's ids start after the previous shards' largest */
    int64_t base = 0;
    for (int k = 0; !rc && k < n; k++) {
        int64_t mx = 0;
        snprintf(sql, sizeof sql, "SELECT coalesce(max(id), 0) FROM cs_cat_%d.refs", k + 1);
        if (cs_store_query_i64(s, sql, 0, 0, &mx, err)) rc = -1;
        off[k] = base;
        base += mx;
        oo += (size_t)snprintf(offs + oo, ocap - oo, "%s%lld", k ? " " : "", (long long)off[k]);
    }
    char *old = NULL;
    if (!rc) rc = cs_store_meta_get(s, "shard_offsets", &old, err);
    /* the catalogue's ids are fixed once written (findings point at them): a
     * store rebuilt with other inputs would move them */
    if (!rc && old && strcmp(old, offs))
        rc = cs_fail(err, CS_EUSAGE,
                     "%s: its shards no longer match the catalogue (offsets %s, were %s): a sharded store is "
                     "built from one input list (rerun with the same PATHs, or use a new --db)",
                     db, offs, old);
    free(old);
    if (!rc) rc = cs_store_begin(s, err);
    for (int k = 0; !rc && k < n; k++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO main.refs(id, source, sha256, size, caption, width, height, status, error, dup_of, "
                 "added) SELECT id + %lld, source, sha256, size, caption, width, height, status, error, "
                 "dup_of + %lld, added FROM cs_cat_%d.refs WHERE true ORDER BY id "
                 "ON CONFLICT(id) DO UPDATE SET source = excluded.source, sha256 = excluded.sha256, "
                 "size = excluded.size, caption = excluded.caption, width = excluded.width, "
                 "height = excluded.height, status = excluded.status, error = excluded.error, "
                 "dup_of = excluded.dup_of, added = excluded.added",
                 (long long)off[k], (long long)off[k], k + 1);
        rc = exec1(s, sql, err);
    }
    /* one process: a row is a duplicate of the first 'ok' row with its sha256 */
    if (!rc)
        rc = exec1(s,
                   "WITH canon AS (SELECT sha256, min(id) AS cid FROM main.refs WHERE status = 'ok' "
                   "GROUP BY sha256) "
                   "UPDATE main.refs SET status = 'duplicate', dup_of = canon.cid FROM canon "
                   "WHERE main.refs.sha256 = canon.sha256 AND main.refs.status IN ('ok', 'duplicate') "
                   "AND main.refs.id <> canon.cid AND (main.refs.status = 'ok' OR main.refs.dup_of <> canon.cid)",
                   err);
    if (!rc) t->cross_dups = sqlite3_changes(h);
    if (!rc) {
        snprintf(sql, sizeof sql, "%d", n);
        rc = cs_store_meta_set(s, "shards", sql, err) || cs_store_meta_set(s, "shard_offsets", offs, err) ? -1 : 0;
    }
    if (!rc) rc = cs_store_commit(s, err);
    if (rc) cs_store_rollback(s);
    if (!rc &&
        (cs_store_query_i64(s, "SELECT count(*) FROM main.refs", 0, 0, &t->refs, err) ||
         cs_store_query_i64(s, "SELECT count(*) FROM main.refs WHERE status = 'ok'", 0, 0, &t->ok, err) ||
         cs_store_query_i64(s, "SELECT count(*) FROM main.refs WHERE status = 'duplicate'", 0, 0, &t->duplicate,
                            err) ||
         cs_store_query_i64(s, "SELECT count(*) FROM main.refs WHERE status = 'error'", 0, 0, &t->error, err)))
        rc = -1;
    for (int k = 0; k < attached; k++) {
        snprintf(sql, sizeof sql, "DETACH cs_cat_%d", k + 1);
        sqlite3_exec(h, sql, NULL, NULL, NULL);
    }
    free(off);
    free(offs);
    cs_store_close(s);
    return rc;
}
