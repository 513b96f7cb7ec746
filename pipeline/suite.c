/* suite.c — prompt-suite JSON (cJSON) into cs_suite, validating every field
 * and naming its JSON path in errors. */
#include "pipeline/suite.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/store.h"
#include "index/refs.h"

/* Settings while they are being inherited (defaults -> item). */
typedef struct {
    cs_sample_opts o;
    int width, height;
    int samples, samples_set;
    uint64_t seed;
    uint64_t *list; /* explicit seeds, or NULL */
    int nlist;
    cs_rng_kind rng;
    uint64_t ensd;
    int spacing_auto; /* schedule "Automatic": the sampler's A1111 default */
} raw_settings;

char *cs_suite_resolve(const char *dir, const char *p) {
    if (!p) return NULL;
    if (p[0] == '/' || !dir || !*dir || !strcmp(dir, ".") || !strcmp(p, "empirical")) return strdup(p);
    if (!strncmp(p, "empirical:", 10)) {
        char *inner = cs_suite_resolve(dir, p + 10);
        if (!inner) return NULL;
        size_t n = strlen(inner) + 11;
        char *r = malloc(n);
        if (r) snprintf(r, n, "empirical:%s", inner);
        free(inner);
        return r;
    }
    return cs_path_join(dir, p);
}

