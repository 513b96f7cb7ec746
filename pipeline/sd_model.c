/* sd_model.c — loading a Stable Diffusion model (sd_layout.c finds the
 * tensors, sd_detect.c / a config give the sizes, lora.c merges LoRAs),
 * weight fetching with shape checks, the activation arena, small accessors.
 *
 * F16/BF16 checkpoints are widened to F32 once, at load. Measured by bench_sd
 * (2 threads): widening per use with cs_f16_to_f32 costs 10-28 ns/weight,
 * i.e. 9-24 s per UNet forward (860M weights) - more than the forward itself;
 * even an F16C loop (0.7 ns/weight) would add ~0.6 s and 3.4 GB of writes to
 * every step. Widening once costs the f32 memory, which the budget (f32
 * weights + 2 GB) allows. F32 tensors are used in place from the mapping. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/gemm.h"
#include "core/nn.h"
#include "pipeline/schedule.h"
#include "pipeline/sd_internal.h"

/* ---- weight fetching ---------------------------------------------------------- */

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int sd_load_tensor(sd_loader *L, const float **out, const char *name, int ndim,
                   const int64_t *shape) {
    *out = NULL;
    if (L->failed) return -1;
    const cs_safetensors *st;
    char mapped[512];
    const cs_safetensors_tensor *t = sd_layout_find(L, name, &st, mapped, sizeof mapped);
    if (!t) {
        L->failed = 1;
        if (strcmp(mapped, name) && st)
            return cs_fail(L->err, CS_EFORMAT, "%s: %s (%s): missing", st->path, mapped, name);
        return cs_fail(L->err, CS_EFORMAT, "%s: %s: missing", L->path, name);
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        L->failed = 1;
        return cs_fail(L->err, CS_EFORMAT, "%s: %s: shape %s, expected %s for this config",
                       st->path, mapped, got, want);
    }
    int owned = 0;
    if (cs_safetensors_get_f32(st, mapped, ndim, shape, out, &owned, L->err) ||
        (L->loras && sd_lora_merge(L, name, ndim, shape, out, &owned))) {
        if (owned) free((void *)*out);
        *out = NULL;
        L->failed = 1;
        return -1;
    }
    if (owned) {
        if (L->n_owned == L->cap_owned) {
            int nc = L->cap_owned ? 2 * L->cap_owned : 256;
            float **np = realloc(L->owned, sizeof(float *) * nc);
            if (!np) {
                free((void *)*out);
                L->failed = 1;
                return cs_fail(L->err, CS_ENOMEM, "%s: %s: out of memory", L->path, name);
            }
            L->owned = np, L->cap_owned = nc;
        }
        L->owned[L->n_owned++] = (float *)*out;
    }
    return 0;
}

static int load_wb(sd_loader *L, const float **w, const float **b, const char *name, int ndim,
                   const int64_t *shape, int64_t nb) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s.weight", name);
    if (sd_load_tensor(L, w, buf, ndim, shape)) return -1;
    if (!b) return 0;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return sd_load_tensor(L, b, buf, 1, &nb);
}

int sd_load_conv(sd_loader *L, sd_conv *c, const char *name, int cout, int cin, int k, int bias) {
    int64_t s[4] = {cout, cin, k, k};
    c->cout = cout, c->cin = cin, c->k = k, c->b = NULL;
    if (load_wb(L, &c->w, bias ? &c->b : NULL, name, 4, s, cout)) return -1;
    /* unchanged until sd_free: the convolutions may keep them reordered (core/gemm.h) */
    cs_conv_weights_keep(L, c->w, (size_t)cout * cin * k * k);
    return 0;
}

int sd_load_linear(sd_loader *L, sd_linear *l, const char *name, int nout, int nin, int bias) {
    int64_t s[2] = {nout, nin};
    l->nout = nout, l->nin = nin, l->b = NULL;
    return load_wb(L, &l->w, bias ? &l->b : NULL, name, 2, s, nout);
}

