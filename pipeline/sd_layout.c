/* sd_layout.c — where a model's tensors are: a single-file checkpoint
 * (CompVis / SGM names) or a diffusers folder (unet/, vae/, text_encoder/
 * [text_encoder_2/], each with a config.json), and the refusal of formats
 * copyscope does not read (pickles can run code when loaded).
 *
 * The loaders ask for every tensor by its CompVis name; for a diffusers
 * folder the name is translated here (the renames of diffusers'
 * convert_original_stable_diffusion_to_diffusers, checked against
 * ../shared/refs/sd-tiny-diffusers/checks.json). The diffusers text encoders
 * are Hugging Face CLIPTextModel(WithProjection) names in every family, so
 * they are asked for under cond_stage_model.transformer.text_model. (SD 1.x,
 * SD 2.x) and conditioner.embedders.{0,1}.transformer.text_model. (SDXL). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/sd_internal.h"

/* ---- name mapping ------------------------------------------------------------------ */

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* ResBlock parts, CompVis -> diffusers */
static const char *res_part(const char *rest, const char **tail) {
    static const struct {
        const char *from, *to;
    } m[] = {{"in_layers.0.", "norm1."},      {"in_layers.2.", "conv1."},
             {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
             {"out_layers.3.", "conv2."},     {"skip_connection.", "conv_shortcut."}};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (starts(rest, m[i].from)) {
            *tail = rest + strlen(m[i].from);
            return m[i].to;
        }
    return NULL;
}

int sd_unet_to_diffusers(int nrb, const char *c, char *out, size_t n) {
    int i, j, k = 0;
    const char *tail, *part;
#define OUT(...) (snprintf(out, n, __VA_ARGS__) < (int)n ? 0 : -1)
    if (starts(c, "time_embed.0.")) return OUT("time_embedding.linear_1.%s", c + 13);
    if (starts(c, "time_embed.2.")) return OUT("time_embedding.linear_2.%s", c + 13);
    if (starts(c, "label_emb.0.0.")) return OUT("add_embedding.linear_1.%s", c + 14);
    if (starts(c, "label_emb.0.2.")) return OUT("add_embedding.linear_2.%s", c + 14);
    if (starts(c, "input_blocks.0.0.")) return OUT("conv_in.%s", c + 17);
    if (starts(c, "out.0.")) return OUT("conv_norm_out.%s", c + 6);
    if (starts(c, "out.2.")) return OUT("conv_out.%s", c + 6);
    if (sscanf(c, "input_blocks.%d.%d.%n", &i, &j, &k) == 2 && k && i >= 1) {
        const char *rest = c + k;
        int b = (i - 1) / (nrb + 1), r = (i - 1) % (nrb + 1);
        if (r == nrb && j == 0 && starts(rest, "op."))
            return OUT("down_blocks.%d.downsamplers.0.conv.%s", b, rest + 3);
        if (r < nrb && j == 0 && (part = res_part(rest, &tail)))
            return OUT("down_blocks.%d.resnets.%d.%s%s", b, r, part, tail);
        if (r < nrb && j == 1) return OUT("down_blocks.%d.attentions.%d.%s", b, r, rest);
        return -1;
    }
    if (sscanf(c, "middle_block.%d.%n", &j, &k) == 1 && k) {
        const char *rest = c + k;
        if (j == 1) return OUT("mid_block.attentions.0.%s", rest);
        if ((j == 0 || j == 2) && (part = res_part(rest, &tail)))
            return OUT("mid_block.resnets.%d.%s%s", j / 2, part, tail);
        return -1;
    }
    if (sscanf(c, "output_blocks.%d.%d.%n", &i, &j, &k) == 2 && k) {
        const char *rest = c + k;
        int b = i / (nrb + 1), r = i % (nrb + 1);
        if (j == 0 && (part = res_part(rest, &tail)))
            return OUT("up_blocks.%d.resnets.%d.%s%s", b, r, part, tail);
        if (j >= 1 && starts(rest, "conv.")) /* Upsample: no attention module has .conv */
            return OUT("up_blocks.%d.upsamplers.0.conv.%s", b, rest + 5);
        if (j == 1) return OUT("up_blocks.%d.attentions.%d.%s", b, r, rest);
        return -1;
    }
    return -1;
}

int sd_vae_to_diffusers(int nl, const char *c, int old, char *out, size_t n) {
    int i, j, k = 0;
    const char *side = starts(c, "encoder.") ? "encoder" : starts(c, "decoder.") ? "decoder" : NULL;
    if (!side) return OUT("%s", c); /* quant_conv, post_quant_conv */
    const char *r = c + 8;
    if (sscanf(r, "down.%d.block.%d.%n", &i, &j, &k) == 2 && k)
        return starts(r + k, "nin_shortcut.")
                   ? OUT("%s.down_blocks.%d.resnets.%d.conv_shortcut.%s", side, i, j, r + k + 13)
                   : OUT("%s.down_blocks.%d.resnets.%d.%s", side, i, j, r + k);
    if (sscanf(r, "up.%d.block.%d.%n", &i, &j, &k) == 2 && k)
        return starts(r + k, "nin_shortcut.")
                   ? OUT("%s.up_blocks.%d.resnets.%d.conv_shortcut.%s", side, nl - 1 - i, j,
                         r + k + 13)
                   : OUT("%s.up_blocks.%d.resnets.%d.%s", side, nl - 1 - i, j, r + k);
    if (sscanf(r, "down.%d.downsample.conv.%n", &i, &k) == 1 && k)
        return OUT("%s.down_blocks.%d.downsamplers.0.conv.%s", side, i, r + k);
    if (sscanf(r, "up.%d.upsample.conv.%n", &i, &k) == 1 && k)
        return OUT("%s.up_blocks.%d.upsamplers.0.conv.%s", side, nl - 1 - i, r + k);
    if (starts(r, "mid.block_1.")) return OUT("%s.mid_block.resnets.0.%s", side, r + 12);
    if (starts(r, "mid.block_2.")) return OUT("%s.mid_block.resnets.1.%s", side, r + 12);
    if (starts(r, "mid.attn_1.")) {
        static const char *from[] = {"norm.", "q.", "k.", "v.", "proj_out."};
        static const char *to[] = {"group_norm.", "to_q.", "to_k.", "to_v.", "to_out.0."};
        static const char *to_old[] = {"group_norm.", "query.", "key.", "value.", "proj_attn."};
        const char *a = r + 11;
        for (int q = 0; q < 5; q++)
            if (starts(a, from[q]))
                return OUT("%s.mid_block.attentions.0.%s%s", side, old ? to_old[q] : to[q],
                           a + strlen(from[q]));
        return -1;
    }
    if (starts(r, "norm_out.")) return OUT("%s.conv_norm_out.%s", side, r + 9);
    return OUT("%s", c); /* conv_in, conv_out */
#undef OUT
}

const cs_safetensors_tensor *sd_layout_find(const sd_loader *L, const char *name, const cs_safetensors **st,
                                   char *mapped, size_t n) {
    *st = NULL;
    if (L->layout == SD_LAYOUT_SINGLE) {
        *st = L->st[SD_PART_OTHER];
        snprintf(mapped, n, "%s", name);
        return cs_safetensors_find(*st, name);
    }
    int part = -1, rc = -1;
    if (starts(name, "model.diffusion_model.")) {
        part = SD_PART_UNET;
        rc = sd_unet_to_diffusers(L->cfg->unet.num_res_blocks, name + 22, mapped, n);
    } else if (starts(name, "first_stage_model.")) {
        part = SD_PART_VAE;
        rc = sd_vae_to_diffusers(L->cfg->vae.n_levels, name + 18, 0, mapped, n);
        if (!rc && L->st[part] && !cs_safetensors_find(L->st[part], mapped))
            rc = sd_vae_to_diffusers(L->cfg->vae.n_levels, name + 18, 1, mapped, n);
    } else if (starts(name, "cond_stage_model.transformer.")) {
        part = SD_PART_TEXT;
        rc = snprintf(mapped, n, "%s", name + 29) < (int)n ? 0 : -1;
    } else if (starts(name, "conditioner.embedders.0.transformer.")) {
        part = SD_PART_TEXT;
        rc = snprintf(mapped, n, "%s", name + 36) < (int)n ? 0 : -1;
    } else if (starts(name, "conditioner.embedders.1.transformer.")) {
        part = SD_PART_TEXT2;
        rc = snprintf(mapped, n, "%s", name + 36) < (int)n ? 0 : -1;
    }
    if (rc || part < 0 || !L->st[part]) return NULL;
    *st = L->st[part];
    return cs_safetensors_find(*st, mapped);
}

/* ---- formats ------------------------------------------------------------------------- */

#define FORMATS_READ                                                                       \
    "copyscope reads .safetensors checkpoints (SD 1.x, SD 2.x, SDXL base; F32/F16/BF16) "  \
    "and diffusers folders"

/* What the first bytes say the file is. */
static const char *sniff(const char *path, const unsigned char *b, size_t n) {
    const char *dot = strrchr(path, '.');
    if (n >= 4 && !memcmp(b, "GGUF", 4)) return "a GGUF file (stable-diffusion.cpp / llama.cpp)";
    if (n >= 2 && b[0] == 'P' && b[1] == 'K') return "a PyTorch pickle checkpoint (zip archive)";
    if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return "a PyTorch pickle checkpoint";
    if (n >= 9 && b[8] == '{') return NULL; /* safetensors: u64 header length, then JSON */
    if (dot && (!strcmp(dot, ".ckpt") || !strcmp(dot, ".pt") || !strcmp(dot, ".pth") ||
                !strcmp(dot, ".bin")))
        return "a PyTorch checkpoint (by its extension)";
    if (n >= 1 && b[0] == '{') return "a JSON file (a config, not weights)";
    return "not a safetensors file";
}

static int refuse(const char *path, const char *found, cs_err *err) {
    if (strstr(found, "pickle") || strstr(found, "PyTorch"))
        return cs_fail(err, CS_EFORMAT,
                       "%s: %s: refused, because loading a pickle runs code from the file; "
                       "%s. Convert it once, in a sandbox you trust, e.g. "
                       "python -c \"import torch,safetensors.torch as s; "
                       "sd=torch.load('IN.ckpt',map_location='cpu',weights_only=True); "
                       "sd=sd.get('state_dict',sd); s.save_file({k:v.contiguous() for k,v in "
                       "sd.items() if hasattr(v,'contiguous')},'OUT.safetensors')\"",
                       path, found, FORMATS_READ);
    if (strstr(found, "GGUF"))
        return cs_fail(err, CS_EFORMAT,
                       "%s: %s: not read (quantised weights); %s; use the original "
                       ".safetensors the GGUF was made from",
                       path, found, FORMATS_READ);
    return cs_fail(err, CS_EFORMAT, "%s: %s; %s", path, found, FORMATS_READ);
}

/* ---- diffusers configs ------------------------------------------------------------------- */

static cJSON *read_json(const char *dir, const char *file, int required, cs_err *err) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    struct stat sb;
    if (stat(p, &sb) != 0) {
        if (required)
            cs_fail(err, CS_EFORMAT, "%s: a diffusers folder needs %s (missing)", dir, file);
        return NULL;
    }
    char *t = sd_read_text(p, 16u << 20, err);
    if (!t) return NULL;
    cJSON *j = cJSON_Parse(t);
    free(t);
    if (!j) cs_fail(err, CS_EFORMAT, "%s: not valid JSON", p);
    return j;
}

