/* resnet.c — SSCD ResNet-50 descriptor and its preprocessing (see resnet.h). */
#include "index/resnet.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/safetensors.h"
#include "index/winograd.h"

/* ---- preprocessing ------------------------------------------------------------ */

#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}

static const cs_resnet_preproc preprocs[] = {
    {"small_288", 288, 0, 0, 0, IMAGENET_MEAN, IMAGENET_STD},
    {"skew_320", 0, 320, 320, 0, IMAGENET_MEAN, IMAGENET_STD},
    {"skew_288", 0, 288, 288, 0, IMAGENET_MEAN, IMAGENET_STD},
    {"center_224", 256, 0, 0, 224, IMAGENET_MEAN, IMAGENET_STD},
};

const cs_resnet_preproc *cs_resnet_preproc_named(const char *name) {
    for (size_t i = 0; i < sizeof preprocs / sizeof preprocs[0]; i++)
        if (!strcmp(preprocs[i].name, name)) return &preprocs[i];
    return NULL;
}

void cs_resnet_preproc_size(const cs_resnet_preproc *pp, int w, int h, int *ow, int *oh) {
    if (pp->short_edge > 0) {
        /* torchvision Resize(int): int(size * long / short), truncated */
        int s = pp->short_edge;
        if (w <= h) *ow = s, *oh = (int)((double)((int64_t)s * h) / w);
        else *oh = s, *ow = (int)((double)((int64_t)s * w) / h);
    } else if (pp->resize_w > 0) {
        *ow = pp->resize_w, *oh = pp->resize_h;
    } else {
        *ow = w, *oh = h;
    }
}

/* Pillow's coefficients for one axis (in -> out), 22-bit fixed point. */
#define PIL_PREC 22
typedef struct {
    int ksize;
    int *bounds; /* [out][2]: xmin, count */
    int *k;      /* [out][ksize] */
} pil_coeffs;

static int pil_precompute(pil_coeffs *c, int in, int out) {
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale, support = fs; /* bilinear: 1 */
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = malloc((size_t)out * 2 * sizeof(int));
    c->k = calloc((size_t)out * c->ksize, sizeof(int));
    double *w = malloc((size_t)c->ksize * sizeof *w);
    if (!c->bounds || !c->k || !w) {
        free(c->bounds), free(c->k), free(w);
        return -1;
    }
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale, ww = 0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int j = 0; j < xmax; j++) {
            double x = fabs((j + xmin - center + 0.5) / fs);
            w[j] = x < 1.0 ? 1.0 - x : 0.0;
            ww += w[j];
        }
        for (int j = 0; j < xmax; j++) {
            double v = ww != 0.0 ? w[j] / ww : w[j];
            c->k[i * c->ksize + j] = (int)(v < 0 ? -0.5 + v * (1 << PIL_PREC) : 0.5 + v * (1 << PIL_PREC));
        }
        c->bounds[2 * i] = xmin, c->bounds[2 * i + 1] = xmax;
    }
    free(w);
    return 0;
}

static inline uint8_t clip8(int v) {
    if (v >= (255 << PIL_PREC)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_PREC);
}

