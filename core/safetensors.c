/* safetensors.c — mmap'd reader with strict validation, and a writer.
 *
 * Validation happens once in cs_safetensors_open, before any tensor is handed out, so
 * the rest of the program may trust every cs_safetensors_tensor: its byte range lies
 * inside the mapping and equals numel x dtype size. The header JSON is parsed
 * with cJSON; numbers arrive as doubles, so every integer is checked to be
 * integral and exactly representable (<= 2^53) before it is used. */
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"

/* The Rust reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* Largest integer a double holds exactly: bigger shapes/offsets are refused. */
#define ST_MAX_INT ((double)(1ULL << 53))

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [CS_DT_F32] = {"F32", 4}, [CS_DT_F16] = {"F16", 2}, [CS_DT_BF16] = {"BF16", 2},
    [CS_DT_F64] = {"F64", 8}, [CS_DT_I64] = {"I64", 8}, [CS_DT_I32] = {"I32", 4},
    [CS_DT_I16] = {"I16", 2}, [CS_DT_I8] = {"I8", 1},   [CS_DT_U8] = {"U8", 1},
    [CS_DT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t cs_dtype_size(cs_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].size : 0;
}

const char *cs_dtype_name(cs_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].name : "?";
}

static int dtype_parse(const char *s, cs_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (cs_dtype)i;
            return 0;
        }
    return -1;
}

/* ---- fp16 / bf16 ---- */

float cs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    float f;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or nan keeping its payload */
    } else if (exp == 0) {
        /* zero or subnormal: mant x 2^-24, exact in float */
        f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t cs_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf stays inf; nan stays a quiet nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    if (ax >= 0x477ff000u) /* >= 65520 rounds (to even) past 65504: inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below 2^-14: subnormal half; scaling by 2^24 is exact */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint16_t)nearbyintf(a * 0x1p24f)); /* 1024 = 2^-14, normal */
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffff) >> 13));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* nearest even; carries into exp */
    return (uint16_t)(sign | h);
}

static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void f16_table_init(void) {
    for (uint32_t h = 0; h < 65536; h++) f16_table[h] = cs_f16_to_f32((uint16_t)h);
}

float cs_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t cs_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
    return (uint16_t)(x >> 16);
}

/* ---- reading ---- */

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const cs_safetensors_tensor *)a)->name, ((const cs_safetensors_tensor *)b)->name);
}

/* Reads a JSON number that must be a non-negative integer <= 2^53. */
static int json_uint(const cJSON *j, int64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_INT) || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

/* Fills t from one header entry; the message names file and tensor. */
static int parse_entry(const char *path, const cJSON *e, uint64_t data_size, cs_safetensors_tensor *t,
                       const uint8_t *data, cs_err *err) {
    const char *nm = t->name;
    if (!cJSON_IsObject(e)) return cs_fail(err, CS_EFORMAT, "%s: %s: entry is not an object", path, nm);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return cs_fail(err, CS_EFORMAT, "%s: %s: missing or non-string dtype", path, nm);
    if (dtype_parse(jd->valuestring, &t->dtype))
        return cs_fail(err, CS_EFORMAT, "%s: %s: unknown dtype \"%.40s\"", path, nm, jd->valuestring);
    if (!cJSON_IsArray(js)) return cs_fail(err, CS_EFORMAT, "%s: %s: missing or non-array shape", path, nm);
    int nd = cJSON_GetArraySize(js);
    if (nd > CS_ST_MAX_DIMS)
        return cs_fail(err, CS_ELIMIT, "%s: %s: %d dimensions (at most %d)", path, nm, nd, CS_ST_MAX_DIMS);
    t->ndim = nd;
    int64_t numel = 1;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        if (json_uint(d, &t->shape[i]))
            return cs_fail(err, CS_EFORMAT, "%s: %s: shape[%d] is not a non-negative integer", path, nm, i);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return cs_fail(err, CS_ELIMIT, "%s: %s: shape too large", path, nm);
    }
    t->numel = numel;
    int64_t nbytes;
    if (__builtin_mul_overflow(numel, (int64_t)cs_dtype_size(t->dtype), &nbytes))
        return cs_fail(err, CS_ELIMIT, "%s: %s: shape too large", path, nm);
    int64_t be[2];
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || json_uint(jo->child, &be[0]) ||
        json_uint(jo->child->next, &be[1]))
        return cs_fail(err, CS_EFORMAT, "%s: %s: data_offsets is not [begin, end] of non-negative integers",
                       path, nm);
    if (be[0] > be[1])
        return cs_fail(err, CS_EFORMAT, "%s: %s: data_offsets begin %lld > end %lld", path, nm,
                       (long long)be[0], (long long)be[1]);
    if ((uint64_t)be[1] > data_size)
        return cs_fail(err, CS_EFORMAT, "%s: %s: data_offsets [%lld, %lld] beyond the data section (%llu bytes)",
                       path, nm, (long long)be[0], (long long)be[1], (unsigned long long)data_size);
    if (be[1] - be[0] != nbytes)
        return cs_fail(err, CS_EFORMAT, "%s: %s: %lld bytes in data_offsets but shape x %s needs %lld",
                       path, nm, (long long)(be[1] - be[0]), cs_dtype_name(t->dtype), (long long)nbytes);
    t->data = data + be[0];
    t->nbytes = (size_t)nbytes;
    return 0;
}