static int get_int(const cJSON *v, const char *file, const char *where, const char *key, int *out,
                   cs_err *err) {
    /* range first: converting an out-of-range double to int is undefined (UBSan, fuzz_suite) */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -2147483648.0 && v->valuedouble <= 2147483647.0) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return cs_fail(err, CS_EFORMAT, "%s: %s%s: must be an integer", file, where, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *v, const char *file, const char *where, const char *key, float *out,
                   cs_err *err) {
    if (!cJSON_IsNumber(v)) return cs_fail(err, CS_EFORMAT, "%s: %s%s: must be a number", file, where, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_seed(const cJSON *v, const char *file, const char *path, uint64_t *out, cs_err *err) {
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
            return cs_fail(err, CS_EFORMAT,
                           "%s: %s: must be an integer in 0..2^53 (use a string for larger seeds)",
                           file, path);
        *out = (uint64_t)d;
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(v->valuestring, &end, 10);
        if (!*end && !errno) {
            *out = u;
            return 0;
        }
    }
    return cs_fail(err, CS_EFORMAT, "%s: %s: must be a 64-bit unsigned seed", file, path);
}

/* 1 = key was a setting (applied), 0 = not a setting key, -1 = error. */
/* Long: one branch per settings key, each with its own range check and error line. */
static int apply_setting(raw_settings *r, const cJSON *v, const char *file, const char *where,
                         cs_err *err) {
    const char *k = v->string;
    if (!strcmp(k, "sampler")) {
        if (!cJSON_IsString(v)) return cs_fail(err, CS_EFORMAT, "%s: %ssampler: must be a string", file, where);
        cs_spacing sp;
        int has_sp;
        if (cs_sampler_parse_full(v->valuestring, &r->o.sampler, &sp, &has_sp))
            return cs_fail(err, CS_EUSAGE,
                           "%s: %ssampler: unknown sampler \"%s\" (euler, euler_a, heun, dpmpp_2m, "
                           "ddim, ddpm, or A1111's names such as \"Euler a\", \"DPM++ 2M Karras\")",
                           file, where, v->valuestring);
        if (has_sp) { /* A1111's "DPM++ 2M Karras" names the schedule too */
            r->o.spacing = sp;
            r->spacing_auto = 0;
        }
    } else if (!strcmp(k, "schedule") || !strcmp(k, "scheduler")) {
        if (!cJSON_IsString(v)) return cs_fail(err, CS_EFORMAT, "%s: %s%s: must be a string", file, where, k);
        int a = cs_schedule_parse_any(v->valuestring, &r->o.spacing);
        r->spacing_auto = a == 1;
        if (a < 0)
            return cs_fail(err, CS_EUSAGE,
                           "%s: %s%s: unknown schedule \"%s\" (discrete, karras, exponential; A1111: "
                           "Automatic, Uniform, Karras, Exponential)", file, where, k, v->valuestring);
    } else if (!strcmp(k, "rng")) {
        if (!cJSON_IsString(v)) return cs_fail(err, CS_EFORMAT, "%s: %srng: must be a string", file, where);
        if (cs_rng_parse(v->valuestring, &r->rng))
            return cs_fail(err, CS_EUSAGE,
                           "%s: %srng: unknown generator \"%s\" (philox = A1111 NV/GPU, torch-cpu = "
                           "A1111 CPU, xoshiro)", file, where, v->valuestring);
    } else if (!strcmp(k, "ensd")) {
        char p[128];
        snprintf(p, sizeof p, "%sensd", where);
        if (get_seed(v, file, p, &r->ensd, err)) return -1;
    } else if (!strcmp(k, "steps")) {
        if (get_int(v, file, where, k, &r->o.steps, err)) return -1;
        if (r->o.steps <= 0) return cs_fail(err, CS_EUSAGE, "%s: %ssteps: must be > 0", file, where);
        if (r->o.steps > 1000) return cs_fail(err, CS_EUSAGE, "%s: %ssteps: must be <= 1000", file, where);
    } else if (!strcmp(k, "guidance") || !strcmp(k, "cfg_scale")) {
        if (get_num(v, file, where, k, &r->o.guidance, err)) return -1;
        if (!(r->o.guidance >= 0 && r->o.guidance <= 100))
            return cs_fail(err, CS_EUSAGE, "%s: %s%s: must be in 0..100", file, where, k);
    } else if (!strcmp(k, "eta")) {
        if (get_num(v, file, where, k, &r->o.eta, err)) return -1;
        if (!(r->o.eta >= 0 && r->o.eta <= 1))
            return cs_fail(err, CS_EUSAGE, "%s: %seta: must be in 0..1", file, where);
    } else if (!strcmp(k, "strength")) {
        if (get_num(v, file, where, k, &r->o.strength, err)) return -1;
        if (!(r->o.strength > 0 && r->o.strength <= 1))
            return cs_fail(err, CS_EUSAGE, "%s: %sstrength: must be in (0, 1]", file, where);
    } else if (!strcmp(k, "whitebox_k")) {
        if (get_int(v, file, where, k, &r->o.whitebox_k, err)) return -1;
        if (r->o.whitebox_k <= 0) return cs_fail(err, CS_EUSAGE, "%s: %swhitebox_k: must be > 0", file, where);
    } else if (!strcmp(k, "resample")) {
        if (get_int(v, file, where, k, &r->o.resample, err)) return -1;
        if (r->o.resample < 1 || r->o.resample > 100)
            return cs_fail(err, CS_EUSAGE, "%s: %sresample: must be in 1..100", file, where);
    } else if (!strcmp(k, "width") || !strcmp(k, "height")) {
        int x = 0;
        if (get_int(v, file, where, k, &x, err)) return -1;
        if (x <= 0 || x > 4096) return cs_fail(err, CS_EUSAGE, "%s: %s%s: must be in 1..4096", file, where, k);
        *(k[0] == 'w' ? &r->width : &r->height) = x;
    } else if (!strcmp(k, "size")) {
        int wh[2];
        if (cJSON_IsArray(v)) {
            if (cJSON_GetArraySize(v) != 2)
                return cs_fail(err, CS_EFORMAT, "%s: %ssize: must be a number or [width, height]", file, where);
            for (int i = 0; i < 2; i++)
                if (get_int(cJSON_GetArrayItem(v, i), file, where, i ? "size[1]" : "size[0]", &wh[i], err))
                    return -1;
        } else {
            if (get_int(v, file, where, k, &wh[0], err)) return -1;
            wh[1] = wh[0];
        }
        for (int i = 0; i < 2; i++)
            if (wh[i] <= 0 || wh[i] > 4096)
                return cs_fail(err, CS_EUSAGE, "%s: %ssize: must be in 1..4096", file, where);
        r->width = wh[0];
        r->height = wh[1];
    } else if (!strcmp(k, "samples")) {
        if (get_int(v, file, where, k, &r->samples, err)) return -1;
        if (r->samples <= 0 || r->samples > 100000)
            return cs_fail(err, CS_EUSAGE, "%s: %ssamples: must be in 1..100000", file, where);
        r->samples_set = 1;
    } else if (!strcmp(k, "seed")) {
        char p[128];
        snprintf(p, sizeof p, "%sseed", where);
        if (get_seed(v, file, p, &r->seed, err)) return -1;
        free(r->list);
        r->list = NULL;
        r->nlist = 0;
    } else if (!strcmp(k, "seeds")) {
        int n = cJSON_GetArraySize(v);
        if (!cJSON_IsArray(v) || n < 1)
            return cs_fail(err, CS_EFORMAT, "%s: %sseeds: must be a non-empty array", file, where);
        uint64_t *l = malloc(sizeof(uint64_t) * n);
        if (!l) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
        int i = 0; /* walked as a list: cJSON_GetArrayItem is linear, so indexing was quadratic */
        for (const cJSON *e = v->child; e && i < n; e = e->next, i++) {
            char p[128];
            snprintf(p, sizeof p, "%sseeds[%d]", where, i);
            if (get_seed(e, file, p, &l[i], err)) {
                free(l);
                return -1;
            }
        }
        free(r->list);
        r->list = l;
        r->nlist = n;
    } else {
        return 0;
    }
    return 1;
}

static int copy_raw(raw_settings *dst, const raw_settings *src, cs_err *err) {
    *dst = *src;
    dst->list = NULL;
    dst->samples_set = 0; /* an item's own "seeds" overrides an inherited "samples" */
    if (src->list) {
        dst->list = malloc(sizeof(uint64_t) * src->nlist);
        if (!dst->list) return cs_fail(err, CS_ENOMEM, "suite: out of memory");
        memcpy(dst->list, src->list, sizeof(uint64_t) * src->nlist);
    }
    return 0;
}

static int finish_settings(cs_gen_settings *g, raw_settings *r, const char *file, const char *where,
                           cs_err *err) {
    g->opts = r->o;
    if (r->spacing_auto) g->opts.spacing = cs_sampler_a1111_default_spacing(g->opts.sampler);
    g->rng = r->rng;
    g->ensd = r->ensd;
    g->width = r->width;
    g->height = r->height;
    if (r->list) {
        if (r->samples_set && r->samples != r->nlist)
            return cs_fail(err, CS_EUSAGE, "%s: %ssamples: %d but seeds lists %d", file, where,
                           r->samples, r->nlist);
        g->samples = r->nlist;
        g->seeds = r->list;
        r->list = NULL;
    } else {
        g->samples = r->samples;
        g->seeds = malloc(sizeof(uint64_t) * g->samples);
        if (!g->seeds) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
        for (int i = 0; i < g->samples; i++) g->seeds[i] = r->seed + (uint64_t)i;
    }
    if ((g->opts.sampler == CS_SAMPLER_DDIM || g->opts.sampler == CS_SAMPLER_DDPM) &&
        g->opts.steps > CS_TRAIN_STEPS / 2)
        return cs_fail(err, CS_EUSAGE, "%s: %ssteps: ddim/ddpm need steps <= %d", file, where,
                       CS_TRAIN_STEPS / 2);
    return 0;
}

static int get_str(const cJSON *v, const char *file, const char *where, char **out, cs_err *err) {
    if (!cJSON_IsString(v)) return cs_fail(err, CS_EFORMAT, "%s: %s%s: must be a string", file, where, v->string);
    free(*out);
    *out = strdup(v->valuestring);
    if (!*out) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
    return 0;
}

static int valid_id(const char *s) {
    if (!*s || strlen(s) > 100) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return s[0] != '.';
}

/* Long: one branch per prompt key, then the item's required fields checked, each with its own error. */
static int parse_item(cs_suite *s, cs_suite_item *it, const cJSON *o, int completion,
                      const raw_settings *defaults, const char *file, cs_err *err) {
    char where[80];
    snprintf(where, sizeof where, "%s.", it->where);
    if (!cJSON_IsObject(o)) return cs_fail(err, CS_EFORMAT, "%s: %s: must be an object", file, it->where);
    raw_settings r;
    if (copy_raw(&r, defaults, err)) return -1;
    int rc = -1;
    float mask_strength = -1;
    for (const cJSON *v = o->child; v; v = v->next) {
        const char *k = v->string;
        /* a field given twice would silently take the last value (and the
         * keys an item may have are few, so this stays short) */
        for (const cJSON *u = o->child; u != v; u = u->next)
            if (!strcmp(u->string, k)) {
                cs_fail(err, CS_EFORMAT, "%s: %s%s: given twice", file, where, k);
                goto out;
            }
        int a = apply_setting(&r, v, file, where, err);
        if (a < 0) goto out;
        if (a) {
            if (!strcmp(k, "strength")) mask_strength = r.o.strength;
            continue;
        }
        if (!strcmp(k, "id")) {
            if (get_str(v, file, where, &it->id, err)) goto out;
        } else if (!strcmp(k, "text") || !strcmp(k, "prompt")) {
            if (get_str(v, file, where, &it->text, err)) goto out;
        } else if (!strcmp(k, "negative")) {
            if (get_str(v, file, where, &it->negative, err)) goto out;
        } else if (!strcmp(k, "expect_ref")) {
            if (get_str(v, file, where, &it->expect_ref, err)) goto out;
        } else if (completion && !strcmp(k, "ref")) {
            char *p = NULL;
            if (get_str(v, file, where, &p, err)) goto out;
            free(it->ref);
            it->ref = cs_suite_resolve(s->dir, p);
            free(p);
        } else if (completion && !strcmp(k, "mask")) {
            char *p = NULL;
            if (get_str(v, file, where, &p, err)) goto out;
            free(it->mask);
            it->mask = cs_suite_resolve(s->dir, p);
            free(p);
        } else if (completion && !strcmp(k, "rect")) {
            if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4) {
                cs_fail(err, CS_EFORMAT, "%s: %srect: must be [x, y, width, height]", file, where);
                goto out;
            }
            for (int i = 0; i < 4; i++) {
                char kk[32];
                snprintf(kk, sizeof kk, "rect[%d]", i);
                if (get_int(cJSON_GetArrayItem(v, i), file, where, kk, &it->rect[i], err)) goto out;
                if (it->rect[i] < 0 || (i >= 2 && it->rect[i] == 0)) {
                    cs_fail(err, CS_EUSAGE, "%s: %s%s: must be %s", file, where, kk, i >= 2 ? "> 0" : ">= 0");
                    goto out;
                }
            }
            it->has_rect = 1;
        } else {
            cs_fail(err, CS_EFORMAT, "%s: %s%s: unknown field", file, where, k);
            goto out;
        }
    }
    if (!it->id) {
        cs_fail(err, CS_EFORMAT, "%s: %sid: missing", file, where);
        goto out;
    }
    if (!valid_id(it->id)) {
        cs_fail(err, CS_EFORMAT, "%s: %sid: \"%s\" must be 1-100 of [A-Za-z0-9._-], not starting with '.'",
                file, where, it->id);
        goto out;
    }
    if (!it->text) {
        if (!completion) {
            cs_fail(err, CS_EFORMAT, "%s: %stext: missing", file, where);
            goto out;
        }
        it->text = strdup("");
    }
    if (completion) {
        if (!it->ref) {
            cs_fail(err, CS_EFORMAT, "%s: %sref: missing (the reference image to complete)", file, where);
            goto out;
        }
        if (it->mask && it->has_rect) {
            cs_fail(err, CS_EUSAGE, "%s: %smask: give a mask or a rect, not both", file, where);
            goto out;
        }
        if (it->mask || it->has_rect) {
            it->kind = CS_TASK_COMPLETION;
        } else if (mask_strength > 0) {
            it->kind = CS_TASK_IMG2IMG;
        } else {
            cs_fail(err, CS_EFORMAT, "%s: %s: needs a mask, a rect or a strength", file, it->where);
            goto out;
        }
    } else {
        it->kind = CS_TASK_TXT2IMG;
        if (mask_strength > 0) {
            cs_fail(err, CS_EUSAGE, "%s: %sstrength: only completions take a strength", file, where);
            goto out;
        }
        r.o.strength = 0;
    }
    if (it->kind == CS_TASK_COMPLETION && mask_strength < 0) r.o.strength = 0;
    rc = finish_settings(&it->s, &r, file, where, err);
out:
    free(r.list);
    return rc;
}

