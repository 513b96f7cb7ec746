/* test_sd_diffusers.c — the diffusers layout for SD 2.x and SDXL (the shared
 * refs hold SD 1.x folders only): sd2-tiny and sdxl-tiny are rewritten here
 * into diffusers folders the way diffusers' conversion lays them out
 * (UNet/VAE renames; the open_clip towers as Hugging Face CLIPTextModel
 * names: packed in_proj split into q/k/v, text_projection transposed into a
 * Linear; per-level head counts, transformer_layers_per_block,
 * addition_embed_type text_time, prediction_type in the scheduler config),
 * then loaded without any config and compared with the single file: text
 * encoders, pooled embedding and UNet must agree to float rounding. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "core/safetensors.h"
#include "pipeline/sd_internal.h"
#include "tests/t.h"

#define R "../shared/refs"

typedef struct {
    cs_safetensors_out t[4096];
    char *names[4096];
    void *bufs[4096];
    int n, nb;
} outlist;

static void put(outlist *o, const char *name, const cs_safetensors_tensor *s, const void *data, int ndim,
                const int64_t *shape) {
    o->names[o->n] = strdup(name);
    cs_safetensors_out *t = &o->t[o->n++];
    t->name = o->names[o->n - 1];
    t->dtype = s->dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    t->data = data;
}

static void *keep(outlist *o, size_t bytes) { return o->bufs[o->nb++] = malloc(bytes); }

static void outlist_free(outlist *o) {
    for (int i = 0; i < o->n; i++) free(o->names[i]);
    for (int i = 0; i < o->nb; i++) free(o->bufs[i]);
    o->n = o->nb = 0;
}

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* an open_clip tower (prefix pre) -> HF CLIPTextModel names */
static void openclip_to_hf(outlist *o, const cs_safetensors *st, const char *pre) {
    char n[512];
    for (int i = 0; i < st->n; i++) {
        const cs_safetensors_tensor *s = &st->tensors[i];
        if (!starts(s->name, pre)) continue;
        const char *r = s->name + strlen(pre);
        int L, k = 0;
        if (!strcmp(r, "token_embedding.weight")) {
            put(o, "text_model.embeddings.token_embedding.weight", s, s->data, s->ndim, s->shape);
        } else if (!strcmp(r, "positional_embedding")) {
            put(o, "text_model.embeddings.position_embedding.weight", s, s->data, s->ndim, s->shape);
        } else if (starts(r, "ln_final.")) {
            snprintf(n, sizeof n, "text_model.final_layer_norm.%s", r + 9);
            put(o, n, s, s->data, s->ndim, s->shape);
        } else if (!strcmp(r, "text_projection")) { /* [W, E] used as x @ P -> Linear [E, W] */
            int64_t W = s->shape[0], E = s->shape[1], sh[2] = {E, W};
            float *t = keep(o, sizeof(float) * W * E);
            for (int64_t a = 0; a < W; a++)
                for (int64_t b = 0; b < E; b++) t[b * W + a] = ((const float *)s->data)[a * E + b];
            put(o, "text_projection.weight", s, t, 2, sh);
        } else if (sscanf(r, "transformer.resblocks.%d.%n", &L, &k) == 1 && k) {
            const char *p = r + k;
            static const char *from[] = {"ln_1.", "ln_2.", "attn.out_proj.", "mlp.c_fc.", "mlp.c_proj."};
            static const char *to[] = {"layer_norm1.", "layer_norm2.", "self_attn.out_proj.", "mlp.fc1.",
                                       "mlp.fc2."};
            for (int q = 0; q < 5; q++)
                if (starts(p, from[q])) {
                    snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s%s", L, to[q], p + strlen(from[q]));
                    put(o, n, s, s->data, s->ndim, s->shape);
                }
            int bias = !strcmp(p, "attn.in_proj_bias");
            if (bias || !strcmp(p, "attn.in_proj_weight")) { /* rows q, k, v */
                static const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
                int64_t rows = s->shape[0] / 3, cols = bias ? 1 : s->shape[1];
                for (int q = 0; q < 3; q++) {
                    int64_t sh[2] = {rows, cols};
                    snprintf(n, sizeof n, "text_model.encoder.layers.%d.self_attn.%s.%s", L, qkv[q],
                             bias ? "bias" : "weight");
                    put(o, n, s, (const float *)s->data + q * rows * cols, bias ? 1 : 2, sh);
                }
            }
        }
    }
}

static void hf_strip(outlist *o, const cs_safetensors *st, const char *pre) {
    for (int i = 0; i < st->n; i++) {
        const cs_safetensors_tensor *s = &st->tensors[i];
        if (starts(s->name, pre) && !strstr(s->name, "position_ids"))
            put(o, s->name + strlen(pre), s, s->data, s->ndim, s->shape);
    }
}

