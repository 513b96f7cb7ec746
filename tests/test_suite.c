/* Prompt suites and `generate` input checks: every bad input of issue 4 gives
 * a clear error naming the file/JSON path before any work, and leaves no rows
 * (the store is not even created). Plus a good suite end to end on sd-tiny:
 * PNGs with A1111 parameters, rows, and a re-run that skips what exists. */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/store.h"
#include "pipeline/generate.h"
#include "pipeline/suite.h"
#include "t.h"

#define SDTINY "../shared/refs/sd-tiny"
#define MODEL SDTINY "/model.safetensors"
#define CONFIG SDTINY "/config.json"
#define VOCAB "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz"
#define GRIN "../shared/data/twemoji-64/img/1f600.png"

static char *g_dir;

static char *path_in(const char *name) {
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/%s", g_dir, name);
    return p;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Parses text as a suite; returns the error message ("" when it parsed). */
static const char *parse_err(const char *text) {
    static cs_err e;
    cs_suite s;
    memset(&e, 0, sizeof e);
    if (cs_suite_parse(&s, text, strlen(text), "s.json", &e) == 0) {
        cs_suite_free(&s);
        return "";
    }
    return e.msg;
}

#define BASE "\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\"}"

static void test_suite_parses_defaults_and_overrides(void) {
    const char *j = "{\"name\": \"t\", \"model\": \"m.safetensors\", \"defaults\": {\"sampler\": \"heun\", "
                    "\"steps\": 12, \"guidance\": 5, \"size\": [64, 32], \"samples\": 3, \"seed\": 10},"
                    "\"prompts\": [{\"id\": \"a\", \"text\": \"x\"}, {\"id\": \"b\", \"text\": \"y\", "
                    "\"negative\": \"n\", \"sampler\": \"ddim\", \"eta\": 0.5, \"seeds\": [1, \"18446744073709551615\"]}],"
                    "\"completions\": [{\"id\": \"c\", \"ref\": \"r.png\", \"rect\": [1, 2, 3, 4]},"
                    " {\"id\": \"d\", \"ref\": \"/abs/r.png\", \"strength\": 0.25}]}";
    cs_suite s;
    cs_err e = {0};
    REQUIRE(cs_suite_parse(&s, j, strlen(j), "dir/s.json", &e) == 0);
    REQUIRE(s.n == 4);
    CHECK(!strcmp(s.model, "dir/m.safetensors"));
    cs_suite_item *a = &s.items[0], *b = &s.items[1], *c = &s.items[2], *d = &s.items[3];
    CHECK(a->s.opts.sampler == CS_SAMPLER_HEUN && a->s.opts.steps == 12 && a->s.opts.guidance == 5);
    CHECK(a->s.width == 64 && a->s.height == 32 && a->s.samples == 3);
    CHECK(a->s.seeds[0] == 10 && a->s.seeds[2] == 12);
    CHECK(b->s.opts.sampler == CS_SAMPLER_DDIM && b->s.opts.eta == 0.5f && !strcmp(b->negative, "n"));
    CHECK(b->s.samples == 2 && b->s.seeds[1] == UINT64_MAX);
    CHECK(c->kind == CS_TASK_COMPLETION && c->has_rect && c->rect[3] == 4 && !strcmp(c->ref, "dir/r.png"));
    CHECK(d->kind == CS_TASK_IMG2IMG && d->s.opts.strength == 0.25f && !strcmp(d->ref, "/abs/r.png"));
    CHECK(strlen(s.sha256) == 64);
    cs_suite_free(&s);
}

/* The suites shipped in suites/ stay valid and point at files that exist. */
static void test_shipped_suites_parse(void) {
    const char *names[] = {"suites/sd-tiny.json", "suites/twemoji-empirical.json"};
    for (int i = 0; i < 2; i++) {
        cs_suite s;
        cs_err e = {0};
        CHECKF(cs_suite_load(&s, names[i], &e) == 0, "%s", e.msg);
        if (e.code) continue;
        CHECK(s.n >= 5 && s.model);
        if (strcmp(s.model, "empirical")) CHECKF(exists(s.model), "%s", s.model);
        for (int j = 0; j < s.n; j++)
            if (s.items[j].ref) CHECKF(exists(s.items[j].ref), "%s", s.items[j].ref);
        cs_suite_free(&s);
    }
}

static void test_bad_suite_not_json(void) {
    const char *m = parse_err("{\"name\": \"t\",\n \"prompts\": [ {\"id\": }");
    CHECKF(strstr(m, "s.json: not valid JSON (line 2)") != NULL, "%s", m);
}

static void test_bad_suite_missing_field(void) {
    const char *m = parse_err("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\"}, {\"id\": \"b\"}]}");
    CHECKF(!strcmp(m, "s.json: prompts[1].text: missing"), "%s", m);
    m = parse_err("{\"prompts\": [{\"id\": \"a\", \"text\": \"x\"}]}");
    CHECKF(!strcmp(m, "s.json: name: missing"), "%s", m);
    m = parse_err("{" BASE ", {\"id\": \"c\", \"text\": \"x\"}], \"completions\": [{\"id\": \"q\", \"ref\": \"r.png\"}]}");
    CHECKF(strstr(m, "completions[0]: needs a mask, a rect or a strength") != NULL, "%s", m);
}

static void test_bad_suite_mistyped_field(void) {
    const char *m = parse_err("{" BASE ", {\"id\": \"b\", \"text\": \"y\", \"stpes\": 4}]}");
    CHECKF(!strcmp(m, "s.json: prompts[1].stpes: unknown field"), "%s", m);
    m = parse_err("{" BASE "], \"defaults\": {\"steps\": \"ten\"}}");
    CHECKF(!strcmp(m, "s.json: defaults.steps: must be an integer"), "%s", m);
    m = parse_err("{" BASE ", {\"id\": \"b\", \"text\": 5}]}");
    CHECKF(!strcmp(m, "s.json: prompts[1].text: must be a string"), "%s", m);
    m = parse_err("{" BASE ", {\"id\": \"a\", \"text\": \"dup\"}]}");
    CHECKF(strstr(m, "prompts[1].id: \"a\" repeats prompts[0].id") != NULL, "%s", m);
}

static void test_bad_suite_unknown_sampler(void) {
    const char *m = parse_err("{" BASE ", {\"id\": \"b\", \"text\": \"y\", \"sampler\": \"euler_x\"}]}");
    CHECKF(strstr(m, "s.json: prompts[1].sampler: unknown sampler \"euler_x\"") == m, "%s", m);
    m = parse_err("{" BASE "], \"defaults\": {\"schedule\": \"cosine\"}}");
    CHECKF(strstr(m, "s.json: defaults.schedule: unknown schedule \"cosine\"") == m, "%s", m);
}

static void test_bad_suite_steps(void) {
    const char *m = parse_err("{" BASE ", {\"id\": \"b\", \"text\": \"y\"}, {\"id\": \"c\", \"text\": \"y\"},"
                              " {\"id\": \"d\", \"text\": \"y\", \"steps\": 0}]}");
    CHECKF(!strcmp(m, "s.json: prompts[3].steps: must be > 0"), "%s", m);
    m = parse_err("{" BASE "], \"defaults\": {\"steps\": -5}}");
    CHECKF(!strcmp(m, "s.json: defaults.steps: must be > 0"), "%s", m);
}

/* Runs generate on a suite text; returns its rc and leaves the message in e. */
static int gen(const char *suite_text, const char *model, const char *out, cs_err *e) {
    char *sp = path_in("s.json"), *db = path_in("bad.db"), *od = path_in("out");
    write_text(sp, suite_text);
    cs_generate_opts o = {.suite = sp, .model = model, .config = CONFIG, .vocab = VOCAB,
                          .out = out ? out : od, .db = db};
    memset(e, 0, sizeof *e);
    int rc = cs_generate(&o, NULL, e);
    free(sp);
    free(db);
    free(od);
    return rc;
}

static int bad_db_exists(void) {
    char *db = path_in("bad.db");
    int r = exists(db);
    free(db);
    return r;
}

static void test_bad_size_not_multiple_of_8(void) {
    cs_err e;
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"size\": 36}]}", MODEL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "s.json: prompts[0].size: 36x36 is not a multiple of 8 (SD)") != NULL, "%s", e.msg);
    CHECK(!bad_db_exists());
}

