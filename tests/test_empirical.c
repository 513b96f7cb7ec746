/* The empirical model: its denoiser against a direct double-precision
 * evaluation of D(x, sigma) = sum softmax(-|x-y|^2/2sigma^2) y, its caption
 * conditioning, and end to end on an index of ../shared/data/twemoji-64:
 * every output is, pixel for pixel (within 1), the reference the model chose,
 * and a completion keeps the known pixels. */
#include <math.h>
#include <sys/stat.h>

#include "core/image.h"
#include "core/store.h"
#include "index/ingest.h"
#include "index/refs.h"
#include "pipeline/empirical.h"
#include "pipeline/generate.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"
#include "t.h"

static char *g_dir;

/* n synthetic w x w references with captions "ref <i> <even|odd>". */
static void synth(cs_ref_thumbs *t, int n, int w, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->n = n;
    t->w = t->h = w;
    t->ids = malloc(sizeof(int64_t) * n);
    t->sources = malloc(sizeof(char *) * n);
    t->captions = malloc(sizeof(char *) * n);
    t->rgb = malloc((size_t)n * w * w * 3);
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        t->ids[i] = 100 + i;
        char b[64];
        snprintf(b, sizeof b, "src%d.png", i);
        t->sources[i] = strdup(b);
        snprintf(b, sizeof b, "Ref %d, %s!", i, i % 2 ? "odd" : "even");
        t->captions[i] = strdup(b);
        for (int k = 0; k < w * w * 3; k++) t->rgb[(size_t)i * w * w * 3 + k] = (uint8_t)(cs_rng_u64(&r) >> 56);
    }
}

/* D by the definition, in double, over refs with sel[i] (NULL = all). */
static void naive_D(const cs_ref_thumbs *t, const float *x, double sigma, const int *sel, double *D) {
    int d = t->w * t->h * 3, hw = t->w * t->h;
    double *l = malloc(sizeof(double) * t->n), mx = -INFINITY;
    for (int i = 0; i < t->n; i++) {
        l[i] = -INFINITY;
        if (sel && !sel[i]) continue;
        double s = 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < hw; p++) {
                double y = t->rgb[((size_t)i * hw + p) * 3 + c] / 127.5 - 1.0;
                double diff = x[c * hw + p] - y;
                s += diff * diff;
            }
        l[i] = -s / (2 * sigma * sigma);
        if (l[i] > mx) mx = l[i];
    }
    double z = 0;
    for (int i = 0; i < t->n; i++) z += exp(l[i] - mx);
    for (int k = 0; k < d; k++) D[k] = 0;
    for (int i = 0; i < t->n; i++) {
        double wgt = exp(l[i] - mx) / z;
        if (wgt == 0) continue;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < hw; p++)
                D[c * hw + p] += wgt * (t->rgb[((size_t)i * hw + p) * 3 + c] / 127.5 - 1.0);
    }
    free(l);
}

static void test_denoiser_matches_definition(void) {
    cs_ref_thumbs t, copy;
    synth(&t, 40, 16, 1);
    synth(&copy, 40, 16, 1);
    cs_model *m;
    cs_err e = {0};
    REQUIRE(cs_model_empirical_new(&m, &t, "synthetic", &e) == 0);
    cs_cond *all, *odd;
    REQUIRE(m->cond_new(m, "", &all, &e) == 0);
    REQUIRE(m->cond_new(m, "ODD", &odd, &e) == 0);
    CHECK(cs_empirical_cond_size(all) == 40 && cs_empirical_cond_size(odd) == 20);
    int sel[40];
    for (int i = 0; i < 40; i++) sel[i] = i % 2;
    int d = 16 * 16 * 3;
    float *x = malloc(sizeof(float) * 2 * d), *D = malloc(sizeof(float) * 2 * d);
    double *ref = malloc(sizeof(double) * d);
    cs_rng r;
    cs_rng_seed(&r, 2);
    const float sigmas[] = {14.6f, 3.0f, 1.0f, 0.3f, 0.03f};
    for (int si = 0; si < 5; si++) {
        float s = sigmas[si];
        /* x = a reference + noise at this level */
        cs_rng_normal(&r, x, d);
        int base = 7 + si;
        int hw = 256;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < hw; p++)
                x[c * hw + p] = copy.rgb[((size_t)base * hw + p) * 3 + c] / 127.5f - 1.0f + s * x[c * hw + p];
        memcpy(x + d, x, sizeof(float) * d);
        float ts[2] = {s, s};
        cs_cond *conds[2] = {all, odd};
        REQUIRE(m->eval(m, x, ts, conds, 2, 16, 16, D, &e) == 0);
        for (int b = 0; b < 2; b++) {
            naive_D(&copy, x, s, b ? sel : NULL, ref);
            double md = 0;
            for (int k = 0; k < d; k++) md = fmax(md, fabs(D[b * d + k] - ref[k]));
            CHECKF(md < 2e-4, "sigma %g branch %d: max diff %g", s, b, md);
        }
    }
    /* no caption has the word: a clear error */
    cs_cond *none = NULL;
    CHECK(m->cond_new(m, "purple", &none, &e) == -1 && none == NULL);
    CHECKF(strstr(e.msg, "no reference caption contains every word of \"purple\"") != NULL, "%s", e.msg);
    m->cond_free(m, all);
    m->cond_free(m, odd);
    cs_model_free(m);
    cs_ref_thumbs_free(&copy);
    free(x);
    free(D);
    free(ref);
}

