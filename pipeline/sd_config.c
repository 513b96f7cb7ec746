/* sd_config.c — SD 1.x hyper-parameters: the built-in preset and JSON
 * configs laid out like ../shared/refs/sd-tiny/config.json (cJSON). */
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
    u->transformer_depth = 1;
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
    t->layer_norm_eps = 1e-5f;
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
            get_int(u, "unet", "transformer_depth", &x->transformer_depth, path, err) ||
            get_int(u, "unet", "context_dim", &x->context_dim, path, err))
            return -1;
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
    if (t) {
        sd_text_config *x = &c->text;
        if (get_int(t, "text_encoder", "vocab_size", &x->vocab_size, path, err) ||
            get_int(t, "text_encoder", "max_position_embeddings", &x->max_positions, path, err) ||
            get_int(t, "text_encoder", "hidden_size", &x->hidden_size, path, err) ||
            get_int(t, "text_encoder", "num_hidden_layers", &x->num_layers, path, err) ||
            get_int(t, "text_encoder", "num_attention_heads", &x->num_heads, path, err) ||
            get_int(t, "text_encoder", "intermediate_size", &x->intermediate, path, err) ||
            get_float(t, "text_encoder", "layer_norm_eps", &x->layer_norm_eps, path, err))
            return -1;
    }
    return 0;
}

int sd_config_load(sd_config *c, const char *path, cs_err *err) {
    sd_config_preset(c);
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: cannot open", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            if (cap > (16u << 20)) {
                free(buf);
                fclose(f);
                return cs_fail(err, CS_ELIMIT, "%s: config larger than 16 MB", path);
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
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
        return cs_fail(err, CS_EIO, "%s: read error", path);
    }
    buf[n] = 0;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!root) return cs_fail(err, CS_EFORMAT, "%s: not valid JSON", path);
    int rc = parse_config(c, root, path, err);
    cJSON_Delete(root);
    if (rc) return -1;
    return sd_config_check(c, path, err);
}

int sd_config_check(const sd_config *c, const char *path, cs_err *err) {
    const sd_unet_config *u = &c->unet;
    const char *p = path ? path : "built-in SD 1.x config";
    if (u->in_channels < 1 || u->out_channels < 1 || u->model_channels < 32 ||
        u->model_channels % 32 || u->model_channels % 2 || u->num_res_blocks < 1 ||
        u->n_levels < 1 || u->context_dim < 1 || u->time_embed_dim < 1 ||
        u->transformer_depth < 1 || u->model_channels > 65536 || u->num_res_blocks > 64 ||
        u->context_dim > 65536 || u->time_embed_dim > 65536 || u->transformer_depth > 64)
        return cs_fail(err, CS_EFORMAT,
                       "%s: unet: channel counts must be positive, model_channels a multiple of "
                       "32 (GroupNorm groups)",
                       p);
    for (int l = 0; l < u->n_levels; l++) {
        int ch = u->model_channels * u->channel_mult[l];
        if (ch > 65536) return cs_fail(err, CS_EFORMAT, "%s: unet.channel_mult: too large", p);
        if (!u->attn_level[l]) continue;
        int heads = u->num_head_channels > 0 ? ch / u->num_head_channels : u->num_heads;
        if (heads < 1 || ch % heads)
            return cs_fail(err, CS_EFORMAT,
                           "%s: unet: %d channels at level %d do not split into num_heads %d", p,
                           ch, l, heads);
    }
    const sd_vae_config *v = &c->vae;
    if (v->ch < 32 || v->ch % 32 || v->ch > 65536 || v->n_levels < 1 || v->num_res_blocks < 1 ||
        v->num_res_blocks > 64 || v->z_channels < 1 || v->embed_dim < 1 || v->in_channels < 1 ||
        v->out_ch < 1 || v->z_channels > 4096 || v->embed_dim > 4096 || v->in_channels > 4096 ||
        v->out_ch > 4096)
        return cs_fail(err, CS_EFORMAT,
                       "%s: vae: channel counts must be positive, ch a multiple of 32", p);
    for (int l = 0; l < v->n_levels; l++)
        if (v->ch * v->ch_mult[l] > 65536)
            return cs_fail(err, CS_EFORMAT, "%s: vae.ch_mult: too large", p);
    if (v->embed_dim != u->in_channels)
        return cs_fail(err, CS_EFORMAT, "%s: vae.embed_dim %d differs from unet.in_channels %d", p,
                       v->embed_dim, u->in_channels);
    const sd_text_config *t = &c->text;
    if (t->vocab_size < 1 || t->vocab_size > 10000000 || t->max_positions != SD_CONTEXT_TOKENS ||
        t->hidden_size < 1 || t->hidden_size > 65536 || t->num_layers < 1 ||
        t->num_layers > 256 || t->num_heads < 1 || t->hidden_size % t->num_heads ||
        t->intermediate < 1 || t->intermediate > 1 << 20 || !(t->layer_norm_eps > 0))
        return cs_fail(err, CS_EFORMAT,
                       "%s: text_encoder: hidden_size %d, num_attention_heads %d, "
                       "num_hidden_layers %d, intermediate_size %d, max_position_embeddings %d: "
                       "sizes must be positive, hidden_size divisible by the heads, positions 77",
                       p, t->hidden_size, t->num_heads, t->num_layers, t->intermediate,
                       t->max_positions);
    if (t->hidden_size != u->context_dim)
        return cs_fail(err, CS_EFORMAT,
                       "%s: text_encoder.hidden_size %d differs from unet.context_dim %d", p,
                       t->hidden_size, u->context_dim);
    if (!(c->scale_factor > 0))
        return cs_fail(err, CS_EFORMAT, "%s: scale_factor must be positive", p);
    return 0;
}
