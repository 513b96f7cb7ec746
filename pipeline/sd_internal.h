/* sd_internal.h — what the Stable Diffusion model files (sd_config.c,
 * sd_detect.c, sd_layout.c, sd_model.c, lora.c, clip_text.c, unet.c, vae.c)
 * share: the hyper-parameters, the weight structs (named after the PyTorch
 * modules that own them), the activation arena and the model struct. Not
 * part of the public API (that is pipeline/sd.h). */
#ifndef CS_SD_INTERNAL_H
#define CS_SD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/safetensors.h"
#include "pipeline/sd.h"

#define SD_MAX_LEVELS 8

/* ---- hyper-parameters ------------------------------------------------------ */

typedef struct {
    int in_channels, out_channels; /* 4, 4 */
    int model_channels;            /* 320 */
    int n_levels;                  /* len(channel_mult) */
    int channel_mult[SD_MAX_LEVELS]; /* 1, 2, 4, 4 */
    int num_res_blocks;            /* 2 */
    int attn_level[SD_MAX_LEVELS]; /* 1 if the level (ds = 2^level) has attention */
    int num_heads;                 /* 8; -1 when num_head_channels is used */
    int num_head_channels;         /* -1, or a fixed d_head (SD 2.x, SDXL: 64) */
    int heads_level[SD_MAX_LEVELS]; /* > 0: heads at that level (diffusers configs) */
    int depth[SD_MAX_LEVELS];      /* transformer blocks per level (SD 1.x: 1) */
    int depth_middle;              /* the middle block's (SDXL: the last level's) */
    int context_dim;               /* 768; 1024 SD 2.x; 2048 SDXL */
    int time_embed_dim;            /* 4 * model_channels */
    int adm_in_channels;           /* SDXL label_emb input (2816); 0 = none */
} sd_unet_config;

typedef struct {
    int ch;                          /* 128 */
    int n_levels;                    /* len(ch_mult) */
    int ch_mult[SD_MAX_LEVELS];      /* 1, 2, 4, 4 */
    int num_res_blocks;              /* 2 */
    int z_channels, embed_dim;       /* 4, 4 */
    int in_channels, out_ch;         /* 3, 3 */
    int double_z;                    /* 1 */
} sd_vae_config;

/* The two text towers: Hugging Face CLIPTextModel names (OpenAI CLIP, SD 1.x,
 * SDXL's first encoder) and open_clip names (SD 2.x, SDXL's second). */
enum { SD_TEXT_HF = 0, SD_TEXT_OPENCLIP = 1 };

typedef struct {
    int kind;             /* SD_TEXT_HF | SD_TEXT_OPENCLIP; num_layers 0 = absent */
    int vocab_size;       /* 49408 */
    int max_positions;    /* 77 */
    int hidden_size;      /* 768 */
    int num_layers;       /* 12 */
    int num_heads;        /* 12; -1 = unknown (not in the weights) */
    int intermediate;     /* 3072 */
    int proj_dim;         /* open_clip text_projection [W, proj_dim]; 0 = none */
    int gelu;             /* 1: exact erf GELU (open_clip), 0: quick_gelu */
    int pad_id;           /* 49407 (HF tokenizer) or 0 (open_clip.tokenize) */
    int skip_last;        /* context from the penultimate block (SD 2.x, SDXL) */
    int final_ln;         /* final layer norm on the context (SD 1.x, SD 2.x) */
    float layer_norm_eps; /* 1e-5 */
} sd_text_config;

typedef struct {
    int family;      /* SD_FAMILY_* (sd.h) */
    int prediction;  /* SD_PRED_EPS | SD_PRED_V (sd.h) */
    int prediction_stated; /* by a config / scheduler config / the caller (else guessed) */
    sd_unet_config unet;
    sd_vae_config vae;
    sd_text_config text;  /* SD 1.x/2.x encoder; SDXL: CLIP-L */
    sd_text_config text2; /* SDXL: OpenCLIP-G; num_layers 0 otherwise */
    float scale_factor;   /* 0.18215; SDXL 0.13025 */
} sd_config;

