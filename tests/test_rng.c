/* Other tools' seeds: torch's CPU generator and A1111's Philox against
 * ../shared/refs/rng (every case, README tolerances), the front ends' batch
 * and per-step noise, and a whole A1111 Euler a txt2img on sd-tiny drawn with
 * our own noise. */
#include <unistd.h>

#include "core/image.h"
#include "core/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/model.h"
#include "pipeline/rng.h"
#include "pipeline/rng_cases.h"
#include "t.h"

#define RNGREFS "../shared/refs/rng"
#define SDTINY "../shared/refs/sd-tiny"
#define VOCAB "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz"

static void check_report(const cs_rng_report *r, int min_checks) {
    CHECKF(r->n >= min_checks, "%d checks, expected >= %d", r->n, min_checks);
    int exact = 0;
    for (int i = 0; i < r->n; i++) {
        const cs_rng_check *c = &r->c[i];
        if (getenv("CS_VERBOSE"))
            printf("  %-56s %s %.3g (tol %.3g) %lld/%lld differ\n", c->name, c->metric, c->err, c->tol,
                   c->n_diff, c->n);
        CHECKF(c->err <= c->tol, "%s: %s %.3g > %.3g (%lld of %lld differ)", c->name, c->metric, c->err,
               c->tol, c->n_diff, c->n);
        exact += c->n_diff == 0;
    }
    CHECK(cs_rng_report_ok(r));
    printf("  %d checks, %d bit-exact\n", r->n, exact);
}

static void test_ref_generators(void) {
    cs_rng_report r = {0};
    cs_err e = {0};
    int rc = cs_rng_cases_run(RNGREFS, &r, &e);
    CHECKF(rc == 0, "%s", e.msg);
    check_report(&r, 200);
    /* every stored torch AVX2 and Philox tensor is reproduced bit for bit
     * (only the scalar-kernel reference randn_default_isa may differ) */
    for (int i = 0; i < r.n; i++)
        if (!strstr(r.c[i].name, "default_isa")) CHECKF(r.c[i].n_diff == 0, "%s not bit-exact", r.c[i].name);
    cs_rng_report_free(&r);
}

static cs_model *g_sd;

static void test_ref_euler_a_sdtiny(void) {
    REQUIRE(g_sd);
    cs_rng_report r = {0};
    cs_err e = {0};
    int rc = cs_rng_e2e_run(g_sd, RNGREFS, &r, &e);
    CHECKF(rc == 0, "%s", e.msg);
    check_report(&r, 11);
    cs_rng_report_free(&r);
}

