/* SSCD ResNet-50 against ../shared/refs/resnet50 (torchvision reference cases,
 * tolerances from its README), preprocessing bit-exactness, and bad input. */
#include <stdint.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/err.h"
#include "core/image.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "index/resnet.h"
#include "t.h"

#define REF "../shared/refs/resnet50/"

static cs_resnet model;
static int model_ok;

/* max |a - b| and max |b| over n floats */
static void diff(const float *a, const float *b, size_t n, double *maxd, double *maxr) {
    *maxd = 0, *maxr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= *maxd)) *maxd = d; /* NaN propagates */
        if (fabs(b[i]) > *maxr) *maxr = fabs(b[i]);
    }
}

static const float *ref(cs_safetensors *st, const char *name, size_t *n) {
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    if (!t || t->dtype != CS_DT_F32) return NULL;
    *n = (size_t)t->numel;
    return t->data;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* Checks an embedding against the reference: max |diff| <= 1e-5, cosine >= 0.99999. */
static void check_embedding(const float *got, const float *want, int n, const char *what) {
    double md, mr;
    diff(got, want, (size_t)n, &md, &mr);
    double c = cosine(got, want, n);
    printf("  %s: embedding max|diff| %.2e cosine %.8f\n", what, md, c);
    CHECKF(md <= 1e-5 && c >= 0.99999, "%s: max|diff| %g cosine %.8f", what, md, c);
}

static void test_load(void) {
    cs_err e = {0};
    REQUIRE(cs_resnet_load(&model, REF "model.safetensors", &e) == 0);
    CHECK(model.dim == 512);
    model_ok = 1;
}

static void test_trunk_224(void) {
    REQUIRE(model_ok);
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, REF "cases/resnet50_224.safetensors", &e) == 0);
    size_t n;
    const float *in = ref(&st, "input", &n);
    REQUIRE(in && n == 2 * 3 * 224 * 224);
    size_t sz[4] = {2 * 256 * 56 * 56, 2 * 512 * 28 * 28, 2 * 1024 * 14 * 14, 2 * 2048 * 7 * 7};
    cs_resnet_taps taps = {0};
    taps.stem = malloc(2 * 64 * 56 * 56 * sizeof(float));
    for (int i = 0; i < 4; i++) taps.layer[i] = malloc(sz[i] * sizeof(float));
    taps.gem = malloc(2 * 2048 * sizeof(float));
    taps.fc = malloc(2 * 512 * sizeof(float));
    float out[2 * 512];
    CHECK(cs_resnet_forward(&model, in, 2, 224, 224, out, &taps, &e) == 0);
    const char *names[] = {"stem", "layer1", "layer2", "layer3", "layer4", "gem", "fc"};
    float *got[] = {taps.stem, taps.layer[0], taps.layer[1], taps.layer[2], taps.layer[3], taps.gem, taps.fc};
    for (int i = 0; i < 7; i++) {
        const float *r = ref(&st, names[i], &n);
        REQUIRE(r);
        double md, mr;
        diff(got[i], r, n, &md, &mr);
        double tol = i < 5 ? 1e-4 : 3e-5;
        printf("  %s: max|diff| / max|ref| = %.2e\n", names[i], md / mr);
        CHECKF(md <= tol * mr, "%s: max|diff| %g max|ref| %g", names[i], md, mr);
    }
    const float *emb = ref(&st, "embedding", &n);
    REQUIRE(emb && n == 1024);
    check_embedding(out, emb, 512, "astronaut 224");
    check_embedding(out + 512, emb + 512, 512, "noise 224");
    free(taps.stem);
    for (int i = 0; i < 4; i++) free(taps.layer[i]);
    free(taps.gem), free(taps.fc);
    cs_safetensors_close(&st);
}

