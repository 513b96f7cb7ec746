/* nn.h — neural-network ops on float32 tensors, for the SD 1.x models and the
 * ResNet feature extractor.
 *
 * Plain functions, outputs first, then inputs, then weights, then sizes.
 * Images are NCHW (batch, channels, rows, cols), row-major. Matrix products go
 * through nn_sgemm (single-threaded OpenBLAS over fixed slices spread over our
 * threads); the other ops are spread over cs_threads() threads with
 * cs_parallel_for. Every op gives the same bits at any thread count. Nothing here
 * allocates per call except where a comment says so: callers pass workspaces
 * sized by the matching *_ws() function. Nothing here fails: sizes are the
 * caller's contract (checked when the weights are loaded).
 *
 * Two token layouts occur:
 *   token-major   [T, C]: row t holds the C features of token t (CLIP text
 *                 encoder, linear layers as in PyTorch);
 *   channel-major [C, T]: row c holds channel c of every token — an NCHW image
 *                 with T = H*W viewed as tokens (the UNet's SpatialTransformer
 *                 keeps this layout, so 1x1 convs and linears are W·X). */
#ifndef CS_NN_H
#define CS_NN_H

#include <stddef.h>

/* Sets the thread count of the ops here (0 = cs_ncpu()). */
void nn_set_threads(int n);

/* C = alpha * op(A) op(B) + beta * C, row-major, as cblas_sgemm (trans_a,
 * trans_b: 0 or 1). The work is cut into slices of C of a fixed size (along
 * its longer side), each one single-threaded OpenBLAS call, handed to
 * cs_threads() threads: the bits do not depend on the thread count, which
 * OpenBLAS's own threading does not promise (its partition follows the thread
 * count: -j 1 and -j 2 gave images one grey level apart). */
void nn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* The same product for a caller that spreads its own tiles over threads
 * (index/resnet_forward.c, index/winograd.c): on the calling thread only
 * (oneDNN's or our AVX-512 kernel), else one cblas_sgemm call with OpenBLAS's
 * thread setting as the caller left it. The bits of each element depend on
 * the shape only, never on how many threads the caller runs (session 7:
 * a per-thread tile-thread setting made small convolutions switch routine
 * with -j; it is gone). */
void nn_sgemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);

/* Which fp32 product the AVX-512 path uses: NN_GEMM_AUTO (oneDNN's sgemm
 * when built in, core/gemm_onednn.c, else ours), NN_GEMM_OWN (our kernel,
 * core/gemm_avx512.c), NN_GEMM_ONEDNN. bf16 products and the fused
 * attention are always ours. For benches and tests; not thread safe. */
enum { NN_GEMM_AUTO = 0, NN_GEMM_OWN = 1, NN_GEMM_ONEDNN = 2 };
void nn_set_gemm_backend(int backend);
/* 0: convolutions always as im2col + nn_sgemm (what they were before oneDNN's
 * convolution primitives, core/conv_onednn.c); 1: the primitive from 32x32
 * outputs, weights reordered per call (before kept weights); 2 (default):
 * also kept weights (cs_conv_weights_keep) and, with those, smaller images,
 * and the fused upsampling conv (nn_conv2d_up2); 3: as 2 without the fused
 * upsampling conv. For benches and tests; not thread safe. */
void nn_set_conv_direct(int on);

/* out [B, cout, 2h, 2w] = 3x3 conv, stride 1, pad 1, of the nearest 2x
 * upsampling of in [B, cin, h, w]: without the upsampled copy and with 16/36
 * of the multiplies (core/conv_onednn.c), on AVX-512 with oneDNN and weights
 * kept (cs_conv_weights_keep). 0, or -1: then upsample and nn_conv2d. */
int nn_conv2d_up2(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int B,
                  int h, int w);

/* Precision of the products (nn_sgemm and everything built on it): fp32 (the
 * default and the reference) or bf16 (operands rounded to bfloat16, products
 * summed in fp32; AVX512_BF16 CPUs only). nn_set_precision returns -1 (and
 * changes nothing) when this CPU, or CS_ISA, does not allow it. Process-wide:
 * set it before a run, not during one. */
enum { NN_FP32 = 0, NN_BF16 = 1 };
#define NN_BF16_MIN_SIDE 16 /* a product thinner than this on any side stays fp32 under bf16 */
#define NN_BF16_MIN_CONV_K 64 /* a convolution with fewer inputs per output (cin*kh*kw) too */
int nn_set_precision(int precision);
int nn_precision(void);

