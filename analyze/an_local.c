/* an_local.c — the local-feature stage of `copyscope analyze` (issue 13):
 * the references' SIFT records (ref_localfeat, written by index add) in one
 * vote index; per generation, its keypoints as is and mirrored (and those
 * of its foreground box, analyze/lf_box.h, when it has one) retrieve
 * lf_cand references by votes, each is verified geometrically
 * (analyze/lf_verify.h), and the verified ones become the generation's
 * local-feature hits (cs_an_query.lf*), which the matcher adds to its
 * candidates and the verdict rules read (cs_an_verdict_local).
 *
 * On by default when the store has local features; --no-local-features
 * (cs_analyze_opts.no_local_features) turns it off. Every generation's hits
 * depend only on its own image and the references, so the result is the
 * same at any thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/an_part.h"
#include "analyze/analyze_internal.h"
#include "analyze/fine_ref.h"
#include "analyze/verdict.h"
#include "analyze/lf_box.h"
#include "core/parallel.h"

static int64_t row_of(const cs_an_refs *r, int64_t id) {
    int64_t lo = 0, hi = r->n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (r->ids[mid] == id) return mid;
        if (r->ids[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int an_local_load(an_state *A, cs_err *err) {
    if (A->o->no_local_features || A->refs.n == 0) return 0;
    /* the records memory-mapped (index/localfeat.h): only the candidates'
     * pages are read, 4 KiB each, not 4 GB of heap at 1M references */
    cs_lf_records *R = &A->lf_map;
    char note[512];
    if (cs_lf_records_open(A->s, R, note, sizeof note, err)) return -1;
    if (note[0]) fprintf(stderr, "copyscope: %s\n", note);
    int64_t n = R->n;
    if (n == 0) return 0;
    A->lf_rows = malloc(sizeof(int32_t) * (size_t)n);
    if (!A->lf_rows) return cs_fail(err, CS_ENOMEM, "analyze: out of memory for local features");
    for (int64_t i = 0; i < n; i++) A->lf_rows[i] = (int32_t)row_of(&A->refs, R->ids[i]);
    A->lf_recs = R->recs;
    A->lf_n = n;
    /* the vote index from its side file, built and saved when missing,
     * stale or corrupt (index/localfeat.h); the one line saying so goes to
     * stderr as the progress lines do: a rebuild at 1M references costs
     * minutes, and the user should know why */
    char *path = cs_store_sidecar(A->s, "lfvote");
    int rc = A->o->lf_open ? A->o->lf_open(A->o->match_ctx, path, R, &A->lfx, note, sizeof note, err)
                           : cs_lf_index_open_fp(&A->lfx, path, n, R->ids, R->recs, R->fp, note, sizeof note, err);
    free(path);
    free(R->ids);
    R->ids = NULL;
    if (!rc && note[0]) {
        fprintf(stderr, "copyscope: %s\n", note);
        cs_lf_records_release(R); /* the rebuild read every record */
    }
    return rc;
}

void an_local_free(an_state *A) {
    cs_lf_index_free(A->lfx);
    cs_lf_records_close(&A->lf_map);
    free(A->lf_rows);
}

typedef struct {
    an_state *A;
    const cs_image *imgs; /* [n] the chunk's images */
    int64_t off;
    cs_lf_set *sets;      /* [4n]: 4j as is, 4j+1 mirrored, 4j+2 the foreground box view (lf_box.h), 4j+3 mirrored */
    cs_lfbox *box;        /* [n] */
    cs_lf_vote *votes;    /* [4n][K] */
    int *nv;              /* [4n] */
    int K;
    double log10_tests;   /* every reference and its mirror */
    cs_fine_refs fine;    /* the references' sources, for the pixels at 256 px (fine_ref.h) */
} lf_ctx;

static int wanted(const item *x) { return x->ok && !x->old; }

