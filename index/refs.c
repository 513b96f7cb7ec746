/* refs.c — reading references and their thumbnails (see refs.h).
 *
 * The thumbnails (12 KiB each) are served from <db>.thumbs, a flat copy of
 * the ref_thumbs blobs in id order that is memory-mapped: at 1,000,000
 * references that is 12 GB the kernel pages in and out as the analysis
 * touches it, instead of 12 GB of heap. The file is a cache: its header
 * carries a random token that is also recorded in the database's meta table
 * ('thumbs_cache', written after the file is in place) with the count and a
 * hash of the ids, so a file left beside a database rebuilt from scratch
 * (same ids, other images) or an index that gained or lost references is
 * never used: it is rewritten, through a temporary file renamed into place.
 * Where it cannot be written (a read-only database or folder), the
 * thumbnails are read into memory as before. */
#include "index/refs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/le_bytes.h"

#define THUMB_PX ((size_t)CS_THUMB_SIZE * CS_THUMB_SIZE * 3)
#define CACHE_HEADER 64
static const char cache_magic[8] = {'C', 'S', 'T', 'H', 'U', 'M', 'B', 1};

/* FNV-1a over the ids in order: the cache's key. */
static uint64_t ids_hash(const int64_t *ids, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) h = (h ^ (unsigned char)((uint64_t)ids[i] >> (8 * b))) * 0x100000001b3ULL;
    return h;
}

/* ids, sources and captions of every 'ok' reference with a thumbnail. */
static int load_rows(cs_store *s, cs_ref_thumbs *out, cs_err *err) {
    sqlite3_stmt *q;
    if (cs_store_prepare(s, &q,
                         "SELECT count(*) FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "
                         "WHERE r.status = 'ok'",
                         err))
        return -1;
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    if (n < 0) return cs_store_fail(s, err, "counting thumbnails");
    if (n == 0) return 0;
    out->ids = calloc((size_t)n, sizeof *out->ids);
    out->sources = calloc((size_t)n, sizeof *out->sources);
    out->captions = calloc((size_t)n, sizeof *out->captions);
    if (!out->ids || !out->sources || !out->captions)
        return cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld references", cs_store_path(s), (long long)n);
    if (cs_store_prepare(s, &q,
                         "SELECT r.id, r.source, r.caption FROM refs r "
                         "JOIN ref_thumbs t ON t.ref_id = r.id WHERE r.status = 'ok' ORDER BY r.id",
                         err))
        return -1;
    int64_t i = 0;
    while (i < n && sqlite3_step(q) == SQLITE_ROW) {
        const char *src = (const char *)sqlite3_column_text(q, 1);
        const char *cap = (const char *)sqlite3_column_text(q, 2);
        out->ids[i] = sqlite3_column_int64(q, 0);
        out->sources[i] = strdup(src ? src : "");
        out->captions[i] = cap ? strdup(cap) : NULL;
        if (!out->sources[i] || (cap && !out->captions[i])) {
            out->n = i + 1;
            sqlite3_finalize(q);
            return cs_fail(err, CS_ENOMEM, "%s: out of memory", cs_store_path(s));
        }
        i++;
    }
    sqlite3_finalize(q);
    out->n = i;
    return 0;
}

/* Streams the thumbnails in id order to fn(ctx, row, pixels); each row's id
 * must be ids[row] (the rows were read in the same snapshot). */
typedef int (*thumb_fn)(void *ctx, int64_t row, const void *px);

