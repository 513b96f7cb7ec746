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
    if (!case_params || cs_st_open(&st, "../shared/refs/sd-tiny/cases/tokenizer.safetensors", &e)) return -1;
    const float *p;
    int owned;
    int rc = cs_st_get_f32(&st, "ids", 2, (int64_t[]){8, 77}, &p, &owned, &e);
    if (!rc) memcpy(case_ids, p, sizeof case_ids);
    if (!rc && owned) free((void *)p);
    cs_st_close(&st);
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
    clip_tokenizer_free(tok);
    cJSON_Delete(case_params);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    free(tmp);
    return T_DONE();
}