static void extract_one(void *vctx, int64_t j, int thread) {
    (void)thread;
    lf_ctx *c = vctx;
    cs_err e = {0};
    cs_lf_set *s = &c->sets[4 * j];
    s[0].n = s[1].n = s[2].n = s[3].n = 0;
    c->box[j].ok = 0;
    if (!wanted(&c->A->it.v[c->off + j])) return;
    if (cs_lf_extract(&c->imgs[j], CS_LF_QUERY_KP, 0, &s[0], &e))
        s[0].n = 0; /* no keypoints: no local evidence */
    cs_lf_mirror(&s[0], &s[1]); /* the mirror's SIFT, without a second extraction */
    cs_lfbox_find(&s[0], &c->imgs[j], &c->box[j]);
    if (cs_lfbox_extract(&c->imgs[j], &c->box[j], &s[2], &e)) s[2].n = 0;
    if (s[2].n == 0) c->box[j].ok = 0;
    cs_lf_mirror(&s[2], &s[3]);
}

/* hits ranked by share verified, then significance, then row (a total order) */
static int better(const cs_lfv_match *a, int32_t ra, const cs_lfv_match *b, int32_t rb) {
    if (a->score != b->score) return a->score > b->score;
    if (a->log10_nfa1 != b->log10_nfa1) return a->log10_nfa1 < b->log10_nfa1;
    return ra < rb;
}

/* The rival of each hit (Lowe's ratio test one level up, verdict.c): the
 * best share verified by another reference, counting none whose pixels at
 * the working resolution show another picture (cs_an_part_other: a
 * template or colour twin of the generation, or no common body). Such a
 * reference is not what the generation could as well be: its shared
 * keypoints (a template family's common body) make nothing ambiguous. A
 * hit not measured at 256 px (beyond the ratio, or its source unreadable)
 * stays a rival, as before. */
static void set_rivals(cs_an_query *q, const cs_an_settings *s) {
    for (int k = 0; k < q->n_lf; k++) {
        float rival = 0;
        for (int t = 0; t < q->n_lf; t++)
            if (t != k && q->lf[t].score > rival &&
                !(q->lf_part[t].fine == CS_FINE_OK && cs_an_part_other(&q->lf_part[t], s)))
                rival = q->lf[t].score;
        q->lf[k].rival = rival;
    }
}

/* The hits a local verdict can hang on: those the refinement measures
 * (cs_an_local_measure), and the rivals within the ratio of the best (a
 * share at least CS_LFV_RATIO of their own rival's), whose pixels may show
 * that they are another picture (set_rivals). */
static int fine_wanted(const cs_lfv_match *m, const cs_an_settings *s) {
    return cs_an_local_measure(m, s) ||
           (m->inliers > 0 && m->log10_nfa1 <= log10(s->lf_max_nfa) && CS_LFV_RATIO * m->rival <= m->score);
}

/* The generation's pixels a hit's part measurement compares: the window
 * of the generation's original pixels around the reference's frame mapped
 * by m (reference original px -> generation original px), clipped to the
 * image, each side grown (centred, kept inside) to at least CS_FINE_SIDE or
 * the image's side where that is less. win: x, y, w, h.
 *
 * Why not the whole generation at CS_FINE_SIDE: lf_part.h's cells and
 * conditions are shares of the picture compared (a cell 1/64 of its side
 * at 256 px), and the picture compared is the reference. Where the
 * generation holds it as a part of a larger canvas (an embed at 60 %, a
 * partial copy), the whole canvas at 256 px shows it at 60 % of that
 * resolution: a twin's emblem drawn in 4 px strokes at 256 px becomes
 * 2.4 px strokes, under half of every 4 px cell they cross, and no cell
 * differs (a breeze folder with a bookmark emblem embedded at 60 % against
 * the plain folder: 8 differing cells of 1,463; in the window 66 of
 * 3,961, one region, replaced). The window shows the reference at the
 * resolution the generation has it, up to one generation pixel a working
 * pixel, and never enlarges the generation more than the whole image at
 * 256 px would (a generation under 256 px on a side is measured whole, as
 * before). Where the reference fills the generation or runs beyond it
 * (every edit but an embed or a partial copy) the window is the whole
 * image, and nothing changes. */
