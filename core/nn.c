/* nn.c — see nn.h. sgemm does the heavy lifting; the rest are simple loops
 * spread over threads in chunks big enough to amortise the thread start. */
#include "core/nn.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/attn.h"
#include "core/cpu.h"
#include "core/gemm.h"
#include "core/parallel.h"

/* ---- threading helpers ------------------------------------------------------- */

void nn_set_threads(int n) {
    if (n <= 0) n = cs_ncpu();
    cs_set_threads(n);
}

/* Thread counts follow the measured speed of each loop (cs_threads_for):
 * the costs below are units proportional to a loop's time, not calibrated
 * times. Before, a fixed cost model counted a multiply-add at 0.24 ns, ten
 * times oneDNN's speed on AVX-512, and sent 0.4 ms gemms of the sd-tiny
 * suite to two threads: the default -j ran slower than -j 1 (issue 19).
 * Runs fn over n items, on one thread for small work. The cut of the work
 * never depends on the thread count, so the results do not either. */
static void nn_par(int64_t n, double cost_per_item, cs_parallel_fn fn, void *ctx) {
    cs_parallel_for_work((double)n * cost_per_item, n, fn, ctx);
}

/* The kernels given a thread count (ours, the fused attention): their runs
 * that succeed are noted under the kernel's address. */
#define SITE(f) ((uintptr_t)(f))

static double g_flops, g_flops_saved;
double nn_flops(void) { return g_flops; }
double nn_flops_nominal(void) { return g_flops + g_flops_saved; }
void nn_flops_reset(void) { g_flops = 0, g_flops_saved = 0; }
void nn_flops_add(double f) { g_flops += f; }
#define FLOPS(M, N, K) (g_flops += 2.0 * (double)(M) * (double)(N) * (double)(K))

/* ---- sgemm in fixed slices (see nn.h) ------------------------------------------ */

#define GEMM_SLICE 128          /* rows or columns of C per slice */

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, by_rows;
    float alpha, beta;
    const float *A, *B;
    float *C;
    const float *bias; /* dnnl_slice only: added after the product, bias_rows: */
    int bias_rows;     /* 1: bias[i] to row i of C, 0: bias[j] to column j */
} gemm_ctx;

/* C [m, n] (row stride ldc) += bias along rows (bias[i] to row i) or columns */
/* In blocks of 16 so that -O2's cheap vectorizer makes SIMD adds of them (the
 * plain loop stayed scalar: 2.2% of the UNet at 64x64, perf). */
static void add_bias(float *C, int m, int n, int ldc, const float *restrict bias, int rows) {
    for (int i = 0; i < m; i++) {
        float *restrict c = C + (size_t)i * ldc;
        int j = 0;
        if (rows) {
            float b = bias[i];
            for (; j + 16 <= n; j += 16)
                for (int k = 0; k < 16; k++) c[j + k] += b;
            for (; j < n; j++) c[j] += b;
        } else {
            for (; j + 16 <= n; j += 16)
                for (int k = 0; k < 16; k++) c[j + k] += bias[j + k];
            for (; j < n; j++) c[j] += bias[j];
        }
    }
}

static void gemm_slice(void *vc, int64_t i, int thread) {
    (void)thread;
    const gemm_ctx *g = vc;
    int o = (int)i * GEMM_SLICE;
    CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->by_rows) { /* rows o.. of op(A) and C */
        int m = g->M - o < GEMM_SLICE ? g->M - o : GEMM_SLICE;
        const float *a = g->ta ? g->A + o : g->A + (size_t)o * g->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, m, g->N, g->K, g->alpha, a, g->lda, g->B, g->ldb, g->beta,
                    g->C + (size_t)o * g->ldc, g->ldc);
    } else { /* columns o.. of op(B) and C */
        int n = g->N - o < GEMM_SLICE ? g->N - o : GEMM_SLICE;
        const float *b = g->tb ? g->B + (size_t)o * g->ldb : g->B + o;
        cblas_sgemm(CblasRowMajor, ta, tb, g->M, n, g->K, g->alpha, g->A, g->lda, b, g->ldb, g->beta,
                    g->C + o, g->ldc);
    }
}

static void gemm_blas_single(void) { openblas_set_num_threads(1); }

static int g_backend = NN_GEMM_AUTO;
void nn_set_gemm_backend(int backend) { g_backend = backend; }
static int use_onednn(void) { return g_backend != NN_GEMM_OWN && cs_gemm_onednn_available(); }

/* oneDNN in fixed slices of C, as OpenBLAS above (each call packs its slice's
 * share of A: wider slices than OpenBLAS's keep that under 1% of the work) */
#define DNNL_SLICE 256
static void dnnl_slice(void *vc, int64_t i, int thread) {
    (void)thread;
    const gemm_ctx *g = vc;
    int o = (int)i * DNNL_SLICE;
    int rc;
    if (g->by_rows) {
        int m = g->M - o < DNNL_SLICE ? g->M - o : DNNL_SLICE;
        const float *a = g->ta ? g->A + o : g->A + (size_t)o * g->lda;
        rc = cs_gemm_onednn_1t(g->ta, g->tb, m, g->N, g->K, g->alpha, a, g->lda, g->B, g->ldb, g->beta,
                               g->C + (size_t)o * g->ldc, g->ldc);
        if (g->bias) add_bias(g->C + (size_t)o * g->ldc, m, g->N, g->ldc, g->bias_rows ? g->bias + o : g->bias,
                              g->bias_rows);
    } else {
        int n = g->N - o < DNNL_SLICE ? g->N - o : DNNL_SLICE;
        const float *b = g->tb ? g->B + (size_t)o * g->ldb : g->B + o;
        rc = cs_gemm_onednn_1t(g->ta, g->tb, g->M, n, g->K, g->alpha, g->A, g->lda, b, g->ldb, g->beta, g->C + o,
                               g->ldc);
        if (g->bias) add_bias(g->C + o, g->M, n, g->ldc, g->bias_rows ? g->bias : g->bias + o, g->bias_rows);
    }
    (void)rc; /* dnnl_sgemm fails only on bad arguments, which nn_sgemm's callers never pass */
}

