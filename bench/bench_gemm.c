/* bench_gemm.c — the matrix products of SD 1.5's UNet (64x64 latent, batch
 * 2), text encoder and attention, through nn_sgemm on each path this CPU
 * has: OpenBLAS in fixed slices (the AVX2 path, CS_ISA capped), our AVX-512
 * kernel in fp32 and bf16, beside the machine's limits measured in the same
 * run: the register-only AVX-512 FMA loop (fp32 peak) per core and on every
 * thread, and OpenBLAS's sgemm on a 3072^3 product. Environment:
 * BENCH_GEMM_THREADS (default 2), BENCH_GEMM_REPS (default 3, best of). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <sys/resource.h>
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

/* user + system time of all threads: on a loaded machine GFLOP per
 * CPU-second is far steadier than per wall-second */
static double cpu_secs(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static volatile float g_sink;
static void fma_item(void *ctx, int64_t i, int thread) {
    (void)i, (void)thread;
    g_sink += cs_gemm_fma_loop(*(long *)ctx);
}

/* GFLOP/s of the register-only FMA loop on nt threads at once (best of 3). */
static double fma_peak(int nt, double *cpu_basis) {
    long iters = 20000000;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now(), c0 = cpu_secs();
        cs_parallel_for(nt, nt, fma_item, &iters);
        double f = (double)iters * 24 * 32 * nt;
        double g = f / (now() - t0) / 1e9, gc = f / (cpu_secs() - c0) / 1e9;
        if (g > best) best = g;
        if (gc > *cpu_basis) *cpu_basis = gc;
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

/* GFLOP/s (best of reps); *cpu: best GFLOP per CPU-second */
static double run(const shape *s, int reps, double *cpu) {
    size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
    float *A = rnd(na), *B = rnd(nb), *C = rnd(nc);
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double best = 1e30, bc = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now(), c0 = cpu_secs();
        nn_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.f, A, lda, B, ldb, 0.f, C, s->N);
        double t = now() - t0, c = cpu_secs() - c0;
        if (t < best) best = t;
        if (c < bc) bc = c;
    }
    free(A), free(B), free(C);
    *cpu = 2.0 * s->M * s->N * s->K / bc / 1e9;
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
    double pc1 = 0, pcn = 0;
    double p1 = fma_peak(1, &pc1), pn = fma_peak(nt, &pcn);
    /* OpenBLAS peak: one multi-threaded call, as OpenBLAS runs it */
    int n = 3072;
    float *a = rnd((size_t)n * n), *b = rnd((size_t)n * n), *c = rnd((size_t)n * n);
    openblas_set_num_threads(nt);
    double sb = 1e30, sbc = 1e30;
    for (int r = 0; r < 2; r++) {
        double t0 = now(), c0 = cpu_secs();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        if (now() - t0 < sb) sb = now() - t0;
        if (cpu_secs() - c0 < sbc) sbc = cpu_secs() - c0;
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    double ob = 2.0 * n * n * n / sb / 1e9, obc = 2.0 * n * n * n / sbc / 1e9;
    printf("FMA peak (register-only zmm FMA loop): %.1f GFLOP/s on 1 thread, %.1f on %d threads; per CPU-second "
           "%.1f (1 thread), %.1f (%d)\n", p1, pn, nt, pc1, pcn, nt);
    printf("OpenBLAS sgemm peak (3072^3, %d threads): %.1f GFLOP/s = %.0f%% of FMA peak; per CPU-second %.1f = %.0f%%\n",
           nt, ob, 100 * ob / pn, obc, 100 * obc / pcn);
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
    printf("%-28s %9s %9s %9s %9s   (GFLOP per CPU-second; %% of the FMA loop's, %d threads)\n",
           "product (M N K)", "OpenBLAS", "own", "oneDNN", "own bf16", nt);
    int conv_only = getenv("BENCH_GEMM_CONV_ONLY") != NULL; /* only the 3x3 convolutions' table */
    for (size_t i = 0; i < sizeof sh / sizeof *sh && !conv_only; i++) {
        double g0, g1, g2 = 0;
        cs_cpu_force(CS_ISA_BASE);
        run(&sh[i], reps, &g0);
        cs_cpu_force(-1);
        nn_set_precision(NN_FP32);
        double g3 = 0;
        nn_set_gemm_backend(NN_GEMM_ONEDNN);
        if (cs_gemm_onednn_available()) run(&sh[i], reps, &g3);
        nn_set_gemm_backend(NN_GEMM_OWN);
        run(&sh[i], reps, &g1);
        if (nn_set_precision(NN_BF16) == 0) run(&sh[i], reps, &g2);
        nn_set_precision(NN_FP32);
        nn_set_gemm_backend(NN_GEMM_AUTO);
        printf("%-28s %5.0f %3.0f%% %5.0f %3.0f%% %5.0f %3.0f%% %5.0f %3.0f%%  (%d %d %d%s%s)\n", sh[i].what, g0,
               100 * g0 / pcn, g1, 100 * g1 / pcn, g3, 100 * g3 / pcn, g2, 100 * g2 / pcn, sh[i].M, sh[i].N, sh[i].K, sh[i].ta ? " A^T" : "", sh[i].tb ? " B^T" : "");
    }
    /* attention at the 64x64 level: 8 heads of 40, T = 4096, fused vs unfused */
    if (!conv_only) {
        int T = 4096, H = 8, dh = 40, C = H * dh;
        float *q = rnd((size_t)C * T), *k = rnd((size_t)C * T), *v = rnd((size_t)C * T), *o = rnd((size_t)C * T);
        float *ws = malloc(sizeof(float) * nn_attention_ws(T, T));
        double f = 4.0 * H * (double)T * T * dh, g[2];
        for (int p = 0; p < 2; p++) {
            cs_cpu_force(p ? -1 : CS_ISA_BASE);
            double bc = 1e30;
            for (int r = 0; r < reps; r++) {
                double c0 = cpu_secs();
                nn_attention_cm(o, q, k, v, T, T, H, dh, ws);
                if (cpu_secs() - c0 < bc) bc = cpu_secs() - c0;
            }
            g[p] = f / bc / 1e9;
        }
        cs_cpu_force(-1);
        printf("attention T=4096, 8 heads of 40: unfused (AVX2 sgemm + softmax) %.1f, fused AVX-512 %.1f GFLOP per "
               "CPU-second (%.0f%%, %.0f%% of the FMA loop's): %.2fx\n", g[0], g[1], 100 * g[0] / pcn, 100 * g[1] / pcn,
               g[1] / g[0]);
        free(q), free(k), free(v), free(o), free(ws);
    }
    /* 3x3 convolutions of the UNet (batch 2) and the VAE decoder (batch 1):
     * im2col + nn_sgemm (oneDNN's sgemm) against oneDNN's convolution
     * primitive (core/conv_onednn.c), fp32 and bf16, alternating */
    {
        static const struct { const char *what; int B, cin, cout, hw; } cs[] = {
            {"UNet 320->320, 64x64", 2, 320, 320, 64},   {"UNet 640->320, 64x64", 2, 640, 320, 64},
            {"UNet 640->640, 32x32", 2, 640, 640, 32},   {"UNet 1280->640, 32x32", 2, 1280, 640, 32},
            {"UNet 1280->1280, 16x16", 2, 1280, 1280, 16}, {"UNet 1280->1280, 8x8", 2, 1280, 1280, 8},
            {"VAE 512->512, 128x128", 1, 512, 512, 128}, {"VAE 256->256, 256x256", 1, 256, 256, 256},
            {"VAE 128->128, 512x512", 1, 128, 128, 512},
        };
        /* im2col, the primitive with weights reordered per call (only 32x32
         * and up: smaller images take im2col then), and with weights kept
         * in its layout (cs_conv_weights_keep), fp32 then bf16 */
        printf("%-24s %9s %9s %9s %9s %9s %9s   (3x3 convs, GFLOP per CPU-second; %% of the FMA loop's)\n", "conv",
               "im2col", "oneDNN", "kept", "im2col16", "oneDNN16", "kept16");
        for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
            if (getenv("BENCH_GEMM_CONV_MAX_HW") && cs[i].hw > atoi(getenv("BENCH_GEMM_CONV_MAX_HW"))) continue;
            nn_conv2d_p p = {cs[i].cin, cs[i].cout, 3, 3, 1, 1, 1, 1, 1};
            int hw = cs[i].hw, B = cs[i].B;
            float *x = rnd((size_t)B * p.cin * hw * hw), *wt = rnd((size_t)p.cout * p.cin * 9), *bias = rnd(p.cout);
            float *y = malloc(sizeof(float) * B * p.cout * hw * hw);
            size_t need = nn_conv2d_ws(&p, hw, hw), mn = nn_conv2d_ws_min(&p, hw, hw), nb = nn_conv2d_ws_batched(&p, B, hw, hw);
            size_t cap = (size_t)16 << 20; /* as pipeline/sd_model.c */
            if (B > 1 && (size_t)hw * hw <= 1024 && nb <= cap) need = nb;
            else if (need > cap) need = cap > mn ? cap : mn;
            float *ws = malloc(sizeof(float) * need);
            double f = 2.0 * B * p.cout * p.cin * 9 * hw * hw, g[6] = {0, 0, 0, 0, 0, 0};
            int owner; /* the kept weights: a copy of wt, the others not kept */
            float *wk = malloc(sizeof(float) * p.cout * p.cin * 9);
            memcpy(wk, wt, sizeof(float) * p.cout * p.cin * 9);
            cs_conv_weights_keep(&owner, wk, (size_t)p.cout * p.cin * 9);
            for (int r = 0; r < reps + 1; r++) /* the first round plans, warms and fills the kept copies */
                for (int k = 0; k < 6; k++) {
                    if (nn_set_precision(k >= 3 ? NN_BF16 : NN_FP32)) continue;
                    nn_set_conv_direct(k % 3 != 0 ? 2 : 0);
                    double c0 = cpu_secs();
                    nn_conv2d(y, x, k % 3 == 2 ? wk : wt, bias, &p, B, hw, hw, ws, need);
                    double gc = f / (cpu_secs() - c0) / 1e9;
                    if (r && gc > g[k]) g[k] = gc;
                }
            cs_conv_weights_forget(&owner);
            free(wk);
            nn_set_precision(NN_FP32);
            nn_set_conv_direct(2);
            printf("%-24s", cs[i].what);
            for (int k = 0; k < 6; k++) printf(" %5.0f %3.0f%%", g[k], 100 * g[k] / pcn);
            printf("\n");
            free(x), free(wt), free(bias), free(y), free(ws);
        }
    }
    if (getloadavg(la, 1) > 0) printf("load average at end: %.2f\n", la[0]);
    return 0;
}
