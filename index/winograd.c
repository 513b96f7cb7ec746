/* winograd.c — F(2x2, 3x3) convolution (see winograd.h).
 *
 * With d a 4x4 input patch, g a 3x3 filter and Y the 2x2 output block:
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * The element-wise product summed over input channels is, for each of the 16
 * positions xi of the 4x4 transform, a GEMM M[xi] = U[xi] x V[xi] with
 * U[xi] [cout][cin] (weights, transformed once at load) and V[xi]
 * [cin][blocks] (this tile's transformed patches). */
#include "index/winograd.h"

#include "core/nn.h"
#include <string.h>

void cs_wino_weights(float *U, const float *w, int cout, int cin) {
    size_t plane = (size_t)cout * cin;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *g = w + ((size_t)co * cin + ci) * 9;
            double t[4][3], u[4][4]; /* t = G g, u = t G^T (in double: exact to float) */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                u[i][0] = t[i][0];
                u[i][1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (int xi = 0; xi < 16; xi++) U[xi * plane + (size_t)co * cin + ci] = (float)u[xi / 4][xi % 4];
        }
}

int64_t cs_wino_block_rows(int B, int H) { return (int64_t)B * ((H + 1) / 2); }

size_t cs_wino_scratch(int cin, int cout, int W, int rows) {
    int tw = (W + 1) / 2;
    return (size_t)16 * (cin + cout) * rows * tw + (size_t)16 * (tw + 1);
}

/* Tiles are whole rows of output blocks (the transforms work a block row at
 * a time, vectorised along it): about 4 MB of transformed patches and GEMM
 * outputs, 64..512 blocks. Measured (1 thread, batch 8, 224 px, images per
 * CPU-second): 2 MB 10.8-11.0, 4 MB 11.1, 8 MB 10.9, 1 MB 10.7 — larger
 * tiles repack the weights less often, smaller ones stay in cache; the
 * optimum is flat. The shape alone sets the tiles (each tile's sgemm calls,
 * and so the bits, must not depend on the thread count): at least four
 * equal tiles, an even number, so that two threads share them evenly. */
int cs_wino_tile(int cin, int cout, int B, int H, int W) {
    int tw = (W + 1) / 2;
    int64_t rows = (int64_t)B * ((H + 1) / 2);
    int64_t t = (1024 * 1024) / (16 * (int64_t)(cin + cout));
    if (t > 512) t = 512;
    if (t < 64) t = 64;
    int64_t r = (t + tw / 2) / tw;
    if (r < 1) r = 1;
    int64_t ntiles = (rows + r - 1) / r;
    if (ntiles < 4) ntiles = 4;
    ntiles += ntiles & 1;
    r = (rows + ntiles - 1) / ntiles;
    return r < 1 ? 1 : (int)r;
}

size_t cs_wino_rowbuf(int W) { return (size_t)16 * ((W + 1) / 2 + 1); }

/* Input row y of a plane, split into its even and odd columns of the
 * zero-padded row: e[k] = in[2k - 1], o[k] = in[2k], k = 0..tw. */
static void split_row(float *e, float *o, const float *plane, int y, int H, int W, int tw) {
    if (y < 0 || y >= H) {
        memset(e, 0, (size_t)(tw + 1) * sizeof *e);
        memset(o, 0, (size_t)(tw + 1) * sizeof *o);
        return;
    }
    const float *in = plane + (size_t)y * W;
    /* k = 1 .. kin-1 read inside the row (2k <= W - 1); then the edges */
    int kin = (W + 1) / 2;
    e[0] = 0.0f;
    for (int k = 1; k < kin; k++) e[k] = in[2 * k - 1];
    for (int k = 0; k < kin; k++) o[k] = in[2 * k];
    for (int k = kin; k <= tw; k++) {
        int xe = 2 * k - 1, xo = 2 * k;
        e[k] = xe < W ? in[xe] : 0.0f;
        o[k] = xo < W ? in[xo] : 0.0f;
    }
}