int cs_resize_pil_bilinear(cs_image *dst, const cs_image *src, int w, int h, cs_err *err) {
    if (w < 1 || h < 1 || src->w < 1 || src->h < 1)
        return cs_fail(err, CS_EUSAGE, "resize: bad size %dx%d -> %dx%d", src->w, src->h, w, h);
    pil_coeffs cx = {0}, cy = {0};
    int need_x = w != src->w, need_y = h != src->h;
    if ((need_x && pil_precompute(&cx, src->w, w)) || (need_y && pil_precompute(&cy, src->h, h))) {
        free(cx.bounds), free(cx.k);
        return cs_fail(err, CS_ENOMEM, "resize: out of memory");
    }
    /* rows of the source the vertical pass reads (all of them when it is skipped) */
    int y0 = 0, y1 = src->h;
    if (need_y) y0 = cy.bounds[0], y1 = cy.bounds[2 * (h - 1)] + cy.bounds[2 * (h - 1) + 1];
    cs_image tmp = {0};
    int rc = 0;
    if (need_x) {
        if (cs_image_alloc(&tmp, w, y1 - y0, err)) { rc = -1; goto done; }
        for (int y = y0; y < y1; y++) {
            const uint8_t *s = src->rgb + (size_t)y * src->w * 3;
            uint8_t *d = tmp.rgb + (size_t)(y - y0) * w * 3;
            for (int x = 0; x < w; x++) {
                int xmin = cx.bounds[2 * x], cnt = cx.bounds[2 * x + 1];
                const int *k = cx.k + x * cx.ksize;
                for (int ch = 0; ch < 3; ch++) {
                    int acc = 1 << (PIL_PREC - 1);
                    for (int j = 0; j < cnt; j++) acc += s[(xmin + j) * 3 + ch] * k[j];
                    d[x * 3 + ch] = clip8(acc);
                }
            }
        }
    }
    const cs_image *mid = need_x ? &tmp : src;
    int mid_y0 = need_x ? y0 : 0;
    if (cs_image_alloc(dst, w, h, err)) { rc = -1; goto done; }
    if (!need_y) {
        memcpy(dst->rgb, mid->rgb, (size_t)w * h * 3);
    } else {
        for (int y = 0; y < h; y++) {
            int ymin = cy.bounds[2 * y], cnt = cy.bounds[2 * y + 1];
            const int *k = cy.k + y * cy.ksize;
            uint8_t *d = dst->rgb + (size_t)y * w * 3;
            for (int x = 0; x < w * 3; x++) {
                int acc = 1 << (PIL_PREC - 1);
                for (int j = 0; j < cnt; j++)
                    acc += mid->rgb[(size_t)(ymin + j - mid_y0) * w * 3 + x] * k[j];
                d[x] = clip8(acc);
            }
        }
    }
done:
    cs_image_free(&tmp);
    free(cx.bounds), free(cx.k), free(cy.bounds), free(cy.k);
    return rc;
}

int cs_resnet_preprocess(const cs_resnet_preproc *pp, const cs_image *img, float **out, int *ow,
                         int *oh, cs_err *err) {
    *out = NULL;
    int rw, rh;
    cs_resnet_preproc_size(pp, img->w, img->h, &rw, &rh);
    if (rw < 1 || rh < 1) return cs_fail(err, CS_EFORMAT, "image %dx%d: too small to resize", img->w, img->h);
    cs_image r = {0};
    if (cs_resize_pil_bilinear(&r, img, rw, rh, err)) return -1;
    int cx = 0, cy = 0, w = rw, h = rh;
    if (pp->crop > 0) {
        if (pp->crop > rw || pp->crop > rh) {
            cs_image_free(&r);
            return cs_fail(err, CS_EUSAGE, "center crop %d larger than %dx%d", pp->crop, rw, rh);
        }
        /* torchvision: int(round((size - crop) / 2)), round half to even */
        cx = (int)nearbyint((rw - pp->crop) / 2.0), cy = (int)nearbyint((rh - pp->crop) / 2.0);
        w = h = pp->crop;
    }
    float *x = malloc((size_t)3 * w * h * sizeof *x);
    if (!x) {
        cs_image_free(&r);
        return cs_fail(err, CS_ENOMEM, "preprocess: out of memory");
    }
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                /* divisions, not reciprocal multiplies: bit-identical to torchvision */
                float v = (float)r.rgb[((size_t)(y + cy) * rw + xx + cx) * 3 + c] / 255.0f;
                x[((size_t)c * h + y) * w + xx] = (v - pp->mean[c]) / pp->std[c];
            }
    cs_image_free(&r);
    *out = x, *ow = w, *oh = h;
    return 0;
}

/* ---- weights ------------------------------------------------------------------ */

static const int layer_blocks[4] = {3, 4, 6, 3};
static const int layer_width[4] = {64, 128, 256, 512};

/* Walks every conv of the network in a fixed order: fn(ctx, conv, name of
 * the conv, name of its batch norm). */