static void test_non_square(void) {
    REQUIRE(model_ok);
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, REF "cases/resnet50_288x352.safetensors", &e) == 0);
    size_t n;
    const float *in = ref(&st, "input", &n);
    REQUIRE(in && n == 3 * 288 * 352);
    float gem[2048], out[512];
    cs_resnet_taps taps = {0};
    taps.gem = gem;
    CHECK(cs_resnet_forward(&model, in, 1, 288, 352, out, &taps, &e) == 0);
    double md, mr;
    const float *g = ref(&st, "gem", &n);
    REQUIRE(g);
    diff(gem, g, 2048, &md, &mr);
    CHECKF(md <= 3e-5 * mr, "gem %g", md / mr);
    check_embedding(out, ref(&st, "embedding", &n), 512, "rocket 288x352");
    cs_safetensors_close(&st);
}

/* Image file -> resized (must equal Pillow exactly) -> input (exact) -> descriptor. */
static void check_preprocess_case(const char *file, const char *png, const char *pp_name,
                                  const char *resized_name, const char *input_name,
                                  const char *emb_name) {
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, file, &e) == 0);
    cs_image img = {0};
    REQUIRE(cs_image_load(&img, png, NULL, &e) == 0);
    const cs_safetensors_tensor *im = cs_safetensors_find(&st, "image");
    REQUIRE(im && im->dtype == CS_DT_U8 && im->shape[0] == img.h && im->shape[1] == img.w);
    CHECK(!memcmp(im->data, img.rgb, (size_t)img.w * img.h * 3));
    const cs_resnet_preproc *pp = cs_resnet_preproc_named(pp_name);
    REQUIRE(pp);
    const cs_safetensors_tensor *rz = cs_safetensors_find(&st, resized_name);
    REQUIRE(rz && rz->dtype == CS_DT_U8);
    int rw, rh;
    cs_resnet_preproc_size(pp, img.w, img.h, &rw, &rh);
    REQUIRE(rh == rz->shape[0] && rw == rz->shape[1]);
    cs_image r = {0};
    REQUIRE(cs_resize_pil_bilinear(&r, &img, rw, rh, &e) == 0);
    size_t nd = 0;
    for (size_t i = 0; i < (size_t)rw * rh * 3; i++) nd += r.rgb[i] != ((const uint8_t *)rz->data)[i];
    CHECKF(nd == 0, "%s: %zu resized bytes differ from Pillow", resized_name, nd);
    cs_image_free(&r);
    float *x;
    int w, h;
    REQUIRE(cs_resnet_preprocess(pp, &img, &x, &w, &h, &e) == 0);
    if (input_name) {
        size_t n;
        const float *in = ref(&st, input_name, &n);
        REQUIRE(in && n == (size_t)3 * w * h);
        CHECK(!memcmp(in, x, n * sizeof(float)));
    }
    float out[512];
    CHECK(cs_resnet_embed(&model, pp, &img, 1, 1, out, &e) == 0);
    size_t n;
    check_embedding(out, ref(&st, emb_name, &n), 512, emb_name);
    free(x);
    cs_image_free(&img);
    cs_safetensors_close(&st);
}

static void test_preprocess_up(void) {
    REQUIRE(model_ok);
    check_preprocess_case(REF "cases/preprocess_up.safetensors", REF "cases/preprocess_up.png",
                          "small_288", "resized", "input", "embedding");
}

static void test_preprocess_down(void) {
    REQUIRE(model_ok);
    check_preprocess_case(REF "cases/preprocess_down.safetensors", REF "cases/preprocess_down.png",
                          "small_288", "resized", "input", "embedding");
    check_preprocess_case(REF "cases/preprocess_down.safetensors", REF "cases/preprocess_down.png",
                          "skew_288", "skew288_resized", NULL, "skew288_embedding");
}

/* Mixed sizes in one call (sorted into same-size batches inside): each
 * descriptor lands in its own slot and equals the reference embedding of
 * that image; the two copies of one image agree. */
