/* Text audit: normalisation and its offset map, the word-aligned suffix array
 * (against brute force), spans on completions built from known offsets,
 * metrics against hand-computed values, shards, the n-gram memoriser, and
 * the bad inputs of issue 8. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "analyze/text_exact.h"
#include "analyze/text_metrics.h"
#include "analyze/text_ngram.h"
#include "analyze/text_norm.h"
#include "analyze/text_sa.h"
#include "analyze/text_span.h"
#include "analyze/text_trace.h"
#include "core/parallel.h"
#include "t.h"

#include <utf8proc.h>

static char *tmp; /* scratch folder of this run */

static uint64_t rng_state = 12345;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A random lowercase word of 3..9 letters (practically unique). */
static void rand_word(char *w) {
    int n = 3 + (int)(rnd() % 7);
    for (int i = 0; i < n; i++) w[i] = (char)('a' + rnd() % 26);
    w[n] = 0;
}

/* A document of nw random words with irregular whitespace; word i starts at
 * byte off[i] and ends at end[i] of the file text. Caller frees. */
typedef struct {
    char *text;
    size_t len;
    char (*words)[16];
    size_t *off, *end;
    int nw;
} doc;

static doc make_doc(int nw) {
    static const char *seps[] = {" ", "  ", "\n", " \t ", "\n\n", " "};
    doc d = {.nw = nw};
    d.text = malloc((size_t)nw * 16 + 16);
    d.words = malloc((size_t)nw * sizeof *d.words);
    d.off = malloc((size_t)nw * sizeof *d.off);
    d.end = malloc((size_t)nw * sizeof *d.end);
    size_t k = 0;
    k += (size_t)sprintf(d.text + k, "\n  "); /* leading whitespace */
    for (int i = 0; i < nw; i++) {
        if (i) k += (size_t)sprintf(d.text + k, "%s", seps[rnd() % 6]);
        rand_word(d.words[i]);
        d.off[i] = k;
        k += (size_t)sprintf(d.text + k, "%s", d.words[i]);
        d.end[i] = k;
    }
    k += (size_t)sprintf(d.text + k, "\n");
    d.len = k;
    return d;
}

static void free_doc(doc *d) {
    free(d->text), free(d->words), free(d->off), free(d->end);
}

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, len, f);
    fclose(f);
}

static char *path_in(const char *dir, const char *name) {
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/%s", dir, name);
    return p;
}

static char *fresh_dir(const char *tag) {
    char *p = malloc(4200);
    static int k;
    snprintf(p, 4200, "%s/%s-%d", tmp, tag, k++);
    mkdir(p, 0755);
    return p;
}

/* notes collected from the library */
static char notes[8192];
static void collect(void *ctx, const char *msg) {
    (void)ctx;
    size_t n = strlen(notes);
    snprintf(notes + n, sizeof notes - n, "%s\n", msg);
}

static int64_t query_int(cs_store *s, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(cs_store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- normalisation ---- */

static void test_norm_whitespace_and_map(void) {
    const char *in = "  Hello\t\n world   foo\r\nbar  ";
    cs_text_norm n;
    cs_err e = {0};
    REQUIRE(cs_text_normalize(&n, in, strlen(in), &e) == 0);
    CHECK(!strcmp(n.text, "Hello world foo bar"));
    CHECK(n.n_words == 4);
    /* word starts and ends map back exactly */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 0) == 2);   /* Hello */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 5) == 7);   /* end of Hello */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 6) == 10);  /* world */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 12) == 18); /* foo */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 16) == 23); /* bar */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 19) == 26); /* end */
    cs_text_norm_free(&n);
}

static void test_norm_nfc(void) {
    /* "cafe" + U+0301 (decomposed) -> "café" (U+00E9); U+00A0 is whitespace */
    const char *in = "cafe\xcc\x81\xc2\xa0x";
    cs_text_norm n;
    cs_err e = {0};
    REQUIRE(cs_text_normalize(&n, in, strlen(in), &e) == 0);
    CHECK(!strcmp(n.text, "caf\xc3\xa9 x"));
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 5) == 6); /* end of café: after the combining mark */
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 6) == 8); /* x */
    CHECK(n.n_invalid == 0);
    cs_text_norm_free(&n);
}

static void test_bad_invalid_utf8_replaced_and_counted(void) {
    const char *in = "a\xff" "b \xc3";
    cs_text_norm n;
    cs_err e = {0};
    REQUIRE(cs_text_normalize(&n, in, strlen(in), &e) == 0);
    CHECK(!strcmp(n.text, "a\xef\xbf\xbd" "b \xef\xbf\xbd"));
    CHECK(n.n_invalid == 2);
    CHECK(memchr(n.text, 0xff, n.len) == NULL);
    cs_text_norm_free(&n);
}

static void test_bad_nul_bytes_are_whitespace(void) {
    const char in[] = "ab\0\0cd\0";
    cs_text_norm n;
    cs_err e = {0};
    REQUIRE(cs_text_normalize(&n, in, sizeof in - 1, &e) == 0);
    CHECK(n.len == 5 && !memcmp(n.text, "ab cd", 5));
    CHECK(n.n_nul == 3);
    CHECK(cs_text_orig_offset(n.anchors, n.n_anchors, 3) == 4);
    cs_text_norm_free(&n);
}

/* Random bytes (ASCII, UTF-8 pieces, invalid bytes, NULs, whitespace): the
 * output is valid UTF-8 without 0xFF, single spaces only, and every ASCII
 * word maps back to the same bytes at its original offset. */
static void test_norm_random_bytes_invariants(void) {
    static const char *pieces[] = {"a", "bc", " ", "\n\n", "\t", "\xc3\xa9", "e\xcc\x81", "\xff", "\xc3",
                                   "\xe2\x80\x83", "xyz", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "q"};
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {
        char in[600];
        size_t k = 0;
        while (k < 500) {
            if (rnd() % 13 == 0) {
                in[k++] = 0;
                continue;
            }
            const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
            size_t l = strlen(p);
            memcpy(in + k, p, l);
            k += l;
        }
        cs_text_norm n;
        cs_err e = {0};
        if (cs_text_normalize(&n, in, k, &e)) {
            bad++;
            continue;
        }
        if (memchr(n.text, 0xff, n.len) || strstr(n.text, "  ") || (n.len && (n.text[0] == ' ' || n.text[n.len - 1] == ' ')))
            bad++;
        for (size_t i = 0; i < n.len;) { /* valid UTF-8 */
            utf8proc_int32_t c;
            utf8proc_ssize_t l = utf8proc_iterate((const uint8_t *)n.text + i, (utf8proc_ssize_t)(n.len - i), &c);
            if (l <= 0) {
                bad++;
                break;
            }
            i += (size_t)l;
        }
        for (size_t i = 1; i < n.n_anchors; i++)
            if (n.anchors[i].norm <= n.anchors[i - 1].norm) bad++;
        for (size_t i = 0; i < n.len;) { /* ASCII words map back to themselves */
            size_t e2 = i;
            int ascii = 1;
            while (e2 < n.len && n.text[e2] != ' ') ascii &= (uint8_t)n.text[e2++] < 0x80;
            uint64_t o = cs_text_orig_offset(n.anchors, n.n_anchors, i);
            uint64_t oe = cs_text_orig_offset(n.anchors, n.n_anchors, e2);
            if (o > k || oe > k || oe < o) bad++;
            else if (ascii && (oe - o != e2 - i || memcmp(in + o, n.text + i, e2 - i))) bad++;
            i = e2 + 1;
        }
        cs_text_norm_free(&n);
    }
    CHECKF(bad == 0, "%d violations", bad);
}

