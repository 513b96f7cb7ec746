/* bench_sd.c — SD 1.5-sized text encoder, UNet and VAE speed on this machine.
 *
 * Writes a full SD-1.5-shaped single-file checkpoint with random weights
 * (CompVis names, F32, ~4.3 GB; every tensor's bytes come from one random
 * buffer, so writing needs little memory) into a temporary folder, loads it
 * with sd_load and times:
 *   UNet forward at batch 2 (as with guidance) on 32x32 and 64x64 latents,
 *   VAE decode of a 64x64 latent (512x512 image), text encoder at batch 2,
 * each with its GFLOP (counted sgemm work) and GFLOP/s, beside this machine's
 * sgemm peak measured in the same run (a large cblas_sgemm) and the anchors:
 * the original PyTorch implementation (torch 1.13, 2 threads) and
 * stable-diffusion.cpp as published in issue 3, and bench/bench_sd_torch.py
 * (the same UNet in torch.nn.functional, checked against the sd-tiny cases
 * with --check) run on the same checkpoint at 32x32 (also 64x64 with
 * BENCH_SD_TORCH_FULL=1; BENCH_SD_NO_TORCH=1 skips it). Also: peak RSS
 * against f32 weights + 2 GB, and the F16 widening cost that decided "widen
 * once at load".
 *
 * Environment: BENCH_SD_DIR (where to write; default $TMPDIR or /tmp),
 * BENCH_SD_KEEP=1 keeps the checkpoint, BENCH_SD_THREADS (default 2, the
 * anchors' thread count), BENCH_SD_QUICK=1 skips the 64x64 runs,
 * BENCH_SD_CKPT=FILE reuses a kept checkpoint, BENCH_SD_UNET_ONLY=32|64 times
 * only that UNet size (for profiling), BENCH_SD_VAE_ONLY=1 times only the VAE
 * decode (fp32, after a warm-up call, then bf16 with its PSNR against the
 * fp32 image), BENCH_SD_NO_BF16=1 skips the bf16 UNet, BENCH_SD_AB=1 times the
 * UNet with im2col convs against oneDNN's in turn, BENCH_SD_AB_UP2=1 its upsampling convs unfused
 * against fused in turn, BENCH_SD_NO_TORCH=1 skips the anchor,
 * BENCH_SD_AB_ATTN=1 times the bf16 UNet with its attention in fp32, with
 * only P.V in bf16 and with both products in bf16 in turn, BENCH_SD_BF16_REPS=N
 * times N bf16, N fp32 and N more bf16 warm calls (the ratio of their sums),
 * BENCH_SD_BF16_ONLY=1 times the UNet in bf16 only (profiling),
 * BENCH_SD_JSON=FILE writes the main figures as JSON (seconds per call; null
 * when not measured). Every figure is also given as a fraction of the
 * machine's fp32 limit measured in the same run: the register-only AVX-512
 * FMA loop (cs_gemm_fma_loop). The UNet also runs in bf16 (nn_set_precision)
 * and, at 32x32, on the AVX2/OpenBLAS path (CS_ISA capped). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"

#include "bench/sd_ckpt_fake.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the checkpoint (bench/sd_ckpt_fake.h: SD 1.5's names and shapes) ---- */

enum { MAXT = 1400 };
static cs_safetensors_out g_t[MAXT];
static char *g_names[MAXT];

/* ---- measurements ------------------------------------------------------------------------- */

static float *rand_floats(size_t n, float scale, uint64_t seed) {
    float *p = malloc(sizeof(float) * n);
    if (!p) return NULL;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = ((float)(s >> 40) / (float)(1 << 24) * 2.f - 1.f) * scale;
    }
    return p;
}

static double cpu_secs(void) { /* user + system time of all threads */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static double g_peak_cpu; /* sgemm peak in GFLOP per CPU-second */

static double sgemm_peak(void) {
    int n = 3072;
    float *a = rand_floats((size_t)n * n, 1.f, 1), *b = rand_floats((size_t)n * n, 1.f, 2);
    float *c = malloc(sizeof(float) * n * n);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), c0 = cpu_secs();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
        double gc = 2.0 * n * n * (double)n / (cpu_secs() - c0) / 1e9;
        if (g > best) best = g;
        if (gc > g_peak_cpu) g_peak_cpu = gc;
    }
    free(a), free(b), free(c);
    return best;
}

