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

#define MAXT 4000
static cs_safetensors_out g_t[MAXT];
static char *g_names[MAXT];
static int g_n;
static const float *g_rand;
static int64_t g_numel, g_total;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add(const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (g_n == MAXT) {
        fprintf(stderr, "bench_sd_full: too many tensors\n");
        exit(1);
    }
    cs_safetensors_out *t = &g_t[g_n];
    g_names[g_n] = strdup(name);
    t->name = g_names[g_n];
    t->dtype = CS_DT_F32;
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = d[i], n *= d[i];
    if (n > g_numel) {
        fprintf(stderr, "bench_sd_full: %s larger than the random buffer\n", name);
        exit(1);
    }
    t->data = g_rand;
    g_total += n;
    g_n++;
}

static void wb(const char *pre, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
               int64_t d3, int bias) {
    char n[640];
    snprintf(n, sizeof n, "%s%s%s", pre, name, ndim ? ".weight" : "");
    add(n, ndim ? ndim : 2, d0, d1, d2, d3);
    if (bias) {
        snprintf(n, sizeof n, "%s%s.bias", pre, name);
        add(n, 1, d0, 0, 0, 0);
    }
}
#define CONV(p, n, co, ci, k) wb(p, n, 4, co, ci, k, k, 1)
#define LIN(p, n, o, i, b) wb(p, n, 2, o, i, 0, 0, b)
#define NORM(p, n, c) wb(p, n, 1, c, 0, 0, 0, 1)

/* ---- UNet (openaimodel.UNetModel, linear proj_in/out) ---------------------------------- */

typedef struct {
    int mc, nl, mult[4], nrb, attn[4], depth[4], depth_mid, ctx, adm;
} geo;

static void res(const char *p, int ci, int co, int ted) {
    NORM(p, "in_layers.0", ci), CONV(p, "in_layers.2", co, ci, 3), LIN(p, "emb_layers.1", co, ted, 1);
    NORM(p, "out_layers.0", co), CONV(p, "out_layers.3", co, co, 3);
    if (ci != co) CONV(p, "skip_connection", co, ci, 1);
}

static void st(const char *pre, int c, int depth, int ctx) {
    char p[320];
    NORM(pre, "norm", c), LIN(pre, "proj_in", c, c, 1), LIN(pre, "proj_out", c, c, 1);
    for (int d = 0; d < depth; d++) {
        snprintf(p, sizeof p, "%stransformer_blocks.%d.", pre, d);
        NORM(p, "norm1", c), NORM(p, "norm2", c), NORM(p, "norm3", c);
        LIN(p, "attn1.to_q", c, c, 0), LIN(p, "attn1.to_k", c, c, 0), LIN(p, "attn1.to_v", c, c, 0);
        LIN(p, "attn1.to_out.0", c, c, 1);
        LIN(p, "attn2.to_q", c, c, 0), LIN(p, "attn2.to_k", c, ctx, 0);
        LIN(p, "attn2.to_v", c, ctx, 0), LIN(p, "attn2.to_out.0", c, c, 1);
        LIN(p, "ff.net.0.proj", 8 * c, c, 1), LIN(p, "ff.net.2", c, 4 * c, 1);
    }
}

