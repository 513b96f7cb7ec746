/* test_sd_models.c — what the reference folders do not cover by themselves:
 * refusals that say what to do (pickles, GGUF, a folder that is no diffusers
 * pipeline, missing head counts), the families read from the weights, 16-bit
 * copies of SD 2.x written here, non-square latents for SD 2.x and SDXL, and
 * a LoRA of another rank / alpha / multiplier (incl. a LoCon 3x3 conv, an
 * alpha-less module and a text-encoder module) against a merged checkpoint
 * written here by plain loops. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "core/nn.h"
#include "core/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/sd.h"
#include "tests/t.h"

#define R "../shared/refs"

static double rel_err(const float *out, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (!(d <= md)) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static void test_refusals(void) {
    char *dir = t_tmpdir("sdm");
    REQUIRE(dir);
    char p[4096];
    sd_model *m = NULL;
    cs_err err = {0};
    /* a pickle (protocol 2 header) named .ckpt */
    snprintf(p, sizeof p, "%s/model.ckpt", dir);
    write_bytes(p, "\x80\x02}q\x00.", 6);
    CHECK(sd_load(&m, p, NULL, &err) == -1 && !m);
    CHECKF(strstr(err.msg, "model.ckpt") && strstr(err.msg, "pickle") &&
               strstr(err.msg, "runs code") && strstr(err.msg, ".safetensors") &&
               strstr(err.msg, "diffusers") && strstr(err.msg, "save_file"),
           "%s", err.msg);
    /* a zip-format torch checkpoint */
    snprintf(p, sizeof p, "%s/model.pt", dir);
    write_bytes(p, "PK\x03\x04rest", 8);
    CHECK(sd_load(&m, p, NULL, &err) == -1 && strstr(err.msg, "zip") && strstr(err.msg, "Convert"));
    /* GGUF */
    snprintf(p, sizeof p, "%s/model.gguf", dir);
    write_bytes(p, "GGUF\x03\x00\x00\x00", 8);
    CHECK(sd_load(&m, p, NULL, &err) == -1 && strstr(err.msg, "GGUF") &&
          strstr(err.msg, ".safetensors"));
    /* a folder that is no diffusers pipeline */
    CHECK(sd_load(&m, dir, NULL, &err) == -1 && strstr(err.msg, "unet/config.json") &&
          strstr(err.msg, "diffusers"));
    /* a diffusers folder whose UNet is a .bin pickle */
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/d && cp -r " R "/sd-tiny-diffusers/* %s/d/ && chmod -R u+w %s/d && "
             "rm %s/d/unet/diffusion_pytorch_model.safetensors && "
             "printf 'x' > %s/d/unet/diffusion_pytorch_model.bin",
             dir, dir, dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/d", dir);
    CHECK(sd_load(&m, p, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "diffusion_pytorch_model.bin") && strstr(err.msg, "pickle"), "%s", err.msg);
    /* one file of a diffusers folder */
    CHECK(sd_load(&m, R "/sd-tiny-diffusers/unet/diffusion_pytorch_model.safetensors", NULL, &err) == -1 &&
          strstr(err.msg, "part of a diffusers folder"));
    /* not a Stable Diffusion checkpoint: a case file */
    CHECK(sd_load(&m, R "/sd-tiny/cases/unet.safetensors", NULL, &err) == -1 &&
          strstr(err.msg, "no text encoder found"));
    /* sizes come from the weights, head counts need a config */
    CHECK(sd_load(&m, R "/sd2-tiny/model.safetensors", NULL, &err) == -1 &&
          strstr(err.msg, "head count") && strstr(err.msg, "--config"));
    CHECK(sd_load(&m, R "/sdxl-tiny/model.safetensors", NULL, &err) == -1 &&
          strstr(err.msg, "head count"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

/* the config only gives what no shape shows (heads, prediction type) */
static void test_families(void) {
    sd_model *m = NULL;
    cs_err err = {0};
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s", "/tmp/cs-heads-XXXXXX");
    /* sd2-tiny with a config holding ONLY the head counts: every size detected */
    char *dir = t_tmpdir("sdf");
    REQUIRE(dir);
    char p[4096];
    snprintf(p, sizeof p, "%s/heads.json", dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs("{\"unet\": {\"num_head_channels\": 16}, \"text_encoder\": {\"heads\": 4}}", f);
    fclose(f);
    CHECKF(sd_load(&m, R "/sd2-tiny/model.safetensors", p, &err) == 0, "%s", err.msg);
    if (m) {
        /* no prediction_type: A1111's test, v when mean(UNet(0.5, t 999, ctx 0.5) - 0.5) < -1
         * (on these random weights either answer; the rule is what is checked) */
        float x[4 * 8 * 8], o[4 * 8 * 8], ctx[77 * 64], t = 999.f;
        for (int i = 0; i < 4 * 8 * 8; i++) x[i] = 0.5f;
        for (int i = 0; i < 77 * 64; i++) ctx[i] = 0.5f;
        CHECK(sd_unet(m, x, &t, ctx, NULL, 1, 8, 8, o, &err) == 0);
        double mean = 0;
        for (int i = 0; i < 4 * 8 * 8; i++) mean += o[i] - 0.5;
        mean /= 4 * 8 * 8;
        printf("  sd2-tiny without prediction_type: A1111 test mean %.3f -> %s\n", mean,
               sd_prediction(m) == SD_PRED_V ? "v" : "eps");
        CHECK(sd_family(m) == SD_FAMILY_SD2 && sd_prediction(m) == (mean < -1 ? SD_PRED_V : SD_PRED_EPS));
        CHECK(sd_context_dim(m) == 64 && sd_vae_factor(m) == 2 && sd_adm_channels(m) == 0);
        CHECK(fabsf(sd_scale_factor(m) - 0.18215f) < 1e-7f);
        sd_free(m);
        m = NULL;
    }
    f = fopen(p, "w");
    REQUIRE(f);
    fputs("{\"unet\": {\"num_head_channels\": 16}, \"text_encoder_l\": {\"heads\": 2}, "
          "\"text_encoder_g\": {\"heads\": 2}}",
          f);
    fclose(f);
    CHECKF(sd_load(&m, R "/sdxl-tiny/model.safetensors", p, &err) == 0, "%s", err.msg);
    if (m) {
        CHECK(sd_family(m) == SD_FAMILY_SDXL && sd_prediction(m) == SD_PRED_EPS);
        CHECK(sd_context_dim(m) == 64 && sd_adm_channels(m) == 1576 && sd_pooled_dim(m) == 40);
        CHECK(fabsf(sd_scale_factor(m) - 0.13025f) < 1e-7f);
        CHECK(sd_text_layers(m, 0) == 3 && sd_text_layers(m, 1) == 3);
        sd_free(m);
        m = NULL;
    }
    /* the config's prediction_type (sd2-tiny: v_prediction) and the caller's override */
    CHECK(sd_load(&m, R "/sd2-tiny/model.safetensors", R "/sd2-tiny/config.json", &err) == 0 &&
          sd_prediction(m) == SD_PRED_V);
    sd_free(m);
    m = NULL;
    sd_load_opts o = {.config = R "/sd2-tiny/config.json", .force_prediction = 1};
    CHECK(sd_load_ex(&m, R "/sd2-tiny/model.safetensors", &o, &err) == 0 &&
          sd_prediction(m) == SD_PRED_EPS);
    sd_free(m);
    m = NULL;
    /* the diffusers folder needs no config at all (its configs are part of it) */
    CHECKF(sd_load(&m, R "/sd-tiny-diffusers", NULL, &err) == 0, "%s", err.msg);
    CHECK(m && sd_family(m) == SD_FAMILY_SD1 && sd_context_dim(m) == 32);
    sd_free(m);
    remove(p);
    remove(dir);
    free(dir);
}

/* every tensor of src converted to dt (F32 ones), written to dst */
static int write_converted(const char *src, const char *dst, cs_dtype dt) {
    cs_safetensors st;
    cs_err err = {0};
    if (cs_safetensors_open(&st, src, &err)) return -1;
    cs_safetensors_out *t = calloc(st.n, sizeof *t);
    void **bufs = calloc(st.n, sizeof *bufs);
    for (int i = 0; i < st.n; i++) {
        const cs_safetensors_tensor *s = &st.tensors[i];
        t[i].name = s->name;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof s->shape);
        t[i].dtype = s->dtype;
        t[i].data = s->data;
        if (s->dtype != CS_DT_F32) continue;
        uint16_t *h = malloc(2 * (s->numel + 1));
        for (int64_t k = 0; k < s->numel; k++) {
            float v = ((const float *)s->data)[k];
            h[k] = dt == CS_DT_F16 ? cs_f32_to_f16(v) : cs_f32_to_bf16(v);
        }
        bufs[i] = h;
        t[i].dtype = dt;
        t[i].data = h;
    }
    int rc = cs_safetensors_write(dst, t, st.n, NULL, &err);
    for (int i = 0; i < st.n; i++) free(bufs[i]);
    free(bufs), free(t);
    cs_safetensors_close(&st);
    return rc;
}

static void run_unet_case(sd_model *m, const char *file, const char *out, double lo, double hi,
                          const char *what) {
    cs_safetensors cs;
    cs_err err = {0};
    REQUIRE(cs_safetensors_open(&cs, file, &err) == 0);
    const cs_safetensors_tensor *x = cs_safetensors_find(&cs, "x"), *ref = cs_safetensors_find(&cs, out);
    const cs_safetensors_tensor *y = cs_safetensors_find(&cs, "y");
    int B = (int)x->shape[0], h = (int)x->shape[2], w = (int)x->shape[3];
    float *o = malloc(sizeof(float) * ref->numel);
    CHECKF(sd_unet(m, x->data, cs_safetensors_find(&cs, "timesteps")->data, cs_safetensors_find(&cs, "context")->data,
                   y ? y->data : NULL, B, h, w, o, &err) == 0,
           "%s", err.msg);
    double e = rel_err(o, ref->data, (size_t)ref->numel);
    printf("  %s: rel %.3g\n", what, e);
    CHECKF(e >= lo && e <= hi, "%s: rel %g", what, e);
    free(o);
    cs_safetensors_close(&cs);
}

/* 16-bit copies of sd2-tiny: F16 within the README's ~1e-3, BF16 (8-bit
 * mantissa) within ~1e-2; both widened, not garbage, not the F32 weights */
static void test_sd2_16bit(void) {
    char *dir = t_tmpdir("sd16");
    REQUIRE(dir);
    char p[4096];
    static const cs_dtype dts[2] = {CS_DT_F16, CS_DT_BF16};
    static const double hi[2] = {2e-3, 2e-2};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/m%d.safetensors", dir, k);
        REQUIRE(write_converted(R "/sd2-tiny/model.safetensors", p, dts[k]) == 0);
        sd_model *m = NULL;
        cs_err err = {0};
        CHECKF(sd_load(&m, p, R "/sd2-tiny/config.json", &err) == 0, "%s", err.msg);
        if (m) run_unet_case(m, R "/sd2-tiny/cases/unet.safetensors", "v", 1e-6, hi[k],
                             k ? "sd2 bf16 unet" : "sd2 f16 unet");
        sd_free(m);
        remove(p);
    }
    remove(dir);
    free(dir);
}

/* non-square latents: each image of a batch equals itself alone, finite */
static void nonsquare(const char *model, const char *cfg, int h, int w) {
    sd_model *m = NULL;
    cs_err err = {0};
    REQUIRE(sd_load(&m, model, cfg, &err) == 0);
    int B = 2, C = sd_latent_channels(m), D = sd_context_dim(m), A = sd_adm_channels(m);
    size_t n = (size_t)C * h * w;
    float *x = malloc(sizeof(float) * B * n), *o = malloc(sizeof(float) * B * n);
    float *o1 = malloc(sizeof(float) * n), *ctx = malloc(sizeof(float) * B * 77 * D);
    float *y = A ? malloc(sizeof(float) * B * A) : NULL, t[2] = {17.5f, 900.f};
    for (size_t i = 0; i < B * n; i++) x[i] = (float)sin(0.31 * i);
    for (size_t i = 0; i < (size_t)B * 77 * D; i++) ctx[i] = (float)cos(0.17 * i);
    for (int i = 0; i < B * A; i++) y[i] = (float)sin(0.05 * i);
    CHECKF(sd_unet(m, x, t, ctx, y, B, h, w, o, &err) == 0, "%s", err.msg);
    int finite = 1;
    for (size_t i = 0; i < B * n; i++) finite &= isfinite(o[i]) != 0;
    CHECK(finite);
    CHECK(sd_unet(m, x + n, t + 1, ctx + 77 * D, y ? y + A : NULL, 1, h, w, o1, &err) == 0);
    CHECK(rel_err(o1, o + n, n) < 1e-5);
    /* SDXL without y is a usage error, not a crash */
    if (A) CHECK(sd_unet(m, x, t, ctx, NULL, 1, h, w, o1, &err) == -1 && strstr(err.msg, "vector"));
    free(x), free(o), free(o1), free(ctx), free(y);
    sd_free(m);
}

static void test_nonsquare(void) {
    nonsquare(R "/sd2-tiny/model.safetensors", R "/sd2-tiny/config.json", 6, 14);
    nonsquare(R "/sdxl-tiny/model.safetensors", R "/sdxl-tiny/config.json", 12, 8);
}

/* ---- LoRA of another rank/alpha, merged by hand ------------------------------------- */

typedef struct {
    const char *kohya, *compvis; /* module, weight it merges into */
    int rank;
    float alpha; /* 0: absent (= rank) */
    int block;   /* open_clip in_proj: row block 0..2 (q, k, v); -1: the whole weight */
} lmod;

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f - 0.5f) * 0.2f;
}

