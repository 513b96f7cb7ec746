/* bench_embed — embeddings and nearest-neighbour search at scale, each figure
 * beside its anchor measured in the same run:
 *   open      a 1,000,000 x 512 float32 column opens in < 1 s
 *   exact     1,000 queries, k = 10, 2 threads: cs_knn_exact vs FAISS IndexFlatIP
 *             (python3-faiss) on the same file; target >= 0.9x
 *   approx    the default index of `copyscope index ann` (index/ann.h: FAISS
 *             IVF4096,Flat, 100 k-means training vectors per list) through
 *             cs_ann_search, nprobe swept: recall@10 vs exact and qps vs the
 *             exact qps; target recall >= 0.95 at >= 10x; build time, size;
 *             cached comparisons (IVF on FAISS's minimum sample, HNSW32)
 *   resnet    SSCD ResNet-50, 224x224, batch 8, 2 threads vs PyTorch
 *             (python3-torch, torchvision) on the same weights
 * Data (generated once into $CS_BENCH_DIR, default /tmp/copyscope-bench-embed,
 * and reused): 1M unit vectors in 20,000 near-duplicate groups (centre +
 * noise, within-group cosine ~0.5), queries = noisy copies of random rows
 * (cosine ~0.9 to their source) — the shape of copy-detection data, where a
 * generated image is close to one reference and its near-duplicates.
 *   resnet-layers  its conv shapes one by one on one thread: our way (Winograd,
 *             sgemm tiles) vs oneDNN's convolution with kept weights (not in "all")
 * Usage: bench_embed [open|exact|approx|resnet|resnet-layers ...] (default: all but resnet-layers). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "index/ann.h"
#include "index/faiss_shim.h"
#include "index/knn.h"
#include "index/resnet.h"
#include "index/vecstore.h"
#include "index/winograd.h"

#define N 1000000
#define D 512
#define NQ 1000
#define K 10
#define THREADS 2
#define GROUPS 20000

static char dir[1024], dbpath[1100], qpath[1100];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Approximately normal (sum of 4 uniforms, variance 1), from a counter. */
static float gauss(uint64_t key) {
    uint64_t a = mix(key), b = mix(a + 0x9e3779b97f4a7c15ULL);
    float s = (float)(a & 0xffffffff) + (float)(a >> 32) + (float)(b & 0xffffffff) + (float)(b >> 32);
    return (s / 4294967296.0f - 2.0f) * 1.7320508f;
}

static void centre(float *out, int g) {
    for (int d = 0; d < D; d++) out[d] = gauss(((uint64_t)g << 20) ^ (uint64_t)d ^ 0xc0ffeeULL << 40);
    cs_l2_normalize(out, 1, D);
}

/* Row each query was made from (see ensure_data). */
static int64_t query_source(int i) { return (int64_t)(mix(0xabcdefULL + (uint64_t)i) % N); }

typedef struct {
    float *rows;
    int64_t r0;
} gen_ctx;

static void gen_row(void *vctx, int64_t i, int thread) {
    (void)thread;
    gen_ctx *c = vctx;
    int64_t r = c->r0 + i;
    float *x = c->rows + i * D;
    centre(x, (int)(mix((uint64_t)r * 7919) % GROUPS));
    for (int d = 0; d < D; d++) x[d] += gauss(((uint64_t)r << 10 | (uint64_t)d) + (1ULL << 62)) / sqrtf(D);
    cs_l2_normalize(x, 1, D);
}

