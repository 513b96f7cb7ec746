// opencv_shim.cpp — extern "C" layer over OpenCV's SIFT and robust model
// fitting (see opencv_shim.h).
extern "C" {
#include "core/err.h"
}
#include "index/opencv_shim.h"

#include <algorithm>
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
static void opencv_sequential() {
    static std::once_flag once;
    std::call_once(once, [] { cv::setNumThreads(0); });
}

extern "C" int cs_cv_sift(const uint8_t *grey, int w, int h, int stride, int max_kp, cs_cv_kp *kp,
                          uint8_t *desc, cs_err *err) {
    if (w < 1 || h < 1 || stride < w || max_kp < 0)
        return cs_fail(err, CS_EUSAGE, "opencv: sift: bad image %dx%d (stride %d)", w, h, stride);
    int n = 0;
    opencv_sequential();
    if (guarded(err, "sift", [&] {
            cv::Mat img(h, w, CV_8UC1, const_cast<uint8_t *>(grey), (size_t)stride);
            // nfeatures = 0: keep all, then our own strongest-first order with a
            // positional tie-break (OpenCV's retainBest is not a stable order)
            cv::Ptr<cv::SIFT> sift = cv::SIFT::create(0);
            std::vector<cv::KeyPoint> k;
            sift->detect(img, k);
            std::sort(k.begin(), k.end(), [](const cv::KeyPoint &a, const cv::KeyPoint &b) {
                if (a.response != b.response) return a.response > b.response;
                if (a.pt.y != b.pt.y) return a.pt.y < b.pt.y;
                if (a.pt.x != b.pt.x) return a.pt.x < b.pt.x;
                if (a.size != b.size) return a.size < b.size;
                return a.angle < b.angle;
            });
            if ((int)k.size() > max_kp) k.resize((size_t)max_kp);
            if (k.empty()) return;
            cv::Mat d;
            sift->compute(img, k, d); // may drop keypoints too near the border
            n = (int)k.size();
            for (int i = 0; i < n; i++) {
                kp[i] = cs_cv_kp{k[(size_t)i].pt.x, k[(size_t)i].pt.y, k[(size_t)i].size, k[(size_t)i].angle,
                                 k[(size_t)i].response};
                const float *row = d.ptr<float>(i);
                for (int j = 0; j < 128; j++) {
                    float v = row[j] + 0.5f;
                    desc[(size_t)i * 128 + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
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
