/* localfeat.c — SIFT sets per image, their records and column file, and the
 * vote index over every reference descriptor (see localfeat.h). */
#include "index/localfeat.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/fs.h"
#include "core/parallel.h"
#include "index/faiss_shim.h"
#include "index/opencv_shim.h"

#define HDR 16
#define KPB (128 + 6) /* bytes per keypoint in a record */
_Static_assert(HDR + CS_LF_REF_KP * KPB <= CS_LF_RECORD, "record budget");

int cs_lf_extract(const cs_image *img, int max_kp, int mirror, cs_lf_set *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    if (max_kp > CS_LF_QUERY_KP) max_kp = CS_LF_QUERY_KP;
    if (!img->rgb || img->w < 1 || img->h < 1) return cs_fail(err, CS_EUSAGE, "localfeat: empty image");
    int w = img->w >= img->h ? CS_LF_SIDE : (int)lround((double)img->w * CS_LF_SIDE / img->h);
    int h = img->h > img->w ? CS_LF_SIDE : (int)lround((double)img->h * CS_LF_SIDE / img->w);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    cs_image r = {0};
    if (cs_image_resize(&r, img, w, h, CS_RESIZE_AUTO, err)) return -1;
    float *l = malloc(sizeof(float) * (size_t)w * h);
    uint8_t *g = malloc((size_t)w * h);
    cs_cv_kp *kp = malloc(sizeof(cs_cv_kp) * CS_LF_QUERY_KP);
    int rc = -1;
    if (!l || !g || !kp) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
        goto out;
    }
    cs_image_luma(l, &r);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = l[(size_t)y * w + (mirror ? w - 1 - x : x)] + 0.5f;
            g[(size_t)y * w + x] = (uint8_t)(v > 255 ? 255 : v);
        }
    int n = cs_cv_sift(g, w, h, w, max_kp, kp, &out->desc[0][0], err);
    if (n < 0) goto out;
    out->n = n;
    out->w = w;
    out->h = h;
    out->orig_w = img->w;
    out->orig_h = img->h;
    for (int i = 0; i < n; i++) {
        out->xy[i][0] = kp[i].x;
        out->xy[i][1] = kp[i].y;
        out->size[i] = kp[i].size;
        out->angle[i] = kp[i].angle;
    }
    rc = 0;
out:
    cs_image_free(&r);
    free(l);
    free(g);
    free(kp);
    return rc;
}

void cs_lf_mirror(const cs_lf_set *in, cs_lf_set *out) {
    /* In OpenCV's SIFT descriptor (4 x 4 cells of 8 orientation bins,
     * index (row * 4 + col) * 8 + bin, in the frame of the keypoint's
     * orientation a) a horizontal mirror maps a pixel offset (dx, dy) to
     * (-dx, dy), a gradient direction g to 180 - g and the orientation a to
     * 180 - a. In the mirrored keypoint's frame a sample's column offset is
     * unchanged and its row offset negated, and a gradient's direction
     * relative to the keypoint is negated: row r -> 3 - r, bin o -> -o mod 8,
     * with the same interpolation weights. So the mirror image's descriptor
     * is this permutation of the original one, exactly but for the pixels
     * resampled at the keypoint's rounded position and the pyramid's
     * decimation (every other pixel), which mirroring shifts by one on an
     * even-sized octave (tests/test_localfeat.c compares it with a real
     * extraction of the mirrored image). */
    if (out != in) *out = *in;
    for (int i = 0; i < in->n; i++) {
        uint8_t d[128];
        memcpy(d, in->desc[i], 128);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                for (int o = 0; o < 8; o++) out->desc[i][(r * 4 + c) * 8 + o] = d[((3 - r) * 4 + c) * 8 + ((8 - o) & 7)];
        out->xy[i][0] = (float)(in->w - 1) - in->xy[i][0];
        float a = 180.0f - in->angle[i];
        out->angle[i] = a < 0 ? a + 360.0f : a >= 360.0f ? a - 360.0f : a;
    }
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static unsigned get16(const uint8_t *p) { return p[0] | (unsigned)p[1] << 8; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static unsigned quant(float v, float scale, unsigned max) {
    float q = v * scale + 0.5f;
    return q <= 0 ? 0 : q >= (float)max ? max : (unsigned)q;
}

void cs_lf_pack(const cs_lf_set *s, uint8_t rec[CS_LF_RECORD]) {
    memset(rec, 0, CS_LF_RECORD);
    int n = s->n < CS_LF_REF_KP ? s->n : CS_LF_REF_KP;
    rec[0] = (uint8_t)n;
    rec[1] = 1; /* version */
    put16(rec + 2, (unsigned)s->w);
    put16(rec + 4, (unsigned)s->h);
    put32(rec + 6, (uint32_t)s->orig_w);
    put32(rec + 10, (uint32_t)s->orig_h);
    for (int i = 0; i < n; i++) {
        uint8_t *p = rec + HDR + i * KPB;
        put16(p, quant(s->xy[i][0], 64, 65535));
        put16(p + 2, quant(s->xy[i][1], 64, 65535));
        p[4] = (uint8_t)quant(s->size[i], 4, 255);
        p[5] = (uint8_t)(quant(s->angle[i], 256.0f / 360, 256) & 255);
        memcpy(p + 6, s->desc[i], 128);
    }
}

int cs_lf_unpack(const uint8_t rec[CS_LF_RECORD], cs_lf_set *s, cs_err *err) {
    memset(s, 0, sizeof *s);
    if (rec[1] != 1 || rec[0] > CS_LF_REF_KP)
        return cs_fail(err, CS_EFORMAT, "localfeat: bad record (version %d, %d keypoints)", rec[1], rec[0]);
    s->n = rec[0];
    s->w = (int)get16(rec + 2);
    s->h = (int)get16(rec + 4);
    s->orig_w = (int)get32(rec + 6);
    s->orig_h = (int)get32(rec + 10);
    for (int i = 0; i < s->n; i++) {
        const uint8_t *p = rec + HDR + i * KPB;
        s->xy[i][0] = (float)get16(p) / 64;
        s->xy[i][1] = (float)get16(p + 2) / 64;
        s->size[i] = (float)p[4] / 4;
        s->angle[i] = (float)p[5] * 360.0f / 256;
        memcpy(s->desc[i], p + 6, 128);
    }
    return 0;
}

/* ---- squared distances between descriptors (geometric verification) ---- */

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static void dist2_avx2(const uint8_t *a, const uint8_t (*b)[128], int n, int *out) {
    __m256i qa[8];
    for (int c = 0; c < 8; c++) qa[c] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + 16 * c)));
    for (int i = 0; i < n; i++) {
        __m256i acc = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i d = _mm256_sub_epi16(qa[c], _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b[i] + 16 * c))));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
        }
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
        out[i] = _mm_cvtsi128_si32(h);
    }
}

__attribute__((target("avx512f,avx512bw"))) static void dist2_avx512(const uint8_t *a, const uint8_t (*b)[128], int n,
                                                                     int *out) {
    __m512i qa[4];
    for (int c = 0; c < 4; c++) qa[c] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(a + 32 * c)));
    for (int i = 0; i < n; i++) {
        __m512i acc = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m512i d =
                _mm512_sub_epi16(qa[c], _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(b[i] + 32 * c))));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(d, d));
        }
        out[i] = _mm512_reduce_add_epi32(acc);
    }
}
#endif

void cs_lf_dist2(const uint8_t a[128], const uint8_t (*b)[128], int n, int *out) {
    /* integer sums: every path gives the same values */
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512bw")) {
        dist2_avx512(a, b, n, out);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        dist2_avx2(a, b, n, out);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        int s = 0;
        for (int j = 0; j < 128; j++) {
            int d = (int)a[j] - (int)b[i][j];
            s += d * d;
        }
        out[i] = s;
    }
}

/* ---- column file ---- */

static const char MAGIC[4] = {'C', 'S', 'L', 'F'};

int cs_lf_col_write(const char *path, int64_t n, const int64_t *ids, const uint8_t *recs, cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    uint8_t h[24];
    memcpy(h, MAGIC, 4);
    put32(h + 4, 1);
    put32(h + 8, CS_LF_RECORD);
    put32(h + 12, 0);
    put32(h + 16, (uint32_t)((uint64_t)n & 0xffffffffu));
    put32(h + 20, (uint32_t)((uint64_t)n >> 32));
    int ok = fwrite(h, 1, sizeof h, a.f) == sizeof h;
    for (int64_t i = 0; ok && i < n; i++) {
        uint8_t b[8];
        put32(b, (uint32_t)((uint64_t)ids[i] & 0xffffffffu));
        put32(b + 4, (uint32_t)((uint64_t)ids[i] >> 32));
        ok = fwrite(b, 1, 8, a.f) == 8;
    }
    if (ok && n > 0) ok = fwrite(recs, CS_LF_RECORD, (size_t)n, a.f) == (size_t)n;
    if (!ok) {
        cs_atomic_finish(&a, 0, err);
        return cs_fail(err, CS_EIO, "%s: write failed", path);
    }
    return cs_atomic_finish(&a, 1, err);
}

int cs_lf_col_read(const char *path, int64_t *n, int64_t **ids, uint8_t **recs, cs_err *err) {
    *n = 0;
    *ids = NULL;
    *recs = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: cannot open", path);
    uint8_t h[24];
    int rc = -1;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, MAGIC, 4) || get32(h + 4) != 1 ||
        get32(h + 8) != CS_LF_RECORD) {
        cs_fail(err, CS_EFORMAT, "%s: not a local-feature column (bad header)", path);
        goto out;
    }
    uint64_t m = get32(h + 16) | (uint64_t)get32(h + 20) << 32;
    if (m > ((uint64_t)1 << 40) / CS_LF_RECORD) {
        cs_fail(err, CS_EFORMAT, "%s: implausible row count %llu", path, (unsigned long long)m);
        goto out;
    }
    *ids = malloc(sizeof(int64_t) * (m ? m : 1));
    *recs = malloc((size_t)CS_LF_RECORD * (m ? m : 1));
    if (!*ids || !*recs) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory for %llu rows", path, (unsigned long long)m);
        goto out;
    }
    for (uint64_t i = 0; i < m; i++) {
        uint8_t b[8];
        if (fread(b, 1, 8, f) != 8) {
            cs_fail(err, CS_EFORMAT, "%s: truncated (ids)", path);
            goto out;
        }
        (*ids)[i] = (int64_t)(get32(b) | (uint64_t)get32(b + 4) << 32);
    }
    if (m && fread(*recs, CS_LF_RECORD, m, f) != m) {
        cs_fail(err, CS_EFORMAT, "%s: truncated (records)", path);
        goto out;
    }
    if (fgetc(f) != EOF) {
        cs_fail(err, CS_EFORMAT, "%s: trailing bytes after %llu records", path, (unsigned long long)m);
        goto out;
    }
    *n = (int64_t)m;
    rc = 0;
out:
    fclose(f);
    if (rc) {
        free(*ids);
        free(*recs);
        *ids = NULL;
        *recs = NULL;
    }
    return rc;
}

/* Every record of ref_localfeat of the references with status 'ok', by
 * refs.id, to fn (row number, id, the record's CS_LF_RECORD bytes); stops
 * at fn's first non-zero return. */
typedef int (*rec_fn)(void *ctx, int64_t row, int64_t id, const uint8_t *rec, cs_err *err);

static int each_record(cs_store *s, rec_fn fn, void *ctx, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT l.ref_id, l.rec FROM ref_localfeat l JOIN refs r ON r.id = l.ref_id "
                         "WHERE r.status = 'ok' ORDER BY l.ref_id",
                         err))
        return -1;
    int64_t row = 0;
    int rc, bad = 0;
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 1) != CS_LF_RECORD)
            bad = cs_fail(err, CS_EFORMAT, "ref_localfeat: reference %lld: record of %d bytes, not %d",
                          (long long)sqlite3_column_int64(st, 0), sqlite3_column_bytes(st, 1), CS_LF_RECORD);
        else
            bad = fn(ctx, row++, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), err);
    }
    sqlite3_finalize(st);
    if (bad) return -1;
    if (rc != SQLITE_DONE) return cs_fail(err, CS_EDB, "ref_localfeat: read failed");
    return 0;
}

