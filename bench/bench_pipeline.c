/* bench_pipeline.c — generation-side speed.
 *
 * 1. The empirical model: 10,000 synthetic references at 64x64x3, a guided
 *    Euler step (one batched call on [all refs, caption subset]) with 2
 *    threads, in denoising steps per second, beside the target
 *    (10 steps/s) and beside the same denoiser in numpy (OpenBLAS, 2 threads)
 *    measured in the same run by bench/pipeline_anchor.py.
 * 2. The sampler's own work outside model evaluations (CFG batching and
 *    combination, the CompVis wrapper, the update, white-box norms) for SD
 *    1.x-sized latents (4x64x64, guidance on), per sampler, measured with a
 *    model whose evaluation is a memset, as a share of a step of the sd-tiny
 *    UNet at the same latent size, batch 2, measured in the same run. sd-tiny
 *    (32 channels) is far lighter than SD 1.5's UNet (320..1280 channels, see
 *    bench_sd), so the share of a real SD 1.x step is smaller still; the
 *    target is < 2%.
 *
 * Environment: BENCH_EMP_REFS (default 10000), BENCH_THREADS (default 2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/nn.h"
#include "core/parallel.h"
#include "pipeline/empirical.h"
#include "pipeline/model.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void synth_refs(cs_ref_thumbs *t, int n) {
    memset(t, 0, sizeof *t);
    t->n = n;
    t->w = t->h = 64;
    t->ids = malloc(sizeof(int64_t) * n);
    t->sources = malloc(sizeof(char *) * n);
    t->captions = malloc(sizeof(char *) * n);
    t->rgb = malloc((size_t)n * 64 * 64 * 3);
    cs_rng r;
    cs_rng_seed(&r, 7);
    for (int i = 0; i < n; i++) {
        t->ids[i] = i + 1;
        char b[64];
        snprintf(b, sizeof b, "synthetic/%d.png", i);
        t->sources[i] = strdup(b);
        snprintf(b, sizeof b, "image %d %s", i, i % 2 ? "odd" : "even");
        t->captions[i] = strdup(b);
        /* smooth-ish images: a random colour per 8x8 block, so distances are image-like */
        uint8_t *p = t->rgb + (size_t)i * 64 * 64 * 3;
        uint8_t blk[8][8][3];
        for (int by = 0; by < 8; by++)
            for (int bx = 0; bx < 8; bx++)
                for (int c = 0; c < 3; c++) blk[by][bx][c] = (uint8_t)(cs_rng_u64(&r) >> 56);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++) p[(y * 64 + x) * 3 + c] = blk[y / 8][x / 8][c];
    }
}

static double bench_empirical(int nrefs, int threads) {
    cs_ref_thumbs t;
    synth_refs(&t, nrefs);
    cs_model *m;
    cs_err e = {0};
    if (cs_model_empirical_new(&m, &t, "empirical:synthetic", &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 0;
    }
    cs_cond *c, *u;
    m->cond_new(m, "even", &c, &e);
    m->cond_new(m, "", &u, &e);
    float *x = malloc(sizeof(float) * 3 * 64 * 64);
    cs_sample_opts o = {.sampler = CS_SAMPLER_EULER, .spacing = CS_SPACING_KARRAS, .steps = 20,
                        .guidance = 3.0f, .whitebox_k = 1};
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        cs_rng r;
        cs_rng_seed(&r, (uint64_t)rep);
        cs_noise nz = cs_noise_rng(&r);
        double t0 = now();
        if (cs_sample(m, &o, c, u, 64, 64, &nz, NULL, x, NULL, &e)) {
            fprintf(stderr, "bench: %s\n", e.msg);
            break;
        }
        double dt = (now() - t0) / o.steps;
        if (dt < best) best = dt;
    }
    printf("empirical model, %d refs 64x64x3, %d threads: %.1f guided Euler steps/s (%.1f ms/step)\n",
           nrefs, threads, 1.0 / best, best * 1e3);
    m->cond_free(m, c);
    m->cond_free(m, u);
    cs_model_free(m);
    free(x);
    return 1.0 / best;
}

