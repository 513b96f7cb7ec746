/* bench_gzidx — the cost of re-reading members of a gzip'd tar shard kept
 * without thumbnails (index add --no-thumbs, core/gzidx.h): CPU-seconds to
 * inflate every member's bytes in id order through one cursor (what a whole
 * analysis does), and to inflate R members picked at random each from its
 * nearest access point with a fresh cursor (what one verification or the
 * report does), both checked by sha256 against refs.sha256.
 *
 *   bench_gzidx DB [R]
 *
 * DB is an unsharded store; its tar_points and locators (ref_thumbs rows of
 * w = 0 whose blob starts "CSTARGZ1") are read with plain SQL. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "core/gzidx.h"
#include "core/hash_sha256.h"
#include "core/shard.h"

typedef struct {
    char *shard;
    uint64_t off, len;
    char sha[65];
} member;

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the last point of shard at or before off (window malloc'd), 0 when none */
static int point(sqlite3 *db, const char *shard, uint64_t off, cs_gz_point *p) {
    sqlite3_stmt *st;
    memset(p, 0, sizeof *p);
    if (sqlite3_prepare_v2(db,
                           "SELECT out_off, in_off, bits, wlen, window FROM tar_points WHERE shard = ?1 "
                           "AND out_off <= ?2 ORDER BY out_off DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, shard, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        p->out = (uint64_t)sqlite3_column_int64(st, 0);
        p->in = (uint64_t)sqlite3_column_int64(st, 1);
        p->bits = sqlite3_column_int(st, 2);
        p->wlen = (size_t)sqlite3_column_int64(st, 3);
        p->window = malloc(p->wlen + 1);
        int wn = sqlite3_column_bytes(st, 4);
        uLongf got = (uLongf)p->wlen;
        if ((size_t)wn == p->wlen) memcpy(p->window, sqlite3_column_blob(st, 4), p->wlen);
        else uncompress(p->window, &got, sqlite3_column_blob(st, 4), (uLong)wn);
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

static int check(const member *m, uint8_t *b) {
    char hex[65];
    cs_sha256_hex(b, (size_t)m->len, hex);
    free(b);
    return !strcmp(hex, m->sha);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gzidx DB [R]\n");
        return 2;
    }
    int R = argc > 2 ? atoi(argv[2]) : 200;
    sqlite3 *db;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT r.source, r.sha256, t.rgb FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "
                           "WHERE r.status = 'ok' AND t.w = 0 ORDER BY r.id",
                           -1, &st, NULL) != SQLITE_OK)
        return 1;
    member *m = NULL;
    size_t n = 0, cap = 0;
    uint64_t bytes = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t off, len;
        uint32_t plen;
        int gz;
        if (cs_tar_loc_unpack(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &off, &len, &plen,
                              &gz) ||
            !gz)
            continue;
        if (n == cap) m = realloc(m, (cap = cap ? 2 * cap : 1024) * sizeof *m);
        m[n].shard = strndup((const char *)sqlite3_column_text(st, 0), plen);
        m[n].off = off;
        m[n].len = len;
        snprintf(m[n].sha, sizeof m[n].sha, "%s", (const char *)sqlite3_column_text(st, 1));
        bytes += len;
        n++;
    }
    sqlite3_finalize(st);
    if (!n) {
        fprintf(stderr, "%s: no gzip'd members\n", argv[1]);
        return 1;
    }
    cs_err err = {0};
    int bad = 0;
    /* in id order, one cursor, from the points as the re-read does */
    double t0 = cpu_s();
    cs_gz_cursor *c = NULL;
    for (size_t i = 0; i < n; i++) {
        cs_gz_point p;
        int f = point(db, m[i].shard, m[i].off, &p);
        uint8_t *b;
        if (cs_gz_extract(&c, m[i].shard, f ? &p : NULL, m[i].off, m[i].len, &b, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        bad += !check(&m[i], b);
        free(p.window);
    }
    cs_gz_cursor_free(c);
    double seq = cpu_s() - t0;
    /* R at random, a fresh cursor each */
    uint64_t lcg = 12345;
    t0 = cpu_s();
    for (int r = 0; r < R; r++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        const member *x = &m[(lcg >> 33) % n];
        cs_gz_point p;
        int f = point(db, x->shard, x->off, &p);
        uint8_t *b;
        c = NULL;
        if (cs_gz_extract(&c, x->shard, f ? &p : NULL, x->off, x->len, &b, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        cs_gz_cursor_free(c);
        bad += !check(x, b);
        free(p.window);
    }
    double rnd = cpu_s() - t0;
    printf("%zu members (%.1f KiB mean), in id order: %.4f CPU-s = %.3f ms a member; %d at random from the "
           "nearest point: %.4f CPU-s = %.3f ms a member; sha256 mismatches: %d\n",
           n, (double)bytes / n / 1024, seq, 1e3 * seq / n, R, rnd, 1e3 * rnd / R, bad);
    for (size_t i = 0; i < n; i++) free(m[i].shard);
    free(m);
    sqlite3_close(db);
    return bad ? 1 : 0;
}
