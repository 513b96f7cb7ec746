/* lf_index_internal.h — what index/'s local-feature files share, not for
 * use outside index/: the record's layout (localfeat.c writes records,
 * lf_index.c reads their descriptors), the vote index's struct (lf_index.c
 * builds, loads and saves it; lf_scan.c searches it; lf_parts.c splits it
 * per MPI rank) and the few functions that cross those files. */
#ifndef CS_LF_INDEX_INTERNAL_H
#define CS_LF_INDEX_INTERNAL_H

#include <stdint.h>

#include "core/err.h"
#include "core/fs.h"
#include "index/faiss_shim.h"
#include "index/localfeat.h"

/* a record: a 16-byte header, then per keypoint 6 geometry bytes and the
 * 128-byte descriptor (cs_lf_pack) */
#define LF_HDR 16
#define LF_KPB (128 + 6) /* bytes per keypoint in a record */

/* little-endian fields of the side files */
static inline void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline unsigned get16(const uint8_t *p) { return p[0] | (unsigned)p[1] << 8; }
static inline void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }
static inline uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static inline void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static inline uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* descriptors per record (the first byte of a record is its keypoint count) */
static inline int rec_nk(const uint8_t *rec) { return rec[0] < CS_LF_REF_KP ? rec[0] : CS_LF_REF_KP; }

struct cs_lf_index {
    cs_faiss *f;
    char factory[64];
    int64_t nd;
    int32_t *owner; /* [nd] reference row of each descriptor */
    /* our own scan of FAISS's PQ lists (own_scan_setup; NULL: FAISS's
     * search): the centroids transposed, ct[m][dsub][256] */
    float *ct;
    int pq_m, pq_dsub;
    /* and of its multi-index's two halves (NULL: FAISS's coarse search):
     * ict[2][64][2^imi_b] */
    float *ict;
    float *icn; /* [2][2^imi_b] the squared norms of those centroids */
    int imi_b;
    int simd_max; /* cs_lf_index_simd: 0 scalar, 1 AVX2 at most, else AVX-512 where cpuid has it */
    int no_prune; /* cs_lf_index_prune(ix, 0): every gather of sum16_avx512 (the bench's anchor) */
    int no_bytes; /* cs_lf_index_prune(ix, 1 or 0): not the byte tables' lower bound (lf_scan.c, bound64) */
};


/* lf_scan.c: our scan of FAISS's lists */
void lf_scan_setup(cs_lf_index *ix); /* the codebooks (and the multi-index's halves) transposed; none where unusable */
int lf_pq_encode(const cs_lf_index *ix, int64_t n, const float *x, uint8_t *codes);
/* the CS_LF_NN nearest of n query descriptors x[n][128]: rows[n][CS_LF_NN] */
int lf_nearest(cs_lf_index *ix, int64_t n, const float *x, int64_t *rows, float *dist, cs_err *err);
/* a query descriptor's distance table lut[pq_m][256], summed as the scan sums it */
void lf_scan_lut(const cs_lf_index *ix, const float *x, float *lut);
/* one query set's votes from its descriptors' nearest rows[n][CS_LF_NN] */
int lf_vote(const cs_lf_index *ix, const int64_t *rows, int n, int32_t *hit, cs_lf_vote *v, int max_out,
            cs_lf_vote *out);

/* lf_index.c */
/* The training cs_lf_index_build does, which lf_quant.c's cs_lf_qtrain
 * repeats in steps from the same three functions (the same bytes:
 * test_lf_shard). lf_desc_first: each record's first descriptor number,
 * first[n + 1] malloc'd (first[n]: all nd of them), NULL when out of memory.
 * lf_train_sample: the sample trained on, at most CS_LF_MAX_TRAIN of the nd
 * descriptors evenly spaced, x[*nt][128] malloc'd (NULL when out of memory,
 * *nt set). lf_faiss_untrained: a new index of factory and, where it has lists to
 * train, the training parameters (64 points per centroid, 10 iterations,
 * codes not of the residual). */
int64_t *lf_desc_first(int64_t n, const uint8_t *recs);
float *lf_train_sample(int64_t n, const uint8_t *recs, const int64_t *first, int64_t *nt);
int lf_faiss_untrained(cs_faiss **f, const char *factory, cs_err *err);
/* appends the descriptors of records [from, n) to ix (owners from, from + 1, ...) */
int lf_index_append(cs_lf_index *ix, int64_t from, int64_t n, const uint8_t *recs, cs_err *err);
/* ends a side file whose head was written (ok): the FAISS index, a tail, the atomic rename */
int lf_finish_with_faiss(cs_atomic_file *a, int ok, const cs_lf_index *ix, const char magic[4], const char *path,
                         cs_err *err);

/* lf_parts.c: ix's FAISS index and factory from a quantizer's bytes
 * (cs_lf_quantizer_save's), nothing added */
int lf_quantizer_read(cs_lf_index *ix, const uint8_t *q, size_t qlen, cs_err *err);

#endif
