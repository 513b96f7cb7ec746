/* cmd_mpi_text_index.c — `text index` under mpirun (cli/cli_mpi_text.h).
 *
 * Units are input files (a folder's .txt/.md/.jsonl files and their .gz
 * forms, listed by cs_text_list_inputs, the list cs_text_index reads:
 * recursively, in name order, a path named twice read once). Unit i weighs its bytes + 4 KiB and goes to
 * rank floor(N x bytes before it / all bytes): contiguous runs in input
 * order, the same cut on every rank with no message. Rank K indexes its run
 * with cs_text_index into its own store DB.textparts/K-of-N.db (the usual
 * build: shards committed whole, sources already there skipped). When all
 * are done, rank 0 moves each part's new shards (hard links of their files
 * under DB's names) and documents (in their order) into DB, one
 * transaction per part, parts in rank order: the documents get the ids one
 * process gives them, in its order, and DB is an ordinary corpus of more
 * shards (answers do not depend on the split). What each part has moved is
 * kept in DB's meta under the part's token, so a rank killed at any point
 * loses at most the shard it was building: the rerun builds the rest and
 * moves only what DB lacks. The parts are deleted when everything is in. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_mpi_text.h"
#include "core/mpi_comm.h"

static int ends_with(const char *s, const char *ext) {
    size_t n = strlen(s), e = strlen(ext);
    return n >= e && !strcasecmp(s + n - e, ext);
}

static int is_jsonl(const char *p) { return ends_with(p, ".jsonl") || ends_with(p, ".jsonl.gz"); }

/* The rank of each unit: contiguous runs of about equal weight. */
static int unit_part(int size, uint64_t total, uint64_t before) {
    int k = total ? (int)((double)before * size / (double)total) : 0;
    return k < size ? k : size - 1;
}

/* The documents DB already holds from this file (one process skips them):
 * its own row, or a JSONL file's "path:LINE" rows. */
static int64_t already_in(cs_store *db, const char *path, cs_err *err) {
    sqlite3_stmt *st;
    int j = is_jsonl(path);
    if (cs_store_prepare(db, &st,
                         j ? "SELECT count(*) FROM text_docs WHERE substr(source, 1, length(?1) + 1) = ?1 || ':'"
                           : "SELECT count(*) FROM text_docs WHERE source = ?1",
                         err))
        return -1;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n < 0 ? cs_store_fail(db, err, "reading text_docs") : n;
}

static char *part_path(const char *db, int k, int n) {
    size_t len = strlen(db) + 64;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s.textparts/%d-of-%d.db", db, k + 1, n);
    return p;
}

/* This rank's run of units into its part store (created with a token that
 * names it in DB's meta). */
static int index_part(const char *db, const cs_text_inputs *u, const int *part, const cs_text_index_opts *o,
                      cs_text_index_stats *st, cs_err *err) {
    int rank = cs_mpi_rank(), size = cs_mpi_size();
    memset(st, 0, sizeof *st);
    cs_store *m = NULL, *ps = NULL;
    char *pp = part_path(db, rank, size), **mine = malloc((u->n + 1) * sizeof *mine);
    int n = 0, rc = !pp || !mine ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    if (!rc) rc = cs_store_open_readonly(&m, db, err);
    for (size_t i = 0; !rc && i < u->n; i++) {
        if (!u->path[i] || part[i] != rank) continue;
        int64_t have = already_in(m, u->path[i], err);
        if (have < 0) rc = -1;
        else if (have > 0) st->docs_skipped += have;
        else mine[n++] = u->path[i];
    }
    cs_store_close(m);
    char *token = NULL;
    if (!rc) rc = cs_store_open(&ps, pp, err);
    if (!rc) rc = cs_store_meta_get(ps, "part_token", &token, err);
    if (!rc && !token) { /* a new part: a name no earlier part had */
        char t[96];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(t, sizeof t, "%lld.%09ld-%d-%d-of-%d", (long long)ts.tv_sec, ts.tv_nsec, (int)getpid(), rank + 1,
                 size);
        rc = cs_store_meta_set(ps, "part_token", t, err);
    }
    free(token);
    if (!rc && n) {
        cs_text_index_opts po = *o;
        po.progress = o->progress && rank == 0;
        int64_t pre = st->docs_skipped;
        rc = cs_text_index(ps, (const char *const *)mine, n, &po, st, err);
        st->docs_skipped += pre;
    }
    cs_store_close(ps);
    free(pp);
    free(mine);
    return rc;
}