/* Writes a LoRA with mods (random F32 values) and a copy of the model with
 * the deltas merged by plain loops in double; the model loaded with the LoRA
 * must equal the merged copy (UNet on ucase, text context and pooled). */
static void lora_vs_merged(const char *model, const char *cfg, const char *ucase, const lmod *mods,
                           int NM, float mult, double min_effect) {
    char *dir = t_tmpdir("sdl");
    REQUIRE(dir);
    char lp[4096], mp[4096];
    snprintf(lp, sizeof lp, "%s/l.safetensors", dir);
    snprintf(mp, sizeof mp, "%s/merged.safetensors", dir);
    cs_safetensors base;
    cs_err err = {0};
    REQUIRE(cs_safetensors_open(&base, model, &err) == 0);
    cs_safetensors_out lt[3 * 8], *all = calloc(base.n, sizeof *all);
    float *lbuf[3 * 8] = {0}, alphas[8];
    char names[3 * 8][160];
    int nl = 0;
    uint32_t seed = 7;
    for (int i = 0; i < base.n; i++) { /* the merged copy starts as the base */
        const cs_safetensors_tensor *t = &base.tensors[i];
        all[i] = (cs_safetensors_out){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(all[i].shape, t->shape, sizeof t->shape);
    }
    for (int k = 0; k < NM && k < 8; k++) {
        int wi = -1;
        for (int i = 0; i < base.n; i++)
            if (!strcmp(base.tensors[i].name, mods[k].compvis)) wi = i;
        REQUIRE(wi >= 0);
        const cs_safetensors_tensor *w = &base.tensors[wi];
        int64_t rows = w->shape[0], in = w->numel / w->shape[0], r = mods[k].rank;
        int64_t out = mods[k].block >= 0 ? rows / 3 : rows, r0 = mods[k].block >= 0 ? mods[k].block * out : 0;
        float *down = malloc(sizeof(float) * r * in), *up = malloc(sizeof(float) * out * r);
        for (int64_t i = 0; i < r * in; i++) down[i] = frand(&seed);
        for (int64_t i = 0; i < out * r; i++) up[i] = frand(&seed);
        float scale = (mods[k].alpha > 0 ? mods[k].alpha : (float)r) / (float)r;
        float *mw = (float *)all[wi].data;
        if (mw == w->data) { /* first module on this weight: own copy */
            mw = malloc(sizeof(float) * rows * in);
            memcpy(mw, w->data, sizeof(float) * rows * in);
            all[wi].data = mw;
        }
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++) {
                double acc = 0;
                for (int64_t q = 0; q < r; q++) acc += (double)up[o * r + q] * down[q * in + i];
                mw[(r0 + o) * in + i] = (float)(mw[(r0 + o) * in + i] + mult * scale * acc);
            }
        snprintf(names[nl], 160, "%s.lora_down.weight", mods[k].kohya);
        lt[nl] = (cs_safetensors_out){names[nl], CS_DT_F32, w->ndim, {r, in}, down};
        if (w->ndim == 4) /* conv: down [r, in, kh, kw], up [out, r, 1, 1] */
            lt[nl].shape[1] = w->shape[1], lt[nl].shape[2] = w->shape[2], lt[nl].shape[3] = w->shape[3];
        lbuf[nl++] = down;
        snprintf(names[nl], 160, "%s.lora_up.weight", mods[k].kohya);
        lt[nl] = (cs_safetensors_out){names[nl], CS_DT_F32, w->ndim, {out, r, 1, 1}, up};
        lbuf[nl++] = up;
        if (mods[k].alpha > 0) {
            alphas[k] = mods[k].alpha;
            snprintf(names[nl], 160, "%s.alpha", mods[k].kohya);
            lt[nl] = (cs_safetensors_out){names[nl], CS_DT_F32, 0, {0}, &alphas[k]};
            nl++;
        }
    }
    REQUIRE(cs_safetensors_write(lp, lt, nl, NULL, &err) == 0);
    REQUIRE(cs_safetensors_write(mp, all, base.n, NULL, &err) == 0);
    for (int i = 0; i < base.n; i++)
        if (all[i].data != base.tensors[i].data) free((void *)all[i].data);
    free(all);
    sd_lora_spec ls = {lp, mult};
    sd_load_opts lo = {.config = cfg, .loras = &ls, .n_loras = 1};
    sd_model *a = NULL, *b = NULL;
    CHECKF(sd_load_ex(&a, model, &lo, &err) == 0, "%s", err.msg);
    CHECKF(sd_load(&b, mp, cfg, &err) == 0, "%s", err.msg);
    if (a && b) {
        cs_safetensors cs;
        REQUIRE(cs_safetensors_open(&cs, ucase, &err) == 0);
        const cs_safetensors_tensor *x = cs_safetensors_find(&cs, "x"), *y = cs_safetensors_find(&cs, "y");
        const cs_safetensors_tensor *e = cs_safetensors_find(&cs, "eps") ? cs_safetensors_find(&cs, "eps") : cs_safetensors_find(&cs, "v");
        float *oa = malloc(sizeof(float) * e->numel), *ob = malloc(sizeof(float) * e->numel);
        const float *t = cs_safetensors_find(&cs, "timesteps")->data, *ctx = cs_safetensors_find(&cs, "context")->data;
        int B = (int)x->shape[0], h = (int)x->shape[2], w = (int)x->shape[3];
        CHECK(sd_unet(a, x->data, t, ctx, y ? y->data : NULL, B, h, w, oa, &err) == 0);
        CHECK(sd_unet(b, x->data, t, ctx, y ? y->data : NULL, B, h, w, ob, &err) == 0);
        double d = rel_err(oa, ob, e->numel), eff = rel_err(oa, e->data, e->numel);
        int32_t ids[77];
        for (int i = 0; i < 77; i++) ids[i] = 49407;
        ids[0] = 49406, ids[1] = 320, ids[2] = 1125, ids[3] = 539;
        int D = sd_context_dim(a), E = sd_pooled_dim(a);
        float *ta = malloc(sizeof(float) * 77 * D), *tb = malloc(sizeof(float) * 77 * D);
        float pa[64], pb[64];
        CHECK(sd_text_encode_xl(a, ids, NULL, 1, 1, ta, E ? pa : NULL, &err) == 0);
        CHECK(sd_text_encode_xl(b, ids, NULL, 1, 1, tb, E ? pb : NULL, &err) == 0);
        double dt = rel_err(ta, tb, (size_t)77 * D);
        printf("  lora on %s: unet vs merged by hand rel %.3g (effect %.3g), text rel %.3g\n", model,
               d, eff, dt);
        CHECK(d <= 1e-6 && eff > min_effect && dt <= 1e-6);
        if (E) CHECK(E <= 64 && rel_err(pa, pb, E) <= 1e-6);
        free(oa), free(ob), free(ta), free(tb);
        cs_safetensors_close(&cs);
    }
    sd_free(a);
    sd_free(b);
    for (int i = 0; i < nl; i++) free(lbuf[i]);
    cs_safetensors_close(&base);
    remove(lp);
    remove(mp);
    remove(dir);
    free(dir);
}

