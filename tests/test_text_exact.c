/* The exact figures of the text audit (issue 14) on a corpus built by
 * construction — copied spans at known offsets, edits at known places,
 * whitespace variants (U+00A0, U+3000, tabs, newlines), CJK words, words
 * that are prefixes of others ("a"/"an"), documents sharing a phrase, a .gz
 * file and JSONL documents — every field of every result checked against a
 * brute-force reference written here (code points and White_Space decoded
 * by this file, not by the library). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "analyze/text_trace.h"
#include "core/parallel.h"
#include "t.h"

static char *tmp;

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* ---- the reference: UTF-8, White_Space, words ---- */

static size_t dec(const uint8_t *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    size_t l = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    if (l > n) l = n;
    uint32_t c = s[0] & (0x3F >> (l - 1));
    for (size_t i = 1; i < l; i++) c = c << 6 | (s[i] & 0x3F);
    *cp = c;
    return l;
}

static int ref_ws(uint32_t c) {
    static const uint32_t ws[] = {9,      10,     11,     12,     13,     32,     0x85,   0xA0,   0x1680,
                                  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
                                  0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        if (c == ws[i]) return 1;
    return 0;
}

typedef struct {
    size_t a, b;
} rng_t;

/* words of s: byte ranges; returns the count (w may be NULL) */
static size_t ref_words(const char *s, size_t n, rng_t *w, size_t max) {
    size_t k = 0, i = 0;
    const uint8_t *u = (const uint8_t *)s;
    while (i < n) {
        uint32_t c;
        size_t l = dec(u + i, n - i, &c);
        if (ref_ws(c)) {
            i += l;
            continue;
        }
        size_t a = i;
        while (i < n) {
            l = dec(u + i, n - i, &c);
            if (ref_ws(c)) break;
            i += l;
        }
        if (w && k < max) w[k] = (rng_t){a, i};
        k++;
    }
    return k;
}

static int weq(const char *x, rng_t a, const char *y, rng_t b) {
    return a.b - a.a == b.b - b.a && !memcmp(x + a.a, y + b.a, a.b - a.a);
}

static size_t ncp(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((uint8_t)s[i] & 0xC0) != 0x80;
    return k;
}

/* ---- the corpus ---- */

#define NDOC 6
#define DOCW 260
typedef struct {
    char *text;
    size_t len;
    rng_t w[DOCW + 40];
    size_t nw;
    char name[4500];
} rdoc;

static rdoc docs[NDOC];

static const char *SEPS[] = {" ", "  ", "\n", "\t", "\xC2\xA0", "\xE3\x80\x80", " \n"};
static const char *TRAPS[] = {"a", "an", "lines", "lines,", "the", "then", "caf\xC3\xA9", "na\xC3\xAFve"};

static size_t put_word(char *o) {
    int kind = (int)(rnd() % 10);
    if (kind < 2) return (size_t)sprintf(o, "%s", TRAPS[rnd() % 8]);
    if (kind < 4) { /* CJK: 1..3 ideographs */
        size_t k = 0, n = 1 + rnd() % 3;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = 0x4E00 + (uint32_t)(rnd() % 0x200);
            o[k++] = (char)(0xE0 | c >> 12), o[k++] = (char)(0x80 | (c >> 6 & 0x3F)), o[k++] = (char)(0x80 | (c & 0x3F));
        }
        return k;
    }
    size_t n = 3 + rnd() % 6;
    for (size_t i = 0; i < n; i++) o[i] = (char)('a' + rnd() % 26);
    return n;
}

static void build_doc(rdoc *d, int nw) {
    d->text = malloc((size_t)nw * 24 + 64);
    size_t k = 0;
    for (int i = 0; i < nw; i++) {
        if (i) k += (size_t)sprintf(d->text + k, "%s", SEPS[rnd() % 7]);
        k += put_word(d->text + k);
    }
    d->len = k;
    d->nw = ref_words(d->text, k, d->w, DOCW + 40);
}

