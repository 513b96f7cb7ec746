/* sd_ckpt_fake.h — the tensor list of a full-size Stable Diffusion
 * single-file checkpoint (CompVis / SGM names and shapes, F32) with random
 * weights, for the benches that load real-sized models: bench_sd (SD 1.5),
 * bench_sd_full (SD 2.1, SDXL). Written here independently of the loader,
 * so that a load is also a check of its naming. Every tensor's bytes point
 * into one random buffer (rand, at least the largest tensor's numel), so
 * writing a checkpoint of several GB needs little memory. Header-only
 * (static): each bench is one file. */
#ifndef CS_SD_CKPT_FAKE_H
#define CS_SD_CKPT_FAKE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

typedef struct {
    cs_safetensors_out *t; /* [cap] */
    char **names;          /* [cap] each t[i].name, owned */
    int n, cap;
    const float *rand;     /* shared random values, numel of them */
    int64_t numel, total;  /* total: the parameters listed */
    const char *who;       /* the bench, for its errors */
} fake_ckpt;

static inline void fk_add(fake_ckpt *k, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (k->n == k->cap) {
        fprintf(stderr, "%s: more than %d tensors\n", k->who, k->cap);
        exit(1);
    }
    cs_safetensors_out *t = &k->t[k->n];
    k->names[k->n] = strdup(name);
    t->name = k->names[k->n];
    t->dtype = CS_DT_F32;
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = d[i], n *= d[i];
    if (n > k->numel) {
        fprintf(stderr, "%s: %s larger than the random buffer\n", k->who, name);
        exit(1);
    }
    t->data = k->rand;
    k->total += n;
    k->n++;
}

static inline void fk_free_names(fake_ckpt *k) {
    for (int i = 0; i < k->n; i++) free(k->names[i]);
    k->n = 0, k->total = 0;
}

/* pre+name+".weight" of ndim (a bare pre+name of 2 dims when ndim is 0:
 * OpenCLIP's raw parameters), and pre+name+".bias" of d0 */
static inline void fk_wb(fake_ckpt *k, const char *pre, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3, int bias) {
    char n[640];
    snprintf(n, sizeof n, "%s%s%s", pre, name, ndim ? ".weight" : "");
    fk_add(k, n, ndim ? ndim : 2, d0, d1, d2, d3);
    if (bias) {
        snprintf(n, sizeof n, "%s%s.bias", pre, name);
        fk_add(k, n, 1, d0, 0, 0, 0);
    }
}
static inline void fk_conv(fake_ckpt *k, const char *p, const char *n, int co, int ci, int ks) {
    fk_wb(k, p, n, 4, co, ci, ks, ks, 1);
}
static inline void fk_lin(fake_ckpt *k, const char *p, const char *n, int o, int i, int bias) {
    fk_wb(k, p, n, 2, o, i, 0, 0, bias);
}
static inline void fk_norm(fake_ckpt *k, const char *p, const char *n, int c) { fk_wb(k, p, n, 1, c, 0, 0, 0, 1); }

/* ---- UNet (openaimodel.UNetModel) ---- */

typedef struct {
    int mc, nl, mult[4], nrb, attn[4], depth[4], depth_mid, ctx, adm;
    int conv_proj; /* SD 1.x: proj_in/out are 1x1 convs; SD 2.x and SDXL: linear */
} fk_geo;

static inline void fk_res(fake_ckpt *k, const char *p, int ci, int co, int ted) {
    fk_norm(k, p, "in_layers.0", ci), fk_conv(k, p, "in_layers.2", co, ci, 3), fk_lin(k, p, "emb_layers.1", co, ted, 1);
    fk_norm(k, p, "out_layers.0", co), fk_conv(k, p, "out_layers.3", co, co, 3);
    if (ci != co) fk_conv(k, p, "skip_connection", co, ci, 1);
}

static inline void fk_st(fake_ckpt *k, const char *pre, int c, int depth, int ctx, int conv_proj) {
    char p[320];
    fk_norm(k, pre, "norm", c);
    if (conv_proj) fk_conv(k, pre, "proj_in", c, c, 1), fk_conv(k, pre, "proj_out", c, c, 1);
    else fk_lin(k, pre, "proj_in", c, c, 1), fk_lin(k, pre, "proj_out", c, c, 1);
    for (int d = 0; d < depth; d++) {
        snprintf(p, sizeof p, "%stransformer_blocks.%d.", pre, d);
        fk_norm(k, p, "norm1", c), fk_norm(k, p, "norm2", c), fk_norm(k, p, "norm3", c);
        fk_lin(k, p, "attn1.to_q", c, c, 0), fk_lin(k, p, "attn1.to_k", c, c, 0), fk_lin(k, p, "attn1.to_v", c, c, 0);
        fk_lin(k, p, "attn1.to_out.0", c, c, 1);
        fk_lin(k, p, "attn2.to_q", c, c, 0), fk_lin(k, p, "attn2.to_k", c, ctx, 0);
        fk_lin(k, p, "attn2.to_v", c, ctx, 0), fk_lin(k, p, "attn2.to_out.0", c, c, 1);
        fk_lin(k, p, "ff.net.0.proj", 8 * c, c, 1), fk_lin(k, p, "ff.net.2", c, 4 * c, 1);
    }
}