static void test_lora_other_rank(void) {
    static const lmod mods[] = {
        {"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k",
         "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight", 3, 5.0f, -1},
        {"lora_unet_up_blocks_0_resnets_1_conv1", /* LoCon 3x3, up block 0 = CompVis level 1 */
         "model.diffusion_model.output_blocks.1.0.in_layers.2.weight", 5, 0.0f, -1},
        {"lora_unet_mid_block_attentions_0_proj_out",
         "model.diffusion_model.middle_block.1.proj_out.weight", 1, 0.5f, -1},
        {"lora_te_text_model_encoder_layers_0_self_attn_v_proj",
         "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.v_proj.weight", 6, 2.0f, -1},
    };
    lora_vs_merged(R "/sd-tiny/model.safetensors", R "/sd-tiny/config.json",
                   R "/sd-tiny/cases/unet.safetensors", mods, 4, -0.7f, 1e-3);
}

/* SD 2.x: open_clip tower modules under kohya's HF names (in_proj rows) */
static void test_lora_sd2(void) {
    static const lmod mods[] = {
        {"lora_te_text_model_encoder_layers_1_self_attn_q_proj",
         "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight", 2, 1.0f, 0},
        {"lora_te_text_model_encoder_layers_0_mlp_fc1",
         "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight", 4, 3.0f, -1},
        {"lora_unet_down_blocks_0_attentions_0_proj_in", /* Linear proj_in */
         "model.diffusion_model.input_blocks.1.1.proj_in.weight", 2, 2.0f, -1},
    };
    lora_vs_merged(R "/sd2-tiny/model.safetensors", R "/sd2-tiny/config.json",
                   R "/sd2-tiny/cases/unet.safetensors", mods, 3, 1.3f, 1e-3);
}