/* ---- suffix array vs brute force ---- */

static uint64_t brute_longest(const uint8_t *t, uint64_t n, const uint8_t *p, size_t m) {
    uint64_t best = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (t[i] == ' ' || t[i] == 0xff || (i && t[i - 1] != ' ' && t[i - 1] != 0xff)) continue;
        uint64_t k = 0;
        while (k < m && i + k < n && t[i + k] == p[k]) k++;
        if (k > best) best = k;
    }
    return best;
}

/* Whitespace that reads as one ' ' in the normal form (one run each). */
static const char *const WS_RUNS[] = {" ", "  ", "\t", "\n\n", " \n ", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\x83 ",
                                      "\r\n", "\xe1\x9a\x80"};

/* words over an alphabet of 3 letters (many partial matches, < 256
 * distinct words) or 26 (> 256: two-byte ranks in the reduced string;
 * words up to 12 letters). side: every row in the side text (the normal
 * form stored); else the rows point into a raw text that holds each space
 * as a run of other whitespace (U+00A0, U+3000, tabs, newlines...) and
 * documents with leading and trailing whitespace, read through it. */
static void sa_vs_brute_force(int alpha, int side) {
    size_t n = 0;
    uint8_t t[3000];
    while (n < 2900) {
        int wl = 1 + (int)(rnd() % (alpha > 3 ? 12 : 4)); /* and words past the 8 bytes a piece's head holds */
        for (int i = 0; i < wl; i++) t[n++] = (uint8_t)('a' + rnd() % (uint64_t)alpha);
        t[n++] = (rnd() % 20 == 0) ? 0xff : ' ';
    }
    t[n - 1] = 0xff;
    /* the raw text, and each word's row */
    uint8_t raw[20000];
    uint32_t wval[3000];
    size_t rn = 0, nw = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i == 0 || t[i - 1] == 0xff) && rnd() % 2) raw[rn++] = ' '; /* leading whitespace */
        if (t[i] == ' ' || t[i] == 0xff) {
            if (t[i] == 0xff && rnd() % 2) raw[rn++] = '\n'; /* trailing whitespace */
            if (t[i] == 0xff) raw[rn++] = 0xff;
            else {
                const char *w = WS_RUNS[rnd() % (sizeof WS_RUNS / sizeof *WS_RUNS)];
                memcpy(raw + rn, w, strlen(w));
                rn += strlen(w);
            }
            continue;
        }
        if (i == 0 || t[i - 1] == ' ' || t[i - 1] == 0xff) wval[nw++] = side ? CS_TEXT_SIDE | (uint32_t)i : (uint32_t)rn;
        raw[rn++] = t[i];
    }
    char *tp = path_in(tmp, "bf.nfc"), *sp = path_in(tmp, "bf.sa");
    cs_err e = {0};
    uint64_t n_sa;
    REQUIRE(cs_text_sa_build_words(t, n, wval, nw, side ? t : NULL, side ? n : 0, tp, sp, &n_sa, &e) == 0);
    cs_text_sa sa;
    REQUIRE(cs_text_sa_open_words(&sa, tp, sp, side ? NULL : raw, side ? 0 : rn, &e) == 0);
    uint64_t starts = 0;
    for (size_t i = 0; i < n; i++)
        starts += t[i] != ' ' && t[i] != 0xff && (i == 0 || t[i - 1] == ' ' || t[i - 1] == 0xff);
    CHECK(n_sa == starts && sa.n_sa == starts && nw == starts);
    /* each row back to its normal-form offset (the i-th word start) */
    uint32_t *norm_at = malloc(starts * sizeof *norm_at);
    REQUIRE(norm_at);
    for (size_t i = 0, k = 0; i < n; i++)
        if (t[i] != ' ' && t[i] != 0xff && (i == 0 || t[i - 1] == ' ' || t[i - 1] == 0xff)) norm_at[k++] = (uint32_t)i;
    int unsorted = 0, unknown = 0;
    uint64_t *off = malloc(starts * sizeof *off);
    REQUIRE(off);
    for (uint64_t i = 0; i < sa.n_sa; i++) {
        uint64_t k = 0;
        while (k < nw && wval[k] != sa.sa[i]) k++;
        if (k == nw) unknown++;
        off[i] = k < nw ? norm_at[k] : 0;
    }
    CHECKF(unknown == 0, "%d rows that are no word's", unknown);
    /* the rows in strict byte order of the normal form (the reduced-string sort) */
    for (uint64_t i = 1; i < sa.n_sa; i++) {
        uint64_t a = off[i - 1], b = off[i], la = n - a, lb = n - b;
        int c = memcmp(t + a, t + b, la < lb ? la : lb);
        unsorted += c > 0 || (c == 0 && la > lb);
    }
    CHECKF(unsorted == 0, "%d rows out of order", unsorted);
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {
        uint8_t p[40];
        size_t m = 1 + rnd() % 39;
        for (size_t i = 0; i < m; i++) p[i] = (rnd() % 4 == 0) ? ' ' : (uint8_t)('a' + rnd() % 3);
        if (trial % 5 == 0) p[m - 1] = 0xff; /* words at a document's end */
        uint64_t pos;
        uint64_t l = cs_text_sa_longest(&sa, p, m, &pos);
        uint64_t k = 0;
        while (k < nw && wval[k] != pos) k++;
        if (l != brute_longest(t, n, p, m) || (l && (k == nw || memcmp(t + norm_at[k], p, l)))) bad++;
        uint64_t lo, hi, cnt = 0;
        cs_text_sa_range(&sa, p, m, &lo, &hi);
        for (uint64_t i = 0; i < n; i++)
            if ((i == 0 || t[i - 1] == ' ' || t[i - 1] == 0xff) && t[i] != ' ' && t[i] != 0xff && i + m <= n &&
                !memcmp(t + i, p, m))
                cnt++;
        if (hi - lo != cnt) bad++;
    }
    CHECKF(bad == 0, "%d mismatches", bad);
    /* reading a row's normal form through the raw text, byte by byte */
    int badread = 0;
    for (uint64_t i = 0; i < sa.n_sa; i += 7) {
        for (uint64_t k = 0; k < 30 && off[i] + k < n; k++) {
            int b;
            cs_text_sa_skip(&sa, sa.sa[i], k, &b);
            if (b != t[off[i] + k]) badread++;
            if (t[off[i] + k] == 0xff) break;
        }
    }
    CHECKF(badread == 0, "%d bytes read wrong through the raw text", badread);
    free(off);
    free(norm_at);
    cs_text_sa_close(&sa);
    free(tp), free(sp);
}

