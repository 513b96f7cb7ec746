/* memo_model.c — the store queries of the memorisation section (memo.h):
 * the training images' references and the run's generations with their
 * white-box signals and copy findings. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reports/memo.h"
#include "reports/report_model.h"

int cs_memo_load_refs(cs_memo *m, cs_store *s, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, COALESCE(dup_of, id) FROM refs WHERE source = ?1 OR "
                         "substr(source, -length(?1) - 1) = '/' || ?1 ORDER BY id LIMIT 1",
                         err))
        return -1;
    for (int i = 0; i < m->n_img; i++) {
        cs_memo_image *im = &m->img[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, im->file, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            im->ref_raw = sqlite3_column_int64(st, 0);
            im->ref_id = sqlite3_column_int64(st, 1);
        } else if (rc != SQLITE_DONE) {
            sqlite3_finalize(st);
            return cs_store_fail(s, err, "reading the training images' references");
        }
    }
    sqlite3_finalize(st);
    for (int i = 0; i < m->n_img; i++) {
        cs_memo_image *im = &m->img[i];
        if (im->ref_id && cs_rmodel_ref_thumb(s, im->ref_id, &im->thumb, &im->tw, &im->th, err)) return -1;
        if (!im->thumb && im->ref_raw != im->ref_id &&
            cs_rmodel_ref_thumb(s, im->ref_raw, &im->thumb, &im->tw, &im->th, err))
            return -1;
    }
    return 0;
}

static int cmp_gen_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = ((const cs_memo_gen *)b)->id;
    return x < y ? -1 : x > y;
}

/* eps_diff_norm[0] and the mean of the array, from generations.whitebox_json. */
static void whitebox_steps(const char *json, double *first, double *mean) {
    *first = *mean = NAN;
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "eps_diff_norm") : NULL;
    double sum = 0;
    int n = 0;
    for (int i = 0; cJSON_IsArray(a) && i < cJSON_GetArraySize(a); i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e)) continue;
        if (i == 0) *first = e->valuedouble;
        sum += e->valuedouble;
        n++;
    }
    if (n) *mean = sum / n;
    cJSON_Delete(o);
}

int cs_memo_load_gens(cs_memo *m, cs_store *s, int64_t run_id, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT g.id, g.prompt_id, p.text, g.path, g.whitebox_json FROM generations g "
                         "JOIN prompts p ON p.id = g.prompt_id WHERE g.run_id = ? AND p.kind = 'txt2img' "
                         "ORDER BY g.id",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m->n_g == cap) {
            cap = cap ? 2 * cap : 256;
            cs_memo_gen *ng = realloc(m->g, sizeof *ng * (size_t)cap);
            if (!ng) {
                sqlite3_finalize(st);
                return cs_fail(err, CS_ENOMEM, "report: out of memory");
            }
            m->g = ng;
        }
        cs_memo_gen *g = &m->g[m->n_g++];
        memset(g, 0, sizeof *g);
        g->id = sqlite3_column_int64(st, 0);
        g->prompt_id = sqlite3_column_int64(st, 1);
        const char *t = (const char *)sqlite3_column_text(st, 2), *p = (const char *)sqlite3_column_text(st, 3);
        g->prompt = strdup(t ? t : "");
        g->path = strdup(p ? p : "");
        g->own = g->verdict_img = g->flag_img = g->nearest = g->gt_img = g->gt_tl2_img[0] = g->gt_tl2_img[1] = g->gt_ratio_img[0] = g->gt_ratio_img[1] = -1;
        g->nearest_db = g->own_db = NAN;
        whitebox_steps((const char *)sqlite3_column_text(st, 4), &g->wb_first, &g->wb_mean);
        if (!g->prompt || !g->path) {
            sqlite3_finalize(st);
            return cs_fail(err, CS_ENOMEM, "report: out of memory");
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading the run's generations");

    if (cs_store_prepare(s, &st,
                         "SELECT f.generation_id, f.ref_id, f.verdict FROM findings f JOIN generations g ON "
                         "g.id = f.generation_id WHERE g.run_id = ? AND f.verdict IN ('copy', 'near-copy', 'partial') "
                         "ORDER BY f.severity DESC, f.id",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t gid = sqlite3_column_int64(st, 0), ref = sqlite3_column_int64(st, 1);
        const char *v = (const char *)sqlite3_column_text(st, 2);
        int whole = v && strcmp(v, "partial"); /* copy or near-copy */
        cs_memo_gen *g = m->n_g ? bsearch(&gid, m->g, (size_t)m->n_g, sizeof *m->g, cmp_gen_id) : NULL;
        if (!g) continue;
        g->verdict_any |= whole;
        for (int i = 0; ref && i < m->n_img; i++) {
            if (ref != m->img[i].ref_id && ref != m->img[i].ref_raw) continue;
            if (whole && (g->verdict_img < 0 || i == g->own)) g->verdict_img = i; /* own image first */
            if (g->flag_img < 0 || i == g->own) g->flag_img = i;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading the run's findings");
    return 0;
}