/* doc 4 gets doc 1's raw words [50, 70) (separators included) after its word 100 */
static void share_phrase(void) {
    rdoc *a = &docs[1], *b = &docs[4];
    size_t p0 = a->w[50].a, p1 = a->w[69].b, at = b->w[100].b;
    char *t = malloc(b->len + (p1 - p0) + 8);
    memcpy(t, b->text, at);
    size_t k = at;
    t[k++] = ' ';
    memcpy(t + k, a->text + p0, p1 - p0);
    k += p1 - p0;
    memcpy(t + k, b->text + at, b->len - at);
    k += b->len - at;
    free(b->text);
    b->text = t;
    b->len = k;
    b->nw = ref_words(t, k, b->w, DOCW + 40);
}

static void write_bytes(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(s, 1, n, f);
    fclose(f);
}

/* JSON string body of s[0..n) (caller's buffer is large enough) */
static size_t json_esc(char *o, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\n') o[k++] = '\\', o[k++] = 'n';
        else if (c == '\t') o[k++] = '\\', o[k++] = 't';
        else if (c == '"' || c == '\\') o[k++] = '\\', o[k++] = c;
        else o[k++] = c;
    }
    o[k] = 0;
    return k;
}

typedef struct {
    char *dir, *db;
    cs_store *s;
    cs_text_corpus c;
} corpus;

static int seed_no; /* the corpus of each seed in its own folder */

static int make_corpus(corpus *C) {
    memset(C, 0, sizeof *C);
    C->dir = malloc(4200);
    snprintf(C->dir, 4200, "%s/exact%d", tmp, seed_no);
    mkdir(C->dir, 0755);
    char docdir[4300], p[4400];
    snprintf(docdir, sizeof docdir, "%s/docs", C->dir);
    mkdir(docdir, 0755);
    for (int i = 0; i < NDOC; i++) build_doc(&docs[i], DOCW);
    share_phrase();
    for (int i = 0; i < 3; i++) {
        snprintf(docs[i].name, sizeof docs[i].name, "%s/d%d.txt", docdir, i);
        write_bytes(docs[i].name, docs[i].text, docs[i].len);
    }
    snprintf(p, sizeof p, "%s/d3.txt.gz", docdir); /* read through zlib; named as given */
    snprintf(docs[3].name, sizeof docs[3].name, "%s", p);
    gzFile g = gzopen(p, "wb");
    gzwrite(g, docs[3].text, (unsigned)docs[3].len);
    gzclose(g);
    snprintf(p, sizeof p, "%s/more.jsonl", docdir);
    FILE *f = fopen(p, "wb");
    char *esc = malloc(docs[4].len * 2 + docs[5].len * 2 + 64);
    for (int i = 4; i < 6; i++) {
        snprintf(docs[i].name, sizeof docs[i].name, "j%d", i);
        json_esc(esc, docs[i].text, docs[i].len);
        fprintf(f, "{\"id\": \"j%d\", \"body\": \"%s\"}\n", i, esc);
    }
    fclose(f);
    free(esc);
    C->db = malloc(4300);
    snprintf(C->db, 4300, "%s/t.db", C->dir);
    cs_err e = {0};
    cs_text_index_opts o = {.field = "body", .shard_bytes = seed_no >= 3 ? 4000 : 0}; /* seeds 3, 4: a shard per document or two */
    const char *paths[] = {docdir};
    int rc = cs_store_open(&C->s, C->db, &e);
    if (!rc) rc = cs_text_index(C->s, paths, 1, &o, NULL, &e);
    if (!rc) rc = cs_text_corpus_open(&C->c, C->s, &e);
    if (rc) fprintf(stderr, "corpus: %s\n", e.msg);
    return rc;
}

static void free_corpus(corpus *C) {
    cs_text_corpus_close(&C->c);
    cs_store_close(C->s);
    free(C->dir), free(C->db);
}

/* ---- the brute-force figures ---- */

typedef struct {
    size_t chars, words;
    int docs[NDOC]; /* holds a longest character span */
} bf_span;

