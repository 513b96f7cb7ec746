/* html.c — the self-contained HTML report.
 *
 * One file, no script, no network: pictures are PNG data URIs, histograms
 * inline SVG, CSS inline, and a Content-Security-Policy that forbids
 * everything else. The markup is also well-formed XML (void elements
 * self-closed, only the five predefined entities), so both HTML and XML
 * parsers accept it. Every string from the store goes through cs_esc_html. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/parallel.h"
#include "core/progress.h"
#include "reports/escape.h"
#include "reports/evidence_text.h"
#include "reports/formats.h"
#include "reports/memo.h"
#include "reports/panels.h"
#include "reports/region_svg.h"
#include "reports/svg.h"

static const char css[] =
    ":root{--fg:#1d1f23;--muted:#5d6470;--line:#d9dde3;--bg:#fff;--soft:#f5f6f8;"
    "--copy:#b3261e;--near:#d9640b;--partial:#a87d00;--novel:#2e7d4f;--other:#6b7280}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    ".doc{max-width:1200px;margin:0 auto;padding:24px 32px 48px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;padding-bottom:4px;"
    "border-bottom:2px solid var(--fg)}h3{font-size:15px;margin:20px 0 8px}"
    ".sub{color:var(--muted);margin:0 0 14px}"
    ".head{border-bottom:1px solid var(--line);padding-bottom:14px}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}"
    ".card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:96px;background:var(--soft);"
    "-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".cards .gap{width:14px}"
    ".card .n{font-size:24px;font-weight:700;display:block}"
    "table{border-collapse:collapse;width:100%;margin:6px 0}"
    "th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:var(--soft);font-weight:600;font-size:13px}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    "table.kv th{width:150px;background:none;color:var(--muted);font-weight:500}"
    "table.kv{width:auto}table.kv td{overflow-wrap:anywhere}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px;"
    "-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".v-copy,.v-verbatim{background:var(--copy)}.v-near-copy,.v-near-verbatim{background:var(--near)}"
    ".v-partial{background:var(--partial)}.v-novel{background:var(--novel)}.v-other{background:var(--other)}"
    ".rate{display:inline-block;width:60px;height:8px;background:var(--soft);border:1px solid var(--line);"
    "margin-right:6px;vertical-align:middle}.rate span{display:block;height:100%;background:var(--copy);"
    "-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}"
    ".histbox{border:1px solid var(--line);border-radius:6px;padding:8px;min-width:0;break-inside:avoid}"
    ".histbox svg{display:block;width:100%;height:auto;max-width:420px}"
    ".histbox .t{font-weight:600;font-size:13px;margin-bottom:4px}"
    ".finding,.tfinding{border:1px solid var(--line);border-left:5px solid var(--other);border-radius:6px;"
    "margin:16px 0;padding:12px 16px;break-inside:avoid;page-break-inside:avoid}"
    ".finding.s-copy,.tfinding.s-verbatim{border-left-color:var(--copy)}"
    ".finding.s-near-copy,.tfinding.s-near-verbatim{border-left-color:var(--near)}"
    ".finding.s-partial{border-left-color:var(--partial)}.finding.s-novel,.tfinding.s-novel{border-left-color:var(--novel)}"
    ".fhead{display:flex;flex-wrap:wrap;gap:10px;align-items:baseline;margin-bottom:10px}"
    ".fhead .rank{font-weight:700;font-size:16px}.fhead .meta{color:var(--muted)}"
    ".fbody{display:grid;grid-template-columns:auto minmax(0,1fr);grid-template-rows:auto 1fr;"
    "grid-template-areas:'pn fa' 'ev fa';column-gap:24px;align-items:start}"
    ".fbody>.panels{grid-area:pn}.fbody>.facts{grid-area:fa}.fbody>.ev{grid-area:ev;max-width:602px}"
    "@media (max-width:980px){.fbody{grid-template-columns:minmax(0,1fr);grid-template-rows:auto;"
    "grid-template-areas:'pn' 'fa' 'ev'}.fbody>.ev{max-width:none}}"
    ".panels{display:flex;flex-wrap:wrap;gap:10px}.panel{width:194px;text-align:center;font-size:12px;color:var(--muted)}"
    ".panel img{width:192px;height:192px;object-fit:contain;image-rendering:pixelated;"
    "image-rendering:crisp-edges;border:1px solid var(--line);background:#fff;display:block}"
    ".panel .missing{width:192px;height:192px;border:1px dashed var(--line);display:flex;align-items:center;"
    "justify-content:center;padding:8px;font-size:11px;overflow-wrap:anywhere}"
    ".facts{min-width:0}.facts table.kv{width:100%;table-layout:fixed}.facts table.kv th{width:104px}"
    ".facts .attr{font-size:12px;color:var(--muted)}.sc{white-space:nowrap}.sc .note{white-space:normal}"
    ".prompt{font-weight:600}.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
    "font-size:12px;overflow-wrap:anywhere}"
    ".ev{font-size:11.5px;color:var(--muted);margin-top:14px;padding-top:6px;"
    "border-top:1px dashed var(--line)}.ev .raw div{break-inside:avoid;overflow-wrap:anywhere}"
    ".ev .evt{font-weight:600;color:var(--fg);margin-bottom:2px}"
    ".settings{font-size:12px}.settings span{display:inline-block;margin-right:10px;color:var(--muted)}"
    ".settings b{color:var(--fg);font-weight:500;overflow-wrap:anywhere}"
    "table.prompts td:first-child{min-width:200px}table.prompts th,td.nw{white-space:nowrap}"
    ".sumgrid>div:first-child{flex:1 1 520px;max-width:780px}"
    ".ev b{color:var(--fg);font-weight:500}"
    ".cols{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));column-gap:12px;row-gap:4px;align-items:end}"
    ".cols h4{margin:6px 0 0;font-size:13px;color:var(--muted)}.cols h4 span{font-weight:400}"
    ".cols .txt{align-self:stretch}"
    "@media (max-width:760px){.cols{grid-template-columns:minmax(0,1fr)}.cols>:nth-child(1){order:1}"
    ".cols>:nth-child(4){order:2}.cols>:nth-child(2){order:3}.cols>:nth-child(5){order:4}"
    ".cols>:nth-child(3){order:5}.cols>:nth-child(6){order:6}}"
    ".txt{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);border:1px solid var(--line);"
    "border-radius:4px;padding:8px;margin:0;font-size:13px}"
    ".verb{background:#fbd3d0;color:#9b1c14;font-weight:600;-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".note{color:var(--muted);font-size:13px}"
    ".legend{display:inline-block;width:48px;height:8px;margin:0 4px;vertical-align:middle;border:1px solid var(--line);"
    "background:linear-gradient(90deg,#fff,#fee078,#f46d2d,#a50026);-webkit-print-color-adjust:exact;print-color-adjust:exact}"
    ".sumgrid{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}"
    ".foot{margin-top:40px;border-top:1px solid var(--line);padding-top:10px;color:var(--muted);font-size:12px}"
    "a{color:#1a56a8}"
    ".histbox .scale{font-size:11.5px;color:var(--muted);margin-top:4px}.histbox .scale b{color:#b3261e;font-weight:500}"
    ".rule{font-size:12.5px}.sevscale{font-size:11.5px;color:var(--muted)}"
    ".evs{margin:4px 0 0;padding-left:18px;font-size:12.5px;color:var(--fg)}.evs li{margin:1px 0}"
    ".ev details{margin-top:6px}.ev summary{cursor:pointer;color:var(--muted)}"
    ".ev .raw{columns:3 180px;column-gap:16px;margin-top:4px}"
    ".warn{border:1px solid var(--copy);background:#fdecea;color:#7a1711;padding:8px 12px;border-radius:6px}"
    "@media print{.doc{max-width:none;padding:0}body{font-size:11px}a{color:inherit;text-decoration:none}"
    "h2,h3{break-after:avoid}tr{break-inside:avoid}th{font-size:10px}.histbox svg{max-width:100%}"
    "}";

static void fmt_num(cs_buf *b, double v, const char *fmt) {
    if (isnan(v)) cs_buf_puts(b, "&#8212;");
    else cs_buf_printf(b, fmt, v);
}

static void badge(cs_buf *b, const char *verdict) {
    cs_buf_printf(b, "<span class=\"badge v-%s\">", cs_report_verdict_class(verdict));
    cs_esc_html(b, verdict && *verdict ? verdict : "?");
    cs_buf_puts(b, "</span>");
}

/* A prompt in bold; an empty one (unconditional generation) said so. */
static void prompt_text(cs_buf *b, const char *text) {
    if (!text) {
        cs_buf_puts(b, "<span class=\"note\">(no prompt)</span>");
    } else if (!*text) {
        cs_buf_puts(b, "<span class=\"note\">(empty prompt)</span>");
    } else {
        cs_buf_puts(b, "<span class=\"prompt\">");
        cs_esc_html(b, text);
        cs_buf_puts(b, "</span>");
    }
}

