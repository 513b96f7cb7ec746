/* bench_lf_quant.c — what copyscope-mpi's rank 0 pays for the vote index
 * (issue 17), on N references of synthetic SIFT records (30 keypoints
 * each, descriptors drawn around a vocabulary of 512 words; default N =
 * 20,000: 600,000 descriptors, CS_BENCH_LFQ_REFS to change):
 *  1. `index add`: the whole build (cs_lf_index_build: training + encoding
 *     every descriptor, what rank 0 did before) against the quantizer's
 *     training alone (cs_lf_quant_train, what it does now), CPU-seconds of
 *     this process (FAISS on one thread, as under mpirun's binding);
 *  2. `analyze`: opening the whole DB.lfvote (cs_lf_index_load, what rank 0
 *     did before) against DB.lfquant and its shell (cs_lf_quant_load +
 *     cs_lf_index_shell, now), each in a child process: its CPU-seconds and
 *     the growth of its resident memory (VmRSS), and the files' bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "index/faiss_shim.h"
#include "index/lf_quant.h"
#include "index/localfeat.h"

static double cpu_now(void) {
    struct timespec t;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) ? 0 : (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static uint8_t *records(int64_t n) {
    static uint8_t vocab[512][128];
    static cs_lf_set s;
    for (int w = 0; w < 512; w++)
        for (int j = 0; j < 128; j++) vocab[w][j] = (uint8_t)(rnd() % 4 ? (rnd() >> 9) % 100 : 0);
    uint8_t *recs = calloc((size_t)n, CS_LF_RECORD);
    for (int64_t i = 0; recs && i < n; i++) {
        memset(&s, 0, sizeof s);
        s.n = CS_LF_REF_KP;
        s.w = s.h = s.orig_w = s.orig_h = 256;
        for (int k = 0; k < s.n; k++)
            for (int j = 0; j < 128; j++) {
                int v = vocab[rnd() % 512][j] + (int)(rnd() % 25) - 12;
                s.desc[k][j] = (uint8_t)(v < 0 ? 0 : v);
            }
        cs_lf_pack(&s, recs + (size_t)i * CS_LF_RECORD);
    }
    return recs;
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long long)st.st_size;
}

/* one opening (how 0: the whole index, 1: the quantizer file and its
 * shell), in a fresh process: `bench_lf_quant open HOW VOTE QUANT N` */
static int open_here(int how, const char *vote, const char *quant, int64_t n) {
    cs_err err = {0};
    cs_lf_index *ix = NULL;
    long r0 = rss_kib();
    double c0 = cpu_now();
    int rc;
    if (how == 0) {
        rc = cs_lf_index_load(&ix, vote, 7, n, &err);
    } else {
        uint8_t *cnt = NULL, *q = NULL;
        size_t ql = 0;
        rc = cs_lf_quant_load(quant, vote, 7, n, &cnt, &q, &ql, &err) || cs_lf_index_shell(&ix, q, ql, n, cnt, &err);
        free(cnt), free(q);
    }
    double c1 = cpu_now();
    long r1 = rss_kib();
    printf("  %-34s %8.4f CPU-s, resident +%ld KiB%s%s\n",
           how == 0 ? "whole DB.lfvote (before)" : "DB.lfquant + shell (now)", c1 - c0, r1 - r0, rc ? ": FAILED " : "",
           rc ? err.msg : "");
    cs_lf_index_free(ix);
    return rc ? 1 : 0;
}

static void open_in_child(const char *self, int how, const char *vote, const char *quant, int64_t n) {
    char h[8], nb[32];
    snprintf(h, sizeof h, "%d", how);
    snprintf(nb, sizeof nb, "%lld", (long long)n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "open", h, vote, quant, nb, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "open")) return open_here(atoi(argv[2]), argv[3], argv[4], atoll(argv[5]));
    const char *e = getenv("CS_BENCH_LFQ_REFS");
    int64_t n = e ? atoll(e) : 20000;
    cs_faiss_set_threads(1);
    uint8_t *recs = records(n);
    if (!recs) return 1;
    char vote[64], quant[64];
    snprintf(vote, sizeof vote, "/tmp/bench-lfq-%d.lfvote", (int)getpid());
    snprintf(quant, sizeof quant, "/tmp/bench-lfq-%d.lfquant", (int)getpid());
    cs_err err = {0};
    cs_lf_index *ix = NULL;
    uint8_t *q = NULL, *cnt = malloc((size_t)n);
    size_t ql = 0;
    double c0 = cpu_now();
    if (cs_lf_index_build(&ix, n, recs, NULL, &err)) goto fail;
    double c1 = cpu_now();
    if (cs_lf_quant_train(n, recs, &q, &ql, &err)) goto fail;
    double c2 = cpu_now();
    char desc[96];
    cs_lf_index_describe(ix, desc, sizeof desc);
    printf("%lld references, %lld descriptors, %s\n", (long long)n, (long long)cs_lf_index_ndesc(ix), desc);
    printf("index add, rank 0 (FAISS on 1 thread):\n  whole build (before)               %8.2f CPU-s\n"
           "  quantizer trained alone (now)      %8.2f CPU-s (%.1f %% of the build)\n",
           c1 - c0, c2 - c1, 100 * (c2 - c1) / (c1 - c0));
    if (!cnt || cs_lf_index_counts(ix, n, cnt) || cs_lf_index_save(ix, vote, 7, n, &err) ||
        cs_lf_quant_save(quant, vote, 7, n, cnt, q, ql, &err))
        goto fail;
    cs_lf_index_free(ix);
    ix = NULL;
    printf("analyze, rank 0's opening (DB.lfvote %lld B, DB.lfquant %lld B):\n", file_size(vote), file_size(quant));
    open_in_child("/proc/self/exe", 0, vote, quant, n);
    open_in_child("/proc/self/exe", 1, vote, quant, n);
    remove(vote), remove(quant);
    free(recs), free(q), free(cnt);
    return 0;
fail:
    fprintf(stderr, "bench_lf_quant: %s\n", err.msg);
    remove(vote), remove(quant);
    return 1;
}