static int ensure_data(void) {
    cs_vecstore vs;
    cs_err e = {0};
    if (!cs_vecstore_open(&vs, dbpath, D, 0, &e) && vs.n == N && access(qpath, F_OK) == 0) {
        cs_vecstore_close(&vs);
        return 0;
    }
    if (vs.path) cs_vecstore_close(&vs);
    unlink(dbpath);
    char ids_path[1200];
    snprintf(ids_path, sizeof ids_path, "%s.ids", dbpath);
    unlink(ids_path);
    printf("generating %d x %d vectors into %s ...\n", N, D, dir);
    fflush(stdout);
    double t = now();
    if (cs_vecstore_open(&vs, dbpath, D, 1, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    enum { CH = 16384 };
    float *rows = malloc((size_t)CH * D * sizeof *rows);
    int64_t *ids = malloc(CH * sizeof *ids);
    for (int64_t r0 = 0; r0 < N; r0 += CH) {
        int nb = N - r0 < CH ? (int)(N - r0) : CH;
        gen_ctx c = {rows, r0};
        cs_parallel_for(THREADS, nb, gen_row, &c);
        for (int i = 0; i < nb; i++) ids[i] = r0 + i + 1;
        if (cs_vecstore_append(&vs, ids, rows, nb, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return -1;
        }
    }
    /* queries: a random row plus noise of norm 0.5 */
    float *q = malloc((size_t)NQ * D * sizeof *q);
    for (int i = 0; i < NQ; i++) {
        int64_t src = query_source(i);
        for (int d = 0; d < D; d++)
            q[i * D + d] = vs.vecs[src * D + d] + 0.5f * gauss(((uint64_t)i << 10 | (uint64_t)d) + (3ULL << 60)) / sqrtf(D);
    }
    cs_l2_normalize(q, NQ, D);
    FILE *f = fopen(qpath, "wb");
    fwrite(q, sizeof *q, (size_t)NQ * D, f);
    fclose(f);
    cs_vecstore_close(&vs);
    free(rows), free(ids), free(q);
    printf("generated in %.1f s\n", now() - t);
    return 0;
}

static float *load_queries(void) {
    float *q = malloc((size_t)NQ * D * sizeof *q);
    FILE *f = fopen(qpath, "rb");
    if (!f || fread(q, sizeof *q, (size_t)NQ * D, f) != (size_t)NQ * D) {
        if (f) fclose(f);
        free(q);
        return NULL;
    }
    fclose(f);
    return q;
}

/* Runs the Python anchor; returns the value of "key" in its output, or -1. */
/* The anchor's value under key; also key2's into *v2 when given (-1 if absent). */
static double anchor2(const char *args, const char *key, const char *key2, double *v2) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d /usr/bin/python3 bench/embed_anchor.py %s 2>&1",
             THREADS, THREADS, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    double v = -1;
    size_t kl = strlen(key), k2l = key2 ? strlen(key2) : 0;
    if (v2) *v2 = -1;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, key, kl) && line[kl] == ' ') v = atof(line + kl + 1);
        else if (key2 && v2 && !strncmp(line, key2, k2l) && line[k2l] == ' ') *v2 = atof(line + k2l + 1);
        else if (strncmp(line, "faiss_version", 13) && strncmp(line, "torch_version", 13))
            fprintf(stderr, "  anchor: %s", line);
    }
    pclose(p);
    return v;
}
static double anchor(const char *args, const char *key) { return anchor2(args, key, NULL, NULL); }

static double recall10(const int64_t *a, const int64_t *ex, int nq) {
    int64_t hit = 0;
    for (int i = 0; i < nq; i++)
        for (int x = 0; x < K; x++)
            for (int y = 0; y < K; y++) hit += a[i * K + x] == ex[i * K + y] && ex[i * K + y] >= 0;
    return (double)hit / ((double)nq * K);
}

/* Share of queries whose source row is in their list: what copy detection
 * needs (the copied reference found), as opposed to recall of ranks 2-10,
 * which here are near-tied members of the source's group. */
static double copy_recall(const int64_t *rows, int nq) {
    int hit = 0;
    for (int i = 0; i < nq; i++)
        for (int x = 0; x < K; x++) hit += rows[i * K + x] == query_source(i);
    return (double)hit / nq;
}

static int64_t exact_rows[NQ * K];
static double exact_qps;

static void bench_open(void) {
    cs_vecstore vs;
    cs_err e = {0};
    double t = now();
    int rc = cs_vecstore_open(&vs, dbpath, D, 0, &e);
    double dt = now() - t;
    if (rc) {
        printf("open: %s\n", e.msg);
        return;
    }
    printf("open %lld x %d column: %.2f ms  target < 1000 ms  (%s)\n", (long long)vs.n, vs.dim,
           dt * 1e3, dt < 1.0 ? "ok" : "MISSED");
    cs_vecstore_close(&vs);
}

