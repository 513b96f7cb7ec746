/* hamming.c — exhaustive top-k Hamming search (see hamming.h).
 *
 * Work is cut into (query block) x (code chunk) tiles: a chunk of CHUNK codes
 * (256 KiB of PDQ codes, L2-resident) is scanned for QB queries at a time, so
 * memory traffic is 1/QB of a query-at-a-time scan and the popcount units,
 * not DRAM, set the speed. Each query keeps a sorted top-k list; a code is
 * only inserted when it beats the list's current worst (the common case is a
 * compare and a not-taken branch). */
#include "index/hamming.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"

#define QB 32        /* queries per block */
#define CHUNK 8192   /* codes per chunk */
#define QTASK 64     /* queries per task when threads split the queries */

/* Inserts (idx, d) into the sorted list l (cnt entries, capacity k); idx is
 * larger than every index already there, so it goes after equal distances. */
static inline void list_insert(cs_hamming_hit *l, int *cnt, int k, int64_t idx, int d) {
    int c = *cnt, p = c < k ? c : k - 1;
    while (p > 0 && l[p - 1].dist > d) {
        l[p] = l[p - 1];
        p--;
    }
    l[p].index = idx;
    l[p].dist = d;
    if (c < k) *cnt = c + 1;
}

/* The distance a candidate must beat (strictly) to enter query q's list. */
static inline int list_bound(const cs_hamming_hit *l, int cnt, int k, int maxd) {
    return cnt < k ? maxd + 1 : l[k - 1].dist;
}

/* One scan: codes [c0, c1) against queries Q[0..nq), lists L[q*k ..], cnt[q]. */
typedef void (*scan_fn)(const uint64_t *codes, int words, int64_t c0, int64_t c1,
                        const uint64_t *Q, int64_t nq, cs_hamming_hit *L, int *cnt, int k, int maxd);

