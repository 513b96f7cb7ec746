/* bench_analyze.c — analysis speed.
 *
 * 1. Cliques: pairwise tiled L2 among 500 generations of one prompt (Carlini
 *    et al. sample 500 per prompt) by blocked sgemm, beside the scalar O(n^2)
 *    loop of cs_tl2_pair as the anchor; the two adjacency matrices must agree.
 * 2. 10,000 generations x 1,000,000 references (synthetic hashes, 1,000 of
 *    the generations planted as copies with a few bits flipped): the whole
 *    cs_an_match_batch (hash candidates by index/hamming.h, refinement,
 *    verdicts) with the time split between the Hamming scans and the rest;
 *    anchor: a naive per-generation scalar scan over the 1M codes.
 * 3. Pixel path: 2,000 generations x 10,000 references with thumbnails
 *    (exact tiled-L2 scan by sgemm + alignment refinement), per-generation cost.
 * 4. Embedding search cost per (generation x reference) from index/knn.h at
 *    100,000 x 256-d ("tiny"), extrapolated to 10,000 x 1,000,000.
 * Environment: CS_BENCH_QUICK=1 shrinks every size by 10x. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyze/clique.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/parallel.h"
#include "index/hamming.h"
#include "index/knn.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rs = 88172645463325252ULL;
static uint64_t rnd64(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void blocky(uint8_t *p) {
    for (int by = 0; by < 8; by++)
        for (int bx = 0; bx < 8; bx++) {
            uint64_t c = rnd64();
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) memcpy(p + ((by * 8 + y) * 64 + bx * 8 + x) * 3, &c, 3);
        }
}

static void bench_cliques(int n) {
    cs_tl2_cfg c = cs_tl2_default();
    const int D = cs_tl2_dim(&c), T = cs_tl2_tiles(&c);
    uint8_t *img = malloc((size_t)n * D);
    float *p = malloc(sizeof(float) * (size_t)n * D), *n2 = malloc(sizeof(float) * (size_t)n * T);
    for (int i = 0; i < n; i++) {
        blocky(img + (size_t)i * D);
        if (i % 50 < 12 && i % 50) memcpy(img + (size_t)i * D, img + (size_t)(i - i % 50) * D, D); /* planted */
        cs_tl2_prepare(p + (size_t)i * D, n2 + (size_t)i * T, img + (size_t)i * D, &c);
    }
    uint8_t *a = malloc((size_t)n * n), *b = malloc((size_t)n * n);
    cs_err err = {0};
    double c0 = cpu(), t0 = now();
    cs_cliques_adjacency(a, p, n2, n, &c, 0.15f, &err);
    double c1 = cpu(), t1 = now();
    cs_cliques_adjacency_scalar(b, p, n, &c, 0.15f);
    double c2 = cpu(), t2 = now();
    cs_cliques cl;
    double t3 = now();
    cs_cliques_find(&cl, p, n2, n, &c, 0.15f, &err);
    double t4 = now();
    double pairs = (double)n * (n - 1) / 2;
    printf("cliques, %d generations (%.0f pairs, 64px, 16 tiles): blocked sgemm %.3f s wall, %.3f s cpu "
           "(%.2f Mpairs/s)  anchor scalar loop %.3f s wall, %.3f s cpu  ratio %.1fx wall, %.1fx cpu "
           "(graphs %s; cliques found: %lld, full find %.3f s)\n",
           n, pairs, t1 - t0, c1 - c0, pairs / (t1 - t0) / 1e6, t2 - t1, c2 - c1, (t2 - t1) / (t1 - t0),
           (c2 - c1) / (c1 - c0),
           memcmp(a, b, (size_t)n * n) ? "DIFFER" : "identical", (long long)cl.n_cliques, t4 - t3);
    cs_cliques_free(&cl);
    free(a);
    free(b);
    free(img);
    free(p);
    free(n2);
}

