/* opencv_shim.h — the few OpenCV calls the local features need, as C.
 *
 * OpenCV 4.6 (Debian libopencv-features2d-dev, libopencv-calib3d-dev) is a
 * C++ library: index/opencv_shim.cpp is a thin extern "C" layer over it and
 * turns every exception into a cs_err, like index/faiss_shim.cpp over FAISS.
 *  - SIFT (Lowe 2004) keypoints and descriptors of a grey image, the
 *    strongest max_kp by detector response; OpenCV's float descriptors are
 *    already scaled to [0, 255] and are returned as uint8 (saturating);
 *  - a robust 2-D similarity (rotation, uniform scale, translation; RANSAC,
 *    cv::estimateAffinePartial2D) or homography (cv::findHomography) from
 *    point pairs, with the inlier mask. */
#ifndef CS_OPENCV_SHIM_H
#define CS_OPENCV_SHIM_H

#include <stdint.h>

#include "core/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float x, y;     /* pixel centre, image coordinates */
    float size;     /* diameter of the meaningful neighbourhood (px) */
    float angle;    /* degrees [0, 360) */
    float response; /* detector strength (larger = stronger) */
} cs_cv_kp;

/* SIFT on grey[h][stride] (w x h). Fills kp[n], desc[n][128] with the n <=
 * max_kp strongest keypoints, strongest first (ties: by position, so the
 * result does not depend on OpenCV's internal order); returns n, or -1 with
 * err set. Single-threaded (the caller parallelises over images). */
int cs_cv_sift(const uint8_t *grey, int w, int h, int stride, int max_kp, cs_cv_kp *kp, uint8_t *desc,
               cs_err *err);

/* The same keypoints described from a second pyramid (detect, keep the
 * strongest, cv::Feature2D::compute): the definition before session 4,
 * slower, kept as the bench's anchor. */
int cs_cv_sift_twopass(const uint8_t *grey, int w, int h, int stride, int max_kp, cs_cv_kp *kp, uint8_t *desc,
                       cs_err *err);

/* Plain OpenCV SIFT (cv::SIFT::create()->detectAndCompute, every keypoint
 * described): the bench's anchor. Returns the keypoint count or -1. */
int cs_cv_sift_plain(const uint8_t *grey, int w, int h, int stride, cs_err *err);

/* Robust fit of dst ~ T(src) over n pairs (src/dst: [n][2]); reproj: the
 * RANSAC inlier threshold in dst pixels. homography = 0: similarity, m[6]
 * (row-major 2x3); 1: homography, m[9]. inlier[n] (may be NULL) gets 1 for
 * inliers. Returns the inlier count (0 when no model was found or n is below
 * the minimal sample), -1 with err set on failure. Deterministic: RANSAC's
 * random generator is re-seeded for every call. */
int cs_cv_fit(const float *src, const float *dst, int n, int homography, double reproj, double *m,
              uint8_t *inlier, cs_err *err);

#ifdef __cplusplus
}
#endif

#endif
