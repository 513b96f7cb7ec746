/* conv_onednn.c — see gemm.h: convolutions as oneDNN convolution primitives
 * (brgconv, its AVX-512 kernel) instead of im2col + sgemm. The im2col copy
 * (kh*kw times the input), the bias fill and the page faults of fresh
 * buffers cost about a third of the UNet's time (perf, docs/BENCHMARKS.md).
 *
 * Layout: our tensors stay NCHW. Per call, each image is reordered once to
 * NHWC (in the precision of the product: f32 or bf16); the work is cut by
 * the shape alone into tasks (image, block of CHUNK output channels), each
 * one single-threaded primitive on one of our threads: it reorders its
 * block of the weights (contiguous in OIHW) to the primitive's layout, runs
 * the convolution with the bias into an NHWC block, and reorders that block
 * into the NCHW output. Every output element is summed by one kernel in an
 * order fixed by the shape: the bits do not depend on the thread count.
 *
 * Buffers are one process-wide block grown as needed and kept until the
 * last kept weights are forgotten (a fresh buffer per call page-faults on
 * every first touch), under a mutex.
 * Primitives are created once per shape (their JIT takes milliseconds) with
 * one OpenMP thread and kept for the process. */
#include "core/gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

/* weight ranges declared unchanged (cs_conv_weights_keep), under g_lock */
typedef struct {
    const void *owner;
    const char *lo, *hi;
} kept_range;
static kept_range *g_kept;
static int g_nkept, g_capkept;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* the tables; one convolution at a time */
static void wcache_drop(const void *owner);
static void up2_drop(const void *owner);
static void buf_drop(void);

/* under g_lock: 0, or -1 out of memory */
static int keep_range(const void *owner, const float *w, size_t n) {
    if (g_nkept == g_capkept) {
        int nc = g_capkept ? 2 * g_capkept : 256;
        kept_range *k = realloc(g_kept, sizeof *k * nc);
        if (!k) return -1;
        g_kept = k, g_capkept = nc;
    }
    g_kept[g_nkept++] = (kept_range){owner, (const char *)w, (const char *)(w + n)};
    return 0;
}

/* the owner of the kept range holding [w, w + bytes), or NULL */
static inline const void *kept_owner(const void *w, size_t bytes) {
    const char *p = w;
    for (int i = g_nkept - 1; i >= 0; i--)
        if (p >= g_kept[i].lo && p + bytes <= g_kept[i].hi) return g_kept[i].owner;
    return NULL;
}

#ifdef CS_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"

#define CHUNK_MAX 64 /* output channels per task */
#define CACHE_MAX 1024 /* plans (shapes x precision x batch); past it, convs fall back to im2col */
/* outputs per image below this: one task takes the whole batch (as nn.c's
 * NN_DIRECT_MIN_OHW: the images that only go here with kept weights) */
#define SMALL_OHW 1024
/* The workspace is kept between calls whatever its size (the UNet's 64x64
 * level at batch 2 needs ~25 MB, a 512x512 VAE decode's convolutions ~400
 * MB) until the last kept weights are forgotten: allocated per call, the
 * VAE's were page-faulted in on every convolution (a fifth of its CPU time
 * in the kernel, perf). Big ones ask for transparent huge pages (THP is
 * "madvise" here): 512x fewer faults on first touch. */
#define HUGE_MIN ((size_t)2 << 20)

typedef struct {
    int cin, cout, chunk, mb, h, w, kh, kw, stride, pt, pl, pb, pr, has_bias, bf16, up;
} conv_key; /* mb: images per task (1, or the whole batch for small images); up: the output is one
             * phase of a 2x finer image (every other row and column of [B, cout, 2oh, 2ow]) */

typedef struct {
    conv_key k;
    dnnl_primitive_t conv, wre, sre, dre; /* conv; weights, src, dst reorders */
    dnnl_memory_desc_t src, src1, wsrc, wdst, dst, dst_nchw, src_nchw, bias; /* src1: one image */
    size_t wbytes, scratch; /* reordered weight block, conv scratchpad (bytes) */
    int oh, ow;
} conv_plan;