/* ---- rank 0: the parts into DB ---- */

/* Shard sid of part ps becomes shard nid of DB: its files hard-linked
 * under DB's names (a file left by a failed move is replaced). */
static int link_files(cs_store *ps, int64_t sid, cs_store *db, int64_t nid, cs_err *err) {
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "text-%lld.%s", (long long)sid, cs_text_shard_ext[k]);
        snprintf(b, sizeof b, "text-%lld.%s", (long long)nid, cs_text_shard_ext[k]);
        char *src = cs_store_sidecar(ps, a), *dst = cs_store_sidecar(db, b);
        if (!src || !dst) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else {
            unlink(dst);
            if (link(src, dst)) rc = cs_fail(err, CS_EIO, "%s: cannot link to %s: %s", src, dst, strerror(errno));
        }
        free(src);
        free(dst);
    }
    return rc;
}

/* The part's shards and documents after the marks (sub ids), into DB in
 * the open transaction; *ms, *md: the new marks. */
static int move_rows(cs_store *ps, cs_store *db, int64_t *ms, int64_t *md, int64_t *shards, cs_err *err) {
    sqlite3_stmt *q = NULL, *ins = NULL, *d = NULL, *insd = NULL;
    int64_t *map = NULL, nmap = 0, cap = 0; /* (sub id, new id) pairs */
    int rc = -1, r;
    if (cs_store_prepare(ps, &q, "SELECT id, text_file, sa_file, bytes, n_docs, n_suffixes FROM text_shards "
                                 "WHERE id > ? ORDER BY id", err) ||
        cs_store_prepare(db, &ins, "INSERT INTO text_shards(text_file, sa_file, bytes, n_docs, n_suffixes) "
                                   "VALUES (?, ?, ?, ?, ?)", err))
        goto out;
    sqlite3_bind_int64(q, 1, *ms);
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t sid = sqlite3_column_int64(q, 0);
        /* the id first: it names the files (as text_corpus.c's commit) */
        char tn[64], sn[64];
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, "", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, "", -1, SQLITE_STATIC);
        for (int k = 3; k <= 5; k++) sqlite3_bind_int64(ins, k, sqlite3_column_int64(q, k));
        if (sqlite3_step(ins) != SQLITE_DONE) {
            cs_store_fail(db, err, "insert text_shards");
            goto out;
        }
        int64_t nid = sqlite3_last_insert_rowid(cs_store_db(db));
        snprintf(tn, sizeof tn, "text-%lld.%s", (long long)nid, cs_text_shard_ext[0]);
        snprintf(sn, sizeof sn, "text-%lld.%s", (long long)nid, cs_text_shard_ext[1]);
        char sql[200];
        snprintf(sql, sizeof sql, "UPDATE text_shards SET text_file = '%s', sa_file = '%s' WHERE id = %lld", tn, sn,
                 (long long)nid);
        if (cs_store_exec(db, sql, err) || link_files(ps, sid, db, nid, err)) goto out;
        if (nmap == cap) {
            int64_t *nm = realloc(map, (size_t)(cap = cap ? cap * 2 : 16) * 2 * sizeof *nm);
            if (!nm) {
                cs_fail(err, CS_ENOMEM, "out of memory");
                goto out;
            }
            map = nm;
        }
        map[2 * nmap] = sid;
        map[2 * nmap++ + 1] = nid;
        *ms = sid;
        (*shards)++;
    }
    if (r != SQLITE_DONE) {
        cs_store_fail(ps, err, "reading text_shards");
        goto out;
    }
    if (cs_store_prepare(ps, &d, "SELECT id, source, name, status, note, shard_id, start, norm_bytes, orig_bytes, "
                                 "words, offmap FROM text_docs WHERE id > ? ORDER BY id", err) ||
        cs_store_prepare(db, &insd, "INSERT OR IGNORE INTO text_docs(source, name, status, note, shard_id, start, "
                                    "norm_bytes, orig_bytes, words, offmap) VALUES (?,?,?,?,?,?,?,?,?,?)", err))
        goto out;
    sqlite3_bind_int64(d, 1, *md);
    while ((r = sqlite3_step(d)) == SQLITE_ROW) {
        sqlite3_reset(insd);
        sqlite3_clear_bindings(insd);
        for (int k = 1; k <= 10; k++) sqlite3_bind_value(insd, k, sqlite3_column_value(d, k));
        if (sqlite3_column_type(d, 5) != SQLITE_NULL) {
            int64_t sid = sqlite3_column_int64(d, 5), nid = 0;
            for (int64_t i = 0; i < nmap && !nid; i++)
                if (map[2 * i] == sid) nid = map[2 * i + 1];
            if (!nid) {
                cs_fail(err, CS_EFORMAT, "%s: document %lld is in shard %lld, which is not being moved",
                        cs_store_path(ps), (long long)sqlite3_column_int64(d, 0), (long long)sid);
                goto out;
            }
            sqlite3_bind_int64(insd, 5, nid);
        }
        if (sqlite3_step(insd) != SQLITE_DONE) {
            cs_store_fail(db, err, "insert text_docs");
            goto out;
        }
        *md = sqlite3_column_int64(d, 0);
    }
    if (r != SQLITE_DONE) {
        cs_store_fail(ps, err, "reading text_docs");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    sqlite3_finalize(d);
    sqlite3_finalize(insd);
    free(map);
    return rc;
}