/* The machine's fp32 limit: the register-only AVX-512 FMA loop
 * (cs_gemm_fma_loop) on nt threads at once, best of 3; 0 without AVX-512. */
static double g_fma_peak, g_fma_peak1, g_fma_cpu; /* g_fma_cpu: GFLOP per CPU-second */
static volatile float g_sink;
static void fma_item(void *ctx, int64_t i, int thread) {
    (void)i, (void)thread;
    g_sink += cs_gemm_fma_loop(*(long *)ctx);
}
static double fma_peak(int nt) {
    if (cs_cpu_isa_detected() < CS_ISA_AVX512) return 0;
    long iters = 20000000;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now(), c0 = cpu_secs();
        cs_parallel_for(nt, nt, fma_item, &iters);
        double g = (double)iters * 24 * 32 * nt / (now() - t0) / 1e9;
        double gc = (double)iters * 24 * 32 * nt / (cpu_secs() - c0) / 1e9;
        if (g > best) best = g;
        if (gc > g_fma_cpu) g_fma_cpu = gc;
    }
    return best;
}

/* Vectorised F16 -> F32 (F16C), the fastest per-use widening could be. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c,avx"))) static void f16c_widen_vec(float *f, const uint16_t *h,
                                                               size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
}
#endif
static void f16c_widen(float *f, const uint16_t *h, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("f16c")) {
        f16c_widen_vec(f, h, n);
        for (size_t i = n / 8 * 8; i < n; i++) f[i] = cs_f16_to_f32(h[i]);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) f[i] = cs_f16_to_f32(h[i]);
}

static long peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* Wall-clock figures, plus the same ratio on a CPU-time basis (GFLOP per
 * CPU-second against the sgemm's), which other processes on a shared machine
 * disturb much less. */
static void report(const char *what, double secs, double cpu, double gflop, double peak,
                   const char *anchor) {
    printf("%-28s %8.2f s  %7.1f GFLOP  %6.1f GFLOP/s  %3.0f%% of sgemm peak (cpu-time basis "
           "%3.0f%%)",
           what, secs, gflop, gflop / secs, 100.0 * gflop / secs / peak,
           100.0 * (gflop / cpu) / g_peak_cpu);
    if (g_fma_peak > 0)
        printf(", %3.0f%% of FMA peak (cpu-time basis %3.0f%%)", 100.0 * gflop / secs / g_fma_peak,
               100.0 * (gflop / cpu) / g_fma_cpu);
    if (anchor) printf("  | %s", anchor);
    printf("\n");
    fflush(stdout);
}

