/* unet.c — the Stable Diffusion UNet (ldm / sgm openaimodel.UNetModel with
 * SpatialTransformer), weights under model.diffusion_model. SD 2.x and SDXL
 * differ only in sizes (heads from a fixed head width, per-level transformer
 * depth, levels without attention), in Linear proj_in/out (same product as
 * SD 1.x's 1x1 convs) and, for SDXL, in label_emb: Linear -> SiLU -> Linear
 * of the vector y added to the time embedding.
 *
 * Activations are NCHW [B, C, H*W]. Inside a SpatialTransformer the tokens stay
 * channel-major [C, T] (T = H*W, row-major h w order), so proj_in/proj_out and
 * every linear are W·X sgemms and no transposes are needed. The context from
 * the text encoder is token-major [77, context_dim]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "pipeline/sd_internal.h"

#define UP "model.diffusion_model."
#define GN_GROUPS 32
#define GN_EPS_RES 1e-5f /* GroupNorm32 (ResBlock, out) */
#define GN_EPS_ST 1e-6f  /* SpatialTransformer.norm = Normalize() */
#define LN_EPS 1e-5f

#define TRY_ALLOC(p, n)                                           \
    do {                                                          \
        if (!((p) = sd_arena_alloc(&m->arena, (n)))) return -1; \
    } while (0)

/* ---- loading ---------------------------------------------------------------------- */

static int load_resblock(sd_loader *L, unet_resblock *r, const char *pre, int cin, int cout,
                         int ted) {
    char n[256];
    r->cin = cin, r->cout = cout;
#define NAME(s) (snprintf(n, sizeof n, "%s.%s", pre, s), n)
    if (sd_load_norm(L, &r->in_norm, NAME("in_layers.0"), cin) ||
        sd_load_conv(L, &r->in_conv, NAME("in_layers.2"), cout, cin, 3, 1) ||
        sd_load_linear(L, &r->emb, NAME("emb_layers.1"), cout, ted, 1) ||
        sd_load_norm(L, &r->out_norm, NAME("out_layers.0"), cout) ||
        sd_load_conv(L, &r->out_conv, NAME("out_layers.3"), cout, cout, 3, 1))
        return -1;
    r->has_skip = cin != cout;
    if (r->has_skip && sd_load_conv(L, &r->skip, NAME("skip_connection"), cout, cin, 1, 1))
        return -1;
#undef NAME
    return 0;
}

static int load_transformer(sd_loader *L, unet_transformer *s, const char *pre, int ch,
                            const sd_unet_config *u, int level, int depth) {
    char n[256];
    s->c = ch;
    s->heads = sd_unet_heads(u, level, ch);
    s->dh = ch / s->heads;
    s->depth = depth;
    s->blocks = calloc(s->depth, sizeof *s->blocks);
    if (!s->blocks) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
    int ctx = u->context_dim;
    snprintf(n, sizeof n, "%s.norm", pre);
    if (sd_load_norm(L, &s->norm, n, ch)) return -1;
    snprintf(n, sizeof n, "%s.proj_in", pre);
    if (sd_load_linear_1x1(L, &s->proj_in, n, ch, ch)) return -1;
    snprintf(n, sizeof n, "%s.proj_out", pre);
    if (sd_load_linear_1x1(L, &s->proj_out, n, ch, ch)) return -1;
    for (int d = 0; d < s->depth; d++) {
        unet_tblock *b = &s->blocks[d];
#define NAME(x) (snprintf(n, sizeof n, "%s.transformer_blocks.%d.%s", pre, d, x), n)
        if (sd_load_norm(L, &b->norm1, NAME("norm1"), ch) ||
            sd_load_norm(L, &b->norm2, NAME("norm2"), ch) ||
            sd_load_norm(L, &b->norm3, NAME("norm3"), ch) ||
            sd_load_linear(L, &b->q1, NAME("attn1.to_q"), ch, ch, 0) ||
            sd_load_linear(L, &b->k1, NAME("attn1.to_k"), ch, ch, 0) ||
            sd_load_linear(L, &b->v1, NAME("attn1.to_v"), ch, ch, 0) ||
            sd_load_linear(L, &b->out1, NAME("attn1.to_out.0"), ch, ch, 1) ||
            sd_load_linear(L, &b->q2, NAME("attn2.to_q"), ch, ch, 0) ||
            sd_load_linear(L, &b->k2, NAME("attn2.to_k"), ch, ctx, 0) ||
            sd_load_linear(L, &b->v2, NAME("attn2.to_v"), ch, ctx, 0) ||
            sd_load_linear(L, &b->out2, NAME("attn2.to_out.0"), ch, ch, 1) ||
            sd_load_linear(L, &b->ff_proj, NAME("ff.net.0.proj"), 8 * ch, ch, 1) ||
            sd_load_linear(L, &b->ff_out, NAME("ff.net.2"), ch, 4 * ch, 1))
            return -1;
#undef NAME
    }
    return 0;
}

