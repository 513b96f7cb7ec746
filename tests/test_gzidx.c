/* Access points into a gzip stream (core/gzidx.h) against the data that was
 * compressed: the pass hands out exactly that data; every point's window is
 * the 32 KiB of data before it; any range re-read from the nearest point (or
 * from the start, or through a cursor reused at rising and falling offsets)
 * is exactly that range. The file is two concatenated gzip members (cat
 * a.gz b.gz) of mixed compressible and random bytes, so points fall in both
 * members, at bit offsets other than 0, and reads cross the members' seam.
 * A file cut short is an error for the pass and for a read past the cut,
 * not for a read before it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/gzidx.h"
#include "t.h"

enum { N1 = 2000000, N2 = 1100000, N = N1 + N2, MEMBER = 20000 };
static unsigned char *data;
static char path[64], cut[64];
static cs_gz_point *pts;
static size_t npts;

static uint64_t lcg = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg >> 33);
}

/* runs of text-like bytes (compress well) and of random bytes (do not) */
static void make_data(void) {
    data = malloc(N);
    for (size_t i = 0; i < N;) {
        size_t run = 1000 + rnd() % 30000;
        int random = rnd() % 3 == 0;
        for (size_t k = 0; k < run && i < N; k++, i++)
            data[i] = random ? (unsigned char)rnd() : (unsigned char)("copyscope gzip access point "[(i / 7 + k) % 28]);
    }
}

static void gzip_append(FILE *f, const unsigned char *b, size_t n) {
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, n);
    unsigned char *o = malloc(cap);
    z.next_in = (unsigned char *)b;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    fwrite(o, 1, cap - z.avail_out, f);
    deflateEnd(&z);
    free(o);
}

static void test_pass_gives_data_and_points(void) {
    cs_gz_reader *r;
    cs_err err = {0};
    REQUIRE(cs_gz_open(&r, path, (cs_gz_spacing){.members = 3, .max_span = 200000}, &err) == 0);
    size_t at = 0;
    int same = 1;
    for (;;) {
        const void *b;
        ssize_t n = cs_gz_read(r, &b, &err);
        REQUIRE(n >= 0);
        if (n == 0) break;
        same &= at + (size_t)n <= N && !memcmp(data + at, b, (size_t)n);
        /* one member (a simulated tar member) every MEMBER bytes of output */
        for (size_t m = (at + MEMBER - 1) / MEMBER; m * MEMBER < at + (size_t)n; m++) cs_gz_note_member(r);
        at += (size_t)n;
    }
    CHECK(same);
    CHECKF(at == N, "%zu", at);
    cs_gz_point p;
    size_t cap = 0;
    while (cs_gz_take_point(r, &p)) {
        if (npts == cap) pts = realloc(pts, (cap = cap ? 2 * cap : 64) * sizeof *pts);
        pts[npts++] = p;
    }
    cs_gz_close(r);
    int windows = 1, bits = 0, second = 0, rising = 1;
    for (size_t i = 0; i < npts; i++) {
        windows &= pts[i].wlen == (pts[i].out < CS_GZ_WINDOW ? pts[i].out : CS_GZ_WINDOW) &&
                   !memcmp(pts[i].window, data + pts[i].out - pts[i].wlen, pts[i].wlen);
        bits |= pts[i].bits != 0;
        second |= pts[i].out > N1;
        if (i) rising &= pts[i].out > pts[i - 1].out;
    }
    /* each point uses up 3 noted members or 200000 bytes (the reader may
     * be ahead of the notes, which only delays a point): at most that many */
    CHECKF(npts >= 10 && npts <= (N / MEMBER) / 3 + N / 200000 + 1, "%zu points", npts);
    CHECK(windows);
    CHECK(bits);
    CHECK(second);
    CHECK(rising);
}

/* the last point at or before off, or NULL */
static const cs_gz_point *nearest(uint64_t off) {
    const cs_gz_point *b = NULL;
    for (size_t i = 0; i < npts && pts[i].out <= off; i++) b = &pts[i];
    return b;
}