static inline void fk_unet(fake_ckpt *k, const fk_geo *g) {
    const char *U = "model.diffusion_model.";
    char p[256];
    int ted = 4 * g->mc, skips[32], ns = 0, ch = g->mc, idx = 1;
    fk_lin(k, U, "time_embed.0", ted, g->mc, 1), fk_lin(k, U, "time_embed.2", ted, ted, 1);
    if (g->adm) fk_lin(k, U, "label_emb.0.0", ted, g->adm, 1), fk_lin(k, U, "label_emb.0.2", ted, ted, 1);
    fk_conv(k, U, "input_blocks.0.0", g->mc, 4, 3);
    skips[ns++] = ch;
    for (int l = 0; l < g->nl; l++) {
        for (int r = 0; r < g->nrb; r++, idx++) {
            int co = g->mc * g->mult[l];
            snprintf(p, sizeof p, "%sinput_blocks.%d.0.", U, idx), fk_res(k, p, ch, co, ted);
            ch = co;
            if (g->attn[l])
                snprintf(p, sizeof p, "%sinput_blocks.%d.1.", U, idx), fk_st(k, p, ch, g->depth[l], g->ctx, g->conv_proj);
            skips[ns++] = ch;
        }
        if (l < g->nl - 1) {
            snprintf(p, sizeof p, "%sinput_blocks.%d.0.op", U, idx++);
            fk_wb(k, p, "", 4, ch, ch, 3, 3, 1);
            skips[ns++] = ch;
        }
    }
    snprintf(p, sizeof p, "%smiddle_block.0.", U), fk_res(k, p, ch, ch, ted);
    snprintf(p, sizeof p, "%smiddle_block.1.", U), fk_st(k, p, ch, g->depth_mid, g->ctx, g->conv_proj);
    snprintf(p, sizeof p, "%smiddle_block.2.", U), fk_res(k, p, ch, ch, ted);
    idx = 0;
    for (int l = g->nl - 1; l >= 0; l--)
        for (int i = 0; i <= g->nrb; i++, idx++) {
            int co = g->mc * g->mult[l], j = 1;
            snprintf(p, sizeof p, "%soutput_blocks.%d.0.", U, idx), fk_res(k, p, ch + skips[--ns], co, ted);
            ch = co;
            if (g->attn[l]) {
                snprintf(p, sizeof p, "%soutput_blocks.%d.1.", U, idx);
                fk_st(k, p, ch, g->depth[l], g->ctx, g->conv_proj);
                j++;
            }
            if (l > 0 && i == g->nrb)
                snprintf(p, sizeof p, "%soutput_blocks.%d.%d.", U, idx, j), fk_conv(k, p, "conv", ch, ch, 3);
        }
    fk_norm(k, U, "out.0", ch), fk_conv(k, U, "out.2", 4, ch, 3);
}

/* ---- text towers ---- */

/* CLIP ViT-L/14's text model in the Hugging Face naming (SD 1.x, SDXL's first) */
static inline void fk_clip_hf(fake_ckpt *k, const char *T, int W, int layers) {
    char p[320];
    snprintf(p, sizeof p, "%sembeddings.", T);
    fk_lin(k, p, "token_embedding", 49408, W, 0), fk_lin(k, p, "position_embedding", 77, W, 0);
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "%sencoder.layers.%d.", T, l);
        fk_norm(k, p, "layer_norm1", W), fk_norm(k, p, "layer_norm2", W);
        fk_lin(k, p, "self_attn.q_proj", W, W, 1), fk_lin(k, p, "self_attn.k_proj", W, W, 1);
        fk_lin(k, p, "self_attn.v_proj", W, W, 1), fk_lin(k, p, "self_attn.out_proj", W, W, 1);
        fk_lin(k, p, "mlp.fc1", 4 * W, W, 1), fk_lin(k, p, "mlp.fc2", W, 4 * W, 1);
    }
    fk_norm(k, T, "final_layer_norm", W);
}

/* OpenCLIP's text model (SD 2.x; SDXL's second, with a projection to E) */
static inline void fk_openclip(fake_ckpt *k, const char *T, int W, int layers, int E) {
    char p[320];
    fk_lin(k, T, "token_embedding", 49408, W, 0);
    fk_wb(k, T, "positional_embedding", 0, 77, W, 0, 0, 0);
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "%stransformer.resblocks.%d.", T, l);
        fk_norm(k, p, "ln_1", W), fk_norm(k, p, "ln_2", W);
        fk_wb(k, p, "attn.in_proj_weight", 0, 3 * W, W, 0, 0, 0);
        char b[400];
        snprintf(b, sizeof b, "%sattn.in_proj_bias", p);
        fk_add(k, b, 1, 3 * W, 0, 0, 0);
        fk_lin(k, p, "attn.out_proj", W, W, 1), fk_lin(k, p, "mlp.c_fc", 4 * W, W, 1);
        fk_lin(k, p, "mlp.c_proj", W, 4 * W, 1);
    }
    fk_norm(k, T, "ln_final", W);
    fk_wb(k, T, "text_projection", 0, W, E, 0, 0, 0);
}

