/* svg.h — histograms as inline SVG (no script, no external references). */
#ifndef CS_REPORT_SVG_H
#define CS_REPORT_SVG_H

#include <stdint.h>

#include "reports/buf.h"

#define CS_HIST_BINS 20

typedef struct {
    double lo, hi;               /* bin range: [0,1] when every value lies in it */
    int64_t count[CS_HIST_BINS];
    int64_t n;                   /* finite values counted */
} cs_hist;

/* Bins the finite values of v[0..n) (NAN/inf skipped). */
void cs_hist_compute(cs_hist *h, const double *v, int64_t n);
/* An <svg> bar chart of h; label (escaped here) names the x axis. */
void cs_svg_histogram(cs_buf *b, const cs_hist *h, const char *label);
/* The same with n_marks verdict thresholds drawn as labelled dashed lines
 * (class "thr"); a mark outside the bin range is drawn at the nearer end
 * with an arrow in its label ("near-copy ≤ 31 →"). Labels are escaped here. */
void cs_svg_histogram_marked(cs_buf *b, const cs_hist *h, const char *label, const double *marks,
                             const char (*mark_labels)[48], int n_marks);

#endif
