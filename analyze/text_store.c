/* text_store.c — reading and writing the text audit's rows. */
#include "analyze/text_store.h"

#include <string.h>

enum { BY_KEY, BY_PROMPT, INS_COMP, INS_FIND, INS_SPAN };

static const char *const SQL[5] = {
    "SELECT id, doc_id, cont_doc_start, cont_doc_end FROM text_prompts WHERE key = ?",
    "SELECT id, doc_id, cont_doc_start, cont_doc_end FROM text_prompts WHERE prompt = ? ORDER BY id LIMIT 1",
    "INSERT INTO text_completions(audit_id, line, prompt_key, prompt_id, model, completion) VALUES (?,?,?,?,?,?)",
    "INSERT INTO text_findings(audit_id, completion_id, prompt_id, status, verdict, longest_chars, longest_words, "
    "longest_doc_id, longest_doc_start, longest_doc_end, longest_comp_start, longest_comp_end, n_spans, "
    "exact_prefix_words, rouge_l_f1, edit_sim, evidence_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "INSERT INTO text_spans(finding_id, rank, comp_start, comp_end, chars, words, doc_id, doc_start, doc_end, text) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)",
};

int cs_text_writer_open(cs_text_writer *w, cs_store *s, const char *source, const char *settings_json, cs_err *err) {
    memset(w, 0, sizeof *w);
    w->s = s;
    for (int i = 0; i < 5; i++)
        if (cs_store_prepare(s, (sqlite3_stmt **)&w->st[i], SQL[i], err)) goto fail;
    if (cs_store_begin(s, err)) goto fail;
    sqlite3_stmt *ins;
    if (cs_store_prepare(s, &ins, "INSERT INTO text_audits(source, settings_json) VALUES (?, ?)", err)) {
        cs_store_rollback(s);
        goto fail;
    }
    sqlite3_bind_text(ins, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, settings_json, -1, SQLITE_STATIC);
    int r = sqlite3_step(ins);
    sqlite3_finalize(ins);
    if (r != SQLITE_DONE) {
        cs_store_fail(s, err, "insert text_audits");
        cs_store_rollback(s);
        goto fail;
    }
    w->audit_id = sqlite3_last_insert_rowid(cs_store_db(s));
    return 0;
fail:
    for (int i = 0; i < 5; i++) sqlite3_finalize(w->st[i]);
    memset(w, 0, sizeof *w);
    return -1;
}

int cs_text_reader_open(cs_text_writer *w, cs_store *s, cs_err *err) {
    memset(w, 0, sizeof *w);
    w->s = s;
    for (int i = BY_KEY; i <= BY_PROMPT; i++)
        if (cs_store_prepare(s, (sqlite3_stmt **)&w->st[i], SQL[i], err)) {
            for (int k = 0; k < 5; k++) sqlite3_finalize(w->st[k]);
            memset(w, 0, sizeof *w);
            return -1;
        }
    return 0;
}

int cs_text_writer_close(cs_text_writer *w, int ok, cs_err *err) {
    int rc = 0;
    if (!w->s) return 0;
    if (ok) rc = cs_store_commit(w->s, err);
    if (!ok || rc) cs_store_rollback(w->s);
    for (int i = 0; i < 5; i++) sqlite3_finalize(w->st[i]);
    w->s = NULL;
    return rc;
}

int cs_text_writer_batch(cs_text_writer *w, cs_err *err) {
    if (++w->in_batch < 256) return 0;
    w->in_batch = 0;
    return cs_store_commit(w->s, err) || cs_store_begin(w->s, err) ? -1 : 0;
}

static int prompt_row(cs_text_writer *w, sqlite3_stmt *q, cs_text_prompt_row *r, cs_err *err) {
    int x = sqlite3_step(q);
    if (x == SQLITE_ROW) {
        r->id = sqlite3_column_int64(q, 0);
        r->doc_id = sqlite3_column_int64(q, 1);
        r->cont_start = sqlite3_column_int64(q, 2);
        r->cont_end = sqlite3_column_int64(q, 3);
    }
    sqlite3_reset(q);
    if (x != SQLITE_ROW && x != SQLITE_DONE) return cs_store_fail(w->s, err, "read text_prompts");
    return 0;
}

int cs_text_prompt_find(cs_text_writer *w, const char *key, const char *norm_prompt, cs_text_prompt_row *r,
                        cs_err *err) {
    memset(r, 0, sizeof *r);
    sqlite3_stmt *q;
    if (key) {
        q = w->st[BY_KEY];
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
        if (prompt_row(w, q, r, err)) return -1;
    }
    if (!r->id && norm_prompt) {
        q = w->st[BY_PROMPT];
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, norm_prompt, -1, SQLITE_TRANSIENT);
        if (prompt_row(w, q, r, err)) return -1;
    }
    return 0;
}

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v, int present) {
    if (present) sqlite3_bind_int64(st, i, v);
    else sqlite3_bind_null(st, i);
}

