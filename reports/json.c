/* json.c — the JSON report: everything the HTML shows, as data, in the
 * versioned schema of reports/report-schema.md ("schema_version": 1). Built
 * with cJSON from strings repaired to valid UTF-8 first. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reports/escape.h"
#include "reports/evidence_text.h"
#include "reports/formats.h"
#include "reports/memo.h"
#include "reports/svg.h"

static void add_str(cJSON *o, const char *k, const char *s) {
    if (!s) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    cs_buf b = {0};
    cs_esc_utf8(&b, s);
    cJSON_AddStringToObject(o, k, b.p ? b.p : "");
    cs_buf_free(&b);
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_id(cJSON *o, const char *k, int64_t id) {
    if (id) cJSON_AddNumberToObject(o, k, (double)id);
    else cJSON_AddNullToObject(o, k);
}

/* A stored JSON text as JSON when it parses, else as a string. */
static void add_json(cJSON *o, const char *k, const char *text) {
    if (!text) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    cs_buf b = {0};
    cs_esc_utf8(&b, text);
    cJSON *v = b.p ? cJSON_Parse(b.p) : NULL;
    if (v) cJSON_AddItemToObject(o, k, v);
    else cJSON_AddStringToObject(o, k, b.p ? b.p : "");
    cs_buf_free(&b);
}

static cJSON *hist_json(const double *v, int64_t n) {
    cs_hist h;
    cs_hist_compute(&h, v, n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "lo", h.lo);
    cJSON_AddNumberToObject(o, "hi", h.hi);
    cJSON_AddNumberToObject(o, "n", (double)h.n);
    cJSON *c = cJSON_AddArrayToObject(o, "counts");
    for (int k = 0; k < CS_HIST_BINS; k++) cJSON_AddItemToArray(c, cJSON_CreateNumber((double)h.count[k]));
    return o;
}

static void counts_json(cJSON *o, const char *k, const int64_t *count) {
    cJSON *c = cJSON_AddObjectToObject(o, k);
    for (int v = 0; v < CS_RV_N; v++) cJSON_AddNumberToObject(c, cs_rv_names[v], (double)count[v]);
    cJSON_AddNumberToObject(c, "other", (double)count[CS_RV_N]);
}

static cJSON *finding_json(const cs_rmodel *m, const cs_rfinding *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)f->id);
    cJSON_AddNumberToObject(o, "rank", (double)f->rank);
    cJSON_AddBoolToObject(o, "in_gallery", f->in_gallery);
    add_str(o, "verdict", f->verdict);
    cJSON_AddNumberToObject(o, "severity", f->severity);
    cJSON *g = cJSON_AddObjectToObject(o, "generation");
    cJSON_AddNumberToObject(g, "id", (double)f->generation_id);
    add_str(g, "path", f->gen_path);
    cJSON_AddNumberToObject(g, "seed", (double)f->seed);
    cJSON_AddNumberToObject(g, "sample", (double)f->sample);
    add_json(g, "settings", f->gen_settings);
    add_num(g, "whitebox", f->whitebox);
    if (f->prompt_id) {
        cJSON *p = cJSON_AddObjectToObject(o, "prompt");
        cJSON_AddNumberToObject(p, "id", (double)f->prompt_id);
        add_str(p, "key", f->prompt_key);
        add_str(p, "text", f->prompt_text);
        add_str(p, "kind", f->prompt_kind);
    } else {
        cJSON_AddNullToObject(o, "prompt");
    }
    if (f->ref_id) {
        cJSON *r = cJSON_AddObjectToObject(o, "ref");
        cJSON_AddNumberToObject(r, "id", (double)f->ref_id);
        add_str(r, "source", f->ref_source);
        add_str(r, "caption", f->ref_caption);
    } else {
        cJSON_AddNullToObject(o, "ref");
    }
    cJSON *sc = cJSON_AddObjectToObject(o, "scores");
    for (int d = 0; d < m->n_desc; d++) {
        if (isnan(f->scores[d])) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "score", f->scores[d]);
        add_id(e, "ref_id", f->score_refs[d]);
        cs_buf b = {0};
        cs_esc_utf8(&b, m->desc[d]);
        cJSON_AddItemToObject(sc, b.p ? b.p : "", e);
        cs_buf_free(&b);
    }
    /* the same scores for the finding's own reference (what the HTML shows beside it) */
    cJSON *rs = cJSON_AddObjectToObject(o, "ref_scores");
    for (int d = 0; d < m->n_desc && f->ref_id; d++) {
        if (isnan(f->ref_scores[d])) continue;
        cs_buf b = {0};
        cs_esc_utf8(&b, m->desc[d]);
        cJSON_AddNumberToObject(rs, b.p ? b.p : "", f->ref_scores[d]);
        cs_buf_free(&b);
    }
    cJSON *ev = f->evidence_json ? cJSON_Parse(f->evidence_json) : NULL;
    cs_buf rule = {0};
    cs_rev_rule(&rule, ev, f->verdict, &m->th);
    add_str(o, "rule_text", rule.p ? rule.p : "");
    cs_buf_free(&rule);
    cs_buf sent = {0};
    cs_rev_sentences(&sent, ev, &m->th);
    cJSON *ss = cJSON_AddArrayToObject(o, "evidence_text");
    for (char *line = sent.p; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cs_buf u = {0};
        cs_esc_utf8(&u, line);
        cJSON_AddItemToArray(ss, cJSON_CreateString(u.p ? u.p : ""));
        cs_buf_free(&u);
        line = nl ? nl + 1 : line + strlen(line);
    }
    cs_buf_free(&sent);
    cJSON_Delete(ev);
    add_json(o, "evidence", f->evidence_json);
    cJSON *nb = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "evidence"), "neighbours"); /* analyze's top-k */
    cJSON_AddItemToObject(o, "neighbours", nb ? cJSON_Duplicate(nb, 1) : cJSON_CreateArray());
    return o;
}

