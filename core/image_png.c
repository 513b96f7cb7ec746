/* image_png.c — PNG decoding and encoding through libpng, and reading text
 * chunks.
 *
 * libpng reports errors by calling our error function, which records the
 * message and longjmps back to the setjmp in png_read_run / png_write_run.
 * Everything those functions touch after setjmp lives in a struct reached
 * through a pointer, so nothing depends on automatic variables that longjmp
 * may clobber. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fs.h"
#include "core/image.h"
#include "core/image_internal.h"

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct {
    const uint8_t *buf; /* the whole file */
    size_t len, pos;
    const char *name;
    int64_t max_pixels;
    char msg[256];      /* libpng's error message */
    png_structp png;
    png_infop info;
    uint8_t *pix;       /* decoded rows, RGB or RGBA */
    png_bytep *rows;
    int limit_failed;   /* the size check failed: err is already set */
} png_rd;

static void png_on_error(png_structp png, png_const_charp msg) {
    char *dst = png_get_error_ptr(png);
    snprintf(dst, 256, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks, ...) do not stop decoding */
}

static void png_mem_read(png_structp png, png_bytep out, size_t n) {
    png_rd *rd = png_get_io_ptr(png);
    if (n > rd->len - rd->pos) png_error(png, "truncated file");
    memcpy(out, rd->buf + rd->pos, n);
    rd->pos += n;
}

/* Decodes into rd->pix as 8-bit RGB or RGBA; returns channels (3/4), 0 on a
 * libpng error (rd->msg), -1 when the size check failed (err set). */