/* Properties the references imply, on other seeds and sizes. */
static void test_generator_properties(void) {
    float a[300], b[300];
    /* torch keeps only the low 32 bits of the seed; Philox uses all 64 */
    cs_torch_gen t;
    cs_torch_seed(&t, 7);
    cs_torch_randn(&t, a, 300);
    cs_torch_seed(&t, 7 + (1ULL << 32));
    cs_torch_randn(&t, b, 300);
    CHECK(!memcmp(a, b, sizeof a));
    cs_philox p;
    cs_philox_seed(&p, 7);
    cs_philox_randn(&p, a, 300);
    cs_philox_seed(&p, 7 + (1ULL << 32));
    cs_philox_randn(&p, b, 300);
    CHECK(memcmp(a, b, sizeof a));
    /* Philox: element i of a call does not depend on the call's size */
    cs_philox_seed(&p, 99);
    cs_philox_randn(&p, a, 300);
    cs_philox_seed(&p, 99);
    cs_philox_randn(&p, b, 17);
    CHECK(!memcmp(a, b, sizeof(float) * 17));
    /* torch: the tail of a non-multiple of 16 is redrawn: the first n - 16
     * values of randn(n) are those of randn(16 * floor(n / 16)) */
    cs_torch_seed(&t, 5);
    cs_torch_randn(&t, a, 300);
    cs_torch_seed(&t, 5);
    cs_torch_randn(&t, b, 288);
    CHECK(!memcmp(a, b, sizeof(float) * (300 - 16)));
    CHECK(memcmp(a + 284, b + 284, sizeof(float) * 4));
    /* moments of both generators on a large draw */
    enum { N = 1 << 18 };
    float *x = malloc(sizeof(float) * N);
    REQUIRE(x);
    for (int k = 0; k < 2; k++) {
        cs_noise_gen g;
        cs_noise_gen_init(&g, k ? CS_RNG_PHILOX : CS_RNG_TORCH_CPU, 20240601, 0);
        cs_noise_gen_randn(&g, x, N);
        double m = 0, v = 0;
        for (int i = 0; i < N; i++) m += x[i];
        m /= N;
        for (int i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
        v /= N;
        CHECKF(fabs(m) < 0.01 && fabs(v - 1) < 0.01, "%s: mean %g var %g", cs_rng_name(g.kind), m, v);
    }
    free(x);
}

static void test_noise_source(void) {
    /* ENSD re-seeds after the first fill only; without it the stream goes on */
    float a[64], b[64], c[64];
    for (int k = 0; k < CS_RNG_COUNT; k++) {
        cs_noise_gen g;
        cs_noise_gen_init(&g, (cs_rng_kind)k, 1000, 31337);
        cs_noise s = cs_noise_gen_source(&g);
        CHECK(s.fill(&s, a, 64) == 0);
        CHECK(s.fill(&s, b, 64) == 0);
        cs_noise_gen h;
        cs_noise_gen_init(&h, (cs_rng_kind)k, 1000 + 31337, 0);
        cs_noise_gen_randn(&h, c, 64);
        CHECKF(!memcmp(b, c, sizeof b), "%s: step noise after ENSD", cs_rng_name((cs_rng_kind)k));
        cs_noise_gen_init(&h, (cs_rng_kind)k, 1000, 0);
        cs_noise_gen_randn(&h, c, 64);
        CHECK(!memcmp(a, c, sizeof a));
    }
    /* names */
    cs_rng_kind k;
    CHECK(!cs_rng_parse("torch-cpu", &k) && k == CS_RNG_TORCH_CPU);
    CHECK(!cs_rng_parse("CPU", &k) && k == CS_RNG_TORCH_CPU);
    CHECK(!cs_rng_parse("NV", &k) && k == CS_RNG_PHILOX);
    CHECK(!cs_rng_parse("philox", &k) && k == CS_RNG_PHILOX);
    CHECK(!cs_rng_parse("xoshiro", &k) && k == CS_RNG_XOSHIRO);
    CHECK(cs_rng_parse("mt", &k) == -1);
    CHECK(!strcmp(cs_rng_a1111_name(CS_RNG_PHILOX), "NV"));
    CHECK(!strcmp(cs_rng_a1111_name(CS_RNG_TORCH_CPU), "CPU"));
    CHECK(cs_rng_a1111_name(CS_RNG_XOSHIRO) == NULL);
    CHECK((cs_rng_kind)0 == CS_RNG_PHILOX); /* zeroed settings = A1111's default */
}

/* The one-image generate path (the CLI's -p mode) re-creates A1111's images:
 * seed 20240601, Euler a, 8 steps, CFG 7.5, RNG CPU and NV, written as PNG
 * and stored; its pixels against the reference image_u8 within the README's
 * one count (latents agree to ~4e-6, so a pixel at a rounding edge may flip;
 * on this build they are identical). */
static void test_generate_recreates_a1111(void) {
    char *dir = t_tmpdir("rng");
    REQUIRE(dir);
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, RNGREFS "/euler_a_sdtiny.safetensors", &e) == 0);
    static const char *names[2] = {"cpu", "nv"};
    for (int k = 0; k < 2; k++) {
        char json[1024], out[4200], db[4200], ref_name[64];
        snprintf(json, sizeof json,
                 "{\"name\": \"generate\", \"prompts\": [{\"id\": \"image\", \"text\": \"a cozy wooden "
                 "cabin in a snowy forest at dusk, oil painting\", \"seed\": \"20240601\", \"steps\": 8, "
                 "\"guidance\": 7.5, \"sampler\": \"Euler a\", \"size\": 32, \"rng\": \"%s\"}]}", names[k]);
        snprintf(out, sizeof out, "%s/%s.png", dir, names[k]);
        snprintf(db, sizeof db, "%s/a.db", dir);
        cs_generate_opts o = {.model = SDTINY "/model.safetensors", .config = SDTINY "/config.json",
                              .vocab = VOCAB, .db = db, .suite_json = json, .out_file = out};
        cs_generate_stats gs;
        CHECKF(cs_generate(&o, &gs, &e) == 0, "%s", e.msg);
        CHECK(gs.generated == 1);
        cs_image im = {0};
        REQUIRE(cs_image_load(&im, out, NULL, &e) == 0);
        REQUIRE(im.w == 32 && im.h == 32);
        snprintf(ref_name, sizeof ref_name, "a1111_%s/image_u8", names[k]);
        const float *ref;
        int owned;
        REQUIRE(cs_safetensors_get_f32(&st, ref_name, 4, (const int64_t[]){2, 3, 32, 32}, &ref, &owned, &e) == 0);
        int md = 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 32 * 32; p++) {
                int d = abs((int)im.rgb[p * 3 + c] - (int)ref[c * 1024 + p]); /* batch image 0 */
                if (d > md) md = d;
            }
        CHECKF(md <= 1, "%s: max pixel difference %d", names[k], md);
        if (getenv("CS_VERBOSE")) printf("  %s: max pixel difference %d\n", names[k], md);
        if (owned) free((void *)ref);
        cs_image_free(&im);
        char *params = NULL;
        CHECK(cs_png_read_text(out, "parameters", &params, &e) == 0 && params);
        if (params) CHECKF(strstr(params, k ? ", RNG: NV," : ", RNG: CPU,") != NULL, "%s", params);
        free(params);
        unlink(out);
    }
    cs_safetensors_close(&st);
    char db[4200];
    snprintf(db, sizeof db, "%s/a.db", dir);
    unlink(db);
    rmdir(dir);
    free(dir);
}