static void bench_exact(void) {
    cs_vecstore vs;
    cs_err e = {0};
    float *q = load_queries();
    if (!q || cs_vecstore_open(&vs, dbpath, D, 0, &e)) {
        printf("exact: no data (%s)\n", e.msg);
        free(q);
        return;
    }
    /* fault the mapping in first, as the anchor's copy into its index does */
    volatile float sink = 0;
    for (int64_t i = 0; i < vs.n * D; i += 1024) sink += vs.vecs[i];
    float *s = malloc(sizeof(float) * NQ * K);
    cs_knn_exact(vs.vecs, vs.n, D, q, 20, K, THREADS, s, exact_rows, &e); /* warm-up */
    double t = now();
    if (cs_knn_exact(vs.vecs, vs.n, D, q, NQ, K, THREADS, s, exact_rows, &e)) printf("exact: %s\n", e.msg);
    double dt = now() - t;
    exact_qps = NQ / dt;
    char args[4096], ids_out[1200];
    snprintf(ids_out, sizeof ids_out, "%s/faiss_flat_ids.bin", dir);
    snprintf(args, sizeof args, "flat %s %s %d %d %d %s", dbpath, qpath, NQ, K, THREADS, ids_out);
    double fq = anchor(args, "faiss_flat_qps");
    if (fq < 0) printf("  (FAISS anchor unavailable: apt-get install python3-faiss)\n");
    double agree = -1;
    int64_t *fi = malloc(sizeof(int64_t) * NQ * K);
    FILE *f = fopen(ids_out, "rb");
    if (f && fread(fi, sizeof(int64_t), NQ * K, f) == NQ * K) agree = recall10(fi, exact_rows, NQ);
    if (f) fclose(f);
    printf("exact N=%d d=%d nq=%d k=%d %d threads: %.1f queries/s  anchor faiss IndexFlatIP %.1f queries/s"
           "  ratio %.2fx (target >= 0.9x)  top-10 agreement with faiss %.4f\n",
           N, D, NQ, K, THREADS, exact_qps, fq, fq > 0 ? exact_qps / fq : 0, agree);
    printf("  exact: copy (source row) found for %.4f of queries\n", copy_recall(exact_rows, NQ));
    free(fi), free(s), free(q);
    cs_vecstore_close(&vs);
}

/* One approximate index: built (or loaded from its cache file), then swept
 * over its search parameter. Keeps the fastest setting with recall >= 0.95
 * and the best copy-found rate among settings >= 10x exact.
 * train_per_list: k-means training points per IVF list. On this data the
 * sample size decides recall: with FAISS's minimum 39 per list (about 8
 * members of each 50-row group) k-means converges, whatever the iterations,
 * to lists that hold ~70% of the groups whole and scatter the rest over
 * unrelated lists (recall@10 0.82 at nprobe 8); with 100 per list the groups
 * form their own lists (ceiling 0.96 at nprobe 4 after 20 iterations). */
typedef struct {
    const char *factory, *file, *param;
    int train_per_list, iters;
    int values[8], nvalues;
} approx_cfg;

typedef struct {
    const char *factory, *param;
    int value;
    double qps, rec, copy;
} approx_best;

/* Build time of a cached index, kept beside it in FILE.info ("seconds"). */
static double build_time(const char *ipath, double set) {
    char p[1300];
    snprintf(p, sizeof p, "%s.info", ipath);
    FILE *f = fopen(p, set >= 0 ? "w" : "r");
    double v = set;
    if (!f) return -1;
    if (set >= 0) fprintf(f, "%.1f\n", set);
    else if (fscanf(f, "%lf", &v) != 1) v = -1;
    fclose(f);
    return v;
}

static int64_t file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : (int64_t)st.st_size;
}

static approx_best approx_default;

/* The product: the index `copyscope index ann` builds by default over this
 * column (index/ann.h: IVF4096,Flat, 100 training vectors per list, 20
 * k-means iterations; built once, ~5 min, and cached), searched through
 * cs_ann_search (FAISS candidates re-scored exactly on the column). */