/* ---- a model whose evaluation costs (almost) nothing ---- */
struct cs_cond {
    int dummy;
};
static int null_eval(cs_model *m, const float *x, const float *ts, cs_cond *const *conds, int B, int h,
                     int w, float *out, cs_err *err) {
    (void)x, (void)ts, (void)conds, (void)err;
    memset(out, 0, sizeof(float) * (size_t)B * m->channels * h * w);
    return 0;
}

static double sampler_overhead(cs_sampler_kind k, cs_cond *c, cs_cond *u) {
    cs_model m = {.pred = CS_PRED_EPS, .channels = 4, .factor = 8, .eval = null_eval};
    cs_schedule_sd(&m.sched);
    cs_sample_opts o = {.sampler = k, .spacing = CS_SPACING_KARRAS, .steps = 50, .guidance = 7.5f,
                        .eta = k == CS_SAMPLER_DDIM ? 0.5f : 0, .whitebox_k = 1};
    float *x = malloc(sizeof(float) * 4 * 64 * 64);
    cs_err e = {0};
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        cs_rng r;
        cs_rng_seed(&r, 1);
        cs_noise nz = cs_noise_rng(&r);
        cs_sample_trace tr = {0};
        double t0 = now();
        cs_sample(&m, &o, c, u, 64, 64, &nz, NULL, x, &tr, &e);
        double dt = (now() - t0) / cs_sample_count_evals(&o);
        cs_sample_trace_free(&tr);
        if (dt < best) best = dt;
    }
    free(x);
    return best;
}

static double sd_tiny_eval(void) {
    cs_model *m;
    cs_err e = {0};
    cs_model_opts mo = {.config = "../shared/refs/sd-tiny/config.json"};
    if (cs_model_sd_open(&m, "../shared/refs/sd-tiny/model.safetensors", &mo, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 0;
    }
    size_t n = 2 * 4 * 64 * 64;
    float *x = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    float *ctx = calloc(77 * 32, sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 3);
    cs_rng_normal(&r, x, n);
    cs_rng_normal(&r, ctx, 77 * 32);
    cs_cond *c;
    cs_model_sd_cond_from_context(m, ctx, &c, &e);
    cs_cond *conds[2] = {c, c};
    float ts[2] = {500.5f, 500.5f};
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        m->eval(m, x, ts, conds, 2, 64, 64, out, &e);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    m->cond_free(m, c);
    cs_model_free(m);
    free(x);
    free(out);
    free(ctx);
    return best;
}

int main(void) {
    const char *er = getenv("BENCH_EMP_REFS"), *th = getenv("BENCH_THREADS");
    int nrefs = er ? atoi(er) : 10000, threads = th ? atoi(th) : 2;
    nn_set_threads(threads);
    double sps = bench_empirical(nrefs, threads);
    printf("  target 10 steps/s: ratio %.2fx\n", sps / 10.0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d /usr/bin/python3 bench/pipeline_anchor.py %d",
             threads, threads, nrefs);
    FILE *p = popen(cmd, "r");
    double anchor = 0;
    if (p) {
        if (fscanf(p, "%lf", &anchor) != 1) anchor = 0;
        pclose(p);
    }
    if (anchor > 0)
        printf("  anchor numpy (same denoiser, OpenBLAS, %d threads): %.1f steps/s: ratio %.2fx\n", threads,
               anchor, sps / anchor);
    else
        printf("  anchor numpy: not available (/usr/bin/python3 with numpy)\n");

    static struct cs_cond cu, cc;
    double unet = sd_tiny_eval();
    printf("sampler overhead, 4x64x64 latents, guidance 7.5 (batch 2), per model evaluation:\n");
    printf("  anchor: sd-tiny UNet eval at 64x64 batch 2 = %.1f ms (an SD 1.5 UNet eval is heavier still)\n",
           unet * 1e3);
    const cs_sampler_kind ks[] = {CS_SAMPLER_EULER, CS_SAMPLER_EULER_A, CS_SAMPLER_HEUN, CS_SAMPLER_DPMPP_2M,
                                  CS_SAMPLER_DDIM};
    for (int i = 0; i < 5; i++) {
        double ov = sampler_overhead(ks[i], &cc, &cu);
        printf("  %-9s %.3f ms/eval = %.3f%% of an sd-tiny step (target < 2%%: ratio %.0fx under)\n",
               cs_sampler_name(ks[i]), ov * 1e3, 100 * ov / (ov + unet), 0.02 / (ov / (ov + unet)));
    }
    return 0;
}
