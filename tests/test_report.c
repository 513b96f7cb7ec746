/* test_report.c — reports/: escaping (both XSS payloads, text and attribute
 * contexts), HTML well-formedness (xmllint, HTML and XML parsers) and its
 * expected elements, JSON parsed back against the store, CSV round trip
 * through an independent RFC 4180 parser, Markdown escaping, safe output
 * paths, and the CLI. Every store is synthetic (test_report_fixture.h). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reports/escape.h"
#include "reports/formats.h"
#include "reports/panels.h"
#include "reports/report.h"
#include "tests/t.h"
#include "tests/test_uri_fixture.h"
#include "tests/test_report_fixture.h"

#define NF 9 /* findings in the small fixture */

static char *dir;       /* scratch folder with the fixture store */
static cs_store *store;

static char *render(cs_report_format fmt, int64_t top) { return rf_render(store, fmt, top, 2); }

static char *write_tmp(const char *name, const char *data) {
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", dir, name);
    cs_err err = {0};
    if (cs_report_save(p, data, strlen(data), &err)) fprintf(stderr, "save: %s\n", err.msg);
    return p;
}

/* Runs a shell command, returns its stdout (malloc'd) and exit status. */
static char *run(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    cs_buf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) cs_buf_put(&b, tmp, n);
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return cs_buf_take(&b);
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* ---- escaping, unit level ---- */

static char *esc(void (*fn)(cs_buf *, const char *), const char *s) {
    cs_buf b = {0};
    fn(&b, s);
    return cs_buf_take(&b);
}

