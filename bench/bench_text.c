/* bench_text — the text audit at scale: index build speed (beside
 * libdivsufsort alone), index size, peak memory while building, and the
 * exact figures' query latency per 1 KB completion (beside brute force),
 * on a synthetic corpus this bench writes (Zipf-distributed words in
 * sentences, 100 KB documents). Each figure is printed beside its anchor or
 * target, as a ratio.
 *
 * usage: bench_text [MB] (default 1024, or $CS_BENCH_TEXT_MB; develop with 64)
 *
 * Queries run in passes over the same completions: the plain binary search
 * and the in-memory top level (text_sa.h), each twice (cold then warm
 * caches), then after evicting the index from the page cache; each prints
 * CPU and wall per KB, page faults and search probes per query. */
#include <dirent.h>
#include <divsufsort.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analyze/text_corpus.h"
#include "analyze/text_exact.h"
#include "analyze/text_norm.h"
#include "analyze/text_sa.h"
#include "analyze/text_span.h"
#include "core/parallel.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of this process: the machine may be shared, so rates are given
 * per wall second and per CPU second. */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define VOCAB 50000
static char vocab[VOCAB][12];
static double cdf[VOCAB];

static void make_vocab(void) {
    double z = 0;
    for (int i = 0; i < VOCAB; i++) {
        int n = 2 + (int)(rnd() % 8);
        for (int k = 0; k < n; k++) vocab[i][k] = (char)('a' + rnd() % 26);
        vocab[i][n] = 0;
        z += 1.0 / pow(i + 1, 1.07);
        cdf[i] = z;
    }
    for (int i = 0; i < VOCAB; i++) cdf[i] /= z;
}

static const char *zipf_word(void) {
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return vocab[lo];
}

/* Appends about `bytes` of text: sentences of 5..25 words, paragraphs. */
static size_t gen_text(char *out, size_t bytes) {
    size_t k = 0;
    while (k + 400 < bytes) {
        int n = 5 + (int)(rnd() % 21);
        for (int i = 0; i < n; i++) {
            const char *w = zipf_word();
            size_t l = strlen(w);
            memcpy(out + k, w, l);
            if (i == 0) out[k] = (char)(out[k] - 32);
            k += l;
            out[k++] = i == n - 1 ? '.' : ' ';
        }
        if (rnd() % 6 == 0) {
            memcpy(out + k, "\n\n", 2);
            k += 2;
        } else
            out[k++] = ' ';
    }
    return k;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass of queries: means per KB of completion, and per query the page
 * faults (getrusage) and binary-search probes (text_sa.h). */
typedef struct {
    double cpu, wall, p50, p99, minflt, majflt, ptop, pmapped;
    double cpu_chars; /* of cpu: the exact character spans (the rest: the whole-word spans) */
} qstat;
typedef struct {
    qstat k[2];
} qres;

static int run_queries(const cs_text_corpus *c, char comps[][1024], const size_t *clen, int nq, qstat *r) {
    double *lat = malloc((size_t)nq * sizeof *lat), csum = 0, wsum = 0, chsum = 0;
    struct rusage u0, u1;
    uint64_t t0, m0, t1, m1;
    cs_err e = {0};
    getrusage(RUSAGE_SELF, &u0);
    cs_text_sa_probes(&t0, &m0);
    for (int i = 0; i < nq; i++) {
        const char *comp = comps[i];
        size_t k = clen[i];
        double q0 = now_s(), c0 = cpu_s();
        cs_text_norm n;
        cs_text_span lg, *spans;
        cs_text_chars ch;
        size_t ns;
        memset(&n, 0, sizeof n);
        int rc = cs_text_longest_chars(c, comp, k, -1, 0, &ch, &e);
        double c1 = cpu_s();
        if (rc || cs_text_normalize(&n, comp, k, &e) || cs_text_spans(c, n.text, n.len, 10, &lg, &spans, &ns, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            free(lat);
            return -1;
        }
        chsum += (c1 - c0) * 1e3 * 1024.0 / (double)k;
        cs_text_chars_free(&ch);
        free(spans);
        cs_text_norm_free(&n);
        double kb = 1024.0 / (double)k;
        lat[i] = (now_s() - q0) * 1e3 * kb;
        wsum += lat[i];
        csum += (cpu_s() - c0) * 1e3 * kb;
    }
    cs_text_sa_probes(&t1, &m1);
    getrusage(RUSAGE_SELF, &u1);
    qsort(lat, (size_t)nq, sizeof *lat, cmp_d);
    *r = (qstat){csum / nq, wsum / nq, lat[nq / 2], lat[nq * 99 / 100],
                 (double)(u1.ru_minflt - u0.ru_minflt) / nq, (double)(u1.ru_majflt - u0.ru_majflt) / nq,
                 (double)(t1 - t0) / nq, (double)(m1 - m0) / nq, chsum / nq};
    free(lat);
    return 0;
}

/* Drops the index files beside the db (not the db) from the page cache:
 * written back first, then POSIX_FADV_DONTNEED. */
static void evict_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d))) {
        if (ent->d_name[0] == '.' || !strncmp(ent->d_name, "t.db", 4) || !strcmp(ent->d_name, "docs")) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        int fd = open(p, O_RDONLY);
        if (fd < 0) continue;
        fdatasync(fd); /* dirty pages (the build just wrote them) are not dropped */
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    if (d) closedir(d);
}

