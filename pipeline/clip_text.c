/* clip_text.c — the CLIP text towers of Stable Diffusion:
 *   SD 1.x  OpenAI CLIP ViT-L/14, Hugging Face CLIPTextModel names under
 *           cond_stage_model.transformer.text_model. (quick_gelu);
 *   SD 2.x  OpenCLIP ViT-H/14, open_clip names under cond_stage_model.model.
 *           (exact GELU, packed attn.in_proj_weight [3W, W] rows q, k, v,
 *           raw positional_embedding [77, W]);
 *   SDXL    CLIP-L (HF names, conditioner.embedders.0.transformer.text_model.)
 *           and OpenCLIP-G (open_clip names, conditioner.embedders.1.model.,
 *           with text_projection [W, E] used as x @ P).
 * In a diffusers folder every tower has HF names (sd_layout.c).
 *
 * Pre-LN transformer over 77 tokens, token-major [77, D], causal mask:
 *   x = token_embedding[ids] + position_embedding[0..76]
 *   per layer: x += out_proj(causal_attention(ln1(x)))
 *              x += fc2(act(fc1(ln2(x))))
 * The context is the output of all layers (SD 1.x) or of all but the last
 * (SD 2.x, SDXL), then the final layer norm (SD 1.x, SD 2.x) or not (SDXL).
 * The pooled vector (SDXL) is final_ln(last layer output) at the end token,
 * projected. The ids' padding after the first end token is rewritten to the
 * tower's pad id (49407 for the HF tokenizer, 0 for open_clip.tokenize). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "pipeline/sd_internal.h"

#define EOT_ID 49407

static int load_hf(sd_loader *L, clip_text_model *t, const sd_text_config *c, const char *tp,
                   const char *proj) {
    int D = c->hidden_size, Im = c->intermediate;
    int64_t se[2] = {c->vocab_size, D}, sp[2] = {c->max_positions, D};
    char n[512];
    snprintf(n, sizeof n, "%sembeddings.token_embedding.weight", tp);
    if (sd_load_tensor(L, &t->token_embedding, n, 2, se)) return -1;
    snprintf(n, sizeof n, "%sembeddings.position_embedding.weight", tp);
    if (sd_load_tensor(L, &t->position_embedding, n, 2, sp)) return -1;
    for (int i = 0; i < c->num_layers; i++) {
        clip_layer *l = &t->layers[i];
#define NAME(s) (snprintf(n, sizeof n, "%sencoder.layers.%d.%s", tp, i, s), n)
        if (sd_load_norm(L, &l->layer_norm1, NAME("layer_norm1"), D) ||
            sd_load_linear(L, &l->q_proj, NAME("self_attn.q_proj"), D, D, 1) ||
            sd_load_linear(L, &l->k_proj, NAME("self_attn.k_proj"), D, D, 1) ||
            sd_load_linear(L, &l->v_proj, NAME("self_attn.v_proj"), D, D, 1) ||
            sd_load_linear(L, &l->out_proj, NAME("self_attn.out_proj"), D, D, 1) ||
            sd_load_norm(L, &l->layer_norm2, NAME("layer_norm2"), D) ||
            sd_load_linear(L, &l->fc1, NAME("mlp.fc1"), Im, D, 1) ||
            sd_load_linear(L, &l->fc2, NAME("mlp.fc2"), D, Im, 1))
            return -1;
#undef NAME
    }
    snprintf(n, sizeof n, "%sfinal_layer_norm", tp);
    if (sd_load_norm(L, &t->final_layer_norm, n, D)) return -1;
    if (c->proj_dim > 0) { /* CLIPTextModelWithProjection: Linear [E, D], no bias */
        if (sd_load_linear(L, &t->proj, proj, c->proj_dim, D, 0)) return -1;
    }
    return 0;
}