static int g_precision = NN_FP32;

int nn_set_precision(int p) {
    if (p == NN_BF16 && cs_cpu_isa() < CS_ISA_AVX512_BF16) return -1;
    if (p != NN_FP32 && p != NN_BF16) return -1;
    g_precision = p;
    return 0;
}
int nn_precision(void) { return g_precision; }

/* bf16 only where it pays: products of 16 or more on every side. A thinner
 * one (the time-embedding MLP at N = batch, the UNet's conv_out at M = 4, a
 * conv_in at K = 36) is bound by memory and packing, not by multiplies. */
static int use_bf16(int M, int N, int K, int isa) {
    return g_precision == NN_BF16 && isa >= CS_ISA_AVX512_BF16 && M >= NN_BF16_MIN_SIDE && N >= NN_BF16_MIN_SIDE &&
           K >= NN_BF16_MIN_SIDE;
}

void nn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, gemm_blas_single);
    if (M <= 0 || N <= 0) return;
    int isa = cs_cpu_isa();
    if (isa >= CS_ISA_AVX512) { /* our kernel; OpenBLAS (held to AVX2 here) if out of memory */
        double macs = (double)M * N * K;
        int bf16 = use_bf16(M, N, K, isa);
        if (!bf16 && use_onednn()) {
            gemm_ctx g = {trans_a, trans_b, M, N, K, lda, ldb, ldc, M > N, alpha, beta, A, B, C, NULL, 0};
            int64_t slices = ((g.by_rows ? M : N) + DNNL_SLICE - 1) / DNNL_SLICE;
            cs_parallel_for_work(macs, slices, dnnl_slice, &g);
            return;
        }
        cs_work w = cs_work_begin(SITE(cs_gemm_avx512), macs);
        if (cs_gemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16, w.threads) == 0) {
            cs_work_end(&w, macs);
            return;
        }
    }
    /* the cut depends on the shape only, never on the thread count */
    gemm_ctx g = {trans_a, trans_b, M, N, K, lda, ldb, ldc, M > N, alpha, beta, A, B, C, NULL, 0};
    int64_t slices = ((g.by_rows ? M : N) + GEMM_SLICE - 1) / GEMM_SLICE;
    cs_parallel_for_work((double)M * N * K, slices, gemm_slice, &g);
}

/* C [M, N] = A [M, K] B [K, N] + bias (along rows: bias[i] to row i, else
 * along columns; NULL: none), row-major, not transposed. On the oneDNN path
 * each slice adds the bias right after its product, while the slice is in
 * cache (a fill of C beforehand and beta = 1 cost a pass over C each: 6% of
 * the UNet, perf); elsewhere C is filled with the bias and summed onto. */
static void sgemm_bias(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                       const float *bias, int rows) {
    if (M <= 0 || N <= 0) return;
    int isa = cs_cpu_isa();
    if (bias && isa >= CS_ISA_AVX512 && !use_bf16(M, N, K, isa) && use_onednn()) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, gemm_blas_single);
        gemm_ctx g = {0, 0, M, N, K, lda, ldb, ldc, M > N, 1.f, 0.f, A, B, C, bias, rows};
        int64_t slices = ((g.by_rows ? M : N) + DNNL_SLICE - 1) / DNNL_SLICE;
        cs_parallel_for_work((double)M * N * K, slices, dnnl_slice, &g);
        return;
    }
    if (bias) { /* rows: in blocks of 16, which -O2 vectorizes (the plain loop stayed scalar: 5% of the bf16 UNet, perf) */
        for (int i = 0; i < M; i++) {
            float *restrict c = C + (size_t)i * ldc;
            if (rows) {
                float b = bias[i];
                int j = 0;
                for (; j + 16 <= N; j += 16)
                    for (int k = 0; k < 16; k++) c[j + k] = b;
                for (; j < N; j++) c[j] = b;
            } else {
                memcpy(c, bias, sizeof(float) * N);
            }
        }
    }
    nn_sgemm(0, 0, M, N, K, 1.f, A, lda, B, ldb, bias ? 1.f : 0.f, C, ldc);
}

