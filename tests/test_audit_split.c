/* test_audit_split.c — the text audit with its scoring done elsewhere
 * (analyze/text_audit_split.h; copyscope-mpi's text audit) must write what
 * cs_text_audit writes: the same results file byte for byte, the same rows
 * and the same notes in the same order, whichever scorer scored a line
 * (here: lines alternate between the writer's own scorer and a scorer on a
 * second, read-only connection, in rounds of 3 lines). A failure packed by
 * a scorer stops the audit with its message and leaves no rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/text_audit.h"
#include "analyze/text_audit_split.h"
#include "analyze/text_corpus.h"
#include "t.h"

static char dir[] = "/tmp/cs-audit-split-XXXXXX";
static char path[512];

static const char *P(const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* n pseudo-random words into buf (a newline every 9 words). */
static void words(char *buf, size_t cap, int n) {
    size_t k = 0;
    for (int w = 0; w < n && k + 16 < cap; w++) {
        int len = 2 + (int)(next() % 7);
        for (int i = 0; i < len; i++) buf[k++] = (char)('a' + next() % 26);
        buf[k++] = w % 9 == 8 ? '\n' : ' ';
    }
    buf[k] = 0;
}

static void put(const char *name, const char *text) {
    FILE *f = fopen(P(name), "w");
    if (f) fputs(text, f), fclose(f);
}

static char docs[3][4096];

/* The completions: copies (whole, edited, across a line break), novel
 * text, an unknown prompt, a given continuation, an empty completion, a
 * blank line and a broken one. */
static void write_completions(void) {
    FILE *f = fopen(P("comp.jsonl"), "w");
    if (!f) return;
    for (int d = 0; d < 3; d++) {
        char pr[200], co[600];
        snprintf(pr, sizeof pr, "%.60s", docs[d]);
        snprintf(co, sizeof co, "%.400s", docs[d] + 60);
        for (char *p = pr; *p; p++) if (*p == '\n') *p = ' ';
        for (char *p = co; *p; p++) if (*p == '\n') *p = ' ';
        fprintf(f, "{\"id\": \"c%d\", \"prompt\": \"%s\", \"completion\": \"%s\"}\n", d, pr, co);
        co[50] = 'Q'; /* an edit */
        fprintf(f, "{\"id\": \"e%d\", \"prompt\": \"%s\", \"completion\": \"zz %s\"}\n", d, pr, co);
    }
    fprintf(f, "\n{\"id\": \"broken\"\n");
    fprintf(f, "{\"id\": \"novel\", \"prompt\": \"nothing here\", \"completion\": \"qqq rrr sss ttt\"}\n");
    fprintf(f, "{\"id\": \"given\", \"prompt\": \"x\", \"completion\": \"%.80s\", \"continuation\": \"%.80s\"}\n",
            "alpha beta gamma", "alpha beta delta");
    fprintf(f, "{\"id\": \"empty\", \"prompt\": \"y\", \"completion\": \"   \"}\n");
    fprintf(f, "{\"id\": 7, \"completion\": \"%.300s\"}\n", "lorem ipsum");
    fclose(f);
}

static char notes[8192];
static void note(void *ctx, const char *msg) {
    (void)ctx;
    size_t n = strlen(notes);
    snprintf(notes + n, sizeof notes - n, "%s\n", msg);
}

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 20);
    if (b) fread(b, 1, (1 << 20) - 1, f);
    fclose(f);
    return b;
}

/* The rows of one audit, ids aside, as text. */
static char *rows(cs_store *s, int64_t audit) {
    sqlite3_stmt *st;
    cs_err err = {0};
    if (cs_store_prepare(s, &st,
                         "SELECT c.line, c.prompt_key, c.prompt_id, c.completion, f.status, f.verdict, f.longest_chars, "
                         "f.longest_words, f.longest_doc_id, f.longest_doc_start, f.longest_doc_end, f.n_spans, "
                         "f.exact_prefix_words, f.rouge_l_f1, f.edit_sim, f.evidence_json, "
                         "(SELECT group_concat(s.rank || ':' || s.comp_start || '-' || s.comp_end || '@' || s.doc_id || "
                         "':' || s.doc_start || '-' || s.doc_end || '=' || s.text, ';') FROM text_spans s WHERE "
                         "s.finding_id = f.id) FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                         "WHERE f.audit_id = ? ORDER BY f.id",
                         &err))
        return NULL;
    sqlite3_bind_int64(st, 1, audit);
    size_t cap = 1 << 20, n = 0;
    char *out = calloc(1, cap);
    while (out && sqlite3_step(st) == SQLITE_ROW)
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%c", v ? v : "NULL", i + 1 < 17 ? '|' : '\n');
        }
    sqlite3_finalize(st);
    return out;
}

typedef struct {
    cs_text_scorer *other;
    int64_t fail_line; /* > 0: the other scorer's record for this line is a failure */
    int rounds;
} split_ctx;

