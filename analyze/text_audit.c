/* text_audit.c — cutting prompts from the corpus; auditing completions. */
#include "analyze/text_audit.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analyze/text_metrics.h"
#include "analyze/text_span.h"
#include "core/progress.h"

static void notef(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void notef(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...) {
    if (!fn) return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ctx, msg);
}

/* ---- prompts ---- */

static int prompts_for_doc(cs_store *s, const cs_text_corpus *c, int shard, uint64_t di, const cs_text_prompt_opts *o,
                           sqlite3_stmt *ins, FILE *out, int64_t *n_written, cs_err *err) {
    const cs_text_shard *sh = &c->shards[shard];
    const char *text = (const char *)sh->sa.text + sh->doc_start[di];
    size_t len = sh->doc_len[di];
    int64_t doc_id = sh->doc_id[di];
    cs_text_word *w;
    size_t nw;
    if (cs_text_words(text, len, &w, &nw, err)) return -1;
    size_t W = (size_t)o->prefix_words + (size_t)o->cont_words;
    if (nw < W) {
        notef(o->note, o->note_ctx, "document %lld: %zu words, fewer than %zu (skipped)", (long long)doc_id, nw, W);
        free(w);
        return 0;
    }
    cs_text_anchor *a;
    size_t na;
    if (cs_text_doc_anchors(s, doc_id, &a, &na, err)) {
        free(w);
        return -1;
    }
    int rc = 0;
    int K = o->per_doc > 0 ? o->per_doc : 1;
    size_t last = (size_t)-1;
    for (int k = 0; k < K && !rc; k++) {
        size_t st = K == 1 ? 0 : (size_t)((unsigned __int128)k * (nw - W) / (size_t)(K - 1));
        if (st == last) continue;
        last = st;
        size_t p0 = w[st].off, p1 = w[st + o->prefix_words - 1].off + w[st + o->prefix_words - 1].len;
        size_t c0 = w[st + o->prefix_words].off, c1 = w[st + W - 1].off + w[st + W - 1].len;
        char key[128];
        snprintf(key, sizeof key, "d%lld.w%zu.p%d.c%d", (long long)doc_id, st, o->prefix_words, o->cont_words);
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 2, doc_id);
        sqlite3_bind_int64(ins, 3, (int64_t)st);
        sqlite3_bind_int(ins, 4, o->prefix_words);
        sqlite3_bind_int(ins, 5, o->cont_words);
        sqlite3_bind_text(ins, 6, text + p0, (int)(p1 - p0), SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, text + c0, (int)(c1 - c0), SQLITE_STATIC);
        sqlite3_bind_int64(ins, 8, (int64_t)cs_text_orig_offset(a, na, c0));
        sqlite3_bind_int64(ins, 9, (int64_t)cs_text_orig_offset(a, na, c1));
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = cs_store_fail(s, err, "insert text_prompts");
            break;
        }
        cJSON *j = cJSON_CreateObject();
        char *ptxt = strndup(text + p0, p1 - p0);
        char *line = NULL;
        if (j && ptxt && cJSON_AddStringToObject(j, "prompt_id", key) && cJSON_AddStringToObject(j, "prompt", ptxt))
            line = cJSON_PrintUnformatted(j);
        if (!line) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (fprintf(out, "%s\n", line) < 0) rc = cs_fail(err, CS_EIO, "prompts: write failed: %s", strerror(errno));
        else (*n_written)++;
        free(line);
        free(ptxt);
        cJSON_Delete(j);
    }
    free(a);
    free(w);
    return rc;
}

