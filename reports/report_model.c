/* report_model.c — loads a run's report data from the store (report_model.h). With
 * run_summary.c, the SQL of reports/ (reads only); every query is a prepared statement. */
#include "reports/report_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const cs_rv_names[CS_RV_N] = {"copy", "near-copy", "partial", "novel"};

int cs_rv_level(const char *v) {
    for (int i = 0; v && i < CS_RV_N; i++)
        if (!strcmp(v, cs_rv_names[i])) return i;
    return CS_RV_N;
}

int cs_rtext_level(const char *v) {
    if (v && !strcmp(v, "verbatim")) return 0;
    if (v && !strcmp(v, "near-verbatim")) return 1;
    return 2;
}

#define MAX_DESC 32

static const char *col(cs_rmodel *m, sqlite3_stmt *st, int i) {
    return cs_arena_strdup(&m->arena, (const char *)sqlite3_column_text(st, i));
}

static double col_real(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static int table_exists(cs_store *s, const char *name) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", NULL)) return 0;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

static int step_done(cs_store *s, sqlite3_stmt *st, int rc, cs_err *err, const char *what) {
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, what);
    return 0;
}

/* ---- sorting ---- */

static int cmp_finding(const void *a, const void *b) {
    const cs_rfinding *x = a, *y = b;
    if (x->severity != y->severity) return x->severity > y->severity ? -1 : 1;
    int lx = cs_rv_level(x->verdict), ly = cs_rv_level(y->verdict);
    if (lx != ly) return lx < ly ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct {
    int64_t key;
    int64_t idx;
} keyidx;

static int cmp_keyidx(const void *a, const void *b) {
    const keyidx *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* First position of key in a sorted keyidx array, or n. */
static int64_t lower_bound(const keyidx *v, int64_t n, int64_t key) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid].key < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int cmp_text(const void *a, const void *b) {
    const cs_rtext *x = a, *y = b;
    int lx = cs_rtext_level(x->verdict), ly = cs_rtext_level(y->verdict);
    if (lx != ly) return lx < ly ? -1 : 1;
    if (x->longest_chars != y->longest_chars) return x->longest_chars > y->longest_chars ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---- the run ---- */

static int pick_run(cs_rmodel *m, cs_store *s, const cs_rmodel_opts *o, cs_err *err) {
    int64_t id = o->run_id;
    if (id > 0) {
        int64_t yes;
        if (cs_store_query_i64(s, "SELECT id FROM runs WHERE id = ?", id, 0, &yes, err)) return -1;
        if (!yes) return cs_fail(err, CS_ENOTFOUND, "run %lld: no such run", (long long)id);
    } else {
        if (cs_store_query_i64(s,
                      "SELECT g.run_id FROM findings f JOIN generations g ON g.id = f.generation_id "
                      "ORDER BY g.run_id DESC LIMIT 1", 0, 0, &id, err) ||
            (!id && cs_store_query_i64(s, "SELECT MAX(id) FROM runs", 0, 0, &id, err)))
            return -1;
    }
    if (!id) return 0;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT suite, started, finished, command, model, model_sha256, settings_json "
                         "FROM runs WHERE id = ?", err))
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        m->has_run = 1;
        m->run_id = id;
        m->suite = col(m, st, 0);
        m->started = col(m, st, 1);
        m->finished = col(m, st, 2);
        m->command = col(m, st, 3);
        m->model = col(m, st, 4);
        m->model_sha256 = col(m, st, 5);
        m->run_settings = col(m, st, 6);
        cJSON *rs = m->run_settings ? cJSON_Parse(m->run_settings) : NULL;
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs, "suite_name"));
        if (name && *name) m->suite_name = cs_arena_strdup(&m->arena, name);
        cJSON_Delete(rs);
        rc = SQLITE_DONE;
    }
    if (step_done(s, st, rc, err, "reading the run")) return -1;
    return cs_store_query_i64(s, "SELECT COUNT(*) FROM generations WHERE run_id = ?", id, 0, &m->n_generations, err);
}