/* The scalar scan, compiled twice: with the POPCNT instruction and without. */
#define SCALAR_SCAN(NAME, ATTR)                                                                  \
    ATTR static void NAME(const uint64_t *codes, int words, int64_t c0, int64_t c1,              \
                          const uint64_t *Q, int64_t nq, cs_hamming_hit *L, int *cnt, int k,     \
                          int maxd) {                                                            \
        int thr[QB];                                                                             \
        for (int64_t ch = c0; ch < c1; ch += CHUNK) {                                            \
            int64_t ce = ch + CHUNK < c1 ? ch + CHUNK : c1;                                      \
            for (int64_t qb = 0; qb < nq; qb += QB) {                                            \
                int nb = nq - qb < QB ? (int)(nq - qb) : QB;                                     \
                const uint64_t *Qb = Q + qb * words;                                             \
                cs_hamming_hit *Lb = L + qb * k;                                                 \
                int *cb = cnt + qb;                                                              \
                for (int q = 0; q < nb; q++) thr[q] = list_bound(Lb + q * k, cb[q], k, maxd);    \
                if (words == 4) {                                                                \
                    for (int64_t i = ch; i < ce; i++) {                                          \
                        const uint64_t *x = codes + 4 * i;                                       \
                        uint64_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];                     \
                        for (int q = 0; q < nb; q++) {                                           \
                            const uint64_t *y = Qb + 4 * q;                                      \
                            int d = __builtin_popcountll(x0 ^ y[0]) +                            \
                                    __builtin_popcountll(x1 ^ y[1]) +                            \
                                    __builtin_popcountll(x2 ^ y[2]) +                            \
                                    __builtin_popcountll(x3 ^ y[3]);                             \
                            if (d < thr[q]) {                                                    \
                                list_insert(Lb + q * k, &cb[q], k, i, d);                        \
                                thr[q] = list_bound(Lb + q * k, cb[q], k, maxd);                 \
                            }                                                                    \
                        }                                                                        \
                    }                                                                            \
                } else {                                                                         \
                    for (int64_t i = ch; i < ce; i++) {                                          \
                        uint64_t x0 = codes[i];                                                  \
                        for (int q = 0; q < nb; q++) {                                           \
                            int d = __builtin_popcountll(x0 ^ Qb[q]);                            \
                            if (d < thr[q]) {                                                    \
                                list_insert(Lb + q * k, &cb[q], k, i, d);                        \
                                thr[q] = list_bound(Lb + q * k, cb[q], k, maxd);                 \
                            }                                                                    \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

SCALAR_SCAN(scan_portable, )
SCALAR_SCAN(scan_popcnt, __attribute__((target("popcnt"))))

/* AVX-512: 8 queries per vector (one 64-bit lane each), the code's words
 * broadcast; QB/8 vectors of queries share each code load. */
#define AVX512_ATTR __attribute__((target("avx512f,avx512vpopcntdq")))

/* Lanes m of distances d (queries g*8 + lane) beat their lists' bounds:
 * insert row i and raise the lanes' thresholds thr to the new bounds. */
AVX512_ATTR static void absorb_hits(__m512i d, __mmask8 m, __m512i *thr, int g, int64_t i, cs_hamming_hit *Lb,
                                    int *cb, int k, int maxd) {
    int64_t dd[8], t[8];
    _mm512_storeu_si512(dd, d);
    _mm512_storeu_si512(t, *thr);
    for (; m; m &= (__mmask8)(m - 1)) {
        int l = __builtin_ctz(m), q = g * 8 + l;
        list_insert(Lb + q * k, &cb[q], k, i, (int)dd[l]);
        t[l] = list_bound(Lb + q * k, cb[q], k, maxd);
    }
    *thr = _mm512_loadu_si512(t);
}

AVX512_ATTR static void scan_avx512(const uint64_t *codes, int words, int64_t c0, int64_t c1,
                                    const uint64_t *Q, int64_t nq, cs_hamming_hit *L, int *cnt,
                                    int k, int maxd) {
    enum { G = QB / 8 };
    for (int64_t qb = 0; qb < nq; qb += QB) {
        int nb = nq - qb < QB ? (int)(nq - qb) : QB;
        const uint64_t *Qb = Q + qb * words;
        cs_hamming_hit *Lb = L + qb * k;
        int *cb = cnt + qb;
        /* queries transposed: qv[g][w] lane l = word w of query g*8+l (padding: zeros) */
        __m512i qv[G][4];
        for (int g = 0; g < G; g++)
            for (int w = 0; w < words; w++) {
                uint64_t lane[8] = {0};
                for (int l = 0; l < 8; l++)
                    if (g * 8 + l < nb) lane[l] = Qb[(g * 8 + l) * words + w];
                qv[g][w] = _mm512_loadu_si512(lane);
            }
        for (int64_t ch = c0; ch < c1; ch += CHUNK) {
            int64_t ce = ch + CHUNK < c1 ? ch + CHUNK : c1;
            __m512i thr[G];
            for (int g = 0; g < G; g++) {
                int64_t t[8];
                for (int l = 0; l < 8; l++) {
                    int q = g * 8 + l;
                    t[l] = q < nb ? list_bound(Lb + q * k, cb[q], k, maxd) : 0; /* pad: never */
                }
                thr[g] = _mm512_loadu_si512(t);
            }
            if (words == 4) {
                for (int64_t i = ch; i < ce; i++) {
                    const uint64_t *x = codes + 4 * i;
                    __m512i x0 = _mm512_set1_epi64((long long)x[0]);
                    __m512i x1 = _mm512_set1_epi64((long long)x[1]);
                    __m512i x2 = _mm512_set1_epi64((long long)x[2]);
                    __m512i x3 = _mm512_set1_epi64((long long)x[3]);
                    for (int g = 0; g < G; g++) {
                        __m512i d = _mm512_add_epi64(
                            _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(x0, qv[g][0])),
                                             _mm512_popcnt_epi64(_mm512_xor_si512(x1, qv[g][1]))),
                            _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(x2, qv[g][2])),
                                             _mm512_popcnt_epi64(_mm512_xor_si512(x3, qv[g][3]))));
                        __mmask8 m = _mm512_cmplt_epi64_mask(d, thr[g]);
                        if (__builtin_expect(m != 0, 0)) absorb_hits(d, m, &thr[g], g, i, Lb, cb, k, maxd);
                    }
                }
            } else {
                for (int64_t i = ch; i < ce; i++) {
                    __m512i x0 = _mm512_set1_epi64((long long)codes[i]);
                    for (int g = 0; g < G; g++) {
                        __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(x0, qv[g][0]));
                        __mmask8 m = _mm512_cmplt_epi64_mask(d, thr[g]);
                        if (__builtin_expect(m != 0, 0)) absorb_hits(d, m, &thr[g], g, i, Lb, cb, k, maxd);
                    }
                }
            }
        }
    }
}

