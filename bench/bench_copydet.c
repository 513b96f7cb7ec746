/* bench_copydet.c — copy detection on the issue-13 set (bench/copydet_set.py:
 * references, 300 edited copies + 300 edited distractors, a background set),
 * every method scored the same way in the same run:
 *
 *   pdq       PDQ Hamming distance, best of the query and its mirror (baseline)
 *   grey32    32x32 grey, zero-mean unit-norm cosine, best of mirror (baseline)
 *   tiny      the tiny global embedding (index/tinydesc.h), best of mirror
 *   tiny-reg  regional tiny (cs_tiny_region_thumbs: 26 regions of the query
 *             and its mirror, 6 of the reference): the best region match
 *   analyze   the product as a user runs it: `copyscope index add REFS` and
 *             `copyscope analyze --images QUERIES` with no other flag (every
 *             default stage: tiled L2, layout, hashes, alignment, local
 *             features), read back from the store: the finding's reference
 *             and severity are the prediction, its verdict the flag
 *             ($CS_COPYSCOPE names the binary, default build/copyscope;
 *             $CS_COPYDET_DB the store, default <set>/product.db)
 *   local     SIFT votes (index/localfeat.h) + RANSAC verification
 *             (analyze/lf_verify.h); score = share of reference keypoints verified
 *   fused     analyze/fuse.h: max background-calibrated z of pdq, grey32,
 *             tiny-reg and local (the mean z under two half-background fits,
 *             the scale of the out-of-sample threshold); flagged when z > cs_fuse_flag_z_bg (1 % of
 *             the background images, out of sample)
 *   fused-sum the same with the sum of the z (agreement counts)
 *
 * Metrics (ISC2021, Douze et al. 2021): recall@1 over the copies; micro-AP
 * over the predictions of all queries pooled (up to 10 per query), ties
 * ordered pessimistically (negatives first), denominator = the number of
 * true pairs; best F1; recall at precision >= 0.9; per edit kind the copies
 * whose top prediction is the right reference; for the methods with a
 * verdict, the copies flagged with the right reference and the distractors
 * flagged. Also the local features' cost: extraction images/s on one core at
 * 256 px and bytes per reference.
 *
 * Set directory: $CS_COPYDET, default build/copydet (bench/run.sh builds it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>

#include "analyze/fuse.h"
#include "analyze/lf_verify.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/store.h"
#include "core/image.h"
#include "index/hashes.h"
#include "index/localfeat.h"
#include "index/tinydesc.h"

#define TOPP 10 /* predictions per query */
#define NCAND 30 /* local-feature candidates verified per query (top 10 holds 20 of 37 rotations, top 30 holds 32) */
#define TH (64 * 64 * 3)
enum { M_PDQ, M_GREY, M_TINY, M_TREG, M_AN, M_LF, M_FUSED, M_FSUM, NM };
static const char *mname[NM] = {"pdq", "grey32", "tiny", "tiny-reg", "analyze", "local", "fused", "fused-sum"};

/* the two fusion rules of analyze/fuse.h */
static double rule_max(const cs_fuse_bg *bg, const float *s, int nd) { return cs_fuse_z_max(bg, s, nd, NULL); }
static double (*const rules[2])(const cs_fuse_bg *, const float *, int) = {rule_max, cs_fuse_z_sum};
#define NREG CS_TINY_QREG

typedef struct {
    char name[256];
    int ref;      /* truth: reference row, -1 distractor / reference / background */
    char edit[64];
    cs_hashes h, hm;
    float g[2][1024];           /* grey32, as is and mirrored */
    float t[2][CS_TINY_DIM];    /* tiny */
    float tr[2 * NREG][CS_TINY_DIM];
    uint8_t thumb[TH];
    cs_lf_set *lf, *lfm;
    cs_an_query aq;
} item;

typedef struct {
    int32_t ref;
    float score;
} pred;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* this thread's CPU time: the box is shared, so per-core throughput is
 * measured in CPU seconds, not wall seconds */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const cs_err *e) {
    fprintf(stderr, "bench_copydet: %s\n", e->msg);
    exit(1);
}

static void flip(cs_image *m) {
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w / 2; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *a = m->rgb + ((size_t)y * m->w + x) * 3 + c, *b = m->rgb + ((size_t)y * m->w + m->w - 1 - x) * 3 + c;
                uint8_t t = *a;
                *a = *b;
                *b = t;
            }
}

static void grey32(const cs_image *img, float *out, cs_err *err) {
    cs_image s = {0};
    if (cs_image_resize(&s, img, 32, 32, CS_RESIZE_AREA, err)) die(err);
    double mean = 0, ss = 0;
    for (int i = 0; i < 1024; i++) {
        out[i] = 0.299f * s.rgb[3 * i] + 0.587f * s.rgb[3 * i + 1] + 0.114f * s.rgb[3 * i + 2];
        mean += out[i];
    }
    mean /= 1024;
    for (int i = 0; i < 1024; i++) {
        out[i] -= (float)mean;
        ss += (double)out[i] * out[i];
    }
    float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
    for (int i = 0; i < 1024; i++) out[i] *= inv;
    cs_image_free(&s);
}

