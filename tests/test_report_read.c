/* test_report_read.c — the report a reader understands without the code
 * (issue 19, item 9): verdict thresholds drawn on the histograms, every
 * score with its direction and scale and beside the reference it belongs
 * to, the rule behind every verdict (novel too), the severity scale, the
 * suite's name and the index size, the white-box histogram's n explained,
 * and the evidence as sentences with the raw values in <details>.
 *
 * The store is test_report_fixture.h's, given an analysis with known
 * thresholds and findings whose evidence is written here, so every expected
 * sentence is computed by hand from the values below. */
#include <cjson/cJSON.h>

#include "reports/report.h"
#include "tests/t.h"
#include "tests/test_report_fixture.h"

static char *dir;
static cs_store *store;

static char *render(cs_report_format fmt) { return rf_render(store, fmt, 0, 1); }

/* The HTML of finding id (its card), malloc'd; NULL when absent. */
static char *card(const char *h, int id) {
    char key[64];
    snprintf(key, sizeof key, "id=\"f-%d\"", id);
    const char *a = strstr(h, key);
    if (!a) return NULL;
    const char *e = strstr(a, "<div class=\"finding ");
    size_t n = e ? (size_t)(e - a) : strlen(a);
    char *c = malloc(n + 1);
    memcpy(c, a, n);
    c[n] = 0;
    return c;
}

/* The <svg> of the histogram whose title names desc, malloc'd. */
static char *hist_svg(const char *h, const char *title) {
    const char *a = strstr(h, title);
    if (!a) return NULL;
    const char *s = strstr(a, "<svg"), *e = s ? strstr(s, "</svg>") : NULL;
    if (!e) return NULL;
    size_t n = (size_t)(e - s) + 6;
    char *c = malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static int count_thr(const char *s) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, "class=\"thr\"")); p++) n++;
    return n;
}

#define SETTINGS                                                                                          \
    "{\"copy_tl2\":0.04,\"near_tl2\":0.12,\"ratio_max\":0.3333333333,\"ratio_tl2\":0.25,\"pdq_near\":31,"   \
    "\"pdq_min_quality\":50,\"pdq_confirm_tl2\":0.15,\"embed_near\":0.75,\"partial_tile_l2\":0.1,"          \
    "\"partial_min_tiles\":6,\"partial_min_frac\":0.75,\"tile_min_std\":0.08,\"completion_margin\":2}"

/* Finding 1 (copy): identical when mirrored, every tile 0. */
#define EV_COPY                                                                                           \
    "{\"schema\":\"copyscope.evidence/1\",\"verdict\":\"copy\",\"rule\":\"copy_tl2\",\"severity\":3.99,"    \
    "\"candidates\":37,\"ref\":{\"id\":1,\"source\":\"refs/smile.png\",\"caption\":\"grinning face\"},"    \
    "\"tl2\":{\"distance\":0,\"mirrored\":true,\"aligned_distance\":0,\"aligned_mirrored\":true,"          \
    "\"ref_crop\":[0,0,64],\"grid\":4,\"tiles\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"                      \
    "\"worst_tile\":{\"index\":0,\"x\":0,\"y\":0,\"size\":16,\"distance\":0},"                           \
    "\"tiles_informative\":12,\"tiles_matched\":12},"                                                     \
    "\"ratio_test\":{\"d1\":0,\"d2\":0.3244,\"second_ref_id\":3,\"ratio\":0,\"pass\":true},"              \
    "\"hashes\":{\"pdq\":0,\"pdq_quality_generation\":100,\"pdq_quality_ref\":100,\"phash\":0,\"dhash\":0}}"

/* Finding 4 (novel): nothing fired; every value on the far side of its threshold. */
#define EV_NOVEL                                                                                          \
    "{\"schema\":\"copyscope.evidence/1\",\"verdict\":\"novel\",\"rule\":\"\",\"severity\":0.7,"            \
    "\"candidates\":43,\"ref\":{\"id\":4,\"source\":\"refs/a,b.png\",\"caption\":null},"                   \
    "\"tl2\":{\"distance\":0.4,\"mirrored\":false,\"aligned_distance\":0.31,\"aligned_mirrored\":false,"    \
    "\"ref_crop\":[6,12,52],\"grid\":4,\"tiles\":[0.05,0.2,0.3,0.4,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,"    \
    "0.2,0.2,0.2],\"tiles_informative\":4,\"tiles_matched\":1},"                                          \
    "\"ratio_test\":{\"d1\":0.31,\"d2\":0.5,\"second_ref_id\":2,\"ratio\":0.62,\"pass\":false},"          \
    "\"hashes\":{\"pdq\":101,\"pdq_quality_generation\":100,\"pdq_quality_ref\":90,\"phash\":28,\"dhash\":23},"\
    "\"embedding\":{\"column\":\"tiny\",\"cosine\":0.43,\"raw_cosine\":0.43,\"background_bias\":0}}"

