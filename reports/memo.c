/* memo.c — the memorisation section (memo.h): manifest, pixel ground truth,
 * rates per duplication count, white-box ROC, and their HTML and JSON. */
#include "reports/memo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/image.h"
#include "reports/escape.h"
#include "reports/report_model.h"
#include "reports/panels.h"

/* ---- manifest ---- */

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static void note(cs_memo *m, const char *what) {
    if (m->note) return; /* the first problem is the one to fix */
    m->note = strdup(what);
}

/* 1 loaded, 0 no manifest (or not one of ours), -1 out of memory. */
static int load_manifest(cs_memo *m, const char *run_model) {
    const char *slash = run_model ? strrchr(run_model, '/') : NULL;
    m->dir = slash ? strndup(run_model, (size_t)(slash - run_model)) : strdup(".");
    char *path = m->dir ? cs_path_join(m->dir, "manifest.json") : NULL;
    if (!path) return -1;
    uint8_t *buf = NULL;
    size_t len = 0;
    cs_err e = {0};
    int rc = cs_read_file(path, &buf, &len, &e);
    free(path);
    if (rc) return 0;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *train = root ? cJSON_GetObjectItemCaseSensitive(root, "train") : NULL;
    int n = cJSON_IsArray(train) ? cJSON_GetArraySize(train) : 0;
    if (n <= 0) {
        cJSON_Delete(root);
        return 0;
    }
    m->img = calloc((size_t)n, sizeof *m->img);
    if (!m->img) {
        cJSON_Delete(root);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(train, i), *c = cJSON_GetObjectItemCaseSensitive(t, "copies");
        const char *file = jstr(t, "file"), *cap = jstr(t, "caption"), *rec = jstr(t, "recon");
        if (!file || !cap || !cJSON_IsNumber(c) || c->valuedouble < 1) continue;
        cs_memo_image *im = &m->img[m->n_img++];
        im->file = strdup(file);
        im->caption = strdup(cap);
        im->recon = rec ? cs_path_join(m->dir, rec) : NULL;
        im->copies = (int)c->valuedouble;
        im->floor_db = NAN;
        if (!im->file || !im->caption || (rec && !im->recon)) {
            cJSON_Delete(root);
            return -1;
        }
    }
    cJSON_Delete(root);
    return m->n_img > 0;
}

/* ---- pixels ---- */

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    double mse = se / (double)n / (255.0 * 255.0);
    return mse > 0 ? -10.0 * log10(mse) : 99.0;
}

/* The image at path as w x h RGB (area-resized when its size differs); NULL if unreadable. */
static uint8_t *load_as(const char *path, int w, int h) {
    cs_image im = {0}, rs = {0};
    cs_err e = {0};
    if (!path || cs_image_load(&im, path, NULL, &e)) return NULL;
    if (im.w != w || im.h != h) {
        int rc = cs_image_resize(&rs, &im, w, h, CS_RESIZE_AREA, &e);
        cs_image_free(&im);
        if (rc) return NULL;
        im = rs;
    }
    return im.rgb;
}

/* Carlini et al. 2023 s4.2's tiled L2 on [0,1] pixels: the largest RMS
 * distance over a 4 x 4 grid of tiles (written out here, not shared with
 * index/tiled_l2.c, so the ground truth does not lean on the code it judges). */
static double tiled_l2(const uint8_t *a, const uint8_t *b, int w, int h) {
    double worst = 0;
    for (int ty = 0; ty < 4; ty++)
        for (int tx = 0; tx < 4; tx++) {
            int y0 = ty * h / 4, y1 = (ty + 1) * h / 4, x0 = tx * w / 4, x1 = (tx + 1) * w / 4;
            double se = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0 * 3; x < x1 * 3; x++) {
                    double d = ((double)a[(size_t)y * w * 3 + x] - (double)b[(size_t)y * w * 3 + x]) / 255.0;
                    se += d * d;
                }
            int n = (y1 - y0) * (x1 - x0) * 3;
            double d = n ? sqrt(se / n) : 0;
            if (d > worst) worst = d;
        }
    return worst;
}

