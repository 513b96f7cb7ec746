/* tokenizer.c — CLIP byte-level BPE (see tokenizer.h for the exact steps).
 *
 * Symbols are vocabulary ids throughout: every intermediate BPE symbol is a
 * vocabulary entry (the 512 byte symbols and every merge result are), so a
 * merge is a lookup of the id pair (a, b) in a hash map giving its rank and
 * the id of the merged string. Text clean-up works on arrays of code points. */
#include "pipeline/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

#define MAX_FILE (64u << 20)   /* vocabulary files are ~2 MB */
#define CACHE_MAX_ENTRIES 65536
#define CACHE_MAX_KEY 128      /* longer pieces are not cached */
#define CACHE_BUCKETS 16384

typedef struct centry {
    struct centry *next;
    uint32_t hash;
    int keylen, nids;
    int32_t *ids;
    char key[];
} centry;

struct clip_tokenizer {
    int n_vocab;
    char **vocab;            /* id -> string, NULL for unused ids (owned) */
    int32_t byte_id[256];    /* id of the symbol for byte b */
    int32_t byte_id_w[256];  /* id of that symbol + "</w>" (end of word) */
    int32_t start_id, end_id;
    uint32_t mcap;           /* merge map: open addressing, power of two */
    uint64_t *mkey;          /* (a << 32 | b) + 1; 0 = empty slot */
    int32_t *mrank, *mres;   /* rank of the merge, id of the merged symbol */
    int html_unescape;       /* 1 = openai/CLIP basic_clean; 0 = SD 1.x (HF + ftfy) */
    pthread_mutex_t lock;    /* guards the cache */
    centry **cache;          /* CACHE_BUCKETS chains: piece bytes -> ids */
    int cache_n;
};

/* ---- small helpers ---- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
    int oom;
} cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) {
            b->oom = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
}

/* UTF-8 -> code points; invalid bytes become U+FFFD. */
static void utf8_decode(cpbuf *out, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) {
            cp_push(out, 0xFFFD);
            i++;
        } else {
            cp_push(out, (uint32_t)c);
            i += (size_t)k;
        }
    }
}

/* Code points -> malloc'd NUL-terminated UTF-8 (NULL on OOM). */
static char *utf8_encode(const uint32_t *c, size_t n, size_t *len) {
    uint8_t *s = malloc(n * 4 + 1), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) p += utf8proc_encode_char((utf8proc_int32_t)c[i], p);
    *p = 0;
    if (len) *len = (size_t)(p - s);
    return (char *)s;
}

/* ---- bytes_to_unicode (openai/CLIP) ---- */

/* Printable Latin-1 bytes map to themselves; the other 68 bytes to 256+k in
 * byte order. order[] is the vocabulary order: printable bytes first. */
static void byte_unicode(uint32_t cp[256], uint8_t order[256]) {
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cp[b] = (uint32_t)b;
            order[k++] = (uint8_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cp[b] = 256u + (uint32_t)extra++;
            order[k++] = (uint8_t)b;
        }
}

/* ---- HTML entities (Python html.unescape) ---- */

/* HTML4 Latin-1 entities for U+00A0..U+00FF, in order; all also valid
 * without the semicolon (HTML5 legacy). */
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml",
};