static void item_free(cs_suite_item *it) {
    free(it->id);
    free(it->text);
    free(it->negative);
    free(it->expect_ref);
    free(it->ref);
    free(it->mask);
    free(it->s.seeds);
}

void cs_suite_free(cs_suite *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) item_free(&s->items[i]);
    free(s->items);
    free(s->path);
    free(s->dir);
    free(s->name);
    free(s->model);
    free(s->config);
    free(s->vocab);
    for (int i = 0; i < s->n_loras; i++) free((char *)s->loras[i].path);
    free(s->loras);
    memset(s, 0, sizeof *s);
}

/* "loras": [{"path": "x.safetensors", "weight": 0.8}, ...] */
static int parse_loras(cs_suite *s, const cJSON *arr, const char *file, cs_err *err) {
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 0 || n > 16) return cs_fail(err, CS_EFORMAT, "%s: loras: must be an array of at most 16", file);
    s->loras = calloc((size_t)n + 1, sizeof *s->loras);
    if (!s->loras) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(arr, i);
        char where[32];
        snprintf(where, sizeof where, "loras[%d].", i);
        if (!cJSON_IsObject(o)) return cs_fail(err, CS_EFORMAT, "%s: loras[%d]: must be an object", file, i);
        char *path = NULL;
        float w = 1.0f;
        for (const cJSON *v = o->child; v; v = v->next) {
            if (!strcmp(v->string, "path")) {
                if (get_str(v, file, where, &path, err)) return -1;
            } else if (!strcmp(v->string, "weight")) {
                if (get_num(v, file, where, "weight", &w, err)) {
                    free(path);
                    return -1;
                }
            } else {
                free(path);
                return cs_fail(err, CS_EFORMAT, "%s: loras[%d].%s: unknown field", file, i, v->string);
            }
        }
        if (!path) return cs_fail(err, CS_EFORMAT, "%s: loras[%d].path: missing", file, i);
        s->loras[i].path = cs_suite_resolve(s->dir, path);
        s->loras[i].weight = w;
        s->n_loras++;
        free(path);
    }
    return 0;
}