static int load_openclip(sd_loader *L, clip_text_model *t, const sd_text_config *c,
                         const char *tp) {
    int D = c->hidden_size, Im = c->intermediate;
    int64_t se[2] = {c->vocab_size, D}, sp[2] = {c->max_positions, D}, sw[2] = {3 * D, D},
            sb = 3 * D;
    char n[512];
    snprintf(n, sizeof n, "%stoken_embedding.weight", tp);
    if (sd_load_tensor(L, &t->token_embedding, n, 2, se)) return -1;
    snprintf(n, sizeof n, "%spositional_embedding", tp);
    if (sd_load_tensor(L, &t->position_embedding, n, 2, sp)) return -1;
    for (int i = 0; i < c->num_layers; i++) {
        clip_layer *l = &t->layers[i];
        const float *w, *b;
#define NAME(s) (snprintf(n, sizeof n, "%stransformer.resblocks.%d.%s", tp, i, s), n)
        if (sd_load_norm(L, &l->layer_norm1, NAME("ln_1"), D) ||
            sd_load_tensor(L, &w, NAME("attn.in_proj_weight"), 2, sw) ||
            sd_load_tensor(L, &b, NAME("attn.in_proj_bias"), 1, &sb) ||
            sd_load_linear(L, &l->out_proj, NAME("attn.out_proj"), D, D, 1) ||
            sd_load_norm(L, &l->layer_norm2, NAME("ln_2"), D) ||
            sd_load_linear(L, &l->fc1, NAME("mlp.c_fc"), Im, D, 1) ||
            sd_load_linear(L, &l->fc2, NAME("mlp.c_proj"), D, Im, 1))
            return -1;
#undef NAME
        size_t DD = (size_t)D * D;
        l->q_proj = (sd_linear){w, b, D, D};
        l->k_proj = (sd_linear){w + DD, b + D, D, D};
        l->v_proj = (sd_linear){w + 2 * DD, b + 2 * D, D, D};
    }
    snprintf(n, sizeof n, "%sln_final", tp);
    if (sd_load_norm(L, &t->final_layer_norm, n, D)) return -1;
    if (c->proj_dim > 0) {
        int64_t s[2] = {D, c->proj_dim};
        snprintf(n, sizeof n, "%stext_projection", tp);
        if (sd_load_tensor(L, &t->text_projection, n, 2, s)) return -1;
    }
    return 0;
}

static int load_tower(sd_loader *L, clip_text_model *t, const sd_text_config *c, int family,
                      int second) {
    t->layers = calloc(c->num_layers, sizeof *t->layers);
    if (!t->layers) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
    if (c->kind == SD_TEXT_OPENCLIP)
        return load_openclip(L, t, c, second ? "conditioner.embedders.1.model."
                                             : "cond_stage_model.model.");
    if (family == SD_FAMILY_SDXL)
        return second ? load_hf(L, t, c, "conditioner.embedders.1.transformer.text_model.",
                                "conditioner.embedders.1.transformer.text_projection")
                      : load_hf(L, t, c, "conditioner.embedders.0.transformer.text_model.", NULL);
    return load_hf(L, t, c, "cond_stage_model.transformer.text_model.", NULL);
}

int clip_text_load(sd_model *m, sd_loader *L) {
    if (load_tower(L, &m->text, &m->cfg.text, m->cfg.family, 0)) return -1;
    if (m->cfg.text2.num_layers > 0 && load_tower(L, &m->text2, &m->cfg.text2, m->cfg.family, 1))
        return -1;
    return 0;
}

void clip_text_free(clip_text_model *t) {
    free(t->layers);
    t->layers = NULL;
}

/* One encoder layer on x [B*77, D] in place (the B prompts' tokens stacked,
 * so every linear is one sgemm; attention stays within a prompt).
 * Scratch: h, q, k, v, a [B*77, D], mlp [B*77, I], ws (attention scores). */
