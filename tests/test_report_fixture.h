/* test_report_fixture.h — a synthetic store for the report tests and bench:
 * runs, prompts, generations (PNG files), matches, findings, refs with
 * thumbnails, prompt_summary and the text-audit tables, written with plain
 * SQL so the reports can be tested without the other commands. Strings carry
 * the XSS payloads and CSV-hostile characters the tests look for. */
#ifndef TEST_REPORT_FIXTURE_H
#define TEST_REPORT_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/image.h"
#include "core/store.h"
#include "reports/report.h"

#define RF_XSS1 "<script>alert(1)</script>"
#define RF_XSS2 "\"><img src=x onerror=alert(1)>"
#define RF_CSV "comma, \"quote\"\nnew line =1+1"
#define RF_NREFS 4
#define RF_ATTRIBUTION "Twemoji by Twitter, CC-BY 4.0 " RF_XSS2

static const char *const rf_captions[RF_NREFS] = {"grinning face", RF_XSS1, RF_XSS2, RF_CSV};
static const char *const rf_sources[RF_NREFS] = {"refs/smile.png", "refs/x.png", "refs/" RF_XSS2 ".png",
                                                  "refs/a,b.png"};
static const char *const rf_prompts[3] = {RF_XSS1 " a photo", RF_XSS2, "plain, \"quoted\"\nprompt"};
static const char *const rf_prompt_keys[3] = {"p-" RF_XSS1, "p2", "p3"};
static const char *const rf_verdicts[4] = {"copy", "near-copy", "partial", "novel"};
#define RF_COMPLETION "jumps over the lazy dog " RF_XSS1 " and then"
/* the novel completion: CSV quoting, a formula lead and a CRLF */
#define RF_TEXT_CSV "=SUM(A1), \"novel\"\r\nline two"
#define RF_CONTINUATION "jumps over the lazy dog and runs away."

/* The thumbnail of reference r (1-based): a distinct pattern per reference. */
static inline void rf_thumb(uint8_t *rgb, int r) {
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = rgb + (y * 64 + x) * 3;
            int on = r == 1 ? (x - 32) * (x - 32) + (y - 32) * (y - 32) < 400
                   : r == 2 ? (x / 8 + y / 8) % 2
                   : r == 3 ? x > y : (x / 16) % 2;
            p[0] = on ? (uint8_t)(60 * r) : 250;
            p[1] = on ? (uint8_t)(200 - 30 * r) : 240;
            p[2] = on ? 40 : 230;
        }
}

static inline int rf_exec(cs_store *s, const char *sql) { return cs_store_exec(s, sql, NULL); }

/* Verdict of finding i (0-based) and its severity: most severe first by i mod 4. */
static inline const char *rf_verdict(int64_t i) { return rf_verdicts[i % 4]; }

/* Builds dir/report.db with n findings (one per generation); images_max
 * distinct generation PNGs are written under dir/gen (later generations reuse
 * them). Generation 1's file name carries an XSS payload. */
