/* text_audit_score.c — stage 2 of the audit: the true continuation and every
 * figure of one completion. */
#include <stdlib.h>
#include <string.h>

#include "analyze/text_audit_internal.h"
#include "analyze/text_metrics.h"

/* The continuation kept for a prompt cut by `text prompts`: the raw text of
 * its document between the offsets recorded then. */
static int registered(cs_text_auditor *A, const cs_text_prompt_row *r, cs_text_scored *sc, cs_err *err) {
    int sh;
    uint64_t di;
    if (cs_text_corpus_find_doc(A->c, r->doc_id, &sh, &di)) return 0; /* its document is gone */
    if (sc->pref_shard < 0) sc->pref_shard = sh, sc->pref_doc = di;
    if (sc->cont) return 0;
    const cs_text_shard *S = &A->c->shards[sh];
    if (r->cont_start < 0 || r->cont_end < r->cont_start || (uint64_t)r->cont_end > S->raw_len[di]) return 0;
    size_t n = (size_t)(r->cont_end - r->cont_start);
    if (!(sc->cont = malloc(n + 1))) return cs_fail(err, CS_ENOMEM, "out of memory");
    memcpy(sc->cont, S->raw.text + S->raw_start[di] + r->cont_start, n);
    sc->cont[n] = 0;
    sc->cont_len = n;
    sc->cont_from = "prompts";
    return 0;
}

/* Finds the true continuation (given, registered, or located after the
 * prompt) and the prompt's own document. */
static int find_continuation(cs_text_auditor *A, const cs_text_input *in, cs_text_scored *sc, cs_err *err) {
    int sh;
    uint64_t di;
    if (in->doc && !cs_text_corpus_find_name(A->c, in->doc, &sh, &di)) sc->pref_shard = sh, sc->pref_doc = di;
    else if (in->doc) /* a misspelt name would silently change which document is the prompt's */
        cs_text_notef(A->o->note, A->o->note_ctx, "%s:%lld: doc \"%s\" is not in the corpus (ignored: the prompt is "
                      "looked for in every document)", A->path, (long long)in->line, in->doc);
    if (in->continuation) {
        if (!(sc->cont = strdup(in->continuation))) return cs_fail(err, CS_ENOMEM, "out of memory");
        sc->cont_len = strlen(sc->cont);
        sc->cont_from = "given";
    }
    cs_text_norm np = {0};
    if (in->prompt && cs_text_normalize(&np, in->prompt, strlen(in->prompt), err)) {
        cs_text_norm_free(&np);
        return -1;
    }
    cs_text_prompt_row r;
    int rc = cs_text_prompt_find(&A->w, in->id, in->prompt ? np.text : NULL, &r, err);
    cs_text_norm_free(&np);
    if (!rc && r.id) {
        sc->prompt_row = r.id;
        rc = registered(A, &r, sc, err);
    }
    /* located: for the continuation, or for the prompt's own document */
    if (rc || (sc->cont && sc->pref_shard >= 0) || !in->prompt || !A->c->n_shards) return rc;
    cs_text_loc loc;
    if (cs_text_locate(A->c, A->s, in->prompt, strlen(in->prompt), sc->pref_shard, sc->pref_doc, &loc, err))
        return -1;
    if (!loc.how) return 0;
    if (sc->pref_shard < 0) sc->pref_shard = loc.shard, sc->pref_doc = loc.doc;
    if (sc->cont) return 0;
    sc->cont_from = loc.how == 1 ? "located" : "located-tolerant";
    return cs_text_continuation(A->c, &loc, sc->comp_words, &sc->cont, &sc->cont_len, err);
}

/* Spans: a completion copied whole costs O(length^2) byte comparisons (each
 * start matches to the end), so the first CS_TEXT_MAX_SPAN_QUERY bytes are
 * searched, cut at a character (raw) or word (normal form) boundary. */
static int find_spans(cs_text_auditor *A, const cs_text_input *in, cs_text_scored *sc, cs_err *err) {
    size_t n = in->comp_len;
    if (n > CS_TEXT_MAX_SPAN_QUERY) {
        n = CS_TEXT_MAX_SPAN_QUERY;
        while (n > 0 && ((uint8_t)in->completion[n] & 0xC0) == 0x80) n--;
    }
    sc->char_bytes = n;
    if (cs_text_longest_chars(A->c, in->completion, n, sc->pref_shard, sc->pref_doc, &sc->chars, err)) return -1;
    if (cs_text_normalize(&sc->q, in->completion, in->comp_len, err)) return -1;
    size_t qn = sc->q.len;
    if (qn > CS_TEXT_MAX_SPAN_QUERY) {
        qn = CS_TEXT_MAX_SPAN_QUERY;
        while (qn > 0 && sc->q.text[qn] != ' ') qn--;
    }
    sc->span_bytes = qn;
    if (n < in->comp_len || qn < sc->q.len)
        cs_text_notef(A->o->note, A->o->note_ctx, "%s:%lld: completion of %zu bytes: spans searched in the first %zu",
                      A->path, (long long)in->line, in->comp_len, n);
    A->st->bytes_spans += n;
    return cs_text_spans(A->c, sc->q.text, qn, A->o->min_span_words, &sc->longest, &sc->spans, &sc->n_spans, err);
}

static int score_metrics(const cs_text_input *in, cs_text_scored *sc, cs_err *err) {
    cs_text_figures *f = &sc->fig;
    f->has_cont = sc->cont != NULL;
    if (!f->has_cont) return 0;
    f->cont_words = cs_text_ws_count(sc->cont, sc->cont_len);
    size_t ex;
    if (cs_text_ws_exact_prefix(in->completion, in->comp_len, sc->cont, sc->cont_len, &ex, err) ||
        cs_text_ws_rouge_l(in->completion, in->comp_len, sc->cont, sc->cont_len, &f->rouge, err) ||
        cs_text_edit_sim(in->completion, in->comp_len, sc->cont, sc->cont_len, &f->edit, err))
        return -1;
    f->exact_prefix = ex;
    return 0;
}

int cs_text_score(cs_text_auditor *A, const cs_text_input *in, cs_text_scored *sc, cs_err *err) {
    memset(sc, 0, sizeof *sc);
    sc->pref_shard = -1;
    sc->cont_from = "none";
    sc->comp_words = cs_text_ws_count(in->completion, in->comp_len);
    sc->fig.empty = sc->comp_words == 0;
    if (find_continuation(A, in, sc, err) || find_spans(A, in, sc, err) || score_metrics(in, sc, err)) return -1;
    sc->fig.span_words = sc->longest.words;
    const cs_text_audit_opts *o = A->o;
    if (!sc->cont) {
        A->st->unknown_prompt++;
        cs_text_notef(o->note, o->note_ctx, "%s:%lld: unknown prompt%s%s (judged on its spans only)", A->path,
                      (long long)in->line, in->id ? " id " : "", in->id ? in->id : "");
    }
    if (sc->fig.empty) {
        A->st->empty++;
        cs_text_notef(o->note, o->note_ctx, "%s:%lld: empty completion (recorded)", A->path, (long long)in->line);
    }
    return 0;
}

void cs_text_scored_free(cs_text_scored *sc) {
    cs_text_chars_free(&sc->chars);
    cs_text_norm_free(&sc->q);
    free(sc->spans);
    free(sc->cont);
    memset(sc, 0, sizeof *sc);
}