static const struct {
    const char *name;
    uint32_t cp;
    int legacy; /* also valid without ';' */
} entities[] = {
    {"amp", '&', 1}, {"AMP", '&', 1}, {"lt", '<', 1}, {"LT", '<', 1}, {"gt", '>', 1},
    {"GT", '>', 1}, {"quot", '"', 1}, {"QUOT", '"', 1}, {"COPY", 0xA9, 1}, {"REG", 0xAE, 1},
    {"apos", '\'', 0}, {"hellip", 0x2026, 0}, {"mdash", 0x2014, 0}, {"ndash", 0x2013, 0},
    {"lsquo", 0x2018, 0}, {"rsquo", 0x2019, 0}, {"sbquo", 0x201A, 0}, {"ldquo", 0x201C, 0},
    {"rdquo", 0x201D, 0}, {"bdquo", 0x201E, 0}, {"bull", 0x2022, 0}, {"euro", 0x20AC, 0},
    {"trade", 0x2122, 0}, {"TRADE", 0x2122, 0}, {"dagger", 0x2020, 0}, {"Dagger", 0x2021, 0},
    {"permil", 0x2030, 0}, {"lsaquo", 0x2039, 0}, {"rsaquo", 0x203A, 0}, {"prime", 0x2032, 0},
    {"Prime", 0x2033, 0}, {"larr", 0x2190, 0}, {"uarr", 0x2191, 0}, {"rarr", 0x2192, 0},
    {"darr", 0x2193, 0}, {"harr", 0x2194, 0}, {"hearts", 0x2665, 0}, {"spades", 0x2660, 0},
    {"clubs", 0x2663, 0}, {"diams", 0x2666, 0}, {"infin", 0x221E, 0}, {"ne", 0x2260, 0},
    {"le", 0x2264, 0}, {"ge", 0x2265, 0}, {"asymp", 0x2248, 0}, {"minus", 0x2212, 0},
    {"ensp", 0x2002, 0}, {"emsp", 0x2003, 0}, {"thinsp", 0x2009, 0}, {"zwnj", 0x200C, 0},
    {"zwj", 0x200D, 0}, {"lrm", 0x200E, 0}, {"rlm", 0x200F, 0}, {"OElig", 0x152, 0},
    {"oelig", 0x153, 0}, {"Scaron", 0x160, 0}, {"scaron", 0x161, 0}, {"Yuml", 0x178, 0},
    {"fnof", 0x192, 0}, {"circ", 0x2C6, 0}, {"tilde", 0x2DC, 0}, {"star", 0x2606, 0},
    {"check", 0x2713, 0}, {"sigmaf", 0x3C2, 0}, {"thetasym", 0x3D1, 0}, {"piv", 0x3D6, 0},
    {"frasl", 0x2044, 0}, {"oline", 0x203E, 0}, {"loz", 0x25CA, 0}, {"sum", 0x2211, 0},
    {"prod", 0x220F, 0}, {"radic", 0x221A, 0}, {"part", 0x2202, 0}, {"nabla", 0x2207, 0},
    {"isin", 0x2208, 0}, {"empty", 0x2205, 0}, {"forall", 0x2200, 0}, {"exist", 0x2203, 0},
};

/* Greek letters: &Alpha;..&Omega; (U+0391..), &alpha;..&omega; (U+03B1..). */
static const char *const greek_names[25] = {
    "alpha", "beta",  "gamma",   "delta", "epsilon", "zeta",  "eta", "theta", "iota",
    "kappa", "lambda", "mu",     "nu",    "xi",      "omicron", "pi", "rho",  NULL /* sigmaf */,
    "sigma", "tau",   "upsilon", "phi",   "chi",     "psi",   "omega",
};

static int name_eq(const uint32_t *s, size_t n, const char *name) {
    size_t i = 0;
    for (; i < n && name[i]; i++)
        if (s[i] != (uint8_t)name[i]) return 0;
    return i == n && !name[i];
}

/* Code point of entity s[0..n) (without ';'), or 0. legacy_only: only names
 * valid without a semicolon. */
static uint32_t entity_lookup(const uint32_t *s, size_t n, int legacy_only) {
    for (int i = 0; i < 96; i++)
        if (name_eq(s, n, latin1_names[i])) return 0xA0u + (uint32_t)i;
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++)
        if ((entities[i].legacy || !legacy_only) && name_eq(s, n, entities[i].name)) return entities[i].cp;
    if (legacy_only) return 0;
    for (int i = 0; i < 25; i++) {
        if (!greek_names[i]) continue;
        if (name_eq(s, n, greek_names[i])) return 0x3B1u + (uint32_t)i;
        /* capitalised: first letter upper-case */
        if (n && s[0] == (uint32_t)(greek_names[i][0] - 32) && name_eq(s + 1, n - 1, greek_names[i] + 1))
            return 0x391u + (uint32_t)i;
    }
    return 0;
}

/* cp1252 meanings of 0x80..0x9F; the five undefined bytes stay as they are. */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178,
};

/* Python html._replace_charref for a numeric reference. */
static void emit_numeric(cpbuf *o, uint32_t num) {
    if (num == 0) cp_push(o, 0xFFFD);
    else if (num == 0x0D) cp_push(o, '\r');
    else if (num >= 0x80 && num <= 0x9F) cp_push(o, cp1252_c1[num - 0x80]);
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) cp_push(o, 0xFFFD);
    else if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
             (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return; /* invalid code points are dropped */
    else cp_push(o, num);
}

