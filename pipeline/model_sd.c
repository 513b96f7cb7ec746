/* model_sd.c — a Stable Diffusion checkpoint (SD 1.x, SD 2.x, SDXL) as a
 * cs_model: eps or v prediction on 4-channel latents at 1/8 size; prompts go
 * through the CLIP tokenizer(s) and the text encoder(s); the VAE encodes
 * with the posterior mean (deterministic).
 *
 * Tokenizers: SD 1.x and SDXL's CLIP-L use the Hugging Face tokenizer (no
 * HTML unescaping), SD 2.x and SDXL's OpenCLIP-G open_clip.tokenize (HTML
 * entities unescaped); the padding is the text encoder's business
 * (sd_text_encode rewrites it per tower).
 *
 * SDXL conditioning: the cond holds the context and the pooled embedding;
 * the vector y is built at eval time from the pooled part and the sizes
 * (orig = target = the image size being sampled, crop 0, as sgm's defaults),
 * unless cs_model_sd_set_sizes fixed them. The empty prompt (the
 * unconditional branch) is all zeros in context and pooled part, as sgm's
 * SamplingPipeline does (force_uc_zero_embeddings=['txt']), unless
 * opts.sdxl_uc_text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/hash_sha256.h"
#include "pipeline/model.h"
#include "pipeline/prompt_weights.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"

typedef struct {
    sd_model *sd;
    clip_tokenizer *tok;  /* HF rules (no unescape) */
    clip_tokenizer *tok2; /* open_clip rules (unescape), SD 2.x / SDXL */
    int family, ctx_dim, adm, pooled_dim;
    int clip_skip;
    int uc_text;
    int have_sizes;
    float sizes[6];
} sdm;

struct cs_cond {
    float *context; /* [n_tokens, D] */
    int n_tokens;   /* 77 x A1111 prompt chunks (SDXL: 77) */
    float *pooled;  /* SDXL [pooled_dim], or NULL */
    float *y;       /* SDXL: a given vector [adm] (reference cases), or NULL */
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
    float *y = S->adm ? malloc(sizeof(float) * S->adm * B) : NULL;
    if (!ctx || (S->adm && !y)) {
        free(ctx);
        free(y);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    }
    int rc = 0;
    for (int b = 0; b < B && !rc; b++) {
        memcpy(ctx + per * b, conds[b]->context, sizeof(float) * per);
        if (!S->adm) continue;
        if (conds[b]->y) {
            memcpy(y + (size_t)S->adm * b, conds[b]->y, sizeof(float) * S->adm);
        } else {
            float H = (float)(h * m->factor), W = (float)(w * m->factor);
            float dflt[6] = {H, W, 0, 0, H, W};
            rc = sd_sdxl_vector(S->sd, conds[b]->pooled, S->have_sizes ? S->sizes : dflt,
                                y + (size_t)S->adm * b, err);
        }
    }
    if (!rc) rc = sd_unet_ctx(S->sd, x, ts, ctx, conds[0]->n_tokens, y, B, h, w, out, err);
    free(ctx);
    free(y);
    return rc;
}

static int sdm_encode_chunk(void *ctx, const int32_t *ids, float *z, cs_err *err) {
    sdm *S = ctx;
    return sd_text_encode(S->sd, ids, 1, S->clip_skip, z, err);
}

static void sdm_cond_free(cs_model *m, cs_cond *c) {
    (void)m;
    if (!c) return;
    free(c->context);
    free(c->pooled);
    free(c->y);
    free(c);
}

static cs_cond *cond_alloc(sdm *S) {
    cs_cond *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->context = calloc((size_t)SD_CONTEXT_TOKENS * S->ctx_dim, sizeof(float));
    c->n_tokens = SD_CONTEXT_TOKENS;
    if (S->pooled_dim) c->pooled = calloc(S->pooled_dim, sizeof(float));
    if (!c->context || (S->pooled_dim && !c->pooled)) {
        sdm_cond_free(NULL, c);
        return NULL;
    }
    return c;
}