static bf_span bf_spans(const char *q, size_t m) {
    bf_span r = {0};
    for (size_t i = 0; i < m; i++) {
        if (((uint8_t)q[i] & 0xC0) == 0x80) continue;
        for (int d = 0; d < NDOC; d++) {
            const char *t = docs[d].text;
            for (size_t p = 0; p < docs[d].len; p++) {
                size_t l = 0;
                while (i + l < m && p + l < docs[d].len && q[i + l] == t[p + l]) l++;
                while (l && i + l < m && ((uint8_t)q[i + l] & 0xC0) == 0x80) l--;
                size_t ch = ncp(q + i, l);
                if (ch > r.chars) {
                    r.chars = ch;
                    memset(r.docs, 0, sizeof r.docs);
                }
                if (ch && ch == r.chars) r.docs[d] = 1;
            }
        }
    }
    rng_t qw[400];
    size_t nq = ref_words(q, m, qw, 400);
    for (size_t i = 0; i < nq; i++)
        for (int d = 0; d < NDOC; d++)
            for (size_t p = 0; p < docs[d].nw; p++) {
                size_t k = 0;
                while (i + k < nq && p + k < docs[d].nw && weq(q, qw[i + k], docs[d].text, docs[d].w[p + k])) k++;
                if (k > r.words) r.words = k;
            }
    return r;
}

static void bf_metrics(const char *a, size_t an, const char *b, size_t bn, size_t *exact, double *rouge,
                       double *edit) {
    rng_t x[400], y[400];
    size_t nx = ref_words(a, an, x, 400), ny = ref_words(b, bn, y, 400);
    *exact = 0;
    while (*exact < nx && *exact < ny && weq(a, x[*exact], b, y[*exact])) (*exact)++;
    static size_t L[401][401];
    for (size_t i = 0; i <= nx; i++)
        for (size_t j = 0; j <= ny; j++)
            L[i][j] = !i || !j ? 0 : weq(a, x[i - 1], b, y[j - 1]) ? L[i - 1][j - 1] + 1
                                 : L[i - 1][j] > L[i][j - 1] ? L[i - 1][j] : L[i][j - 1];
    *rouge = nx + ny ? 2.0 * (double)L[nx][ny] / (double)(nx + ny) : 1.0;
    uint32_t ca[4000], cb[4000];
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < an;) i += dec((const uint8_t *)a + i, an - i, &ca[na++]);
    for (size_t i = 0; i < bn;) i += dec((const uint8_t *)b + i, bn - i, &cb[nb++]);
    static uint32_t D[4001][2];
    for (size_t j = 0; j <= nb; j++) D[j][0] = (uint32_t)j;
    for (size_t i = 1; i <= na; i++) {
        int c = (int)(i & 1), p = !c;
        D[0][c] = (uint32_t)i;
        for (size_t j = 1; j <= nb; j++) {
            uint32_t v = D[j - 1][p] + (ca[i - 1] != cb[j - 1]);
            if (D[j][p] + 1 < v) v = D[j][p] + 1;
            if (D[j - 1][c] + 1 < v) v = D[j - 1][c] + 1;
            D[j][c] = v;
        }
    }
    size_t mx = na > nb ? na : nb;
    *edit = mx ? 1.0 - (double)D[nb][na & 1] / (double)mx : 1.0;
}

/* The continuation after raw offset end of doc d: from the first
 * non-whitespace character, n words. */
static void ref_cont(int d, size_t end, size_t n, size_t *a, size_t *b) {
    rdoc *D = &docs[d];
    size_t k = 0;
    *a = *b = D->len;
    for (size_t i = 0; i < D->nw && k < (n ? n : 1); i++)
        if (D->w[i].a >= end) {
            if (!k) *a = D->w[i].a;
            *b = D->w[i].b;
            k++;
        }
}

/* ---- the cases ---- */

typedef struct {
    char *comp, *prompt, *cont; /* cont: given, or NULL */
    size_t clen;
    const char *doc;            /* "doc" field, or NULL */
    int truth_doc;              /* where the continuation comes from (-1: none) */
    size_t prompt_end;          /* raw end of the prompt in truth_doc */
    int use_prompt_id;
} tcase;

static tcase cases[64];
static int ncase;

static char *dupn(const char *s, size_t n) {
    char *t = malloc(n + 1);
    memcpy(t, s, n);
    t[n] = 0;
    return t;
}

/* a prompt = doc words [p0, p1] raw; the completion comes from f(words after) */
static tcase *add_case(int d, size_t p0, size_t p1) {
    tcase *c = &cases[ncase++];
    memset(c, 0, sizeof *c);
    c->prompt = dupn(docs[d].text + docs[d].w[p0].a, docs[d].w[p1].b - docs[d].w[p0].a);
    c->truth_doc = d;
    c->prompt_end = docs[d].w[p1].b;
    return c;
}