static void test_sa_matches_brute_force(void) {
    for (int side = 0; side < 2; side++) {
        sa_vs_brute_force(3, side);
        sa_vs_brute_force(26, side);
    }
}

/* ---- a corpus of known documents ---- */

typedef struct {
    char *dir, *db;
    cs_store *s;
    cs_text_corpus c;
    doc docs[4];
    int64_t ids[4];
} fixture;

static int open_fixture(fixture *f, int ndocs, int nw, uint64_t shard_bytes) {
    memset(f, 0, sizeof *f);
    f->dir = fresh_dir("corpus");
    char *docs = path_in(f->dir, "docs");
    mkdir(docs, 0755);
    for (int i = 0; i < ndocs; i++) {
        f->docs[i] = make_doc(nw);
        char name[32];
        snprintf(name, sizeof name, "d%d.txt", i);
        char *p = path_in(docs, name);
        write_file(p, f->docs[i].text, f->docs[i].len);
        free(p);
    }
    f->db = path_in(f->dir, "t.db");
    cs_err e = {0};
    int rc = cs_store_open(&f->s, f->db, &e);
    cs_text_index_opts o = {.shard_bytes = shard_bytes};
    const char *paths[] = {docs};
    if (!rc) rc = cs_text_index(f->s, paths, 1, &o, NULL, &e);
    if (!rc) rc = cs_text_corpus_open(&f->c, f->s, &e);
    for (int i = 0; i < ndocs && !rc; i++) {
        char sql[300];
        snprintf(sql, sizeof sql, "SELECT id FROM text_docs WHERE source = '%s/d%d.txt'", docs, i);
        f->ids[i] = query_int(f->s, sql);
    }
    if (rc) fprintf(stderr, "fixture: %s\n", e.msg);
    free(docs);
    return rc;
}

static void close_fixture(fixture *f) {
    cs_text_corpus_close(&f->c);
    cs_store_close(f->s);
    for (int i = 0; i < 4; i++)
        if (f->docs[i].text) free_doc(&f->docs[i]);
    free(f->dir), free(f->db);
}

/* Writes a completions JSONL with one line and audits it; returns the finding id. */
static int64_t audit_one(fixture *f, const char *json_line, cs_text_audit_stats *st) {
    char *p = path_in(f->dir, "c.jsonl");
    write_file(p, json_line, strlen(json_line));
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    o.note = collect;
    cs_err e = {0};
    int rc = cs_text_audit(f->s, &f->c, p, &o, NULL, st, &e);
    free(p);
    if (rc) {
        fprintf(stderr, "audit: %s\n", e.msg);
        return -1;
    }
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT max(id) FROM text_findings WHERE audit_id = %lld", (long long)st->audit_id);
    return query_int(f->s, sql);
}

typedef struct {
    int64_t comp_start, comp_end, words, doc_id, doc_start, doc_end;
} span_row;

static int get_spans(cs_store *s, int64_t fid, span_row *rows, int max) {
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_prepare_v2(cs_store_db(s),
                           "SELECT comp_start, comp_end, words, doc_id, doc_start, doc_end FROM text_spans "
                           "WHERE finding_id = ? ORDER BY rank",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, fid);
    while (n < max && sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < 6; i++) ((int64_t *)&rows[n])[i] = sqlite3_column_int64(st, i);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* A completion = 2 novel words, doc1 words [100,130), a replaced word,
 * words [131,160) with one letter of word 145 changed, then a novel word.
 * Expected spans: [100,130), [131,145), [146,160), exact in both texts. */
static void test_spans_exact_on_known_construction(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 3, 400, 0) == 0);
    doc *d = &f.docs[1];
    char comp[8192];
    size_t k = 0, cs[200], ce[200];
    k += (size_t)sprintf(comp + k, "  QQQone QQQtwo\n");
    for (int i = 100; i < 160; i++) {
        if (i > 100) k += (size_t)sprintf(comp + k, i % 7 ? " " : "\n\n");
        cs[i] = k;
        if (i == 130) k += (size_t)sprintf(comp + k, "ZZZZ");
        else if (i == 145) {
            char w[16];
            strcpy(w, d->words[i]);
            w[1] = 'Z'; /* an edit inside the word */
            k += (size_t)sprintf(comp + k, "%s", w);
        } else
            k += (size_t)sprintf(comp + k, "%s", d->words[i]);
        ce[i] = k;
    }
    k += (size_t)sprintf(comp + k, " QQQthree");
    char line[9000];
    snprintf(line, sizeof line, "{\"prompt_id\": \"nope\", \"completion\": \"");
    size_t L = strlen(line);
    for (size_t i = 0; i < k; i++) { /* JSON-escape newlines */
        if (comp[i] == '\n') L += (size_t)sprintf(line + L, "\\n");
        else line[L++] = comp[i];
    }
    L += (size_t)sprintf(line + L, "\"}\n");
    cs_text_audit_stats st;
    int64_t fid = audit_one(&f, line, &st);
    REQUIRE(fid > 0);
    span_row r[8];
    int n = get_spans(f.s, fid, r, 8);
    CHECKF(n == 3, "%d spans", n);
    int64_t exp[3][2] = {{100, 129}, {131, 144}, {146, 159}}; /* first and last word */
    for (int i = 0; i < n && i < 3; i++) {
        int a = (int)exp[i][0], b = (int)exp[i][1];
        CHECKF(r[i].comp_start == (int64_t)cs[a] && r[i].comp_end == (int64_t)ce[b], "span %d comp [%lld,%lld) want [%zu,%zu)",
               i, (long long)r[i].comp_start, (long long)r[i].comp_end, cs[a], ce[b]);
        CHECKF(r[i].doc_id == f.ids[1], "span %d doc %lld want %lld", i, (long long)r[i].doc_id, (long long)f.ids[1]);
        CHECKF(r[i].doc_start == (int64_t)d->off[a] && r[i].doc_end == (int64_t)d->end[b],
               "span %d doc [%lld,%lld) want [%zu,%zu)", i, (long long)r[i].doc_start, (long long)r[i].doc_end,
               d->off[a], d->end[b]);
        CHECK(r[i].words == b - a + 1);
    }
    /* the longest span is the first, 30 words; unknown prompt is recorded */
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT longest_words FROM text_findings WHERE id = %lld", (long long)fid);
    CHECK(query_int(f.s, sql) == 30);
    /* longest_doc_* locate the longest character span (issue 14: it was the
     * longest word span's start): the same raw bytes in both texts */
    snprintf(sql, sizeof sql, "SELECT longest_doc_id FROM text_findings WHERE id = %lld", (long long)fid);
    CHECK(query_int(f.s, sql) == f.ids[1]);
    int64_t lv[5];
    const char *col[5] = {"longest_doc_start", "longest_doc_end", "longest_comp_start", "longest_comp_end", "longest_chars"};
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "SELECT %s FROM text_findings WHERE id = %lld", col[i], (long long)fid);
        lv[i] = query_int(f.s, sql);
    }
    CHECK(lv[1] - lv[0] == lv[3] - lv[2] && lv[4] == lv[3] - lv[2] && lv[4] > 0 &&
          !memcmp(d->text + lv[0], comp + lv[2], (size_t)lv[4]));
    snprintf(sql, sizeof sql, "SELECT status = 'unknown_prompt' AND exact_prefix_words IS NULL FROM text_findings WHERE id = %lld",
             (long long)fid);
    CHECK(query_int(f.s, sql) == 1);
    close_fixture(&f);
}

