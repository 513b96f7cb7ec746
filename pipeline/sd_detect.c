/* sd_detect.c — the family and the sizes of a single-file checkpoint, read
 * from its tensors' names and shapes (as stable-diffusion.cpp does), so that
 * a real checkpoint needs no config:
 *   SD 1.x  cond_stage_model.transformer.text_model.*  (CLIP ViT-L, HF names)
 *   SD 2.x  cond_stage_model.model.*                   (OpenCLIP ViT-H)
 *   SDXL    conditioner.embedders.{0,1}.*              (CLIP-L + OpenCLIP-G)
 * UNet levels, res blocks, attention levels and transformer depths are
 * counted from the key names; widths come from the shapes. What no shape
 * shows: attention head counts (set for the released geometries only, else
 * left unknown so that sd_config_check asks for a config) and SD 2.x's
 * prediction type (2.x 768 checkpoints are v, 2.x "base" ones eps; unless a
 * config or the caller states it, sd_model.c tests the UNet as A1111 does). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/sd_internal.h"

#define UP "model.diffusion_model."
#define VP "first_stage_model."

static const cs_safetensors_tensor *T(const sd_loader *L, const char *fmt, ...) {
    char name[512], mapped[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const cs_safetensors *st;
    return sd_layout_find(L, name, &st, mapped, sizeof mapped);
}

static int dim(const cs_safetensors_tensor *t, int i) {
    if (!t || i >= t->ndim || t->shape[i] < 1 || t->shape[i] > (1 << 24)) return 0;
    return (int)t->shape[i];
}

/* Heads of the released text towers: 64-wide (ViT-L 768, ViT-H 1024, ViT-bigG 1280). */
static int known_text_heads(int width) {
    return width == 768 || width == 1024 || width == 1280 ? width / 64 : -1;
}

static int detect_hf_text(sd_text_config *t, const sd_loader *L, const char *pre) {
    const cs_safetensors_tensor *e = T(L, "%sembeddings.token_embedding.weight", pre);
    if (!dim(e, 0) || !dim(e, 1)) return -1;
    t->kind = SD_TEXT_HF;
    t->max_positions = dim(T(L, "%sembeddings.position_embedding.weight", pre), 0);
    t->layer_norm_eps = 1e-5f;
    t->vocab_size = dim(e, 0);
    t->hidden_size = dim(e, 1);
    int n = 0;
    while (n < 256 && T(L, "%sencoder.layers.%d.layer_norm1.weight", pre, n)) n++;
    t->num_layers = n;
    t->intermediate = dim(T(L, "%sencoder.layers.0.mlp.fc1.weight", pre), 0);
    t->num_heads = known_text_heads(t->hidden_size);
    t->gelu = 0;
    t->pad_id = 49407;
    t->proj_dim = 0;
    return 0;
}

static int detect_openclip_text(sd_text_config *t, const sd_loader *L, const char *pre) {
    const cs_safetensors_tensor *e = T(L, "%stoken_embedding.weight", pre);
    if (!dim(e, 0) || !dim(e, 1)) return -1;
    t->kind = SD_TEXT_OPENCLIP;
    t->max_positions = dim(T(L, "%spositional_embedding", pre), 0);
    t->layer_norm_eps = 1e-5f;
    t->vocab_size = dim(e, 0);
    t->hidden_size = dim(e, 1);
    int n = 0;
    while (n < 256 && T(L, "%stransformer.resblocks.%d.ln_1.weight", pre, n)) n++;
    t->num_layers = n;
    t->intermediate = dim(T(L, "%stransformer.resblocks.0.mlp.c_fc.weight", pre), 0);
    t->num_heads = known_text_heads(t->hidden_size);
    t->gelu = 1;
    t->pad_id = 0;
    t->proj_dim = dim(T(L, "%stext_projection", pre), 1);
    return 0;
}

static void detect_unet(sd_unet_config *u, const sd_loader *L) {
    const cs_safetensors_tensor *t = T(L, UP "input_blocks.0.0.weight");
    if (dim(t, 0)) u->model_channels = dim(t, 0), u->in_channels = dim(t, 1);
    if ((t = T(L, UP "out.2.weight")) && dim(t, 0)) u->out_channels = dim(t, 0);
    if ((t = T(L, UP "time_embed.0.weight")) && dim(t, 0)) u->time_embed_dim = dim(t, 0);
    u->adm_in_channels = dim(T(L, UP "label_emb.0.0.weight"), 1);
    /* input_blocks 1..: res blocks, a downsampler (.0.op) closing each level but the last */
    int nrb = 0, nl = 0, i = 1, r = 0;
    for (; i < 512 && nl < SD_MAX_LEVELS; i++) {
        if (T(L, UP "input_blocks.%d.0.op.weight", i)) {
            if (!nrb) nrb = r;
            nl++, r = 0;
            continue;
        }
        const cs_safetensors_tensor *c = T(L, UP "input_blocks.%d.0.in_layers.2.weight", i);
        if (!c) break;
        if (r == 0 && u->model_channels) u->channel_mult[nl] = dim(c, 0) / u->model_channels;
        r++;
    }
    if (r) nl++;
    if (!nrb) nrb = r;
    if (nl < 1 || nrb < 1) return; /* sd_config_check / the loader report it */
    u->n_levels = nl;
    u->num_res_blocks = nrb;
    for (int l = 0; l < nl; l++) {
        int idx = 1 + l * (nrb + 1), d = 0;
        u->attn_level[l] = T(L, UP "input_blocks.%d.1.norm.weight", idx) != NULL;
        while (d < 64 && T(L, UP "input_blocks.%d.1.transformer_blocks.%d.norm1.weight", idx, d)) d++;
        u->depth[l] = d ? d : 1;
    }
    int d = 0;
    while (d < 64 && T(L, UP "middle_block.1.transformer_blocks.%d.norm1.weight", d)) d++;
    u->depth_middle = d ? d : 1;
    if ((t = T(L, UP "middle_block.1.transformer_blocks.0.attn2.to_k.weight")) && dim(t, 1))
        u->context_dim = dim(t, 1);
    memset(u->heads_level, 0, sizeof u->heads_level);
    u->num_heads = u->num_head_channels = -1;
    if (u->model_channels == 320 && u->context_dim == 768) u->num_heads = 8; /* SD 1.x */
    else if (u->model_channels == 320 && (u->context_dim == 1024 || u->context_dim == 2048))
        u->num_head_channels = 64; /* SD 2.x, SDXL */
}

