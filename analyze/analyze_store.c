/* analyze_store.c — every statement of the analysis on the store: it is the
 * one writer of analyses, analysis_skipped, matches, findings and
 * prompt_summary, and reads the run's generations, completion prompts and
 * (only_new) the findings it keeps. Runs, prompts and generations of an
 * --images analysis are written through core/store_runs.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze_internal.h"
#include "core/hash_sha256.h"
#include "core/store_runs.h"

/* ---- reading the run ---- */

int an_store_load_run(cs_store *s, int64_t run_id, items *it, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT 1 FROM runs WHERE id = ?", err)) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found) return cs_fail(err, CS_ENOTFOUND, "run %lld: no such run", (long long)run_id);
    if (cs_store_prepare(s, &st,
                         "SELECT id, prompt_id, path, seed, whitebox FROM generations "
                         "WHERE run_id = ? ORDER BY id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        item x = {0};
        x.gen_id = sqlite3_column_int64(st, 0);
        x.prompt_id = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
        x.path = strdup((const char *)sqlite3_column_text(st, 2));
        x.seed = sqlite3_column_int64(st, 3);
        x.has_whitebox = sqlite3_column_type(st, 4) != SQLITE_NULL;
        x.whitebox = sqlite3_column_double(st, 4);
        if (!x.path || an_items_push(it, x)) {
            free(x.path);
            sqlite3_finalize(st);
            return cs_fail(err, CS_ENOMEM, "run %lld: out of memory", (long long)run_id);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading generations");
    return 0;
}

/* Reads the run's completion tasks (an_task_parse) and points their
 * generations at them. */
int an_store_load_tasks(cs_store *s, int64_t run_id, items *it, an_tasks *tk, const cs_ref_thumbs *th,
                        cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, task_json, expect_ref FROM prompts WHERE run_id = ? AND kind = 'completion' "
                         "ORDER BY id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        an_task *nv = realloc(tk->v, sizeof(an_task) * (size_t)(tk->n + 1));
        if (!nv) {
            sqlite3_finalize(st);
            return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        }
        tk->v = nv;
        an_task *t = &tk->v[tk->n++];
        memset(t, 0, sizeof *t);
        t->prompt_id = sqlite3_column_int64(st, 0);
        if (an_task_parse(t, (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                          th, err)) {
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cs_store_fail(s, err, "reading completion tasks");
    for (int64_t i = 0; i < it->n; i++)
        for (int64_t k = 0; k < tk->n; k++)
            if (it->v[i].prompt_id == tk->v[k].prompt_id) it->v[i].task = &tk->v[k];
    return 0;
}

/* Marks the generations that have a finding as old, with what
 * prompt_summary needs of it: the verdict, the aligned tiled L2 of the
 * matched reference (evidence tl2.aligned_distance) and the largest cosine
 * of the embedding column emb (matches). it is ordered by generation id. */
int an_store_keep_old(cs_store *s, int64_t run_id, items *it, const char *emb, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT g.id, f.verdict, json_extract(f.evidence_json, '$.tl2.aligned_distance'), "
                         "(SELECT MAX(score) FROM matches m WHERE m.generation_id = g.id AND m.descriptor = ?2) "
                         "FROM generations g JOIN findings f ON f.generation_id = g.id "
                         "WHERE g.run_id = ?1 ORDER BY g.id, f.id", err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, emb ? emb : "embedding", -1, SQLITE_STATIC);
    int rc;
    int64_t i = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t gid = sqlite3_column_int64(st, 0);
        while (i < it->n && it->v[i].gen_id < gid) i++;
        if (i == it->n) break;
        if (it->v[i].gen_id != gid) continue;
        item *x = &it->v[i]; /* a later finding of the same generation overrides */
        int v = cs_verdict_parse((const char *)sqlite3_column_text(st, 1));
        x->old = 1;
        x->old_verdict = v < 0 ? CS_V_NOVEL : v;
        x->old_dal = sqlite3_column_type(st, 2) == SQLITE_NULL ? INFINITY : sqlite3_column_double(st, 2);
        x->old_cos = sqlite3_column_type(st, 3) == SQLITE_NULL ? -2 : sqlite3_column_double(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return cs_store_fail(s, err, "reading the findings");
    return 0;
}

/* ---- an --images analysis: its run, prompts and generations ---- */

/* The prompt of item x in run (the PNG's prompt text; one row per text). */
static int images_prompt(cs_store *s, int64_t run, item *x, int64_t *np, cs_err *err) {
    const char *text = x->prompt ? x->prompt : "";
    if (cs_prompt_find_text(s, run, text, &x->prompt_id, err)) return -1;
    if (x->prompt_id) return 0;
    char key[32];
    snprintf(key, sizeof key, "p%lld", (long long)++*np);
    cs_prompt_row p = {.key = key, .text = text};
    return cs_prompt_add(s, run, &p, &x->prompt_id, err);
}

int an_store_images_run_begin(cs_store *s, char *const *dirs, int n_dirs, int64_t *run_id, cs_err *err) {
    char cmd[2048] = "analyze --images";
    for (int d = 0; d < n_dirs; d++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " %s", dirs[d]);
    }
    cs_run_row run = {.suite = "images", .command = cmd, .model = "external"};
    return cs_run_add(s, &run, run_id, err);
}

int an_store_images_add(cs_store *s, int64_t run_id, items *it, int64_t *np, cs_err *err) {
    if (cs_store_begin(s, err)) return -1;
    for (int64_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
        if (!x->ok) continue;
        if (images_prompt(s, run_id, x, np, err)) goto fail;
        char sha[65] = "";
        cs_err e2 = {0};
        cs_sha256_file_hex(x->path, sha, &e2);
        /* the file's position keeps (prompt, seed, sample) unique */
        cs_generation_row g = {.run_id = run_id, .prompt_id = x->prompt_id, .seed = x->seed < 0 ? 0 : x->seed,
                               .sample = (int)x->pos, .path = x->path, .sha256 = sha[0] ? sha : NULL,
                               .whitebox = NAN};
        if (cs_generation_put(s, &g, &x->gen_id, err)) goto fail;
    }
    return cs_store_commit(s, err);
fail:
    cs_store_rollback(s);
    return -1;
}

int an_store_add_skipped(an_state *A, char **paths, char **errors, int64_t n, cs_err *err) {
    cs_store *s = A->s;
    sqlite3_stmt *st = NULL;
    if (n == 0) return 0;
    if (cs_store_begin(s, err)) return -1;
    if (cs_store_prepare(s, &st, "INSERT INTO analysis_skipped(analysis_id, path, error) VALUES(?,?,?)", err))
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, A->sum->analysis_id);
        sqlite3_bind_text(st, 2, paths[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, errors[i] ? errors[i] : "cannot decode", -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            cs_store_fail(s, err, "recording a skipped file");
            goto fail;
        }
    }
    sqlite3_finalize(st);
    return cs_store_commit(s, err);
fail:
    sqlite3_finalize(st);
    cs_store_rollback(s);
    return -1;
}

/* ---- the analysis ---- */

/* The analyses row (sum->analysis_id) and one analysis_skipped row per
 * generation that could not be read, in one transaction. */
int an_store_begin_analysis(an_state *A, cs_err *err) {
    cs_store *s = A->s;
    cs_analyze_summary *sum = A->sum;
    char *settings_json = cs_an_settings_json(A->set);
    sqlite3_stmt *st = NULL;
    if (cs_store_begin(s, err)) goto fail;
    char mark[96]; /* earlier unfinished analyses of the run were killed: say so (schema 0019) */
    snprintf(mark, sizeof mark, "UPDATE analyses SET interrupted = 1 WHERE run_id = %lld AND finished IS NULL",
             (long long)sum->run_id);
    if (cs_store_exec(s, mark, err)) goto rollback;
    if (cs_store_prepare(s, &st, "INSERT INTO analyses(run_id, settings_json, descriptors, n_refs) VALUES(?,?,?,?)", err))
        goto rollback;
    sqlite3_bind_int64(st, 1, sum->run_id);
    sqlite3_bind_text(st, 2, settings_json ? settings_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sum->descriptors, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, sum->n_refs);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(s, err, "recording the analysis");
        goto rollback;
    }
    sum->analysis_id = sqlite3_last_insert_rowid(cs_store_db(s));
    sqlite3_finalize(st);
    st = NULL;
    if (cs_store_prepare(s, &st, "INSERT INTO analysis_skipped(analysis_id, path, error) VALUES(?,?,?)", err))
        goto rollback;
    for (int64_t i = 0; i < A->it.n; i++) {
        const item *x = &A->it.v[i];
        if (x->ok || x->old) continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sum->analysis_id);
        sqlite3_bind_text(st, 2, x->path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, x->error ? x->error : "cannot decode", -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            cs_store_fail(s, err, "recording a skipped file");
            goto rollback;
        }
    }
    sqlite3_finalize(st);
    free(settings_json);
    return cs_store_commit(s, err);
rollback:
    cs_store_rollback(s);
fail:
    sqlite3_finalize(st);
    free(settings_json);
    return -1;
}

int an_writer_open(an_state *A, cs_err *err) {
    an_writer *w = &A->w;
    cs_store *s = A->s;
    return cs_store_prepare(s, &w->del_m, "DELETE FROM matches WHERE generation_id = ?", err) ||
                   cs_store_prepare(s, &w->del_f, "DELETE FROM findings WHERE generation_id = ?", err) ||
                   cs_store_prepare(s, &w->ins_m,
                                    "INSERT INTO matches(generation_id, ref_id, descriptor, score, rank) "
                                    "VALUES(?,?,?,?,?)", err) ||
                   cs_store_prepare(s, &w->ins_f,
                                    "INSERT INTO findings(generation_id, ref_id, verdict, severity, evidence_json) "
                                    "VALUES(?,?,?,?,?)", err)
               ? -1
               : 0;
}

void an_writer_close(an_writer *w) {
    sqlite3_finalize(w->del_m);
    sqlite3_finalize(w->del_f);
    sqlite3_finalize(w->ins_m);
    sqlite3_finalize(w->ins_f);
    memset(w, 0, sizeof *w);
}

static int write_list(cs_store *s, an_writer *w, int64_t gen, const char *desc, const cs_an_hit *h, int n,
                      const cs_an_refs *refs, cs_err *err) {
    for (int k = 0; k < n; k++) {
        if (h[k].row < 0) continue;
        sqlite3_reset(w->ins_m);
        sqlite3_bind_int64(w->ins_m, 1, gen);
        sqlite3_bind_int64(w->ins_m, 2, refs->ids[h[k].row]);
        sqlite3_bind_text(w->ins_m, 3, desc, -1, SQLITE_STATIC);
        sqlite3_bind_double(w->ins_m, 4, h[k].score);
        sqlite3_bind_int(w->ins_m, 5, k);
        if (sqlite3_step(w->ins_m) != SQLITE_DONE) return cs_store_fail(s, err, "writing matches");
    }
    return 0;
}

/* the "fused" list: the neighbours in the finding's order, score = fused z */
static int write_fused(cs_store *s, an_writer *w, int64_t gen, const cs_an_result *r, const cs_an_refs *refs,
                       cs_err *err) {
    cs_an_hit h[CS_AN_NB];
    for (int k = 0; k < r->n_nb; k++) h[k] = (cs_an_hit){r->nb[k].row, r->nb[k].fused};
    return write_list(s, w, gen, "fused", h, r->n_nb, refs, err);
}

/* One generation: its old matches and finding replaced by r's. */
static int write_one(an_state *A, const item *x, const cs_an_result *r, cs_err *err) {
    cs_store *s = A->s;
    an_writer *w = &A->w;
    const cs_an_refs *refs = &A->refs;
    int64_t gen = x->gen_id;
    sqlite3_reset(w->del_m);
    sqlite3_bind_int64(w->del_m, 1, gen);
    sqlite3_reset(w->del_f);
    sqlite3_bind_int64(w->del_f, 1, gen);
    if (sqlite3_step(w->del_m) != SQLITE_DONE || sqlite3_step(w->del_f) != SQLITE_DONE)
        return cs_store_fail(s, err, "replacing old matches");
    const char *emb_name = A->emb_name;
    if (write_list(s, w, gen, "tl2", r->tl2, r->n_tl2, refs, err) ||
        write_list(s, w, gen, "layout", r->lay, r->n_lay, refs, err) ||
        write_list(s, w, gen, "pdq", r->pdq, r->n_pdq, refs, err) ||
        write_list(s, w, gen, "phash", r->phash, r->n_phash, refs, err) ||
        write_list(s, w, gen, "dhash", r->dhash, r->n_dhash, refs, err) ||
        write_list(s, w, gen, emb_name ? emb_name : "embedding", r->emb, r->n_emb, refs, err) ||
        write_list(s, w, gen, "local", r->lf, r->n_lf, refs, err) || write_fused(s, w, gen, r, refs, err))
        return -1;
    char *ev = an_evidence_json(A, r, x);
    sqlite3_reset(w->ins_f);
    sqlite3_bind_int64(w->ins_f, 1, gen);
    int64_t fref = r->has_best ? refs->ids[r->best.row] : -1;
    if (x->audited)
        fref = refs->ids[x->comp.verdict == CS_V_PARTIAL && x->comp.other_row >= 0 ? x->comp.other_row
                                                                                   : x->comp.orig_row];
    if (fref >= 0) sqlite3_bind_int64(w->ins_f, 2, fref);
    else sqlite3_bind_null(w->ins_f, 2);
    sqlite3_bind_text(w->ins_f, 3, cs_verdict_name(r->verdict), -1, SQLITE_STATIC);
    sqlite3_bind_double(w->ins_f, 4, r->severity);
    sqlite3_bind_text(w->ins_f, 5, ev ? ev : "{}", -1, SQLITE_TRANSIENT);
    free(ev);
    if (sqlite3_step(w->ins_f) != SQLITE_DONE) return cs_store_fail(s, err, "writing findings");
    return 0;
}

/* A chunk's matches and findings (cx[j]'s result is cr[j]), one transaction. */
int an_store_write_chunk(an_state *A, item *const *cx, const cs_an_result *cr, int64_t n, cs_err *err) {
    if (cs_store_begin(A->s, err)) return -1;
    for (int64_t j = 0; j < n; j++)
        if (write_one(A, cx[j], &cr[j], err)) {
            cs_store_rollback(A->s);
            return -1;
        }
    return cs_store_commit(A->s, err);
}

static void bind_psum(sqlite3_stmt *st, const an_state *A, const psum *p, int flag) {
    const cs_analyze_summary *sum = A->sum;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, sum->run_id);
    sqlite3_bind_int64(st, 2, p->prompt_id);
    sqlite3_bind_int64(st, 3, sum->analysis_id);
    sqlite3_bind_int64(st, 4, p->n);
    sqlite3_bind_int64(st, 5, p->count[CS_V_COPY]);
    sqlite3_bind_int64(st, 6, p->count[CS_V_NEAR]);
    sqlite3_bind_int64(st, 7, p->count[CS_V_PARTIAL]);
    sqlite3_bind_int64(st, 8, p->count[CS_V_NOVEL]);
    sqlite3_bind_double(st, 9, (double)(p->count[CS_V_COPY] + p->count[CS_V_NEAR]) / (double)p->n);
    if (isfinite(p->min_tl2)) {
        sqlite3_bind_double(st, 10, 1.0 - p->min_tl2 < 0 ? 0 : 1.0 - p->min_tl2);
        sqlite3_bind_double(st, 11, p->min_tl2);
    } else {
        sqlite3_bind_null(st, 10);
        sqlite3_bind_null(st, 11);
    }
    if (p->max_cos > -2) sqlite3_bind_double(st, 12, p->max_cos);
    else sqlite3_bind_null(st, 12);
    if (p->wb_n) sqlite3_bind_double(st, 13, p->wb_sum / (double)p->wb_n);
    else sqlite3_bind_null(st, 13);
    sqlite3_bind_int64(st, 14, p->largest_clique);
    sqlite3_bind_int(st, 15, flag);
}

