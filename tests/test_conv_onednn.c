/* test_conv_onednn.c — the convolutions nn_conv2d hands to oneDNN's
 * primitive (core/conv_onednn.c: images of 32x32 outputs and more, cout a
 * multiple of 16, cin >= 16) against a direct convolution in double: 3x3
 * pad 1, stride 2 pad 1 and the VAE's asymmetric (0,0,1,1) stride 2, with
 * and without bias, cout a multiple of the 64-channel task and not (48, 80,
 * 144: a shorter last block), batch 1 and 3; the same bytes on 1, 2 and 3
 * threads; bf16 within bf16's rounding of both operands; and the path is
 * really taken (the im2col path's result differs in its last bits). Then
 * weights kept in the primitive's layout (cs_conv_weights_keep): the small
 * images (16x16, 8x8) that only take the primitive then in bf16, and a
 * 32x32 one; the first call (which fills the copy) and the later ones give
 * the same bytes on 1-3 threads; after cs_conv_weights_forget and a change
 * of the weights in place, the new weights are used (no stale copy). And
 * the fused nearest-2x upsampling + 3x3 conv (nn_conv2d_up2).
 * Skipped (and said so) without AVX-512 or oneDNN. */
#include <stdint.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "tests/t.h"
#include "tests/test_conv_ref.h"

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((seed >> 40) / (double)(1 << 24)) * 2.f - 1.f;
    }
    return p;
}

/* max |y - r| / max |r| */
static double rel(const float *y, const double *r, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(y[i] - r[i]);
        if (!(d <= md)) md = d; /* NaN counts */
        if (fabs(r[i]) > mr) mr = fabs(r[i]);
    }
    return md / mr;
}

static void one_case(nn_conv2d_p p, int B, int h, int w, int with_bias) {
    int oh = nn_conv2d_oh(&p, h), ow = nn_conv2d_ow(&p, w);
    size_t n = (size_t)B * p.cout * oh * ow;
    float *x = rand_buf((size_t)B * p.cin * h * w, 1 + p.cin), *wt = rand_buf((size_t)p.cout * p.cin * 9, 2 + p.cout);
    float *bs = with_bias ? rand_buf(p.cout, 3) : NULL;
    float *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n), *yi = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n);
    size_t wsn = nn_conv2d_ws(&p, h, w);
    float *ws = malloc(sizeof(float) * wsn);
    conv_ref(r, x, wt, bs, &p, B, h, w);
    nn_set_threads(1);
    nn_conv2d(y, x, wt, bs, &p, B, h, w, ws, wsn);
    double e = rel(y, r, n);
    CHECKF(e < 1e-5, "cin %d cout %d %dx%d s%d pad %d,%d,%d,%d B %d: rel %g", p.cin, p.cout, h, w, p.stride, p.pad_t,
           p.pad_l, p.pad_b, p.pad_r, B, e);
    for (int nt = 2; nt <= 3; nt++) {
        nn_set_threads(nt);
        nn_conv2d(y2, x, wt, bs, &p, B, h, w, ws, wsn);
        CHECKF(!memcmp(y, y2, sizeof(float) * n), "cout %d: bytes differ on %d threads", p.cout, nt);
    }
    nn_set_conv_direct(0);
    nn_conv2d(yi, x, wt, bs, &p, B, h, w, ws, wsn);
    nn_set_conv_direct(2);
    CHECKF(memcmp(y, yi, sizeof(float) * n) != 0, "cout %d: same bytes as im2col: oneDNN's path not taken", p.cout);
    if (nn_set_precision(NN_BF16) == 0) {
        nn_conv2d(y2, x, wt, bs, &p, B, h, w, ws, wsn);
        nn_set_precision(NN_FP32);
        /* each product's operands rounded to 8 bits: ~2^-8 relative each,
         * random signs over cin*9 terms: far below 1e-2 of the largest */
        double eb = rel(y2, r, n);
        CHECKF(eb < 1e-2 && eb > 1e-5, "cout %d bf16: rel %g", p.cout, eb);
    }
    nn_set_threads(0);
    free(x), free(wt), free(bs), free(y), free(y2), free(yi), free(r), free(ws);
}

/* kept weights: against the reference, the im2col path (not the same
 * bytes: the primitive is taken), thread counts, fp32 and bf16, no stale copy */
