/* lf_blur.h — how much blurrier the generation is than the reference, so
 * that the part measurement at the working resolution compares them at
 * the generation's effective resolution (issue 13).
 *
 * The replaced-part veto at 256 px (analyze/lf_part.h, fine_ref.h) compares
 * the reference's pixels where it is flat (within CS_LFC_REG_PX working px)
 * with the generation's under the verified geometry. A generation that was
 * blurred, or resampled from fewer pixels (a 38 px copy, an image enlarged
 * from a small one), has its edges spread over a few working pixels: a blur
 * that is sub-pixel at the 64 px thumbnail is 1-4 px at 256, beyond the
 * flat neighbourhood, and every edge of the picture is left unexplained;
 * the region rules then read a band of edges as a replaced part (h13x's
 * measurement: blurred copies vetoed at 256 px, docs/BENCHMARKS.md).
 *
 * The cure is to blur the reference as much as the generation is before
 * counting differing pixels. The amount is measured on the pair itself:
 * the Gaussian sigma that, applied to the reference, best explains the
 * generation's pixels under the verified geometry and a global affine
 * colour map (3 x 3 and an offset: brightness, contrast, saturation, colour
 * balance), by the truncated squared residual: the RMS residual over R, G,
 * B squared where it is within tol (the colour fit's tolerance, lf_colour.h)
 * and tol^2 beyond, so that what no blur explains weighs the same at every
 * sigma and cannot pull the estimate.
 *
 * Why a blur cannot hide a twin: the sigma is one number for the whole
 * picture, and the common body decides it (most of the edges are the
 * body's). A sharp twin's body edges are explained best unblurred, so its
 * sigma stays near 0 and its other emblem differs as before. A blurred twin
 * gets its blur, which explains the body's edges; its other emblem is
 * another shape, which no blur of the reference's emblem makes (blurring
 * only spreads the reference's own edges, it never draws the generation's),
 * so the flat inside of the emblem still differs.
 *
 * Why not "count a cell only where the 64 px comparison also differs": the
 * 256 px measurement exists for parts finer than a thumbnail pixel (a
 * glyph of strokes 2-3 working px wide), which the 64 px comparison cannot
 * see; intersecting with it would undo the working resolution (test_lf_part
 * test_fine_twin: a twin with no part at 64 px). */
#ifndef CS_LF_BLUR_H
#define CS_LF_BLUR_H

#include <stdint.h>

/* The sigmas tried, in working px at S = 256 (scaled by S / 256 at other
 * S): 0, then a sqrt(2) ladder from half a working px to 8 px (two
 * thumbnail pixels). A step of sqrt(2) leaves a misfit of at most ~19 % of
 * the sigma, whose residue on a step edge stays under the colour fit's tol;
 * beyond two thumbnail pixels the generation has no detail the 64 px
 * thumbnail lacks, and there is nothing left for 256 px to add. */
#define CS_LFB_NSIGMA 10
extern const float cs_lfb_sigmas[CS_LFB_NSIGMA];

/* ref, gen: S x S RGB (as cs_lfc_measure: area/bicubic resized images of
 * rw x rh and gw x gh originals), m: reference original px -> generation
 * original px (cs_lfv_match.m_orig). Returns the sigma (px at S) of the
 * Gaussian blur of ref that explains gen best (ties: the smaller); 0 when
 * nothing can be compared or memory fails.
 * Pure function. */
float cs_lfb_estimate(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                      const double m[6], double tol);

/* out = in blurred by a Gaussian of sigma px (separable, edges clamped),
 * S x S RGB; sigma <= 0 copies. Returns 0, or -1 without memory (out
 * untouched). */
int cs_lfb_blur(const uint8_t *in, int S, float sigma, uint8_t *out);

#endif