static void unet(const geo *g) {
    const char *U = "model.diffusion_model.";
    char p[256];
    int ted = 4 * g->mc, skips[32], ns = 0, ch = g->mc, idx = 1;
    LIN(U, "time_embed.0", ted, g->mc, 1), LIN(U, "time_embed.2", ted, ted, 1);
    if (g->adm) LIN(U, "label_emb.0.0", ted, g->adm, 1), LIN(U, "label_emb.0.2", ted, ted, 1);
    CONV(U, "input_blocks.0.0", g->mc, 4, 3);
    skips[ns++] = ch;
    for (int l = 0; l < g->nl; l++) {
        for (int r = 0; r < g->nrb; r++, idx++) {
            int co = g->mc * g->mult[l];
            snprintf(p, sizeof p, "%sinput_blocks.%d.0.", U, idx), res(p, ch, co, ted);
            ch = co;
            if (g->attn[l]) snprintf(p, sizeof p, "%sinput_blocks.%d.1.", U, idx), st(p, ch, g->depth[l], g->ctx);
            skips[ns++] = ch;
        }
        if (l < g->nl - 1) {
            snprintf(p, sizeof p, "%sinput_blocks.%d.0.op", U, idx++);
            wb(p, "", 4, ch, ch, 3, 3, 1);
            skips[ns++] = ch;
        }
    }
    snprintf(p, sizeof p, "%smiddle_block.0.", U), res(p, ch, ch, ted);
    snprintf(p, sizeof p, "%smiddle_block.1.", U), st(p, ch, g->depth_mid, g->ctx);
    snprintf(p, sizeof p, "%smiddle_block.2.", U), res(p, ch, ch, ted);
    idx = 0;
    for (int l = g->nl - 1; l >= 0; l--)
        for (int i = 0; i <= g->nrb; i++, idx++) {
            int co = g->mc * g->mult[l], j = 1;
            snprintf(p, sizeof p, "%soutput_blocks.%d.0.", U, idx), res(p, ch + skips[--ns], co, ted);
            ch = co;
            if (g->attn[l]) snprintf(p, sizeof p, "%soutput_blocks.%d.1.", U, idx), st(p, ch, g->depth[l], g->ctx), j++;
            if (l > 0 && i == g->nrb)
                snprintf(p, sizeof p, "%soutput_blocks.%d.%d.", U, idx, j), CONV(p, "conv", ch, ch, 3);
        }
    NORM(U, "out.0", ch), CONV(U, "out.2", 4, ch, 3);
}

/* ---- text towers and VAE -------------------------------------------------------------- */

static void clip_hf(const char *T, int W, int layers) {
    char p[320];
    snprintf(p, sizeof p, "%sembeddings.", T);
    LIN(p, "token_embedding", 49408, W, 0), LIN(p, "position_embedding", 77, W, 0);
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "%sencoder.layers.%d.", T, l);
        NORM(p, "layer_norm1", W), NORM(p, "layer_norm2", W);
        LIN(p, "self_attn.q_proj", W, W, 1), LIN(p, "self_attn.k_proj", W, W, 1);
        LIN(p, "self_attn.v_proj", W, W, 1), LIN(p, "self_attn.out_proj", W, W, 1);
        LIN(p, "mlp.fc1", 4 * W, W, 1), LIN(p, "mlp.fc2", W, 4 * W, 1);
    }
    NORM(T, "final_layer_norm", W);
}

static void openclip(const char *T, int W, int layers, int E) {
    char p[320];
    LIN(T, "token_embedding", 49408, W, 0);
    wb(T, "positional_embedding", 0, 77, W, 0, 0, 0);
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "%stransformer.resblocks.%d.", T, l);
        NORM(p, "ln_1", W), NORM(p, "ln_2", W);
        wb(p, "attn.in_proj_weight", 0, 3 * W, W, 0, 0, 0);
        char b[400];
        snprintf(b, sizeof b, "%sattn.in_proj_bias", p);
        add(b, 1, 3 * W, 0, 0, 0);
        LIN(p, "attn.out_proj", W, W, 1), LIN(p, "mlp.c_fc", 4 * W, W, 1), LIN(p, "mlp.c_proj", W, 4 * W, 1);
    }
    NORM(T, "ln_final", W);
    wb(T, "text_projection", 0, W, E, 0, 0, 0);
}

static void vae_res(const char *p, int ci, int co) {
    NORM(p, "norm1", ci), CONV(p, "conv1", co, ci, 3), NORM(p, "norm2", co), CONV(p, "conv2", co, co, 3);
    if (ci != co) CONV(p, "nin_shortcut", co, ci, 1);
}

static void vae_mid(const char *pre, int c) {
    char p[256];
    snprintf(p, sizeof p, "%sblock_1.", pre), vae_res(p, c, c);
    snprintf(p, sizeof p, "%sblock_2.", pre), vae_res(p, c, c);
    snprintf(p, sizeof p, "%sattn_1.", pre);
    NORM(p, "norm", c), CONV(p, "q", c, c, 1), CONV(p, "k", c, c, 1), CONV(p, "v", c, c, 1);
    CONV(p, "proj_out", c, c, 1);
}

