#include "core/store.h"

#include <sys/stat.h>

#include "core/fs.h"
#include "core/shard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cs_store {
    sqlite3 *db;
    char *path;
    int writable; /* opened read-write: records its side files on close */
};

sqlite3 *cs_store_db(cs_store *s) { return s->db; }
const char *cs_store_path(const cs_store *s) { return s->path; }

int cs_store_fail(cs_store *s, cs_err *err, const char *what) {
    return cs_fail(err, CS_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int cs_store_exec(cs_store *s, const char *sql, cs_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cs_fail(err, CS_EDB, "%s: %s", s->path, msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int cs_store_prepare(cs_store *s, sqlite3_stmt **st, const char *sql, cs_err *err) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return cs_store_fail(s, err, "prepare");
    }
    return 0;
}

int cs_store_query_i64(cs_store *s, const char *sql, int64_t a, int64_t b, int64_t *v, cs_err *err) {
    sqlite3_stmt *st;
    *v = 0;
    if (cs_store_prepare(s, &st, sql, err)) return -1;
    int np = sqlite3_bind_parameter_count(st);
    if (np >= 1) sqlite3_bind_int64(st, 1, a);
    if (np >= 2) sqlite3_bind_int64(st, 2, b);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return cs_store_fail(s, err, "query");
    return 0;
}

int cs_store_begin(cs_store *s, cs_err *err) { return cs_store_exec(s, "BEGIN IMMEDIATE", err); }
int cs_store_commit(cs_store *s, cs_err *err) { return cs_store_exec(s, "COMMIT", err); }
void cs_store_rollback(cs_store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Applies every migration whose name is not yet in schema_migrations, in
 * list order, each atomically with its bookkeeping row. The check runs inside
 * the write transaction (BEGIN IMMEDIATE): two processes opening a new store
 * at once would otherwise both see a migration as missing, and the second
 * fail on "table meta already exists". */
static int store_migrate(cs_store *s, cs_err *err) {
    if (cs_store_exec(s,
                      "CREATE TABLE IF NOT EXISTS schema_migrations("
                      " name TEXT PRIMARY KEY, applied TEXT NOT NULL DEFAULT (datetime('now')))",
                      err))
        return -1;
    sqlite3_stmt *q = NULL, *ins = NULL;
    if (cs_store_prepare(s, &q, "SELECT 1 FROM schema_migrations WHERE name = ?", err)) return -1;
    if (cs_store_prepare(s, &ins, "INSERT INTO schema_migrations(name) VALUES (?)", err)) {
        sqlite3_finalize(q);
        return -1;
    }
    int rc = 0;
    for (const cs_migration *m = cs_migrations; m->name; m++) {
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, m->name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) continue; /* the common case, without taking the write lock */
        sqlite3_reset(q);
        if (cs_store_begin(s, err)) { rc = -1; break; }
        int step = sqlite3_step(q); /* again, now that no one else can write */
        sqlite3_reset(q);
        if (step == SQLITE_ROW) {
            cs_store_rollback(s);
            continue;
        }
        char *msg = NULL;
        if (sqlite3_exec(s->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
            cs_fail(err, CS_EDB, "%s: migration %s: %s", s->path, m->name, msg ? msg : "?");
            sqlite3_free(msg);
            cs_store_rollback(s);
            rc = -1;
            break;
        }
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, m->name, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE || cs_store_commit(s, err)) {
            if (!err || !err->code) cs_store_fail(s, err, "migration bookkeeping");
            cs_store_rollback(s);
            rc = -1;
            break;
        }
    }
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    return rc;
}

/* SQL cs_abspath(p) for the migration to absolute paths (core/schema.c):
 * a relative p against the current folder when the file is there, else
 * against the store's folder when it is there, else the current folder. */
static void sql_abspath(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *p = (const char *)sqlite3_value_text(argv[0]);
    if (!p || p[0] == '/') {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    const cs_store *s = sqlite3_user_data(ctx);
    struct stat sb;
    char *r = NULL;
    const char *sl = strrchr(s->path, '/');
    if (stat(p, &sb) != 0 && sl) {
        char *j = malloc((size_t)(sl - s->path) + strlen(p) + 2);
        if (j) {
            sprintf(j, "%.*s/%s", (int)(sl - s->path), s->path, p);
            if (stat(j, &sb) == 0) r = cs_abs_path(j);
            free(j);
        }
    }
    if (!r) r = cs_abs_path(p);
    if (!r) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, r, -1, free);
}

static int store_open_flags(cs_store **out, const char *path, int flags, cs_err *err) {
    *out = NULL;
    cs_store *s = calloc(1, sizeof *s);
    if (!s) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    s->path = strdup(path);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        cs_fail(err, CS_EDB, "%s: cannot open database: %s", path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
        cs_store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_create_function(s->db, "cs_abspath", 1, SQLITE_UTF8, s, sql_abspath, NULL, NULL);
    sqlite3_extended_result_codes(s->db, 1);
    /* a sharded store's shards (core/shard.h); read-write: after migrating */
    if (!(flags & SQLITE_OPEN_READWRITE) && cs_store_attach_shards(s, err)) {
        cs_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int cs_store_open(cs_store **out, const char *path, cs_err *err) {
    cs_store *s;
    *out = NULL;
    if (store_open_flags(&s, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err)) return -1;
    /* WAL: readers never block the writer, and a crash mid-batch leaves the
     * last committed state. NORMAL sync is durable across process crashes
     * (kill -9), which is what resumable runs need. */
    /* Switching a new file to WAL can answer "database is locked" at once,
     * without the busy handler, while another process does the same: retried. */
    for (int i = 0; i < 200; i++) {
        int r = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if ((r & 0xff) != SQLITE_BUSY && (r & 0xff) != SQLITE_LOCKED) break;
        usleep(50000);
    }
    s->writable = 1;
    if (cs_store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                         " PRAGMA foreign_keys=ON;", err) ||
        store_migrate(s, err) || cs_store_attach_shards(s, err)) {
        cs_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int cs_store_open_readonly(cs_store **out, const char *path, cs_err *err) {
    if (access(path, R_OK) != 0) {
        *out = NULL;
        return cs_fail(err, CS_ENOTFOUND, "%s: no such database", path);
    }
    return store_open_flags(out, path, SQLITE_OPEN_READONLY, err);
}

int cs_store_open_indexed(cs_store **out, const char *path, int writable, cs_err *err) {
    *out = NULL;
    if (access(path, F_OK) != 0)
        return cs_fail(err, CS_ENOTFOUND,
                       "%s: no such store: build the reference index first (copyscope index add --db %s PATH)",
                       path, path);
    cs_store *s;
    if (writable == 1 ? cs_store_open(&s, path, err) : store_open_flags(&s, path, SQLITE_OPEN_READONLY, err)) return -1;
    if (writable != CS_STORE_RO_UNCHECKED && cs_store_files_check(s, err)) {
        cs_store_close(s);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int64_t n = -1, bad = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FILTER (WHERE status <> 'error'),"
                                  " COUNT(*) FILTER (WHERE status = 'error') FROM refs", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        bad = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (n > 0) {
        *out = s;
        return 0;
    }
    if (n < 0) cs_fail(err, CS_EDB, "%s: not a copyscope store (no refs table): %s", path, sqlite3_errmsg(s->db));
    else
        cs_fail(err, CS_ENOTFOUND,
                "%s: the store holds no references%s: add them first (copyscope index add --db %s PATH)", path,
                bad ? " (every input was recorded as an error: see copyscope index ls --errors)" : "", path);
    cs_store_close(s);
    return -1;
}

void cs_store_close(cs_store *s) {
    if (!s) return;
    if (s->writable && s->db) cs_store_files_note(s);
    if (s->db) sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

char *cs_store_sidecar(const cs_store *s, const char *suffix) {
    size_t n = strlen(s->path) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.%s", s->path, suffix);
    return p;
}

int cs_store_meta_get(cs_store *s, const char *key, char **value, cs_err *err) {
    *value = NULL;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT value FROM meta WHERE key = ?", err)) return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = strdup(v ? v : "");
    } else if (rc != SQLITE_DONE) {
        cs_store_fail(s, err, "meta get");
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int cs_store_meta_set(cs_store *s, const char *key, const char *value, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "INSERT INTO meta(key, value) VALUES (?, ?)"
                                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value", err))
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : cs_store_fail(s, err, "meta set");
    sqlite3_finalize(st);
    return rc;
}