void nn_sgemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int isa = cs_cpu_isa();
    if (isa >= CS_ISA_AVX512) {
        int bf16 = use_bf16(M, N, K, isa);
        if (!bf16 && use_onednn() &&
            cs_gemm_onednn_1t(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
            return;
        if (cs_gemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16, 1) == 0)
            return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}

#define NN_CHUNK 16384 /* elements per parallel item in elementwise loops */

/* ---- convolution ---------------------------------------------------------------- */

int nn_conv2d_oh(const nn_conv2d_p *p, int h) {
    return (h + p->pad_t + p->pad_b - p->kh) / p->stride + 1;
}
int nn_conv2d_ow(const nn_conv2d_p *p, int w) {
    return (w + p->pad_l + p->pad_r - p->kw) / p->stride + 1;
}

static int conv_is_pointwise(const nn_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && !p->pad_t && !p->pad_l && !p->pad_b &&
           !p->pad_r;
}

size_t nn_conv2d_ws(const nn_conv2d_p *p, int h, int w) {
    if (conv_is_pointwise(p)) return 0;
    return (size_t)p->cin * p->kh * p->kw * nn_conv2d_oh(p, h) * nn_conv2d_ow(p, w);
}

size_t nn_conv2d_ws_min(const nn_conv2d_p *p, int h, int w) {
    (void)h;
    if (conv_is_pointwise(p)) return 0;
    return (size_t)p->cin * p->kh * p->kw * nn_conv2d_ow(p, w);
}

size_t nn_conv2d_ws_batched(const nn_conv2d_p *p, int B, int h, int w) {
    size_t ohw = (size_t)nn_conv2d_oh(p, h) * nn_conv2d_ow(p, w);
    size_t K = conv_is_pointwise(p) ? (size_t)p->cin : (size_t)p->cin * p->kh * p->kw;
    return (K + p->cout) * B * ohw;
}

typedef struct {
    const float *in; /* [cin, h, w] one image */
    float *col;      /* [cin*kh*kw, ldcol]: this image's rows*ow columns */
    const nn_conv2d_p *p;
    int h, w, ow, r0, rows;
    size_t ldcol;
} im2col_ctx;

/* One row of the column matrix: input channel ci, kernel tap (ki, kj). */
static void im2col_row(void *vctx, int64_t idx, int thread) {
    (void)thread;
    im2col_ctx *c = vctx;
    const nn_conv2d_p *p = c->p;
    int ci = (int)(idx / (p->kh * p->kw));
    int kk = (int)(idx % (p->kh * p->kw));
    int ki = kk / p->kw, kj = kk % p->kw;
    const float *src = c->in + (size_t)ci * c->h * c->w;
    float *dst = c->col + (size_t)idx * c->ldcol;
    int s = p->stride;
    for (int r = 0; r < c->rows; r++) {
        int iy = (c->r0 + r) * s - p->pad_t + ki;
        float *d = dst + (size_t)r * c->ow;
        if (iy < 0 || iy >= c->h) {
            memset(d, 0, sizeof(float) * c->ow);
            continue;
        }
        const float *srow = src + (size_t)iy * c->w;
        if (s == 1) {
            /* valid ox range: 0 <= ox - pad_l + kj < w */
            int lo = p->pad_l - kj, hi = c->w + p->pad_l - kj; /* ox in [lo, hi) */
            if (lo < 0) lo = 0;
            if (hi > c->ow) hi = c->ow;
            if (hi < lo) hi = lo;
            for (int ox = 0; ox < lo; ox++) d[ox] = 0.f;
            if (hi > lo) memcpy(d + lo, srow + lo - p->pad_l + kj, sizeof(float) * (hi - lo));
            for (int ox = hi; ox < c->ow; ox++) d[ox] = 0.f;
        } else {
            for (int ox = 0; ox < c->ow; ox++) {
                int ix = ox * s - p->pad_l + kj;
                d[ox] = (ix >= 0 && ix < c->w) ? srow[ix] : 0.f;
            }
        }
    }
}


/* The whole batch as one sgemm: col [K, B*ohw] -> stage [cout, B*ohw] -> out NCHW. */
static void conv2d_batched(float *out, const float *in, const float *weight, const float *bias,
                           const nn_conv2d_p *p, int B, int h, int w, float *ws) {
    int oh = nn_conv2d_oh(p, h), ow = nn_conv2d_ow(p, w);
    size_t ohw = (size_t)oh * ow, N = (size_t)B * ohw;
    int pw = conv_is_pointwise(p);
    int K = pw ? p->cin : p->cin * p->kh * p->kw;
    float *col = ws, *stage = ws + (size_t)K * N;
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * p->cin * h * w;
        if (pw) {
            for (int c = 0; c < p->cin; c++)
                memcpy(col + (size_t)c * N + b * ohw, x + (size_t)c * ohw, sizeof(float) * ohw);
        } else {
            im2col_ctx c = {x, col + b * ohw, p, h, w, ow, 0, oh, N};
            nn_par(K, (double)ohw, im2col_row, &c);
        }
    }
    FLOPS(p->cout, N, K);
    sgemm_bias(p->cout, (int)N, K, weight, K, col, (int)N, stage, (int)N, bias, 1);
    for (int b = 0; b < B; b++)
        for (int co = 0; co < p->cout; co++)
            memcpy(out + ((size_t)b * p->cout + co) * ohw, stage + (size_t)co * N + b * ohw,
                   sizeof(float) * ohw);
}

/* A conv of at least this many output pixels per image goes to oneDNN's
 * convolution (core/conv_onednn.c: no im2col copy; unless the owner kept
 * them, its weights are reordered per call, which smaller images do not
 * amortise: measured with bench/bench_gemm.c, at 16x16 it was 13-15% slower
 * than im2col + sgemm, at 32x32 and up 5-50% faster, bf16 1.3-2.7x). With
 * kept weights (cs_conv_weights_keep: a loaded model's), bf16 down to 8x8:
 * bench_gemm, UNet 1280->1280 batch 2, GFLOP per CPU-second, kept primitive
 * vs im2col: 16x16 bf16 387 vs 240, 8x8 bf16 318 vs 138. fp32 stays im2col
 * below 32x32: 16x16 180 vs 171 per shape (within the noise), 8x8 159 vs
 * 169, and the whole UNet took 3-6% more CPU time with them (bench_sd
 * BENCH_SD_AB, two runs under load). */
#define NN_DIRECT_MIN_OHW 1024
#define NN_DIRECT_KEPT_MIN_OHW 1024
#define NN_DIRECT_KEPT_MIN_OHW_BF16 64
static int g_conv_direct = 2;
void nn_set_conv_direct(int on) { g_conv_direct = on; }

