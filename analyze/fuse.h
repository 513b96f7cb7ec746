/* fuse.h — one calibrated similarity per (generation, reference) from the
 * scores of several descriptors (issue 13).
 *
 * Scores of different descriptors (a PDQ distance, a cosine, a share of
 * verified keypoints) are not comparable, and the same descriptor's raw score
 * does not mean the same thing for every kind of image. Each descriptor is
 * therefore normalised against a background set: scores of pairs known to be
 * unrelated (background images against the references, the SSCD recipe of
 * Pizzi et al. 2022 s4). A score s becomes its background tail probability
 * p(s) = P(background >= s), reported as z = -log10 p ("s is as rare among
 * unrelated pairs as 1 in 10^z"):
 *  - at or below the background's 99th percentile u, p is the empirical
 *    tail (count of background scores >= s, plus one, over n plus one);
 *  - above u, the tail is extrapolated by the peaks-over-threshold model
 *    (Pickands 1975; Coles 2001 ch. 4): the excess y = s - u follows a
 *    generalised Pareto distribution, p = p_u (1 + xi y / beta)^(-1/xi)
 *    (p_u exp(-y / beta) at xi = 0), its scale beta and shape xi fitted by
 *    probability-weighted moments (Hosking & Wallis 1987), xi clamped to
 *    [-1, 1/2] (a bounded fit ends no lower than the largest background
 *    score), so scores beyond every background score still rank.
 *    Similarities are bounded (a cosine <= 1, a share <= 1, a distance >= 0)
 *    and their tails end short of the bound (xi < 0): the fitted upper end
 *    u - beta / xi is a score no unrelated pair reaches, and z grows without
 *    limit as s approaches it. An exponential tail (xi = 0) forced onto such
 *    a score gave an exact copy z ~ 4 on 13,500 background pairs, below the
 *    maxima of the background itself (bench_copydet's fused row flagged
 *    nothing). z is capped at CS_FUSE_Z_CAP; at and beyond the upper end it
 *    is CS_FUSE_Z_CAP + (y - beta / k) / beta, still in order.
 * Higher scores must mean more similar (pass -distance for a distance).
 *
 * The rule (cs_fuse_z_max): the fused similarity is the largest z over the
 * descriptors that have a score for the pair — the strongest evidence,
 * measured in one unit. No weights, nothing fitted to a benchmark; the
 * background set is the only calibration. The verdict threshold follows from
 * the false-flag rate alpha one accepts, measured on the background images
 * themselves: cs_fuse_flag_z_bg is the (1 - alpha) quantile of their top-1
 * fused z against the whole reference set, each computed out of sample (the
 * background is split in two halves, each half's maxima scored with the
 * distributions fitted on the other half). Without enough background images
 * for that quantile, cs_fuse_flag_z gives the Bonferroni bound (probability
 * <= alpha over n_refs references x n_desc descriptors), far stricter. */
#ifndef CS_FUSE_H
#define CS_FUSE_H

#include <stdint.h>

#include "core/err.h"

#define CS_FUSE_TAIL_Q 0.99   /* u: the background quantile where extrapolation starts */
#define CS_FUSE_MIN_EXCESS 10 /* fewer exceedances than this: empirical tail only */
#define CS_FUSE_Z_CAP 30.0    /* z of a score at the tail model's upper end (p = 1e-30) */

typedef struct {
    int64_t n;        /* background scores */
    float *sorted;    /* [n] ascending */
    float u;          /* threshold of the tail model */
    double p_u;       /* empirical P(background > u) */
    double beta;      /* generalised Pareto scale of the excess above u; 0: no tail model */
    double xi;        /* its shape (< 0: a bounded tail, upper end u - beta / xi) */
} cs_fuse_bg;

/* Fits the background of one descriptor from n >= 1 scores (copied; NANs
 * are dropped). */
int cs_fuse_bg_fit(cs_fuse_bg *bg, const float *scores, int64_t n, cs_err *err);
void cs_fuse_bg_free(cs_fuse_bg *bg);

/* -log10 of the background tail probability of s (>= 0); NAN for NAN. */
double cs_fuse_z(const cs_fuse_bg *bg, float s);

/* max over d of cs_fuse_z(&bg[d], s[d]), NAN scores skipped; *which (may be
 * NULL) = the descriptor that gave it, -1 when none had a score (result 0). */
double cs_fuse_z_max(const cs_fuse_bg *bg, const float *s, int nd, int *which);

/* The sum of the z of the descriptors that have a score (0 when none):
 * agreement between descriptors counts. The z are not independent, so the
 * sum is not itself a tail probability: its flag threshold must come from
 * the background maxima (cs_fuse_flag_z_bg), never from cs_fuse_flag_z. */
double cs_fuse_z_sum(const cs_fuse_bg *bg, const float *s, int nd);

/* z at or above which a pair is flagged so that an unrelated generation is
 * flagged with probability <= alpha: -log10(alpha / (n_refs x n_desc)). */
double cs_fuse_flag_z(int64_t n_refs, int n_desc, double alpha);

/* The (1 - alpha) quantile (the smallest value with at most floor(alpha n)
 * of the n values above it) of n out-of-sample background top-1 fused z;
 * the Bonferroni bound when n < 1 / alpha (too few to measure alpha). */
double cs_fuse_flag_z_bg(const double *top_z, int64_t n, int64_t n_refs, int n_desc, double alpha);

/* Analytic nulls, for the analysis (no background set needed; issue 13's
 * "one calibrated score per (generation, reference)"): the same unit,
 * z = -log10 of the probability that an unrelated pair scores as well,
 * Bonferroni-corrected for the n_tests comparisons made (every reference,
 * and its mirror); 0 when not significant.
 *  - local features: the a-contrario number of false alarms (lf_verify.h)
 *    is already such a probability count: z = -log10_nfa;
 *  - PDQ: the 256 bits of two unrelated images agree like fair coins (the
 *    PDQ authors' null), so P[distance <= d] = P[Binomial(256, 1/2) <= d].
 * The fused score is the larger of the two (the strongest evidence, as
 * cs_fuse_z_max), used to rank a generation's neighbours. */
double cs_fuse_z_nfa(double log10_nfa);
double cs_fuse_z_pdq(int dist, double n_tests);

#endif