static void test_escape_html(void) {
    char *a = esc(cs_esc_html, RF_XSS1), *b = esc(cs_esc_html, RF_XSS2);
    CHECK(!strcmp(a, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    CHECK(!strcmp(b, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    free(a);
    free(b);
    a = esc(cs_esc_html, "it's & \"x\"");
    CHECK(!strcmp(a, "it&#39;s &amp; &quot;x&quot;"));
    free(a);
    /* invalid UTF-8 and a control character become U+FFFD; valid UTF-8 stays */
    a = esc(cs_esc_html, "a\xff" "b\x01" "c\xc3\xa9\xe2\x82");
    CHECK(!strcmp(a, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd"));
    free(a);
    a = esc(cs_esc_html, "\xed\xa0\x80"); /* a UTF-16 surrogate: invalid */
    CHECK(!strstr(a, "\xed"));
    free(a);
}

static void test_escape_csv_md_base64(void) {
    char *a = esc(cs_esc_csv, "plain");
    CHECK(!strcmp(a, "plain"));
    free(a);
    a = esc(cs_esc_csv, RF_CSV);
    CHECK(!strcmp(a, "\"comma, \"\"quote\"\"\nnew line =1+1\""));
    free(a);
    a = esc(cs_esc_csv, "=HYPERLINK(\"x\")");
    CHECK(!strcmp(a, "\"'=HYPERLINK(\"\"x\"\")\""));
    free(a);
    a = esc(cs_esc_md, RF_XSS2 " | *b*\n");
    CHECK(!strchr(a, '<') && !strchr(a, '\n'));
    CHECK(strstr(a, "\\|") && strstr(a, "\\*b\\*"));
    free(a);
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"}; /* RFC 4648 */
    for (int i = 0; i < 7; i++) {
        cs_buf b = {0};
        cs_buf_base64(&b, (const uint8_t *)in[i], strlen(in[i]));
        CHECKF(!strcmp(b.p ? b.p : "", out[i]), "base64(%s) = %s", in[i], b.p);
        cs_buf_free(&b);
    }
}

static void test_highlight(void) {
    cs_buf b = {0};
    const int64_t r[3][2] = {{6, 9}, {0, 2}, {8, 100}};
    size_t n = cs_report_highlight(&b, "ab<d> \xc3\xa9" "fgh", r, 3);
    /* ranges sorted, the overlapping two merged, clamped to the string, and the
     * start snapped back to the whole 2-byte character */
    CHECKF(!strcmp(b.p, "<span class=\"verb\">ab</span>&lt;d&gt; <span class=\"verb\">\xc3\xa9" "fgh</span>"), "%s", b.p);
    CHECK(n == 2 + 5);
    cs_buf_free(&b);
}


/* ---- pictures ---- */

static void test_panels(void) {
    uint8_t ref[64 * 64 * 3], inv[64 * 64 * 3];
    rf_thumb(ref, 2);
    for (int i = 0; i < 64 * 64 * 3; i++) inv[i] = (uint8_t)(255 - ref[i]);
    char p[4096];
    snprintf(p, sizeof p, "%s/panel.png", dir);
    cs_image g = {64, 64, ref};
    REQUIRE(cs_image_save_png(&g, p, NULL, 0, NULL) == 0);
    /* identical: zero difference, white heatmap, the pictures decode back to the pixels */
    cs_rpanels pn = {0};
    pn.gen_path = p;
    pn.ref_rgb = ref;
    pn.rw = pn.rh = 64;
    cs_rpanels_make(&pn);
    CHECK(pn.mean_diff == 0);
    cs_image a = {0}, h = {0};
    CHECK(decode_uri(pn.ref_uri, &a) == 0 && a.w == 64 && !memcmp(a.rgb, ref, sizeof ref));
    CHECK(decode_uri(pn.diff_uri, &h) == 0 && h.rgb[0] == 255 && h.rgb[1] == 255 && h.rgb[2] == 255);
    cs_image_free(&a);
    cs_image_free(&h);
    cs_rpanels_free(&pn);
    /* against the inverse: the mean difference is known in closed form; dark red everywhere it saturates */
    double want = 0;
    for (int i = 0; i < 64 * 64 * 3; i++) want += abs(2 * ref[i] - 255) / 255.0;
    want /= 64 * 64 * 3;
    memset(&pn, 0, sizeof pn);
    pn.gen_path = p;
    pn.ref_rgb = inv;
    pn.rw = pn.rh = 64;
    cs_rpanels_make(&pn);
    CHECKF(fabs(pn.mean_diff - want) < 1e-9, "%g vs %g", pn.mean_diff, want);
    CHECK(decode_uri(pn.diff_uri, &h) == 0 && h.rgb[0] == 165 && h.rgb[1] == 0 && h.rgb[2] == 38);
    cs_image_free(&h);
    cs_rpanels_free(&pn);
    /* mirrored: a mirrored reference compared mirrored is equal */
    uint8_t mir[64 * 64 * 3];
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) memcpy(mir + (y * 64 + x) * 3, ref + (y * 64 + 63 - x) * 3, 3);
    memset(&pn, 0, sizeof pn);
    pn.gen_path = p;
    pn.ref_rgb = mir;
    pn.rw = pn.rh = 64;
    pn.ref_mirrored = 1;
    cs_rpanels_make(&pn);
    CHECK(pn.mean_diff == 0);
    cs_rpanels_free(&pn);
    /* the reference's original file, when readable, is the picture shown (the heatmap still uses the thumbnail) */
    memset(&pn, 0, sizeof pn);
    pn.gen_path = p;
    pn.ref_path = p;
    pn.ref_rgb = inv;
    pn.rw = pn.rh = 64;
    cs_rpanels_make(&pn);
    CHECK(decode_uri(pn.ref_uri, &a) == 0 && !memcmp(a.rgb, ref, sizeof ref) && pn.mean_diff > 0.5);
    cs_image_free(&a);
    cs_rpanels_free(&pn);
    /* a missing file: no picture, the reason kept */
    memset(&pn, 0, sizeof pn);
    snprintf(p, sizeof p, "%s/nope.png", dir);
    pn.gen_path = p;
    cs_rpanels_make(&pn);
    CHECK(!pn.gen_uri && strstr(pn.gen_error, "nope.png"));
    cs_rpanels_free(&pn);
}

/* Broken rows: invalid UTF-8 and control characters in a caption, a thumbnail
 * blob of the wrong size, a generation file that is gone. The report still
 * parses (XML and JSON) and says what is missing. */
static void test_bad_rows(void) {
    sqlite3 *db = cs_store_db(store);
    REQUIRE(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_exec(db, "UPDATE refs SET caption = CAST(X'61FF62013CC3' AS TEXT) WHERE id = 1;"
                     "UPDATE ref_thumbs SET rgb = X'000102' WHERE ref_id = 2;"
                     "UPDATE generations SET path = '/nonexistent/gone.png' WHERE id = 3;", NULL, NULL, NULL);
    char *h = render(CS_REPORT_HTML, 0), *j = render(CS_REPORT_JSON, 0);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    REQUIRE(h && j);
    CHECK(strstr(h, "a\xef\xbf\xbd" "b\xef\xbf\xbd&lt;\xef\xbf\xbd") != NULL);
    CHECK(strstr(h, "no thumbnail in the index") != NULL);
    CHECK(strstr(h, "/nonexistent/gone.png") != NULL);
    char *p = write_tmp("bad.html", h);
    char cmd[8192];
    int st;
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s' 2>&1", p);
    char *o = run(cmd, &st);
    CHECKF(st == 0 && o && !o[0], "xmllint: %.1000s", o ? o : "");
    free(o);
    cJSON *r = cJSON_Parse(j);
    CHECK(r != NULL);
    cJSON_Delete(r);
    free(p);
    free(h);
    free(j);
}

/* ---- HTML ---- */

static void test_html_escaped(void) {
    char *h = render(CS_REPORT_HTML, 0);
    REQUIRE(h);
    /* neither payload survives as markup, anywhere */
    CHECK(!strstr(h, "<script"));
    CHECK(!strstr(h, "<img src=x"));
    CHECK(!strstr(h, "onerror=alert(1)>"));
    CHECK(!strstr(h, "<b>suite"));
    CHECK(!strstr(h, "<i>article"));
    /* ... and both render as text: in element text ... */
    CHECK(strstr(h, ">&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    CHECK(strstr(h, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</span>") != NULL ||
          strstr(h, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</td>") != NULL);
    /* ... and in attribute values (img alt/title from captions and file names) */
    CHECK(strstr(h, "alt=\"&lt;script&gt;alert(1)&lt;/script&gt;\"") != NULL);
    CHECK(strstr(h, "title=\"&lt;script&gt;alert(1)&lt;/script&gt;\"") != NULL);
    CHECK(strstr(h, "alt=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\"") != NULL);
    CHECK(strstr(h, "title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\"") != NULL);
    CHECK(strstr(h, "/gen/&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.png\"") != NULL); /* file name, in alt */
    free(h);
}

static void test_html_elements(void) {
    char *h = render(CS_REPORT_HTML, 0);
    REQUIRE(h);
    CHECK(strstr(h, "<table class=\"prompts\">") != NULL);
    CHECK(count_of(h, "<svg ") == 3); /* tl2, pdq, white-box */
    CHECK(count_of(h, "<div class=\"finding ") == NF);
    /* three pictures per finding (generated | reference | heatmap, or original | masked | completion) */
    CHECK(count_of(h, "<img src=\"data:image/png;base64,") == 3 * NF);
    CHECK(strstr(h, ">masked input</div>") != NULL);
    CHECK(strstr(h, ">completion</div>") != NULL);
    CHECK(strstr(h, "id=\"f-1\"") && strstr(h, "href=\"#f-1\""));
    CHECK(strstr(h, "id=\"p-1\"") && strstr(h, "href=\"#p-1\""));
    CHECK(strstr(h, "Twemoji by Twitter, CC-BY 4.0 &quot;&gt;&lt;img") != NULL);
    /* the text finding: the verbatim run in red, in completion and source */
    CHECK(count_of(h, "<span class=\"verb\">jumps over the lazy dog</span>") == 2);
    CHECK(strstr(h, "<span class=\"verb\">jumps over the lazy dog</span> &lt;script&gt;") != NULL);
    /* severity order: finding 1 (copy) precedes finding 2 (near-copy) */
    CHECK(strstr(h, "id=\"f-1\"") < strstr(h, "id=\"f-2\""));
    CHECK(strstr(h, "image-rendering:pixelated") != NULL);
    /* no network: no URL that could be fetched */
    CHECK(!strstr(h, "http:") || count_of(h, "http:") == count_of(h, "xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(!strstr(h, "https:"));
    free(h);
    /* --top limits the gallery */
    h = render(CS_REPORT_HTML, 2);
    REQUIRE(h);
    CHECK(count_of(h, "<div class=\"finding ") == 2);
    CHECK(strstr(h, "beyond the gallery") != NULL || strstr(h, "The rest are in the JSON") != NULL);
    free(h);
}

static void test_html_wellformed(void) {
    char *h = render(CS_REPORT_HTML, 0);
    REQUIRE(h);
    char *p = write_tmp("report.html", h);
    char cmd[8192];
    int st;
    /* HTML parser: libxml2's knows HTML 4 tags only, so inline SVG tags and
     * HTML5's details/summary are reported as unknown; nothing else may be reported. */
    snprintf(cmd, sizeof cmd, "xmllint --html --noout '%s' 2>&1 | grep 'error' | "
                              "grep -Ev 'Tag (svg|rect|line|text|title|g|details|summary) invalid'", p);
    char *o = run(cmd, &st);
    REQUIRE(o);
    CHECKF(o[0] == 0, "xmllint --html: %.2000s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "xmllint --html --noout '%s' >/dev/null 2>&1; echo $?", p);
    o = run(cmd, &st);
    CHECKF(o && atoi(o) == 0, "xmllint --html exit %s", o ? o : "?");
    free(o);
    /* the stricter XML parser accepts it too */
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s' 2>&1", p);
    o = run(cmd, &st);
    CHECKF(st == 0 && o && !o[0], "xmllint (XML): %.2000s", o ? o : "");
    free(o);
    /* structure by XPath: no script, no event handler, every image a PNG data URI,
     * every in-page link resolves */
    static const struct {
        const char *xpath, *want;
    } q[] = {
        {"count(//script)", "0"},
        {"count(//@*[starts-with(name(), 'on')])", "0"},
        {"count(//img[not(starts-with(@src, 'data:image/png;base64,'))])", "0"},
        {"count(//img)", "27"},
        {"count(//a[starts-with(@href, '#')][not(substring(@href, 2) = //@id)])", "0"},
        {"count(//table[@class='prompts']/tbody/tr)", "3"},
        {"count(//*[local-name()='svg'])", "3"},
        {"count(//div[starts-with(@id, 'f-')])", "9"},
        {"count(//div[starts-with(@id, 't-')])", "2"},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        snprintf(cmd, sizeof cmd, "xmllint --xpath \"%s\" '%s' 2>&1", q[i].xpath, p);
        o = run(cmd, &st);
        CHECKF(o && !strncmp(o, q[i].want, strlen(q[i].want)) && (o[strlen(q[i].want)] == 0 || o[strlen(q[i].want)] == '\n'),
               "%s = %s, want %s", q[i].xpath, o ? o : "?", q[i].want);
        free(o);
    }
    free(p);
    free(h);
}

/* ---- JSON ---- */

static void test_json(void) {
    char *j = render(CS_REPORT_JSON, 3);
    REQUIRE(j);
    cJSON *r = cJSON_Parse(j);
    REQUIRE(r);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(r, "schema_version")) == 1);
    cJSON *run = cJSON_GetObjectItem(r, "run");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(run, "id")) == 1);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(run, "suite")), "demo <b>suite</b>"));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(run, "n_findings")) == NF);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "attribution")), RF_ATTRIBUTION));
    /* counts agree with the store */
    cJSON *counts = cJSON_GetObjectItem(r, "counts");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(cs_store_db(store), "SELECT verdict, COUNT(*) FROM findings GROUP BY verdict", -1, &st, NULL);
    int groups = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        groups++;
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(counts, (const char *)sqlite3_column_text(st, 0))) ==
              sqlite3_column_int(st, 1));
    }
    sqlite3_finalize(st);
    CHECK(groups == 4);
    cJSON *fs = cJSON_GetObjectItem(r, "findings");
    REQUIRE(cJSON_GetArraySize(fs) == NF); /* all of them, not only the top 3 */
    int in_gallery = 0;
    double prev = 1e9;
    for (int i = 0; i < NF; i++) {
        cJSON *f = cJSON_GetArrayItem(fs, i);
        in_gallery += cJSON_IsTrue(cJSON_GetObjectItem(f, "in_gallery"));
        double sev = cJSON_GetNumberValue(cJSON_GetObjectItem(f, "severity"));
        CHECK(sev <= prev);
        prev = sev;
        int64_t id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "id"));
        cJSON *ref = cJSON_GetObjectItem(f, "ref");
        int ref_id = (int)((id - 1) % RF_NREFS);
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "caption")), rf_captions[ref_id]));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "verdict")), rf_verdict(id - 1)));
        cJSON *sc = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "scores"), "tl2");
        CHECK(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(sc, "score")) - 0.01 * ((id - 1) % 4)) < 1e-9);
        cJSON *ev = cJSON_GetObjectItem(f, "evidence");
        if (id == 6) CHECK(cJSON_IsString(ev)); /* not JSON in the store: kept as text */
        else CHECK(cJSON_IsObject(ev));
    }
    CHECK(in_gallery == 3);
    cJSON *ps = cJSON_GetObjectItem(r, "prompts");
    CHECK(cJSON_GetArraySize(ps) == 3);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 0), "text")), rf_prompts[0]));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ps, 0), "largest_clique")) == 2);
    cJSON *hist = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "histograms"), "top1"), 0);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(hist, "n")) == NF);
    cJSON *t = cJSON_GetObjectItem(r, "text");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "counts"), "verbatim")) == 1);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "findings"), 0);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t0, "completion")), RF_COMPLETION));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(t0, "spans")) == 1);
    cJSON_Delete(r);
    free(j);
}

