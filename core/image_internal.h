/* image_internal.h — what the image decoders share (not part of the API). */
#ifndef CS_IMAGE_INTERNAL_H
#define CS_IMAGE_INTERNAL_H

#include "core/image.h"

/* Per-format decoders; buf/len as given to cs_image_decode, max_pixels resolved. */
int cs_png_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                  int64_t max_pixels, cs_err *err);
int cs_jpeg_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                   int64_t max_pixels, cs_err *err);

/* ALPHA.md's integer rule: (c*a + 255*(255-a) + 127) / 255. */
static inline uint8_t cs_over_white(unsigned c, unsigned a) {
    return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u);
}

/* Fails with CS_ELIMIT / CS_EFORMAT when w x h is empty or above max_pixels. */
int cs_image_check_size(int64_t w, int64_t h, int64_t max_pixels, const char *name, cs_err *err);

#endif