static void approx_product(const cs_vecstore *vs, const float *q, approx_best *best, approx_best *best_copy) {
    char ap[1200];
    snprintf(ap, sizeof ap, "%s/db.ann-bench.faiss", dir);
    cs_err e = {0};
    cs_ann_stats st;
    cs_ann_opts o = {.threads = THREADS};
    if (access(ap, F_OK)) printf("building the default index of copyscope index ann (cached in %s) ...\n", ap);
    if (cs_ann_build_vs(ap, "bench", vs, &o, &st, &e)) {
        printf("approx product: %s\n", e.msg);
        return;
    }
    if (st.trained) {
        printf("  built in %.1f s (train %.1f s, add %.1f s)\n", st.train_s + st.add_s, st.train_s, st.add_s);
        build_time(ap, st.train_s + st.add_s);
    }
    double t = now(), bt = build_time(ap, -1);
    cs_ann *a = NULL;
    if (cs_ann_open(&a, ap, "bench", vs, &e)) {
        printf("approx product: %s\n", e.msg);
        return;
    }
    printf("%s (copyscope index ann default, default nprobe %d) loaded from %s in %.2f s; build took %.0f s\n",
           cs_ann_factory(a), st.nprobe, ap, now() - t, bt);
    printf("  index size %.1f MiB, %.1f bytes/vector (raw vectors %d)\n", st.file_bytes / 1048576.0,
           (double)st.file_bytes / vs->n, (int)(D * sizeof(float)));
    static const int probes[] = {1, 2, 4, 8, 16};
    static char label[160];
    snprintf(label, sizeof label, "%s (index ann)", cs_ann_factory(a));
    float *s = malloc(sizeof(float) * NQ * K);
    int64_t *r = malloc(sizeof(int64_t) * NQ * K);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        cs_ann_search_opts so = {.nprobe = probes[i], .threads = THREADS};
        cs_ann_search(a, vs, q, 20, K, &so, s, r, &e);
        double t0 = now();
        if (cs_ann_search(a, vs, q, NQ, K, &so, s, r, &e)) printf("approx product: %s\n", e.msg);
        double qps = NQ / (now() - t0), rec = recall10(r, exact_rows, NQ), cp = copy_recall(r, NQ);
        printf("  %s nprobe %3d (cs_ann_search): recall@10 %.4f  copy found %.4f  %.0f queries/s  %.1fx exact\n",
               cs_ann_factory(a), probes[i], rec, cp, qps, qps / exact_qps);
        approx_best cur = {label, "nprobe", probes[i], qps, rec, cp};
        if (rec >= 0.95 && qps > best->qps) *best = cur;
        if (qps >= 10 * exact_qps && cp > best_copy->copy) *best_copy = cur;
        if (probes[i] == st.nprobe) approx_default = cur;
    }
    free(s), free(r);
    cs_ann_close(a);
}

