/* vae.c — the SD 1.x autoencoder (ldm AutoencoderKL with the Encoder/Decoder
 * of diffusionmodules/model.py), weights under first_stage_model.
 *
 * All GroupNorms: 32 groups, eps 1e-6, followed by swish where the original
 * applies nonlinearity(). The only attention is the mid block's single-head
 * AttnBlock (1x1 q/k/v/proj_out). Encoder downsample pads right/bottom by one
 * and convolves with stride 2, padding 0; decoder upsample is nearest x2 and a
 * 3x3 conv. Decoder levels are stored in reverse order: up[n-1] runs first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "pipeline/sd_internal.h"

#define VP "first_stage_model."
#define GN_GROUPS 32
#define GN_EPS 1e-6f

#define TRY_ALLOC(p, n)                                           \
    do {                                                          \
        if (!((p) = sd_arena_alloc(&m->arena, (n)))) return -1; \
    } while (0)

/* ---- loading ----------------------------------------------------------------------- */

static int load_resnet(sd_loader *L, vae_resblock *r, const char *pre, int cin, int cout) {
    char n[256];
    r->cin = cin, r->cout = cout;
#define NAME(s) (snprintf(n, sizeof n, "%s.%s", pre, s), n)
    if (sd_load_norm(L, &r->norm1, NAME("norm1"), cin) ||
        sd_load_conv(L, &r->conv1, NAME("conv1"), cout, cin, 3, 1) ||
        sd_load_norm(L, &r->norm2, NAME("norm2"), cout) ||
        sd_load_conv(L, &r->conv2, NAME("conv2"), cout, cout, 3, 1))
        return -1;
    r->has_nin = cin != cout;
    if (r->has_nin && sd_load_conv(L, &r->nin_shortcut, NAME("nin_shortcut"), cout, cin, 1, 1))
        return -1;
#undef NAME
    return 0;
}

static int load_mid(sd_loader *L, vae_mid *mid, const char *pre, int c) {
    char n[256];
#define NAME(s) (snprintf(n, sizeof n, "%s.%s", pre, s), n)
    mid->attn_1.c = c;
    if (load_resnet(L, &mid->block_1, NAME("block_1"), c, c) ||
        sd_load_norm(L, &mid->attn_1.norm, NAME("attn_1.norm"), c) ||
        sd_load_linear_1x1(L, &mid->attn_1.q, NAME("attn_1.q"), c, c) ||
        sd_load_linear_1x1(L, &mid->attn_1.k, NAME("attn_1.k"), c, c) ||
        sd_load_linear_1x1(L, &mid->attn_1.v, NAME("attn_1.v"), c, c) ||
        sd_load_linear_1x1(L, &mid->attn_1.proj_out, NAME("attn_1.proj_out"), c, c) ||
        load_resnet(L, &mid->block_2, NAME("block_2"), c, c))
        return -1;
#undef NAME
    return 0;
}

