/* image.h — decoded images, decoding (PNG, JPEG), PNG encoding, resizing.
 *
 * A cs_image is 8-bit RGB, interleaved, row-major, owned by the struct:
 * free it with cs_image_free. Decoding composites any alpha over opaque white
 * with the integer rule of ../shared/refs/pdq/ALPHA.md, so every descriptor
 * sees the same pixels. */
#ifndef CS_IMAGE_H
#define CS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    int w, h;
    uint8_t *rgb; /* w*h*3 bytes */
} cs_image;

/* Guards against decompression bombs: decoding fails with CS_ELIMIT before
 * allocating when width*height exceeds this. */
#define CS_IMAGE_DEFAULT_MAX_PIXELS (64LL * 1024 * 1024)

typedef struct {
    int64_t max_pixels; /* 0 = CS_IMAGE_DEFAULT_MAX_PIXELS */
} cs_image_opts;

/* Decode from a file or memory (format sniffed from the bytes, not the name).
 * name is used in error messages. opts may be NULL. */
int cs_image_load(cs_image *img, const char *path, const cs_image_opts *opts, cs_err *err);
int cs_image_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                    const cs_image_opts *opts, cs_err *err);
/* Reads a whole regular file into memory; *buf malloc'd (caller frees; never
 * NULL on success, even for an empty file). A directory or a special file is
 * an error (CS_EIO). */
int cs_read_file(const char *path, uint8_t **buf, size_t *len, cs_err *err);
int cs_image_alloc(cs_image *img, int w, int h, cs_err *err);
void cs_image_free(cs_image *img);

/* PNG text chunks: keys and values are NUL-terminated; n pairs. */
typedef struct {
    const char *key, *value;
} cs_png_text;

/* Encode RGB as PNG (8-bit) with tEXt chunks, to a file or to memory
 * (*out malloc'd, caller frees). */
int cs_image_save_png(const cs_image *img, const char *path, const cs_png_text *text, int ntext,
                      cs_err *err);
int cs_image_encode_png(const cs_image *img, const cs_png_text *text, int ntext, uint8_t **out,
                        size_t *len, cs_err *err);

/* Reads one tEXt/iTXt/zTXt chunk of a PNG file; *value is malloc'd, NULL when
 * the file has no such key (not an error). */
int cs_png_read_text(const char *path, const char *key, char **value, cs_err *err);

typedef enum {
    CS_RESIZE_AREA,     /* area average: the right filter for downscaling */
    CS_RESIZE_BILINEAR,
    CS_RESIZE_BICUBIC,
    CS_RESIZE_AUTO,     /* area when shrinking, bicubic when enlarging */
} cs_resize_filter;

int cs_image_resize(cs_image *dst, const cs_image *src, int w, int h, cs_resize_filter f,
                    cs_err *err);

/* Luma as float 0.299R + 0.587G + 0.114B (unrounded, PDQ's convention). */
void cs_image_luma(float *out, const cs_image *img);

#endif