static void set_comp(tcase *c, char *s, size_t n) {
    c->comp = s;
    c->clen = n;
}

/* words [w0, w1) of doc d, each separator replaced (choice by rnd) */
static size_t respaced(char *o, int d, size_t w0, size_t w1, int edit_at, int char_edit_at) {
    size_t k = 0;
    for (size_t i = w0; i < w1; i++) {
        if (i > w0) k += (size_t)sprintf(o + k, "%s", SEPS[rnd() % 7]);
        rng_t w = docs[d].w[i];
        if ((int)(i - w0) == edit_at) k += (size_t)sprintf(o + k, "EDITED");
        else {
            size_t skip = 0;
            if ((int)(i - w0) == char_edit_at) { /* the first character becomes 'Q' */
                o[k++] = 'Q';
                skip = 1;
                while (w.a + skip < w.b && ((uint8_t)docs[d].text[w.a + skip] & 0xC0) == 0x80) skip++;
            }
            memcpy(o + k, docs[d].text + w.a + skip, w.b - w.a - skip);
            k += w.b - w.a - skip;
        }
    }
    return k;
}

static void make_cases(void) {
    char buf[8192];
    size_t k;
    for (int d = 0; d < NDOC; d++) {
        rdoc *D = &docs[d];
        /* verbatim copy, starting inside a word, ending inside one */
        tcase *c = add_case(d, 10, 29);
        size_t a = D->w[30].a + 1, b = D->w[80].b - 1; /* inside words, at character starts */
        while (a < D->w[30].b && ((uint8_t)D->text[a] & 0xC0) == 0x80) a++;
        while (((uint8_t)D->text[b] & 0xC0) == 0x80) b--;
        set_comp(c, dupn(D->text + a, b - a), b - a);
        /* the same words, other whitespace; an edited word and a changed letter */
        c = add_case(d, 110, 129);
        k = respaced(buf, d, 130, 175, 12, 30);
        set_comp(c, dupn(buf, k), k);
        c->doc = D->name;
        /* stitched: 15 words here, 25 from the next document */
        c = add_case(d, 200, 214);
        k = respaced(buf, d, 215, 230, -1, -1);
        buf[k++] = ' ';
        k += respaced(buf + k, (d + 1) % NDOC, 60, 85, -1, -1);
        set_comp(c, dupn(buf, k), k);
        /* novel words, with the true continuation given */
        c = add_case(d, 40, 59);
        k = 0;
        for (int i = 0; i < 30; i++) k += (size_t)sprintf(buf + k, "%snovelword%d", i ? " " : "", (int)(rnd() % 1000));
        set_comp(c, dupn(buf, k), k);
        size_t ca, cb;
        ref_cont(d, c->prompt_end, 30, &ca, &cb);
        c->cont = dupn(D->text + ca, cb - ca);
        c->use_prompt_id = d & 1;
    }
    /* a prompt inside the shared phrase: in docs 1 and 4; "doc" picks 4 */
    tcase *c = &cases[ncase++];
    memset(c, 0, sizeof *c);
    c->prompt = dupn(docs[1].text + docs[1].w[52].a, docs[1].w[60].b - docs[1].w[52].a);
    c->doc = "j4";
    c->truth_doc = 4;
    for (size_t i = 0; i < docs[4].nw; i++) /* its end in doc 4 */
        if (weq(docs[4].text, docs[4].w[i], docs[1].text, docs[1].w[60]) && i > 100) {
            c->prompt_end = docs[4].w[i].b;
            break;
        }
    k = respaced(buf, 1, 61, 69, -1, -1);
    set_comp(c, dupn(buf, k), k);
    /* a prompt whose whitespace differs from the document's: located tolerantly */
    c = &cases[ncase++];
    memset(c, 0, sizeof *c);
    k = 0;
    for (size_t i = 140; i < 160; i++) {
        rng_t w = docs[2].w[i];
        if (i > 140) buf[k++] = ' ';
        memcpy(buf + k, docs[2].text + w.a, w.b - w.a);
        k += w.b - w.a;
    }
    c->prompt = dupn(buf, k);
    c->truth_doc = 2;
    c->prompt_end = docs[2].w[159].b;
    k = respaced(buf, 2, 160, 190, -1, -1);
    set_comp(c, dupn(buf, k), k);
    /* an unknown prompt */
    c = &cases[ncase++];
    memset(c, 0, sizeof *c);
    c->prompt = dupn("zzqx yyqx wwqx", 14);
    c->truth_doc = -1;
    k = respaced(buf, 3, 5, 40, 20, -1);
    set_comp(c, dupn(buf, k), k);
}