static int parse_array(cs_suite *s, const cJSON *arr, const char *key, int completion,
                       const raw_settings *defaults, const char *file, cs_err *err) {
    if (!arr) return 0;
    if (!cJSON_IsArray(arr)) return cs_fail(err, CS_EFORMAT, "%s: %s: must be an array", file, key);
    int n = cJSON_GetArraySize(arr), i = 0;
    cs_suite_item *items = realloc(s->items, sizeof(cs_suite_item) * (size_t)(s->n + n + 1));
    if (!items) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
    s->items = items;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        cs_suite_item *it = &s->items[s->n];
        memset(it, 0, sizeof *it);
        snprintf(it->where, sizeof it->where, "%s[%d]", key, i);
        s->n++; /* counted now so that suite_free frees a half-parsed item */
        if (parse_item(s, it, o, completion, defaults, file, err)) return -1;
    }
    return 0;
}

static int by_id(const void *a, const void *b, void *items) {
    const cs_suite_item *it = items;
    int i = *(const int *)a, j = *(const int *)b;
    int c = strcmp(it[i].id, it[j].id);
    return c ? c : (i > j) - (i < j);
}

/* Ids are unique: sorted once (n log n; a pairwise check took 26 s for 100k
 * prompts). The error names the first item, in file order, that repeats an
 * earlier one. */
