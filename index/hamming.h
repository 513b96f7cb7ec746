/* hamming.h — exhaustive top-k search by Hamming distance over binary codes
 * held in memory (PDQ 256-bit, pHash/dHash/aHash 64-bit), and loading those
 * codes from the store's ref_hashes table.
 *
 * The scan compares a block of queries against a cache-sized block of codes,
 * so each code is read from memory once per query block: the loop is bound
 * by popcount throughput, not memory bandwidth. Kernels: AVX-512 VPOPCNTDQ
 * (8 queries per instruction) when the CPU has it, else scalar POPCNT, else a
 * portable popcount; chosen at run time (the default build has no -mpopcnt).
 *
 * Ordering: hits sort by (distance, index) ascending; among equal distances
 * the lower index wins, independent of the thread count.
 *
 * Multi-index hashing is not used, by measurement (bench/bench_hash.c): over
 * 1,000,000 PDQ codes the AVX-512 scan does ~4 G code-query pairs per
 * CPU-second, i.e. ~0.25 ms of one core per query — a whole index query is
 * dominated by decoding the query image. MIH (16 x 16-bit substrings, radius 1
 * each for the 31-bit threshold) would cut the candidates ~100x, but only for
 * threshold queries, not for top-k of far neighbours; it pays from tens of
 * millions of references. */
#ifndef CS_HAMMING_H
#define CS_HAMMING_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

typedef struct {
    int64_t index; /* row in the code array */
    int dist;
} cs_hamming_hit;

enum { CS_HAMMING_AUTO = 0, CS_HAMMING_PORTABLE, CS_HAMMING_POPCNT, CS_HAMMING_AVX512 };

typedef struct {
    int k;        /* hits wanted per query (>= 1) */
    int max_dist; /* only hits with dist <= max_dist; < 0 = no limit */
    int threads;  /* <= 0: cs_threads() */
    int kernel;   /* CS_HAMMING_AUTO, or force one (tests, bench) */
} cs_hamming_opts;

/* Top-k of nq queries against n codes, each code `words` uint64 (1 or 4),
 * codes and queries packed contiguously (code i = codes[i*words ..]).
 * hits: nq*k entries (caller's), query q's in hits[q*k ..], sorted;
 * nhits[q] = how many were found (< k when n < k or max_dist cuts). */
int cs_hamming_topk(const uint64_t *codes, int64_t n, int words, const uint64_t *queries,
                    int64_t nq, const cs_hamming_opts *opts, cs_hamming_hit *hits, int *nhits,
                    cs_err *err);

/* Which kernel CS_HAMMING_AUTO runs on this CPU, as a name ("avx512-vpopcntdq", ...). */
const char *cs_hamming_kernel_name(int kernel);
int cs_hamming_best_kernel(void);

/* Every reference's hashes from ref_hashes, ordered by ref_id. Codes are
 * packed for cs_hamming_topk: pdq as 4 words (the 32 bytes as stored, so a
 * query packed with cs_hamming_pack_pdq compares correctly). */
typedef struct {
    int64_t n;
    int64_t *ref_ids;  /* [n] */
    uint64_t *pdq;     /* [n][4] */
    int *pdq_quality;  /* [n] */
    uint64_t *phash, *dhash, *ahash; /* [n] each */
} cs_hash_db;

/* Loads all rows; an index without hashes gives n = 0. Free with cs_hash_db_free. */
int cs_hash_db_load(cs_store *s, cs_hash_db *db, cs_err *err);
void cs_hash_db_free(cs_hash_db *db);

void cs_hamming_pack_pdq(const uint8_t pdq[32], uint64_t out[4]);

#endif