static void write_cases(const char *path) {
    FILE *f = fopen(path, "wb");
    char *e1 = malloc(65536), *e2 = malloc(65536), *e3 = malloc(65536);
    for (int i = 0; i < ncase; i++) {
        tcase *c = &cases[i];
        json_esc(e1, c->prompt, strlen(c->prompt));
        json_esc(e2, c->comp, c->clen);
        fprintf(f, "{\"%s\": \"c%d\", \"prompt\": \"%s\", \"completion\": \"%s\"", c->use_prompt_id ? "prompt_id" : "id", i,
                e1, e2);
        if (c->cont) fprintf(f, ", \"continuation\": \"%s\"", (json_esc(e3, c->cont, strlen(c->cont)), e3));
        if (c->doc) fprintf(f, ", \"doc\": \"%s\"", c->doc);
        fprintf(f, "}\n");
        if (i == 3) fprintf(f, "{\"id\": \"nul\", \"completion\": \"cut\\u0000here\"}\n"); /* a bad line */
    }
    fclose(f);
    free(e1), free(e2), free(e3);
}

static int doc_index(const char *name) {
    for (int d = 0; d < NDOC; d++)
        if (name && !strcmp(docs[d].name, name)) return d;
    return -1;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* every field of one result against the reference */
static void check_result(int i, const cJSON *r) {
    tcase *c = &cases[i];
    bf_span bf = bf_spans(c->comp, c->clen);
    CHECKF(num(r, "longest_span_chars") == (double)bf.chars, "case %d: chars %g want %zu", i,
           num(r, "longest_span_chars"), bf.chars);
    CHECKF(num(r, "longest_span_words") == (double)bf.words, "case %d: words %g want %zu", i,
           num(r, "longest_span_words"), bf.words);
    int got[NDOC] = {0}, n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "source_docs")) {
        int d = doc_index(x->valuestring);
        CHECKF(d >= 0, "case %d: unknown doc %s", i, x->valuestring);
        if (d >= 0) got[d] = 1, n++;
    }
    CHECKF(!memcmp(got, bf.docs, sizeof got), "case %d: source_docs differ (%d listed)", i, n);
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "source_doc");
    int s = cJSON_IsString(sd) ? doc_index(sd->valuestring) : -1;
    int want = c->truth_doc >= 0 && bf.docs[c->truth_doc] ? c->truth_doc : -1;
    if (want < 0)
        for (int d = 0; d < NDOC && want < 0; d++)
            if (bf.docs[d]) want = d;
    CHECKF(s == want, "case %d: source_doc %d want %d", i, s, want);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(r, "longest_span");
    if (bf.chars && s >= 0) { /* the span's offsets hold the same text in both */
        size_t ds = (size_t)num(ls, "doc_start"), de = (size_t)num(ls, "doc_end");
        size_t cs = (size_t)num(ls, "comp_start"), ce = (size_t)num(ls, "comp_end");
        CHECKF(de - ds == ce - cs && de <= docs[s].len && ce <= c->clen &&
                   !memcmp(docs[s].text + ds, c->comp + cs, ce - cs) && ncp(c->comp + cs, ce - cs) == bf.chars,
               "case %d: longest_span offsets", i);
    }
    const char *cont = c->cont;
    size_t clen = cont ? strlen(cont) : 0, ca = 0, cb = 0;
    if (!cont && c->truth_doc >= 0) {
        ref_cont(c->truth_doc, c->prompt_end, ref_words(c->comp, c->clen, NULL, 0), &ca, &cb);
        cont = docs[c->truth_doc].text + ca;
        clen = cb - ca;
    }
    if (!cont) {
        CHECKF(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "rouge_l")), "case %d: no continuation expected", i);
        return;
    }
    size_t exact;
    double rouge, edit;
    bf_metrics(c->comp, c->clen, cont, clen, &exact, &rouge, &edit);
    CHECKF(num(r, "exact_prefix_words") == (double)exact, "case %d: exact %g want %zu", i,
           num(r, "exact_prefix_words"), exact);
    CHECKF(fabs(num(r, "rouge_l") - rouge) < 1e-9, "case %d: rouge %g want %g", i, num(r, "rouge_l"), rouge);
    CHECKF(fabs(num(r, "edit_sim") - edit) < 1e-9, "case %d: edit %g want %g", i, num(r, "edit_sim"), edit);
}