static int png_read_run(png_rd *rd, cs_err *err) {
    if (setjmp(png_jmpbuf(rd->png))) return 0;
    png_set_read_fn(rd->png, rd, png_mem_read);
    png_read_info(rd->png, rd->info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(rd->png, rd->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (cs_image_check_size(w, h, rd->max_pixels, rd->name, err)) {
        rd->limit_failed = 1;
        return -1;
    }
    /* Everything to 8-bit RGB(A): palette and tRNS expanded to alpha, gray
     * replicated, 16-bit scaled with rounding. No gamma correction (as PIL). */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(rd->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(rd->png);
    if (png_get_valid(rd->png, rd->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(rd->png);
    if (depth == 16) png_set_scale_16(rd->png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(rd->png);
    png_set_interlace_handling(rd->png);
    png_read_update_info(rd->png, rd->info);
    int ch = png_get_channels(rd->png, rd->info);
    size_t rowbytes = png_get_rowbytes(rd->png, rd->info);
    if ((ch != 3 && ch != 4) || rowbytes != (size_t)w * ch)
        png_error(rd->png, "unexpected pixel layout after conversion");
    rd->pix = malloc(rowbytes * h);
    rd->rows = malloc(sizeof *rd->rows * h);
    if (!rd->pix || !rd->rows) png_error(rd->png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rd->rows[y] = rd->pix + rowbytes * y;
    png_read_image(rd->png, rd->rows);
    return ch;
}

int cs_png_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                  int64_t max_pixels, cs_err *err) {
    /* The size check comes first, from the IHDR bytes (PNG requires IHDR to
     * be the first chunk), before libpng reads on or allocates anything. */
    if (len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        uint32_t w = be32(buf + 16), h = be32(buf + 20);
        if (w > 0 && h > 0 && cs_image_check_size(w, h, max_pixels, name, err)) return -1;
    }
    png_rd *rd = calloc(1, sizeof *rd);
    if (!rd) return cs_fail(err, CS_ENOMEM, "%s: out of memory", name);
    rd->buf = buf;
    rd->len = len;
    rd->name = name;
    rd->max_pixels = max_pixels;
    rd->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, rd->msg, png_on_error, png_on_warning);
    rd->info = rd->png ? png_create_info_struct(rd->png) : NULL;
    int rc = -1;
    if (!rd->info) {
        cs_fail(err, CS_ENOMEM, "%s: cannot initialise libpng", name);
    } else {
        int ch = png_read_run(rd, err);
        if (ch == 0) {
            cs_fail(err, CS_EFORMAT, "%s: invalid PNG: %s", name, rd->msg);
        } else if (ch > 0) {
            int w = (int)png_get_image_width(rd->png, rd->info);
            int h = (int)png_get_image_height(rd->png, rd->info);
            if (cs_image_alloc(img, w, h, err) == 0) {
                size_t n = (size_t)w * h;
                if (ch == 3) {
                    memcpy(img->rgb, rd->pix, n * 3);
                } else {
                    const uint8_t *s = rd->pix;
                    uint8_t *d = img->rgb;
                    for (size_t i = 0; i < n; i++, s += 4, d += 3) {
                        d[0] = cs_over_white(s[0], s[3]);
                        d[1] = cs_over_white(s[1], s[3]);
                        d[2] = cs_over_white(s[2], s[3]);
                    }
                }
                rc = 0;
            }
        }
    }
    png_destroy_read_struct(rd->png ? &rd->png : NULL, rd->info ? &rd->info : NULL, NULL);
    free(rd->pix);
    free(rd->rows);
    free(rd);
    return rc;
}

/* ---- encoding ---- */

typedef struct {
    char msg[256];
    uint8_t *out;
    size_t len, cap;
    png_structp png;
    png_infop info;
    png_textp text;
} png_wr;

static void png_mem_write(png_structp png, png_bytep data, size_t n) {
    png_wr *wr = png_get_io_ptr(png);
    if (wr->len + n > wr->cap) {
        size_t cap = wr->cap ? wr->cap * 2 : 65536;
        while (cap < wr->len + n) cap *= 2;
        uint8_t *p = realloc(wr->out, cap);
        if (!p) png_error(png, "out of memory");
        wr->out = p;
        wr->cap = cap;
    }
    memcpy(wr->out + wr->len, data, n);
    wr->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* Returns 0 on success, -1 on a libpng error (wr->msg). */
static int png_write_run(png_wr *wr, const cs_image *img, const cs_png_text *text, int ntext) {
    if (setjmp(png_jmpbuf(wr->png))) return -1;
    png_set_write_fn(wr->png, wr, png_mem_write, png_mem_flush);
    png_set_IHDR(wr->png, wr->info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ntext > 0) {
        wr->text = calloc((size_t)ntext, sizeof *wr->text);
        if (!wr->text) png_error(wr->png, "out of memory");
        for (int i = 0; i < ntext; i++) {
            /* tEXt holds Latin-1; UTF-8 beyond ASCII goes into iTXt */
            int ascii = is_ascii(text[i].value);
            wr->text[i].compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
            wr->text[i].key = (char *)text[i].key;
            wr->text[i].text = (char *)text[i].value;
            wr->text[i].text_length = ascii ? strlen(text[i].value) : 0;
            wr->text[i].itxt_length = ascii ? 0 : strlen(text[i].value);
        }
        png_set_text(wr->png, wr->info, wr->text, ntext);
    }
    png_write_info(wr->png, wr->info);
    for (int y = 0; y < img->h; y++) png_write_row(wr->png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(wr->png, NULL);
    return 0;
}

int cs_image_encode_png(const cs_image *img, const cs_png_text *text, int ntext, uint8_t **out,
                        size_t *len, cs_err *err) {
    *out = NULL;
    *len = 0;
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return cs_fail(err, CS_EUSAGE, "png: empty image");
    for (int i = 0; i < ntext; i++) {
        size_t kl = text[i].key ? strlen(text[i].key) : 0;
        if (kl < 1 || kl > 79 || !text[i].value)
            return cs_fail(err, CS_EUSAGE, "png: text key '%s' must have 1-79 characters and a value",
                           text[i].key ? text[i].key : "");
    }
    png_wr *wr = calloc(1, sizeof *wr);
    if (!wr) return cs_fail(err, CS_ENOMEM, "png: out of memory");
    wr->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, wr->msg, png_on_error, png_on_warning);
    wr->info = wr->png ? png_create_info_struct(wr->png) : NULL;
    int rc = -1;
    if (!wr->info) cs_fail(err, CS_ENOMEM, "png: cannot initialise libpng");
    else if (png_write_run(wr, img, text, ntext)) cs_fail(err, CS_EINTERNAL, "png: encoding failed: %s", wr->msg);
    else {
        *out = wr->out;
        *len = wr->len;
        wr->out = NULL;
        rc = 0;
    }
    png_destroy_write_struct(wr->png ? &wr->png : NULL, wr->info ? &wr->info : NULL);
    free(wr->text);
    free(wr->out);
    free(wr);
    return rc;
}

int cs_image_save_png(const cs_image *img, const char *path, const cs_png_text *text, int ntext,
                      cs_err *err) {
    uint8_t *buf;
    size_t len;
    if (cs_image_encode_png(img, text, ntext, &buf, &len, err)) return cs_wrap(err, "%s", path);
    /* write beside, then rename (core/fs.h): an interrupted run never leaves half a PNG */
    int rc = cs_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* ---- text chunks, read by walking the chunk list (no pixel decoding) ---- */

/* Inflates a zlib stream into a NUL-terminated malloc'd string (at most 16 MiB). */
static char *inflate_text(const uint8_t *src, size_t n) {
    size_t cap = n * 4 + 64, limit = 16u << 20;
    char *out = malloc(cap + 1);
    if (!out) return NULL;
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK) {
        free(out);
        return NULL;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    int zr = Z_BUF_ERROR; /* a break before the first inflate leaves it an error */
    do {
        if (z.total_out == cap) {
            if (cap >= limit) break;
            cap *= 2;
            char *p = realloc(out, cap + 1);
            if (!p) break;
            out = p;
        }
        z.next_out = (Bytef *)out + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        zr = inflate(&z, Z_NO_FLUSH);
    } while (zr == Z_OK || (zr == Z_BUF_ERROR && z.avail_out == 0));
    size_t got = z.total_out;
    inflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    out[got] = 0;
    return out;
}

/* Latin-1 bytes to a NUL-terminated UTF-8 string. */
static char *latin1_to_utf8(const uint8_t *s, size_t n) {
    char *o = malloc(n * 2 + 1), *d = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) *d++ = (char)s[i];
        else {
            *d++ = (char)(0xc0 | s[i] >> 6);
            *d++ = (char)(0x80 | (s[i] & 0x3f));
        }
    }
    *d = 0;
    return o;
}

static char *dup_n(const uint8_t *s, size_t n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

int cs_png_read_text(const char *path, const char *key, char **value, cs_err *err) {
    *value = NULL;
    uint8_t *buf;
    size_t len;
    if (cs_read_file(path, &buf, &len, err)) return -1;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int rc = 0;
    if (len < 8 || memcmp(buf, sig, 8)) {
        free(buf);
        return cs_fail(err, CS_EFORMAT, "%s: not a PNG file", path);
    }
    size_t klen = strlen(key), pos = 8;
    while (pos + 12 <= len) {
        uint32_t n = be32(buf + pos);
        const uint8_t *type = buf + pos + 4, *d = buf + pos + 8;
        if (n > len - pos - 12) {
            rc = cs_fail(err, CS_EFORMAT, "%s: truncated PNG chunk", path);
            break;
        }
        pos += 12 + (size_t)n;
        if (!memcmp(type, "IEND", 4)) break;
        int t = !memcmp(type, "tEXt", 4), z = !memcmp(type, "zTXt", 4), it = !memcmp(type, "iTXt", 4);
        if (!(t || z || it) || n < klen + 1 || memcmp(d, key, klen) || d[klen] != 0) continue;
        const uint8_t *p = d + klen + 1, *end = d + n;
        char *v = NULL;
        if (t) v = latin1_to_utf8(p, (size_t)(end - p));
        else if (z) {
            if (p >= end || *p != 0) continue; /* compression method must be 0 */
            char *raw = inflate_text(p + 1, (size_t)(end - p - 1));
            if (!raw) {
                rc = cs_fail(err, CS_EFORMAT, "%s: corrupt zTXt chunk '%s'", path, key);
                break;
            }
            v = latin1_to_utf8((const uint8_t *)raw, strlen(raw));
            free(raw);
        } else {
            if (end - p < 2) continue;
            int comp = p[0];
            p += 2;
            for (int skip = 0; skip < 2; skip++) { /* language tag, translated keyword */
                const uint8_t *q = memchr(p, 0, (size_t)(end - p));
                if (!q) { p = NULL; break; }
                p = q + 1;
            }
            if (!p) continue;
            v = comp ? inflate_text(p, (size_t)(end - p)) : dup_n(p, (size_t)(end - p));
            if (!v) {
                rc = cs_fail(err, CS_EFORMAT, "%s: corrupt iTXt chunk '%s'", path, key);
                break;
            }
        }
        if (!v) {
            rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
            break;
        }
        *value = v;
        break;
    }
    free(buf);
    return rc;
}
