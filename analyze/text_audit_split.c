/* text_audit_split.c — see text_audit_split.h: scored results packed, and
 * the audit loop that writes them in line order. */
#include "analyze/text_audit_split.h"

#include <stdlib.h>
#include <string.h>

#include "analyze/text_audit_internal.h"
#include "core/fs.h"

struct cs_text_scorer {
    cs_text_auditor A;
    cs_text_audit_opts o;  /* the caller's, with the notes collected */
    cs_text_audit_stats st; /* scratch: the writer recounts from the results */
    cs_buf notes;          /* the current line's notes, each NUL-terminated */
    int own_reader;        /* A.w is a reader opened here */
};

static void collect_note(void *ctx, const char *msg) {
    cs_text_scorer *x = ctx;
    cs_buf_put(&x->notes, msg, strlen(msg) + 1);
}

static cs_text_scorer *scorer_new(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o) {
    cs_text_scorer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->o = *o;
    x->o.note = collect_note;
    x->o.note_ctx = x;
    x->o.progress = 0;
    x->A = (cs_text_auditor){.s = s, .c = c, .o = &x->o, .st = &x->st, .path = path};
    return x;
}

int cs_text_scorer_open(cs_text_scorer **out, cs_store *s, const cs_text_corpus *c, const char *path,
                        const cs_text_audit_opts *o, cs_err *err) {
    cs_text_scorer *x = scorer_new(s, c, path, o);
    *out = NULL;
    if (!x) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (cs_text_reader_open(&x->A.w, s, err)) {
        free(x);
        return -1;
    }
    x->own_reader = 1;
    *out = x;
    return 0;
}

void cs_text_scorer_free(cs_text_scorer *x) {
    if (!x) return;
    if (x->own_reader) cs_text_writer_close(&x->A.w, 0, NULL);
    cs_buf_free(&x->notes);
    free(x);
}

/* ---- packing ---- */

/* A record: head, the notes (NUL-terminated each), the failure message,
 * then (status OK) the scored result. */
enum { REC_OK = 0, REC_BAD_LINE = 1, REC_FAILED = -1 };
typedef struct {
    int64_t size, lineno, status;
    double seconds;
    int64_t notes_len, msg_len;
} rec_head;

static const char *const CONT_FROM[] = {"none", "given", "prompts", "located", "located-tolerant"};
enum { N_CONT_FROM = sizeof CONT_FROM / sizeof CONT_FROM[0] };

static void put_i64(cs_buf *b, int64_t v) { cs_buf_put(b, &v, sizeof v); }

static void pack_scored(cs_buf *b, const cs_text_scored *sc) {
    cs_buf_put(b, &sc->fig, sizeof sc->fig);
    put_i64(b, (int64_t)sc->comp_words);
    put_i64(b, (int64_t)sc->chars.chars);
    cs_buf_put(b, &sc->chars.source, sizeof sc->chars.source);
    put_i64(b, sc->chars.truncated);
    put_i64(b, (int64_t)sc->chars.n_docs);
    if (sc->chars.n_docs) cs_buf_put(b, sc->chars.docs, sc->chars.n_docs * sizeof *sc->chars.docs);
    put_i64(b, (int64_t)sc->q.len);
    cs_buf_put(b, sc->q.text ? sc->q.text : "", sc->q.len);
    put_i64(b, (int64_t)sc->q.n_anchors);
    if (sc->q.n_anchors) cs_buf_put(b, sc->q.anchors, sc->q.n_anchors * sizeof *sc->q.anchors);
    put_i64(b, (int64_t)sc->q.n_invalid);
    put_i64(b, (int64_t)sc->q.n_nul);
    put_i64(b, (int64_t)sc->q.n_words);
    cs_buf_put(b, &sc->longest, sizeof sc->longest);
    put_i64(b, (int64_t)sc->n_spans);
    if (sc->n_spans) cs_buf_put(b, sc->spans, sc->n_spans * sizeof *sc->spans);
    put_i64(b, (int64_t)sc->span_bytes);
    put_i64(b, (int64_t)sc->char_bytes);
    put_i64(b, sc->cont ? (int64_t)sc->cont_len : -1);
    if (sc->cont) cs_buf_put(b, sc->cont, sc->cont_len);
    int64_t from = 0;
    for (int i = 0; i < N_CONT_FROM; i++)
        if (sc->cont_from && !strcmp(sc->cont_from, CONT_FROM[i])) from = i;
    put_i64(b, from);
    put_i64(b, sc->prompt_row);
    put_i64(b, sc->pref_shard);
    put_i64(b, (int64_t)sc->pref_doc);
}

static void pack_record(cs_buf *out, int64_t lineno, int64_t status, double seconds, const cs_buf *notes,
                        const char *msg, const cs_text_scored *sc) {
    size_t at = out->len;
    rec_head h = {0, lineno, status, seconds, notes ? (int64_t)notes->len : 0, msg ? (int64_t)strlen(msg) : 0};
    cs_buf_put(out, &h, sizeof h);
    if (h.notes_len) cs_buf_put(out, notes->p, notes->len);
    if (h.msg_len) cs_buf_put(out, msg, (size_t)h.msg_len);
    if (sc) pack_scored(out, sc);
    h.size = (int64_t)(out->len - at);
    if (!out->oom) memcpy(out->p + at, &h.size, sizeof h.size);
}

