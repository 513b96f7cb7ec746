/* store.h — the SQLite store every command shares (--db, default
 * ./copyscope.db).
 *
 * A store is a file set: the database <db> (with <db>-wal and <db>-shm while
 * in use) and side files <db>.<suffix> beside it (vector columns, ANN
 * indexes, background sets, text shards). Copy them together; side files are
 * recorded in the store (store_files, text_shards), so a store whose side
 * files were left behind is refused by cs_store_open_indexed (every command
 * that reads the index) naming them (cs_store_files_check).
 *
 * Opening a store creates it if needed, switches it to WAL, and applies the
 * schema migrations (core/schema.c) that it has not seen yet, each in its own
 * transaction. Modules run their own SQL through prepared statements on
 * cs_store_db(); work is committed in batches with cs_store_begin/commit so
 * an interrupted command leaves the database at the last committed batch. */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <sqlite3.h>
#include <stdint.h>

#include "core/err.h"

typedef struct cs_store cs_store;

/* A named schema step. Names are unique and never reused; once released a
 * migration is never edited: a change is a new migration appended to the list. */
typedef struct {
    const char *name;
    const char *sql;
} cs_migration;

extern const cs_migration cs_migrations[]; /* core/schema.c, NULL-terminated */

/* Opens (creating if absent) and migrates. On failure *out is NULL. */
int cs_store_open(cs_store **out, const char *path, cs_err *err);
/* Opens an existing store read-only (no migrations); fails if it is missing. */
int cs_store_open_readonly(cs_store **out, const char *path, cs_err *err);
/* Opens an existing store to read or analyse it: never creates one. Fails
 * (CS_ENOTFOUND) naming the store and saying `index add` first when the file
 * is missing or holds no reference (refs row with status ok or duplicate), so
 * that no command answers "novel" from an empty index. writable: read-write
 * and migrated (analyze, run), else read-only. */
int cs_store_open_indexed(cs_store **out, const char *path, int writable, cs_err *err);
/* writable for cs_store_open_indexed: read-only, without the side-file check
 * (index stats, which lists what is missing). */
enum { CS_STORE_RO_UNCHECKED = 2 };
void cs_store_close(cs_store *s);

sqlite3 *cs_store_db(cs_store *s);
const char *cs_store_path(const cs_store *s);

/* Transactions (BEGIN IMMEDIATE). rollback never fails. */
int cs_store_begin(cs_store *s, cs_err *err);
int cs_store_commit(cs_store *s, cs_err *err);
void cs_store_rollback(cs_store *s);

/* Prepares sql; on failure fills err with the SQLite message. */
int cs_store_prepare(cs_store *s, sqlite3_stmt **st, const char *sql, cs_err *err);
/* Runs SQL without results (no parameters). */
int cs_store_exec(cs_store *s, const char *sql, cs_err *err);
/* Runs sql, binding a to ?1 and b to ?2 when it has them, and sets *v to the
 * first column of its first row (0 when there is no row, or NULL). */
int cs_store_query_i64(cs_store *s, const char *sql, int64_t a, int64_t b, int64_t *v, cs_err *err);
/* Fills err from the connection's last error: "<db path>: <what>: <sqlite msg>". */
int cs_store_fail(cs_store *s, cs_err *err, const char *what);

/* Path of a file that lives beside the database: "<db path>.<suffix>"
 * (e.g. vector columns). Caller frees. */
char *cs_store_sidecar(const cs_store *s, const char *suffix);

/* One file of the store's set (cs_store_files_list). */
typedef struct {
    char *path;
    char role[32];   /* database, embedding column, text shard, ... */
    int present;
    int required;    /* recorded in the store: its absence loses data */
    int64_t bytes;
} cs_store_file;

/* Every file of the set: the database, WAL files, recorded side files and
 * text shards (required), and other <db>.* files on disk. Free with
 * cs_store_files_free. */
int cs_store_files_list(cs_store *s, cs_store_file **files, int *n, cs_err *err);
void cs_store_files_free(cs_store_file *files, int n);
/* CS_ENOTFOUND naming the first required file that is missing (and how many). */
int cs_store_files_check(cs_store *s, cs_err *err);
/* Records the <db>.* side files now on disk (a read-write store does it on close). */
void cs_store_files_note(cs_store *s);
/* Drops recorded side files that are missing (removed on purpose). */
int cs_store_files_forget_missing(cs_store *s, int *n_forgotten, cs_err *err);

/* Key/value settings in the meta table (e.g. the index's descriptor list). */
int cs_store_meta_get(cs_store *s, const char *key, char **value, cs_err *err); /* *value NULL if absent */
int cs_store_meta_set(cs_store *s, const char *key, const char *value, cs_err *err);

#endif
