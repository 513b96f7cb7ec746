/* sd_config.c — Stable Diffusion hyper-parameters: the built-in SD 1.x
 * preset and JSON configs laid out like ../shared/refs/sd-tiny/config.json,
 * sd2-tiny's or sdxl-tiny's (cJSON), applied on top of what sd_detect.c read
 * from the weights. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/sd_internal.h"

void sd_config_preset(sd_config *c) {
    memset(c, 0, sizeof *c);
    sd_unet_config *u = &c->unet;
    u->in_channels = 4;
    u->out_channels = 4;
    u->model_channels = 320;
    u->n_levels = 4;
    int um[4] = {1, 2, 4, 4};
    memcpy(u->channel_mult, um, sizeof um);
    u->num_res_blocks = 2;
    u->attn_level[0] = u->attn_level[1] = u->attn_level[2] = 1; /* ds 1, 2, 4 */
    u->num_heads = 8;
    u->num_head_channels = -1;
    for (int l = 0; l < SD_MAX_LEVELS; l++) u->depth[l] = 1;
    u->depth_middle = 1;
    u->context_dim = 768;
    u->time_embed_dim = 1280;
    sd_vae_config *v = &c->vae;
    v->ch = 128;
    v->n_levels = 4;
    memcpy(v->ch_mult, um, sizeof um);
    v->num_res_blocks = 2;
    v->z_channels = 4;
    v->embed_dim = 4;
    v->in_channels = 3;
    v->out_ch = 3;
    v->double_z = 1;
    sd_text_config *t = &c->text;
    t->vocab_size = 49408;
    t->max_positions = 77;
    t->hidden_size = 768;
    t->num_layers = 12;
    t->num_heads = 12;
    t->intermediate = 3072;
    t->pad_id = 49407;
    t->final_ln = 1;
    t->layer_norm_eps = 1e-5f;
    c->family = SD_FAMILY_SD1;
    c->prediction = SD_PRED_EPS;
    c->scale_factor = SD_SCALE_FACTOR;
}

/* Reads an integer key if present. Returns -1 (error set) if present but not an integer. */
static int get_int(const cJSON *obj, const char *sect, const char *key, int *out, const char *path,
                   cs_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 1e9)
        return cs_fail(err, CS_EFORMAT, "%s: %s.%s: expected an integer", path, sect, key);
    *out = (int)it->valuedouble;
    return 0;
}

static int get_float(const cJSON *obj, const char *sect, const char *key, float *out,
                     const char *path, cs_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (!cJSON_IsNumber(it))
        return cs_fail(err, CS_EFORMAT, "%s: %s%s%s: expected a number", path, sect,
                       *sect ? "." : "", key);
    *out = (float)it->valuedouble;
    return 0;
}

