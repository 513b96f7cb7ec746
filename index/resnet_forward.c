/* resnet_forward.c — the ResNet-50 forward pass of the SSCD descriptor
 * (see resnet.h; weights and preprocessing are in resnet.c).
 *
 * Layout: activations are channel-major over the whole batch, [C][B][H][W],
 * so every convolution is a GEMM y[cout][N] = W[cout][K] x cols[K][N] with
 * N = B * oh * ow output positions (K = cin for a 1x1 conv, whose columns are
 * the input itself; K = cin * kh * kw through im2col otherwise).
 *
 * Threading: the N columns are cut into tiles and OUR threads take whole
 * tiles; each tile is im2col (into a small per-thread buffer that stays in
 * L2), one single-threaded sgemm, and the epilogue (bias, residual, ReLU)
 * while the output tile is still in cache. Why not OpenBLAS's own threads on
 * one big sgemm per conv: profiled on 2 cores (perf, batch 8, 224 px), that
 * spent 28% of the time in OpenBLAS's workers spinning (sched_yield) while
 * the single-threaded passes between sgemms ran (im2col 12%, ReLU 6%, bias
 * 2%), with the whole-batch im2col matrix (59 MB) streamed through memory.
 * A bottleneck block is three or four tile jobs: conv1+ReLU, conv2+ReLU,
 * and conv3 + (downsample or identity) + ReLU in one epilogue. The 3x3
 * stride-1 convs run as Winograd F(2x2, 3x3) tiles (index/winograd.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn.h"
#include "core/parallel.h"
#include "index/resnet.h"
#include "index/winograd.h"

typedef struct {
    int c, b, h, w; /* channels, batch, rows, cols */
} shape4;

/* One convolution feeding a tile job: weights + its input. */
typedef struct {
    const cs_rn_conv *conv;
    const float *x; /* [cin][B][h][w] */
    shape4 s;       /* input shape */
} conv_src;

/* y[cout][N] = relu?( (accumulate ? y : 0) + sum_i conv_i(x_i) + bias_i ),
 * every conv_i producing the same output shape. */
typedef struct {
    conv_src src[2];
    int nsrc;
    float *y;
    int cout, oh, ow;
    int64_t n; /* columns: B * oh * ow */
    int accumulate, relu;
    int tile;        /* columns per tile */
    float *ws;       /* per-thread im2col buffers, ws_stride floats each */
    size_t ws_stride;
} conv_job;

static int is_pointwise(const nn_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && !p->pad_t && !p->pad_l;
}

/* Columns per tile for a GEMM of depth K: an im2col tile of about 1 MB (L2),
 * at most 1024 columns, and tiles of EQUAL size in a number that is a
 * multiple of the threads (at least two each when N allows it): at layer4
 * N is only 8 x 49 = 392, and tiles of 128, 128, 128, 8 would leave one of
 * two threads idle a quarter of the time. */
static int tile_cols(int K, int64_t n, int nt) {
    int64_t t = (256 * 1024) / K;
    if (t > 1024) t = 1024;
    if (t < 128) t = 128;
    int64_t ntiles = (n + t - 1) / t;
    if (nt > 1 && ntiles < 2 * nt) ntiles = 2 * nt;
    ntiles = (ntiles + nt - 1) / nt * nt;
    t = (n + ntiles - 1) / ntiles;
    return (int)(t < 16 ? 16 : t);
}

