/* shard.c — a sharded store's shards, read as one store (shard.h). */
#include "core/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/gzidx.h"
#include "core/hash_sha256.h"
#include "core/image.h"

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

/* The views: the union table of every shard (core/shard_union.c), only
 * the rows whose refs row is ok. */
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
        snprintf(sql, sizeof sql, "DROP VIEW IF EXISTS temp.%s; DROP TABLE IF EXISTS temp.cs_u_%s", views[v].name,
                 views[v].name);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
}

static const char TAR_LOC_MAGIC[8] = {'C', 'S', 'T', 'A', 'R', 'L', 'C', '1'};
static const char TAR_GZ_MAGIC[8] = {'C', 'S', 'T', 'A', 'R', 'G', 'Z', '1'};

void cs_tar_loc_pack(unsigned char out[CS_TAR_LOC_BYTES], uint64_t off, uint64_t len, uint32_t plen, int gz) {
    memcpy(out, gz ? TAR_GZ_MAGIC : TAR_LOC_MAGIC, 8);
    for (int i = 0; i < 8; i++) out[8 + i] = (unsigned char)(off >> (8 * i));
    for (int i = 0; i < 8; i++) out[16 + i] = (unsigned char)(len >> (8 * i));
    for (int i = 0; i < 4; i++) out[24 + i] = (unsigned char)(plen >> (8 * i));
}

int cs_tar_loc_unpack(const unsigned char *b, size_t n, uint64_t *off, uint64_t *len, uint32_t *plen, int *gz) {
    if (!b || n != CS_TAR_LOC_BYTES) return -1;
    if (!memcmp(b, TAR_LOC_MAGIC, 8)) *gz = 0;
    else if (!memcmp(b, TAR_GZ_MAGIC, 8)) *gz = 1;
    else return -1;
    *off = *len = 0;
    *plen = 0;
    for (int i = 7; i >= 0; i--) *off = *off << 8 | b[8 + i];
    for (int i = 7; i >= 0; i--) *len = *len << 8 | b[16 + i];
    for (int i = 3; i >= 0; i--) *plen = *plen << 8 | b[24 + i];
    return 0;
}

/* The len bytes at off of the file path (a tar member's data); *buf malloc'd. */
static int read_range(const char *path, uint64_t off, uint64_t len, uint8_t **buf, cs_err *err) {
    *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < off + len || len > ((uint64_t)1 << 30)) {
        close(fd);
        return cs_fail(err, CS_EIO, "%s: changed since index add (shorter than the member at offset %llu)", path,
                       (unsigned long long)off);
    }
    uint8_t *b = malloc(len ? (size_t)len : 1);
    if (!b) {
        close(fd);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, b + got, (size_t)len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            free(b);
            return cs_fail(err, CS_EIO, "%s: read failed", path);
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    return 0;
}

/* What cs_ref_thumb keeps between the calls of one connection: where a
 * gzip'd member's access points are (the store's own tar_points, or, for a
 * sharded store's manifest, those of the shard holding the row: its ids
 * follow the offsets off[]) and one inflate stream left open, so that a
 * whole store read in id order inflates each shard once (core/gzidx.h). */
typedef struct {
    char *manifest; /* NULL: the points are in the connection's own main */
    int n;
    long long *off; /* [n] */
    sqlite3 **sh;   /* [n] the shards, read-only, opened on first use */
    cs_gz_cursor *cur;
} thumb_ctx;

static void thumb_ctx_free(void *p) {
    thumb_ctx *t = p;
    if (!t) return;
    for (int k = 0; t->sh && k < t->n; k++) sqlite3_close(t->sh[k]);
    free(t->sh);
    free(t->off);
    free(t->manifest);
    cs_gz_cursor_free(t->cur);
    free(t);
}