int vae_load(sd_model *m, sd_loader *L) {
    const sd_vae_config *c = &m->cfg.vae;
    vae_model *V = &m->vae;
    int nl = c->n_levels, nrb = c->num_res_blocks;
    char n[256];
    V->encoder.down = calloc(nl, sizeof(vae_level));
    V->decoder.up = calloc(nl, sizeof(vae_level));
    V->n_levels = nl;
    if (!V->encoder.down || !V->decoder.up)
        return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
    /* encoder */
    vae_encoder *E = &V->encoder;
    if (sd_load_conv(L, &E->conv_in, VP "encoder.conv_in", c->ch, c->in_channels, 3, 1)) return -1;
    int ch = c->ch;
    for (int l = 0; l < nl; l++) {
        vae_level *lv = &E->down[l];
        lv->n_blocks = nrb;
        lv->block = calloc(nrb, sizeof(vae_resblock));
        if (!lv->block) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
        int co = c->ch * c->ch_mult[l];
        for (int b = 0; b < nrb; b++) {
            snprintf(n, sizeof n, VP "encoder.down.%d.block.%d", l, b);
            if (load_resnet(L, &lv->block[b], n, ch, co)) return -1;
            ch = co;
        }
        lv->has_sample = l != nl - 1;
        snprintf(n, sizeof n, VP "encoder.down.%d.downsample.conv", l);
        if (lv->has_sample && sd_load_conv(L, &lv->sample, n, ch, ch, 3, 1)) return -1;
    }
    int zc = c->double_z ? 2 * c->z_channels : c->z_channels;
    if (load_mid(L, &E->mid, VP "encoder.mid", ch) ||
        sd_load_norm(L, &E->norm_out, VP "encoder.norm_out", ch) ||
        sd_load_conv(L, &E->conv_out, VP "encoder.conv_out", zc, ch, 3, 1) ||
        sd_load_linear_1x1(L, &V->quant_conv, VP "quant_conv",
                           c->double_z ? 2 * c->embed_dim : c->embed_dim, zc) ||
        sd_load_linear_1x1(L, &V->post_quant_conv, VP "post_quant_conv", c->z_channels,
                           c->embed_dim))
        return -1;
    /* decoder */
    vae_decoder *D = &V->decoder;
    ch = c->ch * c->ch_mult[nl - 1];
    if (sd_load_conv(L, &D->conv_in, VP "decoder.conv_in", ch, c->z_channels, 3, 1) ||
        load_mid(L, &D->mid, VP "decoder.mid", ch))
        return -1;
    for (int l = nl - 1; l >= 0; l--) {
        vae_level *lv = &D->up[l];
        lv->n_blocks = nrb + 1;
        lv->block = calloc(nrb + 1, sizeof(vae_resblock));
        if (!lv->block) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", L->path);
        int co = c->ch * c->ch_mult[l];
        for (int b = 0; b <= nrb; b++) {
            snprintf(n, sizeof n, VP "decoder.up.%d.block.%d", l, b);
            if (load_resnet(L, &lv->block[b], n, ch, co)) return -1;
            ch = co;
        }
        lv->has_sample = l != 0;
        snprintf(n, sizeof n, VP "decoder.up.%d.upsample.conv", l);
        if (lv->has_sample && sd_load_conv(L, &lv->sample, n, ch, ch, 3, 1)) return -1;
    }
    if (sd_load_norm(L, &D->norm_out, VP "decoder.norm_out", ch) ||
        sd_load_conv(L, &D->conv_out, VP "decoder.conv_out", c->out_ch, ch, 3, 1))
        return -1;
    return 0;
}

void vae_free(vae_model *v) {
    for (int l = 0; v->encoder.down && l < v->n_levels; l++) free(v->encoder.down[l].block);
    for (int l = 0; v->decoder.up && l < v->n_levels; l++) free(v->decoder.up[l].block);
    free(v->encoder.down);
    free(v->decoder.up);
    memset(v, 0, sizeof *v);
}

/* ---- forward --------------------------------------------------------------------------- */