static void detect_vae(sd_vae_config *v, const sd_loader *L) {
    const cs_safetensors_tensor *t = T(L, VP "encoder.conv_in.weight");
    if (!dim(t, 0)) return;
    v->ch = dim(t, 0);
    v->in_channels = dim(t, 1);
    int nl = 0;
    while (nl < SD_MAX_LEVELS && (t = T(L, VP "encoder.down.%d.block.0.conv1.weight", nl))) {
        v->ch_mult[nl] = dim(t, 0) / v->ch;
        nl++;
    }
    if (nl) v->n_levels = nl;
    int nrb = 0;
    while (nrb < 64 && T(L, VP "encoder.down.0.block.%d.conv1.weight", nrb)) nrb++;
    if (nrb) v->num_res_blocks = nrb;
    if ((t = T(L, VP "decoder.conv_in.weight")) && dim(t, 1)) v->z_channels = dim(t, 1);
    if ((t = T(L, VP "post_quant_conv.weight")) && dim(t, 1)) v->embed_dim = dim(t, 1);
    if ((t = T(L, VP "decoder.conv_out.weight")) && dim(t, 0)) v->out_ch = dim(t, 0);
}

int sd_detect(sd_config *c, const sd_loader *L, cs_err *err) {
    sd_config_preset(c);
    if (!detect_openclip_text(&c->text2, L, "conditioner.embedders.1.model.")) {
        c->family = SD_FAMILY_SDXL;
        if (detect_hf_text(&c->text, L, "conditioner.embedders.0.transformer.text_model."))
            return cs_fail(err, CS_EFORMAT,
                           "%s: SDXL checkpoint without its first text encoder "
                           "(conditioner.embedders.0.transformer.text_model.*)",
                           L->path);
        c->text.skip_last = 1, c->text.final_ln = 0;   /* hidden_states[-2], no final LN */
        c->text2.skip_last = 1, c->text2.final_ln = 0; /* penultimate, no ln_final */
        c->scale_factor = SDXL_SCALE_FACTOR;
        c->prediction = SD_PRED_EPS;
    } else if (!detect_openclip_text(&c->text, L, "cond_stage_model.model.")) {
        c->family = SD_FAMILY_SD2;
        c->text.skip_last = 1, c->text.final_ln = 1; /* penultimate, then ln_final */
        c->text.proj_dim = 0;                        /* text_projection unused */
        c->prediction = SD_PRED_V;
    } else if (!detect_hf_text(&c->text, L, "cond_stage_model.transformer.text_model.")) {
        c->family = SD_FAMILY_SD1;
    } else if (T(L, "conditioner.embedders.0.model.token_embedding.weight")) {
        return cs_fail(err, CS_EFORMAT,
                       "%s: an SDXL refiner (one OpenCLIP-G text encoder, no CLIP-L): not "
                       "supported; copyscope reads SD 1.x, SD 2.x and SDXL base checkpoints",
                       L->path);
    } else if (T(L, "conv_in.weight") || T(L, "text_model.embeddings.token_embedding.weight") ||
               T(L, "decoder.conv_in.weight")) {
        return cs_fail(err, CS_EFORMAT,
                       "%s: one part of a diffusers folder (diffusers names): give the folder "
                       "that holds model_index.json, unet/, vae/ and text_encoder/",
                       L->path);
    } else {
        return cs_fail(err, CS_EFORMAT,
                       "%s: no text encoder found (cond_stage_model.transformer.text_model.* "
                       "for SD 1.x, cond_stage_model.model.* for SD 2.x, conditioner.embedders.* "
                       "for SDXL): not a Stable Diffusion checkpoint, or a UNet-only / pruned "
                       "file; copyscope reads full SD 1.x, SD 2.x and SDXL base checkpoints "
                       "(single .safetensors or a diffusers folder)",
                       L->path);
    }
    detect_unet(&c->unet, L);
    detect_vae(&c->vae, L);
    return 0;
}
