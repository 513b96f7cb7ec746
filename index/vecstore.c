/* vecstore.c — memory-mapped, appendable vector columns (see vecstore.h). */
#include "index/vecstore.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char VEC_MAGIC[8] = {'C', 'S', 'V', 'E', 'C', 0, 0, 1};
static const char IDS_MAGIC[8] = {'C', 'S', 'I', 'D', 'S', 0, 0, 1};

typedef struct {
    char magic[8];
    uint32_t version, dim, dtype, reserved;
    uint64_t count;
} vs_header; /* followed by zero padding up to CS_VS_HEADER_SIZE */

static int full_pwrite(int fd, const void *buf, size_t len, off_t off) {
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w, len -= (size_t)w, off += w;
    }
    return 0;
}

static int write_header(int fd, const char magic[8], int dim, int dtype, uint64_t count) {
    unsigned char buf[CS_VS_HEADER_SIZE] = {0};
    vs_header h = {{0}, 1, (uint32_t)dim, (uint32_t)dtype, 0, count};
    memcpy(h.magic, magic, 8);
    memcpy(buf, &h, sizeof h);
    return full_pwrite(fd, buf, sizeof buf, 0);
}

/* Reads and checks one file's header; *size = file size. */
static int read_header(int fd, const char *path, const char magic[8], vs_header *h,
                       uint64_t *size, cs_err *err) {
    struct stat st;
    if (fstat(fd, &st)) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    *size = (uint64_t)st.st_size;
    if (*size < CS_VS_HEADER_SIZE)
        return cs_fail(err, CS_EFORMAT, "%s: truncated header (%llu bytes)", path,
                       (unsigned long long)*size);
    if (pread(fd, h, sizeof *h, 0) != (ssize_t)sizeof *h)
        return cs_fail(err, CS_EIO, "%s: cannot read header", path);
    if (memcmp(h->magic, magic, 8))
        return cs_fail(err, CS_EFORMAT, "%s: not a copyscope vector column (bad magic)", path);
    if (h->version != 1)
        return cs_fail(err, CS_EFORMAT, "%s: unsupported version %u", path, h->version);
    if (h->dim < 1 || h->dim > CS_VS_MAX_DIM)
        return cs_fail(err, CS_EFORMAT, "%s: bad dimension %u", path, h->dim);
    if (h->dtype != CS_VS_F32 && h->dtype != CS_VS_Q8)
        return cs_fail(err, CS_EFORMAT, "%s: unsupported dtype %u", path, h->dtype);
    return 0;
}

static size_t row_bytes(int dim, int dtype) {
    return dtype == CS_VS_Q8 ? (size_t)dim + sizeof(float) : (size_t)dim * sizeof(float);
}

/* q8 (vecstore.h): one row's scale and int8 values, and back. The values are
 * rounded on the grid max |v| / 127; the scale kept is then the one that
 * gives the decoded row the norm of v (a unit embedding stays a unit
 * vector, so a cosine by dot product stays <= 1 and an exact copy scores
 * the cosine of the rounding's angle, not above 1). */
static void q8_encode(const float *v, int dim, unsigned char *out) {
    float mx = 0;
    for (int i = 0; i < dim; i++) mx = fmaxf(mx, fabsf(v[i]));
    float g = mx / 127.0f, s = 0;
    double vv = 0, qq = 0;
    for (int i = 0; i < dim; i++) {
        long q = g > 0 ? lrintf(v[i] / g) : 0;
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        out[sizeof s + (size_t)i] = (unsigned char)(int8_t)q;
        vv += (double)v[i] * v[i];
        qq += (double)(q * q);
    }
    if (qq > 0) s = (float)sqrt(vv / qq);
    memcpy(out, &s, sizeof s);
}

static void q8_decode(const unsigned char *row, int dim, float *out) {
    float s;
    memcpy(&s, row, sizeof s);
    for (int i = 0; i < dim; i++) out[i] = (float)(int8_t)row[sizeof s + (size_t)i] * s;
}

void cs_vs_q8_decode(const unsigned char *rows, int64_t n, int dim, float *out) {
    size_t rb = row_bytes(dim, CS_VS_Q8);
    for (int64_t r = 0; r < n; r++) q8_decode(rows + (size_t)r * rb, dim, out + (size_t)r * (size_t)dim);
}

static void unmap(cs_vecstore *vs) {
    if (vs->vmap) munmap(vs->vmap, vs->vmap_size);
    if (vs->imap) munmap(vs->imap, vs->imap_size);
    vs->vmap = vs->imap = NULL;
    vs->vecs = NULL;
    vs->ids = NULL;
    vs->q8 = NULL;
}

