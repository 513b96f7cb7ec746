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

/* Shard k's refs rows into the manifest under id + off (an upsert: a rerun
 * rewrites the same rows), read through a connection of its own: no ATTACH,
 * whose limit (10 files in Debian's SQLite) would cap the shard count. */
static int copy_refs(cs_store *s, sqlite3_stmt *ins, const char *sp, int64_t off, cs_err *err) {
    sqlite3 *h = NULL;
    sqlite3_stmt *sel = NULL;
    int rc = 0;
    if (sqlite3_open_v2(sp, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h,
                           "SELECT id, source, sha256, size, caption, width, height, status, error, dup_of, added "
                           "FROM main.refs ORDER BY id",
                           -1, &sel, NULL) != SQLITE_OK)
        rc = cs_fail(err, CS_EDB, "%s: %s", sp, h ? sqlite3_errmsg(h) : "out of memory");
    else sqlite3_busy_timeout(h, 10000);
    int st;
    while (!rc && (st = sqlite3_step(sel)) == SQLITE_ROW) {
        for (int c = 0; c < 11; c++) sqlite3_bind_value(ins, c + 1, sqlite3_column_value(sel, c));
        sqlite3_bind_int64(ins, 1, sqlite3_column_int64(sel, 0) + off);
        if (sqlite3_column_type(sel, 9) != SQLITE_NULL) sqlite3_bind_int64(ins, 10, sqlite3_column_int64(sel, 9) + off);
        if (sqlite3_step(ins) != SQLITE_DONE) rc = cs_store_fail(s, err, "writing the catalogue");
        sqlite3_reset(ins);
    }
    if (!rc && st != SQLITE_DONE) rc = cs_fail(err, CS_EDB, "%s: %s", sp, sqlite3_errmsg(h));
    sqlite3_finalize(sel);
    sqlite3_close(h);
    return rc;
}

static int shard_max_id(const char *sp, int64_t *mx, cs_err *err) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_open_v2(sp, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "SELECT coalesce(max(id), 0) FROM main.refs", -1, &st, NULL) != SQLITE_OK)
        rc = cs_fail(err, CS_EDB, "%s: %s", sp, h ? sqlite3_errmsg(h) : "out of memory");
    else {
        sqlite3_busy_timeout(h, 10000);
        if (sqlite3_step(st) == SQLITE_ROW) *mx = sqlite3_column_int64(st, 0);
        else rc = cs_fail(err, CS_EDB, "%s: %s", sp, sqlite3_errmsg(h));
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return rc;
}

/* Long: offsets, copy, cross-shard duplicates, meta, in order. */
int cs_shard_finish(const char *db, int n, cs_shard_totals *t, cs_err *err) {
    memset(t, 0, sizeof *t);
    cs_store *s;
    if (cs_store_open(&s, db, err)) return -1;
    cs_store_detach_shards(s);
    sqlite3 *h = cs_store_db(s);
    int64_t *off = calloc((size_t)n, sizeof *off);
    size_t ocap = (size_t)n * 24 + 8, oo = 0;
    char *offs = malloc(ocap), **sp = calloc((size_t)n, sizeof *sp), sql[64];
    int rc = !off || !offs || !sp ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    if (!rc) offs[0] = 0;
    for (int k = 0; !rc && k < n; k++)
        if (!(sp[k] = cs_shard_path(db, k, n))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    /* offsets: each shard's ids start after the previous shards' largest */
    int64_t base = 0;
    for (int k = 0; !rc && k < n; k++) {
        int64_t mx = 0;
        if (shard_max_id(sp[k], &mx, err)) rc = -1;
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
    sqlite3_stmt *ins = NULL;
    if (!rc && cs_store_prepare(s, &ins,
                                "INSERT INTO main.refs(id, source, sha256, size, caption, width, height, status, "
                                "error, dup_of, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                                "ON CONFLICT(id) DO UPDATE SET source = excluded.source, sha256 = excluded.sha256, "
                                "size = excluded.size, caption = excluded.caption, width = excluded.width, "
                                "height = excluded.height, status = excluded.status, error = excluded.error, "
                                "dup_of = excluded.dup_of, added = excluded.added",
                                err))
        rc = -1;
    if (!rc) rc = cs_store_begin(s, err);
    for (int k = 0; !rc && k < n; k++) rc = copy_refs(s, ins, sp[k], off[k], err);
    sqlite3_finalize(ins);
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
    for (int k = 0; sp && k < n; k++) free(sp[k]);
    free(sp);
    free(off);
    free(offs);
    cs_store_close(s);
    return rc;
}