static void bench_scale(int64_t nref, int64_t ngen) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    int64_t *ids = malloc(sizeof(int64_t) * nref);
    cs_hashes *h = malloc(sizeof(cs_hashes) * nref);
    for (int64_t i = 0; i < nref; i++) {
        ids[i] = i + 1;
        for (int k = 0; k < 32; k += 8) {
            uint64_t v = rnd64();
            memcpy(h[i].pdq + k, &v, 8);
        }
        h[i].pdq_quality = 100;
        h[i].phash = rnd64();
        h[i].dhash = rnd64();
        h[i].ahash = rnd64();
    }
    cs_an_refs r;
    cs_err err = {0};
    double t0 = now();
    if (cs_an_refs_build(&r, nref, ids, NULL, &s, &err) || cs_an_refs_set_hashes(&r, ids, h, nref, &err)) {
        printf("scale: %s\n", err.msg);
        return;
    }
    double tload = now() - t0;
    cs_an_query *q = calloc((size_t)ngen, sizeof *q);
    int64_t *truth = malloc(sizeof(int64_t) * ngen);
    for (int64_t i = 0; i < ngen; i++) {
        q[i].has_hashes = 1;
        truth[i] = -1;
        if (i % 10 == 0) { /* a copy: 8 PDQ bits and 2 pHash bits flipped */
            int64_t j = (int64_t)(rnd64() % (uint64_t)nref);
            truth[i] = j;
            q[i].h = h[j];
            for (int f = 0; f < 8; f++) q[i].h.pdq[rnd64() % 32] ^= (uint8_t)(1u << (rnd64() % 8));
            q[i].h.phash ^= 3;
        } else {
            for (int k = 0; k < 32; k += 8) {
                uint64_t v = rnd64();
                memcpy(q[i].h.pdq + k, &v, 8);
            }
            q[i].h.pdq_quality = 100;
            q[i].h.phash = rnd64();
            q[i].h.dhash = rnd64();
        }
        q[i].hm = q[i].h;
        q[i].hm.phash = rnd64(); /* the mirror image hashes differently */
        memset(q[i].thumb, 255, sizeof q[i].thumb);
    }
    enum { CH = 1024 };
    cs_an_result *res = malloc(sizeof(cs_an_result) * CH);
    int64_t found = 0, fp = 0;
    double t1 = now(), cc1 = cpu();
    for (int64_t off = 0; off < ngen; off += CH) {
        int64_t n = ngen - off < CH ? ngen - off : CH;
        if (cs_an_match_batch(&r, q + off, n, &s, 0, res, &err)) {
            printf("scale: %s\n", err.msg);
            break;
        }
        for (int64_t j = 0; j < n; j++) {
            if (truth[off + j] >= 0) found += res[j].verdict >= CS_V_NEAR && res[j].best.row == truth[off + j];
            else fp += res[j].verdict >= CS_V_NEAR;
        }
    }
    double tall = now() - t1, call = cpu() - cc1;
    /* the Hamming scans alone (3 hashes x generation and mirror) */
    uint64_t *qc = malloc(sizeof(uint64_t) * 4 * 2 * ngen);
    for (int64_t i = 0; i < ngen; i++) {
        memcpy(qc + 8 * i, q[i].h.pdq, 32);
        memcpy(qc + 8 * i + 4, q[i].hm.pdq, 32);
    }
    int k = (int)s.cand_k;
    cs_hamming_hit *hits = malloc(sizeof(cs_hamming_hit) * 2 * ngen * k);
    int *nh = malloc(sizeof(int) * 2 * ngen);
    cs_hamming_opts ho = {.k = k, .max_dist = -1};
    double t2 = now();
    cs_hamming_topk(r.pdq, nref, 4, qc, 2 * ngen, &ho, hits, nh, &err);
    double tpdq = now() - t2;
    for (int64_t i = 0; i < 2 * ngen; i++) qc[i] = i % 2 ? q[i / 2].hm.phash : q[i / 2].h.phash;
    t2 = now();
    cs_hamming_topk(r.phash, nref, 1, qc, 2 * ngen, &ho, hits, nh, &err);
    double t64 = now() - t2;
    double tscan = tpdq + 2 * t64;
    /* anchor: naive scalar scan, one generation at a time, over all codes (on 100, scaled) */
    int64_t na = ngen < 100 ? ngen : 100;
    volatile int sink = 0;
    double t3 = now(), cc3 = cpu();
    for (int64_t i = 0; i < na; i++)
        for (int m = 0; m < 2; m++) {
            const cs_hashes *x = m ? &q[i].hm : &q[i].h;
            uint64_t w[4];
            memcpy(w, x->pdq, 32);
            int best = 999;
            for (int64_t j = 0; j < nref; j++) {
                const uint64_t *c = r.pdq + 4 * j;
                int d = __builtin_popcountll(w[0] ^ c[0]) + __builtin_popcountll(w[1] ^ c[1]) +
                        __builtin_popcountll(w[2] ^ c[2]) + __builtin_popcountll(w[3] ^ c[3]);
                int d2 = __builtin_popcountll(x->phash ^ r.phash[j]), d3 = __builtin_popcountll(x->dhash ^ r.dhash[j]);
                if (d + d2 + d3 < best) best = d + d2 + d3;
            }
            sink += best;
        }
    double tanchor = (now() - t3) * (double)ngen / na, canchor = (cpu() - cc3) * (double)ngen / na;
    printf("scale, %lld generations x %lld references (hashes, %d threads): %.1f s wall (%.1f s cpu) = "
           "%.1f gen/s (Hamming scans %.1f s, refinement + verdicts %.1f s; index load %.1f s)  anchor "
           "naive scalar scan %.1f s wall, %.1f s cpu (one thread; measured on %lld, scaled)  ratio %.1fx "
           "wall, %.1fx cpu; planted copies found %lld/%lld, false near-copies %lld\n",
           (long long)ngen, (long long)nref, cs_threads(), tall, call, ngen / tall, tscan,
           tall - tscan > 0 ? tall - tscan : 0, tload, tanchor, canchor, (long long)na, tanchor / tall,
           canchor / call,
           (long long)found, (long long)((ngen + 9) / 10), (long long)fp);
    free(qc);
    free(hits);
    free(nh);
    free(res);
    free(q);
    free(truth);
    free(ids);
    free(h);
    cs_an_refs_free(&r);
}