/* Maps the committed part of both files (nothing when n = 0). */
static int map_rows(cs_vecstore *vs, int vfd, int ifd, cs_err *err) {
    unmap(vs);
    if (vs->n == 0) return 0;
    size_t vsz = CS_VS_HEADER_SIZE + (size_t)vs->n * row_bytes(vs->dim, vs->dtype);
    size_t isz = CS_VS_HEADER_SIZE + (size_t)vs->n * sizeof(int64_t);
    void *vm = mmap(NULL, vsz, PROT_READ, MAP_SHARED, vfd, 0);
    if (vm == MAP_FAILED) return cs_fail(err, CS_EIO, "%s: mmap: %s", vs->path, strerror(errno));
    void *im = mmap(NULL, isz, PROT_READ, MAP_SHARED, ifd, 0);
    if (im == MAP_FAILED) {
        munmap(vm, vsz);
        return cs_fail(err, CS_EIO, "%s: mmap: %s", vs->ids_path, strerror(errno));
    }
    vs->vmap = vm, vs->vmap_size = vsz, vs->imap = im, vs->imap_size = isz;
    vs->vecs = (const float *)((const char *)vm + CS_VS_HEADER_SIZE);
    vs->ids = (const int64_t *)((const char *)im + CS_VS_HEADER_SIZE);
    if (vs->dtype == CS_VS_Q8 && vs->raw) { /* kept at 8 bits: the reader dequantises */
        vs->q8 = (const unsigned char *)vm + CS_VS_HEADER_SIZE;
        vs->vecs = NULL;
    } else if (vs->dtype == CS_VS_Q8) { /* decode the rows not decoded yet (appends add a few) */
        float *d = realloc(vs->dec, (size_t)vs->n * (size_t)vs->dim * sizeof *d);
        if (!d) return cs_fail(err, CS_ENOMEM, "%s: out of memory decoding %lld rows", vs->path, (long long)vs->n);
        vs->dec = d;
        const unsigned char *rows = (const unsigned char *)vm + CS_VS_HEADER_SIZE;
        size_t rb = row_bytes(vs->dim, CS_VS_Q8);
        for (int64_t r = vs->dec_n; r < vs->n; r++)
            q8_decode(rows + (size_t)r * rb, vs->dim, d + (size_t)r * (size_t)vs->dim);
        vs->dec_n = vs->n;
        vs->vecs = d;
    }
    return 0;
}

static int open_file(const char *path, int writable, int *fd, int *created, cs_err *err) {
    *created = 0;
    *fd = open(path, writable ? O_RDWR : O_RDONLY);
    if (*fd < 0 && errno == ENOENT && writable) {
        *fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
        *created = *fd >= 0;
    }
    if (*fd < 0) {
        int code = errno == ENOENT ? CS_ENOTFOUND : CS_EIO;
        return cs_fail(err, code, "%s: %s", path, strerror(errno));
    }
    return 0;
}

/* Long: every consistency case between the id and vector files, each checked in place. */
int cs_vecstore_open(cs_vecstore *vs, const char *path, int dim, int writable, cs_err *err) {
    return cs_vecstore_open_dtype(vs, path, dim, CS_VS_F32, writable, err);
}

static int open_column(cs_vecstore *vs, const char *path, int dim, int dtype, int writable, int raw, cs_err *err);

int cs_vecstore_open_dtype(cs_vecstore *vs, const char *path, int dim, int dtype, int writable, cs_err *err) {
    return open_column(vs, path, dim, dtype, writable, 0, err);
}

