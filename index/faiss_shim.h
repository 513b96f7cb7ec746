/* faiss_shim.h — approximate nearest-neighbour search through FAISS.
 *
 * Debian's libfaiss-dev ships the C++ library only (its c_api headers have no
 * compiled counterpart), so index/faiss_shim.cpp is a small extern "C" layer
 * over the C++ API; every C++ exception becomes a cs_err. An index is built
 * from a FAISS index_factory string, e.g.
 *   "IVF1024,Flat"   inverted lists of raw vectors (exact scores, good recall)
 *   "IVF4096,PQ32"   inverted lists of 32-byte product codes (16x smaller)
 *   "HNSW32"         graph, no training, best recall per query time, slow to build
 *   "IVF1024,PQ64x4fs,RFlat"  4-bit fast-scan PQ, candidates re-ranked on the
 *                    raw vectors (fast scan, exact final scores)
 *   "Flat"           brute force (same as cs_knn_exact)
 * Vectors are numbered 0.. in the order added (the vector column's rows).
 * Search parameters are set by name ("nprobe" for IVF, "efSearch" for HNSW)
 * through faiss::ParameterSpace. FAISS runs on OpenMP threads: cs_faiss_set_threads. */
#ifndef CS_FAISS_SHIM_H
#define CS_FAISS_SHIM_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_faiss cs_faiss;

/* New empty index of dimension dim. inner_product != 0: METRIC_INNER_PRODUCT
 * (cosine on normalised vectors), else L2. Free with cs_faiss_free. */
int cs_faiss_new(cs_faiss **out, int dim, const char *factory, int inner_product, cs_err *err);
int cs_faiss_is_trained(const cs_faiss *f);
int cs_faiss_train(cs_faiss *f, int64_t n, const float *x, cs_err *err);
/* k-means iterations of an IVF index's coarse quantizer training (FAISS's
 * default 25); an error for other index types. */
int cs_faiss_set_train_iters(cs_faiss *f, int niter, cs_err *err);
/* k-means sample (at most per_centroid points per centroid) and iterations
 * of every quantizer an IVF index trains: its coarse quantizer (also a
 * multi-index "IMI2xB"'s two halves) and a "PQ" code's sub-quantizers
 * (FAISS's defaults: 256 points, 25 iterations, or 10 for a PQ). */
int cs_faiss_set_train_sample(cs_faiss *f, int per_centroid, int niter, cs_err *err);
int cs_faiss_add(cs_faiss *f, int64_t n, const float *x, cs_err *err);
/* cs_faiss_add for the plain IVF-PQ of cs_faiss_pq_parts with the PQ codes
 * computed by the caller (codes[n][M], as the index's own encoder gives
 * them): the cells from the index's quantizer and the entries appended in
 * order with ids ntotal + i, as IndexIVFPQ's add does. */
int cs_faiss_add_codes(cs_faiss *f, int64_t n, const float *x, const uint8_t *codes, cs_err *err);
/* Appends n entries (ids[n], codes[n][M]) to list l of that plain IVF-PQ,
 * as its add leaves them there (the cells and codes the caller's: a vote
 * index put together from its parts' lists, index/lf_quant.c); ntotal
 * grows by n. */
int cs_faiss_list_append(cs_faiss *f, int64_t l, int64_t n, const int64_t *ids, const uint8_t *codes, cs_err *err);
/* The training of an untrained plain IVF-PQ (by_residual off, no polysemous
 * codes: cs_faiss_pq_parts' kind) cut in the steps cs_faiss_train takes
 * (FAISS 1.7's IndexIVF::train), so that its PQ's sub-quantizers, each an
 * independent k-means of a slice of a sample, can be trained in other
 * processes (copyscope-mpi's ranks, index/lf_quant.c):
 * cs_faiss_train_coarse trains the coarse quantizer on x[n] and gives the
 * PQ's sample *s[*ns][dim] (FAISS's subsample of x; malloc'd);
 * cs_faiss_pq_train_sub computes sub-quantizer m's centroids[ksub][dsub]
 * from it with f's clustering parameters (f unchanged: any index of the same
 * factory and parameters gives the same); cs_faiss_pq_set_sub sets them, and
 * with last the index is trained: the same as cs_faiss_train's. */