static inline cs_store *rf_make_store(const char *dir, int64_t n, int64_t images_max) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.db", dir);
    cs_store *s = NULL;
    cs_err err = {0};
    if (cs_store_open(&s, path, &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/gen", dir);
    mkdir(path, 0755);
    sqlite3 *db = cs_store_db(s);
    sqlite3_stmt *st;
    cs_store_begin(s, NULL);
    cs_store_meta_set(s, "attribution", RF_ATTRIBUTION, NULL);
    uint8_t thumbs[RF_NREFS][64 * 64 * 3];
    sqlite3_prepare_v2(db, "INSERT INTO refs(id, source, caption, width, height, status) VALUES(?,?,?,64,64,'ok')", -1, &st, NULL);
    for (int r = 0; r < RF_NREFS; r++) {
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, r + 1);
        sqlite3_bind_text(st, 2, rf_sources[r], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rf_captions[r], -1, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT INTO ref_thumbs(ref_id, w, h, rgb) VALUES(?,64,64,?)", -1, &st, NULL);
    for (int r = 0; r < RF_NREFS; r++) {
        rf_thumb(thumbs[r], r + 1);
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, r + 1);
        sqlite3_bind_blob(st, 2, thumbs[r], sizeof thumbs[r], SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    rf_exec(s, "INSERT INTO runs(id, suite, command, model, model_sha256, settings_json) VALUES(1, "
               "'demo <b>suite</b>', 'copyscope generate', 'empirical', 'abc123', '{\"steps\": 10}')");
    sqlite3_prepare_v2(db, "INSERT INTO prompts(id, run_id, key, text, kind) VALUES(?,1,?,?,?)", -1, &st, NULL);
    for (int p = 0; p < 3; p++) {
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, p + 1);
        sqlite3_bind_text(st, 2, rf_prompt_keys[p], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rf_prompts[p], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, p == 2 ? "completion" : "txt2img", -1, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    sqlite3_stmt *g, *f, *mt;
    sqlite3_prepare_v2(db, "INSERT INTO generations(id, run_id, prompt_id, seed, path, whitebox, settings_json) "
                           "VALUES(?,1,?,?,?,?,'{\"sampler\": \"euler\", \"steps\": 10}')", -1, &g, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO findings(id, generation_id, ref_id, verdict, severity, evidence_json) "
                           "VALUES(?,?,?,?,?,?)", -1, &f, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO matches(generation_id, ref_id, descriptor, score, rank) VALUES(?,?,?,?,?)",
                       -1, &mt, NULL);
    cs_image img = {0};
    cs_image_alloc(&img, 64, 64, NULL);
    for (int64_t i = 0; i < n; i++) {
        int ref = (int)(i % RF_NREFS) + 1, prompt = (int)(i % 3) + 1;
        int64_t file = i < images_max ? i : i % images_max;
        if (file == 1) snprintf(path, sizeof path, "%s/gen/%s.png", dir, RF_XSS2);
        else snprintf(path, sizeof path, "%s/gen/g%lld.png", dir, (long long)file);
        if (i < images_max) {
            /* the generation: its reference with a few changed pixels (more for milder verdicts) */
            memcpy(img.rgb, thumbs[ref - 1], sizeof thumbs[0]);
            for (int k = 0; k < (int)(i % 4) * 200; k++) img.rgb[(k * 37 % 4096) * 3] ^= 0xFF;
            cs_image_save_png(&img, path, NULL, 0, NULL);
        }
        sqlite3_reset(g);
        sqlite3_bind_int64(g, 1, i + 1);
        sqlite3_bind_int(g, 2, prompt);
        sqlite3_bind_int64(g, 3, 1000 + i);
        sqlite3_bind_text(g, 4, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(g, 5, 0.05 * (double)(i % 20));
        sqlite3_step(g);
        char ev[512];
        if (i == 2)
            snprintf(ev, sizeof ev, "{\"schema\":\"copyscope.evidence/1\",\"rule\":\"completion\",\"completion\":"
                                    "{\"original_ref_id\":1,\"rect\":[16,16,32,32],\"restored\":true}}");
        else if (i == 5)
            snprintf(ev, sizeof ev, "not json " RF_XSS1);
        else
            snprintf(ev, sizeof ev, "{\"schema\":\"copyscope.evidence/1\",\"rule\":\"copy_tl2\",\"note\":\"%s\","
                                    "\"tl2\":{\"distance\":%.3f,\"mirrored\":false,\"tiles\":[1,2,3,4,5,6,7,8,9]}}",
                     "\\\"><img src=x onerror=alert(1)>", 0.01 * (double)(i % 4));
        sqlite3_reset(f);
        sqlite3_bind_int64(f, 1, i + 1);
        sqlite3_bind_int64(f, 2, i + 1);
        sqlite3_bind_int(f, 3, ref);
        sqlite3_bind_text(f, 4, rf_verdict(i), -1, SQLITE_STATIC);
        sqlite3_bind_double(f, 5, 3.99 - (double)(i % 4) - 0.5 * (double)i / (double)n);
        sqlite3_bind_text(f, 6, ev, -1, SQLITE_TRANSIENT);
        sqlite3_step(f);
        for (int d = 0; d < 2; d++)
            for (int rank = 0; rank < 2; rank++) {
                sqlite3_reset(mt);
                sqlite3_bind_int64(mt, 1, i + 1);
                sqlite3_bind_int(mt, 2, rank == 0 ? ref : ref % RF_NREFS + 1);
                sqlite3_bind_text(mt, 3, d == 0 ? "tl2" : "pdq", -1, SQLITE_STATIC);
                sqlite3_bind_double(mt, 4, d == 0 ? 0.01 * (double)(i % 4) + 0.2 * rank : (double)(i % 4 * 10 + rank * 50));
                sqlite3_bind_int(mt, 5, rank);
                sqlite3_step(mt);
            }
    }
    cs_image_free(&img);
    sqlite3_finalize(g);
    sqlite3_finalize(f);
    sqlite3_finalize(mt);
    rf_exec(s, "INSERT INTO analyses(id, run_id, settings_json, descriptors, n_refs) VALUES(1, 1, '{}', 'tl2,pdq', 4)");
    rf_exec(s, "INSERT INTO prompt_summary VALUES(1, 1, 1, 2, 1, 1, 0, 0, 1.0, 0.99, 0.01, NULL, 0.25, 2, 1)");
    /* text audit */
    rf_exec(s, "INSERT INTO text_docs(id, source, name, status) VALUES(1, 'corpus/nyt.txt', 'nyt <i>article</i>', 'ok')");
    sqlite3_prepare_v2(db, "INSERT INTO text_prompts(id, key, doc_id, start_word, prefix_words, cont_words, prompt, "
                           "continuation) VALUES(1, 'doc1:0', 1, 0, 4, 8, 'The quick brown fox', ?)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, RF_CONTINUATION, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
    rf_exec(s, "INSERT INTO text_audits(id, source, settings_json) VALUES(1, 'completions.jsonl', '{}')");
    sqlite3_prepare_v2(db, "INSERT INTO text_completions(id, audit_id, line, prompt_key, prompt_id, model, completion) "
                           "VALUES(?, 1, ?, 'doc1:0', 1, 'ngram', ?)", -1, &st, NULL);
    for (int c = 0; c < 2; c++) {
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, c + 1);
        sqlite3_bind_int(st, 2, c + 1);
        sqlite3_bind_text(st, 3, c == 0 ? RF_COMPLETION : RF_TEXT_CSV, -1, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    rf_exec(s, "INSERT INTO text_findings(id, audit_id, completion_id, prompt_id, status, verdict, longest_chars, "
               "longest_words, longest_doc_id, n_spans, exact_prefix_words, rouge_l_f1, edit_sim, evidence_json) "
               "VALUES(1, 1, 1, 1, 'ok', 'verbatim', 23, 5, 1, 1, 5, 0.6, 0.5, '{}'),"
               "(2, 1, 2, 1, 'ok', 'novel', 0, 0, NULL, 0, 0, 0.0, 0.1, '{}')");
    rf_exec(s, "INSERT INTO text_spans(finding_id, rank, comp_start, comp_end, chars, words, doc_id, doc_start, "
               "doc_end, text) VALUES(1, 0, 0, 23, 23, 5, 1, 20, 43, 'jumps over the lazy dog')");
    if (cs_store_commit(s, &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        cs_store_close(s);
        return NULL;
    }
    return s;
}

/* The report of the fixture's store in fmt (malloc'd; NULL, said on stderr,
 * when it fails). top: findings listed (0: the default). */
static inline char *rf_render(cs_store *s, cs_report_format fmt, int64_t top, int threads) {
    cs_report_opts o = {0};
    o.format = fmt;
    o.top = top;
    o.threads = threads;
    o.generator = "copyscope test";
    cs_buf b = {0};
    cs_err err = {0};
    if (cs_report_render(s, &o, &b, &err)) {
        fprintf(stderr, "render: %s\n", err.msg);
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_take(&b);
}

/* Closes the store and removes its folder (kept with CS_KEEP set); frees dir. */
static inline void rf_finish(cs_store *s, char *dir) {
    cs_store_close(s);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("CS_KEEP")) {
        int rc = system(cmd);
        (void)rc;
    }
    free(dir);
}

#endif
