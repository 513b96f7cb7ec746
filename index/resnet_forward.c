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
 * stride-1 convs run as Winograd F(2x2, 3x3) tiles (index/winograd.h).
 *
 * Same bits at any thread count: each output element is one sum over K
 * (input channels x kernel taps) inside one sgemm call, and its bits depend
 * on that call's arguments: the sgemm libraries pick kernels and K blocks by
 * M, N and K (oneDNN, OpenBLAS), our AVX-512 kernel cuts K by K alone, and a
 * multi-threaded call is another routine again. So the shape alone fixes
 * every call: the column tiles (tile_cols, cs_wino_tile), the narrow/wide
 * choice (is_narrow), the row blocks of a narrow conv, the routine (the
 * single-threaded nn_sgemm_tile, always); the thread count only decides
 * which thread makes which call, which changes no bit. The im2col buffers
 * of the threads are equally aligned (ws_stride a multiple of 64 bytes). */
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
 * at most 1024 columns, and tiles of EQUAL size, at least four and an even
 * number (two each for two threads): at layer4 N is only 8 x 49 = 392, and
 * tiles of 128, 128, 128, 8 would leave one of two threads idle a quarter of
 * the time. From the shape only, never the thread count (see the top). */
static int tile_cols(int K, int64_t n) {
    int64_t t = (256 * 1024) / K;
    if (t > 1024) t = 1024;
    if (t < 128) t = 128;
    int64_t ntiles = (n + t - 1) / t;
    if (ntiles < 4) ntiles = 4;
    ntiles += ntiles & 1;
    t = (n + ntiles - 1) / ntiles;
    return (int)(t < 16 ? 16 : t);
}

/* Rows [r0, r1) of cols[K][cnt] for output columns [n0, n0 + cnt) of conv
 * src (K = cin*kh*kw). */
