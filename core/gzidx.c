/* gzidx.c — access points into a gzip stream and reads from them (gzidx.h). */
#include "core/gzidx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IN_CHUNK 65536
#define OUT_CHUNK 262144

/* ---- the recording pass ---- */

struct cs_gz_reader {
    FILE *f;
    char *path;
    z_stream z;
    int zinit, done;
    unsigned char in[IN_CHUNK];
    uint64_t in_read;   /* file bytes read into in[] so far */
    unsigned char *buf; /* [CS_GZ_WINDOW history][OUT_CHUNK new output] */
    size_t hist;        /* valid history bytes, ending at buf + CS_GZ_WINDOW */
    size_t last;        /* bytes handed out by the last read, at buf + CS_GZ_WINDOW */
    uint64_t out;       /* output bytes so far (over every gzip member) */
    uint64_t pt_out;    /* out at the last point (0: the start, itself a point) */
    int members;        /* cs_gz_note_member calls since the last point */
    cs_gz_spacing sp;
    cs_gz_point *pts;
    size_t npts, cap, taken;
    int failed;    /* a corrupt or cut stream: told after the bytes before it */
    cs_err failure;
};

int cs_gz_open(cs_gz_reader **rp, const char *path, cs_gz_spacing sp, cs_err *err) {
    *rp = NULL;
    cs_gz_reader *r = calloc(1, sizeof *r);
    if (!r) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    r->sp = sp;
    r->path = strdup(path);
    r->buf = malloc(CS_GZ_WINDOW + OUT_CHUNK);
    if (!r->path || !r->buf) {
        cs_gz_close(r);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    if (!(r->f = fopen(path, "rb"))) {
        int e = errno;
        cs_gz_close(r);
        return cs_fail(err, CS_EIO, "%s: %s", path, strerror(e));
    }
    if (inflateInit2(&r->z, 15 + 16) != Z_OK) { /* 15 + 16: a gzip header and trailer */
        cs_gz_close(r);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    r->zinit = 1;
    *rp = r;
    return 0;
}

void cs_gz_close(cs_gz_reader *r) {
    if (!r) return;
    if (r->zinit) inflateEnd(&r->z);
    if (r->f) fclose(r->f);
    for (size_t i = r->taken; i < r->npts; i++) free(r->pts[i].window);
    free(r->pts);
    free(r->buf);
    free(r->path);
    free(r);
}

void cs_gz_note_member(cs_gz_reader *r) { r->members++; }

int cs_gz_take_point(cs_gz_reader *r, cs_gz_point *p) {
    if (r->taken == r->npts) return 0;
    *p = r->pts[r->taken++];
    return 1;
}

/* Fills in[] when it is empty; 0 at the end of the file. */
static size_t fill(FILE *f, z_stream *z, unsigned char *in, uint64_t *nread) {
    if (z->avail_in) return z->avail_in;
    size_t n = fread(in, 1, IN_CHUNK, f);
    z->next_in = in;
    z->avail_in = (uInt)n;
    *nread += n;
    return n;
}

/* After the end of one gzip member: is another one next (its magic)? Reads
 * ahead as needed; 1 yes, 0 no (end of file, or bytes that are not gzip:
 * trailing padding, ignored as gzip -d does). */
static int next_member(FILE *f, z_stream *z, unsigned char *in, uint64_t *nread) {
    if (!fill(f, z, in, nread)) return 0;
    if (z->next_in[0] != 0x1f) return 0;
    if (z->avail_in < 2) { /* the second magic byte is in the next chunk */
        memmove(in, z->next_in, 1);
        size_t n = fread(in + 1, 1, IN_CHUNK - 1, f);
        *nread += n;
        z->next_in = in;
        z->avail_in = (uInt)(1 + n);
        if (z->avail_in < 2) return 0;
    }
    return z->next_in[1] == 0x8b;
}

static int add_point(cs_gz_reader *r, const unsigned char *end) {
    if (r->npts == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        cs_gz_point *p = realloc(r->pts, cap * sizeof *p);
        if (!p) return -1;
        r->pts = p;
        r->cap = cap;
    }
    size_t have = r->hist + (size_t)(end - (r->buf + CS_GZ_WINDOW));
    size_t w = have < CS_GZ_WINDOW ? have : CS_GZ_WINDOW;
    cs_gz_point *p = &r->pts[r->npts];
    p->out = r->out;
    p->in = r->in_read - r->z.avail_in;
    p->bits = r->z.data_type & 7;
    p->wlen = w;
    if (!(p->window = malloc(w ? w : 1))) return -1;
    memcpy(p->window, end - w, w);
    r->npts++;
    r->pt_out = r->out;
    r->members = 0;
    return 0;
}

/* Long: one inflate loop that stops at every block boundary to consider a point. */
static ssize_t gz_read(cs_gz_reader *r, const void **bufp, cs_err *err);

ssize_t cs_gz_read(cs_gz_reader *r, const void **bufp, cs_err *err) {
    if (r->failed) {
        if (err) *err = r->failure;
        return -1;
    }
    ssize_t n = gz_read(r, bufp, &r->failure);
    if (n >= 0) return n;
    r->failed = 1;
    if (r->last > 0) { /* hand out what inflated before the damage first, as gzip -d does */
        *bufp = r->buf + CS_GZ_WINDOW;
        return (ssize_t)r->last;
    }
    if (err) *err = r->failure;
    return -1;
}

static ssize_t gz_read(cs_gz_reader *r, const void **bufp, cs_err *err) {
    /* keep the last 32 KiB of output (history + what was handed out) before buf + WINDOW */
    size_t k = r->hist + r->last < CS_GZ_WINDOW ? r->hist + r->last : CS_GZ_WINDOW;
    memmove(r->buf + CS_GZ_WINDOW - k, r->buf + CS_GZ_WINDOW + r->last - k, k);
    r->hist = k;
    r->last = 0;
    unsigned char *o = r->buf + CS_GZ_WINDOW;
    size_t got = 0;
    while (!r->done && got < OUT_CHUNK) {
        if (!fill(r->f, &r->z, r->in, &r->in_read) && ferror(r->f))
            return r->last = got, cs_fail(err, CS_EIO, "%s: read error", r->path), -1;
        r->z.next_out = o + got;
        r->z.avail_out = (uInt)(OUT_CHUNK - got);
        int ret = inflate(&r->z, Z_BLOCK);
        size_t n = (size_t)(OUT_CHUNK - got) - r->z.avail_out;
        got += n;
        r->out += n;
        if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR)
            return r->last = got, cs_fail(err, CS_EFORMAT, "%s: corrupt gzip data after %llu bytes of output: %s",
                                          r->path, (unsigned long long)r->out, r->z.msg ? r->z.msg : "inflate error"), -1;
        if (ret == Z_BUF_ERROR && r->z.avail_in == 0) /* no input left, no output made: the file ends mid-stream */
            return r->last = got, cs_fail(err, CS_EFORMAT, "%s: gzip stream cut short (%llu bytes of output)",
                                          r->path, (unsigned long long)r->out), -1;
        if (ret == Z_STREAM_END) {
            if (next_member(r->f, &r->z, r->in, &r->in_read)) inflateReset(&r->z);
            else r->done = 1;
            continue;
        }
        /* bit 7: stopped at a block boundary (or after the header); bit 6: the last block */
        int boundary = (r->z.data_type & 128) && !(r->z.data_type & 64);
        uint64_t span = r->out - r->pt_out;
        if (boundary && span > 0 &&
            ((r->sp.members > 0 && r->members >= r->sp.members) || (r->sp.max_span > 0 && span >= r->sp.max_span)) &&
            add_point(r, o + got))
            return r->last = got, cs_fail(err, CS_ENOMEM, "%s: out of memory", r->path), -1;
    }
    r->last = got;
    *bufp = o;
    return (ssize_t)got;
}

/* ---- re-reading ---- */

struct cs_gz_cursor {
    char *path;
    FILE *f;
    z_stream z;
    int zinit, raw, done;
    uint64_t nread, pos; /* file bytes read; output offset of the stream */
    unsigned char in[IN_CHUNK];
};

void cs_gz_cursor_free(cs_gz_cursor *c) {
    if (!c) return;
    if (c->zinit) inflateEnd(&c->z);
    if (c->f) fclose(c->f);
    free(c->path);
    free(c);
}

/* Positions c at point p (NULL: the file's start). */
static int cursor_seek(cs_gz_cursor *c, const char *path, const cs_gz_point *p, cs_err *err) {
    if (!c->path || strcmp(c->path, path)) {
        if (c->f) fclose(c->f);
        free(c->path);
        c->f = NULL;
        if (!(c->path = strdup(path))) return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    if (!c->f && !(c->f = fopen(path, "rb"))) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    if (c->zinit) inflateEnd(&c->z);
    c->zinit = 0;
    memset(&c->z, 0, sizeof c->z);
    c->raw = p != NULL;
    c->done = 0;
    c->pos = p ? p->out : 0;
    uint64_t at = p ? p->in - (p->bits ? 1 : 0) : 0;
    if (fseeko(c->f, (off_t)at, SEEK_SET)) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    c->nread = at;
    if (inflateInit2(&c->z, c->raw ? -15 : 15 + 16) != Z_OK) return cs_fail(err, CS_ENOMEM, "out of memory");
    c->zinit = 1;
    if (p && p->bits) {
        int ch = getc(c->f);
        if (ch == EOF) return cs_fail(err, CS_EFORMAT, "%s: gzip stream cut short", path);
        c->nread++;
        inflatePrime(&c->z, p->bits, ch >> (8 - p->bits));
    }
    if (p && p->wlen && inflateSetDictionary(&c->z, p->window, (uInt)p->wlen) != Z_OK)
        return cs_fail(err, CS_EFORMAT, "%s: bad access point", path);
    return 0;
}

/* Skips a raw stream's 8-byte gzip trailer (a raw inflate stops before it). */
static int skip_trailer(cs_gz_cursor *c) {
    for (int k = 0; k < 8; k++) {
        if (!fill(c->f, &c->z, c->in, &c->nread)) return -1;
        c->z.next_in++;
        c->z.avail_in--;
    }
    return 0;
}

/* Inflates the next n bytes of output to dst (NULL: discarded). */
static int cursor_pull(cs_gz_cursor *c, uint8_t *dst, uint64_t n, cs_err *err) {
    unsigned char scratch[16384];
    while (n > 0) {
        if (c->done) return cs_fail(err, CS_EFORMAT, "%s: gzip stream ends before the member", c->path);
        fill(c->f, &c->z, c->in, &c->nread);
        size_t want = n > (1u << 30) ? (1u << 30) : (size_t)n;
        if (!dst && want > sizeof scratch) want = sizeof scratch;
        c->z.next_out = dst ? dst : scratch;
        c->z.avail_out = (uInt)want;
        int ret = inflate(&c->z, Z_NO_FLUSH);
        size_t got = want - c->z.avail_out;
        c->pos += got;
        n -= got;
        if (dst) dst += got;
        if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR)
            return cs_fail(err, CS_EFORMAT, "%s: corrupt gzip data: %s", c->path, c->z.msg ? c->z.msg : "inflate error");
        if (ret == Z_BUF_ERROR && c->z.avail_in == 0) /* the file ends mid-stream */
            return cs_fail(err, CS_EFORMAT, "%s: gzip stream cut short", c->path);
        if (ret == Z_STREAM_END) {
            if (c->raw && skip_trailer(c)) {
                c->done = 1;
                continue;
            }
            if (next_member(c->f, &c->z, c->in, &c->nread)) {
                inflateReset2(&c->z, 15 + 16);
                c->raw = 0;
            } else {
                c->done = 1;
            }
        }
    }
    return 0;
}

int cs_gz_extract(cs_gz_cursor **curp, const char *path, const cs_gz_point *p, uint64_t off, uint64_t len,
                  uint8_t **out, cs_err *err) {
    *out = NULL;
    if (!*curp && !(*curp = calloc(1, sizeof **curp))) return cs_fail(err, CS_ENOMEM, "out of memory");
    cs_gz_cursor *c = *curp;
    uint64_t from = p ? p->out : 0;
    if (from > off) return cs_fail(err, CS_EINTERNAL, "%s: access point past the member", path);
    /* the open stream is used when it is at or before off and no nearer than the point */
    int reuse = c->zinit && !c->done && c->path && !strcmp(c->path, path) && c->pos <= off && c->pos >= from;
    if (!reuse && cursor_seek(c, path, p, err)) {
        if (c->zinit) inflateEnd(&c->z);
        c->zinit = 0;
        return -1;
    }
    uint8_t *b = malloc(len ? (size_t)len : 1);
    if (!b) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (cursor_pull(c, NULL, off - c->pos, err) || cursor_pull(c, b, len, err)) {
        free(b);
        c->done = 1; /* never reused after an error */
        return -1;
    }
    *out = b;
    return 0;
}