/* The analysis behind the findings: index size and the thresholds used. */
static void analysis_json(cJSON *root, const cs_rmodel *m) {
    if (!m->analysis_id) {
        cJSON_AddNullToObject(root, "analysis");
        return;
    }
    cJSON *a = cJSON_AddObjectToObject(root, "analysis");
    cJSON_AddNumberToObject(a, "id", (double)m->analysis_id);
    cJSON_AddNumberToObject(a, "n_refs", (double)m->n_refs);
    add_str(a, "descriptors", m->descriptors);
    cJSON *t = cJSON_AddObjectToObject(a, "thresholds");
    const cs_rthresh *h = &m->th;
    add_num(t, "copy_tl2", h->copy_tl2);
    add_num(t, "near_tl2", h->near_tl2);
    add_num(t, "pdq_near", h->pdq_near);
    add_num(t, "embed_near", h->embed_near);
    add_num(t, "ratio_max", h->ratio_max);
    add_num(t, "ratio_tl2", h->ratio_tl2);
    add_num(t, "partial_tile_l2", h->partial_tile_l2);
    add_num(t, "partial_min_tiles", h->partial_min_tiles);
    add_num(t, "partial_min_frac", h->partial_min_frac);
    add_str(a, "severity_scale", cs_rseverity_scale);
}

static cJSON *text_json(const cs_rtext *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    cJSON_AddNumberToObject(o, "audit_id", (double)t->audit_id);
    cJSON_AddNumberToObject(o, "completion_id", (double)t->completion_id);
    cJSON_AddBoolToObject(o, "in_gallery", t->in_gallery);
    add_str(o, "status", t->status);
    add_str(o, "verdict", t->verdict);
    add_str(o, "prompt_key", t->prompt_key);
    add_str(o, "prompt", t->prompt);
    add_str(o, "completion", t->completion);
    add_str(o, "continuation", t->continuation);
    add_str(o, "model", t->model);
    add_str(o, "completions_file", t->audit_source);
    if (t->doc_id) {
        cJSON *d = cJSON_AddObjectToObject(o, "doc");
        cJSON_AddNumberToObject(d, "id", (double)t->doc_id);
        add_str(d, "name", t->doc_name);
        add_str(d, "source", t->doc_source);
    } else {
        cJSON_AddNullToObject(o, "doc");
    }
    cJSON_AddNumberToObject(o, "longest_chars", (double)t->longest_chars);
    cJSON_AddNumberToObject(o, "longest_words", (double)t->longest_words);
    add_num(o, "exact_prefix_words", t->exact_prefix_words >= 0 ? (double)t->exact_prefix_words : NAN);
    add_num(o, "rouge_l_f1", t->rouge_l_f1);
    add_num(o, "edit_sim", t->edit_sim);
    cJSON *sp = cJSON_AddArrayToObject(o, "spans");
    for (int i = 0; i < t->n_spans; i++) {
        const cs_rspan *s = &t->spans[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "comp_start", (double)s->comp_start);
        cJSON_AddNumberToObject(e, "comp_end", (double)s->comp_end);
        cJSON_AddNumberToObject(e, "chars", (double)s->chars);
        cJSON_AddNumberToObject(e, "words", (double)s->words);
        cJSON_AddNumberToObject(e, "doc_id", (double)s->doc_id);
        add_str(e, "doc", s->doc_name);
        cJSON_AddNumberToObject(e, "doc_start", (double)s->doc_start);
        cJSON_AddNumberToObject(e, "doc_end", (double)s->doc_end);
        add_str(e, "text", s->text);
        cJSON_AddItemToArray(sp, e);
    }
    add_json(o, "evidence", t->evidence_json);
    return o;
}