static void settings_row(cs_buf *b, const char *json);
static void index_rows(cs_buf *b, const cs_rmodel *m);

/* ---- header and summary ---- */

static void kv_row(cs_buf *b, const char *k, const char *v, int mono) {
    if (!v || !*v) return;
    cs_buf_printf(b, "<tr><th>%s</th><td%s>", k, mono ? " class=\"mono\"" : "");
    cs_esc_html(b, v);
    cs_buf_puts(b, "</td></tr>");
}

static void head(cs_buf *b, const cs_rmodel *m, const cs_report_opts *o) {
    cs_buf_puts(b, "<div class=\"head\"><h1>copyscope audit report</h1><p class=\"sub\">");
    if (m->has_run) {
        cs_buf_printf(b, "Run %lld", (long long)m->run_id);
        if (m->suite_name || m->suite) {
            cs_buf_puts(b, " &#183; suite ");
            cs_esc_html(b, m->suite_name ? m->suite_name : m->suite);
        }
        if (m->model) {
            cs_buf_puts(b, " &#183; model ");
            cs_esc_html(b, m->model);
        }
        cs_buf_puts(b, " &#183; ");
    }
    cs_buf_puts(b, "generated ");
    cs_esc_html(b, m->generated);
    cs_buf_puts(b, " from ");
    cs_esc_html(b, m->db_name);
    if (o->generator) {
        cs_buf_puts(b, " by ");
        cs_esc_html(b, o->generator);
    }
    cs_buf_puts(b, "</p><div class=\"cards\">");
    if (m->has_run) {
        cs_buf_printf(b, "<div class=\"card\"><span class=\"n\">%lld</span>generations</div>",
                      (long long)m->n_generations);
        for (int v = 0; v < CS_RV_N; v++)
            cs_buf_printf(b, "<div class=\"card\"><span class=\"n\">%lld</span><span class=\"badge v-%s\">%s</span></div>",
                          (long long)m->count[v], cs_rv_names[v], cs_rv_names[v]);
        if (m->count[CS_RV_N])
            cs_buf_printf(b, "<div class=\"card\"><span class=\"n\">%lld</span><span class=\"badge v-other\">other</span></div>",
                          (long long)m->count[CS_RV_N]);
    }
    if (m->n_t) {
        if (m->has_run) cs_buf_puts(b, "<div class=\"gap\"></div>");
        static const char *const tv[3] = {"verbatim", "near-verbatim", "novel"};
        for (int v = 0; v < 3; v++)
            cs_buf_printf(b, "<div class=\"card\"><span class=\"n\">%lld</span>text <span class=\"badge v-%s\">%s</span></div>",
                          (long long)m->text_count[v], tv[v], tv[v]);
    }
    cs_buf_puts(b, "</div></div>\n");
}

static void run_table(cs_buf *b, const cs_rmodel *m) {
    cs_buf_puts(b, "<table class=\"kv\">");
    cs_buf_printf(b, "<tr><th>Run</th><td>%lld</td></tr>", (long long)m->run_id);
    if (m->suite_name) {
        cs_buf_puts(b, "<tr><th>Suite</th><td><b>");
        cs_esc_html(b, m->suite_name);
        cs_buf_puts(b, "</b>");
        if (m->suite) {
            cs_buf_puts(b, " <span class=\"note mono\">(");
            cs_esc_html(b, m->suite);
            cs_buf_puts(b, ")</span>");
        }
        cs_buf_puts(b, "</td></tr>");
    } else {
        kv_row(b, "Suite", m->suite, 0);
    }
    index_rows(b, m);
    kv_row(b, "Model", m->model, 0);
    kv_row(b, "Model SHA-256", m->model_sha256, 1);
    kv_row(b, "Command", m->command, 1);
    kv_row(b, "Started", m->started, 0);
    kv_row(b, "Finished", m->finished, 0);
    settings_row(b, m->run_settings);
    cs_buf_printf(b, "<tr><th>Generations</th><td>%lld</td></tr><tr><th>Findings</th><td>%lld</td></tr>",
                  (long long)m->n_generations, (long long)m->n_f);
    kv_row(b, "Reference attribution", m->attribution, 0);
    cs_buf_puts(b, "</table>\n");
}