static void ground_truth(cs_memo *m) {
    for (int i = 0; i < m->n_img; i++) {
        cs_memo_image *im = &m->img[i];
        if (!im->thumb) {
            note(m, "some training images are not in the index: their copies cannot be judged");
            continue;
        }
        im->rec = load_as(im->recon, im->tw, im->th);
        if (im->rec) im->floor_db = psnr(im->rec, im->thumb, (size_t)im->tw * im->th * 3);
        else note(m, "some reconstructions (recon/ beside the manifest) are unreadable");
    }
    int lw = 0, lh = 0;
    uint8_t *gen = NULL;
    for (int k = 0; k < m->n_g; k++) {
        cs_memo_gen *g = &m->g[k];
        /* the two nearest training images, by their reconstructions [0] and by their pixels [1] */
        int i1[2] = {-1, -1};
        double d1[2] = {-INFINITY, -INFINITY}, d2[2] = {-INFINITY, -INFINITY};
        for (int i = 0; i < m->n_img; i++) {
            cs_memo_image *im = &m->img[i];
            if (!im->thumb || !isfinite(im->floor_db)) continue;
            if (!gen || lw != im->tw || lh != im->th) {
                free(gen);
                gen = load_as(g->path, im->tw, im->th);
                lw = im->tw;
                lh = im->th;
                if (!gen) {
                    note(m, "some generated images are unreadable");
                    break;
                }
            }
            size_t n = (size_t)im->tw * im->th * 3;
            double db = psnr(gen, im->thumb, n), dbs[2] = {psnr(gen, im->rec, n), db};
            if (i == g->own) g->own_db = db;
            if (g->nearest < 0 || db > g->nearest_db) {
                g->nearest = i;
                g->nearest_db = db;
            }
            for (int s = 0; s < 2; s++) {
                double t = tiled_l2(gen, s ? im->thumb : im->rec, im->tw, im->th);
                if (g->gt_tl2_img[s] < 0 || t < g->tl2[s]) {
                    g->gt_tl2_img[s] = i;
                    g->tl2[s] = t;
                }
                if (dbs[s] > d1[s]) {
                    d2[s] = d1[s];
                    d1[s] = dbs[s];
                    i1[s] = i;
                } else if (dbs[s] > d2[s]) {
                    d2[s] = dbs[s];
                }
            }
        }
        free(gen);
        gen = NULL;
        if (g->nearest >= 0) {
            g->gt_floor = g->nearest_db >= m->img[g->nearest].floor_db - CS_MEMO_GT_MARGIN_DB;
            g->gt_floor_issue = g->nearest_db >= m->img[g->nearest].floor_db - CS_MEMO_GT_ISSUE_MARGIN_DB;
        }
        /* d(nn1) / d(nn2) < r  <=>  PSNR(nn1) - PSNR(nn2) > -20 log10(r); one training image: no ratio */
        double need = -20.0 * log10(CS_MEMO_KNN_RATIO);
        for (int s = 0; s < 2; s++) {
            g->gt_ratio_img[s] = i1[s];
            g->ratio_gap_db[s] = d1[s] - d2[s];
            g->gt_ratio[s] = i1[s] >= 0 && isfinite(d2[s]) && g->ratio_gap_db[s] > need;
        }
        for (int s = 0; s < 2; s++) g->gt_tl2[s] = g->gt_tl2_img[s] >= 0 && g->tl2[s] <= CS_MEMO_TL2_DELTA;
        g->gt = g->gt_tl2[0];
        g->gt_img = g->gt_tl2_img[0];
    }
}

/* ---- white-box ROC over prompts ---- */

typedef struct {
    double s;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x > y ? -1 : x < y; /* descending */
}

/* AUC (ties count one half) and the ROC polyline as (fpr, tpr) pairs. */
static double roc(scored *v, int n, int npos, double **pts, int *npts) {
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    int nneg = n - npos;
    *pts = malloc(sizeof(double) * 2 * (size_t)(n + 2));
    *npts = 0;
    double auc = 0;
    int tp = 0, fp = 0;
    if (*pts) {
        (*pts)[0] = (*pts)[1] = 0;
        *npts = 1;
    }
    for (int i = 0; i < n;) {
        int j = i, dtp = 0, dfp = 0;
        while (j < n && v[j].s == v[i].s) {
            dtp += v[j].pos;
            dfp += !v[j].pos;
            j++;
        }
        auc += (double)dfp * (tp + 0.5 * dtp);
        tp += dtp;
        fp += dfp;
        if (*pts) {
            (*pts)[2 * *npts] = nneg ? (double)fp / nneg : 0;
            (*pts)[2 * *npts + 1] = npos ? (double)tp / npos : 0;
            (*npts)++;
        }
        i = j;
    }
    return npos && nneg ? auc / ((double)npos * nneg) : NAN;
}

static void whitebox_roc(cs_memo *m) {
    /* per prompt: mean over its generations; generations are in id order, a
     * prompt's generations need not be adjacent, so gather by prompt id */
    scored *a = malloc(sizeof *a * (size_t)(m->n_g ? m->n_g : 1));
    scored *b = malloc(sizeof *b * (size_t)(m->n_g ? m->n_g : 1));
    char *done = calloc((size_t)(m->n_g ? m->n_g : 1), 1);
    int n = 0, npos = 0;
    for (int k = 0; a && b && done && k < m->n_g; k++) {
        if (done[k]) continue;
        const cs_memo_gen *g = &m->g[k];
        int copies = g->own >= 0 ? m->img[g->own].copies : 0;
        int pos = copies >= CS_MEMO_POS_COPIES, neg = copies <= 1;
        double sf = 0, sm = 0;
        int cf = 0, cm = 0;
        for (int j = k; j < m->n_g; j++) {
            if (m->g[j].prompt_id != g->prompt_id) continue;
            done[j] = 1;
            if (isfinite(m->g[j].wb_first)) sf += m->g[j].wb_first, cf++;
            if (isfinite(m->g[j].wb_mean)) sm += m->g[j].wb_mean, cm++;
        }
        if ((!pos && !neg) || !cf || !cm) continue;
        a[n] = (scored){sf / cf, pos};
        b[n] = (scored){sm / cm, pos};
        npos += pos;
        n++;
    }
    m->n_pos = npos;
    m->n_neg = n - npos;
    m->auc_first = m->auc_mean = NAN;
    if (a && b && n) {
        m->auc_first = roc(a, n, npos, &m->roc_first, &m->n_roc_first);
        m->auc_mean = roc(b, n, npos, &m->roc_mean, &m->n_roc_mean);
    }
    free(a);
    free(b);
    free(done);
}

