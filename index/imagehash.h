/* imagehash.h — aHash, dHash and pHash as the Python `imagehash` library
 * (4.3.2 on Pillow 9.4) computes them: ../shared/refs/hashes.md.
 *
 * Grey conversion is Pillow's convert("L") (integer, round half up) and every
 * resize is Pillow's LANCZOS resample, reproduced in integer fixed point. The
 * input image has alpha composited over white already (copyscope's rule; the
 * library itself would ignore alpha) — the reference vectors use such images.
 *
 * Bit order: the n x n bit matrix row-major, first bit = most significant bit
 * of the first byte (imagehash's hex form: hex of bytes = the library's str()).
 * For n = 8 the 64-bit value cs_imagehash64() returns prints as the library's
 * 16 hex digits with "%016llx". */
#ifndef CS_IMAGEHASH_H
#define CS_IMAGEHASH_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"

/* A grey (Pillow mode "L") image: w*h bytes, owned by the struct. */
typedef struct {
    int w, h;
    uint8_t *px;
} cs_grey;

/* Pillow convert("L"): L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
 * Free with cs_grey_free. */
int cs_grey_from_image(cs_grey *out, const cs_image *img, cs_err *err);
void cs_grey_free(cs_grey *g);

/* Pillow Image.resize((dw, dh), LANCZOS) of an L image into dst (dw*dh
 * bytes, caller's). Same size: a plain copy. */
int cs_grey_resize_lanczos(uint8_t *dst, int dw, int dh, const cs_grey *src, cs_err *err);

/* The hashes with hash_size n (bits = n*n, written MSB-first into bits[n*n/8];
 * n must be a multiple of 2 and <= 32). pHash uses highfreq_factor 4. */
int cs_ahash(const cs_grey *g, int n, uint8_t *bits, cs_err *err);
int cs_dhash(const cs_grey *g, int n, uint8_t *bits, cs_err *err);
int cs_phash(const cs_grey *g, int n, uint8_t *bits, cs_err *err);

/* The first 8 bytes of bits as a big-endian uint64 (n = 8 hashes). */
uint64_t cs_imagehash64(const uint8_t bits[8]);

#endif