typedef struct {
    int64_t n, cap;
    int64_t *ids;
    uint8_t *recs;
} load_ctx;

static int load_one(void *vc, int64_t row, int64_t id, const uint8_t *rec, cs_err *err) {
    load_ctx *c = vc;
    if (row == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 1024;
        int64_t *ni = realloc(c->ids, sizeof(int64_t) * (size_t)cap);
        if (ni) c->ids = ni;
        uint8_t *nr = ni ? realloc(c->recs, (size_t)CS_LF_RECORD * (size_t)cap) : NULL;
        if (nr) c->recs = nr;
        if (!ni || !nr) return cs_fail(err, CS_ENOMEM, "ref_localfeat: out of memory");
        c->cap = cap;
    }
    c->ids[row] = id;
    memcpy(c->recs + (size_t)row * CS_LF_RECORD, rec, CS_LF_RECORD);
    c->n = row + 1;
    return 0;
}

int cs_lf_load(cs_store *s, int64_t *n, int64_t **ids, uint8_t **recs, cs_err *err) {
    load_ctx c = {0};
    int rc = each_record(s, load_one, &c, err);
    if (rc) {
        free(c.ids), free(c.recs);
        c = (load_ctx){0};
    }
    *n = c.n, *ids = c.ids, *recs = c.recs;
    return rc;
}

/* ---- the records memory-mapped: <db>.lfrec ---- */

/* The fingerprint of cs_lf_fingerprint, one record at a time. */
typedef struct {
    uint64_t h[4];
} fp_state;

static const uint64_t FP_P = 0x100000001B3ULL * 0x9E3779B1ULL + 1;

static void fp_init(fp_state *f, int64_t n) {
    f->h[0] = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, f->h[1] = 0xC2B2AE3D27D4EB4FULL;
    f->h[2] = 0x165667B19E3779F9ULL, f->h[3] = 0x27D4EB2F165667C5ULL;
}

static void fp_add(fp_state *f, int64_t id, const uint8_t *r) {
    /* four 64-bit multiply-xor lanes over the ids and every record byte
     * (a record replaced under the same id changes it too) */
    f->h[0] = (f->h[0] ^ (uint64_t)id) * FP_P;
    for (int k = 0; k < CS_LF_RECORD; k += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, r + k + 8 * l, 8);
            f->h[l] = (f->h[l] ^ w) * FP_P;
            f->h[l] ^= f->h[l] >> 29;
        }
}

static uint64_t fp_end(const fp_state *f) {
    uint64_t v = 0;
    for (int l = 0; l < 4; l++) v = (v ^ f->h[l]) * FP_P, v ^= v >> 31;
    return v;
}

uint64_t cs_lf_fingerprint(int64_t n, const int64_t *ids, const uint8_t *recs) {
    fp_state f;
    fp_init(&f, n);
    for (int64_t i = 0; i < n; i++) fp_add(&f, ids[i], recs + (size_t)i * CS_LF_RECORD);
    return fp_end(&f);
}

/* The file: a CS_LF_RECORD-byte header ("CSLR", version 1, record size,
 * row count and the fingerprint of the rows it was written from, the rest
 * zero), then the records, each on its own page(s): verifying a candidate
 * touches one 4 KiB page. */
static const char RMAGIC[4] = {'C', 'S', 'L', 'R'};
enum { RHDR = CS_LF_RECORD };

typedef struct {
    int64_t n, rows; /* rows: those the last pass saw */
    int64_t *ids;
    fp_state fp;
    FILE *f;        /* the pass that writes the file */
    uint8_t *heap;  /* or the one that reads into memory */
} rec_pass;

static int fp_one(void *vc, int64_t row, int64_t id, const uint8_t *rec, cs_err *err) {
    rec_pass *c = vc;
    if (row >= c->n) return cs_fail(err, CS_EIO, "ref_localfeat: references changed while reading them");
    c->ids[row] = id;
    fp_add(&c->fp, id, rec);
    c->rows = row + 1;
    return 0;
}

static int copy_one(void *vc, int64_t row, int64_t id, const uint8_t *rec, cs_err *err) {
    rec_pass *c = vc;
    if (row >= c->n || c->ids[row] != id)
        return cs_fail(err, CS_EIO, "ref_localfeat: references changed while reading them");
    if (c->heap) memcpy(c->heap + (size_t)row * CS_LF_RECORD, rec, CS_LF_RECORD);
    else if (fwrite(rec, 1, CS_LF_RECORD, c->f) != CS_LF_RECORD) return cs_fail(err, CS_EIO, "write failed");
    c->rows = row + 1;
    return 0;
}

/* each_record through fn, which must see the n rows of the first pass */
static int all_rows(cs_store *s, rec_pass *c, rec_fn fn, cs_err *err) {
    c->rows = 0;
    if (each_record(s, fn, c, err)) return -1;
    if (c->rows != c->n) return cs_fail(err, CS_EIO, "ref_localfeat: references changed while reading them");
    return 0;
}

/* Maps path when its header says n rows of fingerprint fp and its size
 * matches; 1 mapped, 0 not. */
static int map_records(cs_lf_records *r, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t h[32];
    struct stat st;
    size_t len = (size_t)RHDR + (size_t)CS_LF_RECORD * (size_t)r->n;
    int ok = read(fd, h, sizeof h) == (ssize_t)sizeof h && !memcmp(h, RMAGIC, 4) && get32(h + 4) == 1 &&
             get32(h + 8) == CS_LF_RECORD && (get32(h + 16) | (uint64_t)get32(h + 20) << 32) == (uint64_t)r->n &&
             (get32(h + 24) | (uint64_t)get32(h + 28) << 32) == r->fp && !fstat(fd, &st) &&
             (uint64_t)st.st_size == (uint64_t)len;
    void *m = ok ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) return 0;
    r->map = m;
    r->map_len = len;
    r->recs = (const uint8_t *)m + RHDR;
    return 1;
}

static int write_records(cs_store *s, cs_lf_records *r, rec_pass *c, const char *path, cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    uint8_t h[RHDR] = {0};
    memcpy(h, RMAGIC, 4);
    put32(h + 4, 1);
    put32(h + 8, CS_LF_RECORD);
    put32(h + 16, (uint32_t)((uint64_t)r->n & 0xffffffffu));
    put32(h + 20, (uint32_t)((uint64_t)r->n >> 32));
    put32(h + 24, (uint32_t)(r->fp & 0xffffffffu));
    put32(h + 28, (uint32_t)(r->fp >> 32));
    c->f = a.f;
    int rc = fwrite(h, 1, sizeof h, a.f) == sizeof h ? 0 : cs_fail(err, CS_EIO, "%s: write failed", path);
    if (!rc) rc = all_rows(s, c, copy_one, err);
    c->f = NULL;
    return cs_atomic_finish(&a, !rc, err) || rc ? -1 : 0;
}

static int open_snapshot(cs_store *s, cs_lf_records *r, const char *path, char *note, size_t cap, cs_err *err) {
    int64_t n = 0;
    if (cs_store_query_i64(s,
                           "SELECT COUNT(*) FROM ref_localfeat l JOIN refs r ON r.id = l.ref_id WHERE r.status = 'ok'",
                           0, 0, &n, err))
        return -1;
    if (n == 0) return 0;
    rec_pass c = {.n = n, .ids = malloc(sizeof(int64_t) * (size_t)n)};
    if (!c.ids) return cs_fail(err, CS_ENOMEM, "ref_localfeat: out of memory for %lld ids", (long long)n);
    r->ids = c.ids;
    fp_init(&c.fp, n);
    if (all_rows(s, &c, fp_one, err)) return -1;
    r->n = n;
    r->fp = fp_end(&c.fp);
    if (path && map_records(r, path)) return 0;
    cs_err we = {0};
    if (path && !write_records(s, r, &c, path, &we) && map_records(r, path)) {
        if (note && cap) snprintf(note, cap, "local-feature records written to %s", path);
        return 0;
    }
    if (we.code == CS_EIO && strstr(we.msg, "changed while")) return *err = we, -1;
    /* no file here (a read-only folder): the records in memory */
    if (note && cap && path) snprintf(note, cap, "local-feature records in memory (%s)", we.msg);
    if (!(c.heap = r->heap = malloc((size_t)CS_LF_RECORD * (size_t)n)))
        return cs_fail(err, CS_ENOMEM, "ref_localfeat: out of memory for %lld records", (long long)n);
    r->recs = r->heap;
    return all_rows(s, &c, copy_one, err);
}

int cs_lf_records_open(cs_store *s, cs_lf_records *r, char *note, size_t cap, cs_err *err) {
    memset(r, 0, sizeof *r);
    if (note && cap) note[0] = 0;
    char *path = cs_store_sidecar(s, "lfrec");
    sqlite3 *db = cs_store_db(s);
    /* one read snapshot for the count, the fingerprint and the copy */
    int own_tx = sqlite3_get_autocommit(db) && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = open_snapshot(s, r, path, note, cap, err);
    if (own_tx) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    free(path);
    if (rc) cs_lf_records_close(r);
    return rc;
}

void cs_lf_records_release(cs_lf_records *r) {
    if (r->map) madvise(r->map, r->map_len, MADV_DONTNEED);
}

void cs_lf_records_close(cs_lf_records *r) {
    if (r->map) munmap(r->map, r->map_len);
    free(r->heap);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

/* ---- vote index ---- */

struct cs_lf_index {
    cs_faiss *f;
    char factory[64];
    int64_t nd;
    int32_t *owner; /* [nd] reference row of each descriptor */
    /* our own scan of FAISS's PQ lists (own_scan_setup; NULL: FAISS's
     * search): the centroids transposed, ct[m][dsub][256] */
    float *ct;
    int pq_m, pq_dsub;
    /* and of its multi-index's two halves (NULL: FAISS's coarse search):
     * ict[2][64][2^imi_b] */
    float *ict;
    float *icn; /* [2][2^imi_b] the squared norms of those centroids */
    int imi_b;
    int simd_max; /* cs_lf_index_simd: 0 scalar, 1 AVX2 at most, else AVX-512 where cpuid has it */
    int no_prune; /* cs_lf_index_prune(ix, 0): every gather of sum16_avx512 (the bench's anchor) */
};

int64_t cs_lf_index_ndesc(const cs_lf_index *ix) { return ix->nd; }

void cs_lf_index_free(cs_lf_index *ix) {
    if (!ix) return;
    cs_faiss_free(ix->f);
    free(ix->owner);
    free(ix->ct);
    free(ix->ict);
    free(ix->icn);
    free(ix);
}

void cs_lf_default_factory(int64_t nd, char *buf, size_t cap, int *nprobe) {
    /* an inverted multi-index of 4^b cells, about CS_LF_PER_CELL descriptors
     * each (b from 5 to 10: 1,024 to 1M cells): b rounded to the nearest
     * cell size on a log scale, i.e. 4^b x CS_LF_PER_CELL within a factor
     * of 2 of nd (b + 1 from nd = 4^b x 2 CS_LF_PER_CELL). Rounded down
     * (session 5), 30M descriptors got 262,144 cells of ~114: 4x the codes
     * scanned per probed cell; now 1M cells of ~29. */
    int b = 5;
    while (b < 10 && ((int64_t)1 << (2 * b)) * 2 * CS_LF_PER_CELL <= nd) b++;
    if (nd < CS_LF_MIN_IMI) {
        snprintf(buf, cap, "Flat");
        *nprobe = 0;
        return;
    }
    snprintf(buf, cap, "IMI2x%d,PQ16np", b);
    *nprobe = CS_LF_NPROBE;
}

int cs_lf_index_set_nprobe(cs_lf_index *ix, int nprobe, cs_err *err) {
    if (cs_faiss_nlist(ix->f) <= 0) return 0;
    return cs_faiss_set_param(ix->f, "nprobe", nprobe, err);
}

void cs_lf_index_describe(const cs_lf_index *ix, char *buf, size_t cap) {
    if (cs_faiss_nlist(ix->f) > 0) snprintf(buf, cap, "%s, nprobe %d", ix->factory, cs_faiss_nprobe(ix->f));
    else snprintf(buf, cap, "%s", ix->factory);
}

/* descriptors [from, from + n) of the records as floats */
static void gather(const uint8_t *recs, const int64_t *first, int64_t nrec, int64_t from, int64_t n, float *x) {
    /* the record holding descriptor `from`: first[] is ascending */
    int64_t lo = 0, hi = nrec - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (first[mid] <= from) lo = mid;
        else hi = mid - 1;
    }
    for (int64_t d = from, i = lo; d < from + n; i++) {
        const uint8_t *rec = recs + (size_t)i * CS_LF_RECORD;
        int nk = rec[0] < CS_LF_REF_KP ? rec[0] : CS_LF_REF_KP;
        for (int k = (int)(d - first[i]); k < nk && d < from + n; k++, d++) {
            const uint8_t *p = rec + HDR + k * KPB + 6;
            for (int j = 0; j < 128; j++) x[(d - from) * 128 + j] = p[j];
        }
    }
}