static int jint(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : dflt;
}

/* an int or a per-level list into vals[n_levels]; 0 when absent */
static int jlevels(const cJSON *o, const char *k, int *vals, int nl) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v)) {
        for (int l = 0; l < nl; l++) vals[l] = (int)v->valuedouble;
        return 1;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == nl) {
        for (int l = 0; l < nl; l++) vals[l] = (int)cJSON_GetArrayItem(v, l)->valuedouble;
        return 1;
    }
    return 0;
}

static int diffusers_text(sd_text_config *t, const cJSON *j) {
    t->kind = SD_TEXT_HF;
    t->layer_norm_eps = 1e-5f;
    t->pad_id = 49407;
    t->final_ln = 1;
    t->vocab_size = jint(j, "vocab_size", 49408);
    t->max_positions = jint(j, "max_position_embeddings", 77);
    t->hidden_size = jint(j, "hidden_size", 0);
    t->num_layers = jint(j, "num_hidden_layers", 0);
    t->num_heads = jint(j, "num_attention_heads", -1);
    t->intermediate = jint(j, "intermediate_size", 0);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    t->gelu = cJSON_IsString(act) && !strcmp(act->valuestring, "gelu");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
    if (cJSON_IsNumber(eps)) t->layer_norm_eps = (float)eps->valuedouble;
    return t->hidden_size > 0 && t->num_layers > 0 ? 0 : -1;
}

