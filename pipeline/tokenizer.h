/* tokenizer.h — the CLIP byte-level BPE tokenizer as SD 1.x uses it.
 *
 * clip_tokenize(text) gives 77 ids: 49406 (start), the first 75 BPE ids,
 * 49407 (end), padded with 49407 (HF CLIPTokenizer, padding="max_length",
 * truncation, as CompVis FrozenCLIPEmbedder calls it).
 *
 * Text clean-up (ftfy is a Python library; its default fixes that matter
 * for prompts are done here, the rest is not):
 *   1. invalid UTF-8 bytes become U+FFFD;
 *   2. (only with clip_tokenizer_set_html_unescape(t, 1), see below)
 *      HTML entities unescaped twice, as openai/CLIP's basic_clean does with
 *      Python's html.unescape: numeric (&#39; &#x27;, with or without ';',
 *      with Python's cp1252 remapping of 0x80..0x9F and its removal of
 *      invalid code points) and named ones: all HTML4 Latin-1 entities and
 *      the legacy no-semicolon forms, plus the common typographic ones
 *      (&hellip; &mdash; &rsquo; &euro; &trade; ...). Rare HTML5 names are
 *      left as text;
 *   3. ftfy defaults: terminal colour escapes and control characters
 *      removed, C1 controls read as cp1252, Latin ligatures split (ﬁ -> fi),
 *      full-width forms narrowed (NFKC of U+FF01..U+FFEF, U+3000 -> space),
 *      curly quotes straightened, then Unicode NFC. Mojibake repair
 *      (fix_encoding) is not done;
 *   4. whitespace runs (Python str.isspace) -> one space, strip;
 *   5. Python str.lower(): full Unicode lower-casing via utf8proc, with
 *      U+0130 -> "i\u0307" and the Greek final sigma rule;
 *   6. the CLIP split pattern <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|
 *      'll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (IGNORECASE), by hand with
 *      utf8proc's Unicode categories; the two special strings map to their
 *      ids directly;
 *   7. each piece: UTF-8 bytes -> byte-to-unicode symbols, "</w>" on the
 *      last, BPE merges by rank (hash map), results cached per piece.
 *
 * A tokenizer is read-only after loading and may be shared by threads. */
#ifndef CS_TOKENIZER_H
#define CS_TOKENIZER_H

#include <stdint.h>

#include "core/err.h"

#define CLIP_CONTEXT 77
#define CLIP_START_ID 49406
#define CLIP_END_ID 49407
#define CLIP_N_MERGES 48894 /* 49152 - 256 - 2, as both CLIP and HF read */

typedef struct clip_tokenizer clip_tokenizer;

/* Loads the vocabulary from:
 *   - bpe_simple_vocab_16e6.txt.gz (gzip or plain text: a header line, then
 *     merges; ids built as openai/CLIP does), or
 *   - a vocab.json with merges.txt beside it, or a merges.txt with vocab.json
 *     beside it (Hugging Face / diffusers tokenizer folder; ids from the json).
 * *out is owned by the caller: free with clip_tokenizer_free. A file that is
 * not such a vocabulary gives "<file>: <problem>". */
int clip_tokenizer_load(clip_tokenizer **out, const char *vocab_path, cs_err *err);
void clip_tokenizer_free(clip_tokenizer *t);

/* ids[77] as above. Returns the untruncated number of BPE ids (without the
 * start/end tokens), or -1 on error. */
int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t ids[77], cs_err *err);

/* BPE ids without start/end/padding, at most cap written; returns the full
 * count (which may exceed cap), or -1 on error. */
int clip_tokenize_bpe(const clip_tokenizer *t, const char *text, int32_t *ids, int cap, cs_err *err);

/* The vocabulary entry of an id (byte-to-unicode form, e.g. "cat</w>"), or
 * NULL when out of range. Points into t. */
const char *clip_tokenizer_token(const clip_tokenizer *t, int32_t id);
int clip_tokenizer_vocab_size(const clip_tokenizer *t);

/* The clean-up of steps 1..5 alone: a malloc'd UTF-8 string (caller frees),
 * NULL on out of memory. Exposed for tests and for reports. */
char *clip_clean_text(const char *text, int html_unescape);

/* Step 2 is off by default: SD 1.x tokenizes with Hugging Face's
 * CLIPTokenizer (+ ftfy), which does not unescape entities ("a &amp; b" ->
 * 320 261 6259 282 321; shared/refs/sd-tiny/PITFALLS.md 22). Turn it on to
 * tokenize exactly as openai/CLIP's SimpleTokenizer (-> 320 261 321). */
void clip_tokenizer_set_html_unescape(clip_tokenizer *t, int on);

#endif
