/* CLIP tokenizer: the sd-tiny tokenizer case (ids from openai/CLIP + HF
 * framing), vocab.json + merges.txt giving the same ids, the text clean-up
 * against Python's html.unescape / str.lower results, and files that are
 * not vocabularies. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "core/safetensors.h"
#include "pipeline/prompt_weights.h"
#include "pipeline/sd.h"
#include "pipeline/tokenizer.h"
#include "t.h"

#define GZ "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz"

static char *tmp;
static clip_tokenizer *tok; /* from the .gz, shared by the tests */

/* The case: prompts and bpe_lengths from index.json, ids from the file. */
static cJSON *case_params;
static float case_ids[8 * 77];

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static int load_case(void) {
    char *js = slurp("../shared/refs/sd-tiny/cases/index.json", NULL);
    if (!js) return -1;
    cJSON *root = cJSON_Parse(js);
    free(js);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, "tokenizer")) continue;
        case_params = cJSON_Duplicate(cJSON_GetObjectItem(c, "params"), 1);
    }
    cJSON_Delete(root);
    cs_safetensors st;
    cs_err e = {0};
    if (!case_params || cs_safetensors_open(&st, "../shared/refs/sd-tiny/cases/tokenizer.safetensors", &e)) return -1;
    const float *p;
    int owned;
    int rc = cs_safetensors_get_f32(&st, "ids", 2, (int64_t[]){8, 77}, &p, &owned, &e);
    if (!rc) memcpy(case_ids, p, sizeof case_ids);
    if (!rc && owned) free((void *)p);
    cs_safetensors_close(&st);
    return rc;
}

/* Tokenizes the 8 prompts with tk; ids mapped through map (NULL: identity)
 * must equal the reference. */
static void check_case_with(const clip_tokenizer *tk, const int32_t *map) {
    const cJSON *prompts = cJSON_GetObjectItem(case_params, "prompts");
    const cJSON *lens = cJSON_GetObjectItem(case_params, "bpe_lengths");
    REQUIRE(cJSON_GetArraySize(prompts) == 8 && cJSON_GetArraySize(lens) == 8);
    for (int p = 0; p < 8; p++) {
        const char *text = cJSON_GetArrayItem(prompts, p)->valuestring;
        int32_t ids[77];
        cs_err e = {0};
        int n = clip_tokenize(tk, text, ids, &e);
        CHECKF(n == cJSON_GetArrayItem(lens, p)->valueint, "prompt %d: %d BPE ids, want %d", p, n,
               cJSON_GetArrayItem(lens, p)->valueint);
        int bad = -1;
        for (int i = 0; i < 77 && bad < 0; i++) {
            int32_t want = (int32_t)case_ids[p * 77 + i];
            if (map) want = map[want];
            if (ids[i] != want) bad = i;
        }
        CHECKF(bad < 0, "prompt %d (\"%.30s\"): id[%d] = %d, want %d", p, text, bad, bad < 0 ? 0 : ids[bad],
               bad < 0 ? 0 : (int)case_ids[p * 77 + bad]);
    }
}

static void test_sd_tiny_tokenizer_case(void) {
    REQUIRE(tok);
    CHECK(clip_tokenizer_vocab_size(tok) == 49408);
    check_case_with(tok, NULL);
    /* the case file's ids are those listed in index.json */
    const cJSON *ids = cJSON_GetObjectItem(case_params, "ids");
    if (ids) {
        int p = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, ids) {
            for (int i = 0; i < 77 && i < cJSON_GetArraySize(row); i++)
                CHECK(cJSON_GetArrayItem(row, i)->valueint == (int)case_ids[p * 77 + i]);
            p++;
        }
    }
}