static int setup(void) {
    /* the fixture's analysis gets the default thresholds; the run its suite's name */
    const char *sql[] = {
        "UPDATE analyses SET settings_json = '" SETTINGS "', descriptors = 'tl2,pdq,tiny' WHERE id = 1",
        "UPDATE runs SET settings_json = '{\"suite_name\": \"Readable suite\", \"steps\": 10}' WHERE id = 1",
        "UPDATE findings SET evidence_json = '" EV_COPY "', severity = 3.99 WHERE id = 1",
        "UPDATE findings SET evidence_json = '" EV_NOVEL "', severity = 0.7 WHERE id = 4",
        /* finding 2's own reference is 3: the second by tl2 (0.21) and pdq (60), while
           reference 2 is each descriptor's nearest (0.01, 10) */
        "UPDATE findings SET ref_id = 3, evidence_json = '{\"schema\":\"copyscope.evidence/1\",\"rule\":\"near_tl2\","
        "\"tl2\":{\"distance\":0.21,\"aligned_distance\":0.1,\"mirrored\":false}}' WHERE id = 2",
        /* an embedding column: finding 4's nearest by it is reference 4 itself */
        "INSERT INTO matches(generation_id, ref_id, descriptor, score, rank) VALUES(4, 4, 'tiny', 0.43, 0)",
        /* generation 5 was sampled without guidance: no white-box score */
        "UPDATE generations SET whitebox = NULL, settings_json = '{\"guidance\": 1}' WHERE id = 5",
        /* prompt 1's closest aligned tiled L2, and the old 1 - it */
        "UPDATE prompt_summary SET min_tl2 = 0.29, max_similarity = 0.71 WHERE prompt_id = 1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
        if (rf_exec(store, sql[i])) return -1;
    return 0;
}

static void test_thresholds_on_histograms(void) {
    char *h = render(CS_REPORT_HTML);
    REQUIRE(h);
    char *tl2 = hist_svg(h, "nearest reference by tl2"), *pdq = hist_svg(h, "nearest reference by pdq");
    char *tiny = hist_svg(h, "nearest reference by tiny");
    REQUIRE(tl2 && pdq && tiny);
    /* two labelled lines on the tiled-L2 histogram, at their places on the 0..1 axis
       (plot 280 px wide from x = 40: 0.04 -> 51.2, 0.12 -> 73.6) */
    CHECKF(count_thr(tl2) == 2, "%s", tl2);
    CHECK(strstr(tl2, "copy \xe2\x89\xa4 0.04") && strstr(tl2, "near-copy \xe2\x89\xa4 0.12"));
    CHECK(strstr(tl2, "x1=\"51.2\"") && strstr(tl2, "x1=\"73.6\""));
    CHECK(count_thr(pdq) == 1 && strstr(pdq, "near-copy \xe2\x89\xa4 31"));
    CHECK(count_thr(tiny) == 1 && strstr(tiny, "near-copy \xe2\x89\xa5 0.75"));
    /* each histogram says what its axis measures and which way is closer */
    CHECK(strstr(h, "0 = identical") && strstr(h, "bits that differ, of 256") && strstr(h, "1 = identical"));
    free(tl2);
    free(pdq);
    free(tiny);
    free(h);
}

static void test_scores_with_scale_and_own_reference(void) {
    char *h = render(CS_REPORT_HTML);
    REQUIRE(h);
    char *c = card(h, 2);
    REQUIRE(c);
    /* the finding's reference is #3: its own scores (0.21, 60 of 256) under its name,
       the nearer reference #2's (0.01, 10) named as #2's */
    CHECKF(strstr(c, "Scores to ref #3") != NULL, "%.3000s", c);
    CHECK(strstr(c, "tl2 <b>0.21</b>") && strstr(c, "pdq <b>60</b> of 256"));
    const char *other = strstr(c, "tl2 <b>0.01</b>");
    CHECK(other && strstr(other, "to ref #2"));
    CHECK(strstr(c, "(0 = identical)") && strstr(c, "(bits differ, 0 = identical)"));
    free(c);
    free(h);
}

static void test_rules_and_severity(void) {
    char *h = render(CS_REPORT_HTML);
    REQUIRE(h);
    char *c1 = card(h, 1), *c4 = card(h, 4);
    REQUIRE(c1 && c4);
    CHECKF(strstr(c1, "copy: tiled L2 0.000 \xe2\x89\xa4 copy_tl2 0.04 (mirrored)") != NULL, "%.4000s", c1);
    /* novel: every rule that did not fire, with its value and bound */
    CHECKF(strstr(c4, "no rule fired: tiled L2 0.400 &gt; 0.04 copy bound; best aligned tiled L2 0.310 &gt; 0.12 "
                      "near-copy bound; PDQ 101 of 256 bits &gt; 31; tiny cosine 0.430 &lt; 0.75; 1 of 4 informative "
                      "tiles within 0.1 (partial needs 6 and 75%); ratio d1/d2 0.620 \xe2\x89\xa5 0.333") != NULL,
           "%.6000s", c4);
    /* the severity with its scale, in the card and in the summary */
    CHECK(strstr(c4, "0.700 <span class=\"sevscale\">on 0&#8211;4 (novel band 0&#8211;1"));
    CHECK(strstr(h, "Severity runs from 0 to 4"));
    free(c1);
    free(c4);
    free(h);
}

static void test_summary_suite_and_index(void) {
    char *h = render(CS_REPORT_HTML), *j = render(CS_REPORT_JSON), *md = render(CS_REPORT_MD);
    REQUIRE(h && j && md);
    CHECK(strstr(h, "suite Readable suite"));
    CHECK(strstr(h, "<tr><th>Suite</th><td><b>Readable suite</b>"));
    CHECK(strstr(h, "<b>4</b> references compared (analysis 1); 3 descriptors: tl2,pdq,tiny"));
    cJSON *o = cJSON_Parse(j);
    const cJSON *run = cJSON_GetObjectItem(o, "run"), *an = cJSON_GetObjectItem(o, "analysis");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(run, "suite_name")) &&
          !strcmp(cJSON_GetObjectItem(run, "suite_name")->valuestring, "Readable suite"));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(an, "n_refs")) == 4);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(an, "thresholds"), "copy_tl2")) == 0.04);
    /* each JSON finding carries its rule as a sentence */
    const cJSON *f;
    int seen = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(o, "findings")) {
        const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(f, "rule_text"));
        if (cJSON_GetNumberValue(cJSON_GetObjectItem(f, "id")) == 4)
            seen = r && !strncmp(r, "no rule fired: tiled L2 0.400 > 0.04 copy bound", 47);
    }
    CHECK(seen);
    cJSON_Delete(o);
    CHECK(strstr(md, "Readable suite") && strstr(md, "4 references"));
    /* the CSV's last column: the rule of each image finding */
    char *csv = render(CS_REPORT_CSV);
    REQUIRE(csv);
    const char *nl = strstr(csv, "\r\n");
    CHECK(nl && nl - csv > 10 && !strncmp(nl - 10, ",rule_text", 10));
    CHECK(strstr(csv, ",no rule fired: tiled L2 0.400 > 0.04 copy bound;"));
    free(csv);
    free(h);
    free(j);
    free(md);
}