static int cmp_tensor_begin(const void *a, const void *b) {
    const cs_safetensors_tensor *x = *(const cs_safetensors_tensor *const *)a, *y = *(const cs_safetensors_tensor *const *)b;
    if (x->data != y->data) return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* No two non-empty byte ranges may share a byte (a tensor aliasing another
 * would let a write through one corrupt the other, and is never legitimate). */
static int check_overlaps(const char *path, cs_safetensors_tensor *t, int n, cs_err *err) {
    cs_safetensors_tensor **o = malloc((size_t)(n ? n : 1) * sizeof *o);
    if (!o) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (t[i].nbytes) o[m++] = &t[i];
    qsort(o, (size_t)m, sizeof *o, cmp_tensor_begin);
    int rc = 0;
    for (int i = 1; i < m; i++) {
        const uint8_t *prev_end = (const uint8_t *)o[i - 1]->data + o[i - 1]->nbytes;
        if ((const uint8_t *)o[i]->data < prev_end) {
            rc = cs_fail(err, CS_EFORMAT, "%s: %s: data_offsets overlap those of %s", path, o[i]->name,
                         o[i - 1]->name);
            break;
        }
    }
    free(o);
    return rc;
}

/* Validates the header and fills st->tensors / st->metadata_json. */
/* Long: each rule of the format checked in place on the header, each with its own error line. */
static int parse_header(cs_safetensors *st, const char *hdr, size_t hlen, const uint8_t *data,
                        uint64_t data_size, cs_err *err) {
    const char *path = st->path, *end = NULL;
    if (hdr[0] != '{') /* the format requires it; also rules out leading junk */
        return cs_fail(err, CS_EFORMAT, "%s: header is not a JSON object (does not start with '{')", path);
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        const char *pe = cJSON_GetErrorPtr();
        if (pe >= hdr && pe <= hdr + hlen) at = (size_t)(pe - hdr);
        return cs_fail(err, CS_EFORMAT, "%s: header is not valid JSON (near byte %zu)", path, 8 + at);
    }
    /* The format allows only space padding after the JSON object. */
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return cs_fail(err, CS_EFORMAT, "%s: garbage after the header JSON at byte %zu", path,
                           8 + (size_t)(p - hdr));
        }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        cs_fail(err, CS_EFORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    int n = 0, n_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) goto bad_key;
        if (!strcmp(e->string, "__metadata__")) n_meta++;
        else n++;
    }
    if (n_meta > 1) {
        cs_fail(err, CS_EFORMAT, "%s: __metadata__: duplicate key", path);
        goto done;
    }
    st->tensors = calloc((size_t)(n ? n : 1), sizeof *st->tensors);
    if (!st->tensors) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory for %d tensors", path, n);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                cs_fail(err, CS_EFORMAT, "%s: __metadata__ is not an object", path);
                goto done;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    cs_fail(err, CS_EFORMAT, "%s: __metadata__: value of \"%.60s\" is not a string", path,
                            m->string ? m->string : "");
                    goto done;
                }
            st->metadata_json = cJSON_PrintUnformatted(e);
            if (!st->metadata_json) {
                cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            continue;
        }
        cs_safetensors_tensor *t = &st->tensors[st->n];
        t->name = strdup(e->string);
        if (!t->name) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        st->n++;
        if (parse_entry(path, e, data_size, t, data, err)) goto done;
    }
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_tensor_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, st->tensors[i - 1].name)) {
            cs_fail(err, CS_EFORMAT, "%s: %s: duplicate tensor name", path, st->tensors[i].name);
            goto done;
        }
    if (check_overlaps(path, st->tensors, st->n, err)) goto done;
    rc = 0;
    goto done;
bad_key:
    cs_fail(err, CS_EFORMAT, "%s: header entry without a name", path);
done:
    cJSON_Delete(root);
    return rc;
}

/* Validates a whole file image b[0..size) (size >= 8) and fills st's tensor
 * list, pointing into b. Separate from the mapping so the fuzzer can feed it
 * exact-size heap buffers, where ASan sees any read past the end. */
