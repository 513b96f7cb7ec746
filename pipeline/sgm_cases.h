/* sgm_cases.h — the SDXL reference cases of the sampling side
 * (../shared/refs/sdxl-tiny/cases ops "schedule", "sampler", "txt2img"),
 * which come from Stability-AI's generative-models (sgm) pipeline rather
 * than k-diffusion: LegacyDDPMDiscretization / EDMDiscretization sigmas, a
 * DiscreteDenoiser that snaps sigma to the training grid, x_init = noise *
 * sqrt(1 + sigma_0^2), and sgm's Euler, Euler ancestral (a draw on every
 * step) and DPM++ 2M steps. Used by `copyscope selftest` and the tests. */
#ifndef CS_SGM_CASES_H
#define CS_SGM_CASES_H

#include "core/err.h"
#include "pipeline/model.h"
#include "pipeline/sampler_cases.h"

/* 1 when the case is sgm's (an SDXL schedule case, op "sampler", or a
 * txt2img case with a "discretization" param). */
int cs_sgm_case_is(const char *file, const char *op, const char *params_json);
/* As cs_sampler_case_run; m: an SDXL model (may be NULL for "schedule"). */
int cs_sgm_case_run(cs_model *m, const char *file, const char *op, const char *params_json,
                    cs_case_report *r, cs_err *err);

#endif