int cs_faiss_train_coarse(cs_faiss *f, int64_t n, const float *x, float **s, int64_t *ns, cs_err *err);
int cs_faiss_pq_train_sub(cs_faiss *f, int m, int64_t ns, const float *s, float *centroids, cs_err *err);
int cs_faiss_pq_set_sub(cs_faiss *f, int m, const float *centroids, int last, cs_err *err);
int64_t cs_faiss_ntotal(const cs_faiss *f);
int cs_faiss_dim(const cs_faiss *f);
/* "nprobe", "efSearch", ... (faiss::ParameterSpace names), "k_factor"
 * of a ",RFlat" refine stage (re-ranks k x k_factor candidates exactly), and
 * "by_residual" of an IVF not yet trained (0: codes of the vectors
 * themselves, not of their offsets from the list's centroid, so a query's
 * distance table is computed once, not once per list probed). */
int cs_faiss_set_param(cs_faiss *f, const char *name, double value, cs_err *err);
/* scores[nq][k] best first (inner product: highest; L2: smallest distance),
 * rows[nq][k], -1 where fewer than k were found. */
int cs_faiss_search(cs_faiss *f, int64_t nq, const float *q, int k, float *scores, int64_t *rows,
                    cs_err *err);
int cs_faiss_write(const cs_faiss *f, const char *path, cs_err *err);
int cs_faiss_read(cs_faiss **out, const char *path, cs_err *err);
void cs_faiss_free(cs_faiss *f);
/* The same, to / from an open stream at its current position (a container
 * with its own header before the index, index/ann.h); what names the stream
 * in errors. Reading stops at the end of the index. */
int cs_faiss_write_fp(const cs_faiss *f, FILE *fp, const char *what, cs_err *err);
int cs_faiss_read_fp(cs_faiss **out, FILE *fp, const char *what, cs_err *err);
/* Reads an index file with its inverted lists memory-mapped (FAISS's
 * IO_FLAG_MMAP: opening a multi-GB IVF file costs O(nlist), not a copy); such
 * an index is for searching only. */
int cs_faiss_read_mmap(cs_faiss **out, const char *path, cs_err *err);
/* Removes every vector, keeping what was trained (an IVF's coarse quantizer). */
int cs_faiss_reset(cs_faiss *f, cs_err *err);
/* An IVF index's list count and current nprobe (through a ",RFlat" or a
 * pre-transform); 0 for other index types. */
int64_t cs_faiss_nlist(const cs_faiss *f);
int cs_faiss_nprobe(const cs_faiss *f);
/* The parts of an IVF-PQ index (8-bit codes of the vectors themselves,
 * by_residual off, e.g. "IMI2x8,PQ16np") for a scan of our own
 * (index/lf_scan.c): *m sub-quantizers of *dsub dimensions, 256 centroids
 * each, centroids[m][256][dsub] (FAISS's, valid while f lives). -1 when f is
 * another kind of index or its lists are not in memory. */
int cs_faiss_pq_parts(cs_faiss *f, int *m, int *dsub, const float **centroids);
/* The coarse quantizer of that index when it is an inverted multi-index
 * ("IMI2xB"): *nbits = B, centroids[2][2^B][dim / 2] (list i + (j << B) is
 * the cell of centroid i of the first half and j of the second). -1 else. */
int cs_faiss_imi_parts(const cs_faiss *f, int *nbits, const float **centroids);
/* The nprobe lists (cells) FAISS's coarse quantizer picks for each of nq
 * vectors: lists[nq][nprobe], best first (-1 where fewer). */
int cs_faiss_coarse(cs_faiss *f, int64_t nq, const float *x, int nprobe, int64_t *lists, cs_err *err);
/* List l's codes [size][code size] and vector numbers [size] of the index
 * cs_faiss_pq_parts accepted (last called after any add); returns its size. */
int64_t cs_faiss_list(const cs_faiss *f, int64_t l, const uint8_t **codes, const int64_t **ids);
/* OpenMP threads FAISS uses (n <= 0: leave OpenMP's default). */
void cs_faiss_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