static void test_bad_model_path(void) {
    cs_err e;
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"size\": 32}]}",
              "/nonexistent/model.safetensors", NULL, &e) == -1);
    CHECKF(!strcmp(e.msg, "/nonexistent/model.safetensors: model file not found"), "%s", e.msg);
    CHECK(!bad_db_exists());
    /* no model anywhere */
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\"}]}", NULL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "model: missing") != NULL, "%s", e.msg);
    /* a file that is not a checkpoint: fails while loading, still before any row */
    char *junk = path_in("junk.safetensors");
    write_text(junk, "not a model");
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"size\": 32}]}", junk, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "junk.safetensors") != NULL, "%s", e.msg);
    CHECK(!bad_db_exists());
    free(junk);
}

static void test_bad_out_folder(void) {
    char *file = path_in("a-file"), out[4300];
    write_text(file, "x");
    snprintf(out, sizeof out, "%s/sub", file); /* a folder below a regular file */
    cs_err e;
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"size\": 32}]}", MODEL, out, &e) == -1);
    CHECKF(strstr(e.msg, "a-file/sub: cannot create") != NULL, "%s", e.msg);
    CHECK(!bad_db_exists());
    free(file);
}

static void test_bad_mask_size(void) {
    /* a 32x32 mask for a 64x64 reference */
    cs_image mk;
    cs_err e = {0};
    REQUIRE(cs_image_alloc(&mk, 32, 32, &e) == 0);
    memset(mk.rgb, 255, 32 * 32 * 3);
    char *mp = path_in("mask.png"), text[9000];
    REQUIRE(cs_image_save_png(&mk, mp, NULL, 0, &e) == 0);
    cs_image_free(&mk);
    char grin[4096];
    REQUIRE(realpath(GRIN, grin));
    snprintf(text, sizeof text,
             "{\"name\": \"t\", \"completions\": [{\"id\": \"c\", \"ref\": \"%s\", \"mask\": \"mask.png\", \"size\": 32}]}",
             grin);
    CHECK(gen(text, MODEL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "s.json: completions[0].mask: ") && strstr(e.msg, "mask.png is 32x32, but the reference") &&
               strstr(e.msg, "is 64x64"), "%s", e.msg);
    CHECK(!bad_db_exists());
    free(mp);
}

