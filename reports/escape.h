/* escape.h — every string that comes from the store (prompts, captions, file
 * names, completions) reaches a report through one of these functions.
 *
 * All of them also repair text: invalid UTF-8 and characters that HTML/XML
 * forbid (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF) become U+FFFD, so
 * the output is always valid UTF-8 that parses as HTML, XML, JSON or CSV. */
#ifndef CS_REPORT_ESCAPE_H
#define CS_REPORT_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

#include "reports/buf.h"

/* Decodes one UTF-8 character of s[0..n) (n >= 1): returns the bytes used
 * (>= 1) and the code point in *cp, U+FFFD for an invalid sequence. */
size_t cs_utf8_next(const char *s, size_t n, uint32_t *cp);

/* HTML text and attribute values (quoted with " or '): & < > " ' become
 * entities. Safe in element text and in quoted attributes alike. NULL -> "". */
void cs_esc_html(cs_buf *b, const char *s);
void cs_esc_html_n(cs_buf *b, const char *s, size_t n);
/* s as valid UTF-8 (repairs only, no escaping); for cJSON strings. */
void cs_esc_utf8(cs_buf *b, const char *s);
/* One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF
 * (quotes doubled). A text field that starts with = + - @ TAB or CR gets a
 * leading apostrophe so spreadsheets do not run it as a formula. */
void cs_esc_csv(cs_buf *b, const char *s);
/* Markdown table cell: HTML-special characters as entities, Markdown
 * punctuation backslash-escaped, newlines as spaces. */
void cs_esc_md(cs_buf *b, const char *s);

#endif