/* The connection whose tar_points hold the points of reference id. */
static sqlite3 *points_db(thumb_ctx *t, sqlite3 *own, int64_t id) {
    if (!t->manifest) return own;
    int k = -1;
    for (int i = 0; i < t->n; i++) /* shard k holds the ids (off[k], off[k] + its count] */
        if (t->off[i] < id && (k < 0 || t->off[i] >= t->off[k])) k = i;
    if (k < 0) return NULL;
    if (!t->sh[k]) {
        char *sp = cs_shard_path(t->manifest, k, t->n);
        if (!sp || sqlite3_open_v2(sp, &t->sh[k], SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_close(t->sh[k]);
            t->sh[k] = NULL;
        }
        free(sp);
    }
    return t->sh[k];
}

/* The last access point of shard at or before off: 1 and *p (window
 * malloc'd), 0 when there is none (no table, none recorded, or none before
 * it: the member is inflated from the file's start, which is always right,
 * only slower), -1 on a window that does not inflate. */
static int find_point(sqlite3 *db, const char *shard, uint64_t off, cs_gz_point *p) {
    sqlite3_stmt *st;
    memset(p, 0, sizeof *p);
    if (!db || sqlite3_prepare_v2(db,
                                  "SELECT out_off, in_off, bits, wlen, window FROM main.tar_points "
                                  "WHERE shard = ?1 AND out_off <= ?2 ORDER BY out_off DESC LIMIT 1",
                                  -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, shard, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        p->out = (uint64_t)sqlite3_column_int64(st, 0);
        p->in = (uint64_t)sqlite3_column_int64(st, 1);
        p->bits = sqlite3_column_int(st, 2);
        sqlite3_int64 wl = sqlite3_column_int64(st, 3);
        const void *w = sqlite3_column_blob(st, 4);
        int wn = sqlite3_column_bytes(st, 4);
        uLongf got = (uLongf)wl;
        rc = -1;
        if (wl >= 0 && wl <= CS_GZ_WINDOW && p->bits >= 0 && p->bits < 8 && (p->window = malloc(wl ? (size_t)wl : 1))) {
            p->wlen = (size_t)wl;
            if (wn == wl) memcpy(p->window, w, (size_t)wl), rc = 1; /* stored raw */
            else if (uncompress(p->window, &got, w, (uLong)wn) == Z_OK && got == (uLongf)wl) rc = 1;
        }
        if (rc < 0) free(p->window), p->window = NULL;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The member's bytes in a gzip'd shard, from its nearest access point. */
static int read_gz_member(thumb_ctx *t, sqlite3 *own, int64_t id, const char *shard, uint64_t off, uint64_t len,
                          uint8_t **buf, cs_err *err) {
    if (len > ((uint64_t)1 << 30)) return cs_fail(err, CS_EFORMAT, "%s: member too large", shard);
    cs_gz_point p;
    int found = find_point(points_db(t, own, id), shard, off, &p);
    if (found < 0) return cs_fail(err, CS_EFORMAT, "%s: a bad access point in the store", shard);
    int rc = cs_gz_extract(&t->cur, shard, found ? &p : NULL, off, len, buf, err);
    free(p.window);
    return rc;
}

/* cs_ref_thumb(source, sha256, stored, id): the 64x64 thumbnail of a
 * reference kept without one (index add --no-thumbs), re-read from its
 * source with the calls index add makes (decode, alpha over white, area
 * resize), so the pixels are the ones it would have stored. The source is
 * the file, or, when stored is a tar locator (shard.h), the member's bytes
 * at their offset in the shard (inflated from an access point for a gzip'd
 * shard). Bytes whose sha256 differs from the one recorded at ingest (the
 * file or shard changed since) are an error naming the reference, never
 * other pixels; so is a missing, cut or corrupt file or shard. */
static void ref_thumb_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    const char *src = (const char *)sqlite3_value_text(argv[0]), *sha = (const char *)sqlite3_value_text(argv[1]);
    char msg[1400], hex[65];
    cs_err err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    cs_image img, th;
    cs_image_opts o = {.max_pixels = (int64_t)1 << 40}; /* index add already accepted it */
    uint64_t off, mlen;
    uint32_t plen;
    int gz = 0;
    int is_member = argc > 2 && sqlite3_value_type(argv[2]) == SQLITE_BLOB &&
                    !cs_tar_loc_unpack(sqlite3_value_blob(argv[2]), (size_t)sqlite3_value_bytes(argv[2]), &off,
                                       &mlen, &plen, &gz);
    if (!src || (is_member ? plen >= strlen(src) : strstr(src, "//") != NULL)) {
        snprintf(msg, sizeof msg, "%s: no thumbnail stored and not a file to re-read", src ? src : "(null)");
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    int bad;
    if (is_member) {
        char *shard = strndup(src, plen);
        int64_t id = argc > 3 ? sqlite3_value_int64(argv[3]) : 0;
        bad = !shard ? cs_fail(&err, CS_ENOMEM, "out of memory")
              : gz   ? read_gz_member(sqlite3_user_data(ctx), sqlite3_context_db_handle(ctx), id, shard, off, mlen,
                                      &buf, &err)
                     : read_range(shard, off, mlen, &buf, &err);
        len = (size_t)mlen;
        free(shard);
    } else {
        bad = cs_read_file(src, &buf, &len, &err);
    }
    if (bad) {
        snprintf(msg, sizeof msg, "reference without a thumbnail: %s", err.msg);
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    cs_sha256_hex(buf, len, hex);
    if (!sha || strcmp(hex, sha)) {
        free(buf);
        snprintf(msg, sizeof msg, "%s: changed since index add (sha256 differs): add it again", src);
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    int rc = cs_image_decode(&img, buf, len, src, &o, &err);
    free(buf);
    if (!rc) {
        rc = cs_image_resize(&th, &img, CS_STORE_THUMB, CS_STORE_THUMB, CS_RESIZE_AREA, &err);
        cs_image_free(&img);
    }
    if (rc) {
        snprintf(msg, sizeof msg, "reference without a thumbnail: %s", err.msg);
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    sqlite3_result_blob(ctx, th.rgb, CS_STORE_THUMB * CS_STORE_THUMB * 3, free);
}

/* A store of index add --no-thumbs (meta thumbs = 'source'): ref_thumbs is
 * a view that gives the stored thumbnail, else the one re-read from source.
 * Sharded (n > 0, ids offset by off[]): the refs rows left-joined to the
 * shards' thumbnails. */
static int thumbs_view(cs_store *s, int n, const long long *off, cs_err *err) {
    sqlite3 *db = cs_store_db(s);
    thumb_ctx *t = calloc(1, sizeof *t);
    if (!t) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (n > 0) {
        t->n = n;
        t->manifest = strdup(cs_store_path(s));
        t->off = malloc((size_t)n * sizeof *t->off);
        t->sh = calloc((size_t)n, sizeof *t->sh);
        if (!t->manifest || !t->off || !t->sh) {
            thumb_ctx_free(t);
            return cs_fail(err, CS_ENOMEM, "out of memory");
        }
        memcpy(t->off, off, (size_t)n * sizeof *off);
    }
    /* thumb_ctx_free runs when the function is replaced or the connection closes (also on failure) */
    if (sqlite3_create_function_v2(db, "cs_ref_thumb", 4, SQLITE_UTF8, t, ref_thumb_fn, NULL, NULL,
                                   thumb_ctx_free) != SQLITE_OK)
        return cs_store_fail(s, err, "registering cs_ref_thumb");
    size_t cap = 1024, o;
    char *sql = malloc(cap);
    if (!sql) return cs_fail(err, CS_ENOMEM, "out of memory");
    o = (size_t)snprintf(sql, cap, "DROP VIEW IF EXISTS temp.ref_thumbs; CREATE TEMP VIEW ref_thumbs AS ");
    /* no row: re-read the file; a row of w = 0: re-read the tar member it locates */
    const char *pick =
        "CASE WHEN x.rgb IS NULL OR x.w = 0 THEN cs_ref_thumb(r.source, r.sha256, x.rgb, r.id) ELSE x.rgb END";
    if (n == 0)
        snprintf(sql + o, cap - o,
                 "SELECT r.id AS ref_id, %d AS w, %d AS h, %s AS rgb FROM main.refs r "
                 "LEFT JOIN main.ref_thumbs x ON x.ref_id = r.id WHERE r.status = 'ok'",
                 CS_STORE_THUMB, CS_STORE_THUMB, pick);
    else
        snprintf(sql + o, cap - o,
                 "SELECT r.id AS ref_id, %d AS w, %d AS h, %s AS rgb FROM main.refs r "
                 "LEFT JOIN temp.cs_u_ref_thumbs x ON x.ref_id = r.id WHERE r.status = 'ok'",
                 CS_STORE_THUMB, CS_STORE_THUMB, pick);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK
                 ? cs_fail(err, CS_EDB, "%s: thumbnail view: %s", cs_store_path(s), sqlite3_errmsg(db))
                 : 0;
    free(sql);
    return rc;
}

/* Long: parse the offsets, check each shard is there, build three views. */
int cs_store_attach_shards(cs_store *s, cs_err *err) {
    sqlite3 *db = cs_store_db(s);
    char nv[32], *offs = malloc(1 << 20);
    if (!offs) return cs_fail(err, CS_ENOMEM, "out of memory");
    char tv[16];
    int from_source = meta_int(db, "thumbs", tv, sizeof tv) && !strcmp(tv, "source");
    if (!meta_int(db, "shards", nv, sizeof nv) || !meta_int(db, "shard_offsets", offs, 1 << 20)) {
        free(offs);
        return from_source ? thumbs_view(s, 0, NULL, err) : 0;
    }
    int n = atoi(nv), rc = 0;
    const char *path = cs_store_path(s);
    if (n <= 0) {
        free(offs);
        return cs_fail(err, CS_EFORMAT, "%s: bad meta 'shards' = '%s'", path, nv);
    }
    long long *off = calloc((size_t)n, sizeof *off);
    size_t cap = 4096;
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
        char *sp = cs_shard_path(path, k, n);
        if (!sp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (access(sp, R_OK) != 0)
            rc = cs_fail(err, CS_ENOTFOUND, "%s: its shard %s is missing or unreadable", path, sp);
        free(sp);
    }
    if (!rc) rc = cs_shard_union_register(db, path, n, off, err);
    for (size_t v = 0; !rc && v < sizeof views / sizeof views[0]; v++) {
        snprintf(sql, cap,
                 "CREATE VIRTUAL TABLE temp.cs_u_%s USING cs_shard_union(%s); "
                 "CREATE TEMP VIEW %s AS SELECT x.ref_id AS ref_id, %s FROM temp.cs_u_%s x "
                 "JOIN main.refs r ON r.id = x.ref_id WHERE r.status = 'ok'",
                 views[v].name, views[v].name, views[v].name, views[v].cols, views[v].name);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            rc = cs_fail(err, CS_EDB, "%s: shard views: %s", path, sqlite3_errmsg(db));
    }
    if (!rc && from_source) rc = thumbs_view(s, n, off, err);
    free(off);
    free(sql);
    free(offs);
    if (rc) cs_store_detach_shards(s);
    return rc;
}

int cs_store_shard_offsets(cs_store *s, long long *off, int n) {
    char *offs = malloc(1 << 20), *p = offs;
    int rc = offs && meta_int(cs_store_db(s), "shard_offsets", offs, 1 << 20) ? 0 : -1;
    for (int k = 0; !rc && k < n; k++) {
        char *end;
        off[k] = strtoll(p, &end, 10);
        if (end == p) rc = -1;
        p = end;
    }
    free(offs);
    return rc;
}
