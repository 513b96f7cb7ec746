/* cmd_mpi_text_index.c — `text index` under mpirun (cli/cli_mpi_text.h).
 *
 * The input is the files cs_text_index reads (cs_text_list_inputs: a
 * folder's .txt/.md/.jsonl files and their .gz forms, recursively, in name
 * order, a path named twice read once), laid end to end, each file
 * weighing its bytes + 4 KiB. Cut K of N falls at K/N of the weight; rank K
 * takes what starts between cut K and cut K+1: whole files, and from an
 * uncompressed JSONL file the cuts fall in, the lines that start in its
 * share (a line across a cut goes to the rank where it starts; a line longer
 * than a share leaves a rank nothing of that file). A .gz file or a plain
 * text file is one document or cannot be entered mid-way: it goes whole to
 * the rank where it starts. Every rank computes the same cuts from the
 * files' sizes with no message; the lines' numbers (JSONL documents are
 * "path:LINE") come from one sum of every rank's newline count in its share.
 * Rank K indexes its run with cs_text_index into its own store
 * DB.textparts/K-of-N.db (the usual
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

/* Cut k of n over total weight: floor(total x k / n), without overflow. */
static uint64_t cut(uint64_t total, int k, int n) {
    return total / (uint64_t)n * (uint64_t)k + total % (uint64_t)n * (uint64_t)k / (uint64_t)n;
}

/* The rank whose share holds weight offset x: the last cut at or before it. */
static int owner(uint64_t total, int n, uint64_t x) {
    int k = 0;
    while (k + 1 < n && cut(total, k + 1, n) <= x) k++;
    return k;
}

/* Where the first line starting at or after byte b of f begins: b when b
 * is 0 or follows a newline, else just past the next newline (size if none). */
static int line_start(FILE *f, const char *path, uint64_t b, uint64_t size, uint64_t *at, cs_err *err) {
    if (b == 0 || b >= size) return *at = b < size ? b : size, 0;
    if (fseeko(f, (off_t)(b - 1), SEEK_SET)) return cs_fail(err, CS_EIO, "%s: cannot seek: %s", path, strerror(errno));
    uint64_t pos = b - 1;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') pos++;
    if (ferror(f)) return cs_fail(err, CS_EIO, "%s: read error: %s", path, strerror(errno));
    *at = c == EOF ? size : pos + 1;
    return 0;
}

/* The newlines in bytes [a, e) of f. */
static int count_lines(FILE *f, const char *path, uint64_t a, uint64_t e, int64_t *n, cs_err *err) {
    static char buf[1 << 16];
    *n = 0;
    if (a >= e) return 0;
    if (fseeko(f, (off_t)a, SEEK_SET)) return cs_fail(err, CS_EIO, "%s: cannot seek: %s", path, strerror(errno));
    while (a < e) {
        size_t want = e - a < sizeof buf ? (size_t)(e - a) : sizeof buf, k = fread(buf, 1, want, f);
        if (!k) return cs_fail(err, CS_EIO, "%s: %s", path, ferror(f) ? strerror(errno) : "shorter than listed");
        for (const char *p = buf, *q = buf + k; (p = memchr(p, '\n', (size_t)(q - p))); p++) (*n)++;
        a += k;
    }
    return 0;
}

/* What this rank reads: part[i] 1 for a unit of its run (whole, or the
 * range in rg[]), else 0; rg: the split files' lines in this rank's share
 * (at most two: the file its share starts in and the one it ends in).
 * Collective (one sum of the line counts). */
typedef struct {
    int *part;
    cs_text_range rg[2];
    int n_rg;
    int64_t last_line[2]; /* rg's lines: first_line .. last_line - 1 */
} run_plan;

