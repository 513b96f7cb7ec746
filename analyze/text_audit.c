/* text_audit.c — the audit of completions: parse -> score -> verdict -> write. */
#include "analyze/text_audit.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analyze/text_audit_internal.h"
#include "analyze/text_lines.h"
#include "analyze/text_norm.h"
#include "analyze/text_metrics.h"
#include "core/fs.h"
#include "core/progress.h"

void cs_text_notef(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...) {
    if (!fn) return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ctx, msg);
}

void cs_text_audit_defaults(cs_text_audit_opts *o) {
    memset(o, 0, sizeof *o);
    o->min_span_words = 10;
    o->extract_words = 50;
    o->verbatim_span_words = 50;
    o->near_span_words = 20;
    o->near_rouge = 0.7;
    o->near_edit = 0.7;
}

/* ---- 1. parse ---- */

static const char *str_item(const cJSON *j, const char *name, char *buf, size_t bl) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsNumber(v)) {
        snprintf(buf, bl, "%.17g", v->valuedouble);
        return buf;
    }
    return NULL;
}

/* Reads one line's fields into in (pointing into *j, which the caller
 * frees). Returns NULL, or why the line is bad. */
const char *cs_text_parse_line(const char *line, size_t k, cJSON **j, cs_text_input *in) {
    memset(in, 0, sizeof *in);
    *j = NULL;
    *j = cJSON_ParseWithLength(line, k);
    if (!*j || !cJSON_IsObject(*j)) return "not a JSON object";
    in->id = str_item(*j, "id", in->idbuf, sizeof in->idbuf);
    if (!in->id) in->id = str_item(*j, "prompt_id", in->idbuf, sizeof in->idbuf);
    if (cs_text_json_has_nul(line, k)) return "a JSON string holds \\u0000 (NUL): not text";
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(*j, "completion");
    if (!cJSON_IsString(c)) return "no \"completion\" string";
    in->completion = c->valuestring;
    in->comp_len = strlen(in->completion);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(*j, "prompt");
    if (cJSON_IsString(v)) in->prompt = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(*j, "continuation");
    if (cJSON_IsString(v)) in->continuation = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(*j, "doc");
    if (cJSON_IsString(v)) in->doc = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(*j, "model");
    if (cJSON_IsString(v)) in->model = v->valuestring;
    const char *texts[3] = {in->completion, in->prompt, in->continuation};
    for (int i = 0; i < 3; i++)
        if (texts[i] && cs_text_check(texts[i], strlen(texts[i])) != (size_t)-1) return "a string is not UTF-8 text";
    return NULL;
}

/* ---- 3. verdict ---- */

