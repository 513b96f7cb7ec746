/* analyze.c — orchestration of `copyscope analyze` (see analyze.h). */
#include "analyze/analyze.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/clique.h"
#include "analyze/completion.h"
#include "analyze/match.h"
#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "index/background.h"
#include "index/embed.h"
#include "index/hamming.h"
#include "index/knn.h"
#include "index/refs.h"

enum { CHUNK = 256 };

/* A completion task of the run (one per prompt of kind 'completion'): the
 * region withheld from the original, which is reference row orig_row. */
typedef struct an_task {
    int64_t prompt_id;
    int64_t orig_row;    /* -1: the original is not in the index */
    char *mask;          /* task_json "mask" (path), or NULL for a rect */
    int rect[4];         /* task_json "rect", in the reference's pixels */
    int ref_w, ref_h;    /* the task's reference size (0: unknown, use the generation's) */
    uint8_t *withheld;   /* [CS_THUMB_SIZE^2] for a mask, NULL for a rect */
    char *error;         /* why it cannot be audited, or NULL */
} an_task;

typedef struct {
    an_task *v;
    int64_t n;
} an_tasks;

static void tasks_free(an_tasks *t) {
    for (int64_t i = 0; i < t->n; i++) {
        free(t->v[i].mask);
        free(t->v[i].withheld);
        free(t->v[i].error);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* One generation to analyse. */
typedef struct {
    int64_t gen_id;
    int64_t prompt_id;   /* 0 when the generation has none */
    char *path;
    char *prompt;        /* --images: the prompt from the PNG, or "" */
    int64_t seed;
    double whitebox;
    int has_whitebox;
    int ok;              /* decoded */
    char *error;         /* why not */
    int64_t clique;      /* index into the prompt's cliques, -1 */
    int64_t clique_size;
    int64_t clique_seed; /* generation id of the clique's seed */
    int img_w, img_h;
    const struct an_task *task; /* its prompt's completion task, or NULL */
    int audited;         /* comp holds the completion audit */
    cs_an_completion comp;
    float emb_bias;      /* SSCD background bias subtracted from the cosines (x beta) */
    int old;             /* only_new: has a finding, kept; only its thumbnail is needed */
    int old_verdict;     /* ... its stored verdict, aligned tiled L2 (INFINITY: none) and */
    double old_dal, old_cos; /* largest embedding cosine (-2: none), for prompt_summary */
    int64_t res_i;       /* index of its result in res (analysed ones) */
} item;

typedef struct {
    item *v;
    int64_t n, cap;
} items;

static int items_push(items *it, item x) {
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

static void items_free(items *it) {
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

/* ---- reading the generations ---- */

static int load_run(cs_store *s, int64_t run_id, items *it, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT 1 FROM runs WHERE id = ?", err)) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found) return cs_fail(err, CS_ENOTFOUND, "run %lld: no such run", (long long)run_id);
    if (cs_store_prepare(s, &st,
                         "SELECT id, prompt_id, path, seed, whitebox FROM generations "
                         "WHERE run_id = ? ORDER BY id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        item x = {0};
        x.gen_id = sqlite3_column_int64(st, 0);
        x.prompt_id = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
        x.path = strdup((const char *)sqlite3_column_text(st, 2));
        x.seed = sqlite3_column_int64(st, 3);
        x.has_whitebox = sqlite3_column_type(st, 4) != SQLITE_NULL;
        x.whitebox = sqlite3_column_double(st, 4);
        if (!x.path || items_push(it, x)) {
            free(x.path);
            sqlite3_finalize(st);
            return cs_fail(err, CS_ENOMEM, "run %lld: out of memory", (long long)run_id);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading generations");
    return 0;
}

static items *g_walk; /* nftw has no context argument */
static int walk_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type != FTW_F) return 0;
    item x = {0};
    x.path = strdup(path);
    x.seed = -1;
    if (!x.path || items_push(g_walk, x)) {
        free(x.path);
        return -1;
    }
    return 0;
}

static int cmp_item_path(const void *a, const void *b) {
    return strcmp(((const item *)a)->path, ((const item *)b)->path);
}

static int list_images(char *const *dirs, int n, items *it, cs_err *err) {
    for (int d = 0; d < n; d++) {
        struct stat sb;
        if (stat(dirs[d], &sb)) return cs_fail(err, CS_EIO, "%s: no such file or folder", dirs[d]);
        g_walk = it;
        if (nftw(dirs[d], walk_fn, 16, FTW_PHYS))
            return cs_fail(err, CS_EIO, "%s: cannot list the folder", dirs[d]);
    }
    if (it->n > 1) qsort(it->v, (size_t)it->n, sizeof(item), cmp_item_path); /* v is NULL when empty */
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

/* Reads the run's completion tasks (rect or mask, original) and points
 * their generations at them. A task that cannot be audited (original not
 * indexed, mask unreadable, neither rect nor mask) keeps a reason in error. */
static int load_tasks(cs_store *s, int64_t run_id, items *it, an_tasks *tk, const cs_ref_thumbs *th,
                      cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, task_json, expect_ref FROM prompts WHERE run_id = ? AND kind = 'completion' "
                         "ORDER BY id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        an_task *nv = realloc(tk->v, sizeof(an_task) * (size_t)(tk->n + 1));
        if (!nv) {
            sqlite3_finalize(st);
            return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        }
        tk->v = nv;
        an_task *t = &tk->v[tk->n++];
        memset(t, 0, sizeof *t);
        t->prompt_id = sqlite3_column_int64(st, 0);
        const char *tj = (const char *)sqlite3_column_text(st, 1);
        const char *ex = (const char *)sqlite3_column_text(st, 2);
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
                sqlite3_finalize(st);
                return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
            }
            if (cs_image_load(&m, mask->valuestring, NULL, &e2) ||
                cs_an_region_from_mask(t->withheld, &m, &e2) < 0)
                t->error = fmt_dup("mask %.400s: %.500s", mask->valuestring, e2.msg);
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
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading completion tasks");
    for (int64_t i = 0; i < it->n; i++)
        for (int64_t k = 0; k < tk->n; k++)
            if (it->v[i].prompt_id == tk->v[k].prompt_id) it->v[i].task = &tk->v[k];
    return 0;
}

/* ---- incremental analysis (only_new) ---- */

/* Marks the generations that have a finding as old, with what
 * prompt_summary needs of it: the verdict, the aligned tiled L2 of the
 * matched reference (evidence tl2.aligned_distance) and the largest cosine
 * of the embedding column emb (matches). it is ordered by generation id. */
static int keep_old(cs_store *s, int64_t run_id, items *it, const char *emb, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT g.id, f.verdict, json_extract(f.evidence_json, '$.tl2.aligned_distance'), "
                         "(SELECT MAX(score) FROM matches m WHERE m.generation_id = g.id AND m.descriptor = ?2) "
                         "FROM generations g JOIN findings f ON f.generation_id = g.id "
                         "WHERE g.run_id = ?1 ORDER BY g.id, f.id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, emb ? emb : "embedding", -1, SQLITE_STATIC);
    int rc;
    int64_t i = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t gid = sqlite3_column_int64(st, 0);
        while (i < it->n && it->v[i].gen_id < gid) i++;
        if (i == it->n) break;
        if (it->v[i].gen_id != gid) continue;
        item *x = &it->v[i]; /* a later finding of the same generation overrides */
        int v = cs_verdict_parse((const char *)sqlite3_column_text(st, 1));
        x->old = 1;
        x->old_verdict = v < 0 ? CS_V_NOVEL : v;
        x->old_dal = sqlite3_column_type(st, 2) == SQLITE_NULL ? INFINITY : sqlite3_column_double(st, 2);
        x->old_cos = sqlite3_column_type(st, 3) == SQLITE_NULL ? -2 : sqlite3_column_double(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return cs_store_fail(s, err, "reading the findings");
    return 0;
}

/* Drops the old generations of prompts without a new one: their cliques and
 * summaries do not change. */
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void drop_untouched_prompts(items *it) {
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

/* ---- decoding (parallel) ---- */

typedef struct {
    items *it;
    int64_t off;
    cs_an_query *q;     /* item i's query is q[i - qoff] */
    int64_t qoff;
    int want_hashes;
    cs_image *imgs;     /* [CHUNK] kept for the embedder, or NULL */
    int read_params;
    cs_progress *prog;
} dec_ctx;

static void decode_one(void *vctx, int64_t j, int thread) {
    (void)thread;
    dec_ctx *c = vctx;
    int64_t i = c->off + j;
    item *x = &c->it->v[i];
    cs_err err = {0};
    cs_image img = {0};
    if (cs_image_load(&img, x->path, NULL, &err) ||
        cs_an_query_init(&c->q[i - c->qoff], &img, c->want_hashes && !x->old, &err)) {
        x->error = strdup(err.msg[0] ? err.msg : "cannot decode");
        cs_image_free(&img);
        cs_progress_add(c->prog, 1);
        return;
    }
    x->ok = 1;
    x->img_w = img.w;
    x->img_h = img.h;
    if (c->read_params) {
        char *txt = NULL;
        if (cs_png_read_text(x->path, "parameters", &txt, &err) == 0 && txt) {
            cs_parse_a1111(txt, &x->prompt, &x->seed);
            free(txt);
        }
    }
    if (c->imgs) c->imgs[j] = img;
    else cs_image_free(&img);
    cs_progress_add(c->prog, 1);
}

/* ---- the store ---- */

static int record_images_run(cs_store *s, items *it, char *const *dirs, int n_dirs, int64_t *run_id,
                             cs_err *err) {
    sqlite3_stmt *st = NULL, *sp = NULL, *sfind = NULL, *sg = NULL;
    char cmd[2048] = "analyze --images";
    for (int d = 0; d < n_dirs; d++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " %s", dirs[d]);
    }
    if (cs_store_begin(s, err)) return -1;
    if (cs_store_prepare(s, &st, "INSERT INTO runs(suite, command, model) VALUES('images', ?, 'external')", err))
        goto fail;
    sqlite3_bind_text(st, 1, cmd, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(s, err, "recording the run");
        goto fail;
    }
    *run_id = sqlite3_last_insert_rowid(cs_store_db(s));
    if (cs_store_prepare(s, &sfind, "SELECT id FROM prompts WHERE run_id = ? AND text = ?", err) ||
        cs_store_prepare(s, &sp, "INSERT INTO prompts(run_id, key, text) VALUES(?, ?, ?)", err) ||
        cs_store_prepare(s, &sg,
                         "INSERT INTO generations(run_id, prompt_id, seed, sample, settings_json, path, sha256) "
                         "VALUES(?, ?, ?, ?, NULL, ?, ?)", err))
        goto fail;
    int64_t np = 0;
    for (int64_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
        if (!x->ok) continue;
        const char *text = x->prompt ? x->prompt : "";
        sqlite3_reset(sfind);
        sqlite3_bind_int64(sfind, 1, *run_id);
        sqlite3_bind_text(sfind, 2, text, -1, SQLITE_STATIC);
        if (sqlite3_step(sfind) == SQLITE_ROW) {
            x->prompt_id = sqlite3_column_int64(sfind, 0);
        } else {
            char key[32];
            snprintf(key, sizeof key, "p%lld", (long long)++np);
            sqlite3_reset(sp);
            sqlite3_bind_int64(sp, 1, *run_id);
            sqlite3_bind_text(sp, 2, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(sp, 3, text, -1, SQLITE_STATIC);
            if (sqlite3_step(sp) != SQLITE_DONE) {
                cs_store_fail(s, err, "recording a prompt");
                goto fail;
            }
            x->prompt_id = sqlite3_last_insert_rowid(cs_store_db(s));
        }
        char sha[65] = "";
        cs_err e2 = {0};
        cs_sha256_file_hex(x->path, sha, &e2);
        sqlite3_reset(sg);
        sqlite3_bind_int64(sg, 1, *run_id);
        sqlite3_bind_int64(sg, 2, x->prompt_id);
        sqlite3_bind_int64(sg, 3, x->seed < 0 ? 0 : x->seed);
        sqlite3_bind_int64(sg, 4, i); /* the file's position keeps (prompt, seed, sample) unique */
        sqlite3_bind_text(sg, 5, x->path, -1, SQLITE_STATIC);
        if (sha[0]) sqlite3_bind_text(sg, 6, sha, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(sg, 6);
        if (sqlite3_step(sg) != SQLITE_DONE) {
            cs_store_fail(s, err, "recording a generation");
            goto fail;
        }
        x->gen_id = sqlite3_last_insert_rowid(cs_store_db(s));
    }
    sqlite3_finalize(st);
    sqlite3_finalize(sp);
    sqlite3_finalize(sfind);
    sqlite3_finalize(sg);
    return cs_store_commit(s, err);
fail:
    sqlite3_finalize(st);
    sqlite3_finalize(sp);
    sqlite3_finalize(sfind);
    sqlite3_finalize(sg);
    cs_store_rollback(s);
    return -1;
}

/* which descriptors the index holds */
typedef struct {
    int tl2, hashes;
    char **emb;      /* embedding column names */
    int n_emb;
} holds;

static int want(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int check_descriptors(const char *list, const holds *h, const char *db, cs_err *err) {
    if (!list) return 0;
    char have[512] = "";
    size_t hl = 0;
    if (h->tl2) hl += (size_t)snprintf(have + hl, sizeof have - hl, "tl2,layout,");
    if (h->hashes) hl += (size_t)snprintf(have + hl, sizeof have - hl, "pdq,phash,dhash,");
    for (int i = 0; i < h->n_emb && hl < sizeof have; i++)
        hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s,", h->emb[i]);
    if (hl && hl < sizeof have) have[hl - 1] = 0;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), p);
        if (l > 0 && !want(have[0] ? have : "", name))
            return cs_fail(err, CS_EUSAGE, "%s: the index has no '%s' descriptor (it holds: %s)", db, name,
                           have[0] ? have : "nothing");
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* ---- evidence ---- */

static cJSON *tile_json(int t, int grid, const float *td) {
    const int ts = CS_THUMB_SIZE / grid;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", t);
    cJSON_AddNumberToObject(o, "x", (t % grid) * ts);
    cJSON_AddNumberToObject(o, "y", (t / grid) * ts);
    cJSON_AddNumberToObject(o, "size", ts);
    cJSON_AddNumberToObject(o, "distance", td[t]);
    return o;
}

static double r4(double v) { return round(v * 1e4) / 1e4; }

/* The background set the embedding cosines were normalised with, if any. */
typedef struct {
    const char *kind; /* "stored" (index background), "folder" (--background), NULL: none */
    const char *path;
    int64_t n;
} bg_info;

static char *evidence_json(const cs_an_result *r, const cs_an_refs *refs, const cs_ref_thumbs *th,
                           const item *x, int64_t analysis_id, const char *emb_name, int verdict,
                           float severity, const bg_info *bg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "copyscope.evidence/1");
    cJSON_AddNumberToObject(o, "analysis_id", (double)analysis_id);
    cJSON_AddStringToObject(o, "verdict", cs_verdict_name(verdict));
    cJSON_AddStringToObject(o, "rule", x->audited ? "completion" : r->has_best ? r->best.rule : "");
    cJSON_AddNumberToObject(o, "severity", r4(severity));
    cJSON_AddNumberToObject(o, "candidates", r->n_cand);
    if (r->has_best) {
        const cs_an_cand *b = &r->best;
        const int grid = refs->cfg.grid, T = grid * grid;
        cJSON *ref = cJSON_AddObjectToObject(o, "ref");
        cJSON_AddNumberToObject(ref, "id", (double)refs->ids[b->row]);
        if (th && b->row < th->n) {
            cJSON_AddStringToObject(ref, "source", th->sources[b->row] ? th->sources[b->row] : "");
            if (th->captions[b->row]) cJSON_AddStringToObject(ref, "caption", th->captions[b->row]);
            else cJSON_AddNullToObject(ref, "caption");
        }
        cJSON *t = cJSON_AddObjectToObject(o, "tl2");
        cJSON_AddNumberToObject(t, "distance", r4(b->d_id));
        cJSON_AddBoolToObject(t, "mirrored", b->id_mirrored);
        cJSON_AddNumberToObject(t, "aligned_distance", r4(b->d_al));
        cJSON_AddBoolToObject(t, "aligned_mirrored", b->al_mirrored);
        cJSON *box = cJSON_AddArrayToObject(t, "ref_crop");
        for (int k = 0; k < 3; k++) cJSON_AddItemToArray(box, cJSON_CreateNumber(r4(b->box[k])));
        cJSON_AddNumberToObject(t, "grid", grid);
        cJSON *tiles = cJSON_AddArrayToObject(t, "tiles");
        for (int k = 0; k < T; k++) cJSON_AddItemToArray(tiles, cJSON_CreateNumber(r4(b->tile_d[k])));
        if (b->best_tile >= 0) cJSON_AddItemToObject(t, "best_tile", tile_json(b->best_tile, grid, b->tile_d));
        else cJSON_AddNullToObject(t, "best_tile");
        if (b->worst_tile >= 0) cJSON_AddItemToObject(t, "worst_tile", tile_json(b->worst_tile, grid, b->tile_d));
        cJSON_AddNumberToObject(t, "tiles_informative", b->tiles_informative);
        cJSON_AddNumberToObject(t, "tiles_matched", b->tiles_matched);
        cJSON *rt = cJSON_AddObjectToObject(o, "ratio_test");
        cJSON_AddNumberToObject(rt, "d1", r4(b->d_al));
        if (isfinite(r->d2)) cJSON_AddNumberToObject(rt, "d2", r4(r->d2));
        else cJSON_AddNullToObject(rt, "d2");
        if (r->second_row >= 0) cJSON_AddNumberToObject(rt, "second_ref_id", (double)refs->ids[r->second_row]);
        else cJSON_AddNullToObject(rt, "second_ref_id");
        cJSON_AddNumberToObject(rt, "ratio", r4(r->ratio));
        cJSON_AddBoolToObject(rt, "pass", r->ratio_pass);
        if (b->pdq >= 0) {
            cJSON *h = cJSON_AddObjectToObject(o, "hashes");
            cJSON_AddNumberToObject(h, "pdq", b->pdq);
            cJSON_AddNumberToObject(h, "pdq_quality_generation", r->gen_pdq_quality);
            cJSON_AddNumberToObject(h, "pdq_quality_ref", b->pdq_q_ref);
            cJSON_AddNumberToObject(h, "phash", b->phash);
            cJSON_AddNumberToObject(h, "dhash", b->dhash);
        } else {
            cJSON_AddNullToObject(o, "hashes");
        }
        if (b->emb_cos > -2) {
            cJSON *e = cJSON_AddObjectToObject(o, "embedding");
            cJSON_AddStringToObject(e, "column", emb_name ? emb_name : "");
            cJSON_AddNumberToObject(e, "cosine", r4(b->emb_cos));
            cJSON_AddNumberToObject(e, "raw_cosine", r4(b->emb_cos + x->emb_bias));
            cJSON_AddNumberToObject(e, "background_bias", r4(x->emb_bias));
            if (bg->kind) {
                cJSON *bo = cJSON_AddObjectToObject(e, "background");
                cJSON_AddStringToObject(bo, "source", bg->kind);
                cJSON_AddStringToObject(bo, "path", bg->path ? bg->path : "");
                cJSON_AddNumberToObject(bo, "images", (double)bg->n);
            } else {
                cJSON_AddNullToObject(e, "background");
            }
        } else {
            cJSON_AddNullToObject(o, "embedding");
        }
    } else {
        cJSON_AddNullToObject(o, "ref");
    }
    if (x->has_whitebox) cJSON_AddNumberToObject(o, "whitebox", x->whitebox);
    else cJSON_AddNullToObject(o, "whitebox");
    if (x->audited) {
        const cs_an_completion *c = &x->comp;
        cJSON *j = cJSON_AddObjectToObject(o, "completion");
        cJSON_AddNumberToObject(j, "original_ref_id", (double)refs->ids[c->orig_row]);
        cJSON *rc = cJSON_AddArrayToObject(j, "rect");
        for (int k = 0; k < 4; k++) cJSON_AddItemToArray(rc, cJSON_CreateNumber(c->rect[k]));
        if (x->task->mask) cJSON_AddStringToObject(j, "mask", x->task->mask);
        else cJSON_AddNullToObject(j, "mask");
        char map[CS_THUMB_SIZE * CS_THUMB_SIZE / 4 + 1]; /* the audited region itself: the report draws it */
        if (x->task->withheld) cs_an_region_hex(x->task->withheld, map), cJSON_AddStringToObject(j, "withheld_map", map);
        cJSON_AddNumberToObject(j, "withheld_px", c->n_withheld);
        cJSON_AddNumberToObject(j, "tiles", c->n_tiles);
        cJSON_AddNumberToObject(j, "d_withheld", isfinite(c->d_orig) ? r4(c->d_orig) : -1);
        if (c->other_row >= 0) {
            cJSON_AddNumberToObject(j, "nearest_other_ref_id", (double)refs->ids[c->other_row]);
            cJSON_AddNumberToObject(j, "d_other", r4(c->d_other));
        } else {
            cJSON_AddNullToObject(j, "nearest_other_ref_id");
            cJSON_AddNullToObject(j, "d_other");
        }
        cJSON_AddBoolToObject(j, "restored", c->restored);
    } else {
        cJSON_AddNullToObject(o, "completion");
        if (x->task && x->task->error) cJSON_AddStringToObject(o, "completion_error", x->task->error);
    }
    if (x->clique >= 0) {
        cJSON *c = cJSON_AddObjectToObject(o, "clique");
        cJSON_AddNumberToObject(c, "size", (double)x->clique_size);
        cJSON_AddNumberToObject(c, "seed_generation_id", (double)x->clique_seed);
    } else {
        cJSON_AddNullToObject(o, "clique");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

typedef struct {
    sqlite3_stmt *del_m, *del_f, *ins_m, *ins_f;
} writers;

static int write_list(cs_store *s, writers *w, int64_t gen, const char *desc, const cs_an_hit *h, int n,
                      const cs_an_refs *refs, cs_err *err) {
    for (int k = 0; k < n; k++) {
        if (h[k].row < 0) continue;
        sqlite3_reset(w->ins_m);
        sqlite3_bind_int64(w->ins_m, 1, gen);
        sqlite3_bind_int64(w->ins_m, 2, refs->ids[h[k].row]);
        sqlite3_bind_text(w->ins_m, 3, desc, -1, SQLITE_STATIC);
        sqlite3_bind_double(w->ins_m, 4, h[k].score);
        sqlite3_bind_int(w->ins_m, 5, k);
        if (sqlite3_step(w->ins_m) != SQLITE_DONE) return cs_store_fail(s, err, "writing matches");
    }
    return 0;
}

/* ---- per-prompt work ---- */

typedef struct {
    int64_t prompt_id;
    int64_t n, count[4];
    double min_tl2, max_cos, wb_sum;
    int64_t wb_n;
    int64_t largest_clique;
} psum;

static int cmp_prompt(const void *a, const void *b) {
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    if (x->prompt_id != y->prompt_id) return x->prompt_id < y->prompt_id ? -1 : 1;
    return x->gen_id < y->gen_id ? -1 : x->gen_id > y->gen_id;
}

/* Cliques per prompt among the decoded generations; fills item.clique*. */
static int find_cliques(item **by_prompt, int64_t n, const cs_an_query *q, const item *base,
                        const cs_tl2_cfg *cfg, float delta, cs_err *err) {
    const int D = cs_tl2_dim(cfg), T = cs_tl2_tiles(cfg);
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b < n && by_prompt[b]->prompt_id == by_prompt[a]->prompt_id) b++;
        int64_t m = b - a;
        if (m >= 2) {
            float *p = malloc(sizeof(float) * D * m), *n2 = malloc(sizeof(float) * T * m);
            if (!p || !n2) {
                free(p);
                free(n2);
                return cs_fail(err, CS_ENOMEM, "cliques: out of memory");
            }
            for (int64_t j = 0; j < m; j++)
                cs_tl2_prepare(p + j * D, n2 + j * T, q[by_prompt[a + j] - base].thumb, cfg);
            cs_cliques c;
            int rc = cs_cliques_find(&c, p, n2, m, cfg, delta, err);
            free(p);
            free(n2);
            if (rc) return -1;
            for (int64_t j = 0; j < m; j++) {
                item *x = by_prompt[a + j];
                int64_t g = c.clique_of[j];
                if (g < 0) continue;
                x->clique = g;
                x->clique_size = c.start[g + 1] - c.start[g];
                x->clique_seed = by_prompt[a + c.members[c.start[g]]]->gen_id;
            }
            cs_cliques_free(&c);
        }
        a = b;
    }
    return 0;
}

static int64_t row_of_id(const cs_an_refs *r, int64_t id) {
    int64_t lo = 0, hi = r->n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (r->ids[mid] == id) return mid;
        if (r->ids[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Embeds every readable image under dir with e: *out [*n][dim], caller frees. */
static int embed_background(cs_embedder *e, const char *dir, int threads, float **out, int64_t *n,
                            cs_err *err) {
    items bg = {0};
    char *dirs[1] = {(char *)dir};
    *out = NULL;
    *n = 0;
    if (list_images(dirs, 1, &bg, err)) {
        items_free(&bg);
        return -1;
    }
    const int dim = cs_embedder_dim(e);
    float *v = malloc(sizeof(float) * (size_t)(bg.n ? bg.n : 1) * dim);
    cs_image *imgs = calloc(CHUNK, sizeof(cs_image));
    cs_an_query *q = malloc(sizeof(cs_an_query) * CHUNK);
    int rc = -1;
    if (!v || !imgs || !q) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    for (int64_t off = 0; off < bg.n; off += CHUNK) {
        int64_t m = bg.n - off < CHUNK ? bg.n - off : CHUNK;
        dec_ctx dc = {.it = &bg, .off = off, .q = q, .qoff = off, .want_hashes = 0, .imgs = imgs};
        cs_parallel_for(threads, m, decode_one, &dc);
        cs_image batch[CHUNK];
        int nb = 0;
        for (int64_t j = 0; j < m; j++)
            if (bg.v[off + j].ok) batch[nb++] = imgs[j];
        int bad = nb > 0 && cs_embedder_describe(e, batch, nb, v + *n * dim, err);
        for (int64_t j = 0; j < m; j++) cs_image_free(&imgs[j]);
        if (bad) goto out;
        *n += nb;
    }
    if (*n == 0) {
        cs_fail(err, CS_ENOTFOUND, "%s: no readable images for the background set", dir);
        goto out;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    free(v);
    free(imgs);
    free(q);
    items_free(&bg);
    return rc;
}

int cs_analyze_run(cs_store *s, const cs_analyze_opts *o, cs_analyze_summary *sum, cs_err *err) {
    memset(sum, 0, sizeof *sum);
    sum->worst = -1;
    const cs_an_settings *set = &o->set;
    const int threads = o->threads > 0 ? o->threads : cs_threads();
    items it = {0};
    an_tasks tasks = {0};
    cs_ref_thumbs th = {0};
    cs_hash_db hdb = {0};
    cs_an_refs refs = {0};
    holds h = {0};
    cs_embedder *emb = NULL;
    const char *emb_name = NULL;
    cs_an_query *q = NULL;
    cs_an_result *res = NULL;
    item **byp = NULL, **pending = NULL;
    psum *ps = NULL;
    writers w = {0};
    sqlite3_stmt *st = NULL;
    char *settings_json = NULL;
    float *bgv = NULL; /* --background folder embeddings [nbg][dim] */
    const float *bgp = NULL; /* the set used: bgv, or the stored set's mapping */
    cs_vecstore bgvs;  /* index background: the stored set, when used */
    int bgvs_open = 0;
    bg_info bg = {0};
    int64_t nbg = 0;
    int rc = -1;

    /* 1. the index */
    if (cs_refs_load_thumbs(s, &th, err)) goto done;
    if (cs_hash_db_load(s, &hdb, err)) goto done;
    if (cs_embed_columns(s, &h.emb, &h.n_emb, err)) goto done;
    h.tl2 = th.n > 0;
    h.hashes = hdb.n > 0;
    if (check_descriptors(o->descriptors, &h, cs_store_path(s), err)) goto done;
    /* the mapped thumbnails are used in place; malloc'd ones are taken */
    if (th.map ? cs_an_refs_build_borrow(&refs, th.n, th.ids, th.rgb, set, err)
               : cs_an_refs_build_take(&refs, th.n, th.ids, &th.rgb, set, err))
        goto done;
    int use_hashes = h.hashes && want(o->descriptors, "pdq");
    if (use_hashes) {
        cs_hashes *hh = malloc(sizeof(cs_hashes) * (hdb.n ? hdb.n : 1));
        if (!hh) {
            cs_fail(err, CS_ENOMEM, "analyze: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < hdb.n; i++) {
            memcpy(hh[i].pdq, hdb.pdq + i * 4, 32);
            hh[i].pdq_quality = hdb.pdq_quality[i];
            hh[i].phash = hdb.phash[i];
            hh[i].dhash = hdb.dhash[i];
            hh[i].ahash = hdb.ahash[i];
        }
        int r2 = cs_an_refs_set_hashes(&refs, hdb.ref_ids, hh, hdb.n, err);
        free(hh);
        if (r2) goto done;
    }
    if (o->embedder) {
        if (cs_embedder_open(&emb, s, o->embedder, err)) goto done;
    } else {
        for (int i = 0; i < h.n_emb; i++)
            if (!strcmp(h.emb[i], "tiny") && want(o->descriptors, "tiny")) {
                if (cs_embedder_open(&emb, s, "tiny", err)) goto done;
                break;
            }
    }
    if (emb) emb_name = cs_embedder_column(emb);
    if (o->background) {
        if (!emb) {
            cs_fail(err, CS_EUSAGE, "%s: a background set needs an embedding column in the index "
                    "(copyscope index add --embedder tiny)", o->background);
            goto done;
        }
        if (embed_background(emb, o->background, threads, &bgv, &nbg, err)) goto done;
        bgp = bgv;
        bg = (bg_info){"folder", o->background, nbg};
    } else if (emb) { /* the column's stored set (copyscope index background), when there is one */
        int have = cs_bg_open(&bgvs, s, emb, err);
        if (have < 0) goto done;
        if (have) {
            bgvs_open = 1;
            bgp = bgvs.vecs;
            nbg = bgvs.n;
            bg = (bg_info){nbg > 0 ? "stored" : NULL, bgvs.path, nbg};
        }
    }
    {
        size_t l = 0;
        char *d = sum->descriptors;
        if (th.n > 0) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "tl2,layout,");
        if (use_hashes) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "pdq,phash,dhash,");
        if (emb_name) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "%s,", emb_name);
        if (l) d[l - 1] = 0;
    }
    sum->n_refs = th.n;

    /* 2. the generations */
    if (o->run_id > 0) {
        if (load_run(s, o->run_id, &it, err)) goto done;
        if (load_tasks(s, o->run_id, &it, &tasks, &th, err)) goto done;
        if (it.n == 0) {
            cs_fail(err, CS_ENOTFOUND, "run %lld: no generations to analyse", (long long)o->run_id);
            goto done;
        }
        if (o->only_new) {
            if (keep_old(s, o->run_id, &it, emb_name, err)) goto done;
            sum->run_id = o->run_id;
            for (int64_t i = 0; i < it.n; i++) sum->n_kept += it.v[i].old;
            if (sum->n_kept == it.n) { /* nothing new */
                rc = 0;
                goto done;
            }
            drop_untouched_prompts(&it);
        }
    } else {
        if (list_images(o->image_dirs, o->n_dirs, &it, err)) goto done;
        if (it.n == 0) {
            cs_fail(err, CS_ENOTFOUND, "%s: no files to analyse", o->n_dirs ? o->image_dirs[0] : "(none)");
            goto done;
        }
    }
    q = calloc((size_t)it.n, sizeof *q);
    res = calloc((size_t)it.n, sizeof *res);
    if (!q || !res) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld generations", (long long)it.n);
        goto done;
    }
    {
        cs_progress *prog = o->progress ? cs_progress_start("decode", it.n, "img") : NULL;
        int edim = emb ? cs_embedder_dim(emb) : 0;
        cs_image *imgs = emb ? calloc(CHUNK, sizeof(cs_image)) : NULL;
        float *ev = emb ? malloc(sizeof(float) * CHUNK * edim) : NULL;
        int64_t *eid = emb ? malloc(sizeof(int64_t) * CHUNK * CS_AN_K) : NULL;
        float *esc = emb ? malloc(sizeof(float) * CHUNK * CS_AN_K) : NULL;
        if (emb && (!imgs || !ev || !eid || !esc)) {
            free(imgs); free(ev); free(eid); free(esc);
            cs_progress_end(prog);
            cs_fail(err, CS_ENOMEM, "analyze: out of memory");
            goto done;
        }
        int ek = (int)set->cand_k < CS_AN_K ? (int)set->cand_k : CS_AN_K;
        int fail = 0;
        for (int64_t off = 0; off < it.n && !fail; off += CHUNK) {
            int64_t n = it.n - off < CHUNK ? it.n - off : CHUNK;
            dec_ctx dc = {.it = &it, .off = off, .q = q, .want_hashes = use_hashes, .imgs = imgs,
                          .read_params = o->run_id <= 0, .prog = prog};
            for (int64_t j = 0; j < n; j++) it.v[off + j].clique = -1;
            cs_parallel_for(threads, n, decode_one, &dc);
            if (emb) {
                /* embed the decoded ones, search the column */
                cs_image batch[CHUNK];
                int64_t idx[CHUNK];
                int nb = 0;
                for (int64_t j = 0; j < n; j++)
                    if (it.v[off + j].ok && !it.v[off + j].old) {
                        batch[nb] = imgs[j];
                        idx[nb++] = off + j;
                    }
                if (nb > 0 && (cs_embedder_describe(emb, batch, nb, ev, err) ||
                               cs_embed_search(s, emb_name, ev, nb, edim, ek, eid, esc, err)))
                    fail = 1;
                float bias[CHUNK];
                memset(bias, 0, sizeof bias);
                if (!fail && nbg > 0 && nb > 0 &&
                    cs_knn_background_bias(bgp, nbg, edim, ev, nb, threads, bias, err))
                    fail = 1;
                for (int b = 0; b < nb && !fail; b++) {
                    cs_an_query *qq = &q[idx[b]];
                    it.v[idx[b]].emb_bias = (float)set->sscd_beta * bias[b];
                    for (int k = 0; k < ek; k++) {
                        int64_t row = eid[b * ek + k] >= 0 ? row_of_id(&refs, eid[b * ek + k]) : -1;
                        if (row < 0) continue;
                        qq->emb_row[qq->n_emb] = (int32_t)row;
                        qq->emb_cos[qq->n_emb++] = esc[b * ek + k] - it.v[idx[b]].emb_bias;
                    }
                }
                for (int64_t j = 0; j < n; j++) cs_image_free(&imgs[j]);
            }
        }
        free(imgs); free(ev); free(eid); free(esc);
        cs_progress_end(prog);
        if (fail) goto done;
    }
    {
        const item *bad = NULL;
        for (int64_t i = 0; i < it.n; i++) {
            if (it.v[i].old) continue;
            if (it.v[i].ok) sum->n_generations++;
            else {
                sum->n_skipped++;
                if (!bad) bad = &it.v[i];
            }
        }
        if (sum->n_generations == 0 && !(o->only_new && sum->n_kept > 0)) {
            cs_fail(err, CS_ENOTFOUND, "%s: no generations to analyse (%lld files could not be read, e.g. %s: %s)",
                    o->run_id > 0 ? "run" : o->image_dirs[0], (long long)sum->n_skipped, bad ? bad->path : "?",
                    bad && bad->error ? bad->error : "?");
            goto done;
        }
    }
    if (o->run_id <= 0 && record_images_run(s, &it, o->image_dirs, o->n_dirs, &sum->run_id, err)) goto done;
    if (o->run_id > 0) sum->run_id = o->run_id;

    /* 3. the analysis row and skipped files */
    settings_json = cs_an_settings_json(set);
    if (cs_store_begin(s, err)) goto done;
    char mark[96]; /* earlier unfinished analyses of the run were killed: say so (schema 0019) */
    snprintf(mark, sizeof mark, "UPDATE analyses SET interrupted = 1 WHERE run_id = %lld AND finished IS NULL",
             (long long)sum->run_id);
    if (cs_store_exec(s, mark, err)) { cs_store_rollback(s); goto done; }
    if (cs_store_prepare(s, &st, "INSERT INTO analyses(run_id, settings_json, descriptors, n_refs) VALUES(?,?,?,?)", err)) {
        cs_store_rollback(s);
        goto done;
    }
    sqlite3_bind_int64(st, 1, sum->run_id);
    sqlite3_bind_text(st, 2, settings_json ? settings_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sum->descriptors, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, sum->n_refs);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(s, err, "recording the analysis");
        cs_store_rollback(s);
        goto done;
    }
    sum->analysis_id = sqlite3_last_insert_rowid(cs_store_db(s));
    sqlite3_finalize(st);
    st = NULL;
    if (cs_store_prepare(s, &st, "INSERT INTO analysis_skipped(analysis_id, path, error) VALUES(?,?,?)", err)) {
        cs_store_rollback(s);
        goto done;
    }
    for (int64_t i = 0; i < it.n; i++) {
        if (it.v[i].ok || it.v[i].old) continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sum->analysis_id);
        sqlite3_bind_text(st, 2, it.v[i].path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, it.v[i].error ? it.v[i].error : "cannot decode", -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            cs_store_fail(s, err, "recording a skipped file");
            cs_store_rollback(s);
            goto done;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (cs_store_commit(s, err)) goto done;

    /* 4. cliques per prompt (over the decoded generations) */
    byp = malloc(sizeof(item *) * (size_t)it.n);
    if (!byp) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        goto done;
    }
    int64_t nok = 0;
    for (int64_t i = 0; i < it.n; i++)
        if (it.v[i].ok) byp[nok++] = &it.v[i];
    qsort(byp, (size_t)nok, sizeof *byp, cmp_prompt);
    if (find_cliques(byp, nok, q, it.v, &refs.cfg, (float)set->clique_delta, err)) goto done;
    /* the generations to match: the decoded new ones, in prompt order */
    pending = malloc(sizeof(item *) * (size_t)(nok ? nok : 1));
    if (!pending) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        goto done;
    }
    int64_t npending = 0;
    for (int64_t j = 0; j < nok; j++)
        if (!byp[j]->old) {
            byp[j]->res_i = npending;
            pending[npending++] = byp[j];
        }

    /* 5. match and write, chunk by chunk */
    if (cs_store_prepare(s, &w.del_m, "DELETE FROM matches WHERE generation_id = ?", err) ||
        cs_store_prepare(s, &w.del_f, "DELETE FROM findings WHERE generation_id = ?", err) ||
        cs_store_prepare(s, &w.ins_m,
                         "INSERT INTO matches(generation_id, ref_id, descriptor, score, rank) VALUES(?,?,?,?,?)", err) ||
        cs_store_prepare(s, &w.ins_f,
                         "INSERT INTO findings(generation_id, ref_id, verdict, severity, evidence_json) "
                         "VALUES(?,?,?,?,?)", err))
        goto done;
    {
        cs_progress *prog = o->progress ? cs_progress_start("analyze", npending, "img") : NULL;
        cs_an_query *cq = malloc(sizeof(cs_an_query) * CHUNK);
        item *cx[CHUNK];
        int fail = !cq;
        if (!cq) cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        for (int64_t off = 0; off < npending && !fail; off += CHUNK) {
            int64_t n = npending - off < CHUNK ? npending - off : CHUNK;
            for (int64_t j = 0; j < n; j++) {
                cx[j] = pending[off + j];
                cq[j] = q[cx[j] - it.v];
            }
            cs_an_result *cr = res + off;
            if (cs_an_match_batch(&refs, cq, n, set, threads, cr, err)) { fail = 1; break; }
            /* completion generations: the verdict is about the filled region */
            for (int64_t j = 0; j < n; j++) {
                item *x = cx[j];
                const an_task *t = x->task;
                if (!t || t->error) continue;
                uint8_t rw[CS_THUMB_SIZE * CS_THUMB_SIZE];
                if (!t->withheld)
                    cs_an_region_from_rect(rw, t->rect, t->ref_w > 0 ? t->ref_w : x->img_w,
                                           t->ref_h > 0 ? t->ref_h : x->img_h);
                cs_an_completion_audit(&x->comp, &refs, cq[j].thumb, t->orig_row, t->withheld ? t->withheld : rw,
                                       set);
                x->audited = 1;
                cr[j].verdict = x->comp.verdict;
                float d = x->comp.verdict == CS_V_PARTIAL ? x->comp.d_other : x->comp.d_orig;
                cr[j].severity = (float)x->comp.verdict + 0.99f * (isfinite(d) && d < 1 ? 1 - d : 0);
            }
            if (cs_store_begin(s, err)) { fail = 1; break; }
            for (int64_t j = 0; j < n && !fail; j++) {
                const cs_an_result *r = &cr[j];
                int64_t gen = cx[j]->gen_id;
                sqlite3_reset(w.del_m);
                sqlite3_bind_int64(w.del_m, 1, gen);
                sqlite3_reset(w.del_f);
                sqlite3_bind_int64(w.del_f, 1, gen);
                if (sqlite3_step(w.del_m) != SQLITE_DONE || sqlite3_step(w.del_f) != SQLITE_DONE) {
                    cs_store_fail(s, err, "replacing old matches");
                    fail = 1;
                    break;
                }
                if (write_list(s, &w, gen, "tl2", r->tl2, r->n_tl2, &refs, err) ||
                    write_list(s, &w, gen, "layout", r->lay, r->n_lay, &refs, err) ||
                    write_list(s, &w, gen, "pdq", r->pdq, r->n_pdq, &refs, err) ||
                    write_list(s, &w, gen, "phash", r->phash, r->n_phash, &refs, err) ||
                    write_list(s, &w, gen, "dhash", r->dhash, r->n_dhash, &refs, err) ||
                    write_list(s, &w, gen, emb_name ? emb_name : "embedding", r->emb, r->n_emb, &refs, err)) {
                    fail = 1;
                    break;
                }
                char *ev = evidence_json(r, &refs, &th, cx[j], sum->analysis_id, emb_name, r->verdict,
                                         r->severity, &bg);
                sqlite3_reset(w.ins_f);
                sqlite3_bind_int64(w.ins_f, 1, gen);
                int64_t fref = r->has_best ? refs.ids[r->best.row] : -1;
                if (cx[j]->audited)
                    fref = refs.ids[cx[j]->comp.verdict == CS_V_PARTIAL && cx[j]->comp.other_row >= 0
                                        ? cx[j]->comp.other_row : cx[j]->comp.orig_row];
                if (fref >= 0) sqlite3_bind_int64(w.ins_f, 2, fref);
                else sqlite3_bind_null(w.ins_f, 2);
                sqlite3_bind_text(w.ins_f, 3, cs_verdict_name(r->verdict), -1, SQLITE_STATIC);
                sqlite3_bind_double(w.ins_f, 4, r->severity);
                sqlite3_bind_text(w.ins_f, 5, ev ? ev : "{}", -1, SQLITE_TRANSIENT);
                free(ev);
                if (sqlite3_step(w.ins_f) != SQLITE_DONE) {
                    cs_store_fail(s, err, "writing findings");
                    fail = 1;
                }
            }
            if (fail) {
                cs_store_rollback(s);
                break;
            }
            if (cs_store_commit(s, err)) { fail = 1; break; }
            cs_progress_add(prog, n);
        }
        free(cq);
        cs_progress_end(prog);
        if (fail) goto done;
    }

    /* 6. per-prompt summary, over every generation of the prompt: the
     * decoded ones and (only_new) the kept ones that could not be decoded */
    int64_t nsum = nok;
    for (int64_t i = 0; i < it.n; i++)
        if (it.v[i].old && !it.v[i].ok) byp[nsum++] = &it.v[i];
    qsort(byp, (size_t)nsum, sizeof *byp, cmp_prompt);
    ps = calloc((size_t)(nsum ? nsum : 1), sizeof *ps);
    if (!ps) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        goto done;
    }
    int64_t np = 0;
    for (int64_t j = 0; j < nsum; j++) {
        const item *x = byp[j];
        if (np == 0 || ps[np - 1].prompt_id != x->prompt_id) {
            ps[np].prompt_id = x->prompt_id;
            ps[np].min_tl2 = INFINITY;
            ps[np].max_cos = -2;
            np++;
        }
        psum *p = &ps[np - 1];
        p->n++;
        if (x->old) {
            p->count[x->old_verdict]++;
            if (x->old_dal < p->min_tl2) p->min_tl2 = x->old_dal;
            if (x->old_cos > p->max_cos) p->max_cos = x->old_cos;
        } else {
            const cs_an_result *r = &res[x->res_i];
            p->count[r->verdict]++;
            sum->count[r->verdict]++;
            if (r->verdict > sum->worst) sum->worst = r->verdict;
            if (r->has_best && r->best.d_al < p->min_tl2) p->min_tl2 = r->best.d_al;
            for (int k = 0; k < r->n_emb; k++)
                if (r->emb[k].score > p->max_cos) p->max_cos = r->emb[k].score;
        }
        if (x->has_whitebox) {
            p->wb_sum += x->whitebox;
            p->wb_n++;
        }
        if (x->clique >= 0 && x->clique_size > p->largest_clique) p->largest_clique = x->clique_size;
    }
    sum->n_prompts = np;
    if (cs_store_begin(s, err)) goto done;
    if (cs_store_prepare(s, &st,
                         "INSERT OR REPLACE INTO prompt_summary(run_id, prompt_id, analysis_id, n_generations, "
                         "n_copy, n_near_copy, n_partial, n_novel, memorisation_rate, max_similarity, min_tl2, "
                         "max_embed_cos, mean_whitebox, largest_clique, clique_flag) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", err)) {
        cs_store_rollback(s);
        goto done;
    }
    for (int64_t j = 0; j < np; j++) {
        const psum *p = &ps[j];
        if (p->prompt_id == 0) continue; /* generations without a prompt row */
        int flag = p->largest_clique >= set->clique_k;
        sum->n_clique_prompts += flag;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sum->run_id);
        sqlite3_bind_int64(st, 2, p->prompt_id);
        sqlite3_bind_int64(st, 3, sum->analysis_id);
        sqlite3_bind_int64(st, 4, p->n);
        sqlite3_bind_int64(st, 5, p->count[CS_V_COPY]);
        sqlite3_bind_int64(st, 6, p->count[CS_V_NEAR]);
        sqlite3_bind_int64(st, 7, p->count[CS_V_PARTIAL]);
        sqlite3_bind_int64(st, 8, p->count[CS_V_NOVEL]);
        sqlite3_bind_double(st, 9, (double)(p->count[CS_V_COPY] + p->count[CS_V_NEAR]) / (double)p->n);
        if (isfinite(p->min_tl2)) {
            sqlite3_bind_double(st, 10, 1.0 - p->min_tl2 < 0 ? 0 : 1.0 - p->min_tl2);
            sqlite3_bind_double(st, 11, p->min_tl2);
        } else {
            sqlite3_bind_null(st, 10);
            sqlite3_bind_null(st, 11);
        }
        if (p->max_cos > -2) sqlite3_bind_double(st, 12, p->max_cos);
        else sqlite3_bind_null(st, 12);
        if (p->wb_n) sqlite3_bind_double(st, 13, p->wb_sum / (double)p->wb_n);
        else sqlite3_bind_null(st, 13);
        sqlite3_bind_int64(st, 14, p->largest_clique);
        sqlite3_bind_int(st, 15, flag);
        if (sqlite3_step(st) != SQLITE_DONE) {
            cs_store_fail(s, err, "writing the prompt summary");
            cs_store_rollback(s);
            goto done;
        }
    }
    sqlite3_finalize(st);
    if (cs_store_prepare(s, &st,
                         "UPDATE analyses SET finished = datetime('now'), n_generations = ?, n_skipped = ? "
                         "WHERE id = ?", err)) {
        cs_store_rollback(s);
        goto done;
    }
    sqlite3_bind_int64(st, 1, sum->n_generations);
    sqlite3_bind_int64(st, 2, sum->n_skipped);
    sqlite3_bind_int64(st, 3, sum->analysis_id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(s, err, "finishing the analysis");
        cs_store_rollback(s);
        goto done;
    }
    if (cs_store_commit(s, err)) goto done;
    rc = 0;
done:
    sqlite3_finalize(st);
    sqlite3_finalize(w.del_m);
    sqlite3_finalize(w.del_f);
    sqlite3_finalize(w.ins_m);
    sqlite3_finalize(w.ins_f);
    free(settings_json);
    free(ps);
    free(byp);
    free(pending);
    free(q);
    free(res);
    items_free(&it);
    tasks_free(&tasks);
    free(bgv);
    if (bgvs_open) cs_vs_close(&bgvs);
    cs_embedder_free(emb);
    for (int i = 0; i < h.n_emb; i++) free(h.emb[i]);
    free(h.emb);
    cs_an_refs_free(&refs);
    cs_hash_db_free(&hdb);
    cs_ref_thumbs_free(&th);
    return rc;
}
