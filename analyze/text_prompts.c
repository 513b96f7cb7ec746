/* text_prompts.c — prompts cut from the corpus, their continuations kept. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/text_audit.h"
#include "analyze/text_metrics.h"
#include "analyze/text_store.h"

/* ---- prompts ---- */

static int prompts_for_doc(cs_store *s, const cs_text_corpus *c, int shard, uint64_t di, const cs_text_prompt_opts *o,
                           sqlite3_stmt *ins, FILE *out, int64_t *n_written, cs_err *err) {
    (void)s;
    const cs_text_shard *sh = &c->shards[shard];
    /* the normal form is not stored: the document normalised again, as the
     * build did (the same text and offset map) */
    cs_text_norm nf;
    if (cs_text_normalize(&nf, (const char *)sh->raw.text + sh->raw_start[di], sh->raw_len[di], err)) {
        cs_text_norm_free(&nf);
        return -1;
    }
    const char *text = nf.text;
    size_t len = nf.len;
    int64_t doc_id = sh->doc_id[di];
    cs_text_word *w;
    size_t nw;
    if (cs_text_words(text, len, &w, &nw, err)) {
        cs_text_norm_free(&nf);
        return -1;
    }
    size_t W = (size_t)o->prefix_words + (size_t)o->cont_words;
    if (nw < W) {
        cs_text_notef(o->note, o->note_ctx, "document %lld: %zu words, fewer than %zu (skipped)", (long long)doc_id, nw, W);
        free(w);
        cs_text_norm_free(&nf);
        return 0;
    }
    const cs_text_anchor *a = nf.anchors;
    size_t na = nf.n_anchors;
    int rc = 0;
    int K = o->per_doc > 0 ? o->per_doc : 1;
    size_t last = (size_t)-1;
    for (int k = 0; k < K && !rc; k++) {
        size_t st = K == 1 ? 0 : (size_t)((unsigned __int128)k * (nw - W) / (size_t)(K - 1));
        if (st == last) continue;
        last = st;
        size_t p0 = w[st].off, p1 = w[st + o->prefix_words - 1].off + w[st + o->prefix_words - 1].len;
        size_t c0 = w[st + o->prefix_words].off, c1 = w[st + W - 1].off + w[st + W - 1].len;
        char key[128];
        snprintf(key, sizeof key, "d%lld.w%zu.p%d.c%d", (long long)doc_id, st, o->prefix_words, o->cont_words);
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 2, doc_id);
        sqlite3_bind_int64(ins, 3, (int64_t)st);
        sqlite3_bind_int(ins, 4, o->prefix_words);
        sqlite3_bind_int(ins, 5, o->cont_words);
        sqlite3_bind_text(ins, 6, text + p0, (int)(p1 - p0), SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, text + c0, (int)(c1 - c0), SQLITE_STATIC);
        sqlite3_bind_int64(ins, 8, (int64_t)cs_text_orig_offset(a, na, c0));
        sqlite3_bind_int64(ins, 9, (int64_t)cs_text_orig_offset(a, na, c1));
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = cs_store_fail(s, err, "insert text_prompts");
            break;
        }
        cJSON *j = cJSON_CreateObject();
        char *ptxt = strndup(text + p0, p1 - p0);
        char *line = NULL;
        if (j && ptxt && cJSON_AddStringToObject(j, "prompt_id", key) && cJSON_AddStringToObject(j, "prompt", ptxt))
            line = cJSON_PrintUnformatted(j);
        if (!line) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (fprintf(out, "%s\n", line) < 0) rc = cs_fail(err, CS_EIO, "prompts: write failed: %s", strerror(errno));
        else (*n_written)++;
        free(line);
        free(ptxt);
        cJSON_Delete(j);
    }
    cs_text_norm_free(&nf);
    free(w);
    return rc;
}

/* A document by name; a number that names none is read as its id. */
static int find_named(const cs_text_corpus *c, const char *name, int *sh, uint64_t *di) {
    if (!cs_text_corpus_find_name(c, name, sh, di)) return 0;
    char *end;
    long long id = strtoll(name, &end, 10);
    return *name && !*end && id > 0 ? cs_text_corpus_find_doc(c, id, sh, di) : -1;
}

int cs_text_prompts(cs_store *s, const cs_text_corpus *c, const cs_text_prompt_opts *o, FILE *out,
                    int64_t *n_written, cs_err *err) {
    int64_t local = 0;
    if (!n_written) n_written = &local;
    *n_written = 0;
    if (o->prefix_words <= 0 || o->cont_words <= 0)
        return cs_fail(err, CS_EUSAGE, "prompts: --prefix-words and --continuation-words must be positive");
    if (o->cont_words > CS_TEXT_MAX_CONT_WORDS) /* ROUGE-L and edit distance are quadratic */
        return cs_fail(err, CS_EUSAGE, "prompts: --continuation-words is at most %d", CS_TEXT_MAX_CONT_WORDS);
    sqlite3_stmt *ins;
    if (cs_text_prompt_insert_prepare(s, (void **)&ins, err)) return -1;
    int rc = cs_store_begin(s, err);
    if (!rc && o->doc_names) {
        for (size_t i = 0; i < o->n_names && !rc; i++) {
            int sh;
            uint64_t di;
            if (find_named(c, o->doc_names[i], &sh, &di)) {
                cs_text_notef(o->note, o->note_ctx, "document %s: not in the index (skipped)", o->doc_names[i]);
                continue;
            }
            rc = prompts_for_doc(s, c, sh, di, o, ins, out, n_written, err);
        }
    } else if (!rc) {
        for (int sh = 0; sh < c->n_shards && !rc; sh++)
            for (uint64_t di = 0; di < c->shards[sh].n_docs && !rc; di++)
                rc = prompts_for_doc(s, c, sh, di, o, ins, out, n_written, err);
    }
    sqlite3_finalize(ins);
    if (!rc) rc = cs_store_commit(s, err);
    if (rc) cs_store_rollback(s);
    return rc;
}