/* Long: the schema's top-level keys in order (report-schema.md), one block each. */
int cs_report_json(cs_buf *b, const cs_rmodel *m, const cs_report_opts *o, cs_err *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    cJSON_AddNumberToObject(root, "schema_version", CS_REPORT_SCHEMA_VERSION);
    add_str(root, "generator", o->generator ? o->generator : "copyscope");
    add_str(root, "generated", m->generated);
    add_str(root, "store", m->db_name);
    add_str(root, "attribution", m->attribution);
    cJSON_AddNumberToObject(root, "gallery_top", (double)m->top);
    if (m->has_run) {
        cJSON *r = cJSON_AddObjectToObject(root, "run");
        cJSON_AddNumberToObject(r, "id", (double)m->run_id);
        add_str(r, "suite", m->suite);
        add_str(r, "suite_name", m->suite_name);
        add_str(r, "started", m->started);
        add_str(r, "finished", m->finished);
        add_str(r, "command", m->command);
        add_str(r, "model", m->model);
        add_str(r, "model_sha256", m->model_sha256);
        add_json(r, "settings", m->run_settings);
        cJSON_AddNumberToObject(r, "n_generations", (double)m->n_generations);
        cJSON_AddNumberToObject(r, "n_findings", (double)m->n_f);
    } else {
        cJSON_AddNullToObject(root, "run");
    }
    if (m->has_run) analysis_json(root, m);
    counts_json(root, "counts", m->count);
    cJSON *ds = cJSON_AddArrayToObject(root, "descriptors");
    for (int d = 0; d < m->n_desc; d++) {
        cs_buf t = {0};
        cs_esc_utf8(&t, m->desc[d]);
        cJSON_AddItemToArray(ds, cJSON_CreateString(t.p ? t.p : ""));
        cs_buf_free(&t);
    }
    /* histograms, as drawn in the HTML */
    cJSON *hs = cJSON_AddObjectToObject(root, "histograms");
    cJSON *top1 = cJSON_AddArrayToObject(hs, "top1");
    double *v = malloc(sizeof *v * (size_t)(m->n_f ? m->n_f : 1));
    if (!v) {
        cJSON_Delete(root);
        return cs_fail(err, CS_ENOMEM, "report: out of memory");
    }
    for (int d = 0; d < m->n_desc; d++) {
        for (int64_t i = 0; i < m->n_f; i++) v[i] = m->f[i].scores[d];
        cJSON *h = hist_json(v, m->n_f);
        add_str(h, "descriptor", m->desc[d]);
        add_str(h, "scale", cs_rdesc_scale(m->desc[d]));
        double tv[2];
        char tl[2][48];
        int nt = cs_rdesc_thresholds(m->desc[d], &m->th, tv, tl);
        cJSON *ta = cJSON_AddArrayToObject(h, "thresholds");
        for (int k = 0; k < nt; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "value", tv[k]);
            add_str(e, "label", tl[k]);
            cJSON_AddItemToArray(ta, e);
        }
        cJSON_AddItemToArray(top1, h);
    }
    for (int64_t i = 0; i < m->n_f; i++) v[i] = m->f[i].whitebox;
    cJSON_AddItemToObject(hs, "whitebox", hist_json(v, m->n_f));
    free(v);
    cJSON *ps = cJSON_AddArrayToObject(root, "prompts");
    for (int64_t i = 0; i < m->n_p; i++) {
        const cs_rprompt *p = &m->p[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", (double)p->id);
        add_str(e, "key", p->key);
        add_str(e, "text", p->text);
        add_str(e, "kind", p->kind);
        cJSON_AddNumberToObject(e, "n_generations", (double)p->n_generations);
        cJSON_AddNumberToObject(e, "n_findings", (double)p->n_findings);
        counts_json(e, "counts", p->count);
        add_num(e, "memorisation_rate", p->rate);
        add_num(e, "max_similarity", p->max_similarity);
        add_num(e, "min_tl2", p->min_tl2);
        add_num(e, "mean_whitebox", p->mean_whitebox);
        add_num(e, "largest_clique", p->largest_clique >= 0 ? (double)p->largest_clique : NAN);
        add_id(e, "first_gallery_finding", p->first_gallery);
        cJSON_AddItemToArray(ps, e);
    }
    cs_memo_json(root, m->memo);
    cJSON *fs = cJSON_AddArrayToObject(root, "findings");
    for (int64_t i = 0; i < m->n_f; i++) cJSON_AddItemToArray(fs, finding_json(m, &m->f[i]));
    cJSON *tx = cJSON_AddObjectToObject(root, "text");
    cJSON *tc = cJSON_AddObjectToObject(tx, "counts");
    cJSON_AddNumberToObject(tc, "verbatim", (double)m->text_count[0]);
    cJSON_AddNumberToObject(tc, "near-verbatim", (double)m->text_count[1]);
    cJSON_AddNumberToObject(tc, "novel", (double)m->text_count[2]);
    cJSON *tf = cJSON_AddArrayToObject(tx, "findings");
    for (int64_t i = 0; i < m->n_t; i++) cJSON_AddItemToArray(tf, text_json(&m->t[i]));
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return cs_fail(err, CS_ENOMEM, "report: out of memory printing JSON");
    cs_buf_puts(b, s);
    cs_buf_putc(b, '\n');
    free(s);
    return 0;
}