int main(void) {
    const char *thr = getenv("BENCH_SD_THREADS");
    int threads = thr ? atoi(thr) : 2;
    if (threads < 1) threads = 1;
    nn_set_threads(threads);
    int quick = getenv("BENCH_SD_QUICK") != NULL;
    double la[3] = {0, 0, 0};
    if (getloadavg(la, 3) > 0) printf("load average at start: %.2f (machine: %d cores)\n", la[0], cs_ncpu());
    double load0 = la[0];
    const char *dir = getenv("BENCH_SD_DIR");
    if (!dir) dir = getenv("TMPDIR");
    if (!dir) dir = "/tmp";

    fake_ckpt ck = {.t = g_t, .names = g_names, .cap = MAXT, .who = "bench_sd"};
    ck.numel = 49408 * 768; /* the largest tensor: token_embedding */
    float *rbuf = rand_floats((size_t)ck.numel, 0.02f, 12345);
    if (!rbuf) return 1;
    ck.rand = rbuf;
    fk_sd15(&ck);
    const int64_t params = ck.total; /* also the peak-RSS budget below */
    double gb = params * 4.0 / 1e9;
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (double)vfs.f_bavail * vfs.f_frsize < params * 4.0 + 1e9) {
        printf("bench_sd: skipped: %s has less than %.1f GB free\n", dir, gb + 1);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-sd15-%d.safetensors", dir, (int)getpid());
    printf("SD 1.5-shaped checkpoint: %d tensors, %.0fM parameters, %.2f GB f32, threads %d\n",
           ck.n, params / 1e6, gb, threads);
    double t0 = now();
    cs_err err = {0};
    const char *reuse = getenv("BENCH_SD_CKPT"); /* a checkpoint kept by an earlier run */
    if (reuse) {
        snprintf(path, sizeof path, "%s", reuse);
        printf("reusing %s\n", path);
    } else if (cs_safetensors_write(path, g_t, ck.n, "{\"format\": \"pt\"}", &err)) {
        printf("bench_sd: %s\n", err.msg);
        return 1;
    } else {
        printf("written in %.1f s: %s\n", now() - t0, path);
    }
    fk_free_names(&ck);
    free(rbuf);

    double peak = sgemm_peak();
    printf("sgemm peak (3072^3, %d threads): %.1f GFLOP/s (%.1f GFLOP per CPU-second)\n", threads,
           peak, g_peak_cpu);
    g_fma_peak1 = fma_peak(1);
    g_fma_peak = fma_peak(threads);
    if (g_fma_peak > 0)
        printf("FMA peak (register-only AVX-512 FMA loop): %.1f GFLOP/s on 1 thread, %.1f on %d threads "
               "(%.1f GFLOP per CPU-second); sgemm peak = %.0f%% of it (cpu-time basis %.0f%%); products on the "
               "%s path\n",
               g_fma_peak1, g_fma_peak, threads, g_fma_cpu, 100 * peak / g_fma_peak, 100 * g_peak_cpu / g_fma_cpu,
               cs_cpu_isa() < CS_ISA_AVX512 ? "AVX2/OpenBLAS (CS_ISA)"
               : cs_gemm_onednn_available() ? "AVX-512 (fp32: oneDNN sgemm; bf16 and attention: own kernel)"
                                            : "AVX-512 (own kernel)");
    else
        printf("FMA peak: not measured (no AVX-512 on this CPU)\n");

    t0 = now();
    sd_model *m = NULL;
    if (sd_load(&m, path, NULL, &err)) {
        printf("bench_sd: %s\n", err.msg);
        if (!reuse) remove(path);
        return 1;
    }
    printf("sd_load (no config: family and sizes from the weights): %.2f s\n", now() - t0);

    /* text encoder, batch 2 */
    int32_t ids[2 * 77];
    for (int i = 0; i < 2 * 77; i++) ids[i] = i % 77 == 0 ? 49406 : (i % 77 < 9 ? 320 + i : 49407);
    float *ctx = malloc(sizeof(float) * 2 * 77 * 768);
    sd_text_encode(m, ids, 2, 1, ctx, &err); /* warm-up: plans the arena, faults in weights */
    nn_flops_reset();
    t0 = now();
    double c0 = cpu_secs();
    if (sd_text_encode(m, ids, 2, 1, ctx, &err)) printf("bench_sd: %s\n", err.msg);
    report("text encoder, batch 2", now() - t0, cpu_secs() - c0, nn_flops() / 1e9, peak, NULL);

    /* UNet, batch 2 */
    float t[2] = {999.f, 999.f};
    int sizes[2] = {32, 64};
    const char *anchors[2] = {
        "torch 1.13 (issue): 374 GFLOP, ~12 s, 30 GFLOP/s",
        "torch 1.13 (issue): 1844 GFLOP, ~98 s, 19 GFLOP/s; sd.cpp 30 s/step at 512x512"};
    double unet_secs[2] = {0, 0}, unet_gflop[2] = {0, 0}, torch_secs[2] = {0, 0};
    double bf16_secs = 0, vae_secs = 0, avx2_secs = 0, unet_cpu[2] = {0, 0};
    const char *only = getenv("BENCH_SD_UNET_ONLY"); /* "32" or "64": profiling one size */
    int vae_only = getenv("BENCH_SD_VAE_ONLY") != NULL;
    double vae_cpu = 0, vae_bf16_secs = 0, vae_psnr = 0;
    int warmed = 0, bf16_only = getenv("BENCH_SD_BF16_ONLY") != NULL;
    if (bf16_only && nn_set_precision(NN_BF16)) bf16_only = 0;
    for (int si = 0; si < (quick ? 1 : 2); si++) {
        int s = sizes[si];
        if ((only && atoi(only) != s) || vae_only) continue;
        size_t n = (size_t)2 * 4 * s * s;
        float *x = rand_floats(n, 1.f, 7), *eps = malloc(sizeof(float) * n);
        /* warm-up at the first size timed: plans and first-touches the buffers */
        if (!warmed++) sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err);
        nn_flops_reset();
        t0 = now();
        c0 = cpu_secs();
        if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
        unet_secs[si] = now() - t0;
        /* the nominal count (the upsampling convs as 3x3 convs over the 2x
         * image, as PyTorch runs them): comparable with the runs before the
         * fused upsampling conv; the work done is printed beside it */
        unet_gflop[si] = nn_flops_nominal() / 1e9;
        printf("  (UNet %dx%d: %.1f GFLOP done, %.1f nominal)\n", s, s, nn_flops() / 1e9, unet_gflop[si]);
        char what[64];
        snprintf(what, sizeof what, "UNet batch 2, %dx%d latent%s", s, s, bf16_only ? " (bf16)" : "");
        unet_cpu[si] = cpu_secs() - c0;
        report(what, unet_secs[si], unet_cpu[si], unet_gflop[si], peak, anchors[si]);
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(eps[i]) != 0;
        if (!finite) printf("  (warning: non-finite outputs)\n");
        free(x), free(eps);
    }
    /* BENCH_SD_AB=1: the same UNet with every conv as im2col + sgemm (as before
     * oneDNN's convolution primitives), with the primitive from 32x32 and its
     * weights reordered per call (as before kept weights), and as now, in
     * turn: the changes measured in one process, on a loaded machine too */
    int abi = quick || (only && atoi(only) == 32) ? 0 : 1;
    if (getenv("BENCH_SD_AB") && unet_secs[abi] > 0) {
        int s = sizes[abi];
        size_t n = (size_t)2 * 4 * s * s;
        float *x = rand_floats(n, 1.f, 7), *eps = malloc(sizeof(float) * n);
        double cs[3] = {0, 0, 0}, ws[3] = {0, 0, 0};
        for (int r = 0; r < 6; r++) {
            nn_set_conv_direct(r % 3);
            t0 = now();
            c0 = cpu_secs();
            if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
            ws[r % 3] += now() - t0, cs[r % 3] += cpu_secs() - c0;
        }
        nn_set_conv_direct(2);
        printf("A/B UNet %dx%d, 2 runs each in turn, per call: im2col convs %.2f s (%.2f CPU-s); oneDNN convs from "
               "32x32, weights reordered per call %.2f s (%.2f CPU-s); kept weights, from 16x16 %.2f s (%.2f CPU-s): "
               "kept vs per call %.2fx (cpu-time basis %.2fx), vs im2col %.2fx (%.2fx)\n",
               s, s, ws[0] / 2, cs[0] / 2, ws[1] / 2, cs[1] / 2, ws[2] / 2, cs[2] / 2, ws[1] / ws[2], cs[1] / cs[2],
               ws[0] / ws[2], cs[0] / cs[2]);
        free(x), free(eps);
    }
    /* BENCH_SD_AB_UP2=1: the UNet's Upsample as nearest 2x + 3x3 conv and as
     * the fused four 2x2 convs (nn_conv2d_up2), in turn, on the nominal FLOPs */
    if (getenv("BENCH_SD_AB_UP2") && unet_secs[abi] > 0) {
        int s = sizes[abi];
        size_t n = (size_t)2 * 4 * s * s;
        float *x = rand_floats(n, 1.f, 7), *eps = malloc(sizeof(float) * n);
        double cs[2] = {0, 0}, ws[2] = {0, 0};
        for (int r = 0; r < 4; r++) {
            nn_set_conv_direct(r % 2 ? 2 : 3);
            t0 = now();
            c0 = cpu_secs();
            if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
            ws[r % 2] += now() - t0, cs[r % 2] += cpu_secs() - c0;
        }
        nn_set_conv_direct(2);
        printf("A/B UNet %dx%d, 2 runs each in turn, per call: upsample + 3x3 conv %.2f s (%.2f CPU-s); fused "
               "upsampling conv %.2f s (%.2f CPU-s): %.2fx (cpu-time basis %.2fx); on the nominal %.0f GFLOP: "
               "%.0f%% / %.0f%% of the FMA peak per CPU-second\n",
               s, s, ws[0] / 2, cs[0] / 2, ws[1] / 2, cs[1] / 2, ws[0] / ws[1], cs[0] / cs[1], unet_gflop[abi],
               g_fma_cpu > 0 ? 100 * unet_gflop[abi] / (cs[0] / 2) / g_fma_cpu : 0,
               g_fma_cpu > 0 ? 100 * unet_gflop[abi] / (cs[1] / 2) / g_fma_cpu : 0);
        free(x), free(eps);
    }
    /* the same UNet in bf16 (64x64, or 32x32 with BENCH_SD_QUICK) and, at
     * 32x32, on the AVX2/OpenBLAS path: both beside the fp32 AVX-512 figure */
    int bsi = quick || (only && atoi(only) == 32) ? 0 : 1;
    if (bf16_only) nn_set_precision(NN_FP32);
    if (unet_secs[bsi] > 0 && !bf16_only && !getenv("BENCH_SD_NO_BF16") && nn_set_precision(NN_BF16) == 0) {
        int s = sizes[bsi];
        size_t n = (size_t)2 * 4 * s * s;
        float *x = rand_floats(n, 1.f, 7), *eps = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
        nn_set_precision(NN_FP32);
        sd_unet_eps(m, x, t, ctx, 2, s, s, ref, &err);
        nn_set_precision(NN_BF16);
        /* warm, as the fp32 figure: the first bf16 call makes its plans (JIT)
         * and the kept weight copies (0.77x the fp32 call at 32x32 cold) */
        sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err);
        nn_flops_reset();
        t0 = now();
        c0 = cpu_secs();
        if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
        bf16_secs = now() - t0;
        double bc = cpu_secs() - c0;
        nn_set_precision(NN_FP32);
        char what[64], anc[160];
        snprintf(what, sizeof what, "UNet bf16, %dx%d latent", s, s);
        snprintf(anc, sizeof anc, "%.2fx the fp32 path (cpu-time basis %.2fx); rel. difference from fp32 %.2g",
                 unet_secs[bsi] / bf16_secs, unet_cpu[bsi] / bc, nn_rel_err(eps, ref, n));
        report(what, bf16_secs, bc, nn_flops_nominal() / 1e9, peak, anc);
        /* BENCH_SD_AB=1: bf16 as before kept weights (per-call reorders, the
         * primitive from 32x32: nn_set_conv_direct(1)) and as now, in turn,
         * warm (the call above made the plans and the kept copies) */
        if (getenv("BENCH_SD_AB")) {
            double cs[2] = {0, 0}, ws[2] = {0, 0};
            nn_set_precision(NN_BF16);
            for (int r = 0; r < 4; r++) {
                nn_set_conv_direct(r % 2 ? 2 : 1);
                t0 = now();
                c0 = cpu_secs();
                if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
                ws[r % 2] += now() - t0, cs[r % 2] += cpu_secs() - c0;
            }
            nn_set_conv_direct(2);
            nn_set_precision(NN_FP32);
            printf("A/B UNet bf16 %dx%d, 2 runs each in turn, per call: per-call weight reorders %.2f s (%.2f CPU-s); "
                   "kept weights, from 8x8 %.2f s (%.2f CPU-s): %.2fx (cpu-time basis %.2fx)\n",
                   s, s, ws[0] / 2, cs[0] / 2, ws[1] / 2, cs[1] / 2, ws[0] / ws[1], cs[0] / cs[1]);
        }
        /* BENCH_SD_AB_ATTN=1: the bf16 UNet's fused attention in fp32, with
         * P.V in bf16, with both products in bf16 (the default), in turn */
        if (getenv("BENCH_SD_AB_ATTN")) {
            double cs[3] = {0, 0, 0}, ws[3] = {0, 0, 0}, rel[3] = {0, 0, 0};
            const int parts[3] = {0, NN_ATTN_BF16_PV, NN_ATTN_BF16_PV | NN_ATTN_BF16_QK};
            nn_set_precision(NN_BF16);
            for (int r = 0; r < 6; r++) {
                nn_set_attention_bf16(parts[r % 3]);
                t0 = now();
                c0 = cpu_secs();
                if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
                ws[r % 3] += now() - t0, cs[r % 3] += cpu_secs() - c0;
                rel[r % 3] = nn_rel_err(eps, ref, n);
            }
            nn_set_attention_bf16(NN_ATTN_BF16_PV | NN_ATTN_BF16_QK);
            nn_set_precision(NN_FP32);
            printf("A/B UNet bf16 %dx%d, 2 runs each in turn, per call: attention fp32 %.2f s (%.2f CPU-s, rel. %.2g); "
                   "P.V bf16 %.2f s (%.2f CPU-s, rel. %.2g); QK^T and P.V bf16 %.2f s (%.2f CPU-s, rel. %.2g): "
                   "%.2fx / %.2fx the fp32 attention (cpu-time basis %.2fx / %.2fx)\n",
                   s, s, ws[0] / 2, cs[0] / 2, rel[0], ws[1] / 2, cs[1] / 2, rel[1], ws[2] / 2, cs[2] / 2, rel[2],
                   ws[0] / ws[1], ws[0] / ws[2], cs[0] / cs[1], cs[0] / cs[2]);
        }
        /* BENCH_SD_BF16_REPS=N: N more bf16 calls, then a warm-up and N fp32
         * calls, then a warm-up and N bf16: not interleaved, since a change of
         * precision remakes the kept weight copies (one precision is kept:
         * core/conv_onednn.c), which made each interleaved bf16 call a cold
         * one (1.0x fp32 per CPU-second under load) */
        const char *reps = getenv("BENCH_SD_BF16_REPS");
        if (reps && atoi(reps) > 0) {
            int R = atoi(reps);
            double cs[2] = {0, 0}, ws[2] = {0, 0};
            for (int r = 0; r < 3 * R + 2; r++) {
                int bf = r < R || r > 2 * R, timed = r != R && r != 2 * R + 1;
                nn_set_precision(bf ? NN_BF16 : NN_FP32);
                if (!timed) {
                    sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err);
                    continue;
                }
                t0 = now();
                c0 = cpu_secs();
                if (sd_unet_eps(m, x, t, ctx, 2, s, s, eps, &err)) printf("bench_sd: %s\n", err.msg);
                ws[bf] += now() - t0, cs[bf] += cpu_secs() - c0;
            }
            R *= 2; /* bf16 calls timed: 2R; fp32: R */
            ws[0] *= 2, cs[0] *= 2;
            nn_set_precision(NN_FP32);
            printf("UNet %dx%d, %d fp32 and %d bf16 warm calls (bf16, fp32, bf16 blocks), per call: fp32 %.2f s (%.2f CPU-s), bf16 %.2f s "
                   "(%.2f CPU-s): bf16 %.2fx fp32 (cpu-time basis %.2fx)\n",
                   s, s, R / 2, R, ws[0] / R, cs[0] / R, ws[1] / R, cs[1] / R, ws[0] / ws[1], cs[0] / cs[1]);
        }
        free(x), free(eps), free(ref);
    }
    if (unet_secs[0] > 0 && cs_cpu_isa() >= CS_ISA_AVX512) {
        size_t n = (size_t)2 * 4 * 32 * 32;
        float *x = rand_floats(n, 1.f, 7), *eps = malloc(sizeof(float) * n);
        cs_cpu_force(CS_ISA_BASE);
        nn_flops_reset();
        t0 = now();
        c0 = cpu_secs();
        if (sd_unet_eps(m, x, t, ctx, 2, 32, 32, eps, &err)) printf("bench_sd: %s\n", err.msg);
        avx2_secs = now() - t0;
        double ac = cpu_secs() - c0;
        cs_cpu_force(-1);
        char anc[128];
        snprintf(anc, sizeof anc, "the AVX-512 path is %.2fx faster (cpu-time basis %.2fx)", avx2_secs / unet_secs[0],
                 ac / unet_cpu[0]);
        report("UNet 32x32, AVX2/OpenBLAS", avx2_secs, ac, nn_flops_nominal() / 1e9, peak, anc);
        free(x), free(eps);
    }

    if (unet_secs[0] > 0) {
        printf("  per sampling step with guidance: 256x256 %.1f s (sd.cpp ~5.9 s, ratio %.1fx)",
               unet_secs[0], 5.9 / unet_secs[0]);
        if (unet_secs[1] > 0)
            printf(", 512x512 %.1f s (sd.cpp ~30 s, ratio %.1fx; torch ~98 s, ratio %.1fx)",
                   unet_secs[1], 30.0 / unet_secs[1], 98.0 / unet_secs[1]);
        printf("\n");
    }

    /* PyTorch anchor on the same checkpoint (same run, same thread count) */
    if (!getenv("BENCH_SD_NO_TORCH") && !only && !vae_only && access("/usr/bin/python3", X_OK) == 0) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "BENCH_SD_THREADS=%d /usr/bin/python3 bench/bench_sd_torch.py '%s' 32%s 2>&1",
                 threads, path, getenv("BENCH_SD_TORCH_FULL") && !quick ? " 64" : "");
        FILE *p = popen(cmd, "r");
        char line[512];
        while (p && fgets(line, sizeof line, p)) {
            int sz;
            double ts;
            if (sscanf(line, "torch unet %d: %lf s", &sz, &ts) == 2) {
                int si = sz == 32 ? 0 : 1;
                torch_secs[si] = ts;
                printf("torch 1.13 UNet batch 2, %dx%d (this run): %.2f s, %.1f GFLOP/s; ours "
                       "%.2f s: ratio %.1fx\n",
                       sz, sz, ts, unet_gflop[si] / ts, unet_secs[si],
                       unet_secs[si] > 0 ? ts / unet_secs[si] : 0);
            } else {
                printf("  torch: %s", line);
            }
        }
        if (p) pclose(p);
        fflush(stdout);
    }

    /* VAE decode of a 64x64 latent: a warm-up call (the arena's first touch,
     * the convolution primitives' JIT), the timed fp32 call, then bf16 with
     * the PSNR of its 8-bit image against the fp32 one */
    if (!quick && (!only || vae_only)) {
        size_t npix = (size_t)3 * 512 * 512;
        float *z = rand_floats(4 * 64 * 64, 1.f, 9), *img = malloc(sizeof(float) * npix);
        float *img16 = malloc(sizeof(float) * npix);
        sd_vae_decode(m, z, 1, 64, 64, img, &err);
        nn_flops_reset();
        t0 = now();
        c0 = cpu_secs();
        if (sd_vae_decode(m, z, 1, 64, 64, img, &err)) printf("bench_sd: %s\n", err.msg);
        double vs = now() - t0;
        vae_secs = vs;
        vae_cpu = cpu_secs() - c0;
        double vflop = nn_flops() / 1e9;
        char anc[160];
        snprintf(anc, sizeof anc, "sd.cpp (issue): ~60 s, ratio %.1fx", 60.0 / vs);
        report("VAE decode 64x64 -> 512x512", vs, vae_cpu, vflop, peak, anc);
        if (nn_set_precision(NN_BF16) == 0) {
            t0 = now();
            c0 = cpu_secs();
            if (sd_vae_decode(m, z, 1, 64, 64, img16, &err)) printf("bench_sd: %s\n", err.msg);
            vae_bf16_secs = now() - t0;
            double bc = cpu_secs() - c0;
            nn_set_precision(NN_FP32);
            /* PSNR on the 8-bit scale: 255 * clamp((x + 1) / 2), as the PNGs */
            double se = 0, sum = 0, sum2 = 0;
            for (size_t i = 0; i < npix; i++) {
                double a = img[i] < -1 ? 0 : img[i] > 1 ? 255 : 127.5 * (img[i] + 1.0);
                double b = img16[i] < -1 ? 0 : img16[i] > 1 ? 255 : 127.5 * (img16[i] + 1.0);
                se += (a - b) * (a - b), sum += a, sum2 += a * a;
            }
            double mse = se / npix, mean = sum / npix, sd = sqrt(fmax(0, sum2 / npix - mean * mean));
            vae_psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99;
            snprintf(anc, sizeof anc,
                     "%.2fx the fp32 path (cpu-time basis %.2fx); PSNR vs fp32 %.1f dB (fp32 image: mean %.1f, "
                     "std %.1f of 255)",
                     vs / vae_bf16_secs, vae_cpu / bc, vae_psnr, mean, sd);
            report("VAE decode bf16", vae_bf16_secs, bc, vflop, peak, anc);
        }
        /* BENCH_SD_AB=1: the decode as before kept weights (per-call weight
         * reorders, upsampling then conv: nn_set_conv_direct(1)) and as now,
         * in turn; FLOPs of the unfused decode (the nominal count) for both */
        if (getenv("BENCH_SD_AB")) {
            double cs[2] = {0, 0}, ws[2] = {0, 0}, nominal = 0;
            for (int r = 0; r < 4; r++) {
                nn_set_conv_direct(r % 2 ? 2 : 1);
                nn_flops_reset();
                t0 = now();
                c0 = cpu_secs();
                if (sd_vae_decode(m, z, 1, 64, 64, img16, &err)) printf("bench_sd: %s\n", err.msg);
                ws[r % 2] += now() - t0, cs[r % 2] += cpu_secs() - c0;
                if (r % 2 == 0) nominal = nn_flops() / 1e9;
            }
            nn_set_conv_direct(2);
            printf("A/B VAE decode 512x512, 2 runs each in turn, per call: before (per-call reorders, upsample + conv) "
                   "%.2f s (%.2f CPU-s); kept weights + fused upsampling conv %.2f s (%.2f CPU-s): %.2fx (cpu-time "
                   "basis %.2fx); on the unfused %.0f GFLOP: %.0f%% / %.0f%% of the FMA peak per CPU-second\n",
                   ws[0] / 2, cs[0] / 2, ws[1] / 2, cs[1] / 2, ws[0] / ws[1], cs[0] / cs[1], nominal,
                   g_fma_cpu > 0 ? 100 * nominal / (cs[0] / 2) / g_fma_cpu : 0,
                   g_fma_cpu > 0 ? 100 * nominal / (cs[1] / 2) / g_fma_cpu : 0);
        }
        free(z), free(img), free(img16);
    }

    /* F16 weights: widening per use would redo this on every forward pass */
    {
        size_t n = (size_t)16 << 20;
        uint16_t *h = malloc(n * 2);
        float *f = malloc(n * 4);
        for (size_t i = 0; i < n; i++) h[i] = cs_f32_to_f16((float)(i % 1000) * 1e-3f);
        t0 = now();
        for (size_t i = 0; i < n; i++) f[i] = cs_f16_to_f32(h[i]);
        double per = (now() - t0) / n;
        t0 = now();
        f16c_widen(f, h, n);
        double per_vec = (now() - t0) / n;
        int si = unet_secs[0] > 0 ? 0 : 1;
        printf("F16 -> F32 widening: %.2f ns/weight (cs_f16_to_f32), %.2f ns/weight (F16C); "
               "UNet's 860M weights per forward if widened per use: %.2f s / %.2f s (vs %.2f s "
               "forward at %dx%d) -> widened once at load (memory stays within f32 weights + "
               "2 GB)\n",
               per * 1e9, per_vec * 1e9, per * 860e6, per_vec * 860e6, unet_secs[si], sizes[si],
               sizes[si]);
        free(h), free(f);
    }

    if (getloadavg(la, 3) > 0)
        printf("load average at end: %.2f (published anchors were measured on an otherwise idle "
               "machine of this kind; this run's figures beside them are only comparable when "
               "the load stays near 0)\n",
               la[0]);
    const char *jpath = bf16_only ? NULL : getenv("BENCH_SD_JSON"); /* its UNet figures are bf16 */
    if (jpath) {
        FILE *jf = fopen(jpath, "w");
        if (!jf) {
            printf("bench_sd: %s: cannot write\n", jpath);
        } else {
#define JV(v) ((v) > 0 ? fprintf(jf, "%.4g", (double)(v)) : fprintf(jf, "null"))
            fprintf(jf, "{\"unet32_s\": "), JV(unet_secs[0]);
            fprintf(jf, ", \"unet64_s\": "), JV(unet_secs[1]);
            fprintf(jf, ", \"unet64_gflop\": "), JV(unet_gflop[1]);
            fprintf(jf, ", \"fma_peak_gflops\": "), JV(g_fma_peak);
            fprintf(jf, ", \"sgemm_peak_gflops\": "), JV(peak);
            fprintf(jf, ", \"vae512_s\": "), JV(vae_secs);
            fprintf(jf, ", \"bf16_unet64_s\": "), JV(bsi == 1 ? bf16_secs : 0);
            fprintf(jf, ", \"torch32_s\": "), JV(torch_secs[0]);
            fprintf(jf, ", \"avx2_unet32_s\": "), JV(avx2_secs);
            fprintf(jf, ", \"unet64_cpu_s\": "), JV(unet_cpu[1]);
            fprintf(jf, ", \"vae512_cpu_s\": "), JV(vae_cpu);
            fprintf(jf, ", \"bf16_vae512_s\": "), JV(vae_bf16_secs);
            fprintf(jf, ", \"bf16_vae512_psnr_db\": "), JV(vae_psnr);
            fprintf(jf, ", \"fma_peak_cpu_gflops\": "), JV(g_fma_cpu);
            fprintf(jf, ", \"sgemm_peak_cpu_gflops\": "), JV(g_peak_cpu);
            fprintf(jf, ", \"threads\": %d, \"load_start\": %.2f}\n", threads, load0);
#undef JV
            fclose(jf);
            printf("figures written to %s\n", jpath);
        }
    }
    long rss = peak_rss_mb();
    printf("peak RSS %ld MB; f32 weights %.0f MB + 2048 MB = %.0f MB budget: %s\n", rss,
           params * 4.0 / 1048576, params * 4.0 / 1048576 + 2048,
           rss <= params * 4.0 / 1048576 + 2048 ? "within" : "OVER");
    sd_free(m);
    free(ctx);
    if (!getenv("BENCH_SD_KEEP") && !reuse) remove(path);
    else printf("kept %s\n", path);
    return 0;
}
