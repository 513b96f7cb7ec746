/* csv.c — one row per finding (RFC 4180: CRLF line ends, fields quoted when
 * they hold a comma, quote or line break, quotes doubled). The columns are
 * listed in reports/report-schema.md; one top1_<descriptor> column per
 * descriptor the run's matches hold. */
#include <math.h>

#include "reports/escape.h"
#include "reports/formats.h"

static void num(cs_buf *b, double v) {
    if (isfinite(v)) cs_buf_printf(b, "%.9g", v);
}

static void id(cs_buf *b, int64_t v) {
    if (v) cs_buf_printf(b, "%lld", (long long)v);
}

void cs_report_csv(cs_buf *b, const cs_rmodel *m) {
    cs_buf_puts(b, "finding_id,rank,verdict,severity,generation_id,generation_path,seed,sample,whitebox,"
                   "prompt_id,prompt_key,prompt,ref_id,ref_source,ref_caption,run_id,model");
    for (int d = 0; d < m->n_desc; d++) {
        cs_buf_putc(b, ',');
        cs_buf t = {0};
        cs_buf_puts(&t, "top1_");
        cs_buf_puts(&t, m->desc[d]);
        cs_esc_csv(b, t.p);
        cs_buf_free(&t);
    }
    cs_buf_puts(b, ",evidence_json\r\n");
    for (int64_t i = 0; i < m->n_f; i++) {
        const cs_rfinding *f = &m->f[i];
        cs_buf_printf(b, "%lld,%lld,", (long long)f->id, (long long)f->rank);
        cs_esc_csv(b, f->verdict);
        cs_buf_putc(b, ',');
        num(b, f->severity);
        cs_buf_printf(b, ",%lld,", (long long)f->generation_id);
        cs_esc_csv(b, f->gen_path);
        cs_buf_printf(b, ",%lld,%lld,", (long long)f->seed, (long long)f->sample);
        num(b, f->whitebox);
        cs_buf_putc(b, ',');
        id(b, f->prompt_id);
        cs_buf_putc(b, ',');
        cs_esc_csv(b, f->prompt_key);
        cs_buf_putc(b, ',');
        cs_esc_csv(b, f->prompt_text);
        cs_buf_putc(b, ',');
        id(b, f->ref_id);
        cs_buf_putc(b, ',');
        cs_esc_csv(b, f->ref_source);
        cs_buf_putc(b, ',');
        cs_esc_csv(b, f->ref_caption);
        cs_buf_printf(b, ",%lld,", (long long)m->run_id);
        cs_esc_csv(b, m->model);
        for (int d = 0; d < m->n_desc; d++) {
            cs_buf_putc(b, ',');
            num(b, f->scores[d]);
        }
        cs_buf_putc(b, ',');
        cs_esc_csv(b, f->evidence_json);
        cs_buf_puts(b, "\r\n");
    }
}