static int plan_run(const cs_text_inputs *u, run_plan *pl, cs_err *err) {
    int rank = cs_mpi_rank(), size = cs_mpi_size(), bad = 0, n_split = 0;
    memset(pl, 0, sizeof *pl);
    if (!(pl->part = calloc(u->n + 1, sizeof *pl->part))) bad = cs_fail(err, CS_ENOMEM, "out of memory");
    uint64_t total = 0, before = 0;
    for (size_t i = 0; i < u->n; i++) total += u->path[i] ? u->size[i] + 4096 : 0;
    /* every rank walks the same files to the same cuts: the split files are
     * those a cut falls strictly inside (counted alike everywhere) */
    int64_t *nl = calloc((size_t)size * (size_t)(size > 1 ? size - 1 : 1), sizeof *nl);
    int64_t first_in[2] = {0, 0}; /* rg[j]'s index among the split files */
    if (!bad && !nl) bad = cs_fail(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; i < u->n && pl->part; i++) { /* to the end even after a failure: n_split alike */
        if (!u->path[i]) continue;
        uint64_t sz = u->size[i], b0 = before;
        before += sz + 4096;
        int k0 = owner(total, size, b0), k1 = sz ? owner(total, size, b0 + sz - 1) : k0;
        if (!is_jsonl(u->path[i]) || ends_with(u->path[i], ".gz") || k0 == k1) {
            pl->part[i] = k0 == rank; /* whole, to the rank it starts in */
            continue;
        }
        int s = n_split++;
        if (rank < k0 || rank > k1 || bad) continue;
        if (pl->n_rg == 2) { /* cannot happen: a share starts in one file and ends in one */
            bad = cs_fail(err, CS_EFORMAT, "%s: a third split file in one rank's share", u->path[i]);
            continue;
        }
        uint64_t lo = rank == k0 ? 0 : cut(total, rank, size) - b0;
        uint64_t hi = rank == k1 ? sz : cut(total, rank + 1, size) - b0;
        FILE *f = fopen(u->path[i], "rb");
        cs_text_range *r = &pl->rg[pl->n_rg];
        if (!f) bad = cs_fail(err, CS_EIO, "%s: cannot open: %s", u->path[i], strerror(errno));
        if (!bad) bad = line_start(f, u->path[i], lo, sz, &r->start, err);
        if (!bad) bad = line_start(f, u->path[i], hi, sz, &r->end, err);
        if (!bad) bad = count_lines(f, u->path[i], r->start, r->end, &nl[(size_t)s * size + rank], err);
        if (f) fclose(f);
        r->path = u->path[i];
        first_in[pl->n_rg] = s;
        pl->last_line[pl->n_rg] = r->end == sz; /* the file's last line may lack its newline */
        pl->part[i] = !bad && r->start < r->end;
        pl->n_rg += pl->part[i];
    }
    /* a sum even when this rank failed: the others are in it too */
    if (n_split && nl) cs_mpi_sum_i64(nl, n_split * size);
    for (int j = 0; j < pl->n_rg; j++) {
        int64_t *v = &nl[first_in[j] * size], line = 1;
        for (int k = 0; k < rank; k++) line += v[k];
        pl->rg[j].first_line = line;
        pl->last_line[j] = line + v[rank] + pl->last_line[j];
    }
    free(nl);
    return bad;
}

/* The documents DB already holds from this file (one process skips them):
 * its own row, or a JSONL file's "path:LINE" rows (only lines [l0, l1)
 * when l1 > 0: this rank's share of a split file). */
static int64_t already_in(cs_store *db, const char *path, int64_t l0, int64_t l1, cs_err *err) {
    sqlite3_stmt *st;
    int j = is_jsonl(path);
    if (cs_store_prepare(db, &st,
                         j ? "SELECT count(*) FROM text_docs WHERE substr(source, 1, length(?1) + 1) = ?1 || ':' "
                             "AND (?3 = 0 OR CAST(substr(source, length(?1) + 2) AS INTEGER) BETWEEN ?2 AND ?3 - 1)"
                           : "SELECT count(*) FROM text_docs WHERE source = ?1",
                         err))
        return -1;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    if (j) sqlite3_bind_int64(st, 2, l0), sqlite3_bind_int64(st, 3, l1);
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
static int index_part(const char *db, const cs_text_inputs *u, const run_plan *pl, const cs_text_index_opts *o,
                      cs_text_index_stats *st, cs_err *err) {
    int rank = cs_mpi_rank(), size = cs_mpi_size();
    memset(st, 0, sizeof *st);
    cs_store *m = NULL, *ps = NULL;
    char *pp = part_path(db, rank, size), **mine = malloc((u->n + 1) * sizeof *mine);
    int n = 0, rc = !pp || !mine ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    if (!rc) rc = cs_store_open_readonly(&m, db, err);
    for (size_t i = 0; !rc && i < u->n; i++) {
        if (!u->path[i] || !pl->part[i]) continue;
        int64_t l0 = 0, l1 = 0;
        for (int j = 0; j < pl->n_rg; j++)
            if (pl->rg[j].path == u->path[i]) l0 = pl->rg[j].first_line, l1 = pl->last_line[j];
        int64_t have = already_in(m, u->path[i], l0, l1, err);
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
        po.ranges = pl->rg, po.n_ranges = pl->n_rg;
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
    run_plan pl = {0};
    int bad = cs_text_list_inputs((const char *const *)paths, n, &u, err);
    /* plan_run is collective: every rank or none */
    int any = cs_mpi_any(bad);
    if (!bad && any) bad = cs_fail(err, CS_EIO, "text index: another rank could not list the inputs");
    else if (!any) bad = plan_run(&u, &pl, err);
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
        free(pl.part);
        return bad ? -1 : cs_fail(err, CS_EIO, "text index: rank 0 could not prepare %s", db);
    }
    cs_text_index_stats mine;
    bad = index_part(db, &u, &pl, o, &mine, err);
    cs_text_inputs_free(&u);
    free(pl.part);
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
