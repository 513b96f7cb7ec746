/* parallel.h — run a loop body over worker threads.
 *
 * cs_parallel_for(n_threads, n, fn, ctx) calls fn(ctx, i, thread) once for
 * each i in [0, n), spread over n_threads threads (thread in [0, n_threads)).
 * Items are handed out dynamically, in chunks, so uneven work balances.
 * n_threads <= 1 runs inline on the caller's thread (thread = 0). */
#ifndef CS_PARALLEL_H
#define CS_PARALLEL_H

#include <stdint.h>

typedef void (*cs_parallel_fn)(void *ctx, int64_t i, int thread);

void cs_parallel_for(int n_threads, int64_t n, cs_parallel_fn fn, void *ctx);

/* Threads started so far (the pool's, and those of nested loops). */
int cs_parallel_threads_started(void);

/* Thread counts from the measured speed of the work (issue 19: the default
 * -j ran slower than -j 1 on small models). A site (any number naming a
 * loop: its body's address) states each run's work in units proportional
 * to its time (multiply-adds, elements: no calibration), and its rate for
 * runs of that size is learnt from the runs (the fastest of the last
 * window: a run slowed by a busy machine does not count). A thread joins
 * only with CS_NS_PER_THREAD of work of its own, as a hand-off costs tens
 * of microseconds on an idle machine and far more on a busy one; the first
 * measured runs of a size are on one thread. So a job whose loops are all
 * below that runs on one thread and never starts one. The count changes
 * only how a loop's fixed items are shared: results do not depend on it. */
#define CS_NS_PER_THREAD 1e6

/* Sets the work a thread needs to join (ns; < 0: CS_NS_PER_THREAD). 0 runs
 * every loop of 2+ items on all cs_threads(), as does CS_THREAD_GRAIN_NS=0
 * in the environment: for tests that results do not depend on the count. */
void cs_set_thread_grain(double ns);

/* A run at a site: cs_work_begin says on how many threads (at most
 * cs_threads()) and starts timing it; cs_work_end notes its time. */
typedef struct {
    void *rate;    /* NULL: not timed */
    void *site;    /* the site's speed over all its sizes */
    int64_t start;
    int threads;
} cs_work;
cs_work cs_work_begin(uintptr_t site, double units);
void cs_work_end(const cs_work *w, double units);
/* cs_parallel_for as a run of this many units at site fn. */
void cs_parallel_for_work(double units, int64_t n, cs_parallel_fn fn, void *ctx);

/* Number of online CPU cores (>= 1): the default for -j. */
int cs_ncpu(void);

/* The thread count compute kernels use when a caller does not say (set once
 * from -j by the CLI; defaults to cs_ncpu()). */
int cs_threads(void);
void cs_set_threads(int n);

#endif
