/* The in-memory top level of the suffix arrays (cs_text_sa_sample) gives
 * the same searches as the plain binary search: for both arrays of every
 * shard (raw bytes, and the word rows read as their normal form through the
 * raw text or the side text of NFC-changed documents), at several sampling
 * steps, cs_text_sa_range and cs_text_sa_longest return the same rows, the
 * same lengths and positions for patterns cut from the corpus (long shared
 * prefixes, so the top level's 15 bytes often do not decide), mutated
 * copies, and random bytes. The plain search is itself checked against
 * brute force in test_text_exact.c; this checks the fast path against it,
 * and that the top level is used (fewer reads of the mapped array). */
#include <stdint.h>
#include <sys/stat.h>

#include "analyze/text_corpus.h"
#include "analyze/text_norm.h"
#include "analyze/text_sa.h"
#include "t.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* a small vocabulary with shared prefixes, whitespace variants, and words
 * NFC changes (e + U+0301) so some documents go to the side text */
static const char *WORDS[] = {"the", "then", "there", "a", "an", "lines", "lines,", "caf\xC3\xA9", "cafe\xCC\x81",
                              "\xE4\xB8\x80\xE4\xBA\x8C", "abcdefghijklmnop", "abcdefghijklmnopq", "x"};
static const char *SEPS[] = {" ", "  ", "\n", "\t", "\xC2\xA0", "\xE3\x80\x80"};

static size_t gen_doc(char *o, int nw, int nfc_words) {
    size_t k = 0;
    int nword = (int)(sizeof WORDS / sizeof WORDS[0]) - (nfc_words ? 0 : 1);
    for (int i = 0; i < nw; i++) {
        if (i) k += (size_t)sprintf(o + k, "%s", rnd() % 4 ? " " : SEPS[rnd() % 6]);
        int w = (int)(rnd() % (uint64_t)nword);
        if (!nfc_words && w == 8) w = 12;
        k += (size_t)sprintf(o + k, "%s", WORDS[w]);
    }
    return k;
}

typedef struct {
    uint64_t lo, hi, len, pos;
} answer;

static answer ask(const cs_text_sa *sa, const uint8_t *p, size_t m) {
    answer a;
    cs_text_sa_range(sa, p, m, &a.lo, &a.hi);
    a.len = cs_text_sa_longest(sa, p, m, &a.pos);
    return a;
}

/* A pattern: a piece of the array's own text (a row's suffix read as the
 * search reads it), sometimes mutated at its end, or random bytes. */
static size_t pattern(const cs_text_sa *sa, uint8_t *p, size_t cap) {
    size_t m = 1 + rnd() % (cap - 1);
    int kind = (int)(rnd() % 8);
    if (kind == 0) {
        for (size_t i = 0; i < m; i++) p[i] = (uint8_t)(rnd() % 256);
        if (p[0] == 0xFF) p[0] = 'a';
        return m;
    }
    /* the row's text: skip through it with cs_text_sa_skip (word rows) or read it (raw) */
    uint32_t v = sa->sa[rnd() % sa->n_sa];
    size_t k = 0;
    for (; k < m; k++) {
        int b;
        if (sa->raw) cs_text_sa_skip(sa, v, k, &b);
        else b = v + k < sa->n ? sa->text[v + k] : -1;
        if (b < 0) break;
        p[k] = (uint8_t)b;
    }
    if (k == 0) p[k++] = 'a';
    if (kind == 1) p[k - 1] ^= (uint8_t)(1 + rnd() % 3); /* just off a real suffix */
    return k;
}

static int same(answer a, answer b) {
    return a.lo == b.lo && a.hi == b.hi && a.len == b.len && a.pos == b.pos;
}

static void check_array(cs_text_sa *sa, const char *what) {
    static const uint64_t steps[] = {1, 2, 3, 7, 16};
    uint8_t p[80];
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        cs_err e = {0};
        int bad = 0;
        uint64_t t0, m0, t1, m1, plain_mapped = 0, top_mapped = 0;
        for (int it = 0; it < 3000; it++) {
            uint64_t save = rs;
            size_t m = pattern(sa, p, sizeof p);
            cs_text_sa_unsample(sa);
            cs_text_sa_probes(&t0, &m0);
            answer a = ask(sa, p, m);
            cs_text_sa_probes(&t1, &m1);
            plain_mapped += m1 - m0;
            REQUIRE(cs_text_sa_sample(sa, steps[si], &e) == 0);
            CHECK(sa->top_n > 0);
            cs_text_sa_probes(&t0, &m0);
            answer b = ask(sa, p, m);
            cs_text_sa_probes(&t1, &m1);
            top_mapped += m1 - m0;
            if (!same(a, b) && bad++ < 3)
                CHECKF(0, "%s step %llu pattern #%d (seed %llx, %zu bytes): plain [%llu,%llu) len %llu pos %llu, "
                       "top [%llu,%llu) len %llu pos %llu", what, (unsigned long long)steps[si], it,
                       (unsigned long long)save, m, (unsigned long long)a.lo, (unsigned long long)a.hi,
                       (unsigned long long)a.len, (unsigned long long)a.pos, (unsigned long long)b.lo,
                       (unsigned long long)b.hi, (unsigned long long)b.len, (unsigned long long)b.pos);
        }
        CHECK(bad == 0);
        /* the top level takes the first steps: fewer reads of the maps
         * (from step 3 on, where the search left inside a step is short) */
        if (steps[si] >= 3)
            CHECKF(top_mapped < plain_mapped, "%s step %llu: %llu mapped probes with the top level, %llu without",
                   what, (unsigned long long)steps[si], (unsigned long long)top_mapped,
                   (unsigned long long)plain_mapped);
        cs_text_sa_unsample(sa);
    }
}

static void test_top_level_gives_the_same_searches(void) {
    char *tmp = t_tmpdir("text-top");
    REQUIRE(tmp);
    char docdir[4200], db[4200], p[4400];
    snprintf(docdir, sizeof docdir, "%s/docs", tmp);
    snprintf(db, sizeof db, "%s/t.db", tmp);
    mkdir(docdir, 0755);
    char *buf = malloc(1 << 16);
    for (int d = 0; d < 12; d++) {
        size_t n = gen_doc(buf, 300 + (int)(rnd() % 400), d % 3 == 0);
        snprintf(p, sizeof p, "%s/d%02d.txt", docdir, d);
        FILE *f = fopen(p, "wb");
        REQUIRE(f);
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    free(buf);
    cs_store *s = NULL;
    cs_err e = {0};
    cs_text_index_opts o = {.shard_bytes = 20000}; /* several shards */
    const char *paths[] = {docdir};
    REQUIRE(cs_store_open(&s, db, &e) == 0);
    cs_text_corpus c;
    int rc = cs_text_index(s, paths, 1, &o, NULL, &e);
    if (!rc) rc = cs_text_corpus_open(&c, s, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    CHECK(rc == 0);
    if (!rc) {
        CHECK(c.n_shards > 1);
        int side = 0;
        for (int i = 0; i < c.n_shards; i++) {
            check_array(&c.shards[i].raw, "raw");
            check_array(&c.shards[i].sa, "words");
            side += c.shards[i].sa.n > 0;
        }
        CHECK(side > 0); /* some word rows read the side text */
        cs_text_corpus_close(&c);
    }
    cs_store_close(s);
    snprintf(p, sizeof p, "rm -rf '%s'", tmp);
    if (system(p)) fprintf(stderr, "cannot remove %s\n", tmp);
    free(tmp);
}

int main(void) {
    RUN(test_top_level_gives_the_same_searches);
    return T_DONE();
}
