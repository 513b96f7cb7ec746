/* test_nn.c — core/nn ops against naive reference loops written here
 * independently (direct convolution, two-pass norms in double, attention by
 * explicit sums). */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "core/nn.h"
#include "core/parallel.h"
#include "tests/t.h"
#include "tests/test_conv_ref.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.f - 1.f;
}
static float *rand_buf(size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static double max_rel(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static int conv_case(nn_conv2d_p p, int B, int h, int w, int small_ws, int with_bias) {
    int oh = nn_conv2d_oh(&p, h), ow = nn_conv2d_ow(&p, w);
    float *x = rand_buf((size_t)B * p.cin * h * w);
    float *wt = rand_buf((size_t)p.cout * p.cin * p.kh * p.kw);
    float *bs = with_bias ? rand_buf(p.cout) : NULL;
    size_t n = (size_t)B * p.cout * oh * ow;
    float *y = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    /* small_ws: 0 full single-image workspace, 1 one row (banded), 2 batched sgemm */
    size_t wsn = small_ws == 1   ? nn_conv2d_ws_min(&p, h, w)
                 : small_ws == 2 ? nn_conv2d_ws_batched(&p, B, h, w)
                                 : nn_conv2d_ws(&p, h, w);
    float *ws = malloc(sizeof(float) * (wsn ? wsn : 1));
    nn_conv2d(y, x, wt, bs, &p, B, h, w, ws, wsn);
    double *rd = malloc(sizeof(double) * n);
    conv_ref(rd, x, wt, bs, &p, B, h, w);
    for (size_t i = 0; i < n; i++) r[i] = (float)rd[i];
    free(rd);
    double e = max_rel(y, r, n);
    int ok = e < 1e-5;
    if (!ok)
        fprintf(stderr, "conv k%dx%d s%d pad %d,%d,%d,%d ws mode %d: rel %g\n", p.kh, p.kw,
                p.stride, p.pad_t, p.pad_l, p.pad_b, p.pad_r, small_ws, e);
    free(x), free(wt), free(bs), free(y), free(r), free(ws);
    return ok;
}

static void test_conv2d(void) {
    /* 3x3 pad 1 (UNet/VAE), stride 2 pad 1 (UNet downsample), asymmetric
     * (0,0,1,1) stride 2 (VAE downsample), 1x1 (pointwise), 7x7 s2 p3 (ResNet
     * stem), 1x1 stride 2 (ResNet projection), odd sizes, banded workspace. */
    CHECK(conv_case((nn_conv2d_p){5, 7, 3, 3, 1, 1, 1, 1, 1}, 2, 9, 11, 0, 1));
    CHECK(conv_case((nn_conv2d_p){5, 7, 3, 3, 1, 1, 1, 1, 1}, 2, 9, 11, 1, 1));
    CHECK(conv_case((nn_conv2d_p){6, 4, 3, 3, 2, 1, 1, 1, 1}, 1, 10, 7, 0, 1));
    CHECK(conv_case((nn_conv2d_p){6, 4, 3, 3, 2, 0, 0, 1, 1}, 2, 8, 8, 0, 1));
    CHECK(conv_case((nn_conv2d_p){6, 4, 3, 3, 2, 0, 0, 1, 1}, 1, 9, 6, 1, 0));
    CHECK(conv_case((nn_conv2d_p){8, 5, 1, 1, 1, 0, 0, 0, 0}, 3, 6, 5, 0, 1));
    CHECK(conv_case((nn_conv2d_p){3, 8, 7, 7, 2, 3, 3, 3, 3}, 1, 17, 15, 0, 0));
    CHECK(conv_case((nn_conv2d_p){8, 6, 1, 1, 2, 0, 0, 0, 0}, 2, 7, 8, 0, 1));
    CHECK(conv_case((nn_conv2d_p){4, 4, 3, 3, 1, 2, 0, 1, 2}, 1, 5, 6, 1, 1));
    /* whole batch as one sgemm: 3x3, asymmetric stride 2, pointwise */
    CHECK(conv_case((nn_conv2d_p){5, 7, 3, 3, 1, 1, 1, 1, 1}, 3, 9, 11, 2, 1));
    CHECK(conv_case((nn_conv2d_p){6, 4, 3, 3, 2, 0, 0, 1, 1}, 2, 8, 8, 2, 1));
    CHECK(conv_case((nn_conv2d_p){8, 5, 1, 1, 1, 0, 0, 0, 0}, 2, 6, 5, 2, 0));
    /* big enough that the im2col and bias loops run threaded */
    CHECK(conv_case((nn_conv2d_p){32, 16, 3, 3, 1, 1, 1, 1, 1}, 2, 24, 24, 0, 1));
    /* on 2 and 3 threads whatever this machine has, wider shapes: 3x3,
     * stride 2, asymmetric pad, pointwise, odd sizes, no bias, each
     * workspace size */
    for (int nt = 2; nt <= 3; nt++) {
        nn_set_threads(nt);
        CHECK(conv_case((nn_conv2d_p){16, 12, 3, 3, 1, 1, 1, 1, 1}, 2, 20, 23, 0, 1));
        CHECK(conv_case((nn_conv2d_p){16, 12, 3, 3, 2, 1, 1, 1, 1}, 2, 41, 37, 0, 0));
        CHECK(conv_case((nn_conv2d_p){16, 12, 3, 3, 2, 1, 1, 1, 1}, 2, 41, 37, 1, 1));
        CHECK(conv_case((nn_conv2d_p){8, 8, 3, 3, 2, 0, 0, 1, 1}, 2, 32, 30, 2, 1));
        CHECK(conv_case((nn_conv2d_p){24, 8, 1, 1, 1, 0, 0, 0, 0}, 3, 17, 19, 0, 0));
        CHECK(conv_case((nn_conv2d_p){24, 8, 1, 1, 1, 0, 0, 0, 0}, 1, 40, 33, 1, 1));
    }
    nn_set_threads(0);
}

static void test_linear(void) {
    int T = 13, nin = 17, nout = 9;
    float *x = rand_buf((size_t)T * nin), *w = rand_buf((size_t)nout * nin), *b = rand_buf(nout);
    float *y = malloc(sizeof(float) * T * nout), *r = malloc(sizeof(float) * T * nout);
    nn_linear(y, x, w, b, T, nin, nout);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < nout; o++) {
            double s = b[o];
            for (int i = 0; i < nin; i++) s += (double)x[t * nin + i] * w[o * nin + i];
            r[t * nout + o] = (float)s;
        }
    CHECK(max_rel(y, r, (size_t)T * nout) < 1e-6);
    /* channel-major: xt [nin, T] -> [nout, T] must equal the transpose */
    float *xt = malloc(sizeof(float) * T * nin), *yc = malloc(sizeof(float) * T * nout);
    float *rt = malloc(sizeof(float) * T * nout);
    nn_transpose(xt, x, T, nin);
    nn_linear_cm(yc, xt, w, b, T, nin, nout);
    nn_transpose(rt, r, T, nout);
    CHECK(max_rel(yc, rt, (size_t)T * nout) < 1e-6);
    free(x), free(w), free(b), free(y), free(r), free(xt), free(yc), free(rt);
}

static void test_group_norm(void) {
    int B = 2, C = 64, HW = 37, G = 32;
    size_t n = (size_t)B * C * HW;
    float *x = rand_buf(n), *g = rand_buf(C), *bt = rand_buf(C);
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 3.f + 100.f; /* large mean: needs two-pass */
    float *y = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    for (int silu = 0; silu <= 1; silu++) {
        nn_group_norm(y, x, g, bt, B, C, HW, G, 1e-6f, silu);
        int cpg = C / G;
        for (int b = 0; b < B; b++)
            for (int gi = 0; gi < G; gi++) {
                double s = 0, ss = 0;
                size_t off = ((size_t)b * C + gi * cpg) * HW;
                for (int i = 0; i < cpg * HW; i++) s += x[off + i];
                double m = s / (cpg * HW);
                for (int i = 0; i < cpg * HW; i++) ss += (x[off + i] - m) * (x[off + i] - m);
                double rs = 1.0 / sqrt(ss / (cpg * HW) + 1e-6);
                for (int i = 0; i < cpg * HW; i++) {
                    int ch = gi * cpg + i / HW;
                    double v = (x[off + i] - m) * rs * g[ch] + bt[ch];
                    if (silu) v = v / (1 + exp(-v));
                    r[off + i] = (float)v;
                }
            }
        CHECKF(max_rel(y, r, n) < 2e-6, "silu=%d rel %g", silu, max_rel(y, r, n));
    }
    /* in place */
    float *x2 = malloc(sizeof(float) * n);
    memcpy(x2, x, sizeof(float) * n);
    nn_group_norm(x2, x2, g, bt, B, C, HW, G, 1e-6f, 1);
    CHECK(memcmp(x2, y, sizeof(float) * n) == 0);
    free(x), free(g), free(bt), free(y), free(r), free(x2);
}

static void test_layer_norm(void) {
    int T = 77, C = 96;
    float *x = rand_buf((size_t)T * C), *g = rand_buf(C), *b = rand_buf(C);
    float *y = malloc(sizeof(float) * T * C), *r = malloc(sizeof(float) * T * C);
    nn_layer_norm(y, x, g, b, T, C, 1e-5f);
    for (int t = 0; t < T; t++) {
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += x[t * C + c];
        double m = s / C;
        for (int c = 0; c < C; c++) ss += (x[t * C + c] - m) * (x[t * C + c] - m);
        double rs = 1 / sqrt(ss / C + 1e-5);
        for (int c = 0; c < C; c++) r[t * C + c] = (float)((x[t * C + c] - m) * rs * g[c] + b[c]);
    }
    CHECK(max_rel(y, r, (size_t)T * C) < 2e-6);
    float *xt = malloc(sizeof(float) * T * C), *rt = malloc(sizeof(float) * T * C);
    nn_transpose(xt, x, T, C);
    nn_transpose(rt, r, T, C);
    nn_layer_norm_cm(xt, xt, g, b, C, T, 1e-5f);
    CHECK(max_rel(xt, rt, (size_t)T * C) < 2e-6);
    free(x), free(g), free(b), free(y), free(r), free(xt), free(rt);
}

static void test_activations(void) {
    /* long enough for the vector paths and a scalar tail; -90..40 covers the
     * exp clamps (silu of -90 is -0, not NaN) */
    enum { N = 523 };
    float v[N], a[N], b[N], c[N];
    for (int i = 0; i < N; i++) v[i] = -90.f + 130.f * i / (N - 1);
    memcpy(a, v, sizeof v), memcpy(b, v, sizeof v), memcpy(c, v, sizeof v);
    nn_silu(a, N);
    nn_gelu_erf(b, N);
    nn_quick_gelu(c, N);
    for (int i = 0; i < N; i++) {
        double x = v[i];
        CHECKF(fabs(a[i] - x / (1 + exp(-x))) < 1e-6 * (1 + fabs(x)), "silu(%g) = %g", x, a[i]);
        CHECK(fabs(b[i] - 0.5 * x * (1 + erf(x / sqrt(2.0)))) < 1e-6 * (1 + fabs(x)));
        CHECKF(fabs(c[i] - x / (1 + exp(-1.702 * x))) < 1e-6 * (1 + fabs(x)), "qgelu(%g)", x);
    }
    /* GEGLU: value half times gelu(gate half) */
    int D = 3, T = 45;
    float *in = rand_buf(2 * D * T), *out = malloc(sizeof(float) * D * T);
    for (int i = 0; i < D * T; i++) in[D * T + i] *= 6.f; /* gates over -6..6 */
    nn_geglu_cm(out, in, D, T);
    for (int d = 0; d < D; d++)
        for (int t = 0; t < T; t++) {
            double g = in[(D + d) * T + t];
            double want = in[d * T + t] * 0.5 * g * (1 + erf(g / sqrt(2.0)));
            CHECKF(fabs(out[d * T + t] - want) < 1e-6, "geglu gate %g: %g vs %g", g,
                   out[d * T + t], want);
        }
    free(in), free(out);
}

static void test_softmax_stability(void) {
    /* large values overflow a naive exp; the stable softmax must not */
    float x[4] = {1000.f, 1001.f, 1002.f, -1e30f};
    nn_softmax(x, 1, 4);
    double e0 = exp(-2.0), e1 = exp(-1.0), s = e0 + e1 + 1;
    CHECK(fabs(x[0] - e0 / s) < 1e-6 && fabs(x[1] - e1 / s) < 1e-6 && fabs(x[2] - 1 / s) < 1e-6);
    CHECK(x[3] == 0.f);
    float y[3] = {-INFINITY, 5.f, -INFINITY};
    nn_softmax(y, 1, 3);
    CHECK(y[0] == 0.f && y[1] == 1.f && y[2] == 0.f);
    float z[2] = {-INFINITY, -INFINITY}; /* fully masked: zeros, never NaN */
    nn_softmax(z, 1, 2);
    CHECK(z[0] == 0.f && z[1] == 0.f);
}

/* reference attention: token-major q [Tq, C], k/v [Tk, C] */
static void attn_ref(float *out, const float *q, const float *k, const float *v, int Tq, int Tk,
                     int H, int dh, int causal) {
    int C = H * dh;
    double *s = malloc(sizeof(double) * Tk);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < Tq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Tk; j++) {
                double d = 0;
                for (int e = 0; e < dh; e++) d += (double)q[i * C + h * dh + e] * k[j * C + h * dh + e];
                s[j] = (causal && j > i) ? -INFINITY : d / sqrt((double)dh);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < Tk; j++) sum += (s[j] = exp(s[j] - mx));
            for (int e = 0; e < dh; e++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] / sum * v[j * C + h * dh + e];
                out[i * C + h * dh + e] = (float)o;
            }
        }
    free(s);
}