static float dot(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static int popc32(const uint8_t *a, const uint8_t *b) {
    int s = 0;
    for (int i = 0; i < 32; i++) s += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return s;
}

/* everything but the tiny projections (those need the PCA of the references) */
static void describe(item *it, const char *path, int query, double *lf_time, cs_err *err) {
    cs_image img = {0}, m = {0};
    if (cs_image_load(&img, path, NULL, err)) die(err);
    if (cs_hashes_compute(&img, &it->h, err)) die(err);
    if (cs_tiny_thumb(&img, it->thumb, err)) die(err);
    grey32(&img, it->g[0], err);
    if (cs_image_alloc(&m, img.w, img.h, err)) die(err);
    memcpy(m.rgb, img.rgb, (size_t)img.w * img.h * 3);
    flip(&m);
    if (cs_hashes_compute(&m, &it->hm, err)) die(err);
    grey32(&m, it->g[1], err);
    it->lf = malloc(sizeof(cs_lf_set));
    if (!it->lf) exit(1);
    double t0 = cpu_now();
    if (cs_lf_extract(&img, query ? CS_LF_QUERY_KP : CS_LF_REF_KP, 0, it->lf, err)) die(err);
    if (lf_time) *lf_time += cpu_now() - t0;
    if (query) {
        it->lfm = malloc(sizeof(cs_lf_set));
        if (!it->lfm || cs_lf_extract(&img, CS_LF_QUERY_KP, 1, it->lfm, err)) die(err);
        if (cs_an_query_init(&it->aq, &img, 1, err)) die(err);
    }
    /* region thumbnails stored temporarily in tr as raw bytes is wasteful;
     * the regions are described right away by the caller through rthumbs */
    cs_image_free(&m);
    cs_image_free(&img);
}

static uint8_t *region_thumbs(const char *path, int reference, cs_err *err) {
    uint8_t *t = malloc((size_t)2 * NREG * TH);
    cs_image img = {0};
    if (!t || cs_image_load(&img, path, NULL, err)) die(err);
    if (cs_tiny_region_thumbs(&img, reference, 0, t, err)) die(err);
    if (!reference && cs_tiny_region_thumbs(&img, 0, 1, t + (size_t)NREG * TH, err)) die(err);
    cs_image_free(&img);
    return t;
}

/* The product path: index add + analyze in a fresh store under the set's
 * folder; per query (by file name) the finding's reference row (-1: none),
 * severity, verdict and rule. Returns the CPU-independent wall seconds of
 * the two commands in *t_add, *t_an. */
typedef struct {
    int ref, verdict;
    float severity;
    char rule[32];
} finding;

static int run_product(const char *dir, char **rn, int nr, item *q, int nq, finding *f, double *t_add, double *t_an) {
    const char *bin = getenv("CS_COPYSCOPE") ? getenv("CS_COPYSCOPE") : "build/copyscope";
    char db[1024], cmd[4096];
    /* $CS_COPYDET_DB: the store elsewhere (the set may be shared by several
     * runs at once); default <set>/product.db */
    if (getenv("CS_COPYDET_DB")) snprintf(db, sizeof db, "%s", getenv("CS_COPYDET_DB"));
    else snprintf(db, sizeof db, "%s/product.db", dir);
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s'.* && %s index add --db '%s' '%s/refs' >/dev/null", db, db, bin, db, dir);
    double t0 = now();
    if (system(cmd)) return -1;
    *t_add = now() - t0;
    snprintf(cmd, sizeof cmd, "%s analyze --db '%s' --images '%s/queries' -q >/dev/null", bin, db, dir);
    t0 = now();
    if (system(cmd)) return -1;
    *t_an = now() - t0;
    cs_store *s;
    cs_err err = {0};
    if (cs_store_open_readonly(&s, db, &err)) return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cs_store_db(s),
                           "SELECT g.path, r.source, f.verdict, f.severity, json_extract(f.evidence_json, '$.rule') "
                           "FROM findings f JOIN generations g ON g.id = f.generation_id "
                           "LEFT JOIN refs r ON r.id = f.ref_id",
                           -1, &st, NULL)) {
        cs_store_close(s);
        return -1;
    }
    for (int i = 0; i < nq; i++) f[i] = (finding){-1, 0, 0, ""};
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0), *src = (const char *)sqlite3_column_text(st, 1);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        const char *rb = src ? (strrchr(src, '/') ? strrchr(src, '/') + 1 : src) : NULL;
        for (int i = 0; i < nq; i++) {
            if (strcmp(q[i].name, base)) continue;
            f[i].verdict = cs_verdict_parse((const char *)sqlite3_column_text(st, 2));
            f[i].severity = (float)sqlite3_column_double(st, 3);
            const char *rule = (const char *)sqlite3_column_text(st, 4);
            snprintf(f[i].rule, sizeof f[i].rule, "%s", rule ? rule : "");
            for (int r = 0; rb && r < nr; r++)
                if (!strcmp(rn[r], rb)) f[i].ref = r;
        }
    }
    sqlite3_finalize(st);
    cs_store_close(s);
    return 0;
}