int cs_text_prompts(cs_store *s, const cs_text_corpus *c, const cs_text_prompt_opts *o, FILE *out,
                    int64_t *n_written, cs_err *err) {
    int64_t local = 0;
    if (!n_written) n_written = &local;
    *n_written = 0;
    if (o->prefix_words <= 0 || o->cont_words <= 0)
        return cs_fail(err, CS_EUSAGE, "prompts: --prefix-words and --continuation-words must be positive");
    if (o->cont_words > CS_TEXT_MAX_CONT_WORDS) /* ROUGE-L and edit distance are quadratic */
        return cs_fail(err, CS_EUSAGE, "prompts: --continuation-words is at most %d", CS_TEXT_MAX_CONT_WORDS);
    sqlite3_stmt *ins;
    if (cs_store_prepare(s, &ins,
                         "INSERT OR IGNORE INTO text_prompts(key, doc_id, start_word, prefix_words, cont_words, "
                         "prompt, continuation, cont_doc_start, cont_doc_end) VALUES (?,?,?,?,?,?,?,?,?)",
                         err))
        return -1;
    int rc = cs_store_begin(s, err);
    if (!rc && o->docs) {
        for (size_t i = 0; i < o->n_docs && !rc; i++) {
            int sh;
            uint64_t di;
            if (cs_text_corpus_find_doc(c, o->docs[i], &sh, &di)) {
                notef(o->note, o->note_ctx, "document %lld: not in the index (skipped)", (long long)o->docs[i]);
                continue;
            }
            rc = prompts_for_doc(s, c, sh, di, o, ins, out, n_written, err);
        }
    } else if (!rc) {
        for (int sh = 0; sh < c->n_shards && !rc; sh++)
            for (uint64_t di = 0; di < c->shards[sh].n_docs && !rc; di++)
                rc = prompts_for_doc(s, c, sh, di, o, ins, out, n_written, err);
    }
    sqlite3_finalize(ins);
    if (!rc) rc = cs_store_commit(s, err);
    if (rc) cs_store_rollback(s);
    return rc;
}

/* ---- audit ---- */

void cs_text_audit_defaults(cs_text_audit_opts *o) {
    memset(o, 0, sizeof *o);
    o->min_span_words = 10;
    o->extract_words = 50;
    o->verbatim_span_words = 50;
    o->near_span_words = 20;
    o->near_rouge = 0.7;
    o->near_edit = 0.7;
}

typedef struct {
    cs_store *s;
    const cs_text_corpus *c;
    const cs_text_audit_opts *o;
    cs_text_audit_stats *st;
    sqlite3_stmt *by_key, *by_prompt, *ins_comp, *ins_find, *ins_span;
} auditor;

/* Looks up the prompt; *pid = 0 when unknown. *cont is owned by the caller. */
static int find_prompt(auditor *A, const char *key, const char *prompt, int64_t *pid, char **cont, cs_err *err) {
    *pid = 0;
    *cont = NULL;
    sqlite3_stmt *q = NULL;
    cs_text_norm n = {0};
    if (key) {
        q = A->by_key;
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
    } else if (prompt) {
        if (cs_text_normalize(&n, prompt, strlen(prompt), err)) {
            cs_text_norm_free(&n);
            return -1;
        }
        q = A->by_prompt;
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, n.text, (int)n.len, SQLITE_TRANSIENT);
    } else
        return 0;
    int r = sqlite3_step(q);
    cs_text_norm_free(&n);
    if (r == SQLITE_ROW) {
        *pid = sqlite3_column_int64(q, 0);
        *cont = strdup((const char *)sqlite3_column_text(q, 1));
        if (!*cont) return cs_fail(err, CS_ENOMEM, "out of memory");
    } else if (r != SQLITE_DONE)
        return cs_store_fail(A->s, err, "read text_prompts");
    sqlite3_reset(q);
    return 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int insert_span(auditor *A, int64_t fid, int rank, const cs_text_span *sp, const cs_text_norm *q,
                       cs_err *err) {
    cs_text_anchor *a;
    size_t na;
    if (cs_text_doc_anchors(A->s, sp->doc_id, &a, &na, err)) return -1;
    sqlite3_stmt *st = A->ins_span;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, fid);
    sqlite3_bind_int(st, 2, rank);
    sqlite3_bind_int64(st, 3, (int64_t)cs_text_orig_offset(q->anchors, q->n_anchors, sp->q_start));
    sqlite3_bind_int64(st, 4, (int64_t)cs_text_orig_offset(q->anchors, q->n_anchors, sp->q_end));
    sqlite3_bind_int64(st, 5, (int64_t)sp->chars);
    sqlite3_bind_int64(st, 6, (int64_t)sp->words);
    sqlite3_bind_int64(st, 7, sp->doc_id);
    sqlite3_bind_int64(st, 8, (int64_t)cs_text_orig_offset(a, na, sp->doc_start));
    sqlite3_bind_int64(st, 9, (int64_t)cs_text_orig_offset(a, na, sp->doc_end));
    sqlite3_bind_text(st, 10, q->text + sp->q_start, (int)(sp->q_end - sp->q_start), SQLITE_STATIC);
    free(a);
    if (sqlite3_step(st) != SQLITE_DONE) return cs_store_fail(A->s, err, "insert text_spans");
    return 0;
}