int cs_hamming_best_kernel(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))
        return CS_HAMMING_AVX512;
    if (__builtin_cpu_supports("popcnt")) return CS_HAMMING_POPCNT;
    return CS_HAMMING_PORTABLE;
}

const char *cs_hamming_kernel_name(int kernel) {
    switch (kernel) {
    case CS_HAMMING_AVX512: return "avx512-vpopcntdq";
    case CS_HAMMING_POPCNT: return "popcnt";
    case CS_HAMMING_PORTABLE: return "portable";
    default: return cs_hamming_kernel_name(cs_hamming_best_kernel());
    }
}

/* ---- threading ---- */

typedef struct {
    scan_fn scan;
    const uint64_t *codes, *Q;
    int64_t n, nq, parts;
    int words, k, maxd;
    cs_hamming_hit *L; /* query mode: the output; db mode: [parts][nq][k] */
    int *cnt;          /* likewise */
} job;

/* Query mode: task t = queries [t*QTASK, ...) against every code. */
static void run_queries(void *ctx, int64_t t, int thread) {
    (void)thread;
    job *j = ctx;
    int64_t q0 = t * QTASK, nq = j->nq - q0 < QTASK ? j->nq - q0 : QTASK;
    j->scan(j->codes, j->words, 0, j->n, j->Q + q0 * j->words, nq, j->L + q0 * j->k, j->cnt + q0,
            j->k, j->maxd);
}

/* DB mode: task t = every query against the t-th slice of the codes. */
static void run_slice(void *ctx, int64_t t, int thread) {
    (void)thread;
    job *j = ctx;
    int64_t per = (j->n + j->parts - 1) / j->parts, c0 = t * per, c1 = c0 + per;
    if (c1 > j->n) c1 = j->n;
    if (c0 >= c1) return;
    j->scan(j->codes, j->words, c0, c1, j->Q, j->nq, j->L + t * j->nq * j->k, j->cnt + t * j->nq,
            j->k, j->maxd);
}

