/* store_files.c — the store's file set (see store.h): the database, its WAL
 * and shared-memory files, and the side files "<db>.<suffix>" that modules
 * write beside it (vector columns, ANN indexes, background sets, text
 * shards). Side files are recorded in store_files when a read-write store
 * closes, so that a copy of the .db alone is detected: a recorded file that
 * is not there is named, instead of embeddings silently disappearing. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/store.h"

/* The db's folder ("." when none) and base name, split in place in buf. */
static void split_path(const char *path, char *buf, size_t n, const char **dir, const char **base) {
    snprintf(buf, n, "%s", path);
    char *sl = strrchr(buf, '/');
    if (!sl) {
        *dir = ".";
        *base = buf;
    } else {
        *sl = 0;
        *dir = sl == buf ? "/" : buf;
        *base = sl + 1;
    }
}

/* 1 for a side file the store needs: what copyscope writes beside it
 * (vector columns, ANN indexes, the tiny embedder, text shards); not a
 * temporary file, not the thumbnail cache (rebuilt when missing), not a
 * user's own PATH.bak. */
static int keep_suffix(const char *suffix) {
    static const char *const kinds[] = {"vec-", "ann-", "tinydesc.", "text-"};
    if (strstr(suffix, ".tmp") || strstr(suffix, "tmp-")) return 0;
    for (int i = 0; i < 4; i++)
        if (!strncmp(suffix, kinds[i], strlen(kinds[i]))) return 1;
    return 0;
}

void cs_store_files_note(cs_store *s) {
    char buf[4096];
    const char *dir, *base;
    split_path(cs_store_path(s), buf, sizeof buf, &dir, &base);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    sqlite3_stmt *st = NULL;
    if (cs_store_prepare(s, &st, "INSERT OR IGNORE INTO store_files(suffix) VALUES(?1)", NULL)) {
        closedir(d);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, base, bl) || e->d_name[bl] != '.' || !keep_suffix(e->d_name + bl + 1)) continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, e->d_name + bl + 1, -1, SQLITE_TRANSIENT);
        sqlite3_step(st); /* a store that cannot record this now records it next time */
    }
    sqlite3_finalize(st);
    closedir(d);
}

static int add_file(cs_store_file **v, int *n, int *cap, const char *path, const char *role, int required) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*v)[i].path, path)) return 0;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 16;
        cs_store_file *nv = realloc(*v, sizeof **v * (size_t)c);
        if (!nv) return -1;
        *v = nv;
        *cap = c;
    }
    cs_store_file *f = &(*v)[*n];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return -1;
    snprintf(f->role, sizeof f->role, "%s", role);
    struct stat sb;
    f->present = stat(path, &sb) == 0;
    f->bytes = f->present ? (int64_t)sb.st_size : 0;
    f->required = required;
    ++*n;
    return 0;
}