void nn_conv2d(float *out, const float *in, const float *weight, const float *bias,
               const nn_conv2d_p *p, int B, int h, int w, float *ws, size_t ws_floats) {
    int oh = nn_conv2d_oh(p, h), ow = nn_conv2d_ow(p, w);
    int K = p->cin * p->kh * p->kw;
    size_t ohw = (size_t)oh * ow;
    int isa = cs_cpu_isa();
    /* a conv over few input taps (K < NN_BF16_MIN_CONV_K: the UNet's and the
     * VAE's conv_in, K = 36) stays fp32: bound by memory, bf16 would not
     * speed it, and it would round the model's input itself (sd-tiny UNet
     * bf16 0.92e-2 -> 0.75e-2 relative) */
    if (K < NN_BF16_MIN_CONV_K && g_precision == NN_BF16) {
        g_precision = NN_FP32;
        nn_conv2d(out, in, weight, bias, p, B, h, w, ws, ws_floats);
        g_precision = NN_BF16;
        return;
    }
    int bf = isa >= CS_ISA_AVX512 ? use_bf16(p->cout, (int)ohw, K, isa) : 0;
    /* kept copies only where they pay (smaller images; memory: a model's
     * weights + 2 GB); from 32x32 the per-call reorder is amortised */
    int kept = g_conv_direct == 1 || ohw >= NN_DIRECT_MIN_OHW ? -1 : 1;
    if (isa >= CS_ISA_AVX512 && g_conv_direct && g_backend != NN_GEMM_OWN && !conv_is_pointwise(p) &&
        ohw >= (kept < 0 ? NN_DIRECT_MIN_OHW : bf ? NN_DIRECT_KEPT_MIN_OHW_BF16 : NN_DIRECT_KEPT_MIN_OHW)) {
        double macs = (double)p->cout * ohw * K * B;
        cs_work wk = cs_work_begin(SITE(cs_conv_onednn), macs);
        if (cs_conv_onednn(out, in, weight, bias, p->cin, p->cout, p->kh, p->kw, p->stride, p->pad_t, p->pad_l,
                           p->pad_b, p->pad_r, B, h, w, bf, kept, wk.threads) == 0) {
            cs_work_end(&wk, macs);
            FLOPS(p->cout, ohw * B, K);
            return;
        }
    }
    if (B > 1 && ws && ws_floats >= nn_conv2d_ws_batched(p, B, h, w)) {
        conv2d_batched(out, in, weight, bias, p, B, h, w, ws);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * p->cin * h * w;
        float *y = out + (size_t)b * p->cout * ohw;
        if (conv_is_pointwise(p)) {
            FLOPS(p->cout, ohw, p->cin);
            sgemm_bias(p->cout, (int)ohw, p->cin, weight, p->cin, x, (int)ohw, y, (int)ohw, bias, 1);
            continue;
        }
        /* rows of output per band, so that the column matrix fits the workspace */
        size_t per_row = (size_t)K * ow;
        int band = (int)(ws_floats / per_row);
        if (band < 1) band = 1; /* caller's contract: ws >= nn_conv2d_ws_min */
        if (band > oh) band = oh;
        for (int r0 = 0; r0 < oh; r0 += band) {
            int rows = r0 + band <= oh ? band : oh - r0;
            im2col_ctx c = {x, ws, p, h, w, ow, r0, rows, (size_t)rows * ow};
            nn_par(K, (double)rows * ow, im2col_row, &c);
            FLOPS(p->cout, rows * ow, K);
            sgemm_bias(p->cout, rows * ow, K, weight, K, ws, rows * ow, y + (size_t)r0 * ow, (int)ohw, bias, 1);
        }
    }
}

int nn_conv2d_up2(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int B,
                  int h, int w) {
    int isa = cs_cpu_isa();
    if (isa < CS_ISA_AVX512 || g_conv_direct != 2 || g_backend == NN_GEMM_OWN) return -1;
    int bf = use_bf16(cout, h * w, cin * 4, isa);
    /* under bf16 an fp32 kept conv would drop the bf16 kept copies (one
     * precision kept, core/conv_onednn.c): a thin one takes the unfused path */
    if (g_precision == NN_BF16 && !bf) return -1;
    double macs = (double)cout * cin * 16 * h * w * B;
    cs_work wk = cs_work_begin(SITE(cs_conv_onednn_up2), macs);
    if (cs_conv_onednn_up2(out, in, weight, bias, cin, cout, B, h, w, bf, wk.threads)) return -1;
    cs_work_end(&wk, macs);
    FLOPS(cout, (size_t)4 * h * w * B, cin * 4);
    g_flops_saved += 2.0 * cout * (4.0 * h * w * B) * cin * (9 - 4); /* the 3x3 conv it stands for */
    return 0;
}

/* ---- linear ------------------------------------------------------------------------ */

void nn_linear(float *out, const float *in, const float *weight, const float *bias, int T,
               int nin, int nout) {
    if (bias) {
        for (int t = 0; t < T; t++) memcpy(out + (size_t)t * nout, bias, sizeof(float) * nout);
    }
    FLOPS(T, nout, nin);
    nn_sgemm(0, 1, T, nout, nin, 1.f, in, nin, weight, nin,
                bias ? 1.f : 0.f, out, nout);
}