static int read_ok(cs_gz_cursor **c, const cs_gz_point *p, uint64_t off, uint64_t len) {
    uint8_t *b;
    cs_err err = {0};
    if (cs_gz_extract(c, path, p, off, len, &b, &err)) {
        fprintf(stderr, "extract %llu+%llu: %s\n", (unsigned long long)off, (unsigned long long)len, err.msg);
        return 0;
    }
    int ok = !memcmp(b, data + off, (size_t)len);
    free(b);
    return ok;
}

static void test_reads_from_points(void) {
    REQUIRE(npts > 0);
    int fresh = 1, start = 1, up = 1, any = 1;
    cs_gz_cursor *c = NULL;
    for (int i = 0; i < 150; i++) {
        uint64_t off = rnd() % (N - 1), len = 1 + rnd() % 70000;
        if (off + len > N) len = N - off;
        cs_gz_cursor *f = NULL;
        fresh &= read_ok(&f, nearest(off), off, len);
        cs_gz_cursor_free(f);
        any &= read_ok(&c, nearest(off), off, len); /* falling offsets too: the cursor must seek back */
    }
    cs_gz_cursor_free(c);
    c = NULL;
    for (uint64_t off = 5; off + 9000 < N; off += 37000 + rnd() % 9000) up &= read_ok(&c, nearest(off), off, 9000);
    cs_gz_cursor_free(c);
    c = NULL;
    start &= read_ok(&c, NULL, N1 - 100, 5000); /* across the seam, from the file's start */
    start &= read_ok(&c, NULL, N - 10, 10);     /* the last bytes, the cursor reused */
    cs_gz_cursor_free(c);
    CHECK(fresh);
    CHECK(any);
    CHECK(up);
    CHECK(start);
}

static void test_cut_file(void) {
    FILE *f = fopen(path, "rb"), *g = fopen(cut, "wb");
    REQUIRE(f && g);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    REQUIRE(fread(b, 1, (size_t)n, f) == (size_t)n);
    fwrite(b, 1, (size_t)n * 6 / 10, g);
    fclose(f);
    fclose(g);
    free(b);
    cs_gz_reader *r;
    cs_err err = {0};
    REQUIRE(cs_gz_open(&r, cut, (cs_gz_spacing){.members = 0, .max_span = 0}, &err) == 0);
    ssize_t got;
    const void *buf;
    while ((got = cs_gz_read(r, &buf, &err)) > 0) {}
    cs_gz_close(r);
    CHECK(got < 0);
    CHECKF(strstr(err.msg, cut) && strstr(err.msg, "cut short"), "%s", err.msg);
    /* a read past the cut fails naming the file; one before it still works */
    cs_gz_cursor *c = NULL;
    uint8_t *o = NULL;
    cs_err e2 = {0};
    CHECK(cs_gz_extract(&c, cut, nearest(N - 5000), N - 5000, 100, &o, &e2) != 0 && !o);
    CHECKF(strstr(e2.msg, cut) != NULL, "%s", e2.msg);
    cs_gz_cursor_free(c);
    c = NULL;
    CHECK(cs_gz_extract(&c, cut, nearest(1000), 1000, 100, &o, &e2) == 0 && o && !memcmp(o, data + 1000, 100));
    free(o);
    cs_gz_cursor_free(c);
}

int main(void) {
    make_data();
    snprintf(path, sizeof path, "/tmp/cs-gzidx-%d.gz", (int)getpid());
    snprintf(cut, sizeof cut, "/tmp/cs-gzidx-%d-cut.gz", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    gzip_append(f, data, N1);
    gzip_append(f, data + N1, N2);
    fclose(f);
    RUN(test_pass_gives_data_and_points);
    RUN(test_reads_from_points);
    RUN(test_cut_file);
    for (size_t i = 0; i < npts; i++) free(pts[i].window);
    free(pts);
    free(data);
    unlink(path);
    unlink(cut);
    return T_DONE();
}