static const char *str_item(const cJSON *j, const char *name, char *buf, size_t bl) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsNumber(v)) {
        snprintf(buf, bl, "%.17g", v->valuedouble);
        return buf;
    }
    return NULL;
}

static int audit_line(auditor *A, const cJSON *j, int64_t lineno, const char *source, cs_err *err) {
    const cs_text_audit_opts *o = A->o;
    char kb[64];
    const char *key = str_item(j, "prompt_id", kb, sizeof kb);
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const char *prompt = cJSON_IsString(pj) ? pj->valuestring : NULL;
    const char *comp = cJSON_GetObjectItemCaseSensitive(j, "completion")->valuestring;
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *model = cJSON_IsString(mj) ? mj->valuestring : NULL;
    int64_t pid;
    char *cont = NULL;
    if (find_prompt(A, key, prompt, &pid, &cont, err)) return -1;
    if (!pid && key && prompt && find_prompt(A, NULL, prompt, &pid, &cont, err)) return -1; /* id unknown: try the text */

    cs_text_norm q;
    cs_text_span longest, *spans = NULL;
    size_t n_spans = 0;
    int rc = -1;
    cJSON *ev = NULL;
    char *evs = NULL;
    if (cs_text_normalize(&q, comp, strlen(comp), err)) goto out;
    /* A completion copied whole costs O(length^2) byte comparisons (each
     * word start matches to the end): spans are searched in its first
     * CS_TEXT_MAX_SPAN_QUERY bytes, cut at a word boundary. */
    size_t qn = q.len;
    if (qn > CS_TEXT_MAX_SPAN_QUERY) {
        qn = CS_TEXT_MAX_SPAN_QUERY;
        while (qn > 0 && q.text[qn] != ' ') qn--;
        notef(o->note, o->note_ctx, "%s:%lld: completion of %zu bytes: spans searched in the first %zu", source,
              (long long)lineno, q.len, qn);
    }
    double t0 = now_s();
    if (cs_text_spans(A->c, q.text, qn, o->min_span_words, &longest, &spans, &n_spans, err)) goto out;
    A->st->seconds_spans += now_s() - t0;
    A->st->bytes_spans += qn;

    const char *status = q.len == 0 ? "empty_completion" : !pid ? "unknown_prompt" : "ok";
    if (!pid) {
        A->st->unknown_prompt++;
        notef(o->note, o->note_ctx, "%s:%lld: unknown prompt%s%s (judged on its spans only)", source,
              (long long)lineno, key ? " id " : "", key ? key : "");
    }
    if (q.len == 0) {
        A->st->empty++;
        notef(o->note, o->note_ctx, "%s:%lld: empty completion (recorded)", source, (long long)lineno);
    }

    size_t exact = 0, cont_words = 0;
    double rouge = 0, edit = 0;
    if (pid) {
        size_t cl = strlen(cont);
        for (size_t i = 0; i < cl; i++) cont_words += cont[i] != ' ' && (i == 0 || cont[i - 1] == ' ');
        size_t cut = cs_text_prefix_bytes(q.text, q.len, cont_words);
        exact = cs_text_exact_prefix(q.text, cut, cont, cl);
        if (cs_text_rouge_l(q.text, cut, cont, cl, &rouge, err) || cs_text_edit_sim(q.text, cut, cont, cl, &edit, err))
            goto out;
    }

    /* verdict, with the reasons that decided it */
    ev = cJSON_CreateObject();
    cJSON *reasons = cJSON_AddArrayToObject(ev, "reasons");
    char r[200];
    const char *verdict = "novel";
    size_t need = cont_words < (size_t)o->extract_words ? cont_words : (size_t)o->extract_words;
    if (pid && q.len && need > 0 && exact >= need) {
        snprintf(r, sizeof r, "exact prefix of %zu words >= %zu", exact, need);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(r));
        verdict = "verbatim";
    }
    if ((int64_t)longest.words >= o->verbatim_span_words) {
        snprintf(r, sizeof r, "corpus span of %llu words >= %d", (unsigned long long)longest.words,
                 o->verbatim_span_words);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(r));
        verdict = "verbatim";
    }
    if (!strcmp(verdict, "novel")) {
        if (pid && q.len && rouge >= o->near_rouge) {
            snprintf(r, sizeof r, "ROUGE-L F1 %.3f >= %.3f", rouge, o->near_rouge);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(r));
            verdict = "near-verbatim";
        }
        if (pid && q.len && edit >= o->near_edit) {
            snprintf(r, sizeof r, "edit similarity %.3f >= %.3f", edit, o->near_edit);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(r));
            verdict = "near-verbatim";
        }
        if ((int64_t)longest.words >= o->near_span_words) {
            snprintf(r, sizeof r, "corpus span of %llu words >= %d", (unsigned long long)longest.words,
                     o->near_span_words);
            cJSON_AddItemToArray(reasons, cJSON_CreateString(r));
            verdict = "near-verbatim";
        }
    }
    if (!strcmp(verdict, "verbatim")) A->st->verbatim++;
    else if (!strcmp(verdict, "near-verbatim")) A->st->near_verbatim++;
    else A->st->novel++;
    cJSON_AddBoolToObject(ev, "unknown_prompt", !pid);
    cJSON_AddNumberToObject(ev, "completion_words", (double)q.n_words);
    cJSON_AddNumberToObject(ev, "continuation_words", (double)cont_words);
    cJSON_AddNumberToObject(ev, "invalid_utf8", (double)q.n_invalid);
    cJSON_AddNumberToObject(ev, "span_search_bytes", (double)qn);
    cJSON *set = cJSON_AddObjectToObject(ev, "settings");
    cJSON_AddNumberToObject(set, "min_span_words", o->min_span_words);
    cJSON_AddNumberToObject(set, "extract_words", o->extract_words);
    cJSON_AddNumberToObject(set, "verbatim_span_words", o->verbatim_span_words);
    cJSON_AddNumberToObject(set, "near_span_words", o->near_span_words);
    cJSON_AddNumberToObject(set, "near_rouge", o->near_rouge);
    cJSON_AddNumberToObject(set, "near_edit", o->near_edit);
    if (!(evs = cJSON_PrintUnformatted(ev))) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }

    sqlite3_stmt *st = A->ins_comp;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, A->st->audit_id);
    sqlite3_bind_int64(st, 2, lineno);
    if (key) sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
    if (pid) sqlite3_bind_int64(st, 4, pid);
    if (model) sqlite3_bind_text(st, 5, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, comp, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(A->s, err, "insert text_completions");
        goto out;
    }
    int64_t cid = sqlite3_last_insert_rowid(cs_store_db(A->s));

    st = A->ins_find;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, A->st->audit_id);
    sqlite3_bind_int64(st, 2, cid);
    if (pid) sqlite3_bind_int64(st, 3, pid);
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, verdict, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)longest.chars);
    sqlite3_bind_int64(st, 7, (int64_t)longest.words);
    if (longest.words) {
        cs_text_anchor *a;
        size_t na;
        if (cs_text_doc_anchors(A->s, longest.doc_id, &a, &na, err)) goto out;
        sqlite3_bind_int64(st, 8, longest.doc_id);
        sqlite3_bind_int64(st, 9, (int64_t)cs_text_orig_offset(a, na, longest.doc_start));
        sqlite3_bind_int64(st, 10, (int64_t)cs_text_orig_offset(a, na, longest.doc_end));
        sqlite3_bind_int64(st, 11, (int64_t)cs_text_orig_offset(q.anchors, q.n_anchors, longest.q_start));
        sqlite3_bind_int64(st, 12, (int64_t)cs_text_orig_offset(q.anchors, q.n_anchors, longest.q_end));
        free(a);
    }
    sqlite3_bind_int64(st, 13, (int64_t)n_spans);
    if (pid) {
        sqlite3_bind_int64(st, 14, (int64_t)exact);
        sqlite3_bind_double(st, 15, rouge);
        sqlite3_bind_double(st, 16, edit);
    }
    sqlite3_bind_text(st, 17, evs, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(A->s, err, "insert text_findings");
        goto out;
    }
    int64_t fid = sqlite3_last_insert_rowid(cs_store_db(A->s));
    for (size_t i = 0; i < n_spans; i++)
        if (insert_span(A, fid, (int)i, &spans[i], &q, err)) goto out;
    A->st->completions++;
    rc = 0;
