/* Schedules, samplers, RNG: against the sd-tiny reference cases
 * (../shared/refs/sd-tiny/cases, README tolerances) with injected noise. */
#include <cjson/cJSON.h>
#include <math.h>

#include "core/image.h"
#include "pipeline/model.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"
#include "pipeline/sampler_cases.h"
#include "pipeline/schedule.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"
#include "t.h"

#define CASES "../shared/refs/sd-tiny/cases"
#define SDTINY "../shared/refs/sd-tiny"
#define VOCAB "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz"

static cJSON *g_index;
static cs_model *g_sd;

static const cJSON *find_case(const char *name) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g_index, "cases");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return c;
    }
    return NULL;
}

static void run_case(const char *name) {
    const cJSON *c = find_case(name);
    CHECKF(c != NULL, "case %s not in index.json", name);
    if (!c) return;
    const char *file = cJSON_GetObjectItemCaseSensitive(c, "file")->valuestring;
    const char *op = cJSON_GetObjectItemCaseSensitive(c, "op")->valuestring;
    char *params = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "params"));
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SDTINY, file);
    cs_case_report r;
    cs_err e = {0};
    int rc = cs_sampler_case_run(g_sd, path, op, params, &r, &e);
    free(params);
    CHECKF(rc == 0, "%s: %s", name, e.msg);
    if (rc) return;
    for (int i = 0; i < r.n; i++) {
        if (getenv("CS_VERBOSE")) printf("  %s %s rel %.3g (tol %.3g)\n", name, r.c[i].name, r.c[i].rel, r.c[i].tol);
        CHECKF(r.c[i].rel <= r.c[i].tol, "%s: %s rel %.3g > %.3g", name, r.c[i].name, r.c[i].rel, r.c[i].tol);
    }
    CHECK(cs_case_report_ok(&r));
}

static void test_schedule_case(void) { run_case("schedule"); }

static void test_schedule_props(void) {
    cs_schedule s;
    cs_schedule_sd(&s);
    CHECK(fabsf(cs_schedule_sigma_min(&s) - 0.0291675f) < 1e-6f);
    CHECK(fabsf(cs_schedule_sigma_max(&s) - 14.614642f) < 1e-4f);
    /* sigma_to_t inverts t_to_sigma */
    for (float t = 0; t <= 999; t += 37.25f) CHECK(fabsf(cs_sigma_to_t(&s, cs_t_to_sigma(&s, t)) - t) < 2e-3f);
    float sg[11];
    for (int sp = 0; sp < 3; sp++) {
        cs_schedule_sigmas(&s, (cs_spacing)sp, 10, sg);
        CHECK(sg[10] == 0.0f);
        CHECK(fabsf(sg[0] - 14.614642f) < 1e-3f);
        CHECK(fabsf(sg[9] - 0.0291675f) < 1e-4f);
        for (int i = 0; i < 10; i++) CHECK(sg[i] > sg[i + 1]);
    }
    int ts[1000];
    CHECK(cs_ddim_timesteps(8, ts, NULL) == 8 && ts[0] == 1 && ts[7] == 876);
    CHECK(cs_ddim_timesteps(30, ts, NULL) == 31);
    CHECK(cs_ddim_timesteps(3, ts, NULL) == 3 && ts[2] == 667);
    CHECK(cs_ddim_timesteps(0, ts, NULL) == -1);
}