static int each_thumb(cs_store *s, const cs_ref_thumbs *t, thumb_fn fn, void *ctx, cs_err *err) {
    sqlite3_stmt *q;
    if (cs_store_prepare(s, &q,
                         "SELECT r.id, t.w, t.h, t.rgb FROM refs r "
                         "JOIN ref_thumbs t ON t.ref_id = r.id WHERE r.status = 'ok' ORDER BY r.id",
                         err))
        return -1;
    int64_t i = 0;
    int rc = 0, r = SQLITE_ROW;
    while (!rc && i < t->n && (r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        int w = sqlite3_column_int(q, 1), h = sqlite3_column_int(q, 2);
        const void *b = sqlite3_column_blob(q, 3);
        if (id != t->ids[i])
            rc = cs_fail(err, CS_EIO, "%s: references changed while reading thumbnails", cs_store_path(s));
        else if (w != CS_THUMB_SIZE || h != CS_THUMB_SIZE || !b || (size_t)sqlite3_column_bytes(q, 3) != THUMB_PX)
            rc = cs_fail(err, CS_EFORMAT, "%s: thumbnail of reference %lld is not %dx%d RGB", cs_store_path(s),
                         (long long)id, CS_THUMB_SIZE, CS_THUMB_SIZE);
        else
            rc = fn(ctx, i++, b);
    }
    /* e.g. a thumbnail re-read from a changed file (core/shard.c) */
    if (!rc && r != SQLITE_ROW && r != SQLITE_DONE) rc = cs_store_fail(s, err, "reading thumbnails");
    sqlite3_finalize(q);
    if (!rc && i != t->n)
        rc = cs_fail(err, CS_EIO, "%s: references changed while reading thumbnails", cs_store_path(s));
    return rc;
}

static int copy_to_memory(void *ctx, int64_t row, const void *px) {
    memcpy((uint8_t *)ctx + THUMB_PX * (size_t)row, px, THUMB_PX);
    return 0;
}

typedef struct {
    FILE *f;
    const char *path;
    cs_err *err;
} write_ctx;

static int copy_to_file(void *ctx, int64_t row, const void *px) {
    (void)row;
    write_ctx *w = ctx;
    if (fwrite(px, 1, THUMB_PX, w->f) != THUMB_PX)
        return cs_fail(w->err, CS_EIO, "%s: write: %s", w->path, strerror(errno));
    return 0;
}

/* Maps path if its header matches t (count and ids) and the token; 1
 * mapped, 0 not. */
static int map_cache(cs_ref_thumbs *t, const char *path, uint64_t key, uint64_t token) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char h[CACHE_HEADER];
    struct stat st;
    size_t len = CACHE_HEADER + THUMB_PX * (size_t)t->n;
    int ok = read(fd, h, sizeof h) == (ssize_t)sizeof h && !memcmp(h, cache_magic, 8) &&
             cs_get_le64(h + 8) == CS_THUMB_SIZE && cs_get_le64(h + 16) == (uint64_t)t->n && cs_get_le64(h + 24) == key &&
             cs_get_le64(h + 32) == token && !fstat(fd, &st) && (size_t)st.st_size == len;
    void *m = ok ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) return 0;
    t->map = m;
    t->map_len = len;
    t->rgb = (uint8_t *)m + CACHE_HEADER;
    return 1;
}

/* Writes the cache through a temporary file; 0 written, -1 not (err says why). */
static int write_cache(cs_store *s, const cs_ref_thumbs *t, const char *path, uint64_t key, uint64_t token,
                       cs_err *err) {
    cs_atomic_file af;
    if (cs_atomic_open(&af, path, err)) return -1;
    FILE *f = af.f;
    const char *tmp = af.tmp;
    unsigned char h[CACHE_HEADER] = {0};
    memcpy(h, cache_magic, 8);
    cs_put_le64(h + 8, CS_THUMB_SIZE);
    cs_put_le64(h + 16, (uint64_t)t->n);
    cs_put_le64(h + 24, key);
    cs_put_le64(h + 32, token);
    write_ctx w = {f, tmp, err};
    int rc = fwrite(h, 1, sizeof h, f) == sizeof h ? 0 : cs_fail(err, CS_EIO, "%s: write: %s", tmp, strerror(errno));
    if (!rc) rc = each_thumb(s, t, copy_to_file, &w, err);
    return cs_atomic_finish(&af, !rc, err) || rc ? -1 : 0;
}

/* The token recorded for the cache with this count and id hash, or 0. */
static uint64_t recorded_token(cs_store *s, int64_t n, uint64_t key) {
    char *v = NULL;
    cs_err e = {0};
    if (cs_store_meta_get(s, "thumbs_cache", &v, &e) || !v) return 0;
    unsigned long long tok = 0, kk = 0;
    long long nn = -1;
    int ok = sscanf(v, "%llx %lld %llx", &tok, &nn, &kk) == 3 && nn == n && kk == key;
    free(v);
    return ok ? (uint64_t)tok : 0;
}

