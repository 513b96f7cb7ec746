/* prompt_weights.c — A1111's emphasis parser, chunker and emphasis (see
 * prompt_weights.h); the steps follow its Python one for one. */
#include "pipeline/prompt_weights.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- parse_prompt_attention ---- */

typedef struct {
    cs_prompt_piece *p;
    int n, cap;
} pieces;

static int push(pieces *r, const char *s, size_t len, double w) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        cs_prompt_piece *p = realloc(r->p, sizeof *p * cap);
        if (!p) return -1;
        r->p = p;
        r->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t) return -1;
    memcpy(t, s, len);
    t[len] = 0;
    r->p[r->n].text = t;
    r->p[r->n++].weight = w;
    return 0;
}

static void multiply_range(pieces *r, int start, double m) {
    for (int i = start; i < r->n; i++) r->p[i].weight *= m;
}

/* Python's \w on UTF-8 bytes: ASCII word characters; any non-ASCII byte
 * counts (letters of other scripts are word characters). */
static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }
static int is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* A plain run split at "\s*\bBREAK\b\s*" (break markers between parts). */
static int push_plain(pieces *r, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) || (i > 0 && is_word((unsigned char)s[i - 1])) ||
            (i + 5 < len && is_word((unsigned char)s[i + 5])))
            continue;
        size_t a = i, b = i + 5;
        while (a > start && is_ws((unsigned char)s[a - 1])) a--;
        while (b < len && is_ws((unsigned char)s[b])) b++;
        if (push(r, s + start, a - start, 1.0) || push(r, "BREAK", 5, -1.0)) return -1;
        start = b;
        i = b - 1;
    }
    return push(r, s + start, len - start, 1.0);
}

/* ":\s*([+-]?[.\d]+)\s*\)" at s: match length (0 = none), the number span */
static size_t match_weight(const char *s, const char **num, size_t *nlen) {
    size_t i = 1;
    while (is_ws((unsigned char)s[i])) i++;
    size_t a = i;
    if (s[i] == '+' || s[i] == '-') i++;
    size_t d = i;
    while (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) i++;
    if (i == d) return 0;
    size_t b = i;
    while (is_ws((unsigned char)s[i])) i++;
    if (s[i] != ')') return 0;
    *num = s + a;
    *nlen = b - a;
    return i + 1;
}

/* Long: A1111's one-pass bracket scanner, then its weighting and merge passes, kept as one parser. */
int cs_prompt_parse(const char *text, cs_prompt_piece **out, int *n, cs_err *err) {
    pieces r = {0};
    size_t len = strlen(text);
    int *round = malloc(sizeof(int) * (len + 1)), *square = malloc(sizeof(int) * (len + 1)), nr = 0, ns = 0;
    const char *s = text;
    int rc = -1;
    if (!round || !square) goto oom;
    while (*s) {
        char c = *s;
        if (c == '\\') {
            /* "\(", "\)", "\[", "\]", "\\": the character; a lone "\": nothing */
            if (s[1] && strchr("()[]\\", s[1])) {
                if (push(&r, s + 1, 1, 1.0)) goto oom;
                s += 2;
            } else {
                if (push(&r, "", 0, 1.0)) goto oom;
                s += 1;
            }
        } else if (c == '(' || c == '[') {
            int *st = c == '(' ? round : square, *k = c == '(' ? &nr : &ns;
            st[(*k)++] = r.n;
            s++;
        } else if (c == ':') {
            const char *num;
            size_t nlen, m = match_weight(s, &num, &nlen);
            if (m && nr) {
                char buf[64], *end;
                if (nlen >= sizeof buf) nlen = sizeof buf - 1;
                memcpy(buf, num, nlen);
                buf[nlen] = 0;
                double w = strtod(buf, &end);
                if (*end || end == buf) {
                    cs_fail(err, CS_EUSAGE, "prompt: \"(...%.*s\": bad weight \"%s\"", (int)m, s, buf);
                    goto fail;
                }
                multiply_range(&r, round[--nr], w);
                s += m;
            } else if (m) { /* no "(" open: the text as it is */
                if (push_plain(&r, s, m)) goto oom;
                s += m;
            } else {
                if (push(&r, ":", 1, 1.0)) goto oom;
                s++;
            }
        } else if (c == ')' && nr) {
            multiply_range(&r, round[--nr], 1.1);
            s++;
        } else if (c == ']' && ns) {
            multiply_range(&r, square[--ns], 1 / 1.1);
            s++;
        } else if (c == ')' || c == ']') {
            if (push(&r, s, 1, 1.0)) goto oom;
            s++;
        } else {
            size_t m = strcspn(s, "\\()[]:");
            if (push_plain(&r, s, m)) goto oom;
            s += m;
        }
    }
    for (int i = 0; i < nr; i++) multiply_range(&r, round[i], 1.1);
    for (int i = 0; i < ns; i++) multiply_range(&r, square[i], 1 / 1.1);
    if (r.n == 0 && push(&r, "", 0, 1.0)) goto oom;
    /* merge runs of identical weights */
    for (int i = 0; i + 1 < r.n;) {
        if (r.p[i].weight == r.p[i + 1].weight) {
            size_t a = strlen(r.p[i].text), b = strlen(r.p[i + 1].text);
            char *t = realloc(r.p[i].text, a + b + 1);
            if (!t) goto oom;
            memcpy(t + a, r.p[i + 1].text, b + 1);
            r.p[i].text = t;
            free(r.p[i + 1].text);
            memmove(r.p + i + 1, r.p + i + 2, sizeof *r.p * (size_t)(r.n - i - 2));
            r.n--;
        } else {
            i++;
        }
    }
    free(round);
    free(square);
    *out = r.p;
    *n = r.n;
    return 0;
oom:
    cs_fail(err, CS_ENOMEM, "prompt: out of memory");
fail:
    free(round);
    free(square);
    cs_prompt_pieces_free(r.p, r.n);
    return rc;
}