/* Floating-point operations (2*M*N*K per sgemm) issued by the ops here since
 * the last reset: for GFLOP/s figures. Not synchronised: count from one thread. */
double nn_flops(void);
/* nn_flops plus the multiplies a fused kernel left out (nn_conv2d_up2: the
 * 3x3 conv over the upsampled image it stands for): the nominal count. */
double nn_flops_nominal(void);
void nn_flops_reset(void);
void nn_flops_add(double f);

/* ---- convolution ---------------------------------------------------------- */

/* Geometry of a 2-D convolution; pads may differ per side (the VAE encoder's
 * downsample pads right/bottom only). Groups and dilation are not supported. */
typedef struct {
    int cin, cout;          /* channels in/out */
    int kh, kw;             /* kernel size */
    int stride;             /* same stride on both axes */
    int pad_t, pad_l, pad_b, pad_r;
} nn_conv2d_p;

/* Output rows/cols of a conv on an h x w input. */
int nn_conv2d_oh(const nn_conv2d_p *p, int h);
int nn_conv2d_ow(const nn_conv2d_p *p, int w);

/* Workspace (in floats) for the im2col matrix of the whole output, 0 for a
 * 1x1 stride-1 unpadded conv (plain sgemm). nn_conv2d also works with a smaller
 * workspace, as long as it holds one output row (cin*kh*kw*ow floats): it then
 * processes the output in bands of rows. */
size_t nn_conv2d_ws(const nn_conv2d_p *p, int h, int w);
size_t nn_conv2d_ws_min(const nn_conv2d_p *p, int h, int w);
/* Workspace with which nn_conv2d runs the whole batch as ONE sgemm (column
 * matrix [K, B*oh*ow] plus an output staging buffer [cout, B*oh*ow]): the
 * weights are then packed and streamed once instead of B times, which matters
 * for small images (N = oh*ow below ~1024). Used when ws_floats >= this. */
size_t nn_conv2d_ws_batched(const nn_conv2d_p *p, int B, int h, int w);

/* out [B, cout, oh, ow] = conv(in [B, cin, h, w], weight [cout, cin, kh, kw]) + bias [cout]
 * (bias may be NULL). ws: ws_floats floats (see nn_conv2d_ws and
 * nn_conv2d_ws_batched). out must not alias in. */
void nn_conv2d(float *out, const float *in, const float *weight, const float *bias,
               const nn_conv2d_p *p, int B, int h, int w, float *ws, size_t ws_floats);

/* ---- linear ---------------------------------------------------------------- */

/* Token-major: out [T, nout] = in [T, nin] · weight[nout, nin]^T + bias [nout] (bias may be NULL). */
void nn_linear(float *out, const float *in, const float *weight, const float *bias, int T,
               int nin, int nout);

/* Channel-major (= 1x1 conv): out [nout, T] = weight [nout, nin] · in [nin, T] + bias [nout]. */
void nn_linear_cm(float *out, const float *in, const float *weight, const float *bias, int T,
                  int nin, int nout);

/* ---- normalisation --------------------------------------------------------- */

/* GroupNorm over x [B, C, HW] with G groups (C % G == 0), affine gamma/beta [C],
 * statistics in double. silu != 0 applies SiLU after (fused). out may equal in. */
void nn_group_norm(float *out, const float *in, const float *gamma, const float *beta, int B,
                   int C, int HW, int G, float eps, int silu);

/* LayerNorm over the last dim: x [T, C] token-major. out may equal in. */
void nn_layer_norm(float *out, const float *in, const float *gamma, const float *beta, int T,
                   int C, float eps);

/* LayerNorm over channels of a channel-major x [C, T] (each token normalised
 * over its C features). out may equal in. */
void nn_layer_norm_cm(float *out, const float *in, const float *gamma, const float *beta, int C,
                      int T, float eps);

/* y = (x - mean) / sqrt(var + eps) * gamma + beta folded into the preceding
 * conv: weight [cout, per_out] and bias [cout] are rewritten in place (bias
 * must be writable; pass a zeroed one if the conv had none). */
void nn_fold_batchnorm(float *weight, float *bias, int cout, size_t per_out, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps);