static void write_json(const char *dir, const char *file, const char *text) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int flush(outlist *o, const char *dir, const char *file) {
    char p[4200];
    cs_err err = {0};
    snprintf(p, sizeof p, "%s/%s", dir, file);
    int rc = cs_safetensors_write(p, o->t, o->n, NULL, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    outlist_free(o);
    return rc;
}

/* Writes the diffusers folder of a single-file model m (loaded with its
 * config: its geometry drives the renames and configs). */
static int to_diffusers(const sd_model *m, const char *src, const char *dir) {
    const sd_config *c = &m->cfg;
    const sd_unet_config *u = &c->unet;
    cs_safetensors st;
    cs_err err = {0};
    if (cs_safetensors_open(&st, src, &err)) return -1;
    static outlist o;
    char cmd[4300], n[512], j[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/unet %s/vae %s/text_encoder %s/text_encoder_2 %s/scheduler",
             dir, dir, dir, dir, dir);
    if (system(cmd)) return -1;
    int xl = c->family == SD_FAMILY_SDXL, rc = 0;
    for (int i = 0; i < st.n; i++) { /* UNet */
        const cs_safetensors_tensor *s = &st.tensors[i];
        if (starts(s->name, "model.diffusion_model.") &&
            !sd_unet_to_diffusers(u->num_res_blocks, s->name + 22, n, sizeof n))
            put(&o, n, s, s->data, s->ndim, s->shape);
    }
    rc |= flush(&o, dir, "unet/diffusion_pytorch_model.safetensors");
    for (int i = 0; i < st.n; i++) { /* VAE: attention 1x1 convs squeezed to Linear */
        const cs_safetensors_tensor *s = &st.tensors[i];
        if (!starts(s->name, "first_stage_model.") ||
            sd_vae_to_diffusers(c->vae.n_levels, s->name + 18, 0, n, sizeof n))
            continue;
        int sq = strstr(s->name, "attn_1.") && s->ndim == 4;
        put(&o, n, s, s->data, sq ? 2 : s->ndim, s->shape);
    }
    rc |= flush(&o, dir, "vae/diffusion_pytorch_model.safetensors");
    if (xl) {
        hf_strip(&o, &st, "conditioner.embedders.0.transformer.");
        rc |= flush(&o, dir, "text_encoder/model.safetensors");
        openclip_to_hf(&o, &st, "conditioner.embedders.1.model.");
        rc |= flush(&o, dir, "text_encoder_2/model.safetensors");
    } else {
        openclip_to_hf(&o, &st, "cond_stage_model.model.");
        rc |= flush(&o, dir, "text_encoder/model.safetensors");
        snprintf(cmd, sizeof cmd, "rmdir %s/text_encoder_2", dir);
        rc |= system(cmd);
    }
    cs_safetensors_close(&st);
    /* configs */
    char boc[256] = "", types[512] = "", heads[256] = "", depth[256] = "";
    for (int l = 0; l < u->n_levels; l++) {
        int ch = u->model_channels * u->channel_mult[l];
        snprintf(boc + strlen(boc), sizeof boc - strlen(boc), "%s%d", l ? ", " : "", ch);
        snprintf(types + strlen(types), sizeof types - strlen(types), "%s\"%s\"", l ? ", " : "",
                 u->attn_level[l] ? "CrossAttnDownBlock2D" : "DownBlock2D");
        snprintf(heads + strlen(heads), sizeof heads - strlen(heads), "%s%d", l ? ", " : "",
                 sd_unet_heads(u, l, ch));
        snprintf(depth + strlen(depth), sizeof depth - strlen(depth), "%s%d", l ? ", " : "", u->depth[l]);
    }
    char add[256] = "";
    if (xl)
        snprintf(add, sizeof add,
                 ", \"addition_embed_type\": \"text_time\", \"projection_class_embeddings_input_dim\": %d",
                 u->adm_in_channels);
    snprintf(j, sizeof j,
             "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": %d, \"out_channels\": %d, "
             "\"block_out_channels\": [%s], \"down_block_types\": [%s], \"layers_per_block\": %d, "
             "\"attention_head_dim\": [%s], \"transformer_layers_per_block\": [%s], "
             "\"cross_attention_dim\": %d, \"use_linear_projection\": true%s}",
             u->in_channels, u->out_channels, boc, types, u->num_res_blocks, heads, depth,
             u->context_dim, add);
    write_json(dir, "unet/config.json", j);
    const sd_vae_config *v = &c->vae;
    boc[0] = 0;
    for (int l = 0; l < v->n_levels; l++)
        snprintf(boc + strlen(boc), sizeof boc - strlen(boc), "%s%d", l ? ", " : "", v->ch * v->ch_mult[l]);
    snprintf(j, sizeof j,
             "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [%s], \"layers_per_block\": %d, "
             "\"latent_channels\": %d, \"scaling_factor\": %g}",
             boc, v->num_res_blocks, v->z_channels, (double)c->scale_factor);
    write_json(dir, "vae/config.json", j);
    for (int k = 0; k < 1 + xl; k++) {
        const sd_text_config *t = k ? &c->text2 : &c->text;
        snprintf(j, sizeof j,
                 "{\"hidden_size\": %d, \"num_attention_heads\": %d, \"num_hidden_layers\": %d, "
                 "\"intermediate_size\": %d, \"hidden_act\": \"%s\", \"projection_dim\": %d}",
                 t->hidden_size, t->num_heads, t->num_layers, t->intermediate,
                 t->gelu ? "gelu" : "quick_gelu", t->proj_dim);
        write_json(dir, k ? "text_encoder_2/config.json" : "text_encoder/config.json", j);
    }
    snprintf(j, sizeof j, "{\"prediction_type\": \"%s\"}",
             c->prediction == SD_PRED_V ? "v_prediction" : "epsilon");
    write_json(dir, "scheduler/scheduler_config.json", j);
    write_json(dir, "model_index.json", "{}");
    return rc;
}

static double rel_err(const float *out, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (!(d <= md)) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static void compare(const char *name) {
    char src[256], cfg[256], cases[256];
    snprintf(src, sizeof src, R "/%s/model.safetensors", name);
    snprintf(cfg, sizeof cfg, R "/%s/config.json", name);
    snprintf(cases, sizeof cases, R "/%s/cases/unet.safetensors", name);
    char *dir = t_tmpdir("sdd");
    REQUIRE(dir);
    sd_model *a = NULL, *b = NULL;
    cs_err err = {0};
    REQUIRE(sd_load(&a, src, cfg, &err) == 0);
    CHECK(to_diffusers(a, src, dir) == 0);
    CHECKF(sd_load(&b, dir, NULL, &err) == 0, "%s", err.msg); /* no config */
    if (b) {
        CHECK(sd_family(a) == sd_family(b) && sd_prediction(a) == sd_prediction(b));
        CHECK(fabsf(sd_scale_factor(a) - sd_scale_factor(b)) < 1e-7f);
        int D = sd_context_dim(a), E = sd_pooled_dim(a);
        CHECK(D == sd_context_dim(b) && E == sd_pooled_dim(b));
        int32_t ids[2 * 77];
        for (int i = 0; i < 2 * 77; i++) ids[i] = 49407;
        ids[0] = ids[77] = 49406, ids[1] = 320, ids[2] = 1125, ids[78] = 2368, ids[79] = 539, ids[80] = 0;
        float *ca = malloc(sizeof(float) * 2 * 77 * D), *cb = malloc(sizeof(float) * 2 * 77 * D);
        float pa[2 * 64], pb[2 * 64];
        CHECK(sd_text_encode_xl(a, ids, NULL, 2, 1, ca, E ? pa : NULL, &err) == 0);
        CHECK(sd_text_encode_xl(b, ids, NULL, 2, 1, cb, E ? pb : NULL, &err) == 0);
        double e = rel_err(cb, ca, (size_t)2 * 77 * D);
        printf("  %s diffusers vs single file: context rel %.3g\n", name, e);
        CHECK(e <= 1e-6);
        if (E) CHECK(E <= 64 && rel_err(pb, pa, 2 * E) <= 1e-6);
        cs_safetensors cs;
        REQUIRE(cs_safetensors_open(&cs, cases, &err) == 0);
        const cs_safetensors_tensor *x = cs_safetensors_find(&cs, "x"), *y = cs_safetensors_find(&cs, "y");
        const cs_safetensors_tensor *ref = cs_safetensors_find(&cs, sd_prediction(a) == SD_PRED_V ? "v" : "eps");
        float *o = malloc(sizeof(float) * ref->numel);
        CHECK(sd_unet(b, x->data, cs_safetensors_find(&cs, "timesteps")->data, cs_safetensors_find(&cs, "context")->data,
                      y ? y->data : NULL, (int)x->shape[0], (int)x->shape[2], (int)x->shape[3], o,
                      &err) == 0);
        e = rel_err(o, ref->data, (size_t)ref->numel);
        printf("  %s diffusers unet case: rel %.3g\n", name, e);
        CHECK(e <= 2e-5);
        free(o), free(ca), free(cb);
        cs_safetensors_close(&cs);
    }
    sd_free(a);
    sd_free(b);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

static void test_sd2_diffusers(void) { compare("sd2-tiny"); }
static void test_sdxl_diffusers(void) { compare("sdxl-tiny"); }

int main(void) {
    nn_set_threads(2);
    RUN(test_sd2_diffusers);
    RUN(test_sdxl_diffusers);
    return T_DONE();
}