static void test_embed_mixed_sizes(void) {
    REQUIRE(model_ok);
    cs_image up = {0}, down = {0};
    cs_err e = {0};
    REQUIRE(cs_image_load(&up, REF "cases/preprocess_up.png", NULL, &e) == 0);
    REQUIRE(cs_image_load(&down, REF "cases/preprocess_down.png", NULL, &e) == 0);
    cs_image imgs[4] = {down, up, down, up};
    static float out[4 * 512];
    CHECK(cs_resnet_embed(&model, cs_resnet_preproc_named("small_288"), imgs, 4, 8, out, &e) == 0);
    cs_safetensors su, sd;
    REQUIRE(cs_safetensors_open(&su, REF "cases/preprocess_up.safetensors", &e) == 0);
    REQUIRE(cs_safetensors_open(&sd, REF "cases/preprocess_down.safetensors", &e) == 0);
    size_t n;
    check_embedding(out, ref(&sd, "embedding", &n), 512, "slot 0 (down)");
    check_embedding(out + 512, ref(&su, "embedding", &n), 512, "slot 1 (up)");
    check_embedding(out + 1024, ref(&sd, "embedding", &n), 512, "slot 2 (down)");
    check_embedding(out + 1536, ref(&su, "embedding", &n), 512, "slot 3 (up)");
    cs_safetensors_close(&su), cs_safetensors_close(&sd);
    cs_image_free(&up), cs_image_free(&down);
}

/* A constant image gives a finite, unit-norm descriptor (documented in resnet.h). */
static void test_constant_image(void) {
    REQUIRE(model_ok);
    cs_image img = {0};
    cs_err e = {0};
    REQUIRE(cs_image_alloc(&img, 64, 48, &e) == 0);
    memset(img.rgb, 0, 64 * 48 * 3);
    float out[512];
    CHECK(cs_resnet_embed(&model, cs_resnet_preproc_named("small_288"), &img, 1, 1, out, &e) == 0);
    double ss = 0;
    int finite = 1;
    for (int i = 0; i < 512; i++) ss += (double)out[i] * out[i], finite &= isfinite(out[i]);
    CHECK(finite && fabs(ss - 1) < 1e-5);
    cs_image_free(&img);
}

/* The project's standard: the same input gives the same bytes at any thread
 * count. Every tap (stem, layer1-4, GeM, fc) and the descriptor of a forward
 * pass at 2 and 3 threads must equal those at 1 thread bit for bit (memcmp,
 * no tolerance): batch 1 and 2 at 224 px (layer4 only 7 x 7 columns an
 * image: the narrow convolutions), batch 1 at 288 x 352 (non-square), and
 * an image file through cs_resnet_embed (preprocessing + forward). */
typedef struct {
    float *tap[7]; /* stem, layer1..4, gem, fc */
    size_t n[7];
    float *out;
} fwd_bytes;

static void fwd_alloc(fwd_bytes *f, int B, int H, int W) {
    int h = (H + 1) / 2, w = (W + 1) / 2; /* conv1 */
    h = (h + 1) / 2, w = (w + 1) / 2;     /* max pool */
    int c[5] = {64, 256, 512, 1024, 2048};
    for (int i = 0; i < 5; i++) {
        if (i >= 2) h = (h + 1) / 2, w = (w + 1) / 2;
        f->n[i] = (size_t)B * c[i] * h * w;
    }
    f->n[5] = (size_t)B * 2048, f->n[6] = (size_t)B * 512;
    for (int i = 0; i < 7; i++) f->tap[i] = calloc(f->n[i], sizeof(float));
    f->out = calloc((size_t)B * 512, sizeof(float));
}

static void fwd_free(fwd_bytes *f) {
    for (int i = 0; i < 7; i++) free(f->tap[i]);
    free(f->out);
}

static int fwd_run(fwd_bytes *f, const float *in, int B, int H, int W) {
    cs_resnet_taps taps = {0};
    taps.stem = f->tap[0];
    for (int i = 0; i < 4; i++) taps.layer[i] = f->tap[1 + i];
    taps.gem = f->tap[5], taps.fc = f->tap[6];
    cs_err e = {0};
    return cs_resnet_forward(&model, in, B, H, W, f->out, &taps, &e);
}