typedef int (*conv_visit)(void *ctx, cs_rn_conv *c, const char *wname, const char *bnname);

static void set_conv(cs_rn_conv *c, int cin, int cout, int k, int stride, int pad) {
    c->p = (nn_conv2d_p){cin, cout, k, k, stride, pad, pad, pad, pad};
}

static void describe(cs_resnet *m) {
    set_conv(&m->conv1, 3, 64, 7, 2, 3);
    int cin = 64, bi = 0;
    for (int L = 0; L < 4; L++) {
        int w = layer_width[L];
        for (int b = 0; b < layer_blocks[L]; b++, bi++) {
            int s = (L > 0 && b == 0) ? 2 : 1;
            cs_rn_block *B = &m->blocks[bi];
            set_conv(&B->conv1, cin, w, 1, 1, 0);
            set_conv(&B->conv2, w, w, 3, s, 1); /* v1.5: stride on the 3x3 */
            set_conv(&B->conv3, w, 4 * w, 1, 1, 0);
            if (b == 0) set_conv(&B->downsample, cin, 4 * w, 1, s, 0);
            else memset(&B->downsample, 0, sizeof B->downsample);
            cin = 4 * w;
        }
    }
}

static int visit_all(cs_resnet *m, conv_visit fn, void *ctx) {
    if (fn(ctx, &m->conv1, "conv1.weight", "bn1")) return -1;
    char wn[96], bn[96];
    int bi = 0;
    for (int L = 0; L < 4; L++)
        for (int b = 0; b < layer_blocks[L]; b++, bi++) {
            cs_rn_block *B = &m->blocks[bi];
            cs_rn_conv *cv[3] = {&B->conv1, &B->conv2, &B->conv3};
            for (int i = 0; i < 3; i++) {
                snprintf(wn, sizeof wn, "layer%d.%d.conv%d.weight", L + 1, b, i + 1);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%d", L + 1, b, i + 1);
                if (fn(ctx, cv[i], wn, bn)) return -1;
            }
            if (B->downsample.p.cout) {
                snprintf(wn, sizeof wn, "layer%d.%d.downsample.0.weight", L + 1, b);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", L + 1, b);
                if (fn(ctx, &B->downsample, wn, bn)) return -1;
            }
        }
    return 0;
}

static size_t conv_floats(const cs_rn_conv *c) {
    return (size_t)c->p.cout * c->p.cin * c->p.kh * c->p.kw + (size_t)c->p.cout;
}

static int count_fn(void *ctx, cs_rn_conv *c, const char *wn, const char *bn) {
    (void)wn, (void)bn;
    *(size_t *)ctx += conv_floats(c);
    return 0;
}

typedef struct {
    const cs_safetensors *st;
    const char *prefix; /* "" or "backbone." */
    float *next;        /* bump allocator into m->params */
    cs_err *err;
} load_ctx;

/* Copies tensor prefix+name (shape checked) to dst, rejecting non-finite values. */
static int load_tensor(load_ctx *l, const char *name, int ndim, const int64_t *shape, float *dst) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", l->prefix, name);
    const float *src;
    int owned;
    if (cs_safetensors_get_f32(l->st, full, ndim, shape, &src, &owned, l->err)) return -1;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(src[i])) bad = 1;
        dst[i] = src[i];
    }
    if (owned) free((void *)src);
    if (bad) return cs_fail(l->err, CS_EFORMAT, "%s: %s: non-finite value", l->st->path, full);
    return 0;
}

