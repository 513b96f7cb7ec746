/* generate.c — the generate loop (see generate.h): validate, then sample,
 * write PNGs and store rows. */
#include "pipeline/generate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/store.h"
#include "core/store_runs.h"
#include "pipeline/empirical.h"
#include "pipeline/model.h"
#include "pipeline/rng.h"
#include "pipeline/sampler.h"
#include "pipeline/sd.h"
#include "pipeline/suite.h"

/* One suite item, ready to sample. */
typedef struct {
    cs_suite_item *it;
    int W, H, h, w;  /* image and sampler-space sizes */
    cs_cond *cond, *uncond;
    float *x0;       /* [C,h,w] encoded reference (img2img / completion) */
    float *mask;     /* [h,w] 1 = keep (completion) */
    char *task_json; /* prompts.task_json */
    int64_t prompt_id;
    const char *out_file; /* single-image mode: the PNG path (else NULL) */
    int mask_white_generates; /* mask polarity of sd / A1111 / diffusers */
} job;

char *cs_a1111_parameters(const char *prompt, const char *negative, int steps, const char *sampler,
                          const char *schedule, float cfg, uint64_t seed, int w, int h,
                          const char *model_hash, const char *model_name, float strength, float eta,
                          const char *rng, uint64_t ensd) {
    size_t n = strlen(prompt) + (negative ? strlen(negative) : 0) + strlen(model_name) + 512;
    char *s = malloc(n);
    if (!s) return NULL;
    int k = snprintf(s, n, "%s\n", prompt);
    if (negative && *negative) k += snprintf(s + k, n - k, "Negative prompt: %s\n", negative);
    k += snprintf(s + k, n - k, "Steps: %d, Sampler: %s, ", steps, sampler);
    if (schedule && strcmp(schedule, "discrete"))
        k += snprintf(s + k, n - k, "Schedule type: %c%s, ", schedule[0] - 32, schedule + 1);
    else if (schedule && !strcmp(sampler, "DPM++ 2M")) /* A1111 >= 1.9 would take its default, Karras */
        k += snprintf(s + k, n - k, "Schedule type: Uniform, ");
    k += snprintf(s + k, n - k, "CFG scale: %g, Seed: %llu, Size: %dx%d, Model hash: %.10s, Model: %s",
                  cfg, (unsigned long long)seed, w, h, model_hash, model_name);
    if (strength > 0 && strength < 1) k += snprintf(s + k, n - k, ", Denoising strength: %g", strength);
    if (eta > 0) k += snprintf(s + k, n - k, ", Eta: %g", eta);
    if (ensd) k += snprintf(s + k, n - k, ", ENSD: %llu", (unsigned long long)ensd);
    if (rng) k += snprintf(s + k, n - k, ", RNG: %s", rng);
    snprintf(s + k, n - k, ", Version: copyscope");
    return s;
}

/* A float setting as the decimal the user wrote (0.6f -> 0.6, not 0.60000002). */
static double round6(float f) {
    char b[32];
    snprintf(b, sizeof b, "%.6g", (double)f);
    return strtod(b, NULL);
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The output folder must accept files, or be creatable: its nearest
 * existing parent a writable folder. Nothing is created here (a refused
 * run leaves no folder); record_run makes it. */
static int check_writable(const char *dir, cs_err *err) {
    char d[4200];
    if (snprintf(d, sizeof d, "%s", dir) >= (int)sizeof d) return cs_fail(err, CS_EUSAGE, "%s: path too long", dir);
    struct stat sb;
    while (stat(d, &sb) != 0) {
        char *sl = strrchr(d, '/');
        if (!sl) {
            snprintf(d, sizeof d, ".");
            continue;
        }
        if (sl == d) sl[1] = 0;
        else *sl = 0;
    }
    if (!S_ISDIR(sb.st_mode)) return cs_fail(err, CS_EIO, "%s: cannot create: %s is not a folder", dir, d);
    if (access(d, W_OK | X_OK))
        return cs_fail(err, CS_EIO, "%s: cannot %s: %s: %s", dir, strcmp(d, dir) ? "create" : "write", d,
                       strerror(errno));
    return 0;
}

/* RGB image -> float CHW in [-1, 1] at W x H (resized if needed). */
static int image_to_float(const cs_image *img, int W, int H, float *out, cs_err *err) {
    cs_image r = {0};
    const cs_image *src = img;
    if (img->w != W || img->h != H) {
        if (cs_image_resize(&r, img, W, H, CS_RESIZE_AUTO, err)) return -1;
        src = &r;
    }
    size_t hw = (size_t)W * H;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < hw; p++) out[c * hw + p] = (float)src->rgb[p * 3 + c] / 127.5f - 1.0f;
    cs_image_free(&r);
    return 0;
}

/* Pixel keep-mask [H][W] (1 = keep) -> sampler space [h][w]: a cell is kept
 * only when every pixel of its factor x factor block is. */
static void mask_to_sampler(const uint8_t *keep, int W, int H, int f, float *out) {
    int w = W / f, h = H / f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int all = 1;
            for (int dy = 0; dy < f && all; dy++)
                for (int dx = 0; dx < f; dx++)
                    if (!keep[(size_t)(y * f + dy) * W + x * f + dx]) {
                        all = 0;
                        break;
                    }
            out[(size_t)y * w + x] = (float)all;
        }
}

static void job_free(cs_model *m, job *j) {
    if (m && j->cond) m->cond_free(m, j->cond);
    if (m && j->uncond) m->cond_free(m, j->uncond);
    free(j->x0);
    free(j->mask);
    free(j->task_json);
}

