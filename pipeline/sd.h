/* sd.h — a Stable Diffusion 1.x checkpoint: text encoder, UNet, VAE.
 *
 * The contract the samplers (pipeline/sampler*, generate) and selftest use.
 * Tensors are float32, NCHW, batch first. Latents given to sd_unet_eps are
 * in sampler space (scaled by 0.18215); the VAE takes/returns first-stage
 * latents (already divided by the scale factor) and images in [-1, 1]. */
#ifndef CS_SD_H
#define CS_SD_H

#include <stdint.h>

#include "core/err.h"

typedef struct sd_model sd_model;

#define SD_CONTEXT_TOKENS 77
#define SD_SCALE_FACTOR 0.18215f

/* ckpt: single-file .safetensors (CompVis names). config: JSON file laid out like
 * ../shared/refs/sd-tiny/config.json, or NULL for the built-in SD 1.x preset. */
int sd_load(sd_model **out, const char *ckpt, const char *config, cs_err *err);
void sd_free(sd_model *m);

int sd_context_dim(const sd_model *m);          /* 768 for SD 1.x */
int sd_latent_channels(const sd_model *m);      /* 4 */
int sd_vae_factor(const sd_model *m);           /* 8 for SD 1.x (2^(levels-1)) */
/* alphas_cumprod[1000] from the checkpoint buffer if present, else computed
 * (scaled-linear 0.00085..0.012, float64 cumprod stored as float32). */
const float *sd_alphas_cumprod(const sd_model *m);

/* ids [B,77] -> context [B,77,D]. clip_skip: 1 = last layer (default), 2 = the
 * penultimate layer's output, ... (always followed by the final layer norm). */
int sd_text_encode(sd_model *m, const int32_t *ids, int B, int clip_skip, float *out, cs_err *err);

/* eps [B,4,h,w] = UNet(x [B,4,h,w], t [B] (fractional allowed), context [B,77,D]). */
int sd_unet_eps(sd_model *m, const float *x, const float *t, const float *context, int B, int h,
                int w, float *eps, cs_err *err);
/* The same with ctx_tokens context tokens per image (A1111's long prompts:
 * 77 x chunks): context [B, ctx_tokens, D]. */
int sd_unet_eps_ctx(sd_model *m, const float *x, const float *t, const float *context, int ctx_tokens, int B,
                    int h, int w, float *eps, cs_err *err);

/* image [B,3,8h,8w] (raw decoder output, ~[-1,1], not clamped) = decode(z [B,4,h,w]). */
int sd_vae_decode(sd_model *m, const float *z, int B, int h, int w, float *image, cs_err *err);
/* mean, logvar [B,4,H/8,W/8] (logvar clamped to [-30, 20]) = encode(image [B,3,H,W]). */
int sd_vae_encode(sd_model *m, const float *image, int B, int H, int W, float *mean,
                  float *logvar, cs_err *err);

#endif