static int st_parse(cs_safetensors *st, const uint8_t *b, size_t size, cs_err *err) {
    const char *path = st->path;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i]; /* little-endian */
    if (hlen > ST_MAX_HEADER)
        return cs_fail(err, CS_ELIMIT, "%s: header length %llu exceeds the limit of %llu bytes", path,
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > size - 8)
        return cs_fail(err, CS_EFORMAT, "%s: header length %llu beyond the end of the file (%zu bytes)",
                       path, (unsigned long long)hlen, size);
    if (hlen < 2)
        return cs_fail(err, CS_EFORMAT, "%s: header length %llu is too small for a JSON object", path,
                       (unsigned long long)hlen);
    return parse_header(st, (const char *)b + 8, (size_t)hlen, b + 8 + hlen, size - 8 - hlen, err);
}

int cs_safetensors_open(cs_safetensors *st, const char *path, cs_err *err) {
    memset(st, 0, sizeof *st);
    st->path = strdup(path);
    if (!st->path) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        cs_fail(err, CS_EIO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 8) {
        close(fd);
        cs_fail(err, CS_EFORMAT, "%s: truncated: %lld bytes, no 8-byte header length", path,
                (long long)sb.st_size);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        cs_fail(err, CS_EIO, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    st->map = map;
    st->map_size = (size_t)sb.st_size;
    if (st_parse(st, map, st->map_size, err)) goto fail;
    return 0;
fail:
    cs_safetensors_close(st);
    return -1;
}

void cs_safetensors_close(cs_safetensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->metadata_json) cJSON_free(st->metadata_json);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const cs_safetensors_tensor *cs_safetensors_find(const cs_safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (!c) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

int cs_safetensors_get_f32(const cs_safetensors *st, const char *name, int ndim, const int64_t *shape,
                  const float **out, int *owned, cs_err *err) {
    *out = NULL;
    *owned = 0;
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    if (!t) return cs_fail(err, CS_ENOTFOUND, "%s: %s: missing", st->path, name);
    if (ndim >= 0) {
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same) {
            char have[256], want[256];
            fmt_shape(have, sizeof have, t->ndim, t->shape);
            fmt_shape(want, sizeof want, ndim > CS_ST_MAX_DIMS ? CS_ST_MAX_DIMS : ndim, shape);
            return cs_fail(err, CS_EFORMAT, "%s: %s: shape %s expected %s", st->path, name, have, want);
        }
    }
    if (t->dtype == CS_DT_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = t->data;
        return 0;
    }
    if (t->dtype != CS_DT_F32 && t->dtype != CS_DT_F16 && t->dtype != CS_DT_BF16 && t->dtype != CS_DT_F64)
        return cs_fail(err, CS_EFORMAT, "%s: %s: dtype %s is not a floating-point type", st->path, name,
                       cs_dtype_name(t->dtype));
    size_t n = (size_t)t->numel;
    float *f = malloc(n ? n * sizeof *f : 1);
    if (!f) return cs_fail(err, CS_ENOMEM, "%s: %s: out of memory for %zu floats", st->path, name, n);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case CS_DT_F32: memcpy(f, p, n * 4); break;
    case CS_DT_F16: {
        /* a 256 KB table: F16 checkpoints hold ~10^9 halves */
        pthread_once(&f16_once, f16_table_init);
        for (size_t i = 0; i < n; i++) f[i] = f16_table[p[2 * i] | p[2 * i + 1] << 8];
        break;
    }
    case CS_DT_BF16:
        for (size_t i = 0; i < n; i++) f[i] = cs_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    default: /* F64 */
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            f[i] = (float)d;
        }
    }
    *out = f;
    *owned = 1;
    return 0;
}

/* ---- writing ---- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_fmt(sbuf *b, const char *fmt, long long a) {
    char tmp[64];
    int k = snprintf(tmp, sizeof tmp, fmt, a);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal. */
