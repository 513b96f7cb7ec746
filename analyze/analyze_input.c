/* analyze_input.c — the generations an analysis reads: a run's rows (read
 * in analyze_store.c), or every file under image folders; the completion
 * tasks of a run; the only_new bookkeeping. See analyze_internal.h. */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/analyze_internal.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/parallel.h"

int an_items_push(items *it, item x) {
    if (it->n == it->cap) {
        int64_t c = it->cap ? it->cap * 2 : 256;
        item *nv = realloc(it->v, sizeof(item) * c);
        if (!nv) return -1;
        it->v = nv;
        it->cap = c;
    }
    it->v[it->n++] = x;
    return 0;
}

void an_items_free(items *it) {
    for (int64_t i = 0; i < it->n; i++) {
        free(it->v[i].path);
        free(it->v[i].prompt);
        free(it->v[i].error);
    }
    free(it->v);
}

int cs_parse_a1111(const char *text, char **prompt, int64_t *seed) {
    *prompt = NULL;
    *seed = -1;
    if (!text) return -1;
    /* the settings line: the last line that starts with "Steps: " */
    const char *settings = NULL, *neg = NULL;
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, "Steps: ", 7)) settings = p;
        if (!neg && !strncmp(p, "Negative prompt:", 16)) neg = p;
        p = strchr(p, '\n');
        if (p) p++;
    }
    const char *end = neg ? neg : settings ? settings : text + strlen(text);
    size_t n = (size_t)(end - text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) n--;
    *prompt = strndup(text, n);
    if (settings) {
        const char *sd = strstr(settings, "Seed: ");
        if (sd) *seed = strtoll(sd + 6, NULL, 10);
    }
    return *prompt ? 0 : -1;
}

/* ---- image folders ---- */

static items *g_walk; /* nftw has no context argument */
static int walk_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type != FTW_F) return 0;
    item x = {0};
    x.path = strdup(path);
    x.seed = -1;
    if (!x.path || an_items_push(g_walk, x)) {
        free(x.path);
        return -1;
    }
    return 0;
}

static int cmp_item_path(const void *a, const void *b) {
    return strcmp(((const item *)a)->path, ((const item *)b)->path);
}

int an_list_images(char *const *dirs, int n, items *it, cs_err *err) {
    for (int d = 0; d < n; d++) {
        struct stat sb;
        if (stat(dirs[d], &sb)) return cs_fail(err, CS_EIO, "%s: no such file or folder", dirs[d]);
        g_walk = it;
        char *abs = cs_abs_path(dirs[d]); /* stored paths are absolute: any folder reads them */
        if (!abs) return cs_fail(err, CS_ENOMEM, "%s: out of memory", dirs[d]);
        int bad = nftw(abs, walk_fn, 16, FTW_PHYS);
        free(abs);
        if (bad) return cs_fail(err, CS_EIO, "%s: cannot list the folder", dirs[d]);
    }
    if (it->n > 1) qsort(it->v, (size_t)it->n, sizeof(item), cmp_item_path); /* v is NULL when empty */
    return 0;
}

/* ---- --images, streamed: prompts first, then slices of whole prompt groups ---- */

static void read_prompt(void *ctx, int64_t i, int thread) {
    (void)thread;
    item *x = &((items *)ctx)->v[i];
    char *txt = NULL;
    cs_err err = {0};
    x->pos = i;
    x->no_prompt = 1;
    if (cs_png_read_text(x->path, "parameters", &txt, &err) == 0 && txt &&
        cs_parse_a1111(txt, &x->prompt, &x->seed) == 0)
        x->no_prompt = 0;
    free(txt);
}

void an_read_image_prompts(items *it, int threads) { cs_parallel_for(threads, it->n, read_prompt, it); }