static void test_bad_generate_reports_suite_errors(void) {
    cs_err e;
    CHECK(gen("[1, 2", MODEL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "s.json: not valid JSON") != NULL, "%s", e.msg);
    CHECK(gen("{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"sampler\": \"lms\"}]}", MODEL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "prompts[0].sampler: unknown sampler") != NULL, "%s", e.msg);
    CHECK(!bad_db_exists());
}

/* issue 20: the generator, ENSD and A1111's sampler/schedule names */
#define P1 "{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\""
static void test_suite_rng_and_a1111_names(void) {
    const char *j = "{\"name\": \"t\", \"defaults\": {\"rng\": \"CPU\", \"ensd\": 31337},"
                    "\"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"sampler\": \"DPM++ 2M Karras\"},"
                    " {\"id\": \"b\", \"text\": \"y\", \"rng\": \"philox\", \"sampler\": \"Euler a\","
                    " \"scheduler\": \"Exponential\"},"
                    " {\"id\": \"c\", \"text\": \"z\", \"rng\": \"xoshiro\", \"sampler\": \"heun\","
                    " \"schedule\": \"Automatic\", \"ensd\": 0}]}";
    cs_suite s;
    cs_err e = {0};
    REQUIRE(cs_suite_parse(&s, j, strlen(j), "s.json", &e) == 0);
    cs_gen_settings *a = &s.items[0].s, *b = &s.items[1].s, *c = &s.items[2].s;
    CHECK(a->rng == CS_RNG_TORCH_CPU && a->ensd == 31337);
    CHECK(a->opts.sampler == CS_SAMPLER_DPMPP_2M && a->opts.spacing == CS_SPACING_KARRAS);
    CHECK(b->rng == CS_RNG_PHILOX && b->ensd == 31337);
    CHECK(b->opts.sampler == CS_SAMPLER_EULER_A && b->opts.spacing == CS_SPACING_EXPONENTIAL);
    CHECK(c->rng == CS_RNG_XOSHIRO && c->ensd == 0);
    CHECK(c->opts.sampler == CS_SAMPLER_HEUN && c->opts.spacing == CS_SPACING_DISCRETE);
    cs_suite_free(&s);
    /* "Automatic" is the sampler's A1111 default: Karras for DPM++ 2M */
    const char *au = "{\"name\": \"t\", \"defaults\": {\"schedule\": \"Automatic\"}, \"prompts\": ["
                     "{\"id\": \"a\", \"text\": \"x\", \"sampler\": \"DPM++ 2M\"},"
                     "{\"id\": \"b\", \"text\": \"y\", \"sampler\": \"Euler a\"},"
                     "{\"id\": \"c\", \"text\": \"z\", \"sampler\": \"DPM++ 2M\", \"schedule\": \"Uniform\"}]}";
    REQUIRE(cs_suite_parse(&s, au, strlen(au), "s.json", &e) == 0);
    CHECK(s.items[0].s.opts.spacing == CS_SPACING_KARRAS && s.items[1].s.opts.spacing == CS_SPACING_DISCRETE &&
          s.items[2].s.opts.spacing == CS_SPACING_DISCRETE);
    cs_suite_free(&s);
    /* the default generator is A1111's default (NV Philox) */
    const char *d = "{" BASE "]}";
    REQUIRE(cs_suite_parse(&s, d, strlen(d), "s.json", &e) == 0);
    CHECK(s.items[0].s.rng == CS_RNG_PHILOX && s.items[0].s.ensd == 0);
    cs_suite_free(&s);
    CHECK(strstr(parse_err(P1 ", \"rng\": \"mt\"}]}"), "s.json: prompts[0].rng: unknown generator \"mt\"") != NULL);
    CHECK(strstr(parse_err(P1 ", \"rng\": 3}]}"), "prompts[0].rng: must be a string") != NULL);
    CHECK(strstr(parse_err(P1 ", \"ensd\": -1}]}"), "prompts[0].ensd: must be") != NULL);
    CHECK(strstr(parse_err(P1 ", \"sampler\": \"DPM++ 2M SDE\"}]}"), "unknown sampler \"DPM++ 2M SDE\"") != NULL);
    CHECK(strstr(parse_err(P1 ", \"sampler\": \"DDIM Karras\"}]}"), "unknown sampler") != NULL);
    CHECK(strstr(parse_err(P1 ", \"schedule\": \"Beta\"}]}"), "prompts[0].schedule: unknown schedule") != NULL);
    /* the sampler names round-trip through A1111's spelling */
    for (int k = 0; k < CS_SAMPLER_COUNT; k++) {
        cs_sampler_kind got;
        CHECK(!cs_sampler_parse(cs_sampler_a1111_name((cs_sampler_kind)k), &got) && got == (cs_sampler_kind)k);
    }
}