int cs_text_write_finding(cs_text_writer *w, const cs_text_finding_row *f, int64_t *finding_id, cs_err *err) {
    sqlite3_stmt *st = w->st[INS_COMP];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, w->audit_id);
    sqlite3_bind_int64(st, 2, f->line);
    if (f->key) sqlite3_bind_text(st, 3, f->key, -1, SQLITE_TRANSIENT);
    bind_opt_i64(st, 4, f->prompt_id, f->prompt_id != 0);
    if (f->model) sqlite3_bind_text(st, 5, f->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, f->completion, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) return cs_store_fail(w->s, err, "insert text_completions");
    int64_t cid = sqlite3_last_insert_rowid(cs_store_db(w->s));
    st = w->st[INS_FIND];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, w->audit_id);
    sqlite3_bind_int64(st, 2, cid);
    bind_opt_i64(st, 3, f->prompt_id, f->prompt_id != 0);
    sqlite3_bind_text(st, 4, f->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, f->verdict, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, f->longest_chars);
    sqlite3_bind_int64(st, 7, f->longest_words);
    int has_doc = f->doc_id != 0;
    bind_opt_i64(st, 8, f->doc_id, has_doc);
    bind_opt_i64(st, 9, f->doc_start, has_doc);
    bind_opt_i64(st, 10, f->doc_end, has_doc);
    bind_opt_i64(st, 11, f->comp_start, has_doc);
    bind_opt_i64(st, 12, f->comp_end, has_doc);
    sqlite3_bind_int64(st, 13, f->n_spans);
    bind_opt_i64(st, 14, f->exact_prefix, f->has_cont);
    if (f->has_cont) {
        sqlite3_bind_double(st, 15, f->rouge);
        sqlite3_bind_double(st, 16, f->edit);
    }
    sqlite3_bind_text(st, 17, f->evidence_json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) return cs_store_fail(w->s, err, "insert text_findings");
    *finding_id = sqlite3_last_insert_rowid(cs_store_db(w->s));
    return 0;
}

int cs_text_write_span(cs_text_writer *w, int64_t finding_id, int rank, const cs_text_span_row *r, cs_err *err) {
    sqlite3_stmt *st = w->st[INS_SPAN];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, finding_id);
    sqlite3_bind_int(st, 2, rank);
    sqlite3_bind_int64(st, 3, r->comp_start);
    sqlite3_bind_int64(st, 4, r->comp_end);
    sqlite3_bind_int64(st, 5, r->chars);
    sqlite3_bind_int64(st, 6, r->words);
    sqlite3_bind_int64(st, 7, r->doc_id);
    sqlite3_bind_int64(st, 8, r->doc_start);
    sqlite3_bind_int64(st, 9, r->doc_end);
    sqlite3_bind_text(st, 10, r->text, r->text_len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) return cs_store_fail(w->s, err, "insert text_spans");
    return 0;
}

int cs_text_list_findings(cs_store *s, int64_t audit_id, void (*fn)(void *ctx, const cs_text_listed *r), void *ctx,
                          cs_err *err) {
    sqlite3_stmt *q;
    if (cs_store_prepare(s, &q,
                         "SELECT c.line, coalesce(c.prompt_key, ''), f.verdict, f.status, f.longest_words, "
                         "f.longest_chars, coalesce(d.name, d.source, ''), coalesce(f.longest_doc_start, 0), "
                         "coalesce(f.longest_doc_end, 0), f.exact_prefix_words, f.rouge_l_f1, f.edit_sim "
                         "FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                         "LEFT JOIN text_docs d ON d.id = f.longest_doc_id "
                         "WHERE f.audit_id = ? ORDER BY c.line",
                         err))
        return -1;
    sqlite3_bind_int64(q, 1, audit_id);
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        cs_text_listed x = {
            .line = sqlite3_column_int(q, 0),
            .key = (const char *)sqlite3_column_text(q, 1),
            .verdict = (const char *)sqlite3_column_text(q, 2),
            .status = (const char *)sqlite3_column_text(q, 3),
            .words = sqlite3_column_int64(q, 4),
            .chars = sqlite3_column_int64(q, 5),
            .doc = (const char *)sqlite3_column_text(q, 6),
            .doc_start = sqlite3_column_int64(q, 7),
            .doc_end = sqlite3_column_int64(q, 8),
            .has_cont = sqlite3_column_type(q, 9) != SQLITE_NULL,
            .exact = sqlite3_column_int64(q, 9),
            .rouge = sqlite3_column_double(q, 10),
            .edit = sqlite3_column_double(q, 11),
        };
        fn(ctx, &x);
    }
    int rc = r == SQLITE_DONE ? 0 : cs_store_fail(s, err, "read text_findings");
    sqlite3_finalize(q);
    return rc;
}

int cs_text_prompt_insert_prepare(cs_store *s, void **stmt, cs_err *err) {
    return cs_store_prepare(s, (sqlite3_stmt **)stmt,
                            "INSERT OR IGNORE INTO text_prompts(key, doc_id, start_word, prefix_words, cont_words, "
                            "prompt, continuation, cont_doc_start, cont_doc_end) VALUES (?,?,?,?,?,?,?,?,?)",
                            err);
}