static int is_digit(uint32_t c, int hex) {
    return (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
}

/* One pass of Python's html.unescape: the reference pattern is
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?). */
static void html_unescape(cpbuf *o, const uint32_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            cp_push(o, s[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && s[j] == '#') {
            size_t k = j + 1;
            int hex = 0;
            if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') && is_digit(s[k + 1], 1)) hex = 1, k++;
            size_t d0 = k;
            uint32_t num = 0;
            while (k < n && is_digit(s[k], hex)) {
                uint32_t v = s[k] <= '9' ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10;
                if (num <= 0x10FFFF) num = num * (hex ? 16 : 10) + v; /* saturates above */
                k++;
            }
            if (k == d0) { /* "&#" without digits: not a reference */
                cp_push(o, s[i++]);
                continue;
            }
            if (k < n && s[k] == ';') k++;
            emit_numeric(o, num > 0x10FFFF ? 0x110000 : num);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' && s[k] != ' ' &&
               s[k] != '<' && s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        size_t len = k - j;
        if (!len) {
            cp_push(o, s[i++]);
            continue;
        }
        int semi = k < n && s[k] == ';';
        uint32_t c = entity_lookup(s + j, len, !semi);
        if (c) {
            cp_push(o, c);
            i = k + (size_t)semi;
            continue;
        }
        /* longest legacy prefix of at least 2 characters, rest kept as text */
        size_t x = semi ? len : len - 1;
        for (; x >= 2; x--)
            if ((c = entity_lookup(s + j, x, 1))) break;
        if (x >= 2) {
            cp_push(o, c);
            i = j + x;
        } else {
            cp_push(o, s[i++]);
        }
    }
}

/* ---- ftfy's default fixes that matter for prompts ---- */

static int is_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x80 && c <= 0x9F) ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static const struct {
    uint32_t cp;
    uint32_t to[3];
} ligatures[] = {
    {0x132, {'I', 'J'}},       {0x133, {'i', 'j'}},       {0x149, {0x2BC, 'n'}},
    {0x1C4, {'D', 0x17D}},     {0x1C5, {'D', 0x17E}},     {0x1C6, {'d', 0x17E}},
    {0x1C7, {'L', 'J'}},       {0x1C8, {'L', 'j'}},       {0x1C9, {'l', 'j'}},
    {0x1CA, {'N', 'J'}},       {0x1CB, {'N', 'j'}},       {0x1CC, {'n', 'j'}},
    {0x1F1, {'D', 'Z'}},       {0x1F2, {'D', 'z'}},       {0x1F3, {'d', 'z'}},
    {0xFB00, {'f', 'f'}},      {0xFB01, {'f', 'i'}},      {0xFB02, {'f', 'l'}},
    {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}}, {0xFB05, {0x17F, 't'}},
    {0xFB06, {'s', 't'}},
};

static void push_quote_fixed(cpbuf *o, uint32_t c) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
    cp_push(o, c);
}

/* Terminal escapes, C1 as cp1252, ligatures, width, quotes, controls. */
static void ftfy_fixes(cpbuf *o, const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == 0x1B && i + 1 < n && s[i + 1] == '[') { /* ESC [ digits/; letter */
            size_t k = i + 2;
            while (k < n && (is_digit(s[k], 0) || s[k] == ';')) k++;
            if (k < n && ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z')) {
                i = k;
                continue;
            }
        }
        if (c >= 0x80 && c <= 0x9F) c = cp1252_c1[c - 0x80];
        int lig = -1;
        for (size_t l = 0; l < sizeof ligatures / sizeof ligatures[0]; l++)
            if (ligatures[l].cp == c) lig = (int)l;
        if (lig >= 0) {
            for (int t = 0; t < 3 && ligatures[lig].to[t]; t++) push_quote_fixed(o, ligatures[lig].to[t]);
            continue;
        }
        if (c == 0x3000) c = ' ';
        if (c >= 0xFF01 && c <= 0xFFEF) { /* NFKC of one full/half-width form */
            utf8proc_int32_t buf[8];
            int bc;
            utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 8,
                                                         UTF8PROC_COMPAT | UTF8PROC_COMPOSE, &bc);
            if (m >= 1 && m <= 8) {
                for (int t = 0; t < m; t++)
                    if (!is_control((uint32_t)buf[t])) push_quote_fixed(o, (uint32_t)buf[t]);
                continue;
            }
        }
        if (is_control(c)) continue; /* incl. the C1 bytes cp1252 leaves undefined */
        push_quote_fixed(o, c);
    }
}

/* Python str.isspace(). */
static int is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    if (c == 0x85 || c == 0xA0) return 1;
    if (c > 0x10FFFF) return 0;
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