static int check_unique_ids(const cs_suite *s, const char *file, cs_err *err) {
    int *ix = malloc(sizeof(int) * (size_t)(s->n ? s->n : 1));
    if (!ix) return cs_fail(err, CS_ENOMEM, "%s: out of memory", file);
    for (int i = 0; i < s->n; i++) ix[i] = i;
    qsort_r(ix, (size_t)s->n, sizeof *ix, by_id, s->items);
    int first = -1, later = -1;
    for (int k = 1, g = 0; k < s->n; k++) {
        if (strcmp(s->items[ix[k]].id, s->items[ix[g]].id)) {
            g = k;
            continue;
        }
        if (later < 0 || ix[k] < later) later = ix[k], first = ix[g];
    }
    free(ix);
    if (later < 0) return 0;
    return cs_fail(err, CS_EFORMAT, "%s: %s.id: \"%s\" repeats %s.id", file, s->items[later].where,
                   s->items[later].id, s->items[first].where);
}

/* A \u0000 escape inside a string: cJSON would cut the string there (C
 * strings), and a prompt or id would lose its end without a word. Scans the
 * (valid) JSON text, keeping the path of the current value; 1 and where
 * ("prompts[3].text") when one is found. */
static int find_nul_escape(const char *js, size_t len, char *where, size_t wn) {
    enum { MAXD = 32 };
    struct { int array, index, want_key; char key[48]; } st[MAXD];
    int d = -1;
    for (size_t i = 0; i < len; i++) {
        char c = js[i];
        if (c == '{' || c == '[') {
            if (++d >= 0 && d < MAXD) st[d].array = c == '[', st[d].index = 0, st[d].want_key = c == '{', st[d].key[0] = 0;
        } else if (c == '}' || c == ']') {
            if (d >= 0) d--;
        } else if (c == ',' && d >= 0 && d < MAXD) {
            if (st[d].array) st[d].index++;
            else st[d].want_key = 1;
        } else if (c == '"') {
            size_t j = i + 1, k = 0;
            int nul = 0;
            char text[48];
            for (; j < len && js[j] != '"'; j++) {
                if (js[j] == '\\' && j + 1 < len) {
                    if (js[j + 1] == 'u' && j + 5 < len && !strncmp(js + j + 2, "0000", 4)) nul = 1;
                    j++;
                }
                if (k + 1 < sizeof text) text[k++] = js[j];
            }
            text[k] = 0;
            int is_key = d >= 0 && d < MAXD && !st[d].array && st[d].want_key;
            if (is_key) {
                snprintf(st[d].key, sizeof st[d].key, "%s", text);
                st[d].want_key = 0;
            }
            if (nul) {
                size_t o = 0;
                where[0] = 0;
                for (int l = 0; l <= d && l < MAXD && o < wn; l++)
                    o += (size_t)(st[l].array ? snprintf(where + o, wn - o, "[%d]", st[l].index)
                                              : snprintf(where + o, wn - o, "%s%s", l ? "." : "", st[l].key));
                if (is_key && o < wn) snprintf(where + o, wn - o, " (a field name)");
                return 1;
            }
            i = j;
        }
    }
    return 0;
}