static void test_whitebox_n_and_closest(void) {
    char *h = render(CS_REPORT_HTML);
    REQUIRE(h);
    /* 9 findings, generation 5 without a score: n = 8 of 9, and why */
    CHECKF(strstr(h, "n = 8 of 9 generations: 1 sampled with guidance 1 have no unconditional pass") != NULL, "%s",
           "white-box note missing");
    /* the prompt table shows the closest tiled L2 (0.290), not 1 - it (0.710) */
    CHECK(strstr(h, "Closest<br/>tiled L2"));
    const char *row = strstr(h, "<tr id=\"p-1\">");
    REQUIRE(row);
    const char *end = strstr(row, "</tr>");
    REQUIRE(end);
    char tmp[4096];
    size_t n = (size_t)(end - row) < sizeof tmp - 1 ? (size_t)(end - row) : sizeof tmp - 1;
    memcpy(tmp, row, n);
    tmp[n] = 0;
    CHECKF(strstr(tmp, ">0.290<") && !strstr(tmp, "0.710"), "%s", tmp);
    free(h);
}

static void test_evidence_sentences(void) {
    char *h = render(CS_REPORT_HTML);
    REQUIRE(h);
    char *c1 = card(h, 1), *c4 = card(h, 4);
    REQUIRE(c1 && c4);
    CHECKF(strstr(c1, "<li>16 of 16 tiles within 0.1 of the reference (16 px tiles, RMS on 0&#8211;1 grey), compared "
                      "with the whole reference, mirrored.</li>") ||
               strstr(c1, "<li>16 of 16 tiles within 0.1 of the reference (16 px tiles, RMS on 0\xe2\x80\x93" "1 grey), "
                          "compared with the whole reference, mirrored.</li>"),
           "%.5000s", c1);
    CHECK(strstr(c1, "Perceptual hashes differ by PDQ 0 of 256 bits"));
    CHECK(strstr(c1, "The next closest reference (#3) is at aligned tiled L2 0.324"));
    CHECK(strstr(c4, "1 of 16 tiles within 0.1 of the reference") && strstr(c4, "a 52 px crop of the reference at (6, 12)"));
    CHECK(strstr(c4, "Embedding tiny: cosine 0.430"));
    /* the raw key/values one click away, not in the open */
    const char *d = strstr(c1, "<details><summary>");
    REQUIRE(d);
    CHECK(strstr(d, "tl2.distance <b>0</b>") && strstr(d, "hashes.pdq <b>0</b>"));
    const char *raw = strstr(c1, "tl2.distance");
    CHECK(raw && raw > d);
    free(c1);
    free(c4);
    free(h);
}

int main(void) {
    dir = t_tmpdir("report-read");
    if (!dir || !(store = rf_make_store(dir, 9, 9)) || setup()) {
        printf("fixture failed\n0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_thresholds_on_histograms);
    RUN(test_scores_with_scale_and_own_reference);
    RUN(test_rules_and_severity);
    RUN(test_summary_suite_and_index);
    RUN(test_whitebox_n_and_closest);
    RUN(test_evidence_sentences);
    rf_finish(store, dir);
    return T_DONE();
}