int main(int argc, char **argv) {
    long mb = 1024;
    const char *env = getenv("CS_BENCH_TEXT_MB");
    if (argc > 1) mb = atol(argv[1]);
    else if (env) mb = atol(env);
    if (mb < 1) mb = 1;
    const char *base = getenv("CS_TMP") ? getenv("CS_TMP") : "/tmp";
    char dir[512], docs[600], db[600];
    snprintf(dir, sizeof dir, "%s/cs-bench-text-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(docs, sizeof docs, "%s/docs", dir);
    snprintf(db, sizeof db, "%s/t.db", dir);
    mkdir(docs, 0755);
    make_vocab();

    /* 1. the corpus: 100 KB documents */
    const size_t doc_bytes = 100 * 1024;
    uint64_t total = (uint64_t)mb << 20, written = 0;
    char *buf = malloc(doc_bytes + 1024);
    int nd = 0;
    double t0 = now_s();
    while (written < total) {
        size_t k = gen_text(buf, doc_bytes);
        char p[700];
        snprintf(p, sizeof p, "%s/d%06d.txt", docs, nd++);
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(buf, 1, k, f) != k) {
            perror(p);
            return 1;
        }
        fclose(f);
        written += k;
    }
    printf("corpus: %d documents, %.1f MB (generated in %.1f s)\n", nd, written / 1048576.0, now_s() - t0);
    fflush(stdout);

    /* 2. index build */
    cs_store *s;
    cs_err e = {0};
    if (cs_store_open(&s, db, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    long rss0 = peak_rss_kb();
    cs_text_index_opts o = {0};
    /* CS_BENCH_TEXT_SHARD_MB: smaller shards (how query cost grows with their number) */
    if (getenv("CS_BENCH_TEXT_SHARD_MB")) o.shard_bytes = (uint64_t)atol(getenv("CS_BENCH_TEXT_SHARD_MB")) << 20;
    cs_text_index_stats st;
    const char *paths[] = {docs};
    t0 = now_s();
    double c0 = cpu_s();
    if (cs_text_index(s, paths, 1, &o, &st, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double tb = now_s() - t0, cb = cpu_s() - c0;
    long rss1 = peak_rss_kb();
    /* Where the build's CPU went and what two free cores would make of it
     * (the wall above is of a shared machine): the serial part (reading,
     * committing) plus each batch's jobs laid on two threads from their CPU
     * times. An estimate: disk waits and two sorts sharing memory bandwidth
     * are not in it. */
    double est = st.serial_cpu_s + st.jobs_2core_s, eff = cb / (tb * (cs_threads() > 0 ? cs_threads() : 1));
    printf("index build CPU: %.1f s serial (reading, committing), %.1f s in the sort jobs (%.0f%% of the build's "
           "%.1f s; %.1f s wall); parallel efficiency at -j %d: %.2f (cpu / (wall x threads), shared machine); "
           "ESTIMATE on 2 free cores %.1f MB/s wall (target >= 5)\n",
           st.serial_cpu_s, st.jobs_cpu_s, 100 * st.jobs_cpu_s / cb, cb, tb, cs_threads(), eff, st.bytes_in / 1e6 / est);
    fflush(stdout); /* before the anchor's sorts: a long run stopped there still shows it */
    cs_text_corpus c;
    if (cs_text_corpus_open(&c, s, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    /* anchor: libdivsufsort alone, one thread, on the same raw text: every
     * shard's, one after the other (what one sort per shard costs; the
     * build also normalises and sorts the normal form's words) */
    uint64_t an = 0, amax = 0;
    for (int i = 0; i < c.n_shards; i++) amax = c.shards[i].raw.n > amax ? c.shards[i].raw.n : amax;
    int32_t *sa = malloc((amax ? amax : 1) * sizeof *sa);
    t0 = now_s();
    c0 = cpu_s();
    /* CS_BENCH_TEXT_NO_SORT_ANCHOR=1 skips it (query studies): the lines then say it was not measured */
    int sort_anchor = !getenv("CS_BENCH_TEXT_NO_SORT_ANCHOR");
    for (int i = 0; i < c.n_shards && sa && sort_anchor; i++) {
        divsufsort(c.shards[i].raw.text, sa, (int32_t)c.shards[i].raw.n);
        an += c.shards[i].raw.n;
    }
    double ta = now_s() - t0, ca = cpu_s() - c0;
    free(sa);
    double build = st.bytes_in / 1e6 / tb, anchor_build = an / 1e6 / ta;
    double cbuild = st.bytes_in / 1e6 / cb, canchor = an / 1e6 / ca;
    printf("index build (-j %d): %.1f MB/s wall, %.1f MB/s cpu (%lld shards, %.1f s wall, %.1f s cpu)   ", cs_threads(),
           build, cbuild, (long long)st.shards, tb, cb);
    if (an) /* measured: an = the bytes it sorted */
        printf("anchor libdivsufsort alone, one thread, on the same %.0f MB: %.1f MB/s wall, %.1f MB/s cpu   ratio "
               "%.2fx wall, %.2fx cpu   ",
               an / 1e6, anchor_build, canchor, build / anchor_build, cbuild / canchor);
    else
        printf("anchor libdivsufsort alone: not measured (%s)   ",
               sort_anchor ? "no shard to sort" : "CS_BENCH_TEXT_NO_SORT_ANCHOR=1");
    printf("target >= 5 MB/s wall on 2 cores\n");
    printf("index build, ESTIMATE for a quiet 2-core machine (serial CPU + the jobs' CPU laid on 2 threads = %.1f s): "
           "%.1f MB/s wall   ",
           est, st.bytes_in / 1e6 / est);
    if (an)
        printf("anchor libdivsufsort alone at its cpu rate on one core %.1f MB/s   ratio %.2fx   ", canchor,
               st.bytes_in / 1e6 / est / canchor);
    else
        printf("anchor libdivsufsort alone: not measured   ");
    printf("target >= 5 MB/s   ratio %.2fx\n", st.bytes_in / 1e6 / est / 5.0);

    /* 3. size on disk */
    uint64_t disk = 0;
    sqlite3_stmt *q;
    cs_store_prepare(s, &q, "SELECT coalesce(sum(length(offmap)), 0) FROM text_docs", &e);
    if (q && sqlite3_step(q) == SQLITE_ROW) disk += (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    uint64_t words = 0;
    cs_store_prepare(s, &q, "SELECT sum(words) FROM text_docs", &e);
    if (q && sqlite3_step(q) == SQLITE_ROW) words = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    for (int i = 0; i < c.n_shards; i++)
        disk += c.shards[i].sa.tlen + c.shards[i].sa.slen + c.shards[i].raw.tlen + c.shards[i].raw.slen;
    double bpb = (double)disk / (double)st.bytes_in, bpw = (double)disk / (double)words;
    printf("index size: %.2f bytes per input byte (raw text + its suffix array, word rows, side text of NFC-changed "
           "documents, offset maps)   target <= 6   ratio %.2fx\n",
           bpb, bpb / 6.0);
    printf("index size: %.2f bytes per word   anchor infini-gram 7 bytes per token   ratio %.2fx "
           "(per byte: infini-gram ~1.75 at ~4 bytes/token, ratio %.2fx)\n",
           bpw, bpw / 7.0, bpb / 1.75);
    int at_once = cs_threads() < c.n_shards ? cs_threads() : c.n_shards;
    double peak = (double)(rss1 > rss0 ? rss1 : rss0) * 1024.0, shard = (double)amax * (at_once > 1 ? at_once : 1);
    printf("peak memory while building: %.0f MB   anchor libdivsufsort's 5 bytes per byte (text + int32 SA) of the "
           "%d largest shard(s) sorted at once = %.0f MB   ratio %.2fx\n",
           peak / 1e6, at_once, 5 * shard / 1e6, peak / (5 * shard));
    fflush(stdout);

    /* 4. longest-span queries on 1 KB completions: half copied from the
     *    corpus with an edit every ~40 words, half freshly generated; the
     *    same completions in every pass */
    enum { NQ = 200 };
    static char comps[2][NQ][1024];
    static size_t clen[2][NQ];
    for (int kind = 0; kind < 2; kind++)
        for (int i = 0; i < NQ; i++) {
            char *comp = comps[kind][i];
            size_t k;
            if (kind == 0) {
                const cs_text_shard *sh = &c.shards[rnd() % (uint64_t)c.n_shards];
                uint64_t d = rnd() % sh->n_docs, len = sh->raw_len[d];
                uint64_t off = len > 1100 ? rnd() % (len - 1100) : 0;
                k = len < 1024 ? len : 1024;
                memcpy(comp, sh->raw.text + sh->raw_start[d] + off, k);
                for (size_t j = 200; j + 10 < k; j += 230) comp[j] = 'Q'; /* edits */
            } else {
                char tmp[4096];
                size_t g = gen_text(tmp, 1500);
                k = g < 1024 ? g : 1024;
                memcpy(comp, tmp, k);
            }
            clen[kind][i] = k;
        }
    /* Passes: the plain binary search (every step reads the maps) and the
     * in-memory top level (text_sa.h), each twice (the second pass warm);
     * then the index evicted from the page cache (posix_fadvise DONTNEED on
     * its files) and the corpus opened again: the open reads it back
     * (MAP_POPULATE), the queries after it should not fault. */
    const char *pass_names[5] = {"plain search, 1st pass", "plain search, 2nd pass (warm)",
                                 "top level, 1st pass", "top level, 2nd pass (warm)",
                                 "top level, after evicting the index"};
    qres res[5];
    for (int pass = 0; pass < 5; pass++) {
        if (pass == 0)
            for (int i = 0; i < c.n_shards; i++) cs_text_sa_unsample(&c.shards[i].raw), cs_text_sa_unsample(&c.shards[i].sa);
        if (pass == 2 || pass == 4) {
            if (pass == 4) {
                cs_text_corpus_close(&c);
                evict_dir(dir);
            }
            double o0 = now_s(), oc0 = cpu_s();
            if (pass == 4 && cs_text_corpus_open(&c, s, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            for (int i = 0; i < c.n_shards && pass == 2; i++)
                if (cs_text_sa_sample(&c.shards[i].raw, CS_TEXT_TOP_K, &e) ||
                    cs_text_sa_sample(&c.shards[i].sa, CS_TEXT_TOP_K, &e)) {
                    fprintf(stderr, "%s\n", e.msg);
                    return 1;
                }
            uint64_t topb = 0;
            for (int i = 0; i < c.n_shards; i++) topb += (c.shards[i].raw.top_n + c.shards[i].sa.top_n) * (CS_TEXT_TOP_B + 1);
            printf("%s: %.2f s wall, %.2f s cpu (top levels: %.1f MB in memory, %.3f of the index)\n",
                   pass == 2 ? "top levels built" : "corpus opened again after evicting the index (reads it back)",
                   now_s() - o0, cpu_s() - oc0, topb / 1e6, (double)topb / (double)disk);
        }
        for (int kind = 0; kind < 2; kind++)
            if (run_queries(&c, comps[kind], clen[kind], NQ, &res[pass].k[kind])) return 1;
        for (int kind = 0; kind < 2; kind++) {
            const qstat *r = &res[pass].k[kind];
            printf("  %-36s %s: %.3f ms cpu per KB (%.0f%% character spans), %.3f ms wall per KB (p50 %.3f, p99 %.3f); per query: %.1f minor + "
                   "%.2f major faults, %.0f top-level + %.0f mapped probes\n",
                   pass_names[pass], kind ? "novel        " : "copied+edited", r->cpu, 100 * r->cpu_chars / r->cpu, r->wall, r->p50, r->p99,
                   r->minflt, r->majflt, r->ptop, r->pmapped);
        }
        fflush(stdout);
    }
    /* anchor: brute force (every completion start against every corpus
     * position, first byte found with memchr) over a 16 MB sample of shard 0,
     * for the first completion of each kind; per KB, scaled to the corpus */
    uint64_t bn = c.shards[0].raw.n < (16u << 20) ? c.shards[0].raw.n : (16u << 20);
    double brute_ms[2], bc0 = cpu_s();
    for (int kind = 0; kind < 2; kind++) {
        const char *t = (const char *)c.shards[0].raw.text, *q = comps[kind][0];
        size_t m = clen[kind][0], best = 0;
        t0 = cpu_s();
        for (size_t i = 0; i < m; i++) {
            if (((uint8_t)q[i] & 0xC0) == 0x80) continue;
            for (const char *p = t; (p = memchr(p, q[i], bn - (size_t)(p - t))) != NULL; p++) {
                size_t l = 0, lim = bn - (size_t)(p - t);
                while (i + l < m && l < lim && p[l] == q[i + l]) l++;
                if (l > best) best = l;
            }
        }
        brute_ms[kind] = (cpu_s() - t0) * 1e3 * 1024.0 / (double)m * ((double)c.bytes / (double)bn);
        cs_text_chars ch;
        if (cs_text_longest_chars(&c, q, m, -1, 0, &ch, &e)) return 1;
        printf("first %s completion: longest_span_chars %llu (index, whole corpus), longest byte match %zu "
               "(brute force, 16 MB sample)\n", kind ? "novel" : "copied", (unsigned long long)ch.chars, best);
        cs_text_chars_free(&ch);
    }
    (void)bc0;
    /* anchor: one memmem pass over the corpus for a single 64-byte window */
    t0 = cpu_s();
    volatile int hits = 0; /* keeps the call */
    static const char window[65] = "zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzzq zzz.";
    for (int i = 0; i < c.n_shards; i++) hits += memmem(c.shards[i].raw.text, c.shards[i].raw.n, window, 64) != NULL;
    double tmm = (cpu_s() - t0) * 1e3;
    const char *names[2] = {"copied+edited", "novel"};
    for (int kind = 0; kind < 2; kind++) {
        const qstat *pl = &res[1].k[kind], *tp = &res[3].k[kind];
        printf("span query, %s 1 KB completions (%.0f MB corpus, %d shard(s)), warm: %.3f ms cpu per KB with the top "
               "level (%.3f plain: %.2fx faster)   target <= 5 ms   ratio %.2fx   anchors, cpu, same run: one memmem "
               "window over the corpus %.1f ms (%.2fx the query); brute force, 16 MB sample scaled to the corpus, %.0f "
               "ms per KB (%.0fx slower)\n",
               names[kind], c.bytes / 1048576.0, c.n_shards, tp->cpu, pl->cpu, pl->cpu / tp->cpu, tp->cpu / 5.0, tmm,
               tmm / tp->cpu, brute_ms[kind], brute_ms[kind] / tp->cpu);
    }
    (void)hits;
    free(buf);
    cs_text_corpus_close(&c);
    cs_store_close(s);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
    return 0;
}