static void test_spans_never_cross_documents(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 2, 50, 0) == 0);
    /* the last 12 words of doc 0 then the first 12 of doc 1: adjacent in the shard */
    char q[2048];
    size_t k = 0;
    for (int i = 38; i < 50; i++) k += (size_t)sprintf(q + k, "%s ", f.docs[0].words[i]);
    for (int i = 0; i < 12; i++) k += (size_t)sprintf(q + k, "%s%s", i ? " " : "", f.docs[1].words[i]);
    cs_text_span longest, *spans;
    size_t n;
    cs_err e = {0};
    REQUIRE(cs_text_spans(&f.c, q, k, 5, &longest, &spans, &n, &e) == 0);
    CHECK(n == 2);
    CHECK(longest.words == 12);
    if (n == 2) {
        CHECK(spans[0].doc_id == f.ids[0] && spans[0].words == 12);
        /* raw offsets in the document (it starts with whitespace) */
        CHECK(spans[1].doc_id == f.ids[1] && spans[1].words == 12 && spans[1].doc_start == f.docs[1].off[0] &&
              spans[1].doc_end == f.docs[1].end[11]);
        CHECK(spans[0].doc_start == f.docs[0].off[38] && spans[0].doc_end == f.docs[0].end[49]);
    }
    free(spans);
    close_fixture(&f);
}

/* ---- metrics ---- */

static void test_metrics_hand_computed(void) {
    cs_err e = {0};
    const char *a = "the cat sat on the mat", *b = "the cat lay on the mat";
    CHECK(cs_text_exact_prefix(a, strlen(a), b, strlen(b)) == 2);
    CHECK(cs_text_exact_prefix(a, strlen(a), a, strlen(a)) == 6);
    double f1;
    REQUIRE(cs_text_rouge_l(a, strlen(a), b, strlen(b), &f1, &e) == 0);
    CHECK(fabs(f1 - 5.0 / 6.0) < 1e-12); /* LCS "the cat on the mat": P = R = 5/6 */
    const char *c = "a b c d", *r = "a x c";   /* LCS 2: P = 2/4, R = 2/3, F1 = 4/7 */
    REQUIRE(cs_text_rouge_l(c, strlen(c), r, strlen(r), &f1, &e) == 0);
    CHECK(fabs(f1 - 4.0 / 7.0) < 1e-12);
    REQUIRE(cs_text_rouge_l("", 0, r, strlen(r), &f1, &e) == 0);
    CHECK(f1 == 0);
    double s;
    REQUIRE(cs_text_edit_sim("kitten", 6, "sitting", 7, &s, &e) == 0);
    CHECK(fabs(s - (1 - 3.0 / 7.0)) < 1e-12);
    REQUIRE(cs_text_edit_sim("caf\xc3\xa9", 5, "cafe", 4, &s, &e) == 0); /* code points: 1 of 4 */
    CHECK(fabs(s - 0.75) < 1e-12);
    REQUIRE(cs_text_edit_sim("", 0, "", 0, &s, &e) == 0);
    CHECK(s == 1);
    CHECK(cs_text_prefix_bytes("aa bb cc", 8, 2) == 5);
    CHECK(cs_text_prefix_bytes("aa bb cc", 8, 5) == 8);
}

/* ---- shards ---- */

/* A run stopped by an error half way keeps the shards it committed (whole,
 * no temporary file left); running it again indexes the rest and finds
 * every document. Two threads: shards are built two at a time. */