/* ---- CSV ---- */

/* An independent RFC 4180 reader: returns rows of fields (malloc'd). */
typedef struct {
    char **f;
    int n;
} row;

static int parse_csv(const char *s, row *rows, int max_rows) {
    int nr = 0;
    const char *p = s;
    while (*p && nr < max_rows) {
        row *r = &rows[nr++];
        r->f = NULL;
        r->n = 0;
        for (;;) {
            cs_buf b = {0};
            if (*p == '"') {
                p++;
                for (;;) {
                    if (!*p) return -1; /* unterminated quote */
                    if (*p == '"' && p[1] == '"') { cs_buf_putc(&b, '"'); p += 2; }
                    else if (*p == '"') { p++; break; }
                    else cs_buf_putc(&b, *p++);
                }
            } else {
                while (*p && *p != ',' && *p != '\r' && *p != '\n') {
                    if (*p == '"') return -1; /* bare quote in an unquoted field */
                    cs_buf_putc(&b, *p++);
                }
            }
            r->f = realloc(r->f, sizeof(char *) * (size_t)(r->n + 1));
            r->f[r->n++] = cs_buf_take(&b);
            if (*p == ',') { p++; continue; }
            if (p[0] == '\r' && p[1] == '\n') { p += 2; break; }
            if (!*p) break;
            return -1; /* anything else after a field is malformed */
        }
    }
    return nr;
}

