/* svg.c — histogram binning and its SVG drawing (svg.h). */
#include "reports/svg.h"

#include <math.h>
#include <string.h>

#include "reports/escape.h"

void cs_hist_compute(cs_hist *h, const double *v, int64_t n) {
    memset(h, 0, sizeof *h);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < lo) lo = v[i];
            if (v[i] > hi) hi = v[i];
        }
    if (!(lo <= hi)) {
        h->lo = 0;
        h->hi = 1;
        return;
    }
    if (lo >= 0 && hi <= 1) {
        lo = 0;
        hi = 1;
    } else if (hi - lo < 1e-12) {
        lo -= 0.5;
        hi += 0.5;
    }
    h->lo = lo;
    h->hi = hi;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            int k = (int)((v[i] - lo) / (hi - lo) * CS_HIST_BINS);
            if (k < 0) k = 0;
            if (k >= CS_HIST_BINS) k = CS_HIST_BINS - 1;
            h->count[k]++;
            h->n++;
        }
}

void cs_svg_histogram(cs_buf *b, const cs_hist *h, const char *label) {
    cs_svg_histogram_marked(b, h, label, NULL, NULL, 0);
}

void cs_svg_histogram_marked(cs_buf *b, const cs_hist *h, const char *label, const double *marks,
                             const char (*mark_labels)[48], int n_marks) {
    /* the threshold labels get their own rows above the bars, never over them */
    const int W = 330, T = 10 + 12 * (n_marks > 0 ? n_marks : 0), H = 150 + T, L = 40, R = 10, B = 36;
    const double pw = W - L - R, ph = H - T - B;
    int64_t mx = 1;
    for (int k = 0; k < CS_HIST_BINS; k++)
        if (h->count[k] > mx) mx = h->count[k];
    cs_buf_printf(b, "<svg class=\"hist\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                     "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"histogram of ", W, H, W, H);
    cs_esc_html(b, label);
    cs_buf_puts(b, "\">");
    /* axes */
    cs_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>", L, H - B, W - R, H - B);
    cs_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>", L, T, L, H - B);
    const double bw = pw / CS_HIST_BINS;
    for (int k = 0; k < CS_HIST_BINS; k++) {
        if (!h->count[k]) continue;
        double bh = ph * (double)h->count[k] / (double)mx;
        double x0 = h->lo + (h->hi - h->lo) * k / CS_HIST_BINS;
        double x1 = h->lo + (h->hi - h->lo) * (k + 1) / CS_HIST_BINS;
        cs_buf_printf(b,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#3b6ea5\">"
                      "<title>%.4g to %.4g: %lld</title></rect>",
                      L + k * bw + 0.5, (H - B) - bh, bw - 1, bh, x0, x1, (long long)h->count[k]);
    }
    /* verdict thresholds: dashed red lines, labels stacked so close ones stay readable */
    for (int k = 0; k < n_marks; k++) {
        double v = marks[k];
        if (!isfinite(v) || !(h->hi > h->lo)) continue;
        double f = (v - h->lo) / (h->hi - h->lo);
        const char *arrow = f < 0 ? "\xe2\x86\x90 " : "";
        const char *arrow2 = f > 1 ? " \xe2\x86\x92" : "";
        if (f < 0) f = 0;
        if (f > 1) f = 1;
        double x = L + f * pw;
        int right = f > 0.6; /* label on the left of a line near the right edge */
        cs_buf_printf(b, "<g class=\"thr\"><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#b3261e\" "
                         "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>", x, 12 * k + 2, x, H - B);
        cs_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"10.5\" fill=\"#b3261e\" text-anchor=\"%s\">%s",
                      right ? x - 3 : x + 3, 12 * k + 10, right ? "end" : "start", arrow);
        cs_esc_html(b, mark_labels[k]);
        cs_buf_printf(b, "%s</text></g>", arrow2);
    }
    /* ticks: range ends, middle; count axis max */
    cs_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"start\">%.3g</text>", L, H - B + 14, h->lo);
    cs_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.3g</text>", L + pw / 2,
                  H - B + 14, (h->lo + h->hi) / 2);
    cs_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.3g</text>", W - R, H - B + 14, h->hi);
    cs_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%lld</text>", L - 4, T + 10, (long long)mx);
    cs_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">0</text>", L - 4, H - B);
    cs_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" fill=\"#444\">", L + pw / 2, H - 4);
    cs_esc_html(b, label);
    cs_buf_printf(b, " (n = %lld)</text></svg>", (long long)h->n);
}