static dnnl_engine_t g_eng;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;
static conv_plan *g_plans[CACHE_MAX];
static int g_nplans;
static char *g_buf; /* the kept workspace */
static size_t g_cap;

static void init_engine(void) { g_ok = dnnl_engine_create(&g_eng, dnnl_cpu, 0) == dnnl_success; }

/* n bytes, 64-aligned; from HUGE_MIN on, 2 MB aligned with a THP hint */
static char *buf_alloc(size_t n) {
    if (n < HUGE_MIN) return aligned_alloc(64, (n + 63) & ~(size_t)63);
    n = (n + HUGE_MIN - 1) & ~(HUGE_MIN - 1);
    char *p = aligned_alloc(HUGE_MIN, n);
    if (p) madvise(p, n, MADV_HUGEPAGE); /* a hint: its failure changes nothing */
    return p;
}

static void buf_drop(void) {
    free(g_buf);
    g_buf = NULL, g_cap = 0;
}

/* oneDNN threads with OpenMP; ours take the tasks: one OpenMP thread each
 * while a primitive is made (its blocking is planned for that many threads)
 * or run. The setting is per thread and the caller's thread runs tasks too:
 * its own setting is given back after (FAISS on that thread keeps its
 * OpenMP threads). */
static int one_omp_thread(void) {
    int had = omp_get_max_threads();
    if (had != 1) omp_set_num_threads(1);
    return had;
}
static void omp_restore(int had) {
    if (had != 1) omp_set_num_threads(had);
}

static int reorder_create(dnnl_primitive_t *p, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
    dnnl_primitive_desc_t pd;
    if (dnnl_reorder_primitive_desc_create(&pd, from, g_eng, to, g_eng, NULL) != dnnl_success) return -1;
    int rc = dnnl_primitive_create(p, pd) == dnnl_success ? 0 : -1;
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static conv_plan *plan_create(const conv_key *k) {
    conv_plan *P = calloc(1, sizeof *P);
    if (!P) return NULL;
    P->k = *k;
    P->oh = (k->h + k->pt + k->pb - k->kh) / k->stride + 1;
    P->ow = (k->w + k->pl + k->pr - k->kw) / k->stride + 1;
    dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t sd = {k->mb, k->cin, k->h, k->w}, sd1 = {1, k->cin, k->h, k->w},
                wd = {k->chunk, k->cin, k->kh, k->kw}, bd = {k->chunk}, dd = {k->mb, k->chunk, P->oh, P->ow};
    /* the NCHW output block: a slice of chunk channels of [B, cout, oh, ow] */
    int f = k->up ? 2 : 1;
    dnnl_dims_t ds = {(dnnl_dim_t)k->cout * P->oh * P->ow * f * f, (dnnl_dim_t)P->oh * P->ow * f * f,
                      (dnnl_dim_t)P->ow * f * f, f};
    dnnl_memory_desc_t wany;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t strides = {k->stride, k->stride}, pl = {k->pt, k->pl}, pr = {k->pb, k->pr};
    int ok = dnnl_memory_desc_init_by_tag(&P->src, 4, sd, dt, dnnl_nhwc) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&P->src1, 4, sd1, dt, dnnl_nhwc) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&P->src_nchw, 4, sd1, dnnl_f32, dnnl_nchw) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&P->wsrc, 4, wd, dnnl_f32, dnnl_oihw) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&wany, 4, wd, dt, dnnl_format_tag_any) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&P->bias, 1, bd, dnnl_f32, dnnl_x) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&P->dst, 4, dd, dnnl_f32, dnnl_nhwc) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&P->dst_nchw, 4, dd, dnnl_f32, ds) == dnnl_success &&
             dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &P->src, &wany,
                                                k->has_bias ? &P->bias : NULL, &P->dst, strides, pl,
                                                pr) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &cd, attr, g_eng, NULL) == dnnl_success;
    if (ok) {
        /* only the brgemm kernel: a gemm: or reference fallback would be slower than ours */
        const char *impl = NULL;
        ok = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
             strncmp(impl, "brgconv", 7) == 0;
    }
    if (ok) {
        P->wdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        P->wbytes = dnnl_memory_desc_get_size(&P->wdst);
        P->scratch = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
        ok = dnnl_primitive_create(&P->conv, pd) == dnnl_success && !reorder_create(&P->wre, &P->wsrc, &P->wdst) &&
             !reorder_create(&P->sre, &P->src_nchw, &P->src1) && !reorder_create(&P->dre, &P->dst, &P->dst_nchw);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        if (P->conv) dnnl_primitive_destroy(P->conv);
        if (P->wre) dnnl_primitive_destroy(P->wre);
        if (P->sre) dnnl_primitive_destroy(P->sre);
        if (P->dre) dnnl_primitive_destroy(P->dre);
        free(P);
        return NULL;
    }
    return P;
}