static int sdm_cond_new(cs_model *m, const char *text, cs_cond **out, cs_err *err) {
    sdm *S = m->impl;
    *out = NULL;
    cs_cond *c = cond_alloc(S);
    if (!c) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    if (S->family == SD_FAMILY_SDXL && !*text && !S->uc_text) { /* sgm: zeros */
        *out = c;
        return 0;
    }
    if (!S->tok) {
        sdm_cond_free(m, c);
        return cs_fail(err, CS_EUSAGE, "%s: no tokenizer vocabulary (--vocab)", m->name);
    }
    const clip_tokenizer *t1 = S->family == SD_FAMILY_SD2 ? S->tok2 : S->tok;
    if (S->family != SD_FAMILY_SDXL) {
        /* A1111's prompt syntax and 75-token chunks (pipeline/prompt_weights.h);
         * the encoder re-pads each chunk per tower. SDXL: one chunk (below). */
        float *z = NULL;
        int chunks = 0;
        if (cs_prompt_encode(t1, text, CLIP_END_ID, S->ctx_dim, sdm_encode_chunk, S, &z, &chunks, err)) {
            sdm_cond_free(m, c);
            return -1;
        }
        free(c->context);
        c->context = z;
        c->n_tokens = chunks * SD_CONTEXT_TOKENS;
        *out = c;
        return 0;
    }
    int32_t ids[SD_CONTEXT_TOKENS], ids2[SD_CONTEXT_TOKENS];
    int rc = clip_tokenize(t1, text, ids, err) < 0 ? -1 : 0;
    if (!rc && S->family == SD_FAMILY_SDXL && clip_tokenize(S->tok2, text, ids2, err) < 0) rc = -1;
    if (!rc)
        rc = S->family == SD_FAMILY_SDXL
                 ? sd_text_encode_xl(S->sd, ids, ids2, 1, S->clip_skip, c->context, c->pooled, err)
                 : sd_text_encode(S->sd, ids, 1, S->clip_skip, c->context, err);
    if (rc) {
        sdm_cond_free(m, c);
        return -1;
    }
    *out = c;
    return 0;
}

int cs_model_sd_cond_from_context_y(cs_model *m, const float *context, const float *y,
                                    cs_cond **out, cs_err *err) {
    sdm *S = m->impl;
    cs_cond *c = cond_alloc(S);
    if (c && y && S->adm && !(c->y = malloc(sizeof(float) * S->adm))) {
        sdm_cond_free(m, c);
        c = NULL;
    }
    if (!c) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    memcpy(c->context, context, sizeof(float) * SD_CONTEXT_TOKENS * S->ctx_dim);
    if (c->y) memcpy(c->y, y, sizeof(float) * S->adm);
    *out = c;
    return 0;
}

int cs_model_sd_cond_from_context(cs_model *m, const float *context, cs_cond **out, cs_err *err) {
    return cs_model_sd_cond_from_context_y(m, context, NULL, out, err);
}

void cs_model_sd_set_sizes(cs_model *m, const float sizes[6]) {
    sdm *S = m->impl;
    memcpy(S->sizes, sizes, sizeof S->sizes);
    S->have_sizes = 1;
}

const char *cs_model_sd_family(const cs_model *m) {
    if (strcmp(m->kind, "sd")) return NULL;
    return sd_family_name(((const sdm *)m->impl)->family);
}

/* latent (sampler space) -> z = latent / scale -> decoder */
static int sdm_decode(cs_model *m, const float *x, int B, int h, int w, float *image, cs_err *err) {
    sdm *S = m->impl;
    size_t n = (size_t)B * m->channels * h * w;
    float *z = malloc(sizeof(float) * n), sf = sd_scale_factor(S->sd);
    if (!z) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    for (size_t i = 0; i < n; i++) z[i] = x[i] / sf;
    int rc = sd_vae_decode(S->sd, z, B, h, w, image, err);
    free(z);
    return rc;
}

