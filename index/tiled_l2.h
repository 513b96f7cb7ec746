/* tiled_l2.h — the pixel metric of Carlini et al. 2023 ("Extracting Training
 * Data from Diffusion Models", USENIX Security 2023, §4.2) on thumbnails.
 *
 * Definition (the paper's): cut both images into a grid of non-overlapping
 * tiles (they use 16 tiles of 128x128 on 512x512 images; we use 4x4 tiles
 * of 16x16 on the 64x64 thumbnails of index/refs.h), take the normalised
 * L2 distance of each pair of corresponding tiles,
 *     d_t = sqrt( sum_{i in tile t} (a_i - b_i)^2 / |tile t| ),
 * and the distance of the images is the LARGEST d_t. Why the maximum and not
 * the mean: plain L2 calls two different images close when most of their area
 * is the same plain background (the paper's motivating failure); with the
 * maximum, two images are near-duplicates only if EVERY tile matches, so a
 * single differing region (another object, another face) keeps them apart.
 * The metric therefore does NOT tolerate a copy with one changed region —
 * that case is what the per-tile distances are kept for: the best-matching
 * tile and the count of matching tiles are the evidence of a partial copy
 * (analyze/verdict.c), while the maximum decides copy / not copy.
 *
 * Pixel normalisation (cs_tl2_norm):
 *   CS_TL2_UNIT     values / 255 in [0,1] — the paper's scale, so its
 *                   threshold (0.15) reads the same here;
 *   CS_TL2_CHANNEL  each channel of the whole image standardised to mean 0,
 *                   std 1 (std floored at 1/255) — invariant to a global
 *                   brightness/contrast/colour shift per channel.
 *
 * Layout of a "prepared" image: float [T][tile_dim], tile-major, so tile t
 * of a batch of images is a strided matrix (lda = D) and a batch of per-tile
 * distances is one sgemm per tile: |a_t|^2 - 2 a_t.b_t + |b_t|^2. */
#ifndef CS_TILED_L2_H
#define CS_TILED_L2_H

#include <stdint.h>

#include "core/err.h"

typedef enum { CS_TL2_UNIT = 0, CS_TL2_CHANNEL = 1 } cs_tl2_norm;

#define CS_TL2_MAX_TILES 64

typedef struct {
    int size;         /* thumbnail side in pixels (64); images are size x size x 3 */
    int grid;         /* tiles per side (4 -> 16 tiles of 16x16); must divide size */
    cs_tl2_norm norm;
} cs_tl2_cfg;

/* The default: 64x64, 4x4 grid, unit pixels. */
cs_tl2_cfg cs_tl2_default(void);

static inline int cs_tl2_tiles(const cs_tl2_cfg *c) { return c->grid * c->grid; }
static inline int cs_tl2_tile_dim(const cs_tl2_cfg *c) {
    return (c->size / c->grid) * (c->size / c->grid) * 3;
}
static inline int cs_tl2_dim(const cs_tl2_cfg *c) { return c->size * c->size * 3; }

/* Checks size/grid (grid divides size, tiles <= CS_TL2_MAX_TILES). */
int cs_tl2_check(const cs_tl2_cfg *c, cs_err *err);

/* rgb: size*size*3 interleaved bytes. out: [dim] prepared floats; n2: [tiles]
 * squared norm of each tile (may be NULL). */
void cs_tl2_prepare(float *out, float *n2, const uint8_t *rgb, const cs_tl2_cfg *c);

/* Per-tile distances d_t of two prepared images into tile_d[tiles]; returns
 * the maximum (the tiled L2 distance). Exact (direct differences). */
float cs_tl2_pair(float *tile_d, const float *a, const float *b, const cs_tl2_cfg *c);

/* Batched distances by one sgemm per tile, for na x nb pairs:
 *   dmax[i*ldd + j] = max_t d_t(A_i, B_j)
 * A: [na][dim] prepared, an2: [na][tiles]; the same for B. If tile_d is not
 * NULL it receives every per-tile distance, [na][nb][tiles] (for small
 * blocks). work: scratch of na*nb floats (caller's, so repeated calls do not
 * allocate). Rounding of the expansion is clamped at 0; results agree with
 * cs_tl2_pair within ~1e-3. Uses OpenBLAS's threads. */
void cs_tl2_block(float *dmax, int64_t ldd, float *tile_d, const float *A, const float *an2,
                  int64_t na, const float *B, const float *bn2, int64_t nb, float *work,
                  const cs_tl2_cfg *c);

/* Streaming top-k: for each of nq queries, the k references of nr with the
 * smallest tiled L2, ascending (idx[q*k + r], dist[q*k + r]; idx -1 and dist
 * +inf where nr < k). Blocks of refs, so memory stays O(nq_block * nr_block),
 * never nq x nr. The distances are cs_tl2_pair's and ties go to the smaller
 * index, so the list does not depend on the call's size: a subset of the
 * references (a shard) gives exactly the entries of the whole list it holds
 * (sgemm only proposes candidates; tiled_l2.c). Returns -1 only on
 * allocation failure. */
int cs_tl2_topk(int32_t *idx, float *dist, int k, const float *Q, const float *qn2, int64_t nq,
                const float *R, const float *rn2, int64_t nr, const cs_tl2_cfg *c, cs_err *err);

/* Mirror an RGB image left-right (size x size), in place. */
void cs_tl2_hflip_rgb(uint8_t *rgb, int size);

#endif