/* Long: the suite's top-level keys and defaults checked in place, each with its own error line. */
int cs_suite_parse(cs_suite *s, const char *json, size_t len, const char *path, cs_err *err) {
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    const char *slash = strrchr(path, '/');
    s->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
    cs_sha256_hex(json, len, s->sha256);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    raw_settings d = {.o = {.sampler = CS_SAMPLER_EULER_A, .spacing = CS_SPACING_DISCRETE, .steps = 20,
                            .guidance = 7.5f, .whitebox_k = 1},
                      .samples = 1, .seed = 1};
    int rc = -1;
    if (!root) {
        size_t off = end ? (size_t)(end - json) : 0;
        int line = 1;
        for (size_t i = 0; i < off && i < len; i++) line += json[i] == '\n';
        cs_fail(err, CS_EFORMAT, "%s: not valid JSON (line %d)", path, line);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        cs_fail(err, CS_EFORMAT, "%s: the suite must be a JSON object", path);
        goto out;
    }
    char nul_at[256];
    /* the scan stops where cJSON did: text after the suite's object is not JSON */
    if (find_nul_escape(json, end && end >= json ? (size_t)(end - json) : len, nul_at, sizeof nul_at)) {
        cs_fail(err, CS_EFORMAT, "%s: %s: \\u0000 (a NUL character) inside a string is not allowed: the text "
                "would be cut there", path, nul_at);
        goto out;
    }
    const cJSON *defaults = NULL, *prompts = NULL, *completions = NULL;
    for (const cJSON *v = root->child; v; v = v->next) {
        const char *k = v->string;
        char *tmp = NULL;
        if (!strcmp(k, "name")) {
            if (get_str(v, path, "", &s->name, err)) goto out;
        } else if (!strcmp(k, "model") || !strcmp(k, "config") || !strcmp(k, "vocab")) {
            if (get_str(v, path, "", &tmp, err)) goto out;
            char **dst = k[0] == 'm' ? &s->model : k[0] == 'c' ? &s->config : &s->vocab;
            free(*dst);
            *dst = cs_suite_resolve(s->dir, tmp);
            free(tmp);
        } else if (!strcmp(k, "loras")) {
            if (parse_loras(s, v, path, err)) goto out;
        } else if (!strcmp(k, "precision")) { /* of the products: fp32 (default) or bf16 */
            if (!cJSON_IsString(v) || (strcmp(v->valuestring, "fp32") && strcmp(v->valuestring, "bf16"))) {
                cs_fail(err, CS_EFORMAT, "%s: precision: must be \"fp32\" or \"bf16\"", path);
                goto out;
            }
            s->bf16 = !strcmp(v->valuestring, "bf16");
        } else if (!strcmp(k, "defaults")) {
            defaults = v;
        } else if (!strcmp(k, "prompts")) {
            prompts = v;
        } else if (!strcmp(k, "completions")) {
            completions = v;
        } else if (!strcmp(k, "description") || !strcmp(k, "comment")) {
            continue;
        } else {
            cs_fail(err, CS_EFORMAT, "%s: %s: unknown field", path, k);
            goto out;
        }
    }
    if (!s->name) {
        cs_fail(err, CS_EFORMAT, "%s: name: missing", path);
        goto out;
    }
    if (!valid_id(s->name)) {
        cs_fail(err, CS_EFORMAT, "%s: name: \"%s\" must be 1-100 of [A-Za-z0-9._-]", path, s->name);
        goto out;
    }
    if (defaults) {
        if (!cJSON_IsObject(defaults)) {
            cs_fail(err, CS_EFORMAT, "%s: defaults: must be an object", path);
            goto out;
        }
        for (const cJSON *v = defaults->child; v; v = v->next) {
            int a = apply_setting(&d, v, path, "defaults.", err);
            if (a < 0) goto out;
            if (!a) {
                cs_fail(err, CS_EFORMAT, "%s: defaults.%s: unknown field", path, v->string);
                goto out;
            }
        }
    }
    if (d.list && d.samples_set && d.samples != d.nlist) {
        cs_fail(err, CS_EUSAGE, "%s: defaults.samples: %d but seeds lists %d", path, d.samples, d.nlist);
        goto out;
    }
    if (parse_array(s, prompts, "prompts", 0, &d, path, err)) goto out;
    if (parse_array(s, completions, "completions", 1, &d, path, err)) goto out;
    if (check_unique_ids(s, path, err)) goto out;
    if (s->n == 0) {
        cs_fail(err, CS_EFORMAT, "%s: prompts: the suite has no prompts or completions", path);
        goto out;
    }
    rc = 0;
out:
    free(d.list);
    cJSON_Delete(root);
    if (rc) cs_suite_free(s);
    return rc;
}