void cs_wino_input(float *V, const float *x, int cin, int ci0, int ci1, int B, int H, int W, int64_t r0, int nr,
                   float *rowbuf) {
    int th = (H + 1) / 2, tw = (W + 1) / 2, n1 = tw + 1;
    int cnt = nr * tw;
    size_t vplane = (size_t)cin * cnt;
    float *e = rowbuf, *o = rowbuf + 4 * n1, *te = rowbuf + 8 * n1, *to = rowbuf + 12 * n1;
    for (int ci = ci0; ci < ci1; ci++)
        for (int i = 0; i < nr; i++) {
            int64_t row = r0 + i;
            int b = (int)(row / th), ty = (int)(row % th);
            const float *plane = x + ((size_t)ci * B + b) * H * W;
            for (int r = 0; r < 4; r++) split_row(e + r * n1, o + r * n1, plane, 2 * ty - 1 + r, H, W, tw);
            /* t = B^T d, on the even and the odd columns */
            for (int k = 0; k < n1; k++) {
                te[k] = e[k] - e[2 * n1 + k];
                te[n1 + k] = e[n1 + k] + e[2 * n1 + k];
                te[2 * n1 + k] = e[2 * n1 + k] - e[n1 + k];
                te[3 * n1 + k] = e[n1 + k] - e[3 * n1 + k];
                to[k] = o[k] - o[2 * n1 + k];
                to[n1 + k] = o[n1 + k] + o[2 * n1 + k];
                to[2 * n1 + k] = o[2 * n1 + k] - o[n1 + k];
                to[3 * n1 + k] = o[n1 + k] - o[3 * n1 + k];
            }
            /* v = t B: block tx reads columns te[tx], to[tx], te[tx+1], to[tx+1] */
            for (int r = 0; r < 4; r++) {
                const float *E = te + r * n1, *O = to + r * n1;
                float *v = V + (size_t)(r * 4) * vplane + (size_t)ci * cnt + (size_t)i * tw;
                for (int k = 0; k < tw; k++) {
                    v[k] = E[k] - E[k + 1];
                    v[vplane + k] = O[k] + E[k + 1];
                    v[2 * vplane + k] = E[k + 1] - O[k];
                    v[3 * vplane + k] = O[k] - O[k + 1];
                }
            }
        }
}

void cs_wino_output(float *y, const float *M, const float *bias, int cout, int co0, int co1, int B, int H, int W,
                    int64_t r0, int nr, int relu, float *rowbuf) {
    int th = (H + 1) / 2, tw = (W + 1) / 2;
    int cnt = nr * tw;
    size_t mplane = (size_t)cout * cnt;
    float *s = rowbuf;        /* s[2][4][tw]: A^T m */
    float *out = rowbuf + 8 * tw; /* out[2][2][tw]: (A^T m A)[row][col] per block */
    for (int co = co0; co < co1; co++) {
        float bco = bias[co];
        for (int i = 0; i < nr; i++) {
            const float *m = M + (size_t)co * cnt + (size_t)i * tw;
            for (int c = 0; c < 4; c++)
                for (int k = 0; k < tw; k++) {
                    float m0 = m[(size_t)c * mplane + k], m1 = m[(size_t)(4 + c) * mplane + k];
                    float m2 = m[(size_t)(8 + c) * mplane + k], m3 = m[(size_t)(12 + c) * mplane + k];
                    s[c * tw + k] = m0 + m1 + m2;
                    s[(4 + c) * tw + k] = m1 - m2 - m3;
                }
            for (int r = 0; r < 2; r++) {
                const float *sr = s + r * 4 * tw;
                for (int k = 0; k < tw; k++) {
                    float a = sr[k] + sr[tw + k] + sr[2 * tw + k] + bco;
                    float c = sr[tw + k] - sr[2 * tw + k] - sr[3 * tw + k] + bco;
                    if (relu) a = a > 0.0f ? a : 0.0f, c = c > 0.0f ? c : 0.0f;
                    out[(r * 2) * tw + k] = a;
                    out[(r * 2 + 1) * tw + k] = c;
                }
            }
            int64_t row = r0 + i;
            int b = (int)(row / th), ty = (int)(row % th);
            float *plane = y + ((size_t)co * B + b) * H * W;
            for (int r = 0; r < 2 && 2 * ty + r < H; r++) {
                float *dst = plane + (size_t)(2 * ty + r) * W;
                const float *a = out + (r * 2) * tw, *c = out + (r * 2 + 1) * tw;
                for (int k = 0; k < W / 2; k++) dst[2 * k] = a[k], dst[2 * k + 1] = c[k];
                if (W & 1) dst[W - 1] = a[tw - 1];
            }
        }
    }
}

void cs_wino_tile_run(float *y, const float *x, const float *U, const float *bias, int cin, int cout,
                      int B, int H, int W, int64_t r0, int nr, int relu, float *scratch) {
    int cnt = nr * ((W + 1) / 2);
    float *V = scratch, *M = scratch + (size_t)16 * cin * cnt, *rowbuf = M + (size_t)16 * cout * cnt;
    cs_wino_input(V, x, cin, 0, cin, B, H, W, r0, nr, rowbuf);
    for (int xi = 0; xi < 16; xi++)
        nn_sgemm_tile(0, 0, cout, cnt, cin, 1.0f, U + (size_t)xi * cout * cin,
                    cin, V + (size_t)xi * cin * cnt, cnt, 0.0f, M + (size_t)xi * cout * cnt, cnt);
    cs_wino_output(y, M, bias, cout, 0, cout, B, H, W, r0, nr, relu, rowbuf);
}