void nn_linear_cm(float *out, const float *in, const float *weight, const float *bias, int T,
                  int nin, int nout) {
    FLOPS(nout, T, nin);
    sgemm_bias(nout, T, nin, weight, nin, in, T, out, T, bias, 1);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* exp(x) for x <= 88; 0 below -87 (softmax arguments are <= 0, -inf included). */
__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static int have_avx2(void) {
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return v;
}

/* x / (1 + exp(-k x)): SiLU (k = 1) and CLIP's quick GELU (k = 1.702). */
__attribute__((target("avx2,fma"))) static void sigmul_avx2(float *x, size_t n, float k) {
    __m256 vk = _mm256_set1_ps(-k), one = _mm256_set1_ps(1.f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = exp256(_mm256_mul_ps(vk, v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = x[i] / (1.f + expf(-k * x[i]));
}

/* y = val * gelu_erf(gate), erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7). */
__attribute__((target("avx2,fma"))) static void geglu_avx2(float *y, const float *val,
                                                           const float *gate, size_t n) {
    const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f), one = _mm256_set1_ps(1.f);
    const __m256 half = _mm256_set1_ps(0.5f), p = _mm256_set1_ps(0.3275911f);
    const __m256 sign = _mm256_set1_ps(-0.f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 u = _mm256_mul_ps(g, rs2);
        __m256 a = _mm256_andnot_ps(sign, u);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(p, a, one));
        __m256 q = _mm256_set1_ps(1.061405429f);
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.453152027f));
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.421413741f));
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.284496736f));
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.254829592f));
        q = _mm256_mul_ps(q, t);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
        __m256 erfa = _mm256_fnmadd_ps(q, e, one);                      /* erf(|u|) */
        __m256 erfu = _mm256_or_ps(erfa, _mm256_and_ps(sign, u));       /* sign of u */
        __m256 gl = _mm256_mul_ps(_mm256_mul_ps(half, g), _mm256_add_ps(one, erfu));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(val + i), gl));
    }
    for (; i < n; i++) {
        float g = gate[i];
        y[i] = val[i] * (0.5f * g * (1.f + erff(g * (float)M_SQRT1_2)));
    }
}
#endif

static void sigmul_span(float *x, size_t n, float k) {
#if defined(__x86_64__)
    if (have_avx2()) {
        sigmul_avx2(x, n, k);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.f + expf(-k * x[i]));
}