static void own_scan_setup(cs_lf_index *ix);
enum { MAXPROBE = 64 }; /* cells our coarse step picks at most */
static int pq_encode(const cs_lf_index *ix, int64_t n, const float *x, uint8_t *codes);
static int faiss_encode; /* cs_lf_faiss_encode */

void cs_lf_faiss_encode(int on) { faiss_encode = on; }

/* descriptors per record (the first byte of a record is its keypoint count) */
static int rec_nk(const uint8_t *rec) { return rec[0] < CS_LF_REF_KP ? rec[0] : CS_LF_REF_KP; }

/* Appends the descriptors of records [from, n) to ix (owners from, from+1,
 * ...): the first from records' descriptors are in it already. */
static int index_append(cs_lf_index *ix, int64_t from, int64_t n, const uint8_t *recs, cs_err *err) {
    enum { CHUNK = 65536 };
    int64_t add = 0;
    for (int64_t i = from; i < n; i++) add += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    if (add == 0) return 0;
    int32_t *ow = realloc(ix->owner, sizeof(int32_t) * (size_t)(ix->nd + add));
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n - from + 1));
    float *x = malloc(sizeof(float) * 128 * (size_t)(add < CHUNK ? add : CHUNK));
    /* the PQ codes ours (pq_encode: FAISS's own encoder is a scalar
     * distance per centroid, ~2/3 of a 1M-reference build), the cells
     * FAISS's: the same index, byte for byte (test_lf_index) */
    int own = !faiss_encode && ix->ct && ix->pq_m * ix->pq_dsub == 128;
    uint8_t *codes = own ? malloc((size_t)ix->pq_m * (size_t)(add < CHUNK ? add : CHUNK)) : NULL;
    int rc = -1;
    if (ow) ix->owner = ow;
    if (!ow || !first || !x || (own && !codes)) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)(ix->nd + add));
        goto out;
    }
    int64_t d = 0;
    for (int64_t i = from; i < n; i++) {
        first[i - from] = d;
        for (int k = rec_nk(recs + (size_t)i * CS_LF_RECORD); k > 0; k--) ix->owner[ix->nd + d++] = (int32_t)i;
    }
    first[n - from] = d;
    for (int64_t at = 0; at < add; at += CHUNK) {
        int64_t m = add - at < CHUNK ? add - at : CHUNK;
        gather(recs + (size_t)from * CS_LF_RECORD, first, n - from, at, m, x);
        if (own ? pq_encode(ix, m, x, codes) || cs_faiss_add_codes(ix->f, m, x, codes, err)
                : cs_faiss_add(ix->f, m, x, err)) {
            if (own && !err->code) cs_fail(err, CS_ENOMEM, "localfeat: out of memory encoding descriptors");
            goto out;
        }
    }
    ix->nd += add;
    rc = 0;
out:
    free(codes);
    free(x);
    free(first);
    return rc;
}

int cs_lf_index_build(cs_lf_index **out, int64_t n, const uint8_t *recs, const char *factory, cs_err *err) {
    *out = NULL;
    cs_lf_index *ix = calloc(1, sizeof *ix);
    if (ix) ix->simd_max = 2;
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n + 1));
    float *x = NULL;
    int rc = -1;
    if (!ix || !first) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld records", (long long)n);
        goto out;
    }
    int64_t nd = 0;
    for (int64_t i = 0; i < n; i++) {
        first[i] = nd;
        nd += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    }
    first[n] = nd;
    int64_t nt = nd < CS_LF_MAX_TRAIN ? nd : CS_LF_MAX_TRAIN;
    int nprobe = CS_LF_NPROBE;
    if (!factory) cs_lf_default_factory(nd, ix->factory, sizeof ix->factory, &nprobe);
    else snprintf(ix->factory, sizeof ix->factory, "%s", factory);
    if (cs_faiss_new(&ix->f, 128, ix->factory, 0, err)) goto out;
    if (!cs_faiss_is_trained(ix->f)) {
        if (!(x = malloc(sizeof(float) * 128 * (size_t)(nt ? nt : 1)))) {
            cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nt);
            goto out;
        }
        /* an evenly spaced subset: the records follow the sources' order */
        for (int64_t i = 0; i < nt; i++) gather(recs, first, n, i * nd / nt, 1, x + i * 128);
        if (cs_faiss_nlist(ix->f) > 0 && (cs_faiss_set_train_sample(ix->f, 64, 10, err) ||
                                          cs_faiss_set_param(ix->f, "by_residual", 0, err)))
            goto out;
        if (cs_faiss_train(ix->f, nt, x, err)) goto out;
        free(x);
        x = NULL;
    }
    own_scan_setup(ix); /* the trained codebooks, for pq_encode */
    if (index_append(ix, 0, n, recs, err)) goto out;
    if (cs_faiss_nlist(ix->f) > 0 && cs_faiss_set_param(ix->f, "nprobe", nprobe, err)) goto out;
    own_scan_setup(ix);
    rc = 0;
out:
    free(x);
    free(first);
    if (rc) cs_lf_index_free(ix);
    else *out = ix;
    return rc;
}

/* ---- our own scan of the PQ lists ----
 * FAISS (Debian's generic build) computes a query's 16 x 256 distance table
 * with one scalar 8-dimension call per entry (fvec_L2sqr_ref, the largest
 * part of the retrieval's profile) and keeps results through virtual list
 * accessors and a general heap. Here: the table from the centroids
 * transposed (blocks of 32 or 64 centroids kept in registers over the
 * dimensions, AVX-512 or AVX2 where cpuid has it, the same sums in the same
 * order at every level: identical bits, cs_lf_index_simd), the multi-index's
 * cells ours (coarse), the probed lists' first lines prefetched, the codes
 * summed from the table with one gather per sub-quantizer for 8 (AVX2) or
 * 16 (AVX-512) codes at a time, and the best CS_LF_NN kept by (distance,
 * vector number). */

static void own_scan_setup(cs_lf_index *ix) {
    const float *c;
    int m, dsub;
    free(ix->ct);
    ix->ct = NULL;
    free(ix->ict);
    ix->ict = NULL;
    free(ix->icn);
    ix->icn = NULL;
    if (cs_faiss_pq_parts(ix->f, &m, &dsub, &c) || m * dsub != 128) return;
    if (!(ix->ct = malloc(sizeof(float) * 128 * 256))) return; /* FAISS's search then */
    for (int s = 0; s < m; s++)
        for (int j = 0; j < 256; j++)
            for (int u = 0; u < dsub; u++) ix->ct[((size_t)s * dsub + u) * 256 + j] = c[((size_t)s * 256 + j) * dsub + u];
    ix->pq_m = m, ix->pq_dsub = dsub;
    int b;
    if (cs_faiss_imi_parts(ix->f, &b, &c) || b < 3 || b > 12 || cs_faiss_nprobe(ix->f) > MAXPROBE) return;
    size_t k2 = (size_t)1 << b;
    ix->ict = malloc(sizeof(float) * 128 * k2);
    ix->icn = malloc(sizeof(float) * 2 * k2);
    if (!ix->ict || !ix->icn) { /* FAISS's coarse search then */
        free(ix->ict), free(ix->icn);
        ix->ict = ix->icn = NULL;
        return;
    }
    for (int h = 0; h < 2; h++)
        for (size_t j = 0; j < k2; j++) {
            float nn = 0;
            for (int u = 0; u < 64; u++) {
                const float v = c[((size_t)h * k2 + j) * 64 + u];
                ix->ict[((size_t)h * 64 + u) * k2 + j] = v;
                nn += v * v;
            }
            ix->icn[h * k2 + j] = nn;
        }
    ix->imi_b = b;
}

/* the widest SIMD our scan uses, at most max (see cs_lf_index_simd) */
static int simd_level(int max) {
#if defined(__x86_64__)
    if (max >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")) return 2;
    if (max >= 1 && __builtin_cpu_supports("avx2")) return 1;
#endif
    (void)max;
    return 0;
}

int cs_lf_index_simd(cs_lf_index *ix, int max) {
    ix->simd_max = max;
    return simd_level(max);
}

int cs_lf_index_prune(cs_lf_index *ix, int prune) {
    ix->no_prune = !prune;
    return prune;
}

int cs_lf_index_faiss_scan(cs_lf_index *ix, int faiss_scan) {
    if (faiss_scan) {
        free(ix->ct);
        ix->ct = NULL;
    } else if (!ix->ct) {
        own_scan_setup(ix);
    }
    return ix->ct != NULL;
}

/* lut[m][ks] = squared distances of x's m sub-vectors to the ks centroids
 * of each (ct[m][dsub][ks], ks a multiple of 8) */
static void table_c(const float *ct, const float *x, int m, int dsub, int ks, float *lut) {
    for (int s = 0; s < m; s++) {
        float *t = lut + (size_t)s * ks;
        for (int j = 0; j < ks; j++) t[j] = 0;
        for (int u = 0; u < dsub; u++) {
            const float xv = x[s * dsub + u], *c = ct + ((size_t)s * dsub + u) * ks;
            for (int j = 0; j < ks; j++) {
                float d = xv - c[j];
                t[j] += d * d;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
/* table_c with the lanes of a vector: multiply and add separately (no FMA),
 * each entry summed over u = 0..dsub-1 from 0 as in C, so the same bits.
 * 32 (AVX2) or 64 (AVX-512) entries at a time are kept in registers over
 * the dsub dimensions (the table is not loaded and stored per dimension). */
__attribute__((target("avx2"))) static void table_avx2(const float *ct, const float *x, int m, int dsub, int ks,
                                                       float *lut) {
    for (int s = 0; s < m; s++) {
        const float *xs = x + s * dsub, *cs = ct + (size_t)s * dsub * ks;
        float *t = lut + (size_t)s * ks;
        int j = 0;
        for (; j + 32 <= ks; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < dsub; u++) {
                const __m256 xv = _mm256_set1_ps(xs[u]);
                const float *c = cs + (size_t)u * ks + j;
                __m256 d0 = _mm256_sub_ps(xv, _mm256_loadu_ps(c)), d1 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 8));
                __m256 d2 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 16)), d3 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 24));
                a0 = _mm256_add_ps(a0, _mm256_mul_ps(d0, d0)), a1 = _mm256_add_ps(a1, _mm256_mul_ps(d1, d1));
                a2 = _mm256_add_ps(a2, _mm256_mul_ps(d2, d2)), a3 = _mm256_add_ps(a3, _mm256_mul_ps(d3, d3));
            }
            _mm256_storeu_ps(t + j, a0), _mm256_storeu_ps(t + j + 8, a1);
            _mm256_storeu_ps(t + j + 16, a2), _mm256_storeu_ps(t + j + 24, a3);
        }
        for (; j < ks; j += 8) {
            __m256 a = _mm256_setzero_ps();
            for (int u = 0; u < dsub; u++) {
                __m256 d = _mm256_sub_ps(_mm256_set1_ps(xs[u]), _mm256_loadu_ps(cs + (size_t)u * ks + j));
                a = _mm256_add_ps(a, _mm256_mul_ps(d, d));
            }
            _mm256_storeu_ps(t + j, a);
        }
    }
}