void cs_text_pack_failure(cs_buf *out, int64_t lineno, const char *msg) {
    pack_record(out, lineno, REC_FAILED, 0, NULL, msg, NULL);
}

int cs_text_scorer_line(cs_text_scorer *x, const char *line, size_t len, int64_t lineno, cs_buf *out) {
    x->notes.len = 0;
    cJSON *j;
    cs_text_input in;
    const char *bad = cs_text_parse_line(line, len, &j, &in);
    in.line = lineno;
    if (bad) /* the writer parses it too, and says so */
        pack_record(out, lineno, REC_BAD_LINE, 0, NULL, NULL, NULL);
    else {
        cs_text_scored sc;
        cs_err e = {0};
        double t0 = cs_now_s();
        int rc = cs_text_score(&x->A, &in, &sc, &e);
        double secs = cs_now_s() - t0;
        if (x->notes.oom) rc = cs_fail(&e, CS_ENOMEM, "out of memory");
        if (rc) pack_record(out, lineno, REC_FAILED, secs, &x->notes, e.msg[0] ? e.msg : "scoring failed", NULL);
        else pack_record(out, lineno, REC_OK, secs, &x->notes, NULL, &sc);
        cs_text_scored_free(&sc);
    }
    cJSON_Delete(j);
    return out->oom ? -1 : 0;
}

/* ---- unpacking ---- */

typedef struct {
    const char *p;
    size_t left;
    int bad;
} reader;

