/* bench_localfeat.c — the cost of local features (issue 13).
 *
 * 1. Extraction at 256 px, per CPU-second of one thread (the figure of
 *    `index add`, which runs one image per thread): decode, the hash-only
 *    work (hashes + thumbnail), our SIFT record (cs_lf_extract), beside two
 *    anchors on the same grey images in the same run: plain OpenCV SIFT
 *    (detectAndCompute of every keypoint) and the two-pass definition of our
 *    keypoints before session 4 (cs_cv_sift_twopass: a second pyramid for
 *    the descriptors); a query's mirror derived (cs_lf_mirror) beside its
 *    second extraction. Images: $CS_BENCH_LF_DIR, else $CS_COPYDET/refs, else the
 *    shared emoji, each resized to 256 px on its longer side; at most 200.
* 2. The vote search at scale: N references of synthetic SIFT records
 *    (30 keypoints each; default N = 20,000, CS_BENCH_LF_REFS=1000000 for the
 *    issue's figure) and 500 generations (CS_BENCH_LF_GENS=10000 for the
 *    issue's figure), each a query
 *    of CS_LF_QUERY_KP keypoints plus its mirror; 1 in 10 is a copy (its
 *    reference's keypoints with noise among unrelated ones). Times building
 *    the index and cs_lf_retrieve, and checks the planted reference is among
 *    the lf_cand (30) candidates; beside the hash-only analysis of the same
 *    generations against the same N references (cs_an_match_batch, as
 *    bench_analyze) in the same run. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "core/parallel.h"
#include "index/hashes.h"
#include "index/localfeat.h"
#include "analyze/lf_verify.h"
#include "index/opencv_shim.h"

static double tcpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static double pcpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* the process's resident memory (kB, /proc/self/status): RssAnon is the
 * heap and anonymous maps, RssFile the pages of mapped files in its page
 * tables (the records' mapping), VmHWM the peak of both */