/* each listed span: the completion's words there are the document's */
static void check_spans(int i, const cJSON *r) {
    const cJSON *sp;
    size_t best = 0;
    cJSON_ArrayForEach(sp, cJSON_GetObjectItemCaseSensitive(r, "spans")) {
        const cJSON *dn = cJSON_GetObjectItemCaseSensitive(sp, "doc");
        int d = cJSON_IsString(dn) ? doc_index(dn->valuestring) : -1;
        REQUIRE(d >= 0);
        size_t cs = (size_t)num(sp, "comp_start"), ce = (size_t)num(sp, "comp_end");
        size_t ds = (size_t)num(sp, "doc_start"), de = (size_t)num(sp, "doc_end");
        rng_t a[400], b[400];
        size_t na = ref_words(cases[i].comp + cs, ce - cs, a, 400), nb = ref_words(docs[d].text + ds, de - ds, b, 400);
        int same = na == nb && na == (size_t)num(sp, "words");
        for (size_t k = 0; same && k < na; k++) same = weq(cases[i].comp + cs, a[k], docs[d].text + ds, b[k]);
        CHECKF(same, "case %d: span [%zu,%zu) is not doc %d [%zu,%zu)", i, cs, ce, d, ds, de);
        if (na > best) best = na;
    }
    size_t lw = (size_t)num(r, "longest_span_words");
    if (lw >= 10) CHECKF(best == lw, "case %d: longest listed span %zu, longest_span_words %zu", i, best, lw);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    char *b = NULL;
    size_t cap = 0, k;
    char chunk[65536];
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        char *nb = realloc(b, cap + k + 1);
        if (!nb) break;
        b = nb;
        memcpy(b + cap, chunk, k);
        cap += k;
    }
    fclose(f);
    *n = cap;
    return b;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    /* both there (an empty side text reads as NULL) and equal */
    int same = !access(a, F_OK) && !access(b, F_OK) && na == nb && (na == 0 || (x && y && !memcmp(x, y, na)));
    free(x), free(y);
    return same;
}

/* The same documents indexed again into db (shard_bytes, threads) and the
 * same completions audited: *out gets the results file. */
static int audit_again(const corpus *C, const char *name, uint64_t shard_bytes, int threads, const char *in,
                       char *out, size_t outsz) {
    char docdir[4300], db[4400];
    snprintf(docdir, sizeof docdir, "%s/docs", C->dir);
    snprintf(db, sizeof db, "%s/%s.db", C->dir, name);
    snprintf(out, outsz, "%s/%s.jsonl", C->dir, name);
    int saved = cs_threads();
    cs_set_threads(threads);
    cs_err e = {0};
    cs_store *s;
    cs_text_corpus c;
    cs_text_index_opts o = {.field = "body", .shard_bytes = shard_bytes};
    const char *paths[] = {docdir};
    int rc = cs_store_open(&s, db, &e);
    if (!rc) rc = cs_text_index(s, paths, 1, &o, NULL, &e);
    cs_set_threads(saved);
    if (!rc) rc = cs_text_corpus_open(&c, s, &e);
    if (!rc) {
        FILE *f = fopen(out, "w");
        cs_text_audit_opts ao;
        cs_text_audit_defaults(&ao);
        cs_text_audit_stats st;
        rc = f ? cs_text_audit(s, &c, in, &ao, f, &st, &e) : -1;
        if (f) fclose(f);
        cs_text_corpus_close(&c);
    }
    cs_store_close(s);
    if (rc) fprintf(stderr, "%s: %s\n", db, e.msg);
    return rc;
}