static void approx_one(const approx_cfg *cfg, const cs_vecstore *vs, const float *q, approx_best *best,
                       approx_best *best_copy) {
    cs_err e = {0};
    char ipath[1200];
    snprintf(ipath, sizeof ipath, "%s/%s", dir, cfg->file);
    cs_faiss *f = NULL;
    double tb = now();
    /* a cached index is read into memory, as index/ann.c does (a memory-mapped
     * one, cs_faiss_read_mmap, loads in ms but its first queries page-fault) */
    int cached = !cs_faiss_read(&f, ipath, &e) && cs_faiss_ntotal(f) == vs->n;
    if (!cached) {
        if (f) cs_faiss_free(f);
        f = NULL;
        printf("building %s on %lld vectors (cached in %s) ...\n", cfg->factory, (long long)vs->n, ipath);
        int rc = cs_faiss_new(&f, D, cfg->factory, 1, &e);
        double tt = 0;
        if (!rc && !cs_faiss_is_trained(f)) {
            int64_t nlist = cs_faiss_nlist(f);
            int64_t ntrain = nlist * cfg->train_per_list; /* evenly spaced rows */
            if (ntrain > vs->n) ntrain = vs->n;
            float *tr = malloc(sizeof(float) * ntrain * D);
            for (int64_t i = 0; i < ntrain; i++)
                memcpy(tr + i * D, vs->vecs + (i * vs->n / ntrain) * D, D * sizeof(float));
            rc = cs_faiss_set_train_iters(f, cfg->iters, &e) || cs_faiss_train(f, ntrain, tr, &e);
            free(tr);
            tt = now() - tb;
            printf("  trained on %lld vectors (%d per list, %d k-means iterations) in %.1f s\n",
                   (long long)ntrain, cfg->train_per_list, cfg->iters, tt);
        }
        if (rc || cs_faiss_add(f, vs->n, vs->vecs, &e) || cs_faiss_write(f, ipath, &e)) {
            printf("approx %s: %s\n", cfg->factory, e.msg);
            cs_faiss_free(f);
            return;
        }
        double bt = now() - tb;
        build_time(ipath, bt);
        printf("  built in %.1f s (train %.1f s, add %.1f s)\n", bt, tt, bt - tt);
    } else {
        double bt = build_time(ipath, -1);
        char how[64] = "", took[32] = "(unrecorded)";
        if (cfg->train_per_list) snprintf(how, sizeof how, " (trained on %d per list)", cfg->train_per_list);
        if (bt >= 0) snprintf(took, sizeof took, "%.0f s", bt);
        printf("%s%s loaded from %s in %.2f s; build took %s\n", cfg->factory, how, ipath, now() - tb, took);
    }
    int64_t fb = file_bytes(ipath);
    printf("  index size %.1f MiB, %.1f bytes/vector (raw vectors %d)\n", fb / 1048576.0, (double)fb / vs->n,
           (int)(D * sizeof(float)));
    float *s = malloc(sizeof(float) * NQ * K);
    int64_t *r = malloc(sizeof(int64_t) * NQ * K);
    for (int i = 0; i < cfg->nvalues; i++) {
        cs_faiss_set_param(f, cfg->param, cfg->values[i], &e);
        cs_faiss_search(f, 20, q, K, s, r, &e);
        double t = now();
        cs_faiss_search(f, NQ, q, K, s, r, &e);
        double qps = NQ / (now() - t), rec = recall10(r, exact_rows, NQ), cp = copy_recall(r, NQ);
        printf("  %s %s %3d: recall@10 %.4f  copy found %.4f  %.0f queries/s  %.1fx exact\n", cfg->factory,
               cfg->param, cfg->values[i], rec, cp, qps, qps / exact_qps);
        approx_best cur = {cfg->factory, cfg->param, cfg->values[i], qps, rec, cp};
        if (rec >= 0.95 && qps > best->qps) *best = cur;
        if (qps >= 10 * exact_qps && cp > best_copy->copy) *best_copy = cur;
    }
    free(s), free(r);
    cs_faiss_free(f);
}

static void bench_approx(void) {
    if (exact_qps <= 0) {
        printf("approx: needs the exact section first\n");
        return;
    }
    cs_vecstore vs;
    cs_err e = {0};
    float *q = load_queries();
    if (!q || cs_vecstore_open(&vs, dbpath, D, 0, &e)) {
        free(q);
        return;
    }
    cs_faiss_set_threads(THREADS);
    static const approx_cfg cfgs[] = {
        /* comparisons: FAISS's minimum sample (see approx_cfg), and a graph */
        {"IVF4096,Flat", "ivf4096_flat_t39.faiss", "nprobe", 39, 10, {8, 32}, 2},
        {"HNSW32", "hnsw32.faiss", "efSearch", 0, 0, {64, 256}, 2},
    };
    approx_best best = {0}, best_copy = {0};
    best_copy.copy = -1;
    approx_product(&vs, q, &best, &best_copy);
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        /* comparisons, so built only when asked (CS_BENCH_HNSW=1: HNSW32 takes
         * 20+ minutes at 1M x 512 on 2 cores; CS_BENCH_ALL=1: the IVF, 3 min)
         * or already cached by an earlier run */
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, cfgs[i].file);
        int hnsw = !strncmp(cfgs[i].factory, "HNSW", 4);
        if (access(p, F_OK) && !getenv(hnsw ? "CS_BENCH_HNSW" : "CS_BENCH_ALL")) {
            printf("  %s (%s) skipped (not cached; %s=1 builds and caches it)\n", cfgs[i].factory, cfgs[i].file,
                   hnsw ? "CS_BENCH_HNSW" : "CS_BENCH_ALL");
            continue;
        }
        approx_one(&cfgs[i], &vs, q, &best, &best_copy);
    }
    if (best.factory)
        printf("approx N=%d: %s %s %d recall@10 %.4f at %.0f queries/s  anchor exact %.1f queries/s"
               "  ratio %.1fx (target recall >= 0.95 at >= 10x)%s\n",
               N, best.factory, best.param, best.value, best.rec, best.qps, exact_qps, best.qps / exact_qps,
               best.qps >= 10 * exact_qps ? "" : " (MISSED: < 10x)");
    else
        printf("approx N=%d: no setting reached recall@10 0.95 (MISSED on this data)\n", N);
    if (approx_default.factory)
        printf("approx N=%d: default of copyscope index ann: %s %s %d recall@10 %.4f, copy found %.4f,"
               " %.0f queries/s  anchor exact %.1f queries/s  ratio %.1fx\n",
               N, approx_default.factory, approx_default.param, approx_default.value, approx_default.rec,
               approx_default.copy, approx_default.qps, exact_qps, approx_default.qps / exact_qps);
    if (best_copy.factory)
        printf("approx N=%d: best copy-found rate at >= 10x exact: %s %s %d, %.4f of queries (recall@10 %.4f, %.1fx)\n",
               N, best_copy.factory, best_copy.param, best_copy.value, best_copy.copy, best_copy.rec,
               best_copy.qps / exact_qps);
    free(q);
    cs_vecstore_close(&vs);
}