static int load_fn(void *ctx, cs_rn_conv *c, const char *wn, const char *bn) {
    load_ctx *l = ctx;
    const nn_conv2d_p *p = &c->p;
    int64_t ws[4] = {p->cout, p->cin, p->kh, p->kw}, bs[1] = {p->cout};
    c->w = l->next;
    c->b = c->w + (size_t)p->cout * p->cin * p->kh * p->kw;
    l->next = c->b + p->cout;
    if (load_tensor(l, wn, 4, ws, c->w)) return -1;
    float *bnp = malloc((size_t)4 * p->cout * sizeof *bnp);
    if (!bnp) return cs_fail(l->err, CS_ENOMEM, "%s: out of memory", l->st->path);
    static const char *parts[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[128];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, parts[i]);
        if (load_tensor(l, name, 1, bs, bnp + (size_t)i * p->cout)) {
            free(bnp);
            return -1;
        }
    }
    for (int o = 0; o < p->cout; o++)
        if (!(bnp[3 * p->cout + o] + 1e-5f > 0)) {
            free(bnp);
            return cs_fail(l->err, CS_EFORMAT, "%s: %s%s.running_var: negative variance", l->st->path,
                           l->prefix, bn);
        }
    memset(c->b, 0, (size_t)p->cout * sizeof *c->b);
    nn_fold_batchnorm(c->w, c->b, p->cout, (size_t)p->cin * p->kh * p->kw, bnp, bnp + p->cout,
                      bnp + 2 * p->cout, bnp + 3 * p->cout, 1e-5f);
    free(bnp);
    return 0;
}

static int is_wino(const cs_rn_conv *c) {
    return c->p.kh == 3 && c->p.kw == 3 && c->p.stride == 1 && c->p.pad_t == 1 && c->p.pad_l == 1;
}

static int count_wino(void *ctx, cs_rn_conv *c, const char *wn, const char *bn) {
    (void)wn, (void)bn;
    if (is_wino(c)) *(size_t *)ctx += (size_t)16 * c->p.cout * c->p.cin;
    return 0;
}

static int fill_wino(void *ctx, cs_rn_conv *c, const char *wn, const char *bn) {
    (void)wn, (void)bn;
    float **next = ctx;
    c->wino = NULL;
    if (!is_wino(c)) return 0;
    c->wino = *next;
    *next += (size_t)16 * c->p.cout * c->p.cin;
    cs_wino_weights(c->wino, c->w, c->p.cout, c->p.cin);
    return 0;
}

/* Winograd-transformed copies of the 3x3 stride-1 filters (after folding). */
static int prepare_winograd(cs_resnet *m, const char *path, cs_err *err) {
    size_t n = 0;
    visit_all(m, count_wino, &n);
    m->wino_params = malloc(n * sizeof(float));
    if (!m->wino_params) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    float *next = m->wino_params;
    return visit_all(m, fill_wino, &next);
}

int cs_resnet_load(cs_resnet *m, const char *path, cs_err *err) {
    memset(m, 0, sizeof *m);
    cs_safetensors st;
    if (cs_safetensors_open(&st, path, err)) return -1;
    load_ctx l = {&st, "", NULL, err};
    if (!cs_safetensors_find(&st, "conv1.weight")) {
        if (cs_safetensors_find(&st, "backbone.conv1.weight")) l.prefix = "backbone.";
        else {
            cs_safetensors_close(&st);
            return cs_fail(err, CS_EFORMAT, "%s: not a torchvision ResNet-50 (no conv1.weight)", path);
        }
    }
    describe(m);
    m->gem_p = 3.0f;
    size_t total = 0;
    visit_all(m, count_fn, &total);
    char fcw[64], fcb[64];
    snprintf(fcw, sizeof fcw, "%sfc.weight", l.prefix);
    snprintf(fcb, sizeof fcb, "%sfc.bias", l.prefix);
    const cs_safetensors_tensor *fc = cs_safetensors_find(&st, fcw);
    m->dim = 2048;
    if (fc) {
        if (fc->ndim != 2 || fc->shape[1] != 2048 || fc->shape[0] < 1 || fc->shape[0] > 65536) {
            cs_safetensors_close(&st);
            return cs_fail(err, CS_EFORMAT, "%s: %s: shape must be [dim, 2048]", path, fcw);
        }
        m->dim = (int)fc->shape[0];
        total += (size_t)m->dim * 2048 + m->dim;
    }
    m->params = malloc(total * sizeof(float));
    if (!m->params) {
        cs_safetensors_close(&st);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    }
    l.next = m->params;
    int rc = visit_all(m, load_fn, &l);
    if (!rc && fc) {
        int64_t ws[2] = {m->dim, 2048}, bs[1] = {m->dim};
        m->fc_w = l.next;
        m->fc_b = m->fc_w + (size_t)m->dim * 2048;
        rc = load_tensor(&l, "fc.weight", 2, ws, m->fc_w) || load_tensor(&l, "fc.bias", 1, bs, m->fc_b)
                 ? -1 : 0;
    }
    cs_safetensors_close(&st);
    if (!rc) rc = prepare_winograd(m, path, err);
    if (rc) cs_resnet_free(m);
    return rc;
}