static void test_framing_and_specials(void) {
    REQUIRE(tok);
    int32_t ids[77];
    cs_err e = {0};
    CHECK(clip_tokenize(tok, "", ids, &e) == 0);
    CHECK(ids[0] == 49406);
    for (int i = 1; i < 77; i++) CHECK(ids[i] == 49407);
    /* the special strings map to their ids (as HF's added tokens do) */
    CHECK(clip_tokenize(tok, "a <|endoftext|> b", ids, &e) == 3);
    CHECK(ids[1] == 320 && ids[2] == 49407 && ids[3] == 321 && ids[4] == 49407);
    CHECK(clip_tokenize(tok, "<|startoftext|>", ids, &e) == 1 && ids[1] == 49406);
    /* SD 1.x (HF CLIPTokenizer + ftfy) keeps entities: "a &amp; b" ->
     * [320, 261, 6259, 282, 321] (PITFALLS.md 22) */
    CHECK(clip_tokenize(tok, "a &amp; b", ids, &e) == 5);
    CHECK(ids[1] == 320 && ids[2] == 261 && ids[3] == 6259 && ids[4] == 282 && ids[5] == 321);
    /* openai/CLIP's SimpleTokenizer unescapes them: [320, 261, 321] */
    clip_tokenizer_set_html_unescape(tok, 1);
    CHECK(clip_tokenize(tok, "a &amp; b", ids, &e) == 3);
    CHECK(ids[1] == 320 && ids[2] == 261 && ids[3] == 321);
    CHECK(clip_tokenize(tok, "A&AMP;B", ids, &e) == 3 && ids[2] == 261);
    clip_tokenizer_set_html_unescape(tok, 0);
    /* 80 words: truncated to 75, end token kept */
    char long_text[400] = "";
    for (int i = 0; i < 80; i++) strcat(long_text, "cat ");
    CHECK(clip_tokenize(tok, long_text, ids, &e) == 80);
    CHECK(ids[0] == 49406 && ids[1] == 2368 && ids[75] == 2368 && ids[76] == 49407);
    /* vocabulary entries */
    CHECK(!strcmp(clip_tokenizer_token(tok, 320), "a</w>"));
    CHECK(!strcmp(clip_tokenizer_token(tok, 2368), "cat</w>"));
    CHECK(!strcmp(clip_tokenizer_token(tok, 49407), "<|endoftext|>"));
    CHECK(!strcmp(clip_tokenizer_token(tok, 0), "!") && !strcmp(clip_tokenizer_token(tok, 256), "!</w>"));
    CHECK(clip_tokenizer_token(tok, 49408) == NULL && clip_tokenizer_token(tok, -1) == NULL);
    /* invalid UTF-8 is replaced, not a crash */
    CHECK(clip_tokenize(tok, "\xff\xfe cat \xc3", ids, &e) > 0);
    /* the same piece twice (second from the cache) gives the same ids */
    int32_t a[77], b[77];
    clip_tokenize(tok, "supercalifragilistic supercalifragilistic", a, &e);
    int n1 = clip_tokenize(tok, "supercalifragilistic", b, &e);
    CHECK(n1 > 1 && !memcmp(a + 1, b + 1, (size_t)n1 * 4) && !memcmp(a + 1 + n1, b + 1, (size_t)n1 * 4));
}

static void check_clean(const char *in, const char *want) {
    char *got = clip_clean_text(in, 1);
    CHECKF(got && !strcmp(got, want), "clean(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(null)", want);
    free(got);
}

/* Expected strings are Python's html.unescape(html.unescape(s)) and
 * str.lower() results (checked with Debian's python3). */