/* Every field of every result the same with one shard and with a shard per
 * document or two (the other layout of this seed), and the index files
 * byte-identical at -j 1 and -j 3. */
static void check_shard_independence(const corpus *C, const char *in, const char *outp) {
    char o1[4500], o2[4500], o3[4500];
    uint64_t other = seed_no >= 3 ? 0 : 4000;
    REQUIRE(audit_again(C, "other", other, 2, in, o1, sizeof o1) == 0);
    CHECKF(same_file(outp, o1), "seed %d: results differ between 1 shard and many", seed_no);
    uint64_t same = seed_no >= 3 ? 4000 : 0;
    REQUIRE(audit_again(C, "j1", same, 1, in, o2, sizeof o2) == 0);
    REQUIRE(audit_again(C, "j3", same, 3, in, o3, sizeof o3) == 0);
    CHECK(same_file(outp, o2) && same_file(outp, o3));
    int shards = 0;
    for (int id = 1; id < 100; id++)
        for (int k = 0; k < 4; k++) {
            static const char *const ext[4] = {"nfc", "sa", "raw", "rsa"};
            char a[4600], b[4600];
            snprintf(a, sizeof a, "%s/j1.db.text-%d.%s", C->dir, id, ext[k]);
            snprintf(b, sizeof b, "%s/j3.db.text-%d.%s", C->dir, id, ext[k]);
            if (access(a, F_OK)) continue;
            shards += k == 0;
            CHECKF(same_file(a, b), "%s differs at -j 1 and -j 3", b);
        }
    CHECK(shards >= 1);
}

static void audit_one_seed(void) {
    corpus C;
    ncase = 0;
    REQUIRE(make_corpus(&C) == 0);
    CHECKF(seed_no >= 3 ? C.c.n_shards >= 3 : C.c.n_shards == 1, "%d shards", C.c.n_shards);
    make_cases();
    char in[4400], outp[4400];
    snprintf(in, sizeof in, "%s/c.jsonl", C.dir);
    snprintf(outp, sizeof outp, "%s/r.jsonl", C.dir);
    write_cases(in);
    FILE *out = fopen(outp, "w");
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    cs_text_audit_stats st;
    cs_err e = {0};
    REQUIRE(cs_text_audit(C.s, &C.c, in, &o, out, &st, &e) == 0);
    fclose(out);
    CHECKF(st.completions == ncase && st.bad_lines == 1 && st.unknown_prompt == 1, "%lld %d %lld %lld",
           (long long)st.completions, ncase, (long long)st.bad_lines, (long long)st.unknown_prompt);
    FILE *f = fopen(outp, "r");
    char *line = NULL;
    size_t cap = 0;
    int i = 0, lines = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *r = cJSON_Parse(line);
        REQUIRE(r);
        lines++;
        if (cJSON_GetObjectItemCaseSensitive(r, "error")) { /* the \u0000 line, in its place */
            CHECK(i == 4 && !strcmp(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "nul"));
        } else {
            char id[16];
            snprintf(id, sizeof id, "c%d", i);
            CHECKF(!strcmp(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, id), "line %d: id", lines);
            check_result(i, r);
            check_spans(i, r);
            i++;
        }
        cJSON_Delete(r);
    }
    free(line);
    fclose(f);
    CHECK(i == ncase && lines == ncase + 1);
    check_shard_independence(&C, in, outp);
    for (int k = 0; k < ncase; k++) free(cases[k].comp), free(cases[k].prompt), free(cases[k].cont);
    free_corpus(&C);
}

/* five corpora and case sets, from five seeds (the last two in several shards) */
static void test_audit_exact_against_brute_force(void) {
    for (seed_no = 0; seed_no < 5 && !t_cur_failed; seed_no++) {
        rs = 0x2545F4914F6CDD1Dull * (uint64_t)(2 * seed_no + 1);
        audit_one_seed();
        for (int d = 0; d < NDOC && seed_no < 4; d++) free(docs[d].text);
    }
    seed_no--;
}