/* FLOPs (2 x multiply-adds) of one forward at h x w, counted from the conv
 * shapes as direct convolution (the usual "4.1 G" for ResNet-50 at 224 px
 * counts multiply-adds): the work PyTorch does, so GFLOP/s compare. */
static double resnet_flops(const cs_resnet *m, int h, int w) {
    double f = 0;
    const nn_conv2d_p *p = &m->conv1.p;
    h = nn_conv2d_oh(p, h), w = nn_conv2d_ow(p, w);
    f += 2.0 * p->cout * p->cin * p->kh * p->kw * h * w;
    h = (h - 1) / 2 + 1, w = (w - 1) / 2 + 1; /* max pool */
    for (int bi = 0; bi < 16; bi++) {
        const cs_rn_block *b = &m->blocks[bi];
        const cs_rn_conv *cv[4] = {&b->conv1, &b->conv2, &b->conv3, &b->downsample};
        int ch = h, cw = w;
        for (int i = 0; i < 4; i++) {
            if (!cv[i]->p.cout) continue;
            p = &cv[i]->p;
            int ih = i == 3 ? h : ch, iw = i == 3 ? w : cw, oh = nn_conv2d_oh(p, ih), ow = nn_conv2d_ow(p, iw);
            f += 2.0 * p->cout * p->cin * p->kh * p->kw * oh * ow;
            if (i < 3) ch = oh, cw = ow;
        }
        h = ch, w = cw;
    }
    return f + 2.0 * m->dim * 2048;
}

static double proc_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Our images/s for batch B at S x S on `threads` threads (wall clock); *per_cpu:
 * images per CPU-second (all threads), the steadier figure on a loaded machine. */
static double resnet_rate(cs_resnet *m, const float *x, int B, int S, int threads, float *o, double *per_cpu) {
    cs_err e = {0};
    nn_set_threads(threads);
    cs_resnet_forward(m, x, B, S, S, o, NULL, &e); /* warm-up */
    int it = 3;
    double t = now(), c = proc_cpu();
    for (int i = 0; i < it; i++) cs_resnet_forward(m, x, B, S, S, o, NULL, &e);
    if (per_cpu) *per_cpu = B * it / (proc_cpu() - c);
    return B * it / (now() - t);
}

/* The figure (2 threads) and, beside it, one thread each: on a
 * shared machine a busy second core hurts PyTorch's OpenMP barriers far more
 * than our tiles, so the one-thread ratio is the steadier per-core figure. */