int cs_hamming_topk(const uint64_t *codes, int64_t n, int words, const uint64_t *queries,
                    int64_t nq, const cs_hamming_opts *opts, cs_hamming_hit *hits, int *nhits,
                    cs_err *err) {
    if (words != 1 && words != 4)
        return cs_fail(err, CS_EUSAGE, "hamming: codes of %d words are not supported", words);
    if (opts->k < 1) return cs_fail(err, CS_EUSAGE, "hamming: k must be at least 1");
    int kernel = opts->kernel ? opts->kernel : cs_hamming_best_kernel();
    if (kernel == CS_HAMMING_AVX512 && cs_hamming_best_kernel() != CS_HAMMING_AVX512)
        kernel = cs_hamming_best_kernel();
    job j = {.scan = kernel == CS_HAMMING_AVX512 ? scan_avx512
                     : kernel == CS_HAMMING_POPCNT ? scan_popcnt
                                                   : scan_portable,
             .codes = codes, .Q = queries, .n = n, .nq = nq, .words = words, .k = opts->k,
             .maxd = opts->max_dist < 0 || opts->max_dist > 64 * words ? 64 * words : opts->max_dist};
    int threads = opts->threads > 0 ? opts->threads : cs_threads();
    memset(nhits, 0, sizeof(int) * (size_t)nq);
    if (nq <= 0 || n <= 0) return 0;
    int64_t qtasks = (nq + QTASK - 1) / QTASK;
    if (threads <= 1 || qtasks >= 2 * threads || n < 4 * CHUNK) {
        j.L = hits;
        j.cnt = nhits;
        cs_parallel_for(threads, qtasks, run_queries, &j);
        return 0;
    }
    /* few queries, many codes: slice the codes, then merge the per-slice lists */
    j.parts = threads;
    j.L = malloc(sizeof(cs_hamming_hit) * (size_t)(j.parts * nq * j.k));
    j.cnt = calloc((size_t)(j.parts * nq), sizeof(int));
    if (!j.L || !j.cnt) {
        free(j.L);
        free(j.cnt);
        return cs_fail(err, CS_ENOMEM, "hamming: out of memory");
    }
    cs_parallel_for(threads, j.parts, run_slice, &j);
    /* slices hold increasing index ranges: inserting slice by slice keeps the
     * (distance, index) order */
    for (int64_t q = 0; q < nq; q++)
        for (int64_t p = 0; p < j.parts; p++) {
            const cs_hamming_hit *l = j.L + (p * nq + q) * j.k;
            for (int r = 0; r < j.cnt[p * nq + q]; r++) {
                cs_hamming_hit *out = hits + q * j.k;
                if (l[r].dist < list_bound(out, nhits[q], j.k, j.maxd))
                    list_insert(out, &nhits[q], j.k, l[r].index, l[r].dist);
            }
        }
    free(j.L);
    free(j.cnt);
    return 0;
}

/* ---- loading from the store ---- */

void cs_hamming_pack_pdq(const uint8_t pdq[32], uint64_t out[4]) { memcpy(out, pdq, 32); }

void cs_hash_db_free(cs_hash_db *db) {
    if (!db) return;
    free(db->ref_ids);
    free(db->pdq);
    free(db->pdq_quality);
    free(db->phash);
    free(db->dhash);
    free(db->ahash);
    memset(db, 0, sizeof *db);
}

int cs_hash_db_load(cs_store *s, cs_hash_db *db, cs_err *err) {
    memset(db, 0, sizeof *db);
    sqlite3_stmt *st = NULL;
    if (cs_store_prepare(s, &st, "SELECT count(*) FROM ref_hashes", err)) return -1;
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (n == 0) return 0;
    size_t un = (size_t)n;
    db->ref_ids = malloc(un * sizeof(int64_t));
    db->pdq = malloc(un * 32);
    db->pdq_quality = malloc(un * sizeof(int));
    db->phash = malloc(un * 8);
    db->dhash = malloc(un * 8);
    db->ahash = malloc(un * 8);
    if (!db->ref_ids || !db->pdq || !db->pdq_quality || !db->phash || !db->dhash || !db->ahash) {
        cs_hash_db_free(db);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld hashes", cs_store_path(s),
                       (long long)n);
    }
    if (cs_store_prepare(s, &st,
                         "SELECT ref_id, pdq, pdq_quality, phash, dhash, ahash FROM ref_hashes "
                         "ORDER BY ref_id",
                         err)) {
        cs_hash_db_free(db);
        return -1;
    }
    int64_t i = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && i < n) {
        const void *b = sqlite3_column_blob(st, 1);
        if (!b || sqlite3_column_bytes(st, 1) != 32) continue; /* malformed row: skipped */
        db->ref_ids[i] = sqlite3_column_int64(st, 0);
        cs_hamming_pack_pdq(b, db->pdq + 4 * i);
        db->pdq_quality[i] = sqlite3_column_int(st, 2);
        db->phash[i] = (uint64_t)sqlite3_column_int64(st, 3);
        db->dhash[i] = (uint64_t)sqlite3_column_int64(st, 4);
        db->ahash[i] = (uint64_t)sqlite3_column_int64(st, 5);
        i++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        cs_hash_db_free(db);
        return cs_store_fail(s, err, "reading ref_hashes");
    }
    db->n = i;
    return 0;
}
