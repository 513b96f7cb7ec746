#include "core/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* The old way, kept for the rare nested or concurrent call: threads started
 * for this loop and joined at its end. */
static void run_spawned(par_job *job, int n_threads) {
    pthread_t tid[256];
    par_arg args[256];
    int started = 0;
    for (int t = 1; t < n_threads; t++) {
        args[t] = (par_arg){job, t};
        if (pthread_create(&tid[t], NULL, par_worker, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (par_arg){job, 0};
    par_worker(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
}

/* A pool of workers started once and kept: a diffusion step issues thousands
 * of short loops, and starting threads for each (17,505 thread starts for the
 * sd-tiny suite) made the default -j slower than -j 1 (issue 19). One loop at
 * a time uses the pool (busy); a loop started meanwhile from another thread,
 * or from inside a pool loop, starts its own threads as before. Worker t runs
 * as thread t, the caller as thread 0, exactly as when spawned. */
static struct {
    pthread_mutex_t busy;   /* held by the caller whose loop the pool runs */
    pthread_mutex_t lock;   /* guards the fields below */
    pthread_cond_t go, done;
    par_job *job;
    uint64_t gen;           /* bumped for each loop */
    uint64_t spawn_gen;     /* gen before the loop that started the newest workers */
    int workers;            /* started: threads 1..workers */
    int want;               /* threads of the current loop (workers 1..want-1 take part) */
    int active;             /* of those, still running */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, 0, 0};
static _Thread_local int in_pool_worker;

static void *pool_worker(void *p) {
    int t = (int)(intptr_t)p;
    in_pool_worker = 1;
    pthread_mutex_lock(&pool.lock);
    /* not pool.gen: the loop that started this worker may have bumped it
     * already, and this worker takes part in that loop */
    uint64_t seen = pool.spawn_gen;
    for (;;) {
        while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.lock);
        seen = pool.gen;
        if (t >= pool.want) continue;
        par_arg a = {pool.job, t};
        pthread_mutex_unlock(&pool.lock);
        par_worker(&a);
        pthread_mutex_lock(&pool.lock);
        if (--pool.active == 0) pthread_cond_signal(&pool.done);
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
    if (in_pool_worker || pthread_mutex_trylock(&pool.busy)) {
        run_spawned(&job, n_threads);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.spawn_gen = pool.gen;
    while (pool.workers < n_threads - 1) {
        pthread_t tid;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int bad = pthread_create(&tid, &at, pool_worker, (void *)(intptr_t)(pool.workers + 1));
        pthread_attr_destroy(&at);
        if (bad) break;
        pool.workers++;
    }
    if (n_threads > pool.workers + 1) n_threads = pool.workers + 1; /* the chunks still cover every item */
    pool.job = &job;
    pool.want = n_threads;
    pool.active = n_threads - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.lock);
    par_arg self = {&job, 0};
    par_worker(&self);
    pthread_mutex_lock(&pool.lock);
    while (pool.active > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.job = NULL;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}

/* Counted once: glibc's sysconf(_SC_NPROCESSORS_ONLN) reads a sysfs file on
 * every call, and cs_threads() is asked for each parallel loop (120k times
 * for the sd-tiny suite: 0.7 s of system time, why the default -j ran slower
 * than -j 1, issue 19). The cores this process may run on (affinity, as
 * nproc counts them) when fewer than those online. */
static int g_ncpu;
static pthread_once_t g_ncpu_once = PTHREAD_ONCE_INIT;

static void count_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int a = CPU_COUNT(&set);
        if (a >= 1 && (n < 1 || a < n)) n = a;
    }
    g_ncpu = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

int cs_ncpu(void) {
    pthread_once(&g_ncpu_once, count_cpus);
    return g_ncpu;
}

static int g_threads;

int cs_threads(void) { return g_threads > 0 ? g_threads : cs_ncpu(); }

void cs_set_threads(int n) { g_threads = n; }
