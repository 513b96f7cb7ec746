/* sd.h — a Stable Diffusion checkpoint (SD 1.x, SD 2.x, SDXL base): text
 * encoder(s), UNet, VAE.
 *
 * The contract the samplers (pipeline/sampler*, generate) and selftest use.
 * Tensors are float32, NCHW, batch first. Latents given to the UNet are in
 * sampler space (scaled by sd_scale_factor); the VAE takes/returns
 * first-stage latents (already divided by the scale factor) and images in
 * [-1, 1].
 *
 * A model is a single-file .safetensors (CompVis / SGM key names; F32, F16 or
 * BF16) or a diffusers folder (model_index.json, unet/, vae/, text_encoder/).
 * The family and the sizes are read from the tensors' names and shapes (as
 * stable-diffusion.cpp does); a JSON config only overrides them. */
#ifndef CS_SD_H
#define CS_SD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct sd_model sd_model;

#define SD_CONTEXT_TOKENS 77
#define SD_SCALE_FACTOR 0.18215f   /* SD 1.x / 2.x */
#define SDXL_SCALE_FACTOR 0.13025f /* SDXL */

enum { SD_FAMILY_SD1 = 1, SD_FAMILY_SD2 = 2, SD_FAMILY_SDXL = 3 };
enum { SD_PRED_EPS = 0, SD_PRED_V = 1 };

const char *sd_family_name(int family); /* "SD 1.x", "SD 2.x", "SDXL" */

typedef struct {
    const char *path; /* kohya-format LoRA / LoCon .safetensors */
    float weight;     /* multiplier of its delta (negative allowed) */
} sd_lora_spec;

typedef struct {
    const char *config;         /* JSON overriding what the weights show, or NULL */
    const char *config_text;    /* that JSON itself (as a run records it), read instead
                                 * of the file; config then only names it in messages */
    const sd_lora_spec *loras;  /* merged into the weights at load */
    int n_loras;
    int force_prediction;       /* 0: the config's, else the family's (SD 2.x: A1111's
                                 * test of the UNet); 1: eps; 2: v */
} sd_load_opts;

/* model: a .safetensors file or a diffusers folder (see above). Anything
 * else (a .ckpt pickle, a .bin, a GGUF) is refused with an error naming the
 * format found, the formats read and how to convert. */
int sd_load_ex(sd_model **out, const char *model, const sd_load_opts *opts, cs_err *err);
/* sd_load_ex with only a config (NULL: none). */
int sd_load(sd_model **out, const char *ckpt, const char *config, cs_err *err);
void sd_free(sd_model *m);

int sd_family(const sd_model *m);
int sd_prediction(const sd_model *m);           /* what the UNet outputs */
float sd_scale_factor(const sd_model *m);
int sd_context_dim(const sd_model *m);          /* 768 SD 1.x, 1024 SD 2.x, 2048 SDXL */
int sd_adm_channels(const sd_model *m);         /* SDXL's vector y (2816); 0 = none */
int sd_pooled_dim(const sd_model *m);           /* SDXL's pooled text embedding (1280) */
int sd_latent_channels(const sd_model *m);      /* 4 */
int sd_vae_factor(const sd_model *m);           /* 8 for the real models (2^(levels-1)) */
/* alphas_cumprod[1000] from the checkpoint buffer if present, else computed
 * (scaled-linear 0.00085..0.012, float64 cumprod stored as float32). */
const float *sd_alphas_cumprod(const sd_model *m);

/* ids [B,77] -> context [B,77,D] as the family's conditioner does: SD 1.x the
 * last layer + final layer norm; SD 2.x the penultimate + ln_final; SDXL
 * cat(CLIP-L penultimate, OpenCLIP-G penultimate), no norm. The padding after
 * the first end token is rewritten to each tower's own pad id, so ids from
 * either tokenizer give the same result. clip_skip: 1 = that default, 2 = one
 * more layer skipped, ... (SD 1.x: then the final layer norm). pooled
 * [B, sd_pooled_dim] (SDXL only; may be NULL). */
int sd_text_encode(sd_model *m, const int32_t *ids, int B, int clip_skip, float *out, cs_err *err);
/* SDXL: ids for CLIP-L (HF tokenizer) and ids2 for OpenCLIP-G
 * (open_clip.tokenize, which unescapes HTML; NULL = ids). */
int sd_text_encode_xl(sd_model *m, const int32_t *ids, const int32_t *ids2, int B, int clip_skip,
                      float *out, float *pooled, cs_err *err);
/* One tower alone, for the reference cases: tower 0 / 1, n_layers blocks
 * (<= its depth), final_ln 0/1; pooled (tower with a projection) may be NULL. */
int sd_text_layers(const sd_model *m, int tower); /* blocks in tower 0 / 1 (0: none) */
int sd_text_tower(sd_model *m, int tower, const int32_t *ids, int B, int n_layers, int final_ln,
                  float *out, float *pooled, cs_err *err);

/* SDXL's vector y [adm] = [pooled, fourier(orig_h), fourier(orig_w),
 * fourier(crop_top), fourier(crop_left), fourier(target_h), fourier(target_w)]
 * (256 each: [cos | sin] of the integer, max period 10000). */
int sd_sdxl_vector(const sd_model *m, const float *pooled, const float sizes[6], float *y,
                   cs_err *err);
/* out [256] = the fourier embedding of one size value. */
void sd_size_embed(float v, float *out);

/* out [B,4,h,w] = UNet(x [B,4,h,w], t [B] (fractional allowed), context
 * [B,77,D], y [B, adm] (SDXL; NULL otherwise)): eps or v (sd_prediction). */
int sd_unet(sd_model *m, const float *x, const float *t, const float *context, const float *y,
            int B, int h, int w, float *out, cs_err *err);
/* sd_unet with y = NULL (SD 1.x / 2.x). */
int sd_unet_eps(sd_model *m, const float *x, const float *t, const float *context, int B, int h,
                int w, float *eps, cs_err *err);
/* The same with ctx_tokens context tokens per image (A1111's long prompts:
 * 77 x chunks): context [B, ctx_tokens, D]. */
int sd_unet_eps_ctx(sd_model *m, const float *x, const float *t, const float *context, int ctx_tokens, int B,
                    int h, int w, float *eps, cs_err *err);
/* The general form: ctx_tokens context tokens per image and y (SDXL, else NULL). */
int sd_unet_ctx(sd_model *m, const float *x, const float *t, const float *context, int ctx_tokens,
                const float *y, int B, int h, int w, float *out, cs_err *err);

/* image [B,3,8h,8w] (raw decoder output, ~[-1,1], not clamped) = decode(z [B,4,h,w]). */
int sd_vae_decode(sd_model *m, const float *z, int B, int h, int w, float *image, cs_err *err);
/* mean, logvar [B,4,H/8,W/8] (logvar clamped to [-30, 20]) = encode(image [B,3,H,W]). */
int sd_vae_encode(sd_model *m, const float *image, int B, int H, int W, float *mean,
                  float *logvar, cs_err *err);

/* Reads a whole small text file (a config, an index) of at most max bytes;
 * malloc'd, NUL-terminated; NULL with err set. */
char *sd_read_text(const char *path, size_t max, cs_err *err);

#endif
