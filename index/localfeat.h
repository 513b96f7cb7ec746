/* localfeat.h — local features: SIFT keypoints per image, kept compactly per
 * reference, retrieved at scale by votes, so that a crop, a rotation or an
 * embedding of a reference in a new scene is found where global descriptors
 * (hashes, thumbnails) see a different picture (issue 13).
 *
 * Extraction: the image is area/bicubic-resized so its longer side is
 * CS_LF_SIDE (256 px; small images such as 64 px emoji are enlarged), turned
 * to luma, and SIFT (index/opencv_shim.h) keeps the strongest keypoints:
 * CS_LF_REF_KP for a reference (the storage budget), up to CS_LF_QUERY_KP for
 * a query (a query may be a scene with the copy in one part of it). SIFT is
 * invariant to rotation and scale; a mirror is handled on the query side: a
 * query is described as is and mirrored (cs_lf_mirror permutes the SIFT of
 * the image as is; cs_lf_extract's mirror flag extracts it for real), the
 * references once.
 *
 * Storage: one fixed-size record of CS_LF_RECORD = 4096 bytes per reference
 * (header + CS_LF_REF_KP x (128 descriptor bytes + 6 geometry bytes)), in
 * the store's ref_localfeat table. An analysis reads only the candidates'
 * records (30 per generation and direction), so it does not hold them in
 * memory: cs_lf_records_open copies them once into <db>.lfrec beside the
 * store and memory-maps that file (the kernel pages a record in when it is
 * verified), checked against the table by a fingerprint of every row.
 * (cs_lf_col_write/read: a plain column file of records, for tools.)
 *
 * Retrieval (cs_lf_index_*): every reference descriptor goes into one FAISS
 * index (from 16,384 descriptors an inverted multi-index with 16-byte PQ
 * codes, cs_lf_default_factory: 28 bytes per descriptor with FAISS's id and
 * our owner, 840 bytes per reference in memory; exact below); each query descriptor's
 * CS_LF_NN nearest descriptors vote for their references (one vote per query
 * keypoint and reference), and the references with the most votes are the
 * candidates that analyze/lf_verify.h verifies geometrically. FAISS trains
 * the index and assigns the codes; the search (cells and codes) is ours
 * (lf_scan.c, cs_lf_index_faiss_scan), thread-count invariant. The index is
 * built by `index add` and kept beside the store (<db>.lfvote,
 * cs_lf_index_open), not rebuilt by every analysis. */
#ifndef CS_LOCALFEAT_H
#define CS_LOCALFEAT_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"
#include "core/store.h"

#define CS_LF_SIDE 256
#define CS_LF_REF_KP 30
#ifndef CS_LF_QUERY_KP /* a build may raise the query budget (experiments) */
#define CS_LF_QUERY_KP 160
#endif
#define CS_LF_RECORD 4096
#define CS_LF_NN 8
/* The vote index (cs_lf_index_build, see cs_lf_default_factory): cells
 * probed per query descriptor, descriptors per cell aimed at, the fewest
 * descriptors indexed by cells (below: exact search), training sample, query
 * sets per FAISS search. */
#define CS_LF_NPROBE 32
#define CS_LF_PER_CELL 32
#define CS_LF_MIN_IMI 16384
#define CS_LF_MAX_TRAIN 262144
#define CS_LF_BATCH 256

/* A keypoint set in the working image's coordinates (w x h, longer side
 * CS_LF_SIDE). */
typedef struct {
    int n, w, h;
    int orig_w, orig_h;           /* the image before resizing */
    float xy[CS_LF_QUERY_KP][2];
    float size[CS_LF_QUERY_KP];   /* SIFT scale (diameter, px) */
    float angle[CS_LF_QUERY_KP];  /* degrees */
    uint8_t desc[CS_LF_QUERY_KP][128];
} cs_lf_set;

/* Up to max_kp (<= CS_LF_QUERY_KP) strongest keypoints of img, of its mirror
 * image when mirror != 0 (coordinates in the mirrored image). */
int cs_lf_extract(const cs_image *img, int max_kp, int mirror, cs_lf_set *out, cs_err *err);

/* The set of the mirror image (x -> w - 1 - x) derived from in without a
 * second extraction: positions and angles mirrored, each descriptor's bins
 * permuted (see localfeat.c). in == out allowed. */
void cs_lf_mirror(const cs_lf_set *in, cs_lf_set *out);