static int open_column(cs_vecstore *vs, const char *path, int dim, int dtype, int writable, int raw, cs_err *err) {
    memset(vs, 0, sizeof *vs);
    vs->vfd = vs->ifd = -1;
    vs->raw = raw && !writable;
    if (dim < 0 || dim > CS_VS_MAX_DIM) return cs_fail(err, CS_EUSAGE, "%s: bad dimension %d", path, dim);
    if (writable && dim == 0)
        return cs_fail(err, CS_EUSAGE, "%s: a writable column needs its dimension", path);
    size_t pl = strlen(path);
    vs->path = strdup(path);
    vs->ids_path = malloc(pl + 5);
    if (!vs->path || !vs->ids_path) {
        cs_vecstore_close(vs);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    memcpy(vs->ids_path, path, pl);
    memcpy(vs->ids_path + pl, ".ids", 5);

    int vfd = -1, ifd = -1, vnew = 0, inew = 0;
    if (open_file(vs->path, writable, &vfd, &vnew, err)) goto fail;
    if (writable && flock(vfd, LOCK_EX | LOCK_NB)) {
        cs_fail(err, CS_EIO, "%s: in use by another writer", vs->path);
        goto fail;
    }
    if (open_file(vs->ids_path, writable, &ifd, &inew, err)) goto fail;
    if (vnew || inew) {
        /* A fresh column (or one whose id file vanished with no rows to lose). */
        struct stat st;
        if (!vnew && !fstat(vfd, &st) && st.st_size > CS_VS_HEADER_SIZE) {
            vs_header h;
            if (pread(vfd, &h, sizeof h, 0) == (ssize_t)sizeof h && h.count > 0) {
                cs_fail(err, CS_EFORMAT, "%s: id file missing", vs->ids_path);
                goto fail;
            }
        }
        if (write_header(vfd, VEC_MAGIC, dim, dtype, 0) || write_header(ifd, IDS_MAGIC, dim, dtype, 0) ||
            ftruncate(vfd, CS_VS_HEADER_SIZE) || ftruncate(ifd, CS_VS_HEADER_SIZE)) {
            cs_fail(err, CS_EIO, "%s: cannot write: %s", vs->path, strerror(errno));
            goto fail;
        }
    }
    vs_header vh, ih;
    uint64_t vsize, isize;
    if (read_header(vfd, vs->path, VEC_MAGIC, &vh, &vsize, err)) goto fail;
    if (read_header(ifd, vs->ids_path, IDS_MAGIC, &ih, &isize, err)) goto fail;
    if (dim > 0 && (int)vh.dim != dim) {
        cs_fail(err, CS_EFORMAT, "%s: dimension %u, expected %d", vs->path, vh.dim, dim);
        goto fail;
    }
    if (ih.dim != vh.dim) {
        cs_fail(err, CS_EFORMAT, "%s: dimension %u, vectors have %u", vs->ids_path, ih.dim, vh.dim);
        goto fail;
    }
    uint64_t rowb = row_bytes((int)vh.dim, (int)vh.dtype);
    if (vh.count > (vsize - CS_VS_HEADER_SIZE) / rowb) {
        cs_fail(err, CS_EFORMAT, "%s: truncated: header says %llu rows, file holds %llu", vs->path,
                (unsigned long long)vh.count,
                (unsigned long long)((vsize - CS_VS_HEADER_SIZE) / rowb));
        goto fail;
    }
    /* ids are committed before vectors, so the id file may be ahead, never behind */
    if (ih.count < vh.count || vh.count > (isize - CS_VS_HEADER_SIZE) / sizeof(int64_t)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated: %llu ids for %llu rows", vs->ids_path,
                (unsigned long long)((isize - CS_VS_HEADER_SIZE) / sizeof(int64_t)),
                (unsigned long long)vh.count);
        goto fail;
    }
    vs->dim = (int)vh.dim;
    vs->dtype = (int)vh.dtype;
    vs->n = (int64_t)vh.count;
    if (map_rows(vs, vfd, ifd, err)) goto fail;
    if (writable) {
        vs->vfd = vfd, vs->ifd = ifd, vs->writable = 1;
    } else {
        close(vfd);
        close(ifd);
    }
    return 0;
fail:
    if (vfd >= 0) close(vfd);
    if (ifd >= 0) close(ifd);
    cs_vecstore_close(vs);
    return -1;
}

static int open_store_column(cs_vecstore *vs, cs_store *s, const char *name, int dim, int writable, int raw,
                             cs_err *err);

int cs_vecstore_open_store(cs_vecstore *vs, cs_store *s, const char *name, int dim, int writable,
                     cs_err *err) {
    return open_store_column(vs, s, name, dim, writable, 0, err);
}

int cs_vecstore_open_store_raw(cs_vecstore *vs, cs_store *s, const char *name, int dim, cs_err *err) {
    return open_store_column(vs, s, name, dim, 0, 1, err);
}

