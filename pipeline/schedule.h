/* schedule.h — the discrete DDPM schedule of SD 1.x and the sigma
 * discretisations the samplers walk, as k-diffusion's CompVisDenoiser defines
 * them (../shared/refs/sd-tiny/PITFALLS.md items 24-26, 30).
 *
 * Sampler space is k-diffusion's: x = x0 + sigma * n ("VE"); the model's
 * training input is x_vp = x / sqrt(1 + sigma^2) at the timestep t whose
 * sigma_t = sqrt((1 - abar_t) / abar_t). */
#ifndef CS_SCHEDULE_H
#define CS_SCHEDULE_H

#include "core/err.h"

#define CS_TRAIN_STEPS 1000

typedef struct {
    float alphas_cumprod[CS_TRAIN_STEPS]; /* float32, as the checkpoint buffer */
    float sigmas[CS_TRAIN_STEPS];         /* sqrt((1-ac)/ac) in float32, increasing */
    float log_sigmas[CS_TRAIN_STEPS];
} cs_schedule;

typedef enum {
    CS_SPACING_DISCRETE,    /* CompVisDenoiser.get_sigmas: t = linspace(999, 0, n) */
    CS_SPACING_KARRAS,      /* Karras et al. rho = 7 between the model's extreme sigmas */
    CS_SPACING_EXPONENTIAL, /* log-uniform between the extreme sigmas */
} cs_spacing;

/* Scaled-linear betas linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 in double,
 * cumprod in double, stored as float32. */
void cs_schedule_sd(cs_schedule *s);
/* From an alphas_cumprod[1000] buffer (e.g. the checkpoint's). */
void cs_schedule_from_alphas(cs_schedule *s, const float *alphas_cumprod);

float cs_schedule_sigma_min(const cs_schedule *s);
float cs_schedule_sigma_max(const cs_schedule *s);

/* CompVisDenoiser.sigma_to_t (quantize=False): fractional t by linear
 * interpolation in log sigma between neighbouring training levels. */
float cs_sigma_to_t(const cs_schedule *s, float sigma);
/* CompVisDenoiser.t_to_sigma: log sigma interpolated between floor(t), ceil(t). */
float cs_t_to_sigma(const cs_schedule *s, float t);

/* n (>= 1) sigmas from high to low plus a final 0: out[n + 1]. */
void cs_schedule_sigmas(const cs_schedule *s, cs_spacing spacing, int n, float *out);

/* CompVis DDIM 'uniform' timesteps range(0, 1000, 1000 / steps) + 1, ascending.
 * Fills out (room for CS_TRAIN_STEPS) and returns how many (integer division:
 * steps 30 -> 31, steps 7 -> 8),
 * or -1 (err set) when steps is outside 1..500 (larger strides would index
 * t = 1000). */
int cs_ddim_timesteps(int steps, int *out, cs_err *err);

const char *cs_spacing_name(cs_spacing sp);
int cs_spacing_parse(const char *name, cs_spacing *out); /* 0 or -1 */

#endif