/* Checks sizes, reference images and masks of one item (no model needed). */
static int validate_item(const cs_suite *s, cs_suite_item *it, int empirical, int factor,
                         int fixed, int samples_override, cs_err *err) {
    cs_gen_settings *g = &it->s;
    if (samples_override > 0 && samples_override != g->samples) {
        uint64_t *seeds = realloc(g->seeds, sizeof(uint64_t) * samples_override);
        if (!seeds) return cs_fail(err, CS_ENOMEM, "out of memory");
        for (int i = g->samples; i < samples_override; i++) seeds[i] = seeds[g->samples - 1] + (uint64_t)(i - g->samples + 1);
        g->seeds = seeds;
        g->samples = samples_override;
    }
    int dflt = empirical ? (fixed ? fixed : 64) : 512;
    if (!g->width) g->width = g->height ? g->height : dflt;
    if (!g->height) g->height = g->width;
    if (empirical && fixed && (g->width != fixed || g->height != fixed))
        return cs_fail(err, CS_EUSAGE, "%s: %s.size: %dx%d, but the empirical model works at %dx%d",
                       s->path, it->where, g->width, g->height, fixed, fixed);
    if (!empirical && (g->width % 8 || g->height % 8))
        return cs_fail(err, CS_EUSAGE, "%s: %s.size: %dx%d is not a multiple of 8 (SD)", s->path,
                       it->where, g->width, g->height);
    if (factor > 1 && (g->width % factor || g->height % factor))
        return cs_fail(err, CS_EUSAGE, "%s: %s.size: %dx%d is not a multiple of the model's %d",
                       s->path, it->where, g->width, g->height, factor);
    return 0;
}

/* Loads the reference and mask of a completion/img2img item into j. */
/* Long: the reference read, resized and encoded, then the completion mask, then the task JSON row. */
static int load_task(const cs_suite *s, job *j, cs_model *m, cs_err *err) {
    cs_suite_item *it = j->it;
    if (it->kind == CS_TASK_TXT2IMG) return 0;
    cs_image ref = {0}, mk = {0};
    uint8_t *keep = NULL;
    float *pix = NULL;
    int rc = -1;
    if (cs_image_load(&ref, it->ref, NULL, err)) {
        cs_wrap(err, "%s: %s.ref", s->path, it->where);
        goto out;
    }
    size_t n = (size_t)m->channels * j->h * j->w;
    j->x0 = malloc(sizeof(float) * n);
    pix = malloc(sizeof(float) * 3 * (size_t)j->W * j->H);
    if (!j->x0 || !pix) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (image_to_float(&ref, j->W, j->H, pix, err)) goto out;
    if (m->encode(m, pix, 1, j->H, j->W, j->x0, err)) goto out;
    cJSON *t = cJSON_CreateObject();
    char *ref_abs = cs_abs_path(it->ref); /* read again by analyze, from any folder */
    cJSON_AddStringToObject(t, "ref", ref_abs ? ref_abs : it->ref);
    free(ref_abs);
    if (it->kind == CS_TASK_COMPLETION) {
        keep = malloc((size_t)j->W * j->H);
        j->mask = malloc(sizeof(float) * (size_t)j->h * j->w);
        if (!keep || !j->mask) {
            cJSON_Delete(t);
            cs_fail(err, CS_ENOMEM, "out of memory");
            goto out;
        }
        if (it->mask) {
            if (cs_image_load(&mk, it->mask, NULL, err)) {
                cJSON_Delete(t);
                cs_wrap(err, "%s: %s.mask", s->path, it->where);
                goto out;
            }
            if (mk.w != ref.w || mk.h != ref.h) {
                cJSON_Delete(t);
                cs_fail(err, CS_EUSAGE, "%s: %s.mask: %s is %dx%d, but the reference %s is %dx%d",
                        s->path, it->where, it->mask, mk.w, mk.h, it->ref, ref.w, ref.h);
                goto out;
            }
            cs_image r = {0};
            const cs_image *src = &mk;
            if (mk.w != j->W || mk.h != j->H) {
                if (cs_image_resize(&r, &mk, j->W, j->H, CS_RESIZE_AREA, err)) {
                    cJSON_Delete(t);
                    goto out;
                }
                src = &r;
            }
            for (size_t p = 0; p < (size_t)j->W * j->H; p++) {
                const uint8_t *q = src->rgb + p * 3;
                keep[p] = ((q[0] * 299 + q[1] * 587 + q[2] * 114) >= 128 * 1000) != j->mask_white_generates;
            }
            cs_image_free(&r);
            char *mask_abs = cs_abs_path(it->mask);
            cJSON_AddStringToObject(t, "mask", mask_abs ? mask_abs : it->mask);
            free(mask_abs);
            cJSON_AddStringToObject(t, "mask_white", j->mask_white_generates ? "generate" : "keep");
        } else {
            int *R = it->rect;
            if (R[0] + R[2] > ref.w || R[1] + R[3] > ref.h) {
                cJSON_Delete(t);
                cs_fail(err, CS_EUSAGE, "%s: %s.rect: [%d, %d, %d, %d] lies outside the %dx%d reference",
                        s->path, it->where, R[0], R[1], R[2], R[3], ref.w, ref.h);
                goto out;
            }
            /* the rect is in reference pixels: scale it to the generation size */
            int x0 = R[0] * j->W / ref.w, y0 = R[1] * j->H / ref.h;
            int x1 = ((R[0] + R[2]) * j->W + ref.w - 1) / ref.w, y1 = ((R[1] + R[3]) * j->H + ref.h - 1) / ref.h;
            for (int y = 0; y < j->H; y++)
                for (int x = 0; x < j->W; x++)
                    keep[(size_t)y * j->W + x] = !(x >= x0 && x < x1 && y >= y0 && y < y1);
            cJSON *a = cJSON_AddArrayToObject(t, "rect");
            for (int i = 0; i < 4; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(R[i]));
        }
        mask_to_sampler(keep, j->W, j->H, m->factor, j->mask);
        cJSON_AddStringToObject(t, "method", "known region replaced after every step by the reference noised to that "
                                             "step's level (RePaint-style replacement)");
        cJSON_AddNumberToObject(t, "resample", it->s.opts.resample > 1 ? it->s.opts.resample : 1);
    }
    if (it->s.opts.strength > 0) cJSON_AddNumberToObject(t, "strength", round6(it->s.opts.strength));
    j->task_json = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    rc = 0;
out:
    cs_image_free(&ref);
    cs_image_free(&mk);
    free(keep);
    free(pix);
    return rc;
}