/* ResnetBlock: out = shortcut(x) + conv2(swish(norm2(conv1(swish(norm1(x)))))). */
static int ResnetBlock_forward(sd_model *m, float *out, const float *x, const vae_resblock *r,
                               int B, int h, int w) {
    size_t HW = (size_t)h * w, mark = sd_arena_mark(&m->arena);
    float *t1, *t2;
    TRY_ALLOC(t1, (size_t)B * r->cin * HW);
    TRY_ALLOC(t2, (size_t)B * r->cout * HW);
    nn_group_norm(t1, x, r->norm1.w, r->norm1.b, B, r->cin, (int)HW, GN_GROUPS, GN_EPS, 1);
    if (sd_conv_forward(m, t2, t1, &r->conv1, B, h, w, 1, 1, 1, 1, 1)) return -1;
    nn_group_norm(t2, t2, r->norm2.w, r->norm2.b, B, r->cout, (int)HW, GN_GROUPS, GN_EPS, 1);
    if (sd_conv_forward(m, out, t2, &r->conv2, B, h, w, 1, 1, 1, 1, 1)) return -1;
    if (r->has_nin) {
        /* t1 is free again; the shortcut needs cout channels */
        float *s;
        TRY_ALLOC(s, (size_t)B * r->cout * HW);
        if (sd_conv_forward(m, s, x, &r->nin_shortcut, B, h, w, 1, 0, 0, 0, 0)) return -1;
        nn_add_inplace(out, s, (size_t)B * r->cout * HW);
    } else {
        nn_add_inplace(out, x, (size_t)B * r->cout * HW);
    }
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* AttnBlock: single head over all C channels, scale C^-0.5, x + proj_out(attn). */
static int AttnBlock_forward(sd_model *m, float *out, const float *x, const vae_attn *a, int B,
                             int h, int w) {
    int C = a->c, T = h * w;
    size_t CT = (size_t)C * T, mark = sd_arena_mark(&m->arena);
    float *n, *q, *k, *v, *o, *ws;
    TRY_ALLOC(n, CT);
    TRY_ALLOC(q, CT);
    TRY_ALLOC(k, CT);
    TRY_ALLOC(v, CT);
    TRY_ALLOC(o, CT);
    TRY_ALLOC(ws, nn_attention_ws(T, T));
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * CT;
        nn_group_norm(n, xb, a->norm.w, a->norm.b, 1, C, T, GN_GROUPS, GN_EPS, 0);
        nn_linear_cm(q, n, a->q.w, a->q.b, T, C, C);
        nn_linear_cm(k, n, a->k.w, a->k.b, T, C, C);
        nn_linear_cm(v, n, a->v.w, a->v.b, T, C, C);
        nn_attention_cm(o, q, k, v, T, T, 1, C, ws);
        float *ob = out + (size_t)b * CT;
        nn_linear_cm(ob, o, a->proj_out.w, a->proj_out.b, T, C, C);
        nn_add_inplace(ob, xb, CT);
    }
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* mid: block_1, attn_1, block_2 on x [B, C, h, w]; result in out. */
static int mid_forward(sd_model *m, float *out, const float *x, const vae_mid *mid, int B, int h,
                       int w) {
    size_t n = (size_t)B * mid->attn_1.c * h * w, mark = sd_arena_mark(&m->arena);
    float *t1, *t2;
    TRY_ALLOC(t1, n);
    TRY_ALLOC(t2, n);
    if (ResnetBlock_forward(m, t1, x, &mid->block_1, B, h, w) ||
        AttnBlock_forward(m, t2, t1, &mid->attn_1, B, h, w) ||
        ResnetBlock_forward(m, out, t2, &mid->block_2, B, h, w))
        return -1;
    sd_arena_release(&m->arena, mark);
    return 0;
}

/* The arena is a stack, so a chain of layers ping-pongs between two buffers
 * sized for the largest activation. */
static size_t max_act(const sd_vae_config *c, int B, int H, int W) {
    size_t mx = (size_t)B * (c->in_channels > c->out_ch ? c->in_channels : c->out_ch) * H * W;
    for (int l = 0; l < c->n_levels; l++) {
        /* at level l's resolution live tensors of levels l-1, l and l+1's channel counts */
        int chmax = 0;
        for (int k = l - 1; k <= l + 1; k++)
            if (k >= 0 && k < c->n_levels && c->ch * c->ch_mult[k] > chmax)
                chmax = c->ch * c->ch_mult[k];
        size_t n = (size_t)B * chmax * ((size_t)H >> l) * ((size_t)W >> l);
        if (n > mx) mx = n;
    }
    return mx;
}

static int decoder_forward(sd_model *m, float *image, const float *z, int B, int h, int w) {
    const sd_vae_config *c = &m->cfg.vae;
    const vae_model *V = &m->vae;
    const vae_decoder *D = &V->decoder;
    int nl = c->n_levels, f = 1 << (nl - 1);
    size_t cap = max_act(c, B, h * f, w * f);
    float *a, *b, *zq;
    TRY_ALLOC(a, cap);
    TRY_ALLOC(b, cap);
    TRY_ALLOC(zq, (size_t)B * c->z_channels * h * w);
    for (int i = 0; i < B; i++)
        nn_linear_cm(zq + (size_t)i * c->z_channels * h * w, z + (size_t)i * c->embed_dim * h * w,
                     V->post_quant_conv.w, V->post_quant_conv.b, h * w, c->embed_dim,
                     c->z_channels);
    if (sd_conv_forward(m, a, zq, &D->conv_in, B, h, w, 1, 1, 1, 1, 1)) return -1;
    if (mid_forward(m, b, a, &D->mid, B, h, w)) return -1;
    float *cur = b, *nxt = a;
    for (int l = nl - 1; l >= 0; l--) {
        const vae_level *lv = &D->up[l];
        for (int k = 0; k < lv->n_blocks; k++) {
            if (ResnetBlock_forward(m, nxt, cur, &lv->block[k], B, h, w)) return -1;
            float *t = cur; cur = nxt; nxt = t;
        }
        if (lv->has_sample) {
            int C = lv->sample.cin;
            /* fused (2x2 convs per output phase) where it can, else upsample then conv */
            if (!nn_conv2d_up2(nxt, cur, lv->sample.w, lv->sample.b, C, lv->sample.cout, B, h, w)) {
                h *= 2, w *= 2;
                float *t = cur; cur = nxt; nxt = t;
                continue;
            }
            nn_upsample_nearest2x(nxt, cur, B * C, h, w);
            h *= 2, w *= 2;
            if (sd_conv_forward(m, cur, nxt, &lv->sample, B, h, w, 1, 1, 1, 1, 1)) return -1;
        }
    }
    int C = D->norm_out.c;
    nn_group_norm(nxt, cur, D->norm_out.w, D->norm_out.b, B, C, h * w, GN_GROUPS, GN_EPS, 1);
    return sd_conv_forward(m, image, nxt, &D->conv_out, B, h, w, 1, 1, 1, 1, 1);
}

static int encoder_forward(sd_model *m, float *moments, const float *img, int B, int H, int W) {
    const sd_vae_config *c = &m->cfg.vae;
    const vae_model *V = &m->vae;
    const vae_encoder *E = &V->encoder;
    int nl = c->n_levels, h = H, w = W;
    size_t cap = max_act(c, B, H, W);
    float *a, *b, *mo;
    TRY_ALLOC(a, cap);
    TRY_ALLOC(b, cap);
    if (sd_conv_forward(m, a, img, &E->conv_in, B, h, w, 1, 1, 1, 1, 1)) return -1;
    float *cur = a, *nxt = b;
    for (int l = 0; l < nl; l++) {
        const vae_level *lv = &E->down[l];
        for (int k = 0; k < lv->n_blocks; k++) {
            if (ResnetBlock_forward(m, nxt, cur, &lv->block[k], B, h, w)) return -1;
            float *t = cur; cur = nxt; nxt = t;
        }
        if (lv->has_sample) {
            /* F.pad(x, (0, 1, 0, 1)) then conv stride 2, padding 0 */
            if (sd_conv_forward(m, nxt, cur, &lv->sample, B, h, w, 2, 0, 0, 1, 1)) return -1;
            h = (h + 1 - 3) / 2 + 1, w = (w + 1 - 3) / 2 + 1;
            float *t = cur; cur = nxt; nxt = t;
        }
    }
    if (mid_forward(m, nxt, cur, &E->mid, B, h, w)) return -1;
    int C = E->norm_out.c, zc = E->conv_out.cout;
    nn_group_norm(cur, nxt, E->norm_out.w, E->norm_out.b, B, C, h * w, GN_GROUPS, GN_EPS, 1);
    TRY_ALLOC(mo, (size_t)B * zc * h * w);
    if (sd_conv_forward(m, mo, cur, &E->conv_out, B, h, w, 1, 1, 1, 1, 1)) return -1;
    for (int i = 0; i < B; i++)
        nn_linear_cm(moments + (size_t)i * V->quant_conv.nout * h * w, mo + (size_t)i * zc * h * w,
                     V->quant_conv.w, V->quant_conv.b, h * w, zc, V->quant_conv.nout);
    return 0;
}

int sd_vae_decode(sd_model *m, const float *z, int B, int h, int w, float *image, cs_err *err) {
    if (B < 1 || h < 1 || w < 1 || (int64_t)h * w > 256 * 256)
        return cs_fail(err, CS_EUSAGE, "%s: VAE decode: latent %dx%d (batch %d) out of range",
                       m->path, h, w, B);
    sd_arena_begin(&m->arena);
    int rc = decoder_forward(m, image, z, B, h, w);
    sd_arena_release(&m->arena, 0);
    if (rc) return cs_fail(err, CS_ENOMEM, "%s: VAE decode: out of memory", m->path);
    return 0;
}

int sd_vae_encode(sd_model *m, const float *image, int B, int H, int W, float *mean,
                  float *logvar, cs_err *err) {
    int f = sd_vae_factor(m);
    if (B < 1 || H < 1 || W < 1 || H % f || W % f || (int64_t)H * W > 2048 * 2048)
        return cs_fail(err, CS_EUSAGE,
                       "%s: VAE encode: image %dx%d (batch %d) must be a multiple of %d, at most "
                       "2048x2048",
                       m->path, W, H, B, f);
    if (!m->cfg.vae.double_z)
        return cs_fail(err, CS_EUSAGE, "%s: VAE encode: double_z is false (no logvar)", m->path);
    int h = H / f, w = W / f, E = m->cfg.vae.embed_dim;
    size_t hw = (size_t)h * w;
    sd_arena_begin(&m->arena);
    float *moments = sd_arena_alloc(&m->arena, (size_t)B * 2 * E * hw);
    int rc = moments ? encoder_forward(m, moments, image, B, H, W) : -1;
    if (!rc) {
        for (int b = 0; b < B; b++) {
            const float *mb = moments + (size_t)b * 2 * E * hw;
            memcpy(mean + (size_t)b * E * hw, mb, sizeof(float) * E * hw);
            float *lv = logvar + (size_t)b * E * hw;
            for (size_t i = 0; i < E * hw; i++) {
                float v = mb[E * hw + i];
                lv[i] = v < -30.f ? -30.f : v > 20.f ? 20.f : v;
            }
        }
    }
    sd_arena_release(&m->arena, 0);
    if (rc) return cs_fail(err, CS_ENOMEM, "%s: VAE encode: out of memory", m->path);
    return 0;
}
