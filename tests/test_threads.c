/* test_threads.c — the default thread count (issue 19: the default -j ran
 * slower than -j 1 on small work). cs_ncpu() counts the cores this process
 * may run on (its affinity, as nproc does), and is cheap enough to ask for
 * each of the 100k parallel loops of a small model: before, every call read a
 * sysfs file (0.7 s of system time over the sd-tiny suite). Small work runs
 * on one thread and starts none, at no more CPU time than at -j 1; big work
 * gets the threads. CPU time, not wall time: the machine may be shared. */
#include <sched.h>
#include <sys/resource.h>
#include <time.h>

#include "core/nn.h"
#include "core/parallel.h"
#include "t.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Run first: pinned to one core before anything counts them. */
static void test_ncpu_follows_affinity(void) {
    cpu_set_t all, one;
    REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &all)) first = c;
    REQUIRE(first >= 0);
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    CHECKF(cs_ncpu() == 1, "cs_ncpu() = %d with the process pinned to one core", cs_ncpu());
    CHECK(cs_threads() == 1);
    sched_setaffinity(0, sizeof all, &all);
}

static void test_threads_query_is_cheap(void) {
    double t0 = now_s();
    long sum = 0;
    for (int i = 0; i < 200000; i++) sum += cs_threads();
    double dt = now_s() - t0;
    CHECK(sum == 200000L * cs_threads());
    /* a cached count: well under a microsecond each; a sysfs read is several */
    CHECKF(dt < 0.1, "200k calls took %.3f s", dt);
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

/* The loops of a small model, sd-tiny's shapes: 32x512x576 gemms (9.4 M
 * multiply-adds, a fraction of a millisecond: the old fixed cost model sent
 * them to 2 threads), 64x128x64 ones, SiLU and softmax over a few thousand
 * values. */
static void small_work(float *a, float *b, float *c, float *x) {
    for (int it = 0; it < 1500; it++) {
        nn_sgemm(0, 0, 32, 512, 576, 1.f, a, 576, b, 512, 0.f, c, 512);
        nn_sgemm(0, 0, 64, 128, 64, 1.f, a, 64, b, 128, 0.f, c, 128);
        nn_silu(x, 8192);
        nn_softmax(x, 64, 64);
    }
}

/* Run first among the loops: no thread has been started before. */
static void test_small_work_stays_on_one_thread(void) {
    float *a = calloc(32 * 576, 4), *b = calloc(576 * 512, 4), *c = calloc(32 * 512, 4), *x = calloc(8192, 4);
    REQUIRE(a && b && c && x);
    for (int i = 0; i < 32 * 576; i++) a[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < 576 * 512; i++) b[i] = (float)(i % 5) * 0.1f;
    REQUIRE(cs_parallel_threads_started() == 0);
    /* best of 3, alternating: a busy machine slows single runs, not the best */
    double best[2] = {1e9, 1e9};
    for (int rep = 0; rep < 3; rep++)
        for (int k = 0; k < 2; k++) {
            cs_set_threads(k ? 8 : 1); /* k = 1: a default -j on 8 cores */
            double t0 = cpu_s();
            small_work(a, b, c, x);
            double d = cpu_s() - t0;
            if (d < best[k]) best[k] = d;
        }
    cs_set_threads(0);
    CHECKF(cs_parallel_threads_started() == 0, "%d threads started for small work", cs_parallel_threads_started());
    CHECKF(best[1] <= 1.1 * best[0], "small work: %.3f s of CPU at 8 threads, %.3f s at 1", best[1], best[0]);
    printf("small work: %.3f s of CPU at -j 8, %.3f s at -j 1 (best of 3)\n", best[1], best[0]);
    free(a), free(b), free(c), free(x);
}

/* A gemm of 0.5 G multiply-adds (several ms on any core) does get threads,
 * once its size has been measured, and gives the same bytes. */
static void test_big_work_gets_threads(void) {
    int M = 1024, N = 1024, K = 512;
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)K * N * 4), *c1 = malloc((size_t)M * N * 4),
          *c2 = malloc((size_t)M * N * 4);
    REQUIRE(a && b && c1 && c2);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 0.01f - 0.05f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 11) * 0.01f - 0.05f;
    cs_set_threads(1);
    nn_sgemm(0, 0, M, N, K, 1.f, a, K, b, N, 0.f, c1, N);
    cs_set_threads(2);
    int before = cs_parallel_threads_started();
    for (int i = 0; i < 12; i++) nn_sgemm(0, 0, M, N, K, 1.f, a, K, b, N, 0.f, c2, N);
    CHECKF(cs_parallel_threads_started() > before, "no thread started for 12 gemms of %dx%dx%d", M, N, K);
    CHECK(!memcmp(c1, c2, (size_t)M * N * 4));
    cs_set_threads(0);
    free(a), free(b), free(c1), free(c2);
}

/* A grain of 0 (CS_THREAD_GRAIN_NS=0, for the tests that results do not
 * depend on the count) puts every loop on all threads: those tests run
 * threaded whatever the size. */
static int g_seen[4];
static void mark(void *ctx, int64_t i, int thread) {
    (void)ctx, (void)i;
    g_seen[thread & 3] = 1;
}
static void test_grain_zero_forces_threads(void) {
    cs_set_threads(2);
    cs_set_thread_grain(0);
    for (int i = 0; i < 200 && !g_seen[1]; i++) cs_parallel_for_work(1.0, 64, mark, NULL);
    CHECK(g_seen[0] || g_seen[1]);
    CHECK(cs_parallel_threads_started() >= 1);
    cs_set_thread_grain(-1);
    cs_set_threads(0);
}

int main(void) {
    RUN(test_ncpu_follows_affinity);
    RUN(test_threads_query_is_cheap);
    RUN(test_small_work_stays_on_one_thread);
    RUN(test_big_work_gets_threads);
    RUN(test_grain_zero_forces_threads);
    return T_DONE();
}