static int sdm_encode(cs_model *m, const float *image, int B, int H, int W, float *x, cs_err *err) {
    sdm *S = m->impl;
    int f = m->factor;
    size_t n = (size_t)B * m->channels * (H / f) * (W / f);
    float *logvar = malloc(sizeof(float) * n), sf = sd_scale_factor(S->sd);
    if (!logvar) return cs_fail(err, CS_ENOMEM, "%s: out of memory", m->name);
    int rc = sd_vae_encode(S->sd, image, B, H, W, x, logvar, err);
    free(logvar);
    if (!rc)
        for (size_t i = 0; i < n; i++) x[i] *= sf;
    return rc;
}

static void sdm_destroy(cs_model *m) {
    sdm *S = m->impl;
    if (!S) return;
    sd_free(S->sd);
    if (S->tok) clip_tokenizer_free(S->tok);
    if (S->tok2) clip_tokenizer_free(S->tok2);
    free(S);
    m->impl = NULL;
}

/* The weights' hash: the file's, or for a diffusers folder the hash of the
 * three weight files' hashes (in a fixed order). */
static int model_hash(const char *path, char hex[65], cs_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cs_sha256_file_hex(path, hex, err);
    static const char *parts[] = {"unet/diffusion_pytorch_model.safetensors",
                                  "vae/diffusion_pytorch_model.safetensors",
                                  "text_encoder/model.safetensors",
                                  "text_encoder_2/model.safetensors"};
    char all[4 * 65 + 1] = "", p[4096], h[65];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", path, parts[i]);
        if (stat(p, &sb) != 0) continue;
        if (cs_sha256_file_hex(p, h, err)) return -1;
        strcat(all, h);
    }
    cs_sha256_hex(all, strlen(all), hex);
    return 0;
}

static int load_tokenizers(sdm *S, const char *model, const char *vocab, cs_err *err) {
    char p[4096];
    struct stat sb;
    if (!vocab) { /* a diffusers folder's own tokenizer */
        snprintf(p, sizeof p, "%s/tokenizer/vocab.json", model);
        if (stat(p, &sb) != 0) return 0;
        vocab = p;
    }
    if (clip_tokenizer_load(&S->tok, vocab, err)) return -1;
    if (S->family == SD_FAMILY_SD1) return 0;
    if (clip_tokenizer_load(&S->tok2, vocab, err)) return -1;
    clip_tokenizer_set_html_unescape(S->tok2, 1);
    return 0;
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
    sd_lora_spec ls[16];
    sd_load_opts lo = {.config = opts ? opts->config : NULL, .config_text = opts ? opts->config_text : NULL,
                       .loras = ls};
    if (opts && opts->n_loras > 16) {
        cs_fail(err, CS_EUSAGE, "%s: at most 16 LoRAs", ckpt);
        goto fail;
    }
    for (int i = 0; opts && i < opts->n_loras; i++)
        ls[i] = (sd_lora_spec){opts->loras[i].path, opts->loras[i].weight};
    lo.n_loras = opts ? opts->n_loras : 0;
    if (opts) lo.force_prediction = opts->prediction;
    if (sd_load_ex(&S->sd, ckpt, &lo, err)) goto fail;
    S->family = sd_family(S->sd);
    if (load_tokenizers(S, ckpt, opts ? opts->vocab : NULL, err)) goto fail;
    if (model_hash(ckpt, m->hash, err)) goto fail;
    S->ctx_dim = sd_context_dim(S->sd);
    S->adm = sd_adm_channels(S->sd);
    S->pooled_dim = sd_pooled_dim(S->sd);
    S->clip_skip = opts && opts->clip_skip > 0 ? opts->clip_skip : 1;
    S->uc_text = opts && opts->sdxl_uc_text;
    snprintf(m->kind, sizeof m->kind, "sd");
    size_t len = strlen(ckpt);
    while (len > 1 && ckpt[len - 1] == '/') len--;
    const char *base = ckpt + len;
    while (base > ckpt && base[-1] != '/') base--;
    snprintf(m->name, sizeof m->name, "%.*s", (int)(ckpt + len - base), base);
    char *dot = strrchr(m->name, '.');
    if (dot && dot != m->name) *dot = 0;
    m->pred = sd_prediction(S->sd) == SD_PRED_V ? CS_PRED_V : CS_PRED_EPS;
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
