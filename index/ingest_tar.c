/* ingest_tar.c — tar shards in the webdataset layout (img2dataset output):
 * members sharing a KEY (the name up to the first dot of its last path
 * component) form one sample: KEY.jpg|png plus KEY.txt or KEY.json with a
 * "caption". The shard is streamed once with libarchive; the members of a
 * sample are contiguous, so a sample is complete when the key changes, or
 * when a member repeats one the sample already has (a second 000.png starts
 * a new sample with its own caption).
 *
 * A member name met again in the same shard is a different image: its source
 * is "shard.tar//NAME#2" (#3, ...), so that no image is lost to the unique
 * source of the first (ing_tar_visit names members the same way).
 *
 * A gzip'd shard is inflated here (core/gzidx.h) and libarchive reads the
 * plain tar stream, so every member has an offset in that stream, as in an
 * uncompressed shard; under --no-thumbs the pass also records access points
 * into the gzip stream, and a member is re-read by inflating from the
 * nearest point before it (core/shard.c). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "core/shard.h"
#include "index/ingest_internal.h"

#define MAX_MEMBER (1ull << 30)
#define MAX_CAPTION (1u << 20)
#define MAX_GROUP 16

typedef struct {
    char *key;
    ing_job img[MAX_GROUP];
    int nimg;
    char *txt, *json; /* caption member contents */
} tar_group;

static const char *member_ext(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    return dot ? dot + 1 : "";
}

/* ext is everything after the key ("jpg", "seg.png"): its last part decides */
static int is_image_ext(const char *ext) {
    static const char *const e[] = {"jpg", "jpeg", "png", "jpe", "jfif", "webp", NULL};
    const char *last = strrchr(ext, '.');
    if (last) ext = last + 1;
    for (int i = 0; e[i]; i++)
        if (!strcasecmp(ext, e[i])) return 1;
    return 0;
}

/* Member names met so far in a shard, with their counts (open addressing). */
typedef struct {
    char **name;
    int *count;
    size_t cap, n;
} name_counts;

/* The occurrence of name (1 the first time), or -1 out of memory. */
static int name_bump(name_counts *t, const char *name) {
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        name_counts u = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(int)), cap, 0};
        if (!u.name || !u.count) {
            free(u.name), free(u.count);
            return -1;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->name[i]) continue;
            size_t h = 0;
            for (const char *p = t->name[i]; *p; p++) h = h * 131 + (unsigned char)*p;
            while (u.name[h & (cap - 1)]) h++;
            u.name[h & (cap - 1)] = t->name[i];
            u.count[h & (cap - 1)] = t->count[i];
        }
        u.n = t->n;
        free(t->name), free(t->count);
        *t = u;
    }
    size_t h = 0;
    for (const char *p = name; *p; p++) h = h * 131 + (unsigned char)*p;
    for (;; h++) {
        size_t i = h & (t->cap - 1);
        if (!t->name[i]) {
            if (!(t->name[i] = strdup(name))) return -1;
            t->n++;
            return t->count[i] = 1;
        }
        if (!strcmp(t->name[i], name)) return ++t->count[i];
    }
}

static void name_counts_free(name_counts *t) {
    for (size_t i = 0; i < t->cap; i++) free(t->name[i]);
    free(t->name), free(t->count);
}

/* The member's name as sources carry it: "NAME", or "NAME#k" for the k-th
 * member of that name in the shard. Returns 0, or -1 out of memory. */
static int member_name(name_counts *t, const char *name, char *out, size_t n) {
    int k = name_bump(t, name);
    if (k < 0) return -1;
    if (k == 1) snprintf(out, n, "%s", name);
    else snprintf(out, n, "%s#%d", name, k);
    return 0;
}

