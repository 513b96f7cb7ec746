/* safetensors: fp16/bf16 conversion, write/read round trips of every dtype,
 * the shared reference files, every kind of malformed file, and the inputs
 * the fuzzer once crashed on (tests/fuzz/crashes/). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "t.h"

static char *tmp;

static char *tpath(const char *name) {
    static char p[8][4300];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, sizeof p[0], "%s/%s", tmp, name);
    return s;
}

/* Writes u64 hlen + header + data; hlen < 0 means strlen(header). */
static void write_raw(const char *path, const char *header, long long hlen, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    uint64_t h = hlen < 0 ? strlen(header) : (uint64_t)hlen;
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(h >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Opens a file that must be refused; the message must name the file and
 * contain `want` (a tensor name or the problem). */
static void expect_bad(const char *path, const char *want) {
    cs_safetensors st;
    cs_err e = {0};
    int rc = cs_safetensors_open(&st, path, &e);
    CHECKF(rc == -1, "%s opened", path);
    CHECKF(strstr(e.msg, path) != NULL, "message \"%s\" lacks the path", e.msg);
    CHECKF(strstr(e.msg, want) != NULL, "message \"%s\" lacks \"%s\"", e.msg, want);
    CHECK(st.map == NULL && st.tensors == NULL && st.n == 0);
    cs_safetensors_close(&st); /* harmless after a failed open */
}

/* ---- fp16 / bf16 ---- */

/* Independent definition of the IEEE half value. */
static double half_value(uint16_t h) {
    int s = h >> 15, ex = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = ex == 0 ? ldexp(m, -24) : ldexp(1024 + m, ex - 25);
    return s ? -v : v;
}

static void test_f16_all_values(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cs_f16_to_f32((uint16_t)h);
        int ex = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (ex == 31) {
            if (m ? !isnan(f) : !(isinf(f) && (signbit(f) != 0) == (h >> 15))) bad++;
            if (m && !isnan(cs_f16_to_f32(cs_f32_to_f16(f)))) bad++;
            continue;
        }
        if ((double)f != half_value((uint16_t)h) || (signbit(f) != 0) != (int)(h >> 15)) bad++;
        if (cs_f32_to_f16(f) != h) bad++; /* exact round trip, incl. -0 and subnormals */
    }
    CHECKF(bad == 0, "%d halves wrong", bad);
}

static void test_f32_to_f16_rounding(void) {
    CHECK(cs_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(cs_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(cs_f32_to_f16(65520.0f) == 0x7c00);  /* tie rounds to even = inf */
    CHECK(cs_f32_to_f16(-1e10f) == 0xfc00);
    CHECK(cs_f32_to_f16(0x1p-24f) == 0x0001);  /* smallest subnormal */
    CHECK(cs_f32_to_f16(0x1p-25f) == 0x0000);  /* tie to even: 0 */
    CHECK(cs_f32_to_f16(0x1.8p-25f) == 0x0001);
    CHECK(cs_f32_to_f16(0x3p-25f) == 0x0002);  /* 1.5 ulp: tie to even 2 */
    CHECK(cs_f32_to_f16(0x1.ff8p-15f) == 0x03ff); /* largest subnormal */
    CHECK(cs_f32_to_f16(0x1.ffcp-15f) == 0x0400); /* tie rounds up into the normals */
    CHECK(cs_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);      /* tie, even stays */
    CHECK(cs_f32_to_f16(1.0f + 0x3p-11f) == 0x3c02);      /* tie, odd rounds up */
    CHECK(cs_f32_to_f16(1.0f + 0x1.02p-11f) == 0x3c01); /* above the tie */
    CHECK(cs_f32_to_f16(1e-10f) == 0 && cs_f32_to_f16(-1e-10f) == 0x8000);
    /* against the compiler's own conversion on many floats */
    int bad = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t bits = (x & 0x8fffffffu) | ((x & 0x0f000000u) ? 0x30000000u : 0); /* dense near 1 */
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f)) continue;
        _Float16 r = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &r, 2);
        if (cs_f32_to_f16(f) != rb) bad++;
    }
    CHECKF(bad == 0, "%d conversions differ from _Float16", bad);
}