/* The first CS_LF_REF_KP keypoints of s as a record, and back. Positions are
 * kept to 1/64 px, size to 1/4 px (up to 63.75), angle to 360/256 degrees;
 * descriptors exactly. cs_lf_unpack: CS_EFORMAT for a record that is not one. */
void cs_lf_pack(const cs_lf_set *s, uint8_t rec[CS_LF_RECORD]);
int cs_lf_unpack(const uint8_t rec[CS_LF_RECORD], cs_lf_set *s, cs_err *err);

/* Squared Euclidean distances of descriptor a to b[0..n-1]: out[n]. Exact
 * integers (AVX-512BW or AVX2 where cpuid has it, else plain C); used by
 * the ratio-test matching of analyze/lf_verify.c. */
void cs_lf_dist2(const uint8_t a[128], const uint8_t (*b)[128], int n, int *out);

/* Column file: "CSLF" magic, version, record size, row count, the refs.id of
 * every row, then the records. Written atomically (core/fs.h). */
int cs_lf_col_write(const char *path, int64_t n, const int64_t *ids, const uint8_t *recs, cs_err *err);
/* *ids [n], *recs [n][CS_LF_RECORD], malloc'd (the caller frees). */
int cs_lf_col_read(const char *path, int64_t *n, int64_t **ids, uint8_t **recs, cs_err *err);

/* Every record of ref_localfeat (written by index add, index/ingest.h) of
 * the references with status 'ok', by refs.id: *ids [n], *recs
 * [n][CS_LF_RECORD], malloc'd. n = 0 when none has local features. */
int cs_lf_load(cs_store *s, int64_t *n, int64_t **ids, uint8_t **recs, cs_err *err);

/* The records of cs_lf_load, memory-mapped (see the top of this file):
 * recs points into the mapping of <db>.lfrec, a CS_LF_RECORD-byte header
 * ("CSLR", version, record size, row count and the fingerprint of the rows
 * it holds) then the records, each on its own page. Opening streams the
 * table once (constant memory) for the ids and the fingerprint; a file
 * that holds other rows (or none, or is truncated) is written again from
 * the table in the same read snapshot, atomically. Where it cannot be
 * written (a read-only folder), the records are read into memory as
 * cs_lf_load does (note says so). Resident: the ids (8 B per reference,
 * the caller may free them early: free(ids), ids = NULL) and the pages of
 * the records read. */
typedef struct {
    int64_t n;
    int64_t *ids;         /* [n] refs.id of each row, ascending, malloc'd */
    const uint8_t *recs;  /* [n][CS_LF_RECORD] */
    uint64_t fp;          /* cs_lf_fingerprint(n, ids, recs) */
    void *map;            /* the mapping (NULL: recs is heap) */
    size_t map_len;
    uint8_t *heap;
} cs_lf_records;
/* n = 0 (nothing mapped) when no reference has local features. note[cap]
 * (may be NULL): "" or a line saying the file was written, or why the
 * records are in memory. */
int cs_lf_records_open(cs_store *s, cs_lf_records *r, char *note, size_t cap, cs_err *err);
/* Drops the pages read so far from the process's resident set (they stay in
 * the page cache): after building the vote index from the mapping, which
 * reads every record. */
void cs_lf_records_release(cs_lf_records *r);
void cs_lf_records_close(cs_lf_records *r);

/* on != 0: the vote index's PQ codes from FAISS's own encoder (the anchor of
 * test_lf_index and bench_localfeat), else (the default) from ours, the
 * same codes (index/lf_scan.c, lf_pq_encode). Process-wide. */
void cs_lf_faiss_encode(int on);

/* The vote index over n references' records. */
typedef struct cs_lf_index cs_lf_index;
/* factory: a FAISS index_factory string, NULL for cs_lf_default_factory's.
 * Trained on (at most CS_LF_MAX_TRAIN, evenly spaced, of) the descriptors
 * themselves; the result does not depend on the thread count. */
int cs_lf_index_build(cs_lf_index **out, int64_t n, const uint8_t *recs, const char *factory, cs_err *err);
void cs_lf_index_free(cs_lf_index *ix);
/* The default factory for nd descriptors and its nprobe (0: not an IVF):
 * "Flat" (exact) under CS_LF_MIN_IMI, else "IMI2xB,PQ16np", 4^B cells of about
 * CS_LF_PER_CELL descriptors (B 5..10), CS_LF_NPROBE cells searched, codes of
 * the descriptors themselves (not residuals: one distance table per query).
 * The cells stay small as N grows, so the scan per query descriptor is about
 * constant (bench_localfeat: 64-75 us CPU at 20,000-100,000 references). */
