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

/* 1 when dir is a reference-noise folder (../shared/refs/rng layout). */
int selftest_is_rng_refs(const char *dir);
/* Runs every case of a reference-noise folder (pipeline/rng_cases.h) and
 * prints one line per check; the A1111 Euler a case runs on the SD model in
 * base (model.safetensors, config.json) with vocab. Returns the number of
 * checks above tolerance, or -1 (err set) when the folder could not be run. */
int selftest_rng(const char *dir, const char *base, const char *vocab, cs_err *err);

#endif