static int get_bool(const cJSON *obj, const char *sect, const char *key, int *out,
                    const char *path, cs_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (!cJSON_IsBool(it))
        return cs_fail(err, CS_EFORMAT, "%s: %s.%s: expected true or false", path, sect, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

/* An array of positive integers; *n receives its length (<= SD_MAX_LEVELS). */
static int get_int_array(const cJSON *obj, const char *sect, const char *key, int *vals, int *n,
                         int allow_empty, const char *path, cs_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    int len = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
    if (len < (allow_empty ? 0 : 1) || len > SD_MAX_LEVELS)
        return cs_fail(err, CS_EFORMAT, "%s: %s.%s: expected an array of 1..%d positive integers",
                       path, sect, key, SD_MAX_LEVELS);
    for (int i = 0; i < len; i++) {
        const cJSON *e = cJSON_GetArrayItem(it, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 ||
            e->valuedouble > 1e6)
            return cs_fail(err, CS_EFORMAT, "%s: %s.%s[%d]: expected a positive integer", path,
                           sect, key, i);
        vals[i] = (int)e->valuedouble;
    }
    *n = len;
    return 0;
}

static int section(const cJSON *root, const char *key, const cJSON **out, const char *path,
                   cs_err *err) {
    *out = cJSON_GetObjectItemCaseSensitive(root, key);
    if (*out && !cJSON_IsObject(*out))
        return cs_fail(err, CS_EFORMAT, "%s: %s: expected an object", path, key);
    return 0;
}

/* A text_encoder section: Hugging Face names (hidden_size, ...) or open_clip
 * names (width, heads, layers, mlp_width, embed_dim). */
static int parse_text(sd_text_config *x, const cJSON *t, const char *sect, const char *path,
                      cs_err *err) {
    if (get_int(t, sect, "vocab_size", &x->vocab_size, path, err) ||
        get_int(t, sect, "max_position_embeddings", &x->max_positions, path, err) ||
        get_int(t, sect, "context_length", &x->max_positions, path, err) ||
        get_int(t, sect, "hidden_size", &x->hidden_size, path, err) ||
        get_int(t, sect, "width", &x->hidden_size, path, err) ||
        get_int(t, sect, "num_hidden_layers", &x->num_layers, path, err) ||
        get_int(t, sect, "layers", &x->num_layers, path, err) ||
        get_int(t, sect, "num_attention_heads", &x->num_heads, path, err) ||
        get_int(t, sect, "heads", &x->num_heads, path, err) ||
        get_int(t, sect, "intermediate_size", &x->intermediate, path, err) ||
        get_int(t, sect, "mlp_width", &x->intermediate, path, err) ||
        get_int(t, sect, "pad_token_id", &x->pad_id, path, err) ||
        get_float(t, sect, "layer_norm_eps", &x->layer_norm_eps, path, err))
        return -1;
    return 0;
}

/* Long: one checked read per config key, grouped by section (unet, vae, text), in the file's order. */
static int parse_config(sd_config *c, const cJSON *root, const char *path, cs_err *err) {
    const cJSON *u, *v, *t;
    if (!cJSON_IsObject(root)) return cs_fail(err, CS_EFORMAT, "%s: not a JSON object", path);
    if (section(root, "unet", &u, path, err) || section(root, "vae", &v, path, err) ||
        section(root, "text_encoder", &t, path, err))
        return -1;
    if (get_float(root, "", "scale_factor", &c->scale_factor, path, err)) return -1;
    if (u) {
        sd_unet_config *x = &c->unet;
        int ds[SD_MAX_LEVELS], nds = -1;
        if (get_int(u, "unet", "in_channels", &x->in_channels, path, err) ||
            get_int(u, "unet", "out_channels", &x->out_channels, path, err) ||
            get_int(u, "unet", "model_channels", &x->model_channels, path, err) ||
            get_int_array(u, "unet", "channel_mult", x->channel_mult, &x->n_levels, 0, path, err) ||
            get_int(u, "unet", "num_res_blocks", &x->num_res_blocks, path, err) ||
            get_int_array(u, "unet", "attention_resolutions", ds, &nds, 1, path, err) ||
            get_int(u, "unet", "num_heads", &x->num_heads, path, err) ||
            get_int(u, "unet", "num_head_channels", &x->num_head_channels, path, err) ||
            get_int(u, "unet", "context_dim", &x->context_dim, path, err) ||
            get_int(u, "unet", "adm_in_channels", &x->adm_in_channels, path, err))
            return -1;
        const cJSON *td = cJSON_GetObjectItemCaseSensitive(u, "transformer_depth");
        if (cJSON_IsArray(td)) {
            int nd = 0;
            if (get_int_array(u, "unet", "transformer_depth", x->depth, &nd, 0, path, err))
                return -1;
            for (int l = nd; l < SD_MAX_LEVELS; l++) x->depth[l] = x->depth[nd - 1];
            x->depth_middle = x->depth[nd - 1];
        } else if (td) {
            int d = 0;
            if (get_int(u, "unet", "transformer_depth", &d, path, err)) return -1;
            for (int l = 0; l < SD_MAX_LEVELS; l++) x->depth[l] = d;
            x->depth_middle = d;
        }
        if (get_int(u, "unet", "transformer_depth_middle", &x->depth_middle, path, err))
            return -1;
        if (x->num_heads > 0 || x->num_head_channels > 0)
            memset(x->heads_level, 0, sizeof x->heads_level);
        if (!cJSON_GetObjectItemCaseSensitive(u, "time_embed_dim"))
            x->time_embed_dim = 4 * x->model_channels;
        else if (get_int(u, "unet", "time_embed_dim", &x->time_embed_dim, path, err))
            return -1;
        if (nds >= 0) { /* downsample factors 1, 2, 4 ... -> level indices */
            memset(x->attn_level, 0, sizeof x->attn_level);
            for (int i = 0; i < nds; i++) {
                int l = 0;
                while ((1 << l) < ds[i] && l < SD_MAX_LEVELS) l++;
                if ((1 << l) != ds[i] || l >= SD_MAX_LEVELS)
                    return cs_fail(err, CS_EFORMAT,
                                   "%s: unet.attention_resolutions[%d]: %d is not a power of two "
                                   "below 2^%d",
                                   path, i, ds[i], SD_MAX_LEVELS);
                x->attn_level[l] = 1;
            }
        }
        int b = 0;
        if (get_bool(u, "unet", "use_scale_shift_norm", &b, path, err)) return -1;
        if (b) return cs_fail(err, CS_EFORMAT, "%s: unet.use_scale_shift_norm: not supported (SD 1.x uses false)", path);
        b = 0;
        if (get_bool(u, "unet", "resblock_updown", &b, path, err)) return -1;
        if (b) return cs_fail(err, CS_EFORMAT, "%s: unet.resblock_updown: not supported (SD 1.x uses false)", path);
    }
    if (v) {
        sd_vae_config *x = &c->vae;
        int ar[SD_MAX_LEVELS], nar = 0;
        if (get_int(v, "vae", "ch", &x->ch, path, err) ||
            get_int_array(v, "vae", "ch_mult", x->ch_mult, &x->n_levels, 0, path, err) ||
            get_int(v, "vae", "num_res_blocks", &x->num_res_blocks, path, err) ||
            get_int(v, "vae", "z_channels", &x->z_channels, path, err) ||
            get_int(v, "vae", "embed_dim", &x->embed_dim, path, err) ||
            get_int(v, "vae", "in_channels", &x->in_channels, path, err) ||
            get_int(v, "vae", "out_ch", &x->out_ch, path, err) ||
            get_bool(v, "vae", "double_z", &x->double_z, path, err) ||
            get_int_array(v, "vae", "attn_resolutions", ar, &nar, 1, path, err))
            return -1;
        if (nar > 0)
            return cs_fail(err, CS_EFORMAT,
                           "%s: vae.attn_resolutions: attention outside the mid block is not "
                           "supported (SD 1.x has none)",
                           path);
    }
    const cJSON *tl, *tg;
    if (section(root, "text_encoder_l", &tl, path, err) ||
        section(root, "text_encoder_g", &tg, path, err))
        return -1;
    if (t && parse_text(&c->text, t, "text_encoder", path, err)) return -1;
    if (tl && parse_text(&c->text, tl, "text_encoder_l", path, err)) return -1;
    if (tg && parse_text(&c->text2, tg, "text_encoder_g", path, err)) return -1;
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(root, "schedule");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "prediction_type");
    if (!pt && cJSON_IsObject(sch)) pt = cJSON_GetObjectItemCaseSensitive(sch, "prediction_type");
    if (pt) {
        c->prediction_stated = 1;
        if (cJSON_IsString(pt) && !strcmp(pt->valuestring, "epsilon")) c->prediction = SD_PRED_EPS;
        else if (cJSON_IsString(pt) && !strcmp(pt->valuestring, "v_prediction"))
            c->prediction = SD_PRED_V;
        else
            return cs_fail(err, CS_EFORMAT,
                           "%s: prediction_type: expected \"epsilon\" or \"v_prediction\"", path);
    }
    return 0;
}

char *sd_read_text(const char *path, size_t max, cs_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_fail(err, CS_EIO, "%s: cannot open", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            if (cap > max) {
                free(buf);
                fclose(f);
                cs_fail(err, CS_ELIMIT, "%s: larger than %zu MB", path, max >> 20);
                return NULL;
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        cs_fail(err, CS_EIO, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int sd_config_apply_text(sd_config *c, const char *json, const char *name, cs_err *err) {
    cJSON *root = cJSON_Parse(json);
    if (!root) return cs_fail(err, CS_EFORMAT, "%s: not valid JSON", name);
    int rc = parse_config(c, root, name, err);
    cJSON_Delete(root);
    return rc;
}

int sd_config_apply(sd_config *c, const char *path, cs_err *err) {
    char *buf = sd_read_text(path, 16u << 20, err);
    if (!buf) return -1;
    int rc = sd_config_apply_text(c, buf, path, err);
    free(buf);
    return rc;
}

int sd_config_load(sd_config *c, const char *path, cs_err *err) {
    sd_config_preset(c);
    if (sd_config_apply(c, path, err)) return -1;
    return sd_config_check(c, path, err);
}

/* heads at a level of ch channels: diffusers' per-level list, a fixed head
 * width (SD 2.x / SDXL), or a fixed count (SD 1.x); -1 when unknown. */
int sd_unet_heads(const sd_unet_config *u, int level, int ch) {
    if (u->heads_level[level] > 0) return u->heads_level[level];
    if (u->num_head_channels > 0) return ch % u->num_head_channels ? -1 : ch / u->num_head_channels;
    return u->num_heads > 0 ? u->num_heads : -1;
}

static int check_text(const sd_text_config *t, const char *sect, const char *p, cs_err *err) {
    if (t->num_heads < 1)
        return cs_fail(err, CS_EFORMAT,
                       "%s: %s: the attention head count is not stored in the weights and %d "
                       "features is not a released model's width; give a config "
                       "(--config FILE, laid out like ../shared/refs/sd-tiny/config.json) "
                       "with %s.num_attention_heads",
                       p, sect, t->hidden_size, sect);
    if (t->vocab_size < 1 || t->vocab_size > 10000000 || t->max_positions != SD_CONTEXT_TOKENS ||
        t->hidden_size < 1 || t->hidden_size > 65536 || t->num_layers < 1 ||
        t->num_layers > 256 || t->hidden_size % t->num_heads || t->intermediate < 1 ||
        t->intermediate > 1 << 20 || !(t->layer_norm_eps > 0) || t->proj_dim < 0 ||
        t->proj_dim > 65536)
        return cs_fail(err, CS_EFORMAT,
                       "%s: %s: hidden_size %d, num_attention_heads %d, "
                       "num_hidden_layers %d, intermediate_size %d, max_position_embeddings %d: "
                       "sizes must be positive, hidden_size divisible by the heads, positions 77",
                       p, sect, t->hidden_size, t->num_heads, t->num_layers, t->intermediate,
                       t->max_positions);
    if (t->skip_last && t->num_layers < 2)
        return cs_fail(err, CS_EFORMAT, "%s: %s: the penultimate layer needs 2 or more layers", p,
                       sect);
    return 0;
}

int sd_config_check(const sd_config *c, const char *path, cs_err *err) {
    const sd_unet_config *u = &c->unet;
    const char *p = path ? path : "built-in SD 1.x config";
    if (u->in_channels < 1 || u->out_channels < 1 || u->model_channels < 32 ||
        u->model_channels % 32 || u->model_channels % 2 || u->num_res_blocks < 1 ||
        u->n_levels < 1 || u->n_levels > SD_MAX_LEVELS || u->context_dim < 1 ||
        u->time_embed_dim < 1 || u->model_channels > 65536 || u->num_res_blocks > 64 ||
        u->context_dim > 65536 || u->time_embed_dim > 65536 || u->depth_middle < 0 ||
        u->depth_middle > 64 || u->adm_in_channels < 0 || u->adm_in_channels > 1 << 20)
        return cs_fail(err, CS_EFORMAT,
                       "%s: unet: channel counts must be positive, model_channels a multiple of "
                       "32 (GroupNorm groups)",
                       p);
    for (int l = 0; l < u->n_levels; l++) {
        int ch = u->model_channels * u->channel_mult[l];
        if (ch > 65536) return cs_fail(err, CS_EFORMAT, "%s: unet.channel_mult: too large", p);
        if (u->depth[l] < 1 || u->depth[l] > 64)
            return cs_fail(err, CS_EFORMAT, "%s: unet.transformer_depth: 1..64 per level", p);
        if (!u->attn_level[l] && !(l == u->n_levels - 1)) continue;
        int heads = sd_unet_heads(u, l, ch);
        if (heads < 1 && u->num_heads < 1 && u->num_head_channels < 1)
            return cs_fail(err, CS_EFORMAT,
                           "%s: unet: attention head counts are not stored in the weights and "
                           "model_channels %d / context_dim %d is not a released model's "
                           "geometry; give a config (--config FILE, laid out like "
                           "../shared/refs/sd-tiny/config.json) with unet.num_heads or "
                           "unet.num_head_channels",
                           p, u->model_channels, u->context_dim);
        if ((u->attn_level[l] || l == u->n_levels - 1) && (heads < 1 || ch % heads))
            return cs_fail(err, CS_EFORMAT,
                           "%s: unet: %d channels at level %d do not split into %d heads", p, ch,
                           l, heads);
    }
    const sd_vae_config *v = &c->vae;
    if (v->ch < 32 || v->ch % 32 || v->ch > 65536 || v->n_levels < 1 ||
        v->n_levels > SD_MAX_LEVELS || v->num_res_blocks < 1 || v->num_res_blocks > 64 ||
        v->z_channels < 1 || v->embed_dim < 1 || v->in_channels < 1 || v->out_ch < 1 ||
        v->z_channels > 4096 || v->embed_dim > 4096 || v->in_channels > 4096 || v->out_ch > 4096)
        return cs_fail(err, CS_EFORMAT,
                       "%s: vae: channel counts must be positive, ch a multiple of 32", p);
    for (int l = 0; l < v->n_levels; l++)
        if (v->ch * v->ch_mult[l] > 65536)
            return cs_fail(err, CS_EFORMAT, "%s: vae.ch_mult: too large", p);
    if (v->embed_dim != u->in_channels)
        return cs_fail(err, CS_EFORMAT, "%s: vae.embed_dim %d differs from unet.in_channels %d", p,
                       v->embed_dim, u->in_channels);
    int two = c->text2.num_layers > 0;
    if (check_text(&c->text, two ? "text_encoder_l" : "text_encoder", p, err)) return -1;
    if (two && check_text(&c->text2, "text_encoder_g", p, err)) return -1;
    int width = c->text.hidden_size + (two ? c->text2.hidden_size : 0);
    if (width != u->context_dim)
        return cs_fail(err, CS_EFORMAT,
                       "%s: text encoder width %d differs from unet.context_dim %d", p, width,
                       u->context_dim);
    if (c->family == SD_FAMILY_SDXL && (!two || c->text2.proj_dim < 1 || u->adm_in_channels < 1))
        return cs_fail(err, CS_EFORMAT,
                       "%s: SDXL needs the second text encoder with its projection and "
                       "unet.adm_in_channels",
                       p);
    if (u->adm_in_channels && u->adm_in_channels != c->text2.proj_dim + 6 * 256)
        return cs_fail(err, CS_EFORMAT,
                       "%s: unet.adm_in_channels %d is not the pooled width %d + 6 x 256 (SDXL "
                       "base's size/crop conditioning)",
                       p, u->adm_in_channels, c->text2.proj_dim);
    if (!(c->scale_factor > 0))
        return cs_fail(err, CS_EFORMAT, "%s: scale_factor must be positive", p);
    return 0;
}
