/* md.c — a Markdown summary for pasting into an issue or a paper: verdict
 * counts, the most memorised prompts, the most severe findings, text
 * findings. Cells are escaped (cs_esc_md): no raw HTML, no Markdown from
 * the data. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "reports/escape.h"
#include "reports/evidence_text.h"
#include "reports/formats.h"

#define MD_PROMPTS 50
#define MD_FINDINGS 25

static void cell(cs_buf *b, const char *s) {
    cs_buf_puts(b, " ");
    cs_esc_md(b, s ? s : "");
    cs_buf_puts(b, " |");
}

static int cmp_rate(const void *a, const void *b) {
    const cs_rprompt *x = *(cs_rprompt *const *)a, *y = *(cs_rprompt *const *)b;
    double rx = isnan(x->rate) ? -1 : x->rate, ry = isnan(y->rate) ? -1 : y->rate;
    if (rx != ry) return rx > ry ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Long: the document's sections in reading order, each a few lines of output. */
void cs_report_md(cs_buf *b, const cs_rmodel *m, const cs_report_opts *o) {
    cs_buf_puts(b, "# copyscope report");
    if (m->has_run) cs_buf_printf(b, ": run %lld", (long long)m->run_id);
    cs_buf_puts(b, "\n\n");
    if (m->has_run) {
        cs_buf_puts(b, "Suite ");
        cs_esc_md(b, m->suite_name ? m->suite_name : m->suite ? m->suite : "(none)");
        if (m->suite_name && m->suite) {
            cs_buf_puts(b, " (");
            cs_esc_md(b, m->suite);
            cs_buf_puts(b, ")");
        }
        cs_buf_puts(b, ", model ");
        cs_esc_md(b, m->model ? m->model : "(unknown)");
        cs_buf_printf(b, ": %lld generations, %lld findings", (long long)m->n_generations, (long long)m->n_f);
        if (m->analysis_id) {
            cs_buf_printf(b, ", compared against %lld references (descriptors ", (long long)m->n_refs);
            cs_esc_md(b, m->descriptors ? m->descriptors : "");
            cs_buf_puts(b, ")");
        }
        cs_buf_printf(b, ". Generated %s by ", m->generated);
        cs_esc_md(b, o->generator ? o->generator : "copyscope");
        cs_buf_puts(b, ".\n\n");
        cs_esc_md(b, cs_rseverity_scale);
        cs_buf_puts(b, " Tiled L2 is the worst tile's RMS difference on 0-1 grey (0 = identical).\n\n| Verdict | Findings | Share |\n|---|---:|---:|\n");
        for (int v = 0; v <= CS_RV_N; v++) {
            if (v == CS_RV_N && !m->count[v]) break;
            cs_buf_printf(b, "| %s | %lld | ", v < CS_RV_N ? cs_rv_names[v] : "other", (long long)m->count[v]);
            if (m->n_f) cs_buf_printf(b, "%.1f%%", 100.0 * (double)m->count[v] / (double)m->n_f);
            cs_buf_puts(b, " |\n");
        }
        if (m->n_p) {
            const cs_rprompt **ord = malloc(sizeof *ord * (size_t)m->n_p);
            if (!ord) {
                b->oom = 1;
                return;
            }
            for (int64_t i = 0; i < m->n_p; i++) ord[i] = &m->p[i];
            qsort(ord, (size_t)m->n_p, sizeof *ord, cmp_rate);
            int64_t n = m->n_p < MD_PROMPTS ? m->n_p : MD_PROMPTS;
            cs_buf_printf(b, "\n## Prompts (%lld most memorised of %lld)\n\n"
                             "| Prompt | Key | Gen. | copy | near-copy | partial | novel | Memorisation rate |\n"
                             "|---|---|---:|---:|---:|---:|---:|---:|\n", (long long)n, (long long)m->n_p);
            for (int64_t i = 0; i < n; i++) {
                const cs_rprompt *p = ord[i];
                cs_buf_puts(b, "|");
                cell(b, p->text);
                cell(b, p->key);
                cs_buf_printf(b, " %lld | %lld | %lld | %lld | %lld | ", (long long)p->n_generations,
                              (long long)p->count[0], (long long)p->count[1], (long long)p->count[2],
                              (long long)p->count[3]);
                if (!isnan(p->rate)) cs_buf_printf(b, "%.0f%%", 100 * p->rate);
                cs_buf_puts(b, " |\n");
            }
            free(ord);
        }
        int64_t n = m->n_f < MD_FINDINGS ? m->n_f : MD_FINDINGS;
        if (n) {
            cs_buf_printf(b, "\n## Most severe findings (%lld of %lld)\n\n| # | Verdict | Severity (0-4) | Prompt | "
                             "Reference | Caption | Scores to that reference | Why |\n|---:|---|---:|---|---|---|---|---|\n",
                          (long long)n, (long long)m->n_f);
            for (int64_t i = 0; i < n; i++) {
                const cs_rfinding *f = &m->f[i];
                cs_buf_printf(b, "| %lld |", (long long)f->rank);
                cell(b, f->verdict);
                cs_buf_printf(b, " %.3f |", f->severity);
                cell(b, f->prompt_text);
                cell(b, f->ref_source);
                cell(b, f->ref_caption);
                cs_buf_puts(b, " ");
                for (int d = 0; d < m->n_desc; d++) {
                    if (isnan(f->ref_scores[d])) continue;
                    cs_esc_md(b, m->desc[d]);
                    cs_buf_printf(b, " %.4g%s (", f->ref_scores[d], cs_rdesc_of(m->desc[d]));
                    cs_esc_md(b, cs_rdesc_unit(m->desc[d]));
                    cs_buf_puts(b, "); ");
                }
                cs_buf_puts(b, "|");
                cJSON *ev = f->evidence_json ? cJSON_Parse(f->evidence_json) : NULL;
                cs_buf rule = {0};
                cs_rev_rule(&rule, ev, f->verdict, &m->th);
                cell(b, rule.p);
                cs_buf_free(&rule);
                cJSON_Delete(ev);
                cs_buf_puts(b, "\n");
            }
        }
    }
    if (m->n_t) {
        cs_buf_printf(b, "\n## Text findings\n\n%lld completions audited: %lld verbatim, %lld near-verbatim, "
                         "%lld novel.\n\n| Verdict | Longest span (words) | Exact prefix (words) | ROUGE-L | "
                         "Prompt id | Source |\n|---|---:|---:|---:|---|---|\n",
                      (long long)m->n_t, (long long)m->text_count[0], (long long)m->text_count[1],
                      (long long)m->text_count[2]);
        int64_t n = m->n_t < MD_FINDINGS ? m->n_t : MD_FINDINGS;
        for (int64_t i = 0; i < n; i++) {
            const cs_rtext *t = &m->t[i];
            cs_buf_puts(b, "|");
            cell(b, t->verdict);
            cs_buf_printf(b, " %lld | ", (long long)t->longest_words);
            if (t->exact_prefix_words >= 0) cs_buf_printf(b, "%lld", (long long)t->exact_prefix_words);
            cs_buf_puts(b, " | ");
            if (!isnan(t->rouge_l_f1)) cs_buf_printf(b, "%.3f", t->rouge_l_f1);
            cs_buf_puts(b, " |");
            cell(b, t->prompt_key);
            cell(b, t->doc_name ? t->doc_name : t->doc_source);
            cs_buf_puts(b, "\n");
        }
    }
    if (m->attribution) {
        cs_buf_puts(b, "\nReference images: ");
        cs_esc_md(b, m->attribution);
        cs_buf_puts(b, "\n");
    }
}