static void geglu_span(float *y, const float *val, const float *gate, size_t n) {
#if defined(__x86_64__)
    if (have_avx2()) {
        geglu_avx2(y, val, gate, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        y[i] = val[i] * (0.5f * g * (1.f + erff(g * (float)M_SQRT1_2)));
    }
}

/* ---- normalisation --------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *in, *gamma, *beta;
    int C, HW, G;
    float eps;
    int silu;
} gn_ctx;


#define GN_SPAN 2048 /* floats normalised, then SiLU'd, at a time: 8 KB, in L1 */

static void gn_group(void *vctx, int64_t idx, int thread) {
    (void)thread;
    gn_ctx *c = vctx;
    int cpg = c->C / c->G;
    int g = (int)(idx % c->G);
    size_t n = (size_t)cpg * c->HW;
    const float *x = c->in + (size_t)idx * n; /* groups are contiguous in NCHW */
    float *y = c->out + (size_t)idx * n;
    /* sum and sum of squares in one pass (a VAE group at 512x512 is 4 MB:
     * each pass is a trip to memory), in 8 lanes of doubles (then the lanes
     * in order): one chain of dependent adds was latency-bound (1.5% of the
     * UNet at 64x64). Var = E[x^2] - mean^2 in double: exact enough unless
     * |mean| / std passed ~1e4 (then still ~1e-8 relative). */
    double sl[8] = {0}, vl[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            double v = x[i + k];
            sl[k] += v, vl[k] += v * v;
        }
    for (; i < n; i++) sl[i % 8] += x[i], vl[i % 8] += (double)x[i] * x[i];
    double sum = 0, sq = 0;
    for (int k = 0; k < 8; k++) sum += sl[k], sq += vl[k];
    double mean = sum / (double)n, var = sq / (double)n - mean * mean;
    if (var < 0) var = 0;
    float rstd = (float)(1.0 / sqrt(var + c->eps));
    float fmean = (float)mean;
    for (int cc = 0; cc < cpg; cc++) {
        int ch = g * cpg + cc;
        float a = rstd * (c->gamma ? c->gamma[ch] : 1.f);
        float bb = c->beta ? c->beta[ch] : 0.f;
        const float *xs = x + (size_t)cc * c->HW;
        float *ys = y + (size_t)cc * c->HW;
        /* in spans of GN_SPAN, the SiLU while the span is in L1 (after the
         * whole row, a 512x512 plane of 1 MB came back from L2 or memory);
         * blocks of 16 through a local copy (out may be in): -O2 vectorizes
         * them; the plain loop stayed scalar (in place, it cannot prove no overlap) */
        for (int j0 = 0; j0 < c->HW; j0 += GN_SPAN) {
            int j1 = j0 + GN_SPAN < c->HW ? j0 + GN_SPAN : c->HW, j = j0;
            for (; j + 16 <= j1; j += 16) {
                float t[16];
                for (int k = 0; k < 16; k++) t[k] = xs[j + k];
                for (int k = 0; k < 16; k++) ys[j + k] = (t[k] - fmean) * a + bb;
            }
            for (; j < j1; j++) ys[j] = (xs[j] - fmean) * a + bb;
            if (c->silu) sigmul_span(ys + j0, (size_t)(j1 - j0), 1.f);
        }
    }
}

void nn_group_norm(float *out, const float *in, const float *gamma, const float *beta, int B,
                   int C, int HW, int G, float eps, int silu) {
    gn_ctx c = {out, in, gamma, beta, C, HW, G, eps, silu};
    nn_par((int64_t)B * G, (double)C / G * HW * 4, gn_group, &c);
}

typedef struct {
    float *out;
    const float *in, *gamma, *beta;
    int T, C;
    float eps;
} ln_ctx;

static void ln_row(void *vctx, int64_t t, int thread) {
    (void)thread;
    ln_ctx *c = vctx;
    const float *x = c->in + (size_t)t * c->C;
    float *y = c->out + (size_t)t * c->C;
    double sum = 0;
    for (int i = 0; i < c->C; i++) sum += x[i];
    double mean = sum / c->C, var = 0;
    for (int i = 0; i < c->C; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= c->C;
    float rstd = (float)(1.0 / sqrt(var + c->eps)), fm = (float)mean;
    for (int i = 0; i < c->C; i++) y[i] = (x[i] - fm) * rstd * c->gamma[i] + c->beta[i];
}

void nn_layer_norm(float *out, const float *in, const float *gamma, const float *beta, int T,
                   int C, float eps) {
    ln_ctx c = {out, in, gamma, beta, T, C, eps};
    nn_par(T, (double)C * 4, ln_row, &c);
}

#define LN_CM_TILE 64 /* tokens per parallel item */

/* nt tokens from t0; inlined with nt a constant for full tiles, where -O2
 * vectorizes its loops (with nt unknown they stayed scalar: 1.4% of the UNet) */
static inline __attribute__((always_inline)) void ln_cm_span(const ln_ctx *c, int t0, int nt) {
    double sum[LN_CM_TILE] = {0}, var[LN_CM_TILE] = {0};
    float mean[LN_CM_TILE], rstd[LN_CM_TILE];
    for (int ch = 0; ch < c->C; ch++) {
        const float *x = c->in + (size_t)ch * c->T + t0;
        for (int i = 0; i < nt; i++) sum[i] += x[i];
    }
    for (int i = 0; i < nt; i++) sum[i] /= c->C;
    for (int ch = 0; ch < c->C; ch++) {
        const float *x = c->in + (size_t)ch * c->T + t0;
        for (int i = 0; i < nt; i++) {
            double d = x[i] - sum[i];
            var[i] += d * d;
        }
    }
    for (int i = 0; i < nt; i++) {
        mean[i] = (float)sum[i];
        rstd[i] = (float)(1.0 / sqrt(var[i] / c->C + c->eps));
    }
    for (int ch = 0; ch < c->C; ch++) {
        const float *x = c->in + (size_t)ch * c->T + t0;
        float *y = c->out + (size_t)ch * c->T + t0;
        float g = c->gamma[ch], b = c->beta[ch];
        for (int i = 0; i < nt; i++) y[i] = (x[i] - mean[i]) * rstd[i] * g + b;
    }
}

static void ln_cm_tile(void *vctx, int64_t tile, int thread) {
    (void)thread;
    const ln_ctx *c = vctx;
    int t0 = (int)tile * LN_CM_TILE;
    if (c->T - t0 >= LN_CM_TILE) ln_cm_span(c, t0, LN_CM_TILE);
    else ln_cm_span(c, t0, c->T - t0);
}

void nn_layer_norm_cm(float *out, const float *in, const float *gamma, const float *beta, int C,
                      int T, float eps) {
    ln_ctx c = {out, in, gamma, beta, T, C, eps};
    int64_t tiles = (T + LN_CM_TILE - 1) / LN_CM_TILE;
    nn_par(tiles, (double)C * LN_CM_TILE * 4, ln_cm_tile, &c);
}

void nn_fold_batchnorm(float *weight, float *bias, int cout, size_t per_out, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps) {
    for (int o = 0; o < cout; o++) {
        float s = gamma[o] / sqrtf(var[o] + eps);
        float *w = weight + (size_t)o * per_out;
        for (size_t i = 0; i < per_out; i++) w[i] *= s;
        bias[o] = (bias[o] - mean[o]) * s + beta[o];
    }
}

/* ---- activations ----------------------------------------------------------------------- */

typedef struct {
    float *x;
    const float *y;
    float *out;
    size_t n;
    float s;
    int op;
} ew_ctx;

enum { EW_SILU, EW_GELU, EW_QGELU, EW_RELU, EW_ADD, EW_ADDIP, EW_SCALE };

static void ew_chunk(void *vctx, int64_t ci, int thread) {
    (void)thread;
    ew_ctx *c = vctx;
    size_t i0 = (size_t)ci * NN_CHUNK, i1 = i0 + NN_CHUNK < c->n ? i0 + NN_CHUNK : c->n;
    float *x = c->x;
    switch (c->op) {
    case EW_SILU: sigmul_span(x + i0, i1 - i0, 1.f); break;
    case EW_GELU:
        for (size_t i = i0; i < i1; i++) x[i] = 0.5f * x[i] * (1.f + erff(x[i] * (float)M_SQRT1_2));
        break;
    case EW_QGELU: sigmul_span(x + i0, i1 - i0, 1.702f); break;
    case EW_RELU:
        for (size_t i = i0; i < i1; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
        break;
    case EW_ADD: /* blocks of 16 through a local copy: vectorized at -O2 (out may be an input) */
    case EW_ADDIP: {
        float *o = c->op == EW_ADD ? c->out : x;
        size_t i = i0;
        for (; i + 16 <= i1; i += 16) {
            float t[16];
            for (int k = 0; k < 16; k++) t[k] = x[i + k];
            for (int k = 0; k < 16; k++) t[k] += c->y[i + k];
            for (int k = 0; k < 16; k++) o[i + k] = t[k];
        }
        for (; i < i1; i++) o[i] = x[i] + c->y[i];
        break;
    }
    case EW_SCALE:
        for (size_t i = i0; i < i1; i++) x[i] *= c->s;
        break;
    }
}

static void ew_run(ew_ctx *c, double cost) {
    int64_t chunks = (int64_t)((c->n + NN_CHUNK - 1) / NN_CHUNK);
    nn_par(chunks, cost * NN_CHUNK, ew_chunk, c);
}

void nn_silu(float *x, size_t n) { ew_run(&(ew_ctx){.x = x, .n = n, .op = EW_SILU}, 8); }
void nn_gelu_erf(float *x, size_t n) { ew_run(&(ew_ctx){.x = x, .n = n, .op = EW_GELU}, 8); }
void nn_quick_gelu(float *x, size_t n) { ew_run(&(ew_ctx){.x = x, .n = n, .op = EW_QGELU}, 8); }
void nn_relu(float *x, size_t n) { ew_run(&(ew_ctx){.x = x, .n = n, .op = EW_RELU}, 1); }
void nn_add(float *out, const float *a, const float *b, size_t n) {
    ew_run(&(ew_ctx){.x = (float *)a, .y = b, .out = out, .n = n, .op = EW_ADD}, 1);
}
void nn_add_inplace(float *x, const float *y, size_t n) {
    ew_run(&(ew_ctx){.x = x, .y = y, .n = n, .op = EW_ADDIP}, 1);
}
void nn_scale(float *x, float s, size_t n) {
    ew_run(&(ew_ctx){.x = x, .s = s, .n = n, .op = EW_SCALE}, 1);
}

typedef struct {
    float *out;
    const float *in;
    int D, T;
} geglu_ctx;

static void geglu_row(void *vctx, int64_t d, int thread) {
    (void)thread;
    geglu_ctx *c = vctx;
    const float *val = c->in + (size_t)d * c->T;
    const float *gate = c->in + (size_t)(c->D + d) * c->T;
    float *y = c->out + (size_t)d * c->T;
    geglu_span(y, val, gate, (size_t)c->T);
}

void nn_geglu_cm(float *out, const float *in, int D, int T) {
    geglu_ctx c = {out, in, D, T};
    nn_par(D, (double)T * 10, geglu_row, &c);
}

typedef struct {
    float *x;
    int cols;
} sm_ctx;

/* Softmax of one row. The AVX2 path evaluates exp with a Cephes-style
 * polynomial (max error ~2 ulp, like a different summation order), eight
 * lanes at a time: the row-wise exp is the one elementwise op whose count
 * grows with T^2 (64x64 latents: over a billion per UNet pass), and libm's
 * scalar expf made it a sixth of the forward time. */
static void softmax_row_scalar(float *r, int cols) {
    float mx = -INFINITY;
    for (int j = 0; j < cols; j++) mx = r[j] > mx ? r[j] : mx;
    if (mx == -INFINITY) { /* fully masked row: define as zeros rather than NaN */
        memset(r, 0, sizeof(float) * cols);
        return;
    }
    float sum = 0.f;
    for (int j = 0; j < cols; j++) {
        r[j] = expf(r[j] - mx);
        sum += r[j];
    }
    float inv = 1.f / sum;
    for (int j = 0; j < cols; j++) r[j] *= inv;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static float hsum256(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

__attribute__((target("avx2,fma"))) static void softmax_row_avx2(float *r, int cols) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= cols; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(r + j));
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, vm);
    for (int l = 0; l < 8; l++) mx = lanes[l] > mx ? lanes[l] : mx;
    for (int k = j; k < cols; k++) mx = r[k] > mx ? r[k] : mx;
    if (mx == -INFINITY) {
        memset(r, 0, sizeof(float) * cols);
        return;
    }
    __m256 vmx = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= cols; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(r + j), vmx));
        _mm256_storeu_ps(r + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hsum256(vs);
    if (j < cols) { /* tail through the same polynomial */
        float tail[8];
        int n = cols - j;
        for (int l = 0; l < 8; l++) tail[l] = l < n ? r[j + l] - mx : -INFINITY;
        _mm256_storeu_ps(tail, exp256(_mm256_loadu_ps(tail)));
        for (int l = 0; l < n; l++) r[j + l] = tail[l], sum += tail[l];
    }
    __m256 vi = _mm256_set1_ps(1.f / sum);
    for (j = 0; j + 8 <= cols; j += 8) _mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), vi));
    for (; j < cols; j++) r[j] *= 1.f / sum;
}