void cs_resnet_free(cs_resnet *m) {
    free(m->params);
    free(m->wino_params);
    free(m->work);
    memset(m, 0, sizeof *m);
}

/* Order of inputs: by (height, width), then by position (stable). */
typedef struct {
    int w, h, i;
} size_key;

static int cmp_size(const void *a, const void *b) {
    const size_key *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    if (x->w != y->w) return x->w < y->w ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

typedef struct {
    const cs_resnet_preproc *pp;
    const cs_image *imgs;
    float **in;
    size_key *k;
    cs_err *errs; /* [n] */
} prep_ctx;

static void prep_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    prep_ctx *c = vctx;
    c->k[i].i = (int)i;
    cs_resnet_preprocess(c->pp, &c->imgs[i], &c->in[i], &c->k[i].w, &c->k[i].h, &c->errs[i]);
}

int cs_resnet_embed(cs_resnet *m, const cs_resnet_preproc *pp, const cs_image *imgs, int n,
                    int batch, float *out, cs_err *err) {
    if (batch < 1) batch = 1;
    float **in = calloc((size_t)(n ? n : 1), sizeof *in);
    size_key *k = calloc((size_t)(n ? n : 1), sizeof *k);
    float *y = malloc((size_t)(batch < n ? batch : (n ? n : 1)) * m->dim * sizeof *y);
    int rc = 0;
    if (!in || !k || !y) {
        rc = cs_fail(err, CS_ENOMEM, "resnet: out of memory");
        goto done;
    }
    if (!rc) {
        /* decode-side work of the batch on every thread (resize is ~10% of the
         * time at 288 px once the network itself is threaded) */
        prep_ctx pc = {pp, imgs, in, k, calloc((size_t)(n ? n : 1), sizeof(cs_err))};
        if (!pc.errs) rc = cs_fail(err, CS_ENOMEM, "resnet: out of memory");
        else {
            cs_parallel_for(cs_threads(), n, prep_one, &pc);
            for (int i = 0; i < n && !rc; i++)
                if (pc.errs[i].code) *err = pc.errs[i], rc = -1;
            free(pc.errs);
        }
    }
    /* same-sized inputs side by side, so mixed sizes still make full batches */
    if (!rc) qsort(k, (size_t)n, sizeof *k, cmp_size);
    for (int i = 0; i < n && !rc;) {
        /* a run of same-sized inputs, up to batch */
        int j = i + 1;
        while (j < n && j - i < batch && k[j].w == k[i].w && k[j].h == k[i].h) j++;
        int w = k[i].w, h = k[i].h;
        size_t per = (size_t)3 * w * h;
        float *x = malloc(per * (size_t)(j - i) * sizeof *x);
        if (!x) {
            rc = cs_fail(err, CS_ENOMEM, "resnet: out of memory");
            break;
        }
        for (int t = i; t < j; t++) memcpy(x + per * (size_t)(t - i), in[k[t].i], per * sizeof *x);
        rc = cs_resnet_forward(m, x, j - i, h, w, y, NULL, err);
        for (int t = i; t < j && !rc; t++)
            memcpy(out + (size_t)k[t].i * m->dim, y + (size_t)(t - i) * m->dim, (size_t)m->dim * sizeof *y);
        free(x);
        i = j;
    }
done:
    if (in)
        for (int i = 0; i < n; i++) free(in[i]);
    free(in), free(k), free(y);
    return rc;
}
