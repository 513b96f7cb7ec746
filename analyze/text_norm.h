/* text_norm.h — text normalisation for the text audit, with a map back to
 * the original byte offsets.
 *
 * Normal form: Unicode NFC; every run of whitespace (ASCII whitespace, NUL,
 * U+0085 and the Unicode separators Zs/Zl/Zp) becomes one ' '; no leading or
 * trailing space. So a "word" is a maximal run of non-space bytes and words
 * are separated by exactly one ' '. Invalid UTF-8 is replaced, byte by byte,
 * by U+FFFD and counted (not fatal). The output never contains 0xFF (not a
 * UTF-8 byte), which the corpus uses as its document separator.
 *
 * NFC is applied word by word (whitespace never composes), so the offset map
 * is exact at every word boundary; inside a word that NFC changed, offsets
 * are approximate (spans are word-aligned, so reports only use boundaries). */
#ifndef CS_TEXT_NORM_H
#define CS_TEXT_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* orig(p) = a.orig + (p - a.norm) for the last anchor a with a.norm <= p
 * (an implicit anchor {0, 0} precedes the list). */
typedef struct {
    uint32_t norm, orig;
} cs_text_anchor;

typedef struct {
    char *text;               /* normalised UTF-8, NUL-terminated; owned */
    size_t len;               /* bytes, without the terminator */
    cs_text_anchor *anchors;  /* owned; sorted by norm, strictly increasing */
    size_t n_anchors;
    size_t n_invalid;         /* invalid UTF-8 bytes replaced by U+FFFD */
    size_t n_nul;             /* NUL bytes (treated as whitespace) */
    size_t n_words;
} cs_text_norm;

/* Largest input accepted (documents and completions): offsets are uint32. */
#define CS_TEXT_MAX_DOC ((size_t)0x7fffffff)

/* Normalises buf[0..len). Fails only on memory or a too large input.
 * Free the result with cs_text_norm_free (also after a failure). */
int cs_text_normalize(cs_text_norm *out, const char *buf, size_t len, cs_err *err);
void cs_text_norm_free(cs_text_norm *n);

/* Original offset of normalised offset p. */
uint64_t cs_text_orig_offset(const cs_text_anchor *a, size_t n, uint64_t p);

/* Number of characters (code points) in s[0..len). */
size_t cs_text_nchars(const char *s, size_t len);

/* Unicode White_Space (U+0009..000D, 0020, 0085, 00A0, 1680, 2000..200A,
 * 2028, 2029, 202F, 205F, 3000): what separates words in the exact figures.
 * The normal form above also reads NUL as space; exact text never holds NUL
 * (corpus and completions with one are rejected). */
int cs_text_is_ws(int32_t cp);

/* Decodes the code point at s[0..len) (len >= 1): its byte length; *cp = -1
 * for an invalid sequence (length 1). */
size_t cs_text_decode(const uint8_t *s, size_t len, int32_t *cp);

/* Offset of the first byte of buf that is not UTF-8 text (an invalid
 * sequence, or NUL), or (size_t)-1 when it is all text. */
size_t cs_text_check(const char *buf, size_t len);

#endif
