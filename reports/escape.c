/* escape.c — escaping for HTML, CSV and Markdown; UTF-8 repair (escape.h). */
#include "reports/escape.h"

#include <string.h>

size_t cs_utf8_next(const char *str, size_t n, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)str;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = 0xFFFD; return 1; }
    if (n < len) { *cp = 0xFFFD; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
    *cp = v;
    return len;
}

/* Characters no output format may carry raw. */
static int forbidden(uint32_t cp) {
    return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F || cp == 0xFFFE ||
           cp == 0xFFFF;
}

static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Walks s, calling out() for runs of plain bytes and special() for each
 * ASCII byte in `specials`; repairs as it goes. */
static void walk(cs_buf *b, const char *s, size_t n, const char *specials,
                 void (*special)(cs_buf *, char)) {
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = cs_utf8_next(s + i, n - i, &cp);
        int bad = (cp == 0xFFFD && k == 1 && (uint8_t)s[i] >= 0x80) || forbidden(cp);
        int spec = !bad && cp < 0x80 && cp && strchr(specials, (int)cp);
        if (bad || spec) {
            cs_buf_put(b, s + run, i - run);
            if (bad) cs_buf_puts(b, repl);
            else special(b, (char)cp);
            i += k;
            run = i;
        } else {
            i += k;
        }
    }
    cs_buf_put(b, s + run, i - run);
}

static void html_special(cs_buf *b, char c) {
    switch (c) {
    case '&': cs_buf_puts(b, "&amp;"); break;
    case '<': cs_buf_puts(b, "&lt;"); break;
    case '>': cs_buf_puts(b, "&gt;"); break;
    case '"': cs_buf_puts(b, "&quot;"); break;
    case '\'': cs_buf_puts(b, "&#39;"); break;
    default: cs_buf_putc(b, c);
    }
}

void cs_esc_html_n(cs_buf *b, const char *s, size_t n) {
    if (s) walk(b, s, n, "&<>\"'", html_special);
}

void cs_esc_html(cs_buf *b, const char *s) {
    if (s) cs_esc_html_n(b, s, strlen(s));
}

static void no_special(cs_buf *b, char c) { cs_buf_putc(b, c); }

void cs_esc_utf8(cs_buf *b, const char *s) {
    if (s) walk(b, s, strlen(s), "", no_special);
}

static void csv_special(cs_buf *b, char c) {
    if (c == '"') cs_buf_puts(b, "\"\"");
    else cs_buf_putc(b, c);
}

void cs_esc_csv(cs_buf *b, const char *s) {
    if (!s) return;
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    int formula = strchr("=+-@\t\r", s[0]) != NULL && s[0];
    if (formula) quote = 1;
    if (quote) cs_buf_putc(b, '"');
    if (formula) cs_buf_putc(b, '\'');
    walk(b, s, strlen(s), "\"", csv_special);
    if (quote) cs_buf_putc(b, '"');
}

static void md_special(cs_buf *b, char c) {
    switch (c) {
    case '&': cs_buf_puts(b, "&amp;"); break;
    case '<': cs_buf_puts(b, "&lt;"); break;
    case '>': cs_buf_puts(b, "&gt;"); break;
    case '\n': case '\r': case '\t': cs_buf_putc(b, ' '); break;
    default:
        cs_buf_putc(b, '\\');
        cs_buf_putc(b, c);
    }
}

void cs_esc_md(cs_buf *b, const char *s) {
    if (s) walk(b, s, strlen(s), "&<>\n\r\t\\`*_[]|#!", md_special);
}