static void reason(cs_text_reasons *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(cs_text_reasons *r, const char *fmt, ...) {
    if (r->n == CS_TEXT_MAX_REASONS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text[r->n++], sizeof r->text[0], fmt, ap);
    va_end(ap);
}

cs_text_verdict_kind cs_text_verdict(const cs_text_figures *f, const cs_text_audit_opts *o, cs_text_reasons *r) {
    r->n = 0;
    int judged = f->has_cont && !f->empty;
    uint64_t need = f->cont_words < (uint64_t)o->extract_words ? f->cont_words : (uint64_t)o->extract_words;
    cs_text_verdict_kind v = CS_TEXT_NOVEL;
    if (judged && need > 0 && f->exact_prefix >= need) {
        reason(r, "exact prefix of %llu words >= %llu", (unsigned long long)f->exact_prefix,
               (unsigned long long)need);
        v = CS_TEXT_VERBATIM;
    }
    if (f->span_words >= (uint64_t)o->verbatim_span_words) {
        reason(r, "corpus span of %llu words >= %d", (unsigned long long)f->span_words, o->verbatim_span_words);
        v = CS_TEXT_VERBATIM;
    }
    if (v == CS_TEXT_VERBATIM) return v;
    if (judged && f->rouge >= o->near_rouge) {
        reason(r, "ROUGE-L F1 %.3f >= %.3f", f->rouge, o->near_rouge);
        v = CS_TEXT_NEAR_VERBATIM;
    }
    if (judged && f->edit >= o->near_edit) {
        reason(r, "edit similarity %.3f >= %.3f", f->edit, o->near_edit);
        v = CS_TEXT_NEAR_VERBATIM;
    }
    if (f->span_words >= (uint64_t)o->near_span_words) {
        reason(r, "corpus span of %llu words >= %d", (unsigned long long)f->span_words, o->near_span_words);
        v = CS_TEXT_NEAR_VERBATIM;
    }
    return v;
}

const char *cs_text_verdict_name(cs_text_verdict_kind v) {
    return v == CS_TEXT_VERBATIM ? "verbatim" : v == CS_TEXT_NEAR_VERBATIM ? "near-verbatim" : "novel";
}

/* ---- the loop ---- */

char *cs_text_audit_settings_json(const cs_text_audit_opts *o) {
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddNumberToObject(sj, "min_span_words", o->min_span_words);
    cJSON_AddNumberToObject(sj, "extract_words", o->extract_words);
    cJSON_AddNumberToObject(sj, "verbatim_span_words", o->verbatim_span_words);
    cJSON_AddNumberToObject(sj, "near_span_words", o->near_span_words);
    cJSON_AddNumberToObject(sj, "near_rouge", o->near_rouge);
    cJSON_AddNumberToObject(sj, "near_edit", o->near_edit);
    char *s = sj ? cJSON_PrintUnformatted(sj) : NULL;
    cJSON_Delete(sj);
    return s;
}

int cs_text_judge_write(cs_text_auditor *A, const cs_text_input *in, const cs_text_scored *sc, cs_err *err) {
    cs_text_reasons why;
    cs_text_verdict_kind v = cs_text_verdict(&sc->fig, A->o, &why);
    A->st->verbatim += v == CS_TEXT_VERBATIM;
    A->st->near_verbatim += v == CS_TEXT_NEAR_VERBATIM;
    A->st->novel += v == CS_TEXT_NOVEL;
    int rc = cs_text_write(A, in, sc, v, &why, err);
    if (!rc) A->st->completions++;
    return rc;
}

/* One line through the four stages. */
static int audit_line(cs_text_auditor *A, const char *line, size_t k, int64_t lineno, cs_err *err) {
    cJSON *j;
    cs_text_input in;
    const char *bad = cs_text_parse_line(line, k, &j, &in);
    in.line = lineno;
    int rc = 0;
    if (bad) {
        A->st->bad_lines++;
        cs_text_notef(A->o->note, A->o->note_ctx, "%s:%lld: %s (skipped)", A->path, (long long)lineno, bad);
        rc = cs_text_write_bad(A, &in, bad, err);
        cJSON_Delete(j);
        return rc;
    }
    cs_text_scored sc;
    double t0 = cs_now_s();
    rc = cs_text_score(A, &in, &sc, err);
    A->st->seconds_spans += cs_now_s() - t0;
    if (!rc) rc = cs_text_judge_write(A, &in, &sc, err);
    cs_text_scored_free(&sc);
    cJSON_Delete(j);
    return rc;
}

/* An audit against an empty corpus would call every completion novel: an
 * error naming the store instead (the CLI says the same before it opens). */
static int no_text(cs_store *s, cs_err *err) {
    return cs_fail(err, CS_ENOTFOUND, "%s: no text indexed yet (run 'copyscope text index PATH')", cs_store_path(s));
}

int cs_text_audit_loop(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *opts,
                       FILE *out, cs_text_audit_stats *stats, const cs_text_loop_fns *fns, void *ctx, cs_err *err) {
    cs_text_audit_opts dflt;
    cs_text_audit_defaults(&dflt);
    const cs_text_audit_opts *o = opts ? opts : &dflt;
    cs_text_audit_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (c->n_shards == 0) return no_text(s, err);
    /* through zlib: completions.jsonl.gz reads as completions.jsonl */
    gzFile f = gzopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
    cs_text_lines *r = calloc(1, sizeof *r);
    if (!r) {
        gzclose(f);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    r->f = f;
    cs_text_auditor A = {.s = s, .c = c, .o = o, .st = stats, .path = path, .out = out};
    char *line = NULL, *settings = cs_text_audit_settings_json(o);
    size_t cap = 0;
    int rc = -1;
    if (!settings) cs_fail(err, CS_ENOMEM, "out of memory");
    else if (!cs_text_writer_open(&A.w, s, path, settings, err)) rc = 0;
    stats->audit_id = A.w.audit_id;
    if (!rc && fns->start) rc = fns->start(ctx, &A, err);
    struct stat fst;
    cs_progress *prog = NULL;
    if (!rc && o->progress) /* in bytes of the file as stored (compressed for a .gz) */
        prog = cs_progress_start("text audit", stat(path, &fst) ? 0 : (int64_t)fst.st_size, "B");
    ssize_t k = 0;
    int64_t lineno = 0, done = 0;
    while (!rc && (k = cs_text_getline(r, &line, &cap)) > 0) {
        lineno++;
        int64_t at = (int64_t)gzoffset(f);
        if (at > done) cs_progress_add(prog, at - done), done = at;
        size_t bad = cs_text_check(line, (size_t)k);
        if (bad != (size_t)-1) { /* a binary file, or another encoding: never lines of U+FFFD */
            rc = cs_fail(err, CS_EFORMAT, "%s:%lld: not UTF-8 text (%s at byte %zu of the line); a JSONL file of "
                         "completions is UTF-8 text", path, (long long)lineno,
                         line[bad] ? "invalid UTF-8" : "a NUL byte", bad);
            break;
        }
        if (strspn(line, " \t\r\n") == (size_t)k) continue; /* blank line */
        rc = fns->each_line(ctx, &A, line, (size_t)k, lineno, err);
    }
    if (!rc && k < 0)
        rc = !r->err ? cs_fail(err, CS_ENOMEM, "out of memory")
             : cs_text_gz_errno(f) ? cs_fail(err, CS_EIO, "%s: read error: %s", path, strerror(errno))
                                   : cs_fail(err, CS_EFORMAT, "%s: cannot decompress: %s", path, cs_text_gz_error(f, path));
    if (!rc && fns->end) rc = fns->end(ctx, &A, err);
    if (cs_text_writer_close(&A.w, !rc, err)) rc = -1;
    cs_progress_end(prog);
    free(settings);
    free(line);
    free(r);
    gzclose(f);
    return rc;
}

/* One line scored and written at once (cs_text_audit's each_line). */
static int audit_each(void *ctx, cs_text_auditor *A, const char *line, size_t len, int64_t lineno, cs_err *err) {
    (void)ctx;
    int rc = audit_line(A, line, len, lineno, err);
    if (!rc) rc = cs_text_writer_batch(&A->w, err);
    return rc;
}

int cs_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *opts, FILE *out,
                  cs_text_audit_stats *stats, cs_err *err) {
    static const cs_text_loop_fns fns = {NULL, audit_each, NULL};
    return cs_text_audit_loop(s, c, path, opts, out, stats, &fns, NULL, err);
}

int cs_text_audit_text(cs_store *s, const cs_text_corpus *c, const char *source, const char *text, size_t len,
                       const cs_text_audit_opts *o, cs_text_audit_stats *st, cs_err *err) {
    memset(st, 0, sizeof *st);
    if (c->n_shards == 0) return no_text(s, err);
    char *t = strndup(text, len);
    cJSON *j = t ? cJSON_CreateObject() : NULL;
    char *line = NULL;
    if (j && cJSON_AddStringToObject(j, "id", source) && cJSON_AddStringToObject(j, "completion", t))
        line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    free(t);
    char *settings = cs_text_audit_settings_json(o);
    if (!line || !settings) {
        free(line), free(settings);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    cs_text_auditor A = {.s = s, .c = c, .o = o, .st = st, .path = source};
    int rc = cs_text_writer_open(&A.w, s, source, settings, err);
    st->audit_id = A.w.audit_id;
    if (!rc) rc = audit_line(&A, line, strlen(line), 1, err);
    if (cs_text_writer_close(&A.w, !rc, err)) rc = -1;
    free(line), free(settings);
    return rc;
}
