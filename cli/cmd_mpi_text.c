/* cmd_mpi_text.c — which ranks run `run` and `text`, and `text audit` under
 * mpirun (cli/cli_mpi_text.h).
 *
 * text audit: rank 0 reads the completions and hands out rounds of lines;
 * every round goes to every rank (bcast), each rank scores a contiguous
 * share of it by bytes against the whole corpus (each opened the same
 * store), and rank 0 gathers the packed results in rank order, which is
 * line order, and writes them (analyze/text_audit_split.h): the rows and
 * the results file are one process's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "analyze/text_audit_split.h"
#include "cli/cli.h"
#include "cli/cli_mpi_text.h"
#include "core/mpi_comm.h"

enum { ROUND_LINES = 256 };

int cli_mpi_gate_text_run(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "run")) return 1;
    return argc >= 3 && !strcmp(argv[1], "text") && (!strcmp(argv[2], "index") || !strcmp(argv[2], "audit"));
}

static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u)) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

void cli_mpi_print_cpu(const char *what) {
    int size = cs_mpi_size();
    if (size == 1 || !getenv("CS_MPI_TIMINGS")) return; /* the same answer on every rank */
    double mine = cpu_seconds(), *all = NULL;
    int64_t *lens = cs_mpi_rank() == 0 ? calloc((size_t)size, sizeof *lens) : NULL, dummy[1];
    int rc = cs_mpi_gatherv(&mine, sizeof mine, (void **)&all, lens ? lens : dummy);
    if (!rc && cs_mpi_rank() == 0 && lens && all) {
        double sum = 0, mx = 0;
        fprintf(stderr, "%s: cpu per rank (s):", what);
        for (int r = 0; r < size; r++) {
            fprintf(stderr, " %.2f", all[r]);
            sum += all[r];
            if (all[r] > mx) mx = all[r];
        }
        fprintf(stderr, "  (all %.2f, busiest %.2f: %.2fx on free cores)\n", sum, mx, mx > 0 ? sum / mx : 0.0);
    }
    free(all);
    free(lens);
}

/* ---- text audit ---- */

/* A round as it travels: [n, text bytes], then n lengths, n line numbers,
 * then the lines one after the other. n < 0: stop. */
typedef struct {
    int64_t n, bytes;
} round_head;

/* Line i of the round goes to rank floor(size x (bytes before it + half
 * its own) / all bytes): contiguous runs of about equal bytes, in order. */
static void my_share(const size_t *len, int64_t n, int64_t bytes, int rank, int size, int64_t *lo, int64_t *hi) {
    *lo = *hi = 0;
    int64_t before = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t part = bytes > 0 ? (int64_t)(((double)before + (double)len[i] / 2) * size / (double)bytes) : 0;
        if (part >= size) part = size - 1;
        if (part < rank) *lo = i + 1;
        if (part <= rank) *hi = i + 1;
        before += (int64_t)len[i];
    }
    if (*hi < *lo) *hi = *lo;
}

typedef struct {
    int64_t *done; /* lines scored per rank (rank 0) */
    int64_t *lens; /* the gather's reply lengths */
} mpi_audit;

/* Scores this rank's share of a round into mine (x NULL: a failure record). */
static void score_share(cs_text_scorer *x, const char *why, char *const *line, const size_t *len, const int64_t *lineno,
                        int64_t lo, int64_t hi, cs_buf *mine) {
    for (int64_t i = lo; i < hi; i++) {
        if (!x) {
            cs_text_pack_failure(mine, lineno[i], why);
            break;
        }
        if (cs_text_scorer_line(x, line[i], len[i], lineno[i], mine)) break; /* oom: the buffer says so */
    }
}

/* Rank 0's score callback: the round to every rank, its share here, the
 * others' gathered after it. */
static int mpi_score(void *ctx, cs_text_scorer *x, const cs_text_round *r, cs_buf *packed, cs_err *err) {
    mpi_audit *m = ctx;
    int size = cs_mpi_size();
    round_head h = {r->n, 0};
    for (int i = 0; i < r->n; i++) h.bytes += (int64_t)r->len[i];
    int64_t *meta = malloc((size_t)(2 * r->n + 1) * sizeof *meta);
    char *text = malloc((size_t)h.bytes + 1);
    if (!meta || !text) {
        free(meta), free(text);
        return cs_fail(err, CS_ENOMEM, "text audit: out of memory"); /* rank 0 stops the others after */
    }
    for (int i = 0, o = 0; i < r->n; o += (int)r->len[i], i++) {
        meta[i] = (int64_t)r->len[i];
        meta[r->n + i] = r->lineno[i];
        memcpy(text + o, r->line[i], r->len[i]);
    }
    cs_mpi_bcast(&h, sizeof h);
    cs_mpi_bcast(meta, 2 * h.n * (int64_t)sizeof *meta);
    cs_mpi_bcast(text, h.bytes);
    free(meta);
    free(text);
    int64_t lo, hi;
    my_share(r->len, r->n, h.bytes, 0, size, &lo, &hi);
    cs_buf mine = {0};
    score_share(x, NULL, (char *const *)r->line, r->len, r->lineno, lo, hi, &mine);
    m->done[0] += hi - lo;
    void *all = NULL;
    int grc = cs_mpi_gatherv(mine.p ? mine.p : "", (int64_t)mine.len, &all, m->lens);
    int oom = mine.oom;
    cs_buf_free(&mine);
    if (grc || oom) {
        free(all);
        return cs_fail(err, CS_ENOMEM, "text audit: out of memory for the scored results");
    }
    int64_t total = 0;
    for (int k = 0; k < size; k++) total += m->lens[k];
    for (int k = 1; k < size; k++) { /* the balance of the cut */
        int64_t l2, h2;
        my_share(r->len, r->n, h.bytes, k, size, &l2, &h2);
        m->done[k] += h2 - l2;
    }
    cs_buf_put(packed, all, (size_t)total);
    free(all);
    return 0;
}