static void bench_resnet(void) {
    const char *w = "../shared/refs/resnet50/model.safetensors";
    cs_resnet m;
    cs_err e = {0};
    if (cs_resnet_load(&m, w, &e)) {
        printf("resnet: %s\n", e.msg);
        return;
    }
    enum { B = 8, S = 224 };
    float *x = malloc(sizeof(float) * B * 3 * S * S), *o = malloc(sizeof(float) * B * m.dim);
    for (int i = 0; i < B * 3 * S * S; i++) x[i] = gauss((uint64_t)i + (5ULL << 60));
    double gf = resnet_flops(&m, S, S) / 1e9;
    int threads[2] = {THREADS, 1};
    for (int i = 0; i < 2; i++) {
        double oc, tc;
        double ours = resnet_rate(&m, x, B, S, threads[i], o, &oc);
        char args[1200];
        snprintf(args, sizeof args, "torch %s %d %d %d", w, B, S, threads[i]);
        double th = anchor2(args, "torch_img_s", "torch_img_cpu_s", &tc);
        if (th < 0) printf("  (PyTorch anchor unavailable: apt-get install python3-torch python3-torchvision)\n");
        printf("resnet50 sscd %dx%d batch %d %d thread%s: %.2f images/s (%.1f GFLOP/s at %.2f GFLOP/image)"
               "  anchor pytorch %.2f images/s  ratio %.2fx (target >= 2x); per CPU-second %.2f vs %.2f images: "
               "%.2fx\n",
               S, S, B, threads[i], threads[i] > 1 ? "s" : "", ours, ours * gf, gf, th, th > 0 ? ours / th : 0, oc,
               tc, tc > 0 ? oc / tc : 0);
        if (cs_cpu_isa() >= CS_ISA_AVX512) { /* the same on the AVX2/OpenBLAS path (issue 18) */
            cs_cpu_force(CS_ISA_BASE);
            double a2 = resnet_rate(&m, x, B, S, threads[i], o, NULL);
            cs_cpu_force(-1);
            printf("  same on the AVX2/OpenBLAS path: %.2f images/s: AVX-512 %.2fx\n", a2, ours / a2);
        }
    }
    nn_set_threads(THREADS);
    free(x), free(o);
    cs_resnet_free(&m);
}

/* ---- resnet-layers: ResNet-50's conv shapes (224 px, batch 8) one by one --------
 * Each on ONE thread, timed in this thread's CPU seconds (steady on a loaded
 * machine), beside the register-only FMA loop on the same thread: the
 * forward pass's way (3x3 stride 1: Winograd F(2x2,3x3) tiles; 1x1: column
 * tiles of a single-threaded sgemm) against oneDNN's convolution with the
 * weights kept in its layout (cs_conv_onednn, brgconv). GFLOP are the direct
 * convolution's (2 * cout * cin * k * k * outputs) for both. */
static volatile float g_fma_sink;

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    int cin, cout, k, hw;
} rn_shape;

static double per_cpu_s(void (*fn)(void *), void *ctx) {
    fn(ctx); /* warm-up: plans, kept weights, first touch */
    int reps = 0;
    double c0 = thread_cpu(), c;
    do fn(ctx), reps++;
    while ((c = thread_cpu() - c0) < 0.4 && reps < 50);
    return c / reps;
}

typedef struct {
    rn_shape s;
    int B;
    float *x, *y, *w, *U, *b, *ws;
} rn_layer;

static void rn_wino(void *v) {
    rn_layer *L = v;
    int rows = (int)cs_wino_block_rows(L->B, L->s.hw);
    int tile = cs_wino_tile(L->s.cin, L->s.cout, L->B, L->s.hw, L->s.hw);
    for (int r0 = 0; r0 < rows; r0 += tile)
        cs_wino_tile_run(L->y, L->x, L->U, L->b, L->s.cin, L->s.cout, L->B, L->s.hw, L->s.hw, r0,
                         rows - r0 < tile ? rows - r0 : tile, 1, L->ws);
}

static void rn_gemm1x1(void *v) { /* as resnet_forward.c's pointwise tiles: 1024 columns */
    rn_layer *L = v;
    int n = L->B * L->s.hw * L->s.hw;
    for (int n0 = 0; n0 < n; n0 += 1024)
        nn_sgemm_tile(0, 0, L->s.cout, n - n0 < 1024 ? n - n0 : 1024, L->s.cin, 1.f, L->w, L->s.cin, L->x + n0, n,
                      0.f, L->y + n0, n);
}

static void rn_onednn(void *v) {
    rn_layer *L = v;
    int p = L->s.k / 2;
    if (cs_conv_onednn(L->y, L->x, L->w, L->b, L->s.cin, L->s.cout, L->s.k, L->s.k, 1, p, p, p, p, L->B, L->s.hw,
                       L->s.hw, 0, 1, 1))
        printf("  (oneDNN refused the shape)\n");
}