static void test_a1111_parameters(void) {
    char *p = cs_a1111_parameters("a cat", "blurry", 20, "Euler a", "discrete", 7.5f, 123, 512, 512,
                                  "0123456789abcdef", "v1-5", 0, 0, "NV", 0);
    CHECKF(!strcmp(p, "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 123, "
                      "Size: 512x512, Model hash: 0123456789, Model: v1-5, RNG: NV, Version: copyscope"), "%s", p);
    free(p);
    p = cs_a1111_parameters("x", NULL, 8, "DPM++ 2M", "karras", 3, 18446744073709551615ULL, 64, 32, "ab", "m", 0.5f, 0,
                            "CPU", 31337);
    CHECKF(!strcmp(p, "x\nSteps: 8, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 3, Seed: 18446744073709551615, "
                      "Size: 64x32, Model hash: ab, Model: m, Denoising strength: 0.5, ENSD: 31337, RNG: CPU, "
                      "Version: copyscope"), "%s", p);
    free(p);
    /* DPM++ 2M on the discrete schedule says so: A1111's Automatic would be Karras */
    p = cs_a1111_parameters("x", NULL, 8, "DPM++ 2M", "discrete", 3, 1, 64, 64, "ab", "m", 0, 0, "NV", 0);
    CHECKF(strstr(p, "Sampler: DPM++ 2M, Schedule type: Uniform, CFG scale: 3,") != NULL, "%s", p);
    free(p);
}

