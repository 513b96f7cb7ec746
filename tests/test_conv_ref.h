/* test_conv_ref.h — the direct convolution in double that the conv tests
 * (test_nn, test_conv_onednn) check every path against: NCHW, weights
 * [cout, cin, kh, kw], zero padding, no im2col, nothing shared with core/. */
#ifndef CS_TEST_CONV_REF_H
#define CS_TEST_CONV_REF_H
#include <stddef.h>

#include "core/nn.h"

static void conv_ref(double *out, const float *in, const float *w, const float *b, const nn_conv2d_p *p, int B, int h,
                     int wd) {
    int oh = nn_conv2d_oh(p, h), ow = nn_conv2d_ow(p, wd);
    for (int n = 0; n < B; n++)
        for (int o = 0; o < p->cout; o++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double s = b ? b[o] : 0;
                    for (int c = 0; c < p->cin; c++)
                        for (int i = 0; i < p->kh; i++)
                            for (int j = 0; j < p->kw; j++) {
                                int iy = y * p->stride - p->pad_t + i, ix = x * p->stride - p->pad_l + j;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                s += (double)in[(((size_t)n * p->cin + c) * h + iy) * wd + ix] *
                                     w[(((size_t)o * p->cin + c) * p->kh + i) * p->kw + j];
                            }
                    out[(((size_t)n * p->cout + o) * oh + y) * ow + x] = s;
                }
}
#endif