/* What the generations were compared with, and the thresholds every verdict used. */
static void index_rows(cs_buf *b, const cs_rmodel *m) {
    if (!m->analysis_id) {
        cs_buf_puts(b, "<tr><th>Reference index</th><td class=\"note\">not analysed yet: no references compared</td></tr>");
        return;
    }
    cs_buf_printf(b, "<tr><th>Reference index</th><td><b>%lld</b> reference%s compared (analysis %lld)",
                  (long long)m->n_refs, m->n_refs == 1 ? "" : "s", (long long)m->analysis_id);
    if (m->descriptors && *m->descriptors) {
        int nd = 1;
        for (const char *c = m->descriptors; *c; c++) nd += *c == ',';
        cs_buf_printf(b, "; %d descriptor%s: ", nd, nd == 1 ? "" : "s");
        cs_esc_html(b, m->descriptors);
    }
    if (m->n_refs == 0)
        cs_buf_puts(b, "<div class=\"warn\">The index was empty: every generation is novel by construction. "
                       "Add references (copyscope index add) and analyse again.</div>");
    cs_buf_puts(b, "</td></tr>");
    const cs_rthresh *t = &m->th;
    cs_buf_puts(b, "<tr><th>Verdict rules</th><td style=\"font-size:12.5px\">");
    if (isnan(t->copy_tl2) || isnan(t->near_tl2))
        cs_buf_puts(b, "<span class=\"note\">the analysis recorded no thresholds (an older store): "
                       "the rules below and in the findings cannot state them</span><br/>");
    else cs_buf_printf(b, "<b>copy</b>: tiled L2 &#8804; %g (as is or mirrored); "
                     "<b>near-copy</b>: tiled L2 after aligning a crop &#8804; %g, or PDQ &#8804; %g of 256 bits "
                     "(confirmed by aligned tiled L2 &#8804; %g), or embedding cosine &#8805; %g, or Gu et al.&#8217;s "
                     "ratio d1/d2 &lt; %.3g with d1 &#8804; %g; <b>partial</b>: &#8805; %g informative tiles "
                     "(and &#8805; %.0f%% of them) within %g; <b>novel</b>: none of these. Completion tasks are "
                     "judged on the withheld region only: copy / near-copy when its tiled L2 to the original is within "
                     "those bounds and %g&#215; smaller than any other reference&#8217;s, partial when another reference "
                     "fills it within %g. "
                     "Tiled L2 = the worst tile&#8217;s RMS difference on 0&#8211;1 grey, 0 = identical.",
                  t->copy_tl2, t->near_tl2, t->pdq_near, t->pdq_confirm_tl2, t->embed_near, t->ratio_max, t->ratio_tl2,
                  t->partial_min_tiles, 100 * t->partial_min_frac, t->partial_tile_l2, t->completion_margin, t->copy_tl2);
    /* The local-feature rules flag most crops, rotations and embeds; a
     * summary that left them out read as if only pixels decided. */
    if (m->descriptors && strstr(m->descriptors, "local") && !isnan(t->lf_max_nfa) && !isnan(t->lf_min_share) &&
        !isnan(t->lf_near_cover))
        cs_buf_printf(b, "<br/><b>Local features</b> (SIFT keypoints verified by a geometry, RANSAC): <b>near-copy</b> "
                         "when the chance that an unrelated pair verifies as well is &#8804; %g, at least %g of the "
                         "reference&#8217;s keypoints that geometry leaves visible are verified (fewer only where the mapped "
                         "pixels confirm the reference: rules lf_near_px, lf_partial_px), no other reference "
                         "verifies within Lowe&#8217;s ratio 0.8, the mapped pixels show no replaced or recoloured part "
                         "and keep a common body, and the reference covers &#8805; %.0f%% of the generation; "
                         "<b>partial</b> when it covers less. Each finding names the rule that decided it.",
                      t->lf_max_nfa, t->lf_min_share, 100 * t->lf_near_cover);
    cs_buf_puts(b, "</td></tr><tr><th>Severity</th><td style=\"font-size:12.5px\">");
    cs_esc_html(b, cs_rseverity_scale);
    cs_buf_puts(b, "</td></tr>");
}

static void verdict_table(cs_buf *b, const cs_rmodel *m) {
    cs_buf_puts(b, "<table style=\"width:auto\"><thead><tr><th>Verdict</th><th class=\"num\">Findings</th>"
                   "<th class=\"num\">Share</th></tr></thead><tbody>");
    for (int v = 0; v <= CS_RV_N; v++) {
        if (v == CS_RV_N && !m->count[v]) break;
        const char *name = v < CS_RV_N ? cs_rv_names[v] : "other";
        cs_buf_puts(b, "<tr><td>");
        badge(b, name);
        cs_buf_printf(b, "</td><td class=\"num\">%lld</td><td class=\"num\">", (long long)m->count[v]);
        fmt_num(b, m->n_f ? 100.0 * (double)m->count[v] / (double)m->n_f : NAN, "%.1f%%");
        cs_buf_puts(b, "</td></tr>");
    }
    cs_buf_puts(b, "</tbody></table>\n");
}

/* The generation's "guidance" setting, NAN when absent. */
static double gen_guidance(const char *settings) {
    cJSON *o = settings ? cJSON_Parse(settings) : NULL;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "guidance");
    double v = cJSON_IsNumber(g) ? g->valuedouble : NAN;
    cJSON_Delete(o);
    return v;
}

/* Which generations the white-box histogram leaves out or counts as 0, and why. */
static void whitebox_note(cs_buf *b, const cs_rmodel *m, int64_t n) {
    int64_t no_cfg = 0, other = 0, empty0 = 0;
    for (int64_t i = 0; i < m->n_f; i++) {
        const cs_rfinding *f = &m->f[i];
        if (isnan(f->whitebox)) {
            double g = gen_guidance(f->gen_settings);
            if (!isnan(g) && g <= 1) no_cfg++;
            else other++;
        } else if (f->whitebox == 0 && f->prompt_text && !*f->prompt_text) {
            empty0++;
        }
    }
    cs_buf_printf(b, "<div class=\"scale\">Mean &#8214;&#949;<sub>cond</sub> &#8722; &#949;<sub>uncond</sub>&#8214; "
                     "over the first sampling steps (Wen et al. 2024); higher = the prompt pulls harder, "
                     "a sign of memorisation; no verdict threshold. n = %lld of %lld generations",
                  (long long)n, (long long)m->n_f);
    if (no_cfg || other) {
        cs_buf_puts(b, ": ");
        if (no_cfg)
            cs_buf_printf(b, "%lld sampled with guidance 1 have no unconditional pass to compare with", (long long)no_cfg);
        if (no_cfg && other) cs_buf_puts(b, ", ");
        if (other)
            cs_buf_printf(b, "%lld have no score recorded (external images, or a model without guidance)", (long long)other);
    }
    cs_buf_puts(b, ".");
    if (empty0)
        cs_buf_printf(b, " %lld with an empty prompt score 0 by construction (the conditional and unconditional "
                         "predictions are the same).", (long long)empty0);
    cs_buf_puts(b, "</div>");
}

