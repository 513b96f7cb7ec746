/* rng_cases.h — running the reference noise cases of ../shared/refs/rng
 * (README.md there) against our generators: torch CPU (MT19937 words,
 * uniforms, randn on both of torch's paths, call sequences), A1111's Philox
 * (raw words, randn, call sequences), the front ends' per-batch and per-step
 * noise (k-diffusion, A1111 CPU/NV with and without ENSD, ComfyUI), and the
 * whole A1111 Euler a txt2img on sd-tiny drawn with our own noise.
 *
 * Every check records the measured error and the README's tolerance:
 * "abs" = max |ours - ref| (0 = bit-exact; integer words are compared
 * exactly), "rel" = max |ours - ref| / max |ref| (sampler latents),
 * "u8" = max difference in 8-bit counts (image_u8, tolerance 1). */
#ifndef CS_RNG_CASES_H
#define CS_RNG_CASES_H

#include "core/err.h"
#include "pipeline/model.h"

typedef struct {
    char name[96];   /* "torch_cpu/randn/s42/1x4x8x8" */
    const char *metric; /* "abs" | "rel" | "u8" */
    double err, tol;
    long long n_diff; /* elements that differ at all */
    long long n;      /* elements compared */
} cs_rng_check;

typedef struct {
    int n, cap;
    cs_rng_check *c;
} cs_rng_report;

/* The generator and pipeline files of dir (no model needed). Appends to r;
 * returns 0 when every file was read (check r for pass/fail), -1 otherwise. */
int cs_rng_cases_run(const char *dir, cs_rng_report *r, cs_err *err);
/* euler_a_sdtiny.safetensors of dir on m (the sd-tiny model with its
 * vocabulary): prompt and settings from index.json's e2e_params. */
int cs_rng_e2e_run(cs_model *m, const char *dir, cs_rng_report *r, cs_err *err);

int cs_rng_report_ok(const cs_rng_report *r); /* every check within tolerance, n > 0 */
void cs_rng_report_free(cs_rng_report *r);

#endif
