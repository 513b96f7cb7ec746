/* image_resize.c — resizing 8-bit RGB images.
 *
 * Area average is exact integer arithmetic: source pixel i covers
 * [i*dw, (i+1)*dw) and output pixel x covers [x*sw, (x+1)*sw) on a common
 * grid, so each weight is an integer overlap and every output pixel is
 * sum(weight * value) / (sw*sh) rounded half up. A 2x2 block average is
 * therefore exactly (a+b+c+d+2)/4.
 *
 * Bilinear and bicubic (Keys, a = -0.5) are separable float convolutions on
 * pixel centres; when shrinking, their support widens with the scale (as PIL
 * does) so they average instead of skipping pixels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"

/* One axis of a separable resize: output pixel x reads the source pixels
 * [first, first+n) with weights wi (area: exact integers) or wf (the
 * convolutions: normalised floats). */
typedef struct {
    int first, n;
    int64_t *wi;
    float *wf;
} taps;

static void taps_free(taps *t, int d) {
    if (!t) return;
    for (int x = 0; x < d; x++) {
        free(t[x].wi);
        free(t[x].wf);
    }
    free(t);
}

/* 0 when the plan (or one of its rows) could not be allocated. */
static int taps_ok(const taps *t, int d) {
    for (int x = 0; t && x < d; x++)
        if (!t[x].wi && !t[x].wf) return 0;
    return t != NULL;
}

/* Integer area weights for one axis: out[x] = sum src[i] * w / s. */
static taps *area_plan(int s, int d) {
    taps *t = calloc((size_t)d, sizeof *t);
    if (!t) return NULL;
    for (int x = 0; x < d; x++) {
        int64_t lo = (int64_t)x * s, hi = lo + s; /* in units of 1/d source pixels */
        int first = (int)(lo / d), last = (int)((hi - 1) / d);
        t[x].first = first;
        t[x].n = last - first + 1;
        t[x].wi = malloc(sizeof(int64_t) * t[x].n);
        if (!t[x].wi) return t; /* caller checks every row (taps_ok) */
        for (int i = first; i <= last; i++) {
            int64_t a = (int64_t)i * d, b = a + d;
            int64_t o = (b < hi ? b : hi) - (a > lo ? a : lo);
            t[x].wi[i - first] = o;
        }
    }
    return t;
}

static double filt_linear(double x) {
    x = fabs(x);
    return x < 1 ? 1 - x : 0;
}

static double filt_cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static taps *conv_plan(int s, int d, double (*f)(double), double support) {
    taps *t = calloc((size_t)d, sizeof *t);
    if (!t) return NULL;
    double scale = (double)s / d, fs = scale > 1 ? scale : 1, sup = support * fs;
    for (int x = 0; x < d; x++) {
        double c = (x + 0.5) * scale;
        int lo = (int)floor(c - sup), hi = (int)ceil(c + sup);
        if (lo < 0) lo = 0;
        if (hi > s) hi = s;
        if (hi <= lo) hi = lo + 1 <= s ? lo + 1 : s, lo = hi - 1;
        t[x].first = lo;
        t[x].n = hi - lo;
        t[x].wf = malloc(sizeof(float) * t[x].n);
        if (!t[x].wf) return t;
        double sum = 0;
        for (int i = lo; i < hi; i++) sum += f((i + 0.5 - c) / fs);
        for (int i = lo; i < hi; i++) {
            double v = f((i + 0.5 - c) / fs);
            t[x].wf[i - lo] = (float)(sum != 0 ? v / sum : 1.0 / t[x].n);
        }
    }
    return t;
}