static int col_of(const row *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->f[i], name)) return i;
    return -1;
}

/* A CSV field back to the stored text: a field that starts with a formula
 * character comes back with a leading apostrophe. */
static const char *csv_text(const char *got, const char *want) {
    if (want && strchr("=+-@\t\r", want[0]) && want[0] && got[0] == '\'') return got + 1;
    return got;
}

static void free_rows(row *rows, int nr) {
    for (int i = 0; i < nr; i++) {
        for (int k = 0; k < rows[i].n; k++) free(rows[i].f[k]);
        free(rows[i].f);
    }
}

/* Image rows against findings (joined as the report does), text rows against
 * text_findings, their completion, prompt, document and spans. */
static void test_csv_roundtrip(void) {
    char *c = render(CS_REPORT_CSV, 0);
    REQUIRE(c);
    row rows[NF + 4];
    int nr = parse_csv(c, rows, NF + 4);
    REQUIRE(nr == NF + 1 + 2); /* header, NF image findings, 2 text findings */
    const row *h = &rows[0];
    int ck = col_of(h, "kind"), ci = col_of(h, "finding_id"), cc = col_of(h, "ref_caption"),
        cp = col_of(h, "prompt"), cv = col_of(h, "verdict"), cs = col_of(h, "ref_source"),
        ct = col_of(h, "top1_tl2"), ce = col_of(h, "evidence_json"), cg = col_of(h, "generation_path"),
        cr = col_of(h, "rank"), csv_ = col_of(h, "severity");
    REQUIRE(ck == 0 && ci >= 0 && cc >= 0 && cp >= 0 && cv >= 0 && cs >= 0 && ct >= 0 && ce >= 0 && cg >= 0 &&
            cr >= 0 && csv_ >= 0);
    int cta = col_of(h, "text_audit_id"), ccid = col_of(h, "completion_id"), cco = col_of(h, "completion"),
        ccn = col_of(h, "continuation"), cds = col_of(h, "doc_source"), cdn = col_of(h, "doc_name"),
        clw = col_of(h, "longest_words"), crl = col_of(h, "rouge_l_f1"), csp = col_of(h, "spans_json"),
        cpk = col_of(h, "prompt_key"), cst = col_of(h, "status");
    REQUIRE(cta >= 0 && ccid >= 0 && cco >= 0 && ccn >= 0 && cds >= 0 && cdn >= 0 && clw >= 0 && crl >= 0 &&
            csp >= 0 && cpk >= 0 && cst >= 0);
    sqlite3_stmt *st, *tt, *sp;
    sqlite3_prepare_v2(cs_store_db(store),
                       "SELECT f.verdict, r.caption, r.source, p.text, f.evidence_json, g.path FROM findings f "
                       "JOIN generations g ON g.id = f.generation_id JOIN prompts p ON p.id = g.prompt_id "
                       "JOIN refs r ON r.id = f.ref_id WHERE f.id = ?", -1, &st, NULL);
    sqlite3_prepare_v2(cs_store_db(store),
                       "SELECT f.verdict, c.completion, p.continuation, p.prompt, d.source, d.name, f.evidence_json, "
                       "c.prompt_key, f.status, f.audit_id, f.completion_id, f.longest_words, f.rouge_l_f1 "
                       "FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                       "JOIN text_prompts p ON p.id = f.prompt_id "
                       "LEFT JOIN text_docs d ON d.id = COALESCE(p.doc_id, f.longest_doc_id) "
                       "WHERE f.id = ?", -1, &tt, NULL);
    sqlite3_prepare_v2(cs_store_db(store), "SELECT comp_start, comp_end, doc_start, doc_end FROM text_spans "
                                           "WHERE finding_id = ? ORDER BY rank", -1, &sp, NULL);
    int n_image = 0, n_text = 0;
    for (int i = 1; i < nr; i++) {
        const row *r = &rows[i];
        REQUIRE(r->n == h->n);
        if (!strcmp(r->f[ck], "image")) {
            n_image++;
            CHECK(n_text == 0); /* image rows first */
            CHECK(atoll(r->f[cr]) == n_image && *r->f[csv_]);
            CHECK(!*r->f[cta] && !*r->f[cco] && !*r->f[csp]); /* text columns empty */
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, atoll(r->f[ci]));
            REQUIRE(sqlite3_step(st) == SQLITE_ROW);
            for (int k = 0; k < 6; k++) {
                const int cols[6] = {cv, cc, cs, cp, ce, cg};
                const char *want = (const char *)sqlite3_column_text(st, k);
                const char *got = csv_text(r->f[cols[k]], want);
                CHECKF(!strcmp(got, want), "row %d col %d: '%s' != '%s'", i, k, got, want);
            }
            CHECK(fabs(atof(r->f[ct]) - 0.01 * ((atoll(r->f[ci]) - 1) % 4)) < 1e-9);
            continue;
        }
        REQUIRE(!strcmp(r->f[ck], "text"));
        n_text++;
        CHECK(atoll(r->f[cr]) == n_text);
        CHECK(!*r->f[csv_] && !*r->f[cg] && !*r->f[cs] && !*r->f[ct]); /* image columns empty */
        sqlite3_reset(tt);
        sqlite3_bind_int64(tt, 1, atoll(r->f[ci]));
        REQUIRE(sqlite3_step(tt) == SQLITE_ROW);
        const int cols[9] = {cv, cco, ccn, cp, cds, cdn, ce, cpk, cst};
        for (int k = 0; k < 9; k++) {
            const char *want = (const char *)sqlite3_column_text(tt, k);
            if (!want) want = ""; /* NULL = empty field */
            const char *got = csv_text(r->f[cols[k]], want);
            CHECKF(!strcmp(got, want), "text row %d col %d: '%s' != '%s'", i, k, got, want);
        }
        CHECK(atoll(r->f[cta]) == sqlite3_column_int64(tt, 9));
        CHECK(atoll(r->f[ccid]) == sqlite3_column_int64(tt, 10));
        CHECK(atoll(r->f[clw]) == sqlite3_column_int64(tt, 11));
        CHECK(fabs(atof(r->f[crl]) - sqlite3_column_double(tt, 12)) < 1e-9);
        /* spans_json: the stored spans, in order */
        cJSON *js = cJSON_Parse(r->f[csp]);
        CHECK(cJSON_IsArray(js));
        sqlite3_reset(sp);
        sqlite3_bind_int64(sp, 1, atoll(r->f[ci]));
        int k = 0;
        while (sqlite3_step(sp) == SQLITE_ROW) {
            cJSON *e = cJSON_GetArrayItem(js, k++);
            CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "comp_start")) == sqlite3_column_int64(sp, 0));
            CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "comp_end")) == sqlite3_column_int64(sp, 1));
            CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "doc_start")) == sqlite3_column_int64(sp, 2));
            CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "doc_end")) == sqlite3_column_int64(sp, 3));
        }
        CHECK(cJSON_GetArraySize(js) == k);
        cJSON_Delete(js);
    }
    CHECK(n_image == NF && n_text == 2);
    sqlite3_finalize(st);
    sqlite3_finalize(tt);
    sqlite3_finalize(sp);
    CHECK(strstr(c, "\"" RF_CSV "\"") == NULL); /* the quotes inside were doubled */
    CHECK(strstr(c, "\"comma, \"\"quote\"\"\nnew line =1+1\"") != NULL);
    CHECK(strstr(c, ",\"'=SUM(A1), \"\"novel\"\"\r\nline two\",") != NULL); /* formula guarded, CRLF kept */
    free_rows(rows, nr);
    free(c);

    /* --text-audit none: image rows only */
    cs_report_opts o = {0};
    o.format = CS_REPORT_CSV;
    o.text_audit = -1;
    cs_buf b = {0};
    cs_err err = {0};
    REQUIRE(cs_report_render(store, &o, &b, &err) == 0);
    nr = parse_csv(b.p, rows, NF + 4);
    CHECK(nr == NF + 1);
    int texts = 0;
    for (int i = 1; i < nr; i++) texts += !strcmp(rows[i].f[0], "text");
    CHECK(texts == 0);
    free_rows(rows, nr > 0 ? nr : 0);
    cs_buf_free(&b);
}