out:
    cs_text_norm_free(&q);
    free(spans);
    free(cont);
    free(evs);
    cJSON_Delete(ev);
    return rc;
}

int cs_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *opts,
                  cs_text_audit_stats *stats, cs_err *err) {
    cs_text_audit_opts dflt;
    cs_text_audit_defaults(&dflt);
    const cs_text_audit_opts *o = opts ? opts : &dflt;
    cs_text_audit_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: cannot open: %s", path, strerror(errno));
    auditor A = {.s = s, .c = c, .o = o, .st = stats};
    int rc = -1;
    char *line = NULL, *settings = NULL;
    size_t cap = 0;
    cs_progress *prog = NULL;
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddNumberToObject(sj, "min_span_words", o->min_span_words);
    cJSON_AddNumberToObject(sj, "extract_words", o->extract_words);
    cJSON_AddNumberToObject(sj, "verbatim_span_words", o->verbatim_span_words);
    cJSON_AddNumberToObject(sj, "near_span_words", o->near_span_words);
    cJSON_AddNumberToObject(sj, "near_rouge", o->near_rouge);
    cJSON_AddNumberToObject(sj, "near_edit", o->near_edit);
    settings = cJSON_PrintUnformatted(sj);
    cJSON_Delete(sj);
    if (!settings) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_store_prepare(s, &A.by_key, "SELECT id, continuation FROM text_prompts WHERE key = ?", err) ||
        cs_store_prepare(s, &A.by_prompt,
                         "SELECT id, continuation FROM text_prompts WHERE prompt = ? ORDER BY id LIMIT 1", err) ||
        cs_store_prepare(s, &A.ins_comp,
                         "INSERT INTO text_completions(audit_id, line, prompt_key, prompt_id, model, completion) "
                         "VALUES (?,?,?,?,?,?)",
                         err) ||
        cs_store_prepare(s, &A.ins_find,
                         "INSERT INTO text_findings(audit_id, completion_id, prompt_id, status, verdict, "
                         "longest_chars, longest_words, longest_doc_id, longest_doc_start, longest_doc_end, "
                         "longest_comp_start, longest_comp_end, n_spans, exact_prefix_words, rouge_l_f1, "
                         "edit_sim, evidence_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         err) ||
        cs_store_prepare(s, &A.ins_span,
                         "INSERT INTO text_spans(finding_id, rank, comp_start, comp_end, chars, words, doc_id, "
                         "doc_start, doc_end, text) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         err))
        goto out;
    if (cs_store_begin(s, err)) goto out;
    {
        sqlite3_stmt *ins;
        if (cs_store_prepare(s, &ins, "INSERT INTO text_audits(source, settings_json) VALUES (?, ?)", err)) goto out;
        sqlite3_bind_text(ins, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, settings, -1, SQLITE_STATIC);
        int r = sqlite3_step(ins);
        sqlite3_finalize(ins);
        if (r != SQLITE_DONE) {
            cs_store_fail(s, err, "insert text_audits");
            goto out;
        }
        stats->audit_id = sqlite3_last_insert_rowid(cs_store_db(s));
    }
    struct stat fst;
    if (o->progress) prog = cs_progress_start("text audit", fstat(fileno(f), &fst) ? 0 : (int64_t)fst.st_size, "B");
    ssize_t k;
    int64_t lineno = 0, in_batch = 0;
    while ((k = getline(&line, &cap, f)) >= 0) {
        lineno++;
        cs_progress_add(prog, k);
        size_t i = 0;
        while (i < (size_t)k && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
        if (i == (size_t)k) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)k);
        if (!j || !cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "completion"))) {
            stats->bad_lines++;
            notef(o->note, o->note_ctx, "%s:%lld: %s (skipped)", path, (long long)lineno,
                  !j || !cJSON_IsObject(j) ? "not a JSON object" : "no \"completion\" string");
            cJSON_Delete(j);
            continue;
        }
        int r = audit_line(&A, j, lineno, path, err);
        cJSON_Delete(j);
        if (r) goto out;
        if (++in_batch == 256) { /* commit in batches */
            if (cs_store_commit(s, err) || cs_store_begin(s, err)) goto out;
            in_batch = 0;
        }
    }
    if (ferror(f)) {
        cs_fail(err, CS_EIO, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (cs_store_commit(s, err)) goto out;
    rc = 0;
out:
    if (rc) cs_store_rollback(s);
    cs_progress_end(prog);
    sqlite3_finalize(A.by_key);
    sqlite3_finalize(A.by_prompt);
    sqlite3_finalize(A.ins_comp);
    sqlite3_finalize(A.ins_find);
    sqlite3_finalize(A.ins_span);
    free(settings);
    free(line);
    fclose(f);
    return rc;
}