static void test_rng_determinism(void) {
    enum { N = 100001 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    REQUIRE(a && b);
    cs_rng r;
    cs_rng_seed(&r, 123456789012345ULL);
    cs_rng_normal(&r, a, N);
    cs_rng_seed(&r, 123456789012345ULL);
    cs_rng_normal(&r, b, 7); /* split draws give the same stream */
    cs_rng_normal(&r, b + 7, N - 7);
    CHECK(!memcmp(a, b, sizeof(float) * N));
    cs_rng_seed(&r, 123456789012346ULL);
    cs_rng_normal(&r, b, N);
    CHECK(memcmp(a, b, sizeof(float) * N));
    double m = 0, v = 0, k4 = 0;
    for (int i = 0; i < N; i++) m += a[i];
    m /= N;
    for (int i = 0; i < N; i++) {
        v += (a[i] - m) * (a[i] - m);
        k4 += pow(a[i] - m, 4);
    }
    v /= N;
    k4 /= N * v * v;
    CHECKF(fabs(m) < 0.01 && fabs(v - 1) < 0.015 && fabs(k4 - 3) < 0.1, "m %g v %g kurt %g", m, v, k4);
    /* xoshiro256** reference: seed state {1,2,3,4} gives 11520, 0, 1509978240, 1215971899390074240 */
    cs_rng x = {.s = {1, 2, 3, 4}};
    CHECK(cs_rng_u64(&x) == 11520ULL);
    CHECK(cs_rng_u64(&x) == 0ULL);
    CHECK(cs_rng_u64(&x) == 1509978240ULL);
    CHECK(cs_rng_u64(&x) == 1215971899390074240ULL);
    free(a);
    free(b);
}

static void test_euler_karras(void) { run_case("sampler_euler_karras"); }
static void test_euler_discrete(void) { run_case("sampler_euler_discrete"); }
static void test_heun_karras(void) { run_case("sampler_heun_karras"); }
static void test_heun_discrete(void) { run_case("sampler_heun_discrete"); }
static void test_dpmpp_2m_karras(void) { run_case("sampler_dpmpp_2m_karras"); }
static void test_dpmpp_2m_discrete(void) { run_case("sampler_dpmpp_2m_discrete"); }
static void test_euler_a_karras(void) { run_case("sampler_euler_ancestral_karras"); }
static void test_euler_a_discrete(void) { run_case("sampler_euler_ancestral_discrete"); }
static void test_ddim(void) { run_case("sampler_ddim"); }
static void test_txt2img_e2e(void) { run_case("txt2img_e2e"); }

/* Long prompts (A1111's chunks): the UNet attends to 77 x k context tokens.
 * Attention over a context repeated twice equals attention over it once
 * (every key twice, every weight halved); a batch of a long and a short
 * prompt equals the two run alone; words after the 75th token count. */
static void test_long_prompt_context(void) {
    REQUIRE(g_sd);
    sd_model *sd;
    clip_tokenizer *tok;
    cs_err e = {0};
    REQUIRE(sd_load(&sd, SDTINY "/model.safetensors", SDTINY "/config.json", &e) == 0);
    REQUIRE(clip_tokenizer_load(&tok, VOCAB, &e) == 0);
    int D = sd_context_dim(sd), h = 8, w = 8;
    size_t n = (size_t)4 * h * w;
    int32_t ids[77];
    REQUIRE(clip_tokenize(tok, "a red fox in the snow", ids, &e) >= 0);
    float *c1 = malloc(sizeof(float) * 77 * D * 2), *x = malloc(sizeof(float) * n * 2);
    float *e1 = malloc(sizeof(float) * n * 2), *e2 = malloc(sizeof(float) * n * 2);
    REQUIRE(c1 && x && e1 && e2);
    REQUIRE(sd_text_encode(sd, ids, 1, 1, c1, &e) == 0);
    memcpy(c1 + 77 * D, c1, sizeof(float) * 77 * D);
    cs_rng r;
    cs_rng_seed(&r, 3);
    cs_rng_normal(&r, x, n);
    float t = 500;
    REQUIRE(sd_unet_eps(sd, x, &t, c1, 1, h, w, e1, &e) == 0);
    REQUIRE(sd_unet_eps_ctx(sd, x, &t, c1, 154, 1, h, w, e2, &e) == 0);
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs(e1[i] - e2[i]));
        mr = fmax(mr, fabs(e1[i]));
    }
    CHECKF(md <= 1e-5 * mr, "repeated context: rel %g", md / mr);
    /* a long prompt (two chunks) beside the short unconditional one */
    char *lp = malloc(4096), *lp2 = malloc(4096);
    REQUIRE(lp && lp2);
    lp[0] = 0;
    for (int i = 0; i < 10; i++) strcat(lp, "a red fox in the snow, ");
    strcpy(lp2, lp);
    strcat(lp, "at night");
    strcat(lp2, "at noon");
    cs_cond *cl, *cl2, *cu, *both[2];
    REQUIRE(g_sd->cond_new(g_sd, lp, &cl, &e) == 0 && g_sd->cond_new(g_sd, lp2, &cl2, &e) == 0 &&
            g_sd->cond_new(g_sd, "", &cu, &e) == 0);
    memcpy(x + n, x, sizeof(float) * n);
    both[0] = cu, both[1] = cl;
    REQUIRE(cs_model_denoise(g_sd, x, 3.0f, both, 2, h, w, e1, NULL, &e) == 0);
    REQUIRE(cs_model_denoise(g_sd, x, 3.0f, &cu, 1, h, w, e2, NULL, &e) == 0);
    REQUIRE(cs_model_denoise(g_sd, x, 3.0f, &cl, 1, h, w, e2 + n, NULL, &e) == 0);
    for (int b = 0; b < 2; b++) { /* equal up to float rounding (buffer alignment moves SIMD paths) */
        double d = 0, m = 0;
        for (size_t i = 0; i < n; i++) {
            d = fmax(d, fabs(e1[b * n + i] - e2[b * n + i]));
            m = fmax(m, fabs(e2[b * n + i]));
        }
        CHECKF(d <= 1e-5 * m, "batch image %d differs by %g (max %g) from its own call", b, d, m);
    }
    REQUIRE(cs_model_denoise(g_sd, x, 3.0f, &cl2, 1, h, w, e2, NULL, &e) == 0);
    CHECK(memcmp(e1 + n, e2, sizeof(float) * n)); /* "night" vs "noon", past token 75 */
    g_sd->cond_free(g_sd, cl);
    g_sd->cond_free(g_sd, cl2);
    g_sd->cond_free(g_sd, cu);
    free(lp);
    free(lp2);
    free(c1);
    free(x);
    free(e1);
    free(e2);
    clip_tokenizer_free(tok);
    sd_free(sd);
}

int main(void) {
    uint8_t *buf;
    size_t len;
    cs_err e = {0};
    if (cs_read_file(CASES "/index.json", &buf, &len, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    g_index = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    cs_model_opts mo = {.config = SDTINY "/config.json", .vocab = VOCAB};
    if (cs_model_open(&g_sd, SDTINY "/model.safetensors", &mo, &e)) fprintf(stderr, "sd-tiny: %s\n", e.msg);
    RUN(test_rng_determinism);
    RUN(test_schedule_props);
    RUN(test_schedule_case);
    RUN(test_euler_karras);
    RUN(test_euler_discrete);
    RUN(test_heun_karras);
    RUN(test_heun_discrete);
    RUN(test_dpmpp_2m_karras);
    RUN(test_dpmpp_2m_discrete);
    RUN(test_euler_a_karras);
    RUN(test_euler_a_discrete);
    RUN(test_ddim);
    RUN(test_txt2img_e2e);
    RUN(test_long_prompt_context);
    cs_model_free(g_sd);
    cJSON_Delete(g_index);
    return T_DONE();
}