static void kept_case(nn_conv2d_p p, int B, int h, int w) {
    int oh = nn_conv2d_oh(&p, h), ow = nn_conv2d_ow(&p, w);
    size_t n = (size_t)B * p.cout * oh * ow, nw = (size_t)p.cout * p.cin * 9;
    float *x = rand_buf((size_t)B * p.cin * h * w, 5 + p.cin), *wt = rand_buf(nw, 6 + p.cout), *bs = rand_buf(p.cout, 7);
    float *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n), *yi = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n);
    size_t wsn = nn_conv2d_ws_batched(&p, B, h, w) + nn_conv2d_ws(&p, h, w);
    float *ws = malloc(sizeof(float) * wsn);
    int owner;
    for (int prec = NN_FP32; prec <= NN_BF16; prec++) {
        if (nn_set_precision(prec)) continue;
        nn_set_threads(1);
        nn_conv2d(yi, x, wt, bs, &p, B, h, w, ws, wsn); /* not kept: small images take im2col */
        CHECK(cs_conv_weights_keep(&owner, wt, nw) == 0);
        conv_ref(r, x, wt, bs, &p, B, h, w);
        nn_conv2d(y, x, wt, bs, &p, B, h, w, ws, wsn); /* fills the kept copy */
        double e = rel(y, r, n);
        CHECKF(prec == NN_FP32 ? e < 1e-5 : e < 1e-2 && e > 1e-5, "kept cin %d cout %d %dx%d B %d prec %d: rel %g",
               p.cin, p.cout, h, w, B, prec, e);
        if (oh * ow < 1024 && prec == NN_BF16) /* core/nn.c: fp32 stays im2col below 32x32 */
            CHECKF(memcmp(y, yi, sizeof(float) * n) != 0, "kept %dx%d: same bytes as im2col: primitive not taken", oh,
                   ow);
        for (int nt = 1; nt <= 3; nt++) {
            nn_set_threads(nt);
            nn_conv2d(y2, x, wt, bs, &p, B, h, w, ws, wsn);
            CHECKF(!memcmp(y, y2, sizeof(float) * n), "kept %dx%d prec %d: bytes differ on %d threads", oh, ow, prec,
                   nt);
        }
        /* changed in place after forget (then kept again at the same address): the new weights count */
        cs_conv_weights_forget(&owner);
        for (size_t i = 0; i < nw; i++) wt[i] = -0.5f * wt[i];
        CHECK(cs_conv_weights_keep(&owner, wt, nw) == 0);
        conv_ref(r, x, wt, bs, &p, B, h, w);
        nn_conv2d(y2, x, wt, bs, &p, B, h, w, ws, wsn);
        e = rel(y2, r, n);
        CHECKF(prec == NN_FP32 ? e < 1e-5 : e < 1e-2, "kept %dx%d after a change: rel %g (a stale copy?)", oh, ow, e);
        cs_conv_weights_forget(&owner);
        for (size_t i = 0; i < nw; i++) wt[i] = -2.f * wt[i];
        nn_set_precision(NN_FP32);
    }
    nn_set_threads(0);
    free(x), free(wt), free(bs), free(y), free(y2), free(yi), free(r), free(ws);
}

static void test_kept(void) {
    kept_case((nn_conv2d_p){64, 128, 3, 3, 1, 1, 1, 1, 1}, 2, 16, 16);
    kept_case((nn_conv2d_p){48, 80, 3, 3, 1, 1, 1, 1, 1}, 3, 8, 8);
    kept_case((nn_conv2d_p){32, 64, 3, 3, 2, 1, 1, 1, 1}, 2, 16, 16); /* 8x8 outputs, strided */
    kept_case((nn_conv2d_p){32, 64, 3, 3, 1, 1, 1, 1, 1}, 1, 32, 32);
}

/* nn_conv2d_up2 against the upsampled image convolved in double: fp32 and
 * bf16, 1-3 threads, odd sizes, cout not a multiple of 64; refused for
 * weights not kept */
static void up2_case(int cin, int cout, int B, int h, int w) {
    nn_conv2d_p p = {cin, cout, 3, 3, 1, 1, 1, 1, 1};
    int H = 2 * h, W = 2 * w;
    size_t n = (size_t)B * cout * H * W, nw = (size_t)cout * cin * 9;
    float *x = rand_buf((size_t)B * cin * h * w, 11 + cin), *wt = rand_buf(nw, 12 + cout), *bs = rand_buf(cout, 13);
    float *up = malloc(sizeof(float) * B * cin * H * W), *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n);
    for (size_t c = 0; c < (size_t)B * cin; c++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) up[(c * H + i) * W + j] = x[(c * h + i / 2) * w + j / 2];
    conv_ref(r, up, wt, bs, &p, B, H, W);
    int owner;
    nn_set_threads(1);
    CHECKF(nn_conv2d_up2(y, x, wt, bs, cin, cout, B, h, w) == -1, "up2 %dx%d: taken with weights not kept", h, w);
    CHECK(cs_conv_weights_keep(&owner, wt, nw) == 0);
    for (int prec = NN_FP32; prec <= NN_BF16; prec++) {
        if (nn_set_precision(prec)) continue;
        nn_set_threads(1);
        memset(y, 0xff, sizeof(float) * n); /* NaN: every element must be written */
        CHECK(nn_conv2d_up2(y, x, wt, bs, cin, cout, B, h, w) == 0);
        double e = rel(y, r, n);
        CHECKF(prec == NN_FP32 ? e < 1e-5 : e < 1e-2 && e > 1e-5, "up2 cin %d cout %d %dx%d B %d prec %d: rel %g", cin,
               cout, h, w, B, prec, e);
        for (int nt = 2; nt <= 3; nt++) {
            nn_set_threads(nt);
            CHECK(nn_conv2d_up2(y2, x, wt, bs, cin, cout, B, h, w) == 0);
            CHECKF(!memcmp(y, y2, sizeof(float) * n), "up2 %dx%d prec %d: bytes differ on %d threads", h, w, prec, nt);
        }
        nn_set_precision(NN_FP32);
    }
    cs_conv_weights_forget(&owner);
    nn_set_threads(0);
    free(x), free(wt), free(bs), free(up), free(y), free(y2), free(r);
}