static double th_get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The latest analysis of the run: its index size and thresholds. */
static int load_analysis(cs_rmodel *m, cs_store *s, cs_err *err) {
    cs_rthresh *t = &m->th;
    t->copy_tl2 = t->near_tl2 = t->ratio_max = t->ratio_tl2 = t->pdq_near = t->pdq_min_quality = NAN;
    t->pdq_confirm_tl2 = t->embed_near = t->partial_tile_l2 = t->partial_min_tiles = t->partial_min_frac = NAN;
    t->completion_margin = t->tile_min_std = t->lf_max_nfa = t->lf_min_share = t->lf_near_cover = NAN;
    m->n_refs = -1;
    if (!table_exists(s, "analyses")) return 0;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, settings_json, descriptors, n_refs FROM analyses WHERE run_id = ? "
                         "ORDER BY id DESC LIMIT 1", err))
        return -1;
    sqlite3_bind_int64(st, 1, m->run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        m->analysis_id = sqlite3_column_int64(st, 0);
        m->descriptors = col(m, st, 2);
        m->n_refs = sqlite3_column_int64(st, 3);
        cJSON *o = cJSON_Parse((const char *)sqlite3_column_text(st, 1));
        t->copy_tl2 = th_get(o, "copy_tl2");
        t->near_tl2 = th_get(o, "near_tl2");
        t->ratio_max = th_get(o, "ratio_max");
        t->ratio_tl2 = th_get(o, "ratio_tl2");
        t->pdq_near = th_get(o, "pdq_near");
        t->pdq_min_quality = th_get(o, "pdq_min_quality");
        t->pdq_confirm_tl2 = th_get(o, "pdq_confirm_tl2");
        t->embed_near = th_get(o, "embed_near");
        t->partial_tile_l2 = th_get(o, "partial_tile_l2");
        t->partial_min_tiles = th_get(o, "partial_min_tiles");
        t->partial_min_frac = th_get(o, "partial_min_frac");
        t->completion_margin = th_get(o, "completion_margin");
        t->tile_min_std = th_get(o, "tile_min_std");
        t->lf_max_nfa = th_get(o, "lf_max_nfa");
        t->lf_min_share = th_get(o, "lf_min_share");
        t->lf_near_cover = th_get(o, "lf_near_cover");
        cJSON_Delete(o);
        rc = SQLITE_DONE;
    }
    return step_done(s, st, rc, err, "reading the analysis");
}

static int load_findings(cs_rmodel *m, cs_store *s, cs_err *err) {
    sqlite3_stmt *st;
    int64_t n = 0;
    if (cs_store_query_i64(s,
                  "SELECT COUNT(*) FROM findings f JOIN generations g ON g.id = f.generation_id "
                  "WHERE g.run_id = ?", m->run_id, 0, &n, err))
        return -1;
    if (n == 0) return 0;
    m->f = calloc((size_t)n, sizeof *m->f);
    if (!m->f) return cs_fail(err, CS_ENOMEM, "report: out of memory for %lld findings", (long long)n);
    if (cs_store_prepare(s, &st,
                         "SELECT f.id, f.generation_id, f.ref_id, f.verdict, f.severity, f.evidence_json, "
                         "g.path, g.settings_json, g.seed, g.sample, g.whitebox, g.prompt_id, "
                         "p.key, p.text, p.kind, r.source, r.caption "
                         "FROM findings f JOIN generations g ON g.id = f.generation_id "
                         "LEFT JOIN prompts p ON p.id = g.prompt_id LEFT JOIN refs r ON r.id = f.ref_id "
                         "WHERE g.run_id = ?", err))
        return -1;
    sqlite3_bind_int64(st, 1, m->run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && m->n_f < n) {
        cs_rfinding *f = &m->f[m->n_f++];
        f->id = sqlite3_column_int64(st, 0);
        f->generation_id = sqlite3_column_int64(st, 1);
        f->ref_id = sqlite3_column_int64(st, 2);
        f->verdict = col(m, st, 3);
        if (!f->verdict) f->verdict = "";
        f->severity = sqlite3_column_double(st, 4);
        f->evidence_json = col(m, st, 5);
        f->gen_path = col(m, st, 6);
        f->gen_settings = col(m, st, 7);
        f->seed = sqlite3_column_int64(st, 8);
        f->sample = sqlite3_column_int64(st, 9);
        f->whitebox = col_real(st, 10);
        f->prompt_id = sqlite3_column_int64(st, 11);
        f->prompt_key = col(m, st, 12);
        f->prompt_text = col(m, st, 13);
        f->prompt_kind = col(m, st, 14);
        f->ref_source = col(m, st, 15);
        f->ref_caption = col(m, st, 16);
        m->count[cs_rv_level(f->verdict)]++;
    }
    if (rc == SQLITE_ROW) rc = SQLITE_DONE;
    if (step_done(s, st, rc, err, "reading findings")) return -1;
    qsort(m->f, (size_t)m->n_f, sizeof *m->f, cmp_finding);
    for (int64_t i = 0; i < m->n_f; i++) {
        m->f[i].rank = i + 1;
        m->f[i].in_gallery = i < m->top;
    }
    return 0;
}