/* ---- store ---- */

/* The run's identity is the suite's bytes and the model; a --precision that
 * overrides the suite's makes other images, so the suite's key is then the
 * hash of its hash and the precision (a bf16 and an fp32 run of one suite
 * are two runs, in two folders; a suite that says its precision keeps its
 * own hash). key[65]; returns 1 for bf16. */
static int run_key(const cs_suite *s, const cs_generate_opts *o, char key[65]) {
    int bf16 = o->precision ? !strcmp(o->precision, "bf16") : s->bf16;
    if (bf16 != s->bf16) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "%s precision %s", s->sha256, bf16 ? "bf16" : "fp32");
        cs_sha256_hex(buf, (size_t)n, key);
    } else {
        memcpy(key, s->sha256, 65);
    }
    return bf16;
}

/* The effective model config, so that a later stage (analyze's round trip
 * through the autoencoder, an_roundtrip.c) opens the model as it generated
 * without the suite: the checkpoint, config and vocabulary as absolute paths
 * (the suite's, or --config / --vocab over them) and the config's JSON
 * itself (a small model's geometry is not all in its weights, and the file
 * may be gone or changed by then). The sampler settings of each image are
 * in generations.settings_json. Returns -1 only when out of memory. */
static int add_model_config(cJSON *set, const cs_suite *s, const char *model_spec, const cs_generate_opts *o) {
    const char *config = o->config ? o->config : s->config, *vocab = o->vocab ? o->vocab : s->vocab;
    const char *paths[3][2] = {{"model_file", cs_model_is_empirical_spec(model_spec) ? NULL : model_spec},
                               {"config", config}, {"vocab", vocab}};
    for (int i = 0; i < 3; i++) {
        if (!paths[i][1]) continue;
        char *a = cs_abs_path(paths[i][1]);
        if (!a || !cJSON_AddStringToObject(set, paths[i][0], a)) return free(a), -1;
        free(a);
    }
    if (!config) return 0;
    cs_err e = {0};
    char *text = sd_read_text(config, 16u << 20, &e); /* read once already by the model's loader */
    cJSON *cj = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (cj && !cJSON_AddItemToObject(set, "config_json", cj)) return cJSON_Delete(cj), -1;
    return 0;
}

static int64_t find_or_add_run(cs_store *db, const cs_suite *s, const cs_model *m,
                               const char *model_spec, const cs_generate_opts *o,
                               const char *run_dir, int *reused, cs_err *err) {
    int64_t id;
    *reused = 0;
    char key[65];
    int bf16 = run_key(s, o, key);
    if (cs_run_find(db, key, m->hash, &id, err)) return -1;
    if (id > 0) {
        *reused = 1;
        return id;
    }
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "suite_name", s->name);
    cJSON_AddStringToObject(set, "out", run_dir);
    cJSON_AddStringToObject(set, "model_kind", m->kind);
    cJSON_AddStringToObject(set, "model_name", m->name);
    cJSON_AddStringToObject(set, "precision", bf16 ? "bf16" : "fp32");
    if (add_model_config(set, s, model_spec, o)) {
        cJSON_Delete(set);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    char *sj = cJSON_PrintUnformatted(set);
    cJSON_Delete(set);
    if (!sj) return cs_fail(err, CS_ENOMEM, "out of memory");
    cs_run_row r = {.suite = s->path, .suite_sha256 = key, .command = o->command,
                    .model = model_spec, .model_sha256 = m->hash, .settings_json = sj};
    int rc = cs_run_add(db, &r, &id, err);
    free(sj);
    return rc ? -1 : id;
}

static int add_prompt(cs_store *db, int64_t run, job *j, cs_err *err) {
    static const char *kinds[] = {"txt2img", "img2img", "completion"};
    cs_suite_item *it = j->it;
    cs_prompt_row p = {.key = it->id, .text = it->text, .negative = it->negative,
                       .expect_ref = it->expect_ref, .kind = kinds[it->kind], .task_json = j->task_json};
    return cs_prompt_add(db, run, &p, &j->prompt_id, err);
}

/* 1 when the generation's row exists and its file is where it says. */
static int recorded_file_exists(cs_store *db, int64_t run, int64_t prompt, uint64_t seed, int sample) {
    char *path = cs_generation_path(db, run, prompt, (int64_t)seed, sample);
    int have = path && file_exists(path);
    free(path);
    return have;
}

/* The file name of job j's sample k (image_path without the folder). */
static const char *name_of(const job *j, int k, char *dst, size_t n) {
    snprintf(dst, n, "%s-%d-%llu.png", j->it->id, k, (unsigned long long)j->it->s.seeds[k]);
    return dst;
}