/* trace: the shared phrase is found in both documents, at their offsets */
static void test_trace_shared_phrase(void) {
    corpus C;
    cs_err e = {0};
    C.dir = malloc(4200), C.db = malloc(4300);
    snprintf(C.dir, 4200, "%s/exact%d", tmp, seed_no); /* the last corpus built */
    snprintf(C.db, 4300, "%s/t.db", C.dir);
    REQUIRE(cs_store_open(&C.s, C.db, &e) == 0);
    REQUIRE(cs_text_corpus_open(&C.c, C.s, &e) == 0);
    char q[4096];
    size_t k = (size_t)sprintf(q, "nothing here at all; then ");
    k += respaced(q + k, 1, 50, 70, -1, -1);
    k += (size_t)sprintf(q + k, " and the end");
    cs_text_traced *v;
    size_t n;
    REQUIRE(cs_text_trace(C.s, &C.c, q, k, 8, &v, &n, &e) == 0);
    CHECKF(n == 1, "%zu spans", n);
    if (n == 1) {
        CHECK(v[0].words >= 20);
        int in1 = 0, in4 = 0;
        for (size_t i = 0; i < v[0].n_occ; i++) {
            int d = doc_index(C.c.shards[v[0].occ[i].shard].name[v[0].occ[i].doc]);
            REQUIRE(d >= 0);
            rng_t a[400], b[400];
            size_t s0 = v[0].occ[i].comp_start, s1 = v[0].occ[i].comp_end;
            size_t na = ref_words(q + v[0].start, v[0].end - v[0].start, a, 400);
            size_t nb = ref_words(docs[d].text + s0, s1 - s0, b, 400);
            int same = na == nb;
            for (size_t j = 0; same && j < na; j++) same = weq(q + v[0].start, a[j], docs[d].text + s0, b[j]);
            CHECKF(same, "occurrence %zu in doc %d [%zu, %zu)", i, d, s0, s1);
            in1 |= d == 1, in4 |= d == 4;
        }
        CHECK(in1 && in4);
    }
    cs_text_trace_free(v, n);
    free_corpus(&C);
    for (int d = 0; d < NDOC; d++) free(docs[d].text);
}

/* binary, undecodable and \u0000 input: an error naming the file (and line) */
static void test_bad_corpus_input_is_an_error(void) {
    const char *names[] = {"bin.txt", "latin1.txt", "nul.jsonl", "broken.txt.gz", "rawnul.jsonl"};
    static const char d0[] = "\x7f" "ELF\x02\x01\x00\x00 binary", d1[] = "caf\xe9 au lait",
                      d2[] = "{\"id\":\"x\",\"text\":\"a\\u0000b\"}\n", d3[] = "\x1f\x8b\x08\x00garbage-not-deflate",
                      d4[] = "{\"id\":\"x\",\"text\":\"a\0b\"}\n{\"id\":\"y\",\"text\":\"c\"}\n";
    const char *data[] = {d0, d1, d2, d3, d4};
    size_t lens[] = {sizeof d0 - 1, sizeof d1 - 1, sizeof d2 - 1, sizeof d3 - 1, sizeof d4 - 1};
    const char *want[] = {"bin.txt: not UTF-8 text (a NUL byte", "latin1.txt: not UTF-8 text (invalid UTF-8 at byte 3",
                          "nul.jsonl:1: not UTF-8 text (a \\u0000 escape", "broken.txt.gz:",
                          "rawnul.jsonl:1: not UTF-8 text (invalid UTF-8 or a NUL byte"};
    for (int i = 0; i < 5; i++) {
        char dir[4300], p[4400], db[4400];
        snprintf(dir, sizeof dir, "%s/bad%d", tmp, i);
        mkdir(dir, 0755);
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        write_bytes(p, data[i], lens[i]);
        snprintf(db, sizeof db, "%s/t.db", dir);
        cs_store *s;
        cs_err e = {0};
        REQUIRE(cs_store_open(&s, db, &e) == 0);
        const char *paths[] = {p};
        CHECKF(cs_text_index(s, paths, 1, NULL, NULL, &e) != 0 && strstr(e.msg, want[i]), "%s: '%s'", names[i], e.msg);
        cs_store_close(s);
    }
}

int main(void) {
    tmp = t_tmpdir("text-exact");
    if (!tmp) return 1;
    RUN(test_audit_exact_against_brute_force);
    RUN(test_trace_shared_phrase);
    RUN(test_bad_corpus_input_is_an_error);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", tmp);
    free(tmp);
    return T_DONE();
}