/* Long: the UNet's blocks loaded in checkpoint order (input, middle, output), mirroring its layout. */
int unet_load(sd_model *m, sd_loader *L) {
    const sd_unet_config *u = &m->cfg.unet;
    unet_model *U = &m->unet;
    int mc = u->model_channels, ted = u->time_embed_dim, nl = u->n_levels, nrb = u->num_res_blocks;
    char n[256];
    if (sd_load_linear(L, &U->time_embed0, UP "time_embed.0", ted, mc, 1) ||
        sd_load_linear(L, &U->time_embed2, UP "time_embed.2", ted, ted, 1))
        return -1;
    if (u->adm_in_channels > 0 &&
        (sd_load_linear(L, &U->label_emb0, UP "label_emb.0.0", ted, u->adm_in_channels, 1) ||
         sd_load_linear(L, &U->label_emb2, UP "label_emb.0.2", ted, ted, 1)))
        return -1;
    U->n_input = 1 + nl * nrb + (nl - 1);
    U->n_output = nl * (nrb + 1);
    U->input_blocks = calloc(U->n_input, sizeof *U->input_blocks);
    U->output_blocks = calloc(U->n_output, sizeof *U->output_blocks);
    int *skip_ch = calloc(U->n_input, sizeof(int));
    if (!U->input_blocks || !U->output_blocks || !skip_ch) {
        free(skip_ch);
        return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
    }
    int ns = 0, ch = mc, idx = 0, rc = -1;
    unet_block *blk = &U->input_blocks[idx];
    blk->n = 1;
    blk->layers[0].kind = UNET_CONV;
    if (sd_load_conv(L, &blk->layers[0].conv, UP "input_blocks.0.0", mc, u->in_channels, 3, 1))
        goto out;
    blk->cout = ch;
    skip_ch[ns++] = ch;
    idx++;
    for (int l = 0; l < nl; l++) {
        for (int r = 0; r < nrb; r++, idx++) {
            blk = &U->input_blocks[idx];
            int co = mc * u->channel_mult[l];
            snprintf(n, sizeof n, UP "input_blocks.%d.0", idx);
            blk->layers[0].kind = UNET_RES;
            if (load_resblock(L, &blk->layers[0].res, n, ch, co, ted)) goto out;
            ch = co;
            blk->n = 1;
            if (u->attn_level[l]) {
                snprintf(n, sizeof n, UP "input_blocks.%d.1", idx);
                blk->layers[1].kind = UNET_ST;
                blk->n = 2;
                if (load_transformer(L, &blk->layers[1].st, n, ch, u, l, u->depth[l])) goto out;
            }
            blk->cout = ch;
            skip_ch[ns++] = ch;
        }
        if (l != nl - 1) {
            blk = &U->input_blocks[idx];
            snprintf(n, sizeof n, UP "input_blocks.%d.0.op", idx);
            blk->n = 1;
            blk->layers[0].kind = UNET_DOWN;
            if (sd_load_conv(L, &blk->layers[0].conv, n, ch, ch, 3, 1)) goto out;
            blk->cout = ch;
            skip_ch[ns++] = ch;
            idx++;
        }
    }
    blk = &U->middle_block;
    blk->n = 3;
    blk->layers[0].kind = UNET_RES;
    blk->layers[1].kind = UNET_ST;
    blk->layers[2].kind = UNET_RES;
    if (load_resblock(L, &blk->layers[0].res, UP "middle_block.0", ch, ch, ted) ||
        load_transformer(L, &blk->layers[1].st, UP "middle_block.1", ch, u, nl - 1,
                         u->depth_middle) ||
        load_resblock(L, &blk->layers[2].res, UP "middle_block.2", ch, ch, ted))
        goto out;
    blk->cout = ch;
    idx = 0;
    for (int l = nl - 1; l >= 0; l--) {
        for (int i = 0; i <= nrb; i++, idx++) {
            blk = &U->output_blocks[idx];
            int co = mc * u->channel_mult[l], sc = skip_ch[--ns];
            snprintf(n, sizeof n, UP "output_blocks.%d.0", idx);
            blk->layers[0].kind = UNET_RES;
            if (load_resblock(L, &blk->layers[0].res, n, ch + sc, co, ted)) goto out;
            ch = co;
            int j = 1;
            if (u->attn_level[l]) {
                snprintf(n, sizeof n, UP "output_blocks.%d.1", idx);
                blk->layers[j].kind = UNET_ST;
                if (load_transformer(L, &blk->layers[j].st, n, ch, u, l, u->depth[l])) goto out;
                j++;
            }
            if (l > 0 && i == nrb) {
                snprintf(n, sizeof n, UP "output_blocks.%d.%d.conv", idx, j);
                blk->layers[j].kind = UNET_UP;
                if (sd_load_conv(L, &blk->layers[j].conv, n, ch, ch, 3, 1)) goto out;
                j++;
            }
            blk->n = j;
            blk->cout = ch;
        }
    }
    if (sd_load_norm(L, &U->out_norm, UP "out.0", ch) ||
        sd_load_conv(L, &U->out_conv, UP "out.2", u->out_channels, ch, 3, 1))
        goto out;
    rc = 0;
out:
    free(skip_ch);
    return rc;
}