static void clip_encoder_layer(float *x, const clip_layer *l, const sd_text_config *c, int B,
                               float *h, float *q, float *k, float *v, float *a, float *mlp,
                               float *ws) {
    const int T = SD_CONTEXT_TOKENS, BT = B * T, D = c->hidden_size, Im = c->intermediate;
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
    nn_linear(mlp, h, l->fc1.w, l->fc1.b, BT, D, Im);
    if (c->gelu) nn_gelu_erf(mlp, (size_t)BT * Im);
    else nn_quick_gelu(mlp, (size_t)BT * Im);
    nn_linear(h, mlp, l->fc2.w, l->fc2.b, BT, Im, D);
    nn_add_inplace(x, h, (size_t)BT * D);
}

static int check_ids(const sd_model *m, const sd_text_config *c, const int32_t *ids, int B,
                     cs_err *err) {
    if (B < 1 || B > 4096) return cs_fail(err, CS_EUSAGE, "%s: text encoder: batch %d", m->path, B);
    for (int i = 0; i < B * SD_CONTEXT_TOKENS; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return cs_fail(err, CS_EUSAGE, "%s: token id %d outside the vocabulary (0..%d)",
                           m->path, ids[i], c->vocab_size - 1);
    return 0;
}

/* The tower's context out [B,77,D] after n_layers blocks (+ final LN), and
 * pooled [B, proj_dim] (may be NULL). */
static int tower_run(sd_model *m, const clip_text_model *t, const sd_text_config *c,
                     const int32_t *ids_in, int B, int n_layers, int final_ln, float *out,
                     float *pooled, cs_err *err) {
    const int T = SD_CONTEXT_TOKENS, D = c->hidden_size, Im = c->intermediate;
    if (check_ids(m, c, ids_in, B, err)) return -1;
    sd_arena *A = &m->arena;
    sd_arena_begin(A);
    size_t BTD = (size_t)B * T * D;
    float *h = sd_arena_alloc(A, BTD), *q = sd_arena_alloc(A, BTD), *k = sd_arena_alloc(A, BTD);
    float *v = sd_arena_alloc(A, BTD), *a = sd_arena_alloc(A, BTD);
    float *mlp = sd_arena_alloc(A, (size_t)B * T * Im);
    float *ws = sd_arena_alloc(A, nn_attention_ws(T, T));
    float *x2 = pooled ? sd_arena_alloc(A, BTD) : NULL;
    int32_t *ids = (int32_t *)sd_arena_alloc(A, (size_t)B * T);
    int *eot = (int *)sd_arena_alloc(A, (size_t)B);
    if (!h || !q || !k || !v || !a || !mlp || !ws || (pooled && !x2) || !ids || !eot) {
        sd_arena_release(A, 0);
        return cs_fail(err, CS_ENOMEM, "%s: text encoder: out of memory", m->path);
    }
    for (int b = 0; b < B; b++) { /* the tower's own padding after the first end token */
        int e = T - 1;
        for (int i = 0; i < T; i++)
            if (ids_in[b * T + i] == EOT_ID) {
                e = i;
                break;
            }
        eot[b] = e;
        for (int i = 0; i < T; i++) ids[b * T + i] = i > e ? c->pad_id : ids_in[b * T + i];
    }
    float *x = out; /* the residual stream lives in out */
    for (int i = 0; i < B * T; i++) {
        const float *te = t->token_embedding + (size_t)ids[i] * D;
        const float *pe = t->position_embedding + (size_t)(i % T) * D;
        for (int d = 0; d < D; d++) x[(size_t)i * D + d] = te[d] + pe[d];
    }
    for (int l = 0; l < n_layers; l++)
        clip_encoder_layer(x, &t->layers[l], c, B, h, q, k, v, a, mlp, ws);
    if (pooled) {
        memcpy(x2, x, sizeof(float) * BTD);
        for (int l = n_layers; l < c->num_layers; l++)
            clip_encoder_layer(x2, &t->layers[l], c, B, h, q, k, v, a, mlp, ws);
        nn_layer_norm(x2, x2, t->final_layer_norm.w, t->final_layer_norm.b, B * T, D,
                      c->layer_norm_eps);
        int E = c->proj_dim;
        for (int b = 0; b < B; b++) {
            const float *row = x2 + ((size_t)b * T + eot[b]) * D;
            if (t->text_projection) /* open_clip: row @ P, P [D, E] */
                cblas_sgemv(CblasRowMajor, CblasTrans, D, E, 1.f, t->text_projection, E, row, 1,
                            0.f, pooled + (size_t)b * E, 1);
            else
                nn_linear(pooled + (size_t)b * E, row, t->proj.w, NULL, 1, D, E);
        }
    }
    if (final_ln)
        nn_layer_norm(x, x, t->final_layer_norm.w, t->final_layer_norm.b, B * T, D,
                      c->layer_norm_eps);
    sd_arena_release(A, 0);
    return 0;
}

int sd_text_layers(const sd_model *m, int tower) {
    return tower ? m->cfg.text2.num_layers : m->cfg.text.num_layers;
}

int sd_text_tower(sd_model *m, int tower, const int32_t *ids, int B, int n_layers, int final_ln,
                  float *out, float *pooled, cs_err *err) {
    const sd_text_config *c = tower ? &m->cfg.text2 : &m->cfg.text;
    const clip_text_model *t = tower ? &m->text2 : &m->text;
    if (c->num_layers < 1 || n_layers < 1 || n_layers > c->num_layers)
        return cs_fail(err, CS_EUSAGE, "%s: text tower %d: %d layers (it has %d)", m->path, tower,
                       n_layers, c->num_layers);
    if (pooled && c->proj_dim < 1)
        return cs_fail(err, CS_EUSAGE, "%s: text tower %d has no projection", m->path, tower);
    return tower_run(m, t, c, ids, B, n_layers, final_ln, out, pooled, err);
}

static int text_encode_xl(sd_model *m, const int32_t *ids, const int32_t *ids2, int B, int clip_skip,
                          float *out, float *pooled, cs_err *err);

/* The text encoder always runs in fp32: it runs once per prompt (the UNet's
 * steps are where bf16 pays), and bf16 there put sd-tiny's text case past
 * 1e-2 relative (1.3e-2). */
int sd_text_encode_xl(sd_model *m, const int32_t *ids, const int32_t *ids2, int B, int clip_skip,
                      float *out, float *pooled, cs_err *err) {
    int prec = nn_precision();
    nn_set_precision(NN_FP32);
    int rc = text_encode_xl(m, ids, ids2, B, clip_skip, out, pooled, err);
    nn_set_precision(prec);
    return rc;
}

static int text_encode_xl(sd_model *m, const int32_t *ids, const int32_t *ids2, int B, int clip_skip,
                          float *out, float *pooled, cs_err *err) {
    const sd_text_config *c = &m->cfg.text, *c2 = &m->cfg.text2;
    int n1 = c->num_layers - c->skip_last - (clip_skip - 1);
    if (clip_skip < 1 || n1 < 1)
        return cs_fail(err, CS_EUSAGE, "%s: clip skip %d outside 1..%d", m->path, clip_skip,
                       c->num_layers - c->skip_last);
    if (c2->num_layers < 1) {
        if (pooled) return cs_fail(err, CS_EUSAGE, "%s: no pooled text embedding (%s)", m->path,
                                   sd_family_name(m->cfg.family));
        return tower_run(m, &m->text, c, ids, B, n1, c->final_ln, out, NULL, err);
    }
    /* SDXL: context = cat([L, G], -1) per token */
    int n2 = c2->num_layers - c2->skip_last - (clip_skip - 1);
    if (n2 < 1)
        return cs_fail(err, CS_EUSAGE, "%s: clip skip %d too large for the second encoder", m->path,
                       clip_skip);
    int D1 = c->hidden_size, D2 = c2->hidden_size, T = SD_CONTEXT_TOKENS;
    float *o1 = malloc(sizeof(float) * B * T * D1), *o2 = malloc(sizeof(float) * B * T * D2);
    int rc = -1;
    if (!o1 || !o2) {
        cs_fail(err, CS_ENOMEM, "%s: text encoder: out of memory", m->path);
    } else if (!tower_run(m, &m->text, c, ids, B, n1, c->final_ln, o1, NULL, err) &&
               !tower_run(m, &m->text2, c2, ids2 ? ids2 : ids, B, n2, c2->final_ln, o2, pooled,
                          err)) {
        for (size_t i = 0; i < (size_t)B * T; i++) {
            memcpy(out + i * (D1 + D2), o1 + i * D1, sizeof(float) * D1);
            memcpy(out + i * (D1 + D2) + D1, o2 + i * D2, sizeof(float) * D2);
        }
        rc = 0;
    }
    free(o1);
    free(o2);
    return rc;
}

int sd_text_encode(sd_model *m, const int32_t *ids, int B, int clip_skip, float *out,
                   cs_err *err) {
    return sd_text_encode_xl(m, ids, NULL, B, clip_skip, out, NULL, err);
}

/* exp(d) for float32 d in the normal range, bit for bit as torch's CPU
 * kernels compute it (SLEEF's vectorised expf, 1.0-ulp variant, with FMA):
 * d = q ln2 + s with q = rint(d / ln2) and ln2 split in a 16-bit head and a
 * tail so q * head is exact, then a degree-6 polynomial for exp(s) on
 * |s| <= ln2 / 2, scaled by 2^q. It is not correctly rounded (about 9% of
 * inputs land one ulp off), which is why the reference's frequencies differ
 * from a correctly rounded exp; the size embedding needs them exact because
 * sizes near 4096 turn one ulp of f_i into ~2e-4 of cos/sin. Written from
 * the algorithm; checked against torch 1.13 on 4e6 inputs in [-87, 88]. */
static float torch_expf(float d) {
    float q = rintf(d * 1.442695040888963f); /* round half even, as cvtps2dq */
    float s = fmaf(q, -0.693145751953125f, d);
    s = fmaf(q, -1.428606765330187045e-6f, s);
    float u = 1.98527617612853646278381e-4f;
    u = fmaf(u, s, 1.39304355252534151077271e-3f);
    u = fmaf(u, s, 8.33336077630519866943359e-3f);
    u = fmaf(u, s, 4.16664853692054748535156e-2f);
    u = fmaf(u, s, 1.66666671633720397949219e-1f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    return ldexpf(u, (int)q);
}

void sd_size_embed(float v, float *out) {
    /* sgm ConcatTimestepEmbedderND: timestep_embedding(x, 256), [cos | sin],
     * freqs = torch.exp(float32(-ln 10000) * i / 128), every step in float32
     * with torch's own exp (see torch_expf); cos/sin only need to be
     * faithful (libm's are), the argument v * f_i is what must match */
    const float neg_log = (float)-log(10000.0);
    for (int i = 0; i < 128; i++) {
        float f = torch_expf(neg_log * (float)i / 128.0f), arg = v * f;
        out[i] = cosf(arg);
        out[128 + i] = sinf(arg);
    }
}

int sd_sdxl_vector(const sd_model *m, const float *pooled, const float sizes[6], float *y,
                   cs_err *err) {
    int E = sd_pooled_dim(m);
    if (!m->cfg.unet.adm_in_channels || E < 1)
        return cs_fail(err, CS_EUSAGE, "%s: %s has no size/pooled conditioning vector", m->path,
                       sd_family_name(m->cfg.family));
    if (pooled) memcpy(y, pooled, sizeof(float) * E);
    else memset(y, 0, sizeof(float) * E);
    for (int i = 0; i < 6; i++) sd_size_embed(sizes[i], y + E + 256 * i);
    return 0;
}
