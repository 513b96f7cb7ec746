/* bench_util.h — what several benches measure the same way: a process's
 * CPU-seconds, a /proc/self/status figure, and reproducible random unit
 * rows (the synthetic embedding columns of bench_knn_q8 and bench_ann_q8,
 * which must be the same rows in both). Header-only: each bench is one
 * file. */
#ifndef CS_BENCH_UTIL_H
#define CS_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/knn.h"

/* CPU-seconds of the whole process (every thread) */
static inline double bench_cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* a "Key:" line of /proc/self/status in KiB (VmRSS, VmHWM, ...), -1 when absent */
static inline long bench_status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

/* uniform in [-0.5, 0.5) from a 64-bit LCG state */
static inline float bench_unif(uint64_t *lcg) {
    *lcg = *lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*lcg >> 11) / 9007199254740992.0 - 0.5);
}

/* n random rows of dim, L2-normalised (cosine = inner product) */
static inline void bench_unit_rows(uint64_t *lcg, float *v, int64_t n, int dim) {
    for (int64_t i = 0; i < n * dim; i++) v[i] = bench_unif(lcg);
    cs_l2_normalize(v, n, dim);
}

#endif