/* Sampling from noise lands on one reference exactly (small sigma_min). */
static void test_sampling_reproduces_a_reference(void) {
    cs_ref_thumbs t, copy;
    synth(&t, 30, 8, 3);
    synth(&copy, 30, 8, 3);
    cs_model *m;
    cs_err e = {0};
    REQUIRE(cs_model_empirical_new(&m, &t, "synthetic", &e) == 0);
    cs_cond *c, *u;
    REQUIRE(m->cond_new(m, "even", &c, &e) == 0 && m->cond_new(m, "", &u, &e) == 0);
    int d = 8 * 8 * 3;
    float *x = malloc(sizeof(float) * d);
    for (int s = 0; s < 6; s++) {
        cs_sample_opts o = {.sampler = s % 3 == 0 ? CS_SAMPLER_EULER : s % 3 == 1 ? CS_SAMPLER_DPMPP_2M : CS_SAMPLER_EULER_A,
                            .spacing = CS_SPACING_KARRAS, .steps = 15, .guidance = 2.0f, .whitebox_k = 1};
        cs_rng r;
        cs_rng_seed(&r, 100 + s);
        cs_noise nz = cs_noise_rng(&r);
        cs_sample_trace tr = {0};
        REQUIRE(cs_sample(m, &o, c, u, 8, 8, &nz, NULL, x, &tr, &e) == 0);
        int64_t id;
        const char *src;
        float w;
        REQUIRE(cs_empirical_last_choice(m, &id, &src, &w) == 0);
        int i = (int)(id - 100);
        CHECKF(i % 2 == 0, "chose ref %d, caption not 'even'", i);
        double md = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 64; p++)
                md = fmax(md, fabs(x[ch * 64 + p] - (copy.rgb[((size_t)i * 64 + p) * 3 + ch] / 127.5 - 1.0)));
        CHECKF(md < 1.0 / 255, "sample %d differs from ref %d by %g", s, i, md);
        CHECK(tr.whitebox > 0 && tr.n_steps == 15);
        cs_sample_trace_free(&tr);
    }
    m->cond_free(m, c);
    m->cond_free(m, u);
    cs_model_free(m);
    cs_ref_thumbs_free(&copy);
    free(x);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* End to end: index twemoji-64, generate a suite with the empirical model,
 * compare each PNG with the thumbnail of the reference it chose. */