/* The prompt summaries ps[np] and the analysis's finished stamp and counts,
 * one transaction; counts the prompts with a clique >= clique_k. */
int an_store_finish(an_state *A, const psum *ps, int64_t np, cs_err *err) {
    cs_store *s = A->s;
    cs_analyze_summary *sum = A->sum;
    sqlite3_stmt *st = NULL;
    if (cs_store_begin(s, err)) return -1;
    if (cs_store_prepare(s, &st,
                         "INSERT OR REPLACE INTO prompt_summary(run_id, prompt_id, analysis_id, n_generations, "
                         "n_copy, n_near_copy, n_partial, n_novel, memorisation_rate, max_similarity, min_tl2, "
                         "max_embed_cos, mean_whitebox, largest_clique, clique_flag) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", err))
        goto fail;
    for (int64_t j = 0; j < np; j++) {
        const psum *p = &ps[j];
        if (p->prompt_id == 0) continue; /* generations without a prompt row */
        int flag = p->largest_clique >= A->set->clique_k;
        sum->n_clique_prompts += flag;
        bind_psum(st, A, p, flag);
        if (sqlite3_step(st) != SQLITE_DONE) {
            cs_store_fail(s, err, "writing the prompt summary");
            goto fail;
        }
    }
    sqlite3_finalize(st);
    if (cs_store_prepare(s, &st,
                         "UPDATE analyses SET finished = datetime('now'), n_generations = ?, n_skipped = ? "
                         "WHERE id = ?", err))
        goto fail;
    sqlite3_bind_int64(st, 1, sum->n_generations);
    sqlite3_bind_int64(st, 2, sum->n_skipped);
    sqlite3_bind_int64(st, 3, sum->analysis_id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        cs_store_fail(s, err, "finishing the analysis");
        goto fail;
    }
    sqlite3_finalize(st);
    return cs_store_commit(s, err);
fail:
    sqlite3_finalize(st);
    cs_store_rollback(s);
    return -1;
}