__attribute__((target("avx512f"))) static void table_avx512(const float *ct, const float *x, int m, int dsub, int ks,
                                                           float *lut) {
    if (ks % 64) {
        table_avx2(ct, x, m, dsub, ks, lut);
        return;
    }
    for (int s = 0; s < m; s++) {
        const float *xs = x + s * dsub, *cs = ct + (size_t)s * dsub * ks;
        float *t = lut + (size_t)s * ks;
        for (int j = 0; j < ks; j += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < dsub; u++) {
                const __m512 xv = _mm512_set1_ps(xs[u]);
                const float *c = cs + (size_t)u * ks + j;
                __m512 d0 = _mm512_sub_ps(xv, _mm512_loadu_ps(c)), d1 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 16));
                __m512 d2 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 32)), d3 = _mm512_sub_ps(xv, _mm512_loadu_ps(c + 48));
                a0 = _mm512_add_ps(a0, _mm512_mul_ps(d0, d0)), a1 = _mm512_add_ps(a1, _mm512_mul_ps(d1, d1));
                a2 = _mm512_add_ps(a2, _mm512_mul_ps(d2, d2)), a3 = _mm512_add_ps(a3, _mm512_mul_ps(d3, d3));
            }
            _mm512_storeu_ps(t + j, a0), _mm512_storeu_ps(t + j + 16, a1);
            _mm512_storeu_ps(t + j + 32, a2), _mm512_storeu_ps(t + j + 48, a3);
        }
    }
}

/* Eight 16-byte codes cb[8][16] transposed: e[j] holds sub-quantizer 2j's
 * byte of each code (bytes 0-7), then 2j + 1's (bytes 8-15); byte, word and
 * dword interleaves. */
__attribute__((target("avx2"))) static inline void transpose8(const uint8_t *cb, __m128i e[8]) {
    __m128i c[8];
    for (int k = 0; k < 8; k++) c[k] = _mm_loadu_si128((const __m128i *)(cb + 16 * k));
    __m128i a0 = _mm_unpacklo_epi8(c[0], c[1]), a1 = _mm_unpackhi_epi8(c[0], c[1]);
    __m128i a2 = _mm_unpacklo_epi8(c[2], c[3]), a3 = _mm_unpackhi_epi8(c[2], c[3]);
    __m128i a4 = _mm_unpacklo_epi8(c[4], c[5]), a5 = _mm_unpackhi_epi8(c[4], c[5]);
    __m128i a6 = _mm_unpacklo_epi8(c[6], c[7]), a7 = _mm_unpackhi_epi8(c[6], c[7]);
    __m128i b0 = _mm_unpacklo_epi16(a0, a2), b1 = _mm_unpackhi_epi16(a0, a2); /* s 0-3, 4-7: codes 0-3 */
    __m128i b2 = _mm_unpacklo_epi16(a1, a3), b3 = _mm_unpackhi_epi16(a1, a3); /* s 8-11, 12-15 */
    __m128i b4 = _mm_unpacklo_epi16(a4, a6), b5 = _mm_unpackhi_epi16(a4, a6); /* codes 4-7 */
    __m128i b6 = _mm_unpacklo_epi16(a5, a7), b7 = _mm_unpackhi_epi16(a5, a7);
    e[0] = _mm_unpacklo_epi32(b0, b4), e[1] = _mm_unpackhi_epi32(b0, b4);
    e[2] = _mm_unpacklo_epi32(b1, b5), e[3] = _mm_unpackhi_epi32(b1, b5);
    e[4] = _mm_unpacklo_epi32(b2, b6), e[5] = _mm_unpackhi_epi32(b2, b6);
    e[6] = _mm_unpacklo_epi32(b3, b7), e[7] = _mm_unpackhi_epi32(b3, b7);
}

/* The distances of eight 16-byte codes: out[k] = sum over s of
 * lut[s][cb[k][s]], added in the order s = 0..15 from 0 as the scalar loop
 * does (the same bits); one gather per sub-quantizer. */
__attribute__((target("avx2"))) static void sum8_avx2(const float *lut, const uint8_t *cb, float *out) {
    __m128i e[8];
    transpose8(cb, e);
    __m256 d = _mm256_setzero_ps();
    for (int j = 0; j < 8; j++) {
        d = _mm256_add_ps(d, _mm256_i32gather_ps(lut + (2 * j) * 256, _mm256_cvtepu8_epi32(e[j]), 4));
        d = _mm256_add_ps(d, _mm256_i32gather_ps(lut + (2 * j + 1) * 256,
                                                 _mm256_cvtepu8_epi32(_mm_srli_si128(e[j], 8)), 4));
    }
    _mm256_storeu_ps(out, d);
}

/* the same for sixteen codes cb[16][16] with 16-lane gathers. thr: the
 * distance a code must not exceed to enter the best CS_LF_NN (INFINITY:
 * no bound). Returns 0, out unwritten, where after 2, 4, ... or 14 of the
 * 16 sub-quantizers every lane's partial sum is already above thr: the table
 * entries are squared distances (>= 0) and a float sum of non-negative
 * terms never falls as terms are added (each add rounds to nearest of a
 * value >= the last), so each code's full sum would be above thr too and
 * none of the sixteen is kept: the same result without the last gathers.
 * The probed cells are the dense ones (at 200k references 57 codes per
 * probed list against 23 on average, ~1,800 codes per query descriptor),
 * and these gathers were the scan's largest cost. */
__attribute__((target("avx2,avx512f"))) static int sum16_avx512(const float *lut, const uint8_t *cb, float *out,
                                                                float thr) {
    __m128i e[8], f[8];
    transpose8(cb, e);
    transpose8(cb + 128, f);
    const __m512 t = _mm512_set1_ps(thr);
    __m512 d = _mm512_setzero_ps();
    for (int j = 0; j < 8; j++) {
        d = _mm512_add_ps(d, _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi64(e[j], f[j])),
                                                 lut + (2 * j) * 256, 4));
        d = _mm512_add_ps(d, _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi64(e[j], f[j])),
                                                 lut + (2 * j + 1) * 256, 4));
        if (j < 7 && !_mm512_cmp_ps_mask(d, t, _CMP_LE_OQ)) return 0;
    }
    _mm512_storeu_ps(out, d);
    return 1;
}
#endif

/* The multi-index's half tables for ranking cells: t[h][j] = |c_hj|^2 -
 * 2 x_h . c_hj (the squared distance less |x_h|^2, the same for every
 * cell, so the same ranking up to rounding), each dot product one chain of
 * fused multiply-adds over u = 0..63 from 0: one operation per entry and
 * dimension where the distance took three (the coarse step at 1M cells is
 * 2 x 64 x 1,024 of them per query descriptor). fmaf in C and the FMA
 * instructions round once alike: the same bits at every level. */
static void coarse_table_c(const float *ct, const float *cn, const float *x, int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j++) {
            float acc = 0;
            for (int u = 0; u < 64; u++) acc = fmaf(x[h * 64 + u], ct[((size_t)h * 64 + u) * ks + j], acc);
            t[h * ks + j] = cn[h * ks + j] - (acc + acc);
        }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void coarse_table_avx2(const float *ct, const float *cn, const float *x,
                                                                 int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < 64; u++) {
                const __m256 xv = _mm256_set1_ps(x[h * 64 + u]);
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c), a0), a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 8), a1);
                a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 16), a2), a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + 24), a3);
            }
            const float *n = cn + h * ks + j;
            float *o = t + h * ks + j;
            _mm256_storeu_ps(o, _mm256_sub_ps(_mm256_loadu_ps(n), _mm256_add_ps(a0, a0)));
            _mm256_storeu_ps(o + 8, _mm256_sub_ps(_mm256_loadu_ps(n + 8), _mm256_add_ps(a1, a1)));
            _mm256_storeu_ps(o + 16, _mm256_sub_ps(_mm256_loadu_ps(n + 16), _mm256_add_ps(a2, a2)));
            _mm256_storeu_ps(o + 24, _mm256_sub_ps(_mm256_loadu_ps(n + 24), _mm256_add_ps(a3, a3)));
        }
}

__attribute__((target("avx512f"))) static void coarse_table_avx512(const float *ct, const float *cn, const float *x,
                                                                  int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int u = 0; u < 64; u++) {
                const __m512 xv = _mm512_set1_ps(x[h * 64 + u]);
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c), a0), a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 16), a1);
                a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 32), a2), a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(c + 48), a3);
            }
            const float *n = cn + h * ks + j;
            float *o = t + h * ks + j;
            _mm512_storeu_ps(o, _mm512_sub_ps(_mm512_loadu_ps(n), _mm512_add_ps(a0, a0)));
            _mm512_storeu_ps(o + 16, _mm512_sub_ps(_mm512_loadu_ps(n + 16), _mm512_add_ps(a1, a1)));
            _mm512_storeu_ps(o + 32, _mm512_sub_ps(_mm512_loadu_ps(n + 32), _mm512_add_ps(a2, a2)));
            _mm512_storeu_ps(o + 48, _mm512_sub_ps(_mm512_loadu_ps(n + 48), _mm512_add_ps(a3, a3)));
        }
}

/* coarse_table_avx512 for four query descriptors x[4][128] at once, t[4][2][ks]:
 * each block of centroids is read once for the four (at 1M cells the
 * half tables' centroids are 512 KB, streamed from the caches per query
 * descriptor); every entry is the same chain as alone: the same bits */
__attribute__((target("avx512f"))) static void coarse_table4_avx512(const float *ct, const float *cn, const float *x,
                                                                   int ks, float *t) {
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < ks; j += 32) {
            __m512 a[4][2];
            for (int q = 0; q < 4; q++) a[q][0] = a[q][1] = _mm512_setzero_ps();
            for (int u = 0; u < 64; u++) {
                const float *c = ct + ((size_t)h * 64 + u) * ks + j;
                const __m512 c0 = _mm512_loadu_ps(c), c1 = _mm512_loadu_ps(c + 16);
                for (int q = 0; q < 4; q++) {
                    const __m512 xv = _mm512_set1_ps(x[q * 128 + h * 64 + u]);
                    a[q][0] = _mm512_fmadd_ps(xv, c0, a[q][0]), a[q][1] = _mm512_fmadd_ps(xv, c1, a[q][1]);
                }
            }
            const __m512 n0 = _mm512_loadu_ps(cn + h * ks + j), n1 = _mm512_loadu_ps(cn + h * ks + j + 16);
            for (int q = 0; q < 4; q++) {
                float *o = t + ((size_t)q * 2 + h) * ks + j;
                _mm512_storeu_ps(o, _mm512_sub_ps(n0, _mm512_add_ps(a[q][0], a[q][0])));
                _mm512_storeu_ps(o + 16, _mm512_sub_ps(n1, _mm512_add_ps(a[q][1], a[q][1])));
            }
        }
}
#endif

