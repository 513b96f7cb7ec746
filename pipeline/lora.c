/* lora.c — kohya-ss LoRA / LoCon files merged into the weights at load:
 *   W' = W + m * (alpha / rank) * (up @ down)
 * in float32 from the file's values (F16/BF16 widened), as kohya's
 * LoRAInfModule.merge_to and A1111 compute it; rank = down.shape[0] per
 * module, alpha from the module's own `.alpha` (absent or 0: alpha = rank).
 * Conv modules (LoCon): down [r, in, kh, kw], up [out, r, 1, 1], the product
 * reshaped to [out, in, kh, kw]; 1x1-conv LoRAs on Linear weights (and the
 * reverse) are the same product.
 *
 * Names: lora_unet_<diffusers module path> (kohya's SD 1.x / 2.x networks)
 * or lora_unet_<CompVis module path> (its SDXL networks), and lora_te_ /
 * lora_te1_ / lora_te2_<text_model module path>, with '.' -> '_'. The model asks for
 * each weight by its CompVis name; sd_lora_merge derives the kohya name
 * (sd_unet_to_diffusers with the model's res-block count, so the mapping is
 * right for any geometry, not only SD 1.5's numbers). open_clip towers'
 * packed in_proj_weight takes the q, k, v modules on its three row blocks.
 * A module that matches no weight is an error: a LoRA for another family or
 * geometry must not silently do nothing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/sd_internal.h"

typedef struct {
    char *name;        /* kohya module name */
    const float *down, *up;
    int down_owned, up_owned;
    int rank;          /* down.shape[0] */
    int64_t down_cols; /* in * kh * kw */
    int64_t up_rows;   /* out */
    float scale;       /* alpha / rank */
    float mult;
    const char *file;
    int file_idx; /* order of the files: merged in the order given */
    int used;
} lora_mod;

struct sd_lora_set {
    lora_mod *mods;
    int n, cap;
    cs_safetensors *files;
    int n_files;
};

static int mod_cmp(const void *a, const void *b) {
    const lora_mod *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->file_idx > y->file_idx) - (x->file_idx < y->file_idx);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const lora_mod *)a)->name, ((const lora_mod *)b)->name);
}

void sd_lora_free(sd_lora_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->mods[i].name);
        if (s->mods[i].down_owned) free((void *)s->mods[i].down);
        if (s->mods[i].up_owned) free((void *)s->mods[i].up);
    }
    free(s->mods);
    for (int i = 0; i < s->n_files; i++) cs_safetensors_close(&s->files[i]);
    free(s->files);
    free(s);
}