/* `copyscope selftest --refs ../shared/refs/rng` runs them all and says so */
static void test_selftest_cli(void) {
    char cmd[2048], line[512] = "", last[512] = "";
    snprintf(cmd, sizeof cmd, "%s selftest --refs %s --vocab %s 2>&1", t_bin(), RNGREFS, VOCAB);
    FILE *f = popen(cmd, "r");
    REQUIRE(f);
    int fails = 0;
    while (fgets(line, sizeof line, f)) {
        fails += strstr(line, " FAIL") != NULL;
        snprintf(last, sizeof last, "%s", line);
    }
    int rc = pclose(f);
    CHECKF(rc == 0 && fails == 0, "rc %d, %d failing lines", rc, fails);
    int ok = 0, failed = -1;
    CHECKF(sscanf(last, "selftest: %d rng checks ok, %d failed", &ok, &failed) == 2 && ok >= 200 && failed == 0,
           "%s", last);
}

int main(void) {
    cs_err e = {0};
    cs_model_opts mo = {.config = SDTINY "/config.json", .vocab = VOCAB};
    if (cs_model_open(&g_sd, SDTINY "/model.safetensors", &mo, &e)) fprintf(stderr, "sd-tiny: %s\n", e.msg);
    RUN(test_ref_generators);
    RUN(test_generator_properties);
    RUN(test_noise_source);
    RUN(test_ref_euler_a_sdtiny);
    RUN(test_generate_recreates_a1111);
    RUN(test_selftest_cli);
    cs_model_free(g_sd);
    return T_DONE();
}