static void vae(void) {
    const char *V = "first_stage_model.";
    char p[256];
    int mult[4] = {1, 2, 4, 4}, ch = 128;
    snprintf(p, sizeof p, "%sencoder.", V), CONV(p, "conv_in", 128, 3, 3);
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < 2; b++) {
            snprintf(p, sizeof p, "%sencoder.down.%d.block.%d.", V, l, b), vae_res(p, ch, 128 * mult[l]);
            ch = 128 * mult[l];
        }
        if (l < 3) snprintf(p, sizeof p, "%sencoder.down.%d.downsample.", V, l), CONV(p, "conv", ch, ch, 3);
    }
    snprintf(p, sizeof p, "%sencoder.mid.", V), vae_mid(p, ch);
    snprintf(p, sizeof p, "%sencoder.", V), NORM(p, "norm_out", ch), CONV(p, "conv_out", 8, ch, 3);
    CONV(V, "quant_conv", 8, 8, 1), CONV(V, "post_quant_conv", 4, 4, 1);
    snprintf(p, sizeof p, "%sdecoder.", V), CONV(p, "conv_in", 512, 4, 3);
    snprintf(p, sizeof p, "%sdecoder.mid.", V), vae_mid(p, 512);
    ch = 512;
    for (int l = 3; l >= 0; l--) {
        for (int b = 0; b < 3; b++) {
            snprintf(p, sizeof p, "%sdecoder.up.%d.block.%d.", V, l, b), vae_res(p, ch, 128 * mult[l]);
            ch = 128 * mult[l];
        }
        if (l > 0) snprintf(p, sizeof p, "%sdecoder.up.%d.upsample.", V, l), CONV(p, "conv", ch, ch, 3);
    }
    snprintf(p, sizeof p, "%sdecoder.", V), NORM(p, "norm_out", 128), CONV(p, "conv_out", 3, 128, 3);
}

/* SD 2.1 (v2-inference-v.yaml) and SDXL base (sd_xl_base.yaml) */
static void sd21(void) {
    geo g = {320, 4, {1, 2, 4, 4}, 2, {1, 1, 1, 0}, {1, 1, 1, 1}, 1, 1024, 0};
    openclip("cond_stage_model.model.", 1024, 24, 1024);
    unet(&g);
    vae();
}

static void sdxl(void) {
    geo g = {320, 3, {1, 2, 4}, 2, {0, 1, 1}, {1, 2, 10}, 10, 2048, 2816};
    clip_hf("conditioner.embedders.0.transformer.text_model.", 768, 12);
    openclip("conditioner.embedders.1.model.", 1280, 32, 1280);
    unet(&g);
    vae();
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

static void run(const char *name, void (*tensors)(void), int side, const char *dir) {
    g_n = 0, g_total = 0;
    tensors();
    double gb = g_total * 4.0 / 1e9;
    printf("%s-shaped checkpoint: %d tensors, %.0fM parameters, %.2f GB f32\n", name, g_n,
           g_total / 1e6, gb);
    struct statvfs vfs;
    long avail = mem_available_mb();
    if (statvfs(dir, &vfs) == 0 && (double)vfs.f_bavail * vfs.f_frsize < g_total * 4.0 + 1e9) {
        printf("  skipped: %s has less than %.1f GB free\n", dir, gb + 1);
    } else if (avail >= 0 && avail < (long)(gb * 1000) + 3000) {
        printf("  skipped: needs fp32 weights + 3 GB = %.1f GB of memory, MemAvailable %.1f GB\n",
               gb + 3, avail / 1000.0);
    } else {
        char path[4096];
        cs_err err = {0};
        snprintf(path, sizeof path, "%s/bench-%s-%d.safetensors", dir, name, (int)getpid());
        double t0 = now();
        if (cs_safetensors_write(path, g_t, g_n, NULL, &err)) {
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
    for (int i = 0; i < g_n; i++) free(g_names[i]);
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
    g_numel = 49408 * 1280; /* the largest tensor: SDXL's OpenCLIP-G token_embedding */
    float *r = malloc(sizeof(float) * g_numel);
    if (!r) return 1;
    uint64_t s = 99;
    for (int64_t i = 0; i < g_numel; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        r[i] = ((float)(s >> 40) / (float)(1 << 24) * 2.f - 1.f) * 0.02f;
    }
    g_rand = r;
    if (strstr(which, "sd21")) run("sd21", sd21, lat ? atoi(lat) : 96, dir);
    if (strstr(which, "sdxl")) run("sdxl", sdxl, lat ? atoi(lat) : 128, dir);
    free(r);
    return 0;
}