static int is_letter(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Unicode Cased (approximately: letters with a case mapping or case category). */
static int is_cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

/* Unicode Case_Ignorable: Mn Me Cf Lm Sk and the word-internal punctuation. */
static int is_case_ignorable(uint32_t c) {
    switch (c) {
    case '\'': case '.': case ':': case 0xB7: case 0x387: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    }
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

/* Python str.lower(): full mapping; U+0130 -> i + U+0307; final sigma. */
static void lower(cpbuf *o, const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == 0x130) {
            cp_push(o, 'i');
            cp_push(o, 0x307);
        } else if (c == 0x3A3) {
            size_t j = i;
            while (j > 0 && is_case_ignorable(s[j - 1])) j--;
            int final = j > 0 && is_cased(s[j - 1]);
            if (final) {
                size_t k = i + 1;
                while (k < n && is_case_ignorable(s[k])) k++;
                final = k == n || !is_cased(s[k]);
            }
            cp_push(o, final ? 0x3C2 : 0x3C3);
        } else {
            cp_push(o, c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c)
                                : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
}

/* Steps 1..5 of tokenizer.h, as code points in *out. Returns 0, -1 on OOM. */
static int clean_cps(const char *text, int unescape, cpbuf *out) {
    cpbuf a = {0}, b = {0};
    int rc = -1;
    utf8_decode(&a, (const uint8_t *)text, strlen(text));
    if (unescape) {
        html_unescape(&b, a.v, a.n);
        a.n = 0;
        html_unescape(&a, b.v, b.n);
        b.n = 0;
    }
    ftfy_fixes(&b, a.v, a.n);
    if (a.oom || b.oom) goto done;
    /* NFC */
    char *u = utf8_encode(b.v, b.n, NULL);
    if (!u) goto done;
    uint8_t *nfc = utf8proc_NFC((const uint8_t *)u);
    free(u);
    if (!nfc) goto done;
    a.n = 0;
    utf8_decode(&a, nfc, strlen((const char *)nfc));
    free(nfc);
    /* whitespace runs -> one space, strip */
    b.n = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (is_space(a.v[i])) {
            if (b.n && b.v[b.n - 1] != ' ') cp_push(&b, ' ');
        } else {
            cp_push(&b, a.v[i]);
        }
    }
    if (b.n && b.v[b.n - 1] == ' ') b.n--;
    out->n = 0;
    lower(out, b.v, b.n);
    rc = a.oom || b.oom || out->oom ? -1 : 0;
done:
    free(a.v);
    free(b.v);
    return rc;
}

char *clip_clean_text(const char *text, int html_unescape) {
    cpbuf c = {0};
    char *s = clean_cps(text, html_unescape, &c) ? NULL : utf8_encode(c.v, c.n, NULL);
    free(c.v);
    return s;
}

/* ---- vocabulary loading ---- */

/* Whole file through zlib (gzip or plain text). */
static char *read_file(const char *path, size_t *len, cs_err *err) {
    struct stat sb;
    if (stat(path, &sb)) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno)), NULL;
    if (!S_ISREG(sb.st_mode)) return cs_fail(err, CS_EIO, "%s: not a regular file", path), NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno)), NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            gzclose(f);
            return cs_fail(err, CS_ENOMEM, "%s: out of memory", path), NULL;
        }
        int k = gzread(f, buf + n, (unsigned)(cap - n));
        if (k < 0) {
            int zerr;
            const char *m = gzerror(f, &zerr);
            cs_fail(err, CS_EFORMAT, "%s: not a vocabulary file (%s)", path, m ? m : "read error");
            gzclose(f);
            free(buf);
            return NULL;
        }
        n += (size_t)k;
        if (k == 0) break;
        if (n == cap) {
            if (cap >= MAX_FILE) {
                gzclose(f);
                free(buf);
                return cs_fail(err, CS_ELIMIT, "%s: larger than %u MB: not a vocabulary file", path,
                               MAX_FILE >> 20), NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    gzclose(f);
    buf[n] = 0;
    if (memchr(buf, 0, n)) {
        free(buf);
        return cs_fail(err, CS_EFORMAT, "%s: binary data: not a vocabulary file", path), NULL;
    }
    *len = n;
    return buf;
}

/* String -> id map, used while loading (open addressing). */
typedef struct {
    const char **key;
    int32_t *val;
    uint32_t cap;
} strmap;

static int strmap_init(strmap *m, uint32_t n) {
    m->cap = 1;
    while (m->cap < 2 * n + 16) m->cap <<= 1;
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = malloc(m->cap * sizeof *m->val);
    return m->key && m->val ? 0 : -1;
}

static void strmap_free(strmap *m) {
    free(m->key);
    free(m->val);
}

/* Later puts of the same key overwrite (Python dict semantics). */
static void strmap_put(strmap *m, const char *k, int32_t v) {
    uint32_t h = hash_bytes(k, strlen(k)) & (m->cap - 1);
    while (m->key[h] && strcmp(m->key[h], k)) h = (h + 1) & (m->cap - 1);
    m->key[h] = k;
    m->val[h] = v;
}

static int32_t strmap_get(const strmap *m, const char *k, size_t n) {
    uint32_t h = hash_bytes(k, n) & (m->cap - 1);
    while (m->key[h]) {
        if (!strncmp(m->key[h], k, n) && !m->key[h][n]) return m->val[h];
        h = (h + 1) & (m->cap - 1);
    }
    return -1;
}

static int merge_put(clip_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t h = (uint32_t)mix64(key) & (t->mcap - 1);
    while (t->mkey[h] && t->mkey[h] != key) h = (h + 1) & (t->mcap - 1);
    t->mkey[h] = key;
    t->mrank[h] = rank;
    t->mres[h] = res;
    return 0;
}

/* Rank of merging (a, b), or -1; *res = id of the merged symbol. */
static int32_t merge_get(const clip_tokenizer *t, int32_t a, int32_t b, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t h = (uint32_t)mix64(key) & (t->mcap - 1);
    while (t->mkey[h]) {
        if (t->mkey[h] == key) {
            *res = t->mres[h];
            return t->mrank[h];
        }
        h = (h + 1) & (t->mcap - 1);
    }
    return -1;
}

typedef struct {
    const char *a, *b; /* NUL-terminated inside the file buffer */
    size_t alen, blen;
    int line;
} merge_line;

/* Splits merges text (header line skipped) into at most CLIP_N_MERGES pairs,
 * writing NULs into buf. Returns the count or -1. */
static int parse_merges(const char *path, char *buf, size_t len, merge_line *m, cs_err *err) {
    char *p = buf, *end = buf + len;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return cs_fail(err, CS_EFORMAT, "%s: not a CLIP BPE merges file (a single line)", path);
    p = nl + 1;
    int n = 0, line = 2;
    while (p < end && n < CLIP_N_MERGES) {
        nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        if (e == p && !nl) break; /* final newline */
        char *sp = memchr(p, ' ', (size_t)(e - p));
        if (!sp || sp == p || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1)))
            return cs_fail(err, CS_EFORMAT, "%s: line %d: \"%.*s\" is not a merge \"a b\": not a CLIP BPE merges file",
                           path, line, (int)(e - p > 40 ? 40 : e - p), p);
        *sp = 0;
        *e = 0;
        m[n].a = p;
        m[n].alen = (size_t)(sp - p);
        m[n].b = sp + 1;
        m[n].blen = (size_t)(e - sp - 1);
        m[n].line = line;
        n++;
        line++;
        p = nl ? nl + 1 : end;
    }
    return n;
}