static uint64_t new_token(void) {
    uint64_t t = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &t, sizeof t) != (ssize_t)sizeof t) t = 0;
        close(fd);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid();
    return t ? t : 1;
}

/* Reads the rows (one snapshot) and maps a valid cache; *write_token set
 * when a new cache file was written and must be recorded. */
static int load_snapshot(cs_store *s, cs_ref_thumbs *out, const char *path, uint64_t *write_token,
                         cs_err *err) {
    if (load_rows(s, out, err)) return -1;
    if (out->n == 0 || !path) return 0;
    uint64_t key = ids_hash(out->ids, out->n), tok = recorded_token(s, out->n, key);
    if (tok && map_cache(out, path, key, tok)) return 0;
    cs_err werr = {0};
    uint64_t t = new_token();
    if (!write_cache(s, out, path, key, t, &werr)) {
        *write_token = t;
        return 0;
    }
    if (werr.code == CS_EFORMAT) { /* a bad thumbnail in the index, not an unwritable folder */
        *err = werr;
        return -1;
    }
    return 0;
}

int cs_refs_load_thumbs(cs_store *s, cs_ref_thumbs *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    out->w = out->h = CS_THUMB_SIZE;
    sqlite3 *db = cs_store_db(s);
    /* a cache needs a database that can record its token */
    char *path = sqlite3_db_readonly(db, "main") == 0 ? cs_store_sidecar(s, "thumbs") : NULL;
    uint64_t token = 0;
    /* one read snapshot for the rows and the pixels written to the cache */
    int own_tx = sqlite3_get_autocommit(db) && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = load_snapshot(s, out, path, &token, err);
    if (own_tx) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (!rc && token) {
        /* the file is in place: record its token, then map it */
        char v[96];
        snprintf(v, sizeof v, "%016llx %lld %016llx", (unsigned long long)token, (long long)out->n,
                 (unsigned long long)ids_hash(out->ids, out->n));
        cs_err e = {0};
        if (cs_store_meta_set(s, "thumbs_cache", v, &e) || !map_cache(out, path, ids_hash(out->ids, out->n), token))
            unlink(path);
    }
    free(path);
    if (!rc && out->n > 0 && !out->map) {
        /* no cache here: the thumbnails in memory */
        out->rgb = malloc(THUMB_PX * (size_t)out->n);
        rc = out->rgb ? each_thumb(s, out, copy_to_memory, out->rgb, err)
                      : cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld thumbnails", cs_store_path(s),
                                (long long)out->n);
    }
    if (rc) cs_ref_thumbs_free(out);
    return rc;
}

int cs_refs_load_rows(cs_store *s, cs_ref_thumbs *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    out->w = out->h = CS_THUMB_SIZE;
    int rc = load_rows(s, out, err);
    if (rc) cs_ref_thumbs_free(out);
    return rc;
}

void cs_ref_thumbs_free(cs_ref_thumbs *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->sources) free(t->sources[i]);
        if (t->captions) free(t->captions[i]);
    }
    free(t->ids);
    free(t->sources);
    free(t->captions);
    cs_ref_thumbs_free_pixels(t);
    memset(t, 0, sizeof *t);
}

void cs_ref_thumbs_free_pixels(cs_ref_thumbs *t) {
    if (t->map) munmap(t->map, t->map_len);
    else free(t->rgb);
    t->map = NULL, t->map_len = 0, t->rgb = NULL;
}

int cs_refs_find_source(cs_store *s, const char *name, int64_t *id, cs_err *err) {
    sqlite3_stmt *q;
    *id = 0;
    if (cs_store_prepare(s, &q,
                         "SELECT id FROM refs WHERE status <> 'error' AND (source = ?1 OR "
                         "substr(source, -length(?1) - 1) = '/' || ?1) ORDER BY id LIMIT 1",
                         err))
        return -1;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cs_store_fail(s, err, "looking up a reference");
}
