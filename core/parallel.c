#include "core/parallel.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    cs_parallel_fn fn;
    void *ctx;
    int64_t n, chunk;
    atomic_llong next;
    atomic_llong busy_ns; /* time the threads spent in fn, summed */
} par_job;

typedef struct {
    par_job *job;
    int thread;
} par_arg;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Time spent in loop bodies by the multi-threaded loops this thread
 * started, summed over their threads (cs_work_end). */
static _Thread_local int64_t g_busy_ns;
static atomic_int g_started; /* threads ever started, pool and spawned */

static void *par_worker(void *p) {
    par_arg *a = p;
    par_job *j = a->job;
    int64_t t0 = 0;
    for (;;) {
        int64_t start = atomic_fetch_add(&j->next, j->chunk);
        if (start >= j->n) break;
        if (!t0) t0 = now_ns(); /* from its first item: a wait to be woken is not work */
        int64_t end = start + j->chunk < j->n ? start + j->chunk : j->n;
        for (int64_t i = start; i < end; i++) j->fn(j->ctx, i, a->thread);
    }
    if (t0) atomic_fetch_add(&j->busy_ns, now_ns() - t0);
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
        atomic_fetch_add(&g_started, 1);
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

int cs_parallel_threads_started(void) { return atomic_load(&g_started); }

/* The pool's run of one loop: starts the workers it lacks, hands the loop
 * out, works as thread 0, waits for the others. */
static void run_pooled(par_job *job, int n_threads);

void cs_parallel_for(int n_threads, int64_t n, cs_parallel_fn fn, void *ctx) {
    if (n <= 0) return;
    if (n_threads > n) n_threads = (int)n;
    if (n_threads <= 1) { /* no thread, no pool: a small job never starts one */
        for (int64_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    /* this loop's time replaces what loops nested in it added on this
     * thread: it includes theirs */
    int64_t b0 = g_busy_ns;
    if (n_threads > 256) n_threads = 256;
    par_job job = {.fn = fn, .ctx = ctx, .n = n};
    /* ~4 chunks per thread keeps balance without contention on the counter */
    job.chunk = n / ((int64_t)n_threads * 4);
    if (job.chunk < 1) job.chunk = 1;
    atomic_init(&job.next, 0);
    atomic_init(&job.busy_ns, 0);
    if (in_pool_worker || pthread_mutex_trylock(&pool.busy))
        run_spawned(&job, n_threads);
    else
        run_pooled(&job, n_threads);
    g_busy_ns = b0 + atomic_load(&job.busy_ns);
}

static void run_pooled(par_job *job, int n_threads) {
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
        atomic_fetch_add(&g_started, 1);
        pool.workers++;
    }
    if (n_threads > pool.workers + 1) n_threads = pool.workers + 1; /* the chunks still cover every item */
    pool.job = job;
    pool.want = n_threads;
    pool.active = n_threads - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.lock);
    par_arg self = {job, 0};
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

/* ---- thread counts from the measured speed of the work ---------------------- */

/* A window of runs long enough that one of them ran undisturbed on a busy
 * machine, short enough to follow work that changes speed. */
#define RATE_WINDOW 64
/* Measured runs before a rate is used: a size's first runs touch fresh
 * memory (page faults: 200x the time of later runs) or start a library
 * (oneDNN's first call: 0.3 s). */
#define RATE_WARMUP 8

/* The speed of one site's runs of one size (units within a factor of 2):
 * the speed per unit varies with the size (a 77x32x32 gemm ran 10x slower
 * per multiply-add than a 32x1024x288 one) but little within a factor of 2.
 * Found by a hash of (site, size) in a fixed table filled without a lock
 * (sites are functions of the program: a few dozen, times ~30 sizes; the
 * rest share one). Races between threads noting runs of one rate
 * can lose a run; the estimate only needs some of them. */
#define RATE_SLOTS 2048
typedef struct {
    _Atomic uintptr_t key;
    _Atomic double best, prev; /* ns per unit: the best of this window of runs, of the last one */
    atomic_int runs;           /* measured runs */
} work_rate;
static work_rate g_rates[RATE_SLOTS], g_rate_rest;

static work_rate *rate_slot(uintptr_t key) {
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ull;
    for (int probe = 0; probe < 64; probe++) {
        work_rate *r = &g_rates[((h >> 40) + (uint64_t)probe) & (RATE_SLOTS - 1)];
        uintptr_t k = atomic_load_explicit(&r->key, memory_order_acquire);
        if (k == key) return r;
        if (k == 0) {
            uintptr_t empty = 0;
            if (atomic_compare_exchange_strong(&r->key, &empty, key) || empty == key) return r;
        }
    }
    return &g_rate_rest;
}

static work_rate *rate_of(uintptr_t site, double units) {
    int e;
    frexp(units, &e);
    e = e < 0 ? 0 : e > 62 ? 62 : e;
    return rate_slot((site << 6 | (uintptr_t)e) + 1); /* never 0: 0 marks a free slot */
}

/* The site's fastest speed over all its sizes, from runs that were not the
 * first of their size (a first run pays the page faults): what a size still
 * in its warm-up is judged by. Optimistic for small sizes (they run slower
 * per unit), so small work stays on one thread; a large run (a 512x512 VAE
 * convolution, seconds) is far above the grain even so, and is not run on
 * one thread through its size's warm-up (issue 18's VAE ran 2x slower). */
static work_rate *site_rate(uintptr_t site) { return rate_slot((site << 6 | 63) + 1); }

/* The work a thread needs to join (ns): CS_NS_PER_THREAD, or the
 * environment's CS_THREAD_GRAIN_NS (0: every loop on all threads, for tests
 * that results do not depend on the count), or cs_set_thread_grain's. */
static double g_grain = -1;
static pthread_once_t g_grain_once = PTHREAD_ONCE_INIT;

static void read_grain(void) {
    const char *e = getenv("CS_THREAD_GRAIN_NS");
    char *end;
    double g = e && *e ? strtod(e, &end) : -1;
    if (g_grain < 0) g_grain = g >= 0 && e && *end == 0 ? g : CS_NS_PER_THREAD;
}

void cs_set_thread_grain(double ns) {
    pthread_once(&g_grain_once, read_grain);
    g_grain = ns >= 0 ? ns : CS_NS_PER_THREAD;
}

static int threads_at(work_rate *r, work_rate *site, double units, int nt) {
    pthread_once(&g_grain_once, read_grain);
    if (g_grain <= 0) return nt;
    double rate;
    if (atomic_load_explicit(&r->runs, memory_order_relaxed) < RATE_WARMUP) {
        rate = atomic_load_explicit(&site->best, memory_order_relaxed);
        if (rate <= 0) return 1; /* nothing known of the site yet */
    } else {
        double a = atomic_load_explicit(&r->best, memory_order_relaxed);
        double b = atomic_load_explicit(&r->prev, memory_order_relaxed);
        rate = a > 0 && (b <= 0 || a < b) ? a : b;
    }
    double cap = rate * units / g_grain;
    return cap < 2 ? 1 : cap < nt ? (int)cap : nt;
}

static void note_at(work_rate *r, work_rate *site, double units, int64_t ns) {
    double x = (double)(ns > 0 ? ns : 1) / units;
    double a = atomic_load_explicit(&r->best, memory_order_relaxed);
    if (a <= 0 || x < a) atomic_store_explicit(&r->best, x, memory_order_relaxed);
    int runs = atomic_fetch_add_explicit(&r->runs, 1, memory_order_relaxed);
    double sb = atomic_load_explicit(&site->best, memory_order_relaxed);
    if (runs > 0 && (sb <= 0 || x < sb)) atomic_store_explicit(&site->best, x, memory_order_relaxed);
    if (runs % RATE_WINDOW == RATE_WINDOW - 1) {
        atomic_store_explicit(&r->prev, atomic_load_explicit(&r->best, memory_order_relaxed), memory_order_relaxed);
        atomic_store_explicit(&r->best, 0, memory_order_relaxed);
    }
}

/* At -j 1 nothing is looked up, timed or noted. Past its warm-up a rate
 * times one run in 8 (two clock reads cost more than a small loop). */
cs_work cs_work_begin(uintptr_t site, double units) {
    static _Thread_local unsigned tick;
    int nt = cs_threads();
    if (nt <= 1 || units <= 0) return (cs_work){NULL, NULL, 0, 1};
    work_rate *r = rate_of(site, units), *sr = site_rate(site);
    cs_work w = {NULL, sr, 0, threads_at(r, sr, units, nt)};
    if (atomic_load_explicit(&r->runs, memory_order_relaxed) < RATE_WARMUP || (++tick & 7) == 0) {
        w.rate = r;
        /* on one thread its time; on more the time they spent in the loop
         * bodies: a wait for a core or a hand-off is not the work's */
        w.start = w.threads == 1 ? now_ns() : g_busy_ns;
    }
    return w;
}

void cs_work_end(const cs_work *w, double units) {
    if (!w->rate) return;
    int64_t ns = (w->threads == 1 ? now_ns() : g_busy_ns) - w->start;
    /* threads given to a loop of one item ran it inline, untimed */
    if (w->threads > 1 && ns <= 0) return;
    note_at(w->rate, w->site, units, ns);
}

void cs_parallel_for_work(double units, int64_t n, cs_parallel_fn fn, void *ctx) {
    cs_work w = cs_work_begin((uintptr_t)fn, units);
    cs_parallel_for(w.threads, n, fn, ctx);
    cs_work_end(&w, units);
}
