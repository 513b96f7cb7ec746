/* bench_ann_q8 — memory and speed of the ANN search (index/ann.c) over a
 * q8 column: the column decoded to float32 on open (the old path) against
 * kept at 8 bits (cs_vecstore_open_store_raw; candidates re-scored from
 * rows decoded one at a time).
 *
 *   bench_ann_q8 DIR NQ build|build-decoded|decoded|raw [THREADS]
 *
 * DIR/b.db is bench_knn_q8's store (its q8 "sscd" column). build writes
 * the index (IVF256,Flat, from the raw column), build-decoded the same from
 * the decoded column (the old path) to DB.ann-decoded (the same bytes, and
 * the VmHWM of both builds); decoded and raw open the
 * column that way and the index, search NQ queries (k = 10) and print the
 * CPU-seconds, the resident growth per reference (the column and FAISS's
 * index together), VmHWM and a hash of the results (the two modes print the
 * same). Run each mode in its own process. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/err.h"
#include "core/store.h"
#include "index/ann.h"
#include "index/knn.h"
#include "index/vecstore.h"

#include "bench/bench_util.h"

static uint64_t lcg = 12345; /* the rows' and queries' generator (bench_util.h) */

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_ann_q8 DIR NQ build|decoded|raw [THREADS]\n");
        return 2;
    }
    const char *dir = argv[1];
    int nq = atoi(argv[2]), raw = !strcmp(argv[3], "raw");
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/b.db", dir);
    cs_err e = {0};
    cs_store *s;
    if (cs_store_open(&s, path, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    if (!strncmp(argv[3], "build", 5)) { /* build: from the raw column; build-decoded: the old path, to DB.ann-decoded */
        cs_ann_opts o = {.factory = "IVF256,Flat", .threads = threads, .rebuild = 1};
        cs_ann_stats st;
        double c0 = bench_cpu_s();
        cs_vecstore dec;
        char *dp = cs_store_sidecar(s, "ann-decoded");
        if (!strcmp(argv[3], "build-decoded")
                ? cs_vecstore_open_store(&dec, s, "sscd", 0, 0, &e) || cs_ann_build_vs(dp, "sscd", &dec, &o, &st, &e)
                : cs_ann_build(s, "sscd", &o, &st, &e))
            return fprintf(stderr, "%s\n", e.msg), 1;
        free(dp);
        printf("built %s: %lld rows, %.1f CPU-s, VmHWM %ld KiB\n", st.factory, (long long)st.rows, bench_cpu_s() - c0,
               bench_status_kib("VmHWM"));
        cs_store_close(s);
        return 0;
    }
    long rss0 = bench_status_kib("VmRSS");
    double o0 = bench_cpu_s();
    cs_vecstore vs;
    int rc = raw ? cs_vecstore_open_store_raw(&vs, s, "sscd", 0, &e) : cs_vecstore_open_store(&vs, s, "sscd", 0, 0, &e);
    if (rc) return fprintf(stderr, "%s\n", e.msg), 1;
    char *ap = cs_ann_path(s, "sscd");
    cs_ann *a = NULL;
    if (cs_ann_open(&a, ap, "sscd", &vs, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    int dim = vs.dim;
    float *q = malloc((size_t)nq * dim * sizeof *q), *sc = malloc((size_t)nq * 10 * sizeof *sc);
    int64_t *rows = malloc((size_t)nq * 10 * sizeof *rows);
    bench_unit_rows(&lcg, q, nq, dim);
    double c0 = bench_cpu_s(), open_s = c0 - o0;
    cs_ann_search_opts so = {.threads = threads};
    rc = cs_ann_search(a, &vs, q, nq, 10, &so, sc, rows, &e);
    double c1 = bench_cpu_s();
    long rss1 = bench_status_kib("VmRSS"), hwm = bench_status_kib("VmHWM");
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < (int64_t)nq * 10; i++) {
        uint32_t b;
        memcpy(&b, &sc[i], 4);
        h = (h ^ b ^ (uint64_t)rows[i]) * 1099511628211ULL;
    }
    printf("%s: n %lld dim %d nq %d threads %d: open %.3f + search %.3f CPU-s, RSS %ld -> %ld KiB (+%.0f B a "
           "reference), VmHWM %ld KiB, results %016llx\n",
           raw ? "raw q8" : "decoded", (long long)vs.n, dim, nq, threads, open_s, c1 - c0, rss0, rss1,
           (rss1 - rss0) * 1024.0 / vs.n, hwm, (unsigned long long)h);
    cs_ann_close(a);
    free(ap);
    cs_vecstore_close(&vs);
    cs_store_close(s);
    free(q), free(sc), free(rows);
    return rc;
}