static void test_attention(void) {
    int H = 3, dh = 8, C = H * dh;
    int sizes[][2] = {{77, 77}, {50, 77}, {300, 5000}}; /* last: several query blocks */
    for (int si = 0; si < 3; si++) {
        int Tq = sizes[si][0], Tk = sizes[si][1];
        float *q = rand_buf((size_t)Tq * C), *k = rand_buf((size_t)Tk * C), *v = rand_buf((size_t)Tk * C);
        for (size_t i = 0; i < (size_t)Tq * C; i++) q[i] *= 4.f; /* peaky softmax */
        float *o = malloc(sizeof(float) * Tq * C), *r = malloc(sizeof(float) * Tq * C);
        float *ws = malloc(sizeof(float) * nn_attention_ws(Tq, Tk));
        for (int causal = 0; causal <= (Tq == Tk); causal++) {
            nn_attention(o, C, q, C, k, C, v, C, Tq, Tk, H, dh, causal, ws);
            attn_ref(r, q, k, v, Tq, Tk, H, dh, causal);
            CHECKF(max_rel(o, r, (size_t)Tq * C) < 1e-5, "Tq %d Tk %d causal %d rel %g", Tq, Tk,
                   causal, max_rel(o, r, (size_t)Tq * C));
        }
        /* channel-major variant on transposed data */
        float *qt = malloc(sizeof(float) * Tq * C), *kt = malloc(sizeof(float) * Tk * C);
        float *vt = malloc(sizeof(float) * Tk * C), *ot = malloc(sizeof(float) * Tq * C);
        float *rt = malloc(sizeof(float) * Tq * C);
        nn_transpose(qt, q, Tq, C), nn_transpose(kt, k, Tk, C), nn_transpose(vt, v, Tk, C);
        nn_attention_cm(ot, qt, kt, vt, Tq, Tk, H, dh, ws);
        attn_ref(r, q, k, v, Tq, Tk, H, dh, 0);
        nn_transpose(rt, r, Tq, C);
        CHECKF(max_rel(ot, rt, (size_t)Tq * C) < 1e-5, "cm Tq %d Tk %d", Tq, Tk);
        free(q), free(k), free(v), free(o), free(r), free(ws), free(qt), free(kt), free(vt),
            free(ot), free(rt);
    }
}