/* Local features at scale (CS_COPYDET_SCALE=N): N synthetic references (30
 * keypoints each, descriptors drawn like SIFT's: most bins small, a few
 * large), the vote index built with the product's default factory, and the
 * retrieval of 200 synthetic generations (as is + mirrored, 160 keypoints
 * each: the analysis's work per generation before verification). Prints
 * build seconds, ms per generation, bytes per reference; the 10,000 x
 * 1,000,000 figure is extrapolated from it in docs/BENCHMARKS.md. */
static void scale_bench(int64_t n) {
    cs_err err = {0};
    uint8_t *recs = malloc((size_t)n * CS_LF_RECORD);
    cs_lf_set *one = calloc(1, sizeof *one);
    uint64_t x = 88172645463325252ull;
#define XS() (x ^= x << 13, x ^= x >> 7, x ^= x << 17)
    for (int64_t i = 0; i < n; i++) {
        one->n = CS_LF_REF_KP, one->w = one->h = one->orig_w = one->orig_h = 256;
        for (int k = 0; k < one->n; k++) {
            one->xy[k][0] = (float)(XS() % 256), one->xy[k][1] = (float)(XS() % 256);
            one->size[k] = 4, one->angle[k] = 0;
            for (int j = 0; j < 128; j++) {
                uint64_t r = XS();
                one->desc[k][j] = (uint8_t)((r & 7) == 0 ? 40 + (r >> 8) % 120 : (r >> 8) % 12);
            }
        }
        cs_lf_pack(one, recs + (size_t)i * CS_LF_RECORD);
    }
    double t0 = now();
    cs_lf_index *ix;
    if (cs_lf_index_build(&ix, n, recs, NULL, &err)) die(&err);
    double tb = now() - t0;
    enum { NQ = 200 };
    cs_lf_set *qs = calloc(2, sizeof *qs);
    cs_lf_vote v[2 * 30];
    int nv[2];
    double tq = 0;
    for (int q = 0; q < NQ; q++) {
        for (int s = 0; s < 2; s++) { /* a query: 30 keypoints of a reference among 130 of noise */
            qs[s].n = CS_LF_QUERY_KP;
            cs_lf_set r;
            cs_lf_unpack(recs + (size_t)(XS() % (uint64_t)n) * CS_LF_RECORD, &r, &err);
            for (int k = 0; k < CS_LF_QUERY_KP; k++)
                for (int j = 0; j < 128; j++) {
                    uint64_t rr = XS();
                    qs[s].desc[k][j] = k < 30 ? r.desc[k][j] : (uint8_t)((rr & 7) == 0 ? 40 + (rr >> 8) % 120 : (rr >> 8) % 12);
                }
        }
        double t1 = now();
        if (cs_lf_retrieve(ix, qs, 2, 30, v, nv, &err)) die(&err);
        tq += now() - t1;
    }
#undef XS
    printf("local features at scale: %lld references (%lld descriptors): vote index built in %.1f s; retrieval %.1f ms "
           "per generation (as is + mirrored, 160 keypoints; wall, shared machine); %d B/reference records + ~%d B in "
           "the index\n",
           (long long)n, (long long)cs_lf_index_ndesc(ix), tb, 1e3 * tq / NQ, CS_LF_RECORD, CS_LF_REF_KP * (128 + 8));
    cs_lf_index_free(ix);
    free(qs), free(one), free(recs);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            v = realloc(v, sizeof *v * (size_t)cap);
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* ---- per-pair scores (higher = more similar) ---- */

static float s_pdq(const item *q, const item *r) {
    int a = popc32(q->h.pdq, r->h.pdq), b = popc32(q->hm.pdq, r->h.pdq);
    return -(float)(a < b ? a : b);
}
static float s_grey(const item *q, const item *r) {
    float a = dot(q->g[0], r->g[0], 1024), b = dot(q->g[1], r->g[0], 1024);
    return a > b ? a : b;
}
static float s_tiny(const item *q, const item *r) {
    float a = dot(q->t[0], r->t[0], CS_TINY_DIM), b = dot(q->t[1], r->t[0], CS_TINY_DIM);
    return a > b ? a : b;
}
static float s_treg(const item *q, const item *r) {
    float a = cs_tiny_region_score(q->tr[0], NREG, r->tr[0], CS_TINY_RREG, CS_TINY_DIM);
    float b = cs_tiny_region_score(q->tr[NREG], NREG, r->tr[0], CS_TINY_RREG, CS_TINY_DIM);
    return a > b ? a : b;
}

typedef struct {
    int nr;
    item *refs;
    cs_lf_set *rset; /* unpacked reference records */
    cs_lf_index *lx;
} ctx;

/* local-feature candidates of q verified: scores into sc[nr] (0 when not
 * retrieved or not verified), match evidence into ev (may be NULL) */
static void local_scores(const ctx *c, const item *q, float *sc, cs_lfv_match *ev, cs_err *err) {
    cs_lf_set two[2] = {*q->lf, *q->lfm};
    cs_lf_vote v[2 * NCAND];
    int nv[2];
    if (cs_lf_retrieve(c->lx, two, 2, NCAND, v, nv, err)) die(err);
    for (int i = 0; i < c->nr; i++) sc[i] = 0;
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < nv[s]; j++) {
            int row = v[s * NCAND + j].row;
            if (sc[row] != 0) continue;
            cs_lfv_match m;
            if (cs_lfv_verify(q->lf, q->lfm, &c->rset[row], &m, err)) die(err);
            sc[row] = m.inliers ? m.score : 1e-9f; /* visited marker below any verified score */
            if (ev) ev[row] = m;
        }
    for (int i = 0; i < c->nr; i++)
        if (sc[i] == 1e-9f) sc[i] = 0;
}