/* SDXL: kohya's SDXL names (UNet in CompVis paths, lora_te1_/lora_te2_, the
 * second tower's k_proj on the in_proj rows W..2W) */
static void test_lora_sdxl(void) {
    static const lmod mods[] = {
        {"lora_unet_input_blocks_3_1_transformer_blocks_0_attn2_to_k",
         "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight", 4, 2.0f, -1},
        {"lora_unet_output_blocks_0_0_out_layers_3", /* kohya SDXL: SGM module names */
         "model.diffusion_model.output_blocks.0.0.out_layers.3.weight", 3, 0.0f, -1},
        {"lora_te1_text_model_encoder_layers_1_mlp_fc1",
         "conditioner.embedders.0.transformer.text_model.encoder.layers.1.mlp.fc1.weight", 2, 1.0f, -1},
        {"lora_te2_text_model_encoder_layers_0_self_attn_k_proj",
         "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight", 3, 1.5f, 1},
        {"lora_te2_text_model_encoder_layers_2_mlp_fc2", /* the last layer: pooled only */
         "conditioner.embedders.1.model.transformer.resblocks.2.mlp.c_proj.weight", 2, 2.0f, -1},
    };
    lora_vs_merged(R "/sdxl-tiny/model.safetensors", R "/sdxl-tiny/config.json",
                   R "/sdxl-tiny/cases/unet.safetensors", mods, 5, 0.9f, 1e-3);
}