/* 300 findings: the gallery holds the default 200 most severe, JSON and CSV all 300. */
static void test_gallery_limit(void) {
    char *d2 = t_tmpdir("report-300");
    REQUIRE(d2);
    cs_store *s2 = rf_make_store(d2, 300, 12);
    REQUIRE(s2);
    cs_store *keep = store;
    store = s2;
    char *h = render(CS_REPORT_HTML, 0), *j = render(CS_REPORT_JSON, 0), *c = render(CS_REPORT_CSV, 0);
    store = keep;
    REQUIRE(h && j && c);
    CHECK(count_of(h, "<div class=\"finding ") == CS_REPORT_DEFAULT_TOP);
    CHECK(strstr(h, "The 200 most severe of 300 findings") != NULL);
    cJSON *r = cJSON_Parse(j);
    cJSON *fs = cJSON_GetObjectItem(r, "findings");
    CHECK(cJSON_GetArraySize(fs) == 300);
    int in = 0;
    for (int i = 0; i < cJSON_GetArraySize(fs); i++) in += cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(fs, i), "in_gallery"));
    CHECK(in == CS_REPORT_DEFAULT_TOP);
    cJSON_Delete(r);
    row rows[304];
    int nr = parse_csv(c, rows, 304);
    CHECK(nr == 303); /* header, 300 image rows, the fixture's 2 text rows */
    free_rows(rows, nr > 0 ? nr : 0);
    free(h);
    free(j);
    free(c);
    cs_store_close(s2);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d2);
    if (system(cmd)) CHECK(0);
    free(d2);
}

