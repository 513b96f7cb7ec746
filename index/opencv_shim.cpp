// opencv_shim.cpp — extern "C" layer over OpenCV's SIFT and robust model
// fitting (see opencv_shim.h).
extern "C" {
#include "core/err.h"
}
#include "index/opencv_shim.h"

#include <algorithm>
#include <malloc.h>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>

template <class F> static int guarded(cs_err *err, const char *what, F body) {
    try {
        body();
        return 0;
    } catch (const std::bad_alloc &) {
        return cs_fail(err, CS_ENOMEM, "opencv: %s: out of memory", what);
    } catch (const std::exception &e) {
        std::string m = e.what();
        for (char &c : m)
            if (c == '\n') c = ' ';
        return cs_fail(err, CS_EINTERNAL, "opencv: %s: %s", what, m.c_str());
    } catch (...) {
        return cs_fail(err, CS_EINTERNAL, "opencv: %s: unknown exception", what);
    }
}

// OpenCV's own parallelism off, once per process: images are parallelised by
// the caller, and cv::setNumThreads is not thread-safe (called from several of
// our threads at once it rebuilt OpenCV's TBB arena under running work and
// crashed in libtbb now and then).
//
// Freed memory also stays in the process: SIFT allocates its scale-space
// pyramids (about 12 MiB at 256 px, doubled) afresh for every image, and
// glibc's defaults (blocks over 128 KiB mmap'd, a heap top over 2x that
// returned to the system) made every image page-fault them in again, 30% of
// `index add`'s time. The pyramids' blocks now come from the heap (mmap above
// 32 MiB), which keeps up to 256 MiB free per arena for the next image.
static void opencv_sequential() {
    static std::once_flag once;
    std::call_once(once, [] {
        cv::setNumThreads(0);
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    });
}

// strongest first, ties by position, size, angle: a total order that does not
// depend on OpenCV's internal keypoint order (its retainBest is not stable)
static bool stronger(const cv::KeyPoint &a, const cv::KeyPoint &b) {
    if (a.response != b.response) return a.response > b.response;
    if (a.pt.y != b.pt.y) return a.pt.y < b.pt.y;
    if (a.pt.x != b.pt.x) return a.pt.x < b.pt.x;
    if (a.size != b.size) return a.size < b.size;
    return a.angle < b.angle;
}

static int check_image(int w, int h, int stride, int max_kp, cs_err *err) {
    if (w < 1 || h < 1 || stride < w || max_kp < 0)
        return cs_fail(err, CS_EUSAGE, "opencv: sift: bad image %dx%d (stride %d)", w, h, stride);
    return 0;
}

