/* safe_text.h — text from the data (captions, file names) on its way out.
 *
 * A caption is whatever the dataset says: it may hold terminal escapes
 * ("\x1b[2J" clears the screen, OSC sequences set the window title) and a
 * file name may be any bytes, not UTF-8. Printing them raw lets the data
 * drive the user's terminal; putting them raw in JSON makes invalid JSON. */
#ifndef CS_SAFE_TEXT_H
#define CS_SAFE_TEXT_H

#include <stddef.h>

/* Copies s (NULL = "") into dst (dn > 0 bytes, always terminated, cut at a
 * character boundary when full) for a terminal or a TSV line: control
 * characters (C0 with tab and newline, DEL, and the C1 range U+0080-U+009F)
 * and bytes that are not UTF-8 are written as \xHH; a backslash stays as it
 * is. Returns dst. */
char *cs_term_safe(char *dst, size_t dn, const char *s);

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there
 * are not one (overlong, surrogate, beyond U+10FFFF, cut short). */
int cs_utf8_seq(const unsigned char *s);

/* s as valid UTF-8 (malloc'd; NULL out of memory): each byte that is not part
 * of a valid sequence becomes U+FFFD. *changed (if given) is set to 1 when a
 * byte was replaced, else 0. */
char *cs_utf8_fix(const char *s, int *changed);

#endif
