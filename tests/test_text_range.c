/* cs_text_index_opts.ranges (how mpirun splits one big JSONL file across
 * ranks): a file read as consecutive byte ranges, each the lines that start
 * in it and numbered from the newlines before it, one cs_text_index call per
 * range into the same store, gives the documents of reading the file whole
 * (sources "path:LINE", names, status, sizes, in order). The ranges and their
 * first line numbers are found here by brute force over the file's bytes;
 * the file has lines of 0 to 20,000 words, CRLF endings, blank lines, a
 * broken line and no final newline; cuts fall anywhere, also inside a line,
 * on a blank line and twice inside one long line. */
#include <stdint.h>
#include <sys/stat.h>

#include "analyze/text_corpus.h"
#include "core/store.h"
#include "t.h"

static char *tmp;
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The test file; its bytes in *data. */
static char *write_jsonl(const char *path, size_t *len) {
    size_t cap = 1 << 22, n = 0;
    char *d = malloc(cap);
    for (int i = 0; i < 120; i++) {
        if (n + 200100 > cap) d = realloc(d, cap *= 2); /* a line is < 200 KB */
        int r = (int)(rnd() % 100), nw = r < 40 ? (int)(rnd() % 8) : r < 90 ? (int)(rnd() % 400) : (int)(rnd() % 20000);
        if (i % 13 == 5) n += (size_t)sprintf(d + n, i % 2 ? "\n" : "\r\n"); /* blank lines */
        if (i == 50) n += (size_t)sprintf(d + n, "{\"id\": \"broken\", \"text\": 7}\n");
        n += (size_t)sprintf(d + n, "{\"id\": \"d%d\", \"text\": \"", i);
        for (int w = 0; w < nw; w++) {
            int k = 3 + (int)(rnd() % 6);
            for (int j = 0; j < k; j++) d[n++] = (char)('a' + rnd() % 26);
            d[n++] = ' ';
        }
        n += (size_t)sprintf(d + n, "w%d\"}", i);
        if (i < 119) n += (size_t)sprintf(d + n, i % 4 == 1 ? "\r\n" : "\n");
    }
    FILE *f = fopen(path, "wb");
    if (f) fwrite(d, 1, n, f), fclose(f);
    *len = n;
    return d;
}

/* The first line starting at or after byte b. */
static uint64_t line_at(const char *d, size_t len, uint64_t b) {
    while (b > 0 && b < len && d[b - 1] != '\n') b++;
    return b < len ? b : len;
}

static const char *str(sqlite3_stmt *st, int k) {
    const char *t = (const char *)sqlite3_column_text(st, k);
    return t ? t : "";
}

static char *rows(cs_store *s) {
    sqlite3_stmt *st;
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(cap, 1);
    if (sqlite3_prepare_v2(cs_store_db(s), "SELECT id, source, name, status, norm_bytes, orig_bytes, words "
                                           "FROM text_docs ORDER BY id", -1, &st, NULL))
        return out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[4500];
        int k = snprintf(line, sizeof line, "%lld|%s|%s|%s|%lld|%lld|%lld\n", sqlite3_column_int64(st, 0),
                         str(st, 1), str(st, 2), str(st, 3), sqlite3_column_int64(st, 4),
                         sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6));
        if (n + (size_t)k + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + n, line, (size_t)k + 1);
        n += (size_t)k;
    }
    sqlite3_finalize(st);
    return out;
}

static void test_ranges_give_whole_file_docs(void) {
    char path[4200], db[4200];
    snprintf(path, sizeof path, "%s/big.jsonl", tmp);
    size_t len;
    char *d = write_jsonl(path, &len);
    cs_err e = {0};
    cs_store *one = NULL;
    snprintf(db, sizeof db, "%s/one.db", tmp);
    REQUIRE(cs_store_open(&one, db, &e) == 0);
    const char *p1[] = {path};
    cs_text_index_opts o = {0};
    cs_text_index_stats st1;
    CHECK(cs_text_index(one, p1, 1, &o, &st1, &e) == 0);
    char *want = rows(one);
    cs_store_close(one);
    CHECK(strstr(want, "big.jsonl:1|d0|ok|") && strstr(want, "|broken|") == NULL && strstr(want, "|error|"));
    /* the long lines: cut sets through them, on a blank line, and random */
    uint64_t longest = 0, lstart = 0;
    for (uint64_t a = 0, b; a < len; a = b) {
        b = a;
        while (b < len && d[b] != '\n') b++;
        b++;
        if (b - a > longest) longest = b - a, lstart = a;
    }
    uint64_t blank = 0;
    for (uint64_t i = 1; i + 1 < len && !blank; i++)
        if (d[i - 1] == '\n' && (d[i] == '\n' || (d[i] == '\r' && d[i + 1] == '\n'))) blank = i;
    CHECK(longest > len / 8 && blank > 0);
    for (int set = 0; set < 8; set++) {
        uint64_t cut[8];
        int n = 2 + set % 5;
        for (int k = 1; k < n; k++) cut[k] = rnd() % len;
        if (set == 0) cut[1] = blank;                                      /* a blank line starts at the cut */
        if (set == 1) n = 3, cut[1] = lstart + 10, cut[2] = lstart + longest / 2; /* both inside one line */
        if (set == 2) cut[1] = lstart;
        cut[0] = 0, cut[n] = len;
        for (int k = 1; k < n; k++) /* sorted */
            for (int j = k; j > 1 && cut[j] < cut[j - 1]; j--) {
                uint64_t t = cut[j];
                cut[j] = cut[j - 1], cut[j - 1] = t;
            }
        cs_store *s = NULL;
        snprintf(db, sizeof db, "%s/set%d.db", tmp, set);
        REQUIRE(cs_store_open(&s, db, &e) == 0);
        int64_t read = 0, skipped = 0; /* every line read once: none read twice and skipped */
        for (int k = 0; k < n; k++) {
            cs_text_range r = {.path = path, .start = line_at(d, len, cut[k]), .end = line_at(d, len, cut[k + 1])};
            r.first_line = 1;
            for (uint64_t i = 0; i < r.start; i++) r.first_line += d[i] == '\n';
            if (r.start >= r.end) continue; /* this share starts and ends inside one line */
            cs_text_index_opts ro = {.ranges = &r, .n_ranges = 1};
            cs_text_index_stats st;
            CHECKF(cs_text_index(s, p1, 1, &ro, &st, &e) == 0, "%s", e.msg);
            read += st.docs_ok + st.docs_empty + st.docs_error;
            skipped += st.docs_skipped;
        }
        CHECKF(read == st1.docs_ok + st1.docs_empty + st1.docs_error && skipped == 0, "set %d: %lld read, %lld skipped",
               set, (long long)read, (long long)skipped);
        char *got = rows(s);
        CHECKF(!strcmp(want, got), "cut set %d (%d shares) gives other documents", set, n);
        free(got);
        cs_store_close(s);
    }
    free(want);
    free(d);
}

int main(void) {
    tmp = t_tmpdir("textrange");
    if (!tmp) return 1;
    RUN(test_ranges_give_whole_file_docs);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    free(tmp);
    return T_DONE();
}
