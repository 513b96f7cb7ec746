/* test_safe_text.c — core/safe_text.h against hand-worked answers: the
 * UTF-8 validity edges (overlongs, surrogates, U+10FFFF), C0/C1 controls and
 * DEL escaped for terminals, cutting at a character boundary, U+FFFD for
 * bytes that are not UTF-8. */
#include <stdlib.h>
#include <string.h>

#include "core/safe_text.h"
#include "tests/t.h"

static void test_utf8_seq(void) {
    struct { const char *s; int n; } c[] = {
        {"a", 1}, {"\xC3\xA9", 2}, {"\xE2\x82\xAC", 3}, {"\xF0\x9F\x98\x80", 4}, {"\xF4\x8F\xBF\xBF", 4},
        {"\xC0\xAF", 0}, {"\xC1\xBF", 0}, {"\xE0\x80\xAF", 0}, {"\xED\xA0\x80", 0}, {"\xF0\x80\x80\xAF", 0},
        {"\xF4\x90\x80\x80", 0}, {"\xF5\x80\x80\x80", 0}, {"\x80", 0}, {"\xE2\x82", 0}, {"\xFF", 0}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        CHECKF(cs_utf8_seq((const unsigned char *)c[i].s) == c[i].n, "case %zu: %d", i,
               cs_utf8_seq((const unsigned char *)c[i].s));
}

static void test_term_safe(void) {
    char out[64];
    CHECK(!strcmp(cs_term_safe(out, sizeof out, "caf\xC3\xA9 ok\\"), "caf\xC3\xA9 ok\\"));
    CHECK(!strcmp(cs_term_safe(out, sizeof out, "\x1b[2J\x07\t\n\x7f"), "\\x1b[2J\\x07\\x09\\x0a\\x7f"));
    CHECK(!strcmp(cs_term_safe(out, sizeof out, "\xC2\x9B" "31m\xC2\xA0"), "\\xc2\\x9b31m\xC2\xA0")); /* C1 CSI; NBSP kept */
    CHECK(!strcmp(cs_term_safe(out, sizeof out, "a\xFF" "b"), "a\\xffb"));
    CHECK(!strcmp(cs_term_safe(out, sizeof out, NULL), ""));
    char small[6];
    CHECK(!strcmp(cs_term_safe(small, sizeof small, "ab\xE2\x82\xAC"), "ab\xE2\x82\xAC"));
    CHECK(!strcmp(cs_term_safe(small, sizeof small, "abc\xE2\x82\xAC"), "abc")); /* never half a character */
    CHECK(!strcmp(cs_term_safe(small, sizeof small, "a\x1b"), "a\\x1b"));
    CHECK(!strcmp(cs_term_safe(small, sizeof small, "ab\x1b"), "ab")); /* never half an escape */
}

static void test_utf8_fix(void) {
    int ch = -1;
    char *u = cs_utf8_fix("a\xFF" "b\xC3\xA9\xED\xA0\x80", &ch);
    CHECK(u && !strcmp(u, "a\xEF\xBF\xBD" "b\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") && ch == 1);
    free(u);
    u = cs_utf8_fix("plain \xE2\x82\xAC", &ch);
    CHECK(u && !strcmp(u, "plain \xE2\x82\xAC") && ch == 0);
    free(u);
}

int main(void) {
    RUN(test_utf8_seq);
    RUN(test_term_safe);
    RUN(test_utf8_fix);
    return T_DONE();
}