/* The built-in SD 1.x preset (configs/stable-diffusion/v1-inference.yaml). */
void sd_config_preset(sd_config *c);
/* Applies a JSON config laid out like ../shared/refs/sd-tiny/config.json
 * (or sd2-tiny's, sdxl-tiny's) on top of c: keys it has override, keys it
 * lacks keep c's values. Errors name the file and the key. */
int sd_config_apply(sd_config *c, const char *path, cs_err *err);
/* The same from the JSON text (name: what messages call it). */
int sd_config_apply_text(sd_config *c, const char *json, const char *name, cs_err *err);
/* As sd_config_apply on top of the SD 1.x preset, then sd_config_check. */
int sd_config_load(sd_config *c, const char *path, cs_err *err);
/* Checks that the numbers are usable (positive, divisible, in range). */
int sd_config_check(const sd_config *c, const char *path, cs_err *err);
/* Heads of a SpatialTransformer with ch channels at a level; -1 unknown. */
int sd_unet_heads(const sd_unet_config *u, int level, int ch);


/* ---- weights ------------------------------------------------------------------ */

typedef struct {
    const float *w, *b; /* w [cout, cin, k, k], b [cout] (b may be NULL) */
    int cout, cin, k;
} sd_conv;

typedef struct {
    const float *w, *b; /* w [nout, nin], b [nout] (b may be NULL) */
    int nout, nin;
} sd_linear;

typedef struct {
    const float *w, *b; /* affine [c] */
    int c;
} sd_norm;

typedef struct sd_lora_set sd_lora_set; /* lora.c */

/* Where the weights are: one single-file checkpoint (CompVis names), or a
 * diffusers folder's three files (unet/, vae/, text_encoder/ [+ _2]) whose
 * names sd_layout.c derives from the CompVis ones. */
enum { SD_LAYOUT_SINGLE = 0, SD_LAYOUT_DIFFUSERS = 1 };
enum { SD_PART_UNET, SD_PART_VAE, SD_PART_TEXT, SD_PART_TEXT2, SD_PART_OTHER, SD_N_PARTS };

/* Loading context: the open files, the name mapping, and the owned copies.
 * Every weight is asked for by its CompVis (single-file) name. */
typedef struct {
    int layout;
    cs_safetensors *st[SD_N_PARTS]; /* single file: all point at one */
    const char *path;               /* the model (file or folder), for errors */
    const sd_config *cfg;           /* geometry for the diffusers names */
    sd_lora_set *loras;             /* merged into the weights they name, or NULL */
    float **owned; /* converted (F16/BF16 -> F32) / merged copies, freed by sd_free */
    int n_owned, cap_owned;
    cs_err *err;
    int failed; /* first error kept in err */
} sd_loader;

/* lora.c: opens the LoRA files (kohya names resolved against cfg's
 * geometry); sd_lora_merge adds m * alpha/rank * up·down to the weight that a
 * module names (making *w an owned copy first); sd_lora_check_used fails when
 * a module matched no weight of the model. */
int sd_lora_open(sd_lora_set **out, const sd_lora_spec *specs, int n, const sd_config *cfg,
                 cs_err *err);
int sd_lora_merge(sd_loader *L, const char *name, int ndim, const int64_t *shape, const float **w,
                  int *owned);
int sd_lora_check_used(const sd_lora_set *s, cs_err *err);
void sd_lora_free(sd_lora_set *s);

/* The tensor holding CompVis tensor `name` (with .weight/.bias), its file
 * (*st) and its name there (mapped); NULL when the layout has none. */
const cs_safetensors_tensor *sd_layout_find(const sd_loader *L, const char *name, const cs_safetensors **st,
                                   char *mapped, size_t n);
/* The diffusers name of a CompVis UNet / VAE name (without the
 * model.diffusion_model. / first_stage_model. prefix; any .weight/.bias tail
 * is kept). -1 when it has none. nrb: res blocks per level; n_levels: the
 * VAE's (its decoder levels are numbered in reverse). old_names: diffusers <
 * 0.17 VAE attention names. Used by the diffusers layout and LoRA names. */