/* Part k into DB: one transaction, its marks with it. */
static int move_part(cs_store *db, const char *dbpath, int k, int n, int64_t *shards, char **key, cs_err *err) {
    char *pp = part_path(dbpath, k, n), *token = NULL, *mark = NULL;
    cs_store *ps = NULL;
    int rc = pp ? cs_store_open_readonly(&ps, pp, err) : cs_fail(err, CS_ENOMEM, "out of memory");
    if (!rc) rc = cs_store_meta_get(ps, "part_token", &token, err);
    if (!rc && !token) rc = cs_fail(err, CS_EFORMAT, "%s: not a text index part (no token)", pp);
    size_t kl = token ? strlen(token) + 16 : 0;
    if (!rc && !(*key = malloc(kl))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    if (!rc) snprintf(*key, kl, "textpart %s", token);
    if (!rc) rc = cs_store_meta_get(db, *key, &mark, err);
    long long ms = 0, md = 0;
    if (!rc && mark && sscanf(mark, "%lld %lld", &ms, &md) != 2) ms = md = 0;
    int64_t s64 = ms, d64 = md;
    if (!rc) rc = cs_store_begin(db, err);
    if (!rc) {
        char v[64];
        rc = move_rows(ps, db, &s64, &d64, shards, err);
        snprintf(v, sizeof v, "%lld %lld", (long long)s64, (long long)d64);
        if (!rc) rc = cs_store_meta_set(db, *key, v, err);
        if (!rc) rc = cs_store_commit(db, err);
        if (rc) cs_store_rollback(db);
    }
    cs_store_close(ps);
    free(pp);
    free(token);
    free(mark);
    return rc;
}

/* Everything is in DB: the parts go (files first: a mark without its part
 * is harmless, a part without its mark would be moved again). */
static void remove_parts(cs_store *db, const char *dbpath, char **keys, int n) {
    size_t len = strlen(dbpath) + 16;
    char *dir = malloc(len);
    if (!dir) return;
    snprintf(dir, len, "%s.textparts", dbpath);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t pl = len + strlen(e->d_name) + 2;
        char *p = malloc(pl);
        if (p) snprintf(p, pl, "%s/%s", dir, e->d_name), unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
    for (int k = 0; k < n; k++) {
        if (!keys[k]) continue;
        sqlite3_stmt *st;
        cs_err e2 = {0};
        if (cs_store_prepare(db, &st, "DELETE FROM meta WHERE key = ?", &e2)) continue;
        sqlite3_bind_text(st, 1, keys[k], -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
}

enum { T_OK, T_EMPTY, T_ERR, T_SKIP, T_SHARDS, T_IN, T_NORM, T_N };

int cli_mpi_text_index(const char *db, char **paths, int n, const cs_text_index_opts *o, cs_text_index_stats *st,
                       cs_err *err) {
    int rank = cs_mpi_rank(), size = cs_mpi_size();
    memset(st, 0, sizeof *st);
    cs_text_inputs u;
    int *part = NULL, bad = cs_text_list_inputs((const char *const *)paths, n, &u, err);
    if (!bad && !(part = malloc((u.n + 1) * sizeof *part))) bad = cs_fail(err, CS_ENOMEM, "out of memory");
    uint64_t total = 0, before = 0;
    for (size_t i = 0; !bad && i < u.n; i++) total += u.path[i] ? u.size[i] + 4096 : 0;
    for (size_t i = 0; !bad && i < u.n; i++) {
        part[i] = unit_part(size, total, before);
        before += u.path[i] ? u.size[i] + 4096 : 0;
    }
    /* rank 0 makes DB and the parts' folder before anyone opens them */
    if (!bad && rank == 0) {
        cs_store *m = NULL;
        size_t len = strlen(db) + 16;
        char *dir = malloc(len);
        if (!dir) bad = cs_fail(err, CS_ENOMEM, "out of memory");
        else snprintf(dir, len, "%s.textparts", db);
        if (!bad && mkdir(dir, 0777) && errno != EEXIST)
            bad = cs_fail(err, CS_EIO, "%s: cannot create: %s", dir, strerror(errno));
        free(dir);
        if (!bad) bad = cs_store_open(&m, db, err);
        cs_store_close(m);
    }
    if (cs_mpi_any(bad)) {
        cs_text_inputs_free(&u);
        free(part);
        return bad ? -1 : cs_fail(err, CS_EIO, "text index: rank 0 could not prepare %s", db);
    }
    cs_text_index_stats mine;
    bad = index_part(db, &u, part, o, &mine, err);
    cs_text_inputs_free(&u);
    free(part);
    if (bad) fprintf(stderr, "copyscope: text index: rank %d of %d: %s\n", rank, size, err->msg);
    int64_t v[T_N] = {mine.docs_ok, mine.docs_empty, mine.docs_error, mine.docs_skipped, 0,
                      (int64_t)mine.bytes_in, (int64_t)mine.bytes_norm};
    if (cs_mpi_any(bad)) /* the parts keep what they committed: a rerun goes on */
        return bad ? -1 : cs_fail(err, CS_EIO, "text index: another rank failed (its message above)");
    cs_mpi_sum_i64(v, T_N);
    if (rank == 0) {
        cs_store *m = NULL;
        char **keys = calloc((size_t)size, sizeof *keys);
        bad = !keys ? cs_fail(err, CS_ENOMEM, "out of memory") : cs_store_open(&m, db, err);
        for (int k = 0; !bad && k < size; k++) bad = move_part(m, db, k, size, &v[T_SHARDS], &keys[k], err);
        if (!bad) remove_parts(m, db, keys, size);
        for (int k = 0; keys && k < size; k++) free(keys[k]);
        free(keys);
        cs_store_close(m);
    }
    st->docs_ok = v[T_OK];
    st->docs_empty = v[T_EMPTY];
    st->docs_error = v[T_ERR];
    st->docs_skipped = v[T_SKIP];
    st->shards = v[T_SHARDS];
    st->bytes_in = (uint64_t)v[T_IN];
    st->bytes_norm = (uint64_t)v[T_NORM];
    cli_mpi_print_cpu("text index");
    if (cs_mpi_any(bad)) return bad ? -1 : 0;
    return 0;
}