/* sha256 hex of the file at path into hex[65]; -1 when unreadable. */
static int file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, r;
    int rc = 0;
    do {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap = cap ? cap * 2 : 1 << 16);
            if (!nb) {
                rc = -1;
                break;
            }
            buf = nb;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    if (ferror(f)) rc = -1;
    fclose(f);
    if (!rc) cs_sha256_hex(buf, n, hex);
    free(buf);
    return rc;
}

/* 1 when the generation's row exists and its file is there: where it was
 * recorded, or in dir under its own name with the recorded bytes (the
 * folder was moved: the row then points there). A row whose file is gone
 * is counted in st->missing (it is made again). */
static int have_generation(cs_store *db, int64_t run, int64_t prompt, uint64_t seed, int sample, const char *dir,
                           const char *name, cs_generate_stats *st) {
    char *path = cs_generation_path(db, run, prompt, (int64_t)seed, sample);
    if (!path) return 0;
    int have = file_exists(path);
    if (!have) {
        char *sha = cs_generation_sha256(db, run, prompt, (int64_t)seed, sample), hex[65];
        char *here = cs_path_join(dir, name);
        if (sha && here && strcmp(here, path) && file_sha256(here, hex) == 0 && !strcmp(hex, sha) &&
            cs_generation_set_path(db, run, prompt, (int64_t)seed, sample, here, NULL) == 0) {
            have = 1;
            st->moved++;
        } else if (st->missing++ == 0) {
            snprintf(st->missing_example, sizeof st->missing_example, "%s", path);
        }
        free(sha);
        free(here);
    }
    free(path);
    return have;
}

typedef struct {
    const char *path, *sha, *settings, *wb_json;
    double whitebox;
} gen_row;

/* A generation row kept for later (part of a run made by several processes). */
typedef struct {
    int64_t prompt;
    uint64_t seed;
    int sample;
    char *path, *sha, *settings, *wb_json;
    double whitebox;
} kept_row;

typedef struct {
    kept_row *v;
    int n, cap;
} kept_rows;

static int keep_row(kept_rows *k, int64_t prompt, uint64_t seed, int sample, const gen_row *g, cs_err *err) {
    if (k->n == k->cap) {
        int c = k->cap ? 2 * k->cap : 64;
        kept_row *nv = realloc(k->v, sizeof *nv * (size_t)c);
        if (!nv) return cs_fail(err, CS_ENOMEM, "out of memory");
        k->v = nv;
        k->cap = c;
    }
    kept_row *r = &k->v[k->n];
    *r = (kept_row){prompt, seed, sample, strdup(g->path), strdup(g->sha), g->settings ? strdup(g->settings) : NULL,
                    g->wb_json ? strdup(g->wb_json) : NULL, g->whitebox};
    if (!r->path || !r->sha || (g->settings && !r->settings) || (g->wb_json && !r->wb_json)) {
        free(r->path);
        free(r->sha);
        free(r->settings);
        free(r->wb_json);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    k->n++;
    return 0;
}

static void kept_free(kept_rows *k) {
    for (int i = 0; i < k->n; i++) {
        free(k->v[i].path);
        free(k->v[i].sha);
        free(k->v[i].settings);
        free(k->v[i].wb_json);
    }
    free(k->v);
}

static int add_generation(cs_store *db, int64_t run, int64_t prompt, uint64_t seed, int sample,
                          const gen_row *g, cs_err *err) {
    if (cs_store_begin(db, err)) return -1;
    cs_generation_row r = {.run_id = run, .prompt_id = prompt, .seed = (int64_t)seed, .sample = sample,
                           .settings_json = g->settings, .path = g->path, .sha256 = g->sha,
                           .whitebox = g->whitebox, .whitebox_json = g->wb_json};
    if (cs_generation_put(db, &r, NULL, err)) {
        cs_store_rollback(db);
        return -1;
    }
    return cs_store_commit(db, err);
}

/* ---- one image ---- */

static void on_step(void *ctx) { cs_progress_add(ctx, 1); }

/* A1111 writes ENSD only for samplers that draw noise after the first. */
static int stochastic(const cs_sample_opts *o) {
    return o->sampler == CS_SAMPLER_EULER_A || o->sampler == CS_SAMPLER_DDPM ||
           (o->sampler == CS_SAMPLER_DDIM && o->eta > 0);
}

/* A1111's "RNG:" value; xoshiro, which A1111 lacks, is named as ours so no
 * one mistakes the image for one A1111 can re-create. */
static const char *rng_infotext(cs_rng_kind k) {
    const char *a = cs_rng_a1111_name(k);
    return a ? a : "xoshiro (copyscope)";
}

/* 1 when a value is NaN or infinite: a model of NaN weights (or fp16
 * overflow) must stop the run, not write black images. */
static int non_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 1;
    return 0;
}

