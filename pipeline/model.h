/* model.h — the denoiser interface the samplers use, and its two kinds:
 * SD 1.x checkpoints (pipeline/model_sd.c over pipeline/sd.h) and the
 * built-in empirical model (pipeline/empirical.c).
 *
 * Sampler space: SD works on 4-channel latents (scaled by 0.18215) at 1/8 of
 * the image size, the empirical model on RGB pixels in [-1, 1]. Noise levels
 * follow k-diffusion: x = x0 + sigma * n; every model carries the discrete
 * training schedule (SD 1.x's for both kinds) so discrete-time samplers (DDIM)
 * work with either. Classifier-free guidance lives in the sampler, so the
 * conditional and unconditional predictions are both at hand for white-box
 * signals. A cs_model is used by one thread at a time (it may use threads
 * inside eval). */
#ifndef CS_MODEL_H
#define CS_MODEL_H

#include "core/err.h"
#include "pipeline/schedule.h"

typedef enum {
    CS_PRED_EPS, /* eval returns eps(x_vp, t): the network's noise prediction */
    CS_PRED_X0,  /* eval returns D(x, sigma): the denoised image */
    CS_PRED_V,   /* eval returns v(x_vp, t) = sqrt(a) eps - sqrt(1-a) x0 (SD 2.x 768-v) */
} cs_pred;

typedef struct cs_cond cs_cond; /* a model's encoding of one prompt (opaque) */
typedef struct cs_model cs_model;

struct cs_model {
    char kind[16];  /* "sd" | "empirical" */
    char name[256]; /* "Model:" in the PNG parameters (file stem, or empirical:<db>) */
    char hash[65];  /* sha256 hex of the weights file / of the reference set */
    cs_pred pred;
    cs_schedule sched;
    int channels;   /* sampler-space channels: 4 (SD latents) or 3 (pixels) */
    int factor;     /* image pixels per sampler-space pixel: 8 (SD 1.x), 1 */
    int fixed_size; /* 0: any multiple of factor; else the only image side allowed */
    int quantize_t; /* 1: sigma snapped to the nearest training level and the integer
                     * index given as t (sgm's DiscreteDenoiser, SDXL reference code);
                     * 0: fractional t (k-diffusion CompVisDenoiser, A1111) */

    /* out [B,C,h,w]. CS_PRED_EPS: eps of the VP-scaled input x at timesteps
     * ts[B] (fractional allowed). CS_PRED_X0: D(x, sigma = ts[b]). conds[B]. */
    int (*eval)(cs_model *m, const float *x, const float *ts, cs_cond *const *conds, int B, int h,
                int w, float *out, cs_err *err);
    /* Encodes a prompt; the empty string is the unconditional branch. */
    int (*cond_new)(cs_model *m, const char *text, cs_cond **out, cs_err *err);
    void (*cond_free)(cs_model *m, cs_cond *c);
    /* Sampler space [B,C,h,w] -> image [B,3,h*f,w*f] in ~[-1,1] and back. */
    int (*decode)(cs_model *m, const float *x, int B, int h, int w, float *image, cs_err *err);
    int (*encode)(cs_model *m, const float *image, int B, int H, int W, float *x, cs_err *err);
    void (*destroy)(cs_model *m); /* frees impl (not m) */
    void *impl;
};

typedef struct {
    const char *path; /* kohya LoRA .safetensors */
    float weight;     /* multiplier */
} cs_lora;

typedef struct {
    const char *config; /* SD: JSON config overriding what the weights show (or NULL) */
    const char *config_text; /* SD: that config's JSON itself (a run's record), read instead of
                              * the file; config then only names it in messages */
    const char *vocab;  /* SD: CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz); NULL:
                         * a diffusers folder's tokenizer/ if it has one */
    const char *db;     /* empirical: the index db when spec is plain "empirical" */
    int clip_skip;      /* SD: 1 = the family's default layer (default when 0) */
    const cs_lora *loras; /* SD: merged into the weights at load */
    int n_loras;
    int prediction;     /* SD: 0 = from the weights / config, 1 = eps, 2 = v */
    int sdxl_uc_text;   /* SDXL: 1 = encode the negative prompt "" like any prompt;
                         * 0 (default) = zeros, as sgm's pipeline (force_uc_zero) */
} cs_model_opts;

/* spec: a checkpoint path, "empirical" (the index at opts->db) or
 * "empirical:INDEXDB". The caller frees with cs_model_free. */
int cs_model_open(cs_model **out, const char *spec, const cs_model_opts *opts, cs_err *err);
void cs_model_free(cs_model *m);
int cs_model_is_empirical_spec(const char *spec);

/* k-diffusion's denoiser at one sigma for the whole batch: D [B,...] and, if
 * eps != NULL, the noise prediction. EPS models go through CompVisDenoiser:
 * D = x - sigma * eps(x / sqrt(sigma^2 + 1), sigma_to_t(sigma)). */
int cs_model_denoise(cs_model *m, const float *x, float sigma, cs_cond *const *conds, int B, int h,
                     int w, float *D, float *eps, cs_err *err);
/* eps at integer training timestep t of the VP-scaled x (DDIM, DDPM). */
int cs_model_eps_t(cs_model *m, const float *x_vp, int t, cs_cond *const *conds, int B, int h,
                   int w, float *eps, cs_err *err);

/* The constructors behind cs_model_open (model_sd.c, empirical.c). */
int cs_model_sd_open(cs_model **out, const char *ckpt, const cs_model_opts *opts, cs_err *err);
int cs_model_empirical_open(cs_model **out, const char *db, cs_err *err);
/* SD only: a conditioning from a ready text-encoder output context [77, D]
 * (tests feed the reference cases' cond/uncond); SDXL also takes the vector
 * y [adm] (NULL: zero pooled part, sizes from cs_model_sd_set_sizes). */
int cs_model_sd_cond_from_context(cs_model *m, const float *context, cs_cond **out, cs_err *err);
int cs_model_sd_cond_from_context_y(cs_model *m, const float *context, const float *y,
                                    cs_cond **out, cs_err *err);
/* SDXL: the size/crop conditioning (orig_h, orig_w, crop_top, crop_left,
 * target_h, target_w) that later cond_new calls use; default: 0 for the
 * crops and, until set, 1024 for the sizes (SDXL base's training size). */
void cs_model_sd_set_sizes(cs_model *m, const float sizes[6]);
/* The family name ("SD 1.x", "SD 2.x", "SDXL") of an SD model, else NULL. */
const char *cs_model_sd_family(const cs_model *m);

#endif