static void free_block(unet_block *b) {
    for (int i = 0; i < 3; i++) /* all slots: a failed load may leave n short */
        if (b->layers[i].kind == UNET_ST) free(b->layers[i].st.blocks);
}

void unet_free(unet_model *u) {
    for (int i = 0; u->input_blocks && i < u->n_input; i++) free_block(&u->input_blocks[i]);
    for (int i = 0; u->output_blocks && i < u->n_output; i++) free_block(&u->output_blocks[i]);
    free_block(&u->middle_block);
    free(u->input_blocks);
    free(u->output_blocks);
    memset(u, 0, sizeof *u);
}

/* ---- forward --------------------------------------------------------------------- */

/* emb [B, 2*half] = [cos(t*f), sin(t*f)], f_i = exp(-ln(10000) * i / half),
 * computed in float32 as torch does; t may be fractional. */
static void timestep_embedding(float *emb, const float *t, int B, int dim) {
    int half = dim / 2;
    const float neg_log = (float)-log(10000.0);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < half; i++) {
            float f = expf(neg_log * (float)i / (float)half);
            float arg = t[b] * f;
            emb[(size_t)b * dim + i] = cosf(arg);
            emb[(size_t)b * dim + half + i] = sinf(arg);
        }
        if (dim % 2) emb[(size_t)b * dim + dim - 1] = 0.f;
    }
}

/* ResBlock: out [B, cout, HW] = skip(x) + out_layers(in_layers(x) + emb_layers(emb)).
 * emb_silu [B, ted] is SiLU(emb), shared by every ResBlock. */
