/* tinydesc.h — "tiny": a built-in global descriptor that needs no weights.
 *
 * The 64x64 reference thumbnail (index/refs.h; a query image is area-resized
 * to 64x64 the same way) is averaged down to 32x32 RGB (3072 values in
 * [0,1]), made zero-mean and unit-norm (so global brightness and contrast do
 * not matter; Torralba et al.'s tiny images), then projected on the top
 * CS_TINY_DIM principal components learned from the reference set and
 * whitened, and finally L2-normalised: cosine similarity compares them.
 *
 * Whitening divides component i by sqrt(lambda_i + CS_TINY_WHITEN_EPS *
 * lambda_1): full whitening would blow up the noise-only low-variance
 * components; the floor keeps them at most 1/sqrt(0.01) = 10x amplified
 * relative to the first. Components with lambda_i <= 1e-6 lambda_1 (a
 * reference set with fewer images than CS_TINY_DIM) get a zero row, so the
 * dimension stays CS_TINY_DIM whatever the set.
 *
 * A constant image (zero variance) has no tiny-image direction: its
 * descriptor is all zero, which scores 0 against everything (documented
 * result, not an error).
 *
 * The PCA is learned once, when the "tiny" column is first computed, from at
 * most CS_TINY_MAX_TRAIN references spread evenly over the index, and kept
 * in <db>.tinydesc.safetensors ("mean" [3072], "proj" [dim, 3072]); later
 * additions reuse it so old and new vectors stay comparable. */
#ifndef CS_TINYDESC_H
#define CS_TINYDESC_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"

#define CS_TINY_SIDE 32
#define CS_TINY_IN (CS_TINY_SIDE * CS_TINY_SIDE * 3) /* 3072 */
#define CS_TINY_DIM 256
#define CS_TINY_WHITEN_EPS 0.01f
#define CS_TINY_MAX_TRAIN 20000

typedef struct {
    int dim;       /* output size (CS_TINY_DIM) */
    int n_train;   /* references the PCA was learned from */
    float *mean;   /* [CS_TINY_IN] */
    float *proj;   /* [dim][CS_TINY_IN], whitening folded in */
} cs_tinydesc;

/* 64x64x3 thumbnail -> 3072 zero-mean unit-norm values; returns 0 for a
 * constant thumbnail (out all zero), 1 otherwise. */
int cs_tiny_raw(const uint8_t *thumb, float *out);

/* An image -> its 64x64 thumbnail (area resize, as ingestion makes them). */
int cs_tiny_thumb(const cs_image *img, uint8_t *thumb, cs_err *err);

/* Learns the PCA whitening from n thumbnails [n][64][64][3] (a subset of at
 * most CS_TINY_MAX_TRAIN, evenly spaced, is used). n >= 2. */
int cs_tiny_learn(cs_tinydesc *m, const uint8_t *thumbs, int64_t n, cs_err *err);

/* Descriptors out[n][m->dim] of n thumbnails (L2-normalised; zero rows for
 * constant thumbnails). threads <= 0: cs_threads(). */
int cs_tiny_describe(const cs_tinydesc *m, const uint8_t *thumbs, int64_t n, float *out,
                     cs_err *err);
/* The same for the references ids[n] (ascending) of a store's column: a
 * row's bits depend on its id only, not on the rows described with it
 * (index add under mpirun: every rank its shard, the bytes of one process). */
int cs_tiny_describe_ids(const cs_tinydesc *m, const uint8_t *thumbs, const int64_t *ids, int64_t n, float *out,
                         cs_err *err);

/* Regional descriptors (issue 13): a 70 % crop or a 60 % embed of a
 * reference is a different thumbnail from the reference's, so both sides
 * are also described by regions, and a pair scores the best region match.
 * A query's CS_TINY_QREG regions are the whole image and a 5x5 grid of
 * crops of 60 % of each side (steps of 10 %: an embedded reference is within
 * 5 % of the canvas side of one of them); a reference's CS_TINY_RREG are the
 * whole image, its centre and its four corners at 85 % of the side (a crop
 * keeping 70-90 % of the area). mirror != 0: of the mirror image. thumbs:
 * [count][64][64][3]. */
#define CS_TINY_QREG 26
#define CS_TINY_RREG 6
int cs_tiny_region_thumbs(const cs_image *img, int reference, int mirror, uint8_t *thumbs, cs_err *err);

/* The regional score of a pair (descriptors of cs_tiny_region_thumbs, as
 * described by cs_tiny_describe): the best cosine of the query's regions
 * against the reference's whole image and of the query's whole image
 * against the reference's regions (row 0 is the whole image on both sides). */
float cs_tiny_region_score(const float *q, int nq, const float *r, int nr, int dim);

int cs_tiny_save(const cs_tinydesc *m, const char *path, cs_err *err);
int cs_tiny_load(cs_tinydesc *m, const char *path, cs_err *err);
void cs_tiny_free(cs_tinydesc *m);

#endif