static int score(void *ctx, cs_text_scorer *x, const cs_text_round *r, cs_buf *packed, cs_err *err) {
    split_ctx *c = ctx;
    (void)err;
    c->rounds++;
    for (int i = 0; i < r->n; i++) {
        if (r->lineno[i] == c->fail_line) cs_text_pack_failure(packed, r->lineno[i], "rank 1 of 2: out of memory");
        else if (cs_text_scorer_line(i % 2 ? c->other : x, r->line[i], r->len[i], r->lineno[i], packed)) return -1;
    }
    return 0;
}

static cs_store *s;
static cs_text_corpus corpus;

static void test_split_is_cs_text_audit(void) {
    cs_err err = {0};
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    o.note = note;
    o.min_span_words = 5;
    cs_text_audit_stats a, b;
    FILE *f = fopen(P("one.r"), "w");
    REQUIRE(f);
    REQUIRE(cs_text_audit(s, &corpus, P("comp.jsonl"), &o, f, &a, &err) == 0);
    fclose(f);
    char *notes1 = strdup(notes);
    notes[0] = 0;
    cs_store *ro;
    cs_text_corpus c2;
    cs_text_scorer *other;
    char dbp[600];
    snprintf(dbp, sizeof dbp, "%s/t.db", dir);
    REQUIRE(cs_store_open_readonly(&ro, dbp, &err) == 0);
    REQUIRE(cs_text_corpus_open(&c2, ro, &err) == 0);
    REQUIRE(cs_text_scorer_open(&other, ro, &c2, P("comp.jsonl"), &o, &err) == 0);
    split_ctx ctx = {other, 0, 0};
    f = fopen(P("split.r"), "w");
    REQUIRE(f);
    CHECK(cs_text_audit_split(s, &corpus, P("comp.jsonl"), &o, f, 3, score, &ctx, &b, &err) == 0);
    fclose(f);
    CHECK(ctx.rounds == 4); /* 11 non-blank lines */
    char *r1 = slurp(P("one.r")), *r2 = slurp(P("split.r"));
    REQUIRE(r1 && r2);
    CHECKF(!strcmp(r1, r2), "results differ:\n%s\n--\n%s", r1, r2);
    CHECK(strstr(r1, "\"verdict\":\"verbatim\"") && strstr(r1, "\"verdict\":\"novel\"") && strstr(r1, "\"error\""));
    CHECKF(!strcmp(notes1, notes), "notes differ:\n%s--\n%s", notes1, notes);
    CHECK(strstr(notes, "unknown prompt") && strstr(notes, "empty completion") && strstr(notes, "(skipped)"));
    CHECK(a.completions == b.completions && a.verbatim == b.verbatim && a.near_verbatim == b.near_verbatim &&
          a.novel == b.novel && a.unknown_prompt == b.unknown_prompt && a.empty == b.empty &&
          a.bad_lines == b.bad_lines && a.bytes_spans == b.bytes_spans);
    CHECK(a.completions == 10 && a.bad_lines == 1 && a.verbatim >= 3);
    char *w1 = rows(s, a.audit_id), *w2 = rows(s, b.audit_id);
    REQUIRE(w1 && w2);
    CHECK(strlen(w1) > 1000);
    CHECKF(!strcmp(w1, w2), "rows differ:\n%s\n--\n%s", w1, w2);

    /* a failure packed for line 5: the audit stops with it, no rows kept */
    ctx.fail_line = 5;
    cs_text_audit_stats c;
    CHECK(cs_text_audit_split(s, &corpus, P("comp.jsonl"), &o, NULL, 3, score, &ctx, &c, &err) == -1);
    CHECKF(strstr(err.msg, "rank 1 of 2: out of memory") != NULL, "%s", err.msg);
    char *w3 = rows(s, c.audit_id);
    CHECK(w3 && !w3[0]);
    free(w1), free(w2), free(w3), free(r1), free(r2), free(notes1);
    cs_text_scorer_free(other);
    cs_text_corpus_close(&c2);
    cs_store_close(ro);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    for (int d = 0; d < 3; d++) {
        char name[32];
        words(docs[d], sizeof docs[d], 200 + 60 * d);
        snprintf(name, sizeof name, "doc%d.txt", d);
        put(name, docs[d]);
    }
    write_completions();
    cs_err err = {0};
    char dbp[600];
    snprintf(dbp, sizeof dbp, "%s/t.db", dir);
    const char *in[3] = {NULL, NULL, NULL};
    char p0[600], p1[600], p2[600];
    snprintf(p0, sizeof p0, "%s/doc0.txt", dir), snprintf(p1, sizeof p1, "%s/doc1.txt", dir);
    snprintf(p2, sizeof p2, "%s/doc2.txt", dir);
    in[0] = p0, in[1] = p1, in[2] = p2;
    cs_text_index_opts io = {.shard_bytes = 2000}; /* several shards: hits carry shard indexes */
    if (cs_store_open(&s, dbp, &err) || cs_text_index(s, in, 3, &io, NULL, &err) ||
        cs_text_corpus_open(&corpus, s, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    RUN(test_split_is_cs_text_audit);
    cs_text_corpus_close(&corpus);
    cs_store_close(s);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return T_DONE();
}