static int cmp_pred(const void *a, const void *b) {
    const pred *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->ref > y->ref) - (x->ref < y->ref);
}

static int top_of(const float *sc, int nr, pred *out, float floor_excl) {
    pred *all = malloc(sizeof(pred) * (size_t)nr);
    int n = 0;
    for (int i = 0; i < nr; i++)
        if (sc[i] > floor_excl) all[n++] = (pred){i, sc[i]};
    qsort(all, (size_t)n, sizeof *all, cmp_pred);
    if (n > TOPP) n = TOPP;
    memcpy(out, all, sizeof *out * (size_t)n);
    free(all);
    return n;
}

/* ---- metrics ---- */

typedef struct {
    float score;
    int pos;
} pooled;
static int cmp_pooled(const void *a, const void *b) {
    const pooled *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->pos - y->pos; /* pessimistic: negatives first within a tie */
}

static void metrics(pred (*p)[TOPP], const int *np, const item *q, int nq, double *ap, double *f1,
                    double *r_p90) {
    int ntrue = 0, n = 0;
    for (int i = 0; i < nq; i++) ntrue += q[i].ref >= 0;
    pooled *v = malloc(sizeof(pooled) * (size_t)(nq * TOPP + 1));
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < np[i]; j++) v[n++] = (pooled){p[i][j].score, p[i][j].ref == q[i].ref};
    qsort(v, (size_t)n, sizeof *v, cmp_pooled);
    double sum = 0, bf = 0, rp = 0;
    int tp = 0;
    for (int i = 0; i < n; i++) {
        tp += v[i].pos;
        double prec = (double)tp / (i + 1), rec = (double)tp / ntrue;
        if (v[i].pos) sum += prec;
        /* thresholds fall between distinct scores only */
        if (i + 1 == n || v[i + 1].score != v[i].score) {
            double f = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
            if (f > bf) bf = f;
            if (prec >= 0.9 && rec > rp) rp = rec;
        }
    }
    *ap = ntrue ? sum / ntrue : 0;
    *f1 = bf;
    *r_p90 = rp;
    free(v);
}