/* the plan for k (created on first use, kept); NULL when oneDNN cannot */
static conv_plan *plan_get(const conv_key *k) {
    for (int i = 0; i < g_nplans; i++)
        if (!memcmp(&g_plans[i]->k, k, sizeof *k)) return g_plans[i];
    if (g_nplans == CACHE_MAX) return NULL;
    int had = one_omp_thread();
    conv_plan *P = plan_create(k);
    omp_restore(had);
    if (P) g_plans[g_nplans++] = P;
    return P;
}

static int run_prim(dnnl_primitive_t p, int n, const int *arg, const dnnl_memory_desc_t *const *md, void *const *ptr) {
    dnnl_stream_t s;
    dnnl_memory_t m[5] = {0};
    dnnl_exec_arg_t a[5];
    int ok = dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) == dnnl_success;
    if (!ok) return -1;
    for (int i = 0; i < n && ok; i++) {
        ok = dnnl_memory_create(&m[i], md[i], g_eng, ptr[i]) == dnnl_success;
        a[i].arg = arg[i], a[i].memory = m[i];
    }
    if (ok) ok = dnnl_primitive_execute(p, s, n, a) == dnnl_success && dnnl_stream_wait(s) == dnnl_success;
    for (int i = 0; i < n; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    dnnl_stream_destroy(s);
    return ok ? 0 : -1;
}

static int reorder_run(dnnl_primitive_t p, const dnnl_memory_desc_t *from, const void *src,
                       const dnnl_memory_desc_t *to, void *dst) {
    int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    const dnnl_memory_desc_t *md[2] = {from, to};
    void *ptr[2] = {(void *)src, dst};
    return run_prim(p, 2, arg, md, ptr);
}

/* ---- weights kept in the primitive's layout ---------------------------------
 * A weight block reordered per call costs a pass over the weights: small
 * images (16x16, 8x8) do not amortise it (13-15% slower than im2col +
 * sgemm per call, bench/bench_gemm.c). Weights the owner declared unchanged
 * (cs_conv_weights_keep: a loaded model's) are reordered once, on first use,
 * into one buffer per weight tensor (per precision and layout), kept until
 * the owner forgets them. Same reorder, same kernel: the same bits. */
#define WCACHE_MAX ((size_t)1 << 30) /* bytes of kept reorders, all tensors */

typedef struct {
    const void *owner;
    const float *w;
    int bf16;
    dnnl_memory_desc_t wdst, wlast; /* layouts of the full blocks and of the last */
    char *buf;                      /* nchunk blocks, wstep bytes apart */
    size_t bytes;
    int ready;
} wcache_ent;

static wcache_ent *g_wc;
static int g_nwc, g_capwc;
static size_t g_wc_total;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Kept copies are mapped and unmapped whole: from the heap, a change of
 * precision (which drops and remakes them all) left their freed space in
 * the heap, and bench_sd's peak RSS grew past the budget (6348 MB, 5869
 * without the changes) */
