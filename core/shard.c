/* shard.c — a sharded store's shards, attached under one connection (shard.h). */
#include "core/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *cs_shard_dir(const char *db) {
    size_t n = strlen(db) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.shards", db);
    return p;
}

char *cs_shard_path(const char *db, int k, int n) {
    size_t len = strlen(db) + 48;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s.shards/%d-of-%d.db", db, k + 1, n);
    return p;
}

static int meta_int(sqlite3 *db, const char *key, char *out, size_t n) {
    sqlite3_stmt *st;
    out[0] = 0;
    /* a store without a meta table (not ours, or mid-migration) is simply not sharded */
    if (sqlite3_prepare_v2(db, "SELECT value FROM main.meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

int cs_store_shards(cs_store *s) {
    char v[32];
    if (!meta_int(cs_store_db(s), "shards", v, sizeof v)) return 0;
    int n = atoi(v);
    return n > 0 ? n : 0;
}

/* The views: one SELECT per shard, global ids, only rows whose refs row is ok. */
static const struct {
    const char *name, *cols;
} views[] = {
    {"ref_hashes", "x.pdq, x.pdq_quality, x.phash, x.dhash, x.ahash"},
    {"ref_thumbs", "x.w, x.h, x.rgb"},
    {"ref_localfeat", "x.rec"},
};

void cs_store_detach_shards(cs_store *s) {
    sqlite3 *db = cs_store_db(s);
    char sql[128];
    for (size_t v = 0; v < sizeof views / sizeof views[0]; v++) {
        snprintf(sql, sizeof sql, "DROP VIEW IF EXISTS temp.%s", views[v].name);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    for (int k = 0; k < 4096; k++) {
        snprintf(sql, sizeof sql, "DETACH cs_shard_%d", k + 1);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) break;
    }
}

/* Long: parse the offsets, attach each shard, build three views, in order. */
int cs_store_attach_shards(cs_store *s, cs_err *err) {
    sqlite3 *db = cs_store_db(s);
    char nv[32], *offs = malloc(1 << 20);
    if (!offs) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (!meta_int(db, "shards", nv, sizeof nv) || !meta_int(db, "shard_offsets", offs, 1 << 20)) {
        free(offs);
        return 0;
    }
    int n = atoi(nv), rc = 0;
    const char *path = cs_store_path(s);
    if (n <= 0) {
        free(offs);
        return cs_fail(err, CS_EFORMAT, "%s: bad meta 'shards' = '%s'", path, nv);
    }
    /* the shards are attached with the connection's own mode; SQLite allows
     * only so many attached files per connection */
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 125); /* capped at the library's compile-time maximum */
    int lim = sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, -1);
    if (n > lim) {
        free(offs);
        return cs_fail(err, CS_ELIMIT,
                       "%s: %d shards, and one process can attach at most %d: read it under mpirun with "
                       "copyscope-mpi, or rebuild with fewer shards",
                       path, n, lim);
    }
    long long *off = calloc((size_t)n, sizeof *off);
    size_t cap = 4096 + (size_t)n * 600;
    char *sql = malloc(cap);
    if (!off || !sql) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    char *p = offs;
    for (int k = 0; !rc && k < n; k++) {
        char *end;
        off[k] = strtoll(p, &end, 10);
        if (end == p) rc = cs_fail(err, CS_EFORMAT, "%s: meta 'shard_offsets' has fewer than %d numbers", path, n);
        p = end;
    }
    for (int k = 0; !rc && k < n; k++) {
        char *sp = cs_shard_path(path, k, n), alias[32];
        snprintf(alias, sizeof alias, "cs_shard_%d", k + 1);
        sqlite3_stmt *st = NULL;
        if (!sp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (access(sp, R_OK) != 0) /* ATTACH would create an empty one */
            rc = cs_fail(err, CS_ENOTFOUND, "%s: its shard %s is missing or unreadable", path, sp);
        else if (sqlite3_prepare_v2(db, "ATTACH ?1 AS ?2", -1, &st, NULL) != SQLITE_OK)
            rc = cs_store_fail(s, err, "attaching a shard");
        else {
            sqlite3_bind_text(st, 1, sp, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, alias, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = cs_fail(err, CS_EDB, "%s: shard %s: %s", path, sp, sqlite3_errmsg(db));
        }
        sqlite3_finalize(st);
        free(sp);
    }
    for (size_t v = 0; !rc && v < sizeof views / sizeof views[0]; v++) {
        size_t o = (size_t)snprintf(sql, cap, "CREATE TEMP VIEW %s AS ", views[v].name);
        for (int k = 0; k < n && o < cap; k++)
            o += (size_t)snprintf(sql + o, cap - o,
                                  "%sSELECT x.ref_id + %lld AS ref_id, %s FROM cs_shard_%d.%s x "
                                  "JOIN main.refs r ON r.id = x.ref_id + %lld WHERE r.status = 'ok'",
                                  k ? " UNION ALL " : "", off[k], views[v].cols, k + 1, views[v].name, off[k]);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            rc = cs_fail(err, CS_EDB, "%s: shard views: %s", path, sqlite3_errmsg(db));
    }
    free(off);
    free(sql);
    free(offs);
    if (rc) cs_store_detach_shards(s);
    return rc;
}