static int ends(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int add_module(sd_lora_set *S, const cs_safetensors *st, int fi, const char *tname,
                      float mult, cs_err *err) {
    size_t len = strlen(tname) - strlen(".lora_down.weight");
    char name[512], key[600];
    if (len >= sizeof name) return cs_fail(err, CS_EFORMAT, "%s: %s: name too long", st->path, tname);
    memcpy(name, tname, len);
    name[len] = 0;
    if (S->n == S->cap) {
        int nc = S->cap ? 2 * S->cap : 256;
        lora_mod *np = realloc(S->mods, sizeof *np * nc);
        if (!np) return cs_fail(err, CS_ENOMEM, "%s: out of memory", st->path);
        S->mods = np, S->cap = nc;
    }
    lora_mod *m = &S->mods[S->n];
    memset(m, 0, sizeof *m);
    m->name = strdup(name);
    if (!m->name) return cs_fail(err, CS_ENOMEM, "%s: out of memory", st->path);
    S->n++;
    m->mult = mult;
    m->file = st->path;
    m->file_idx = fi;
    const cs_safetensors_tensor *d = cs_safetensors_find(st, tname);
    snprintf(key, sizeof key, "%s.lora_up.weight", name);
    const cs_safetensors_tensor *u = cs_safetensors_find(st, key);
    if (!u) return cs_fail(err, CS_EFORMAT, "%s: %s: missing (a lora_down without its lora_up)", st->path, key);
    if (d->ndim < 2 || u->ndim < 2 || d->shape[0] < 1 || u->shape[1] != d->shape[0] ||
        (u->ndim == 4 && (u->shape[2] != 1 || u->shape[3] != 1)))
        return cs_fail(err, CS_EFORMAT,
                       "%s: %s: lora_down/lora_up shapes do not chain (down [r, in...], up "
                       "[out, r(, 1, 1)])",
                       st->path, name);
    m->rank = (int)d->shape[0];
    m->down_cols = d->numel / d->shape[0];
    m->up_rows = u->shape[0];
    if (cs_safetensors_get_f32(st, tname, -1, NULL, &m->down, &m->down_owned, err) ||
        cs_safetensors_get_f32(st, key, -1, NULL, &m->up, &m->up_owned, err))
        return -1;
    float alpha = (float)m->rank;
    snprintf(key, sizeof key, "%s.alpha", name);
    if (cs_safetensors_find(st, key)) {
        const float *a;
        int ow = 0;
        if (cs_safetensors_get_f32(st, key, -1, NULL, &a, &ow, err)) return -1;
        if (cs_safetensors_find(st, key)->numel != 1) {
            if (ow) free((void *)a);
            return cs_fail(err, CS_EFORMAT, "%s: %s: expected one value", st->path, key);
        }
        if (a[0] != 0.f) alpha = a[0];
        if (ow) free((void *)a);
    }
    m->scale = alpha / (float)m->rank;
    return 0;
}

int sd_lora_open(sd_lora_set **out, const sd_lora_spec *specs, int n, const sd_config *cfg,
                 cs_err *err) {
    (void)cfg;
    *out = NULL;
    sd_lora_set *S = calloc(1, sizeof *S);
    if (S) S->files = calloc(n, sizeof *S->files);
    if (!S || !S->files) {
        free(S);
        return cs_fail(err, CS_ENOMEM, "LoRA: out of memory");
    }
    for (int f = 0; f < n; f++) {
        cs_safetensors *st = &S->files[f];
        if (cs_safetensors_open(st, specs[f].path, err)) goto fail;
        S->n_files++;
        int found = 0;
        for (int i = 0; i < st->n; i++) {
            const char *tn = st->tensors[i].name;
            if (ends(tn, ".lora_down.weight")) {
                if (add_module(S, st, f, tn, specs[f].weight, err)) goto fail;
                found++;
            } else if (!ends(tn, ".lora_up.weight") && !ends(tn, ".alpha")) {
                const char *what = strstr(tn, "hada_") ? "LoHa (LyCORIS)"
                                   : strstr(tn, "lokr_") ? "LoKr (LyCORIS)"
                                   : strstr(tn, "dora_scale") ? "DoRA"
                                   : ends(tn, ".diff") || ends(tn, ".diff_b") ? "a full-weight diff"
                                   : "an unknown kind";
                cs_fail(err, CS_EFORMAT,
                        "%s: %s: %s module; copyscope reads kohya LoRA / LoCon modules "
                        "(.lora_down.weight, .lora_up.weight, .alpha)",
                        st->path, tn, what);
                goto fail;
            }
        }
        if (!found) {
            cs_fail(err, CS_EFORMAT, "%s: no .lora_down.weight tensors: not a kohya LoRA file",
                    st->path);
            goto fail;
        }
    }
    qsort(S->mods, S->n, sizeof *S->mods, mod_cmp);
    *out = S;
    return 0;
fail:
    sd_lora_free(S);
    return -1;
}

static void underscores(char *s) {
    for (; *s; s++)
        if (*s == '.') *s = '_';
}

/* kohya names for the CompVis weight `name` (with .weight): up to 3; returns
 * how many. *alts = 1: they are alternative names of the whole weight (UNet:
 * the diffusers module path, as kohya's SD 1.x/2.x networks name it, or the
 * CompVis one, as its SDXL networks do); 0: open_clip's in_proj, q, k, v on
 * row blocks 0..2. */
static int kohya_names(const sd_loader *L, const char *name, char out[3][600], int *alts) {
    char mod[480], d[480];
    size_t n = strlen(name);
    if (n < 8 || strcmp(name + n - 7, ".weight") || n - 7 >= sizeof mod) return 0;
    memcpy(mod, name, n - 7);
    mod[n - 7] = 0;
    const char *te = NULL, *rest = NULL;
    *alts = 0;
    if (!strncmp(mod, "model.diffusion_model.", 22)) { /* the mapping wants the .weight tail */
        int k = 0;
        if (!sd_unet_to_diffusers(L->cfg->unet.num_res_blocks, name + 22, d, sizeof d)) {
            d[strlen(d) - 7] = 0;
            underscores(d);
            snprintf(out[k++], 600, "lora_unet_%s", d);
        }
        snprintf(d, sizeof d, "%s", mod + 22);
        underscores(d);
        snprintf(out[k++], 600, "lora_unet_%s", d);
        *alts = 1;
        return k;
    }
    int xl = L->cfg->family == SD_FAMILY_SDXL;
    if (!strncmp(mod, "cond_stage_model.transformer.", 29)) te = "lora_te", rest = mod + 29;
    else if (!strncmp(mod, "conditioner.embedders.0.transformer.", 36)) te = "lora_te1", rest = mod + 36;
    else if (!strncmp(mod, "conditioner.embedders.1.transformer.", 36)) te = "lora_te2", rest = mod + 36;
    if (te) {
        snprintf(d, sizeof d, "%s", rest);
        underscores(d);
        snprintf(out[0], 600, "%s_%s", te, d);
        return 1;
    }
    /* open_clip names: kohya uses the HF module names of the converted tower */
    const char *oc = !strncmp(mod, "cond_stage_model.model.", 23) ? mod + 23
                     : xl && !strncmp(mod, "conditioner.embedders.1.model.", 30) ? mod + 30
                                                                                 : NULL;
    if (!oc) return 0;
    te = xl ? "lora_te2" : "lora_te";
    int layer, k = 0;
    if (sscanf(oc, "transformer.resblocks.%d.%n", &layer, &k) != 1 || !k) return 0;
    const char *p = oc + k;
    static const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
    if (!strcmp(p, "attn.in_proj")) {
        for (int i = 0; i < 3; i++)
            snprintf(out[i], 600, "%s_text_model_encoder_layers_%d_self_attn_%s", te, layer, qkv[i]);
        return 3;
    }
    const char *hf = !strcmp(p, "attn.out_proj") ? "self_attn_out_proj"
                     : !strcmp(p, "mlp.c_fc")    ? "mlp_fc1"
                     : !strcmp(p, "mlp.c_proj")  ? "mlp_fc2"
                                                 : NULL;
    if (!hf) return 0;
    snprintf(out[0], 600, "%s_text_model_encoder_layers_%d_%s", te, layer, hf);
    return 1;
}

/* in_proj_weight is asked for as ".../attn.in_proj_weight", not ".weight" */
static void normalise(const char *name, char *out, size_t n) {
    size_t len = strlen(name);
    if (len > 14 && !strcmp(name + len - 14, "in_proj_weight"))
        snprintf(out, n, "%.*sin_proj.weight", (int)(len - 14), name);
    else
        snprintf(out, n, "%s", name);
}

int sd_lora_merge(sd_loader *L, const char *name, int ndim, const int64_t *shape, const float **w,
                  int *owned) {
    sd_lora_set *S = L->loras;
    char nm[512], names[3][600];
    normalise(name, nm, sizeof nm);
    int alts = 0, nn = kohya_names(L, nm, names, &alts);
    if (!nn || ndim < 2) return 0;
    int64_t rows = shape[0], cols = 1;
    for (int i = 1; i < ndim; i++) cols *= shape[i];
    int64_t rows_per = alts ? rows : rows / nn;
    for (int q = 0; q < nn; q++) {
        lora_mod key = {.name = names[q]};
        /* every module of that name (one per LoRA file) */
        lora_mod *hit = bsearch(&key, S->mods, S->n, sizeof *S->mods, name_cmp);
        if (!hit) continue;
        while (hit > S->mods && !strcmp(hit[-1].name, names[q])) hit--;
        for (; hit < S->mods + S->n && !strcmp(hit->name, names[q]); hit++) {
            if (hit->up_rows != rows_per || hit->down_cols != cols)
                return cs_fail(L->err, CS_EFORMAT,
                               "%s: %s: delta [%lld, %lld] does not fit %s [%lld, %lld] of %s",
                               hit->file, hit->name, (long long)hit->up_rows,
                               (long long)hit->down_cols, name, (long long)rows_per,
                               (long long)cols, L->path);
            if (!*owned) {
                float *c = malloc(sizeof(float) * rows * cols);
                if (!c) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", hit->file);
                memcpy(c, *w, sizeof(float) * rows * cols);
                *w = c;
                *owned = 1;
            }
            float *dst = (float *)*w + (alts ? 0 : q) * rows_per * cols;
            float *tmp = malloc(sizeof(float) * rows_per * cols);
            if (!tmp) return cs_fail(L->err, CS_ENOMEM, "%s: out of memory", hit->file);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows_per, (int)cols,
                        hit->rank, 1.f, hit->up, hit->rank, hit->down, (int)cols, 0.f, tmp,
                        (int)cols);
            for (int64_t i = 0; i < rows_per * cols; i++) dst[i] += hit->mult * tmp[i] * hit->scale;
            free(tmp);
            hit->used = 1;
        }
    }
    return 0;
}

int sd_lora_check_used(const sd_lora_set *s, cs_err *err) {
    for (int i = 0; i < s->n; i++)
        if (!s->mods[i].used)
            return cs_fail(err, CS_EFORMAT,
                           "%s: %s: matches no weight of this model (a LoRA for another "
                           "family or geometry?)",
                           s->mods[i].file, s->mods[i].name);
    return 0;
}