static int alloc_merges(clip_tokenizer *t, int n) {
    t->mcap = 1;
    while (t->mcap < 2u * (uint32_t)n + 16) t->mcap <<= 1;
    t->mkey = calloc(t->mcap, sizeof *t->mkey);
    t->mrank = malloc(t->mcap * sizeof *t->mrank);
    t->mres = malloc(t->mcap * sizeof *t->mres);
    return t->mkey && t->mrank && t->mres ? 0 : -1;
}

/* Adds the merges to t, ids from map; every part and result must exist. */
static int add_merges(clip_tokenizer *t, const char *path, const merge_line *m, int n, const strmap *map,
                      cs_err *err) {
    if (alloc_merges(t, n)) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    char tmp[1024];
    for (int i = 0; i < n; i++) {
        int32_t a = strmap_get(map, m[i].a, m[i].alen), b = strmap_get(map, m[i].b, m[i].blen);
        int32_t r = -1;
        if (m[i].alen + m[i].blen < sizeof tmp) {
            memcpy(tmp, m[i].a, m[i].alen);
            memcpy(tmp + m[i].alen, m[i].b, m[i].blen);
            r = strmap_get(map, tmp, m[i].alen + m[i].blen);
        }
        if (a < 0 || b < 0 || r < 0)
            return cs_fail(err, CS_EFORMAT, "%s: line %d: merge \"%.30s %.30s\" uses a symbol outside the vocabulary",
                           path, m[i].line, m[i].a, m[i].b);
        merge_put(t, a, b, i, r);
    }
    return 0;
}

