/* run_summary.c — see run_summary.h. */
#include "reports/run_summary.h"

#include <stdlib.h>
#include <string.h>

#include "reports/report_model.h"

static char *col_dup(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? strdup(t) : NULL;
}

static int verdict_counts(cs_store *s, int64_t run_id, cs_run_summary *r, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT f.verdict, COUNT(*) FROM findings f JOIN generations g ON g.id = f.generation_id "
                         "WHERE g.run_id = ? GROUP BY f.verdict",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int l = v ? cs_rv_level(v) : CS_RV_N;
        int64_t n = sqlite3_column_int64(st, 1);
        if (l < CS_RV_N) r->count[l] += n;
        r->total += n;
    }
    sqlite3_finalize(st);
    for (int l = CS_RV_N - 1; l >= 0; l--)
        if (r->count[l]) r->worst = cs_rv_names[l];
    return 0;
}

/* the latest analysis: how many references the findings were sought among */
static int latest_analysis(cs_store *s, int64_t run_id, cs_run_summary *r, cs_err *err) {
    r->analysis_id = r->n_refs = -1;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT id, n_refs FROM analyses WHERE run_id = ? ORDER BY id DESC LIMIT 1", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r->analysis_id = sqlite3_column_int64(st, 0);
        r->n_refs = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

/* the worst finding of each prompt, most severe first */
static int worst_per_prompt(cs_store *s, int64_t run_id, cs_run_summary *r, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT p.key, p.kind, f.verdict, r.source, r.caption, "
                         " json_extract(f.evidence_json, '$.tl2.aligned_distance'), "
                         " COALESCE(ps.n_copy + ps.n_near_copy, 0), COALESCE(ps.n_generations, 0), "
                         " (SELECT COUNT(*) FROM prompts q WHERE q.run_id = ?1) "
                         "FROM (SELECT f.*, g.prompt_id AS pid, ROW_NUMBER() OVER "
                         "      (PARTITION BY g.prompt_id ORDER BY f.severity DESC, f.id) AS rn "
                         "      FROM findings f JOIN generations g ON g.id = f.generation_id WHERE g.run_id = ?1) f "
                         "JOIN prompts p ON p.id = f.pid LEFT JOIN refs r ON r.id = f.ref_id "
                         "LEFT JOIN prompt_summary ps ON ps.run_id = ?1 AND ps.prompt_id = p.id "
                         "WHERE f.rn = 1 ORDER BY f.severity DESC, p.id LIMIT 6",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    while (r->n_top < CS_RSUM_TOP && sqlite3_step(st) == SQLITE_ROW) {
        if (!r->n_top) r->n_prompts = sqlite3_column_int64(st, 8);
        cs_rsum_prompt *p = &r->top[r->n_top++];
        p->key = col_dup(st, 0);
        p->kind = col_dup(st, 1);
        p->verdict = col_dup(st, 2);
        p->source = col_dup(st, 3);
        p->caption = col_dup(st, 4);
        p->has_dist = sqlite3_column_type(st, 5) != SQLITE_NULL;
        p->aligned_distance = sqlite3_column_double(st, 5);
        p->n_memorised = sqlite3_column_int64(st, 6);
        p->n_generations = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    return cs_store_query_i64(s, "SELECT COUNT(*) FROM prompt_summary WHERE run_id = ? AND n_copy + n_near_copy > 0",
                              run_id, 0, &r->n_memorised_prompts, err);
}

/* prompts that name the reference they should copy; completions with their ground truth */
static int ground_truth(cs_store *s, int64_t run_id, cs_run_summary *r, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT COUNT(*), SUM(json_extract(f.evidence_json, '$.completion.restored') = 1) "
                         "FROM findings f JOIN generations g ON g.id = f.generation_id "
                         "WHERE g.run_id = ? AND json_extract(f.evidence_json, '$.completion') IS NOT NULL",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r->n_completions = sqlite3_column_int64(st, 0);
        r->n_restored = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return cs_store_query_i64(s,
                              "SELECT COUNT(*) FROM findings f JOIN generations g ON g.id = f.generation_id "
                              "JOIN prompts p ON p.id = g.prompt_id WHERE g.run_id = ? AND p.expect_ref IS NOT NULL "
                              "AND p.kind <> 'completion'",
                              run_id, 0, &r->n_expected, err) ||
                   cs_store_query_i64(s,
                              "SELECT COUNT(*) FROM findings f JOIN generations g ON g.id = f.generation_id "
                              "JOIN prompts p ON p.id = g.prompt_id WHERE g.run_id = ? AND p.expect_ref IS NOT NULL "
                              "AND p.kind <> 'completion' "
                              "AND f.verdict IN ('copy', 'near-copy') AND EXISTS (SELECT 1 FROM refs x WHERE "
                              "(x.id = f.ref_id OR x.dup_of = f.ref_id) AND (x.source = p.expect_ref OR "
                              "substr(x.source, -length(p.expect_ref) - 1) = '/' || p.expect_ref))",
                              run_id, 0, &r->n_expected_hit, err)
               ? -1
               : 0;
}

static int text_part(cs_store *s, int64_t text_audit, cs_run_summary *r, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT COUNT(*), SUM(verdict = 'verbatim'), SUM(verdict = 'near-verbatim'), "
                         "SUM(verdict = 'novel'), MAX(longest_words) FROM text_findings "
                         "WHERE ?1 = 0 OR audit_id = ?1",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, text_audit);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r->text_n = sqlite3_column_int64(st, 0);
        r->text_verbatim = sqlite3_column_int64(st, 1);
        r->text_near = sqlite3_column_int64(st, 2);
        r->text_novel = sqlite3_column_int64(st, 3);
        r->text_longest = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    if (cs_store_prepare(s, &st,
                         "SELECT COALESCE(c.prompt_key, '-'), f.verdict, f.longest_words, COALESCE(d.name, d.source, '-'), "
                         " f.exact_prefix_words FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                         "LEFT JOIN text_docs d ON d.id = f.longest_doc_id WHERE ?1 = 0 OR f.audit_id = ?1 "
                         "ORDER BY f.longest_words DESC, f.id LIMIT 3",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, text_audit);
    while (r->n_text_top < CS_RSUM_TEXT_TOP && sqlite3_step(st) == SQLITE_ROW) {
        cs_rsum_text *t = &r->text_top[r->n_text_top++];
        t->key = col_dup(st, 0);
        t->verdict = col_dup(st, 1);
        t->longest_words = sqlite3_column_int64(st, 2);
        t->doc = col_dup(st, 3);
        t->exact_prefix_words = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    return 0;
}

int cs_run_summary_load(cs_store *s, int64_t run_id, int64_t text_audit, cs_run_summary *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    if (verdict_counts(s, run_id, out, err) || latest_analysis(s, run_id, out, err) ||
        worst_per_prompt(s, run_id, out, err) ||
        ground_truth(s, run_id, out, err) || (text_audit >= 0 && text_part(s, text_audit, out, err))) {
        cs_run_summary_free(out);
        return -1;
    }
    return 0;
}

void cs_run_summary_free(cs_run_summary *r) {
    for (int i = 0; i < r->n_top; i++) {
        cs_rsum_prompt *p = &r->top[i];
        free(p->key);
        free(p->kind);
        free(p->verdict);
        free(p->source);
        free(p->caption);
    }
    for (int i = 0; i < r->n_text_top; i++) {
        free(r->text_top[i].key);
        free(r->text_top[i].verdict);
        free(r->text_top[i].doc);
    }
    memset(r, 0, sizeof *r);
}

int cs_text_audit_latest(cs_store *s, int64_t *id, cs_err *err) {
    return cs_store_query_i64(s, "SELECT COALESCE(MAX(audit_id), -1) FROM text_findings", 0, 0, id, err);
}