static void test_index_interrupted_then_resumed(void) {
    char *dir = fresh_dir("resume"), *docs = path_in(dir, "docs"), *db = path_in(dir, "t.db");
    mkdir(docs, 0755);
    doc d[6];
    for (int i = 0; i < 6; i++) {
        d[i] = make_doc(300); /* ~2 KB: one shard each at 2500 bytes */
        char name[32];
        snprintf(name, sizeof name, "d%d.txt", i);
        char *p = path_in(docs, name);
        write_file(p, d[i].text, d[i].len);
        free(p);
    }
    char *bad = path_in(docs, "d3x.txt"); /* read after d3: stops the run */
    write_file(bad, "caf\xe9", 4);
    int saved = cs_threads();
    cs_set_threads(2);
    cs_store *s;
    cs_err e = {0};
    cs_text_index_stats st;
    cs_text_index_opts o = {.shard_bytes = 2500};
    const char *paths[] = {docs};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    CHECK(cs_text_index(s, paths, 1, &o, &st, &e) != 0 && strstr(e.msg, "d3x.txt: not UTF-8"));
    CHECK(query_int(s, "SELECT count(*) FROM text_shards") == 2); /* d0, d1: the first batch */
    CHECK(query_int(s, "SELECT count(*) FROM text_docs WHERE status = 'ok'") == 2);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c text-build", dir);
    FILE *ls = popen(cmd, "r");
    int left = -1;
    if (ls) {
        if (fscanf(ls, "%d", &left) != 1) left = -1;
        pclose(ls);
    }
    CHECKF(left == 0, "%d temporary files left", left);
    cs_text_corpus c;
    REQUIRE(cs_text_corpus_open(&c, s, &e) == 0); /* whole shards only */
    CHECK(c.n_shards == 2);
    cs_text_corpus_close(&c);
    unlink(bad);
    REQUIRE(cs_text_index(s, paths, 1, &o, &st, &e) == 0);
    CHECK(st.docs_skipped == 2 && st.docs_ok == 4 && st.shards == 4);
    /* the build's CPU accounting: two threads' makespan lies between half the jobs' sum and the sum */
    CHECKF(st.jobs_cpu_s > 0 && st.serial_cpu_s >= 0 && st.jobs_2core_s <= st.jobs_cpu_s + 1e-12 &&
               2 * st.jobs_2core_s >= st.jobs_cpu_s - 1e-12,
           "serial %g, jobs %g, on 2 threads %g", st.serial_cpu_s, st.jobs_cpu_s, st.jobs_2core_s);
    REQUIRE(cs_text_corpus_open(&c, s, &e) == 0);
    CHECK(c.n_shards == 6);
    for (int i = 0; i < 6; i++) { /* 30 words of each document, found in it */
        char q[2048];
        size_t k = 0;
        for (int w = 100; w < 130; w++) k += (size_t)sprintf(q + k, "%s%s", w > 100 ? " " : "", d[i].words[w]);
        cs_text_span longest, *spans;
        size_t n;
        REQUIRE(cs_text_spans(&c, q, k, 10, &longest, &spans, &n, &e) == 0);
        char sql[600];
        snprintf(sql, sizeof sql, "SELECT id FROM text_docs WHERE source = '%s/d%d.txt'", docs, i);
        CHECKF(longest.words == 30 && longest.doc_id == query_int(s, sql), "doc %d: %llu words", i,
               (unsigned long long)longest.words);
        free(spans);
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    cs_set_threads(saved);
    for (int i = 0; i < 6; i++) free_doc(&d[i]);
    free(bad), free(docs), free(db), free(dir);
}


/* The input is split evenly: 16 documents of 1,051 raw bytes (text and
 * separator) at an 8,000-byte limit need 3 shards; filling each to the
 * limit gave 7 + 7 + 2 documents (a last, tiny shard that every query
 * searches), the even split gives 6 + 6 + 4, each under the limit, and
 * every document is still found in its shard. */
static void test_shards_split_evenly(void) {
    char *dir = fresh_dir("even"), *docs = path_in(dir, "docs"), *db = path_in(dir, "t.db");
    mkdir(docs, 0755);
    char text[1050];
    for (int i = 0; i < 16; i++) {
        for (int k = 0; k < 1050; k++) text[k] = k % 7 == 6 ? ' ' : (char)('a' + (i * 31 + k * 7 + k / 7) % 26);
        char name[32];
        snprintf(name, sizeof name, "d%02d.txt", i);
        char *p = path_in(docs, name);
        write_file(p, text, sizeof text);
        free(p);
    }
    cs_store *s;
    cs_err e = {0};
    cs_text_index_stats st;
    cs_text_index_opts o = {.shard_bytes = 8000};
    const char *paths[] = {docs};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    REQUIRE(cs_text_index(s, paths, 1, &o, &st, &e) == 0);
    CHECK(st.docs_ok == 16 && st.shards == 3);
    CHECK(query_int(s, "SELECT min(n_docs) FROM text_shards") == 4);
    CHECK(query_int(s, "SELECT max(n_docs) FROM text_shards") == 6);
    cs_text_corpus c;
    REQUIRE(cs_text_corpus_open(&c, s, &e) == 0);
    for (int i = 0; i < c.n_shards; i++) CHECK(c.shards[i].raw.n <= 8000);
    for (int i = 0; i < 16; i++) { /* the whole document, found in its own shard */
        for (int k = 0; k < 1050; k++) text[k] = k % 7 == 6 ? ' ' : (char)('a' + (i * 31 + k * 7 + k / 7) % 26);
        cs_text_chars ch;
        REQUIRE(cs_text_longest_chars(&c, text, sizeof text, -1, 0, &ch, &e) == 0);
        CHECKF(ch.chars == 1050 && ch.n_docs == 1 && ch.source.shard == (i < 6 ? 0 : i < 12 ? 1 : 2),
               "doc %d: %llu chars in shard %d", i, (unsigned long long)ch.chars, ch.source.shard);
        cs_text_chars_free(&ch);
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    free(docs), free(db), free(dir);
}

static void test_shards_add_and_search_both(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 2, 300, 2500) == 0); /* ~2 KB per doc: one shard each */
    CHECK(f.c.n_shards == 2);
    /* add a third document later: a new shard, the old ones untouched */
    doc d3 = make_doc(300);
    char *p = path_in(f.dir, "late.txt");
    write_file(p, d3.text, d3.len);
    cs_err e = {0};
    cs_text_index_stats st;
    const char *paths[] = {p};
    cs_text_index_opts o = {.shard_bytes = 2500};
    REQUIRE(cs_text_index(f.s, paths, 1, &o, &st, &e) == 0);
    CHECK(st.docs_ok == 1 && st.shards == 1);
    REQUIRE(cs_text_index(f.s, paths, 1, &o, &st, &e) == 0); /* again: skipped */
    CHECK(st.docs_skipped == 1 && st.shards == 0);
    cs_text_corpus_close(&f.c);
    REQUIRE(cs_text_corpus_open(&f.c, f.s, &e) == 0);
    CHECK(f.c.n_shards == 3);
    /* a completion quoting the first and the last shard */
    char q[4096];
    size_t k = 0;
    for (int i = 10; i < 30; i++) k += (size_t)sprintf(q + k, "%s ", f.docs[0].words[i]);
    k += (size_t)sprintf(q + k, "SEPARATOR ");
    for (int i = 200; i < 225; i++) k += (size_t)sprintf(q + k, "%s%s", i > 200 ? " " : "", d3.words[i]);
    cs_text_span longest, *spans;
    size_t n;
    REQUIRE(cs_text_spans(&f.c, q, k, 10, &longest, &spans, &n, &e) == 0);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(spans[0].shard == 0 && spans[0].words == 20 && spans[0].doc_id == f.ids[0]);
        CHECK(spans[1].shard == 2 && spans[1].words == 25);
    }
    CHECK(longest.words == 25);
    free(spans);
    free(p);
    free_doc(&d3);
    close_fixture(&f);
}

/* ---- the n-gram model memorises ---- */