/* Forward passes at 1, 2, 3 threads; every tap compared by memcmp. */
static void check_threads_forward(const float *in, int B, int H, int W, const char *what) {
    static const char *names[7] = {"stem", "layer1", "layer2", "layer3", "layer4", "gem", "fc"};
    int nt0 = cs_threads();
    fwd_bytes ref1, got;
    fwd_alloc(&ref1, B, H, W), fwd_alloc(&got, B, H, W);
    cs_set_threads(1);
    CHECK(fwd_run(&ref1, in, B, H, W) == 0);
    for (int nt = 2; nt <= 3; nt++) {
        cs_set_threads(nt);
        CHECK(fwd_run(&got, in, B, H, W) == 0);
        for (int i = 0; i < 7; i++) {
            size_t nd = 0;
            for (size_t k = 0; k < ref1.n[i]; k++) nd += memcmp(&ref1.tap[i][k], &got.tap[i][k], sizeof(float)) != 0;
            CHECKF(nd == 0, "%s: -j %d: %s: %zu of %zu floats differ from -j 1", what, nt, names[i], nd, ref1.n[i]);
        }
        CHECKF(!memcmp(ref1.out, got.out, (size_t)B * 512 * sizeof(float)), "%s: -j %d: descriptor bytes differ",
               what, nt);
    }
    cs_set_threads(nt0);
    fwd_free(&ref1), fwd_free(&got);
}

static void test_threads_bytes(void) {
    REQUIRE(model_ok);
    cs_set_thread_grain(0); /* every loop on all threads */
    cs_safetensors st;
    cs_err e = {0};
    size_t n;
    REQUIRE(cs_safetensors_open(&st, REF "cases/resnet50_224.safetensors", &e) == 0);
    const float *in = ref(&st, "input", &n);
    REQUIRE(in && n == 2 * 3 * 224 * 224);
    check_threads_forward(in, 1, 224, 224, "astronaut 224 batch 1");
    check_threads_forward(in, 2, 224, 224, "batch 2 at 224");
    /* the other sgemm routines: our AVX-512 kernel, OpenBLAS (AVX2 path) */
    int isa = cs_cpu_isa();
    if (isa >= CS_ISA_AVX512) {
        nn_set_gemm_backend(NN_GEMM_OWN);
        check_threads_forward(in, 1, 224, 224, "batch 1, our AVX-512 sgemm");
        nn_set_gemm_backend(NN_GEMM_AUTO);
        cs_cpu_force(CS_ISA_BASE);
        check_threads_forward(in, 1, 224, 224, "batch 1, OpenBLAS sgemm");
        cs_cpu_force(isa);
    }
    cs_safetensors_close(&st);
    REQUIRE(cs_safetensors_open(&st, REF "cases/resnet50_288x352.safetensors", &e) == 0);
    in = ref(&st, "input", &n);
    REQUIRE(in && n == 3 * 288 * 352);
    check_threads_forward(in, 1, 288, 352, "rocket 288x352");
    cs_safetensors_close(&st);
    /* an image file through preprocessing and the descriptor */
    cs_image img = {0};
    REQUIRE(cs_image_load(&img, REF "cases/preprocess_down.png", NULL, &e) == 0);
    int nt0 = cs_threads();
    float d1[512], d[512];
    cs_set_threads(1);
    CHECK(cs_resnet_embed(&model, cs_resnet_preproc_named("small_288"), &img, 1, 1, d1, &e) == 0);
    for (int nt = 2; nt <= 3; nt++) {
        cs_set_threads(nt);
        CHECK(cs_resnet_embed(&model, cs_resnet_preproc_named("small_288"), &img, 1, 1, d, &e) == 0);
        CHECKF(!memcmp(d1, d, sizeof d), "preprocess_down.png: -j %d: descriptor bytes differ from -j 1", nt);
    }
    cs_set_threads(nt0);
    cs_set_thread_grain(-1);
    cs_image_free(&img);
}