/* generations.settings_json: what re-creates the image (sampler, sizes, seed, model, noise). */
static char *settings_json(const cs_model *m, const job *j, const cs_gen_settings *g, const cs_sample_opts *op,
                           uint64_t seed) {
    const cs_sample_opts o = *op;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "sampler", cs_sampler_name(o.sampler));
    cJSON_AddStringToObject(s, "schedule", cs_spacing_name(o.spacing));
    cJSON_AddNumberToObject(s, "steps", o.steps);
    cJSON_AddNumberToObject(s, "guidance", round6(o.guidance));
    if (o.sampler == CS_SAMPLER_DDIM) cJSON_AddNumberToObject(s, "eta", round6(o.eta));
    cJSON_AddNumberToObject(s, "width", j->W);
    cJSON_AddNumberToObject(s, "height", j->H);
    char seedstr[32];
    snprintf(seedstr, sizeof seedstr, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(s, "seed", seedstr);
    if (o.strength > 0) cJSON_AddNumberToObject(s, "strength", round6(o.strength));
    if (j->mask && o.resample > 1) cJSON_AddNumberToObject(s, "resample", o.resample);
    cJSON_AddStringToObject(s, "model", m->name);
    cJSON_AddStringToObject(s, "model_sha256", m->hash);
    cJSON_AddStringToObject(s, "rng", cs_rng_name(g->rng));
    if (g->ensd) {
        char e[32];
        snprintf(e, sizeof e, "%llu", (unsigned long long)g->ensd);
        cJSON_AddStringToObject(s, "ensd", e);
    }
    int64_t rid;
    const char *rsrc;
    float rw;
    if (!cs_empirical_last_choice(m, &rid, &rsrc, &rw)) {
        cJSON_AddNumberToObject(s, "empirical_ref_id", (double)rid);
        cJSON_AddStringToObject(s, "empirical_ref", rsrc);
        cJSON_AddNumberToObject(s, "empirical_weight", rw);
    }
    char *txt = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return txt;
}