static void rss(long *anon, long *file, long *hwm) {
    *anon = *file = *hwm = -1;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "RssAnon: %ld", anon);
        sscanf(line, "RssFile: %ld", file);
        sscanf(line, "VmHWM: %ld", hwm);
    }
    if (f) fclose(f);
}

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd64(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* ---- 1. extraction ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_images(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || (strcmp(e->d_name + l - 4, ".png") && strcmp(e->d_name + l - 4, ".jpg"))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) break;
            v = nv;
        }
        size_t m = strlen(dir) + l + 2;
        if (!(v[n] = malloc(m))) break;
        snprintf(v[n], m, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static void bench_extract(void) {
    const char *dir = getenv("CS_BENCH_LF_DIR");
    char buf[4096];
    if (!dir && getenv("CS_COPYDET")) {
        snprintf(buf, sizeof buf, "%s/refs", getenv("CS_COPYDET"));
        dir = buf;
    }
    char **paths = NULL;
    int n = dir ? list_images(dir, &paths) : 0;
    if (n == 0) n = list_images(dir = "../shared/data/twemoji-64/img", &paths);
    if (n == 0) {
        printf("extraction: no images (set CS_BENCH_LF_DIR)\n");
        return;
    }
    const int M = 200; /* evenly spaced over the folder */
    int m = n < M ? n : M;
    cs_image *img = calloc((size_t)m, sizeof *img);
    uint8_t **grey = calloc((size_t)m, sizeof *grey);
    cs_err err = {0};
    double t_dec = 0;
    int ok = 0;
    for (int i = 0; i < m; i++) {
        const char *p = paths[(int64_t)i * n / m];
        cs_image raw;
        double t0 = tcpu();
        if (cs_image_load(&raw, p, NULL, &err)) continue;
        t_dec += tcpu() - t0;
        int w = raw.w >= raw.h ? 256 : (int)lround(raw.w * 256.0 / raw.h);
        int h = raw.h > raw.w ? 256 : (int)lround(raw.h * 256.0 / raw.w);
        cs_image_resize(&img[ok], &raw, w < 1 ? 1 : w, h < 1 ? 1 : h, CS_RESIZE_AUTO, &err);
        cs_image_free(&raw);
        float *l = malloc(sizeof(float) * (size_t)img[ok].w * img[ok].h);
        grey[ok] = malloc((size_t)img[ok].w * img[ok].h);
        cs_image_luma(l, &img[ok]);
        for (int k = 0; k < img[ok].w * img[ok].h; k++) grey[ok][k] = (uint8_t)(l[k] + 0.5f > 255 ? 255 : l[k] + 0.5f);
        free(l);
        ok++;
    }
    static cs_lf_set s;
    static cs_cv_kp kp1[CS_LF_REF_KP];
    static uint8_t d1[CS_LF_REF_KP * 128];
    /* warm-up: OpenCV's first call initialises itself */
    cs_cv_sift_plain(grey[0], img[0].w, img[0].h, img[0].w, &err);
    double t0 = tcpu();
    for (int i = 0; i < ok; i++) {
        cs_hashes hh;
        cs_image th;
        cs_hashes_compute(&img[i], &hh, &err);
        cs_image_resize(&th, &img[i], 64, 64, CS_RESIZE_AREA, &err);
        cs_image_free(&th);
    }
    double t_hash = tcpu() - t0;
    t0 = tcpu();
    for (int i = 0; i < ok; i++) cs_lf_extract(&img[i], CS_LF_REF_KP, 0, &s, &err);
    double t_lf = tcpu() - t0;
    /* a query's mirror: a second extraction (the old way) beside cs_lf_mirror */
    static cs_lf_set qa, qm;
    double t_qx = 0, t_qm = 0, t_qd = 0;
    for (int i = 0; i < ok; i++) {
        t0 = tcpu();
        cs_lf_extract(&img[i], CS_LF_QUERY_KP, 0, &qa, &err);
        t_qx += tcpu() - t0;
        t0 = tcpu();
        cs_lf_extract(&img[i], CS_LF_QUERY_KP, 1, &qm, &err);
        t_qm += tcpu() - t0;
        t0 = tcpu();
        cs_lf_mirror(&qa, &qm);
        t_qd += tcpu() - t0;
    }
    t0 = tcpu();
    long kps = 0;
    for (int i = 0; i < ok; i++) kps += cs_cv_sift_plain(grey[i], img[i].w, img[i].h, img[i].w, &err);
    double t_plain = tcpu() - t0;
    t0 = tcpu();
    for (int i = 0; i < ok; i++) cs_cv_sift(grey[i], img[i].w, img[i].h, img[i].w, CS_LF_REF_KP, kp1, d1, &err);
    double t_sift = tcpu() - t0;
    t0 = tcpu();
    for (int i = 0; i < ok; i++)
        cs_cv_sift_twopass(grey[i], img[i].w, img[i].h, img[i].w, CS_LF_REF_KP, kp1, d1, &err);
    double t_two = tcpu() - t0;
    double add = t_dec / ok + t_hash / ok + t_lf / ok;
    printf("extraction, %d images of %s at 256 px (one thread, CPU time): decode %.2f ms, hashes+thumbnail "
           "%.2f ms, SIFT record (cs_lf_extract) %.2f ms = %.1f img/s per CPU-s (of which SIFT %.2f ms); "
           "anchor plain OpenCV SIFT (all %.0f keypoints described) %.2f ms = %.1f img/s (ours %.2fx its "
           "speed); index add per image "
           "(decode + hashes + SIFT) %.2f ms = %.1f img/s per CPU-s, hash-only %.1f img/s per CPU-s\n",
           ok, dir, 1e3 * t_dec / ok, 1e3 * t_hash / ok, 1e3 * t_lf / ok, ok / t_lf, 1e3 * t_sift / ok,
           (double)kps / ok, 1e3 * t_plain / ok, ok / t_plain, t_plain / t_lf,
           1e3 * add, 1 / add, 1 / (t_dec / ok + t_hash / ok));
    printf("SIFT of a record (%d keypoints, CPU per image): one pyramid (cs_cv_sift) %.2f ms beside the "
           "two-pass definition before session 4 (cs_cv_sift_twopass) %.2f ms in this run = %.2fx its speed\n",
           CS_LF_REF_KP, 1e3 * t_sift / ok, 1e3 * t_two / ok, t_two / t_sift);
    printf("query extraction (%d keypoints, as is + mirror, CPU per image): anchor two extractions %.2f ms "
           "(%.2f + %.2f); mirror derived (cs_lf_mirror) %.2f + %.4f ms = %.2fx the anchor's speed\n",
           CS_LF_QUERY_KP, 1e3 * (t_qx + t_qm) / ok, 1e3 * t_qx / ok, 1e3 * t_qm / ok, 1e3 * t_qx / ok,
           1e3 * t_qd / ok, (t_qx + t_qm) / (t_qx + t_qd));
    for (int i = 0; i < ok; i++) {
        cs_image_free(&img[i]);
        free(grey[i]);
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(img);
    free(grey);
}


/* ---- 2. the vote search at scale ---- */

/* SIFT-like synthetic descriptors: a word of a vocabulary (sparse bins up to
 * ~100, as SIFT's clipped histogram) plus per-keypoint noise */
enum { WORDS = 8192 };
static uint8_t (*vocab)[128];

static void make_vocab(void) {
    vocab = malloc(sizeof *vocab * WORDS);
    for (int w = 0; w < WORDS; w++)
        for (int j = 0; j < 128; j++) {
            uint64_t r = rnd64();
            vocab[w][j] = (uint8_t)(r % 4 == 0 ? 0 : (r >> 8) % 100);
        }
}

static void noisy(uint8_t *d, const uint8_t *src, int amp) {
    for (int j = 0; j < 128; j++) {
        int v = src[j] + (int)((rnd64() >> 20) % (uint64_t)(2 * amp + 1)) - amp;
        d[j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static void random_set(cs_lf_set *s, int n) {
    s->n = n, s->w = s->h = 256, s->orig_w = s->orig_h = 256;
    for (int k = 0; k < n; k++) {
        s->xy[k][0] = (float)(rnd64() % 25600) / 100, s->xy[k][1] = (float)(rnd64() % 25600) / 100;
        s->size[k] = 2 + (float)(rnd64() % 300) / 10, s->angle[k] = (float)(rnd64() % 3600) / 10;
        noisy(s->desc[k], vocab[rnd64() % WORDS], 12);
    }
}

static void bench_hash_only(int64_t nref, int64_t ngen, double *wall, double *cpu_s) {
    cs_an_settings st;
    cs_an_settings_default(&st);
    int64_t *ids = malloc(sizeof(int64_t) * nref);
    cs_hashes *h = calloc((size_t)nref, sizeof *h);
    for (int64_t i = 0; i < nref; i++) {
        ids[i] = i + 1;
        for (int k = 0; k < 32; k += 8) {
            uint64_t v = rnd64();
            memcpy(h[i].pdq + k, &v, 8);
        }
        h[i].pdq_quality = 100, h[i].phash = rnd64(), h[i].dhash = rnd64(), h[i].ahash = rnd64();
    }
    cs_an_refs r;
    cs_err err = {0};
    *wall = *cpu_s = -1;
    if (cs_an_refs_build(&r, nref, ids, NULL, &st, &err) || cs_an_refs_set_hashes(&r, ids, h, nref, &err)) return;
    cs_an_query *q = calloc((size_t)ngen, sizeof *q);
    for (int64_t i = 0; i < ngen; i++) {
        q[i].has_hashes = 1;
        q[i].h = h[rnd64() % (uint64_t)nref];
        if (i % 10) {
            for (int k = 0; k < 32; k += 8) {
                uint64_t v = rnd64();
                memcpy(q[i].h.pdq + k, &v, 8);
            }
            q[i].h.phash = rnd64(), q[i].h.dhash = rnd64();
        } else {
            q[i].h.pdq[rnd64() % 32] ^= 1;
        }
        q[i].hm = q[i].h;
        q[i].hm.phash = rnd64();
        memset(q[i].thumb, 255, sizeof q[i].thumb);
    }
    enum { CH = 1024 };
    cs_an_result *res = malloc(sizeof(cs_an_result) * CH);
    double t0 = now(), c0 = pcpu();
    for (int64_t off = 0; off < ngen; off += CH)
        cs_an_match_batch(&r, q + off, ngen - off < CH ? ngen - off : CH, &st, 0, res, &err);
    *wall = now() - t0, *cpu_s = pcpu() - c0;
    free(res);
    free(q);
    free(ids);
    free(h);
    cs_an_refs_free(&r);
}

typedef struct {
    const cs_lf_set *qs;
    const cs_lf_vote *v;
    const int *nv;
    const uint8_t *recs;
    int K;
} verify_ctx;

/* what analyze does per generation after the votes: unpack and verify each
 * candidate (analyze/an_local.c) */
static void verify_one(void *vc, int64_t j, int thread) {
    (void)thread;
    verify_ctx *c = vc;
    cs_lf_set *ref = malloc(sizeof *ref);
    cs_err e = {0};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < c->nv[2 * j + s]; k++) {
            cs_lfv_match m;
            if (!cs_lf_unpack(c->recs + (size_t)c->v[(2 * j + s) * c->K + k].row * CS_LF_RECORD, ref, &e))
                cs_lfv_verify(&c->qs[2 * j], &c->qs[2 * j + 1], ref, &m, &e);
        }
    free(ref);
}

static void bench_votes(int64_t nref, int64_t ngen) {
    make_vocab();
    /* the records written to a file and memory-mapped, as the analysis
     * maps <db>.lfrec (index/localfeat.h): 4 GB at 1M references, paged in
     * by the kernel where read (the build, the fingerprint, the verified
     * candidates), not heap */
    char rpath[160];
    snprintf(rpath, sizeof rpath, "%s/bench_localfeat_%d.rec", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    cs_lf_set *s = malloc(sizeof *s);
    FILE *rf = fopen(rpath, "w+b");
    uint8_t *rb = malloc(CS_LF_RECORD);
    int wok = rf && s && rb;
    for (int64_t i = 0; wok && i < nref; i++) {
        random_set(s, CS_LF_REF_KP);
        cs_lf_pack(s, rb);
        wok = fwrite(rb, CS_LF_RECORD, 1, rf) == 1;
    }
    free(rb);
    size_t rlen = (size_t)CS_LF_RECORD * (size_t)nref;
    wok = wok && fflush(rf) == 0;
    void *rmap = wok ? mmap(NULL, rlen, PROT_READ, MAP_SHARED, fileno(rf), 0) : MAP_FAILED;
    if (rf) fclose(rf);
    unlink(rpath);
    if (rmap == MAP_FAILED) {
        printf("votes: cannot write and map %lld records in %s\n", (long long)nref, rpath);
        return;
    }
    const uint8_t *recs = rmap;
    const int K = 30; /* lf_cand's default (analyze/settings.c) */
    cs_lf_set *qs = malloc(sizeof *qs * (size_t)(2 * ngen));
    int64_t *truth = malloc(sizeof(int64_t) * ngen);
    for (int64_t i = 0; i < ngen; i++) {
        random_set(&qs[2 * i], CS_LF_QUERY_KP);
        random_set(&qs[2 * i + 1], CS_LF_QUERY_KP);
        truth[i] = -1;
        if (i % 10 == 0) { /* a copy: 20 of its reference's 30 keypoints, noisier than a word's spread */
            truth[i] = (int64_t)(rnd64() % (uint64_t)nref);
            cs_lf_unpack(recs + (size_t)truth[i] * CS_LF_RECORD, s, &(cs_err){0});
            for (int k = 0; k < 20; k++) {
                int t = (int)(rnd64() % CS_LF_QUERY_KP);
                noisy(qs[2 * i].desc[t], s->desc[k], 6);
                qs[2 * i].xy[t][0] = s->xy[k][0] * 0.8f + 20, qs[2 * i].xy[t][1] = s->xy[k][1] * 0.8f + 10;
                qs[2 * i].size[t] = s->size[k] * 0.8f, qs[2 * i].angle[t] = s->angle[k];
            }
        }
    }
    long ra, rfl, rh;
    rss(&ra, &rfl, &rh);
    fprintf(stderr, "  (records written and mapped, queries made: RssAnon %ld kB, RssFile %ld kB)\n", ra, rfl);
    cs_err err = {0};
    const char *fac = getenv("CS_BENCH_LF_FACTORY");
    double t0 = now(), c0 = pcpu();
    cs_lf_index *ix = NULL;
    /* CS_BENCH_LF_INDEX=PATH: the index from that side file when it was
     * built from these records (the synthetic set is the same for the same
     * N), else built and saved there: profiling the retrieval without the
     * build each time. The build's figures are then the load's. */
    const char *keep = getenv("CS_BENCH_LF_INDEX");
    if (keep && !fac) {
        int64_t *kid = malloc(sizeof(int64_t) * nref);
        for (int64_t i = 0; i < nref; i++) kid[i] = i + 1;
        char note[512];
        if (cs_lf_index_open(&ix, keep, nref, kid, recs, note, sizeof note, &err)) ix = NULL;
        fprintf(stderr, "  (%s: %s)\n", keep, note[0] ? note : "loaded");
        free(kid);
    }
    if (!ix && cs_lf_index_build(&ix, nref, recs, fac, &err)) {
        printf("votes: %s\n", err.msg);
        return;
    }
    double tb = now() - t0, cb = pcpu() - c0;
    fprintf(stderr, "  (index built: %.1f s)\n", tb);
    /* CS_BENCH_LF_ENCODE_ANCHOR=1: the same index built again with FAISS's
     * own PQ encoder (cs_lf_faiss_encode): its build time beside ours and
     * whether the two side files are the same bytes */
    if (getenv("CS_BENCH_LF_ENCODE_ANCHOR")) {
        cs_lf_index *fx = NULL, *ox = NULL;
        double c1 = pcpu();
        int ok = !cs_lf_index_build(&ox, nref, recs, fac, &err);
        double c2 = pcpu();
        cs_lf_faiss_encode(1);
        ok = ok && !cs_lf_index_build(&fx, nref, recs, fac, &err);
        double c3 = pcpu();
        cs_lf_faiss_encode(0);
        char pa[160], pb[160];
        snprintf(pa, sizeof pa, "%s/bench_localfeat_%d.a", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        snprintf(pb, sizeof pb, "%s/bench_localfeat_%d.b", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        int same = -1;
        if (ok && !cs_lf_index_save(ox, pa, 1, nref, &err) && !cs_lf_index_save(fx, pb, 1, nref, &err)) {
            FILE *a = fopen(pa, "rb"), *b = fopen(pb, "rb");
            int ca, cb_;
            same = a && b;
            while (same && ((ca = fgetc(a)) != EOF) | ((cb_ = fgetc(b)) != EOF)) same = ca == cb_;
            if (a) fclose(a);
            if (b) fclose(b);
        }
        unlink(pa);
        unlink(pb);
        printf("index build, %lld descriptors: our PQ encoder %.1f s CPU beside FAISS's own encoder %.1f s in this run "
               "(%.2fx); side files %s\n",
               (long long)(nref * CS_LF_REF_KP), c2 - c1, c3 - c2, c2 > c1 ? (c3 - c2) / (c2 - c1) : 0,
               same == 1 ? "identical" : same == 0 ? "DIFFER" : "not compared");
        cs_lf_index_free(fx);
        cs_lf_index_free(ox);
    }
    /* the side file (<db>.lfvote): what an analysis pays instead of the
     * build, beside the build in the same run */
    double tl = -1, cl = -1, tfp = -1;
    {
        char path[128];
        snprintf(path, sizeof path, "%s/bench_localfeat_%d.lfvote", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                 (int)getpid());
        int64_t *ids = malloc(sizeof(int64_t) * nref);
        for (int64_t i = 0; i < nref; i++) ids[i] = i + 1;
        t0 = now(), c0 = pcpu();
        uint64_t fp = cs_lf_fingerprint(nref, ids, recs);
        tfp = pcpu() - c0;
        cs_lf_index *lx = NULL;
        if (!cs_lf_index_save(ix, path, fp, nref, &err)) {
            t0 = now(), c0 = pcpu();
            if (!cs_lf_index_load(&lx, path, fp, nref, &err)) tl = now() - t0, cl = pcpu() - c0;
        }
        if (tl < 0) printf("votes: side file: %s\n", err.msg);
        cs_lf_index_free(lx);
        unlink(path);
        free(ids);
    }
    /* the analysis's start: the index in memory, no record paged in (the
     * analysis fingerprints the records from the database, index/localfeat.h;
     * here the build and the fingerprint read the mapping, so its pages are
     * dropped from our page tables) */
    long ia, ifl, ih;
    rss(&ia, &ifl, &ih);
    madvise(rmap, rlen, MADV_DONTNEED);
    rss(&ia, &ifl, &ih);
    fprintf(stderr, "  (index in memory: RssAnon %ld kB, RssFile %ld kB, peak %ld kB)\n", ia, ifl, ih);
    long ia2;
    rss(&ia2, &ifl, &ih); /* RssFile once the records' pages are dropped */
    if (getenv("CS_BENCH_LF_NPROBE")) cs_lf_index_set_nprobe(ix, atoi(getenv("CS_BENCH_LF_NPROBE")), &err);
    /* CS_BENCH_LF_ANCHOR_GENS=M: FAISS's search and the narrower SIMD levels
     * on the first M generations only (at 1M references each costs as much
     * as our whole retrieval); the speeds are per query descriptor */
    int64_t agen = getenv("CS_BENCH_LF_ANCHOR_GENS") ? atoll(getenv("CS_BENCH_LF_ANCHOR_GENS")) : ngen;
    if (agen > ngen || agen < 1) agen = ngen;
    int64_t nqa = 0;
    for (int64_t i = 0; i < 2 * agen; i++) nqa += qs[i].n;
    cs_lf_vote *v = malloc(sizeof *v * (size_t)(2 * ngen) * K);
    int *nv = malloc(sizeof(int) * (size_t)(2 * ngen));
    /* the anchor: FAISS's own search of the same index, same queries */
    cs_lf_vote *va = malloc(sizeof *va * (size_t)(2 * ngen) * K);
    int *nva = calloc((size_t)(2 * ngen), sizeof(int));
    /* CS_BENCH_LF_PROFILE=1: our scan alone (no anchor, no other SIMD
     * level), for perf */
    const int profile = getenv("CS_BENCH_LF_PROFILE") != NULL;
    cs_lf_index_faiss_scan(ix, 1);
    t0 = now(), c0 = pcpu();
    if (!profile && cs_lf_retrieve(ix, qs, 2 * agen, K, va, nva, &err)) printf("votes: %s\n", err.msg);
    double tra = now() - t0, cra = pcpu() - c0;
    int own = cs_lf_index_faiss_scan(ix, 0);
    fprintf(stderr, "  (retrieved, FAISS's scan: %.1f s)\n", tra);
    t0 = now(), c0 = pcpu();
    if (cs_lf_retrieve(ix, qs, 2 * ngen, K, v, nv, &err)) printf("votes: %s\n", err.msg);
    double tr = now() - t0, cr = pcpu() - c0;
    fprintf(stderr, "  (retrieved: %.1f s)\n", tr);
    int64_t same_top = 0, nqd = 0;
    for (int64_t i = 0; i < 2 * ngen; i++) {
        if (i < 2 * agen)
            same_top += nv[i] > 0 && nva[i] > 0 && v[i * K].row == va[i * K].row && v[i * K].votes == va[i * K].votes;
        nqd += qs[i].n;
    }
    printf("votes, retrieval per query descriptor (%lld of them): %s %.1f us CPU beside FAISS's search of the same "
           "index %.1f us in this run (%.2fx its speed; %lld query descriptors); the same first candidate and votes "
           "for %lld/%lld query sets\n",
           (long long)nqd, own ? "our scan" : "FAISS's search (our scan does not apply)", 1e6 * cr / nqd,
           1e6 * cra / nqa, cr > 0 ? (cra / nqa) / (cr / nqd) : 0, (long long)nqa, (long long)same_top,
           (long long)(2 * agen));
    /* CS_BENCH_LF_DUMP=FILE: the votes written there (nv, then every
     * query set's K slots), to compare builds of the code byte for byte */
    if (getenv("CS_BENCH_LF_DUMP")) {
        FILE *df = fopen(getenv("CS_BENCH_LF_DUMP"), "wb");
        for (int64_t i = 0; df && i < 2 * ngen; i++) {
            fwrite(&nv[i], sizeof(int), 1, df);
            fwrite(v + i * K, sizeof *v, (size_t)nv[i], df);
        }
        if (df) fclose(df);
    }
    /* session 7's scan (cs_lf_index_prune(ix, 0): every code's sum in full)
     * and session 8's (1: a block of 16 stops summing above the 8th best)
     * on the first CS_BENCH_LF_ANCHOR_GENS generations: their speed beside
     * ours (2: the byte tables' bound first, where cpuid has AVX-512 VBMI)
     * in this run, and the same votes */
    if (!profile) {
        cs_lf_vote *vo = calloc((size_t)(2 * ngen) * K, sizeof *vo);
        int *nvo = calloc((size_t)(2 * ngen), sizeof(int));
        static const char *name[2] = {"session 7's scan (every sum in full, anchor)",
                                      "session 8's scan (blocks of 16 stopped above the 8th best, anchor)"};
        for (int pl = 0; pl < 2; pl++) {
            cs_lf_index_prune(ix, pl);
            c0 = pcpu();
            if (cs_lf_retrieve(ix, qs, 2 * agen, K, vo, nvo, &err)) printf("votes: %s\n", err.msg);
            double co = pcpu() - c0;
            int64_t same = 0;
            for (int64_t i = 0; i < 2 * agen; i++)
                same += nvo[i] == nv[i] && !memcmp(vo + i * K, v + i * K, sizeof *vo * (size_t)nv[i]);
            printf("votes, %s: %.1f us CPU per query descriptor beside %.1f us with ours in this run (%.2fx its speed); "
                   "every vote the same for %lld/%lld query sets\n",
                   name[pl], 1e6 * co / nqa, 1e6 * cr / nqd, cr > 0 ? (co / nqa) / (cr / nqd) : 0, (long long)same,
                   (long long)(2 * agen));
        }
        printf("  (our scan's pruning level: %d)\n", cs_lf_index_prune(ix, 2));
        free(vo);
        free(nvo);
    }
    /* CS_BENCH_LF_NPROBE2=P: the first CS_BENCH_LF_ANCHOR_GENS generations
     * again with P probed cells (what a cheaper search would find): its
     * speed, the planted references found and the query sets whose first
     * candidate and votes stay, beside the run's nprobe */
    if (getenv("CS_BENCH_LF_NPROBE2")) {
        const int np2 = atoi(getenv("CS_BENCH_LF_NPROBE2"));
        const int np1 = getenv("CS_BENCH_LF_NPROBE") ? atoi(getenv("CS_BENCH_LF_NPROBE")) : CS_LF_NPROBE;
        cs_lf_vote *vp = calloc((size_t)(2 * ngen) * K, sizeof *vp);
        int *nvp = calloc((size_t)(2 * ngen), sizeof(int));
        if (!cs_lf_index_set_nprobe(ix, np2, &err)) {
            c0 = pcpu();
            if (cs_lf_retrieve(ix, qs, 2 * agen, K, vp, nvp, &err)) printf("votes: %s\n", err.msg);
            double cp = pcpu() - c0;
            cs_lf_index_set_nprobe(ix, np1, &err);
            int64_t same = 0, f1 = 0, f2 = 0, cp_ = 0;
            for (int64_t i = 0; i < 2 * agen; i++)
                same += nvp[i] > 0 && nv[i] > 0 && vp[i * K].row == v[i * K].row && vp[i * K].votes == v[i * K].votes;
            for (int64_t i = 0; i < agen; i++) {
                if (truth[i] < 0) continue;
                cp_++;
                for (int k = 0; k < nv[2 * i]; k++) f1 += v[2 * i * K + k].row == truth[i];
                for (int k = 0; k < nvp[2 * i]; k++) f2 += vp[2 * i * K + k].row == truth[i];
            }
            printf("votes, nprobe %d: %.1f us CPU per query descriptor beside %.1f us at nprobe %d in this run; planted "
                   "reference among the candidates %lld/%lld (%lld/%lld at nprobe %d); the same first candidate and votes "
                   "for %lld/%lld query sets\n",
                   np2, 1e6 * cp / nqa, 1e6 * cr / nqd, np1, (long long)f2, (long long)cp_, (long long)f1, (long long)cp_,
                   np1, (long long)same, (long long)(2 * agen));
        }
        free(vp);
        free(nvp);
    }
    /* our scan at narrower SIMD (cs_lf_index_simd(ix, 1): AVX2; 0: its
     * scalar loops): the same votes, bit for bit, at their own speed */
    static const char *level_name[] = {"scalar loops", "AVX2", "AVX-512"};
    int level = cs_lf_index_simd(ix, 2);
    /* CS_BENCH_LF_NO_LEVELS=1: not them (the scalar loops cost 6x ours) */
    for (int lv = level - 1; lv >= 0 && !profile && !getenv("CS_BENCH_LF_NO_LEVELS"); lv--) {
        cs_lf_vote *vs = calloc((size_t)(2 * ngen) * K, sizeof *vs);
        int *nvs = calloc((size_t)(2 * ngen), sizeof(int));
        cs_lf_index_simd(ix, lv);
        c0 = pcpu();
        if (cs_lf_retrieve(ix, qs, 2 * agen, K, vs, nvs, &err)) printf("votes: %s\n", err.msg);
        double cs_ = pcpu() - c0;
        int64_t same = 0;
        for (int64_t i = 0; i < 2 * agen; i++)
            same += nvs[i] == nv[i] && !memcmp(vs + i * K, v + i * K, sizeof *vs * (size_t)nv[i]);
        printf("votes, our scan with %s: %.1f us CPU per query descriptor beside %.1f us with %s in this run (%.2fx); "
               "every vote the same for %lld/%lld query sets\n",
               level_name[lv], 1e6 * cs_ / nqa, 1e6 * cr / nqd, level_name[level], cr > 0 ? (cs_ / nqa) / (cr / nqd) : 0,
               (long long)same, (long long)(2 * agen));
        free(vs);
        free(nvs);
    }
    cs_lf_index_simd(ix, 2);
    /* CS_BENCH_LF_BEFORE=FACTORY: the same records in an index of that
     * factory (e.g. the cells session 5's rule chose, "IMI2x7,PQ16np" at
     * 60,000 references), searched by our scan: its speed, planted
     * references found and how many query sets' first candidate and votes
     * differ from the default index's */
    const char *before = getenv("CS_BENCH_LF_BEFORE");
    cs_lf_index *bx = NULL;
    if (before && !cs_lf_index_build(&bx, nref, recs, before, &err)) {
        cs_lf_vote *vb = calloc((size_t)(2 * ngen) * K, sizeof *vb);
        int *nvb = calloc((size_t)(2 * ngen), sizeof(int));
        t0 = now(), c0 = pcpu();
        if (cs_lf_retrieve(bx, qs, 2 * ngen, K, vb, nvb, &err)) printf("votes: %s\n", err.msg);
        double cb_ = pcpu() - c0;
        int64_t same = 0, fb = 0, fa = 0, cp = 0;
        for (int64_t i = 0; i < 2 * ngen; i++)
            same += nv[i] > 0 && nvb[i] > 0 && v[i * K].row == vb[i * K].row && v[i * K].votes == vb[i * K].votes;
        for (int64_t i = 0; i < ngen; i++) {
            if (truth[i] < 0) continue;
            cp++;
            for (int k = 0; k < nvb[2 * i]; k++) fb += vb[2 * i * K + k].row == truth[i];
            for (int k = 0; k < nv[2 * i]; k++) fa += v[2 * i * K + k].row == truth[i];
        }
        char info[160];
        cs_lf_index_describe(bx, info, sizeof info);
        printf("votes, before (%s): our scan %.1f us CPU per query descriptor beside %.1f us on the default index "
               "in this run (%.2fx); planted reference among the candidates %lld/%lld before, %lld/%lld now; the "
               "same first candidate and votes for %lld/%lld query sets\n",
               info, 1e6 * cb_ / nqd, 1e6 * cr / nqd, cr > 0 ? cb_ / cr : 0, (long long)fb, (long long)cp,
               (long long)fa, (long long)cp, (long long)same, (long long)(2 * ngen));
        free(vb);
        free(nvb);
    } else if (before) {
        printf("votes, before (%s): %s\n", before, err.msg);
    }
    cs_lf_index_free(bx);
    free(va);
    free(nva);
    int64_t found = 0, copies = 0;
    for (int64_t i = 0; i < ngen; i++) {
        if (truth[i] < 0) continue;
        copies++;
        for (int k = 0; k < nv[2 * i]; k++) found += v[2 * i * K + k].row == truth[i];
    }
    verify_ctx vc = {qs, v, nv, recs, K};
    t0 = now(), c0 = pcpu();
    cs_parallel_for(cs_threads(), ngen, verify_one, &vc);
    double tv = now() - t0, cv = pcpu() - c0;
    long va_, vf_, vh_;
    rss(&va_, &vf_, &vh_);
    fprintf(stderr, "  (verified: %.1f s)\n", tv);
    /* resident per reference during the analysis: the index (anon, from
     * before the records were written to after the index was in memory,
     * which holds the queries too: an upper bound) and the records paged in
     * by the verification (file) */
    printf("memory, %lld references: RssAnon %ld kB with the index in memory (%ld kB before it: the queries, "
           "vocabulary; so the index %.0f B per reference); records mapped, %lld B per reference on disk; "
           "RssFile after retrieval and verification %ld kB (%.1f B per reference: the verified candidates' "
           "pages), %ld kB with the build's pages dropped; peak %ld kB\n",
           (long long)nref, ia, ra, 1024.0 * (double)(ia - ra) / (double)nref, (long long)CS_LF_RECORD, vf_,
           1024.0 * (double)vf_ / (double)nref, ifl, vh_);
    /* the ratio test's distances (cs_lf_dist2, SIMD) beside the plain C loop
     * in this run, over every (query keypoint, candidate keypoint) pair of
     * the first 100 generations' candidates: the same integers */
    {
        int64_t ng = ngen < 100 ? ngen : 100, pairs = 0, diff = 0;
        static cs_lf_set ref;
        int dq[CS_LF_QUERY_KP];
        double ts = 0, tp = 0;
        for (int64_t j = 0; j < ng; j++)
            for (int k = 0; k < nv[2 * j]; k++) {
                if (cs_lf_unpack(recs + (size_t)v[2 * j * K + k].row * CS_LF_RECORD, &ref, &err)) continue;
                const cs_lf_set *q = &qs[2 * j];
                double a = tcpu();
                for (int i = 0; i < q->n; i++) cs_lf_dist2(q->desc[i], (const uint8_t (*)[128])ref.desc, ref.n, dq);
                double b = tcpu();
                for (int i = 0; i < q->n; i++) {
                    cs_lf_dist2(q->desc[i], (const uint8_t (*)[128])ref.desc, ref.n, dq);
                    for (int r = 0; r < ref.n; r++) {
                        int s = 0;
                        for (int u = 0; u < 128; u++) s += (q->desc[i][u] - ref.desc[r][u]) * (q->desc[i][u] - ref.desc[r][u]);
                        diff += s != dq[r];
                    }
                }
                double c = tcpu();
                ts += b - a, tp += (c - b) - (b - a);
                pairs += (int64_t)q->n * ref.n;
            }
        printf("verification's descriptor distances (%lld pairs): cs_lf_dist2 %.2f ns per pair beside the plain C loop "
               "%.2f ns in this run (%.2fx); %lld differ\n",
               (long long)pairs, 1e9 * ts / (pairs ? pairs : 1), 1e9 * tp / (pairs ? pairs : 1), ts > 0 ? tp / ts : 0,
               (long long)diff);
    }
    double th, ch;
    bench_hash_only(nref, ngen, &th, &ch);
    char info[160];
    cs_lf_index_describe(ix, info, sizeof info);
    printf("votes, %lld generations (+ mirror, %d keypoints each) x %lld references (%lld descriptors, %s, "
           "%d threads): index build %.1f s wall (%.1f s cpu; done by index add, the analysis loads the side file), retrieval %.1f s wall (%.1f "
           "s cpu), verifying %d candidates %.1f s wall (%.1f s cpu); planted reference among the candidates "
           "%lld/%lld; anchor hash-only analysis of the same generations %.1f s wall (%.1f s cpu); local "
           "features ON total (hash + retrieval + verify) %.2fx the hash-only wall\n",
           (long long)ngen, CS_LF_QUERY_KP, (long long)nref, (long long)cs_lf_index_ndesc(ix), info, cs_threads(),
           tb, cb, tr, cr, K, tv, cv, (long long)found, (long long)copies, th, ch, (th + tr + tv) / th);
    printf("votes, side file (<db>.lfvote): loading %.2f s wall (%.2f s cpu) + fingerprint of the records %.2f s "
           "cpu, beside building %.1f s cpu in this run (%.0fx); per 1,000 generations: retrieval %.2f s cpu, "
           "verify %.2f s cpu, hash-only anchor %.2f s cpu (local/anchor %.2fx)\n",
           tl, cl, tfp, cb, cl + tfp > 0 ? cb / (cl + tfp) : 0, 1e3 * cr / ngen, 1e3 * cv / ngen, 1e3 * ch / ngen,
           (cr + cv) / ch);
    cs_lf_index_free(ix);
    free(v);
    free(nv);
    free(qs);
    free(truth);
    munmap(rmap, rlen);
    free(s);
    free(vocab);
}

int main(void) {
    const char *r = getenv("CS_BENCH_LF_REFS"), *g = getenv("CS_BENCH_LF_GENS");
    if (!getenv("CS_BENCH_LF_NO_EXTRACT")) bench_extract();
    bench_votes(r ? atoll(r) : 20000, g ? atoll(g) : 500);
    return 0;
}