void cs_lf_default_factory(int64_t nd, char *buf, size_t cap, int *nprobe);
/* faiss_scan != 0: the nearest descriptors from FAISS's own search (the
 * anchor of bench_localfeat), else (the default) from our scan of the same
 * PQ codes (index/lf_scan.c; an IVF-PQ of 8-bit codes without residuals,
 * as cs_lf_default_factory makes; other indexes are always FAISS's). Returns
 * whether our scan is in use. */
int cs_lf_index_faiss_scan(cs_lf_index *ix, int faiss_scan);
/* The widest SIMD our scan may use (distance tables and the gather of the
 * codes' table entries): 0 its scalar loops, 1 AVX2, 2 (the default)
 * AVX-512, each where cpuid has it; the same bits at every level (tests and
 * the bench compare them). Returns the level in use. */
int cs_lf_index_simd(cs_lf_index *ix, int max);
/* prune 2 (the default): where cpuid has AVX-512 VBMI, codes are first
 * excluded by a lower bound of their sums from byte tables (lf_scan.c,
 * bound64), then as with 1; 1: the AVX-512 scan stops summing a block of
 * 16 codes once every partial sum is above the best CS_LF_NN's last (none
 * can enter: sum16_avx512; session 8's scan); 0: every sum in full
 * (session 7's scan). 0 and 1 are bench_localfeat's anchors. The same rows
 * and votes at every level. Returns the level in use. */
int cs_lf_index_prune(cs_lf_index *ix, int prune);
/* IVF lists (cells) searched per query descriptor; no-op for "Flat". */
int cs_lf_index_set_nprobe(cs_lf_index *ix, int nprobe, cs_err *err);
/* "IVF1024,SQ8, nprobe 16" */
void cs_lf_index_describe(const cs_lf_index *ix, char *buf, size_t cap);
int64_t cs_lf_index_ndesc(const cs_lf_index *ix);

/* The vote index kept beside the store, <db>.lfvote (cs_store_sidecar(s,
 * "lfvote")): a header (magic "CSLV", version, the records' fingerprint and
 * count, descriptor count, factory, nprobe), every descriptor's reference
 * row, the FAISS index (cs_faiss_write_fp), the magic again and the FAISS
 * part's length (a truncated file is refused before FAISS reads it). `index add`
 * writes it (atomically) and the analysis reads it instead of building the
 * index again; a file built from other records (a reference added, removed
 * or re-extracted), missing or corrupt is rebuilt from the records and
 * written again; one built from the first m of the records (references
 * added since, last by refs.id) is appended to when the default factory for
 * all of them is the one it has (incremental `index add`: trained once). */
/* 64-bit fingerprint of the records and their ids (every byte). */
uint64_t cs_lf_fingerprint(int64_t n, const int64_t *ids, const uint8_t *recs);
int cs_lf_index_save(const cs_lf_index *ix, const char *path, uint64_t fp, int64_t nref, cs_err *err);
/* CS_ENOTFOUND: missing or built from other records; CS_EFORMAT: corrupt. */
int cs_lf_index_load(cs_lf_index **out, const char *path, uint64_t fp, int64_t nref, cs_err *err);
/* The index of these records from path when current, else built and saved
 * there (path NULL: not saved); note[cap] then says why it was rebuilt and
 * whether it was saved ("" when loaded). out NULL: only make sure the file
 * is current (its header is read, not the index). A failed save is not an
 * error (a read-only folder): the note says so. */
int cs_lf_index_open(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                     char *note, size_t cap, cs_err *err);
/* The same with the records' fingerprint known (cs_lf_records.fp): a
 * current side file is loaded without reading the records. */
int cs_lf_index_open_fp(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                        uint64_t fp, char *note, size_t cap, cs_err *err);

/* The k nearest indexed descriptors of n query descriptors (desc[n][128]):
 * rows[n][k] as numbered by the records (-1 where fewer), best first; what
 * cs_lf_retrieve's votes count (k = CS_LF_NN), for recall checks. */
int cs_lf_index_knn(cs_lf_index *ix, int64_t n, const uint8_t *desc, int k, int64_t *rows, cs_err *err);

typedef struct {
    int32_t row;   /* reference row */
    int votes;     /* query keypoints whose CS_LF_NN nearest include one of its keypoints */
} cs_lf_vote;

/* Candidates of nq query sets (e.g. a query and its mirror, counted as
 * separate queries): out[nq][max_out] by votes descending (ties: lower row),
 * nout[nq]. */
int cs_lf_retrieve(cs_lf_index *ix, const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout,
                   cs_err *err);