static int64_t count_rows(const char *db, const char *table) {
    cs_store *s;
    cs_err e = {0};
    if (cs_store_open_readonly(&s, db, &e)) return -1;
    sqlite3_stmt *st;
    char q[128];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", table);
    int64_t n = -1;
    if (!cs_store_prepare(s, &st, q, &e)) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    cs_store_close(s);
    return n;
}

/* The whole path on sd-tiny: txt2img with two samplers, img2img, completion;
 * rows, files, sha256, parameters chunk; a re-run skips; -n adds one more. */
static void test_generate_sd_tiny_end_to_end(void) {
    char grin[4096];
    REQUIRE(realpath(GRIN, grin));
    char text[9000];
    snprintf(text, sizeof text,
             "{\"name\": \"e2e\", \"defaults\": {\"steps\": 4, \"size\": 32, \"samples\": 2, \"seed\": 5},"
             "\"prompts\": [{\"id\": \"fox\", \"text\": \"a red fox\", \"negative\": \"blurry\"},"
             "{\"id\": \"cab\", \"text\": \"a cabin\", \"sampler\": \"ddim\", \"samples\": 1}],"
             "\"completions\": [{\"id\": \"fill\", \"ref\": \"%s\", \"rect\": [0, 32, 64, 32], \"samples\": 1},"
             "{\"id\": \"i2i\", \"ref\": \"%s\", \"strength\": 0.5, \"samples\": 1}]}", grin, grin);
    char *sp = path_in("good.json"), *db = path_in("good.db"), *od = path_in("good-out");
    write_text(sp, text);
    cs_generate_opts o = {.suite = sp, .model = MODEL, .config = CONFIG, .vocab = VOCAB, .out = od, .db = db};
    cs_generate_stats st;
    cs_err e = {0};
    CHECKF(cs_generate(&o, &st, &e) == 0, "%s", e.msg);
    CHECK(st.generated == 5 && st.skipped == 0);
    CHECK(st.steps == 2 * 4 + 4 + 4 + 2);
    CHECK(count_rows(db, "runs") == 1 && count_rows(db, "prompts") == 4 && count_rows(db, "generations") == 5);
    /* the first image: its file, sha256 and parameters */
    char png[8000];
    snprintf(png, sizeof png, "%s/fox-1-6.png", st.out_dir);
    char sha[65];
    CHECK(cs_sha256_file_hex(png, sha, &e) == 0);
    cs_store *s;
    REQUIRE(cs_store_open_readonly(&s, db, &e) == 0);
    sqlite3_stmt *q;
    REQUIRE(cs_store_prepare(s, &q, "SELECT sha256, whitebox, whitebox_json FROM generations WHERE path = ?1", &e) == 0);
    sqlite3_bind_text(q, 1, png, -1, SQLITE_STATIC);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK(!strcmp((const char *)sqlite3_column_text(q, 0), sha));
    CHECK(sqlite3_column_double(q, 1) > 0); /* guided: |eps_c - eps_u| > 0 */
    CHECK(strstr((const char *)sqlite3_column_text(q, 2), "\"eps_diff_norm\":[") != NULL);
    sqlite3_finalize(q);
    cs_store_close(s);
    char *params = NULL;
    CHECK(cs_png_read_text(png, "parameters", &params, &e) == 0 && params);
    if (params)
        CHECKF(strstr(params, "a red fox\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7.5, "
                              "Seed: 6, Size: 32x32, Model hash: ") == params, "%s", params);
    if (params) /* the default generator, named so that A1111 draws the same noise */
        CHECKF(strstr(params, ", RNG: NV, Version: copyscope") != NULL, "%s", params);
    free(params);
    cs_image im;
    CHECK(cs_image_load(&im, png, NULL, &e) == 0 && im.w == 32 && im.h == 32);
    cs_image_free(&im);
    /* same seed, same bits: the re-run skips; deleting a file regenerates it identically */
    CHECK(unlink(png) == 0);
    o.samples = 3; /* -n 3: one more sample per prompt */
    CHECKF(cs_generate(&o, &st, &e) == 0, "%s", e.msg);
    CHECKF(st.skipped == 4 && st.generated == 1 + 7, "%d %d", st.skipped, st.generated); /* fox-1 again; 3 samples of each */
    char sha2[65];
    CHECK(cs_sha256_file_hex(png, sha2, &e) == 0 && !strcmp(sha, sha2));
    CHECK(count_rows(db, "runs") == 1 && count_rows(db, "generations") == 12);
    free(sp);
    free(db);
    free(od);
}