typedef struct {
    const cs_lf_index *ix;
    const float *x;       /* [n][128] */
    const int64_t *lists; /* [n][nprobe] */
    int nprobe, simd; /* 0 scalar, 1 AVX2, 2 AVX-512 (cs_lf_index_simd) */
    int fma;          /* cpuid has FMA (the coarse tables' AVX2 level) */
    size_t per_thread;
    int64_t n;            /* query descriptors */
    float *lut;           /* [threads][per_thread]: m x 256 (+ 2 x 2^B with ict) */
    int64_t *rows;        /* [n][CS_LF_NN] */
} scan_ctx;

static void table(const scan_ctx *c, const float *ct, const float *x, int m, int dsub, int ks, float *lut) {
#if defined(__x86_64__)
    if (c->simd == 2) {
        table_avx512(ct, x, m, dsub, ks, lut);
        return;
    }
    if (c->simd == 1) {
        table_avx2(ct, x, m, dsub, ks, lut);
        return;
    }
#endif
    table_c(ct, x, m, dsub, ks, lut);
}

/* keeps the best n (d ascending, then id) of what is offered, in d[], id[] */
/* ---- our PQ encoder ----
 * FAISS's ProductQuantizer::compute_code (dsub < 16): per sub-quantizer,
 * the distance to every centroid as fvec_L2sqr_ref sums it (from 0 over
 * u = 0..dsub-1, multiply and add apart: the generic build has no FMA) and
 * the first centroid of the least distance. The distances are the query
 * table's (table_c and its SIMD levels: the same bits), so the codes are
 * FAISS's; 256 descriptors per task, any thread count. */
typedef struct {
    const cs_lf_index *ix;
    const float *x;
    uint8_t *codes;
    int64_t n;
    int simd;
    int fail;
} enc_ctx;

/* The first j of the least t[j], j < 256 (t >= 0, no NaN). */
static int argmin256_c(const float *t) {
    int best = 0;
    for (int j = 1; j < 256; j++) best = t[j] < t[best] ? j : best;
    return best;
}

#if defined(__x86_64__)
/* argmin256_c by lanes: lane l keeps its first least t[16 i + l] (strict
 * <), then the least value's lowest index over the lanes: the same j. */
__attribute__((target("avx512f"))) static int argmin256_avx512(const float *t) {
    __m512 mv = _mm512_loadu_ps(t);
    __m512i iv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), cur = iv;
    const __m512i step = _mm512_set1_epi32(16);
    for (int j = 16; j < 256; j += 16) {
        cur = _mm512_add_epi32(cur, step);
        const __m512 v = _mm512_loadu_ps(t + j);
        const __mmask16 k = _mm512_cmp_ps_mask(v, mv, _CMP_LT_OQ);
        mv = _mm512_mask_mov_ps(mv, k, v);
        iv = _mm512_mask_mov_epi32(iv, k, cur);
    }
    const __mmask16 eq = _mm512_cmp_ps_mask(mv, _mm512_set1_ps(_mm512_reduce_min_ps(mv)), _CMP_EQ_OQ);
    return _mm512_reduce_min_epi32(_mm512_mask_mov_epi32(_mm512_set1_epi32(256), eq, iv));
}
#endif

static void encode_block(void *vc, int64_t b, int thread) {
    (void)thread;
    enc_ctx *c = vc;
    const cs_lf_index *ix = c->ix;
    const int m = ix->pq_m, ks = 256;
    float *lut = malloc(sizeof(float) * (size_t)m * ks);
    if (!lut) {
        c->fail = 1;
        return;
    }
    for (int64_t i = b * 256; i < c->n && i < (b + 1) * 256; i++) {
        const float *x = c->x + i * 128;
#if defined(__x86_64__)
        if (c->simd == 2) table_avx512(ix->ct, x, m, ix->pq_dsub, ks, lut);
        else if (c->simd == 1) table_avx2(ix->ct, x, m, ix->pq_dsub, ks, lut);
        else
#endif
            table_c(ix->ct, x, m, ix->pq_dsub, ks, lut);
        for (int s = 0; s < m; s++) {
#if defined(__x86_64__)
            if (c->simd == 2) {
                c->codes[i * m + s] = (uint8_t)argmin256_avx512(lut + (size_t)s * ks);
                continue;
            }
#endif
            c->codes[i * m + s] = (uint8_t)argmin256_c(lut + (size_t)s * ks);
        }
    }
    free(lut);
}

static int pq_encode(const cs_lf_index *ix, int64_t n, const float *x, uint8_t *codes) {
    enc_ctx c = {ix, x, codes, n, simd_level(ix->simd_max), 0};
    cs_parallel_for(cs_threads(), (n + 255) / 256, encode_block, &c);
    return c.fail ? -1 : 0;
}

static void offer(float *d, int64_t *id, int n, int *have, float v, int64_t i) {
    if (*have == n && (v > d[n - 1] || (v == d[n - 1] && i >= id[n - 1]))) return;
    int k = *have < n ? (*have)++ : n - 1;
    for (; k > 0 && (v < d[k - 1] || (v == d[k - 1] && i < id[k - 1])); k--) d[k] = d[k - 1], id[k] = id[k - 1];
    d[k] = v, id[k] = i;
}

/* The multi-index's nprobe cells nearest to x: the distance to a cell is the
 * sum of its two halves' distances, so the best P cells are among the best
 * P centroids of each half: P x P sums, the best P kept (by distance, then
 * cell number). tab: 2 x 2^B floats of scratch. */
static void coarse_tables(const scan_ctx *c, const float *x, float *tab) {
    const int k2 = 1 << c->ix->imi_b;
#if defined(__x86_64__)
    if (c->simd == 2 && k2 % 64 == 0) coarse_table_avx512(c->ix->ict, c->ix->icn, x, k2, tab);
    else if (c->simd >= 1 && c->fma && k2 % 32 == 0) coarse_table_avx2(c->ix->ict, c->ix->icn, x, k2, tab);
    else
#endif
        coarse_table_c(c->ix->ict, c->ix->icn, x, k2, tab);
}

/* the cells from x's half tables tab[2][2^B] (coarse_tables) */
static void coarse(const scan_ctx *c, const float *tab, int64_t *lists) {
    const int b = c->ix->imi_b, k2 = 1 << b, P = c->nprobe < k2 ? c->nprobe : k2;
    float hd[2][MAXPROBE];
    int64_t hi[2][MAXPROBE];
    for (int h = 0; h < 2; h++) {
        const float *t = tab + h * k2;
        /* a bound on the P-th smallest: the largest of P blocks' minima (P
         * distinct entries), so every entry kept is <= it; the entries above
         * it (most of them) are not offered, and fewer offers are kept */
        float bound = INFINITY;
        if (k2 >= 2 * P && k2 % P == 0) {
            const int bl = k2 / P;
            bound = -INFINITY;
            for (int g = 0; g < P; g++) {
                float mn = t[g * bl];
                for (int j = 1; j < bl; j++) mn = t[g * bl + j] < mn ? t[g * bl + j] : mn;
                bound = mn > bound ? mn : bound;
            }
        }
        int have = 0;
        for (int j = 0; j < k2; j++) { /* most are rejected here: j ascends, so a tie loses too */
            const float v = t[j];
            if (v <= bound && (have < P || v < hd[h][P - 1])) offer(hd[h], hi[h], P, &have, v, j);
        }
    }
    float bd[MAXPROBE];
    int have = 0;
    for (int a = 0; a < P; a++)
        for (int e = 0; e < P; e++) {
            float v = hd[0][a] + hd[1][e];
            if (have == P && v > bd[P - 1]) break; /* the second half's are ascending */
            offer(bd, lists, P, &have, v, hi[0][a] + (hi[1][e] << b));
        }
    for (int p = have; p < c->nprobe; p++) lists[p] = -1;
}

enum { GROUP = 4 }; /* query descriptors per task: their coarse tables in one pass */

/* tab: x's half tables when ours (coarse_tables), else NULL */
static void scan_one(const scan_ctx *c, int64_t i, float *lut, const float *tab) {
    const int K = CS_LF_NN, m = c->ix->pq_m;
    const int64_t *lists = c->lists ? c->lists + i * c->nprobe : NULL;
    int64_t own_lists[MAXPROBE];
    if (tab) { /* the cells ourselves */
        coarse(c, tab, own_lists);
        lists = own_lists;
    }
    table(c, c->ix->ct, c->x + i * 128, m, c->ix->pq_dsub, 256, lut);
    float bd[CS_LF_NN];
    int64_t bi[CS_LF_NN];
    for (int k = 0; k < K; k++) bd[k] = INFINITY, bi[k] = INT64_MAX;
    /* the probed lists' codes and ids are scattered over the index (480 MB
     * of codes at 1M references): ask for the first lines of every list
     * before scanning any, so that the misses overlap */
    const uint8_t *lc[MAXPROBE];
    const int64_t *li[MAXPROBE];
    int64_t ln[MAXPROBE];
    const int gather = m == 16 ? c->simd : 0;
    for (int p0 = 0; p0 < c->nprobe; p0 += MAXPROBE) /* one group unless FAISS picked the cells */
    for (int pe = c->nprobe - p0 < MAXPROBE ? c->nprobe : p0 + MAXPROBE, p = p0; p < pe; p++) {
        if (p == p0)
            for (int q = p0; q < pe; q++) {
                ln[q - p0] = lists[q] < 0 ? 0 : cs_faiss_list(c->ix->f, lists[q], &lc[q - p0], &li[q - p0]);
                if (ln[q - p0] > 0) {
                    __builtin_prefetch(lc[q - p0]);
                    __builtin_prefetch(lc[q - p0] + 64);
                    __builtin_prefetch(li[q - p0]);
                }
            }
        const uint8_t *codes = lc[p - p0];
        const int64_t *ids = li[p - p0];
        int64_t n = ln[p - p0];
        /* eight codes at a time (sixteen with AVX-512): independent chains of
         * adds (one code's sum is a chain of m dependent adds), each summed
         * in the same order as one code alone; with SIMD one gather per
         * sub-quantizer (sum8_avx2, sum16_avx512: the same bits) */
        for (int64_t e = 0; e < n;) {
            float d8[16] = {0};
            int nb = n - e < 8 ? (int)(n - e) : 8;
            const uint8_t *cb = codes + e * m;
            if (nb == 8 && e + 24 < n) __builtin_prefetch(cb + 24 * m);
#if defined(__x86_64__)
            if (gather == 2 && n - e >= 16) {
                nb = 16;
                if (!sum16_avx512(lut, cb, d8, c->ix->no_prune ? INFINITY : bd[K - 1])) { /* none of the 16 kept */
                    e += nb;
                    continue;
                }
            } else if (gather && nb == 8) {
                sum8_avx2(lut, cb, d8);
            } else
#endif
            if (nb == 8) {
                for (int s = 0; s < m; s++)
                    for (int k = 0; k < 8; k++) d8[k] += lut[s * 256 + cb[k * m + s]];
            } else {
                for (int k = 0; k < nb; k++)
                    for (int s = 0; s < m; s++) d8[k] += lut[s * 256 + cb[k * m + s]];
            }
            for (int b = 0; b < nb; b++) {
                float d = d8[b];
                int64_t id = ids[e + b];
                if (d > bd[K - 1] || (d == bd[K - 1] && id >= bi[K - 1])) continue;
                int k = K - 1; /* insertion into the sorted best K */
                for (; k > 0 && (d < bd[k - 1] || (d == bd[k - 1] && id < bi[k - 1])); k--)
                    bd[k] = bd[k - 1], bi[k] = bi[k - 1];
                bd[k] = d, bi[k] = id;
            }
            e += nb;
        }
    }
    for (int k = 0; k < K; k++) c->rows[i * K + k] = bi[k] == INT64_MAX ? -1 : bi[k];
}