static void test_twemoji_suite_copies_references(void) {
    char db[4200], sp[4200], od[4200], grin[4096];
    snprintf(db, sizeof db, "%s/idx.db", g_dir);
    snprintf(sp, sizeof sp, "%s/s.json", g_dir);
    snprintf(od, sizeof od, "%s/out", g_dir);
    REQUIRE(realpath("../shared/data/twemoji-64/img/1f600.png", grin));
    cs_store *s;
    cs_err e = {0};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    const char *in[] = {"../shared/data/twemoji-64"};
    cs_ingest_opts io = {0};
    CHECKF(cs_ingest_add(s, in, 1, &io, NULL, &e) == 0, "%s", e.msg);
    cs_ref_thumbs t;
    CHECKF(cs_refs_load_thumbs(s, &t, &e) == 0, "%s", e.msg);
    cs_store_close(s);
    REQUIRE(t.n > 1000);
    char text[9000];
    snprintf(text, sizeof text,
             "{\"name\": \"emp\", \"model\": \"empirical\", \"defaults\": {\"sampler\": \"euler\", "
             "\"schedule\": \"karras\", \"steps\": 12, \"guidance\": 3, \"samples\": 2, \"seed\": 1},"
             "\"prompts\": [{\"id\": \"pizza\", \"text\": \"slice of pizza\"}, {\"id\": \"cat\", \"text\": \"cat face\","
             " \"sampler\": \"dpmpp_2m\"}, {\"id\": \"heart\", \"text\": \"heart\", \"sampler\": \"euler_a\"},"
             " {\"id\": \"tree\", \"text\": \"tree\", \"sampler\": \"ddim\", \"steps\": 20}],"
             "\"completions\": [{\"id\": \"fill\", \"ref\": \"%s\", \"rect\": [0, 0, 64, 24], \"samples\": 1, \"resample\": 2}]}",
             grin);
    write_text(sp, text);
    cs_generate_opts o = {.suite = sp, .out = od, .db = db, .threads = 2};
    cs_generate_stats st;
    CHECKF(cs_generate(&o, &st, &e) == 0, "%s", e.msg);
    CHECK(st.generated == 9);
    REQUIRE(cs_store_open_readonly(&s, db, &e) == 0);
    sqlite3_stmt *q;
    REQUIRE(cs_store_prepare(s, &q, "SELECT g.path, p.text, p.kind, json_extract(g.settings_json, '$.empirical_ref_id'), "
                                    "g.whitebox FROM generations g JOIN prompts p ON p.id = g.prompt_id", &e) == 0);
    int rows = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        rows++;
        const char *path = (const char *)sqlite3_column_text(q, 0), *ptext = (const char *)sqlite3_column_text(q, 1);
        const char *kind = (const char *)sqlite3_column_text(q, 2);
        int64_t rid = sqlite3_column_int64(q, 3);
        int64_t i = -1;
        for (int64_t k = 0; k < t.n; k++)
            if (t.ids[k] == rid) i = k;
        CHECKF(i >= 0, "%s: chosen ref %lld not in the index", path, (long long)rid);
        if (i < 0) continue;
        cs_image im;
        CHECKF(cs_image_load(&im, path, NULL, &e) == 0, "%s", e.msg);
        const uint8_t *ref = t.rgb + (size_t)i * 64 * 64 * 3;
        int md = 0;
        if (!strcmp(kind, "completion")) {
            /* the kept part (rows 24..63) is the reference's own pixels */
            cs_image g;
            REQUIRE(cs_image_load(&g, grin, NULL, &e) == 0);
            for (int p = 24 * 64 * 3; p < 64 * 64 * 3; p++) md = abs(im.rgb[p] - g.rgb[p]) > md ? abs(im.rgb[p] - g.rgb[p]) : md;
            CHECKF(md <= 1, "%s: kept region differs by %d", path, md);
            /* the generated rows 0..23 are the rows of the reference the model chose */
            md = 0;
            for (int p = 0; p < 24 * 64 * 3; p++) md = abs(im.rgb[p] - ref[p]) > md ? abs(im.rgb[p] - ref[p]) : md;
            CHECKF(md <= 1, "%s: generated region differs from its reference %s by %d", path, t.sources[i], md);
            /* (whether it is 1f600 itself depends on how distinctive the kept part is:
             * many twemoji faces share their lower halves; not asserted) */
            printf("     completion of 1f600 chose %s\n", strrchr(t.sources[i], '/') + 1);
            cs_image_free(&g);
        } else {
            for (int p = 0; p < 64 * 64 * 3; p++) md = abs(im.rgb[p] - ref[p]) > md ? abs(im.rgb[p] - ref[p]) : md;
            CHECKF(md <= 1, "%s: differs from its chosen reference %s by %d", path, t.sources[i], md);
            /* and that reference matches the prompt's words */
            char w[64];
            const char *sp2 = strrchr(ptext, ' ');
            snprintf(w, sizeof w, "%s", sp2 ? sp2 + 1 : ptext);
            CHECKF(t.captions[i] && strstr(t.captions[i], w), "%s: caption '%s' lacks '%s'", path, t.captions[i], w);
            CHECK(sqlite3_column_double(q, 4) > 0);
        }
        cs_image_free(&im);
    }
    sqlite3_finalize(q);
    CHECK(rows == 9);
    cs_store_close(s);
    /* a prompt no caption matches: error before work, no new rows */
    write_text(sp, "{\"name\": \"emp2\", \"model\": \"empirical\", \"prompts\": [{\"id\": \"x\", \"text\": \"zebra unicorn spaceship\"}]}");
    CHECK(cs_generate(&o, &st, &e) == -1);
    CHECKF(strstr(e.msg, "s.json: prompts[0].text: empirical:") && strstr(e.msg, "no reference caption contains"),
           "%s", e.msg);
    /* a size other than the thumbnails' */
    write_text(sp, "{\"name\": \"emp3\", \"model\": \"empirical\", \"prompts\": [{\"id\": \"x\", \"text\": \"tree\", \"size\": 128}]}");
    CHECK(cs_generate(&o, &st, &e) == -1);
    CHECKF(strstr(e.msg, "prompts[0].size: 128x128, but the empirical model works at 64x64") != NULL, "%s", e.msg);
    cs_ref_thumbs_free(&t);
}

int main(void) {
    g_dir = t_tmpdir("empirical");
    if (!g_dir) return 1;
    RUN(test_denoiser_matches_definition);
    RUN(test_sampling_reproduces_a_reference);
    RUN(test_twemoji_suite_copies_references);
    free(g_dir);
    return T_DONE();
}