static uint8_t clamp8(float v) {
    v = roundf(v);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The two passes, written once for both accumulator types (ACC with weights
 * W: int64_t/wi for area, float/wf for the convolutions). Horizontal:
 * tmp[y][x] = sum over tx[x] of weight * source pixel, per channel. */
#define H_PASS(ACC, W)                                                        \
    for (int y = 0; y < sh; y++) {                                            \
        const uint8_t *row = src->rgb + (size_t)y * sw * 3;                   \
        ACC *o = (ACC *)tmp + (size_t)y * w * 3;                              \
        for (int x = 0; x < w; x++) {                                         \
            ACC r = 0, g = 0, b = 0;                                          \
            for (int k = 0; k < tx[x].n; k++) {                               \
                const uint8_t *p = row + (size_t)(tx[x].first + k) * 3;       \
                ACC wt = tx[x].W[k];                                          \
                r += wt * p[0];                                               \
                g += wt * p[1];                                               \
                b += wt * p[2];                                               \
            }                                                                 \
            o[3 * x] = r;                                                     \
            o[3 * x + 1] = g;                                                 \
            o[3 * x + 2] = b;                                                 \
        }                                                                     \
    }

/* Vertical: dst[y][x] = OUT(sum over ty[y] of weight * tmp). */
#define V_PASS(ACC, W, OUT)                                                   \
    for (int y = 0; y < h; y++) {                                             \
        uint8_t *o = dst->rgb + (size_t)y * w * 3;                            \
        for (int x = 0; x < w * 3; x++) {                                     \
            ACC acc = 0;                                                      \
            for (int k = 0; k < ty[y].n; k++)                                 \
                acc += ty[y].W[k] * ((const ACC *)tmp)[(size_t)(ty[y].first + k) * w * 3 + x]; \
            o[x] = OUT(acc);                                                  \
        }                                                                     \
    }

/* area: divide the integer sum by sw*sh, rounding half up */
#define AREA_OUT(acc) area_out(acc, (int64_t)sw * sh)
static uint8_t area_out(int64_t acc, int64_t den) {
    int64_t v = (2 * acc + den) / (2 * den);
    return (uint8_t)(v > 255 ? 255 : v);
}

/* Area (f == CS_RESIZE_AREA) or a convolution with filter fn of the given
 * support, horizontal pass first. */
static int resize_sep(cs_image *dst, const cs_image *src, int w, int h, int area, double (*fn)(double),
                      double support, cs_err *err) {
    int sw = src->w, sh = src->h;
    taps *tx = area ? area_plan(sw, w) : conv_plan(sw, w, fn, support);
    taps *ty = area ? area_plan(sh, h) : conv_plan(sh, h, fn, support);
    void *tmp = malloc((area ? sizeof(int64_t) : sizeof(float)) * (size_t)w * sh * 3);
    int ok = taps_ok(tx, w) && taps_ok(ty, h) && tmp;
    if (ok && area) {
        H_PASS(int64_t, wi)
        V_PASS(int64_t, wi, AREA_OUT)
    } else if (ok) {
        H_PASS(float, wf)
        V_PASS(float, wf, clamp8)
    }
    taps_free(tx, w);
    taps_free(ty, h);
    free(tmp);
    return ok ? 0 : cs_fail(err, CS_ENOMEM, "resize: out of memory");
}

int cs_image_resize(cs_image *dst, const cs_image *src, int w, int h, cs_resize_filter f,
                    cs_err *err) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return cs_fail(err, CS_EUSAGE, "resize: empty source image");
    if (cs_image_alloc(dst, w, h, err)) return -1;
    if (w == src->w && h == src->h) {
        memcpy(dst->rgb, src->rgb, (size_t)w * h * 3);
        return 0;
    }
    if (f == CS_RESIZE_AUTO)
        f = (w <= src->w && h <= src->h) ? CS_RESIZE_AREA : CS_RESIZE_BICUBIC;
    int rc;
    switch (f) {
    case CS_RESIZE_AREA: rc = resize_sep(dst, src, w, h, 1, NULL, 0, err); break;
    case CS_RESIZE_BILINEAR: rc = resize_sep(dst, src, w, h, 0, filt_linear, 1.0, err); break;
    case CS_RESIZE_BICUBIC: rc = resize_sep(dst, src, w, h, 0, filt_cubic, 2.0, err); break;
    default: rc = cs_fail(err, CS_EUSAGE, "resize: unknown filter %d", (int)f);
    }
    if (rc) cs_image_free(dst);
    return rc;
}