/* The command: --help, usage errors (exit 2), a bad suite (exit 1, one line). */
static void test_cli_generate_exit_codes(void) {
    char cmd[9000], *sp = path_in("cli.json"), *err = path_in("cli.err"), *db = path_in("cli.db");
    snprintf(cmd, sizeof cmd, "%s generate --help > /dev/null", t_bin());
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s generate 2> /dev/null", t_bin());
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "%s generate %s -n 0 2> /dev/null", t_bin(), sp);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    write_text(sp, "{\"name\": \"t\", \"prompts\": [{\"id\": \"a\", \"text\": \"x\", \"steps\": 0}]}");
    snprintf(cmd, sizeof cmd, "%s generate %s --db %s --model %s 2> %s", t_bin(), sp, db, MODEL, err);
    CHECK(WEXITSTATUS(system(cmd)) == 1);
    FILE *f = fopen(err, "r");
    char line[2048] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    CHECKF(strstr(line, "copyscope: ") == line && strstr(line, "cli.json: prompts[0].steps: must be > 0\n"), "%s", line);
    CHECK(!exists(db));
    free(sp);
    free(err);
    free(db);
}

/* runs cmd (stderr to a file) and returns the exit status and the first stderr line */
static int run_cli(const char *args, char *line, size_t cap) {
    char cmd[9000], *err = path_in("one.err");
    snprintf(cmd, sizeof cmd, "%s generate %s 2> %s > /dev/null", t_bin(), args, err);
    int rc = WEXITSTATUS(system(cmd));
    line[0] = 0;
    FILE *f = fopen(err, "r");
    if (f) {
        if (!fgets(line, (int)cap, f)) line[0] = 0;
        fclose(f);
    }
    unlink(err);
    free(err);
    return rc;
}

/* `generate -m -p ... -o OUT.png`: one image, stored like any run; bad flags
 * are usage errors that name the flag, before any work. */
