/* model_sd.c — an SD 1.x checkpoint as a cs_model (eps prediction on 4-channel
 * latents at 1/8 size); prompts go through the CLIP tokenizer and the text
 * encoder; the VAE encodes with the posterior mean (deterministic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash_sha256.h"
#include "pipeline/model.h"
#include "pipeline/prompt_weights.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"

typedef struct {
    sd_model *sd;
    clip_tokenizer *tok;
    int ctx_dim;
    int clip_skip;
} sdm;

struct cs_cond {
    float *context; /* [n_tokens, D] */
    int n_tokens;   /* 77 x A1111 prompt chunks */
};

static int sdm_eval(cs_model *m, const float *x, const float *ts, cs_cond *const *conds, int B, int h,
                    int w, float *out, cs_err *err) {
    sdm *S = m->impl;
    int same = 1;
    for (int b = 1; b < B; b++) same &= conds[b]->n_tokens == conds[0]->n_tokens;
    if (!same) { /* prompts of different lengths: one call each, as A1111 does */
        size_t n = (size_t)m->channels * h * w;
        for (int b = 0; b < B; b++)
            if (sdm_eval(m, x + n * b, ts + b, conds + b, 1, h, w, out + n * b, err)) return -1;
        return 0;
    }
    size_t per = (size_t)conds[0]->n_tokens * S->ctx_dim;
    float *ctx = malloc(sizeof(float) * per * B);
    if (!ctx) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    for (int b = 0; b < B; b++) memcpy(ctx + per * b, conds[b]->context, sizeof(float) * per);
    int rc = sd_unet_eps_ctx(S->sd, x, ts, ctx, conds[0]->n_tokens, B, h, w, out, err);
    free(ctx);
    return rc;
}

static int sdm_encode_chunk(void *ctx, const int32_t *ids, float *z, cs_err *err) {
    sdm *S = ctx;
    return sd_text_encode(S->sd, ids, 1, S->clip_skip, z, err);
}

static int sdm_cond_new(cs_model *m, const char *text, cs_cond **out, cs_err *err) {
    sdm *S = m->impl;
    *out = NULL;
    if (!S->tok) return cs_fail(err, CS_EUSAGE, "%s: no tokenizer vocabulary (--vocab)", m->name);
    cs_cond *c = calloc(1, sizeof *c);
    if (!c) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    /* A1111's prompt syntax and 75-token chunks (pipeline/prompt_weights.h) */
    int chunks;
    if (cs_prompt_encode(S->tok, text, CLIP_END_ID, S->ctx_dim, sdm_encode_chunk, S, &c->context, &chunks, err)) {
        free(c);
        return -1;
    }
    c->n_tokens = chunks * SD_CONTEXT_TOKENS;
    *out = c;
    return 0;
}

static void sdm_cond_free(cs_model *m, cs_cond *c) {
    (void)m;
    if (!c) return;
    free(c->context);
    free(c);
}

int cs_model_sd_cond_from_context(cs_model *m, const float *context, cs_cond **out, cs_err *err) {
    sdm *S = m->impl;
    cs_cond *c = calloc(1, sizeof *c);
    if (c) c->context = malloc(sizeof(float) * SD_CONTEXT_TOKENS * S->ctx_dim);
    if (!c || !c->context) {
        free(c);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    }
    memcpy(c->context, context, sizeof(float) * SD_CONTEXT_TOKENS * S->ctx_dim);
    c->n_tokens = SD_CONTEXT_TOKENS;
    *out = c;
    return 0;
}

/* latent (sampler space) -> z = latent / 0.18215 -> decoder */
static int sdm_decode(cs_model *m, const float *x, int B, int h, int w, float *image, cs_err *err) {
    sdm *S = m->impl;
    size_t n = (size_t)B * m->channels * h * w;
    float *z = malloc(sizeof(float) * n);
    if (!z) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    for (size_t i = 0; i < n; i++) z[i] = x[i] / SD_SCALE_FACTOR;
    int rc = sd_vae_decode(S->sd, z, B, h, w, image, err);
    free(z);
    return rc;
}

static int sdm_encode(cs_model *m, const float *image, int B, int H, int W, float *x, cs_err *err) {
    sdm *S = m->impl;
    int f = m->factor;
    size_t n = (size_t)B * m->channels * (H / f) * (W / f);
    float *logvar = malloc(sizeof(float) * n);
    if (!logvar) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    int rc = sd_vae_encode(S->sd, image, B, H, W, x, logvar, err);
    free(logvar);
    if (!rc)
        for (size_t i = 0; i < n; i++) x[i] *= SD_SCALE_FACTOR;
    return rc;
}

static void sdm_destroy(cs_model *m) {
    sdm *S = m->impl;
    if (!S) return;
    sd_free(S->sd);
    if (S->tok) clip_tokenizer_free(S->tok);
    free(S);
    m->impl = NULL;
}

int cs_model_sd_open(cs_model **out, const char *ckpt, const cs_model_opts *opts, cs_err *err) {
    *out = NULL;
    cs_model *m = calloc(1, sizeof *m);
    sdm *S = calloc(1, sizeof *S);
    if (!m || !S) {
        free(m);
        free(S);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", ckpt);
    }
    m->impl = S;
    m->destroy = sdm_destroy;
    if (sd_load(&S->sd, ckpt, opts ? opts->config : NULL, err)) goto fail;
    if (opts && opts->vocab && clip_tokenizer_load(&S->tok, opts->vocab, err)) goto fail;
    if (cs_sha256_file_hex(ckpt, m->hash, err)) goto fail;
    S->ctx_dim = sd_context_dim(S->sd);
    S->clip_skip = opts && opts->clip_skip > 0 ? opts->clip_skip : 1;
    snprintf(m->kind, sizeof m->kind, "sd");
    const char *base = strrchr(ckpt, '/');
    base = base ? base + 1 : ckpt;
    snprintf(m->name, sizeof m->name, "%s", base);
    char *dot = strrchr(m->name, '.');
    if (dot && dot != m->name) *dot = 0;
    m->pred = CS_PRED_EPS;
    cs_schedule_from_alphas(&m->sched, sd_alphas_cumprod(S->sd));
    m->channels = sd_latent_channels(S->sd);
    m->factor = sd_vae_factor(S->sd);
    m->fixed_size = 0;
    m->eval = sdm_eval;
    m->cond_new = sdm_cond_new;
    m->cond_free = sdm_cond_free;
    m->decode = sdm_decode;
    m->encode = sdm_encode;
    *out = m;
    return 0;
fail:
    cs_model_free(m);
    return -1;
}
