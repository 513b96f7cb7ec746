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

/* Number of online CPU cores (>= 1): the default for -j. */
int cs_ncpu(void);

/* The thread count compute kernels use when a caller does not say (set once
 * from -j by the CLI; defaults to cs_ncpu()). */
int cs_threads(void);
void cs_set_threads(int n);

#endif
