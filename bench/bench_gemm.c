/* bench_gemm.c — the matrix products of SD 1.5's UNet (64x64 latent, batch
 * 2), text encoder and attention, through nn_sgemm on each path this CPU
 * has: OpenBLAS in fixed slices (the AVX2 path, CS_ISA capped), our AVX-512
 * kernel in fp32 and bf16, beside the machine's limits measured in the same
 * run: the register-only AVX-512 FMA loop (fp32 peak) per core and on every
 * thread, and OpenBLAS's sgemm on a 3072^3 product. Environment:
 * BENCH_GEMM_THREADS (default 2), BENCH_GEMM_REPS (default 3, best of). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/nn.h"
#include "core/parallel.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile float g_sink;
static void fma_item(void *ctx, int64_t i, int thread) {
    (void)i, (void)thread;
    g_sink += cs_gemm_fma_loop(*(long *)ctx);
}

/* GFLOP/s of the register-only FMA loop on nt threads at once (best of 3). */
static double fma_peak(int nt) {
    long iters = 20000000;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        cs_parallel_for(nt, nt, fma_item, &iters);
        double g = (double)iters * 24 * 32 * nt / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof *p);
    uint64_t s = 0x1234567ull + n;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((s >> 40) / (double)(1 << 24)) - 0.5f;
    }
    return p;
}

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static double run(const shape *s, int reps) {
    size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
    float *A = rnd(na), *B = rnd(nb), *C = rnd(nc);
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        nn_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.f, A, lda, B, ldb, 0.f, C, s->N);
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(A), free(B), free(C);
    return 2.0 * s->M * s->N * s->K / best / 1e9;
}

int main(void) {
    const char *e = getenv("BENCH_GEMM_THREADS");
    int nt = e ? atoi(e) : 2;
    e = getenv("BENCH_GEMM_REPS");
    int reps = e ? atoi(e) : 3;
    nn_set_threads(nt);
    double la[1];
    if (getloadavg(la, 1) > 0) printf("load average at start: %.2f (machine: %d cores)\n", la[0], cs_ncpu());
    int isa = cs_cpu_isa();
    printf("cpu: %s\n", isa >= CS_ISA_AVX512_BF16 ? "AVX-512 + BF16" : isa >= CS_ISA_AVX512 ? "AVX-512" : "no AVX-512");
    if (isa < CS_ISA_AVX512) {
        printf("bench_gemm: skipped (no AVX-512)\n");
        return 0;
    }
    double p1 = fma_peak(1), pn = fma_peak(nt);
    /* OpenBLAS peak: one multi-threaded call, as OpenBLAS runs it */
    int n = 3072;
    float *a = rnd((size_t)n * n), *b = rnd((size_t)n * n), *c = rnd((size_t)n * n);
    openblas_set_num_threads(nt);
    double sb = 1e30;
    for (int r = 0; r < 2; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        if (now() - t0 < sb) sb = now() - t0;
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    double ob = 2.0 * n * n * n / sb / 1e9;
    printf("FMA peak (register-only zmm FMA loop): %.1f GFLOP/s on 1 thread, %.1f on %d threads\n", p1, pn, nt);
    printf("OpenBLAS sgemm peak (3072^3, %d threads): %.1f GFLOP/s = %.0f%% of FMA peak\n", nt, ob, 100 * ob / pn);
    static const shape sh[] = {
        {"conv 3x3 320, 64x64", 0, 0, 320, 8192, 2880},
        {"conv 3x3 640, 32x32", 0, 0, 640, 2048, 5760},
        {"conv 3x3 1280, 16x16", 0, 0, 1280, 512, 11520},
        {"conv 3x3 1280, 8x8", 0, 0, 1280, 128, 11520},
        {"FF in 320->2560, 64x64", 0, 0, 2560, 8192, 320},
        {"FF out 1280->320, 64x64", 0, 0, 320, 8192, 1280},
        {"attn QK^T (T=4096, dh 40)", 1, 0, 256, 4096, 40},
        {"attn V S^T (T=4096, dh 40)", 0, 1, 40, 256, 4096},
        {"text linear 768 (T=154)", 0, 1, 154, 768, 768},
        {"text FF 768->3072 (T=154)", 0, 1, 154, 3072, 768},
    };
    printf("%-28s %9s %9s %9s   (GFLOP/s; %% of FMA peak on %d threads)\n", "product (M N K)", "OpenBLAS", "avx512",
           "bf16", nt);
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        cs_cpu_force(CS_ISA_BASE);
        double g0 = run(&sh[i], reps);
        cs_cpu_force(-1);
        nn_set_precision(NN_FP32);
        double g1 = run(&sh[i], reps);
        double g2 = 0;
        if (nn_set_precision(NN_BF16) == 0) g2 = run(&sh[i], reps);
        nn_set_precision(NN_FP32);
        printf("%-28s %5.0f %3.0f%% %5.0f %3.0f%% %5.0f %3.0f%%  (%d %d %d%s%s)\n", sh[i].what, g0, 100 * g0 / pn, g1,
               100 * g1 / pn, g2, 100 * g2 / pn, sh[i].M, sh[i].N, sh[i].K, sh[i].ta ? " A^T" : "", sh[i].tb ? " B^T" : "");
    }
    if (getloadavg(la, 1) > 0) printf("load average at end: %.2f\n", la[0]);
    return 0;
}
