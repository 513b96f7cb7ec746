/* csv.c — one row per finding, image and text alike (RFC 4180: CRLF line
 * ends, fields quoted when they hold a comma, quote or line break, quotes
 * doubled). The first column, kind, says which: "image" rows (a run's
 * findings, most severe first) fill the image columns, then "text" rows (the
 * text audit's findings, most verbatim first) fill the text columns; the
 * columns of the other kind stay empty. The columns are listed in
 * reports/report-schema.md; one top1_<descriptor> column per descriptor the
 * run's matches hold. */
#include <cjson/cJSON.h>
#include <math.h>

#include "reports/escape.h"
#include "reports/evidence_text.h"
#include "reports/formats.h"

static void num(cs_buf *b, double v) {
    if (isfinite(v)) cs_buf_printf(b, "%.9g", v);
}

static void id(cs_buf *b, int64_t v) {
    if (v) cs_buf_printf(b, "%lld", (long long)v);
}

/* n empty fields, each preceded by its comma */
static void empty(cs_buf *b, int n) {
    for (int i = 0; i < n; i++) cs_buf_putc(b, ',');
}

#define N_TEXT_COLS 15 /* text_audit_id ... completions_file */

/* The spans as a JSON array of integer objects (no strings: always valid
 * JSON, and the span's text is completion[comp_start, comp_end) in bytes). */
static void spans_json(cs_buf *b, const cs_rtext *t) {
    cs_buf s = {0};
    cs_buf_putc(&s, '[');
    for (int i = 0; i < t->n_spans; i++) {
        const cs_rspan *p = &t->spans[i];
        cs_buf_printf(&s,
                      "%s{\"comp_start\":%lld,\"comp_end\":%lld,\"chars\":%lld,\"words\":%lld,\"doc_id\":%lld,"
                      "\"doc_start\":%lld,\"doc_end\":%lld}",
                      i ? "," : "", (long long)p->comp_start, (long long)p->comp_end, (long long)p->chars,
                      (long long)p->words, (long long)p->doc_id, (long long)p->doc_start, (long long)p->doc_end);
    }
    cs_buf_putc(&s, ']');
    if (s.oom) b->oom = 1;
    else cs_esc_csv(b, s.p);
    cs_buf_free(&s);
}

/* ",value" — one more column after a comma. */
static void col_str(cs_buf *b, const char *s) {
    cs_buf_putc(b, ',');
    cs_esc_csv(b, s);
}
static void col_id(cs_buf *b, int64_t v) {
    cs_buf_putc(b, ',');
    id(b, v);
}
static void col_num(cs_buf *b, double v) {
    cs_buf_putc(b, ',');
    num(b, v);
}

static void image_row(cs_buf *b, const cs_rmodel *m, const cs_rfinding *f) {
    cs_buf_printf(b, "image,%lld,%lld,", (long long)f->id, (long long)f->rank);
    cs_esc_csv(b, f->verdict);
    col_num(b, f->severity);
    cs_buf_printf(b, ",%lld,", (long long)f->generation_id);
    cs_esc_csv(b, f->gen_path);
    cs_buf_printf(b, ",%lld,%lld,", (long long)f->seed, (long long)f->sample);
    num(b, f->whitebox);
    col_id(b, f->prompt_id);
    col_str(b, f->prompt_key);
    col_str(b, f->prompt_text);
    col_id(b, f->ref_id);
    col_str(b, f->ref_source);
    col_str(b, f->ref_caption);
    cs_buf_printf(b, ",%lld,", (long long)m->run_id);
    cs_esc_csv(b, m->model);
    for (int d = 0; d < m->n_desc; d++) {
        cs_buf_putc(b, ',');
        num(b, f->scores[d]);
    }
    col_str(b, f->evidence_json);
    empty(b, N_TEXT_COLS);
    /* rule_text: the verdict's rule as a sentence (reports/evidence_text.h) */
    cJSON *ev = f->evidence_json ? cJSON_Parse(f->evidence_json) : NULL;
    cs_buf rule = {0};
    cs_rev_rule(&rule, ev, f->verdict, &m->th);
    if (rule.oom) b->oom = 1;
    col_str(b, rule.p ? rule.p : "");
    cs_buf_free(&rule);
    cJSON_Delete(ev);
    cs_buf_puts(b, "\r\n");
}

static void text_row(cs_buf *b, const cs_rmodel *m, const cs_rtext *t, int64_t rank) {
    cs_buf_printf(b, "text,%lld,%lld,", (long long)t->id, (long long)rank);
    cs_esc_csv(b, t->verdict);
    empty(b, 6); /* severity, generation_id, generation_path, seed, sample, whitebox */
    col_id(b, t->prompt_id);
    col_str(b, t->prompt_key);
    col_str(b, t->prompt);
    empty(b, 4); /* ref_id, ref_source, ref_caption, run_id */
    col_str(b, t->model);
    empty(b, m->n_desc);
    col_str(b, t->evidence_json);
    cs_buf_printf(b, ",%lld,%lld,", (long long)t->audit_id, (long long)t->completion_id);
    cs_esc_csv(b, t->status);
    col_id(b, t->doc_id);
    col_str(b, t->doc_name);
    col_str(b, t->doc_source);
    cs_buf_printf(b, ",%lld,%lld,", (long long)t->longest_chars, (long long)t->longest_words);
    if (t->exact_prefix_words >= 0) cs_buf_printf(b, "%lld", (long long)t->exact_prefix_words);
    col_num(b, t->rouge_l_f1);
    col_num(b, t->edit_sim);
    cs_buf_putc(b, ',');
    spans_json(b, t);
    col_str(b, t->completion);
    col_str(b, t->continuation);
    col_str(b, t->audit_source);
    cs_buf_puts(b, ",\r\n"); /* rule_text: images only */
}

void cs_report_csv(cs_buf *b, const cs_rmodel *m) {
    cs_buf_puts(b, "kind,finding_id,rank,verdict,severity,generation_id,generation_path,seed,sample,whitebox,"
                   "prompt_id,prompt_key,prompt,ref_id,ref_source,ref_caption,run_id,model");
    for (int d = 0; d < m->n_desc; d++) {
        cs_buf_putc(b, ',');
        cs_buf t = {0};
        cs_buf_puts(&t, "top1_");
        cs_buf_puts(&t, m->desc[d]);
        if (t.oom) b->oom = 1;
        else cs_esc_csv(b, t.p);
        cs_buf_free(&t);
    }
    /* N_TEXT_COLS columns after evidence_json */
    cs_buf_puts(b, ",evidence_json,text_audit_id,completion_id,status,doc_id,doc_name,doc_source,longest_chars,"
                   "longest_words,exact_prefix_words,rouge_l_f1,edit_sim,spans_json,completion,continuation,"
                   "completions_file,rule_text\r\n");
    for (int64_t i = 0; i < m->n_f; i++) image_row(b, m, &m->f[i]);
    for (int64_t i = 0; i < m->n_t; i++) text_row(b, m, &m->t[i], i + 1);
}