/* ---- Markdown ---- */

static void test_markdown(void) {
    char *m = render(CS_REPORT_MD, 0);
    REQUIRE(m);
    CHECK(strstr(m, "# copyscope report: run 1") == m);
    CHECK(strstr(m, "| Verdict | Findings | Share |") != NULL);
    CHECK(!strchr(m, '<')); /* no raw HTML from the data */
    CHECK(strstr(m, "&lt;script&gt;") != NULL);
    CHECK(strstr(m, "## Text findings") != NULL);
    /* every table row has the header's number of cells (no stray | or newline from the data) */
    int lines = 0;
    for (char *l = m; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, "| ", 2) && strstr(l, "prompt") && strchr(l, '\n')) {
            lines++;
        }
    CHECK(lines >= 1);
    free(m);
}

/* ---- output paths ---- */

static int dir_entries(const char *d) {
    DIR *dd = opendir(d);
    int n = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) n += e->d_name[0] != '.';
    if (dd) closedir(dd);
    return n;
}

static void test_out_paths(void) {
    cs_err err = {0};
    char p[4096];
    CHECK(cs_report_check_out(dir, &err) == -1 && strstr(err.msg, "is a directory"));
    snprintf(p, sizeof p, "%s/", dir);
    CHECK(cs_report_check_out(p, &err) == -1);
    snprintf(p, sizeof p, "%s/no/such/folder/r.html", dir);
    CHECK(cs_report_check_out(p, &err) == -1 && strstr(err.msg, "does not exist"));
    CHECK(cs_report_check_out("", &err) == -1);
    snprintf(p, sizeof p, "%s/out", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/out/r.html", dir);
    CHECK(cs_report_check_out(p, &err) == 0);
    /* written atomically, nothing left beside it; a second write replaces it */
    CHECK(cs_report_save(p, "one", 3, &err) == 0);
    CHECK(cs_report_save(p, "two!", 4, &err) == 0);
    struct stat st;
    CHECK(stat(p, &st) == 0 && st.st_size == 4);
    snprintf(p, sizeof p, "%s/out", dir);
    CHECK(dir_entries(p) == 1);
    /* a failed save (target is a directory) leaves no temporary file */
    CHECK(cs_report_save(p, "x", 1, &err) == -1);
    CHECK(dir_entries(p) == 1);
    CHECK(cs_report_format_from_path("a/b.JSON") == CS_REPORT_JSON);
    CHECK(cs_report_format_from_path("a.b/c") == -1);
}

/* ---- the command ---- */

static void test_cli(void) {
    char cmd[8192], *o;
    int st;
    const char *bin = t_bin();
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --out '%s/cli.html' 2>&1", bin, dir, dir);
    o = run(cmd, &st);
    CHECKF(st == 0, "%s", o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "%s/cli.html", dir);
    struct stat sb;
    CHECK(stat(cmd, &sb) == 0 && sb.st_size > 1000);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --out '%s' 2>&1", bin, dir, dir);
    o = run(cmd, &st);
    CHECKF(st == 2 && o && strstr(o, "is a directory"), "%s", o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --out '%s/nope/r.html' 2>&1", bin, dir, dir);
    o = run(cmd, &st);
    CHECKF(st == 2 && o && strstr(o, "does not exist"), "%s", o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --run 99 --out '%s/r.html' 2>&1", bin, dir, dir);
    o = run(cmd, &st);
    CHECKF(st == 1 && o && strstr(o, "run 99: no such run"), "%s", o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --format csv --out - 2>/dev/null | head -c 16", bin, dir);
    o = run(cmd, &st);
    CHECK(o && !strcmp(o, "kind,finding_id,"));
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/report.db' --format pdf --out x 2>&1", bin, dir);
    o = run(cmd, &st);
    CHECK(st == 2);
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --help", bin);
    o = run(cmd, &st);
    CHECK(st == 0 && o && strstr(o, "usage: copyscope report"));
    free(o);
    snprintf(cmd, sizeof cmd, "%s report --db '%s/missing.db' --out '%s/m.html' 2>&1", bin, dir, dir);
    o = run(cmd, &st);
    CHECK(st == 1);
    free(o);
}

/* A store with text findings only, and one with a run that has no findings. */
static void test_sparse_stores(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/empty.db", dir);
    cs_store *s = NULL;
    REQUIRE(cs_store_open(&s, p, NULL) == 0);
    cs_report_opts o = {0};
    cs_buf b = {0};
    cs_err err = {0};
    CHECK(cs_report_render(s, &o, &b, &err) == -1 && err.code == CS_ENOTFOUND);
    cs_store_exec(s, "INSERT INTO runs(id, suite) VALUES(5, 's')", NULL);
    CHECK(cs_report_render(s, &o, &b, &err) == 0);
    CHECK(b.p && strstr(b.p, "not been analysed"));
    cs_buf_free(&b);
    o.format = CS_REPORT_JSON;
    CHECK(cs_report_render(s, &o, &b, &err) == 0);
    cJSON *j = cJSON_Parse(b.p);
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "findings")) == 0);
    cJSON_Delete(j);
    cs_buf_free(&b);
    cs_store_close(s);
}

/* The fixture's analysis recorded no thresholds ('{}'): the rule sentences
 * say "?" for them and the summary says they are not recorded, never "nan". */
static void test_unrecorded_thresholds(void) {
    char *h = render(CS_REPORT_HTML, 0);
    REQUIRE(h);
    int rules = 0;
    for (const char *p = h; (p = strstr(p, "<span class=\"rule\">")); p++) {
        const char *e = strstr(p, "</span>");
        REQUIRE(e);
        char tmp[2048];
        size_t n = (size_t)(e - p) < sizeof tmp - 1 ? (size_t)(e - p) : sizeof tmp - 1;
        memcpy(tmp, p, n);
        tmp[n] = 0;
        CHECKF(!strstr(tmp, "nan"), "%s", tmp);
        rules++;
    }
    CHECK(rules == NF);
    CHECK(strstr(h, "copy: tiled L2 0.000 \xe2\x89\xa4 copy_tl2 ? (as is)"));
    CHECK(strstr(h, "the analysis recorded no thresholds"));
    CHECK(!strstr(h, "&#8804; nan") && !strstr(h, "&#8805; nan"));
    free(h);
}

int main(void) {
    dir = t_tmpdir("report");

    if (!dir || !(store = rf_make_store(dir, NF, NF))) {
        printf("fixture failed\n0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_escape_html);
    RUN(test_escape_csv_md_base64);
    RUN(test_highlight);
    RUN(test_panels);
    RUN(test_bad_rows);
    RUN(test_html_escaped);
    RUN(test_html_elements);
    RUN(test_html_wellformed);
    RUN(test_json);
    RUN(test_csv_roundtrip);
    RUN(test_gallery_limit);
    RUN(test_markdown);
    RUN(test_out_paths);
    RUN(test_cli);
    RUN(test_sparse_stores);
    RUN(test_unrecorded_thresholds);
    rf_finish(store, dir);
    return T_DONE();
}