void cs_prompt_pieces_free(cs_prompt_piece *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].text);
    free(p);
}

/* ---- tokenize_line ---- */

typedef struct {
    int32_t tok[CS_PROMPT_CHUNK];
    float w[CS_PROMPT_CHUNK];
    int n;
} chunk;

typedef struct {
    cs_prompt_chunks *c;
    int cap;
    int32_t pad;
} chunk_list;

/* Closes ch as one 77-id chunk: start, tokens, end padding, end. */
static int close_chunk(chunk_list *L, chunk *ch) {
    cs_prompt_chunks *c = L->c;
    if (c->n_chunks == L->cap) {
        int cap = L->cap ? 2 * L->cap : 2;
        int32_t *ids = realloc(c->ids, sizeof(int32_t) * CLIP_CONTEXT * cap);
        if (!ids) return -1;
        c->ids = ids;
        float *w = realloc(c->weights, sizeof(float) * CLIP_CONTEXT * cap);
        if (!w) return -1;
        c->weights = w;
        L->cap = cap;
    }
    int32_t *ids = c->ids + (size_t)c->n_chunks * CLIP_CONTEXT;
    float *w = c->weights + (size_t)c->n_chunks * CLIP_CONTEXT;
    ids[0] = CLIP_START_ID;
    w[0] = 1;
    for (int i = 0; i < CS_PROMPT_CHUNK; i++) {
        ids[1 + i] = i < ch->n ? ch->tok[i] : CLIP_END_ID;
        w[1 + i] = i < ch->n ? ch->w[i] : 1;
    }
    ids[CLIP_CONTEXT - 1] = CLIP_END_ID;
    w[CLIP_CONTEXT - 1] = 1;
    /* a model whose pad differs from its end token: pad after the first end */
    if (L->pad != CLIP_END_ID)
        for (int i = 1, seen = 0; i < CLIP_CONTEXT; i++) {
            if (seen) ids[i] = L->pad;
            seen |= ids[i] == CLIP_END_ID;
        }
    c->n_chunks++;
    ch->n = 0;
    return 0;
}

