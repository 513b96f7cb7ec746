/* text_sa.h — one shard of the text corpus: its normalised text and a
 * word-aligned suffix array, both memory-mapped from files beside the db;
 * and its raw text with a suffix array over every code point (the exact
 * figures, text_exact.h).
 *
 * Layout: text = doc_0 0xFF doc_1 0xFF ... doc_k 0xFF (normalised UTF-8 never
 * holds 0xFF, so no pattern can match across a separator). The word suffix
 * array keeps only the suffixes that start a word (offset 0, or after ' ' or
 * 0xFF), in byte order, as uint32 offsets: ~0.6 bytes per input byte instead
 * of 4, and every verbatim span starts at a word in both the completion and
 * the corpus. Normal-form text (one delimiter between words) is sorted
 * through a reduced string (each word's rank among the distinct words, 1-4
 * bytes: ~0.3-0.6 of the text), one libdivsufsort call; other text sorts
 * every suffix and keeps the word starts. The raw text's array (every code
 * point start) is one libdivsufsort call over the raw text. A shard is
 * limited to < 2 GiB (int32); building it needs ~5 bytes per raw byte. */
#ifndef CS_TEXT_SA_H
#define CS_TEXT_SA_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define CS_TEXT_SEP 0xFF
#define CS_TEXT_MAX_SHARD ((uint64_t)0x7ffffff0)

typedef struct {
    const uint8_t *text; /* n bytes, mapped */
    uint64_t n;
    const uint32_t *sa;  /* n_sa sorted word-start offsets, mapped */
    uint64_t n_sa;
    void *tmap, *smap;   /* the mappings (NULL when empty) */
    size_t tlen, slen;
} cs_text_sa;

/* Sorts the word-start suffixes of text[0..n) (n <= CS_TEXT_MAX_SHARD) and
 * writes text_path and sa_path (atomically: temp file + rename). *n_sa gets
 * the number of suffixes. */
int cs_text_sa_build(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                     uint64_t *n_sa, cs_err *err);

/* The same over every code point start (not the separators): the raw
 * text's suffix array, for spans that start anywhere. */
int cs_text_sa_build_chars(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                           uint64_t *n_sa, cs_err *err);

/* Asks for transparent huge pages over the whole 2 MiB pages inside
 * p[0..n) (a large buffer not touched yet): the sorts read their text and
 * array at random, and 4 KiB pages cost them a TLB miss and a page fault
 * each (libdivsufsort took 15-25% less CPU). Only a hint. */
void cs_text_huge(void *p, size_t n);

/* Maps a shard's files. Close with cs_text_sa_close. */
int cs_text_sa_open(cs_text_sa *sa, const char *text_path, const char *sa_path, cs_err *err);
void cs_text_sa_close(cs_text_sa *sa);

/* Length of the longest prefix of p[0..m) that starts some word-start suffix;
 * *pos gets the text offset of one such suffix. */
uint64_t cs_text_sa_longest(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *pos);

/* The interval [*lo, *hi) of sa[] whose suffixes start with p[0..m). */
void cs_text_sa_range(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *lo, uint64_t *hi);

#endif
