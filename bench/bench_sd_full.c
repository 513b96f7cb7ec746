/* bench_sd_full.c — full-size SD 2.1 (768-v) and SDXL base checkpoints with
 * random weights: written here with the released models' names and shapes
 * (SGM / CompVis single-file layout, F32), loaded with sd_load and no config
 * (the family and every size come from the weights), then one sampling step
 * with guidance (UNet at batch 2) at the native size: SD 2.1 96x96 latent
 * (768x768), SDXL 128x128 (1024x1024), plus peak RSS against the budget
 * fp32 weights + 3 GB.
 *
 * A model is skipped (with the reason) when the disk or the memory available
 * (MemAvailable) is below what it needs, so the bench never pushes a shared
 * machine into swap. Environment: BENCH_SD_FULL = "sd21,sdxl" (default both),
 * BENCH_SD_DIR (default $TMPDIR or /tmp), BENCH_SD_THREADS (default 2),
 * BENCH_SD_LATENT=N overrides the latent side (smaller = quicker). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/nn.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"

#include "bench/sd_ckpt_fake.h"

enum { MAXT = 4000 };
static cs_safetensors_out g_t[MAXT];
static char *g_names[MAXT];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- measuring ------------------------------------------------------------------------- */

static long mem_available_mb(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024;
}

static long peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static void run(const char *name, void (*tensors)(fake_ckpt *), fake_ckpt *ck, int side, const char *dir) {
    tensors(ck);
    const int64_t params = ck->total;
    double gb = params * 4.0 / 1e9;
    printf("%s-shaped checkpoint: %d tensors, %.0fM parameters, %.2f GB f32\n", name, ck->n,
           params / 1e6, gb);
    struct statvfs vfs;
    long avail = mem_available_mb();
    if (statvfs(dir, &vfs) == 0 && (double)vfs.f_bavail * vfs.f_frsize < params * 4.0 + 1e9) {
        printf("  skipped: %s has less than %.1f GB free\n", dir, gb + 1);
    } else if (avail >= 0 && avail < (long)(gb * 1000) + 3000) {
        printf("  skipped: needs fp32 weights + 3 GB = %.1f GB of memory, MemAvailable %.1f GB\n",
               gb + 3, avail / 1000.0);
    } else {
        char path[4096];
        cs_err err = {0};
        snprintf(path, sizeof path, "%s/bench-%s-%d.safetensors", dir, name, (int)getpid());
        double t0 = now();
        if (cs_safetensors_write(path, g_t, ck->n, NULL, &err)) {
            printf("  bench_sd_full: %s\n", err.msg);
            goto out;
        }
        printf("  written in %.1f s\n", now() - t0);
        sd_model *m = NULL;
        t0 = now();
        if (sd_load(&m, path, NULL, &err)) {
            printf("  bench_sd_full: %s\n", err.msg);
            remove(path);
            goto out;
        }
        printf("  sd_load (no config): %.2f s, family %s, prediction %s, context %d, adm %d\n",
               now() - t0, sd_family_name(sd_family(m)), sd_prediction(m) ? "v" : "eps",
               sd_context_dim(m), sd_adm_channels(m));
        int D = sd_context_dim(m), A = sd_adm_channels(m);
        size_t n = (size_t)2 * 4 * side * side;
        float *x = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
        float *ctx = calloc((size_t)2 * 77 * D, sizeof(float)), *y = A ? calloc((size_t)2 * A, sizeof(float)) : NULL;
        float t[2] = {500.f, 500.f};
        for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.001 * i);
        nn_flops_reset();
        t0 = now();
        int rc = sd_unet(m, x, t, ctx, y, 2, side, side, o, &err);
        double s = now() - t0;
        if (rc) printf("  bench_sd_full: %s\n", err.msg);
        else
            printf("  one step with guidance (UNet batch 2, %dx%d latent = %dx%d image): %.1f s, "
                   "%.0f GFLOP, %.1f GFLOP/s\n",
                   side, side, 8 * side, 8 * side, s, nn_flops() / 1e9, nn_flops() / 1e9 / s);
        printf("  peak RSS %.2f GB (budget fp32 weights + 3 GB = %.2f GB): %s\n",
               peak_rss_mb() / 1000.0, gb + 3, peak_rss_mb() / 1000.0 <= gb + 3 ? "ok" : "OVER");
        free(x), free(o), free(ctx), free(y);
        sd_free(m);
        remove(path);
    }
out:
    fk_free_names(ck);
    fflush(stdout);
}

int main(void) {
    const char *thr = getenv("BENCH_SD_THREADS"), *which = getenv("BENCH_SD_FULL");
    const char *lat = getenv("BENCH_SD_LATENT");
    nn_set_threads(thr ? atoi(thr) : 2);
    const char *dir = getenv("BENCH_SD_DIR");
    if (!dir) dir = getenv("TMPDIR");
    if (!dir) dir = "/tmp";
    if (!which) which = "sd21,sdxl";
    fake_ckpt ck = {.t = g_t, .names = g_names, .cap = MAXT, .who = "bench_sd_full"};
    ck.numel = 49408 * 1280; /* the largest tensor: SDXL's OpenCLIP-G token_embedding */
    float *r = malloc(sizeof(float) * ck.numel);
    if (!r) return 1;
    uint64_t s = 99;
    for (int64_t i = 0; i < ck.numel; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        r[i] = ((float)(s >> 40) / (float)(1 << 24) * 2.f - 1.f) * 0.02f;
    }
    ck.rand = r;
    if (strstr(which, "sd21")) run("sd21", fk_sd21, &ck, lat ? atoi(lat) : 96, dir);
    if (strstr(which, "sdxl")) run("sdxl", fk_sdxl, &ck, lat ? atoi(lat) : 128, dir);
    free(r);
    return 0;
}