void cli_mpi_text_audit_stop(void) {
    if (cs_mpi_size() == 1) return;
    round_head h = {-1, 0};
    cs_mpi_bcast(&h, sizeof h);
    cli_mpi_print_cpu("text audit");
}

int cli_mpi_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o,
                       FILE *out, cs_text_audit_stats *st, int quiet, cs_err *err) {
    int size = cs_mpi_size();
    mpi_audit m = {calloc((size_t)size, sizeof *m.done), calloc((size_t)size, sizeof *m.lens)};
    int rc;
    if (!m.done || !m.lens) rc = cs_fail(err, CS_ENOMEM, "text audit: out of memory");
    else rc = cs_text_audit_split(s, c, path, o, out, ROUND_LINES, mpi_score, &m, st, err);
    cli_mpi_text_audit_stop();
    if (!rc && !quiet) {
        printf("text audit: completions scored per rank:");
        for (int k = 0; k < size; k++) printf(" %lld", (long long)m.done[k]);
        printf("\n");
    }
    free(m.done);
    free(m.lens);
    return rc;
}

int cli_mpi_text_audit_worker(const char *db, const char *path, const cs_text_audit_opts *o) {
    int rank = cs_mpi_rank(), size = cs_mpi_size();
    cs_err err = {0};
    cs_store *s = NULL;
    cs_text_corpus c = {0};
    cs_text_scorer *x = NULL;
    int opened = 0;
    if (!cs_store_open_readonly(&s, db, &err) && !cs_text_corpus_open(&c, s, &err)) {
        opened = 1;
        if (cs_text_scorer_open(&x, s, &c, path, o, &err)) x = NULL;
    }
    char why[1200] = "";
    if (!x) snprintf(why, sizeof why, "text audit: rank %d of %d: %s", rank, size, err.msg);
    int failed = !x;
    for (;;) {
        round_head h;
        cs_mpi_bcast(&h, sizeof h);
        if (h.n < 0) break;
        int64_t *meta = malloc((size_t)(2 * h.n + 1) * sizeof *meta);
        char *text = malloc((size_t)h.bytes + 1);
        size_t *len = malloc((size_t)(h.n + 1) * sizeof *len);
        char **line = malloc((size_t)(h.n + 1) * sizeof *line);
        if (!meta || !text || !len || !line) { /* the round must be received to go on: stop the job */
            fprintf(stderr, "copyscope: text audit: rank %d of %d: out of memory for a round\n", rank, size);
            exit(CLI_FAIL);
        }
        cs_mpi_bcast(meta, 2 * h.n * (int64_t)sizeof *meta);
        cs_mpi_bcast(text, h.bytes);
        /* each line NUL-terminated in its own copy: the parser reads it as a string */
        int oom = 0;
        for (int64_t i = 0, at = 0; i < h.n; at += meta[i], i++) {
            len[i] = (size_t)meta[i];
            line[i] = malloc(len[i] + 1);
            if (!line[i]) {
                oom = 1;
                continue;
            }
            memcpy(line[i], text + at, len[i]);
            line[i][len[i]] = 0;
        }
        int64_t lo, hi;
        my_share(len, h.n, h.bytes, rank, size, &lo, &hi);
        cs_buf mine = {0};
        if (oom) snprintf(why, sizeof why, "text audit: rank %d of %d: out of memory", rank, size);
        score_share(oom ? NULL : x, why, line, len, meta + h.n, lo, hi, &mine);
        if (mine.oom) { /* a record that says so, not a truncated one */
            cs_buf_free(&mine);
            snprintf(why, sizeof why, "text audit: rank %d of %d: out of memory for its results", rank, size);
            if (lo < hi) cs_text_pack_failure(&mine, meta[h.n + lo], why);
        }
        failed |= mine.oom || oom;
        void *none = NULL;
        int64_t dummy[1];
        cs_mpi_gatherv(mine.p ? mine.p : "", (int64_t)mine.len, &none, dummy);
        cs_buf_free(&mine);
        for (int64_t i = 0; i < h.n; i++) free(line[i]);
        free(line);
        free(len);
        free(meta);
        free(text);
    }
    cli_mpi_print_cpu("text audit");
    cs_text_scorer_free(x);
    if (opened) cs_text_corpus_close(&c);
    cs_store_close(s);
    return failed ? CLI_FAIL : CLI_OK;
}