static void test_up2(void) {
    up2_case(32, 64, 1, 32, 32);
    up2_case(16, 80, 2, 33, 35);
    up2_case(64, 48, 1, 8, 8);
}

/* bf16 leaves fp32 where it gains nothing: a conv with few inputs per
 * output (cin*kh*kw < NN_BF16_MIN_CONV_K: the UNet's conv_in) gives the fp32
 * bytes, and a fused upsampling conv too thin for bf16 is refused under
 * bf16 (unfused then: an fp32 kept copy would drop the bf16 ones) */
static void test_bf16_thin(void) {
    if (nn_set_precision(NN_BF16)) return;
    nn_set_precision(NN_FP32);
    nn_conv2d_p p = {4, 64, 3, 3, 1, 1, 1, 1, 1};
    int B = 2, h = 32, w = 32;
    size_t n = (size_t)B * p.cout * h * w, wsn = nn_conv2d_ws_batched(&p, B, h, w) + nn_conv2d_ws(&p, h, w);
    float *x = rand_buf((size_t)B * p.cin * h * w, 21), *wt = rand_buf((size_t)p.cout * p.cin * 9, 22);
    float *bs = rand_buf(p.cout, 23), *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *ws = malloc(sizeof(float) * wsn);
    double *r = malloc(sizeof(double) * n);
    conv_ref(r, x, wt, bs, &p, B, h, w);
    nn_conv2d(y, x, wt, bs, &p, B, h, w, ws, wsn);
    REQUIRE(nn_set_precision(NN_BF16) == 0);
    nn_conv2d(y2, x, wt, bs, &p, B, h, w, ws, wsn);
    CHECKF(!memcmp(y, y2, sizeof(float) * n), "conv K = %d under bf16: not the fp32 bytes", p.cin * 9);
    CHECKF(nn_precision() == NN_BF16, "the precision is given back");
    CHECK(rel(y2, r, n) < 1e-5);
    int owner;
    size_t nw = (size_t)64 * 32 * 9;
    float *w2 = rand_buf(nw, 24);
    CHECK(cs_conv_weights_keep(&owner, w2, nw) == 0);
    CHECKF(nn_conv2d_up2(y, x, w2, NULL, 32, 64, 1, 3, 3) == -1, "up2 on 3x3 pixels under bf16: taken");
    nn_set_precision(NN_FP32);
    CHECKF(nn_conv2d_up2(y, x, w2, NULL, 32, 64, 1, 3, 3) == 0, "up2 on 3x3 pixels in fp32: refused");
    cs_conv_weights_forget(&owner);
    free(x), free(wt), free(bs), free(y), free(y2), free(ws), free(r), free(w2);
}

static void test_conv(void) {
    one_case((nn_conv2d_p){16, 64, 3, 3, 1, 1, 1, 1, 1}, 1, 32, 32, 1);
    one_case((nn_conv2d_p){32, 80, 3, 3, 1, 1, 1, 1, 1}, 3, 33, 35, 0);
    one_case((nn_conv2d_p){24, 48, 3, 3, 1, 1, 1, 1, 1}, 2, 40, 32, 1);
    one_case((nn_conv2d_p){32, 144, 3, 3, 2, 1, 1, 1, 1}, 1, 70, 66, 1);
    one_case((nn_conv2d_p){16, 32, 3, 3, 2, 0, 0, 1, 1}, 2, 64, 64, 1);
}

int main(void) {
    if (cs_cpu_isa() < CS_ISA_AVX512 || !cs_gemm_onednn_available()) {
        printf("skip: no AVX-512 or no oneDNN: the im2col path only (tests/test_nn.c)\n");
        return T_DONE();
    }
    cs_set_thread_grain(0); /* every conv on all the threads set: the counts compared are the ones run */
    RUN(test_conv);
    RUN(test_kept);
    RUN(test_up2);
    RUN(test_bf16_thin);
    return T_DONE();
}
