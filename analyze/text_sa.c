/* text_sa.c — building and searching a shard's word-aligned suffix array. */
#include "analyze/text_sa.h"

#include <divsufsort.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/text_norm.h"
#include "core/fs.h"

void cs_text_huge(void *p, size_t n) {
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + n) & ~(huge - 1);
    if (p && b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);
}

/* Which suffixes a shard keeps: word starts (the normalised text), or every
 * code point start but the separators (the raw text: the suffixes starting
 * with a UTF-8 continuation byte or 0xFF are two blocks of the sorted
 * array, cut without reading the text at random). */
static int keep_word(const uint8_t *text, uint32_t p) {
    uint8_t c = text[p];
    if (c == ' ' || c == CS_TEXT_SEP) return 0;
    return p == 0 || text[p - 1] == ' ' || text[p - 1] == CS_TEXT_SEP;
}

/* The first row of the sorted suffixes whose first byte is >= c. */
static uint64_t first_with(const uint8_t *text, const saidx_t *sa, uint64_t n, uint8_t c) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (text[sa[mid]] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- the word suffix array from a reduced string ----
 *
 * In text whose words are separated by exactly one delimiter (' ' or 0xFF:
 * the normal form), cut at every word start, the pieces "word + delimiter"
 * (the last may lack one) form a prefix-free set: no piece followed by more
 * text is a prefix of another. So comparing two word-start suffixes byte by
 * byte is comparing their piece sequences piece by piece, each piece by its
 * rank among the distinct pieces. Writing each rank in w big-endian bytes
 * gives a string w times the word count (~0.3-0.6 of the text) whose
 * suffixes at multiples of w sort exactly like the word starts: one sort of
 * that short string replaces the sort of every suffix of the text. */

typedef struct {
    const uint8_t *text;
    const uint32_t *off, *len; /* distinct pieces */
} piece_set;

static int piece_cmp(const void *a, const void *b, void *ctx) {
    const piece_set *ps = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t lx = ps->len[x], ly = ps->len[y];
    int c = memcmp(ps->text + ps->off[x], ps->text + ps->off[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* A piece's first 8 bytes (zero-padded) and a hash of the whole. */
static uint64_t piece_head(const uint8_t *p, uint32_t n) {
    uint64_t w = 0;
    memcpy(&w, p, n < 8 ? n : 8);
    return w;
}

static uint32_t piece_hash(const uint8_t *p, uint32_t n, uint64_t head) {
    uint64_t h = head * 0x9E3779B97F4A7C15ull ^ n;
    for (uint32_t i = 8; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return (uint32_t)((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull >> 32);
}

/* Distinct pieces in a hash table (open addressing, grown at half load):
 * a slot holds hash << 32 | (id + 1), 0 = empty; each piece's head is kept
 * beside its offset, so most lookups never read the text at random. */
typedef struct {
    uint64_t *slot;
    uint64_t mask;
    uint32_t *off, *len;
    uint64_t *head;
    uint64_t n, cap;
} piece_table;

static int table_grow(piece_table *t) {
    uint64_t size = t->slot ? (t->mask + 1) * 2 : (1u << 16);
    uint64_t *s = calloc(size, sizeof *s);
    if (!s) return -1;
    for (uint64_t i = 0; t->slot && i <= t->mask; i++) {
        if (!t->slot[i]) continue;
        uint64_t h = (t->slot[i] >> 32) & (size - 1);
        while (s[h]) h = (h + 1) & (size - 1);
        s[h] = t->slot[i];
    }
    free(t->slot);
    t->slot = s;
    t->mask = size - 1;
    return 0;
}

static int64_t table_add(piece_table *t, const uint8_t *text, uint32_t off, uint32_t len) {
    if ((t->n + 1) * 2 > t->mask + 1 && table_grow(t)) return -1;
    uint64_t head = piece_head(text + off, len);
    uint32_t hash = piece_hash(text + off, len, head);
    uint64_t h = hash & t->mask;
    for (; t->slot[h]; h = (h + 1) & t->mask) {
        if ((uint32_t)(t->slot[h] >> 32) != hash) continue;
        uint32_t id = (uint32_t)t->slot[h] - 1;
        if (t->len[id] == len && t->head[id] == head &&
            (len <= 8 || !memcmp(text + t->off[id] + 8, text + off + 8, len - 8)))
            return id;
    }
    if (t->n == t->cap) {
        uint64_t c = t->cap ? t->cap * 2 : 4096;
        uint32_t *o = realloc(t->off, c * sizeof *o);
        if (o) t->off = o;
        uint32_t *l = o ? realloc(t->len, c * sizeof *l) : NULL;
        if (l) t->len = l;
        uint64_t *hd = l ? realloc(t->head, c * sizeof *hd) : NULL;
        if (!hd) return -1;
        t->head = hd;
        t->cap = c;
    }
    t->off[t->n] = off;
    t->len[t->n] = len;
    t->head[t->n] = head;
    t->slot[h] = (uint64_t)hash << 32 | (t->n + 1);
    return (int64_t)t->n++;
}

static int is_delim(uint8_t c) {
    return c == ' ' || c == CS_TEXT_SEP;
}

/* 1 if text[0..n) has no two delimiters in a row after its first word (the
 * reduced string is exact there); *nw gets the word count. */
static int single_delims(const uint8_t *text, uint64_t n, uint64_t *nw) {
    uint64_t i = 0, w = 0;
    while (i < n && is_delim(text[i])) i++;
    for (; i < n; i++) {
        if (is_delim(text[i])) {
            if (i + 1 < n && is_delim(text[i + 1])) return 0;
        } else if (i == 0 || is_delim(text[i - 1]))
            w++;
    }
    *nw = w;
    return 1;
}

/* The word starts of text[0..n), sorted, as word numbers (the i-th word
 * start of the text is i) into *out (malloc'd, *k of them); 1 when the text
 * does not suit the reduced string (the caller sorts every suffix), -1 on
 * memory. */
static int word_sa_reduced(const uint8_t *text, uint64_t n, uint32_t **out, uint64_t *k) {
    uint64_t nw;
    if (!single_delims(text, n, &nw)) return 1;
    piece_table t = {0};
    uint32_t *id = malloc((nw ? nw : 1) * sizeof *id);
    uint32_t *order = NULL, *rank = NULL;
    uint8_t *r = NULL;
    saidx_t *sa = NULL;
    int rc = -1;
    if (!id) goto out;
    cs_text_huge(id, nw * sizeof *id);
    uint64_t w = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (is_delim(text[i]) || (i > 0 && !is_delim(text[i - 1]))) continue;
        uint64_t e = i;
        while (e < n && !is_delim(text[e])) e++;
        if (e < n) e++; /* the delimiter belongs to the piece */
        int64_t d = table_add(&t, text, (uint32_t)i, (uint32_t)(e - i));
        if (d < 0) goto out;
        id[w++] = (uint32_t)d;
        i = e - 1;
    }
    /* ranks of the distinct pieces, in byte order */
    order = malloc((t.n ? t.n : 1) * sizeof *order);
    rank = malloc((t.n ? t.n : 1) * sizeof *rank);
    if (!order || !rank) goto out;
    for (uint64_t i = 0; i < t.n; i++) order[i] = (uint32_t)i;
    piece_set ps = {text, t.off, t.len};
    qsort_r(order, t.n, sizeof *order, piece_cmp, &ps);
    for (uint64_t i = 0; i < t.n; i++) rank[order[i]] = (uint32_t)i;
    int wb = 1;
    while (wb < 4 && t.n > (1ull << (8 * wb))) wb++;
    uint64_t rn = nw * (uint64_t)wb;
    if (rn > (uint64_t)INT32_MAX) {
        rc = 1;
        goto out;
    }
    r = malloc(rn ? rn : 1);
    sa = malloc((rn ? rn : 1) * sizeof *sa);
    if (!r || !sa) goto out;
    cs_text_huge(r, rn);
    cs_text_huge(sa, rn * sizeof *sa);
    for (uint64_t i = 0; i < nw; i++)
        for (int b = 0; b < wb; b++) r[i * wb + b] = (uint8_t)(rank[id[i]] >> (8 * (wb - 1 - b)));
    free(id), free(rank), free(order), free(t.slot), free(t.off), free(t.len), free(t.head); /* before the sort */
    id = rank = order = t.off = t.len = NULL;
    t.slot = t.head = NULL;
    if (rn && divsufsort(r, sa, (saidx_t)rn) != 0) goto out;
    uint32_t *o = (uint32_t *)sa; /* in place: the kept rows never pass the read position */
    uint64_t kk = 0;
    for (uint64_t i = 0; i < rn; i++)
        if ((uint64_t)sa[i] % (uint64_t)wb == 0) o[kk++] = (uint32_t)((uint64_t)sa[i] / (uint64_t)wb);
    *out = o;
    *k = kk;
    sa = NULL;
    rc = 0;
out:
    free(id), free(order), free(rank), free(r), free(sa);
    free(t.slot), free(t.off), free(t.len), free(t.head);
    return rc;
}

/* The word starts of text[0..n) in text order (the fallback's numbering). */
static uint32_t *word_starts(const uint8_t *text, uint64_t n, uint64_t *nw) {
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) k += !is_delim(text[i]) && (i == 0 || is_delim(text[i - 1]));
    uint32_t *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) return NULL;
    k = 0;
    for (uint64_t i = 0; i < n; i++)
        if (!is_delim(text[i]) && (i == 0 || is_delim(text[i - 1]))) v[k++] = (uint32_t)i;
    *nw = k;
    return v;
}

static uint64_t find_u32(const uint32_t *v, uint64_t n, uint32_t x) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Every suffix of text[0..n) sorted into *out (malloc'd); chars: the code
 * point starts kept, else the word starts, as word numbers. *k: kept. */
static int sort_all(const uint8_t *text, uint64_t n, int chars, uint32_t **out, uint64_t *k, const char *sa_path,
                    cs_err *err) {
    saidx_t *sa = malloc((n ? n : 1) * sizeof *sa);
    if (!sa) return cs_fail(err, CS_ENOMEM, "%s: out of memory for the suffix array (%llu bytes)", sa_path,
                            (unsigned long long)(n * sizeof *sa));
    cs_text_huge(sa, n * sizeof *sa);
    if (n && divsufsort(text, sa, (saidx_t)n) != 0) {
        free(sa);
        return cs_fail(err, CS_EINTERNAL, "%s: divsufsort failed", sa_path);
    }
    /* Keep the wanted suffixes, in place; the order is kept. */
    uint32_t *o = (uint32_t *)sa;
    *k = 0;
    if (chars) { /* suffixes are sorted by first byte: drop the 0x80..0xBF and 0xFF blocks */
        uint64_t a = first_with(text, sa, n, 0x80), b = first_with(text, sa, n, 0xC0);
        uint64_t f = first_with(text, sa, n, CS_TEXT_SEP);
        memmove(o + a, o + b, (f - b) * sizeof *o);
        *k = a + (f - b);
    } else {
        uint64_t nw;
        uint32_t *ws = word_starts(text, n, &nw);
        if (!ws) {
            free(sa);
            return cs_fail(err, CS_ENOMEM, "%s: out of memory for the word suffix array", sa_path);
        }
        for (uint64_t i = 0; i < n; i++) {
            if (i + 32 < n) __builtin_prefetch(text + sa[i + 32] - (sa[i + 32] > 0)); /* random reads: hide latency */
            uint32_t p = (uint32_t)sa[i];
            if (keep_word(text, p)) o[(*k)++] = (uint32_t)find_u32(ws, nw, p);
        }
        free(ws);
    }
    *out = o;
    return 0;
}

int cs_text_sa_build_chars(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                           uint64_t *n_sa, cs_err *err) {
    *n_sa = 0;
    if (n > CS_TEXT_MAX_SHARD) return cs_fail(err, CS_ELIMIT, "%s: shard of %llu bytes exceeds 2 GiB", text_path,
                                              (unsigned long long)n);
    uint32_t *out = NULL;
    uint64_t k = 0;
    if (sort_all(text, n, 1, &out, &k, sa_path, err)) return -1;
    int rc = cs_write_file_atomic(text_path, text, n, err);
    if (!rc) rc = cs_write_file_atomic(sa_path, out, k * sizeof *out, err);
    free(out);
    if (!rc) *n_sa = k;
    return rc;
}

int cs_text_sa_build_words(const uint8_t *norm, uint64_t n, const uint32_t *wval, uint64_t nw, const uint8_t *side,
                           uint64_t side_n, const char *side_path, const char *sa_path, uint64_t *n_sa, cs_err *err) {
    *n_sa = 0;
    if (n > CS_TEXT_MAX_SHARD || side_n > CS_TEXT_MAX_SHARD)
        return cs_fail(err, CS_ELIMIT, "%s: shard of %llu bytes exceeds 2 GiB", sa_path, (unsigned long long)n);
    uint32_t *out = NULL;
    uint64_t k = 0;
    int red = word_sa_reduced(norm, n, &out, &k);
    if (red < 0) return cs_fail(err, CS_ENOMEM, "%s: out of memory for the word suffix array", sa_path);
    if (red > 0 && sort_all(norm, n, 0, &out, &k, sa_path, err)) return -1;
    /* word numbers to what the rows hold (raw offsets or side offsets) */
    for (uint64_t i = 0; i < k; i++) {
        if (out[i] >= nw) {
            free(out);
            return cs_fail(err, CS_EINTERNAL, "%s: word %u of %llu", sa_path, out[i], (unsigned long long)nw);
        }
        if (i + 32 < k && out[i + 32] < nw) __builtin_prefetch(&wval[out[i + 32]]); /* read at random */
        out[i] = wval[out[i]];
    }
    int rc = cs_write_file_atomic(side_path, side, side_n, err);
    if (!rc) rc = cs_write_file_atomic(sa_path, out, k * sizeof *out, err);
    free(out);
    if (!rc) *n_sa = k;
    return rc;
}

static int map_file(const char *path, void **map, size_t *len, cs_err *err) {
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cs_fail(err, CS_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return cs_fail(err, CS_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (st.st_size > 0) {
        /* populated: a query touches pages at random, and a fault per page
         * cost more than the search itself on a fresh mapping */
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return cs_fail(err, CS_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
        madvise(m, (size_t)st.st_size, MADV_RANDOM);
        *map = m;
        *len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

int cs_text_sa_open(cs_text_sa *sa, const char *text_path, const char *sa_path, cs_err *err) {
    memset(sa, 0, sizeof *sa);
    if (map_file(text_path, &sa->tmap, &sa->tlen, err)) return -1;
    if (map_file(sa_path, &sa->smap, &sa->slen, err)) {
        cs_text_sa_close(sa);
        return -1;
    }
    if (sa->slen % 4 || sa->slen / 4 > sa->tlen) {
        cs_text_sa_close(sa);
        return cs_fail(err, CS_EFORMAT, "%s: not a suffix array for %s", sa_path, text_path);
    }
    sa->text = sa->tmap;
    sa->n = sa->tlen;
    sa->sa = sa->smap;
    sa->n_sa = sa->slen / 4;
    return 0;
}

int cs_text_sa_open_words(cs_text_sa *sa, const char *side_path, const char *sa_path, const uint8_t *raw,
                          uint64_t raw_n, cs_err *err) {
    memset(sa, 0, sizeof *sa);
    if (map_file(side_path, &sa->tmap, &sa->tlen, err)) return -1;
    if (map_file(sa_path, &sa->smap, &sa->slen, err)) {
        cs_text_sa_close(sa);
        return -1;
    }
    if (sa->slen % 4 || sa->slen / 4 > sa->tlen + raw_n) {
        cs_text_sa_close(sa);
        return cs_fail(err, CS_EFORMAT, "%s: not a word suffix array for its shard", sa_path);
    }
    sa->text = sa->tmap;
    sa->n = sa->tlen;
    sa->sa = sa->smap;
    sa->n_sa = sa->slen / 4;
    sa->raw = raw ? raw : (const uint8_t *)"";
    sa->raw_n = raw_n;
    return 0;
}

void cs_text_sa_close(cs_text_sa *sa) {
    free(sa->top);
    if (sa->tmap) munmap(sa->tmap, sa->tlen);
    if (sa->smap) munmap(sa->smap, sa->slen);
    memset(sa, 0, sizeof *sa);
}

/* ---- reading the normal form through the raw text ----
 *
 * A word row that is a raw offset reads the raw text as its normal form:
 * every run of whitespace code points is one ' ', or nothing before the
 * separator (no trailing space); everything else is itself. The build puts
 * a document there only when that reading equals its normal form (NFC left
 * it alone), so the rows sort the same either way. */

/* Bytes that may start whitespace (ASCII 9-13 and 32; the leads of U+0085,
 * U+00A0, U+1680, U+2000-U+205F, U+3000) or are the separator. */
static const uint8_t special[256] = {
    [9] = 1, [10] = 1, [11] = 1, [12] = 1, [13] = 1, [32] = 1, [0xC2] = 1, [0xE1] = 1, [0xE2] = 1, [0xE3] = 1,
    [0xFF] = 1,
};

/* Byte length of the whitespace code point at s (< end), 0 if none. */
static inline size_t ws_len(const uint8_t *s, const uint8_t *end) {
    uint8_t c = s[0];
    if (c == ' ' || (c >= 9 && c <= 13)) return 1;
    if (c < 0xC2 || c == CS_TEXT_SEP) return 0;
    int32_t cp;
    size_t k = cs_text_decode(s, (size_t)(end - s), &cp);
    return cp > 0 && cs_text_is_ws(cp) ? k : 0;
}

/* The next normal-form byte at *s (< end): returns it and advances *s, or
 * -1 at the end. A whitespace run before the separator reads as nothing. */
static inline int next_norm(const uint8_t **sp, const uint8_t *end) {
    const uint8_t *s = *sp;
    if (s >= end) return -1;
    if (special[*s]) {
        size_t w = ws_len(s, end);
        if (w) {
            do s += w;
            while (s < end && (w = ws_len(s, end)));
            *sp = s;
            if (s >= end) return -1;
            if (*s == CS_TEXT_SEP) return next_norm(sp, end);
            return ' ';
        }
    }
    *sp = s + 1;
    return *s;
}

/* Where row v's normal form is read, and whether through the raw text. */
static inline const uint8_t *row_text(const cs_text_sa *sa, uint32_t v, const uint8_t **end, int *raw) {
    if (sa->raw && !(v & CS_TEXT_SIDE)) {
        *raw = 1;
        *end = sa->raw + sa->raw_n;
        return sa->raw + (v < sa->raw_n ? v : sa->raw_n);
    }
    uint64_t o = sa->raw ? v & ~CS_TEXT_SIDE : v;
    *raw = 0;
    *end = sa->text + sa->n;
    return sa->text + (o < sa->n ? o : sa->n);
}

const uint8_t *cs_text_sa_skip(const cs_text_sa *sa, uint32_t v, uint64_t m, int *b) {
    const uint8_t *end;
    int raw;
    const uint8_t *s = row_text(sa, v, &end, &raw);
    if (!raw) {
        s = (uint64_t)(end - s) < m ? end : s + m;
        *b = s < end ? *s : -1;
        return s;
    }
    for (uint64_t i = 0; i < m && next_norm(&s, end) >= 0; i++) {}
    const uint8_t *t = s;
    *b = next_norm(&t, end);
    return s;
}

size_t cs_text_word_len(const uint8_t *s, const uint8_t *end) {
    const uint8_t *p = s;
    while (p < end && *p != CS_TEXT_SEP && !ws_len(p, end)) p++;
    return (size_t)(p - s);
}

/* Compares p[0..m) with the suffix at pos, knowing the first k bytes agree.
 * Returns the common prefix length; *cmp < 0 if p sorts before the suffix,
 * 0 if p is a prefix of it, > 0 if p sorts after. Offsets past the end (a
 * damaged file) read as an empty suffix. */
static inline uint64_t lcp_cmp(const cs_text_sa *sa, uint64_t pos, const uint8_t *p, size_t m, uint64_t k,
                               int *cmp) {
    if (pos > sa->n) pos = sa->n;
    const uint8_t *s = sa->text + pos;
    uint64_t sl = sa->n - pos, lim = m < sl ? m : sl;
    while (k < lim && s[k] == p[k]) k++;
    if (k == m) *cmp = 0;
    else if (k == sl) *cmp = 1;
    else *cmp = p[k] < s[k] ? -1 : 1;
    return k;
}

/* The same for a word row, from its first byte: the normal form read
 * through the raw text has no random access to skip known bytes. */
static inline uint64_t lcp_words(const cs_text_sa *sa, uint32_t v, const uint8_t *p, size_t m, int *cmp) {
    const uint8_t *end;
    int raw;
    const uint8_t *s = row_text(sa, v, &end, &raw);
    if (!raw) {
        uint64_t sl = (uint64_t)(end - s), lim = m < sl ? m : sl, k = 0;
        while (k < lim && s[k] == p[k]) k++;
        if (k == m) *cmp = 0;
        else if (k == sl) *cmp = 1;
        else *cmp = p[k] < s[k] ? -1 : 1;
        return k;
    }
    uint64_t k = 0;
    while (k < m) {
        /* the common case: a byte that is itself (a single space before a
         * byte that starts no whitespace is one) */
        if (s + 1 < end && (!special[*s] || (*s == ' ' && !special[s[1]]))) {
            if (*s != p[k]) {
                *cmp = p[k] < *s ? -1 : 1;
                return k;
            }
            s++, k++;
            continue;
        }
        int c = next_norm(&s, end);
        if (c < 0) {
            *cmp = 1;
            return k;
        }
        if (c != p[k]) {
            *cmp = p[k] < c ? -1 : 1;
            return k;
        }
        k++;
    }
    *cmp = 0;
    return k;
}

static inline void prefetch_text(const cs_text_sa *sa, uint64_t pos) {
    if (sa->raw) {
        if (!(pos & CS_TEXT_SIDE) && pos < sa->raw_n) __builtin_prefetch(sa->raw + pos);
    } else if (pos < sa->n)
        __builtin_prefetch(sa->text + pos);
}

/* ---- the in-memory top level ---- */

static _Thread_local uint64_t probes_top, probes_mapped;

void cs_text_sa_probes(uint64_t *top, uint64_t *mapped) {
    *top = probes_top;
    *mapped = probes_mapped;
}

/* The first (up to) CS_TEXT_TOP_B bytes of row v's suffix as the searches
 * read it (lcp_cmp: raw bytes; lcp_words: the normal form) into o; returns
 * how many (fewer: the suffix ends there). */
static size_t row_prefix(const cs_text_sa *sa, uint32_t v, uint8_t *o) {
    size_t k = 0;
    if (!sa->raw) {
        uint64_t pos = v > sa->n ? sa->n : v;
        while (k < CS_TEXT_TOP_B && pos + k < sa->n) o[k] = sa->text[pos + k], k++;
        return k;
    }
    const uint8_t *end;
    int raw;
    const uint8_t *s = row_text(sa, v, &end, &raw);
    int c;
    while (k < CS_TEXT_TOP_B && (c = raw ? next_norm(&s, end) : (s < end ? *s++ : -1)) >= 0) o[k++] = (uint8_t)c;
    return k;
}

void cs_text_sa_unsample(cs_text_sa *sa) {
    free(sa->top);
    sa->top = NULL;
    sa->top_n = sa->top_k = 0;
}

int cs_text_sa_sample(cs_text_sa *sa, uint64_t k, cs_err *err) {
    cs_text_sa_unsample(sa);
    if (k < 1) k = 1;
    if (sa->n_sa < 2 * k) return 0;
    uint64_t n = (sa->n_sa + k - 1) / k;
    uint8_t *t = malloc(n * (CS_TEXT_TOP_B + 1));
    if (!t) return cs_fail(err, CS_ENOMEM, "out of memory for a suffix array's top level (%llu rows)",
                           (unsigned long long)n);
    cs_text_huge(t, n * (CS_TEXT_TOP_B + 1));
    for (uint64_t i = 0; i < n; i++) {
        if (i + 16 < n) prefetch_text(sa, sa->sa[(i + 16) * k]); /* the rows' text is read at random */
        uint8_t *e = t + i * (CS_TEXT_TOP_B + 1);
        e[0] = (uint8_t)row_prefix(sa, sa->sa[i * k], e + 1);
    }
    sa->top = t;
    sa->top_n = n;
    sa->top_k = k;
    return 0;
}

/* Compares p[0..m) with a top-level entry as lcp_cmp / lcp_words would
 * with its row: 1 and *l, *cmp when the entry's bytes decide it, 0 when p
 * and the row agree on all CS_TEXT_TOP_B bytes and both go on (the row
 * must be read). */
static inline int top_cmp(const uint8_t *e, const uint8_t *p, size_t m, uint64_t *l, int *cmp) {
    size_t ls = e[0], lim = m < ls ? m : ls, k = 0;
    const uint8_t *s = e + 1;
    while (k < lim && s[k] == p[k]) k++;
    *l = k;
    if (k == m) *cmp = 0;
    else if (k < lim) *cmp = p[k] < s[k] ? -1 : 1;
    else if (ls < CS_TEXT_TOP_B) *cmp = 1; /* the suffix ends before p */
    else return 0;
    return 1;
}

static inline uint64_t lcp_cmp(const cs_text_sa *sa, uint64_t pos, const uint8_t *p, size_t m, uint64_t k,
                               int *cmp);
static inline uint64_t lcp_words(const cs_text_sa *sa, uint32_t v, const uint8_t *p, size_t m, int *cmp);

/* Narrows the search (*lo, *hi) (hi = the array's end) to two neighbouring
 * sampled rows by a binary search of the top level, with the lcps of p
 * with those rows (exact: a decided entry's lcp is below CS_TEXT_TOP_B or is
 * the whole of the shorter one; an undecided one reads its row). The same
 * predicate as sa_bound, so the rows sa_bound ends on are the same. */
static void top_bound(const cs_text_sa *sa, const uint8_t *p, size_t m, int strict, int64_t *lo, int64_t *hi,
                      uint64_t *llcp, uint64_t *rlcp) {
    int64_t K = (int64_t)sa->top_k;
    int64_t a = *lo < 0 ? -1 : *lo / K, b = (int64_t)sa->top_n; /* samples a < i < b lie inside (lo, hi) */
    uint64_t la = *llcp, lb = *rlcp;
    int moved_a = 0, moved_b = 0;
    while (b - a > 1) {
        int64_t mid = a + (b - a) / 2;
        const uint8_t *e = sa->top + (uint64_t)mid * (CS_TEXT_TOP_B + 1);
        uint64_t l;
        int c;
        probes_top++;
        if (!top_cmp(e, p, m, &l, &c)) {
            probes_mapped++;
            uint32_t v = sa->sa[mid * K];
            l = sa->raw ? lcp_words(sa, v, p, m, &c) : lcp_cmp(sa, v, p, m, CS_TEXT_TOP_B, &c);
        }
        if (strict ? c < 0 : c <= 0) b = mid, lb = l, moved_b = 1;
        else a = mid, la = l, moved_a = 1;
    }
    if (moved_a) *lo = a * K, *llcp = la;
    if (moved_b) *hi = b * K, *rlcp = lb;
}

/* Binary search over suffix array rows (lo, hi) for the first row whose
 * suffix compares >= p (strict = 0) or > p without starting with it
 * (strict = 1); returns it and leaves *lo_out = it - 1. llcp and rlcp are
 * the lcps with the bounds, so bytes known equal are not compared again
 * (in the raw array; a word row compares from its start). */
static int64_t sa_bound(const cs_text_sa *sa, const uint8_t *p, size_t m, int64_t lo, int strict,
                         uint64_t *llcp_out, uint64_t *rlcp_out, int64_t *lo_out) {
    int64_t hi = (int64_t)sa->n_sa;
    uint64_t llcp = 0, rlcp = 0;
    if (sa->top_n && hi - lo > 2 * (int64_t)sa->top_k) top_bound(sa, p, m, strict, &lo, &hi, &llcp, &rlcp);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        uint64_t k = llcp < rlcp ? llcp : rlcp;
        /* The deep steps miss the cache twice in a row (the row, then the
         * text it points at): while this step compares, the next step's
         * two candidate rows' text and the four rows after them are
         * fetched, so a step waits for about one miss instead of two. */
        int64_t l1 = lo + (mid - lo) / 2, r1 = mid + (hi - mid) / 2;
        uint64_t pk = sa->raw ? 0 : k;
        if (l1 > lo) {
            prefetch_text(sa, sa->sa[l1] + pk);
            __builtin_prefetch(&sa->sa[lo + (l1 - lo) / 2]);
            __builtin_prefetch(&sa->sa[l1 + (mid - l1) / 2]);
        }
        if (r1 > mid) {
            prefetch_text(sa, sa->sa[r1] + pk);
            __builtin_prefetch(&sa->sa[mid + (r1 - mid) / 2]);
            __builtin_prefetch(&sa->sa[r1 + (hi - r1) / 2]);
        }
        int c;
        probes_mapped++;
        uint64_t l = sa->raw ? lcp_words(sa, sa->sa[mid], p, m, &c) : lcp_cmp(sa, sa->sa[mid], p, m, k, &c);
        if (strict ? c < 0 : c <= 0) hi = mid, rlcp = l;
        else lo = mid, llcp = l;
    }
    if (llcp_out) *llcp_out = llcp;
    if (rlcp_out) *rlcp_out = rlcp;
    if (lo_out) *lo_out = lo;
    return hi;
}

uint64_t cs_text_sa_longest(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *pos) {
    /* Lower bound of p; the longest match is with one of its neighbours,
     * whose lcps the search keeps (llcp, rlcp). */
    int64_t lo;
    uint64_t llcp, rlcp;
    int64_t hi = sa_bound(sa, p, m, -1, 0, &llcp, &rlcp, &lo);
    uint64_t best = 0;
    *pos = 0;
    if (lo >= 0) {
        best = llcp;
        *pos = sa->sa[lo];
    }
    if (hi < (int64_t)sa->n_sa && (rlcp > best || lo < 0)) {
        best = rlcp;
        *pos = sa->sa[hi];
    }
    return best;
}

void cs_text_sa_range(const cs_text_sa *sa, const uint8_t *p, size_t m, uint64_t *lo_out, uint64_t *hi_out) {
    int64_t first = sa_bound(sa, p, m, -1, 0, NULL, NULL, NULL); /* first suffix >= p */
    *lo_out = (uint64_t)first;
    /* first suffix > p that does not start with p */
    *hi_out = (uint64_t)sa_bound(sa, p, m, first - 1, 1, NULL, NULL, NULL);
}

uint64_t cs_text_raw_reads_as(const uint8_t *raw, uint64_t len, const uint8_t *norm, uint64_t nlen, uint32_t base,
                              uint32_t *wstarts) {
    const uint8_t *s = raw, *end = raw + len;
    size_t w;
    while (s < end && (w = ws_len(s, end))) s += w; /* the normal form has no leading space */
    uint64_t j = 0, nw = 0;
    for (;;) {
        const uint8_t *at = s;
        int c = next_norm(&s, end);
        if (c < 0) break;
        if (j >= nlen || c != norm[j] || c == CS_TEXT_SEP) return UINT64_MAX;
        if (c != ' ' && (j == 0 || norm[j - 1] == ' ')) wstarts[nw++] = base + (uint32_t)(at - raw);
        j++;
    }
    return j == nlen ? nw : UINT64_MAX;
}
