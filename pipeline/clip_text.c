/* clip_text.c — the CLIP ViT-L/14 text encoder of SD 1.x, stored with
 * Hugging Face CLIPTextModel names under cond_stage_model.transformer.text_model.
 *
 * Pre-LN transformer over 77 tokens, token-major [77, D]:
 *   x = token_embedding[ids] + position_embedding[0..76]
 *   per layer: x += out_proj(causal_attention(layer_norm1(x)))
 *              x += fc2(quick_gelu(fc1(layer_norm2(x))))
 *   context = final_layer_norm(x)
 * embeddings.position_ids is ignored (positions are always 0..76). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "pipeline/sd_internal.h"

#define TP "cond_stage_model.transformer.text_model."

int clip_text_load(sd_model *m, sd_loader *L) {
    const sd_text_config *c = &m->cfg.text;
    clip_text_model *t = &m->text;
    int D = c->hidden_size, I = c->intermediate;
    int64_t se[2] = {c->vocab_size, D}, sp[2] = {c->max_positions, D};
    if (sd_load_tensor(L, &t->token_embedding, TP "embeddings.token_embedding.weight", 2, se) ||
        sd_load_tensor(L, &t->position_embedding, TP "embeddings.position_embedding.weight", 2, sp))
        return -1;
    t->layers = calloc(c->num_layers, sizeof *t->layers);
    if (!t->layers) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
    char n[256];
    for (int i = 0; i < c->num_layers; i++) {
        clip_layer *l = &t->layers[i];
#define NAME(s) (snprintf(n, sizeof n, TP "encoder.layers.%d.%s", i, s), n)
        if (sd_load_norm(L, &l->layer_norm1, NAME("layer_norm1"), D) ||
            sd_load_linear(L, &l->q_proj, NAME("self_attn.q_proj"), D, D, 1) ||
            sd_load_linear(L, &l->k_proj, NAME("self_attn.k_proj"), D, D, 1) ||
            sd_load_linear(L, &l->v_proj, NAME("self_attn.v_proj"), D, D, 1) ||
            sd_load_linear(L, &l->out_proj, NAME("self_attn.out_proj"), D, D, 1) ||
            sd_load_norm(L, &l->layer_norm2, NAME("layer_norm2"), D) ||
            sd_load_linear(L, &l->fc1, NAME("mlp.fc1"), I, D, 1) ||
            sd_load_linear(L, &l->fc2, NAME("mlp.fc2"), D, I, 1))
            return -1;
#undef NAME
    }
    return sd_load_norm(L, &t->final_layer_norm, TP "final_layer_norm", D);
}

void clip_text_free(clip_text_model *t) {
    free(t->layers);
    t->layers = NULL;
}

/* One CLIPEncoderLayer on x [B*77, D] in place (the B prompts' tokens stacked,
 * so every linear is one sgemm; attention stays within a prompt).
 * Scratch: h, q, k, v, a [B*77, D], mlp [B*77, I], ws (attention scores). */
static void clip_encoder_layer(float *x, const clip_layer *l, const sd_text_config *c, int B,
                               float *h, float *q, float *k, float *v, float *a, float *mlp,
                               float *ws) {
    const int T = SD_CONTEXT_TOKENS, BT = B * T, D = c->hidden_size, I = c->intermediate;
    const int H = c->num_heads, dh = D / H;
    nn_layer_norm(h, x, l->layer_norm1.w, l->layer_norm1.b, BT, D, c->layer_norm_eps);
    nn_linear(q, h, l->q_proj.w, l->q_proj.b, BT, D, D);
    nn_linear(k, h, l->k_proj.w, l->k_proj.b, BT, D, D);
    nn_linear(v, h, l->v_proj.w, l->v_proj.b, BT, D, D);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * T * D;
        nn_attention(a + o, D, q + o, D, k + o, D, v + o, D, T, T, H, dh, 1, ws);
    }
    nn_linear(h, a, l->out_proj.w, l->out_proj.b, BT, D, D);
    nn_add_inplace(x, h, (size_t)BT * D);
    nn_layer_norm(h, x, l->layer_norm2.w, l->layer_norm2.b, BT, D, c->layer_norm_eps);
    nn_linear(mlp, h, l->fc1.w, l->fc1.b, BT, D, I);
    nn_quick_gelu(mlp, (size_t)BT * I);
    nn_linear(h, mlp, l->fc2.w, l->fc2.b, BT, I, D);
    nn_add_inplace(x, h, (size_t)BT * D);
}

int sd_text_encode(sd_model *m, const int32_t *ids, int B, int clip_skip, float *out,
                   cs_err *err) {
    const sd_text_config *c = &m->cfg.text;
    const clip_text_model *t = &m->text;
    const int T = SD_CONTEXT_TOKENS, D = c->hidden_size, I = c->intermediate;
    if (B < 1 || B > 4096) return cs_fail(err, CS_EUSAGE, "%s: text encoder: batch %d", m->path, B);
    if (clip_skip < 1 || clip_skip > c->num_layers)
        return cs_fail(err, CS_EUSAGE, "%s: clip skip %d outside 1..%d", m->path, clip_skip,
                       c->num_layers);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return cs_fail(err, CS_EUSAGE, "%s: token id %d outside the vocabulary (0..%d)",
                           m->path, ids[i], c->vocab_size - 1);
    sd_arena *A = &m->arena;
    sd_arena_begin(A);
    size_t BTD = (size_t)B * T * D;
    float *h = sd_arena_alloc(A, BTD), *q = sd_arena_alloc(A, BTD), *k = sd_arena_alloc(A, BTD);
    float *v = sd_arena_alloc(A, BTD), *a = sd_arena_alloc(A, BTD);
    float *mlp = sd_arena_alloc(A, (size_t)B * T * I);
    float *ws = sd_arena_alloc(A, nn_attention_ws(T, T));
    if (!h || !q || !k || !v || !a || !mlp || !ws) {
        sd_arena_release(A, 0);
        return cs_fail(err, CS_ENOMEM, "%s: text encoder: out of memory", m->path);
    }
    /* the residual stream lives in out; the final layer norm runs in place */
    float *x = out;
    for (int i = 0; i < B * T; i++) {
        const float *te = t->token_embedding + (size_t)ids[i] * D;
        const float *pe = t->position_embedding + (size_t)(i % T) * D;
        for (int d = 0; d < D; d++) x[(size_t)i * D + d] = te[d] + pe[d];
    }
    int n_layers = c->num_layers - (clip_skip - 1);
    for (int l = 0; l < n_layers; l++)
        clip_encoder_layer(x, &t->layers[l], c, B, h, q, k, v, a, mlp, ws);
    nn_layer_norm(x, x, t->final_layer_norm.w, t->final_layer_norm.b, B * T, D,
                  c->layer_norm_eps);
    sd_arena_release(A, 0);
    return 0;
}