static void part_window(const cs_image *img, const double m[6], int rw, int rh, int win[4]) {
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    const double c[4][2] = {{0, 0}, {rw, 0}, {rw, rh}, {0, rh}};
    for (int k = 0; k < 4; k++) {
        const double x = m[0] * c[k][0] + m[1] * c[k][1] + m[2], y = m[3] * c[k][0] + m[4] * c[k][1] + m[5];
        x0 = fmin(x0, x), y0 = fmin(y0, y), x1 = fmax(x1, x), y1 = fmax(y1, y);
    }
    const int side[2] = {img->w, img->h};
    const double lo[2] = {x0, y0}, hi[2] = {x1, y1};
    for (int a = 0; a < 2; a++) {
        const int n = side[a], least = n < CS_FINE_SIDE ? n : CS_FINE_SIDE;
        /* a NaN or a frame outside the image: the whole side */
        int s0 = lo[a] > 0 ? (int)floor(lo[a]) : 0, s1 = hi[a] < n ? (int)ceil(hi[a]) : n;
        if (!(s0 < s1) || s0 >= n || s1 <= 0) s0 = 0, s1 = n;
        if (s1 - s0 < least) {
            s0 -= (least - (s1 - s0)) / 2;
            if (s0 < 0) s0 = 0;
            if (s0 > n - least) s0 = n - least;
            s1 = s0 + least;
        }
        win[a] = s0, win[2 + a] = s1 - s0;
    }
}

/* win of img at CS_FINE_SIDE x CS_FINE_SIDE into out (cs_fine_image's
 * filter); 0 or -1 (no memory) */
static int window_image(const cs_image *img, const int win[4], uint8_t *out) {
    if (win[0] == 0 && win[1] == 0 && win[2] == img->w && win[3] == img->h) return cs_fine_image(img, CS_FINE_SIDE, out);
    cs_image w = {0};
    cs_err e = {0};
    if (cs_image_alloc(&w, win[2], win[3], &e)) return -1;
    for (int y = 0; y < win[3]; y++)
        memcpy(w.rgb + (size_t)y * win[2] * 3, img->rgb + ((size_t)(win[1] + y) * img->w + win[0]) * 3,
               (size_t)win[2] * 3);
    const int rc = cs_fine_image(&w, CS_FINE_SIDE, out);
    cs_image_free(&w);
    return rc;
}

/* The part measurement (cs_an_part_fine) of the generation's window win,
 * resized into gen unless gen already holds it (have: the window it holds,
 * updated). The grid is then counted over the whole generation at the
 * window's cell size: cs_an_local_pixels takes coverage (a share of the
 * whole generation) times grid as the cells the mapped reference covers.
 * 0, or -1 (no memory: p says CS_FINE_UNDECODABLE). */
static int part_in(const cs_image *img, const int win[4], const uint8_t *ref, int rw, int rh, const double m_orig[6],
                   double tol, uint8_t *gen, int have[4], cs_lfp *p) {
    if (memcmp(win, have, sizeof have[0] * 4)) {
        have[0] = -1;
        if (window_image(img, win, gen)) return -1;
        memcpy(have, win, sizeof have[0] * 4);
    }
    double m[6]; /* the geometry in the window's pixels */
    memcpy(m, m_orig, sizeof m);
    m[2] -= win[0], m[5] -= win[1];
    cs_an_part_fine(ref, rw, rh, gen, win[2], win[3], m, tol, p);
    p->grid = (int)lround(p->grid * ((double)img->w * img->h) / ((double)win[2] * win[3]));
    return 0;
}