/* bpe_simple_vocab_16e6.txt(.gz): ids built as openai/CLIP builds them. */
static int load_bpe_file(clip_tokenizer *t, const char *path, cs_err *err) {
    size_t len;
    char *buf = read_file(path, &len, err);
    if (!buf) return -1;
    int rc = -1;
    strmap map = {0};
    merge_line *m = malloc(CLIP_N_MERGES * sizeof *m);
    if (!m) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    int n = parse_merges(path, buf, len, m, err);
    if (n < 0) goto done;
    if (n < CLIP_N_MERGES) {
        cs_fail(err, CS_EFORMAT, "%s: %d merges, a CLIP BPE vocabulary has %d: not a CLIP vocabulary file",
                path, n, CLIP_N_MERGES);
        goto done;
    }
    uint32_t cp[256];
    uint8_t order[256];
    byte_unicode(cp, order);
    t->n_vocab = 512 + n + 2;
    t->vocab = calloc((size_t)t->n_vocab, sizeof *t->vocab);
    if (!t->vocab || strmap_init(&map, (uint32_t)t->n_vocab)) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int k = 0; k < 256; k++) {
        uint8_t u[8];
        int ul = (int)utf8proc_encode_char((utf8proc_int32_t)cp[order[k]], u);
        char *s1 = malloc((size_t)ul + 1), *s2 = malloc((size_t)ul + 5);
        t->vocab[k] = s1;
        t->vocab[256 + k] = s2;
        if (!s1 || !s2) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(s1, u, (size_t)ul);
        s1[ul] = 0;
        memcpy(s2, u, (size_t)ul);
        memcpy(s2 + ul, "</w>", 5);
        t->byte_id[order[k]] = k;
        t->byte_id_w[order[k]] = 256 + k;
    }
    for (int i = 0; i < n; i++) {
        char *s = malloc(m[i].alen + m[i].blen + 1);
        if (!s) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(s, m[i].a, m[i].alen);
        memcpy(s + m[i].alen, m[i].b, m[i].blen + 1);
        t->vocab[512 + i] = s;
    }
    t->start_id = 512 + n;
    t->end_id = 513 + n;
    t->vocab[t->start_id] = strdup("<|startoftext|>");
    t->vocab[t->end_id] = strdup("<|endoftext|>");
    if (!t->vocab[t->start_id] || !t->vocab[t->end_id]) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < t->n_vocab; i++) strmap_put(&map, t->vocab[i], i);
    rc = add_merges(t, path, m, n, &map, err);
done:
    strmap_free(&map);
    free(m);
    free(buf);
    return rc;
}

/* vocab.json + merges.txt (Hugging Face layout). */
static int load_hf(clip_tokenizer *t, const char *vocab_path, const char *merges_path, cs_err *err) {
    size_t len;
    char *buf = read_file(vocab_path, &len, err), *mbuf = NULL;
    if (!buf) return -1;
    int rc = -1;
    strmap map = {0};
    merge_line *m = NULL;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!cJSON_IsObject(root)) {
        cs_fail(err, CS_EFORMAT, "%s: not a vocab.json (not a JSON object)", vocab_path);
        goto done;
    }
    int count = 0;
    int32_t max_id = -1;
    for (const cJSON *e = root->child; e; e = e->next, count++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!e->string || !(d >= 0 && d < (1 << 22)) || d != (double)(int32_t)d) {
            cs_fail(err, CS_EFORMAT, "%s: entry \"%.40s\": id is not a small non-negative integer: not a vocab.json",
                    vocab_path, e->string ? e->string : "");
            goto done;
        }
        if ((int32_t)d > max_id) max_id = (int32_t)d;
    }
    t->n_vocab = max_id + 1;
    t->vocab = calloc((size_t)(t->n_vocab ? t->n_vocab : 1), sizeof *t->vocab);
    if (!t->vocab || strmap_init(&map, (uint32_t)count)) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", vocab_path);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        int32_t id = (int32_t)e->valuedouble;
        free(t->vocab[id]);
        if (!(t->vocab[id] = strdup(e->string))) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", vocab_path);
            goto done;
        }
        strmap_put(&map, e->string, id); /* key points into the cJSON tree */
    }
    uint32_t cp[256];
    uint8_t order[256];
    byte_unicode(cp, order);
    for (int b = 0; b < 256; b++) {
        char u[16];
        int ul = (int)utf8proc_encode_char((utf8proc_int32_t)cp[b], (uint8_t *)u);
        memcpy(u + ul, "</w>", 5);
        t->byte_id[b] = strmap_get(&map, u, (size_t)ul);
        t->byte_id_w[b] = strmap_get(&map, u, (size_t)ul + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0) {
            cs_fail(err, CS_EFORMAT, "%s: byte symbol \"%s\" missing: not a CLIP vocab.json", vocab_path, u);
            goto done;
        }
    }
    t->start_id = strmap_get(&map, "<|startoftext|>", 15);
    t->end_id = strmap_get(&map, "<|endoftext|>", 13);
    if (t->start_id < 0 || t->end_id < 0) {
        cs_fail(err, CS_EFORMAT, "%s: no <|startoftext|> / <|endoftext|>: not a CLIP vocab.json", vocab_path);
        goto done;
    }
    size_t mlen;
    mbuf = read_file(merges_path, &mlen, err);
    m = malloc(CLIP_N_MERGES * sizeof *m);
    if (!mbuf || !m) {
        if (mbuf) cs_fail(err, CS_ENOMEM, "%s: out of memory", merges_path);
        goto done;
    }
    int n = parse_merges(merges_path, mbuf, mlen, m, err);
    if (n < 0) goto done;
    rc = add_merges(t, merges_path, m, n, &map, err);