int sd_unet_to_diffusers(int nrb, const char *compvis, char *out, size_t n);
int sd_vae_to_diffusers(int n_levels, const char *compvis, int old_names, char *out, size_t n);
/* Opens the model's file(s) into m->st (sd_layout.c): a .safetensors file,
 * or a diffusers folder, whose configs then fill m->cfg; anything else is
 * refused naming the format found, the formats read and how to convert. */
int sd_open_files(sd_model *m, const char *model, cs_err *err);

/* Each fetches "<name>.weight" (and ".bias") with the exact shape; on error
 * it records the first error in L->err and returns -1. */
int sd_load_tensor(sd_loader *L, const float **out, const char *name, int ndim,
                   const int64_t *shape);
int sd_load_conv(sd_loader *L, sd_conv *c, const char *name, int cout, int cin, int k, int bias);
int sd_load_linear(sd_loader *L, sd_linear *l, const char *name, int nout, int nin, int bias);
/* A Linear stored as a 1x1 Conv2d [nout, nin, 1, 1] (proj_in/out, VAE q/k/v). */
int sd_load_linear_1x1(sd_loader *L, sd_linear *l, const char *name, int nout, int nin);
int sd_load_norm(sd_loader *L, sd_norm *n, const char *name, int c);

/* ---- activation arena ----------------------------------------------------------- *
 * A stack of float buffers. The first forward pass at a new size grows it with
 * separate mallocs; sd_arena_begin then replaces them with one block of the
 * high-water size, so later passes at that size allocate nothing. */
typedef struct {
    float *base;
    size_t cap, top, peak; /* in floats */
    struct {
        float *p;
        size_t mark;
    } *over;
    int n_over, cap_over;
} sd_arena;

void sd_arena_begin(sd_arena *a);
float *sd_arena_alloc(sd_arena *a, size_t n); /* NULL when out of memory */
size_t sd_arena_mark(const sd_arena *a);
void sd_arena_release(sd_arena *a, size_t mark);
void sd_arena_free(sd_arena *a);

/* ---- the three networks -------------------------------------------------------- */

typedef struct {
    sd_norm layer_norm1, layer_norm2;
    sd_linear q_proj, k_proj, v_proj, out_proj; /* self_attn.* */
    sd_linear fc1, fc2;                         /* mlp.* */
} clip_layer;

typedef struct {
    const float *token_embedding;    /* [vocab, D] */
    const float *position_embedding; /* [77, D] */
    clip_layer *layers;              /* [num_layers] */
    sd_norm final_layer_norm;
    const float *text_projection;    /* open_clip [D, proj_dim] (x @ P), or NULL */
    sd_linear proj;                  /* diffusers CLIPTextModelWithProjection [E, D] */
} clip_text_model;

typedef struct {
    int cin, cout;
    sd_norm in_norm;   /* in_layers.0 (GroupNorm32, eps 1e-5) */
    sd_conv in_conv;   /* in_layers.2 */
    sd_linear emb;     /* emb_layers.1 */
    sd_norm out_norm;  /* out_layers.0 */
    sd_conv out_conv;  /* out_layers.3 */
    int has_skip;
    sd_conv skip;      /* skip_connection (1x1) when cin != cout */
} unet_resblock;

typedef struct {
    sd_norm norm1, norm2, norm3;                 /* LayerNorm, eps 1e-5 */
    sd_linear q1, k1, v1, out1;                  /* attn1.to_q/k/v, to_out.0 */
    sd_linear q2, k2, v2, out2;                  /* attn2.* (k, v from the context) */
    sd_linear ff_proj, ff_out;                   /* ff.net.0.proj [8C, C], ff.net.2 [C, 4C] */
} unet_tblock;

