/* suite.h — prompt suites: a JSON file that says what to generate.
 *
 *   {
 *     "name": "twemoji-empirical",        required, [A-Za-z0-9._-]+
 *     "model": "empirical",               optional: checkpoint path, "empirical",
 *     "config": "...", "vocab": "...",      or "empirical:INDEXDB"; SD config / BPE vocab
 *     "loras": [ {"path", "weight"?} ],   optional: kohya LoRAs merged into an SD
 *                                         model at weight (default 1)
 *     "precision": "fp32" | "bf16",       optional: the products' precision (default
 *                                         fp32; bf16 needs AVX512_BF16)
 *     "defaults": { settings },           optional, applied to every item
 *     "prompts": [ { "id", "text", "negative"?, "expect_ref"?, settings... } ],
 *     "completions": [ { "id", "ref", "text"?, "negative"?, "expect_ref"?,
 *                        "mask": "m.png" | "rect": [x, y, w, h] | "strength": 0.6,
 *                        settings... } ]
 *   }
 *   settings: "sampler" (euler | euler_a | heun | dpmpp_2m | ddim | ddpm),
 *     "schedule" (discrete | karras | exponential), "steps" (> 0), "guidance"
 *     (>= 1... any >= 0), "eta" (DDIM, >= 0), "size" (n or [w, h]) or "width" /
 *     "height", "samples" (> 0), "seed" (first seed; sample i uses seed + i) or
 *     "seeds" ([...]; numbers or decimal strings for 64-bit values),
 *     "whitebox_k" (> 0), "strength" (0 < s <= 1), "resample" (completion:
 *     RePaint resampling count, 1..100, default 1), "rng" (philox (default,
 *     A1111's NV = its GPU default) | torch-cpu (A1111 CPU, ComfyUI) |
 *     xoshiro; A1111's "NV"/"CPU" too), "ensd" (A1111's eta noise seed
 *     delta, default 0). "sampler" also takes A1111's names ("Euler a",
 *     "DPM++ 2M Karras": the suffix sets the schedule) and "schedule" (or
 *     "scheduler") A1111's schedule types (Uniform, Karras, Exponential, and
 *     Automatic = the sampler's A1111 default: Karras for DPM++ 2M); of a
 *     sampler suffix and a "schedule" key in one object the later one wins.
 *
 * Paths (model, config, vocab, loras, ref, mask) are relative to the suite's folder.
 * A completion with a mask (white = keep the reference, black = generate) or a
 * rect (the region to generate) is a masked completion; with only a strength
 * it is img2img. Unknown fields are errors (typos must not pass silently);
 * every error names the file and the JSON path:
 *   "s.json: prompts[3].steps: must be > 0". */
#ifndef CS_SUITE_H
#define CS_SUITE_H

#include <stdint.h>

#include "core/err.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"

typedef enum { CS_TASK_TXT2IMG, CS_TASK_IMG2IMG, CS_TASK_COMPLETION } cs_task_kind;

typedef struct {
    cs_sample_opts opts; /* sampler, spacing, steps, guidance, eta, whitebox_k, strength */
    int width, height;   /* 0 = the model's default */
    int samples;
    uint64_t *seeds;     /* [samples] */
    cs_rng_kind rng;     /* noise generator (0 = philox, A1111's default) */
    uint64_t ensd;       /* A1111 eta noise seed delta (0 = none) */
} cs_gen_settings;

typedef struct {
    char *id, *text, *negative, *expect_ref; /* negative / expect_ref may be NULL */
    cs_task_kind kind;
    char *ref;       /* completion/img2img: reference image path (resolved) */
    char *mask;      /* completion: mask PNG path (resolved) or NULL */
    int rect[4];     /* completion: x, y, w, h when has_rect */
    int has_rect;
    char where[64];  /* "prompts[3]" / "completions[0]" for messages */
    cs_gen_settings s;
} cs_suite_item;

typedef struct {
    char *path;          /* as given */
    char *dir;           /* folder relative paths are resolved against */
    char *name;
    char *model, *config, *vocab; /* resolved, NULL when absent */
    cs_lora *loras;      /* "loras": paths resolved (owned) */
    int n_loras;
    int bf16;            /* "precision": "bf16" (default "fp32"): products in bf16 (core/nn.h) */
    char sha256[65];     /* of the file bytes: the run identity with the model */
    int n;
    cs_suite_item *items;
} cs_suite;

int cs_suite_load(cs_suite *s, const char *path, cs_err *err);
/* Parses JSON text; path names the suite in messages and anchors relative paths. */
int cs_suite_parse(cs_suite *s, const char *json, size_t len, const char *path, cs_err *err);
void cs_suite_free(cs_suite *s);

/* Checks, before any work, what the suite points at: every completion's ref
 * and mask is a readable file and, when index is given, every expect_ref names
 * a reference in it (index/refs.h). A typo is an error naming the item:
 *   "s.json: prompts[0].expect_ref: "img/1f35.png" is not in the index x.db". */
struct cs_store;
int cs_suite_check_refs(const cs_suite *s, struct cs_store *index, cs_err *err);

/* Resolves p against the suite folder (absolute paths and "empirical"
 * unchanged). Caller frees. */
char *cs_suite_resolve(const char *dir, const char *p);

#endif