/* query descriptors [GROUP g, GROUP g + GROUP) of c->n */
static void scan_group(void *vc, int64_t g, int thread) {
    const scan_ctx *c = vc;
    float *lut = c->lut + (size_t)thread * c->per_thread, *tab = lut + c->ix->pq_m * 256;
    const int64_t i0 = g * GROUP, n = c->n - i0 < GROUP ? c->n - i0 : GROUP;
    const size_t k2 = c->ix->ict ? (size_t)1 << c->ix->imi_b : 0;
    if (c->ix->ict) {
#if defined(__x86_64__)
        if (n == GROUP && c->simd == 2 && k2 % 64 == 0) coarse_table4_avx512(c->ix->ict, c->ix->icn, c->x + i0 * 128, (int)k2, tab);
        else
#endif
            for (int64_t q = 0; q < n; q++) coarse_tables(c, c->x + (i0 + q) * 128, tab + q * 2 * k2);
    }
    for (int64_t q = 0; q < n; q++) scan_one(c, i0 + q, lut, c->ix->ict ? tab + q * 2 * k2 : NULL);
}

/* the CS_LF_NN nearest of n query descriptors x[n][128]: rows[n][CS_LF_NN] */
static int nearest(cs_lf_index *ix, int64_t n, const float *x, int64_t *rows, float *dist, cs_err *err) {
    if (!ix->ct) return cs_faiss_search(ix->f, n, x, CS_LF_NN, dist, rows, err);
    int nprobe = cs_faiss_nprobe(ix->f), nt = cs_threads();
    if (nprobe > MAXPROBE && ix->ict) { /* more cells than our coarse step keeps: FAISS's */
        free(ix->ict);
        free(ix->icn);
        ix->ict = ix->icn = NULL;
    }
    size_t per = (size_t)ix->pq_m * 256 + (ix->ict ? (size_t)GROUP * 2 << ix->imi_b : 0);
    int64_t *lists = ix->ict ? NULL : malloc(sizeof(int64_t) * (size_t)n * (nprobe > 0 ? nprobe : 1));
    float *lut = malloc(sizeof(float) * (size_t)nt * per);
    int rc = -1;
    if ((!ix->ict && !lists) || !lut) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    } else if (nprobe > 0 && (ix->ict || !cs_faiss_coarse(ix->f, n, x, nprobe, lists, err))) {
        scan_ctx c = {.ix = ix, .x = x, .lists = lists, .nprobe = nprobe, .per_thread = per, .lut = lut, .rows = rows};
#if defined(__x86_64__)
        c.simd = simd_level(ix->simd_max);
#if defined(__x86_64__)
        c.fma = __builtin_cpu_supports("fma");
#endif
#endif
        c.n = n;
        cs_parallel_for(nt, (n + GROUP - 1) / GROUP, scan_group, &c);
        rc = 0;
    }
    free(lists);
    free(lut);
    return rc;
}

int cs_lf_index_knn(cs_lf_index *ix, int64_t n, const uint8_t *desc, int k, int64_t *rows, cs_err *err) {
    float *x = malloc(sizeof(float) * 128 * (size_t)(n ? n : 1)), *d = malloc(sizeof(float) * (size_t)(n ? n : 1) * k);
    int rc = -1;
    if (!x || !d) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    } else {
        for (int64_t i = 0; i < 128 * n; i++) x[i] = desc[i];
        rc = n <= 0 ? 0 : k == CS_LF_NN ? nearest(ix, n, x, rows, d, err) : cs_faiss_search(ix->f, n, x, k, d, rows, err);
    }
    free(x);
    free(d);
    return rc;
}

static int cmp_vote(const void *a, const void *b) {
    const cs_lf_vote *x = a, *y = b;
    if (x->votes != y->votes) return x->votes > y->votes ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}
static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* one query set's votes from its descriptors' nearest rows[n][K] */
static int vote(const cs_lf_index *ix, const int64_t *rows, int n, int32_t *hit, cs_lf_vote *v, int max_out,
                cs_lf_vote *out) {
    const int K = CS_LF_NN;
    /* one vote per (query keypoint, reference): dedupe within each keypoint's list */
    int nh = 0;
    for (int k = 0; k < n; k++) {
        int start = nh;
        for (int j = 0; j < K; j++) {
            int64_t r = rows[k * K + j];
            if (r < 0 || r >= ix->nd) continue;
            int32_t ref = ix->owner[r], dup = 0;
            for (int t = start; t < nh; t++) dup |= hit[t] == ref;
            if (!dup) hit[nh++] = ref;
        }
    }
    qsort(hit, (size_t)nh, sizeof *hit, cmp_i32);
    int nv = 0;
    for (int t = 0; t < nh; t++) {
        if (nv && v[nv - 1].row == hit[t]) v[nv - 1].votes++;
        else v[nv++] = (cs_lf_vote){hit[t], 1};
    }
    qsort(v, (size_t)nv, sizeof *v, cmp_vote);
    int m = nv < max_out ? nv : max_out;
    memcpy(out, v, sizeof *v * (size_t)m);
    return m;
}

int cs_lf_retrieve(cs_lf_index *ix, const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout,
                   cs_err *err) {
    /* the descriptors of CS_LF_BATCH sets go to FAISS in one search (its
     * coarse quantizer is then one matrix product, and its threads share
     * the queries); a fixed batch, so the answer does not depend on how
     * many threads there are */
    const int K = CS_LF_NN, M = CS_LF_QUERY_KP, B = CS_LF_BATCH;
    float *x = malloc(sizeof(float) * 128 * (size_t)M * B), *dist = malloc(sizeof(float) * (size_t)M * B * K);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)M * B * K);
    int32_t *hit = malloc(sizeof(int32_t) * M * K);
    cs_lf_vote *v = malloc(sizeof(cs_lf_vote) * M * K);
    int rc = -1;
    if (!x || !dist || !rows || !hit || !v) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nq; i++) nout[i] = 0;
    for (int64_t b = 0; b < nq && ix->nd > 0; b += B) {
        int64_t e = nq - b < B ? nq : b + B, nd = 0;
        for (int64_t i = b; i < e; i++)
            for (int k = 0; k < q[i].n; k++, nd++)
                for (int j = 0; j < 128; j++) x[nd * 128 + j] = q[i].desc[k][j];
        if (nd == 0) continue;
        if (nearest(ix, nd, x, rows, dist, err)) goto out;
        for (int64_t i = b, at = 0; i < e; at += q[i].n, i++)
            if (q[i].n > 0) nout[i] = vote(ix, rows + at * K, q[i].n, hit, v, max_out, out + i * max_out);
    }
    rc = 0;
out:
    free(x);
    free(dist);
    free(rows);
    free(hit);
    free(v);
    return rc;
}

/* ---- the vote index beside the store ---- */

static const char VMAGIC[4] = {'C', 'S', 'L', 'V'};
enum { VHDR = 4 + 4 + 4 + 4 + 8 + 8 + 8 + 64 + 4 };

static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* The end of a side file whose head was written (ok): the FAISS index, then
 * the magic and the FAISS part's length, so that a truncated file is refused
 * before FAISS reads it (faiss::read_index leaks what it had read when a file
 * ends early). The file takes its place only when all of it was written. */
static int finish_with_faiss(cs_atomic_file *a, int ok, const cs_lf_index *ix, const char magic[4], const char *path,
                             cs_err *err) {
    long at = ok ? ftell(a->f) : -1;
    int bad = at < 0 || cs_faiss_write_fp(ix->f, a->f, path, err);
    if (!bad) {
        uint8_t tail[12];
        memcpy(tail, magic, 4);
        put64(tail + 4, (uint64_t)(ftell(a->f) - at));
        bad = fwrite(tail, 1, 12, a->f) != 12;
    }
    if (bad) {
        cs_err e2 = {0};
        cs_atomic_finish(a, 0, &e2);
        return err->code ? -1 : cs_fail(err, CS_EIO, "%s: write failed", path);
    }
    return cs_atomic_finish(a, 1, err);
}

int cs_lf_index_save(const cs_lf_index *ix, const char *path, uint64_t fp, int64_t nref, cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    uint8_t h[VHDR] = {0};
    memcpy(h, VMAGIC, 4);
    put32(h + 4, 1);
    put32(h + 8, CS_LF_RECORD);
    put32(h + 12, CS_LF_REF_KP);
    put64(h + 16, fp);
    put64(h + 24, (uint64_t)nref);
    put64(h + 32, (uint64_t)ix->nd);
    memcpy(h + 40, ix->factory, 63);
    put32(h + 104, (uint32_t)(cs_faiss_nlist(ix->f) > 0 ? cs_faiss_nprobe(ix->f) : 0));
    int ok = fwrite(h, 1, sizeof h, a.f) == sizeof h;
    for (int64_t d = 0; ok && d < ix->nd; d++) {
        uint8_t b[4];
        put32(b, (uint32_t)ix->owner[d]);
        ok = fwrite(b, 1, 4, a.f) == 4;
    }
    return finish_with_faiss(&a, ok, ix, VMAGIC, path, err);
}

/* the header of a side file: 0 and *nd when it is one built from records
 * with fingerprint fp (nref of them), else an error saying why not */
static int vote_header(FILE *f, const char *path, uint64_t fp, int64_t nref, uint8_t h[VHDR], cs_err *err) {
    if (fread(h, 1, VHDR, f) != VHDR || memcmp(h, VMAGIC, 4))
        return cs_fail(err, CS_EFORMAT, "%s: not a local-feature vote index (bad header)", path);
    if (get32(h + 4) != 1 || get32(h + 8) != CS_LF_RECORD || get32(h + 12) != CS_LF_REF_KP)
        return cs_fail(err, CS_EFORMAT, "%s: vote index of another version (%u)", path, get32(h + 4));
    if (get64(h + 16) != fp || get64(h + 24) != (uint64_t)nref)
        return cs_fail(err, CS_ENOTFOUND, "%s: built for another reference set (%llu references, now %lld)", path,
                       (unsigned long long)get64(h + 24), (long long)nref);
    if (get64(h + 32) > (uint64_t)nref * CS_LF_REF_KP || h[40 + 63] != 0)
        return cs_fail(err, CS_EFORMAT, "%s: corrupt header", path);
    return 0;
}

int cs_lf_index_load(cs_lf_index **out, const char *path, uint64_t fp, int64_t nref, cs_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_ENOTFOUND, "%s: missing", path);
    uint8_t h[VHDR];
    cs_lf_index *ix = NULL;
    int rc = -1;
    if (vote_header(f, path, fp, nref, h, err)) goto out;
    if (!(ix = calloc(1, sizeof *ix))) goto nomem;
    ix->simd_max = 2;
    ix->nd = (int64_t)get64(h + 32);
    memcpy(ix->factory, h + 40, 64);
    if (!(ix->owner = malloc(sizeof(int32_t) * (size_t)(ix->nd ? ix->nd : 1)))) goto nomem;
    for (int64_t d = 0, prev = 0; d < ix->nd; d++) {
        uint8_t b[4];
        if (fread(b, 1, 4, f) != 4) {
            cs_fail(err, CS_EFORMAT, "%s: truncated (owners)", path);
            goto out;
        }
        int64_t o = (int32_t)get32(b);
        if (o < prev || o >= nref) {
            cs_fail(err, CS_EFORMAT, "%s: corrupt (descriptor %lld of reference %lld)", path, (long long)d, (long long)o);
            goto out;
        }
        ix->owner[d] = (int32_t)(prev = o);
    }
    uint8_t tail[12];
    long at = ftell(f), end = -1;
    if (at < 0 || fseek(f, -12, SEEK_END) || (end = ftell(f)) < at || fread(tail, 1, 12, f) != 12 ||
        memcmp(tail, VMAGIC, 4) || get64(tail + 4) != (uint64_t)(end - at) || fseek(f, at, SEEK_SET)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated or corrupt (bad end)", path);
        goto out;
    }
    if (cs_faiss_read_fp(&ix->f, f, path, err)) goto out;
    if (cs_faiss_ntotal(ix->f) != ix->nd || cs_faiss_dim(ix->f) != 128 || ftell(f) != end) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt (index of %lld descriptors, %lld expected, or bad end)", path,
                (long long)cs_faiss_ntotal(ix->f), (long long)ix->nd);
        goto out;
    }
    int np = (int)get32(h + 104);
    if (np > 0 && cs_faiss_nlist(ix->f) > 0 && cs_faiss_set_param(ix->f, "nprobe", np, err)) goto out;
    own_scan_setup(ix);
    rc = 0;
    goto out;