static void test_ngram_reproduces_training_text(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 3, 200, 0) == 0);
    for (int di = 0; di < 3; di++) {
        char prompt[2048], want[4096];
        size_t k = 0, w = 0;
        for (int i = 50; i < 70; i++) k += (size_t)sprintf(prompt + k, "%s%s", i > 50 ? " " : "", f.docs[di].words[i]);
        for (int i = 70; i < 120; i++) w += (size_t)sprintf(want + w, "%s%s", i > 70 ? " " : "", f.docs[di].words[i]);
        char *out = NULL;
        cs_err e = {0};
        cs_ngram_opts o = {.order = 4, .max_words = 50};
        REQUIRE(cs_ngram_generate(&f.c, prompt, k, &o, &out, &e) == 0);
        CHECKF(!strcmp(out, want), "doc %d: got '%.60s...'", di, out);
        free(out);
        o.sample = 1; /* unique contexts: sampling must agree */
        o.seed = 7;
        REQUIRE(cs_ngram_generate(&f.c, prompt, k, &o, &out, &e) == 0);
        CHECK(!strcmp(out, want));
        free(out);
    }
    /* the end of a document: generation stops there (no next word) */
    char prompt[256];
    size_t k = 0;
    for (int i = 195; i < 200; i++) k += (size_t)sprintf(prompt + k, "%s ", f.docs[0].words[i]);
    char *out;
    cs_err e = {0};
    cs_ngram_opts o = {.order = 8, .max_words = 10};
    REQUIRE(cs_ngram_generate(&f.c, prompt, k, &o, &out, &e) == 0);
    CHECK(out[0] == 0);
    free(out);
    close_fixture(&f);
}

/* ---- prompts, audit and verdicts ---- */