static void test_bf16(void) {
    CHECK(cs_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(cs_bf16_to_f32(0xc000) == -2.0f);
    CHECK(cs_bf16_to_f32(0x0001) == 0x1p-133f); /* subnormal */
    CHECK(isinf(cs_bf16_to_f32(0x7f80)) && isnan(cs_bf16_to_f32(0x7fc1)));
    CHECK(cs_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);  /* tie to even */
    CHECK(cs_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82);
    CHECK(isnan(cs_bf16_to_f32(cs_f32_to_bf16(NAN))));
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cs_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && cs_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0);
}

/* ---- round trips ---- */

static void test_roundtrip_every_dtype(void) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 1e-40f, 3.4e38f, -0.0f};
    uint16_t f16[6], bf16[6];
    for (int i = 0; i < 6; i++) f16[i] = cs_f32_to_f16(f32[i]), bf16[i] = cs_f32_to_bf16(f32[i]);
    double f64[3] = {0.1, -1e300, 2.5};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    int32_t i32[3] = {-7, 0, INT32_MAX};
    int16_t i16[1] = {-300};
    int8_t i8[4] = {-128, 127, 0, 1};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    uint8_t bo[2] = {0, 1};
    float scalar = 42.0f;
    cs_safetensors_out o[] = {
        {"w.f32", CS_DT_F32, 2, {2, 3}, f32},   {"w.f16", CS_DT_F16, 2, {3, 2}, f16},
        {"w.bf16", CS_DT_BF16, 1, {6}, bf16},   {"a.f64", CS_DT_F64, 1, {3}, f64},
        {"i64", CS_DT_I64, 1, {2}, i64},        {"i32", CS_DT_I32, 3, {1, 3, 1}, i32},
        {"i16", CS_DT_I16, 1, {1}, i16},        {"i8", CS_DT_I8, 2, {2, 2}, i8},
        {"u8", CS_DT_U8, 1, {5}, u8},           {"bool", CS_DT_BOOL, 1, {2}, bo},
        {"scalar", CS_DT_F32, 0, {0}, &scalar}, {"empty", CS_DT_F32, 3, {4, 0, 2}, NULL},
        {"name \"quoted\"\n\\", CS_DT_U8, 1, {1}, u8},
    };
    int n = (int)(sizeof o / sizeof o[0]);
    cs_err e = {0};
    const char *meta = "{\"format\":\"pt\",\"note\":\"caf\\u00e9 \\\"q\\\"\"}";
    REQUIRE(cs_safetensors_write(tpath("rt.safetensors"), o, n, meta, &e) == 0);
    cs_safetensors st;
    REQUIRE(cs_safetensors_open(&st, tpath("rt.safetensors"), &e) == 0);
    CHECK(st.n == n);
    for (int i = 1; i < st.n; i++) CHECK(strcmp(st.tensors[i - 1].name, st.tensors[i].name) < 0);
    for (int i = 0; i < n; i++) {
        const cs_safetensors_tensor *t = cs_safetensors_find(&st, o[i].name);
        CHECKF(t != NULL, "%s", o[i].name);
        if (!t) continue;
        CHECK(t->dtype == o[i].dtype && t->ndim == o[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == o[i].shape[d]);
            numel *= o[i].shape[d];
        }
        CHECK(t->numel == numel && t->nbytes == (size_t)numel * cs_dtype_size(t->dtype));
        CHECK(!t->nbytes || !memcmp(t->data, o[i].data, t->nbytes));
        CHECK((uintptr_t)t->data % cs_dtype_size(t->dtype) == 0);
    }
    CHECK(cs_safetensors_find(&st, "nope") == NULL && cs_safetensors_find(&st, "") == NULL);
    /* metadata comes back as equivalent JSON */
    cJSON *m = st.metadata_json ? cJSON_Parse(st.metadata_json) : NULL;
    CHECK(m && !strcmp(cJSON_GetObjectItem(m, "note")->valuestring, "caf\xc3\xa9 \"q\""));
    cJSON_Delete(m);
    /* header is padded so the data section is 8-byte aligned: F32 is a view */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | ((uint8_t *)st.map)[i];
    CHECK(hl % 8 == 0);
    const float *p;
    int owned;
    int64_t s23[2] = {2, 3};
    REQUIRE(cs_safetensors_get_f32(&st, "w.f32", 2, s23, &p, &owned, &e) == 0);
    CHECK(owned == 0 && (const void *)p == cs_safetensors_find(&st, "w.f32")->data);
    CHECK(!memcmp(p, f32, sizeof f32));
    REQUIRE(cs_safetensors_get_f32(&st, "w.f16", -1, NULL, &p, &owned, &e) == 0);
    CHECK(owned == 1);
    for (int i = 0; i < 6; i++) CHECK(p[i] == cs_f16_to_f32(f16[i]));
    CHECK(p[0] == 1.5f && p[1] == -2.25f && isinf(p[4]) && signbit(p[5]));
    free((void *)p);
    REQUIRE(cs_safetensors_get_f32(&st, "w.bf16", 1, (int64_t[]){6}, &p, &owned, &e) == 0);
    CHECK(owned == 1 && p[0] == 1.5f && p[1] == -2.25f && p[3] == cs_bf16_to_f32(cs_f32_to_bf16(1e-40f)));
    free((void *)p);
    REQUIRE(cs_safetensors_get_f32(&st, "a.f64", 1, (int64_t[]){3}, &p, &owned, &e) == 0);
    CHECK(owned == 1 && p[0] == 0.1f && isinf(p[1]) && p[2] == 2.5f);
    free((void *)p);
    REQUIRE(cs_safetensors_get_f32(&st, "scalar", 0, NULL, &p, &owned, &e) == 0);
    CHECK(p[0] == 42.0f);
    if (owned) free((void *)p);
    REQUIRE(cs_safetensors_get_f32(&st, "empty", 3, (int64_t[]){4, 0, 2}, &p, &owned, &e) == 0);
    if (owned) free((void *)p);
    /* integer tensors are not silently read as weights */
    CHECK(cs_safetensors_get_f32(&st, "i32", -1, NULL, &p, &owned, &e) == -1 && strstr(e.msg, "i32"));
    cs_safetensors_close(&st);
    CHECK(st.map == NULL);

    /* writer refuses duplicates and bad metadata */
    cs_safetensors_out dup[2] = {{"x", CS_DT_U8, 1, {1}, u8}, {"x", CS_DT_U8, 1, {1}, u8}};
    CHECK(cs_safetensors_write(tpath("dup.safetensors"), dup, 2, NULL, &e) == -1 && strstr(e.msg, "duplicate"));
    CHECK(cs_safetensors_write(tpath("m.safetensors"), dup, 1, "{\"a\":1}", &e) == -1);
    CHECK(cs_safetensors_write(tpath("m.safetensors"), dup, 1, "[1]", &e) == -1);
    /* an empty file (no tensors) is valid */
    REQUIRE(cs_safetensors_write(tpath("none.safetensors"), NULL, 0, NULL, &e) == 0);
    REQUIRE(cs_safetensors_open(&st, tpath("none.safetensors"), &e) == 0);
    CHECK(st.n == 0 && st.metadata_json == NULL && cs_safetensors_find(&st, "x") == NULL);
    cs_safetensors_close(&st);
}

