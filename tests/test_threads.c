/* test_threads.c — the default thread count (issue 19: the default -j ran
 * slower than -j 1 on small work). cs_ncpu() counts the cores this process
 * may run on (its affinity, as nproc does), and is cheap enough to ask for
 * each of the 100k parallel loops of a small model: before, every call read a
 * sysfs file (0.7 s of system time over the sd-tiny suite). */
#include <sched.h>
#include <time.h>

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

int main(void) {
    RUN(test_ncpu_follows_affinity);
    RUN(test_threads_query_is_cheap);
    return T_DONE();
}