int main(void) {
    if (getenv("CS_COPYDET_SCALE")) { /* the cost at scale only */
        scale_bench(atoll(getenv("CS_COPYDET_SCALE")));
        return 0;
    }
    const char *dir = getenv("CS_COPYDET") ? getenv("CS_COPYDET") : "build/copydet";
    cs_err err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/truth.tsv", dir);
    FILE *tf = fopen(path, "r");
    if (!tf) {
        printf("bench_copydet: no set at %s (build it: /usr/bin/python3 bench/copydet_set.py %s); skipped\n", dir, dir);
        return 0;
    }
    int nr = 0, nb = 0;
    snprintf(path, sizeof path, "%s/refs", dir);
    char **rn = list_dir(path, &nr);
    snprintf(path, sizeof path, "%s/bg", dir);
    char **bn = list_dir(path, &nb);
    item *refs = calloc((size_t)nr, sizeof(item)), *bg = calloc((size_t)(nb ? nb : 1), sizeof(item));
    item *q = calloc(1024, sizeof(item));
    int nq = 0;
    char line[1024];
    while (fgets(line, sizeof line, tf) && nq < 1024) {
        if (line[0] == '#') continue;
        char a[256], b[256], c[64];
        if (sscanf(line, "%255s %255s %63s", a, b, c) != 3) continue;
        snprintf(q[nq].name, sizeof q[nq].name, "%s", a);
        snprintf(q[nq].edit, sizeof q[nq].edit, "%s", c);
        q[nq].ref = -1;
        if (strcmp(b, "-")) {
            for (int i = 0; i < nr; i++)
                if (!strcmp(rn[i], b)) q[nq].ref = i;
            if (q[nq].ref < 0) {
                fprintf(stderr, "bench_copydet: truth names unknown reference %s\n", b);
                return 1;
            }
        }
        nq++;
    }
    fclose(tf);
    printf("copy detection: %d references, %d queries, %d background images (%s)\n", nr, nq, nb, dir);

    /* describe everything */
    double lf_ref_time = 0;
    for (int i = 0; i < nr; i++) {
        snprintf(path, sizeof path, "%s/refs/%s", dir, rn[i]);
        describe(&refs[i], path, 0, &lf_ref_time, &err);
    }
    for (int i = 0; i < nb; i++) {
        snprintf(path, sizeof path, "%s/bg/%s", dir, bn[i]);
        describe(&bg[i], path, 1, NULL, &err);
    }
    for (int i = 0; i < nq; i++) {
        snprintf(path, sizeof path, "%s/queries/%s", dir, q[i].name);
        describe(&q[i], path, 1, NULL, &err);
    }
    /* tiny: PCA from the reference thumbnails, as the index learns it */
    cs_tinydesc tm = {0};
    uint8_t *th = malloc((size_t)nr * TH);
    for (int i = 0; i < nr; i++) memcpy(th + (size_t)i * TH, refs[i].thumb, TH);
    if (cs_tiny_learn(&tm, th, nr, &err)) die(&err);
    for (int pass = 0; pass < 3; pass++) {
        item *set = pass == 0 ? refs : pass == 1 ? bg : q;
        int n = pass == 0 ? nr : pass == 1 ? nb : nq;
        for (int i = 0; i < n; i++) {
            uint8_t tt[2 * TH];
            cs_image img = {0};
            char *sub = pass == 0 ? "refs" : pass == 1 ? "bg" : "queries";
            snprintf(path, sizeof path, "%s/%s/%s", dir, sub, pass == 0 ? rn[i] : pass == 1 ? bn[i] : set[i].name);
            if (cs_image_load(&img, path, NULL, &err)) die(&err);
            if (cs_tiny_thumb(&img, tt, &err)) die(&err);
            flip(&img);
            if (cs_tiny_thumb(&img, tt + TH, &err)) die(&err);
            cs_image_free(&img);
            if (cs_tiny_describe(&tm, tt, 2, &set[i].t[0][0], &err)) die(&err);
            uint8_t *rt = region_thumbs(path, pass == 0, &err);
            if (cs_tiny_describe(&tm, rt, pass == 0 ? CS_TINY_RREG : 2 * NREG, &set[i].tr[0][0], &err)) die(&err);
            free(rt);
        }
    }
    /* local features: records, vote index, unpacked sets */
    uint8_t *recs = malloc((size_t)nr * CS_LF_RECORD);
    ctx c = {.nr = nr, .refs = refs, .rset = malloc(sizeof(cs_lf_set) * (size_t)nr)};
    int kp_total = 0;
    for (int i = 0; i < nr; i++) {
        cs_lf_pack(refs[i].lf, recs + (size_t)i * CS_LF_RECORD);
        if (cs_lf_unpack(recs + (size_t)i * CS_LF_RECORD, &c.rset[i], &err)) die(&err);
        kp_total += c.rset[i].n;
    }
    if (cs_lf_index_build(&c.lx, nr, recs, NULL, &err)) die(&err);

    /* analyze: the product path */
    finding *fnd = malloc(sizeof(finding) * (size_t)nq);
    double t_add = 0, t_an = 0;
    int have_product = run_product(dir, rn, nr, q, nq, fnd, &t_add, &t_an) == 0;
    if (!have_product) fprintf(stderr, "bench_copydet: the product path failed (is build/copyscope built?)\n");

    /* background: every (background image, reference) pair per fused descriptor */
    enum { FD = 4 }; /* pdq, grey32, tiny-reg, local */
    float *bs[FD];
    for (int d = 0; d < FD; d++) bs[d] = malloc(sizeof(float) * (size_t)(nb * nr + 1));
    float *lsc = malloc(sizeof(float) * (size_t)nr);
    for (int b = 0; b < nb; b++) {
        local_scores(&c, &bg[b], lsc, NULL, &err);
        for (int r = 0; r < nr; r++) {
            bs[0][b * nr + r] = s_pdq(&bg[b], &refs[r]);
            bs[1][b * nr + r] = s_grey(&bg[b], &refs[r]);
            bs[2][b * nr + r] = s_treg(&bg[b], &refs[r]);
            bs[3][b * nr + r] = lsc[r];
        }
    }
    cs_fuse_bg fb[FD];
    for (int d = 0; d < FD; d++) {
        if (cs_fuse_bg_fit(&fb[d], bs[d], (int64_t)nb * nr, &err)) die(&err);
        fprintf(stderr, "fuse background %d: n %lld u %.4g p_u %.3g beta %.4g max %.4g z(max) %.2f\n", d, (long long)fb[d].n,
                fb[d].u, fb[d].p_u, fb[d].beta, fb[d].sorted[fb[d].n - 1], cs_fuse_z(&fb[d], fb[d].sorted[fb[d].n - 1]));
    }
    /* the flag threshold: out-of-sample top-1 z of the background images
     * (each half scored with the distributions of the other half) */
    double *bgtop = malloc(sizeof(double) * (size_t)(nb ? nb : 1) * 2);
    /* queries are scored on the same scale as the background maxima: the
     * mean of their z under the two half fits (neither contains them) */
    static cs_fuse_bg fhs[2][FD];
    for (int half = 0; half < 2; half++) {
        cs_fuse_bg *fh = fhs[half];
        float *sub = malloc(sizeof(float) * (size_t)(nb * nr + 1));
        for (int d = 0; d < FD; d++) {
            int64_t m = 0;
            for (int b = 0; b < nb; b++)
                if (b % 2 != half)
                    for (int r = 0; r < nr; r++) sub[m++] = bs[d][b * nr + r];
            if (cs_fuse_bg_fit(&fh[d], sub, m, &err)) die(&err);
        }
        for (int b = half; b < nb; b += 2)
            for (int u = 0; u < 2; u++) {
                double top = 0;
                for (int r = 0; r < nr; r++) {
                    float s4[FD];
                    for (int d = 0; d < FD; d++) s4[d] = bs[d][b * nr + r];
                    double z = rules[u](fh, s4, FD);
                    if (z > top) top = z;
                }
                bgtop[u * nb + b] = top;
            }
        free(sub);
    }
    double *bgtop_keep = malloc(sizeof(double) * (size_t)(nb ? nb : 1));
    memcpy(bgtop_keep, bgtop, sizeof(double) * (size_t)nb);
    const double flag_zs[2] = {cs_fuse_flag_z_bg(bgtop, nb, nr, FD, 0.01), cs_fuse_flag_z_bg(bgtop + nb, nb, nr, FD, 0.01)};
    const double flag_z = flag_zs[0];


    /* predictions */
    static pred p[NM][1024][TOPP];
    static int np[NM][1024];
    int *flag_an = calloc((size_t)nq, sizeof(int)), *flag_fu = calloc((size_t)nq, sizeof(int));
    int *flag_fs = calloc((size_t)nq, sizeof(int));
    int *partial_fu = calloc((size_t)nq, sizeof(int));
    int win_dis[FD] = {0}, win_copy[FD] = {0}; /* descriptor giving the flagging z */
    float *sc = malloc(sizeof(float) * (size_t)nr);
    cs_lfv_match *ev = malloc(sizeof(cs_lfv_match) * (size_t)nr);
    double t_q0 = now();
    for (int i = 0; i < nq; i++) {
        const item *x = &q[i];
        for (int r = 0; r < nr; r++) sc[r] = s_pdq(x, &refs[r]);
        np[M_PDQ][i] = top_of(sc, nr, p[M_PDQ][i], -1e30f);
        for (int r = 0; r < nr; r++) sc[r] = s_grey(x, &refs[r]);
        np[M_GREY][i] = top_of(sc, nr, p[M_GREY][i], -1e30f);
        for (int r = 0; r < nr; r++) sc[r] = s_tiny(x, &refs[r]);
        np[M_TINY][i] = top_of(sc, nr, p[M_TINY][i], -1e30f);
        for (int r = 0; r < nr; r++) sc[r] = s_treg(x, &refs[r]);
        np[M_TREG][i] = top_of(sc, nr, p[M_TREG][i], -1e30f);
        np[M_AN][i] = 0;
        if (have_product && fnd[i].ref >= 0) {
            p[M_AN][i][0] = (pred){fnd[i].ref, fnd[i].severity};
            np[M_AN][i] = 1;
            flag_an[i] = fnd[i].verdict >= CS_V_PARTIAL;
        }
        memset(ev, 0, sizeof(cs_lfv_match) * (size_t)nr);
        local_scores(&c, x, lsc, ev, &err);
        np[M_LF][i] = top_of(lsc, nr, p[M_LF][i], 0);
        /* fused over the union of the candidates of every fused descriptor */
        for (int r = 0; r < nr; r++) sc[r] = -1e30f;
        const int from[] = {M_PDQ, M_GREY, M_TREG, M_LF};
        for (int f = 0; f < 4; f++)
            for (int j = 0; j < np[from[f]][i]; j++) {
                int r = p[from[f]][i][j].ref;
                float s4[FD] = {s_pdq(x, &refs[r]), s_grey(x, &refs[r]), s_treg(x, &refs[r]), lsc[r]};
                sc[r] = (float)(0.5 * (rule_max(fhs[0], s4, FD) + rule_max(fhs[1], s4, FD)));
            }
        int r_top = -1;
        np[M_FUSED][i] = top_of(sc, nr, p[M_FUSED][i], -1e29f);
        {
            float *ss = malloc(sizeof(float) * (size_t)nr);
            for (int r = 0; r < nr; r++) ss[r] = -1e30f;
            for (int f = 0; f < 4; f++)
                for (int j = 0; j < np[from[f]][i]; j++) {
                    int r = p[from[f]][i][j].ref;
                    float s4[FD] = {s_pdq(x, &refs[r]), s_grey(x, &refs[r]), s_treg(x, &refs[r]), lsc[r]};
                    ss[r] = (float)(0.5 * (cs_fuse_z_sum(fhs[0], s4, FD) + cs_fuse_z_sum(fhs[1], s4, FD)));
                }
            np[M_FSUM][i] = top_of(ss, nr, p[M_FSUM][i], -1e29f);
            flag_fs[i] = np[M_FSUM][i] && p[M_FSUM][i][0].score > flag_zs[1];
            free(ss);
        }
        if (np[M_FUSED][i] && p[M_FUSED][i][0].score > flag_z) {
            flag_fu[i] = 1;
            int r = p[M_FUSED][i][0].ref, w;
            float s4[FD] = {s_pdq(x, &refs[r]), s_grey(x, &refs[r]), s_treg(x, &refs[r]), lsc[r]};
            cs_fuse_z_max(fhs[0], s4, FD, &w);
            if (w >= 0) (x->ref >= 0 ? win_copy : win_dis)[w]++;
            r_top = r;
            partial_fu[i] = ev[r].inliers > 0 && ev[r].partial;
        }
        (void)r_top;
        if (getenv("CS_COPYDET_DEBUG") && np[M_LF][i]) { /* the best local verification: share, odds, rival */
            int r0 = p[M_LF][i][0].ref;
            float rival = np[M_LF][i] > 1 ? p[M_LF][i][1].score : 0;
            fprintf(stderr, "LF %s %s %-22s right %d share %.3f rival %.3f inl %d log10_nfa %.2f cover %.2f\n", x->name,
                    x->ref >= 0 ? "copy" : "distractor", x->edit, r0 == x->ref, lsc[r0], rival, ev[r0].inliers,
                    ev[r0].log10_nfa1 + log10(2.0 * nr), ev[r0].coverage);
        }
        if (getenv("CS_COPYDET_DEBUG") && x->ref < 0 && flag_an[i]) /* one line per flagged distractor: by what */
            fprintf(stderr, "%s %-22s distractor flagged by %s as a copy of %s\n", x->name, x->edit, fnd[i].rule,
                    fnd[i].ref >= 0 ? rn[fnd[i].ref] : "-");
        if (getenv("CS_COPYDET_DEBUG") && x->ref >= 0) /* one line per copy: where it stands */
            fprintf(stderr, "%s %-22s %-40s local %.2f (top %s %.2f, inl %d, log10 nfa1 %.1f) fused z %.2f (top %s) an %s %s\n",
                    x->name, x->edit, rn[x->ref], lsc[x->ref], np[M_LF][i] ? rn[p[M_LF][i][0].ref] : "-",
                    np[M_LF][i] ? p[M_LF][i][0].score : 0, ev[x->ref].inliers, ev[x->ref].log10_nfa1, sc[x->ref],
                    np[M_FUSED][i] ? rn[p[M_FUSED][i][0].ref] : "-", flag_an[i] ? "flagged" : "-", have_product ? fnd[i].rule : "");
    }
    double t_q = now() - t_q0;

    /* report */
    printf("\n%-9s %8s %8s %8s %8s %10s %10s\n", "method", "R@1", "microAP", "bestF1", "R@P90", "flagged", "distr.fl");
    int ncopy = 0, ndis = 0;
    for (int i = 0; i < nq; i++) {
        ncopy += q[i].ref >= 0;
        ndis += q[i].ref < 0;
    }
    for (int m = 0; m < NM; m++) {
        double ap, f1, rp;
        metrics(p[m], np[m], q, nq, &ap, &f1, &rp);
        int r1 = 0, fl = 0, fd = 0;
        for (int i = 0; i < nq; i++) {
            int top = np[m][i] ? p[m][i][0].ref : -2;
            int flagged = m == M_AN ? flag_an[i] : m == M_FUSED ? flag_fu[i] : m == M_FSUM ? flag_fs[i] : -1;
            if (q[i].ref >= 0) {
                r1 += top == q[i].ref;
                fl += flagged == 1 && top == q[i].ref;
            } else fd += flagged == 1;
        }
        printf("%-9s %8.3f %8.3f %8.3f %8.3f", mname[m], (double)r1 / ncopy, ap, f1, rp);
        if (m == M_AN || m == M_FUSED || m == M_FSUM) printf(" %9.1f%% %9.1f%%\n", 100.0 * fl / ncopy, 100.0 * fd / ndis);
        else printf(" %10s %10s\n", "-", "-");
    }
    /* per edit kind: copies whose top prediction is right (and flagged, for the verdict methods) */
    static const char *edits[] = {"resize", "crop", "jpeg", "rotate", "hflip", "colour", "blur", "caption", "embed", "two"};
    printf("\nper edit (copies with the right reference at rank 1; [flagged right] for analyze/fused):\n%-9s", "method");
    for (int e = 0; e < 10; e++) printf(" %8s", edits[e]);
    printf("\n");
    for (int m = 0; m < NM; m++) {
        printf("%-9s", mname[m]);
        for (int e = 0; e < 10; e++) {
            int n = 0, ok = 0;
            for (int i = 0; i < nq; i++) {
                if (q[i].ref < 0 || strncmp(q[i].edit, edits[e], strlen(edits[e]))) continue;
                if (strcmp(edits[e], "two") && !strncmp(q[i].edit, "two", 3)) continue;
                n++;
                ok += np[m][i] && p[m][i][0].ref == q[i].ref;
            }
            printf(" %4d/%-3d", ok, n);
        }
        printf("\n");
        if (m == M_AN || m == M_FUSED || m == M_FSUM) {
            printf("%-9s", "  flagged");
            for (int e = 0; e < 10; e++) {
                int n = 0, ok = 0;
                for (int i = 0; i < nq; i++) {
                    if (q[i].ref < 0 || strncmp(q[i].edit, edits[e], strlen(edits[e]))) continue;
                    n++;
                    int fl = m == M_AN ? flag_an[i] : m == M_FUSED ? flag_fu[i] : flag_fs[i];
                    ok += fl && np[m][i] && p[m][i][0].ref == q[i].ref;
                }
                printf(" %4d/%-3d", ok, n);
            }
            printf("\n");
        }
    }
    int npart = 0, npart_embed = 0, nembed = 0;
    for (int i = 0; i < nq; i++) {
        npart += partial_fu[i];
        if (q[i].ref >= 0 && !strcmp(q[i].edit, "embed")) {
            nembed++;
            npart_embed += partial_fu[i];
        }
    }
    printf("\nfused: flag at z > %.2f (alpha 1%% of %d background images, out of sample; %d refs x %d descriptors); partial (verified region covers < %.0f%% "
           "of the query): %d flagged queries, %d/%d embeds\n",
           flag_z, nb, nr, FD, 100.0 * CS_LFV_PARTIAL_COVER, npart, npart_embed, nembed);
    printf("fused-sum: flag at z-sum > %.2f (same rule)\n", flag_zs[1]);
    {
        double top5[2][5];
        for (int u = 0; u < 2; u++) {
            double *v = bgtop + u * nb;
            for (int k = 0; k < 5; k++) { /* the five largest background maxima */
                int b = -1;
                for (int j = 0; j < nb; j++)
                    if (v[j] > -1e300 && (b < 0 || v[j] > v[b])) b = j;
                top5[u][k] = b >= 0 ? v[b] : 0;
                if (b >= 0) v[b] = -1e301;
            }
        }
        printf("largest background top-1 z (max rule): %.2f %.2f %.2f %.2f %.2f; (sum rule): %.2f %.2f %.2f %.2f %.2f\n",
               top5[0][0], top5[0][1], top5[0][2], top5[0][3], top5[0][4], top5[1][0], top5[1][1], top5[1][2], top5[1][3],
               top5[1][4]);
    }
    /* the verdict's operating points: the threshold at other background
     * false-flag rates (the same rule, a different alpha; none is fitted here) */
    for (int k = 0; k < 3; k++) {
        static const double al[3] = {0.01, 0.05, 0.10};
        double t = cs_fuse_flag_z_bg(bgtop_keep, nb, nr, FD, al[k]);
        int fl = 0, fd = 0;
        for (int i = 0; i < nq; i++) {
            int f = np[M_FUSED][i] && p[M_FUSED][i][0].score > t;
            if (q[i].ref >= 0) fl += f && p[M_FUSED][i][0].ref == q[i].ref;
            else fd += f;
        }
        printf("fused at background alpha %2.0f%% (z > %.2f): copies flagged with the right reference %.1f%%, "
               "distractors flagged %.1f%%\n", 100 * al[k], t, 100.0 * fl / ncopy, 100.0 * fd / ndis);
    }
    printf("fused flags by the descriptor giving the largest z (pdq, grey32, tiny-reg, local): copies %d %d %d %d, "
           "distractors %d %d %d %d\n",
           win_copy[0], win_copy[1], win_copy[2], win_copy[3], win_dis[0], win_dis[1], win_dis[2], win_dis[3]);
    printf("local features: extraction %.0f images/s per core (CPU time; %d references, longer side %d px), "
           "%.1f keypoints/reference; %d B/reference on disk, %d B/reference in the vote index (SQ8 + id)\n",
           nr / lf_ref_time, nr, CS_LF_SIDE, (double)kp_total / nr, CS_LF_RECORD, (int)(kp_total * (128 + 8) / nr));
    printf("query side (all methods, %d queries): %.1f ms/query\n", nq, 1e3 * t_q / nq);
    if (have_product) {
        /* the product's rules: which one flagged the copies (right reference) and the distractors */
        const char *rules_seen[32];
        int nrs = 0, rc_[32] = {0}, rd_[32] = {0};
        for (int i = 0; i < nq; i++) {
            if (fnd[i].verdict < CS_V_PARTIAL) continue;
            int k = 0;
            while (k < nrs && strcmp(rules_seen[k], fnd[i].rule)) k++;
            if (k == nrs && nrs < 32) rules_seen[nrs++] = fnd[i].rule;
            if (k < 32) (q[i].ref >= 0 ? rc_ : rd_)[k] += q[i].ref < 0 || fnd[i].ref == q[i].ref;
        }
        printf("analyze (product): index add %.1f s, analyze %.1f s wall (%d queries, shared machine); flags by rule "
               "(copies right / distractors):", t_add, t_an, nq);
        for (int k = 0; k < nrs; k++) printf(" %s %d/%d", rules_seen[k], rc_[k], rd_[k]);
        printf("\n");
    }

    for (int d = 0; d < FD; d++) {
        cs_fuse_bg_free(&fb[d]);
        cs_fuse_bg_free(&fhs[0][d]);
        cs_fuse_bg_free(&fhs[1][d]);
        free(bs[d]);
    }
    cs_lf_index_free(c.lx);
    cs_tiny_free(&tm);
    for (int i = 0; i < nr; i++) free(refs[i].lf), free(rn[i]);
    for (int i = 0; i < nb; i++) free(bg[i].lf), free(bg[i].lfm), free(bn[i]);
    for (int i = 0; i < nq; i++) free(q[i].lf), free(q[i].lfm);
    free(rn), free(bn), free(refs), free(bg), free(q), free(th), free(recs), free(c.rset), free(fnd);
    free(bgtop), free(bgtop_keep), free(flag_fs);
    free(lsc), free(flag_an), free(flag_fu), free(partial_fu), free(sc), free(ev);
    return 0;
}
