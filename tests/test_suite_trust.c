/* test_suite_trust.c — suite parsing that must not mislead (issue 19):
 * \u0000 inside a string is refused naming the file and the JSON path (cJSON
 * would cut the string there); big suites parse in linear time (200,000
 * seeds, 100,000 prompts with a repeated id: 30 s and 26 s before). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/suite.h"
#include "tests/t.h"

static int parse(const char *js, cs_suite *s, cs_err *e) {
    memset(e, 0, sizeof *e);
    return cs_suite_parse(s, js, strlen(js), "dir/x.json", e);
}

static void test_nul_escape_refused(void) {
    cs_suite s;
    cs_err e;
    CHECK(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"text\":\"ok\"},"
                "{\"id\":\"b\",\"text\":\"verbatim\\u0000 hidden tail\"}]}", &s, &e) != 0);
    CHECKF(strstr(e.msg, "dir/x.json: prompts[1].text: \\u0000") != NULL, "%s", e.msg);
    CHECK(parse("{\"name\":\"x\",\"completions\":[{\"id\":\"a\",\"ref\":\"r.png\",\"strength\":0.5,"
                "\"negative\":[1],\"text\":\"a\\u0000\"}]}", &s, &e) != 0);
    CHECKF(strstr(e.msg, "dir/x.json: completions[0].text: \\u0000") != NULL, "%s", e.msg);
    CHECK(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"te\\u0000xt\":\"ok\"}]}", &s, &e) != 0);
    CHECKF(strstr(e.msg, "prompts[0].te") && strstr(e.msg, "(a field name)"), "%s", e.msg);
    /* closers after the suite's object (cJSON stops at its end): the scan must
     * not step outside its stack (found by tests/fuzz/fuzz_suite.c, UBSan) */
    REQUIRE(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"text\":\"t\"}]} ]]]}} {[\"\\u0000\"", &s, &e) == 0);
    cs_suite_free(&s);
    /* a field given twice is refused (it leaked the first ref: tests/fuzz/fuzz_suite.c, LeakSanitizer) */
    CHECK(parse("{\"name\":\"x\",\"completions\":[{\"id\":\"a\",\"ref\":\"r.png\",\"ref\":\"q.png\","
                "\"strength\":0.5}]}", &s, &e) != 0);
    CHECKF(!strcmp(e.msg, "dir/x.json: completions[0].ref: given twice"), "%s", e.msg);
    /* numbers beyond int / 2^53: an error, not an undefined conversion (fuzz_suite, UBSan) */
    CHECK(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"text\":\"t\",\"steps\":8.9e20}]}", &s, &e) != 0);
    CHECKF(!strcmp(e.msg, "dir/x.json: prompts[0].steps: must be an integer"), "%s", e.msg);
    CHECK(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"text\":\"t\",\"seed\":1e300}]}", &s, &e) != 0);
    CHECKF(strstr(e.msg, "prompts[0].seed: must be an integer in 0..2^53") != NULL, "%s", e.msg);
    /* an escaped backslash before u0000 is six ordinary characters */
    REQUIRE(parse("{\"name\":\"x\",\"prompts\":[{\"id\":\"a\",\"text\":\"\\\\u0000 ok\"}]}", &s, &e) == 0);
    CHECKF(!strcmp(s.items[0].text, "\\u0000 ok"), "%s", s.items[0].text);
    cs_suite_free(&s);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void test_big_suites_linear(void) {
    enum { SEEDS = 200000, PROMPTS = 100000 };
    size_t cap = (size_t)SEEDS * 12 + 256, k = 0;
    char *js = malloc(cap);
    k += (size_t)snprintf(js + k, cap - k, "{\"name\":\"big\",\"prompts\":[{\"id\":\"a\",\"text\":\"t\",\"seeds\":[");
    for (int i = 0; i < SEEDS; i++) k += (size_t)snprintf(js + k, cap - k, "%s%d", i ? "," : "", 3 * i + 1);
    k += (size_t)snprintf(js + k, cap - k, "]}]}");
    cs_suite s;
    cs_err e;
    double t0 = now();
    REQUIRE(parse(js, &s, &e) == 0);
    double t_seeds = now() - t0;
    CHECK(s.items[0].s.samples == SEEDS && s.items[0].s.seeds[SEEDS - 1] == 3ull * (SEEDS - 1) + 1);
    cs_suite_free(&s);
    free(js);

    cap = (size_t)PROMPTS * 40 + 256, k = 0;
    js = malloc(cap);
    k += (size_t)snprintf(js + k, cap - k, "{\"name\":\"big\",\"prompts\":[");
    /* p70000 and p99999 both repeat earlier ids; the first repeat in file order is reported */
    for (int i = 0; i < PROMPTS; i++)
        k += (size_t)snprintf(js + k, cap - k, "%s{\"id\":\"p%d\",\"text\":\"t\"}", i ? "," : "",
                              i == 99999 ? 5 : i == 70000 ? 60000 : i);
    k += (size_t)snprintf(js + k, cap - k, "]}");
    t0 = now();
    CHECK(parse(js, &s, &e) != 0);
    double t_ids = now() - t0;
    CHECKF(!strcmp(e.msg, "dir/x.json: prompts[70000].id: \"p60000\" repeats prompts[60000].id"), "%s", e.msg);
    free(js);
    /* linear: well under a second each on any machine; 5 s leaves room for a loaded one */
    CHECKF(t_seeds < 5 && t_ids < 5, "200k seeds %.2f s, 100k ids %.2f s", t_seeds, t_ids);
    printf("     200k seeds %.3f s, 100k prompts %.3f s\n", t_seeds, t_ids);
}

int main(void) {
    RUN(test_nul_escape_refused);
    RUN(test_big_suites_linear);
    return T_DONE();
}