static void test_cli_generate_one_image(void) {
    char args[8000], line[2048], *out = path_in("one.png"), *db = path_in("one.db");
    snprintf(args, sizeof args, "-m %s --config %s --vocab %s -p 'a (red:1.2) fox' -n blurry -s 7 --steps 3 "
             "--cfg-scale 5 --sampler 'DPM++ 2M Karras' -W 32 -H 32 --rng cpu -o %s --db %s",
             MODEL, CONFIG, VOCAB, out, db);
    CHECKF(run_cli(args, line, sizeof line) == 0, "%s", line);
    char *params = NULL;
    cs_err e = {0};
    CHECK(cs_png_read_text(out, "parameters", &params, &e) == 0 && params);
    if (params)
        CHECKF(strstr(params, "a (red:1.2) fox\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M, Schedule type: "
                              "Karras, CFG scale: 5, Seed: 7, Size: 32x32, ") == params &&
                   strstr(params, ", RNG: CPU, Version: copyscope"), "%s", params);
    free(params);
    CHECK(count_rows(db, "generations") == 1 && count_rows(db, "runs") == 1);
    /* the same command again makes the image again, in the same run */
    CHECK(unlink(out) == 0);
    CHECKF(run_cli(args, line, sizeof line) == 0, "%s", line);
    CHECK(exists(out) && count_rows(db, "generations") == 1 && count_rows(db, "runs") == 1);
    /* inpainting with sd's mask rule, recorded with the task */
    snprintf(args, sizeof args, "-m %s --config %s --vocab %s -p fox -i %s --mask %s --steps 2 -W 32 -H 32 -o %s --db %s",
             MODEL, CONFIG, VOCAB, GRIN, GRIN, out, db);
    CHECKF(run_cli(args, line, sizeof line) == 0, "%s", line);
    cs_store *stq;
    if (cs_store_open_readonly(&stq, db, &e) == 0) {
        sqlite3_stmt *q;
        if (cs_store_prepare(stq, &q, "SELECT task_json FROM prompts WHERE kind = 'completion'", &e) == 0) {
            CHECK(sqlite3_step(q) == SQLITE_ROW &&
                  strstr((const char *)sqlite3_column_text(q, 0), "\"mask_white\":\"generate\"") != NULL);
            sqlite3_finalize(q);
        }
        cs_store_close(stq);
    }
    static const struct {
        const char *args, *msg;
    } bad[] = {
        {"-m m.safetensors -p x -o o.png --steps 0", "generate: bad --steps '0'"},
        {"-m m.safetensors -p x -o o.png --seed -1", "generate: bad --seed '-1'"},
        {"-m m.safetensors -p x -o o.png --sampler 'DPM++ 3M'", "generate: unknown --sampler 'DPM++ 3M'"},
        {"-m m.safetensors -p x -o o.png --rng mt", "generate: unknown --rng 'mt'"},
        {"-m m.safetensors -p x -o o.png --lora a.safetensors:0.7", "generate: --lora a.safetensors: no such file"},
        {"-m m.safetensors -p x -o o.png --lora a.safetensors", "generate: bad --lora"},
        {"-m m.safetensors -p x -o o.png --mask m.png", "--mask needs --init-img"},
        {"-m m.safetensors -p x", "-p needs -o OUT.png"},
        {"-p x -o o.png", "-p needs -m MODEL"},
        {"s.json --seed 3", "--seed is a one-image flag"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run_cli(bad[i].args, line, sizeof line);
        CHECKF(rc == 2 && strstr(line, bad[i].msg), "%s: rc %d: %s", bad[i].args, rc, line);
    }
    /* a missing model is the run's own error (exit 1), with no store made */
    char *db2 = path_in("one2.db");
    snprintf(args, sizeof args, "-m %s/none.safetensors -p x -o %s --db %s", g_dir, out, db2);
    CHECK(run_cli(args, line, sizeof line) == 1 && strstr(line, "none.safetensors: model file not found"));
    CHECK(!exists(db2));
    unlink(out);
    free(out);
    free(db);
    free(db2);
}

int main(void) {
    g_dir = t_tmpdir("suite");
    if (!g_dir) return 1;
    RUN(test_suite_parses_defaults_and_overrides);
    RUN(test_shipped_suites_parse);
    RUN(test_bad_suite_not_json);
    RUN(test_bad_suite_missing_field);
    RUN(test_bad_suite_mistyped_field);
    RUN(test_bad_suite_unknown_sampler);
    RUN(test_bad_suite_steps);
    RUN(test_bad_size_not_multiple_of_8);
    RUN(test_bad_model_path);
    RUN(test_bad_out_folder);
    RUN(test_bad_mask_size);
    RUN(test_bad_generate_reports_suite_errors);
    RUN(test_suite_rng_and_a1111_names);
    RUN(test_a1111_parameters);
    RUN(test_generate_sd_tiny_end_to_end);
    RUN(test_cli_generate_exit_codes);
    RUN(test_cli_generate_one_image);
    free(g_dir);
    return T_DONE();
}
