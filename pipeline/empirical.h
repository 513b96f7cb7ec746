/* empirical.h — the built-in empirical model: the closed-form optimal
 * denoiser of a set of reference images,
 *     D(x, sigma) = sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i,
 * in pixel space at the index thumbnails' size (64x64, RGB scaled to [-1,1],
 * CHW). A prompt selects the references whose caption contains every word of
 * the prompt (lower-cased runs of letters/digits); the empty prompt selects
 * all of them, so classifier-free guidance runs between that subset and all
 * references. It reproduces training images exactly: a known memoriser with
 * ground truth.
 *
 * Distances: |x - y|^2 = |x|^2 - 2 x.y + |y|^2 with |y|^2 precomputed; the
 * softmax is a log-sum-exp shifted by its maximum (double), and the weighted
 * sum skips weights below 1e-12 of the largest. The references are kept as
 * their bytes (y = v/127.5 - 1, exact), not as floats: a step is two passes
 * over the reference matrix (x.y for every reference, then the weighted sum
 * of the few that matter; guidance's two branches share both passes), so it
 * is bound by memory traffic and bytes move 4x less than an sgemv over
 * floats (10,000 refs: 123 MB instead of 491 MB). The kernels are AVX2+FMA
 * (plain C on older CPUs), spread over cs_threads() threads. */
#ifndef CS_EMPIRICAL_H
#define CS_EMPIRICAL_H

#include <stdint.h>

#include "index/refs.h"
#include "pipeline/model.h"

/* Takes over t's contents (t is left empty; the model frees them). name is
 * shown as "Model:" (e.g. "empirical:index.db"). n = 0 is an error. */
int cs_model_empirical_new(cs_model **out, cs_ref_thumbs *t, const char *name, cs_err *err);

/* After a sampling run: the reference that carried the largest weight in the
 * last evaluation of the conditional branch (batch element B-1), with that
 * weight. Returns -1 if the model is not empirical or has not run. */
int cs_empirical_last_choice(const cs_model *m, int64_t *ref_id, const char **source, float *weight);

/* The number of references a prompt selects (for validation messages). */
int64_t cs_empirical_cond_size(const cs_cond *c);

#endif