/* Top-1 score per descriptor: the lowest-rank matches row of each
 * (generation, descriptor). */
static int load_scores(cs_rmodel *m, cs_store *s, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT DISTINCT m.descriptor FROM matches m JOIN generations g ON g.id = m.generation_id "
                         "WHERE g.run_id = ? ORDER BY 1", err))
        return -1;
    sqlite3_bind_int64(st, 1, m->run_id);
    const char *d[MAX_DESC];
    int nd = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (nd < MAX_DESC && sqlite3_column_text(st, 0)) d[nd++] = col(m, st, 0);
    if (step_done(s, st, rc, err, "reading descriptors")) return -1;
    m->desc = cs_arena_alloc(&m->arena, sizeof(char *) * (size_t)(nd ? nd : 1));
    double *sc = cs_arena_alloc(&m->arena, sizeof(double) * (size_t)(m->n_f * nd + 1));
    int64_t *sr = cs_arena_alloc(&m->arena, sizeof(int64_t) * (size_t)(m->n_f * nd + 1));
    double *rs = cs_arena_alloc(&m->arena, sizeof(double) * (size_t)(m->n_f * nd + 1));
    if (!m->desc || !sc || !sr || !rs) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    for (int i = 0; i < nd; i++) m->desc[i] = d[i];
    m->n_desc = nd;
    qsort(m->desc, (size_t)nd, sizeof *m->desc, cmp_str);
    for (int64_t i = 0; i < m->n_f * nd; i++) {
        sc[i] = rs[i] = NAN;
        sr[i] = 0;
    }
    for (int64_t i = 0; i < m->n_f; i++) {
        m->f[i].scores = sc + i * nd;
        m->f[i].score_refs = sr + i * nd;
        m->f[i].ref_scores = rs + i * nd;
    }
    if (!nd || !m->n_f) return 0;
    keyidx *by_gen = malloc(sizeof *by_gen * (size_t)m->n_f);
    if (!by_gen) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    for (int64_t i = 0; i < m->n_f; i++) by_gen[i] = (keyidx){m->f[i].generation_id, i};
    qsort(by_gen, (size_t)m->n_f, sizeof *by_gen, cmp_keyidx);
    if (cs_store_prepare(s, &st,
                         "SELECT m.generation_id, m.descriptor, m.score, m.ref_id FROM matches m "
                         "JOIN generations g ON g.id = m.generation_id WHERE g.run_id = ? "
                         "ORDER BY m.generation_id, m.descriptor, m.rank", err)) {
        free(by_gen);
        return -1;
    }
    sqlite3_bind_int64(st, 1, m->run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t gen = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (!name) continue;
        const char **hit = bsearch(&name, m->desc, (size_t)nd, sizeof *m->desc, cmp_str);
        if (!hit) continue;
        int k = (int)(hit - m->desc);
        for (int64_t j = lower_bound(by_gen, m->n_f, gen); j < m->n_f && by_gen[j].key == gen; j++) {
            cs_rfinding *f = &m->f[by_gen[j].idx];
            int64_t ref = sqlite3_column_int64(st, 3);
            if (isnan(f->scores[k])) {
                f->scores[k] = sqlite3_column_double(st, 2);
                f->score_refs[k] = ref;
            }
            /* the best row of the finding's own reference: its score by this descriptor */
            if (f->ref_id && ref == f->ref_id && isnan(f->ref_scores[k])) f->ref_scores[k] = sqlite3_column_double(st, 2);
        }
    }
    free(by_gen);
    return step_done(s, st, rc, err, "reading matches");
}