static void histograms(cs_buf *b, const cs_rmodel *m) {
    double *v = malloc(sizeof *v * (size_t)(m->n_f ? m->n_f : 1));
    if (!v) {
        b->oom = 1;
        return;
    }
    cs_buf_puts(b, "<h3>Distributions</h3><p class=\"note\">Per descriptor, each generation&#8217;s score to its "
                   "nearest reference by that descriptor (which may be another reference than its finding&#8217;s), "
                   "with the verdict thresholds of the analysis as red dashed lines; and the white-box score of the "
                   "generations.</p><div class=\"hists\">");
    cs_hist h;
    for (int d = 0; d < m->n_desc; d++) {
        for (int64_t i = 0; i < m->n_f; i++) v[i] = m->f[i].scores[d];
        cs_hist_compute(&h, v, m->n_f);
        double marks[2];
        char labels[2][48];
        int nm = cs_rdesc_thresholds(m->desc[d], &m->th, marks, labels);
        cs_buf_puts(b, "<div class=\"histbox\"><div class=\"t\">nearest reference by ");
        cs_esc_html(b, m->desc[d]);
        cs_buf_puts(b, "</div>");
        cs_svg_histogram_marked(b, &h, m->desc[d], marks, (const char(*)[48])labels, nm);
        cs_buf_puts(b, "<div class=\"scale\">");
        cs_esc_html(b, cs_rdesc_scale(m->desc[d]));
        cs_buf_puts(b, ". ");
        if (nm) {
            cs_buf_puts(b, "Thresholds: ");
            for (int k = 0; k < nm; k++) {
                cs_buf_puts(b, k ? ", <b>" : "<b>");
                cs_esc_html(b, labels[k]);
                cs_buf_puts(b, "</b>");
            }
            if (!strcmp(m->desc[d], "tl2")) cs_buf_puts(b, " (near-copy is tested after aligning a crop)");
            cs_buf_puts(b, ".");
        } else {
            cs_buf_puts(b, "No verdict threshold: supporting evidence only.");
        }
        cs_buf_puts(b, "</div></div>");
    }
    for (int64_t i = 0; i < m->n_f; i++) v[i] = m->f[i].whitebox;
    cs_hist_compute(&h, v, m->n_f);
    cs_buf_puts(b, "<div class=\"histbox\"><div class=\"t\">white-box score</div>");
    if (h.n) {
        cs_svg_histogram(b, &h, "white-box score");
        whitebox_note(b, m, h.n);
    } else {
        cs_buf_puts(b, "<p class=\"note\">No white-box scores were recorded for this run.</p>");
    }
    cs_buf_puts(b, "</div></div>\n");
    free(v);
}

static int cmp_prompt_rate(const void *a, const void *b) {
    const cs_rprompt *x = *(cs_rprompt *const *)a, *y = *(cs_rprompt *const *)b;
    double rx = isnan(x->rate) ? -1 : x->rate, ry = isnan(y->rate) ? -1 : y->rate;
    if (rx != ry) return rx > ry ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void prompt_table(cs_buf *b, const cs_rmodel *m) {
    cs_buf_puts(b, "<h3 id=\"prompts\">Prompts</h3>");
    if (!m->n_p) {
        cs_buf_puts(b, "<p class=\"note\">This run has no prompts.</p>\n");
        return;
    }
    const cs_rprompt **order = malloc(sizeof *order * (size_t)m->n_p);
    if (!order) {
        b->oom = 1;
        return;
    }
    for (int64_t i = 0; i < m->n_p; i++) order[i] = &m->p[i];
    qsort(order, (size_t)m->n_p, sizeof *order, cmp_prompt_rate);
    cs_buf_puts(b, "<p class=\"note\">Memorisation rate = (copy + near-copy) / generations of the prompt. "
                   "Most memorised first. Closest tiled L2 = the smallest tiled L2 (after aligning a crop) of the "
                   "prompt&#8217;s generations to their matched references: 0 = identical");
    if (!isnan(m->th.copy_tl2) && !isnan(m->th.near_tl2))
        cs_buf_printf(b, ", copy &#8804; %g, near-copy &#8804; %g", m->th.copy_tl2, m->th.near_tl2);
    cs_buf_puts(b, "; unrelated images are typically far above.</p>");
    cs_buf_puts(b, "<table class=\"prompts\"><thead><tr><th>Prompt</th>"
                   "<th class=\"num\">Gen.</th><th class=\"num\">copy</th><th class=\"num\">near-copy</th>"
                   "<th class=\"num\">partial</th><th class=\"num\">novel</th><th>Memorisation<br/>rate</th>"
                   "<th class=\"num\">Closest<br/>tiled L2</th><th class=\"num\">Mean<br/>white-box</th>"
                   "<th class=\"num\">Clique</th><th>Findings (rank)</th></tr></thead><tbody>");
    for (int64_t i = 0; i < m->n_p; i++) {
        const cs_rprompt *p = order[i];
        cs_buf_printf(b, "<tr id=\"p-%lld\"><td>", (long long)p->id);
        prompt_text(b, p->text);
        cs_buf_puts(b, "<br/><span class=\"note mono\">");
        cs_esc_html(b, p->key);
        if (p->kind && strcmp(p->kind, "txt2img")) {
            cs_buf_puts(b, " &#183; ");
            cs_esc_html(b, p->kind);
        }
        cs_buf_printf(b, "</span></td><td class=\"num\">%lld</td>", (long long)p->n_generations);
        for (int v = 0; v < CS_RV_N; v++) cs_buf_printf(b, "<td class=\"num\">%lld</td>", (long long)p->count[v]);
        cs_buf_puts(b, "<td class=\"nw\">");
        if (!isnan(p->rate))
            cs_buf_printf(b, "<span class=\"rate\"><span style=\"width:%.0f%%\"></span></span>%.0f%%",
                          100 * (p->rate > 1 ? 1 : p->rate), 100 * p->rate);
        else
            cs_buf_puts(b, "&#8212;");
        cs_buf_puts(b, "</td><td class=\"num\">");
        /* older stores: 1 - max_similarity is the same distance */
        fmt_num(b, !isnan(p->min_tl2) ? p->min_tl2 : 1 - p->max_similarity, "%.3f");
        cs_buf_puts(b, "</td><td class=\"num\">");
        fmt_num(b, p->mean_whitebox, "%.3f");
        cs_buf_puts(b, "</td><td class=\"num\">");
        if (p->largest_clique >= 0) cs_buf_printf(b, "%lld", (long long)p->largest_clique);
        else cs_buf_puts(b, "&#8212;");
        cs_buf_puts(b, "</td><td class=\"nw\">");
        if (p->first_gallery) {
            /* the prompt's gallery findings by rank, most severe first (at most 4) */
            int shown = 0;
            for (int64_t j = 0; j < m->n_f && m->f[j].in_gallery && shown < 4; j++)
                if (m->f[j].prompt_id == p->id) {
                    cs_buf_printf(b, "%s<a href=\"#f-%lld\"%s>#%lld</a>", shown ? " " : "", (long long)m->f[j].id,
                                  m->f[j].id == p->first_gallery ? " title=\"most severe finding of this prompt\"" : "",
                                  (long long)m->f[j].rank);
                    shown++;
                }
            if (p->n_findings > shown) cs_buf_puts(b, " &#8230;");
        } else if (p->n_findings) {
            cs_buf_puts(b, "<span class=\"note\" title=\"beyond the gallery: in the JSON and CSV reports\">"
                           "beyond the gallery</span>");
        } else {
            cs_buf_puts(b, "&#8212;");
        }
        cs_buf_puts(b, "</td></tr>\n");
    }
    cs_buf_puts(b, "</tbody></table>\n");
    free(order);
}

/* ---- findings ---- */

typedef struct {
    const cs_rfinding *f;
    cs_rpanels pn;
    uint8_t *ref_rgb, *orig_rgb;
    int64_t orig_ref_id;
    cJSON *ev; /* parsed evidence, NULL if absent/invalid */
} gitem;

typedef struct {
    gitem *g;
    cs_progress *prog;
} gctx;

static void make_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    gctx *c = vctx;
    cs_rpanels_make(&c->g[i].pn);
    cs_progress_add(c->prog, 1);
}