/* Long: diffusers' unet, vae and text configs read and mapped field by field onto one sd_config. */
static int diffusers_configs(sd_config *c, const char *dir, int has_te2, cs_err *err) {
    cs_err e2 = {0};
    cJSON *u = read_json(dir, "unet/config.json", 1, err), *v = NULL, *t = NULL, *t2 = NULL,
          *s = NULL;
    int rc = -1;
    if (!u || !(v = read_json(dir, "vae/config.json", 1, err)) ||
        !(t = read_json(dir, "text_encoder/config.json", 1, err)) ||
        (has_te2 && !(t2 = read_json(dir, "text_encoder_2/config.json", 1, err))))
        goto out;
    s = read_json(dir, "scheduler/scheduler_config.json", 0, &e2);
    sd_config_preset(c);
    sd_unet_config *U = &c->unet;
    const cJSON *boc = cJSON_GetObjectItemCaseSensitive(u, "block_out_channels");
    const cJSON *dbt = cJSON_GetObjectItemCaseSensitive(u, "down_block_types");
    int nl = cJSON_IsArray(boc) ? cJSON_GetArraySize(boc) : 0;
    if (nl < 1 || nl > SD_MAX_LEVELS || !cJSON_IsArray(dbt) || cJSON_GetArraySize(dbt) != nl) {
        cs_fail(err, CS_EFORMAT, "%s/unet/config.json: block_out_channels / down_block_types", dir);
        goto out;
    }
    U->n_levels = nl;
    U->model_channels = (int)cJSON_GetArrayItem(boc, 0)->valuedouble;
    for (int l = 0; l < nl; l++) {
        int ch = (int)cJSON_GetArrayItem(boc, l)->valuedouble;
        U->channel_mult[l] = U->model_channels > 0 ? ch / U->model_channels : 0;
        const cJSON *ty = cJSON_GetArrayItem(dbt, l);
        U->attn_level[l] = cJSON_IsString(ty) && strstr(ty->valuestring, "CrossAttn") != NULL;
    }
    U->in_channels = jint(u, "in_channels", 4);
    U->out_channels = jint(u, "out_channels", 4);
    U->num_res_blocks = jint(u, "layers_per_block", 2);
    U->context_dim = jint(u, "cross_attention_dim", 768);
    U->time_embed_dim = 4 * U->model_channels;
    U->num_heads = U->num_head_channels = -1;
    /* diffusers' attention_head_dim is the head COUNT for SD/SDXL UNets */
    if (!jlevels(u, "num_attention_heads", U->heads_level, nl))
        jlevels(u, "attention_head_dim", U->heads_level, nl);
    if (jlevels(u, "transformer_layers_per_block", U->depth, nl)) U->depth_middle = U->depth[nl - 1];
    const cJSON *aet = cJSON_GetObjectItemCaseSensitive(u, "addition_embed_type");
    if (cJSON_IsString(aet) && !strcmp(aet->valuestring, "text_time"))
        U->adm_in_channels = jint(u, "projection_class_embeddings_input_dim", 0);
    sd_vae_config *V = &c->vae;
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(v, "block_out_channels");
    int vl = cJSON_IsArray(vb) ? cJSON_GetArraySize(vb) : 0;
    if (vl < 1 || vl > SD_MAX_LEVELS) {
        cs_fail(err, CS_EFORMAT, "%s/vae/config.json: block_out_channels", dir);
        goto out;
    }
    V->n_levels = vl;
    V->ch = (int)cJSON_GetArrayItem(vb, 0)->valuedouble;
    for (int l = 0; l < vl; l++)
        V->ch_mult[l] = V->ch > 0 ? (int)cJSON_GetArrayItem(vb, l)->valuedouble / V->ch : 0;
    V->num_res_blocks = jint(v, "layers_per_block", 2);
    V->z_channels = V->embed_dim = jint(v, "latent_channels", 4);
    V->in_channels = jint(v, "in_channels", 3);
    V->out_ch = jint(v, "out_channels", 3);
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(v, "scaling_factor");
    if (cJSON_IsNumber(sf)) c->scale_factor = (float)sf->valuedouble;
    if (diffusers_text(&c->text, t) || (t2 && diffusers_text(&c->text2, t2))) {
        cs_fail(err, CS_EFORMAT, "%s/text_encoder*/config.json: hidden_size / num_hidden_layers",
                dir);
        goto out;
    }
    if (t2) {
        c->family = SD_FAMILY_SDXL;
        c->text.skip_last = 1, c->text.final_ln = 0;
        c->text2.skip_last = 1, c->text2.final_ln = 0, c->text2.pad_id = 0;
        c->text2.proj_dim = jint(t2, "projection_dim", 0);
    } else if (c->text.gelu) { /* OpenCLIP-H converted to CLIPTextModel */
        c->family = SD_FAMILY_SD2;
        c->text.skip_last = 1, c->text.final_ln = 1, c->text.pad_id = 0;
    }
    c->prediction = SD_PRED_EPS;
    const cJSON *pt = s ? cJSON_GetObjectItemCaseSensitive(s, "prediction_type") : NULL;
    if (cJSON_IsString(pt) && !strcmp(pt->valuestring, "v_prediction")) c->prediction = SD_PRED_V;
    c->prediction_stated = cJSON_IsString(pt);
    rc = 0;
out:
    cJSON_Delete(u);
    cJSON_Delete(v);
    cJSON_Delete(t);
    cJSON_Delete(t2);
    cJSON_Delete(s);
    return rc;
}

