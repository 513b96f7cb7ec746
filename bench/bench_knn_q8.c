/* bench_knn_q8 — memory and speed of the exact embedding search over a q8
 * column: decoded to float32 on open (the old path) against kept at 8 bits
 * (cs_vecstore_open_store_raw + cs_knn_exact_q8).
 *
 *   bench_knn_q8 DIR N DIM NQ decoded|raw [THREADS]
 *
 * Builds DIR/b.db with a q8 "sscd"-style column of N random unit rows of
 * DIM (once: kept for the next call), opens it the chosen way, searches NQ
 * queries (k = 10) and prints the process's resident memory (VmRSS after
 * the search, VmHWM) per reference and the search's CPU-seconds. Run each
 * mode in its own process: the figures are per process. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/err.h"
#include "core/store.h"
#include "index/knn.h"
#include "index/vecstore.h"

#include "bench/bench_util.h"

static uint64_t lcg = 12345; /* the rows' and queries' generator (bench_util.h) */

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_knn_q8 DIR N DIM NQ decoded|raw [THREADS]\n");
        return 2;
    }
    const char *dir = argv[1];
    int64_t n = atoll(argv[2]);
    int dim = atoi(argv[3]), nq = atoi(argv[4]), raw = !strcmp(argv[5], "raw");
    int threads = argc > 6 ? atoi(argv[6]) : 1;
    char path[4200], col[4300];
    snprintf(path, sizeof path, "%s/b.db", dir);
    snprintf(col, sizeof col, "%s/b.db.vec-sscd", dir);
    cs_err e = {0};
    cs_store *s;
    if (cs_store_open(&s, path, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    struct stat sb;
    if (stat(col, &sb) != 0) { /* build the column in 64k-row appends */
        if (cs_store_meta_set(s, "vec_dtype", "q8", &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        cs_vecstore w;
        if (cs_vecstore_open_store(&w, s, "sscd", dim, 1, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        enum { B = 65536 };
        float *v = malloc((size_t)B * dim * sizeof *v);
        int64_t *ids = malloc(B * sizeof *ids);
        for (int64_t r = 0; r < n; r += B) {
            int64_t m = n - r < B ? n - r : B;
            bench_unit_rows(&lcg, v, m, dim);
            for (int64_t i = 0; i < m; i++) ids[i] = r + i + 1;
            if (cs_vecstore_append(&w, ids, v, m, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        }
        free(v), free(ids);
        cs_vecstore_close(&w);
        cs_store_close(s);
        printf("built %s: %lld rows of %d (q8)\n", col, (long long)n, dim);
        return 0;
    }
    long rss0 = bench_status_kib("VmRSS");
    double o0 = bench_cpu_s();
    cs_vecstore vs;
    int rc = raw ? cs_vecstore_open_store_raw(&vs, s, "sscd", dim, &e) : cs_vecstore_open_store(&vs, s, "sscd", dim, 0, &e);
    if (rc) return fprintf(stderr, "%s\n", e.msg), 1;
    float *q = malloc((size_t)nq * dim * sizeof *q), *sc = malloc((size_t)nq * 10 * sizeof *sc);
    int64_t *rows = malloc((size_t)nq * 10 * sizeof *rows);
    bench_unit_rows(&lcg, q, nq, dim);
    double c0 = bench_cpu_s(), open_s = c0 - o0;
    rc = vs.q8 ? cs_knn_exact_q8(vs.q8, vs.n, dim, q, nq, 10, threads, sc, rows, &e)
               : cs_knn_exact(vs.vecs, vs.n, dim, q, nq, 10, threads, sc, rows, &e);
    double c1 = bench_cpu_s();
    long rss1 = bench_status_kib("VmRSS"), hwm = bench_status_kib("VmHWM");
    uint64_t h = 1469598103934665603ULL; /* FNV of the results: the two modes print the same */
    for (int64_t i = 0; i < (int64_t)nq * 10; i++) {
        uint32_t b;
        memcpy(&b, &sc[i], 4);
        h = (h ^ b ^ (uint64_t)rows[i]) * 1099511628211ULL;
    }
    printf("%s: n %lld dim %d nq %d threads %d: open %.3f + search %.3f CPU-s (%.1f us per query per 1k refs), "
           "RSS %ld -> %ld KiB (+%.0f B a reference), VmHWM %ld KiB, results %016llx\n",
           raw ? "raw q8" : "decoded", (long long)vs.n, dim, nq, threads, open_s, c1 - c0,
           (c1 - c0) * 1e6 / nq / (vs.n / 1000.0), rss0, rss1, (rss1 - rss0) * 1024.0 / vs.n, hwm,
           (unsigned long long)h);
    cs_vecstore_close(&vs);
    cs_store_close(s);
    free(q), free(sc), free(rows);
    return rc;
}