static void test_clean_text(void) {
    check_clean("a &amp; b", "a & b");
    check_clean("&amp;amp;", "&");
    check_clean("&#39;&#x27;", "''");
    check_clean("&lt3 &LT", "<3 <");
    check_clean("&notit;", "\xc2\xacit;");
    check_clean("&#128;", "\xe2\x82\xac");
    check_clean("&#0;x", "\xef\xbf\xbdx");
    check_clean("&bogus; &ampxyz", "&bogus; &xyz");
    check_clean("&#x; &#65", "&#x; a");
    check_clean("&#1114112;&#55296;&#9999999999999999999;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    check_clean("a&#11;b", "ab");
    check_clean("&nbsp;x&nbsp;", "x"); /* nbsp is whitespace: collapsed and stripped */
    check_clean("&Alpha;&sigmaf;&eacute;&Eacute;", "\xce\xb1\xcf\x82\xc3\xa9\xc3\xa9");
    /* Python str.lower: dotted I, final sigma */
    check_clean("\xc4\xb0STANBUL", "i\xcc\x87stanbul");
    check_clean("\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3\xce\x91\xce\xa3. \xce\xa3 A\xce\xa3'\xce\xa3",
                "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83\xce\xb1\xcf\x82. \xcf\x83 a\xcf\x83'\xcf\x82");
    /* whitespace */
    check_clean("  a\t\tb\n\r\nc \xe2\x80\x83 d \xe3\x80\x80", "a b c d");
    /* ftfy defaults: curly quotes, ligatures, full width, NFC, controls */
    check_clean("it\xe2\x80\x99s \xe2\x80\x9cok\xe2\x80\x9d", "it's \"ok\"");
    check_clean("\xef\xac\x81ne", "fine");
    check_clean("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\xef\xbc\x81", "abc!");
    check_clean("e\xcc\x81", "\xc3\xa9");
    check_clean("a\x01" "b\x1b[31m" "c\xef\xbb\xbf", "abc");
}

/* Writes vocab.json (ids permuted) + merges.txt derived from the .gz in
 * dir; perm[old id] = new id. Built here from the README's description,
 * independently of the tokenizer's own construction. */
static int write_hf_files(const char *dir, int32_t *perm) {
    gzFile g = gzopen(GZ, "rb");
    if (!g) return -1;
    size_t cap = 4 << 20, n = 0;
    char *buf = malloc(cap);
    int k;
    while ((k = gzread(g, buf + n, (unsigned)(cap - n - 1))) > 0) n += (size_t)k;
    gzclose(g);
    buf[n] = 0;
    /* bytes_to_unicode order */
    int order[256], m = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) order[m++] = b;
    int extra = 256;
    int cpv[256];
    for (int b = 0; b < 256; b++) cpv[b] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) order[m++] = b, cpv[b] = extra++;
    cJSON *vocab = cJSON_CreateObject();
    char path[4300];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *mf = fopen(path, "wb");
    for (int id = 0; id < 49408; id++) perm[id] = id >= 49406 ? id : 49405 - id;
    for (int i = 0; i < 512; i++) {
        int c = cpv[order[i % 256]];
        char s[16];
        int l = c < 0x80 ? (s[0] = (char)c, 1) : (s[0] = (char)(0xC0 | c >> 6), s[1] = (char)(0x80 | (c & 63)), 2);
        strcpy(s + l, i >= 256 ? "</w>" : "");
        cJSON_AddNumberToObject(vocab, s, perm[i]);
    }
    char *line = strchr(buf, '\n') + 1;
    fputs("#version: 0.2\n", mf);
    for (int i = 0; i < 48894; i++) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        fprintf(mf, "%s\n", line);
        char joined[256];
        char *sp = strchr(line, ' ');
        snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - line), line, sp + 1);
        cJSON_AddNumberToObject(vocab, joined, perm[512 + i]);
        line = nl + 1;
    }
    fclose(mf);
    cJSON_AddNumberToObject(vocab, "<|startoftext|>", 49406);
    cJSON_AddNumberToObject(vocab, "<|endoftext|>", 49407);
    char *txt = cJSON_PrintUnformatted(vocab);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *vf = fopen(path, "wb");
    fputs(txt, vf);
    fclose(vf);
    cJSON_free(txt);
    cJSON_Delete(vocab);
    free(buf);
    return 0;
}