static void im2col_rows(float *cols, const conv_src *src, int oh, int ow, int64_t n0, int cnt, int r0, int r1) {
    const nn_conv2d_p *p = &src->conv->p;
    const shape4 s = src->s;
    int64_t ohw = (int64_t)oh * ow;
    for (int r = r0; r < r1; r++) {
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
            im2col_rows(ws, src, j->oh, j->ow, n0, cnt, 0, K);
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

/* A GEMM too narrow to cut into column tiles: fewer than 256 output columns
 * (or Winograd blocks), as at batch 1 in layer3-4 (224 px: 14 x 14 = 196
 * columns at layer3, 49 at layer4). Tiles of a few dozen columns each
 * repack the whole weight matrix (4 MB at layer4) for a sliver of work and
 * run the sgemm kernel on ragged edges, so such a conv is ONE column tile,
 * its output rows cut into NARROW_BLOCKS blocks that the threads share:
 * im2col (or the Winograd input transform) once, in row chunks on all
 * threads, then one single-threaded sgemm + epilogue per row block. The
 * cut follows the shape only (a fixed 256 columns; before, it was 128 per
 * thread, and at 2 threads such convs took OpenBLAS's or our kernel's
 * threaded sgemm, another routine than at 1 thread: the last bits differed).
 * Eight blocks: two threads get four each; rows a multiple of 16 (the
 * kernels' register blocks), at least 32 (cout >= 64 in a ResNet-50). */
#define NARROW_COLS 256
#define NARROW_BLOCKS 8
static int is_narrow(int64_t ncols) { return ncols < NARROW_COLS; }

static int narrow_rows(int cout) {
    int r = (cout + NARROW_BLOCKS - 1) / NARROW_BLOCKS;
    r = (r + 15) / 16 * 16;
    return r < 32 ? 32 : r;
}

/* Floats of im2col buffer one thread needs for conv c on input s (0 for a
 * pointwise conv); a narrow conv's single buffer is thread 0's. */
static size_t conv_ws(const cs_rn_conv *c, shape4 s) {
    if (c->wino) {
        int64_t rows = cs_wino_block_rows(s.b, s.h);
        int tile = is_narrow(rows * ((s.w + 1) / 2)) ? (int)rows : cs_wino_tile(c->p.cin, c->p.cout, s.b, s.h, s.w);
        return cs_wino_scratch(c->p.cin, c->p.cout, s.w, tile);
    }
    if (is_pointwise(&c->p)) return 0;
    shape4 o = conv_out(c, s);
    int K = c->p.cin * c->p.kh * c->p.kw;
    int64_t n = (int64_t)o.b * o.h * o.w;
    return (size_t)K * (is_narrow(n) ? n : tile_cols(K, n));
}

/* A narrow conv job: stage 0 fills cols (im2col of source i, in chunks of
 * CHUNK rows of K), stage 1 runs row block t of the sgemm of source i
 * (+ the epilogue after the last source). */
#define CHUNK 64
typedef struct {
    const conv_job *j;
    float *cols;
    int i, rows;
} narrow_job;

static void narrow_im2col(void *vctx, int64_t t, int thread) {
    (void)thread;
    const narrow_job *nj = vctx;
    const conv_src *src = &nj->j->src[nj->i];
    int K = src->conv->p.cin * src->conv->p.kh * src->conv->p.kw;
    int r0 = (int)t * CHUNK, r1 = r0 + CHUNK < K ? r0 + CHUNK : K;
    im2col_rows(nj->cols, src, nj->j->oh, nj->j->ow, 0, (int)nj->j->n, r0, r1);
}

static void narrow_rows_run(void *vctx, int64_t t, int thread) {
    (void)thread;
    const narrow_job *nj = vctx;
    const conv_job *j = nj->j;
    const conv_src *src = &j->src[nj->i];
    const nn_conv2d_p *p = &src->conv->p;
    int K = p->cin * p->kh * p->kw, n = (int)j->n;
    int o0 = (int)t * nj->rows, m = j->cout - o0 < nj->rows ? j->cout - o0 : nj->rows;
    const float *cols = is_pointwise(p) ? src->x : nj->cols;
    float *y = j->y + (size_t)o0 * n;
    float beta = (nj->i > 0 || j->accumulate) ? 1.0f : 0.0f;
    nn_sgemm_tile(0, 0, m, n, K, 1.0f, src->conv->w + (size_t)o0 * K, K, cols, n, beta, y, n);
    if (nj->i + 1 < j->nsrc) return;
    for (int o = o0; o < o0 + m; o++) {
        float b = j->src[0].conv->b[o] + (j->nsrc > 1 ? j->src[1].conv->b[o] : 0.0f);
        bias_relu(j->y + (size_t)o * n, n, b, j->relu);
    }
}

/* A narrow conv on nt threads, source by source (one im2col buffer). */
static void run_narrow_conv(const conv_job *j, int nt) {
    narrow_job nj = {j, j->ws, 0, narrow_rows(j->cout)};
    for (nj.i = 0; nj.i < j->nsrc; nj.i++) {
        const nn_conv2d_p *p = &j->src[nj.i].conv->p;
        int K = p->cin * p->kh * p->kw;
        if (!is_pointwise(p)) cs_parallel_for(nt, (K + CHUNK - 1) / CHUNK, narrow_im2col, &nj);
        cs_parallel_for(nt, (j->cout + nj.rows - 1) / nj.rows, narrow_rows_run, &nj);
    }
}

typedef struct {
    float *y;
    conv_src src;
    int relu, tile; /* tile: block rows */
    int64_t nrows;
    float *ws;
    size_t ws_stride;
} wino_job;

/* A narrow Winograd conv as one tile of all block rows, its stages shared
 * by the threads: the input transform in chunks of input channels, the 16
 * sgemms one each, the output transform in chunks of output channels. V, M
 * in thread 0's scratch, then a row buffer per thread. */
typedef struct {
    const wino_job *w;
    float *V, *M, *rowbuf;
    size_t rb; /* floats per row buffer */
    int cnt;   /* blocks */
} wino_narrow;

static void wn_input(void *vctx, int64_t t, int thread) {
    const wino_narrow *n = vctx;
    const wino_job *j = n->w;
    int cin = j->src.conv->p.cin, c0 = (int)t * CHUNK, c1 = c0 + CHUNK < cin ? c0 + CHUNK : cin;
    cs_wino_input(n->V, j->src.x, cin, c0, c1, j->src.s.b, j->src.s.h, j->src.s.w, 0, (int)j->nrows,
                  n->rowbuf + (size_t)thread * n->rb);
}

static void wn_gemm(void *vctx, int64_t xi, int thread) {
    (void)thread;
    const wino_narrow *n = vctx;
    const cs_rn_conv *c = n->w->src.conv;
    int cin = c->p.cin, cout = c->p.cout;
    nn_sgemm_tile(0, 0, cout, n->cnt, cin, 1.0f, c->wino + (size_t)xi * cout * cin, cin,
                  n->V + (size_t)xi * cin * n->cnt, n->cnt, 0.0f, n->M + (size_t)xi * cout * n->cnt, n->cnt);
}

static void wn_output(void *vctx, int64_t t, int thread) {
    const wino_narrow *n = vctx;
    const wino_job *j = n->w;
    const cs_rn_conv *c = j->src.conv;
    int cout = c->p.cout, c0 = (int)t * CHUNK, c1 = c0 + CHUNK < cout ? c0 + CHUNK : cout;
    cs_wino_output(j->y, n->M, c->b, cout, c0, c1, j->src.s.b, j->src.s.h, j->src.s.w, 0, (int)j->nrows, j->relu,
                   n->rowbuf + (size_t)thread * n->rb);
}

static void run_narrow_wino(const wino_job *w, int nt) {
    const cs_rn_conv *c = w->src.conv;
    int cin = c->p.cin, cout = c->p.cout;
    wino_narrow n = {w, w->ws, NULL, NULL, cs_wino_rowbuf(w->src.s.w), (int)w->nrows * ((w->src.s.w + 1) / 2)};
    n.M = n.V + (size_t)16 * cin * n.cnt;
    n.rowbuf = n.M + (size_t)16 * cout * n.cnt;
    cs_parallel_for(nt, (cin + CHUNK - 1) / CHUNK, wn_input, &n);
    cs_parallel_for(nt, 16, wn_gemm, &n);
    cs_parallel_for(nt, (cout + CHUNK - 1) / CHUNK, wn_output, &n);
}

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
        if (is_narrow(w.nrows * ((a.s.w + 1) / 2))) {
            w.tile = (int)w.nrows;
            run_narrow_wino(&w, r->nt);
            return o;
        }
        w.tile = cs_wino_tile(a.conv->p.cin, a.conv->p.cout, a.s.b, a.s.h, a.s.w);
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
    if (is_narrow(j.n)) {
        j.tile = (int)j.n;
        run_narrow_conv(&j, r->nt);
        return o;
    }
    /* pointwise-only jobs need no buffer: tiles sized for the deepest K = cin */
    j.tile = tile_cols(Kmax ? Kmax : a.conv->p.cin, j.n);
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
static void plan_sizes(const cs_resnet *m, int B, int H, int W, size_t *act, size_t *ws) {
    shape4 s = {3, B, H, W};
    *act = (size_t)3 * B * H * W;
    *ws = conv_ws(&m->conv1, s);
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
            size_t t = conv_ws(cv[i], is);
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
    plan_sizes(m, B, H, W, &act, &ws_n);
    /* every buffer 64-byte aligned, whatever the thread count: an sgemm
     * may take another path for other alignments of its operands */
    act = (act + 15) / 16 * 16, ws_n = (ws_n + 15) / 16 * 16;
    size_t need = 3 * act + (size_t)nt * ws_n + (size_t)B * 2048;
    if (need > m->work_n) {
        free(m->work);
        m->work_n = 0;
        if (!(m->work = aligned_alloc(64, need * sizeof(float))))
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
