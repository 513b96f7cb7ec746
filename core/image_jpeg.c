/* image_jpeg.c — JPEG decoding through libjpeg-turbo: baseline, progressive,
 * grayscale, CMYK/YCCK (Adobe's inverted CMYK included).
 *
 * libjpeg's fatal errors longjmp back to jpeg_run; the warnings that mean the
 * data is corrupt or truncated (libjpeg would fill the rest with grey) are
 * turned into errors too, so a damaged file is recorded, not half-indexed. */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "core/image.h"
#include "core/image_internal.h"

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg casts err to this */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int corrupt;               /* a data-corruption warning was seen */
} jpeg_errmgr;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errmgr jerr;
    int64_t max_pixels;
    const char *name;
    uint8_t *row;   /* one scanline of the decoder's output */
    cs_image *img;
    int limit_failed;
} jpeg_rd;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_errmgr *e = (jpeg_errmgr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level) {
    jpeg_errmgr *e = (jpeg_errmgr *)c->err;
    if (level >= 0) return; /* trace messages */
    switch (c->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
        if (!e->corrupt) c->err->format_message(c, e->msg);
        e->corrupt = 1;
        break;
    default: /* benign (unknown JFIF revision, extraneous bytes, ...) */
        break;
    }
}

/* PIL's MULDIV255: a*b/255 rounded. */
static inline uint8_t muldiv255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* 0 ok, 1 libjpeg error (jerr.msg), -1 size limit (err set). */
static int jpeg_run(jpeg_rd *rd, const uint8_t *buf, size_t len, cs_err *err) {
    struct jpeg_decompress_struct *ci = &rd->cinfo;
    if (setjmp(rd->jerr.jb)) return 1;
    jpeg_create_decompress(ci);
    jpeg_mem_src(ci, buf, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    if (cs_image_check_size(ci->image_width, ci->image_height, rd->max_pixels, rd->name, err)) {
        rd->limit_failed = 1;
        return -1;
    }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(ci);
    int w = (int)ci->output_width, h = (int)ci->output_height, nc = ci->output_components;
    if (nc != (cmyk ? 4 : 3)) {
        snprintf(rd->jerr.msg, sizeof rd->jerr.msg, "unexpected %d output components", nc);
        return 1;
    }
    rd->row = malloc((size_t)w * nc);
    if (!rd->row || cs_image_alloc(rd->img, w, h, NULL)) {
        snprintf(rd->jerr.msg, sizeof rd->jerr.msg, "out of memory");
        return 1;
    }
    /* Photoshop writes CMYK inverted (0 = full ink) and marks it with an
     * Adobe APP14 segment; libjpeg hands the raw values through. */
    int inverted = cmyk && ci->saw_Adobe_marker;
    while (ci->output_scanline < ci->output_height) {
        int y = (int)ci->output_scanline;
        JSAMPROW r = rd->row;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) {
            snprintf(rd->jerr.msg, sizeof rd->jerr.msg, "cannot read scanline %d", y);
            return 1;
        }
        uint8_t *d = rd->img->rgb + (size_t)y * w * 3;
        if (!cmyk) {
            memcpy(d, rd->row, (size_t)w * 3);
            continue;
        }
        for (int x = 0; x < w; x++) {
            const uint8_t *s = rd->row + 4 * x;
            unsigned c = s[0], m = s[1], yy = s[2], k = s[3];
            if (inverted) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
            unsigned nk = 255 - k; /* as PIL: R = (255-K) - C*(255-K)/255 */
            d[3 * x + 0] = (uint8_t)(nk - muldiv255(c, nk));
            d[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
            d[3 * x + 2] = (uint8_t)(nk - muldiv255(yy, nk));
        }
    }
    if (rd->jerr.corrupt) return 1;
    jpeg_finish_decompress(ci);
    if (rd->jerr.corrupt) return 1;
    return 0;
}

int cs_jpeg_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                   int64_t max_pixels, cs_err *err) {
    jpeg_rd *rd = calloc(1, sizeof *rd);
    if (!rd) return cs_fail(err, CS_ENOMEM, "%s: out of memory", name);
    rd->max_pixels = max_pixels;
    rd->name = name;
    rd->img = img;
    rd->cinfo.err = jpeg_std_error(&rd->jerr.pub);
    rd->jerr.pub.error_exit = jpeg_on_error;
    rd->jerr.pub.emit_message = jpeg_on_message;
    int r = jpeg_run(rd, buf, len, err);
    if (r == 1) cs_fail(err, CS_EFORMAT, "%s: invalid JPEG: %s", name, rd->jerr.msg);
    if (r != 0) cs_image_free(img);
    jpeg_destroy_decompress(&rd->cinfo);
    free(rd->row);
    free(rd);
    return r == 0 ? 0 : -1;
}