static void test_vocab_json_and_merges_txt(void) {
    static int32_t perm[49408];
    REQUIRE(write_hf_files(tmp, perm) == 0);
    char path[4300];
    cs_err e = {0};
    clip_tokenizer *t2;
    snprintf(path, sizeof path, "%s/vocab.json", tmp);
    REQUIRE(clip_tokenizer_load(&t2, path, &e) == 0);
    check_case_with(t2, perm);
    CHECK(!strcmp(clip_tokenizer_token(t2, perm[2368]), "cat</w>"));
    clip_tokenizer_free(t2);
    snprintf(path, sizeof path, "%s/merges.txt", tmp); /* pointing at merges.txt works too */
    REQUIRE(clip_tokenizer_load(&t2, path, &e) == 0);
    check_case_with(t2, perm);
    clip_tokenizer_free(t2);
}

static void expect_bad_vocab(const char *path, const char *want) {
    clip_tokenizer *t = (clip_tokenizer *)1;
    cs_err e = {0};
    CHECKF(clip_tokenizer_load(&t, path, &e) == -1, "%s loaded", path);
    CHECK(t == NULL);
    CHECKF(strstr(e.msg, path) && strstr(e.msg, want), "message \"%s\" lacks path or \"%s\"", e.msg, want);
}

static void test_not_a_vocabulary(void) {
    char p[4300], q[4300];
    snprintf(p, sizeof p, "%s/img.png", tmp);
    FILE *f = fopen(p, "wb");
    fwrite("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 1, 16, f);
    fclose(f);
    expect_bad_vocab(p, "binary data");
    snprintf(p, sizeof p, "%s/words.txt", tmp);
    f = fopen(p, "wb");
    fputs("hello world\nthis is text\n", f);
    fclose(f);
    expect_bad_vocab(p, "line 2: \"this is text\" is not a merge");
    f = fopen(p, "wb");
    fputs("header\na b\nc d\n", f);
    fclose(f);
    expect_bad_vocab(p, "2 merges, a CLIP BPE vocabulary has 48894");
    /* a corrupt gzip stream */
    snprintf(p, sizeof p, "%s/bad.gz", tmp);
    f = fopen(p, "wb");
    fwrite("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbagegarbage", 1, 24, f);
    fclose(f);
    expect_bad_vocab(p, "not a vocabulary file");
    /* right shape, but a symbol outside the byte-level alphabet */
    snprintf(p, sizeof p, "%s/sym.txt", tmp);
    f = fopen(p, "wb");
    fputs("#version\n\xe2\x98\x83 \xe2\x98\x83\n", f);
    for (int i = 1; i < 48894; i++) fputs("a b\n", f);
    fclose(f);
    expect_bad_vocab(p, "line 2: merge");
    /* JSON that is not a vocab.json; vocab.json without merges.txt */
    expect_bad_vocab("../shared/refs/sd-tiny/config.json", "not a vocab.json");
    snprintf(p, sizeof p, "%s/sub", tmp);
    mkdir(p, 0755);
    snprintf(q, sizeof q, "%s/sub/vocab.json", tmp);
    snprintf(p, sizeof p, "%s/vocab.json", tmp);
    char *vj = slurp(p, NULL);
    if (vj) {
        f = fopen(q, "wb");
        fputs(vj, f);
        fclose(f);
        free(vj);
        clip_tokenizer *t;
        cs_err e = {0};
        CHECK(clip_tokenizer_load(&t, q, &e) == -1 && strstr(e.msg, "sub/merges.txt"));
    }
    expect_bad_vocab("/nonexistent/bpe.txt.gz", "No such file");
    expect_bad_vocab(tmp, "not a regular file");
    clip_tokenizer_free(NULL);
}

/* Thousands of prompts in well under a second; two threads share one
 * tokenizer (its cache is locked) and agree with a single thread. */
typedef struct {
    int from, n;
    int32_t (*out)[77];
} job;

static const char *words[] = {"photo", "of", "a", "castle", "on", "hill", "sunset", "oil", "painting",
                              "detailed", "4k", "by", "greg", "rutkowski", "trending", "cyberpunk"};

static void make_prompt(int i, char *buf, size_t cap) {
    buf[0] = 0;
    unsigned x = (unsigned)i * 2654435761u;
    for (int w = 0; w < 12; w++) {
        x = x * 1103515245u + 12345u;
        strncat(buf, words[(x >> 16) % 16], cap - strlen(buf) - 2);
        strncat(buf, (x & 1) ? " " : ", ", cap - strlen(buf) - 1);
    }
}

static void *run_job(void *arg) {
    job *j = arg;
    char buf[512];
    for (int i = j->from; i < j->from + j->n; i++) {
        make_prompt(i, buf, sizeof buf);
        clip_tokenize(tok, buf, j->out[i], NULL);
    }
    return NULL;
}

static void test_speed_and_threads(void) {
    REQUIRE(tok);
    enum { N = 4000 };
    static int32_t one[N][77], two[N][77];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    job j = {0, N, one};
    run_job(&j);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("  %d prompts in %.3f s (%.0f prompts/s)\n", N, s, N / s);
    CHECK(s < 10.0); /* ~0.05 s natively; generous for ASan/valgrind */
    job a = {0, N / 2, two}, b = {N / 2, N / 2, two};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_job, &a);
    pthread_create(&tb, NULL, run_job, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(!memcmp(one, two, sizeof one));
}

/* ---- A1111 prompts: emphasis, chunks, encoder output ---- */

typedef struct {
    const char *text;
    double weight;
} want_piece;

static void check_parse(const char *prompt, const want_piece *w, int n) {
    cs_prompt_piece *p;
    int np;
    cs_err e = {0};
    REQUIRE(cs_prompt_parse(prompt, &p, &np, &e) == 0);
    CHECKF(np == n, "%s: %d pieces, want %d", prompt, np, n);
    for (int i = 0; i < np && i < n; i++)
        CHECKF(!strcmp(p[i].text, w[i].text) && p[i].weight == w[i].weight, "%s: piece %d: '%s' %.17g, want '%s' %.17g",
               prompt, i, p[i].text, p[i].weight, w[i].text, w[i].weight);
    cs_prompt_pieces_free(p, np);
}

/* A1111's own examples (parse_prompt_attention's docstring, Python floats
 * as repr prints them) and the escape / BREAK rules. */
static void test_prompt_parse(void) {
    check_parse("normal text", (want_piece[]){{"normal text", 1.0}}, 1);
    check_parse("an (important) word", (want_piece[]){{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}, 3);
    check_parse("(unbalanced", (want_piece[]){{"unbalanced", 1.1}}, 1);
    check_parse("\\(literal\\]", (want_piece[]){{"(literal]", 1.0}}, 1);
    check_parse("(unnecessary)(parens)", (want_piece[]){{"unnecessaryparens", 1.1}}, 1);
    check_parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
                (want_piece[]){{"a ", 1.0},
                               {"house", 1.5730000000000004},
                               {" ", 1.1},
                               {"on", 1.0},
                               {" a ", 1.1},
                               {"hill", 0.55},
                               {", sun, ", 1.1},
                               {"sky", 1.4641000000000006},
                               {".", 1.1}},
                9);
    check_parse("[unbalanced", (want_piece[]){{"unbalanced", 1 / 1.1}}, 1);
    check_parse("", (want_piece[]){{"", 1.0}}, 1);
    check_parse("a:b (c : -0.5 ) d:2)", (want_piece[]){{"a:b ", 1.0}, {"c ", -0.5}, {" d:2)", 1.0}}, 3);
    check_parse("x\\\\y\\z", (want_piece[]){{"x\\yz", 1.0}}, 1); /* "\\" is one backslash, a lone "\" nothing */
    check_parse("cat  BREAK\tdog BREAKfast", (want_piece[]){{"cat", 1.0}, {"BREAK", -1.0}, {"dog BREAKfast", 1.0}}, 3);
    /* inside brackets BREAK is weighted like its neighbours, so A1111 reads it as text */
    check_parse("(a BREAK b)", (want_piece[]){{"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1}}, 3);
    cs_prompt_piece *p;
    int np;
    cs_err e = {0};
    CHECK(cs_prompt_parse("a (b:1.2.3) c", &p, &np, &e) == -1 && strstr(e.msg, "bad weight"));
}

static int n_of(const char *text) {
    cs_err e = {0};
    return clip_tokenize_bpe(tok, text, NULL, 0, &e);
}

/* "w w w ..." n times */
static void repeat(char *buf, const char *w, int n) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) strcat(strcat(buf, i ? " " : ""), w);
}

static void test_prompt_chunks(void) {
    REQUIRE(tok);
    cs_err e = {0};
    cs_prompt_chunks c;
    /* short prompts: exactly the plain tokenizer's 77 ids, weight 1 */
    const char *plain[] = {"", "a cozy wooden cabin in a snowy forest at dusk, oil painting", "A photo: 3 cats!"};
    for (int k = 0; k < 3; k++) {
        int32_t ids[77];
        REQUIRE(clip_tokenize(tok, plain[k], ids, &e) >= 0);
        REQUIRE(cs_prompt_chunk(tok, plain[k], CLIP_END_ID, &c, &e) == 0);
        CHECK(c.n_chunks == 1 && !memcmp(c.ids, ids, sizeof ids) && c.n_tokens == n_of(plain[k]));
        for (int i = 0; i < 77; i++) CHECK(c.weights[i] == 1.0f);
        cs_prompt_chunks_free(&c);
    }
    /* weights go to every token of their piece */
    REQUIRE(n_of("cat") == 1 && n_of("dog") == 1 && n_of(",") == 1 && n_of("snowy forest") == 2);
    REQUIRE(cs_prompt_chunk(tok, "cat (snowy forest:1.5) [dog]", CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 1 && c.n_tokens == 4);
    CHECK(c.weights[0] == 1 && c.weights[1] == 1 && c.weights[2] == 1.5f && c.weights[3] == 1.5f);
    CHECK(c.weights[4] == (float)(1 / 1.1) && c.weights[5] == 1 && c.ids[5] == CLIP_END_ID);
    cs_prompt_chunks_free(&c);
    int32_t cat, dog, comma;
    REQUIRE(clip_tokenize_bpe(tok, "cat", &cat, 1, &e) == 1 && clip_tokenize_bpe(tok, "dog", &dog, 1, &e) == 1 &&
            clip_tokenize_bpe(tok, ",", &comma, 1, &e) == 1);
    char *buf = malloc(8192), *b2 = malloc(4096);
    REQUIRE(buf && b2);
    /* 80 tokens: 75 in the first chunk, 5 in the second (no word is lost) */
    repeat(buf, "cat", 80);
    REQUIRE(cs_prompt_chunk(tok, buf, CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 2 && c.n_tokens == 80);
    CHECK(c.ids[0] == CLIP_START_ID && c.ids[75] == cat && c.ids[76] == CLIP_END_ID);
    CHECK(c.ids[77] == CLIP_START_ID && c.ids[77 + 5] == cat && c.ids[77 + 6] == CLIP_END_ID && c.ids[153] == CLIP_END_ID);
    cs_prompt_chunks_free(&c);
    /* 150 tokens fill two chunks exactly */
    repeat(buf, "cat", 150);
    REQUIRE(cs_prompt_chunk(tok, buf, CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 2 && c.n_tokens == 150 && c.ids[77 + 75] == cat);
    cs_prompt_chunks_free(&c);
    /* a comma within the last 20 tokens: the words after it move on */
    repeat(buf, "cat", 70);
    repeat(b2, "dog", 10);
    strcat(strcat(buf, ", "), b2);
    REQUIRE(cs_prompt_chunk(tok, buf, CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 2 && c.n_tokens == 85);
    CHECK(c.ids[70] == cat && c.ids[71] == comma && c.ids[72] == CLIP_END_ID && c.ids[75] == CLIP_END_ID);
    CHECK(c.ids[78] == dog && c.ids[87] == dog && c.ids[88] == CLIP_END_ID);
    cs_prompt_chunks_free(&c);
    /* ... but not from further back than 20 */
    repeat(buf, "cat", 50);
    repeat(b2, "dog", 30);
    strcat(strcat(buf, ", "), b2);
    REQUIRE(cs_prompt_chunk(tok, buf, CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 2 && c.n_tokens == 81 && c.ids[75] == dog && c.ids[77 + 6] == dog && c.ids[77 + 7] == CLIP_END_ID);
    cs_prompt_chunks_free(&c);
    /* BREAK ends a chunk */
    REQUIRE(cs_prompt_chunk(tok, "cat BREAK dog", CLIP_END_ID, &c, &e) == 0);
    CHECK(c.n_chunks == 2 && c.n_tokens == 76 && c.ids[1] == cat && c.ids[2] == CLIP_END_ID && c.ids[78] == dog);
    cs_prompt_chunks_free(&c);
    /* a pad id other than the end token fills after the first end */
    REQUIRE(cs_prompt_chunk(tok, "cat", 0, &c, &e) == 0);
    CHECK(c.ids[1] == cat && c.ids[2] == CLIP_END_ID && c.ids[3] == 0 && c.ids[76] == 0);
    cs_prompt_chunks_free(&c);
    free(buf);
    free(b2);
}

/* A1111's EmphasisOriginal by hand: z = 1 everywhere, token 1 weighted 2:
 * the sum goes from 154 to 156, so every value is scaled by 154/156. */
static void test_prompt_emphasis_math(void) {
    float z[77 * 2], w[77];
    for (int i = 0; i < 77 * 2; i++) z[i] = 1;
    for (int i = 0; i < 77; i++) w[i] = 1;
    cs_prompt_emphasis(z, w, 2);
    for (int i = 0; i < 77 * 2; i++) CHECK(z[i] == 1); /* no weights: untouched */
    w[1] = 2;
    cs_prompt_emphasis(z, w, 2);
    CHECK(fabsf(z[0] - 154.0f / 156) < 1e-6f && fabsf(z[2] - 2 * 154.0f / 156) < 1e-6f &&
          fabsf(z[3] - 2 * 154.0f / 156) < 1e-6f && fabsf(z[153] - 154.0f / 156) < 1e-6f);
    double m = 0;
    for (int i = 0; i < 77 * 2; i++) m += z[i];
    CHECK(fabs(m / 154 - 1) < 1e-6); /* the mean is restored */
    /* mixed signs: z = (t, -1) per token t, weights 0.5 on tokens 10..19 */
    double before = 0, after = 0;
    for (int t = 0; t < 77; t++) {
        z[2 * t] = (float)t;
        z[2 * t + 1] = -1;
        w[t] = t >= 10 && t < 20 ? 0.5f : 1;
        before += t - 1;
    }
    float ref[154];
    for (int t = 0; t < 77; t++) {
        ref[2 * t] = z[2 * t] * w[t];
        ref[2 * t + 1] = z[2 * t + 1] * w[t];
        after += ref[2 * t] + ref[2 * t + 1];
    }
    cs_prompt_emphasis(z, w, 2);
    for (int i = 0; i < 154; i++) {
        double want = ref[i] * (before / after);
        CHECKF(fabs(z[i] - want) <= 1e-6 * fabs(want) + 1e-7, "%d: %g vs %g", i, z[i], want);
    }
}

typedef struct {
    sd_model *sd;
} enc_ctx;

static int enc_sd(void *ctx, const int32_t *ids, float *z, cs_err *err) {
    return sd_text_encode(((enc_ctx *)ctx)->sd, ids, 1, 1, z, err);
}

/* With the sd-tiny text encoder: a plain prompt is the encoder's output bit
 * for bit; "(word:1.0)" changes nothing; a weighted word keeps the chunk's
 * mean; a long prompt is two encoded chunks side by side. */
static void test_prompt_encode_sd_tiny(void) {
    REQUIRE(tok);
    sd_model *sd;
    cs_err e = {0};
    REQUIRE(sd_load(&sd, "../shared/refs/sd-tiny/model.safetensors", "../shared/refs/sd-tiny/config.json", &e) == 0);
    int D = sd_context_dim(sd);
    enc_ctx ec = {sd};
    const char *pr = "a cozy wooden cabin in a snowy forest at dusk, oil painting";
    int32_t ids[77];
    float *ref = malloc(sizeof(float) * 77 * D), *z = NULL, *z2 = NULL;
    REQUIRE(ref);
    REQUIRE(clip_tokenize(tok, pr, ids, &e) >= 0 && sd_text_encode(sd, ids, 1, 1, ref, &e) == 0);
    int nc;
    REQUIRE(cs_prompt_encode(tok, pr, CLIP_END_ID, D, enc_sd, &ec, &z, &nc, &e) == 0);
    CHECK(nc == 1 && !memcmp(z, ref, sizeof(float) * 77 * D));
    free(z);
    REQUIRE(cs_prompt_encode(tok, "a cozy wooden cabin in a (snowy forest:1.0) at dusk, oil painting", CLIP_END_ID, D,
                             enc_sd, &ec, &z, &nc, &e) == 0);
    CHECK(nc == 1 && !memcmp(z, ref, sizeof(float) * 77 * D));
    free(z);
    REQUIRE(cs_prompt_encode(tok, "a cozy wooden cabin in a (snowy forest:1.4) at dusk, oil painting", CLIP_END_ID, D,
                             enc_sd, &ec, &z, &nc, &e) == 0);
    double m0 = 0, m1 = 0;
    for (int i = 0; i < 77 * D; i++) m0 += ref[i], m1 += z[i];
    CHECK(fabs(m1 - m0) <= 1e-5 * fabs(m0) + 1e-4);
    /* snowy forest = tokens 7, 8 (after the start token): ratio 1.4 r, the rest r */
    double r = z[0] / ref[0];
    CHECK(fabs(r - 1) < 0.2);
    for (int t = 0; t < 77; t++)
        for (int d = 0; d < D; d += 7) {
            double want = ref[t * D + d] * r * (t == 7 || t == 8 ? 1.4 : 1);
            CHECK(fabs(z[t * D + d] - want) <= 1e-5 * fabs(want) + 1e-6);
        }
    free(z);
    /* long: chunk k equals the encoder on chunk k's ids */
    char *buf = malloc(8192);
    REQUIRE(buf);
    buf[0] = 0;
    for (int i = 0; i < 12; i++) strcat(buf, "a cozy wooden cabin in a snowy forest, ");
    cs_prompt_chunks c;
    REQUIRE(cs_prompt_chunk(tok, buf, CLIP_END_ID, &c, &e) == 0);
    REQUIRE(cs_prompt_encode(tok, buf, CLIP_END_ID, D, enc_sd, &ec, &z2, &nc, &e) == 0);
    CHECK(nc == c.n_chunks && nc == 2);
    for (int k = 0; k < nc; k++) {
        REQUIRE(sd_text_encode(sd, c.ids + 77 * k, 1, 1, ref, &e) == 0);
        CHECK(!memcmp(z2 + (size_t)77 * D * k, ref, sizeof(float) * 77 * D));
    }
    cs_prompt_chunks_free(&c);
    free(z2);
    free(buf);
    free(ref);
    sd_free(sd);
}

int main(void) {
    tmp = t_tmpdir("tok");
    if (!tmp) return 1;
    cs_err e = {0};
    if (load_case()) fprintf(stderr, "cannot read the sd-tiny tokenizer case\n");
    if (clip_tokenizer_load(&tok, GZ, &e)) fprintf(stderr, "%s\n", e.msg);
    RUN(test_sd_tiny_tokenizer_case);
    RUN(test_framing_and_specials);
    RUN(test_clean_text);
    RUN(test_vocab_json_and_merges_txt);
    RUN(test_not_a_vocabulary);
    RUN(test_speed_and_threads);
    RUN(test_prompt_parse);
    RUN(test_prompt_chunks);
    RUN(test_prompt_emphasis_math);
    RUN(test_prompt_encode_sd_tiny);
    clip_tokenizer_free(tok);
    cJSON_Delete(case_params);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    free(tmp);
    return T_DONE();
}