/* Is shown (NAME or NAME#k, from member_name) the member raw? */
static int same_member(const char *shown, const char *raw) {
    size_t n = strlen(raw);
    if (strncmp(shown, raw, n)) return 0;
    if (!shown[n]) return 1;
    return shown[n] == '#' && shown[n + 1] && strspn(shown + n + 1, "0123456789") == strlen(shown + n + 1);
}

static int flush_group(ing_ctx *c, tar_group *g, cs_err *err) {
    int rc = 0;
    char *cap = NULL;
    if (g->txt) cap = strdup(g->txt);
    else if (g->json) cap = ing_json_caption(g->json, strlen(g->json));
    for (int i = 0; i < g->nimg; i++) {
        ing_job *j = &g->img[i];
        if (cap) j->caption = strdup(cap);
        j->caption_from_sidecar_ok = 1;
        if (rc == 0) rc = ing_push(c, j, 1, err);
        else ing_job_clear(j);
    }
    free(cap);
    free(g->key);
    free(g->txt);
    free(g->json);
    memset(g, 0, sizeof *g);
    return rc;
}

/* Reads the current member's data; *out malloc'd (NUL-terminated). Returns
 * 0, or -1 with msg filled (truncated member, too large). */
static int read_member(struct archive *a, struct archive_entry *e, size_t limit, uint8_t **out,
                       size_t *len, char *msg, size_t msgn) {
    *out = NULL;
    *len = 0;
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (size < 0 || (uint64_t)size > limit) {
        snprintf(msg, msgn, "tar member of %lld bytes is too large", (long long)size);
        return -1;
    }
    uint8_t *b = malloc((size_t)size + 1);
    if (!b) {
        snprintf(msg, msgn, "out of memory");
        return -1;
    }
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t r = archive_read_data(a, b + got, (size_t)size - got);
        if (r < 0) {
            snprintf(msg, msgn, "truncated or unreadable tar member: %s",
                     archive_error_string(a) ? archive_error_string(a) : "read error");
            free(b);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got < (size_t)size) {
        snprintf(msg, msgn, "truncated tar member (%zu of %lld bytes)", got, (long long)size);
        free(b);
        return -1;
    }
    b[got] = 0;
    *out = b;
    *len = got;
    return 0;
}

static int shard_error(ing_ctx *c, const char *path, const char *what, struct archive *a, cs_err *err) {
    char msg[1400];
    snprintf(msg, sizeof msg, "%s: %s: %s", path, what,
             archive_error_string(a) ? archive_error_string(a) : "unknown error");
    ing_job j = {0};
    j.source = strdup(path);
    j.pre_error = strdup(msg);
    ing_progress_more(c, 1);
    return ing_push(c, &j, 0, err);
}

/* A shard reader with the formats ingest accepts (tar, GNU tar, gzip'd). */
static struct archive *open_shard_reader(void) {
    struct archive *a = archive_read_new();
    if (!a) return NULL;
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    return a;
}

/* Where the member whose header was just read has its data in the shard
 * file: the bytes the tar reader has consumed so far (every header of the
 * member, long-name and pax records included, and nothing of its data).
 * Only for a shard read without a decompressing filter (ing_tar inflates a
 * gzip'd one itself, gz set: the offset is in the uncompressed stream) and
 * a member stored whole (not sparse); the others keep their thumbnail. A wrong offset could not give other pixels:
 * the re-read checks the member's sha256 (core/shard.c). */
static void member_locate(struct archive *a, struct archive_entry *e, const char *path, int gz, ing_job *j) {
    la_int64_t pos = archive_filter_bytes(a, 0);
    if (archive_filter_count(a) != 1 || archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE || pos < 0 ||
        !archive_entry_size_is_set(e) || archive_entry_size(e) < 0 || archive_entry_sparse_count(e) > 0)
        return;
    j->has_loc = 1;
    j->loc_gz = gz;
    j->loc_off = (uint64_t)pos;
    j->loc_len = (uint64_t)archive_entry_size(e);
    j->loc_plen = (uint32_t)strlen(path);
}