static void test_lora_refusals(void) {
    char *dir = t_tmpdir("sdr");
    REQUIRE(dir);
    char lp[4096];
    snprintf(lp, sizeof lp, "%s/l.safetensors", dir);
    float v[64] = {0}, one = 1;
    cs_safetensors_out t[2] = {{"lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight", CS_DT_F32, 2, {2, 32}, v},
                      {"lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight", CS_DT_F32, 2, {32, 2}, v}};
    cs_err err = {0};
    REQUIRE(cs_safetensors_write(lp, t, 2, NULL, &err) == 0);
    sd_lora_spec ls = {lp, 1.0f};
    sd_load_opts lo = {.config = R "/sd-tiny/config.json", .loras = &ls, .n_loras = 1};
    sd_model *a = NULL;
    /* a LoRA for another geometry: its module matches nothing */
    CHECK(sd_load_ex(&a, R "/sd-tiny/model.safetensors", &lo, &err) == -1 &&
          strstr(err.msg, "down_blocks_7") && strstr(err.msg, "matches no weight"));
    /* a LyCORIS LoHa tensor is named as such */
    cs_safetensors_out loha = {"lora_unet_x.hada_w1_a", CS_DT_F32, 1, {1}, &one};
    REQUIRE(cs_safetensors_write(lp, &loha, 1, NULL, &err) == 0);
    CHECK(sd_load_ex(&a, R "/sd-tiny/model.safetensors", &lo, &err) == -1 && strstr(err.msg, "LoHa"));
    remove(lp);
    remove(dir);
    free(dir);
}

