/* test_winograd — F(2x2, 3x3) against a direct 3x3 convolution written out
 * here (zero padding 1, stride 1), on odd and even sizes down to 1x1, with
 * and without ReLU, split into tiles of every size. The SSCD reference
 * cases (test_resnet) check it again inside the whole network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/winograd.h"
#include "tests/t.h"

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* y[co][b][h][w] = bias + sum over ci, ky, kx of w * x (channel-major). */
static void direct(float *y, const float *x, const float *w, const float *bias, int cin, int cout, int B,
                   int H, int W, int relu) {
    for (int co = 0; co < cout; co++)
        for (int b = 0; b < B; b++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    double acc = bias[co];
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int sy = yy + ky - 1, sx = xx + kx - 1;
                                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                                acc += (double)w[((co * cin + ci) * 3 + ky) * 3 + kx] *
                                       x[((size_t)(ci * B + b) * H + sy) * W + sx];
                            }
                    if (relu && acc < 0) acc = 0;
                    y[((size_t)(co * B + b) * H + yy) * W + xx] = (float)acc;
                }
}

/* Max |winograd - direct| / max |direct| for one shape, tiles of `rows`
 * block rows. */
static double rel_error(int cin, int cout, int B, int H, int W, int relu, int rows) {
    uint32_t s = (uint32_t)(cin * 131 + cout * 17 + B * 7 + H * 3 + W);
    size_t nx = (size_t)cin * B * H * W, ny = (size_t)cout * B * H * W;
    float *x = malloc(nx * sizeof *x), *w = malloc((size_t)cout * cin * 9 * sizeof *w);
    float *bias = malloc((size_t)cout * sizeof *bias), *U = malloc((size_t)16 * cout * cin * sizeof *U);
    float *ref = malloc(ny * sizeof *ref), *got = malloc(ny * sizeof *got);
    float *scratch = malloc(cs_wino_scratch(cin, cout, W, rows) * sizeof *scratch);
    for (size_t i = 0; i < nx; i++) x[i] = frand(&s);
    for (int i = 0; i < cout * cin * 9; i++) w[i] = frand(&s);
    for (int i = 0; i < cout; i++) bias[i] = frand(&s);
    memset(got, 0xff, ny * sizeof *got); /* NaN: every output must be written */
    direct(ref, x, w, bias, cin, cout, B, H, W, relu);
    cs_wino_weights(U, w, cout, cin);
    int64_t nrows = cs_wino_block_rows(B, H);
    for (int64_t r0 = 0; r0 < nrows; r0 += rows) {
        int nr = (int)(nrows - r0 < rows ? nrows - r0 : rows);
        cs_wino_tile_run(got, x, U, bias, cin, cout, B, H, W, r0, nr, relu, scratch);
    }
    double md = 0, mr = 0;
    for (size_t i = 0; i < ny; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    free(x), free(w), free(bias), free(U), free(ref), free(got), free(scratch);
    return mr > 0 ? md / mr : md;
}

static void test_shapes(void) {
    static const int shapes[][5] = {
        /* cin, cout, B, H, W */
        {1, 1, 1, 1, 1},  {3, 5, 2, 1, 1}, {4, 3, 1, 2, 3},   {2, 2, 1, 3, 2},
        {8, 16, 3, 7, 5}, {16, 8, 2, 14, 14}, {5, 7, 2, 9, 11}, {32, 32, 1, 6, 8},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *p = shapes[i];
        for (int relu = 0; relu < 2; relu++)
            for (int rows = 1; rows <= 3; rows++) {
                double e = rel_error(p[0], p[1], p[2], p[3], p[4], relu, rows);
                CHECKF(e < 2e-6, "cin %d cout %d B %d %dx%d relu %d rows %d: rel error %g", p[0], p[1], p[2], p[3],
                       p[4], relu, rows, e);
            }
    }
}

/* The weight transform is exact for a filter with a single 1: U = G e G^T
 * has entries in {0, +-1/2, 1/4, 1}. A centre tap (identity filter) gives
 * the identity convolution: output = input + bias. */
static void test_identity_filter(void) {
    enum { C = 3, B = 2, H = 5, W = 6 };
    float w[C * C * 9] = {0}, bias[C] = {0.5f, -1.0f, 0.0f}, U[16 * C * C];
    for (int c = 0; c < C; c++) w[(c * C + c) * 9 + 4] = 1.0f;
    cs_wino_weights(U, w, C, C);
    float x[C * B * H * W], y[C * B * H * W];
    uint32_t s = 7;
    for (int i = 0; i < C * B * H * W; i++) x[i] = frand(&s);
    float *scratch = malloc(cs_wino_scratch(C, C, W, 64) * sizeof *scratch);
    cs_wino_tile_run(y, x, U, bias, C, C, B, H, W, 0, (int)cs_wino_block_rows(B, H), 0, scratch);
    double md = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < B * H * W; i++) {
            double d = fabs(y[c * B * H * W + i] - (x[c * B * H * W + i] + bias[c]));
            if (!(d <= md)) md = d;
        }
    CHECKF(md < 1e-6, "identity filter: max|diff| %g", md);
    free(scratch);
}

static void test_tiles(void) {
    /* 224 px ResNet shapes: tiles of whole block rows, >= 4 (two each for
     * two threads), from the shape alone */
    CHECK(cs_wino_block_rows(8, 56) == 8 * 28);
    CHECK(cs_wino_block_rows(1, 7) == 4);
    int t = cs_wino_tile(64, 64, 8, 56, 56);
    CHECKF(t >= 1 && t * 28 <= 512 && t * 4 <= 8 * 28, "tile %d rows", t);
    t = cs_wino_tile(512, 512, 8, 7, 7);
    CHECKF(t >= 1 && t <= 8 * 4, "tile %d rows", t);
}

int main(void) {
    RUN(test_shapes);
    RUN(test_identity_filter);
    RUN(test_tiles);
    return T_DONE();
}