static int load_prompts(cs_rmodel *m, cs_store *s, cs_err *err) {
    int64_t n;
    if (cs_store_query_i64(s, "SELECT COUNT(*) FROM prompts WHERE run_id = ?", m->run_id, 0, &n, err)) return -1;
    if (n == 0) return 0;
    m->p = cs_arena_alloc(&m->arena, sizeof *m->p * (size_t)n);
    if (!m->p) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT p.id, p.key, p.text, p.kind, "
                         "(SELECT COUNT(*) FROM generations g WHERE g.prompt_id = p.id AND g.run_id = p.run_id) "
                         "FROM prompts p WHERE p.run_id = ? ORDER BY p.id", err))
        return -1;
    sqlite3_bind_int64(st, 1, m->run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && m->n_p < n) {
        cs_rprompt *p = &m->p[m->n_p++];
        memset(p, 0, sizeof *p);
        p->id = sqlite3_column_int64(st, 0);
        p->key = col(m, st, 1);
        p->text = col(m, st, 2);
        p->kind = col(m, st, 3);
        p->n_generations = sqlite3_column_int64(st, 4);
        p->max_similarity = p->mean_whitebox = p->min_tl2 = NAN;
        p->largest_clique = -1;
    }
    if (rc == SQLITE_ROW) rc = SQLITE_DONE;
    if (step_done(s, st, rc, err, "reading prompts")) return -1;
    /* counts and the first gallery finding, from the findings (most severe first) */
    for (int64_t i = 0; i < m->n_f; i++) {
        const cs_rfinding *f = &m->f[i];
        int64_t lo = 0, hi = m->n_p;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (m->p[mid].id < f->prompt_id) lo = mid + 1;
            else hi = mid;
        }
        if (lo == m->n_p || m->p[lo].id != f->prompt_id) continue;
        cs_rprompt *p = &m->p[lo];
        p->n_findings++;
        p->count[cs_rv_level(f->verdict)]++;
        if (f->in_gallery && !p->first_gallery) p->first_gallery = f->id;
    }
    for (int64_t i = 0; i < m->n_p; i++) {
        cs_rprompt *p = &m->p[i];
        p->rate = p->n_generations ? (double)(p->count[0] + p->count[1]) / (double)p->n_generations : NAN;
    }
    if (!table_exists(s, "prompt_summary")) return 0;
    if (cs_store_prepare(s, &st,
                         "SELECT prompt_id, max_similarity, mean_whitebox, largest_clique, min_tl2 FROM prompt_summary "
                         "WHERE run_id = ?", err))
        return -1;
    sqlite3_bind_int64(st, 1, m->run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        for (int64_t lo = 0, hi = m->n_p; lo < hi;) {
            int64_t mid = lo + (hi - lo) / 2;
            if (m->p[mid].id == id) {
                m->p[mid].max_similarity = col_real(st, 1);
                m->p[mid].mean_whitebox = col_real(st, 2);
                m->p[mid].largest_clique = sqlite3_column_int64(st, 3);
                m->p[mid].min_tl2 = col_real(st, 4);
                break;
            }
            if (m->p[mid].id < id) lo = mid + 1;
            else hi = mid;
        }
    }
    return step_done(s, st, rc, err, "reading the prompt summary");
}