static const cJSON *jget(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }

/* Keys of the evidence the finding already shows elsewhere (its verdict,
 * severity, reference, white-box score) or that only identify the format. */
static int shown_elsewhere(const char *path) {
    static const char *const keys[] = {"schema", "verdict", "severity", "whitebox", "ref.id", "ref.source",
                                       "ref.caption", "analysis_id"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(path, keys[i])) return 1;
    return 0;
}

/* One item per scalar leaf of a JSON object ("tl2.distance 0.012"); arrays
 * of up to 8 numbers inline, longer ones as a count; nulls left out.
 * open/close wrap each item; sep goes between items. */
static void json_leaves(cs_buf *b, const cJSON *o, char *path, size_t plen, int depth, int skip_shown,
                        const char *open, const char *close, int *count) {
    for (const cJSON *c = o->child; c; c = c->next) {
        size_t n = plen;
        if (c->string) {
            int w = snprintf(path + plen, 256 - plen, "%s%s", plen ? "." : "", c->string);
            n = w < 0 || plen + (size_t)w >= 256 ? 255 : plen + (size_t)w;
        }
        if ((cJSON_IsObject(c) && depth < 4) || cJSON_IsNull(c) || (skip_shown && shown_elsewhere(path))) {
            if (cJSON_IsObject(c) && depth < 4)
                json_leaves(b, c, path, n, depth + 1, skip_shown, open, close, count);
            path[plen] = 0;
            continue;
        }
        cs_buf_puts(b, open);
        (*count)++;
        cs_esc_html(b, path);
        cs_buf_puts(b, " <b>");
        if (cJSON_IsString(c)) {
            cs_esc_html(b, c->valuestring);
        } else if (cJSON_IsNumber(c)) {
            cs_buf_printf(b, "%.6g", c->valuedouble);
        } else if (cJSON_IsBool(c)) {
            cs_buf_puts(b, cJSON_IsTrue(c) ? "true" : "false");
        } else if (cJSON_IsArray(c)) {
            int n_items = cJSON_GetArraySize(c), all_num = 1;
            for (const cJSON *e = c->child; e; e = e->next) all_num &= cJSON_IsNumber(e);
            if (all_num && n_items <= 8) {
                cs_buf_putc(b, '[');
                for (const cJSON *e = c->child; e; e = e->next)
                    cs_buf_printf(b, "%s%.4g", e == c->child ? "" : ", ", e->valuedouble);
                cs_buf_putc(b, ']');
            } else {
                cs_buf_printf(b, "[%d values]", n_items);
            }
        } else {
            cs_buf_puts(b, "&#8230;");
        }
        cs_buf_puts(b, "</b>");
        cs_buf_puts(b, close);
        path[plen] = 0;
    }
}

/* A stored settings JSON as "key value" items; raw text when not an object. */
static void settings_row(cs_buf *b, const char *json) {
    if (!json || !*json) return;
    cJSON *o = cJSON_Parse(json);
    cs_buf_puts(b, "<tr><th>Settings</th><td class=\"settings\">");
    int n = 0;
    char path[256] = "";
    if (cJSON_IsObject(o)) json_leaves(b, o, path, 0, 0, 0, "<span>", "</span> ", &n);
    else cs_esc_html(b, json);
    cs_buf_puts(b, "</td></tr>");
    cJSON_Delete(o);
}

static void panel(cs_buf *b, const char *uri, const char *alt, const char *caption, const char *missing) {
    cs_buf_puts(b, "<div class=\"panel\">");
    if (uri) {
        cs_buf_printf(b, "<img src=\"%s\" alt=\"", uri);
        cs_esc_html(b, alt);
        cs_buf_puts(b, "\" title=\"");
        cs_esc_html(b, alt);
        cs_buf_puts(b, "\"/>");
    } else {
        cs_buf_puts(b, "<div class=\"missing\">");
        cs_esc_html(b, missing);
        cs_buf_puts(b, "</div>");
    }
    cs_buf_puts(b, "<div>");
    cs_buf_puts(b, caption);
    cs_buf_puts(b, "</div></div>");
}

/* The finding's own reference's score by a descriptor: its matches row, else
 * the evidence's value for the same pair (hashes, embedding); NAN if neither. */