static int open_store_column(cs_vecstore *vs, cs_store *s, const char *name, int dim, int writable, int raw,
                             cs_err *err) {
    size_t n = strlen(name) + 5;
    char *suffix = malloc(n);
    if (!suffix) return cs_fail(err, CS_ENOMEM, "vector column %s: out of memory", name);
    snprintf(suffix, n, "vec-%s", name);
    char *path = cs_store_sidecar(s, suffix);
    free(suffix);
    if (!path) return cs_fail(err, CS_ENOMEM, "vector column %s: out of memory", name);
    char *dt = NULL;
    cs_err ignore = {0}; /* a store without the key (or its meta table) is f32 */
    cs_store_meta_get(s, "vec_dtype", &dt, &ignore);
    int rc = open_column(vs, path, dim, dt && !strcmp(dt, "q8") ? CS_VS_Q8 : CS_VS_F32, writable, raw, err);
    free(dt);
    if (rc && !writable && err && err->code == CS_ENOTFOUND && access(path, F_OK) != 0)
        cs_fail(err, CS_ENOTFOUND, "%s: no %s vectors in this index yet: run 'copyscope index add --embedder %s' first",
                path, name, strcmp(name, "sscd") ? name : "sscd:WEIGHTS");
    free(path);
    return rc;
}

int cs_vecstore_append(cs_vecstore *vs, const int64_t *ids, const float *v, int64_t n, cs_err *err) {
    if (!vs->writable) return cs_fail(err, CS_EUSAGE, "%s: opened read-only", vs->path);
    if (n <= 0) return 0;
    size_t nv = (size_t)n * (size_t)vs->dim;
    for (size_t i = 0; i < nv; i++)
        if (!isfinite(v[i]))
            return cs_fail(err, CS_EFORMAT, "%s: non-finite value in row for id %lld", vs->path,
                           (long long)ids[i / (size_t)vs->dim]);
    size_t rowb = row_bytes(vs->dim, vs->dtype);
    off_t voff = CS_VS_HEADER_SIZE + (off_t)vs->n * (off_t)rowb;
    unsigned char *enc = NULL;
    if (vs->dtype == CS_VS_Q8) {
        if (!(enc = malloc((size_t)n * rowb))) return cs_fail(err, CS_ENOMEM, "%s: out of memory", vs->path);
        for (int64_t r = 0; r < n; r++) q8_encode(v + (size_t)r * (size_t)vs->dim, vs->dim, enc + (size_t)r * rowb);
    }
    off_t ioff = CS_VS_HEADER_SIZE + (off_t)vs->n * (off_t)sizeof(int64_t);
    uint64_t count = (uint64_t)(vs->n + n);
    /* rows first, then the counts (ids, then vectors): see the header comment */
    int bad = full_pwrite(vs->vfd, enc ? (const void *)enc : (const void *)v, (size_t)n * rowb, voff) ||
              full_pwrite(vs->ifd, ids, (size_t)n * sizeof(int64_t), ioff) ||
              write_header(vs->ifd, IDS_MAGIC, vs->dim, vs->dtype, count) ||
              write_header(vs->vfd, VEC_MAGIC, vs->dim, vs->dtype, count);
    free(enc);
    if (bad) return cs_fail(err, CS_EIO, "%s: write: %s", vs->path, strerror(errno));
    vs->n += n;
    free(vs->by_id);
    vs->by_id = NULL;
    return map_rows(vs, vs->vfd, vs->ifd, err);
}

static const int64_t *sort_ids; /* qsort has no context argument; guarded below */
static int cmp_row_by_id(const void *a, const void *b) {
    int64_t x = sort_ids[*(const int64_t *)a], y = sort_ids[*(const int64_t *)b];
    return (x > y) - (x < y);
}

int64_t cs_vecstore_find(cs_vecstore *vs, int64_t id) {
    if (vs->n == 0) return -1;
    if (!vs->by_id) {
        int64_t *r = malloc((size_t)vs->n * sizeof *r);
        if (!r) return -2;
        int sorted = 1;
        for (int64_t i = 0; i < vs->n; i++) {
            r[i] = i;
            if (i && vs->ids[i] < vs->ids[i - 1]) sorted = 0;
        }
        if (!sorted) {
            /* appends usually come in id order; this path is rare */
            static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
            pthread_mutex_lock(&mu);
            sort_ids = vs->ids;
            qsort(r, (size_t)vs->n, sizeof *r, cmp_row_by_id);
            pthread_mutex_unlock(&mu);
        }
        vs->by_id = r;
    }
    int64_t lo = 0, hi = vs->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (vs->ids[vs->by_id[mid]] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < vs->n && vs->ids[vs->by_id[lo]] == id ? vs->by_id[lo] : -1;
}

void cs_vecstore_close(cs_vecstore *vs) {
    unmap(vs);
    if (vs->vfd >= 0) close(vs->vfd); /* releases the flock */
    if (vs->ifd >= 0) close(vs->ifd);
    free(vs->path);
    free(vs->ids_path);
    free(vs->by_id);
    free(vs->dec);
    memset(vs, 0, sizeof *vs);
    vs->vfd = vs->ifd = -1;
}
