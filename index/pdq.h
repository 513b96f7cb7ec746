/* pdq.h — Facebook's PDQ perceptual hash (256 bits + quality), bit-exact with
 * the reference C++ tool as ../shared/refs/pdq/ALGORITHM.md describes it.
 *
 * Input is a decoded cs_image (alpha already composited over white). An image
 * whose pixels are all grey (R == G == B) is hashed through the grey path
 * (luma = the grey value), as the reference does for grey files.
 *
 * Byte order: hash[0] holds the first two hex digits of the 64-hex text form,
 * i.e. the 256-bit integer sum(bit_k << k) stored big-endian, where bit
 * k = i*16 + j is DCT coefficient (row i, column j). */
#ifndef CS_PDQ_H
#define CS_PDQ_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"

/* Skip the reference tool's 512x512 nearest-neighbour pre-resize of images
 * larger than 512 px (the "pure" algorithm: vectors.tsv column pdq_noresize). */
#define CS_PDQ_NORESIZE 1

#define CS_PDQ_MATCH_DISTANCE 31 /* PDQ authors: distance <= 31 of 256 is a match */
#define CS_PDQ_MIN_QUALITY 50    /* PDQ authors: quality <= 49 is unreliable */

typedef struct {
    uint8_t hash[32];
    int quality; /* 0..100 */
} cs_pdq;

/* The 8 dihedral variants, in the reference tool's (and vectors-dihedral.tsv's) order. */
enum {
    CS_PDQ_ORIG,
    CS_PDQ_ROT90,      /* rotate 90 degrees counter-clockwise */
    CS_PDQ_ROT180,
    CS_PDQ_ROT270,     /* rotate 90 degrees clockwise */
    CS_PDQ_FLIPX,      /* upside-down */
    CS_PDQ_FLIPY,      /* left-right mirror */
    CS_PDQ_FLIPPLUS1,  /* transpose */
    CS_PDQ_FLIPMINUS1, /* anti-transpose */
    CS_PDQ_NDIHEDRAL
};
extern const char *const cs_pdq_dihedral_names[CS_PDQ_NDIHEDRAL];

/* Hash of img. flags: 0 or CS_PDQ_NORESIZE. Images under 5 px on a side hash
 * to 256 zero bits with quality 0 (as the reference). Fails only when out of memory. */
int cs_pdq_compute(const cs_image *img, int flags, cs_pdq *out, cs_err *err);

/* The 8 dihedral hashes, derived in the DCT domain (reference --pdqdih: no
 * 64x64 shortcut, so out[CS_PDQ_ORIG] may differ from cs_pdq_compute on
 * fragile images). */
int cs_pdq_dihedral(const cs_image *img, int flags, cs_pdq out[CS_PDQ_NDIHEDRAL], cs_err *err);

/* Same on a luma plane (w*h floats, row-major) — for callers that already
 * have one. grey selects nothing here: the luma is used as given. */
int cs_pdq_from_luma(const float *luma, int w, int h, int dihedral, cs_pdq *out, cs_err *err);

/* Tests: 1 = use only the baseline (SSE2/scalar) code paths, 0 = pick by CPU
 * (default). Results are identical either way; not thread-safe to toggle. */
void cs_pdq_force_baseline(int on);

/* 64 lowercase hex digits + NUL; parse returns -1 on malformed text. */
void cs_pdq_to_hex(const uint8_t hash[32], char out[65]);
int cs_pdq_from_hex(const char *hex, uint8_t hash[32]);
int cs_pdq_distance(const uint8_t a[32], const uint8_t b[32]);

#endif