static void softmax_row(float *r, int cols) {
    if (have_avx2()) softmax_row_avx2(r, cols);
    else softmax_row_scalar(r, cols);
}
#else
static void softmax_row(float *r, int cols) { softmax_row_scalar(r, cols); }
#endif

static void sm_row(void *vctx, int64_t i, int thread) {
    (void)thread;
    sm_ctx *c = vctx;
    softmax_row(c->x + (size_t)i * c->cols, c->cols);
}

void nn_softmax(float *x, int rows, int cols) {
    sm_ctx c = {x, cols};
    nn_par(rows, (double)cols * 8, sm_row, &c);
}

/* ---- attention ------------------------------------------------------------------------- */

#define ATT_SCORES (1 << 20) /* floats of scores per query block (4 MB) */

static int att_block(int Tq, int Tk) {
    int bq = ATT_SCORES / (Tk > 0 ? Tk : 1);
    if (bq < 1) bq = 1;
    if (bq > Tq) bq = Tq;
    return bq;
}

size_t nn_attention_ws(int Tq, int Tk) { return (size_t)att_block(Tq, Tk) * Tk; }

typedef struct {
    float *s;
    int cols, i0;
} causal_ctx;

static void causal_row(void *vctx, int64_t r, int thread) {
    (void)thread;
    causal_ctx *c = vctx;
    float *row = c->s + (size_t)r * c->cols;
    for (int j = c->i0 + (int)r + 1; j < c->cols; j++) row[j] = -INFINITY;
    softmax_row(row, c->cols);
}

void nn_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                  const float *v, int ldv, int Tq, int Tk, int heads, int dh, int causal,
                  float *ws) {
    float scale = 1.f / sqrtf((float)dh);
    int bq = att_block(Tq, Tk);
    FLOPS(2 * heads, (double)Tq * Tk, dh); /* QK^T and PV */
    for (int h = 0; h < heads; h++) {
        for (int i0 = 0; i0 < Tq; i0 += bq) {
            int n = i0 + bq <= Tq ? bq : Tq - i0;
            nn_sgemm(0, 1, n, Tk, dh, scale,
                        q + (size_t)i0 * ldq + h * dh, ldq, k + h * dh, ldk, 0.f, ws, Tk);
            if (causal) {
                causal_ctx c = {ws, Tk, i0};
                nn_par(n, (double)Tk * 8, causal_row, &c);
            } else {
                nn_softmax(ws, n, Tk);
            }
            nn_sgemm(0, 0, n, dh, Tk, 1.f, ws, Tk,
                        v + h * dh, ldv, 0.f, out + (size_t)i0 * ldo + h * dh, ldo);
        }
    }
}