/* Where a gzip'd shard's access points go (core/gzidx.h). Each holds a
 * 32 KiB window, and bytes per reference are what must scale (issue 17:
 * <= 1 KiB a reference for hashes and the global embedding), so a point is
 * placed only after GZ_PT_MEMBERS image members since the last one: its
 * window then costs at most 32 B a reference, 1/32 of that budget, about
 * the locator's own size. Members of any size would make that a span of
 * any length, and a member re-read on its own inflates on average half a
 * span; so a point is also placed after GZ_PT_SPAN bytes of tar stream,
 * whatever the count: a re-read then inflates < 32 MiB, and the windows
 * cost at most 32 KiB / 32 MiB = 1/1024 of the shard's own bytes (less than
 * tar's 512-byte header for every member under 512 KiB). A store read in id
 * order (a whole analysis) does not pay the span: the re-read continues
 * one inflate stream along the shard (core/shard.c). */
#define GZ_PT_MEMBERS 1024
#define GZ_PT_SPAN ((uint64_t)32 << 20)

static la_ssize_t gz_read_cb(struct archive *a, void *u, const void **buf) {
    cs_err err = {0};
    ssize_t n = cs_gz_read(u, buf, &err);
    if (n < 0) archive_set_error(a, EINVAL, "%s", err.msg);
    return n;
}

/* Does path start with gzip's magic? */
static int is_gzip_file(const char *path) {
    unsigned char m[2] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(m, 1, 2, f);
    fclose(f);
    return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* Opens the shard at path: a gzip'd one through core/gzidx.h's inflater
 * (*gzr: it records access points when sp asks, and it hands out every
 * member inflated before a cut, so index add, with or without thumbnails,
 * and ing_tar_visit keep the same members of a damaged shard), any other
 * through libarchive. 0 and *a; 1 and *a whose error says why it did not
 * open; -1 out of memory. */
static int open_shard(const char *path, cs_gz_spacing sp, struct archive **ap, cs_gz_reader **gzr, cs_err *err) {
    *gzr = NULL;
    if (is_gzip_file(path)) {
        cs_err e = {0};
        if (cs_gz_open(gzr, path, sp, &e)) {
            if (e.code == CS_ENOMEM) return *err = e, -1;
            *gzr = NULL; /* unreadable: libarchive's open below says why */
        }
    }
    struct archive *a = *ap = open_shard_reader();
    if (!a) {
        cs_gz_close(*gzr);
        *gzr = NULL;
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    int r = *gzr ? archive_read_open(a, *gzr, NULL, gz_read_cb, NULL) : archive_read_open_filename(a, path, 1 << 16);
    return r == ARCHIVE_OK ? 0 : 1;
}

int ing_tar_write_points(cs_store *s, const ing_job *j, cs_err *err) {
    sqlite3 *db = cs_store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(db, CS_TAR_POINTS_SQL, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO main.tar_points(shard, out_off, in_off, bits, wlen, window) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return cs_store_fail(s, err, "recording a gzip access point");
    unsigned char *z = malloc(compressBound(CS_GZ_WINDOW));
    int rc = z ? 0 : cs_fail(err, CS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < j->gz_npts; i++) {
        const cs_gz_point *p = &j->gz_pts[i];
        /* a window of compressible members (text, raw pixels) is kept
         * deflated; one of JPEG or PNG data is not smaller, so kept raw */
        uLongf zn = compressBound(CS_GZ_WINDOW);
        int packed = compress2(z, &zn, p->window, (uLong)p->wlen, 9) == Z_OK && zn < p->wlen;
        sqlite3_bind_text(st, 1, j->source, (int)j->loc_plen, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)p->out);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)p->in);
        sqlite3_bind_int(st, 4, p->bits);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)p->wlen);
        sqlite3_bind_blob(st, 6, packed ? z : p->window, packed ? (int)zn : (int)p->wlen, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) rc = cs_store_fail(s, err, "recording a gzip access point");
        sqlite3_reset(st);
    }
    free(z);
    sqlite3_finalize(st);
    return rc;
}

