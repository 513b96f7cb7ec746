/* sampler.h — the sampling loops (k-diffusion's Euler, Euler ancestral, Heun,
 * DPM++ 2M over a sigma schedule; CompVis DDIM with eta; DDPM ancestral),
 * classifier-free guidance, img2img / masked completion, and the white-box
 * signals recorded on the way (no extra model evaluations).
 *
 * Guidance: one batched model call on [uncond, cond], D = D_u + g (D_c - D_u)
 * (k-diffusion samplers; DDIM/DDPM do the same on eps). g == 1 or no uncond:
 * a single conditional call and no white-box signal.
 *
 * Noise: every random tensor comes from the cs_noise source, in this order:
 * the initial noise [C,h,w] first, then for ancestral samplers (Euler a,
 * DDIM with eta > 0, DDPM) one tensor per step that adds noise (k-diffusion
 * Euler a: steps 0..n-2; DDIM/DDPM: every step), and for RePaint
 * resampling one tensor per diffusion back up.
 *
 * Masked completion keeps the known region: after every step it is replaced
 * by the reference noised to the step's level with the initial noise
 * (x0 + sigma n0; DDIM: sqrt(a) x0 + sqrt(1-a) n0), so the final sample
 * holds the reference's own values there. With resample = U > 1 each step is
 * run U times, diffusing back up between runs (RePaint, Lugmayr et al. 2022):
 * U times the model evaluations, but the generated part agrees with the
 * known part. */
#ifndef CS_SAMPLER_H
#define CS_SAMPLER_H

#include "core/err.h"
#include "pipeline/model.h"
#include "pipeline/rng.h"
#include "pipeline/schedule.h"

typedef enum {
    CS_SAMPLER_EULER,
    CS_SAMPLER_EULER_A,
    CS_SAMPLER_HEUN,
    CS_SAMPLER_DPMPP_2M,
    CS_SAMPLER_DDIM,
    CS_SAMPLER_DDPM, /* ancestral DDPM posterior sampling = DDIM with eta 1 */
    CS_SAMPLER_COUNT
} cs_sampler_kind;

/* Names: "euler", "euler_a" (or "euler_ancestral"), "heun", "dpmpp_2m", "ddim",
 * "ddpm", and A1111's ("Euler", "Euler a", "Heun", "DPM++ 2M", "DDIM", any
 * case). parse returns 0 or -1. */
const char *cs_sampler_name(cs_sampler_kind k);
const char *cs_sampler_a1111_name(cs_sampler_kind k); /* "Euler a", "DPM++ 2M", ... */
int cs_sampler_parse(const char *name, cs_sampler_kind *out);
/* Also A1111's combined names with a schedule suffix ("DPM++ 2M Karras",
 * "Euler a Exponential"): *has_spacing = 1 and *spacing set then. */
int cs_sampler_parse_full(const char *name, cs_sampler_kind *out, cs_spacing *spacing, int *has_spacing);
/* A schedule by our name (discrete, karras, exponential) or A1111's
 * "Schedule type" (Uniform = discrete; Karras; Exponential): 0. A1111's
 * "Automatic" (the sampler's default, cs_sampler_a1111_default_spacing):
 * 1, *out untouched. Unknown: -1. */
int cs_schedule_parse_any(const char *name, cs_spacing *out);
cs_spacing cs_sampler_a1111_default_spacing(cs_sampler_kind k);

typedef struct {
    cs_sampler_kind sampler;
    cs_spacing spacing; /* k-diffusion samplers; DDIM/DDPM use CompVis uniform timesteps */
    int steps;          /* >= 1 */
    float guidance;     /* CFG scale (1 = conditional only) */
    float eta;          /* DDIM only */
    int whitebox_k;     /* white-box mean over the first k steps (>= 1) */
    float strength;     /* img2img: fraction of the schedule to run, (0, 1]; 0 = 1 */
    int resample;       /* completion: RePaint resampling, each step run this many
                         * times (>= 2) with a diffusion back to its start between
                         * runs; 0/1 = plain replacement of the known region */
    int final_x0;       /* DDIM/DDPM: return the last step's x0 prediction instead of
                         * CompVis's x at alphas_cumprod[0] (whose sigma 0.029 of noise
                         * shows in pixel space); generate sets it for pixel models */
    void (*on_step)(void *ctx); /* optional: called after every step (progress) */
    void *on_step_ctx;
} cs_sample_opts;

/* img2img / completion input (NULL for txt2img). */
typedef struct {
    const float *x0;   /* [C,h,w] the reference in sampler space (clean) */
    const float *mask; /* [h,w]: 1 = keep the reference there, 0 = generate; NULL = img2img */
} cs_sample_init;

/* What a run recorded. eps_norm and x0_first are malloc'd by cs_sample (free
 * with cs_sample_trace_free); x_steps / denoised_steps are optional buffers the
 * caller provides (tests): [(n_steps+1) * C*h*w] and [n_steps * C*h*w]. */
typedef struct {
    int n_steps;          /* sampler steps actually run */
    float *eps_norm;      /* [n_steps] ||eps_c - eps_u||_2 at each step's first evaluation */
    float whitebox;       /* mean of eps_norm over the first k steps (NAN without guidance) */
    float x0_final_rms;   /* RMS distance, first step's x0 prediction vs the final sample */
    float *x_steps;       /* optional: x before step 0, after each step */
    float *denoised_steps;/* optional: guided x0 prediction at each step's first evaluation */
} cs_sample_trace;

/* Runs the sampler; x_out [C,h,w] (sampler space). cond must be set; uncond
 * may be NULL (no guidance). trace may be NULL. */
int cs_sample(cs_model *m, const cs_sample_opts *o, cs_cond *cond, cs_cond *uncond, int h, int w,
              cs_noise *noise, const cs_sample_init *init, float *x_out, cs_sample_trace *trace,
              cs_err *err);
void cs_sample_trace_free(cs_sample_trace *t);

/* Steps a run will take (for progress totals; DDIM's integer division can add some). */
int cs_sample_count_steps(const cs_sample_opts *o);
/* Model evaluations (batched CFG counts once) the run will make. */
int cs_sample_count_evals(const cs_sample_opts *o);

#endif