done:
    strmap_free(&map);
    cJSON_Delete(root);
    free(m);
    free(mbuf);
    free(buf);
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* dir of path + "/" + name, malloc'd. */
static char *sibling(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t d = slash ? (size_t)(slash - path + 1) : 0;
    char *s = malloc(d + strlen(name) + 1);
    if (!s) return NULL;
    memcpy(s, path, d);
    strcpy(s + d, name);
    return s;
}

void clip_tokenizer_free(clip_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
    free(t->vocab);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    if (t->cache) {
        for (int b = 0; b < CACHE_BUCKETS; b++)
            for (centry *e = t->cache[b], *nx; e; e = nx) {
                nx = e->next;
                free(e);
            }
        free(t->cache);
        pthread_mutex_destroy(&t->lock);
    }
    free(t);
}

int clip_tokenizer_load(clip_tokenizer **out, const char *vocab_path, cs_err *err) {
    *out = NULL;
    clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return cs_fail(err, CS_ENOMEM, "%s: out of memory", vocab_path);
    int rc;
    if (ends_with(vocab_path, ".json")) {
        char *merges = sibling(vocab_path, "merges.txt");
        rc = merges ? load_hf(t, vocab_path, merges, err) : cs_fail(err, CS_ENOMEM, "out of memory");
        free(merges);
    } else {
        char *vj = ends_with(vocab_path, "merges.txt") ? sibling(vocab_path, "vocab.json") : NULL;
        struct stat sb;
        if (vj && !stat(vj, &sb)) rc = load_hf(t, vj, vocab_path, err);
        else rc = load_bpe_file(t, vocab_path, err);
        free(vj);
    }
    if (rc == 0) {
        t->cache = calloc(CACHE_BUCKETS, sizeof *t->cache);
        if (!t->cache || pthread_mutex_init(&t->lock, NULL)) {
            free(t->cache);
            t->cache = NULL;
            rc = cs_fail(err, CS_ENOMEM, "%s: out of memory", vocab_path);
        }
    }
    if (rc) {
        clip_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

const char *clip_tokenizer_token(const clip_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->vocab[id] : NULL;
}

int clip_tokenizer_vocab_size(const clip_tokenizer *t) { return t->n_vocab; }

/* ---- BPE ---- */

/* Merges sym[0..n) in place by rank; returns the new length. */
static int bpe(const clip_tokenizer *t, int32_t *sym, int n) {
    while (n > 1) {
        int32_t best = INT32_MAX, a = 0, b = 0, res = 0, r;
        for (int i = 0; i + 1 < n; i++) {
            int32_t rk = merge_get(t, sym[i], sym[i + 1], &r);
            if (rk >= 0 && rk < best) best = rk, a = sym[i], b = sym[i + 1], res = r;
        }
        if (best == INT32_MAX) break;
        int j = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[j++] = res;
                i += 2;
            } else {
                sym[j++] = sym[i++];
            }
        }
        n = j;
    }
    return n;
}

typedef struct {
    int32_t *v;
    int n, cap;
    int oom;
} idbuf;

