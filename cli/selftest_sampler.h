/* selftest_sampler.h — the selftest handler of the sampler-side cases
 * ("schedule", "kdiff_sampler", "ddim", "txt2img"; pipeline/sampler_cases.h),
 * called from cli/cmd_selftest.c's handler table. */
#ifndef CS_SELFTEST_SAMPLER_H
#define CS_SELFTEST_SAMPLER_H

#include "core/err.h"
#include "pipeline/sampler_cases.h"

/* Runs one case; the SD model (weights/config/vocab) is opened on first use
 * and kept until selftest_sampler_done(). */
int selftest_sampler_case(const char *weights, const char *config, const char *vocab,
                          const char *file, const char *op, const char *params_json,
                          cs_case_report *r, cs_err *err);
void selftest_sampler_done(void);

#endif