/* cols[K][cnt] for output columns [n0, n0 + cnt) of conv src (K = cin*kh*kw). */
static void im2col_tile(float *cols, const conv_src *src, int oh, int ow, int64_t n0, int cnt) {
    const nn_conv2d_p *p = &src->conv->p;
    const shape4 s = src->s;
    int K = p->cin * p->kh * p->kw;
    int64_t ohw = (int64_t)oh * ow;
    for (int r = 0; r < K; r++) {
        int kx = r % p->kw, ky = r / p->kw % p->kh, ci = r / (p->kw * p->kh);
        float *d = cols + (size_t)r * cnt;
        for (int64_t n = n0; n < n0 + cnt;) {
            /* one run of output columns along a row: (b, oy, ox0 .. ox0+len) */
            int64_t b = n / ohw;
            int rem = (int)(n - b * ohw), oy = rem / ow, ox0 = rem % ow;
            int len = ow - ox0;
            if (len > n0 + cnt - n) len = (int)(n0 + cnt - n);
            float *dd = d + (n - n0);
            int y = oy * p->stride - p->pad_t + ky;
            if (y < 0 || y >= s.h) {
                memset(dd, 0, (size_t)len * sizeof *dd);
            } else {
                const float *row = src->x + (((size_t)ci * s.b + b) * s.h + y) * s.w;
                int x = ox0 * p->stride - p->pad_l + kx;
                /* [lo, hi) of the run reads inside the row, zeros outside */
                int st = p->stride, lo = x < 0 ? (-x + st - 1) / st : 0, hi = x < s.w ? (s.w - x + st - 1) / st : 0;
                if (lo > len) lo = len;
                if (hi > len) hi = len;
                if (hi < lo) hi = lo;
                memset(dd, 0, (size_t)lo * sizeof *dd);
                if (st == 1) memcpy(dd + lo, row + x + lo, (size_t)(hi - lo) * sizeof *dd);
                else
                    for (int i = lo; i < hi; i++) dd[i] = row[x + i * st];
                memset(dd + hi, 0, (size_t)(len - hi) * sizeof *dd);
            }
            n += len;
        }
    }
}

/* row[0..n) += b, then ReLU when relu. Written in blocks of 8 so that -O2's
 * cheap vectorizer turns it into SIMD adds and maxes (v > 0 ? v : 0 is
 * exactly max(v, 0)); the scalar loop was 18% of the forward pass. */
static void bias_relu(float *row, int n, float b, int relu) {
    int i = 0;
    if (relu) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) {
                float v = row[i + k] + b;
                row[i + k] = v > 0.0f ? v : 0.0f;
            }
        for (; i < n; i++) {
            float v = row[i] + b;
            row[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) row[i + k] += b;
        for (; i < n; i++) row[i] += b;
    }
}

static void conv_tile(void *vctx, int64_t t, int thread) {
    const conv_job *j = vctx;
    int64_t n0 = t * j->tile;
    int cnt = (int)(j->n - n0 < j->tile ? j->n - n0 : j->tile);
    float *ws = j->ws + (size_t)thread * j->ws_stride;
    float *y = j->y + n0;
    for (int i = 0; i < j->nsrc; i++) {
        const conv_src *src = &j->src[i];
        const nn_conv2d_p *p = &src->conv->p;
        int K = p->cin * p->kh * p->kw;
        const float *cols = src->x + n0;
        int ldb = (int)j->n;
        if (!is_pointwise(p)) {
            im2col_tile(ws, src, j->oh, j->ow, n0, cnt);
            cols = ws, ldb = cnt;
        }
        float beta = (i > 0 || j->accumulate) ? 1.0f : 0.0f;
        nn_sgemm_tile(0, 0, j->cout, cnt, K, 1.0f, src->conv->w, K, cols,
                    ldb, beta, y, (int)j->n);
    }
    /* epilogue on the tile while it is in cache */
    for (int o = 0; o < j->cout; o++) {
        float b = j->src[0].conv->b[o] + (j->nsrc > 1 ? j->src[1].conv->b[o] : 0.0f);
        bias_relu(y + (size_t)o * j->n, cnt, b, j->relu);
    }
}

typedef struct {
    int nt;
    float *ws;
    size_t ws_stride;
} runner;

/* Output shape of conv c on input s. */
static shape4 conv_out(const cs_rn_conv *c, shape4 s) {
    return (shape4){c->p.cout, s.b, nn_conv2d_oh(&c->p, s.h), nn_conv2d_ow(&c->p, s.w)};
}