/* ---- groups and counts ---- */

static int group_of(cs_memo *m, int copies) {
    for (int i = 0; i < m->n_groups; i++)
        if (m->group_copies[i] == copies) return i;
    return -1;
}

/* c[tp, fp, fn, tn] += one generation: a verdict counts when it names the truth's image. */
static void count_vs(int64_t c[4], int verdict_img, int truth, int truth_img) {
    c[verdict_img >= 0 && truth && verdict_img == truth_img ? 0 : verdict_img >= 0 ? 1 : truth ? 2 : 3]++;
}

static void tally(cs_memo *m) {
    /* distinct duplication counts, descending; novel (0) last */
    for (int i = 0; i < m->n_img; i++) {
        int c = m->img[i].copies;
        if (group_of(m, c) >= 0 || m->n_groups >= CS_MEMO_MAX_GROUPS - 1) continue;
        int k = m->n_groups++;
        while (k > 0 && m->group_copies[k - 1] < c) {
            m->group_copies[k] = m->group_copies[k - 1];
            k--;
        }
        m->group_copies[k] = c;
    }
    m->group_copies[m->n_groups++] = 0;
    int64_t *seen = calloc((size_t)(m->n_g > 0 ? m->n_g : 1), sizeof *seen);
    int n_seen = 0;
    for (int k = 0; k < m->n_g; k++) {
        cs_memo_gen *g = &m->g[k];
        int grp = group_of(m, g->own >= 0 ? m->img[g->own].copies : 0);
        if (grp < 0) grp = m->n_groups - 1;
        g->group = grp;
        m->g_gens[grp]++;
        int v_own = g->own >= 0 && g->verdict_img == g->own;
        int gt_own = g->own >= 0 && g->gt && g->gt_img == g->own;
        m->g_verdict_own[grp] += v_own;
        m->g_gt_own[grp] += gt_own;
        m->g_verdict_train[grp] += g->verdict_img >= 0;
        m->g_flag_own[grp] += g->own >= 0 && g->flag_img == g->own;
        m->g_flag_train[grp] += g->flag_img >= 0;
        m->g_gt_train[grp] += g->gt;
        /* verdict (copy or near-copy of training image j) vs ground truth (copy of j) */
        if (g->nearest >= 0)
            for (int r = 0; r < 2; r++) {
                int64_t(*vs)[4] = r ? m->vs_flag : m->vs;
                int v = r ? g->flag_img : g->verdict_img;
                count_vs(vs[CS_MEMO_GT_TL2_RECON], v, g->gt_tl2[0], g->gt_tl2_img[0]);
                count_vs(vs[CS_MEMO_GT_TL2_PIXELS], v, g->gt_tl2[1], g->gt_tl2_img[1]);
                count_vs(vs[CS_MEMO_GT_RATIO_RECON], v, g->gt_ratio[0], g->gt_ratio_img[0]);
                count_vs(vs[CS_MEMO_GT_RATIO_PIXELS], v, g->gt_ratio[1], g->gt_ratio_img[1]);
                count_vs(vs[CS_MEMO_GT_FLOOR], v, g->gt_floor, g->nearest);
                count_vs(vs[CS_MEMO_GT_FLOOR_ISSUE], v, g->gt_floor_issue, g->nearest);
            }
        int first = 1;
        for (int j = 0; seen && j < n_seen; j++) first &= seen[j] != g->prompt_id;
        if (seen && first) {
            seen[n_seen++] = g->prompt_id;
            m->g_prompts[grp]++;
            int any = 0;
            for (int j = k; j < m->n_g; j++)
                any |= m->g[j].prompt_id == g->prompt_id && g->own >= 0 && m->g[j].verdict_img == g->own;
            m->g_prompt_copied[grp] += any;
        }
    }
    free(seen);
}

/* Carlini et al.'s black-box signal: every seed of the prompt in one clique. */
static void cliques(cs_memo *m, const cs_rmodel *rm) {
    for (int64_t i = 0; i < rm->n_p; i++) {
        const cs_rprompt *p = &rm->p[i];
        if (strcmp(p->kind ? p->kind : "", "txt2img") || p->n_generations < 2 || p->largest_clique < p->n_generations)
            continue;
        for (int k = 0; k < m->n_g; k++)
            if (m->g[k].prompt_id == p->id) {
                m->g_clique[m->g[k].group]++;
                break;
            }
    }
}

int cs_memo_load(cs_memo *m, cs_store *s, const cs_rmodel *rm, cs_err *err) {
    memset(m, 0, sizeof *m);
    int64_t run_id = rm->run_id;
    int rc = load_manifest(m, rm->model);
    if (rc < 0) return cs_memo_free(m), cs_fail(err, CS_ENOMEM, "report: out of memory");
    if (rc == 0) {
        cs_memo_free(m);
        return 0;
    }
    if (cs_memo_load_refs(m, s, err) || cs_memo_load_gens(m, s, run_id, err)) {
        cs_memo_free(m);
        return -1;
    }
    m->present = 1;
    for (int k = 0; k < m->n_g; k++)
        for (int i = 0; i < m->n_img && m->g[k].own < 0; i++)
            if (!strcmp(m->g[k].prompt, m->img[i].caption)) m->g[k].own = i;
    ground_truth(m);
    tally(m);
    cliques(m, rm);
    whitebox_roc(m);
    return 0;
}