/* generations.whitebox_json: the trace's per-step eps differences and x0 drift. */
static char *whitebox_json(const cs_model *m, const cs_sample_opts *op, const cs_sample_trace *tr) {
    const cs_sample_opts o = *op;
    cJSON *w = cJSON_CreateObject();
    cJSON_AddNumberToObject(w, "k", o.whitebox_k > 0 ? o.whitebox_k : 1);
    cJSON *a = cJSON_AddArrayToObject(w, "eps_diff_norm");
    for (int i = 0; i < tr->n_steps; i++)
        cJSON_AddItemToArray(a, isnan(tr->eps_norm[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(tr->eps_norm[i]));
    if (!isnan(tr->whitebox)) cJSON_AddNumberToObject(w, "eps_diff_norm_mean_k", tr->whitebox);
    cJSON_AddNumberToObject(w, "x0_first_final_rms", tr->x0_final_rms);
    cJSON_AddStringToObject(w, "space", m->channels == 3 ? "pixels [-1,1]" : "latent (x0.18215)");
    char *txt = cJSON_PrintUnformatted(w);
    cJSON_Delete(w);
    return txt;
}

/* Long: one image's steps in order (sample, decode, finite check, 8 bits, PNG, store row), one cleanup. */
static int generate_one(cs_model *m, const char *spec, cs_store *db, int64_t run, job *j, int sample,
                        const char *dir, cs_progress *prog, int64_t *steps, kept_rows *keep, cs_err *err) {
    cs_suite_item *it = j->it;
    cs_gen_settings *g = &it->s;
    uint64_t seed = g->seeds[sample];
    size_t n = (size_t)m->channels * j->h * j->w, npix = (size_t)3 * j->W * j->H;
    float *x = malloc(sizeof(float) * n), *img = malloc(sizeof(float) * npix);
    cs_image out = {0};
    uint8_t *png = NULL;
    size_t png_len = 0;
    char *params = NULL, *settings = NULL, *wbj = NULL;
    cs_sample_trace tr = {0};
    int rc = -1;
    if (!x || !img) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    cs_noise_gen rng; /* one generator per image, as A1111 */
    cs_noise_gen_init(&rng, g->rng, seed, g->ensd);
    cs_noise noise = cs_noise_gen_source(&rng);
    cs_sample_opts o = g->opts;
    o.final_x0 = m->pred == CS_PRED_X0;
    o.on_step = on_step;
    o.on_step_ctx = prog;
    cs_sample_init init = {j->x0, j->mask};
    if (cs_sample(m, &o, j->cond, j->uncond, j->h, j->w, &noise, j->x0 ? &init : NULL, x, &tr, err)) goto out;
    *steps += tr.n_steps;
    int bad = non_finite(x, n);
    if (!bad && m->decode(m, x, 1, j->h, j->w, img, err)) goto out;
    if (bad || non_finite(img, npix)) {
        cs_fail(err, CS_EFORMAT, "%s: the model's %s is not finite (NaN or infinity) for %s, seed %llu: its weights "
                "are damaged or overflow their format; no image was written", spec, bad ? "sample" : "decoded image",
                it->where, (unsigned long long)seed);
        goto out;
    }
    if (cs_image_alloc(&out, j->W, j->H, err)) goto out;
    size_t hw = (size_t)j->W * j->H;
    /* SD: 8 bits as A1111, ComfyUI and sd.cpp make them, 255 * clamp((x + 1) / 2)
     * truncated (numpy's astype(uint8)), so a re-created image has their pixels.
     * The empirical model rounds: its outputs are training pixels k / 127.5 - 1,
     * which truncation could turn into k - 1. */
    int trunc = m->pred != CS_PRED_X0;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < hw; p++) {
            float v = (img[c * hw + p] + 1.0f) / 2.0f;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            out.rgb[p * 3 + c] = trunc ? (uint8_t)(255.0f * v) : (uint8_t)lroundf(v * 255.0f);
        }
    const char *sname = cs_sampler_a1111_name(o.sampler);
    params = cs_a1111_parameters(it->text, it->negative, o.steps, sname, cs_spacing_name(o.spacing),
                                 o.guidance, seed, j->W, j->H, m->hash, m->name,
                                 it->kind != CS_TASK_TXT2IMG ? (o.strength > 0 ? o.strength : 1) : 0,
                                 o.sampler == CS_SAMPLER_DDIM ? o.eta : 0, rng_infotext(g->rng),
                                 stochastic(&o) ? g->ensd : 0);
    if (!params) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    cs_png_text txt = {"parameters", params};
    if (cs_image_encode_png(&out, &txt, 1, &png, &png_len, err)) goto out;
    char sha[65], path[5400];
    cs_sha256_hex(png, png_len, sha);
    if (j->out_file) snprintf(path, sizeof path, "%s", j->out_file);
    else {
        char nm[1200];
        snprintf(path, sizeof path, "%s/%s", dir, name_of(j, sample, nm, sizeof nm));
    }
    if (cs_write_file_atomic(path, png, png_len, err)) goto out;
    if (j->out_file) { /* stored absolute, like the run's folder */
        char *a = cs_abs_path(path);
        if (a) snprintf(path, sizeof path, "%s", a);
        free(a);
    }

    settings = settings_json(m, j, g, &o, seed);
    wbj = whitebox_json(m, &o, &tr);
    gen_row row = {path, sha, settings, wbj, tr.whitebox};
    rc = keep ? keep_row(keep, j->prompt_id, seed, sample, &row, err)
              : add_generation(db, run, j->prompt_id, seed, sample, &row, err);
out:
    cs_sample_trace_free(&tr);
    free(x);
    free(img);
    cs_image_free(&out);
    free(png);
    free(params);
    free(settings);
    free(wbj);
    return rc;
}

/* Stage 1: the model's files, the output folder and every item's references
 * exist before anything loads. Sets *outdir (file_dir backs it in one-file mode). */
static int check_inputs(const cs_generate_opts *o, cs_suite *s, const char *spec, int empirical, const char *config,
                        const char *vocab, char *file_dir, size_t file_dir_size, const char **outdir, cs_err *err) {
    if (!empirical) {
        struct stat msb; /* a file, or a diffusers folder (pipeline/sd_layout.c checks it) */
        if (stat(spec, &msb) != 0) return cs_fail(err, CS_ENOTFOUND, "%s: model file not found", spec);
        if (config && !file_exists(config)) return cs_fail(err, CS_ENOTFOUND, "%s: config file not found", config);
        if (!vocab)
            return cs_fail(err, CS_EUSAGE, "%s: vocab: missing (give --vocab bpe_simple_vocab_16e6.txt.gz)", s->path);
        if (!file_exists(vocab)) return cs_fail(err, CS_ENOTFOUND, "%s: vocab file not found", vocab);
    } else {
        const char *idx = spec[9] == ':' ? spec + 10 : o->db;
        if (!idx || !file_exists(idx))
            return cs_fail(err, CS_ENOTFOUND, "%s: index database not found (empirical model)", idx ? idx : "--db");
    }
    for (int i = 0; i < s->n; i++)
        if (validate_item(s, &s->items[i], empirical, 0, empirical ? 64 : 0, o->samples, err)) return -1;
    *outdir = o->out ? o->out : o->out_default ? o->out_default : "generations";
    if (o->out_file) { /* the image's own folder */
        const char *sl = strrchr(o->out_file, '/');
        snprintf(file_dir, file_dir_size, "%.*s", sl ? (int)(sl - o->out_file + (sl == o->out_file)) : 1,
                 sl ? o->out_file : ".");
        *outdir = file_dir;
    }
    if (check_writable(*outdir, err)) return -1;
    for (int i = 0; i < s->n; i++) /* reference images exist before the model loads */
        if (s->items[i].ref && !file_exists(s->items[i].ref))
            return cs_fail(err, CS_ENOTFOUND, "%s: %s.ref: %s: file not found", s->path, s->items[i].where,
                           s->items[i].ref);
        else if (s->items[i].mask && !file_exists(s->items[i].mask))
            return cs_fail(err, CS_ENOTFOUND, "%s: %s.mask: %s: file not found", s->path, s->items[i].where,
                           s->items[i].mask);
    return 0;
}

/* Stage 2: one job per item (sizes, encoded prompts, references and masks). */
static int prepare_jobs(const cs_generate_opts *o, cs_suite *s, cs_model *m, int empirical, job *jobs, cs_err *err) {
    for (int i = 0; i < s->n; i++) {
        job *j = &jobs[i];
        j->it = &s->items[i];
        j->out_file = o->out_file;
        j->mask_white_generates = o->mask_white_generates;
        if (validate_item(s, j->it, empirical, m->factor, m->fixed_size, 0, err)) return -1;
        j->W = j->it->s.width;
        j->H = j->it->s.height;
        j->w = j->W / m->factor;
        j->h = j->H / m->factor;
        if (m->cond_new(m, j->it->text, &j->cond, err)) {
            cs_wrap(err, "%s: %s.text", s->path, j->it->where);
            return -1;
        }
        if (j->it->s.opts.guidance != 1.0f &&
            m->cond_new(m, j->it->negative ? j->it->negative : "", &j->uncond, err)) {
            cs_wrap(err, "%s: %s.negative", s->path, j->it->where);
            return -1;
        }
        if (load_task(s, j, m, err)) return -1;
    }
    return 0;
}

/* 1 when one of the run's recorded images is a file under dir. */
static int dir_holds_images(cs_store *db, int64_t run, const char *dir) {
    sqlite3_stmt *q;
    if (cs_store_prepare(db, &q, "SELECT path FROM generations WHERE run_id = ?1", NULL)) return 0;
    sqlite3_bind_int64(q, 1, run);
    size_t n = strlen(dir);
    int found = 0;
    while (!found && sqlite3_step(q) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(q, 0);
        found = p && !strncmp(p, dir, n) && p[n] == '/' && file_exists(p);
    }
    sqlite3_finalize(q);
    return found;
}

/* The run's image folder into st->out_dir (absolute). A new run: under
 * outdir. A run that exists keeps its folder when no --out is given (and
 * that folder is there); another --out is honoured only when the old
 * folder holds none of its images any more (moved or deleted), else
 * refused: the images would be split over two folders. */
static int choose_run_dir(const cs_generate_opts *o, cs_store *db, int64_t run, int reused, const char *want,
                          cs_generate_stats *st, cs_err *err) {
    char *want_abs = cs_abs_path(want), *had = reused ? cs_run_out_dir(db, run) : NULL;
    int rc = 0;
    if (!want_abs) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    else if (had && strcmp(had, want_abs)) {
        struct stat sb;
        int had_there = stat(had, &sb) == 0 && S_ISDIR(sb.st_mode);
        if (!o->out && had_there) snprintf(st->out_dir, sizeof st->out_dir, "%s", had);
        else if (o->out && had_there && dir_holds_images(db, run, had))
            rc = cs_fail(err, CS_EUSAGE,
                         "--out %s: run %lld (this suite with this model) keeps its images in %s; run again "
                         "without --out to use that folder, or move that folder to %s first (its images are "
                         "then found there)",
                         o->out, (long long)run, had, want_abs);
        else snprintf(st->out_dir, sizeof st->out_dir, "%s", want_abs);
    } else snprintf(st->out_dir, sizeof st->out_dir, "%s", want_abs);
    if (!rc && reused && (!had || strcmp(had, st->out_dir))) rc = cs_run_set_out_dir(db, run, st->out_dir, err);
    free(want_abs);
    free(had);
    return rc;
}

/* Stage 3: the run's folder, its run row and one prompt row per job, in one transaction. */
static int record_run(const cs_generate_opts *o, cs_suite *s, cs_model *m, const char *spec, const char *outdir,
                      job *jobs, cs_store **db, cs_generate_stats *st, cs_err *err) {
    char ident[130], run_hash[65], want[4200], key[65];
    run_key(s, o, key);
    snprintf(ident, sizeof ident, "%s%s", key, m->hash);
    cs_sha256_hex(ident, strlen(ident), run_hash);
    if (o->out_file) snprintf(want, sizeof want, "%s", outdir);
    else snprintf(want, sizeof want, "%s/%s-%.8s", outdir, s->name, run_hash);
    if (cs_store_open(db, o->db, err)) return -1;
    int reused = 0;
    if (cs_store_begin(*db, err)) return -1;
    char *want_abs = cs_abs_path(want);
    st->run_id = want_abs ? find_or_add_run(*db, s, m, spec, o, want_abs, &reused, err)
                          : cs_fail(err, CS_ENOMEM, "out of memory");
    free(want_abs);
    if (st->run_id < 0 || (!o->out_file && choose_run_dir(o, *db, st->run_id, reused, want, st, err))) {
        cs_store_rollback(*db);
        return -1;
    }
    if (o->out_file) snprintf(st->out_dir, sizeof st->out_dir, "%s", outdir);
    for (int i = 0; i < s->n; i++)
        if (add_prompt(*db, st->run_id, &jobs[i], err)) {
            cs_store_rollback(*db);
            return -1;
        }
    if (cs_store_commit(*db, err)) return -1;
    return cs_mkdir_p(st->out_dir, err);
}

/* Stage 4: every (prompt, sample) not yet stored, sampled and written in
 * order; with parts, this part's contiguous run of them (balanced by
 * steps), their rows kept in keep. */
static int sample_all(const cs_generate_opts *o, cs_suite *s, cs_model *m, const char *spec, cs_store *db,
                      job *jobs, cs_progress **prog, cs_generate_stats *st, kept_rows *keep, cs_err *err) {
    int64_t total = 0, mine = 0, cum = 0;
    int parts = o->part_n > 1 ? o->part_n : 1;
    char nm[1200];
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < jobs[i].it->s.samples; k++)
            if (o->out_file || !have_generation(db, st->run_id, jobs[i].prompt_id, jobs[i].it->s.seeds[k], k,
                                                st->out_dir, name_of(&jobs[i], k, nm, sizeof nm), st))
                total += cs_sample_count_steps(&jobs[i].it->s.opts);
    /* an image belongs to the part its middle step falls in */
#define PART_OF(c, n) (int)(((c) + (n) / 2) * parts / (total > 0 ? total : 1))
    for (int i = 0; parts > 1 && i < s->n; i++)
        for (int k = 0; k < jobs[i].it->s.samples; k++)
            if (!recorded_file_exists(db, st->run_id, jobs[i].prompt_id, jobs[i].it->s.seeds[k], k)) {
                int64_t n = cs_sample_count_steps(&jobs[i].it->s.opts);
                if (PART_OF(cum, n) == o->part_k) mine += n;
                cum += n;
            }
    *prog = o->progress ? cs_progress_start("generate", parts > 1 ? mine : total, "step") : NULL;
    double t0 = cs_now_s();
    cum = 0;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < jobs[i].it->s.samples; k++) {
            if (!o->out_file && recorded_file_exists(db, st->run_id, jobs[i].prompt_id, jobs[i].it->s.seeds[k], k)) {
                st->skipped++;
                continue;
            }
            int64_t n = cs_sample_count_steps(&jobs[i].it->s.opts);
            int part = parts > 1 ? PART_OF(cum, n) : 0;
            cum += n;
            if (part != (parts > 1 ? o->part_k : 0)) continue;
            if (generate_one(m, spec, db, st->run_id, &jobs[i], k, st->out_dir, *prog, &st->steps,
                             parts > 1 ? keep : NULL, err))
                return -1;
            st->generated++;
        }