typedef struct {
    int c, heads, dh, depth;
    sd_norm norm;          /* GroupNorm, eps 1e-6 */
    sd_linear proj_in, proj_out;
    unet_tblock *blocks;   /* [depth] */
} unet_transformer;

enum { UNET_RES = 1, UNET_ST, UNET_DOWN, UNET_UP, UNET_CONV };

typedef struct {
    int kind;
    unet_resblock res;
    unet_transformer st;
    sd_conv conv; /* conv_in (input_blocks.0.0), Downsample .op, Upsample .conv */
} unet_layer;

typedef struct {
    int n;
    unet_layer layers[3];
    int cout; /* channels after the block */
} unet_block;

typedef struct {
    sd_linear time_embed0, time_embed2;
    int n_input, n_output;
    unet_block *input_blocks;  /* [n_input] */
    unet_block middle_block;
    unet_block *output_blocks; /* [n_output] */
    sd_linear label_emb0, label_emb2; /* SDXL label_emb.0.0 / .0.2 (adm vector) */
    sd_norm out_norm;          /* out.0 */
    sd_conv out_conv;          /* out.2 */
} unet_model;

typedef struct {
    int cin, cout;
    sd_norm norm1, norm2; /* GroupNorm eps 1e-6 */
    sd_conv conv1, conv2;
    int has_nin;
    sd_conv nin_shortcut;
} vae_resblock;

typedef struct {
    int c;
    sd_norm norm;
    sd_linear q, k, v, proj_out; /* 1x1 convs */
} vae_attn;

typedef struct {
    vae_resblock block_1, block_2;
    vae_attn attn_1;
} vae_mid;

typedef struct {
    int n_blocks;
    vae_resblock *block;
    int has_sample;
    sd_conv sample; /* downsample.conv / upsample.conv */
} vae_level;

typedef struct {
    sd_conv conv_in;
    vae_level *down; /* [n_levels] */
    vae_mid mid;
    sd_norm norm_out;
    sd_conv conv_out;
} vae_encoder;

typedef struct {
    sd_conv conv_in;
    vae_mid mid;
    vae_level *up; /* [n_levels], up[n-1] runs first */
    sd_norm norm_out;
    sd_conv conv_out;
} vae_decoder;

typedef struct {
    int n_levels;
    vae_encoder encoder;
    vae_decoder decoder;
    sd_linear quant_conv, post_quant_conv; /* 1x1 convs */
} vae_model;

struct sd_model {
    char *path;
    sd_config cfg;
    cs_safetensors st[SD_N_PARTS]; /* the mapped files (F32 weights point into them) */
    int n_st;
    sd_loader loader;    /* owns converted copies */
    clip_text_model text, text2;
    unet_model unet;
    vae_model vae;
    float alphas_cumprod[1000];
    sd_arena arena;      /* activations, reused across calls */
    int ctx_tokens;      /* context tokens per image of the UNet call under way
                          * (77 x A1111 prompt chunks; set by sd_unet_eps_ctx) */
};

int clip_text_load(sd_model *m, sd_loader *L);
void clip_text_free(clip_text_model *t);
/* Fills the shape-derived numbers of c (family, UNet geometry, text towers,
 * VAE) from the checkpoint's tensors (sd_detect.c). Head counts, which no
 * shape shows, are set only for the released models' geometries (else -1). */
int sd_detect(sd_config *c, const sd_loader *L, cs_err *err);
int unet_load(sd_model *m, sd_loader *L);
void unet_free(unet_model *u);
int vae_load(sd_model *m, sd_loader *L);
void vae_free(vae_model *v);

/* out [cout, T] channel-major = W [cout, cin] · in_tm[T, cin]^T (+ b): a linear
 * applied to token-major input, producing channel-major output. */
void sd_linear_tm_to_cm(float *out, const float *in_tm, const sd_linear *l, int T);

/* conv with the arena's im2col workspace (banded to at most 64 MB). */
int sd_conv_forward(sd_model *m, float *out, const float *in, const sd_conv *c, int B, int h,
                    int w, int stride, int pt, int pl, int pb, int pr);

#endif