void cs_memo_free(cs_memo *m) {
    for (int i = 0; i < m->n_img; i++) {
        free(m->img[i].file);
        free(m->img[i].caption);
        free(m->img[i].recon);
        free(m->img[i].thumb);
        free(m->img[i].rec);
    }
    for (int k = 0; k < m->n_g; k++) {
        free(m->g[k].path);
        free(m->g[k].prompt);
    }
    free(m->img);
    free(m->g);
    free(m->dir);
    free(m->note);
    free(m->roc_first);
    free(m->roc_mean);
    memset(m, 0, sizeof *m);
}

/* ---- HTML ---- */

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : NAN; }

static void pct(cs_buf *b, double v) {
    if (isfinite(v)) cs_buf_printf(b, "%.0f%%", 100 * v);
    else cs_buf_puts(b, "&ndash;");
}

static void group_name(cs_buf *b, int copies) {
    if (copies) cs_buf_printf(b, "%d&times;", copies);
    else cs_buf_puts(b, "novel");
}

/* Grouped bars: verdict rate and pixel ground-truth rate per duplication count. */
static void rate_chart(cs_buf *b, const cs_memo *m) {
    const int W = 420, H = 200, L = 40, T = 12, B = 50, R = 8;
    const double pw = W - L - R, ph = H - T - B, gw = pw / m->n_groups;
    cs_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                     "role=\"img\" aria-label=\"copy rate per duplication count\" style=\"font:11px sans-serif\">",
                  W, H, W, H);
    for (int t = 0; t <= 4; t++) {
        double y = T + ph * (1 - t / 4.0);
        cs_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                         "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>",
                      L, W - R, y, y, L - 4, y + 4, 25 * t);
    }
    for (int i = 0; i < m->n_groups; i++) {
        int own = m->group_copies[i] > 0;
        double v[2] = {ratio(own ? m->g_verdict_own[i] : m->g_verdict_train[i], m->g_gens[i]),
                       ratio(own ? m->g_gt_own[i] : m->g_gt_train[i], m->g_gens[i])};
        const char *col[2] = {"#c0392b", "#7f8c8d"};
        for (int k = 0; k < 2; k++) {
            if (!isfinite(v[k])) continue;
            double x = L + gw * i + gw * (0.15 + 0.35 * k), h = ph * v[k];
            cs_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x,
                          T + ph - h, gw * 0.33, h, col[k]);
        }
        cs_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", L + gw * (i + 0.5), H - B + 13);
        group_name(b, m->group_copies[i]);
        /* the counts behind each pair of bars: a rate of 3 prompts reads differently from one of 30 */
        cs_buf_printf(b, "<tspan x=\"%.1f\" dy=\"12\" fill=\"#666\">%lld p, %lld g</tspan></text>", L + gw * (i + 0.5),
                      (long long)m->g_prompts[i], (long long)m->g_gens[i]);
    }
    cs_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">duplicates in training (p prompts, g generations)</text>"
                     "<rect x=\"%d\" y=\"%d\" width=\"9\" height=\"9\" fill=\"#c0392b\"/>"
                     "<text x=\"%d\" y=\"%d\">copyscope verdict</text>"
                     "<rect x=\"%d\" y=\"%d\" width=\"9\" height=\"9\" fill=\"#7f8c8d\"/>"
                     "<text x=\"%d\" y=\"%d\">pixel ground truth</text></svg>",
                  L + pw / 2, H - 8, W - 250, T, W - 238, T + 9, W - 125, T, W - 113, T + 9);
}

static void roc_line(cs_buf *b, const double *p, int n, int S, int L, int T, const char *style) {
    cs_buf_puts(b, "<polyline fill=\"none\" ");
    cs_buf_puts(b, style);
    cs_buf_puts(b, " points=\"");
    for (int i = 0; i < n; i++) cs_buf_printf(b, "%.1f,%.1f ", L + S * p[2 * i], T + S * (1 - p[2 * i + 1]));
    cs_buf_puts(b, "\"/>");
}

static void roc_chart(cs_buf *b, const cs_memo *m) {
    const int S = 150, L = 36, T = 10, W = L + S + 150, H = T + S + 34;
    cs_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                     "role=\"img\" aria-label=\"white-box ROC\" style=\"font:11px sans-serif\">"
                     "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>"
                     "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ccc\" stroke-dasharray=\"3,3\"/>",
                  W, H, W, H, L, T, S, S, L, T + S, L + S, T);
    if (m->roc_mean) roc_line(b, m->roc_mean, m->n_roc_mean, S, L, T, "stroke=\"#7f8c8d\" stroke-dasharray=\"5,3\"");
    if (m->roc_first) roc_line(b, m->roc_first, m->n_roc_first, S, L, T, "stroke=\"#c0392b\" stroke-width=\"2\"");
    cs_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">false positive rate</text>"
                     "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" text-anchor=\"middle\">true positive rate</text>"
                     "<text x=\"%d\" y=\"%d\" fill=\"#c0392b\">first step: AUC %.3f</text>"
                     "<text x=\"%d\" y=\"%d\" fill=\"#7f8c8d\">mean of all steps: AUC %.3f</text></svg>",
                  L + S / 2, T + S + 26, T + S / 2, T + S / 2, L + S + 8, T + 20, m->auc_first, L + S + 8, T + 38,
                  m->auc_mean);
}