nomem:
    cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
out:
    fclose(f);
    if (rc) cs_lf_index_free(ix);
    else *out = ix;
    return rc;
}

/* An incremental add: the side file at path when it was built from the
 * first m < n of these records (references added since: new ones come last,
 * by refs.id) and the default factory for all n records' descriptors is the
 * one it has (its cells, trained on the first m records, stay the right
 * size); then *out holds it and m is returned, else -1. */
static int64_t prefix_index(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids,
                            const uint8_t *recs) {
    *out = NULL;
    FILE *f = path ? fopen(path, "rb") : NULL;
    uint8_t h[VHDR];
    if (!f) return -1;
    int ok = fread(h, 1, VHDR, f) == VHDR && !memcmp(h, VMAGIC, 4);
    fclose(f);
    int64_t m = ok ? (int64_t)get64(h + 24) : -1;
    if (m <= 0 || m >= n) return -1;
    int64_t nd = 0;
    for (int64_t i = 0; i < n; i++) nd += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    char fac[64];
    int np;
    cs_lf_default_factory(nd, fac, sizeof fac, &np);
    if (h[40 + 63] != 0 || strcmp(fac, (const char *)h + 40)) return -1; /* the cells would be too big */
    cs_err e = {0};
    if (cs_lf_index_load(out, path, cs_lf_fingerprint(m, ids, recs), m, &e)) return -1;
    return m;
}

int cs_lf_index_open(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                     char *note, size_t cap, cs_err *err) {
    return cs_lf_index_open_fp(out, path, n, ids, recs, cs_lf_fingerprint(n, ids, recs), note, cap, err);
}

int cs_lf_index_open_fp(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                        uint64_t fp, char *note, size_t cap, cs_err *err) {
    cs_err why = {0};
    if (note && cap) note[0] = 0;
    if (out) {
        if (!cs_lf_index_load(out, path, fp, n, &why)) return 0;
    } else { /* only make sure the file is current: its header says */
        FILE *f = fopen(path, "rb");
        uint8_t h[VHDR];
        if (!f) {
            cs_fail(&why, CS_ENOTFOUND, "%s: missing", path);
        } else {
            int bad = vote_header(f, path, fp, n, h, &why);
            fclose(f);
            if (!bad) return 0;
        }
    }
    cs_lf_index *ix;
    int64_t m = why.code == CS_ENOTFOUND ? prefix_index(&ix, path, n, ids, recs) : -1;
    if (m >= 0) {
        if (index_append(ix, m, n, recs, err)) {
            cs_lf_index_free(ix);
            return -1;
        }
    } else if (cs_lf_index_build(&ix, n, recs, NULL, err)) {
        return -1;
    }
    cs_err se = {0};
    int saved = path && !cs_lf_index_save(ix, path, fp, n, &se);
    if (!path) cs_fail(&se, CS_EUSAGE, "no path");
    char what[96];
    if (m >= 0) snprintf(what, sizeof what, "%lld appended to it", (long long)(n - m));
    else snprintf(what, sizeof what, "rebuilt");
    if (note && cap)
        snprintf(note, cap, "local-feature vote index: %s; %s%s for %lld references%s%s", why.msg, what,
                 saved ? " and saved" : "", (long long)n, saved ? "" : " (not saved: ", saved ? "" : se.msg);
    if (note && cap && !saved && strlen(note) + 2 < cap) strcat(note, ")");
    if (out) *out = ix;
    else cs_lf_index_free(ix);
    return 0;
}

/* ---- the vote search in parts (one per MPI rank, issue 17) ----
 * A part indexes the descriptors of some of the records with the whole
 * index's trained quantizer (its cells and PQ codebooks, or "Flat"), so a
 * query descriptor's distance to one of them is the one the whole index
 * computes, bit for bit; each keeps its number in the whole index (its
 * record's first descriptor + its keypoint), and the part's own numbering
 * follows that order, so its ties fall as the whole index's do. The whole
 * index's CS_LF_NN nearest of a query descriptor are then the best
 * CS_LF_NN of the parts' lists by (distance, number): the scan probes the
 * same cells in every part (they come from the quantizer alone) and keeps
 * the best by (distance, number) among the codes it meets, and "Flat"
 * distances of byte descriptors are exact integers in float (every sum is
 * below 2^24) however FAISS orders them. */

static const char QMAGIC[4] = {'C', 'S', 'L', 'Q'};
enum { QHDR = 4 + 64 + 4 };

int cs_lf_index_counts(const cs_lf_index *ix, int64_t nrec, uint8_t *cnt) {
    memset(cnt, 0, (size_t)nrec);
    for (int64_t d = 0; d < ix->nd; d++) {
        if (ix->owner[d] < 0 || ix->owner[d] >= nrec || cnt[ix->owner[d]] == 255) return -1;
        cnt[ix->owner[d]]++;
    }
    return 0;
}

int cs_lf_quantizer_save(const cs_lf_index *ix, uint8_t **buf, size_t *len, cs_err *err) {
    *buf = NULL, *len = 0;
    char *mem = NULL;
    size_t mlen = 0;
    FILE *tmp = NULL, *out = open_memstream(&mem, &mlen);
    cs_faiss *q = NULL;
    int rc = -1;
    if (!out) return cs_fail(err, CS_ENOMEM, "localfeat: out of memory for the quantizer");
    uint8_t h[QHDR] = {0};
    memcpy(h, QMAGIC, 4);
    snprintf((char *)h + 4, 64, "%s", ix->factory);
    put32(h + 68, (uint32_t)cs_faiss_nprobe(ix->f));
    if (fwrite(h, 1, QHDR, out) != QHDR) goto fail;
    if (cs_faiss_nlist(ix->f) > 0) { /* an empty copy of the trained index: written, read back, emptied */
        if (!(tmp = tmpfile())) {
            cs_fail(err, CS_EIO, "localfeat: no temporary file for the quantizer: %s", strerror(errno));
            goto out;
        }
        if (cs_faiss_write_fp(ix->f, tmp, "quantizer", err)) goto out;
        rewind(tmp);
        if (cs_faiss_read_fp(&q, tmp, "quantizer", err) || cs_faiss_reset(q, err) ||
            cs_faiss_write_fp(q, out, "quantizer", err))
            goto out;
    }
    if (fflush(out)) goto fail;
    rc = 0;
    goto out;
fail:
    cs_fail(err, CS_ENOMEM, "localfeat: out of memory for the quantizer");
out:
    cs_faiss_free(q);
    if (tmp) fclose(tmp);
    fclose(out);
    if (rc) free(mem);
    else *buf = (uint8_t *)mem, *len = mlen;
    return rc;
}

struct cs_lf_part {
    cs_lf_index *ix;  /* the part's descriptors, numbered 0.. in the whole index's order */
    int64_t *gid;     /* [ix->nd] each one's number in the whole index */
    uint8_t *codes;   /* [ix->nd][pq_m] its PQ code (our scan's distances), NULL for "Flat" */
};

void cs_lf_part_free(cs_lf_part *p) {
    if (!p) return;
    cs_lf_index_free(p->ix);
    free(p->gid);
    free(p->codes);
    free(p);
}

int64_t cs_lf_part_ndesc(const cs_lf_part *p) { return p->ix->nd; }

/* each descriptor's code, by its number (our scan returns numbers, not
 * distances), from the part's lists; none for "Flat" */
static int part_codes(cs_lf_part *p, cs_err *err) {
    const int64_t nd = p->ix->nd;
    const int m = p->ix->pq_m;
    if (!p->ix->ct) return 0;
    if (!(p->codes = malloc((size_t)m * (size_t)(nd ? nd : 1))))
        return cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld codes", (long long)nd);
    for (int64_t l = 0, nl = cs_faiss_nlist(p->ix->f); l < nl; l++) {
        const uint8_t *c;
        const int64_t *id;
        int64_t ln = cs_faiss_list(p->ix->f, l, &c, &id);
        for (int64_t e = 0; e < ln; e++)
            if (id[e] >= 0 && id[e] < nd) memcpy(p->codes + (size_t)id[e] * m, c + e * m, (size_t)m);
    }
    return 0;
}

int cs_lf_part_build(cs_lf_part **out, const uint8_t *qb, size_t qlen, int64_t n, const uint8_t *recs,
                     const uint8_t *cnt, const uint8_t *keep, cs_err *err) {
    enum { CHUNK = 1024 }; /* records copied at a time: the kept ones are scattered */
    *out = NULL;
    cs_lf_part *p = calloc(1, sizeof *p);
    uint8_t *buf = malloc((size_t)CHUNK * CS_LF_RECORD);
    FILE *f = NULL;
    int rc = -1;
    if (!p || !buf || !(p->ix = calloc(1, sizeof *p->ix))) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for a part of the vote index");
        goto out;
    }
    p->ix->simd_max = 2;
    if (qlen < QHDR || memcmp(qb, QMAGIC, 4) || !memchr(qb + 4, 0, 64)) {
        cs_fail(err, CS_EFORMAT, "localfeat: not a vote index's quantizer");
        goto out;
    }
    snprintf(p->ix->factory, sizeof p->ix->factory, "%s", (const char *)qb + 4);
    int nprobe = (int)get32(qb + 68);
    if (qlen == QHDR) {
        if (cs_faiss_new(&p->ix->f, 128, p->ix->factory, 0, err)) goto out;
    } else if (!(f = fmemopen((void *)(qb + QHDR), qlen - QHDR, "rb")) ||
               cs_faiss_read_fp(&p->ix->f, f, "quantizer", err)) {
        if (!err->code) cs_fail(err, CS_ENOMEM, "localfeat: out of memory reading the quantizer");
        goto out;
    }
    own_scan_setup(p->ix); /* the codebooks, for pq_encode */
    int64_t nd = 0, g = 0;
    for (int64_t i = 0; i < n; i++) nd += keep[i] ? cnt[i] : 0;
    if (!(p->gid = malloc(sizeof *p->gid * (size_t)(nd ? nd : 1)))) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nd);
        goto out;
    }
    for (int64_t i = 0, d = 0, b = 0; i < n; i++) {
        if (keep[i]) {
            if (rec_nk(recs + (size_t)i * CS_LF_RECORD) != cnt[i]) {
                cs_fail(err, CS_EFORMAT, "localfeat: record %lld has %d descriptors, the vote index %d",
                        (long long)i, rec_nk(recs + (size_t)i * CS_LF_RECORD), cnt[i]);
                goto out;
            }
            memcpy(buf + (size_t)b++ * CS_LF_RECORD, recs + (size_t)i * CS_LF_RECORD, CS_LF_RECORD);
            for (int k = 0; k < cnt[i]; k++) p->gid[d++] = g + k;
        }
        g += cnt[i];
        /* index_append numbers its descriptors on from ix->nd in the
         * records' order: the part's numbering keeps the whole index's */
        if ((b == CHUNK || (i == n - 1 && b > 0)) && index_append(p->ix, 0, b, buf, err)) goto out;
        if (b == CHUNK || i == n - 1) b = 0;
    }
    if (p->ix->nd != nd) {
        cs_fail(err, CS_EINTERNAL, "localfeat: %lld descriptors in the part, %lld kept", (long long)p->ix->nd,
                (long long)nd);
        goto out;
    }
    if (cs_faiss_nlist(p->ix->f) > 0 && cs_faiss_set_param(p->ix->f, "nprobe", nprobe, err)) goto out;
    own_scan_setup(p->ix);
    free(p->ix->owner); /* a part's owners are p->gid's records: the search reads neither */
    p->ix->owner = NULL;
    if (part_codes(p, err)) goto out;
    rc = 0;