static void bench_resnet_layers(void) {
    static const rn_shape shapes[] = {
        {64, 64, 3, 56},   {128, 128, 3, 28}, {256, 256, 3, 14},  {512, 512, 3, 7},   {64, 64, 1, 56},
        {64, 256, 1, 56},  {256, 64, 1, 56},  {128, 512, 1, 28},  {512, 128, 1, 28},  {256, 1024, 1, 14},
        {1024, 256, 1, 14}, {512, 2048, 1, 7}, {2048, 512, 1, 7},
    };
    enum { B = 8 };
    openblas_set_num_threads(1);
    long iters = 20000000;
    double c0 = thread_cpu();
    g_fma_sink += cs_gemm_fma_loop(iters);
    double fma = (double)iters * 24 * 32 / (thread_cpu() - c0) / 1e9;
    printf("resnet layers, batch %d, 1 thread, GFLOP per CPU-second; FMA peak (register-only loop, this thread) "
           "%.1f\n", B, fma);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        rn_layer L = {shapes[i], B, 0, 0, 0, 0, 0, 0};
        size_t hw = (size_t)L.s.hw * L.s.hw, nx = (size_t)L.s.cin * B * hw, ny = (size_t)L.s.cout * B * hw;
        size_t nw = (size_t)L.s.cout * L.s.cin * L.s.k * L.s.k;
        L.x = malloc(nx * sizeof(float)), L.y = malloc(ny * sizeof(float)), L.w = malloc(nw * sizeof(float));
        L.b = calloc((size_t)L.s.cout, sizeof(float));
        for (size_t j = 0; j < nx; j++) L.x[j] = gauss(j + (7ULL << 58));
        for (size_t j = 0; j < nw; j++) L.w[j] = 0.05f * gauss(j + (9ULL << 58));
        double gf = 2.0 * nw * B * hw / 1e9, ours;
        if (L.s.k == 3) {
            L.U = malloc((size_t)16 * L.s.cout * L.s.cin * sizeof(float));
            cs_wino_weights(L.U, L.w, L.s.cout, L.s.cin);
            int tile = cs_wino_tile(L.s.cin, L.s.cout, B, L.s.hw, L.s.hw);
            L.ws = malloc(cs_wino_scratch(L.s.cin, L.s.cout, L.s.hw, tile) * sizeof(float));
            ours = per_cpu_s(rn_wino, &L);
        } else {
            ours = per_cpu_s(rn_gemm1x1, &L);
        }
        cs_conv_weights_keep(&L, L.w, nw);
        double dnn = per_cpu_s(rn_onednn, &L);
        cs_conv_weights_forget(&L);
        printf("  %dx%d %4d -> %4d at %3dx%-3d %6.2f GFLOP: %s %6.1f GFLOP/CPU-s (%3.0f%% of FMA peak), oneDNN conv "
               "kept weights %6.1f (%3.0f%%): ours %.2fx\n",
               L.s.k, L.s.k, L.s.cin, L.s.cout, L.s.hw, L.s.hw, gf, L.s.k == 3 ? "winograd" : "sgemm   ", gf / ours,
               100 * gf / ours / fma, gf / dnn, 100 * gf / dnn / fma, dnn / ours);
        free(L.x), free(L.y), free(L.w), free(L.b), free(L.U), free(L.ws);
    }
    openblas_set_num_threads(THREADS);
}

static int wanted(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines appear as they happen */
    const char *d = getenv("CS_BENCH_DIR");
    snprintf(dir, sizeof dir, "%s", d ? d : "/tmp/copyscope-bench-embed");
    mkdir(dir, 0755);
    snprintf(dbpath, sizeof dbpath, "%s/db.vec", dir);
    snprintf(qpath, sizeof qpath, "%s/queries.f32", dir);
    cs_set_threads(THREADS);
    openblas_set_num_threads(THREADS);
    int need_data = wanted(argc, argv, "open") || wanted(argc, argv, "exact") || wanted(argc, argv, "approx");
    if (need_data && ensure_data()) return 1;
    if (wanted(argc, argv, "open")) bench_open();
    if (wanted(argc, argv, "exact") || wanted(argc, argv, "approx")) bench_exact();
    if (wanted(argc, argv, "approx")) bench_approx();
    if (wanted(argc, argv, "resnet")) bench_resnet();
    if (argc > 1 && wanted(argc, argv, "resnet-layers")) bench_resnet_layers();
    return 0;
}