static void test_prompts_and_verdicts(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 2, 300, 0) == 0);
    char *pp = path_in(f.dir, "p.jsonl");
    FILE *out = fopen(pp, "w");
    REQUIRE(out);
    cs_text_prompt_opts po = {.prefix_words = 20, .cont_words = 50, .per_doc = 3};
    int64_t n;
    cs_err e = {0};
    REQUIRE(cs_text_prompts(f.s, &f.c, &po, out, &n, &e) == 0);
    fclose(out);
    CHECK(n == 6);
    /* the windows: words 0, 115, 230 of each document */
    char sql[1000];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM text_prompts WHERE doc_id = %lld AND start_word IN (0, 115, 230)",
             (long long)f.ids[0]);
    CHECK(query_int(f.s, sql) == 3);
    snprintf(sql, sizeof sql, "SELECT cont_doc_start FROM text_prompts WHERE key = 'd%lld.w115.p20.c50'",
             (long long)f.ids[1]);
    CHECK(query_int(f.s, sql) == (int64_t)f.docs[1].off[135]);
    doc *d = &f.docs[1];
    char key[64];
    snprintf(key, sizeof key, "d%lld.w115.p20.c50", (long long)f.ids[1]);
    /* verbatim: the true continuation; near: 5 of 50 words replaced; novel */
    char c1[4096], c2[4096];
    size_t k1 = 0, k2 = 0;
    for (int i = 135; i < 185; i++) {
        k1 += (size_t)sprintf(c1 + k1, "%s%s", i > 135 ? " " : "", d->words[i]);
        k2 += (size_t)sprintf(c2 + k2, "%s%s", i > 135 ? " " : "", i % 10 == 0 ? "XXXX" : d->words[i]);
    }
    char lines[12000];
    snprintf(lines, sizeof lines,
             "{\"prompt_id\":\"%s\",\"completion\":\"%s\"}\n"
             "{\"prompt_id\":\"%s\",\"completion\":\"%s\"}\n"
             "{\"prompt_id\":\"%s\",\"completion\":\"one two three four five\"}\n",
             key, c1, key, c2, key);
    cs_text_audit_stats st;
    int64_t fid = audit_one(&f, lines, &st);
    REQUIRE(fid > 0);
    CHECK(st.completions == 3 && st.verbatim == 1 && st.near_verbatim == 1 && st.novel == 1);
    /* edit_sim is on the raw texts (issue 14): the document's continuation
     * keeps its own whitespace, so c1 is 1.0 only in words; the reference is
     * Levenshtein over bytes (ASCII here) */
    const char *rc = d->text + d->off[135];
    size_t rn = d->end[184] - d->off[135];
    size_t *row = malloc((rn + 1) * sizeof *row);
    for (size_t j = 0; j <= rn; j++) row[j] = j;
    for (size_t i = 1; i <= k1; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= rn; j++) {
            size_t up = row[j], v = diag + (c1[i - 1] != rc[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    double edit1 = 1.0 - (double)row[rn] / (double)(k1 > rn ? k1 : rn);
    free(row);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM text_findings f JOIN text_completions c ON c.id = f.completion_id WHERE "
             "f.audit_id = %lld AND ((c.line = 1 AND f.verdict = 'verbatim' AND f.exact_prefix_words = 50 AND "
             "f.rouge_l_f1 = 1.0 AND abs(f.edit_sim - %.17g) < 1e-12) OR (c.line = 2 AND f.verdict = 'near-verbatim' AND "
             "f.exact_prefix_words = 5 AND abs(f.rouge_l_f1 - 0.9) < 1e-9) OR (c.line = 3 AND f.verdict = 'novel' "
             "AND f.exact_prefix_words = 0 AND f.longest_words = 0))",
             (long long)st.audit_id, edit1);
    CHECK(query_int(f.s, sql) == 3);
    /* audit by prompt text instead of id */
    char prompt[2048];
    size_t k = 0;
    for (int i = 115; i < 135; i++) k += (size_t)sprintf(prompt + k, "%s%s", i > 115 ? "  " : "", d->words[i]);
    snprintf(lines, sizeof lines, "{\"prompt\":\"%s\",\"completion\":\"%s\"}\n", prompt, c1);
    fid = audit_one(&f, lines, &st);
    CHECK(st.verbatim == 1 && st.unknown_prompt == 0);
    free(pp);
    close_fixture(&f);
}

/* ---- bad input ---- */

/* Empty documents and broken JSONL lines are recorded and the run goes on;
 * invalid UTF-8 and NUL bytes are errors naming the file (issue 14: they
 * were replaced / read as spaces and indexed with a warning). */
static void test_bad_documents_recorded(void) {
    char *dir = fresh_dir("bad");
    char *docs = path_in(dir, "docs");
    mkdir(docs, 0755);
    char *p;
    write_file(p = path_in(docs, "b-empty.txt"), " \n\t ", 4), free(p);
    const char *jl = "{\"id\": \"j1\", \"text\": \"first json document\"}\n"
                     "{\"id\": \"j2\", \"text\": \"broken\n"
                     "{\"id\": \"j3\", \"text\": \"third line survives the broken one\"}\n"
                     "{\"id\": 5}\n";
    write_file(p = path_in(docs, "d.jsonl"), jl, strlen(jl)), free(p);
    char *db = path_in(dir, "t.db");
    cs_store *s;
    cs_err e = {0};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    notes[0] = 0;
    cs_text_index_opts o = {.note = collect};
    cs_text_index_stats st;
    const char *paths[] = {docs};
    REQUIRE(cs_text_index(s, paths, 1, &o, &st, &e) == 0);
    CHECK(st.docs_ok == 2 && st.docs_empty == 1 && st.docs_error == 2);
    CHECK(strstr(notes, "b-empty.txt: empty document") != NULL);
    CHECK(strstr(notes, "d.jsonl:2: not a JSON object") != NULL); /* the line number */
    CHECK(strstr(notes, "d.jsonl:4: no \"text\" string") != NULL);
    CHECK(query_int(s, "SELECT count(*) FROM text_docs WHERE status = 'empty' AND source LIKE '%b-empty.txt'") == 1);
    CHECK(query_int(s, "SELECT count(*) FROM text_docs WHERE status = 'error' AND source LIKE '%d.jsonl:2'") == 1);
    CHECK(query_int(s, "SELECT count(*) FROM text_docs WHERE status = 'ok' AND name = 'j3'") == 1);
    /* the text after each bad spot is searchable */
    cs_text_corpus c;
    REQUIRE(cs_text_corpus_open(&c, s, &e) == 0);
    cs_text_span longest, *spans;
    size_t n;
    const char *q = "third line survives the broken one";
    REQUIRE(cs_text_spans(&c, q, strlen(q), 3, &longest, &spans, &n, &e) == 0);
    CHECK(n == 1 && longest.words == 6);
    free(spans);
    cs_text_corpus_close(&c);
    /* not text: an error naming the file; nothing of it indexed */
    write_file(p = path_in(dir, "a-invalid.txt"), "good words \xff\xfe here and more", 28);
    const char *bad1[] = {p};
    CHECK(cs_text_index(s, bad1, 1, &o, &st, &e) != 0 && strstr(e.msg, "a-invalid.txt: not UTF-8 text") != NULL);
    free(p);
    write_file(p = path_in(dir, "c-nul.md"), "nul\0bytes\0inside text", 21);
    const char *bad2[] = {p};
    CHECK(cs_text_index(s, bad2, 1, &o, &st, &e) != 0 && strstr(e.msg, "c-nul.md: not UTF-8 text (a NUL byte") != NULL);
    free(p);
    CHECK(query_int(s, "SELECT count(*) FROM text_docs WHERE source LIKE '%a-invalid.txt' OR source LIKE '%c-nul.md'") == 0);
    cs_store_close(s);
    free(db), free(docs), free(dir);
}

static void test_bad_completions_recorded(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 1, 100, 0) == 0);
    notes[0] = 0;
    const char *lines = "{\"prompt_id\": \"no-such-prompt\", \"completion\": \"some novel words\"}\n"
                        "{\"prompt_id\": \"no-such-prompt\", \"completion\": \"\"}\n"
                        "not json at all\n"
                        "{\"prompt_id\": \"x\"}\n";
    cs_text_audit_stats st;
    int64_t fid = audit_one(&f, lines, &st);
    REQUIRE(fid > 0);
    CHECK(st.completions == 2 && st.unknown_prompt == 2 && st.empty == 1 && st.bad_lines == 2);
    CHECK(strstr(notes, "c.jsonl:1: unknown prompt id no-such-prompt") != NULL);
    CHECK(strstr(notes, "c.jsonl:2: empty completion") != NULL);
    CHECK(strstr(notes, "c.jsonl:3: not a JSON object") != NULL);
    CHECK(strstr(notes, "c.jsonl:4: no \"completion\" string") != NULL);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT group_concat(status || '/' || verdict) FROM (SELECT * FROM text_findings WHERE audit_id = %lld "
             "ORDER BY id)",
             (long long)st.audit_id);
    sqlite3_stmt *q;
    REQUIRE(sqlite3_prepare_v2(cs_store_db(f.s), sql, -1, &q, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    CHECK(!strcmp((const char *)sqlite3_column_text(q, 0), "unknown_prompt/novel,empty_completion/novel"));
    sqlite3_finalize(q);
    close_fixture(&f);
}

static void test_bad_huge_completion_is_capped(void) {
    fixture f;
    REQUIRE(open_fixture(&f, 1, 16000, 0) == 0); /* ~110 KB */
    doc *d = &f.docs[0];
    size_t cap = d->len + 64, k = 0;
    char *line = malloc(cap + 64);
    REQUIRE(line);
    k += (size_t)sprintf(line, "{\"prompt\": \"x\", \"completion\": \"");
    size_t c0 = k, words64k = 0;
    for (int i = 0; i < d->nw; i++) {
        if (i) line[k++] = ' ';
        size_t l = strlen(d->words[i]);
        memcpy(line + k, d->words[i], l);
        k += l;
        if (k - c0 <= CS_TEXT_MAX_SPAN_QUERY) words64k = (size_t)i + 1;
    }
    k += (size_t)sprintf(line + k, "\"}\n");
    notes[0] = 0;
    cs_text_audit_stats st;
    int64_t fid = audit_one(&f, line, &st);
    REQUIRE(fid > 0);
    CHECK(strstr(notes, "spans searched in the first") != NULL);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT longest_words FROM text_findings WHERE id = %lld", (long long)fid);
    CHECKF(query_int(f.s, sql) == (int64_t)words64k, "longest %lld, want %zu", (long long)query_int(f.s, sql), words64k);
    free(line);
    close_fixture(&f);
}

/* Documents NFC changes (decomposed accents) are kept as their normal form
 * in the side text; the others are read through the raw text, whitespace
 * runs (U+00A0, U+3000, tabs, blank lines) as one space. Spans, traces and
 * whitespace-tolerant prompt ends give raw offsets in both kinds. */
static void test_side_text_and_raw_rows(void) {
    static const char *const text[3] = {
        "\n Le cafe\xcc\x81 noir et le the\xcc\x81 vert sont servis ici chaque matin tre\xcc\x80s to\xcc\x82t.\n",
        "Le\xc2\xa0" "chat\xe3\x80\x80" "dort  sur le tapis\tbleu\n\npendant que la pluie tombe doucement  \n",
        "un deux trois quatre cinq six sept huit neuf dix"};
    char *dir = fresh_dir("side"), *docs = path_in(dir, "docs"), *db = path_in(dir, "t.db");
    mkdir(docs, 0755);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d.txt", i);
        char *p = path_in(docs, name);
        write_file(p, text[i], strlen(text[i]));
        free(p);
    }
    cs_store *s;
    cs_text_corpus c;
    cs_err e = {0};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    cs_text_index_opts o = {0};
    const char *paths[] = {docs};
    REQUIRE(cs_text_index(s, paths, 1, &o, NULL, &e) == 0);
    REQUIRE(cs_text_corpus_open(&c, s, &e) == 0);
    REQUIRE(c.n_shards == 1 && c.shards[0].n_docs == 3);
    const cs_text_shard *sh = &c.shards[0];
    /* only d0 in the side text, in NFC */
    CHECK(sh->n_side == 1 && sh->side_docs[0] == 0);
    CHECK(sh->sa.n > 0 && memmem(sh->sa.text, sh->sa.n, "caf\xc3\xa9 noir", 10) && !memmem(sh->sa.text, sh->sa.n, "chat", 4));
    struct {
        const char *q, *first, *last;
        int doc;
        uint64_t words;
    } cases[] = {
        {"caf\xc3\xa9 noir et le th\xc3\xa9 vert sont servis", "cafe\xcc\x81", "servis", 0, 8},
        {"chat dort sur le tapis bleu pendant", "chat", "pendant", 1, 7},
        {"tombe doucement", "tombe", "doucement", 1, 2},
        {"quatre cinq six", "quatre", "six", 2, 3},
    };
    for (int k = 0; k < 4; k++) {
        const char *t = text[cases[k].doc];
        uint64_t want_s = (uint64_t)(strstr(t, cases[k].first) - t);
        uint64_t want_e = (uint64_t)(strstr(t, cases[k].last) - t + (ptrdiff_t)strlen(cases[k].last));
        cs_text_norm n;
        REQUIRE(cs_text_normalize(&n, cases[k].q, strlen(cases[k].q), &e) == 0);
        cs_text_span lg, *spans;
        size_t ns;
        REQUIRE(cs_text_spans(&c, n.text, n.len, 1, &lg, &spans, &ns, &e) == 0);
        CHECKF(lg.words == cases[k].words && lg.doc_id == sh->doc_id[cases[k].doc] && lg.doc_start == want_s &&
                   lg.doc_end == want_e,
               "case %d: %llu words in doc %lld [%llu, %llu), want %llu in %lld [%llu, %llu)", k,
               (unsigned long long)lg.words, (long long)lg.doc_id, (unsigned long long)lg.doc_start,
               (unsigned long long)lg.doc_end, (unsigned long long)cases[k].words, (long long)sh->doc_id[cases[k].doc],
               (unsigned long long)want_s, (unsigned long long)want_e);
        free(spans);
        cs_text_norm_free(&n);
        /* the same through a trace of the text between two novel words */
        char tq[300];
        snprintf(tq, sizeof tq, "zzq %s qzz", cases[k].q);
        cs_text_traced *tr;
        size_t nt;
        REQUIRE(cs_text_trace(s, &c, tq, strlen(tq), 2, &tr, &nt, &e) == 0);
        CHECKF(nt == 1 && tr[0].n_occ == 1 && tr[0].occ[0].doc == (uint64_t)cases[k].doc &&
                   tr[0].occ[0].doc_off == want_s && tr[0].occ[0].comp_end == want_e,
               "case %d: trace", k);
        cs_text_trace_free(tr, nt);
        /* the prompt's end, whitespace-tolerant (the raw text differs) or exact */
        cs_text_loc loc;
        REQUIRE(cs_text_locate(&c, s, cases[k].q, strlen(cases[k].q), -1, 0, &loc, &e) == 0);
        CHECKF(loc.how == (k >= 2 ? 1 : 2) && loc.doc == (uint64_t)cases[k].doc && loc.end == want_e,
               "case %d: located how %d doc %llu end %llu", k, loc.how, (unsigned long long)loc.doc,
               (unsigned long long)loc.end);
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    free(dir), free(docs), free(db);
}

/* A store with no text indexed opens as an empty corpus (the CLI says "no
 * text indexed yet"); a library caller that audits against it gets an
 * error naming the store, never a clean bill of health, and a span search
 * finds nothing (it once indexed shard 0 of no shards: UBSan's "zero
 * offset to null pointer", found by fuzz_jsonl). */
static void test_empty_corpus_is_an_error(void) {
    char db[4200], in[4200];
    snprintf(db, sizeof db, "%s/empty.db", tmp);
    snprintf(in, sizeof in, "%s/empty-c.jsonl", tmp);
    FILE *f = fopen(in, "w");
    REQUIRE(f != NULL);
    fputs("{\"id\": \"d1\", \"completion\": \"the quick brown fox\"}\n", f);
    fclose(f);
    cs_store *s;
    cs_err err = {0};
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    cs_text_corpus c = {0};
    REQUIRE(cs_text_corpus_open(&c, s, &err) == 0);
    CHECK(c.n_shards == 0);
    cs_text_span longest, *spans = NULL;
    size_t ns = 99;
    CHECK(cs_text_spans(&c, "the quick brown fox", 19, 1, &longest, &spans, &ns, &err) == 0);
    CHECK(ns == 0 && longest.words == 0 && longest.shard == -1);
    free(spans);
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    cs_text_audit_stats st;
    CHECK(cs_text_audit(s, &c, in, &o, NULL, &st, &err) != 0);
    CHECK(strstr(err.msg, "empty.db") != NULL && strstr(err.msg, "no text indexed") != NULL);
    err = (cs_err){0};
    CHECK(cs_text_audit_text(s, &c, "x", "the quick brown fox", 19, &o, &st, &err) != 0);
    CHECK(strstr(err.msg, "no text indexed") != NULL);
    cs_text_corpus_close(&c);
    cs_store_close(s);
}

int main(void) {
    tmp = t_tmpdir("text");
    if (!tmp) return 1;
    RUN(test_norm_whitespace_and_map);
    RUN(test_norm_nfc);
    RUN(test_bad_invalid_utf8_replaced_and_counted);
    RUN(test_bad_nul_bytes_are_whitespace);
    RUN(test_norm_random_bytes_invariants);
    RUN(test_sa_matches_brute_force);
    RUN(test_side_text_and_raw_rows);
    RUN(test_spans_exact_on_known_construction);
    RUN(test_spans_never_cross_documents);
    RUN(test_metrics_hand_computed);
    RUN(test_shards_split_evenly);
    RUN(test_shards_add_and_search_both);
    RUN(test_index_interrupted_then_resumed);
    RUN(test_ngram_reproduces_training_text);
    RUN(test_prompts_and_verdicts);
    RUN(test_bad_documents_recorded);
    RUN(test_bad_completions_recorded);
    RUN(test_bad_huge_completion_is_capped);
    RUN(test_empty_corpus_is_an_error);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", tmp);
    free(tmp);
    return T_DONE();
}
