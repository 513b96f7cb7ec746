#include "core/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct {
    cs_parallel_fn fn;
    void *ctx;
    int64_t n, chunk;
    atomic_llong next;
} par_job;

typedef struct {
    par_job *job;
    int thread;
} par_arg;

static void *par_worker(void *p) {
    par_arg *a = p;
    par_job *j = a->job;
    for (;;) {
        int64_t start = atomic_fetch_add(&j->next, j->chunk);
        if (start >= j->n) break;
        int64_t end = start + j->chunk < j->n ? start + j->chunk : j->n;
        for (int64_t i = start; i < end; i++) j->fn(j->ctx, i, a->thread);
    }
    return NULL;
}

void cs_parallel_for(int n_threads, int64_t n, cs_parallel_fn fn, void *ctx) {
    if (n <= 0) return;
    if (n_threads > n) n_threads = (int)n;
    if (n_threads <= 1) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    if (n_threads > 256) n_threads = 256;
    par_job job = {.fn = fn, .ctx = ctx, .n = n};
    /* ~4 chunks per thread keeps balance without contention on the counter */
    job.chunk = n / ((int64_t)n_threads * 4);
    if (job.chunk < 1) job.chunk = 1;
    atomic_init(&job.next, 0);
    pthread_t tid[256];
    par_arg args[256];
    int started = 0;
    for (int t = 1; t < n_threads; t++) {
        args[t] = (par_arg){&job, t};
        if (pthread_create(&tid[t], NULL, par_worker, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (par_arg){&job, 0};
    par_worker(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
}

int cs_ncpu(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static int g_threads;

int cs_threads(void) { return g_threads > 0 ? g_threads : cs_ncpu(); }

void cs_set_threads(int n) { g_threads = n; }