static void test_unaligned_f32_is_copied(void) {
    /* header of odd length: the F32 data starts at an address not divisible by 4 */
    const char *h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    uint8_t d[9] = {0xee};
    float v[2] = {3.0f, -0.5f};
    memcpy(d + 1, v, 8);
    size_t hl = strlen(h);
    (void)hl;
    write_raw(tpath("ua.safetensors"), h, -1, d, sizeof d);
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, tpath("ua.safetensors"), &e) == 0);
    const float *p;
    int owned;
    REQUIRE(cs_safetensors_get_f32(&st, "t", 1, (int64_t[]){2}, &p, &owned, &e) == 0);
    CHECK(p[0] == 3.0f && p[1] == -0.5f);
    CHECK(owned == (((uintptr_t)cs_safetensors_find(&st, "t")->data & 3) != 0));
    if (owned) free((void *)p);
    cs_safetensors_close(&st);
}

/* ---- reference files ---- */

static void test_sd_tiny_model(void) {
    cs_safetensors st;
    cs_err e = {0};
    const char *path = "../shared/refs/sd-tiny/model.safetensors";
    REQUIRE(cs_safetensors_open(&st, path, &e) == 0);
    CHECK(st.n == 459);
    CHECK(!strcmp(st.tensors[0].name, "alphas_cumprod"));
    CHECK(!strcmp(st.tensors[st.n - 1].name, "sqrt_recipm1_alphas_cumprod"));
    const char *k = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
    const float *p;
    int owned;
    REQUIRE(cs_safetensors_get_f32(&st, k, 2, (int64_t[]){49408, 32}, &p, &owned, &e) == 0);
    CHECK(owned == 0);
    CHECK(p[0] == -0.00012805889127776027f && p[49408 * 32 - 1] == -0.0034768113400787115f);
    double s = 0;
    for (int i = 0; i < 49408 * 32; i++) s += p[i];
    CHECK(fabs(s - -14.392598749796612) < 1e-9);
    REQUIRE(cs_safetensors_get_f32(&st, "alphas_cumprod", 1, (int64_t[]){1000}, &p, &owned, &e) == 0);
    CHECK(p[0] == 0.9991499781608582f && p[999] == 0.004660098347812891f);
    /* a missing tensor and a wrong shape: errors name file and tensor */
    CHECK(cs_safetensors_get_f32(&st, "model.diffusion_model.nope.weight", -1, NULL, &p, &owned, &e) == -1);
    CHECK(strstr(e.msg, path) && strstr(e.msg, "model.diffusion_model.nope.weight") && strstr(e.msg, "missing"));
    CHECK(e.code == CS_ENOTFOUND);
    CHECK(cs_safetensors_get_f32(&st, k, 2, (int64_t[]){49408, 768}, &p, &owned, &e) == -1);
    CHECK(strstr(e.msg, path) && strstr(e.msg, k) && strstr(e.msg, "[49408, 32] expected [49408, 768]"));
    CHECK(cs_safetensors_get_f32(&st, k, 3, (int64_t[]){1, 49408, 32}, &p, &owned, &e) == -1 && strstr(e.msg, k));
    CHECK(p == NULL && owned == 0);
    cs_safetensors_close(&st);
}