static char *kc_alloc(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void wcache_del(int i) {
    munmap(g_wc[i].buf, g_wc[i].bytes);
    g_wc_total -= g_wc[i].bytes;
    g_wc[i] = g_wc[--g_nwc];
}

/* the entry for w in the layouts of P (full blocks) and Pl (the last),
 * created (unfilled) when the budget allows; NULL otherwise */
static wcache_ent *wcache_get(const void *owner, const float *w, const conv_plan *P, const conv_plan *Pl,
                              int nchunk) {
    for (int i = 0; i < g_nwc; i++)
        if (g_wc[i].w == w && g_wc[i].owner == owner && dnnl_memory_desc_equal(&g_wc[i].wdst, &P->wdst) &&
            dnnl_memory_desc_equal(&g_wc[i].wlast, &Pl->wdst))
            return &g_wc[i];
    /* the precision is process-wide (nn_set_precision): copies in the other
     * one are dropped rather than kept beside these (memory: f32 weights + 2 GB) */
    for (int i = g_nwc - 1; i >= 0; i--)
        if (g_wc[i].bf16 != P->k.bf16) wcache_del(i);
    size_t bytes = (size_t)(nchunk - 1) * align64(P->wbytes) + align64(Pl->wbytes);
    if (g_wc_total + bytes > WCACHE_MAX) return NULL;
    if (g_nwc == g_capwc) {
        int nc = g_capwc ? 2 * g_capwc : 64;
        wcache_ent *n = realloc(g_wc, sizeof *n * nc);
        if (!n) return NULL;
        g_wc = n, g_capwc = nc;
    }
    char *buf = kc_alloc(bytes); /* page-aligned */
    if (!buf) return NULL;
    g_wc[g_nwc] = (wcache_ent){owner, w, P->k.bf16, P->wdst, Pl->wdst, buf, bytes, 0};
    g_wc_total += bytes;
    return &g_wc[g_nwc++];
}

static void wcache_drop(const void *owner) {
    for (int i = g_nwc - 1; i >= 0; i--)
        if (g_wc[i].owner == owner) wcache_del(i);
    if (!g_nwc) free(g_wc), g_wc = NULL, g_capwc = 0;
}

/* one convolution of a call: its plans, weights and output (the four phases
 * of an upsampling convolution are four, over the same input) */
typedef struct {
    conv_plan *P, *Plast; /* Plast: the last block when cout % chunk != 0 (else P) */
    const float *weight;
    float *out;
    char *wc; /* the kept reordered weights (NULL: reordered per task) */
    size_t wstep;
} conv_part;

typedef struct {
    conv_part part[4];
    int npart;
    const float *in, *bias;
    int B, cout, nchunk, ntask; /* ntask: tasks per part */
    size_t ostep;  /* floats per output channel plane */
    char *src;     /* B NHWC images */
    size_t sbytes; /* per image */
    char *thr;     /* per thread: weights, dst block, scratchpad */
    size_t tbytes;
    int fail, wpart; /* wpart: the part wre_task fills */
} conv_job;

static void src_task(void *vc, int64_t b, int thread) {
    (void)thread;
    conv_job *j = vc;
    int had = one_omp_thread();
    conv_plan *P = j->part[0].P;
    const conv_key *k = &P->k;
    if (reorder_run(P->sre, &P->src_nchw, j->in + (size_t)b * k->cin * k->h * k->w, &P->src1,
                    j->src + (size_t)b * j->sbytes))
        j->fail = 1;
    omp_restore(had);
}

/* weight block c of part wpart into its kept buffer */
static void wre_task(void *vc, int64_t c, int thread) {
    (void)thread;
    conv_job *j = vc;
    conv_part *q = &j->part[j->wpart];
    int had = one_omp_thread();
    conv_plan *P = c == j->nchunk - 1 ? q->Plast : q->P;
    const conv_key *k = &P->k;
    if (reorder_run(P->wre, &P->wsrc, q->weight + (size_t)c * q->P->k.chunk * k->cin * k->kh * k->kw, &P->wdst,
                    q->wc + (size_t)c * q->wstep))
        j->fail = 1;
    omp_restore(had);
}

static void conv_block(conv_job *j, int64_t i, int thread);
static void conv_task(void *vc, int64_t i, int thread) {
    int had = one_omp_thread();
    conv_block(vc, i, thread);
    omp_restore(had);
}

/* task i: part i / ntask; in it, images [b*mb, b*mb + mb) x output channels [c*chunk, +chunk) */
static void conv_block(conv_job *j, int64_t i, int thread) {
    conv_part *q = &j->part[i / j->ntask];
    i %= j->ntask;
    int b = (int)(i / j->nchunk), c = (int)(i % j->nchunk);
    conv_plan *P = c == j->nchunk - 1 ? q->Plast : q->P;
    const conv_key *k = &P->k;
    int co = c * q->P->k.chunk, b0 = b * k->mb;
    size_t ohw = (size_t)P->oh * P->ow;
    char *wbuf = j->thr + (size_t)thread * j->tbytes;
    char *dbuf = wbuf + align64(P->wbytes);
    char *sbuf = dbuf + align64((size_t)k->mb * ohw * k->chunk * sizeof(float));
    if (q->wc) {
        wbuf = q->wc + (size_t)c * q->wstep;
    } else if (reorder_run(P->wre, &P->wsrc, q->weight + (size_t)co * k->cin * k->kh * k->kw, &P->wdst, wbuf)) {
        j->fail = 1;
        return;
    }
    int arg[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD, DNNL_ARG_BIAS};
    dnnl_memory_desc_t spd;
    dnnl_dims_t sd = {(dnnl_dim_t)(P->scratch ? P->scratch : 1)};
    dnnl_memory_desc_init_by_tag(&spd, 1, sd, dnnl_u8, dnnl_x);
    const dnnl_memory_desc_t *md[5] = {&P->src, &P->wdst, &P->dst, &spd, &P->bias};
    void *ptr[5] = {j->src + (size_t)b0 * j->sbytes, wbuf, dbuf, sbuf, (void *)(j->bias ? j->bias + co : NULL)};
    if (run_prim(P->conv, k->has_bias ? 5 : 4, arg, md, ptr) ||
        reorder_run(P->dre, &P->dst, dbuf, &P->dst_nchw, q->out + ((size_t)b0 * j->cout + co) * j->ostep))
        j->fail = 1;
}

static size_t thr_bytes(const conv_plan *P) {
    size_t ohw = (size_t)P->oh * P->ow;
    return align64(P->wbytes) + align64((size_t)P->k.mb * ohw * P->k.chunk * sizeof(float)) + align64(P->scratch);
}

/* The npart convolutions given by keys[] (same input, cout, chunking and
 * batch) of in, weights w[i], into out[i]; under g_lock. kept as in gemm.h. */
static int conv_run(conv_key *keys, int npart, const float *const *w, float *const *out, const float *in,
                    const float *bias, int B, size_t ostep, int kept, int nthreads) {
    const conv_key *k = &keys[0];
    int chunk = k->chunk, nchunk = (k->cout + chunk - 1) / chunk;
    size_t wn = (size_t)k->cout * k->cin * k->kh * k->kw;
    conv_job j = {0};
    j.npart = npart, j.in = in, j.bias = bias, j.B = B, j.cout = k->cout, j.nchunk = nchunk, j.ostep = ostep;
    j.ntask = B / k->mb * nchunk;
    if (nthreads < 1) nthreads = 1;
    for (int p = 0; p < npart && kept > 0; p++) /* before any plan is made (its JIT takes milliseconds) */
        if (!kept_owner(w[p], wn * sizeof(float))) return -1;
    for (int p = 0; p < npart; p++) {
        conv_part *q = &j.part[p];
        conv_key kl = keys[p];
        kl.chunk = k->cout - (nchunk - 1) * chunk;
        q->P = plan_get(&keys[p]);
        q->Plast = kl.chunk == chunk ? q->P : plan_get(&kl);
        q->weight = w[p], q->out = out[p];
        if (!q->P || !q->Plast) return -1;
        const void *owner = kept >= 0 ? kept_owner(w[p], wn * sizeof(float)) : NULL;
        if (kept > 0 && !owner) return -1;
        wcache_ent *C = owner ? wcache_get(owner, w[p], q->P, q->Plast, nchunk) : NULL;
        if (kept > 0 && !C) return -1;
        if (!C) continue;
        q->wc = C->buf, q->wstep = align64(q->P->wbytes);
        if (!C->ready) {
            j.wpart = p;
            cs_parallel_for(nthreads < nchunk ? nthreads : nchunk, nchunk, wre_task, &j);
            if (j.fail) {
                wcache_del((int)(C - g_wc));
                return -1;
            }
            C->ready = 1;
        }
    }
    conv_plan *P = j.part[0].P;
    size_t simg = dnnl_memory_desc_get_size(&P->src1);
    j.sbytes = k->mb > 1 ? simg : align64(simg); /* the batch's images contiguous when one task takes them all */
    for (int p = 0; p < npart; p++) {
        size_t a = thr_bytes(j.part[p].P), b = thr_bytes(j.part[p].Plast);
        if (a > j.tbytes) j.tbytes = a;
        if (b > j.tbytes) j.tbytes = b;
    }
    size_t need = align64(j.sbytes * B) + j.tbytes * nthreads + 64;
    if (need > g_cap) {
        buf_drop();
        g_buf = buf_alloc(need);
        if (g_buf) g_cap = need;
    }
    char *buf = g_buf;
    if (!buf) return -1;
    j.src = buf, j.thr = buf + align64(j.sbytes * B);
    cs_parallel_for(nthreads < B ? nthreads : B, B, src_task, &j);
    if (!j.fail) cs_parallel_for(nthreads, (int64_t)npart * j.ntask, conv_task, &j);
    return j.fail ? -1 : 0;
}

int cs_conv_onednn(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int kh,
                   int kw, int stride, int pt, int pl, int pb, int pr, int B, int h, int w, int bf16, int kept,
                   int nthreads) {
    pthread_once(&g_once, init_engine);
    if (!g_ok || cout % 16 || cin < 16) return -1;
    int chunk = cout % CHUNK_MAX == 0 ? CHUNK_MAX : cout < CHUNK_MAX ? cout : CHUNK_MAX;
    int oh = (h + pt + pb - kh) / stride + 1, ow = (w + pl + pr - kw) / stride + 1;
    /* small images: one task per block of output channels for the whole
     * batch (a 64-pixel image alone is too thin a product) */
    int mb = (size_t)oh * ow < SMALL_OHW ? B : 1;
    conv_key k = {cin, cout, chunk, mb, h, w, kh, kw, stride, pt, pl, pb, pr, bias != NULL, bf16 != 0, 0};
    pthread_mutex_lock(&g_lock);
    int rc = conv_run(&k, 1, &weight, &out, in, bias, B, (size_t)oh * ow, kept, nthreads);
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* ---- nearest 2x upsampling + 3x3 convolution, pad 1 ------------------------------
 * Output pixel (2i+py, 2j+px) of the convolution over the upsampled image
 * reads input rows i-1+a (py = 0) or i+a (py = 1), a = 0, 1, with the 3x3
 * taps that land on the same input row summed: a 2x2 convolution of the
 * small image per phase (py, px), 16/36 of the multiplies. The four phase
 * kernels are derived once per kept weight tensor (kept with it), and the
 * four convolutions write their outputs interleaved, in place. */
typedef struct {
    const void *owner;
    const float *w;
    float *d; /* [4 phases][cout][cin][2][2] */
    size_t n;
} up2_ent;
static up2_ent *g_up;
static int g_nup, g_capup;

/* taps of the 3x3 kernel summed into tap a of phase p, rows or columns */
static const int UP_T0[2][2] = {{0, 1}, {0, 2}}, UP_T1[2][2] = {{1, 3}, {2, 3}}; /* [p][a]: taps [t0, t1) */

static float *up2_weights(const void *owner, const float *w, int cout, int cin) {
    for (int i = 0; i < g_nup; i++)
        if (g_up[i].owner == owner && g_up[i].w == w) return g_up[i].d;
    size_t n = (size_t)4 * cout * cin * 4;
    if (g_nup == g_capup) {
        int nc = g_capup ? 2 * g_capup : 16;
        up2_ent *e = realloc(g_up, sizeof *e * nc);
        if (!e) return NULL;
        g_up = e, g_capup = nc;
    }
    float *d = malloc(sizeof(float) * n);
    if (!d) return NULL;
    for (int p = 0; p < 4; p++) {
        int py = p >> 1, px = p & 1;
        for (size_t oc = 0; oc < (size_t)cout * cin; oc++) {
            const float *k3 = w + oc * 9;
            float *k2 = d + ((size_t)p * cout * cin + oc) * 4;
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                    float s = 0;
                    for (int ky = UP_T0[py][a]; ky < UP_T1[py][a]; ky++)
                        for (int kx = UP_T0[px][b]; kx < UP_T1[px][b]; kx++) s += k3[ky * 3 + kx];
                    k2[a * 2 + b] = s;
                }
        }
    }
    g_up[g_nup++] = (up2_ent){owner, w, d, n};
    return d;
}

static void up2_drop(const void *owner) {
    for (int i = g_nup - 1; i >= 0; i--)
        if (g_up[i].owner == owner) {
            free(g_up[i].d);
            g_up[i] = g_up[--g_nup];
        }
    if (!g_nup) free(g_up), g_up = NULL, g_capup = 0;
}

int cs_conv_onednn_up2(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int B,
                       int h, int w, int bf16, int nthreads) {
    pthread_once(&g_once, init_engine);
    if (!g_ok || cout % 16 || cin < 16) return -1;
    int chunk = cout % CHUNK_MAX == 0 ? CHUNK_MAX : cout < CHUNK_MAX ? cout : CHUNK_MAX;
    int mb = (size_t)h * w < SMALL_OHW ? B : 1;
    pthread_mutex_lock(&g_lock);
    int rc = -1;
    const void *owner = kept_owner(weight, (size_t)cout * cin * 9 * sizeof(float));
    float *d = owner ? up2_weights(owner, weight, cout, cin) : NULL;
    if (d) {
        conv_key k[4];
        const float *wp[4];
        float *op[4];
        size_t n = (size_t)cout * cin * 4;
        for (int p = 0; p < 4; p++) {
            int py = p >> 1, px = p & 1;
            k[p] = (conv_key){cin, cout, chunk, mb, h, w, 2, 2, 1, !py, !px, py, px, bias != NULL, bf16 != 0, 1};
            wp[p] = d + p * n;
            op[p] = out + (size_t)py * 2 * w + px;
        }
        /* the derived kernels are kept as the weights they come from */
        if (kept_owner(d, sizeof(float) * 4 * n) || !keep_range(owner, d, 4 * n))
            rc = conv_run(k, 4, wp, op, in, bias, B, (size_t)4 * h * w, 1, nthreads);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}
#else
static void buf_drop(void) {}
static void wcache_drop(const void *owner) { (void)owner; }
static void up2_drop(const void *owner) { (void)owner; }
int cs_conv_onednn_up2(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int B,
                       int h, int w, int bf16, int nthreads) {
    (void)out, (void)in, (void)weight, (void)bias, (void)cin, (void)cout, (void)B, (void)h, (void)w, (void)bf16;
    (void)nthreads;
    return -1;
}
int cs_conv_onednn(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int kh,
                   int kw, int stride, int pt, int pl, int pb, int pr, int B, int h, int w, int bf16, int kept,
                   int nthreads) {
    (void)out, (void)in, (void)weight, (void)bias, (void)cin, (void)cout, (void)kh, (void)kw, (void)stride;
    (void)pt, (void)pl, (void)pb, (void)pr, (void)B, (void)h, (void)w, (void)bf16, (void)kept, (void)nthreads;
    return -1;
}
#endif

/* ---- the kept ranges (plain C: also without oneDNN) ---- */

int cs_conv_weights_keep(const void *owner, const float *w, size_t n) {
    if (!owner || !w || !n) return 0;
    pthread_mutex_lock(&g_lock);
    int rc = keep_range(owner, w, n);
    pthread_mutex_unlock(&g_lock);
    return rc;
}

void cs_conv_weights_forget(const void *owner) {
    pthread_mutex_lock(&g_lock);
    for (int i = g_nkept - 1; i >= 0; i--)
        if (g_kept[i].owner == owner) g_kept[i] = g_kept[--g_nkept];
    if (!g_nkept) free(g_kept), g_kept = NULL, g_capkept = 0;
    wcache_drop(owner);
    up2_drop(owner);
    if (!g_nkept) buf_drop(); /* the last model gone: its workspace too */
    pthread_mutex_unlock(&g_lock);
}