static double own_score(const cs_rmodel *m, const cs_rfinding *f, const cJSON *ev, int d) {
    if (!isnan(f->ref_scores[d])) return f->ref_scores[d];
    const char *name = m->desc[d];
    const cJSON *h = jget(ev, "hashes"), *e = jget(ev, "embedding"), *v = NULL;
    if (!strcmp(name, "pdq") || !strcmp(name, "phash") || !strcmp(name, "dhash")) v = jget(h, name);
    else if (!strcmp(name, "tl2")) v = jget(jget(ev, "tl2"), "distance");
    else if (cJSON_IsString(jget(e, "column")) && !strcmp(jget(e, "column")->valuestring, name)) v = jget(e, "cosine");
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void one_score(cs_buf *b, const char *desc, double v) {
    cs_buf_puts(b, "<span class=\"sc\">");
    cs_esc_html(b, desc);
    cs_buf_printf(b, " <b>%.4g</b>%s <span class=\"note\">(", v, cs_rdesc_of(desc));
    cs_esc_html(b, cs_rdesc_unit(desc));
    cs_buf_puts(b, ")</span></span>");
}

/* Each score beside the reference it belongs to: the matched reference's
 * scores by every descriptor, then any descriptor whose nearest reference is
 * another one, with that reference named. */
static void score_rows(cs_buf *b, const cs_rmodel *m, const cs_rfinding *f, const cJSON *ev) {
    if (!m->n_desc) return;
    int shown = 0, others = 0;
    if (f->ref_id) {
        cs_buf_printf(b, "<tr><th>Scores to ref #%lld</th><td>", (long long)f->ref_id);
        for (int d = 0; d < m->n_desc; d++) {
            double v = own_score(m, f, ev, d);
            if (isnan(v)) continue;
            if (shown++) cs_buf_puts(b, " &#183; ");
            one_score(b, m->desc[d], v);
        }
        if (!shown) cs_buf_puts(b, "<span class=\"note\">not among any descriptor&#8217;s nearest</span>");
        cs_buf_puts(b, "</td></tr>");
    }
    for (int d = 0; d < m->n_desc; d++) {
        if (isnan(f->scores[d]) || !f->score_refs[d] || f->score_refs[d] == f->ref_id) continue;
        if (!others++)
            cs_buf_printf(b, "<tr><th>%s</th><td>", f->ref_id ? "Nearer by one descriptor" : "Nearest references");
        else cs_buf_puts(b, "<br/>");
        one_score(b, m->desc[d], f->scores[d]);
        cs_buf_printf(b, " to ref #%lld", (long long)f->score_refs[d]);
    }
    if (others) cs_buf_puts(b, "</td></tr>");
}

/* Long: one finding's card, its HTML in document order (pictures, scores, evidence). */
static void finding(cs_buf *b, const cs_rmodel *m, const gitem *g) {
    const cs_rfinding *f = g->f;
    const char *vc = cs_report_verdict_class(f->verdict);
    cs_buf_printf(b, "<div class=\"finding s-%s\" id=\"f-%lld\"><div class=\"fhead\"><span class=\"rank\">#%lld</span>",
                  vc, (long long)f->id, (long long)f->rank);
    badge(b, f->verdict);
    cs_buf_printf(b, "<span class=\"meta\"><span title=\"0&#8211;4: the verdict&#8217;s band (copy 3, near-copy 2, "
                     "partial 1, novel 0) + closeness\">severity %.3f of 4</span> &#183; finding %lld &#183; generation %lld</span>",
                  f->severity, (long long)f->id, (long long)f->generation_id);
    if (f->prompt_id) {
        cs_buf_printf(b, "<a href=\"#p-%lld\">prompt ", (long long)f->prompt_id);
        cs_esc_html(b, f->prompt_key ? f->prompt_key : "");
        cs_buf_puts(b, "</a>");
    }
    cs_buf_puts(b, "</div><div class=\"fbody\"><div class=\"panels\">");
    /* alt/title text: file names and captions, escaped like everything else */
    char cap[64];
    if (g->orig_rgb) {
        snprintf(cap, sizeof cap, "original (ref %lld)", (long long)g->orig_ref_id);
        panel(b, g->pn.orig_uri, cap, cap, "no thumbnail");
        panel(b, g->pn.mask_uri, "masked input", "masked input", "no thumbnail");
        panel(b, g->pn.gen_uri, f->gen_path, "completion", g->pn.gen_error);
    } else {
        panel(b, g->pn.gen_uri, f->gen_path, "generated", g->pn.gen_error);
        snprintf(cap, sizeof cap, "matched reference%s", g->pn.ref_mirrored ? " (mirrored)" : "");
        panel(b, g->pn.ref_uri, f->ref_caption ? f->ref_caption : (f->ref_source ? f->ref_source : "reference"),
              f->ref_id ? cap : "no reference", f->ref_id ? "no thumbnail in the index" : "no matched reference");
        char dcap[160];
        if (!isnan(g->pn.mean_diff) && g->pn.geo)
            snprintf(dcap, sizeof dcap, "difference where the reference lands, mean %.1f%% (grey: not compared)"
                                        "<br/>0<span class=\"legend\"></span>33%%+", 100 * g->pn.mean_diff);
        else if (!isnan(g->pn.mean_diff))
            snprintf(dcap, sizeof dcap, "difference, mean %.1f%%%s<br/>0<span class=\"legend\"></span>33%%+",
                     100 * g->pn.mean_diff, g->pn.mean_diff < 0.0005 ? " (identical)" : "");
        else snprintf(dcap, sizeof dcap, "difference");
        panel(b, g->pn.diff_uri, "difference heatmap: white = equal, dark red = differs", dcap, "not available");
        cs_region_panel(b, g->pn.ref_uri, g->pn.gen_uri, jget(g->ev, "local")); /* reports/region_svg.h */
    }
    cs_buf_puts(b, "</div><div class=\"facts\"><table class=\"kv\">");
    cs_buf_puts(b, "<tr><th>Prompt</th><td>");
    prompt_text(b, f->prompt_id ? f->prompt_text : NULL);
    cs_buf_puts(b, "</td></tr>");
    if (f->ref_id) {
        cs_buf_printf(b, "<tr><th>Reference</th><td><span class=\"mono\">#%lld ", (long long)f->ref_id);
        cs_esc_html(b, f->ref_source);
        cs_buf_puts(b, "</span></td></tr>");
        kv_row(b, "Caption", f->ref_caption, 0);
        if (m->attribution && *m->attribution) {
            cs_buf_puts(b, "<tr><th>Attribution</th><td class=\"attr\">");
            cs_esc_html(b, m->attribution);
            cs_buf_puts(b, "</td></tr>");
        }
    }
    cs_buf_puts(b, "<tr><th>Verdict</th><td>");
    badge(b, f->verdict);
    cs_buf_puts(b, " <span class=\"rule\">");
    cs_buf rule = {0};
    cs_rev_rule(&rule, g->ev, f->verdict, &m->th);
    b->oom |= rule.oom;
    if (rule.p) cs_esc_html(b, rule.p);
    cs_buf_free(&rule);
    cs_buf_puts(b, "</span></td></tr>");
    cs_buf_printf(b, "<tr><th>Severity</th><td>%.3f <span class=\"sevscale\">on 0&#8211;4 (%s band %d&#8211;%d; "
                     "higher within it = closer)</span></td></tr>",
                  f->severity, cs_rv_level(f->verdict) < CS_RV_N ? cs_rv_names[cs_rv_level(f->verdict)] : "other",
                  (int)floor(f->severity), (int)floor(f->severity) + 1);
    score_rows(b, m, f, g->ev);
    if (!isnan(f->whitebox)) cs_buf_printf(b, "<tr><th>White-box</th><td>%.4g</td></tr>", f->whitebox);
    kv_row(b, "Model", m->model, 0);
    cs_buf_printf(b, "<tr><th>Seed</th><td class=\"mono\">%lld", (long long)f->seed);
    if (f->sample) cs_buf_printf(b, " (sample %lld)", (long long)f->sample);
    cs_buf_puts(b, "</td></tr>");
    settings_row(b, f->gen_settings);
    kv_row(b, "Image file", f->gen_path, 1);
    cs_buf_puts(b, "</table></div>");
    /* the evidence as sentences under the pictures (below the facts when narrow),
       the stored values one click away */
    if (g->ev && cJSON_IsObject(g->ev)) {
        cs_buf_puts(b, "<div class=\"ev\"><div class=\"evt\">Evidence</div><ul class=\"evs\">");
        cs_buf sent = {0};
        cs_rev_sentences(&sent, g->ev, &m->th);
        b->oom |= sent.oom;
        for (char *line = sent.p; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            cs_buf_puts(b, "<li>");
            cs_esc_html(b, line);
            cs_buf_puts(b, "</li>");
            line = nl ? nl + 1 : line + strlen(line);
        }
        cs_buf_free(&sent);
        char path[256] = "";
        int n = 0;
        cs_buf_puts(b, "</ul><details><summary>raw evidence values (evidence_json)</summary><div class=\"raw\">");
        json_leaves(b, g->ev, path, 0, 0, 1, "<div>", "</div>", &n);
        cs_buf_puts(b, "</div></details></div>");
    } else if (f->evidence_json && *f->evidence_json) {
        cs_buf_puts(b, "<div class=\"ev mono\"><div class=\"evt\">Evidence (as stored)</div>");
        cs_esc_html(b, f->evidence_json);
        cs_buf_puts(b, "</div>");
    }
    cs_buf_puts(b, "</div></div>\n");
}

static int gallery(cs_buf *b, const cs_rmodel *m, cs_store *s, const cs_report_opts *o, cs_err *err) {
    int64_t n = m->n_f < m->top ? m->n_f : m->top;
    cs_buf_puts(b, "<h2 id=\"findings\">Findings</h2>");
    if (!m->n_f) {
        cs_buf_puts(b, "<p class=\"note\">No findings: this run has not been analysed yet.</p>\n");
        return 0;
    }
    if (n < m->n_f)
        cs_buf_printf(b, "<p class=\"note\">The %lld most severe of %lld findings, most severe first. ", (long long)n,
                      (long long)m->n_f);
    else
        cs_buf_printf(b, "<p class=\"note\">All %lld finding%s, most severe first. ", (long long)n, n == 1 ? "" : "s");
    if (n < m->n_f) cs_buf_puts(b, "The rest are in the JSON and CSV reports (copyscope report --format json|csv). ");
    cs_buf_puts(b, "Heatmap: per-pixel difference between the generation (resized to the reference thumbnail) "
                   "and the reference; white = equal, dark red = differs by a third of the range or more. For a "
                   "finding decided by local features, the reference is mapped into the generation by the "
                   "verified geometry and compared where it lands (grey: outside it).</p>\n");
    gitem *g = calloc((size_t)n, sizeof *g);
    if (!g) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const cs_rfinding *f = &m->f[i];
        gitem *x = &g[i];
        x->f = f;
        x->ev = f->evidence_json ? cJSON_Parse(f->evidence_json) : NULL;
        x->pn.gen_path = f->gen_path;
        const cJSON *tl2 = jget(x->ev, "tl2");
        x->pn.ref_mirrored = cJSON_IsTrue(jget(tl2, "mirrored"));
        /* a finding decided by the local features (rule lf_*: an embed, a
         * crop, a turn): its pixels are compared where the verified geometry
         * puts the reference, and mirrored as that geometry is; the tiled
         * L2's own best orientation says nothing about such a copy */
        const cJSON *rule = jget(x->ev, "rule"), *loc = jget(x->ev, "local");
        if (cJSON_IsString(rule) && !strncmp(rule->valuestring, "lf_", 3)) {
            double rs[2], gs[2];
            x->pn.geo = cs_region_gen_to_ref(loc, x->pn.geo_map, rs, gs);
            x->pn.geo_ref_w = rs[0], x->pn.geo_ref_h = rs[1], x->pn.geo_gen_w = gs[0], x->pn.geo_gen_h = gs[1];
            if (x->pn.geo) x->pn.ref_mirrored = cJSON_IsTrue(jget(loc, "mirrored"));
        }
        if (f->ref_id) {
            /* the original is shown when refs.source names a regular file (not a tar member) */
            struct stat sb;
            if (f->ref_source && stat(f->ref_source, &sb) == 0 && S_ISREG(sb.st_mode)) x->pn.ref_path = f->ref_source;
            rc = cs_rmodel_ref_thumb(s, f->ref_id, &x->ref_rgb, &x->pn.rw, &x->pn.rh, err);
            x->pn.ref_rgb = x->ref_rgb;
        }
        const cJSON *comp = jget(x->ev, "completion"), *oid = jget(comp, "original_ref_id"), *rect = jget(comp, "rect");
        if (rc == 0 && cJSON_IsNumber(oid) && cJSON_IsArray(rect) && cJSON_GetArraySize(rect) == 4) {
            x->orig_ref_id = (int64_t)oid->valuedouble;
            for (int k = 0; k < 4; k++) x->pn.rect[k] = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(rect, k));
            x->pn.withheld_map = cJSON_GetStringValue(jget(comp, "withheld_map"));
            rc = cs_rmodel_ref_thumb(s, x->orig_ref_id, &x->orig_rgb, &x->pn.ow, &x->pn.oh, err);
            x->pn.orig_rgb = x->orig_rgb;
        }
    }
    if (rc == 0) {
        gctx c = {g, o->progress ? cs_progress_start("report", n, "finding") : NULL};
        cs_parallel_for(o->threads > 0 ? o->threads : cs_threads(), n, make_one, &c);
        cs_progress_end(c.prog);
        for (int64_t i = 0; i < n; i++) finding(b, m, &g[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        cs_rpanels_free(&g[i].pn);
        free(g[i].ref_rgb);
        free(g[i].orig_rgb);
        cJSON_Delete(g[i].ev);
    }
    free(g);
    return rc;
}

/* ---- text findings ---- */

static void text_finding(cs_buf *b, const cs_rtext *t) {
    cs_buf_printf(b, "<div class=\"tfinding s-%s\" id=\"t-%lld\"><div class=\"fhead\">",
                  cs_report_verdict_class(t->verdict), (long long)t->id);
    badge(b, t->verdict);
    cs_buf_printf(b, "<span class=\"meta\">text finding %lld &#183; longest verbatim span %lld words (%lld characters)",
                  (long long)t->id, (long long)t->longest_words, (long long)t->longest_chars);
    if (t->exact_prefix_words >= 0) cs_buf_printf(b, " &#183; exact prefix %lld words", (long long)t->exact_prefix_words);
    if (!isnan(t->rouge_l_f1)) cs_buf_printf(b, " &#183; ROUGE-L %.3f", t->rouge_l_f1);
    if (!isnan(t->edit_sim)) cs_buf_printf(b, " &#183; edit similarity %.3f", t->edit_sim);
    if (t->status && strcmp(t->status, "ok")) {
        cs_buf_puts(b, " &#183; ");
        cs_esc_html(b, t->status);
    }
    cs_buf_puts(b, "</span></div>");
    cs_buf_puts(b, "<table class=\"kv\">");
    kv_row(b, "Prompt id", t->prompt_key, 1);
    kv_row(b, "Model", t->model, 0);
    kv_row(b, "Completions file", t->audit_source, 1);
    cs_buf_puts(b, "</table><div class=\"cols\"><h4>Prompt</h4><h4>Completion <span>(verbatim spans in red)</span></h4>"
                   "<h4>Source");
    if (t->doc_name || t->doc_source) {
        cs_buf_puts(b, ": ");
        cs_esc_html(b, t->doc_name ? t->doc_name : t->doc_source);
    }
    cs_buf_puts(b, " <span>(true continuation)</span></h4><p class=\"txt\">");
    cs_esc_html(b, t->prompt ? t->prompt : "(unknown prompt)");
    cs_buf_puts(b, "</p><p class=\"txt\">");
    int64_t(*r)[2] = t->n_spans ? malloc(sizeof *r * (size_t)t->n_spans) : NULL;
    int nr = 0;
    for (int i = 0; r && i < t->n_spans; i++) {
        r[nr][0] = t->spans[i].comp_start;
        r[nr][1] = t->spans[i].comp_end;
        nr++;
    }
    cs_report_highlight(b, t->completion, (const int64_t(*)[2])r, nr);
    cs_buf_puts(b, "</p><p class=\"txt\">");
    /* the same spans located in the true continuation by their text */
    nr = 0;
    const char *c = t->continuation;
    for (int i = 0; r && c && i < t->n_spans; i++) {
        const char *sp = t->spans[i].text;
        const char *hit = sp && *sp ? strstr(c, sp) : NULL;
        if (!hit) continue;
        r[nr][0] = hit - c;
        r[nr][1] = hit - c + (int64_t)strlen(sp);
        nr++;
    }
    if (c) cs_report_highlight(b, c, (const int64_t(*)[2])r, nr);
    else cs_buf_puts(b, "(no true continuation stored)");
    free(r);
    cs_buf_puts(b, "</p></div></div>\n");
}

static void text_section(cs_buf *b, const cs_rmodel *m) {
    if (!m->n_t) return;
    int64_t n = m->n_t < m->top ? m->n_t : m->top;
    cs_buf_printf(b, "<h2 id=\"text\">Text findings</h2><p class=\"note\">%lld completions audited: %lld verbatim, "
                     "%lld near-verbatim, %lld novel. ",
                  (long long)m->n_t, (long long)m->text_count[0], (long long)m->text_count[1],
                  (long long)m->text_count[2]);
    if (n < m->n_t) cs_buf_printf(b, "Showing the %lld most verbatim (all are in the JSON and CSV); ", (long long)n);
    else cs_buf_puts(b, "Most verbatim first; ");
    cs_buf_puts(b, "red marks text the completion shares verbatim with the corpus.</p>\n");
    for (int64_t i = 0; i < n; i++) text_finding(b, &m->t[i]);
}

int cs_report_html(cs_buf *b, const cs_rmodel *m, cs_store *s, const cs_report_opts *o, cs_err *err) {
    cs_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\n"
                   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
                   "style-src 'unsafe-inline'\"/>\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>copyscope report");
    if (m->has_run) cs_buf_printf(b, ": run %lld", (long long)m->run_id);
    cs_buf_puts(b, "</title>\n<style>");
    cs_buf_puts(b, css);
    cs_buf_puts(b, "</style></head>\n<body><div class=\"doc\">\n");
    head(b, m, o);
    if (m->has_run) {
        cs_buf_puts(b, "<h2 id=\"summary\">Summary</h2><div class=\"sumgrid\"><div>");
        run_table(b, m);
        cs_buf_puts(b, "</div><div><h3 style=\"margin-top:0\">Verdicts</h3>");
        verdict_table(b, m);
        cs_buf_puts(b, "</div></div>\n");
        histograms(b, m);
        prompt_table(b, m);
        cs_memo_html(b, m->memo);
        if (gallery(b, m, s, o, err)) return -1;
    }
    text_section(b, m);
    cs_buf_puts(b, "<div class=\"foot\">");
    if (m->attribution) {
        cs_buf_puts(b, "Reference images: ");
        cs_esc_html(b, m->attribution);
        cs_buf_puts(b, "<br/>");
    }
    cs_buf_puts(b, "Generated by ");
    cs_esc_html(b, o->generator ? o->generator : "copyscope");
    cs_buf_puts(b, " on ");
    cs_esc_html(b, m->generated);
    cs_buf_puts(b, ". This file is self-contained: it loads nothing from the network and runs no script.</div>\n"
                   "</div></body></html>\n");
    return 0;
}