static const items *g_sort; /* qsort has no context argument */
/* By prompt (files without one apart, each its own group), then path order. */
static int cmp_prompt_pos(const void *a, const void *b) {
    const item *x = &g_sort->v[*(const int64_t *)a], *y = &g_sort->v[*(const int64_t *)b];
    if (x->no_prompt != y->no_prompt) return x->no_prompt - y->no_prompt;
    if (!x->no_prompt) {
        int c = strcmp(x->prompt ? x->prompt : "", y->prompt ? y->prompt : "");
        if (c) return c;
    }
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int same_group(const item *x, const item *y) {
    return !x->no_prompt && !y->no_prompt && !strcmp(x->prompt ? x->prompt : "", y->prompt ? y->prompt : "");
}

int an_image_slices(const items *it, int64_t **idx_out, int64_t **cut_out, int64_t *n_slices) {
    int64_t n = it->n, *idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    int64_t *cut = malloc(sizeof(int64_t) * (size_t)(n + 2));
    if (!idx || !cut) {
        free(idx);
        free(cut);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    g_sort = it;
    if (n > 1) qsort(idx, (size_t)n, sizeof *idx, cmp_prompt_pos);
    int64_t ns = 0;
    cut[0] = 0;
    for (int64_t a = 0; a < n;) {
        int64_t b = a + 1; /* a slice: whole groups while it stays within AN_SLICE */
        while (b < n) {
            int64_t g = b + 1;
            while (g < n && same_group(&it->v[idx[g - 1]], &it->v[idx[g]])) g++;
            if (same_group(&it->v[idx[b - 1]], &it->v[idx[b]]) || g - a <= AN_SLICE) b = g;
            else break;
        }
        cut[++ns] = b;
        a = b;
    }
    *idx_out = idx;
    *cut_out = cut;
    *n_slices = ns;
    return 0;
}

/* ---- completion tasks ---- */

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return b > 0 && a >= b && !strcmp(s + a - b, tail) && (a == b || s[a - b - 1] == '/');
}

/* The reference a task names: by the prompt's expect_ref (a suffix of the
 * reference's source, e.g. "img/1f600.png"), else by the task's file name. */
static int64_t task_ref_row(const cs_ref_thumbs *th, const char *expect, const char *ref) {
    for (int pass = 0; pass < 2; pass++) {
        const char *tail = pass == 0 ? expect : (ref ? (strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref) : NULL);
        if (!tail || !*tail) continue;
        for (int64_t i = 0; i < th->n; i++)
            if (th->sources[i] && ends_with(th->sources[i], tail)) return i;
    }
    return -1;
}

static char *fmt_dup(const char *fmt, const char *a, const char *b) {
    char buf[1024];
    snprintf(buf, sizeof buf, fmt, a, b);
    return strdup(buf);
}

/* Fills t (prompt_id set by the caller) from its task_json: the original
 * (by expect_ref, else the task's file name), and the withheld region (a
 * mask image, or a rect in the reference's pixels). A task that cannot be
 * audited (original not indexed, mask unreadable, neither rect nor mask)
 * keeps a reason in t->error. Fails only when out of memory. */
int an_task_parse(an_task *t, const char *tj, const char *ex, const cs_ref_thumbs *th, cs_err *err) {
    cJSON *j = tj ? cJSON_Parse(tj) : NULL;
    cJSON *rect = j ? cJSON_GetObjectItemCaseSensitive(j, "rect") : NULL;
    cJSON *mask = j ? cJSON_GetObjectItemCaseSensitive(j, "mask") : NULL;
    cJSON *ref = j ? cJSON_GetObjectItemCaseSensitive(j, "ref") : NULL;
    const char *refp = cJSON_IsString(ref) ? ref->valuestring : NULL;
    t->orig_row = task_ref_row(th, ex, refp);
    cs_err e2 = {0};
    if (t->orig_row < 0) {
        t->error = fmt_dup("the original (%.500s) is not in the index%s", ex ? ex : refp ? refp : "?", "");
    } else if (cJSON_IsString(mask)) {
        cs_image m = {0};
        t->mask = strdup(mask->valuestring);
        t->withheld = malloc((size_t)CS_THUMB_SIZE * CS_THUMB_SIZE);
        if (!t->mask || !t->withheld) {
            cJSON_Delete(j);
            return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        }
        int n_w = -1;
        if (cs_image_load(&m, mask->valuestring, NULL, &e2) ||
            (n_w = cs_an_region_from_mask(t->withheld, &m, &e2)) < 0)
            t->error = fmt_dup("mask %.400s: %.500s", mask->valuestring, e2.msg);
        /* `generate -p --mask` masks are white = regenerate (sd's rule) */
        cJSON *mw = cJSON_GetObjectItemCaseSensitive(j, "mask_white");
        if (n_w >= 0 && cJSON_IsString(mw) && !strcmp(mw->valuestring, "generate"))
            for (int p = 0; p < CS_THUMB_SIZE * CS_THUMB_SIZE; p++) t->withheld[p] = !t->withheld[p];
        cs_image_free(&m);
    } else if (cJSON_IsArray(rect) && cJSON_GetArraySize(rect) == 4) {
        for (int k = 0; k < 4; k++) t->rect[k] = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(rect, k));
        /* the rect is in the reference's pixels (pipeline/generate.c) */
        cs_image r = {0};
        if (refp && cs_image_load(&r, refp, NULL, &e2) == 0) {
            t->ref_w = r.w;
            t->ref_h = r.h;
        }
        cs_image_free(&r);
    } else {
        t->error = fmt_dup("the task has neither a rect nor a mask (img2img)%s%s", "", "");
    }
    cJSON_Delete(j);
    return 0;
}

void an_tasks_free(an_tasks *t) {
    for (int64_t i = 0; i < t->n; i++) {
        free(t->v[i].mask);
        free(t->v[i].withheld);
        free(t->v[i].error);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* ---- incremental analysis (only_new) ---- */

/* Drops the old generations of prompts without a new one: their cliques and
 * summaries do not change. */
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void an_drop_untouched_prompts(items *it) {
    int64_t *fresh = malloc(sizeof(int64_t) * (size_t)it->n), nf = 0, k = 0;
    if (!fresh) return; /* keeps them all: slower, same result */
    for (int64_t i = 0; i < it->n; i++)
        if (!it->v[i].old) fresh[nf++] = it->v[i].prompt_id;
    qsort(fresh, (size_t)nf, sizeof *fresh, cmp_i64);
    for (int64_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
        int keep = !x->old || bsearch(&x->prompt_id, fresh, (size_t)nf, sizeof *fresh, cmp_i64);
        if (keep) it->v[k++] = *x;
        else {
            free(x->path);
            free(x->prompt);
            free(x->error);
        }
    }
    it->n = k;
    free(fresh);
}