int sd_load_linear_1x1(sd_loader *L, sd_linear *l, const char *name, int nout, int nin) {
    int64_t s[4] = {nout, nin, 1, 1};
    l->nout = nout, l->nin = nin;
    /* SD 1.x stores 1x1 Conv2d [out, in, 1, 1]; SD 2.x / SDXL (linear proj_in/out)
     * and diffusers' VAE attention store Linear [out, in]: the same product */
    char buf[512], mapped[512];
    const cs_safetensors *st;
    snprintf(buf, sizeof buf, "%s.weight", name);
    const cs_safetensors_tensor *t = sd_layout_find(L, buf, &st, mapped, sizeof mapped);
    return load_wb(L, &l->w, &l->b, name, t && t->ndim == 2 ? 2 : 4, s, nout);
}

int sd_load_norm(sd_loader *L, sd_norm *n, const char *name, int c) {
    int64_t s[1] = {c};
    n->c = c;
    return load_wb(L, &n->w, &n->b, name, 1, s, c);
}

/* ---- arena --------------------------------------------------------------------- */

#define ARENA_ALIGN 16 /* floats: 64-byte aligned buffers */

void sd_arena_begin(sd_arena *a) {
    sd_arena_release(a, 0);
    if (a->peak > a->cap) {
        /* 2 MB aligned with a transparent-huge-page hint (THP "madvise"):
         * a 512x512 VAE decode's arena is ~1 GB, first touched in 4 KB
         * faults otherwise (a tenth of its CPU time in the kernel, perf) */
        size_t huge = (size_t)2 << 20, bytes = (a->peak * sizeof(float) + huge - 1) & ~(huge - 1);
        free(a->base);
        a->base = aligned_alloc(huge, bytes);
        if (a->base) madvise(a->base, bytes, MADV_HUGEPAGE); /* a hint: failure changes nothing */
        a->cap = a->base ? a->peak : 0;
    }
}