int cs_suite_load(cs_suite *s, const char *path, cs_err *err) {
    memset(s, 0, sizeof *s);
    uint8_t *buf;
    size_t len;
    if (cs_read_file(path, &buf, &len, err)) return -1;
    int rc = cs_suite_parse(s, (const char *)buf, len, path, err);
    free(buf);
    return rc;
}

static int check_file(const char *file, const cs_suite_item *it, const char *key, const char *path, cs_err *err) {
    struct stat st;
    if (stat(path, &st)) return cs_fail(err, CS_EIO, "%s: %s.%s: %s: %s", file, it->where, key, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return cs_fail(err, CS_EIO, "%s: %s.%s: %s: not a file", file, it->where, key, path);
    if (access(path, R_OK))
        return cs_fail(err, CS_EIO, "%s: %s.%s: %s: %s", file, it->where, key, path, strerror(errno));
    return 0;
}

int cs_suite_check_refs(const cs_suite *s, struct cs_store *index, cs_err *err) {
    for (int i = 0; i < s->n; i++) {
        const cs_suite_item *it = &s->items[i];
        if (it->ref && check_file(s->path, it, "ref", it->ref, err)) return -1;
        if (it->mask && check_file(s->path, it, "mask", it->mask, err)) return -1;
        if (!it->expect_ref || !index) continue;
        int64_t id;
        if (cs_refs_find_source(index, it->expect_ref, &id, err)) return -1;
        if (!id)
            return cs_fail(err, CS_EUSAGE,
                           "%s: %s.expect_ref: \"%s\" is not in the index %s (no reference's source is or ends "
                           "with it: see copyscope index ls)",
                           s->path, it->where, it->expect_ref, cs_store_path(index));
    }
    return 0;
}