/* A GEMM too narrow to cut into column tiles: fewer than 128 output columns
 * (or Winograd blocks) per thread, as at batch 1 in layer3-4 (288 px: 9 x 9
 * = 81 columns at layer4). Tiles of a few dozen columns each repack the
 * whole weight matrix (4 MB at layer4) for a sliver of work and run the sgemm
 * kernel on ragged edges, so such a conv runs as one tile on the calling
 * thread with OpenBLAS threading its sgemm instead. Measured, 2 threads,
 * per-conv timers: batch 1 at 288 px 127 -> 106 ms per image (layer3+4
 * 75 -> 61 ms); batch 8 at 224 px unchanged (layer4, 196 columns per
 * thread, stays tiled: a threshold of 256 made it 10% slower). */
#define NARROW_COLS 128
static int is_narrow(int64_t ncols, int nt) { return nt > 1 && ncols < (int64_t)NARROW_COLS * nt; }

/* Floats of im2col buffer one thread needs for conv c on input s (0 for a
 * pointwise conv). */
static size_t conv_ws(const cs_rn_conv *c, shape4 s, int nt) {
    if (c->wino) {
        int64_t rows = cs_wino_block_rows(s.b, s.h);
        int tile = is_narrow(rows * ((s.w + 1) / 2), nt) ? (int)rows : cs_wino_tile(c->p.cin, c->p.cout, s.b, s.h, s.w, nt);
        return cs_wino_scratch(c->p.cin, c->p.cout, s.w, tile);
    }
    if (is_pointwise(&c->p)) return 0;
    shape4 o = conv_out(c, s);
    int K = c->p.cin * c->p.kh * c->p.kw;
    int64_t n = (int64_t)o.b * o.h * o.w;
    return (size_t)K * (is_narrow(n, nt) ? n : tile_cols(K, n, nt));
}

/* Runs a narrow job as one tile on this thread, OpenBLAS on nt threads. */
static void run_narrow(cs_parallel_fn fn, void *job, int nt) {
    openblas_set_num_threads(nt);
    nn_set_tile_threads(nt); /* the AVX-512 path's threads (core/nn.h) */
    fn(job, 0, 0);
    nn_set_tile_threads(1);
    openblas_set_num_threads(1);
}

typedef struct {
    float *y;
    conv_src src;
    int relu, tile; /* tile: block rows */
    int64_t nrows;
    float *ws;
    size_t ws_stride;
} wino_job;

static void wino_tile(void *vctx, int64_t t, int thread) {
    const wino_job *j = vctx;
    const cs_rn_conv *c = j->src.conv;
    int64_t r0 = t * j->tile;
    int nr = (int)(j->nrows - r0 < j->tile ? j->nrows - r0 : j->tile);
    cs_wino_tile_run(j->y, j->src.x, c->wino, c->b, c->p.cin, c->p.cout, j->src.s.b, j->src.s.h, j->src.s.w, r0,
                     nr, j->relu, j->ws + (size_t)thread * j->ws_stride);
}

/* y = relu?(conv(a) [+ conv(b)] [+ y]). Returns the output shape. */
static shape4 run_conv(const runner *r, float *y, conv_src a, const conv_src *b, int accumulate, int relu) {
    shape4 o = conv_out(a.conv, a.s);
    if (a.conv->wino && !b && !accumulate) {
        wino_job w = {y, a, relu, 0, cs_wino_block_rows(a.s.b, a.s.h), r->ws, r->ws_stride};
        if (is_narrow(w.nrows * ((a.s.w + 1) / 2), r->nt)) {
            w.tile = (int)w.nrows;
            run_narrow(wino_tile, &w, r->nt);
            return o;
        }
        w.tile = cs_wino_tile(a.conv->p.cin, a.conv->p.cout, a.s.b, a.s.h, a.s.w, r->nt);
        cs_parallel_for(r->nt, (w.nrows + w.tile - 1) / w.tile, wino_tile, &w);
        return o;
    }
    conv_job j = {.src = {a}, .nsrc = 1, .y = y, .cout = o.c, .oh = o.h, .ow = o.w,
                  .n = (int64_t)o.b * o.h * o.w, .accumulate = accumulate, .relu = relu,
                  .ws = r->ws, .ws_stride = r->ws_stride};
    if (b) j.src[1] = *b, j.nsrc = 2;
    int Kmax = 0;
    for (int i = 0; i < j.nsrc; i++) {
        const nn_conv2d_p *p = &j.src[i].conv->p;
        int K = p->cin * p->kh * p->kw;
        if (!is_pointwise(p) && K > Kmax) Kmax = K;
    }
    if (is_narrow(j.n, r->nt)) {
        j.tile = (int)j.n;
        run_narrow(conv_tile, &j, r->nt);
        return o;
    }
    /* pointwise-only jobs need no buffer: tiles sized for the deepest K = cin */
    j.tile = tile_cols(Kmax ? Kmax : a.conv->p.cin, j.n, r->nt);
    cs_parallel_for(r->nt, (j.n + j.tile - 1) / j.tile, conv_tile, &j);
    return o;
}