/* Each wanted hit's part measurement at the working resolution
 * (q->lf_part, analyze/fine_ref.h), and the rivals without the twins it
 * finds; a hit that a fallen rival makes wanted is measured in the next
 * round (at most one round a hit).
 * Where the reference is a part of the generation (part_window smaller
 * than the image) it is measured twice, in the window, at the reference's
 * own scale, and in the whole generation at 256 px, as it was until
 * session 10, and a part replaced in either is a part replaced (the
 * measurement that found it is kept; else the window's). The two scales
 * see different twins: the window resolves an emblem's thin strokes that
 * the canvas's cells average away; the canvas's coarser cells merge a
 * glyph's strokes into the one compact blob condition 3 asks for, which
 * the window's finer cells see as strokes (s1 q0277, the gettext page
 * "文A" against application-octet-stream's "?": window 103 cells in a
 * 17 x 16 box, shape but not compact; canvas 47 in 10 x 9, replaced). A
 * copy's residue is explained at both scales (each estimates its own
 * blur, an_part.c), so asking both loses no copy that either keeps. */
static void fine_hits(lf_ctx *c, int64_t j, cs_an_query *q) {
    enum { F = CS_FINE_SIDE };
    const cs_an_settings *s = c->A->set;
    const cs_image *img = &c->imgs[j];
    const int whole[4] = {0, 0, img->w, img->h};
    memset(q->lf_part, 0, sizeof q->lf_part);
    set_rivals(q, s);
    uint8_t *gw = NULL, *ga = NULL, *ref = NULL; /* the window's and the whole image's pixels */
    int have_w[4] = {-1, -1, -1, -1}, have_a[4] = {-1, -1, -1, -1};
    for (int more = 1; more;) {
        more = 0;
        for (int k = 0; k < q->n_lf; k++) {
            cs_lfp *p = &q->lf_part[k];
            if (p->fine != CS_FINE_NOT_ASKED || !fine_wanted(&q->lf[k], s)) continue;
            more = 1;
            p->fine = CS_FINE_UNDECODABLE;
            if (!gw) gw = malloc((size_t)F * F * 3);
            if (!ga) ga = malloc((size_t)F * F * 3);
            if (!ref) ref = malloc((size_t)F * F * 3);
            if (!gw || !ga || !ref) continue;
            int rw = 0, rh = 0;
            int st = cs_fine_ref_load(&c->fine, c->A->refs.ids[q->lf_row[k]], F, ref, &rw, &rh);
            if (st != CS_FINE_OK) {
                p->fine = st;
                continue;
            }
            int win[4];
            part_window(img, q->lf[k].m_orig, rw, rh, win);
            const int part = memcmp(win, whole, sizeof win) != 0;
            if (part_in(img, part ? win : whole, ref, rw, rh, q->lf[k].m_orig, s->lf_colour_tol, part ? gw : ga,
                        part ? have_w : have_a, p))
                continue;
            cs_lfp a;
            if (part && !p->replaced &&
                !part_in(img, whole, ref, rw, rh, q->lf[k].m_orig, s->lf_colour_tol, ga, have_a, &a) && a.replaced)
                *p = a;
        }
        if (more) set_rivals(q, s);
    }
    free(gw);
    free(ga);
    free(ref);
}