/* Points taken from the reader, waiting for the next job to carry them. */
typedef struct {
    cs_gz_point *p;
    int n, cap;
} gz_pending;

static int take_points(cs_gz_reader *r, gz_pending *q) {
    cs_gz_point p;
    while (cs_gz_take_point(r, &p)) {
        if (q->n == q->cap) {
            int cap = q->cap ? 2 * q->cap : 8;
            cs_gz_point *np = realloc(q->p, (size_t)cap * sizeof *np);
            if (!np) {
                free(p.window);
                return -1;
            }
            q->p = np;
            q->cap = cap;
        }
        q->p[q->n++] = p;
    }
    return 0;
}

static void pending_free(gz_pending *q) {
    for (int i = 0; i < q->n; i++) free(q->p[i].window);
    free(q->p);
    memset(q, 0, sizeof *q);
}

/* Long: one streaming loop over the archive's members; each error case says how it goes on. */
int ing_tar(ing_ctx *c, const char *path, cs_err *err) {
    if (ing_counting(c)) return ing_unit(c, path), 0; /* members are counted while they are read */
    if (!ing_unit(c, path)) return 0;                  /* another shard's */
    cs_gz_reader *gzr = NULL;
    gz_pending pend = {0};
    struct archive *a;
    /* access points only where no thumbnail is kept: they serve the re-read */
    cs_gz_spacing sp = {0};
    if (ing_no_thumbs(c)) sp = (cs_gz_spacing){.members = GZ_PT_MEMBERS, .max_span = GZ_PT_SPAN};
    int o = open_shard(path, sp, &a, &gzr, err);
    if (o < 0) return -1;
    if (o) {
        int rc = shard_error(c, path, "cannot open tar shard", a, err);
        archive_read_free(a);
        cs_gz_close(gzr);
        return rc;
    }
    tar_group g = {0};
    name_counts seen = {0};
    int rc = 0, members = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            /* a broken header: what came before is kept, the rest is lost */
            rc = flush_group(c, &g, err);
            if (!rc) rc = shard_error(c, path, members ? "truncated or corrupt tar after its last good member"
                                                       : "not a readable tar shard", a, err);
            break;
        }
        members++;
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (!name) continue;
        const char *ext = member_ext(name);
        size_t keylen = (size_t)(ext[0] ? ext - 1 - name : (long)strlen(name));
        int img = is_image_ext(ext), txt = !strcasecmp(ext, "txt"), json = !strcasecmp(ext, "json");
        char *src = NULL;
        if (img && gzr) cs_gz_note_member(gzr); /* every image member counts, indexed now or not */
        if (img) {
            char shown[4200];
            if (member_name(&seen, name, shown, sizeof shown)) {
                rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
                break;
            }
            size_t sl = strlen(path) + strlen(shown) + 3;
            if (!(src = malloc(sl))) continue;
            snprintf(src, sl, "%s//%s", path, shown);
        }
        int repeat = (txt && g.txt) || (json && g.json); /* a member the sample has: a new sample */
        for (int i = 0; img && i < g.nimg; i++) repeat |= same_member(g.img[i].source + strlen(path) + 2, name);
        if (!g.key || strlen(g.key) != keylen || strncmp(g.key, name, keylen) || repeat) {
            if ((rc = flush_group(c, &g, err))) {
                free(src);
                break;
            }
            g.key = strndup(name, keylen);
        }
        char msg[600];
        if (img) {
            if (g.nimg == MAX_GROUP) {
                free(src);
                continue;
            }
            int64_t existing = 0;
            int w = ing_wanted(c, src, &existing, err);
            if (w < 0) {
                free(src);
                rc = -1;
                break;
            }
            if (w == 0) {
                free(src);
                continue; /* already indexed: the data is skipped by the next header read */
            }
            ing_job *j = &g.img[g.nimg++];
            memset(j, 0, sizeof *j);
            j->source = src;
            j->existing_id = existing;
            member_locate(a, e, path, gzr != NULL, j);
            if (gzr && take_points(gzr, &pend)) {
                rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
                break;
            }
            if (pend.n) { /* written with this job, before any later member that needs them */
                j->gz_pts = pend.p;
                j->gz_npts = pend.n;
                j->loc_plen = (uint32_t)strlen(path);
                memset(&pend, 0, sizeof pend);
            }
            ing_progress_more(c, 1);
            if (read_member(a, e, MAX_MEMBER, &j->data, &j->len, msg, sizeof msg)) {
                size_t ml = strlen(src) + strlen(msg) + 3;
                j->pre_error = malloc(ml);
                if (j->pre_error) snprintf(j->pre_error, ml, "%s: %s", src, msg);
                rc = flush_group(c, &g, err);
                break; /* the stream cannot go on after a short read */
            }
            j->has_data = 1;
        } else if (txt || json) {
            uint8_t *d;
            size_t n;
            if (read_member(a, e, MAX_CAPTION, &d, &n, msg, sizeof msg)) {
                ing_note(c); /* unreadable caption: the image goes on without */
                continue;
            }
            char **slot = txt ? &g.txt : &g.json;
            free(*slot);
            *slot = (char *)d;
        }
    }
    if (!rc) rc = flush_group(c, &g, err);
    else {
        for (int i = 0; i < g.nimg; i++) ing_job_clear(&g.img[i]);
        free(g.key);
        free(g.txt);
        free(g.json);
    }
    name_counts_free(&seen);
    archive_read_free(a);
    pending_free(&pend); /* points after the last new member: no member of this run needs them */
    cs_gz_close(gzr);
    return rc;
}