typedef struct {
    float *out;
    const float *in;
    shape4 s;
    int oh, ow;
} plane_ctx;

/* ReLU + 3x3 / stride 2 / pad 1 max pool of one [H][W] plane (max pool of
 * the ReLU = ReLU of the max pool; padding ignored). */
static void maxpool_plane(void *vctx, int64_t i, int thread) {
    (void)thread;
    plane_ctx *c = vctx;
    int h = c->s.h, w = c->s.w;
    const float *x = c->in + (size_t)i * h * w;
    float *y = c->out + (size_t)i * c->oh * c->ow;
    for (int oy = 0; oy < c->oh; oy++)
        for (int ox = 0; ox < c->ow; ox++) {
            float m = 0; /* = ReLU then max pool: max(0, max(window)) */
            for (int dy = -1; dy <= 1; dy++) {
                int yy = 2 * oy + dy;
                if (yy < 0 || yy >= h) continue;
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = 2 * ox + dx;
                    if (xx < 0 || xx >= w) continue;
                    float v = x[yy * w + xx];
                    if (v > m) m = v;
                }
            }
            y[oy * c->ow + ox] = m;
        }
}

typedef struct {
    float *gem;      /* [B][C] */
    const float *x;  /* [C][B][h][w] */
    shape4 s;
    float p;
} gem_ctx;

/* GeM of one (channel, sample) plane: (mean of max(x, 1e-6)^p)^(1/p). */
static void gem_plane(void *vctx, int64_t i, int thread) {
    (void)thread;
    gem_ctx *g = vctx;
    int c = (int)(i / g->s.b), b = (int)(i % g->s.b);
    size_t hw = (size_t)g->s.h * g->s.w;
    const float *x = g->x + (size_t)i * hw;
    float sum = 0;
    for (size_t j = 0; j < hw; j++) {
        float v = x[j] > 1e-6f ? x[j] : 1e-6f;
        sum += g->p == 3.0f ? v * v * v : powf(v, g->p);
    }
    g->gem[(size_t)b * g->s.c + c] = powf(sum / (float)hw, 1.0f / g->p);
}

/* [C][B][HW] -> [B][C][HW] (for the taps, which are NCHW like PyTorch). */
static void to_nchw(float *dst, const float *src, shape4 s) { nn_swap_outer(dst, src, s.c, s.b, (size_t)s.h * s.w); }

/* Largest activation and largest per-thread im2col buffer of the whole
 * network on a B x H x W input. */
static void plan_sizes(const cs_resnet *m, int B, int H, int W, int nt, size_t *act, size_t *ws) {
    shape4 s = {3, B, H, W};
    *act = (size_t)3 * B * H * W;
    *ws = conv_ws(&m->conv1, s, nt);
    s = conv_out(&m->conv1, s);
    if ((size_t)s.c * B * s.h * s.w > *act) *act = (size_t)s.c * B * s.h * s.w;
    s.h = (s.h - 1) / 2 + 1, s.w = (s.w - 1) / 2 + 1;
    for (int bi = 0; bi < 16; bi++) {
        const cs_rn_block *b = &m->blocks[bi];
        const cs_rn_conv *cv[4] = {&b->conv1, &b->conv2, &b->conv3, &b->downsample};
        shape4 cur = s;
        for (int i = 0; i < 4; i++) {
            if (!cv[i]->p.cout) continue;
            shape4 is = i == 3 ? s : cur, os = conv_out(cv[i], is);
            size_t t = conv_ws(cv[i], is, nt);
            if (t > *ws) *ws = t;
            t = (size_t)os.c * B * os.h * os.w;
            if (t > *act) *act = t;
            if (i < 3) cur = os;
        }
        s = cur;
    }
}

