/* text_sa.h — one shard of the text corpus: a word-aligned suffix array
 * over its normal form, and its raw text with a suffix array over every
 * code point (the exact figures, text_exact.h), memory-mapped from files
 * beside the db.
 *
 * Raw layout: doc_0 0xFF doc_1 0xFF ... doc_k 0xFF (UTF-8 never holds 0xFF,
 * so no pattern can match across a separator). The raw array (every code
 * point start) is one libdivsufsort call over the raw text.
 *
 * The normal form (text_norm.h) is not stored: a word row is the raw offset
 * of a word start, and its suffix is read through the raw text, each run of
 * whitespace as one ' ' (none before a separator). Only a document that NFC
 * changes is stored, as its normal form, in the shard's side text (rows with
 * CS_TEXT_SIDE set are offsets there). The rows keep only the suffixes that
 * start a word, in the byte order of the normal form: ~0.6 bytes per input
 * byte, and every whitespace-tolerant span starts at a word in both the
 * completion and the corpus. They are sorted through a reduced string (each
 * word's rank among the distinct words, 1-4 bytes: ~0.3-0.6 of the text),
 * one libdivsufsort call. Index: raw 1 + raw array ~4 (ASCII) + word rows
 * ~0.6 bytes per input byte. A shard is limited to < 2 GiB (int32); building
 * it needs ~5 bytes per raw byte. */
#ifndef CS_TEXT_SA_H
#define CS_TEXT_SA_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define CS_TEXT_SEP 0xFF
#define CS_TEXT_MAX_SHARD ((uint64_t)0x7ffffff0)

#define CS_TEXT_SIDE 0x80000000u

typedef struct {
    const uint8_t *text; /* n bytes, mapped: the raw text (raw array), or the side text (word rows) */
    uint64_t n;
    const uint8_t *raw;  /* word rows only: the raw text the rows point into (not owned) */
    uint64_t raw_n;
    const uint32_t *sa;  /* n_sa sorted word-start offsets, mapped */
    uint64_t n_sa;
    void *tmap, *smap;   /* the mappings (NULL when empty) */
    size_t tlen, slen;
    /* The in-memory top level (cs_text_sa_sample): every top_k-th row's
     * first CS_TEXT_TOP_B bytes (of its normal form for word rows), so the
     * first ~log2(top_n) steps of each binary search read one small array
     * instead of a row and then the text it points at, at random, in the
     * maps. top_n = 0: none, every step reads the maps. */
    uint8_t *top;        /* top_n entries of CS_TEXT_TOP_B + 1 bytes: length, then bytes; owned */
    uint64_t top_n, top_k;
} cs_text_sa;

#define CS_TEXT_TOP_B 15
/* The default sampling step: 1 row in 256 (16 bytes each: 1/16 of the
 * array's 4 bytes per row in memory; the search left after the top level
 * is 8 steps inside 1 KiB of the array). */
#define CS_TEXT_TOP_K 256

/* Sorts the word-start suffixes of the normal form norm[0..n) (documents
 * each followed by the separator; n <= CS_TEXT_MAX_SHARD) and writes the
 * rows to sa_path, row of the i-th word start = wval[i] (nw of them), and
 * side[0..side_n) to side_path (atomically: temp file + rename). *n_sa gets
 * the number of rows. */
int cs_text_sa_build_words(const uint8_t *norm, uint64_t n, const uint32_t *wval, uint64_t nw, const uint8_t *side,
                           uint64_t side_n, const char *side_path, const char *sa_path, uint64_t *n_sa, cs_err *err);

/* Sorts every code point start of text[0..n) (not the separators) and
 * writes text_path and sa_path: the raw text's suffix array, for spans that
 * start anywhere. */
int cs_text_sa_build_chars(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                           uint64_t *n_sa, cs_err *err);

/* Asks for transparent huge pages over the whole 2 MiB pages inside
 * p[0..n) (a large buffer not touched yet): the sorts read their text and
 * array at random, and 4 KiB pages cost them a TLB miss and a page fault
 * each (libdivsufsort took 15-25% less CPU). Only a hint. */
void cs_text_huge(void *p, size_t n);

/* Maps a shard's files. Close with cs_text_sa_close. */
int cs_text_sa_open(cs_text_sa *sa, const char *text_path, const char *sa_path, cs_err *err);
/* Maps a shard's word rows and side text over its raw text raw[0..raw_n)
 * (mapped by the caller, kept open while these are). */
int cs_text_sa_open_words(cs_text_sa *sa, const char *side_path, const char *sa_path, const uint8_t *raw,
                          uint64_t raw_n, cs_err *err);
void cs_text_sa_close(cs_text_sa *sa);

/* Builds the in-memory top level over every k-th row (k >= 1; replaces an
 * earlier one). Arrays of fewer than 2 k rows get none. Searches give the
 * same rows and lcps with or without it. */
int cs_text_sa_sample(cs_text_sa *sa, uint64_t k, cs_err *err);
void cs_text_sa_unsample(cs_text_sa *sa);

/* Comparisons made by this thread's searches so far: *top in the in-memory
 * top level, *mapped against a row of the mapped array (each reads a row
 * and the text it points at). For benches. */
void cs_text_sa_probes(uint64_t *top, uint64_t *mapped);

/* Word rows: where the normal form of row v is after its first m bytes (in
 * the raw or the side text), and *b the next normal byte there (-1: the
 * end). */
const uint8_t *cs_text_sa_skip(const cs_text_sa *sa, uint32_t v, uint64_t m, int *b);

/* If raw[0..len) (one document, valid UTF-8) read as above is exactly its
 * normal form norm[0..nlen): the number of words, their starts (base + raw
 * offset) in wstarts (room for nlen / 2 + 1); else UINT64_MAX (NFC changed
 * it: the document goes to the side text). */
uint64_t cs_text_raw_reads_as(const uint8_t *raw, uint64_t len, const uint8_t *norm, uint64_t nlen, uint32_t base,
                              uint32_t *wstarts);

/* Bytes of the word at s (< end) up to whitespace or the separator. */
size_t cs_text_word_len(const uint8_t *s, const uint8_t *end);

/* Length of the longest prefix of p[0..m) that starts some word-start suffix;
 * *pos gets the text offset of one such suffix. */
uint64_t cs_text_sa_longest(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *pos);

/* The interval [*lo, *hi) of sa[] whose suffixes start with p[0..m). */
void cs_text_sa_range(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *lo, uint64_t *hi);

#endif