/* a suite's "loras" and a diffusers folder as the model, through generate:
 * weight 0 gives the base image bit for bit, weight 1 another one; the
 * diffusers copy of sd-tiny gives the single file's pixels */
static int gen_pixels(const char *dir, const char *tag, const char *model, const char *cfg,
                      const char *loras, cs_image *im) {
    char sp[4200], od[4200], db[4200], png[8200], text[4096];
    snprintf(sp, sizeof sp, "%s/%s.json", dir, tag);
    snprintf(od, sizeof od, "%s/%s-out", dir, tag);
    snprintf(db, sizeof db, "%s/%s.db", dir, tag);
    snprintf(text, sizeof text,
             "{\"name\": \"%s\", %s \"defaults\": {\"steps\": 3, \"size\": 32, \"seed\": 9},"
             "\"prompts\": [{\"id\": \"p\", \"text\": \"a red fox\"}]}",
             tag, loras);
    FILE *f = fopen(sp, "w");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    cs_generate_opts o = {.suite = sp, .model = model, .config = cfg,
                          .vocab = R "/clip-bpe/bpe_simple_vocab_16e6.txt.gz", .out = od, .db = db};
    cs_generate_stats st;
    cs_err e = {0};
    if (cs_generate(&o, &st, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    DIR *d = opendir(st.out_dir); /* the one image of the run */
    struct dirent *de;
    png[0] = 0;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".png")) snprintf(png, sizeof png, "%s/%s", st.out_dir, de->d_name);
    if (d) closedir(d);
    if (cs_image_load(im, png, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int same_pixels(const cs_image *a, const cs_image *b) {
    return a->w == b->w && a->h == b->h && 1 &&
           !memcmp(a->rgb, b->rgb, (size_t)a->w * a->h * 3);
}

static void test_generate_loras_and_diffusers(void) {
    char *dir = t_tmpdir("sdg");
    REQUIRE(dir);
    char l0[4400], l1[4400], lora[4096];
    REQUIRE(realpath(R "/lora/sd-tiny-lora.safetensors", lora));
    snprintf(l0, sizeof l0, "\"loras\": [{\"path\": \"%s\", \"weight\": 0}],", lora);
    snprintf(l1, sizeof l1, "\"loras\": [{\"path\": \"%s\"}],", lora);
    cs_image base = {0}, w0 = {0}, w1 = {0}, dif = {0};
    const char *m = R "/sd-tiny/model.safetensors", *c = R "/sd-tiny/config.json";
    CHECK(gen_pixels(dir, "base", m, c, "", &base) == 0);
    CHECK(gen_pixels(dir, "w0", m, c, l0, &w0) == 0);
    CHECK(gen_pixels(dir, "w1", m, c, l1, &w1) == 0);
    CHECK(gen_pixels(dir, "dif", R "/sd-tiny-diffusers", NULL, "", &dif) == 0);
    CHECK(base.rgb && same_pixels(&base, &w0));
    CHECK(w1.rgb && !same_pixels(&base, &w1));
    /* the diffusers folder has no alphas_cumprod buffer: the schedule is
     * recomputed (float64 betas), equal to the checkpoint's within an ulp */
    int md = 256;
    if (dif.rgb && base.rgb && dif.w == base.w && dif.h == base.h) {
        md = 0;
        for (int i = 0; i < base.w * base.h * 3; i++) {
            int d = abs((int)base.rgb[i] - dif.rgb[i]);
            if (d > md) md = d;
        }
    }
    printf("  diffusers folder vs single file: max pixel difference %d (%dx%d, %dx%d)\n", md, base.w, base.h, dif.w, dif.h);
    CHECK(md <= 1);
    cs_image_free(&base), cs_image_free(&w0), cs_image_free(&w1), cs_image_free(&dif);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

int main(void) {
    nn_set_threads(2);
    RUN(test_refusals);
    RUN(test_families);
    RUN(test_sd2_16bit);
    RUN(test_nonsquare);
    RUN(test_lora_other_rank);
    RUN(test_lora_sd2);
    RUN(test_lora_sdxl);
    RUN(test_lora_refusals);
    RUN(test_generate_loras_and_diffusers);
    return T_DONE();
}