/* ---- VAE (the same in every family) ---- */

static inline void fk_vae_res(fake_ckpt *k, const char *p, int ci, int co) {
    fk_norm(k, p, "norm1", ci), fk_conv(k, p, "conv1", co, ci, 3);
    fk_norm(k, p, "norm2", co), fk_conv(k, p, "conv2", co, co, 3);
    if (ci != co) fk_conv(k, p, "nin_shortcut", co, ci, 1);
}

static inline void fk_vae_mid(fake_ckpt *k, const char *pre, int c) {
    char p[256];
    snprintf(p, sizeof p, "%sblock_1.", pre), fk_vae_res(k, p, c, c);
    snprintf(p, sizeof p, "%sblock_2.", pre), fk_vae_res(k, p, c, c);
    snprintf(p, sizeof p, "%sattn_1.", pre);
    fk_norm(k, p, "norm", c), fk_conv(k, p, "q", c, c, 1), fk_conv(k, p, "k", c, c, 1), fk_conv(k, p, "v", c, c, 1);
    fk_conv(k, p, "proj_out", c, c, 1);
}

static inline void fk_vae(fake_ckpt *k) {
    const char *V = "first_stage_model.";
    char p[256];
    int mult[4] = {1, 2, 4, 4}, ch = 128;
    snprintf(p, sizeof p, "%sencoder.", V), fk_conv(k, p, "conv_in", 128, 3, 3);
    for (int l = 0; l < 4; l++) {
        for (int b = 0; b < 2; b++) {
            snprintf(p, sizeof p, "%sencoder.down.%d.block.%d.", V, l, b), fk_vae_res(k, p, ch, 128 * mult[l]);
            ch = 128 * mult[l];
        }
        if (l < 3) snprintf(p, sizeof p, "%sencoder.down.%d.downsample.", V, l), fk_conv(k, p, "conv", ch, ch, 3);
    }
    snprintf(p, sizeof p, "%sencoder.mid.", V), fk_vae_mid(k, p, ch);
    snprintf(p, sizeof p, "%sencoder.", V), fk_norm(k, p, "norm_out", ch), fk_conv(k, p, "conv_out", 8, ch, 3);
    fk_conv(k, V, "quant_conv", 8, 8, 1), fk_conv(k, V, "post_quant_conv", 4, 4, 1);
    snprintf(p, sizeof p, "%sdecoder.", V), fk_conv(k, p, "conv_in", 512, 4, 3);
    snprintf(p, sizeof p, "%sdecoder.mid.", V), fk_vae_mid(k, p, 512);
    ch = 512;
    for (int l = 3; l >= 0; l--) {
        for (int b = 0; b < 3; b++) {
            snprintf(p, sizeof p, "%sdecoder.up.%d.block.%d.", V, l, b), fk_vae_res(k, p, ch, 128 * mult[l]);
            ch = 128 * mult[l];
        }
        if (l > 0) snprintf(p, sizeof p, "%sdecoder.up.%d.upsample.", V, l), fk_conv(k, p, "conv", ch, ch, 3);
    }
    snprintf(p, sizeof p, "%sdecoder.", V), fk_norm(k, p, "norm_out", 128), fk_conv(k, p, "conv_out", 3, 128, 3);
}

/* ---- the released models (v1-inference.yaml, v2-inference-v.yaml, sd_xl_base.yaml) ---- */

static inline void fk_sd15(fake_ckpt *k) {
    fk_geo g = {320, 4, {1, 2, 4, 4}, 2, {1, 1, 1, 0}, {1, 1, 1, 1}, 1, 768, 0, 1};
    fk_clip_hf(k, "cond_stage_model.transformer.text_model.", 768, 12);
    fk_unet(k, &g);
    fk_vae(k);
}

static inline void fk_sd21(fake_ckpt *k) {
    fk_geo g = {320, 4, {1, 2, 4, 4}, 2, {1, 1, 1, 0}, {1, 1, 1, 1}, 1, 1024, 0, 0};
    fk_openclip(k, "cond_stage_model.model.", 1024, 24, 1024);
    fk_unet(k, &g);
    fk_vae(k);
}

static inline void fk_sdxl(fake_ckpt *k) {
    fk_geo g = {320, 3, {1, 2, 4}, 2, {0, 1, 1}, {1, 2, 10}, 10, 2048, 2816, 0};
    fk_clip_hf(k, "conditioner.embedders.0.transformer.text_model.", 768, 12);
    fk_openclip(k, "conditioner.embedders.1.model.", 1280, 32, 1280);
    fk_unet(k, &g);
    fk_vae(k);
}

#endif