static char *tmp;

/* A copy of the model with one F16 value of tensor name replaced by NaN. */
static void test_nan_weight(void) {
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, REF "model.safetensors", &e) == 0);
    const cs_safetensors_tensor *t = cs_safetensors_find(&st, "layer3.2.bn2.running_var");
    REQUIRE(t && t->dtype == CS_DT_F16);
    size_t off = (size_t)((const char *)t->data - (const char *)st.map) + 2 * 17;
    char path[4200];
    snprintf(path, sizeof path, "%s/nan.safetensors", tmp);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    CHECK(fwrite(st.map, 1, st.map_size, f) == st.map_size);
    uint16_t nan = 0x7e00;
    fseek(f, (long)off, SEEK_SET);
    fwrite(&nan, 2, 1, f);
    fclose(f);
    cs_safetensors_close(&st);
    cs_resnet m;
    CHECK(cs_resnet_load(&m, path, &e) == -1);
    CHECKF(strstr(e.msg, "layer3.2.bn2.running_var: non-finite") && strstr(e.msg, path), "%s", e.msg);
    unlink(path);
}

static void test_wrong_architecture(void) {
    cs_err e = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmp);
    static float w[64 * 3 * 3 * 3];
    /* no conv1 at all (e.g. a ViT or the Classy-Vision layout) */
    cs_safetensors_out t1 = {"patch_embed.weight", CS_DT_F32, 1, {8}, w};
    REQUIRE(cs_safetensors_write(path, &t1, 1, NULL, &e) == 0);
    cs_resnet m;
    CHECK(cs_resnet_load(&m, path, &e) == -1 && strstr(e.msg, "not a torchvision ResNet-50"));
    /* conv1 of the wrong shape */
    cs_safetensors_out t2 = {"conv1.weight", CS_DT_F32, 4, {64, 3, 3, 3}, w};
    REQUIRE(cs_safetensors_write(path, &t2, 1, NULL, &e) == 0);
    CHECK(cs_resnet_load(&m, path, &e) == -1);
    CHECKF(strstr(e.msg, "conv1.weight: shape [64, 3, 3, 3] expected [64, 3, 7, 7]") ||
               strstr(e.msg, "conv1.weight: shape"), "%s", e.msg);
    /* a ResNet-18 has conv1 right, then no bn / conv3: a missing tensor */
    static float w7[64 * 3 * 7 * 7];
    cs_safetensors_out t3 = {"backbone.conv1.weight", CS_DT_F32, 4, {64, 3, 7, 7}, w7};
    REQUIRE(cs_safetensors_write(path, &t3, 1, NULL, &e) == 0);
    CHECK(cs_resnet_load(&m, path, &e) == -1 && strstr(e.msg, "backbone.bn1.weight: missing"));
    unlink(path);
    CHECK(cs_resnet_load(&m, path, &e) == -1 && strstr(e.msg, path));
}

static void test_bad_forward_input(void) {
    REQUIRE(model_ok);
    cs_err e = {0};
    float in[3 * 16 * 16] = {0}, out[512];
    CHECK(cs_resnet_forward(&model, in, 1, 16, 16, out, NULL, &e) == -1 && e.code == CS_EUSAGE);
    CHECK(cs_resnet_preproc_named("no_such") == NULL);
}

int main(void) {
    tmp = t_tmpdir("resnet");
    if (!tmp) return 1;
    RUN(test_load);
    RUN(test_trunk_224);
    RUN(test_non_square);
    RUN(test_preprocess_up);
    RUN(test_preprocess_down);
    RUN(test_embed_mixed_sizes);
    RUN(test_constant_image);
    RUN(test_threads_bytes);
    RUN(test_nan_weight);
    RUN(test_wrong_architecture);
    RUN(test_bad_forward_input);
    cs_resnet_free(&model);
    rmdir(tmp);
    free(tmp);
    return T_DONE();
}