/* Long: two reads in one pass (the findings, then their spans, matched by id). */
static int load_text(cs_rmodel *m, cs_store *s, const cs_rmodel_opts *o, cs_err *err) {
    if (o->text_audit > 0) { /* a named audit that is not there is an error, not an empty section */
        int64_t k = 0;
        if (table_exists(s, "text_audits") &&
            cs_store_query_i64(s, "SELECT COUNT(*) FROM text_audits WHERE id = ?1", o->text_audit, 0, &k, err))
            return -1;
        if (!k)
            return cs_fail(err, CS_ENOTFOUND, "%s: --text-audit %lld: no such text audit (copyscope text audit makes one)",
                           cs_store_path(s), (long long)o->text_audit);
    }
    if (o->text_audit < 0 || !table_exists(s, "text_findings") || !table_exists(s, "text_spans")) return 0;
    int64_t n;
    if (cs_store_query_i64(s, "SELECT COUNT(*) FROM text_findings WHERE ?1 = 0 OR audit_id = ?1", o->text_audit, 0, &n, err))
        return -1;
    if (o->text_audit == 0 && cs_store_query_i64(s, "SELECT COUNT(*) FROM text_findings", 0, 0, &n, err)) return -1;
    if (n == 0) return 0;
    m->t = calloc((size_t)n, sizeof *m->t);
    if (!m->t) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT tf.id, tf.audit_id, tf.completion_id, tf.prompt_id, tf.status, tf.verdict, "
                         "tf.longest_chars, tf.longest_words, tf.exact_prefix_words, tf.rouge_l_f1, tf.edit_sim, "
                         "tf.evidence_json, tc.prompt_key, tc.completion, tc.model, tp.prompt, tp.continuation, "
                         "d.id, d.name, d.source, a.source "
                         "FROM text_findings tf JOIN text_completions tc ON tc.id = tf.completion_id "
                         "LEFT JOIN text_prompts tp ON tp.id = tf.prompt_id "
                         "LEFT JOIN text_docs d ON d.id = COALESCE(tf.longest_doc_id, tp.doc_id) "
                         "LEFT JOIN text_audits a ON a.id = tf.audit_id "
                         "WHERE ?1 = 0 OR tf.audit_id = ?1 ORDER BY tf.id", err))
        return -1;
    sqlite3_bind_int64(st, 1, o->text_audit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && m->n_t < n) {
        cs_rtext *t = &m->t[m->n_t++];
        t->id = sqlite3_column_int64(st, 0);
        t->audit_id = sqlite3_column_int64(st, 1);
        t->completion_id = sqlite3_column_int64(st, 2);
        t->prompt_id = sqlite3_column_int64(st, 3);
        t->status = col(m, st, 4);
        t->verdict = col(m, st, 5);
        t->longest_chars = sqlite3_column_int64(st, 6);
        t->longest_words = sqlite3_column_int64(st, 7);
        t->exact_prefix_words = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
        t->rouge_l_f1 = col_real(st, 9);
        t->edit_sim = col_real(st, 10);
        t->evidence_json = col(m, st, 11);
        t->prompt_key = col(m, st, 12);
        t->completion = col(m, st, 13);
        t->model = col(m, st, 14);
        t->prompt = col(m, st, 15);
        t->continuation = col(m, st, 16);
        t->doc_id = sqlite3_column_int64(st, 17);
        t->doc_name = col(m, st, 18);
        t->doc_source = col(m, st, 19);
        t->audit_source = col(m, st, 20);
        if (!t->verdict) t->verdict = "";
        m->text_count[cs_rtext_level(t->verdict)]++;
    }
    if (rc == SQLITE_ROW) rc = SQLITE_DONE;
    if (step_done(s, st, rc, err, "reading text findings")) return -1;
    /* spans, by finding id (m->t is in id order here) */
    if (cs_store_prepare(s, &st,
                         "SELECT sp.finding_id, sp.comp_start, sp.comp_end, sp.chars, sp.words, sp.doc_id, "
                         "sp.doc_start, sp.doc_end, sp.text, coalesce(sd.name, sd.source) FROM text_spans sp "
                         "JOIN text_findings tf ON tf.id = sp.finding_id LEFT JOIN text_docs sd ON sd.id = sp.doc_id "
                         "WHERE ?1 = 0 OR tf.audit_id = ?1 "
                         "ORDER BY sp.finding_id, sp.rank", err))
        return -1;
    sqlite3_bind_int64(st, 1, o->text_audit);
    int64_t j = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t fid = sqlite3_column_int64(st, 0);
        while (j < m->n_t && m->t[j].id < fid) j++;
        if (j == m->n_t || m->t[j].id != fid) continue;
        cs_rtext *t = &m->t[j];
        if (t->n_spans % 16 == 0) {
            cs_rspan *v = realloc(t->spans, sizeof *v * (size_t)(t->n_spans + 16));
            if (!v) {
                sqlite3_finalize(st);
                return cs_fail(err, CS_ENOMEM, "report: out of memory");
            }
            t->spans = v;
        }
        cs_rspan *sp = &t->spans[t->n_spans++];
        sp->comp_start = sqlite3_column_int64(st, 1);
        sp->comp_end = sqlite3_column_int64(st, 2);
        sp->chars = sqlite3_column_int64(st, 3);
        sp->words = sqlite3_column_int64(st, 4);
        sp->doc_id = sqlite3_column_int64(st, 5);
        sp->doc_start = sqlite3_column_int64(st, 6);
        sp->doc_end = sqlite3_column_int64(st, 7);
        sp->text = col(m, st, 8);
        sp->doc_name = col(m, st, 9);
    }
    if (step_done(s, st, rc, err, "reading text spans")) return -1;
    qsort(m->t, (size_t)m->n_t, sizeof *m->t, cmp_text);
    for (int64_t i = 0; i < m->n_t; i++) m->t[i].in_gallery = i < m->top;
    return 0;
}