out:
    if (f) fclose(f);
    free(buf);
    if (rc) cs_lf_part_free(p);
    else *out = p;
    return rc;
}

/* sorts list d[K], g[K] by (distance, number), -1 (INFINITY) last */
static void part_sort(float *d, int64_t *g) {
    for (int i = 1; i < CS_LF_NN; i++)
        for (int j = i; j > 0; j--) {
            int64_t a = g[j - 1] < 0 ? INT64_MAX : g[j - 1], b = g[j] < 0 ? INT64_MAX : g[j];
            if (d[j] < d[j - 1] || (d[j] == d[j - 1] && b < a)) {
                float t = d[j];
                d[j] = d[j - 1], d[j - 1] = t;
                int64_t u = g[j];
                g[j] = g[j - 1], g[j - 1] = u;
            } else {
                break;
            }
        }
}

int cs_lf_part_knn(cs_lf_part *p, int64_t n, const uint8_t *desc, float *dist, int64_t *gid, cs_err *err) {
    const int K = CS_LF_NN;
    cs_lf_index *ix = p->ix;
    float *x = malloc(sizeof(float) * 128 * (size_t)(n ? n : 1));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(n ? n : 1) * K);
    float *lut = ix->ct ? malloc(sizeof(float) * (size_t)ix->pq_m * 256) : NULL;
    int rc = -1;
    if (!x || !rows || (ix->ct && !lut)) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < 128 * n; i++) x[i] = desc[i];
    for (int64_t i = 0; i < n * K; i++) rows[i] = -1, dist[i] = INFINITY;
    if (n > 0 && ix->nd > 0 && nearest(ix, n, x, rows, dist, err)) goto out;
    scan_ctx c = {.ix = ix};
    c.simd = simd_level(ix->simd_max); /* the scan's level: its table's bits (the same at every level) */
    for (int64_t i = 0; i < n; i++) {
        if (ix->ct) /* the distance as the scan sums it: from 0, sub-quantizer by sub-quantizer */
            table(&c, ix->ct, x + i * 128, ix->pq_m, ix->pq_dsub, 256, lut);
        for (int k = 0; k < K; k++) {
            int64_t r = rows[i * K + k];
            if (r < 0 || r >= ix->nd) {
                gid[i * K + k] = -1, dist[i * K + k] = INFINITY;
                continue;
            }
            if (ix->ct) {
                float d = 0;
                for (int s = 0; s < ix->pq_m; s++) d += lut[s * 256 + p->codes[(size_t)r * ix->pq_m + s]];
                dist[i * K + k] = d;
            }
            gid[i * K + k] = p->gid[r];
        }
        part_sort(dist + i * K, gid + i * K);
    }
    rc = 0;
out:
    free(x);
    free(rows);
    free(lut);
    return rc;
}

void cs_lf_part_merge(float *acc_d, int64_t *acc_g, const float *d, const int64_t *g, int64_t n) {
    const int K = CS_LF_NN;
    for (int64_t i = 0; i < n; i++) {
        float md[CS_LF_NN];
        int64_t mg[CS_LF_NN];
        const float *ad = acc_d + i * K, *bd = d + i * K;
        const int64_t *ag = acc_g + i * K, *bg = g + i * K;
        for (int k = 0, a = 0, b = 0; k < K; k++) { /* two sorted lists: the best K of both (K from each) */
            int64_t ga = ag[a] < 0 ? INT64_MAX : ag[a], gb = bg[b] < 0 ? INT64_MAX : bg[b];
            if (ad[a] < bd[b] || (ad[a] == bd[b] && ga <= gb)) md[k] = ad[a], mg[k] = ag[a++];
            else md[k] = bd[b], mg[k] = bg[b++];
        }
        memcpy(acc_d + i * K, md, sizeof md);
        memcpy(acc_g + i * K, mg, sizeof mg);
    }
}

int cs_lf_part_votes(const int64_t *first, int64_t nrec, const cs_lf_set *q, int64_t nq, const int64_t *gid,
                     int max_out, cs_lf_vote *out, int *nout, cs_err *err) {
    const int K = CS_LF_NN, M = CS_LF_QUERY_KP;
    int32_t *hit = malloc(sizeof(int32_t) * M * K), *own = malloc(sizeof(int32_t) * M * K);
    int64_t *loc = malloc(sizeof(int64_t) * M * K);
    cs_lf_vote *v = malloc(sizeof(cs_lf_vote) * M * K);
    if (!hit || !own || !loc || !v) {
        free(hit), free(own), free(loc), free(v);
        return cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    }
    /* vote() of cs_lf_retrieve, on an index of one query set's nearest:
     * descriptor j of it is the j-th nearest, owned by its record */
    cs_lf_index one = {.owner = own, .nd = (int64_t)M * K};
    for (int64_t i = 0, at = 0; i < nq; at += q[i].n, i++) {
        nout[i] = 0;
        for (int64_t j = 0; j < (int64_t)q[i].n * K; j++) {
            int64_t g = gid[at * K + j];
            int64_t lo = 0, hi = nrec - 1; /* the record holding descriptor g: first[] ascends */
            while (lo < hi) {
                int64_t mid = (lo + hi + 1) / 2;
                if (first[mid] <= g) lo = mid;
                else hi = mid - 1;
            }
            loc[j] = g < 0 || nrec == 0 ? -1 : j;
            own[j] = (int32_t)lo;
        }
        if (q[i].n > 0) nout[i] = vote(&one, loc, q[i].n, hit, v, max_out, out + i * max_out);
    }
    free(hit), free(own), free(loc), free(v);
    return 0;
}

void cs_lf_index_drop_search(cs_lf_index *ix) {
    cs_faiss_free(ix->f);
    ix->f = NULL;
    free(ix->owner), free(ix->ct), free(ix->ict), free(ix->icn);
    ix->owner = NULL, ix->ct = ix->ict = ix->icn = NULL;
}

int cs_lf_records_map(cs_store *s, int64_t n, uint64_t fp, cs_lf_records *r, cs_err *err) {
    memset(r, 0, sizeof *r);
    r->n = n, r->fp = fp;
    char *path = cs_store_sidecar(s, "lfrec");
    int ok = path && map_records(r, path);
    if (!ok) cs_fail(err, CS_ENOTFOUND, "%s: not the %lld records of fingerprint %016llx", path ? path : "lfrec",
                     (long long)n, (unsigned long long)fp);
    free(path);
    if (!ok) memset(r, 0, sizeof *r);
    return ok ? 0 : -1;
}

/* ---- a part kept beside its shard (<db>.shards/K-of-N.db.lfpart) ----
 * A header ("CSLP", version 1, the two fingerprints, the descriptor count,
 * nprobe, the factory), each descriptor's number in the whole index (8 B,
 * ascending), the part's FAISS index (cells and codebooks, its lists: code
 * and part-local id), and the end as <db>.lfvote's: the magic and the FAISS
 * part's length, so that a cut file is refused before FAISS reads it. */

static const char PMAGIC[4] = {'C', 'S', 'L', 'P'};
enum { PHDR = 4 + 4 + 8 + 8 + 8 + 4 + 64 };

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void cs_lf_part_keys(const uint8_t *q, size_t qlen, uint64_t fp, int64_t n, const uint8_t *keep,
                     uint64_t key[2]) {
    const uint64_t h0 = 0xcbf29ce484222325ull;
    uint8_t b[16];
    key[0] = fnv64(fnv64(h0, "quantizer", 9), q, qlen);
    put64(b, fp);
    put64(b + 8, (uint64_t)n);
    key[1] = fnv64(fnv64(h0, b, 16), keep, (size_t)n);
    if (!key[1]) key[1] = 1; /* 0 stays "no key" */
}

int cs_lf_part_save(const cs_lf_part *p, const char *path, const uint64_t key[2], cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    const cs_lf_index *ix = p->ix;
    uint8_t h[PHDR] = {0};
    memcpy(h, PMAGIC, 4);
    put32(h + 4, 1);
    put64(h + 8, key[0]);
    put64(h + 16, key[1]);
    put64(h + 24, (uint64_t)ix->nd);
    put32(h + 32, (uint32_t)(cs_faiss_nlist(ix->f) > 0 ? cs_faiss_nprobe(ix->f) : 0));
    memcpy(h + 36, ix->factory, 63);
    int ok = fwrite(h, 1, sizeof h, a.f) == sizeof h;
    for (int64_t d = 0; ok && d < ix->nd; d++) {
        uint8_t b[8];
        put64(b, (uint64_t)p->gid[d]);
        ok = fwrite(b, 1, 8, a.f) == 8;
    }
    return finish_with_faiss(&a, ok, ix, PMAGIC, path, err);
}

int cs_lf_part_load(cs_lf_part **out, const char *path, const uint64_t key[2], int64_t total, cs_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_ENOTFOUND, "%s: missing", path);
    uint8_t h[PHDR], tail[12];
    cs_lf_part *p = NULL;
    int rc = -1;
    if (fread(h, 1, PHDR, f) != PHDR || memcmp(h, PMAGIC, 4) || get32(h + 4) != 1 || h[36 + 63] != 0) {
        cs_fail(err, CS_EFORMAT, "%s: not a vote index part (bad header)", path);
        goto out;
    }
    if (get64(h + 8) != key[0] || get64(h + 16) != key[1]) {
        cs_fail(err, CS_ENOTFOUND, "%s: built with another quantizer or for other records", path);
        goto out;
    }
    const int64_t nd = (int64_t)get64(h + 24);
    if (nd < 0 || nd > total) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt header (%lld descriptors of %lld)", path, (long long)nd,
                (long long)total);
        goto out;
    }
    if (!(p = calloc(1, sizeof *p)) || !(p->ix = calloc(1, sizeof *p->ix)) ||
        !(p->gid = malloc(sizeof *p->gid * (size_t)(nd ? nd : 1)))) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    p->ix->simd_max = 2;
    p->ix->nd = nd;
    memcpy(p->ix->factory, h + 36, 64);
    for (int64_t d = 0; d < nd; d++) {
        uint8_t b[8];
        if (fread(b, 1, 8, f) != 8) {
            cs_fail(err, CS_EFORMAT, "%s: truncated (numbers)", path);
            goto out;
        }
        p->gid[d] = (int64_t)get64(b);
        if (p->gid[d] < (d ? p->gid[d - 1] + 1 : 0) || p->gid[d] >= total) { /* ascending, in the whole index */
            cs_fail(err, CS_EFORMAT, "%s: corrupt (descriptor %lld)", path, (long long)d);
            goto out;
        }
    }
    long at = ftell(f), end = -1;
    if (at < 0 || fseek(f, -12, SEEK_END) || (end = ftell(f)) < at || fread(tail, 1, 12, f) != 12 ||
        memcmp(tail, PMAGIC, 4) || get64(tail + 4) != (uint64_t)(end - at) || fseek(f, at, SEEK_SET)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated or corrupt (bad end)", path);
        goto out;
    }
    if (cs_faiss_read_fp(&p->ix->f, f, path, err)) goto out;
    if (cs_faiss_ntotal(p->ix->f) != nd || cs_faiss_dim(p->ix->f) != 128 || ftell(f) != end) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt (index of %lld descriptors, %lld expected, or bad end)", path,
                (long long)cs_faiss_ntotal(p->ix->f), (long long)nd);
        goto out;
    }
    int np = (int)get32(h + 32);
    if (np > 0 && cs_faiss_nlist(p->ix->f) > 0 && cs_faiss_set_param(p->ix->f, "nprobe", np, err)) goto out;
    own_scan_setup(p->ix);
    if (part_codes(p, err)) goto out;
    rc = 0;
out:
    fclose(f);
    if (rc) cs_lf_part_free(p);
    else *out = p;
    return rc;
}
