/* schedule.c — SD 1.x training schedule, sigma <-> t, discretisations.
 * Arithmetic follows the upstream float32/float64 choices (PITFALLS 24-26) so
 * the sd-tiny schedule case matches to the last few ulps. */
#include "pipeline/schedule.h"

#include <math.h>
#include <string.h>

void cs_schedule_from_alphas(cs_schedule *s, const float *ac) {
    for (int i = 0; i < CS_TRAIN_STEPS; i++) {
        s->alphas_cumprod[i] = ac[i];
        s->sigmas[i] = sqrtf((1.0f - ac[i]) / ac[i]);
        s->log_sigmas[i] = logf(s->sigmas[i]);
    }
}

void cs_schedule_sd(cs_schedule *s) {
    const int n = CS_TRAIN_STEPS;
    double a = sqrt(0.00085), b = sqrt(0.012), step = (b - a) / (n - 1);
    float ac[CS_TRAIN_STEPS];
    double prod = 1.0;
    for (int i = 0; i < n; i++) {
        /* torch.linspace fills the first half from the start, the rest from the end */
        double v = i < n / 2 ? a + step * i : b - step * (n - 1 - i);
        prod *= 1.0 - v * v;
        ac[i] = (float)prod;
    }
    cs_schedule_from_alphas(s, ac);
}

float cs_schedule_sigma_min(const cs_schedule *s) { return s->sigmas[0]; }
float cs_schedule_sigma_max(const cs_schedule *s) { return s->sigmas[CS_TRAIN_STEPS - 1]; }

float cs_sigma_to_t(const cs_schedule *s, float sigma) {
    float ls = logf(sigma);
    /* low = last level with log_sigma >= log_sigmas[i] (0 when none), at most 998 */
    int low = 0;
    for (int i = 0; i < CS_TRAIN_STEPS; i++)
        if (ls >= s->log_sigmas[i]) low = i;
    if (low > CS_TRAIN_STEPS - 2) low = CS_TRAIN_STEPS - 2;
    float lo = s->log_sigmas[low], hi = s->log_sigmas[low + 1];
    float w = (lo - ls) / (lo - hi);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1.0f - w) * (float)low + w * (float)(low + 1);
}

float cs_t_to_sigma(const cs_schedule *s, float t) {
    int lo = (int)floorf(t), hi = (int)ceilf(t);
    if (lo < 0) lo = 0;
    if (hi > CS_TRAIN_STEPS - 1) hi = CS_TRAIN_STEPS - 1;
    float w = t - floorf(t);
    float ls = (1.0f - w) * s->log_sigmas[lo] + w * s->log_sigmas[hi];
    return expf(ls);
}

/* torch.linspace in float32 (start + step*i for the first half, end - ... after). */
static float linspace_f(float a, float b, int n, int i) {
    if (n == 1) return a;
    float step = (b - a) / (float)(n - 1);
    return i < n / 2 ? a + step * (float)i : b - step * (float)(n - 1 - i);
}

void cs_schedule_sigmas(const cs_schedule *s, cs_spacing sp, int n, float *out) {
    float smin = cs_schedule_sigma_min(s), smax = cs_schedule_sigma_max(s);
    for (int i = 0; i < n; i++) {
        switch (sp) {
        case CS_SPACING_KARRAS: {
            float min_inv = (float)pow((double)smin, 1.0 / 7.0);
            float max_inv = (float)pow((double)smax, 1.0 / 7.0);
            float ramp = linspace_f(0.0f, 1.0f, n, i);
            out[i] = powf(max_inv + ramp * (min_inv - max_inv), 7.0f);
            break;
        }
        case CS_SPACING_EXPONENTIAL:
            out[i] = expf(linspace_f((float)log((double)smax), (float)log((double)smin), n, i));
            break;
        default:
            out[i] = cs_t_to_sigma(s, linspace_f((float)(CS_TRAIN_STEPS - 1), 0.0f, n, i));
        }
    }
    out[n] = 0.0f;
}

int cs_ddim_timesteps(int steps, int *out, cs_err *err) {
    if (steps < 1 || steps > CS_TRAIN_STEPS / 2)
        return cs_fail(err, CS_EUSAGE, "ddim: steps %d outside 1..%d", steps, CS_TRAIN_STEPS / 2);
    int c = CS_TRAIN_STEPS / steps, k = 0;
    for (int t = 0; t < CS_TRAIN_STEPS; t += c) out[k++] = t + 1;
    if (out[k - 1] > CS_TRAIN_STEPS - 1) k--; /* steps 3: t = 1000 does not exist (PITFALLS 30) */
    return k;
}

static const char *spacing_names[] = {"discrete", "karras", "exponential"};

const char *cs_spacing_name(cs_spacing sp) { return spacing_names[sp]; }

int cs_spacing_parse(const char *name, cs_spacing *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, spacing_names[i])) {
            *out = (cs_spacing)i;
            return 0;
        }
    if (!strcmp(name, "default")) {
        *out = CS_SPACING_DISCRETE;
        return 0;
    }
    return -1;
}