int cs_rmodel_load(cs_rmodel *m, cs_store *s, const cs_rmodel_opts *o, cs_err *err) {
    memset(m, 0, sizeof *m);
    m->top = o->top > 0 ? o->top : 200;
    const char *path = cs_store_path(s);
    const char *slash = strrchr(path, '/');
    m->db_name = cs_arena_strdup(&m->arena, slash ? slash + 1 : path);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    m->generated = cs_arena_strdup(&m->arena, when);
    char *attr = NULL;
    if (cs_store_meta_get(s, "attribution", &attr, err)) goto fail;
    m->attribution = cs_arena_strdup(&m->arena, attr);
    free(attr);
    if (pick_run(m, s, o, err)) goto fail;
    if (m->has_run && (load_analysis(m, s, err) || load_findings(m, s, err) || load_scores(m, s, err) ||
                       load_prompts(m, s, err)))
        goto fail;
    if (load_text(m, s, o, err)) goto fail;
    if (!m->has_run && m->n_t == 0) {
        cs_fail(err, CS_ENOTFOUND, "%s: no runs and no text findings to report", path);
        goto fail;
    }
    if (m->arena.oom) {
        cs_fail(err, CS_ENOMEM, "report: out of memory");
        goto fail;
    }
    return 0;
fail:
    cs_rmodel_free(m);
    return -1;
}

void cs_rmodel_free(cs_rmodel *m) {
    for (int64_t i = 0; i < m->n_t; i++) free(m->t[i].spans);
    free(m->t);
    free(m->f);
    cs_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

int cs_rmodel_ref_thumb(cs_store *s, int64_t ref_id, uint8_t **rgb, int *w, int *h, cs_err *err) {
    *rgb = NULL;
    *w = *h = 0;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT w, h, rgb FROM ref_thumbs WHERE ref_id = ?", err)) return -1;
    sqlite3_bind_int64(st, 1, ref_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t tw = sqlite3_column_int64(st, 0), thh = sqlite3_column_int64(st, 1);
        const void *blob = sqlite3_column_blob(st, 2);
        int64_t len = sqlite3_column_bytes(st, 2);
        /* a thumbnail whose size does not match its blob is ignored, never read past */
        if (tw > 0 && thh > 0 && tw <= 4096 && thh <= 4096 && blob && len == tw * thh * 3) {
            *rgb = malloc((size_t)len);
            if (!*rgb) {
                sqlite3_finalize(st);
                return cs_fail(err, CS_ENOMEM, "report: out of memory");
            }
            memcpy(*rgb, blob, (size_t)len);
            *w = (int)tw;
            *h = (int)thh;
        }
        rc = SQLITE_DONE;
    }
    return step_done(s, st, rc, err, "reading a reference thumbnail");
}
