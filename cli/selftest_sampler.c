/* selftest_sampler.c — see selftest_sampler.h. SDXL's reference cases come
 * from sgm's pipeline (pipeline/sgm_cases.c): for those the model's
 * denoiser snaps sigma to the training grid as sgm's DiscreteDenoiser does. */
#include "cli/selftest_sampler.h"

#include <string.h>

#include "pipeline/model.h"
#include "pipeline/sgm_cases.h"

static cs_model *g_model;

int selftest_sampler_case(const char *weights, const char *config, const char *vocab,
                          const char *file, const char *op, const char *params_json,
                          cs_case_report *r, cs_err *err) {
    int sgm = cs_sgm_case_is(file, op, params_json);
    if (strcmp(op, "schedule") && !g_model) {
        cs_model_opts o = {.config = config, .vocab = vocab};
        if (cs_model_sd_open(&g_model, weights, &o, err)) return -1;
    }
    if (g_model) g_model->quantize_t = sgm;
    if (sgm) return cs_sgm_case_run(g_model, file, op, params_json, r, err);
    return cs_sampler_case_run(g_model, file, op, params_json, r, err);
}

void selftest_sampler_done(void) {
    cs_model_free(g_model);
    g_model = NULL;
}