float *sd_arena_alloc(sd_arena *a, size_t n) {
    n = (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (n == 0) n = ARENA_ALIGN;
    float *p;
    if (a->top + n <= a->cap) {
        p = a->base + a->top;
    } else {
        if (a->n_over == a->cap_over) {
            int nc = a->cap_over ? 2 * a->cap_over : 64;
            void *np = realloc(a->over, sizeof(*a->over) * nc);
            if (!np) return NULL;
            a->over = np, a->cap_over = nc;
        }
        p = aligned_alloc(64, n * sizeof(float));
        if (!p) return NULL;
        a->over[a->n_over].p = p;
        a->over[a->n_over].mark = a->top;
        a->n_over++;
    }
    a->top += n;
    if (a->top > a->peak) a->peak = a->top;
    return p;
}

size_t sd_arena_mark(const sd_arena *a) { return a->top; }

void sd_arena_release(sd_arena *a, size_t mark) {
    while (a->n_over > 0 && a->over[a->n_over - 1].mark >= mark) free(a->over[--a->n_over].p);
    a->top = mark;
}

void sd_arena_free(sd_arena *a) {
    sd_arena_release(a, 0);
    free(a->over);
    free(a->base);
    memset(a, 0, sizeof *a);
}

/* ---- shared forward helpers ------------------------------------------------------- */

#define CONV_WS_MAX ((size_t)16 << 20) /* floats (64 MB) of im2col per band */

int sd_conv_forward(sd_model *m, float *out, const float *in, const sd_conv *c, int B, int h,
                    int w, int stride, int pt, int pl, int pb, int pr) {
    nn_conv2d_p p = {c->cin, c->cout, c->k, c->k, stride, pt, pl, pb, pr};
    size_t need = nn_conv2d_ws(&p, h, w), mn = nn_conv2d_ws_min(&p, h, w);
    size_t nb = nn_conv2d_ws_batched(&p, B, h, w);
    size_t ohw = (size_t)nn_conv2d_oh(&p, h) * nn_conv2d_ow(&p, w);
    if (B > 1 && ohw <= 1024 && nb <= CONV_WS_MAX) need = nb; /* one sgemm for the batch */
    else if (need > CONV_WS_MAX) need = CONV_WS_MAX > mn ? CONV_WS_MAX : mn;
    size_t mark = sd_arena_mark(&m->arena);
    float *ws = need ? sd_arena_alloc(&m->arena, need) : NULL;
    if (need && !ws) return -1;
    nn_conv2d(out, in, c->w, c->b, &p, B, h, w, ws, need);
    sd_arena_release(&m->arena, mark);
    return 0;
}

void sd_linear_tm_to_cm(float *out, const float *in_tm, const sd_linear *l, int T) {
    /* out [nout, T] = W [nout, nin] · in^T, in [T, nin] */
    for (int o = 0; o < l->nout; o++) {
        float b = l->b ? l->b[o] : 0.f;
        for (int t = 0; t < T; t++) out[(size_t)o * T + t] = b;
    }
    nn_flops_add(2.0 * l->nout * T * l->nin);
    nn_sgemm(0, 1, l->nout, T, l->nin, 1.f, l->w, l->nin,
                in_tm, l->nin, 1.f, out, T);
}

/* ---- loading -------------------------------------------------------------------- */

const char *sd_family_name(int family) {
    switch (family) {
    case SD_FAMILY_SD1: return "SD 1.x";
    case SD_FAMILY_SD2: return "SD 2.x";
    case SD_FAMILY_SDXL: return "SDXL";
    }
    return "unknown";
}

/* SD's scaled-linear betas, torch.linspace(sqrt(0.00085), sqrt(0.012), 1000,
 * float64)^2 (SDXL files carry no schedule buffer), cumprod stored as float32 */
static void default_alphas(float *ac) {
    cs_schedule s;
    cs_schedule_sd(&s);
    memcpy(ac, s.alphas_cumprod, sizeof s.alphas_cumprod);
}

/* SD 2.x files do not say whether the UNet predicts v or eps. AUTOMATIC1111's
 * test (modules/sd_models_config.py, is_using_v_parameterization_for_sd2):
 * x = 0.5 everywhere (8x8), t = 999, context 0.5 everywhere; a v model's
 * output at the noisiest level is about -x0, so mean(out - x) < -1 means v.
 * Meaningful for trained weights only: a config's prediction_type wins. */
static int guess_v_prediction(sd_model *m, cs_err *err) {
    int f = 1 << (m->cfg.unet.n_levels - 1), s = f > 8 ? f : 8, C = m->cfg.unet.in_channels;
    size_t n = (size_t)C * s * s, nc = (size_t)SD_CONTEXT_TOKENS * m->cfg.unet.context_dim;
    float *x = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
    float *ctx = malloc(sizeof(float) * nc), t = 999.f;
    int rc = -1;
    if (x && o && ctx) {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f;
        for (size_t i = 0; i < nc; i++) ctx[i] = 0.5f;
        /* 77 equal context tokens attend exactly like A1111's 2 */
        if (!sd_unet(m, x, &t, ctx, NULL, 1, s, s, o, err)) {
            double mean = 0;
            for (size_t i = 0; i < n; i++) mean += (double)o[i] - x[i];
            m->cfg.prediction = mean / (double)n < -1 ? SD_PRED_V : SD_PRED_EPS;
            rc = 0;
        }
    } else {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", m->path);
    }
    free(x), free(o), free(ctx);
    return rc;
}

int sd_load(sd_model **out, const char *ckpt, const char *config, cs_err *err) {
    sd_load_opts o = {.config = config};
    return sd_load_ex(out, ckpt, &o, err);
}

int sd_load_ex(sd_model **out, const char *model, const sd_load_opts *opts, cs_err *err) {
    *out = NULL;
    sd_model *m = calloc(1, sizeof *m);
    if (!m) return cs_fail(err, CS_ENOMEM, "%s: out of memory", model);
    m->path = strdup(model);
    m->loader.path = m->path;
    m->loader.err = err;
    m->loader.cfg = &m->cfg;
    if (!m->path || sd_open_files(m, model, err)) goto fail;
    if (m->loader.layout == SD_LAYOUT_SINGLE && sd_detect(&m->cfg, &m->loader, err)) goto fail;
    const char *cfg_name = opts && opts->config ? opts->config : "the run's recorded config";
    if (opts && opts->config_text ? sd_config_apply_text(&m->cfg, opts->config_text, cfg_name, err)
                                  : opts && opts->config && sd_config_apply(&m->cfg, opts->config, err))
        goto fail;
    if (opts && opts->force_prediction)
        m->cfg.prediction = opts->force_prediction == 2 ? SD_PRED_V : SD_PRED_EPS,
        m->cfg.prediction_stated = 1;
    if (sd_config_check(&m->cfg, opts && (opts->config || opts->config_text) ? cfg_name : model, err)) goto fail;
    if (opts && opts->n_loras > 0 &&
        sd_lora_open(&m->loader.loras, opts->loras, opts->n_loras, &m->cfg, err))
        goto fail;
    if (clip_text_load(m, &m->loader) || unet_load(m, &m->loader) || vae_load(m, &m->loader))
        goto fail;
    if (m->loader.loras && sd_lora_check_used(m->loader.loras, err)) goto fail;
    const float *ac = NULL;
    int64_t n1000 = 1000;
    const cs_safetensors_tensor *act =
        m->loader.layout == SD_LAYOUT_SINGLE ? cs_safetensors_find(&m->st[SD_PART_OTHER], "alphas_cumprod") : NULL;
    if (act) {
        if (sd_load_tensor(&m->loader, &ac, "alphas_cumprod", 1, &n1000)) goto fail;
        memcpy(m->alphas_cumprod, ac, sizeof m->alphas_cumprod);
        for (int i = 0; i < 1000; i++)
            if (!(ac[i] > 0.f && ac[i] <= 1.f)) {
                cs_fail(err, CS_EFORMAT, "%s: alphas_cumprod: value %g outside (0, 1]", model,
                        (double)ac[i]);
                goto fail;
            }
    } else {
        default_alphas(m->alphas_cumprod);
    }
    if (m->cfg.family == SD_FAMILY_SD2 && !m->cfg.prediction_stated &&
        guess_v_prediction(m, err))
        goto fail;
    sd_lora_free(m->loader.loras); /* merged: the LoRA files are not needed any more */
    m->loader.loras = NULL;
    m->loader.err = NULL; /* the caller's err must not be written after return */
    *out = m;
    return 0;
fail:
    m->loader.err = NULL;
    sd_free(m);
    return -1;
}

void sd_free(sd_model *m) {
    if (!m) return;
    cs_conv_weights_forget(&m->loader);
    clip_text_free(&m->text);
    clip_text_free(&m->text2);
    unet_free(&m->unet);
    vae_free(&m->vae);
    sd_lora_free(m->loader.loras);
    for (int i = 0; i < m->loader.n_owned; i++) free(m->loader.owned[i]);
    free(m->loader.owned);
    for (int i = 0; i < SD_N_PARTS; i++)
        if (m->st[i].map || m->st[i].tensors) cs_safetensors_close(&m->st[i]);
    sd_arena_free(&m->arena);
    free(m->path);
    free(m);
}

int sd_family(const sd_model *m) { return m->cfg.family; }
int sd_prediction(const sd_model *m) { return m->cfg.prediction; }
float sd_scale_factor(const sd_model *m) { return m->cfg.scale_factor; }
int sd_context_dim(const sd_model *m) { return m->cfg.unet.context_dim; }
int sd_adm_channels(const sd_model *m) { return m->cfg.unet.adm_in_channels; }
int sd_pooled_dim(const sd_model *m) { return m->cfg.text2.num_layers ? m->cfg.text2.proj_dim : 0; }
int sd_latent_channels(const sd_model *m) { return m->cfg.unet.in_channels; }
int sd_vae_factor(const sd_model *m) { return 1 << (m->cfg.vae.n_levels - 1); }
const float *sd_alphas_cumprod(const sd_model *m) { return m->alphas_cumprod; }