/* Every case file opens, and each tensor has the shape index.json gives. */
static void test_sd_tiny_cases(void) {
    FILE *f = fopen("../shared/refs/sd-tiny/cases/index.json", "rb");
    REQUIRE(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    REQUIRE(root);
    int files = 0, tensors = 0;
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    cJSON_ArrayForEach(c, cases) {
        char path[512];
        snprintf(path, sizeof path, "../shared/refs/sd-tiny/%s", cJSON_GetObjectItem(c, "file")->valuestring);
        cs_safetensors st;
        cs_err e = {0};
        CHECKF(cs_safetensors_open(&st, path, &e) == 0, "%s", e.msg);
        if (!st.map) continue;
        files++;
        CHECK(st.metadata_json && strstr(st.metadata_json, "\"case\""));
        const char *sect[2] = {"inputs", "outputs"};
        for (int s = 0; s < 2; s++) {
            const cJSON *io;
            cJSON_ArrayForEach(io, cJSON_GetObjectItem(c, sect[s])) {
                const cs_safetensors_tensor *t = cs_safetensors_find(&st, io->string);
                CHECKF(t != NULL, "%s: %s", path, io->string);
                if (!t) continue;
                CHECK(t->dtype == CS_DT_F32 && t->ndim == cJSON_GetArraySize(io));
                int d = 0;
                const cJSON *dim;
                cJSON_ArrayForEach(dim, io) CHECK(d < t->ndim && t->shape[d++] == (int64_t)dim->valuedouble);
                tensors++;
            }
        }
        cs_safetensors_close(&st);
    }
    CHECK(files == 17 && tensors > 60);
    cJSON_Delete(root);
}

/* The ResNet-50 reference is all F16: known values from numpy. */
static void test_resnet50_f16(void) {
    cs_safetensors st;
    cs_err e = {0};
    REQUIRE(cs_safetensors_open(&st, "../shared/refs/resnet50/model.safetensors", &e) == 0);
    CHECK(st.n == 267 && st.metadata_json && strstr(st.metadata_json, "RANDOM weights"));
    const float *p;
    int owned;
    REQUIRE(cs_safetensors_get_f32(&st, "conv1.weight", 4, (int64_t[]){64, 3, 7, 7}, &p, &owned, &e) == 0);
    CHECK(owned == 1 && cs_safetensors_find(&st, "conv1.weight")->dtype == CS_DT_F16);
    const double want[6] = {0.0281982421875, 0.00823211669921875, -0.033233642578125,
                            -0.0208740234375, -0.01259613037109375, -0.0019207000732421875};
    for (int i = 0; i < 6; i++) CHECK(p[i] == want[i]);
    CHECK(p[1013] == 1.1682510375976562e-05); /* a subnormal half (0x00c4) */
    free((void *)p);
    REQUIRE(cs_safetensors_get_f32(&st, "fc.weight", 2, (int64_t[]){512, 2048}, &p, &owned, &e) == 0);
    double s = 0, mx = 0;
    for (int i = 0; i < 512 * 2048; i++) s += p[i], mx = fmax(mx, fabs(p[i]));
    CHECK(s == -42.07289034128189 || fabs(s - -42.07289034128189) < 1e-9);
    CHECK(mx == 0.04840087890625);
    free((void *)p);
    cs_safetensors_close(&st);
}

/* ---- bad input: one test each ---- */

static const char *good_hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

static void test_bad_truncated(void) {
    write_raw(tpath("t0"), "", 0, NULL, 0);
    FILE *f = fopen(tpath("t0"), "wb");
    if (f) fclose(f);
    expect_bad(tpath("t0"), "truncated");
    f = fopen(tpath("t5"), "wb");
    if (f) fwrite("\x10\0\0\0\0", 1, 5, f), fclose(f);
    expect_bad(tpath("t5"), "truncated");
    /* header complete, data cut short */
    write_raw(tpath("tdata"), good_hdr, -1, "\0\0\0\0", 4);
    expect_bad(tpath("tdata"), "a: data_offsets [0, 8] beyond the data section (4 bytes)");
    /* header cut short */
    char h[40];
    memcpy(h, good_hdr, 39);
    h[39] = 0;
    write_raw(tpath("thdr"), h, (long long)strlen(good_hdr), NULL, 0);
    expect_bad(tpath("thdr"), "beyond the end of the file");
}

static void test_bad_header_length(void) {
    write_raw(tpath("hl1"), good_hdr, 1000, "12345678", 8);
    expect_bad(tpath("hl1"), "header length 1000 beyond the end of the file");
    write_raw(tpath("hl2"), good_hdr, -2LL & 0x7fffffffffffffffLL, NULL, 0);
    expect_bad(tpath("hl2"), "exceeds the limit");
    write_raw(tpath("hl3"), good_hdr, 0, NULL, 0);
    expect_bad(tpath("hl3"), "too small");
    /* header length shorter than the JSON: the JSON is cut */
    write_raw(tpath("hl4"), good_hdr, 20, NULL, 0);
    expect_bad(tpath("hl4"), "not valid JSON");
}

static void test_bad_offsets_out_of_range(void) {
    uint8_t d[16] = {0};
    write_raw(tpath("oor"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", -1, d, 16);
    expect_bad(tpath("oor"), "w: data_offsets [12, 20] beyond the data section");
    write_raw(tpath("oor2"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", -1, d, 16);
    expect_bad(tpath("oor2"), "w: data_offsets");
    write_raw(tpath("oor3"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", -1, d, 16);
    expect_bad(tpath("oor3"), "begin 8 > end 0");
    write_raw(tpath("oor4"),
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551608,"
              "18446744073709551616]}}", -1, d, 16);
    expect_bad(tpath("oor4"), "w: data_offsets");
    write_raw(tpath("oor5"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8.5]}}", -1, d, 16);
    expect_bad(tpath("oor5"), "w: data_offsets");
    write_raw(tpath("oor6"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", -1, d, 16);
    expect_bad(tpath("oor6"), "w: data_offsets");
}

static void test_bad_overlap(void) {
    uint8_t d[16] = {0};
    write_raw(tpath("ovl"),
              "{\"w1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"w2\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, d, 16);
    expect_bad(tpath("ovl"), "w2: data_offsets overlap those of w1");
    write_raw(tpath("ovl2"),
              "{\"b\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
              "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}", -1, d, 16);
    expect_bad(tpath("ovl2"), "overlap");
    /* the same range twice is an overlap too */
    write_raw(tpath("ovl3"),
              "{\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
              "\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", -1, d, 16);
    expect_bad(tpath("ovl3"), "overlap");
    /* adjacent ranges and holes are fine */
    write_raw(tpath("adj"),
              "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
              "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]}}", -1, d, 16);
    cs_safetensors st;
    cs_err e = {0};
    CHECKF(cs_safetensors_open(&st, tpath("adj"), &e) == 0, "%s", e.msg);
    cs_safetensors_close(&st);
}

static void test_bad_dtype(void) {
    uint8_t d[8] = {0};
    write_raw(tpath("dt"), "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", -1, d, 8);
    expect_bad(tpath("dt"), "w: unknown dtype \"F8_E4M3\"");
    write_raw(tpath("dt2"), "{\"w\":{\"dtype\":4,\"shape\":[8],\"data_offsets\":[0,8]}}", -1, d, 8);
    expect_bad(tpath("dt2"), "w: missing or non-string dtype");
    write_raw(tpath("dt3"), "{\"w\":{\"shape\":[8],\"data_offsets\":[0,8]}}", -1, d, 8);
    expect_bad(tpath("dt3"), "w: missing or non-string dtype");
    write_raw(tpath("dt4"), "{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, d, 8);
    expect_bad(tpath("dt4"), "unknown dtype");
}

static void test_bad_size_mismatch(void) {
    uint8_t d[16] = {0};
    write_raw(tpath("sz"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, d, 16);
    expect_bad(tpath("sz"), "w: 8 bytes in data_offsets but shape x F32 needs 12");
    write_raw(tpath("sz2"), "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", -1, d, 16);
    expect_bad(tpath("sz2"), "w: 16 bytes");
    write_raw(tpath("sz3"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, d, 16);
    expect_bad(tpath("sz3"), "w: shape[0] is not a non-negative integer");
    write_raw(tpath("sz4"), "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", -1, d, 16);
    expect_bad(tpath("sz4"), "w: missing or non-array shape");
    write_raw(tpath("sz5"),
              "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
              -1, d, 16);
    expect_bad(tpath("sz5"), "w: shape too large");
    write_raw(tpath("sz6"), "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
              -1, d, 16);
    expect_bad(tpath("sz6"), "w: 9 dimensions");
    write_raw(tpath("sz7"), "{\"w\":{\"dtype\":\"U8\",\"shape\":[1e400],\"data_offsets\":[0,1]}}", -1, d, 16);
    expect_bad(tpath("sz7"), "w: ");
}

static void test_bad_duplicate_names(void) {
    uint8_t d[16] = {0};
    write_raw(tpath("dup"),
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, d, 16);
    expect_bad(tpath("dup"), "w: duplicate tensor name");
    write_raw(tpath("dupm"), "{\"__metadata__\":{},\"__metadata__\":{}}", -1, d, 0);
    expect_bad(tpath("dupm"), "__metadata__: duplicate");
}

static void test_bad_non_object_header(void) {
    uint8_t d[8] = {0};
    write_raw(tpath("arr"), "[1, 2, 3]      ", -1, d, 8);
    expect_bad(tpath("arr"), "header is not a JSON object");
    write_raw(tpath("str"), "\"hello\"", -1, d, 8);
    expect_bad(tpath("str"), "header is not a JSON object");
    write_raw(tpath("lead"), "  {}    ", -1, d, 8);
    expect_bad(tpath("lead"), "header is not a JSON object");
    write_raw(tpath("nojson"), "{not json at all}", -1, d, 8);
    expect_bad(tpath("nojson"), "not valid JSON");
    write_raw(tpath("ent"), "{\"w\":[1,2]}", -1, d, 8);
    expect_bad(tpath("ent"), "w: entry is not an object");
    write_raw(tpath("meta"), "{\"__metadata__\":[1]}", -1, d, 8);
    expect_bad(tpath("meta"), "__metadata__ is not an object");
    write_raw(tpath("meta2"), "{\"__metadata__\":{\"k\":3}}", -1, d, 8);
    expect_bad(tpath("meta2"), "value of \"k\" is not a string");
    write_raw(tpath("trail"), "{}  x", -1, d, 8);
    expect_bad(tpath("trail"), "garbage after the header JSON");
    /* space padding after the object is allowed */
    write_raw(tpath("pad"), "{}      ", -1, d, 8);
    cs_safetensors st;
    cs_err e = {0};
    CHECKF(cs_safetensors_open(&st, tpath("pad"), &e) == 0, "%s", e.msg);
    cs_safetensors_close(&st);
    /* not a regular file, and nonexistent */
    expect_bad(tmp, "not a regular file");
    expect_bad(tpath("does-not-exist"), "No such file");
}

/* Every input the fuzzer ever crashed on is replayed here: it must be
 * refused or accepted cleanly (ASan in CI catches any bad read). */
static void test_fuzz_crash_regressions(void) {
    const char *dirs[] = {"tests/fuzz/crashes", "tests/fuzz/seeds"};
    int seen = 0;
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t nl = strlen(de->d_name);
            if (de->d_name[0] == '.' || (nl > 3 && !strcmp(de->d_name + nl - 3, ".md"))) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dirs[k], de->d_name);
            struct stat sb;
            if (stat(p, &sb) || !S_ISREG(sb.st_mode)) continue;
            cs_safetensors st;
            cs_err e = {0};
            if (cs_safetensors_open(&st, p, &e) == 0) {
                /* touch every byte of every tensor and convert floats */
                for (int i = 0; i < st.n; i++) {
                    const cs_safetensors_tensor *t = &st.tensors[i];
                    volatile uint8_t sink = 0;
                    for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
                    const float *f;
                    int owned;
                    if (cs_safetensors_get_f32(&st, t->name, t->ndim, t->shape, &f, &owned, &e) == 0 && owned)
                        free((void *)f);
                }
                cs_safetensors_close(&st);
            } else {
                CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
            }
            seen++;
        }
        closedir(d);
    }
    printf("  replayed %d fuzz inputs\n", seen);
}

int main(void) {
    tmp = t_tmpdir("st");
    if (!tmp) return 1;
    RUN(test_f16_all_values);
    RUN(test_f32_to_f16_rounding);
    RUN(test_bf16);
    RUN(test_roundtrip_every_dtype);
    RUN(test_unaligned_f32_is_copied);
    RUN(test_sd_tiny_model);
    RUN(test_sd_tiny_cases);
    RUN(test_resnet50_f16);
    RUN(test_bad_truncated);
    RUN(test_bad_header_length);
    RUN(test_bad_offsets_out_of_range);
    RUN(test_bad_overlap);
    RUN(test_bad_dtype);
    RUN(test_bad_size_mismatch);
    RUN(test_bad_duplicate_names);
    RUN(test_bad_non_object_header);
    RUN(test_fuzz_crash_regressions);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    free(tmp);
    return T_DONE();
}