static void verify_one(void *vctx, int64_t j, int thread) {
    (void)thread;
    lf_ctx *c = vctx;
    an_state *A = c->A;
    cs_an_query *q = &A->q[c->off + j];
    q->n_lf = 0;
    const cs_lf_set *qs = &c->sets[4 * j], *qm = &c->sets[4 * j + 1];
    const cs_lf_set *bs = &c->sets[4 * j + 2], *bm = &c->sets[4 * j + 3];
    const cs_lfbox *box = &c->box[j];
    if (qs->n == 0) return;
    /* the tests made: every reference, mirrored, and in the box view */
    const double log10_tests = c->log10_tests + (box->ok ? log10(2.0) : 0);
    cs_lf_set *ref = malloc(sizeof *ref);
    if (!ref) return;
    int32_t seen[4 * 256]; /* 4 sets x lf_cand <= 256 (settings.c) */
    int ns = 0;
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < c->nv[4 * j + s]; k++) {
            int32_t lr = c->votes[(4 * j + s) * c->K + k].row, dup = 0;
            for (int t = 0; t < ns; t++) dup |= seen[t] == lr;
            if (dup || ns == 4 * 256) continue;
            seen[ns++] = lr;
            int32_t row = A->lf_rows[lr];
            cs_err e = {0};
            /* a reference the as-is keypoints retrieved is verified as is and
             * in the box view (the more inliers win); one only the view's
             * votes retrieved, in the view only: nothing as is brought it */
            const int asis = s < 2;
            cs_lfv_match m = {0};
            if (row < 0 || cs_lf_unpack(A->lf_recs + (size_t)lr * CS_LF_RECORD, ref, &e) ||
                (asis && cs_lfv_verify(qs, qm, ref, &m, &e)))
                continue;
            if (box->ok) { /* the box view, carried to the generation's frame */
                cs_lfv_match b;
                if (cs_lfv_verify(bs, bm, ref, &b, &e)) continue;
                if (b.inliers > m.inliers && cs_lfbox_accept(&b, ref, A->set->lf_min_share)) {
                    cs_lfbox_to_query(box, qs, bs, ref, &b);
                    m = b;
                }
            }
            if (m.inliers <= 0) continue;
            m.log10_nfa1 += log10_tests;
            /* insertion into the kept list, best first */
            int p = q->n_lf < CS_AN_LFK ? q->n_lf++ : CS_AN_LFK;
            if (p == CS_AN_LFK) {
                if (!better(&m, row, &q->lf[CS_AN_LFK - 1], q->lf_row[CS_AN_LFK - 1])) continue;
                p = CS_AN_LFK - 1;
            }
            while (p > 0 && better(&m, row, &q->lf[p - 1], q->lf_row[p - 1])) {
                q->lf[p] = q->lf[p - 1];
                q->lf_row[p] = q->lf_row[p - 1];
                p--;
            }
            q->lf[p] = m;
            q->lf_row[p] = row;
        }
    free(ref);
    fine_hits(c, j, q);
}

int an_local_search(an_state *A, const cs_image *imgs, int64_t off, int64_t n, cs_err *err) {
    if (!A->lfx || n <= 0) return 0;
    lf_ctx c = {.A = A, .imgs = imgs, .off = off, .K = (int)A->set->lf_cand,
                .log10_tests = log10(2.0 * (double)A->refs.n)};
    cs_fine_open(&c.fine, A->s);
    c.sets = malloc(sizeof(cs_lf_set) * (size_t)(4 * n));
    c.box = malloc(sizeof(cs_lfbox) * (size_t)n);
    c.votes = malloc(sizeof(cs_lf_vote) * (size_t)(4 * n) * (size_t)c.K);
    c.nv = calloc((size_t)(4 * n), sizeof(int));
    int rc = -1;
    if (!c.sets || !c.box || !c.votes || !c.nv) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for local features");
        goto out;
    }
    cs_parallel_for(A->threads, n, extract_one, &c);
    if (A->o->lf_search ? A->o->lf_search(A->o->match_ctx, &A->refs, A->lfx, &A->lf_map, A->lf_rows, c.sets, 4 * n,
                                          c.K, c.votes, c.nv, err)
                        : cs_lf_retrieve(A->lfx, c.sets, 4 * n, c.K, c.votes, c.nv, err))
        goto out;
    cs_parallel_for(A->threads, n, verify_one, &c);
    rc = 0;
out:
    cs_fine_close(&c.fine);
    free(c.sets);
    free(c.box);
    free(c.votes);
    free(c.nv);
    return rc;
}