int cs_analyze_skipped(cs_store *s, int64_t analysis_id, char **why, int max) {
    sqlite3_stmt *st;
    int n = 0;
    if (cs_store_prepare(s, &st, "SELECT path, error FROM analysis_skipped WHERE analysis_id = ? LIMIT ?", NULL))
        return 0;
    sqlite3_bind_int64(st, 1, analysis_id);
    sqlite3_bind_int(st, 2, max);
    while (n < max && sqlite3_step(st) == SQLITE_ROW) {
        const char *e = (const char *)sqlite3_column_text(st, 1);
        if (!(why[n] = strdup(e ? e : "(null)"))) break;
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* ---- is an analysis needed? ---- */

int cs_analyze_needed(cs_store *s, int64_t run_id, const cs_an_settings *set, int reanalyze, int settings_changed,
                      char *why, size_t wn, cs_err *err) {
    int64_t missing, thumbs;
    if (cs_store_query_i64(s,
                           "SELECT COUNT(*) FROM generations g WHERE g.run_id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM findings f WHERE f.generation_id = g.id)",
                           run_id, 0, &missing, err) ||
        cs_store_query_i64(s, "SELECT COUNT(*) FROM ref_thumbs", 0, 0, &thumbs, err))
        return -1;
    if (reanalyze) return snprintf(why, wn, "--reanalyze"), 1;
    if (settings_changed) return snprintf(why, wn, "descriptors or embedder given"), 1;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT settings_json, n_refs, finished IS NOT NULL FROM analyses WHERE run_id = ? "
                         "ORDER BY id DESC LIMIT 1",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int need = 1;
    if (sqlite3_step(st) != SQLITE_ROW) snprintf(why, wn, "not analysed yet");
    else {
        char *cur = cs_an_settings_json(set);
        const char *prev = (const char *)sqlite3_column_text(st, 0);
        if (!cur || !prev || strcmp(cur, prev)) snprintf(why, wn, "analysis settings changed");
        else if (sqlite3_column_int64(st, 1) != thumbs)
            snprintf(why, wn, "the index changed (%lld references, analysed against %lld)", (long long)thumbs,
                     (long long)sqlite3_column_int64(st, 1));
        else if (!sqlite3_column_int(st, 2)) snprintf(why, wn, "the last analysis did not finish");
        else if (missing) {
            snprintf(why, wn, "%lld generation%s without a finding: analysing only %s", (long long)missing,
                     missing == 1 ? "" : "s", missing == 1 ? "it" : "those");
            need = 2;
        } else need = 0;
        free(cur);
    }
    sqlite3_finalize(st);
    return need;
}