#undef PART_OF
    st->seconds = cs_now_s() - t0;
    return 0;
}

/* With parts: the kept rows written part after part (the ids of one
 * process), each part waiting for the ones before; 1 when any part failed. */
static int write_parts(const cs_generate_opts *o, cs_store *db, int64_t run, const kept_rows *keep, int failed,
                       cs_err *err) {
    int any = failed;
    for (int p = 0; p < o->part_n; p++) {
        int bad = 0;
        if (p == o->part_k && !any && keep->n > 0) {
            bad = cs_store_begin(db, err);
            for (int i = 0; !bad && i < keep->n; i++) {
                const kept_row *r = &keep->v[i];
                cs_generation_row g = {.run_id = run, .prompt_id = r->prompt, .seed = (int64_t)r->seed,
                                       .sample = r->sample, .settings_json = r->settings, .path = r->path,
                                       .sha256 = r->sha, .whitebox = r->whitebox, .whitebox_json = r->wb_json};
                bad = cs_generation_put(db, &g, NULL, err) ? -1 : 0;
            }
            if (!bad) bad = cs_store_commit(db, err);
            else cs_store_rollback(db);
        }
        any = o->wait(o->wait_ctx, any || bad) || any;
    }
    return any;
}

int cs_generate(const cs_generate_opts *o, cs_generate_stats *stats, cs_err *err) {
    cs_generate_stats dummy;
    cs_generate_stats *st = stats ? stats : &dummy;
    memset(st, 0, sizeof *st);
    cs_suite s;
    cs_model *m = NULL;
    cs_store *db = NULL;
    job *jobs = NULL;
    cs_progress *prog = NULL;
    kept_rows keep = {0};
    int rc = -1, parts = o->part_n > 1 && o->wait, waited = 0;
    if (o->suite_json ? cs_suite_parse(&s, o->suite_json, strlen(o->suite_json), o->suite ? o->suite : "command line", err)
                      : cs_suite_load(&s, o->suite, err)) {
        if (parts) o->wait(o->wait_ctx, 1);
        return -1;
    }
    if (o->out_file && (s.n != 1 || s.items[0].s.samples != 1 || (o->samples && o->samples != 1))) {
        cs_fail(err, CS_EUSAGE, "%s: one output file needs one prompt and one sample", s.path);
        goto out;
    }
    if (o->samples < 0) {
        cs_fail(err, CS_EUSAGE, "-n: must be > 0");
        goto out;
    }
    const char *spec = o->model ? o->model : s.model;
    if (!spec) {
        cs_fail(err, CS_EUSAGE, "%s: model: missing (give --model PATH or empirical)", s.path);
        goto out;
    }
    int empirical = cs_model_is_empirical_spec(spec);
    const char *config = o->config ? o->config : s.config, *vocab = o->vocab ? o->vocab : s.vocab;
    char file_dir[3500];
    const char *outdir = NULL;
    if (check_inputs(o, &s, spec, empirical, config, vocab, file_dir, sizeof file_dir, &outdir, err)) goto out;
    if (o->threads > 0) nn_set_threads(o->threads);
    int bf16 = o->precision ? !strcmp(o->precision, "bf16") : s.bf16;
    if (o->precision && strcmp(o->precision, "fp32") && strcmp(o->precision, "bf16")) {
        cs_fail(err, CS_EUSAGE, "--precision %s: must be fp32 or bf16", o->precision);
        goto out;
    }
    if (nn_set_precision(bf16 ? NN_BF16 : NN_FP32)) {
        cs_fail(err, CS_EUSAGE, "%s: precision bf16: this CPU has no AVX512_BF16 (or CS_ISA caps it)",
                o->precision ? "--precision" : s.path);
        goto out;
    }
    cs_model_opts mo = {.config = config, .vocab = vocab, .db = o->db, .loras = s.loras, .n_loras = s.n_loras};
    if (cs_model_open(&m, spec, &mo, err)) goto out;
    jobs = calloc((size_t)s.n, sizeof *jobs);
    if (!jobs) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (prepare_jobs(o, &s, m, empirical, jobs, err)) goto out;
    if (parts && o->part_k == 0 && record_run(o, &s, m, spec, outdir, jobs, &db, st, err)) goto out;
    if (parts) { /* the other parts find part 0's run and prompt rows */
        waited = 1;
        if (o->wait(o->wait_ctx, 0)) {
            if (!err->msg[0]) cs_fail(err, CS_EINTERNAL, "generate: another rank failed (its message above)");
            goto out;
        }
    }
    if ((!parts || o->part_k > 0) && record_run(o, &s, m, spec, outdir, jobs, &db, st, err)) {
        if (parts) write_parts(o, db, st->run_id, &keep, 1, err);
        goto out;
    }
    int bad = sample_all(o, &s, m, spec, db, jobs, &prog, st, &keep, err);
    if (parts && write_parts(o, db, st->run_id, &keep, bad, err) && !bad) {
        cs_fail(err, CS_EINTERNAL, "generate: another rank failed (its message above)");
        bad = 1;
    }
    if (bad) goto out;
    if (!parts || o->part_k == 0) cs_run_finish(db, st->run_id, NULL); /* a missing stamp is no failure */
    rc = 0;
out:
    if (parts && !waited) o->wait(o->wait_ctx, 1); /* failed before the run was recorded */
    kept_free(&keep);
    nn_set_precision(NN_FP32); /* bf16 is for sampling only: embeddings stay comparable with the index's */
    if (prog) cs_progress_end(prog);
    if (jobs)
        for (int i = 0; i < s.n; i++) job_free(m, &jobs[i]);
    free(jobs);
    cs_model_free(m);
    cs_store_close(db);
    cs_suite_free(&s);
    return rc;
}