int cs_resnet_forward(cs_resnet *m, const float *in, int B, int H, int W, float *out,
                      cs_resnet_taps *taps, cs_err *err) {
    if (B < 1 || H < 32 || W < 32 || (int64_t)H * W > 16LL * 1024 * 1024)
        return cs_fail(err, CS_EUSAGE, "resnet: input %dx%d (batch %d) out of range", W, H, B);
    int nt = cs_threads();
    size_t act, ws_n;
    plan_sizes(m, B, H, W, nt, &act, &ws_n);
    size_t need = 3 * act + (size_t)nt * ws_n + (size_t)B * 2048;
    if (need > m->work_n) {
        free(m->work);
        m->work_n = 0;
        if (!(m->work = malloc(need * sizeof(float))))
            return cs_fail(err, CS_ENOMEM, "resnet: out of memory for activations");
        m->work_n = need;
    }
    float *buf = m->work;
    float *x = buf, *t1 = buf + act, *t2 = buf + 2 * act, *gem = buf + 3 * act;
    runner r = {nt, gem + (size_t)B * 2048, ws_n};
    /* our threads run the tiles, each with a single-threaded sgemm */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);

    /* input NCHW -> [3][B][H][W] */
    nn_swap_outer(t2, in, B, 3, (size_t)H * W);
    shape4 s = run_conv(&r, t1, (conv_src){&m->conv1, t2, {3, B, H, W}}, NULL, 0, 0);
    plane_ctx pc = {x, t1, s, (s.h - 1) / 2 + 1, (s.w - 1) / 2 + 1};
    cs_parallel_for(nt, (int64_t)s.c * B, maxpool_plane, &pc);
    s.h = pc.oh, s.w = pc.ow;
    if (taps && taps->stem) to_nchw(taps->stem, x, s);

    static const int layer_end[4] = {3, 7, 13, 16}; /* blocks per layer: 3, 4, 6, 3 */
    for (int bi = 0, L = 0; bi < 16; bi++) {
        const cs_rn_block *blk = &m->blocks[bi];
        shape4 s1 = run_conv(&r, t1, (conv_src){&blk->conv1, x, s}, NULL, 0, 1);
        shape4 s2 = run_conv(&r, t2, (conv_src){&blk->conv2, t1, s1}, NULL, 0, 1);
        conv_src c3 = {&blk->conv3, t2, s2};
        if (blk->downsample.p.cout) {
            /* out (in t1, free now) = ReLU(downsample(x) + conv3(t2) + both biases) */
            conv_src ds = {&blk->downsample, x, s};
            s = run_conv(&r, t1, ds, &c3, 0, 1);
            float *tmp = x;
            x = t1, t1 = tmp;
        } else {
            /* identity: accumulate into x itself */
            s = run_conv(&r, x, c3, NULL, 1, 1);
        }
        if (bi + 1 == layer_end[L]) {
            if (taps && taps->layer[L]) to_nchw(taps->layer[L], x, s);
            L++;
        }
    }
    openblas_set_num_threads(blas_threads);

    gem_ctx g = {gem, x, s, m->gem_p};
    cs_parallel_for(nt, (int64_t)s.c * B, gem_plane, &g);
    int C = s.c;
    if (taps && taps->gem) memcpy(taps->gem, gem, (size_t)B * C * sizeof(float));
    if (m->fc_w) nn_linear(out, gem, m->fc_w, m->fc_b, B, C, m->dim);
    else memcpy(out, gem, (size_t)B * C * sizeof(float));
    if (taps && taps->fc) memcpy(taps->fc, out, (size_t)B * m->dim * sizeof(float));
    for (int b = 0; b < B; b++) {
        float *e = out + (size_t)b * m->dim;
        double ss = 0;
        for (int d = 0; d < m->dim; d++) ss += (double)e[d] * e[d];
        float nrm = (float)sqrt(ss);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int d = 0; d < m->dim; d++) e[d] /= nrm;
    }
    return 0;
}
