/* hashes.h — the perceptual hashes copyscope keeps for every reference.
 *
 * PDQ (256 bits + quality, bit-exact with ../shared/refs/pdq) and the
 * imagehash library's pHash, dHash, aHash (64 bits each, in imagehash's bit
 * order, ../shared/refs/hashes.md). Input: a decoded image (alpha already
 * composited over white by core/image). */
#ifndef CS_HASHES_H
#define CS_HASHES_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"

typedef struct {
    uint8_t pdq[32];   /* PDQ hash, byte 0 = first two hex digits of the 64-hex form */
    int pdq_quality;   /* 0..100; < 50 means unreliable (PDQ authors) */
    uint64_t phash;    /* imagehash phash, hex form = 16 digits of this value */
    uint64_t dhash;
    uint64_t ahash;
} cs_hashes;

/* Computes every hash of img. */
int cs_hashes_compute(const cs_image *img, cs_hashes *out, cs_err *err);

/* 64-hex / 16-hex text forms (buffers of 65 / 17 bytes). */
void cs_pdq_hex(const uint8_t pdq[32], char out[65]);
void cs_hash64_hex(uint64_t h, char out[17]);

#endif