static int ResBlock_forward(sd_model *m, float *out, const float *x, const unet_resblock *r,
                            const float *emb_silu, int B, int h, int w) {
    size_t HW = (size_t)h * w, mark = sd_arena_mark(&m->arena);
    float *t1, *t2, *e;
    TRY_ALLOC(t1, (size_t)B * r->cin * HW);
    TRY_ALLOC(t2, (size_t)B * r->cout * HW);
    TRY_ALLOC(e, (size_t)B * r->cout);
    nn_group_norm(t1, x, r->in_norm.w, r->in_norm.b, B, r->cin, (int)HW, GN_GROUPS, GN_EPS_RES, 1);
    if (sd_conv_forward(m, t2, t1, &r->in_conv, B, h, w, 1, 1, 1, 1, 1)) return -1;
    nn_linear(e, emb_silu, r->emb.w, r->emb.b, B, r->emb.nin, r->cout);
    nn_add_channel_bias(t2, e, B, r->cout, (int)HW);
    nn_group_norm(t2, t2, r->out_norm.w, r->out_norm.b, B, r->cout, (int)HW, GN_GROUPS,
                  GN_EPS_RES, 1);
    if (sd_conv_forward(m, out, t2, &r->out_conv, B, h, w, 1, 1, 1, 1, 1)) return -1;
    if (r->has_skip) {
        float *s;
        TRY_ALLOC(s, (size_t)B * r->cout * HW);
        if (sd_conv_forward(m, s, x, &r->skip, B, h, w, 1, 0, 0, 0, 0)) return -1;
        nn_add_inplace(out, s, (size_t)B * r->cout * HW);
    } else {
        nn_add_inplace(out, x, (size_t)B * r->cout * HW);
    }
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* Scratch for the BasicTransformerBlocks of a batch (all channel-major; the
 * B images' tokens side by side, [C, B*T], so every linear is one sgemm). */
typedef struct {
    float *n;   /* [C, BT] normalised tokens */
    float *q;   /* [C, BT] */
    float *k;   /* [C, max(BT, B*77)] */
    float *v;   /* [C, max(BT, B*77)] */
    float *a;   /* [C, BT] attention output */
    float *o;   /* [C, BT] projection output */
    float *ff;  /* [8C, BT] GEGLU input; its first half is reused for the output */
    float *ws;  /* attention scores */
} tblock_buf;

/* BasicTransformerBlock: x += attn1(norm1(x)); x += attn2(norm2(x), ctx);
 * x += ff(norm3(x)). x [C, B*T] channel-major (image b = columns b*T..),
 * ctx [B*77, context_dim] token-major. Attention never mixes images. */
static void BasicTransformerBlock_forward(float *x, const unet_tblock *b, const float *ctx, int ctx_tokens,
                                          int B, int C, int T, int heads, int dh, tblock_buf *s) {
    const int Tc = ctx_tokens, BT = B * T, BTc = B * Tc;
    size_t CT = (size_t)C * BT;
    /* attn1: self-attention over each image's H*W tokens */
    /* under bf16 the query and key projections stay fp32 (the softmax
     * exponentiates the logits' error: in bf16 they took the sd-tiny UNet
     * to 1.00e-2); QK^T itself takes Q and K rounded once to bf16, sums in
     * fp32 (core/attn.h), which added < 1e-3 there */
    int prec = nn_precision();
    nn_layer_norm_cm(s->n, x, b->norm1.w, b->norm1.b, C, BT, LN_EPS);
    nn_set_precision(NN_FP32);
    nn_linear_cm(s->q, s->n, b->q1.w, NULL, BT, C, C);
    nn_linear_cm(s->k, s->n, b->k1.w, NULL, BT, C, C);
    nn_set_precision(prec);
    nn_linear_cm(s->v, s->n, b->v1.w, NULL, BT, C, C);
    for (int i = 0; i < B; i++)
        nn_attention_cm_ld(s->a + (size_t)i * T, BT, s->q + (size_t)i * T, BT, s->k + (size_t)i * T,
                           BT, s->v + (size_t)i * T, BT, T, T, heads, dh, s->ws);
    nn_linear_cm(s->o, s->a, b->out1.w, b->out1.b, BT, C, C);
    nn_add_inplace(x, s->o, CT);
    /* attn2: cross-attention to the image's 77 context tokens (no padding mask) */
    nn_layer_norm_cm(s->n, x, b->norm2.w, b->norm2.b, C, BT, LN_EPS);
    nn_set_precision(NN_FP32);
    nn_linear_cm(s->q, s->n, b->q2.w, NULL, BT, C, C);
    sd_linear_tm_to_cm(s->k, ctx, &b->k2, BTc);
    nn_set_precision(prec);
    sd_linear_tm_to_cm(s->v, ctx, &b->v2, BTc);
    for (int i = 0; i < B; i++)
        nn_attention_cm_ld(s->a + (size_t)i * T, BT, s->q + (size_t)i * T, BT,
                           s->k + (size_t)i * Tc, BTc, s->v + (size_t)i * Tc, BTc, T, Tc, heads,
                           dh, s->ws);
    nn_linear_cm(s->o, s->a, b->out2.w, b->out2.b, BT, C, C);
    nn_add_inplace(x, s->o, CT);
    /* ff: GEGLU (value = first 4C rows, gate = last 4C, exact erf GELU) */
    nn_layer_norm_cm(s->n, x, b->norm3.w, b->norm3.b, C, BT, LN_EPS);
    nn_linear_cm(s->ff, s->n, b->ff_proj.w, b->ff_proj.b, BT, C, 8 * C);
    nn_geglu_cm(s->ff, s->ff, 4 * C, BT);
    nn_linear_cm(s->o, s->ff, b->ff_out.w, b->ff_out.b, BT, 4 * C, C);
    nn_add_inplace(x, s->o, CT);
}

/* SpatialTransformer: out = x + proj_out(blocks(proj_in(GroupNorm(x)))). */
static int SpatialTransformer_forward(sd_model *m, float *out, const float *x,
                                      const unet_transformer *st, const float *context, int B,
                                      int h, int w) {
    const int C = st->c, T = h * w, BT = B * T, Tc = m->ctx_tokens;
    size_t CT = (size_t)C * BT, mark = sd_arena_mark(&m->arena);
    int Tk = BT > B * Tc ? BT : B * Tc;
    float *xn, *hh;
    tblock_buf s;
    TRY_ALLOC(xn, CT);
    TRY_ALLOC(hh, CT);
    TRY_ALLOC(s.n, CT);
    TRY_ALLOC(s.q, CT);
    TRY_ALLOC(s.k, (size_t)C * Tk);
    TRY_ALLOC(s.v, (size_t)C * Tk);
    TRY_ALLOC(s.a, CT);
    TRY_ALLOC(s.o, CT);
    TRY_ALLOC(s.ff, 8 * CT);
    size_t ws1 = nn_attention_ws(T, T), ws2 = nn_attention_ws(T, Tc);
    TRY_ALLOC(s.ws, ws1 > ws2 ? ws1 : ws2);
    /* GroupNorm per image (eps 1e-6), then the batch side by side: [C, B*T] */
    nn_group_norm(s.n, x, st->norm.w, st->norm.b, B, C, T, GN_GROUPS, GN_EPS_ST, 0);
    nn_swap_outer(xn, s.n, B, C, (size_t)T); /* [B, C, T] -> [C, B*T] */
    nn_linear_cm(hh, xn, st->proj_in.w, st->proj_in.b, BT, C, C);
    for (int d = 0; d < st->depth; d++)
        BasicTransformerBlock_forward(hh, &st->blocks[d], context, Tc, B, C, T, st->heads, st->dh, &s);
    nn_linear_cm(s.o, hh, st->proj_out.w, st->proj_out.b, BT, C, C);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            nn_add(out + ((size_t)b * C + c) * T, x + ((size_t)b * C + c) * T,
                   s.o + ((size_t)c * B + b) * T, (size_t)T);
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* Upsample: nearest x2 then 3x3 conv (padding 1). out [B, C, 2h, 2w]. Fused
 * where it can (nn_conv2d_up2: four 2x2 convs of the small image, 16/36 of
 * the multiplies, no upsampled copy; as the VAE decoder), else in two steps. */
static int Upsample_forward(sd_model *m, float *out, const float *x, const sd_conv *c, int B,
                            int h, int w) {
    if (!nn_conv2d_up2(out, x, c->w, c->b, c->cin, c->cout, B, h, w)) return 0;
    size_t mark = sd_arena_mark(&m->arena);
    float *u;
    TRY_ALLOC(u, (size_t)B * c->cin * 4 * h * w);
    nn_upsample_nearest2x(u, x, B * c->cin, h, w);
    if (sd_conv_forward(m, out, u, c, B, 2 * h, 2 * w, 1, 1, 1, 1, 1)) return -1;
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* Runs one TimestepEmbedSequential block; *x (channels *ch, size *h x *w) is
 * replaced by a newly allocated output (kept until the end of the pass). */
static int block_forward(sd_model *m, float **x, int *ch, int *h, int *w, const unet_block *blk,
                         const float *emb_silu, const float *context, int B) {
    for (int i = 0; i < blk->n; i++) {
        const unet_layer *L = &blk->layers[i];
        float *y;
        int co = *ch, nh = *h, nw = *w;
        switch (L->kind) {
        case UNET_CONV: co = L->conv.cout; break;
        case UNET_RES: co = L->res.cout; break;
        case UNET_DOWN: nh = (*h + 1) / 2, nw = (*w + 1) / 2; break;
        case UNET_UP: nh = *h * 2, nw = *w * 2; break;
        }
        TRY_ALLOC(y, (size_t)B * co * nh * nw);
        int rc = 0;
        switch (L->kind) {
        case UNET_CONV: rc = sd_conv_forward(m, y, *x, &L->conv, B, *h, *w, 1, 1, 1, 1, 1); break;
        case UNET_RES: rc = ResBlock_forward(m, y, *x, &L->res, emb_silu, B, *h, *w); break;
        case UNET_ST:
            rc = SpatialTransformer_forward(m, y, *x, &L->st, context, B, *h, *w);
            break;
        case UNET_DOWN: rc = sd_conv_forward(m, y, *x, &L->conv, B, *h, *w, 2, 1, 1, 1, 1); break;
        case UNET_UP: rc = Upsample_forward(m, y, *x, &L->conv, B, *h, *w); break;
        }
        if (rc) return -1;
        *x = y, *ch = co, *h = nh, *w = nw;
    }
    return 0;
}

/* out [B, c1+c2, HW] = cat([a [B, c1, HW], b [B, c2, HW]], dim=1). */
static void concat_channels(float *out, const float *a, int c1, const float *b, int c2, int B,
                            size_t HW) {
    for (int i = 0; i < B; i++) {
        memcpy(out + (size_t)i * (c1 + c2) * HW, a + (size_t)i * c1 * HW, sizeof(float) * c1 * HW);
        memcpy(out + ((size_t)i * (c1 + c2) + c1) * HW, b + (size_t)i * c2 * HW,
               sizeof(float) * c2 * HW);
    }
}

static int unet_forward(sd_model *m, const float *x_in, const float *t, const float *context,
                        const float *y, int B, int h0, int w0, float *eps) {
    const sd_unet_config *u = &m->cfg.unet;
    const unet_model *U = &m->unet;
    int mc = u->model_channels, ted = u->time_embed_dim;
    float *temb, *e1, *emb;
    TRY_ALLOC(temb, (size_t)B * mc);
    TRY_ALLOC(e1, (size_t)B * ted);
    TRY_ALLOC(emb, (size_t)B * ted);
    timestep_embedding(temb, t, B, mc);
    nn_linear(e1, temb, U->time_embed0.w, U->time_embed0.b, B, mc, ted);
    nn_silu(e1, (size_t)B * ted);
    nn_linear(emb, e1, U->time_embed2.w, U->time_embed2.b, B, ted, ted);
    if (u->adm_in_channels > 0) { /* emb += label_emb(y) */
        float *l1, *l2;
        TRY_ALLOC(l1, (size_t)B * ted);
        TRY_ALLOC(l2, (size_t)B * ted);
        nn_linear(l1, y, U->label_emb0.w, U->label_emb0.b, B, u->adm_in_channels, ted);
        nn_silu(l1, (size_t)B * ted);
        nn_linear(l2, l1, U->label_emb2.w, U->label_emb2.b, B, ted, ted);
        nn_add_inplace(emb, l2, (size_t)B * ted);
    }
    nn_silu(emb, (size_t)B * ted); /* every ResBlock's emb_layers starts with SiLU */

    float *hs[64];
    int hs_ch[64], ns = 0;
    float *x = (float *)x_in;
    int ch = u->in_channels, h = h0, w = w0;
    for (int i = 0; i < U->n_input; i++) {
        if (block_forward(m, &x, &ch, &h, &w, &U->input_blocks[i], emb, context, B)) return -1;
        hs[ns] = x, hs_ch[ns] = ch, ns++;
    }
    if (block_forward(m, &x, &ch, &h, &w, &U->middle_block, emb, context, B)) return -1;
    for (int i = 0; i < U->n_output; i++) {
        ns--;
        float *cat;
        size_t HW = (size_t)h * w;
        TRY_ALLOC(cat, (size_t)B * (ch + hs_ch[ns]) * HW);
        concat_channels(cat, x, ch, hs[ns], hs_ch[ns], B, HW);
        x = cat, ch += hs_ch[ns];
        if (block_forward(m, &x, &ch, &h, &w, &U->output_blocks[i], emb, context, B)) return -1;
    }
    float *o;
    TRY_ALLOC(o, (size_t)B * ch * h * w);
    nn_group_norm(o, x, U->out_norm.w, U->out_norm.b, B, ch, h * w, GN_GROUPS, GN_EPS_RES, 1);
    return sd_conv_forward(m, eps, o, &U->out_conv, B, h, w, 1, 1, 1, 1, 1);
}

int sd_unet_eps(sd_model *m, const float *x, const float *t, const float *context, int B, int h,
                int w, float *eps, cs_err *err) {
    return sd_unet_ctx(m, x, t, context, SD_CONTEXT_TOKENS, NULL, B, h, w, eps, err);
}

int sd_unet_eps_ctx(sd_model *m, const float *x, const float *t, const float *context, int ctx_tokens, int B,
                    int h, int w, float *eps, cs_err *err) {
    return sd_unet_ctx(m, x, t, context, ctx_tokens, NULL, B, h, w, eps, err);
}

int sd_unet(sd_model *m, const float *x, const float *t, const float *context, const float *y,
            int B, int h, int w, float *eps, cs_err *err) {
    return sd_unet_ctx(m, x, t, context, SD_CONTEXT_TOKENS, y, B, h, w, eps, err);
}

int sd_unet_ctx(sd_model *m, const float *x, const float *t, const float *context, int ctx_tokens,
                const float *y, int B, int h, int w, float *eps, cs_err *err) {
    if (ctx_tokens < 1) return cs_fail(err, CS_EUSAGE, "%s: UNet: %d context tokens", m->path, ctx_tokens);
    m->ctx_tokens = ctx_tokens;
    int f = 1 << (m->cfg.unet.n_levels - 1);
    if (B < 1 || h < 1 || w < 1 || h % f || w % f || (int64_t)h * w > 256 * 256)
        return cs_fail(err, CS_EUSAGE,
                       "%s: UNet: latent %dx%d (batch %d) must be a multiple of %d, at most "
                       "256x256",
                       m->path, h, w, B, f);
    if (m->unet.n_input + 1 > 64)
        return cs_fail(err, CS_EUSAGE, "%s: UNet: too many levels", m->path);
    for (int b = 0; b < B; b++)
        if (!isfinite(t[b]))
            return cs_fail(err, CS_EUSAGE, "%s: UNet: timestep %d is not finite", m->path, b);
    if (m->cfg.unet.adm_in_channels > 0 && !y)
        return cs_fail(err, CS_EUSAGE, "%s: UNet: %s needs the size/pooled vector y", m->path,
                       sd_family_name(m->cfg.family));
    sd_arena_begin(&m->arena);
    int rc = unet_forward(m, x, t, context, m->cfg.unet.adm_in_channels > 0 ? y : NULL, B, h, w,
                          eps);
    sd_arena_release(&m->arena, 0);
    if (rc) return cs_fail(err, CS_ENOMEM, "%s: UNet: out of memory", m->path);
    return 0;
}