static void sb_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            sb_put(b, e, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Layout order: larger elements first, then by name. With the data section
 * 8-byte aligned this puts every tensor at a multiple of its element size
 * (so F32 tensors can be viewed in place), and the layout depends only on
 * the content. */
static int cmp_out_layout(const void *a, const void *b) {
    const cs_safetensors_out *x = *(const cs_safetensors_out *const *)a, *y = *(const cs_safetensors_out *const *)b;
    size_t sx = cs_dtype_size(x->dtype), sy = cs_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int cmp_out_name(const void *a, const void *b) {
    return strcmp((*(const cs_safetensors_out *const *)a)->name, (*(const cs_safetensors_out *const *)b)->name);
}

/* Sort the tensors into layout order after checking names (present, unique),
 * dtypes, shapes and data; nbytes[i] is o[i]'s data size. */
static int plan_layout(const char *path, const cs_safetensors_out *t, int n, const cs_safetensors_out **o, size_t *nbytes,
                       cs_err *err) {
    for (int i = 0; i < n; i++) {
        o[i] = &t[i];
        if (!t[i].name || !strcmp(t[i].name, "__metadata__"))
            return cs_fail(err, CS_EUSAGE, "%s: tensor %d has no usable name", path, i);
    }
    qsort(o, (size_t)n, sizeof *o, cmp_out_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(o[i]->name, o[i - 1]->name))
            return cs_fail(err, CS_EUSAGE, "%s: %s: duplicate tensor name", path, o[i]->name);
    qsort(o, (size_t)n, sizeof *o, cmp_out_layout);
    for (int i = 0; i < n; i++) {
        const cs_safetensors_out *x = o[i];
        if (!cs_dtype_size(x->dtype) || x->ndim < 0 || x->ndim > CS_ST_MAX_DIMS)
            return cs_fail(err, CS_EUSAGE, "%s: %s: bad dtype or ndim", path, x->name);
        int64_t numel = 1;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] < 0 || __builtin_mul_overflow(numel, x->shape[d], &numel))
                return cs_fail(err, CS_EUSAGE, "%s: %s: bad shape", path, x->name);
        nbytes[i] = (size_t)numel * cs_dtype_size(x->dtype);
        if (nbytes[i] && !x->data) return cs_fail(err, CS_EUSAGE, "%s: %s: no data", path, x->name);
    }
    return 0;
}

/* The JSON header: __metadata__ first, then each tensor in layout order,
 * space-padded so the data section starts 8-byte aligned. */
static int build_header(const char *path, const cs_safetensors_out **o, const size_t *nbytes, int n,
                        const char *metadata_json, sbuf *h, cs_err *err) {
    sb_put(h, "{", 1);
    int first = 1;
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        int ok = cJSON_IsObject(m);
        for (const cJSON *e = ok ? m->child : NULL; e; e = e->next) ok &= cJSON_IsString(e);
        char *txt = ok ? cJSON_PrintUnformatted(m) : NULL;
        cJSON_Delete(m);
        if (!txt) return cs_fail(err, CS_EUSAGE, "%s: __metadata__ must be a JSON object of strings", path);
        sb_put(h, "\"__metadata__\":", 15);
        sb_put(h, txt, strlen(txt));
        cJSON_free(txt);
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const cs_safetensors_out *x = o[i];
        if (!first) sb_put(h, ",", 1);
        first = 0;
        sb_str(h, x->name);
        sb_put(h, ":{\"dtype\":", 10);
        sb_str(h, cs_dtype_name(x->dtype));
        sb_put(h, ",\"shape\":[", 10);
        for (int d = 0; d < x->ndim; d++) sb_fmt(h, d ? ",%lld" : "%lld", (long long)x->shape[d]);
        sb_fmt(h, "],\"data_offsets\":[%lld,", (long long)off);
        off += nbytes[i];
        sb_fmt(h, "%lld]}", (long long)off);
    }
    sb_put(h, "}", 1);
    while (h->n % 8) sb_put(h, " ", 1); /* data section starts 8-byte aligned */
    if (h->oom) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    return 0;
}

/* Write beside the target and rename (core/fs.h), so readers never see half a file. */
static int write_atomic(const char *path, const sbuf *h, const cs_safetensors_out **o, const size_t *nbytes, int n,
                        cs_err *err) {
    cs_atomic_file af;
    if (cs_atomic_open(&af, path, err)) return -1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h->n >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(h->s, 1, h->n, af.f) == h->n;
    for (int i = 0; ok && i < n; i++) ok = !nbytes[i] || fwrite(o[i]->data, 1, nbytes[i], af.f) == nbytes[i];
    if (!ok) cs_fail(err, CS_EIO, "%s: write failed: %s", af.tmp, strerror(errno));
    return cs_atomic_finish(&af, ok, err) || !ok ? -1 : 0;
}

int cs_safetensors_write(const char *path, const cs_safetensors_out *t, int n, const char *metadata_json, cs_err *err) {
    if (n < 0) return cs_fail(err, CS_EUSAGE, "%s: negative tensor count", path);
    const cs_safetensors_out **o = malloc((size_t)(n ? n : 1) * sizeof *o);
    size_t *nbytes = malloc((size_t)(n ? n : 1) * sizeof *nbytes);
    sbuf h = {0};
    int rc = -1;
    if (!o || !nbytes) cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    else if (!plan_layout(path, t, n, o, nbytes, err) && !build_header(path, o, nbytes, n, metadata_json, &h, err))
        rc = write_atomic(path, &h, o, nbytes, n, err);
    free(h.s);
    free(nbytes);
    free(o);
    return rc;
}