int cs_prompt_chunk(const clip_tokenizer *t, const char *text, int32_t pad_id, cs_prompt_chunks *out,
                    cs_err *err) {
    memset(out, 0, sizeof *out);
    cs_prompt_piece *p = NULL;
    int np = 0;
    if (cs_prompt_parse(text, &p, &np, err)) return -1;
    int32_t comma;
    if (clip_tokenize_bpe(t, ",", &comma, 1, err) != 1) {
        cs_prompt_pieces_free(p, np);
        return cs_fail(err, CS_EFORMAT, "prompt: the vocabulary has no single ',' token");
    }
    chunk_list L = {out, 0, pad_id};
    chunk ch = {.n = 0};
    int32_t *ids = NULL;
    int rc = -1, last_comma = -1;
    for (int k = 0; k < np; k++) {
        if (p[k].weight == -1 && !strcmp(p[k].text, "BREAK")) {
            out->n_tokens += CS_PROMPT_CHUNK;
            if (close_chunk(&L, &ch)) goto oom;
            last_comma = -1;
            continue;
        }
        int n = clip_tokenize_bpe(t, p[k].text, NULL, 0, err);
        if (n < 0) goto out;
        free(ids);
        ids = malloc(sizeof(int32_t) * (n + 1));
        if (!ids) goto oom;
        if (clip_tokenize_bpe(t, p[k].text, ids, n, err) != n) goto out;
        for (int i = 0; i < n; i++) {
            if (ids[i] == comma) {
                last_comma = ch.n;
            } else if (ch.n == CS_PROMPT_CHUNK && last_comma != -1 &&
                       ch.n - last_comma <= CS_PROMPT_COMMA_BACKTRACK) {
                /* move the words after the last comma to the next chunk */
                chunk moved = {.n = ch.n - (last_comma + 1)};
                memcpy(moved.tok, ch.tok + last_comma + 1, sizeof(int32_t) * moved.n);
                memcpy(moved.w, ch.w + last_comma + 1, sizeof(float) * moved.n);
                ch.n = last_comma + 1;
                out->n_tokens += CS_PROMPT_CHUNK;
                if (close_chunk(&L, &ch)) goto oom;
                last_comma = -1;
                ch = moved;
            }
            if (ch.n == CS_PROMPT_CHUNK) {
                out->n_tokens += CS_PROMPT_CHUNK;
                if (close_chunk(&L, &ch)) goto oom;
                last_comma = -1;
            }
            ch.tok[ch.n] = ids[i];
            ch.w[ch.n++] = (float)p[k].weight;
        }
    }
    if (ch.n || !out->n_chunks) {
        out->n_tokens += ch.n;
        if (close_chunk(&L, &ch)) goto oom;
    }
    rc = 0;
    goto out;
oom:
    cs_fail(err, CS_ENOMEM, "prompt: out of memory");
out:
    free(ids);
    cs_prompt_pieces_free(p, np);
    if (rc) cs_prompt_chunks_free(out);
    return rc;
}

void cs_prompt_chunks_free(cs_prompt_chunks *c) {
    free(c->ids);
    free(c->weights);
    memset(c, 0, sizeof *c);
}

/* ---- EmphasisOriginal ---- */

void cs_prompt_emphasis(float *z, const float *weights, int dim) {
    size_t n = (size_t)CLIP_CONTEXT * dim;
    int all_one = 1;
    for (int i = 0; i < CLIP_CONTEXT; i++) all_one &= weights[i] == 1.0f;
    if (all_one) return; /* z * 1 * (m / m): unchanged, bit for bit */
    double before = 0, after = 0;
    for (size_t i = 0; i < n; i++) before += z[i];
    for (int t = 0; t < CLIP_CONTEXT; t++)
        for (int d = 0; d < dim; d++) z[(size_t)t * dim + d] *= weights[t];
    for (size_t i = 0; i < n; i++) after += z[i];
    float r = (float)(before / (double)n) / (float)(after / (double)n);
    for (size_t i = 0; i < n; i++) z[i] *= r;
}

int cs_prompt_encode(const clip_tokenizer *t, const char *text, int32_t pad_id, int dim, cs_chunk_encoder enc,
                     void *ctx, float **out, int *n_chunks, cs_err *err) {
    *out = NULL;
    cs_prompt_chunks c;
    if (cs_prompt_chunk(t, text, pad_id, &c, err)) return -1;
    size_t per = (size_t)CLIP_CONTEXT * dim;
    float *z = malloc(sizeof(float) * per * c.n_chunks);
    if (!z) {
        cs_prompt_chunks_free(&c);
        return cs_fail(err, CS_ENOMEM, "prompt: out of memory");
    }
    for (int k = 0; k < c.n_chunks; k++) {
        if (enc(ctx, c.ids + (size_t)k * CLIP_CONTEXT, z + per * k, err)) {
            free(z);
            cs_prompt_chunks_free(&c);
            return -1;
        }
        cs_prompt_emphasis(z + per * k, c.weights + (size_t)k * CLIP_CONTEXT, dim);
    }
    *n_chunks = c.n_chunks;
    *out = z;
    cs_prompt_chunks_free(&c);
    return 0;
}