static int g_attn_bf16 = NN_ATTN_BF16_QK | NN_ATTN_BF16_PV;
void nn_set_attention_bf16(int parts) { g_attn_bf16 = parts & (NN_ATTN_BF16_QK | NN_ATTN_BF16_PV); }

void nn_attention_cm_ld(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                        const float *v, int ldv, int Tq, int Tk, int heads, int dh, float *ws) {
    int isa = cs_cpu_isa();
    if (isa >= CS_ISA_AVX512) { /* fused, scores kept in cache (core/attn.h) */
        double macs = 2.0 * Tq * Tk * dh * heads;
        /* bf16 as the products: where every side is >= NN_BF16_MIN_SIDE */
        int bf = use_bf16(Tq, Tk, dh, isa) ? (g_attn_bf16 & NN_ATTN_BF16_QK ? CS_ATTN_BF16_QK : 0) |
                                                 (g_attn_bf16 & NN_ATTN_BF16_PV ? CS_ATTN_BF16_PV : 0)
                                           : 0;
        cs_work w = cs_work_begin(SITE(cs_attn_avx512), macs);
        if (cs_attn_avx512(out, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, bf, w.threads) == 0) {
            cs_work_end(&w, macs);
            FLOPS(2 * heads, (double)Tq * Tk, dh);
            return;
        }
    }
    float scale = 1.f / sqrtf((float)dh);
    int bq = att_block(Tq, Tk);
    FLOPS(2 * heads, (double)Tq * Tk, dh); /* QK^T and PV */
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (size_t)h * dh * ldq; /* [dh, Tq], row stride ldq */
        const float *kh = k + (size_t)h * dh * ldk; /* [dh, Tk] */
        const float *vh = v + (size_t)h * dh * ldv; /* [dh, Tk] */
        float *oh = out + (size_t)h * dh * ldo;     /* [dh, Tq] */
        for (int i0 = 0; i0 < Tq; i0 += bq) {
            int n = i0 + bq <= Tq ? bq : Tq - i0;
            /* S [n, Tk] = scale * Q[:, i0:i0+n]^T K */
            nn_sgemm(1, 0, n, Tk, dh, scale, qh + i0, ldq,
                        kh, ldk, 0.f, ws, Tk);
            nn_softmax(ws, n, Tk);
            /* O[:, i0:i0+n] = V S^T */
            nn_sgemm(0, 1, dh, n, Tk, 1.f, vh, ldv, ws, Tk,
                        0.f, oh + i0, ldo);
        }
    }
}

void nn_attention_cm(float *out, const float *q, const float *k, const float *v, int Tq, int Tk,
                     int heads, int dh, float *ws) {
    nn_attention_cm_ld(out, Tq, q, Tq, k, Tk, v, Tk, Tq, Tk, heads, dh, ws);
}

/* ---- shape and elementwise helpers ----------------------------------------------------- */

typedef struct {
    float *out;
    const float *in;
    int h, w;
} up_ctx;

static void up_plane(void *vctx, int64_t i, int thread) {
    (void)thread;
    up_ctx *c = vctx;
    const float *x = c->in + (size_t)i * c->h * c->w;
    float *y = c->out + (size_t)i * 4 * c->h * c->w;
    int W2 = 2 * c->w;
    for (int r = 0; r < c->h; r++) {
        float *d = y + (size_t)(2 * r) * W2;
        const float *s = x + (size_t)r * c->w;
        for (int j = 0; j < c->w; j++) d[2 * j] = d[2 * j + 1] = s[j];
        memcpy(d + W2, d, sizeof(float) * W2);
    }
}

void nn_upsample_nearest2x(float *out, const float *in, int N, int h, int w) {
    up_ctx c = {out, in, h, w};
    nn_par(N, (double)h * w * 4, up_plane, &c);
}

typedef struct {
    float *x;
    const float *v;
    int HW;
} cb_ctx;

static void cb_plane(void *vctx, int64_t i, int thread) {
    (void)thread;
    cb_ctx *c = vctx;
    float *x = c->x + (size_t)i * c->HW;
    float b = c->v[i];
    for (int j = 0; j < c->HW; j++) x[j] += b;
}

void nn_add_channel_bias(float *x, const float *v, int B, int C, int HW) {
    cb_ctx c = {x, v, HW};
    nn_par((int64_t)B * C, HW, cb_plane, &c);
}

void nn_transpose(float *out, const float *in, int T, int C) {
    const int tb = 32;
    for (int t0 = 0; t0 < T; t0 += tb)
        for (int c0 = 0; c0 < C; c0 += tb)
            for (int t = t0; t < T && t < t0 + tb; t++)
                for (int c = c0; c < C && c < c0 + tb; c++)
                    out[(size_t)c * T + t] = in[(size_t)t * C + c];
}

void nn_swap_outer(float *dst, const float *src, int n0, int n1, size_t inner) {
    for (int i = 0; i < n0; i++)
        for (int j = 0; j < n1; j++)
            memcpy(dst + ((size_t)j * n0 + i) * inner, src + ((size_t)i * n1 + j) * inner, inner * sizeof *dst);
}

double nn_rel_err(const float *out, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

double nn_u8_max_diff(const float *img, const float *ref, size_t n) {
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        float v = (img[i] + 1.0f) / 2.0f;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        double d = fabs(floorf(255.0f * v) - ref[i]);
        if (d > md) md = d;
    }
    return md;
}
