/* localfeat.c — SIFT sets per image, their records (packed, in a column
 * file, memory-mapped beside the store); the vote index is lf_index.c. */
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
#include "index/lf_index_internal.h"
#include "index/opencv_shim.h"

_Static_assert(LF_HDR + CS_LF_REF_KP * LF_KPB <= CS_LF_RECORD, "record budget");

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
        uint8_t *p = rec + LF_HDR + i * LF_KPB;
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
        const uint8_t *p = rec + LF_HDR + i * LF_KPB;
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

