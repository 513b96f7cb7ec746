/* winograd.h — 3x3 stride-1 pad-1 convolution by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin & Gray, CVPR 2016), for the channel-major
 * activations of resnet_forward.c ([C][B][H][W], whole batch).
 *
 * Why: 13 of ResNet-50's 16 3x3 convolutions are stride 1, 37% of its
 * multiply-adds. F(2x2, 3x3) computes each 2x2 output block from a 4x4
 * input patch with 16 multiplies per (cin, cout) pair instead of 36: the
 * convolution becomes 16 GEMMs of [cout x cin] x [cin x blocks], 2.25x fewer
 * FLOPs, for an input and output transform that are additions only. Its
 * transform coefficients are 0, +-1 and +-1/2, so the rounding error stays
 * within a few ulps of the direct convolution (F(4x4, 3x3) would save 4x but
 * with coefficients up to 8 and ~10x the error). */
#ifndef CS_WINOGRAD_H
#define CS_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

/* U[16][cout][cin] = G g G^T for each 3x3 filter g of w[cout][cin][3][3]. */
void cs_wino_weights(float *U, const float *w, int cout, int cin);

/* Tiles are whole rows of 2x2 output blocks; a B x H x W input has
 * B * ceil(H/2) block rows of ceil(W/2) blocks. */
int64_t cs_wino_block_rows(int B, int H);

/* Block rows per tile for cin -> cout channels: from the shape alone, never
 * the thread count (the tile's sgemm shapes fix the bits). */
int cs_wino_tile(int cin, int cout, int B, int H, int W);

/* Floats of per-thread scratch for a tile of rows block rows (V, M, then a
 * row buffer of cs_wino_rowbuf(W) floats). */
size_t cs_wino_scratch(int cin, int cout, int W, int rows);
size_t cs_wino_rowbuf(int W);

/* y[cout][B][H][W] = relu?(conv3x3(x) + bias) on block rows [r0, r0 + nr)
 * (x [cin][B][H][W], zero padding of 1). scratch: cs_wino_scratch(cin,
 * cout, W, nr) floats. Single-threaded (its sgemms too): the caller runs
 * tiles on its threads with OpenBLAS set to one thread. */
void cs_wino_tile_run(float *y, const float *x, const float *U, const float *bias, int cin, int cout,
                      int B, int H, int W, int64_t r0, int nr, int relu, float *scratch);

/* The stages of cs_wino_tile_run, for a caller that shares one tile's work
 * among threads (a conv too narrow to cut into tiles, resnet_forward.c):
 * V[16][cin][nr * tw] = (B^T d B) for input channels [ci0, ci1) of block rows
 * [r0, r0 + nr); then M[xi] = U[xi] V[xi] (16 sgemms, the caller's); then
 * y = relu?(A^T M A + bias) for output channels [co0, co1). Element-wise
 * stages (no sums over channels): any split gives the same bits. rowbuf:
 * cs_wino_rowbuf(W) floats per concurrent call. */
void cs_wino_input(float *V, const float *x, int cin, int ci0, int ci1, int B, int H, int W, int64_t r0, int nr,
                   float *rowbuf);
void cs_wino_output(float *y, const float *M, const float *bias, int cout, int co0, int co1, int B, int H, int W,
                    int64_t r0, int nr, int relu, float *rowbuf);

#endif