static void get(reader *r, void *dst, size_t n) {
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

static int64_t get_i64(reader *r) {
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}

/* n elements of size sz into a new array (NULL when n is 0 or bad). */
static void *get_array(reader *r, int64_t n, size_t sz, size_t extra) {
    if (r->bad || n < 0 || (uint64_t)n > r->left / (sz ? sz : 1)) {
        r->bad = 1;
        return NULL;
    }
    if (n == 0 && !extra) return NULL;
    char *a = malloc((size_t)n * sz + extra);
    if (!a) {
        r->bad = 2;
        return NULL;
    }
    get(r, a, (size_t)n * sz);
    if (extra) a[(size_t)n * sz] = 0;
    return a;
}

static int unpack_scored(reader *r, cs_text_scored *sc) {
    memset(sc, 0, sizeof *sc);
    get(r, &sc->fig, sizeof sc->fig);
    sc->comp_words = (uint64_t)get_i64(r);
    sc->chars.chars = (uint64_t)get_i64(r);
    get(r, &sc->chars.source, sizeof sc->chars.source);
    sc->chars.truncated = (int)get_i64(r);
    int64_t nd = get_i64(r);
    sc->chars.docs = get_array(r, nd, sizeof *sc->chars.docs, 0);
    sc->chars.n_docs = r->bad ? 0 : (size_t)nd;
    int64_t ql = get_i64(r);
    sc->q.text = get_array(r, ql, 1, 1);
    sc->q.len = r->bad ? 0 : (size_t)ql;
    int64_t na = get_i64(r);
    sc->q.anchors = get_array(r, na, sizeof *sc->q.anchors, 0);
    sc->q.n_anchors = r->bad ? 0 : (size_t)na;
    sc->q.n_invalid = (size_t)get_i64(r);
    sc->q.n_nul = (size_t)get_i64(r);
    sc->q.n_words = (size_t)get_i64(r);
    get(r, &sc->longest, sizeof sc->longest);
    int64_t ns = get_i64(r);
    sc->spans = get_array(r, ns, sizeof *sc->spans, 0);
    sc->n_spans = r->bad ? 0 : (size_t)ns;
    sc->span_bytes = (size_t)get_i64(r);
    sc->char_bytes = (size_t)get_i64(r);
    int64_t cl = get_i64(r);
    if (cl >= 0) {
        sc->cont = get_array(r, cl, 1, 1);
        sc->cont_len = r->bad ? 0 : (size_t)cl;
    }
    int64_t from = get_i64(r);
    sc->cont_from = CONT_FROM[from >= 0 && from < N_CONT_FROM ? from : 0];
    sc->prompt_row = get_i64(r);
    sc->pref_shard = (int)get_i64(r);
    sc->pref_doc = (uint64_t)get_i64(r);
    return r->bad ? -1 : 0;
}

/* ---- the loop: cs_text_audit's, with the scores unpacked ---- */

typedef struct {
    cs_text_auditor *A;
    cs_text_scorer *x;
    cs_text_score_fn score;
    void *ctx;
    int cap, n;
    char **line;
    size_t *len;
    int64_t *lineno;
} round_buf;

/* One line's record: its notes, then as audit_line in text_audit.c. */
static int write_line(cs_text_auditor *A, const char *line, size_t k, int64_t lineno, reader *r, cs_err *err) {
    rec_head h;
    get(r, &h, sizeof h);
    if (r->bad || h.lineno != lineno || h.size < (int64_t)sizeof h || (uint64_t)h.size - sizeof h > r->left)
        return cs_fail(err, CS_EINTERNAL, "%s:%lld: the scored results came back incomplete or out of order", A->path,
                       (long long)lineno);
    reader rec = {r->p, (size_t)h.size - sizeof h, 0};
    r->p += rec.left;
    r->left -= rec.left;
    char *notes = get_array(&rec, h.notes_len, 1, 1), *msg = get_array(&rec, h.msg_len, 1, 1);
    for (const char *p = notes; p && p < notes + h.notes_len; p += strlen(p) + 1)
        cs_text_notef(A->o->note, A->o->note_ctx, "%s", p);
    int rc = 0;
    if (rec.bad) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    else if (h.status == REC_FAILED) rc = cs_fail(err, CS_EINTERNAL, "%s", msg ? msg : "scoring failed");
    free(notes);
    free(msg);
    if (rc) return rc;
    cJSON *j;
    cs_text_input in;
    const char *bad = cs_text_parse_line(line, k, &j, &in);
    in.line = lineno;
    if (bad || h.status == REC_BAD_LINE) {
        A->st->bad_lines++;
        cs_text_notef(A->o->note, A->o->note_ctx, "%s:%lld: %s (skipped)", A->path, (long long)lineno,
                      bad ? bad : "not a JSON object");
        rc = cs_text_write_bad(A, &in, bad ? bad : "not a JSON object", err);
        cJSON_Delete(j);
        return rc;
    }
    cs_text_scored sc;
    if (unpack_scored(&rec, &sc)) rc = cs_fail(err, CS_EINTERNAL, "%s:%lld: a scored result came back damaged",
                                               A->path, (long long)lineno);
    A->st->seconds_spans += h.seconds;
    if (!rc) {
        A->st->bytes_spans += sc.char_bytes;
        A->st->unknown_prompt += sc.cont == NULL;
        A->st->empty += sc.fig.empty != 0;
        rc = cs_text_judge_write(A, &in, &sc, err);
    }
    cs_text_scored_free(&sc);
    cJSON_Delete(j);
    return rc;
}

static int flush_round(round_buf *b, cs_err *err) {
    if (!b->n) return 0;
    cs_text_round r = {b->n, (const char *const *)b->line, b->len, b->lineno};
    cs_buf packed = {0};
    int rc = b->score(b->ctx, b->x, &r, &packed, err);
    if (!rc && packed.oom) rc = cs_fail(err, CS_ENOMEM, "out of memory for the scored results");
    reader rd = {packed.p, packed.len, 0};
    for (int i = 0; i < b->n && !rc; i++) {
        rc = write_line(b->A, b->line[i], b->len[i], b->lineno[i], &rd, err);
        if (!rc) rc = cs_text_writer_batch(&b->A->w, err);
    }
    cs_buf_free(&packed);
    for (int i = 0; i < b->n; i++) free(b->line[i]);
    b->n = 0;
    return rc;
}

/* The loop's hooks: the scorer made once the writer is open, every line
 * kept for its round, the last round flushed. */
static int split_start(void *ctx, cs_text_auditor *A, cs_err *err) {
    round_buf *b = ctx;
    b->A = A;
    if (!(b->x = scorer_new(A->s, A->c, A->path, A->o))) return cs_fail(err, CS_ENOMEM, "out of memory");
    b->x->A.w = A->w; /* its statements: the writer's connection reads text_prompts */
    return 0;
}

static int split_line(void *ctx, cs_text_auditor *A, const char *line, size_t k, int64_t lineno, cs_err *err) {
    (void)A;
    round_buf *b = ctx;
    if (!(b->line[b->n] = malloc(k + 1))) return cs_fail(err, CS_ENOMEM, "out of memory");
    memcpy(b->line[b->n], line, k + 1);
    b->len[b->n] = k;
    b->lineno[b->n++] = lineno;
    return b->n == b->cap ? flush_round(b, err) : 0;
}

static int split_end(void *ctx, cs_text_auditor *A, cs_err *err) {
    (void)A;
    return flush_round(ctx, err);
}

int cs_text_audit_split(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *opts,
                        FILE *out, int round_lines, cs_text_score_fn score, void *ctx, cs_text_audit_stats *stats,
                        cs_err *err) {
    static const cs_text_loop_fns fns = {split_start, split_line, split_end};
    if (round_lines < 1) round_lines = 1;
    round_buf b = {.score = score, .ctx = ctx, .cap = round_lines};
    b.line = calloc((size_t)round_lines, sizeof *b.line);
    b.len = calloc((size_t)round_lines, sizeof *b.len);
    b.lineno = calloc((size_t)round_lines, sizeof *b.lineno);
    int rc;
    if (stats) memset(stats, 0, sizeof *stats);
    if (!b.line || !b.len || !b.lineno) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    else rc = cs_text_audit_loop(s, c, path, opts, out, stats, &fns, &b, err);
    for (int i = 0; i < b.n; i++) free(b.line[i]);
    if (b.x) cs_buf_free(&b.x->notes);
    free(b.x);
    free(b.line);
    free(b.len);
    free(b.lineno);
    return rc;
}