static void bench_pixels(int64_t nref, int64_t ngen) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    int64_t *ids = malloc(sizeof(int64_t) * nref);
    uint8_t *th = malloc((size_t)nref * 64 * 64 * 3);
    for (int64_t i = 0; i < nref; i++) {
        ids[i] = i + 1;
        blocky(th + i * 64 * 64 * 3);
    }
    cs_an_refs r;
    cs_err err = {0};
    double t0 = now();
    cs_an_refs_build(&r, nref, ids, th, &s, &err);
    double tload = now() - t0;
    cs_an_query *q = calloc((size_t)ngen, sizeof *q);
    for (int64_t i = 0; i < ngen; i++) {
        if (i % 10 == 0) memcpy(q[i].thumb, th + (i % nref) * 64 * 64 * 3, sizeof q[i].thumb);
        else blocky(q[i].thumb);
    }
    enum { CH = 256 };
    cs_an_result *res = malloc(sizeof(cs_an_result) * CH);
    int64_t copies = 0;
    double t1 = now(), cc1 = cpu();
    for (int64_t off = 0; off < ngen; off += CH) {
        int64_t n = ngen - off < CH ? ngen - off : CH;
        cs_an_match_batch(&r, q + off, n, &s, 0, res, &err);
        for (int64_t j = 0; j < n; j++) copies += res[j].verdict == CS_V_COPY;
    }
    double t = now() - t1, ct = cpu() - cc1;
    double flop = 2.0 * ngen * 2 * nref * 64 * 64 * 3;
    printf("pixels, %lld generations x %lld references with thumbnails: %.1f s wall (%.1f s cpu) = %.1f gen/s "
           "(exact tiled-L2 scan %.2f TFLOP by sgemm, %.1f GFLOP/s overall; prepare %.1f s); "
           "copies found %lld/%lld\n",
           (long long)ngen, (long long)nref, t, ct, ngen / t, flop / 1e12, flop / t / 1e9, tload,
           (long long)copies, (long long)((ngen + 9) / 10));
    free(res);
    free(q);
    free(ids);
    free(th);
    cs_an_refs_free(&r);
}

static void bench_embed(int64_t n, int64_t nq) {
    const int dim = 256, k = 8;
    float *db = malloc(sizeof(float) * n * dim), *q = malloc(sizeof(float) * nq * dim);
    for (int64_t i = 0; i < n * dim; i++) db[i] = (float)(rnd64() % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < nq * dim; i++) q[i] = (float)(rnd64() % 1000) / 1000.0f - 0.5f;
    float *sc = malloc(sizeof(float) * nq * k);
    int64_t *rows = malloc(sizeof(int64_t) * nq * k);
    cs_err err = {0};
    double t0 = now(), c0 = cpu();
    cs_knn_exact(db, n, dim, q, nq, k, 0, sc, rows, &err);
    double t = now() - t0, ct = cpu() - c0;
    double per = t / ((double)n * nq);
    printf("embeddings, exact top-%d by sgemm, %lld x %lld at %d-d: %.2f s wall (%.2f s cpu); "
           "extrapolated to 10,000 x 1,000,000: %.0f s wall\n",
           k, (long long)nq, (long long)n, dim, t, ct, per * 1e4 * 1e6);
    free(db);
    free(q);
    free(sc);
    free(rows);
}

int main(void) {
    const int quick = getenv("CS_BENCH_QUICK") != NULL;
    bench_cliques(500);
    bench_scale(quick ? 100000 : 1000000, quick ? 1000 : 10000);
    bench_pixels(quick ? 1000 : 10000, quick ? 200 : 2000);
    bench_embed(quick ? 10000 : 100000, 1000);
    return 0;
}
