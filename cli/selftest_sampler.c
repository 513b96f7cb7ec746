/* selftest_sampler.c — see selftest_sampler.h. SDXL's reference cases come
 * from sgm's pipeline (pipeline/sgm_cases.c): for those the model's
 * denoiser snaps sigma to the training grid as sgm's DiscreteDenoiser does. */
#include "cli/selftest_sampler.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/model.h"
#include "pipeline/rng_cases.h"
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

int selftest_is_rng_refs(const char *dir) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/torch_cpu.safetensors", dir);
    if (stat(p, &sb)) return 0;
    snprintf(p, sizeof p, "%s/philox.safetensors", dir);
    return stat(p, &sb) == 0;
}

int selftest_rng(const char *dir, const char *base, const char *vocab, cs_err *err) {
    cs_rng_report r = {0};
    if (cs_rng_cases_run(dir, &r, err)) {
        cs_rng_report_free(&r);
        return -1;
    }
    char w[4200], c[4200], e2e[4200];
    snprintf(w, sizeof w, "%s/model.safetensors", base);
    snprintf(c, sizeof c, "%s/config.json", base);
    snprintf(e2e, sizeof e2e, "%s/euler_a_sdtiny.safetensors", dir);
    struct stat sb;
    int skipped_e2e = 0;
    if (stat(e2e, &sb)) {
        skipped_e2e = -1; /* no such case in this folder */
    } else if (!vocab) {
        skipped_e2e = 1;
    } else {
        cs_model *m;
        cs_model_opts o = {.config = c, .vocab = vocab};
        if (cs_model_sd_open(&m, w, &o, err)) {
            cs_rng_report_free(&r);
            return -1;
        }
        int rc = cs_rng_e2e_run(m, dir, &r, err);
        cs_model_free(m);
        if (rc) {
            cs_rng_report_free(&r);
            return -1;
        }
    }
    int fails = 0, exact = 0;
    printf("%-58s %-6s %11s %9s %15s\n", "case", "metric", "error", "tol", "differing");
    for (int i = 0; i < r.n; i++) {
        const cs_rng_check *k = &r.c[i];
        int pass = k->err <= k->tol;
        fails += !pass;
        exact += k->n_diff == 0;
        char nd[40];
        snprintf(nd, sizeof nd, "%lld/%lld", k->n_diff, k->n);
        printf("%-58s %-6s %11.3g %9.2g %15s  %s\n", k->name, k->metric, k->err, k->tol, nd, pass ? "ok" : "FAIL");
    }
    printf("selftest: %d rng checks ok, %d failed (%d bit-exact)%s\n", r.n - fails, fails, exact,
           skipped_e2e == 1 ? "; euler_a_sdtiny skipped: give --vocab" : "");
    cs_rng_report_free(&r);
    return fails;
}