/* What a side file holds, from its suffix (for index stats). */
static const char *side_role(const char *suffix) {
    size_t n = strlen(suffix);
    if (!strncmp(suffix, "vec-", 4))
        return n > 4 && !strcmp(suffix + n - 4, ".ids") ? (strstr(suffix, ".bg") ? "background set ids" : "embedding ids")
               : strstr(suffix, ".bg")                  ? "background set"
                                                        : "embedding column";
    if (!strncmp(suffix, "ann-", 4)) return "ANN index";
    if (!strcmp(suffix, "tinydesc.safetensors")) return "tiny embedder weights";
    if (!strcmp(suffix, "thumbs")) return "thumbnail cache";
    if (!strcmp(suffix, "lfvote")) return "SIFT vote index";
    if (!strcmp(suffix, "lfrec")) return "SIFT records, mapped";
    if (!strncmp(suffix, "text-", 5)) {
        const char *e = strrchr(suffix, '.');
        return !e ? "text shard" : !strcmp(e, ".txt") ? "text shard" : !strcmp(e, ".sa") ? "text suffix array"
               : !strcmp(e, ".raw")                   ? "text shard (raw)"
                                                      : "raw suffix array";
    }
    return "other file";
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A file in "<db>.shards/" (core/shard.h: "K-of-N.db" and what its shard
 * writes beside it), for index stats; role[32]. */
static void shard_role(const char *name, char *role) {
    const char *db = strstr(name, ".db");
    const char *suf = db ? db + 3 : "";
    if (!db) snprintf(role, 32, "other file");
    else if (!*suf) snprintf(role, 32, "shard database");
    else if (!strcmp(suf, "-wal")) snprintf(role, 32, "shard write-ahead log");
    else if (!strcmp(suf, "-shm")) snprintf(role, 32, "shard WAL index");
    else if (!strcmp(suf, ".lfpart")) snprintf(role, 32, "shard's SIFT vote part");
    else if (*suf == '.') snprintf(role, 32, "shard's %s", side_role(suf + 1));
    else snprintf(role, 32, "other file");
}

/* The shards of a sharded store (the folder "<db>.shards"), sorted by name
 * so that the list does not follow the file system's order. Not required
 * here: opening the manifest checks its shards (cs_store_attach_shards). */
static int add_shard_files(cs_store_file **v, int *n, int *cap, const char *path) {
    char dir[4200], p[4500], role[32];
    snprintf(dir, sizeof dir, "%s.shards", path);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    int nn = 0, cn = 0, rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp") || strstr(e->d_name, "tmp-")) continue;
        if (nn == cn) {
            cn = cn ? 2 * cn : 16;
            char **nv = realloc(names, sizeof *names * (size_t)cn);
            if (!nv) {
                rc = -1;
                break;
            }
            names = nv;
        }
        if (!(names[nn] = strdup(e->d_name))) rc = -1;
        else nn++;
    }
    closedir(d);
    if (nn) qsort(names, (size_t)nn, sizeof *names, cmp_name);
    for (int i = 0; i < nn; i++) {
        if (!rc) {
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            shard_role(names[i], role);
            rc |= add_file(v, n, cap, p, role, 0);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int cs_store_files_list(cs_store *s, cs_store_file **out, int *n_out, cs_err *err) {
    cs_store_file *v = NULL;
    int n = 0, cap = 0, rc = 0;
    const char *path = cs_store_path(s);
    char p[4200], buf[4096];
    rc |= add_file(&v, &n, &cap, path, "database", 1);
    snprintf(p, sizeof p, "%s-wal", path);
    struct stat sb;
    if (stat(p, &sb) == 0) rc |= add_file(&v, &n, &cap, p, "write-ahead log", 0);
    snprintf(p, sizeof p, "%s-shm", path);
    if (stat(p, &sb) == 0) rc |= add_file(&v, &n, &cap, p, "WAL index", 0);
    /* recorded side files and text shards: required */
    static const char *const sql[] = {"SELECT suffix FROM store_files ORDER BY suffix",
                                      "SELECT text_file FROM text_shards UNION SELECT sa_file FROM text_shards"};
    for (int q = 0; q < 2 && !rc; q++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(cs_store_db(s), sql[q], -1, &st, NULL) != SQLITE_OK) continue; /* older schema */
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            const char *suf = (const char *)sqlite3_column_text(st, 0);
            if (!suf) continue;
            snprintf(p, sizeof p, "%s.%s", path, suf);
            rc |= add_file(&v, &n, &cap, p, side_role(suf), 1);
        }
        sqlite3_finalize(st);
    }
    /* side files on disk not recorded yet (made by a read-only open, or the cache) */
    const char *dir, *base;
    split_path(path, buf, sizeof buf, &dir, &base);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    for (struct dirent *e; !rc && d && (e = readdir(d));) {
        if (strncmp(e->d_name, base, bl) || e->d_name[bl] != '.') continue;
        const char *suf = e->d_name + bl + 1;
        if (!keep_suffix(suf) && strcmp(suf, "thumbs") && strcmp(suf, "lfvote") && strcmp(suf, "lfrec"))
            continue; /* not copyscope's */
        snprintf(p, sizeof p, "%s.%s", path, suf);
        rc |= add_file(&v, &n, &cap, p, side_role(suf), 0);
    }
    if (d) closedir(d);
    if (!rc) rc |= add_shard_files(&v, &n, &cap, path);
    if (rc) {
        cs_store_files_free(v, n);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    *out = v;
    *n_out = n;
    return 0;
}

void cs_store_files_free(cs_store_file *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].path);
    free(v);
}

int cs_store_files_check(cs_store *s, cs_err *err) {
    cs_store_file *v;
    int n, missing = 0, first = -1;
    if (cs_store_files_list(s, &v, &n, err)) return -1;
    for (int i = 0; i < n; i++)
        if (v[i].required && !v[i].present && missing++ == 0) first = i;
    int rc = 0;
    if (missing) {
        const char *db = cs_store_path(s);
        char more[48] = "";
        if (missing > 1) snprintf(more, sizeof more, ", and %d more", missing - 1);
        rc = cs_fail(err, CS_ENOTFOUND,
                     "%s: side file %s (%s) is missing%s: a store is %s with every %s.* file beside it, "
                     "copied together (copyscope index stats --db %s lists them; --forget-missing drops the "
                     "ones removed on purpose)",
                     db, v[first].path, v[first].role, more, db, db, db);
    }
    cs_store_files_free(v, n);
    return rc;
}

int cs_store_files_forget_missing(cs_store *s, int *n_forgotten, cs_err *err) {
    cs_store_file *v;
    int n;
    *n_forgotten = 0;
    if (cs_store_files_list(s, &v, &n, err)) return -1;
    size_t pl = strlen(cs_store_path(s));
    sqlite3_stmt *st = NULL;
    int rc = cs_store_prepare(s, &st, "DELETE FROM store_files WHERE suffix = ?1", err);
    for (int i = 0; !rc && i < n; i++) {
        if (v[i].present || !v[i].required || strlen(v[i].path) <= pl + 1) continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, v[i].path + pl + 1, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) rc = cs_store_fail(s, err, "forgetting a side file");
        else *n_forgotten += sqlite3_changes(cs_store_db(s));
    }
    sqlite3_finalize(st);
    cs_store_files_free(v, n);
    return rc;
}
