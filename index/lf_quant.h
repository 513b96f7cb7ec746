/* lf_quant.h — the vote index's quantizer on its own (issue 17), so that
 * copyscope-mpi keeps only what must be serial on rank 0:
 *  - `index add`: rank 0 trains the quantizer exactly as cs_lf_index_build
 *    would (cs_lf_quant_train: the same sample, not one descriptor
 *    encoded), every rank encodes its shards' parts with it, and rank 0 puts
 *    <db>.lfvote together from the parts' lists (cs_lf_index_shell,
 *    cs_lf_part_into): one process's file, byte for byte (test_lf_shard);
 *  - `analyze`: rank 0 needs the quantizer and every record's descriptor
 *    count, not the index's codes: <db>.lfquant holds just those, written
 *    beside <db>.lfvote and trusted only while that file is the one it was
 *    taken from (cs_lf_quant_load). */
#ifndef CS_LF_QUANT_H
#define CS_LF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "index/localfeat.h"

/* Every record's descriptor count (cnt[n]), as the vote index numbers them. */
void cs_lf_quant_counts(int64_t n, const uint8_t *recs, uint8_t *cnt);

/* The quantizer cs_lf_index_build(n, recs, NULL) trains (the default
 * factory of the records' descriptors, the same evenly spaced sample and
 * FAISS parameters), as the bytes cs_lf_quantizer_save writes of that
 * built index, without encoding a descriptor ("Flat": its header alone).
 * *q malloc'd. */
int cs_lf_quant_train(int64_t n, const uint8_t *recs, uint8_t **q, size_t *qlen, cs_err *err);

/* The same training in steps, so that the PQ's sub-quantizers (M
 * independent k-means of 256 centroids, each on its dsub dimensions of the
 * same sample) can be trained by copyscope-mpi's ranks in turn:
 * cs_lf_qtrain_begin trains the coarse quantizer and takes the PQ's sample
 * (cs_lf_qtrain_subs: M, 0 when nothing is left to train, e.g. "Flat");
 * cs_lf_qtrain_sub computes sub-quantizer m's centroids[256][dsub] (dsub
 * 128 / M) from the factory and that sample, in any process;
 * cs_lf_qtrain_end sets all M (centroids[M][256][dsub]) and gives
 * cs_lf_quant_train's bytes. */
typedef struct cs_lf_qtrain cs_lf_qtrain;
int cs_lf_qtrain_begin(cs_lf_qtrain **t, int64_t n, const uint8_t *recs, cs_err *err);
int cs_lf_qtrain_subs(const cs_lf_qtrain *t);
/* the sample *s[ns][128] (valid while t lives) and its ns */
int64_t cs_lf_qtrain_sample(const cs_lf_qtrain *t, const float **s);
const char *cs_lf_qtrain_factory(const cs_lf_qtrain *t);
int cs_lf_qtrain_sub(const char *factory, int64_t ns, const float *s, int m, float *centroids, cs_err *err);
int cs_lf_qtrain_end(cs_lf_qtrain *t, const float *centroids, uint8_t **q, size_t *qlen, cs_err *err);
void cs_lf_qtrain_free(cs_lf_qtrain *t);

/* An index of the quantizer q[qlen] with no codes yet, of nrec records
 * owning cnt[i] descriptors each: enough for cs_lf_index_counts,
 * cs_lf_quantizer_save, cs_lf_index_ndesc (copyscope-mpi's rank 0 of an
 * analysis, whose ranks search the parts), and what cs_lf_part_into fills.
 * Not searchable until cs_lf_index_shell_done. */
int cs_lf_index_shell(cs_lf_index **out, const uint8_t *q, size_t qlen, int64_t nrec, const uint8_t *cnt,
                      cs_err *err);
/* Appends part p's entries (built with ix's quantizer) to ix's lists. The
 * parts come in the order of their numbers (each of p's above each already
 * in ix; CS_EUSAGE else), so every list holds its entries in number order,
 * as cs_lf_index_build's add leaves them. Trained indexes only ("Flat"
 * parts hold no codes: CS_EUSAGE). */
int cs_lf_part_into(cs_lf_index *ix, const cs_lf_part *p, cs_err *err);
/* After the last part: CS_EINTERNAL unless every descriptor is in; ix is
 * then cs_lf_index_build's index of the records (cs_lf_index_save writes
 * the same bytes) and searchable. */
int cs_lf_index_shell_done(cs_lf_index *ix, cs_err *err);

/* <db>.lfquant: the quantizer q[qlen] and counts cnt[n] of the vote index
 * vote_path (records of fingerprint fp), with that file's identity (size,
 * inode, modification and change times): the file is rewritten by an
 * atomic rename, so any rebuild of <db>.lfvote (a new quantizer perhaps)
 * leaves this one stale. Written atomically. */
int cs_lf_quant_save(const char *path, const char *vote_path, uint64_t fp, int64_t n, const uint8_t *cnt,
                     const uint8_t *q, size_t qlen, cs_err *err);
/* *cnt[n], *q[*qlen] malloc'd when path was saved for vote_path as it now
 * is and for these records; CS_ENOTFOUND when missing or stale (vote_path
 * changed or gone, other records), CS_EFORMAT when cut or corrupt. */
int cs_lf_quant_load(const char *path, const char *vote_path, uint64_t fp, int64_t n, uint8_t **cnt, uint8_t **q,
                     size_t *qlen, cs_err *err);

#endif