static void emit(const std::vector<cv::KeyPoint> &k, const cv::Mat &d, const std::vector<int> &rows, cs_cv_kp *kp,
                 uint8_t *desc) {
    for (size_t i = 0; i < rows.size(); i++) {
        const cv::KeyPoint &p = k[(size_t)rows[i]];
        kp[i] = cs_cv_kp{p.pt.x, p.pt.y, p.size, p.angle, p.response};
        const float *row = d.ptr<float>(rows[i]);
        for (int j = 0; j < 128; j++) {
            float v = row[j] + 0.5f;
            desc[i * 128 + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

// The previous definition, for the bench's anchor (cs_cv_sift_twopass):
// detect every keypoint, keep the strongest max_kp, then describe those with
// cv::Feature2D::compute, which builds the Gaussian pyramid a second time,
// from the lowest octave among the kept keypoints.
static int sift_twopass(cv::SIFT &sift, const cv::Mat &img, int max_kp, cs_cv_kp *kp, uint8_t *desc) {
    std::vector<cv::KeyPoint> k;
    sift.detect(img, k);
    std::sort(k.begin(), k.end(), stronger);
    if ((int)k.size() > max_kp) k.resize((size_t)max_kp);
    if (k.empty()) return 0;
    cv::Mat d;
    sift.compute(img, k, d);
    std::vector<int> rows((size_t)d.rows);
    for (size_t i = 0; i < rows.size(); i++) rows[i] = (int)i;
    emit(k, d, rows, kp, desc);
    return d.rows;
}

// One pyramid: SIFT with nfeatures = max_kp (OpenCV's retainBest keeps the
// max_kp strongest and every keypoint tied with the last, before describing
// them from the detection's own pyramid), then our total order and the
// first max_kp. Same keypoints as the two-pass definition (267/267 copy-
// detection references); the descriptors are the same bytes where a kept
// keypoint is from octave -1 and otherwise differ by a few units (the second
// pass started its pyramid at octave 0, which approximates the canonical
// one): 6.7 instead of 9.3 ms per reference, 10.1 instead of 14.1 ms per
// 160-keypoint query (bench_localfeat prints both).
static int sift_onepass(const cv::Mat &img, int max_kp, cs_cv_kp *kp, uint8_t *desc) {
    if (max_kp == 0) return 0;
    std::vector<cv::KeyPoint> k;
    cv::Mat d;
    cv::SIFT::create(max_kp)->detectAndCompute(img, cv::noArray(), k, d);
    std::vector<int> rows((size_t)d.rows);
    for (size_t i = 0; i < rows.size(); i++) rows[i] = (int)i;
    std::sort(rows.begin(), rows.end(), [&](int a, int b) { return stronger(k[(size_t)a], k[(size_t)b]); });
    if ((int)rows.size() > max_kp) rows.resize((size_t)max_kp);
    emit(k, d, rows, kp, desc);
    return (int)rows.size();
}

extern "C" int cs_cv_sift(const uint8_t *grey, int w, int h, int stride, int max_kp, cs_cv_kp *kp,
                          uint8_t *desc, cs_err *err) {
    if (check_image(w, h, stride, max_kp, err)) return -1;
    int n = 0;
    opencv_sequential();
    if (guarded(err, "sift", [&] {
            cv::Mat img(h, w, CV_8UC1, const_cast<uint8_t *>(grey), (size_t)stride);
            n = sift_onepass(img, max_kp, kp, desc);
        }))
        return -1;
    return n;
}

extern "C" int cs_cv_sift_twopass(const uint8_t *grey, int w, int h, int stride, int max_kp, cs_cv_kp *kp,
                                  uint8_t *desc, cs_err *err) {
    if (check_image(w, h, stride, max_kp, err)) return -1;
    int n = 0;
    opencv_sequential();
    if (guarded(err, "sift", [&] {
            cv::Mat img(h, w, CV_8UC1, const_cast<uint8_t *>(grey), (size_t)stride);
            cv::Ptr<cv::SIFT> sift = cv::SIFT::create(0);
            n = sift_twopass(*sift, img, max_kp, kp, desc);
        }))
        return -1;
    return n;
}

extern "C" int cs_cv_sift_plain(const uint8_t *grey, int w, int h, int stride, cs_err *err) {
    if (check_image(w, h, stride, 0, err)) return -1;
    int n = 0;
    opencv_sequential();
    if (guarded(err, "sift", [&] {
            cv::Mat img(h, w, CV_8UC1, const_cast<uint8_t *>(grey), (size_t)stride), d;
            std::vector<cv::KeyPoint> k;
            cv::SIFT::create()->detectAndCompute(img, cv::noArray(), k, d);
            n = (int)k.size();
        }))
        return -1;
    return n;
}

extern "C" int cs_cv_fit(const float *src, const float *dst, int n, int homography, double reproj, double *m,
                         uint8_t *inlier, cs_err *err) {
    const int need = homography ? 4 : 2;
    if (inlier) memset(inlier, 0, (size_t)(n > 0 ? n : 0));
    if (n < need) return 0;
    opencv_sequential();
    int count = 0;
    if (guarded(err, "fit", [&] {
            cv::setRNGSeed(13);
            std::vector<cv::Point2f> a((size_t)n), b((size_t)n);
            for (int i = 0; i < n; i++) {
                a[(size_t)i] = cv::Point2f(src[2 * i], src[2 * i + 1]);
                b[(size_t)i] = cv::Point2f(dst[2 * i], dst[2 * i + 1]);
            }
            std::vector<uchar> mask;
            cv::Mat M = homography ? cv::findHomography(a, b, cv::RANSAC, reproj, mask, 2000, 0.995)
                                   : cv::estimateAffinePartial2D(a, b, mask, cv::RANSAC, reproj, 2000, 0.995, 10);
            if (M.empty()) return;
            for (int i = 0; i < (homography ? 9 : 6); i++) m[i] = M.at<double>(i / 3, i % 3);
            for (int i = 0; i < n && i < (int)mask.size(); i++) {
                if (inlier) inlier[i] = mask[(size_t)i] ? 1 : 0;
                count += mask[(size_t)i] ? 1 : 0;
            }
        }))
        return -1;
    return count;
}