/* ---- activations (in place, n elements) ------------------------------------ */
void nn_silu(float *x, size_t n);       /* x * sigmoid(x) */
void nn_gelu_erf(float *x, size_t n);   /* 0.5 x (1 + erf(x / sqrt 2)), the exact GELU */
void nn_quick_gelu(float *x, size_t n); /* x * sigmoid(1.702 x) (CLIP) */
void nn_relu(float *x, size_t n);

/* GEGLU (SD's feed-forward), channel-major: in [2*D, T] holds value rows 0..D-1
 * and gate rows D..2D-1; out [D, T] = value * gelu_erf(gate). out may equal in
 * (the value half). */
void nn_geglu_cm(float *out, const float *in, int D, int T);

/* Row-wise numerically stable softmax of x [rows, cols], in place. */
void nn_softmax(float *x, int rows, int cols);

/* ---- attention ------------------------------------------------------------- */

/* Multi-head scaled-dot-product attention, scale = dh^-0.5, heads*dh = C.
 * Token-major: q [Tq, ldq], k [Tk, ldk], v [Tk, ldv] with head h in columns
 * h*dh..(h+1)*dh-1; out [Tq, ldo] likewise. causal != 0 masks key j > query i.
 * ws: nn_attention_ws(Tq, Tk) floats. */
size_t nn_attention_ws(int Tq, int Tk);
void nn_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                  const float *v, int ldv, int Tq, int Tk, int heads, int dh, int causal,
                  float *ws);

/* Channel-major: q [heads*dh, Tq], k, v [heads*dh, Tk], out [heads*dh, Tq];
 * head h is rows h*dh..(h+1)*dh-1. No mask. ws: nn_attention_ws(Tq, Tk). */
void nn_attention_cm(float *out, const float *q, const float *k, const float *v, int Tq, int Tk,
                     int heads, int dh, float *ws);

/* The same with row strides: q rows of length >= Tq spaced ldq apart, etc.
 * (a column slice of a wider channel-major matrix, e.g. one image of a batch
 * laid out [C, B*T]). */
void nn_attention_cm_ld(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                        const float *v, int ldv, int Tq, int Tk, int heads, int dh, float *ws);

/* Which products of the fused attention (AVX-512) follow nn_precision() =
 * bf16: NN_ATTN_BF16_QK (the scores: Q and K rounded to bf16),
 * NN_ATTN_BF16_PV (the output: V and the softmax weights rounded), both
 * (the default) or 0 (fp32 attention). The softmax itself stays fp32. For
 * benches and tests; not thread safe. */
enum { NN_ATTN_BF16_QK = 1, NN_ATTN_BF16_PV = 2 };
void nn_set_attention_bf16(int parts);

/* ---- shape and elementwise helpers ------------------------------------------ */

/* out [N, h*2, w*2] = nearest-neighbour upsampling of in [N, h, w] (N = B*C). */
void nn_upsample_nearest2x(float *out, const float *in, int N, int h, int w);

void nn_add(float *out, const float *a, const float *b, size_t n); /* out = a + b */
void nn_add_inplace(float *x, const float *y, size_t n);             /* x += y */
void nn_scale(float *x, float s, size_t n);                          /* x *= s */
/* x [B, C, HW] += per-(b, c) value v [B, C] (e.g. the ResBlock's time embedding). */
void nn_add_channel_bias(float *x, const float *v, int B, int C, int HW);
/* out [C, T] = in [T, C]^T. */
void nn_transpose(float *out, const float *in, int T, int C);
/* dst [n1][n0][inner] = src [n0][n1][inner]: the two outer axes swapped,
 * inner runs copied whole ([B, C, HW] <-> [C, B, HW], the batch side by
 * side as the UNet's transformers and the ResNet's convolutions take it). */
void nn_swap_outer(float *dst, const float *src, int n0, int n1, size_t inner);

/* max |out - ref| / max |ref| over n elements (max |out - ref| when ref is all
 * zero): the relative error every reference comparison uses. NaN in out
 * propagates. */
double nn_rel_err(const float *out, const float *ref, size_t n);

/* max |8 bits of img - ref| over n elements: img in [-1, 1] made 8 bits as A1111
 * does (255 * clamp((x + 1) / 2), truncated), ref the reference's 8-bit values. */
double nn_u8_max_diff(const float *img, const float *ref, size_t n);

#endif