int ing_tar_visit(const char *path, const ing_tar_visitor *v, char *problem, size_t pn, cs_err *err) {
    problem[0] = 0;
    struct archive *a;
    cs_gz_reader *gzr = NULL;
    int o = open_shard(path, (cs_gz_spacing){0}, &a, &gzr, err);
    if (o < 0) return -1;
    int rc = 0;
    name_counts seen = {0};
    if (o) {
        snprintf(problem, pn, "%s: cannot open tar shard: %s", path,
                 archive_error_string(a) ? archive_error_string(a) : "unknown error");
        archive_read_free(a);
        cs_gz_close(gzr);
        return 1;
    }
    for (int members = 0;; members++) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            snprintf(problem, pn, "%s: %s: %s", path,
                     members ? "truncated or corrupt tar after its last good member" : "not a readable tar shard",
                     archive_error_string(a) ? archive_error_string(a) : "unknown error");
            rc = 1;
            break;
        }
        const char *raw = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG || !raw || !is_image_ext(member_ext(raw))) continue;
        char name[4200]; /* as ing_tar names it: NAME, or NAME#k when repeated */
        if (member_name(&seen, raw, name, sizeof name)) {
            rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
            break;
        }
        int w = v->want(v->u, name, err);
        if (w < 0) { rc = -1; break; }
        if (w == 0) continue; /* the data is skipped by the next header read */
        uint8_t *d;
        size_t n;
        char msg[600];
        if (read_member(a, e, MAX_MEMBER, &d, &n, msg, sizeof msg)) {
            rc = v->got(v->u, name, NULL, 0, msg, err) ? -1 : 1;
            if (rc == 1) snprintf(problem, pn, "%s//%s: %s", path, name, msg);
            break; /* the stream cannot go on after a short read */
        }
        int g = v->got(v->u, name, d, n, NULL, err);
        free(d);
        if (g) { rc = -1; break; }
    }
    name_counts_free(&seen);
    archive_read_free(a);
    cs_gz_close(gzr);
    return rc;
}