/* ---- The vote search in parts (copyscope-mpi: each rank searches the
 * descriptors of the references it owns, rank 0 merges; issue 17) ----
 * A part holds some records' descriptors indexed with the whole index's
 * trained quantizer, so its distances are the whole index's bit for bit
 * and each descriptor keeps its number in the whole index (its record's
 * first + its keypoint): the best CS_LF_NN of the parts' lists by
 * (distance, number) are the whole index's nearest (test_lf_shard). */
/* Every record's descriptor count in ix (built from nrec records): cnt[nrec]. */
int cs_lf_index_counts(const cs_lf_index *ix, int64_t nrec, uint8_t *cnt);
/* ix's trained quantizer without its descriptors (its factory, nprobe, and
 * the emptied FAISS index: cells and PQ codebooks; "Flat": the header
 * alone) as bytes for cs_lf_part_build: *buf malloc'd, *len. */
int cs_lf_quantizer_save(const cs_lf_index *ix, uint8_t **buf, size_t *len, cs_err *err);
typedef struct cs_lf_part cs_lf_part;
/* The part of the records recs[n] with keep[i] != 0 (cnt[n]: every
 * record's descriptor count, cs_lf_index_counts of the whole index; a kept
 * record must hold that many), indexed with the quantizer q[qlen]. Only
 * the kept records' pages are read. */
int cs_lf_part_build(cs_lf_part **out, const uint8_t *q, size_t qlen, int64_t n, const uint8_t *recs,
                     const uint8_t *cnt, const uint8_t *keep, cs_err *err);
void cs_lf_part_free(cs_lf_part *p);
int64_t cs_lf_part_ndesc(const cs_lf_part *p);
/* The part's CS_LF_NN nearest of n query descriptors desc[n][128]:
 * dist[n][CS_LF_NN] and gid[n][CS_LF_NN] (numbers in the whole index), by
 * (distance, number), INFINITY and -1 where fewer. */
int cs_lf_part_knn(cs_lf_part *p, int64_t n, const uint8_t *desc, float *dist, int64_t *gid, cs_err *err);
/* acc = the best CS_LF_NN of acc's and src's lists (n each) by (distance, number). */
void cs_lf_part_merge(float *acc_d, int64_t *acc_g, const float *d, const int64_t *g, int64_t n);
/* cs_lf_retrieve's votes (out[nq][max_out], nout[nq]) from the merged
 * nearest numbers gid of the query sets' descriptors (q[0]'s first, in
 * order), first[nrec] the first number of every record (prefix sums of
 * cs_lf_index_counts). */
int cs_lf_part_votes(const int64_t *first, int64_t nrec, const cs_lf_set *q, int64_t nq, const int64_t *gid,
                     int max_out, cs_lf_vote *out, int *nout, cs_err *err);

/* A part kept beside its shard (copyscope-mpi: <db>.shards/K-of-N.db.lfpart,
 * written by `index add`, read by the analysis instead of encoding): keyed
 * by key[0], the quantizer's fingerprint (its bytes q[qlen]), and key[1],
 * the records' (fp: cs_lf_records.fp of all n, whose counts number the
 * descriptors) with the part's choice of them (keep[n]). */
void cs_lf_part_keys(const uint8_t *q, size_t qlen, uint64_t fp, int64_t n, const uint8_t *keep,
                     uint64_t key[2]);
/* Written atomically (a temporary file renamed over path). */
int cs_lf_part_save(const cs_lf_part *p, const char *path, const uint64_t key[2], cs_err *err);
/* CS_ENOTFOUND: missing or of another key; CS_EFORMAT: cut or corrupt (its
 * numbers must ascend below total, the whole index's descriptor count). */
int cs_lf_part_load(cs_lf_part **out, const char *path, const uint64_t key[2], int64_t total, cs_err *err);

/* Frees what a search of ix needs (its FAISS index, scan tables and owners;
 * its descriptor count and factory stay): once its parts are built and its
 * counts and quantizer taken, ix is for nothing but cs_lf_index_ndesc,
 * cs_lf_index_free. */
void cs_lf_index_drop_search(cs_lf_index *ix);

/* The records of s's <db>.lfrec mapped without reading the table: when its
 * header says n rows of fingerprint fp (another process of the same run
 * checked them against the table: copyscope-mpi's rank 0), else
 * CS_ENOTFOUND. r->ids stays NULL. */
int cs_lf_records_map(cs_store *s, int64_t n, uint64_t fp, cs_lf_records *r, cs_err *err);

#endif
