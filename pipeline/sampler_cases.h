/* sampler_cases.h — running the sd-tiny reference cases of the sampling side
 * (../shared/refs/sd-tiny/cases, ops "schedule", "kdiff_sampler", "ddim",
 * "txt2img") against our schedule, samplers and an SD model. Used by
 * tests/test_sampler.c and by `copyscope selftest`.
 *
 * Each output is compared as rel = max|out - ref| / max|ref| against the
 * README's tolerance (schedule 1e-5, sampler latents 1e-4, image_u8 within 1
 * count, reported as rel = max abs difference / 255). The reference noise
 * (noise, noise_steps) is injected through a cs_noise buffer. */
#ifndef CS_SAMPLER_CASES_H
#define CS_SAMPLER_CASES_H

#include "core/err.h"
#include "pipeline/model.h"

#define CS_CASE_MAX_CHECKS 16

typedef struct {
    char name[48]; /* output tensor */
    double rel;    /* measured */
    double tol;    /* accepted */
} cs_case_check;

typedef struct {
    int n;
    cs_case_check c[CS_CASE_MAX_CHECKS];
} cs_case_report;

/* 1 if op is one of ours. */
int cs_sampler_case_op(const char *op);

/* Runs the case in file (a .safetensors of cases/) with params_json (the
 * case's "params" object as JSON text). m: an SD model (the sd-tiny weights)
 * for every op but "schedule" (may be NULL there); txt2img also needs a
 * tokenizer (the model's vocab). Fills r; returns 0 when the case ran (check
 * r for pass/fail), -1 when it could not run. */
int cs_sampler_case_run(cs_model *m, const char *file, const char *op, const char *params_json,
                        cs_case_report *r, cs_err *err);

/* 1 when every check of r is within tolerance. */
int cs_case_report_ok(const cs_case_report *r);

#endif
