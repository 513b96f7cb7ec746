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

#include "core/fs.h"

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

static int sa_build(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path, int chars,
                    uint64_t *n_sa, cs_err *err) {
    *n_sa = 0;
    if (n > CS_TEXT_MAX_SHARD) return cs_fail(err, CS_ELIMIT, "%s: shard of %llu bytes exceeds 2 GiB", text_path,
                                              (unsigned long long)n);
    saidx_t *sa = malloc((n ? n : 1) * sizeof *sa);
    if (!sa) return cs_fail(err, CS_ENOMEM, "%s: out of memory for the suffix array (%llu bytes)", sa_path,
                            (unsigned long long)(n * sizeof *sa));
    if (n && divsufsort(text, sa, (saidx_t)n) != 0) {
        free(sa);
        return cs_fail(err, CS_EINTERNAL, "%s: divsufsort failed", sa_path);
    }
    /* Keep the wanted suffixes, in place; the order is kept. */
    uint32_t *out = (uint32_t *)sa;
    uint64_t k = 0;
    if (chars) { /* suffixes are sorted by first byte: drop the 0x80..0xBF and 0xFF blocks */
        uint64_t a = first_with(text, sa, n, 0x80), b = first_with(text, sa, n, 0xC0);
        uint64_t f = first_with(text, sa, n, CS_TEXT_SEP);
        memmove(out + a, out + b, (f - b) * sizeof *out);
        k = a + (f - b);
    } else
        for (uint64_t i = 0; i < n; i++) {
            if (i + 32 < n) __builtin_prefetch(text + sa[i + 32] - (sa[i + 32] > 0)); /* random reads: hide latency */
            uint32_t p = (uint32_t)sa[i];
            if (keep_word(text, p)) out[k++] = p;
        }
    int rc = cs_write_file_atomic(text_path, text, n, err);
    if (!rc) rc = cs_write_file_atomic(sa_path, out, k * sizeof *out, err);
    free(sa);
    if (!rc) *n_sa = k;
    return rc;
}

int cs_text_sa_build(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                     uint64_t *n_sa, cs_err *err) {
    return sa_build(text, n, text_path, sa_path, 0, n_sa, err);
}

int cs_text_sa_build_chars(const uint8_t *text, uint64_t n, const char *text_path, const char *sa_path,
                           uint64_t *n_sa, cs_err *err) {
    return sa_build(text, n, text_path, sa_path, 1, n_sa, err);
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

void cs_text_sa_close(cs_text_sa *sa) {
    if (sa->tmap) munmap(sa->tmap, sa->tlen);
    if (sa->smap) munmap(sa->smap, sa->slen);
    memset(sa, 0, sizeof *sa);
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

/* Binary search over suffix array rows (lo, hi) for the first row whose
 * suffix compares >= p (strict = 0) or > p without starting with it
 * (strict = 1); returns it and leaves *lo_out = it - 1. llcp and rlcp are
 * the lcps with the bounds, so bytes known equal are not compared again. */
static int64_t sa_bound(const cs_text_sa *sa, const uint8_t *p, size_t m, int64_t lo, int strict,
                         uint64_t *llcp_out, uint64_t *rlcp_out, int64_t *lo_out) {
    int64_t hi = (int64_t)sa->n_sa;
    uint64_t llcp = 0, rlcp = 0;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        int c;
        uint64_t l = lcp_cmp(sa, sa->sa[mid], p, m, llcp < rlcp ? llcp : rlcp, &c);
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