static int cmp_side(const void *a, const void *b) {
    const cs_memo_gen *x = *(const cs_memo_gen *const *)a, *y = *(const cs_memo_gen *const *)b;
    if (x->group != y->group) return x->group - y->group;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void side_by_side(cs_buf *b, const cs_memo *m) {
    /* one generation per training prompt: the closest to its own image; plus
     * any other generation that copies a training image */
    const cs_memo_gen **v = malloc(sizeof *v * (size_t)(m->n_g ? m->n_g : 1));
    if (!v) {
        b->oom = 1;
        return;
    }
    int n = 0;
    for (int k = 0; k < m->n_g; k++) {
        const cs_memo_gen *g = &m->g[k];
        if (g->nearest < 0 || (!g->gt && g->verdict_img < 0)) continue;
        int best = 1;
        for (int j = 0; j < m->n_g && best; j++)
            if (j != k && m->g[j].prompt_id == g->prompt_id && (m->g[j].gt || m->g[j].verdict_img >= 0) &&
                (m->g[j].nearest_db > g->nearest_db || (m->g[j].nearest_db == g->nearest_db && j < k)))
                best = 0;
        if (best) v[n++] = g;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_side);
    cs_buf_printf(b, "<h3>Near-copies side by side</h3><p class=\"note\">For each prompt with a copy (by verdict or "
                     "by pixels), its generation closest to a training image: the generation, that training image "
                     "(as indexed) and the autoencoder's reconstruction of it (the best the model can do). "
                     "%d prompt%s%s.</p><table class=\"memo\"><thead><tr><th>prompt (duplicates)</th><th>generated</th>"
                     "<th>training image</th><th>reconstruction</th><th>PSNR to it / floor</th><th>verdict</th>"
                     "<th>pixel truth</th></tr></thead><tbody>",
                  n, n == 1 ? "" : "s", n > CS_MEMO_MAX_SIDE ? "; the first ones by duplication count are shown" : "");
    for (int i = 0; i < n && i < CS_MEMO_MAX_SIDE; i++) {
        const cs_memo_gen *g = v[i];
        const cs_memo_image *im = &m->img[g->nearest];
        uint8_t *gen = load_as(g->path, im->tw, im->th);
        char *u[3] = {gen ? cs_rpanel_uri(gen, im->tw, im->th) : NULL, cs_rpanel_uri(im->thumb, im->tw, im->th),
                      im->rec ? cs_rpanel_uri(im->rec, im->tw, im->th) : NULL};
        cs_buf_puts(b, "<tr><td>");
        cs_esc_html(b, g->prompt);
        cs_buf_puts(b, " (");
        group_name(b, m->group_copies[g->group]);
        cs_buf_puts(b, ")</td>");
        for (int k = 0; k < 3; k++) {
            cs_buf_puts(b, "<td>");
            if (u[k]) cs_buf_printf(b, "<img src=\"%s\" width=\"64\" height=\"64\" alt=\"\"/>", u[k]);
            if (k == 1) {
                cs_buf_puts(b, "<br/><small>");
                cs_esc_html(b, im->caption);
                cs_buf_printf(b, " (%d&times;)</small>", im->copies);
            }
            cs_buf_puts(b, "</td>");
            free(u[k]);
        }
        free(gen);
        cs_buf_printf(b, "<td class=\"num\">%.1f / %.1f dB</td><td>%s</td><td>%s</td></tr>", g->nearest_db,
                      im->floor_db,
                      g->verdict_img < 0 ? "not a copy" : g->verdict_img == g->nearest ? "copy of it" : "copy of another",
                      !g->gt ? "not a copy" : g->gt_img == g->nearest ? "copy" : "copy of another");
    }
    cs_buf_puts(b, "</tbody></table>\n");
    free(v);
}

void cs_memo_html(cs_buf *b, const cs_memo *m) {
    if (!m || !m->present) return;
    cs_buf_puts(b, "<h2 id=\"memorisation\">Memorisation by duplication count</h2><p class=\"note\">The model "
                   "came with a manifest of its training images (");
    cs_esc_html(b, m->dir);
    cs_buf_printf(b, "/manifest.json): %d images with how often each was duplicated. A generation counts as a copy "
                     "when copyscope's verdict is copy or near-copy of the prompt's own training image (for novel "
                     "prompts: of any training image); copies or partial also counts a partial verdict, a part of the "
                     "image reproduced (Somepalli et al. 2023). Pixel ground truth: tiled L2 at most 0.15 to the nearest "
                     "training image as the model's autoencoder decodes it (Carlini et al. 2023; below).</p>",
                  m->n_img);
    if (m->note) {
        cs_buf_puts(b, "<p class=\"note\"><b>Note:</b> ");
        cs_esc_html(b, m->note);
        cs_buf_puts(b, ".</p>");
    }
    cs_buf_puts(b, "<div class=\"sumgrid\"><div>");
    rate_chart(b, m);
    cs_buf_puts(b, "</div><div><table><thead><tr><th>duplicates</th><th>prompts</th><th>generations</th>"
                   "<th>copies (verdict)</th><th>copies or partial (verdict)</th><th>copies (pixels)</th>"
                   "<th>prompts with a copy</th>"
                   "<th>seeds in one clique</th></tr></thead><tbody>");
    for (int i = 0; i < m->n_groups; i++) {
        int own = m->group_copies[i] > 0;
        cs_buf_puts(b, "<tr><td>");
        group_name(b, m->group_copies[i]);
        cs_buf_printf(b, "</td><td class=\"num\">%lld</td><td class=\"num\">%lld</td><td class=\"num\">",
                      (long long)m->g_prompts[i], (long long)m->g_gens[i]);
        pct(b, ratio(own ? m->g_verdict_own[i] : m->g_verdict_train[i], m->g_gens[i]));
        cs_buf_puts(b, "</td><td class=\"num\">");
        pct(b, ratio(own ? m->g_flag_own[i] : m->g_flag_train[i], m->g_gens[i]));
        cs_buf_puts(b, "</td><td class=\"num\">");
        pct(b, ratio(own ? m->g_gt_own[i] : m->g_gt_train[i], m->g_gens[i]));
        cs_buf_puts(b, "</td><td class=\"num\">");
        if (own) pct(b, ratio(m->g_prompt_copied[i], m->g_prompts[i]));
        else cs_buf_puts(b, "&ndash;");
        cs_buf_puts(b, "</td><td class=\"num\">");
        pct(b, ratio(m->g_clique[i], m->g_prompts[i]));
        cs_buf_puts(b, "</td></tr>");
    }
    cs_buf_puts(b, "</tbody></table></div></div>\n");
    cs_buf_printf(b, "<h3>White-box score: memorised vs other prompts</h3><div class=\"sumgrid\"><div>");
    roc_chart(b, m);
    cs_buf_printf(b, "</div><div><p class=\"note\">Per prompt, the mean over its seeds of |&epsilon;<sub>c</sub> "
                     "&minus; &epsilon;<sub>u</sub>| (Wen et al. 2024): %d prompts of images duplicated &ge; %d "
                     "times against %d prompts of 1&times; images and novel prompts. The report uses the FIRST "
                     "sampling step: there the conditional and unconditional predictions start from the same pure "
                     "noise, so their difference is the caption's pull alone, strongest for memorised captions. "
                     "Averaged over all steps (dashed) the later steps dominate, and a memorised prompt has by then "
                     "converged on its image, where both predictions agree and the difference collapses.</p>"
                     "<p>AUC at the first step <b>%.3f</b>; mean over all steps %.3f.</p>",
                  m->n_pos, CS_MEMO_POS_COPIES, m->n_neg, m->auc_first, m->auc_mean);
    cs_buf_puts(b, "</div></div>\n");
    const int64_t *c = m->vs[CS_MEMO_GT_TL2_RECON];
    cs_buf_printf(b, "<h3>Verdicts against the pixel ground truth</h3><p>A generation is a pixel copy of training "
                     "image <i>i</i> when its tiled L2 distance to <i>i</i> (4&times;4 tiles, the largest per-tile "
                     "RMS difference on [0,1] pixels) is at most %.2f: Carlini et al.'s (2023, &sect;4.2) "
                     "extraction criterion for Stable Diffusion, <i>i</i> the nearest training image by it. The "
                     "training images are taken as the model's denoiser saw them, decoded from their latents (the "
                     "autoencoder's reconstructions): a latent model's training data are latents, so a copy is not "
                     "counted out for its autoencoder's blur and no margin on that blur is chosen. copyscope's "
                     "verdicts keep the same pixel thresholds for every model, but for a run of a model with an "
                     "autoencoder they measure each generation against the reference and against its round trip "
                     "through that autoencoder, whichever is nearer. A copy or near-copy verdict by pixels needs "
                     "every tile within its rule's bound (near_ae_floor, bounded by the autoencoder's own loss on the "
                     "reference: every tile within that loss of the round trip), and a local-feature verdict does not "
                     "override pixels that show a region not copied in place: such a generation is judged partial, "
                     "a copy of part of the image, not counted here as a copy. Over %lld generations, true copies "
                     "found: %lld; verdicts without a pixel copy: %lld; pixel copies missed: %lld. Precision <b>",
                  CS_MEMO_TL2_DELTA, (long long)(c[0] + c[1] + c[2] + c[3]), (long long)c[0], (long long)c[1],
                  (long long)c[2]);
    pct(b, ratio(c[0], c[0] + c[1]));
    cs_buf_puts(b, "</b>, recall <b>");
    pct(b, ratio(c[0], c[0] + c[2]));
    cs_buf_puts(b, "</b> (a verdict counts when it names the same training image as the pixels do).</p>\n"
                   "<p class=\"note\">Why this truth and this reading, from the generations on which they "
                   "disagree, looked at side by side (docs/BENCHMARKS.md, h15, 2026-12-07): every generation the "
                   "tiled L2 calls a copy is one by eye, and the copies it rejects show one region redrawn, moved or "
                   "lost, which the verdicts call partial. The issue's literal truth, PSNR to the nearest training "
                   "image judged against the autoencoder's floor, fails both ways with an autoencoder this weak "
                   "(floor 17 to 30 dB): with the margin the issue's prototype implies (its copies at 22 dB, its "
                   "floor 29.9 dB: 7.9 dB) and with the margin derived from the floor (twice the autoencoder's "
                   "own loss, 6.02 dB) alike, it calls a shapeless smear a copy (one 13 dB from the chick, whose "
                   "reconstruction is at 19 dB); with 7.9 dB, blobs with half a picture too; and with "
                   "6.02 dB it rejects decoder copies whose colours the autoencoder shifted, as the training image's "
                   "own pixels are 6 dB farther from them than their reconstruction is (the coral). A copy verdict is copy or near-copy, the issue's own reading (&ldquo;a copy or "
                   "near-copy verdict of their own image&rdquo;); partial claims a part, not the image. Second "
                   "lines, precision / recall:</p>\n<table class=\"memo\"><thead><tr><th>pixel truth</th>"
                   "<th>copy or near-copy verdicts (TP / FP / FN)</th><th>with partial verdicts</th></tr></thead>"
                   "<tbody>");
    static const char *const name[CS_MEMO_N_GT] = {
        "tiled L2 &le; 0.15 to the decoded training image (the truth above)",
        "tiled L2 &le; 0.15 to the training image's own pixels",
        "L2 under 1/3 of the second-nearest's, decoded images (Yoon et al. 2023, Gu et al. 2023)",
        "the same ratio on the own pixels",
        "PSNR &ge; floor &minus; 6.02 dB (twice the autoencoder's loss)",
        "PSNR &ge; floor &minus; 7.9 dB (the issue's prototype: 22 dB against 29.9 dB)"};
    static const int order[CS_MEMO_N_GT] = {CS_MEMO_GT_TL2_RECON, CS_MEMO_GT_FLOOR_ISSUE, CS_MEMO_GT_FLOOR,
                                            CS_MEMO_GT_TL2_PIXELS, CS_MEMO_GT_RATIO_RECON, CS_MEMO_GT_RATIO_PIXELS};
    for (int k = 0; k < CS_MEMO_N_GT; k++) {
        int d = order[k];
        cs_buf_printf(b, "<tr><td>%s</td>", name[d]);
        for (int r = 0; r < 2; r++) {
            c = r ? m->vs_flag[d] : m->vs[d];
            cs_buf_puts(b, "<td class=\"num\">");
            pct(b, ratio(c[0], c[0] + c[1]));
            cs_buf_puts(b, " / ");
            pct(b, ratio(c[0], c[0] + c[2]));
            cs_buf_printf(b, " (%lld / %lld / %lld)</td>", (long long)c[0], (long long)c[1], (long long)c[2]);
        }
        cs_buf_puts(b, "</tr>");
    }
    cs_buf_puts(b, "</tbody></table>\n");
    side_by_side(b, m);
}

/* ---- JSON ---- */

static void num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

void cs_memo_json(void *vroot, const cs_memo *m) {
    if (!m || !m->present) return;
    cJSON *o = cJSON_AddObjectToObject(vroot, "memorisation");
    if (!o) return;
    cJSON_AddStringToObject(o, "manifest_dir", m->dir);
    if (m->note) cJSON_AddStringToObject(o, "note", m->note);
    cJSON_AddNumberToObject(o, "ground_truth_margin_db", CS_MEMO_GT_MARGIN_DB);
    cJSON_AddNumberToObject(o, "ground_truth_issue_margin_db", CS_MEMO_GT_ISSUE_MARGIN_DB);
    cJSON *gs = cJSON_AddArrayToObject(o, "groups");
    for (int i = 0; i < m->n_groups; i++) {
        int own = m->group_copies[i] > 0;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "copies", m->group_copies[i]);
        cJSON_AddNumberToObject(e, "prompts", (double)m->g_prompts[i]);
        cJSON_AddNumberToObject(e, "generations", (double)m->g_gens[i]);
        num(e, "verdict_copy_rate", ratio(own ? m->g_verdict_own[i] : m->g_verdict_train[i], m->g_gens[i]));
        /* copy, near-copy or partial: the generations that copy at least a part */
        num(e, "verdict_copy_or_partial_rate", ratio(own ? m->g_flag_own[i] : m->g_flag_train[i], m->g_gens[i]));
        num(e, "pixel_copy_rate", ratio(own ? m->g_gt_own[i] : m->g_gt_train[i], m->g_gens[i]));
        num(e, "prompts_with_copy_rate", own ? ratio(m->g_prompt_copied[i], m->g_prompts[i]) : NAN);
        num(e, "prompts_all_seeds_one_clique_rate", ratio(m->g_clique[i], m->g_prompts[i]));
        cJSON_AddItemToArray(gs, e);
    }
    cJSON *w = cJSON_AddObjectToObject(o, "whitebox");
    cJSON_AddNumberToObject(w, "positive_min_copies", CS_MEMO_POS_COPIES);
    cJSON_AddNumberToObject(w, "n_positive_prompts", m->n_pos);
    cJSON_AddNumberToObject(w, "n_negative_prompts", m->n_neg);
    num(w, "auc_first_step", m->auc_first);
    num(w, "auc_mean_all_steps", m->auc_mean);
    /* the first is the ground truth; the others are there to compare */
    static const char *const def_name[CS_MEMO_N_GT] = {
        "verdicts_vs_pixels", "verdicts_vs_pixels_tl2_raw", "verdicts_vs_pixels_ratio_recon",
        "verdicts_vs_pixels_ratio_raw", "verdicts_vs_pixels_floor_margin", "verdicts_vs_pixels_floor_issue_margin"};
    static const char *const def_text[CS_MEMO_N_GT] = {
        "tiled L2 (4 x 4 tiles, [0,1] pixels) to the nearest training image decoded from its latent <= 0.15 "
        "(Carlini et al. 2023 s4.2)",
        "the same on the training images' own pixels",
        "L2 to the nearest training image decoded from its latent < 1/3 of L2 to the second-nearest "
        "(Yoon et al. 2023, Gu et al. 2023)",
        "the same ratio on the training images' own pixels",
        "PSNR to the nearest training image >= its reconstruction PSNR - ground_truth_margin_db",
        "PSNR to the nearest training image >= its reconstruction PSNR - ground_truth_issue_margin_db"};
    for (int d = 0; d < CS_MEMO_N_GT; d++) {
        const int64_t *c = m->vs[d];
        cJSON *v = cJSON_AddObjectToObject(o, def_name[d]);
        cJSON_AddStringToObject(v, "definition", def_text[d]);
        cJSON_AddNumberToObject(v, "tp", (double)c[0]);
        cJSON_AddNumberToObject(v, "fp", (double)c[1]);
        cJSON_AddNumberToObject(v, "fn", (double)c[2]);
        cJSON_AddNumberToObject(v, "tn", (double)c[3]);
        num(v, "precision", ratio(c[0], c[0] + c[1]));
        num(v, "recall", ratio(c[0], c[0] + c[2]));
        /* the second reading: partial verdicts counted as copy verdicts */
        const int64_t *cf = m->vs_flag[d];
        cJSON *vf = cJSON_AddObjectToObject(v, "with_partial");
        cJSON_AddNumberToObject(vf, "tp", (double)cf[0]);
        cJSON_AddNumberToObject(vf, "fp", (double)cf[1]);
        cJSON_AddNumberToObject(vf, "fn", (double)cf[2]);
        cJSON_AddNumberToObject(vf, "tn", (double)cf[3]);
        num(vf, "precision", ratio(cf[0], cf[0] + cf[1]));
        num(vf, "recall", ratio(cf[0], cf[0] + cf[2]));
    }
    /* per generation: the ground truth behind these figures */
    cJSON *ga = cJSON_AddArrayToObject(o, "generations");
    for (int k = 0; ga && k < m->n_g; k++) {
        const cs_memo_gen *g = &m->g[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "generation_id", (double)g->id);
        cJSON_AddStringToObject(e, "prompt", g->prompt);
        cJSON_AddNumberToObject(e, "copies", m->group_copies[g->group]);
        if (g->nearest >= 0) {
            cJSON_AddStringToObject(e, "nearest", m->img[g->nearest].file);
            num(e, "nearest_psnr", g->nearest_db);
            num(e, "nearest_floor_psnr", m->img[g->nearest].floor_db);
        }
        num(e, "own_psnr", g->own_db);
        cJSON_AddBoolToObject(e, "pixel_copy", g->gt);
        if (g->gt_img >= 0) cJSON_AddStringToObject(e, "pixel_nearest_recon", m->img[g->gt_img].file);
        cJSON_AddBoolToObject(e, "pixel_copy_raw", g->gt_tl2[1]);
        cJSON_AddBoolToObject(e, "pixel_copy_ratio_recon", g->gt_ratio[0]);
        cJSON_AddBoolToObject(e, "pixel_copy_ratio_raw", g->gt_ratio[1]);
        num(e, "ratio_gap_db_recon", g->ratio_gap_db[0]);
        cJSON_AddBoolToObject(e, "pixel_copy_floor_margin", g->gt_floor);
        cJSON_AddBoolToObject(e, "pixel_copy_floor_issue_margin", g->gt_floor_issue);
        num(e, "tl2_nearest_recon", g->tl2[0]);
        num(e, "tl2_nearest_raw", g->tl2[1]);
        if (g->verdict_img >= 0) cJSON_AddStringToObject(e, "verdict_copy_of", m->img[g->verdict_img].file);
        else cJSON_AddNullToObject(e, "verdict_copy_of");
        cJSON_AddBoolToObject(e, "verdict_copy_any", g->verdict_any);
        if (g->flag_img >= 0) cJSON_AddStringToObject(e, "verdict_flag_of", m->img[g->flag_img].file);
        else cJSON_AddNullToObject(e, "verdict_flag_of");
        num(e, "whitebox_first", g->wb_first);
        num(e, "whitebox_mean", g->wb_mean);
        cJSON_AddItemToArray(ga, e);
    }
}
