/* selftest.h — what `copyscope selftest` (cli/cmd_selftest.c) shares with
 * its case handlers (cli/selftest_ops.c: networks, cli/selftest_lora.c: a
 * LoRA reference folder). */
#ifndef CS_SELFTEST_H
#define CS_SELFTEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/err.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"

#define ST_MAX_CHECKS 16
#define TOL_NET 2e-5 /* single networks, cases/README.md */
#define TOL_LAT 1e-4 /* sampler / end-to-end latents */

typedef struct {
    char name[48];  /* output tensor */
    double max_abs; /* NAN when the handler does not measure it */
    double rel;     /* max|out - ref| / max|ref| */
    double tol;     /* accepted rel */
} st_check;

typedef struct {
    int n;
    st_check c[ST_MAX_CHECKS];
} st_result;

/* What handlers share; the model and tokenizers are loaded on first use. */
typedef struct {
    const char *refs;   /* the reference folder */
    const char *vocab;  /* --vocab, or NULL */
    char model[4096];   /* weights file or diffusers folder */
    char config[4096];  /* "" = none (the weights say it all) */
    double tol_scale;   /* 1; F16 weights: networks 1e-3 / 2e-5 looser */
    int f16;            /* the weights are F16/BF16 (tolerances from the README) */
    sd_model *sd;
    clip_tokenizer *tok, *tok2; /* HF rules; open_clip rules (HTML unescape) */
} st_ctx;

typedef int (*st_handler)(st_ctx *c, const char *file, const cJSON *params, st_result *r,
                          cs_err *err);

int st_need_sd(st_ctx *c, cs_err *err);
int st_need_tok(st_ctx *c, cs_err *err);
const float *st_case_get(const cs_safetensors *st, const char *name, size_t n, size_t *got,
                         cs_err *err);
void st_add_check(st_result *r, const char *name, const float *out, const float *ref, size_t n,
                  double tol);
int st_dim(const cs_safetensors *st, const char *name, int i);
/* the handler of a network op ("tokenize", "unet", ...), or NULL */
st_handler st_find_op(const char *op);
/* a LoRA reference folder (index.json with "lora_file"): every check */
int st_run_lora(st_ctx *c, const cJSON *index, const char *base, int verbose_fail,
                int *n_ok, int *n_fail);

#endif