/* ---- opening ------------------------------------------------------------------------------ */

static int open_part(sd_model *m, int part, const char *dir, const char *sub, cs_err *err) {
    static const char *names[] = {"diffusion_pytorch_model.safetensors", "model.safetensors"};
    char p[4096];
    struct stat sb;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/%s", dir, sub, names[i]);
        if (stat(p, &sb) == 0) {
            if (cs_safetensors_open(&m->st[part], p, err)) return -1;
            m->loader.st[part] = &m->st[part];
            return 0;
        }
    }
    snprintf(p, sizeof p, "%s/%s/diffusion_pytorch_model.bin", dir, sub);
    if (stat(p, &sb) == 0 ||
        (snprintf(p, sizeof p, "%s/%s/pytorch_model.bin", dir, sub), stat(p, &sb) == 0))
        return refuse(p, "a PyTorch pickle checkpoint (diffusers .bin weights)", err);
    return cs_fail(err, CS_EFORMAT,
                   "%s: diffusers folder without %s/diffusion_pytorch_model.safetensors or "
                   "%s/model.safetensors; %s",
                   dir, sub, sub, FORMATS_READ);
}

int sd_open_files(sd_model *m, const char *model, cs_err *err) {
    struct stat sb;
    if (stat(model, &sb) != 0) return cs_fail(err, CS_EIO, "%s: cannot open (no such file or folder)", model);
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/unet/config.json", model);
        if (stat(p, &sb) != 0)
            return cs_fail(err, CS_EFORMAT,
                           "%s: a folder without unet/config.json: not a diffusers pipeline "
                           "folder; %s",
                           model, FORMATS_READ);
        snprintf(p, sizeof p, "%s/text_encoder_2", model);
        int te2 = stat(p, &sb) == 0;
        m->loader.layout = SD_LAYOUT_DIFFUSERS;
        if (diffusers_configs(&m->cfg, model, te2, err) ||
            open_part(m, SD_PART_UNET, model, "unet", err) ||
            open_part(m, SD_PART_VAE, model, "vae", err) ||
            open_part(m, SD_PART_TEXT, model, "text_encoder", err) ||
            (te2 && open_part(m, SD_PART_TEXT2, model, "text_encoder_2", err)))
            return -1;
        return 0;
    }
    FILE *f = fopen(model, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: cannot open", model);
    unsigned char b[16] = {0};
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    const char *found = sniff(model, b, n);
    if (found) return refuse(model, found, err);
    m->loader.layout = SD_LAYOUT_SINGLE;
    if (cs_safetensors_open(&m->st[SD_PART_OTHER], model, err)) return -1;
    for (int i = 0; i < SD_N_PARTS; i++) m->loader.st[i] = &m->st[SD_PART_OTHER];
    return 0;
}