static void test_upsample_add(void) {
    float in[6] = {1, 2, 3, 4, 5, 6}; /* [1, 2, 3] */
    float out[24];
    nn_upsample_nearest2x(out, in, 1, 2, 3);
    float want[24] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6};
    CHECK(memcmp(out, want, sizeof want) == 0);
    float a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, 40}, c[4];
    nn_add(c, a, b, 4);
    CHECK(c[0] == 11 && c[3] == 44);
    nn_add_inplace(a, b, 4);
    CHECK(a[1] == 22);
    nn_scale(a, 0.5f, 4);
    CHECK(a[1] == 11);
    float x[2 * 2 * 3] = {0}, v[4] = {1, 2, 3, 4};
    nn_add_channel_bias(x, v, 2, 2, 3);
    CHECK(x[0] == 1 && x[3] == 2 && x[6] == 3 && x[11] == 4);
}

static void test_fold_batchnorm(void) {
    /* conv then BN equals the folded conv */
    nn_conv2d_p p = {3, 4, 3, 3, 1, 1, 1, 1, 1};
    int h = 6, w = 5, n = 4 * h * w;
    float *x = rand_buf(3 * h * w), *wt = rand_buf(4 * 27), *b = rand_buf(4);
    float g[4] = {1.5f, 0.5f, -1.f, 2.f}, be[4] = {0.1f, -0.2f, 0.3f, 0.f};
    float mu[4] = {0.2f, -0.1f, 0.f, 1.f}, var[4] = {0.5f, 2.f, 1.f, 0.1f};
    float *y = malloc(sizeof(float) * n), *yf = malloc(sizeof(float) * n);
    float *ws = malloc(sizeof(float) * nn_conv2d_ws(&p, h, w));
    nn_conv2d(y, x, wt, b, &p, 1, h, w, ws, nn_conv2d_ws(&p, h, w));
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < h * w; i++) {
            float *e = &y[o * h * w + i];
            *e = (*e - mu[o]) / sqrtf(var[o] + 1e-5f) * g[o] + be[o];
        }
    nn_fold_batchnorm(wt, b, 4, 27, g, be, mu, var, 1e-5f);
    nn_conv2d(yf, x, wt, b, &p, 1, h, w, ws, nn_conv2d_ws(&p, h, w));
    CHECK(max_rel(yf, y, n) < 1e-5);
    free(x), free(wt), free(b), free(y), free(yf), free(ws);
}

int main(void) {
    cs_set_thread_grain(0); /* every loop on all the threads set: the counts compared are the ones run */
    nn_set_threads(2);
    RUN(test_conv2d);
    RUN(test_linear);
    RUN(test_group_norm);
    RUN(test_layer_norm);
    RUN(test_activations);
    RUN(test_softmax_stability);
    RUN(test_attention);
    RUN(test_upsample_add);
    RUN(test_fold_batchnorm);
    nn_set_threads(1); /* the same ops inline */
    RUN(test_conv2d);
    RUN(test_group_norm);
    return T_DONE();
}
