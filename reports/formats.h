/* formats.h — the four writers over a loaded report model (internal to
 * reports/). Each appends to b; allocation failure shows as b->oom. */
#ifndef CS_REPORT_FORMATS_H
#define CS_REPORT_FORMATS_H

#include "reports/report_model.h"
#include "reports/report.h"

int cs_report_html(cs_buf *b, const cs_rmodel *m, cs_store *s, const cs_report_opts *o, cs_err *err);
int cs_report_json(cs_buf *b, const cs_rmodel *m, const cs_report_opts *o, cs_err *err);
void cs_report_csv(cs_buf *b, const cs_rmodel *m);
void cs_report_md(cs_buf *b, const cs_rmodel *m, const cs_report_opts *o);

/* Shared helpers (reports/report.c). */
/* Appends the verdict's CSS class suffix: "copy", "near-copy", ..., "other". */
const char *cs_report_verdict_class(const char *verdict);
/* Writes s[0..n) HTML-escaped with the byte ranges [a_i, b_i) wrapped in
 * <span class="verb">; ranges are clamped, snapped to UTF-8 boundaries and
 * merged. Returns the number of highlighted bytes. */
size_t cs_report_highlight(cs_buf *b, const char *s, const int64_t (*ranges)[2], int n);

#endif
