/* t.h — the test harness. One binary per tests/test_*.c; each test is a
 * function run by RUN(); a test fails if any CHECK in it fails. The binary
 * ends with "<file>: N passed, N failed" and tests/run.sh adds them up. */
#ifndef CS_T_H
#define CS_T_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed;
static const char *t_cur = "";

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, t_cur, #c); \
            t_cur_failed = 1;                                                            \
        }                                                                                \
    } while (0)

/* CHECK with a printf-style explanation. */
#define CHECKF(c, ...)                                                                   \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: check failed: %s: ", __FILE__, __LINE__, t_cur, #c); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            t_cur_failed = 1;                                                            \
        }                                                                                \
    } while (0)

/* Like CHECK, but leaves the test function at once (use before dereferencing). */
#define REQUIRE(c)                                                                       \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: required: %s\n", __FILE__, __LINE__, t_cur, #c); \
            t_cur_failed = 1;                                                            \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define RUN(fn)                                                                          \
    do {                                                                                 \
        t_cur = #fn;                                                                     \
        t_cur_failed = 0;                                                                \
        fn();                                                                            \
        if (t_cur_failed) {                                                              \
            t_failed++;                                                                  \
            printf("FAIL %s\n", #fn);                                                    \
        } else {                                                                         \
            t_passed++;                                                                  \
            printf("ok   %s\n", #fn);                                                    \
        }                                                                                \
        fflush(stdout);                                                                  \
    } while (0)

#define T_DONE()                                                                         \
    (printf("%s: %d passed, %d failed\n", __FILE__, t_passed, t_failed), t_failed ? 1 : 0)

/* Splits a TSV line in place into at most max fields (empty fields kept);
 * returns how many. */
static inline int t_split_tsv(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

/* Path of the copyscope binary under test (set by tests/run.sh). */
static inline const char *t_bin(void) {
    const char *b = getenv("CS_BIN");
    return b ? b : "build/copyscope";
}

/* A fresh scratch directory under $CS_TMP (or /tmp); caller frees. */
static inline char *t_tmpdir(const char *tag) {
    const char *base = getenv("CS_TMP");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/cs-%s-XXXXXX", base ? base : "/tmp", tag);
    extern char *mkdtemp(char *);
    if (!mkdtemp(p)) { free(p); return NULL; }
    return p;
}

#endif