static void id_push(idbuf *b, const int32_t *ids, int n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        int cap = b->cap ? b->cap : 128;
        while (cap < b->n + n) cap *= 2;
        int32_t *v = realloc(b->v, (size_t)cap * sizeof *v);
        if (!v) {
            b->oom = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    memcpy(b->v + b->n, ids, (size_t)n * sizeof *ids);
    b->n += n;
}

/* BPE of one piece (UTF-8 bytes p[0..len)), appended to out; cached. */
static int encode_piece(clip_tokenizer *t, const char *p, size_t len, idbuf *out) {
    uint32_t h = hash_bytes(p, len);
    int cacheable = len <= CACHE_MAX_KEY;
    if (cacheable) {
        pthread_mutex_lock(&t->lock);
        for (centry *e = t->cache[h % CACHE_BUCKETS]; e; e = e->next)
            if (e->hash == h && (size_t)e->keylen == len && !memcmp(e->key, p, len)) {
                id_push(out, e->ids, e->nids);
                pthread_mutex_unlock(&t->lock);
                return out->oom ? -1 : 0;
            }
        pthread_mutex_unlock(&t->lock);
    }
    int32_t stack[256], *sym = len <= 256 ? stack : malloc(len * sizeof *sym);
    if (!sym) return -1;
    for (size_t i = 0; i < len; i++) sym[i] = t->byte_id[(uint8_t)p[i]];
    sym[len - 1] = t->byte_id_w[(uint8_t)p[len - 1]];
    int n = bpe(t, sym, (int)len);
    id_push(out, sym, n);
    if (cacheable) {
        centry *e = malloc(sizeof *e + len + (size_t)n * sizeof(int32_t) + sizeof(int32_t));
        if (e) {
            e->hash = h;
            e->keylen = (int)len;
            e->nids = n;
            memcpy(e->key, p, len);
            e->ids = (int32_t *)(void *)(e->key + ((len + 3) & ~(size_t)3));
            memcpy(e->ids, sym, (size_t)n * sizeof *sym);
            pthread_mutex_lock(&t->lock);
            if (t->cache_n < CACHE_MAX_ENTRIES) {
                e->next = t->cache[h % CACHE_BUCKETS];
                t->cache[h % CACHE_BUCKETS] = e;
                t->cache_n++;
                e = NULL;
            }
            pthread_mutex_unlock(&t->lock);
            free(e);
        }
    }
    if (sym != stack) free(sym);
    return out->oom ? -1 : 0;
}

static int match_ascii(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || s[i + k] != (uint8_t)lit[k]) return 0;
    return (int)k;
}

/* The CLIP pre-split over the cleaned text, then BPE of every piece. */
static int encode_all(clip_tokenizer *t, const uint32_t *s, size_t n, idbuf *out) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    uint8_t stackbuf[1024];
    size_t i = 0;
    while (i < n) {
        size_t e;
        int k;
        if ((k = match_ascii(s, n, i, "<|startoftext|>"))) {
            id_push(out, &t->start_id, 1);
            i += (size_t)k;
            continue;
        }
        if ((k = match_ascii(s, n, i, "<|endoftext|>"))) {
            id_push(out, &t->end_id, 1);
            i += (size_t)k;
            continue;
        }
        k = 0;
        for (int c = 0; c < 7 && !k; c++) k = match_ascii(s, n, i, contractions[c]);
        if (k) {
            e = i + (size_t)k;
        } else if (is_letter(s[i])) {
            e = i + 1;
            while (e < n && is_letter(s[e])) e++;
        } else if (is_number(s[i])) {
            e = i + 1;
        } else if (is_space(s[i])) {
            i++; /* not part of any piece */
            continue;
        } else {
            e = i + 1;
            while (e < n && !is_space(s[e]) && !is_letter(s[e]) && !is_number(s[e])) e++;
        }
        /* piece s[i..e) as UTF-8 */
        size_t need = (e - i) * 4;
        uint8_t *u = need <= sizeof stackbuf ? stackbuf : malloc(need);
        if (!u) return -1;
        size_t len = 0;
        for (size_t j = i; j < e; j++) len += (size_t)utf8proc_encode_char((utf8proc_int32_t)s[j], u + len);
        int rc = encode_piece(t, (const char *)u, len, out);
        if (u != stackbuf) free(u);
        if (rc) return -1;
        i = e;
    }
    return out->oom ? -1 : 0;
}

void clip_tokenizer_set_html_unescape(clip_tokenizer *t, int on) { t->html_unescape = on != 0; }

int clip_tokenize_bpe(const clip_tokenizer *t, const char *text, int32_t *ids, int cap, cs_err *err) {
    cpbuf c = {0};
    idbuf out = {0};
    int rc = -1;
    if (!text) text = "";
    /* The cache is the only state written, under t->lock. */
    if (clean_cps(text, t->html_unescape, &c) || encode_all((clip_tokenizer *)t, c.v, c.n, &out)) {
        cs_fail(err, CS_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    for (int i = 0; i < out.n && i < cap; i++) ids[i] = out.v[i];
    rc = out.n;
done:
    free(c.v);
    free(out.v);
    return rc;
}

int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t ids[77], cs_err *err) {
    int32_t bpe_ids[CLIP_CONTEXT - 2];
    int n = clip_tokenize_bpe(t, text, bpe_ids, CLIP_CONTEXT - 2, err);
    if (n < 0) return -1;
    int k = n < CLIP_CONTEXT - 2 ? n : CLIP_CONTEXT - 2;
    ids[0] = t->start_id;
    memcpy(ids + 1, bpe_ids, (size_t)k * sizeof *ids);
    for (int i = k + 1; i < CLIP_CONTEXT; i++) ids[i] = t->end_id;
    return n;
}
