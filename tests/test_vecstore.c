/* Vector columns: append, reopen, mmap contents, truncation and dimension errors. */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "core/err.h"
#include "index/vecstore.h"
#include "t.h"

static char *dir;

static char *path_in(const char *name) {
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/%s", dir, name);
    return p;
}

static void fill(float *v, int64_t n, int dim, int64_t seed) {
    for (int64_t i = 0; i < n * dim; i++) v[i] = (float)((i * 7 + seed * 13) % 101) / 101.0f;
}

static void test_append_reopen(void) {
    char *p = path_in("a.vec");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 8, 1, &e) == 0);
    CHECK(vs.n == 0 && vs.dim == 8);
    float v[5 * 8];
    int64_t ids[5] = {10, 11, 12, 13, 14};
    fill(v, 5, 8, 1);
    CHECK(cs_vecstore_append(&vs, ids, v, 3, &e) == 0);
    CHECK(vs.n == 3 && vs.ids[2] == 12 && vs.vecs[2 * 8 + 5] == v[2 * 8 + 5]);
    CHECK(cs_vecstore_append(&vs, ids + 3, v + 3 * 8, 2, &e) == 0);
    CHECK(vs.n == 5);
    CHECK(cs_vecstore_find(&vs, 13) == 3 && cs_vecstore_find(&vs, 9) == -1 && cs_vecstore_find(&vs, 15) == -1);
    cs_vecstore_close(&vs);

    REQUIRE(cs_vecstore_open(&vs, p, 0, 0, &e) == 0);
    CHECK(vs.n == 5 && vs.dim == 8);
    CHECK(!memcmp(vs.vecs, v, sizeof v));
    CHECK(!memcmp(vs.ids, ids, sizeof ids));
    cs_vecstore_close(&vs);
    free(p);
}

static void test_unsorted_ids_find(void) {
    char *p = path_in("u.vec");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 2, 1, &e) == 0);
    int64_t ids[6] = {50, 3, 40, 7, 1, 60};
    float v[12];
    fill(v, 6, 2, 2);
    CHECK(cs_vecstore_append(&vs, ids, v, 6, &e) == 0);
    for (int i = 0; i < 6; i++) CHECK(cs_vecstore_find(&vs, ids[i]) == i);
    CHECK(cs_vecstore_find(&vs, 8) == -1);
    cs_vecstore_close(&vs);
    free(p);
}

static void test_dim_mismatch(void) {
    char *p = path_in("d.vec");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 4, 1, &e) == 0);
    cs_vecstore_close(&vs);
    CHECK(cs_vecstore_open(&vs, p, 512, 0, &e) == -1);
    CHECK(e.code == CS_EFORMAT && strstr(e.msg, "dimension 4, expected 512") && strstr(e.msg, p));
    CHECK(cs_vecstore_open(&vs, p, 512, 1, &e) == -1);
    free(p);
}

static void test_truncated(void) {
    char *p = path_in("t.vec");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 16, 1, &e) == 0);
    float v[4 * 16];
    int64_t ids[4] = {1, 2, 3, 4};
    fill(v, 4, 16, 3);
    CHECK(cs_vecstore_append(&vs, ids, v, 4, &e) == 0);
    cs_vecstore_close(&vs);
    REQUIRE(truncate(p, CS_VS_HEADER_SIZE + 3 * 16 * 4 + 10) == 0);
    CHECK(cs_vecstore_open(&vs, p, 16, 0, &e) == -1);
    CHECK(e.code == CS_EFORMAT && strstr(e.msg, "truncated") && strstr(e.msg, p));
    REQUIRE(truncate(p, 20) == 0);
    CHECK(cs_vecstore_open(&vs, p, 16, 0, &e) == -1 && strstr(e.msg, "truncated header"));
    free(p);
}

static void test_truncated_ids(void) {
    char *p = path_in("ti.vec");
    char *pi = path_in("ti.vec.ids");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 3, 1, &e) == 0);
    float v[9] = {0};
    int64_t ids[3] = {1, 2, 3};
    CHECK(cs_vecstore_append(&vs, ids, v, 3, &e) == 0);
    cs_vecstore_close(&vs);
    REQUIRE(truncate(pi, CS_VS_HEADER_SIZE + 8) == 0);
    CHECK(cs_vecstore_open(&vs, p, 3, 0, &e) == -1 && strstr(e.msg, "truncated") && strstr(e.msg, ".ids"));
    REQUIRE(unlink(pi) == 0);
    CHECK(cs_vecstore_open(&vs, p, 3, 1, &e) == -1 && strstr(e.msg, "id file missing"));
    free(p), free(pi);
}

/* Rows written past the committed count (a crash mid-append) are ignored and
 * overwritten by the next append. */
static void test_uncommitted_tail(void) {
    char *p = path_in("c.vec");
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open(&vs, p, 2, 1, &e) == 0);
    float v[4] = {1, 2, 3, 4};
    int64_t ids[2] = {5, 6};
    CHECK(cs_vecstore_append(&vs, ids, v, 1, &e) == 0);
    cs_vecstore_close(&vs);
    int fd = open(p, O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    float junk[3] = {9, 9, 9};
    CHECK(write(fd, junk, sizeof junk) == sizeof junk);
    close(fd);
    REQUIRE(cs_vecstore_open(&vs, p, 2, 1, &e) == 0);
    CHECK(vs.n == 1);
    CHECK(cs_vecstore_append(&vs, ids + 1, v + 2, 1, &e) == 0);
    CHECK(vs.n == 2 && vs.vecs[2] == 3 && vs.vecs[3] == 4 && vs.ids[1] == 6);
    cs_vecstore_close(&vs);
    free(p);
}

static void test_bad_input(void) {
    char *p = path_in("b.vec");
    cs_err e = {0};
    cs_vecstore vs;
    CHECK(cs_vecstore_open(&vs, p, 4, 0, &e) == -1 && e.code == CS_ENOTFOUND);
    REQUIRE(cs_vecstore_open(&vs, p, 2, 1, &e) == 0);
    cs_vecstore other;
    CHECK(cs_vecstore_open(&other, p, 2, 1, &e) == -1 && strstr(e.msg, "another writer"));
    float v[2] = {NAN, 1};
    int64_t id = 1;
    CHECK(cs_vecstore_append(&vs, &id, v, 1, &e) == -1 && strstr(e.msg, "non-finite"));
    CHECK(vs.n == 0);
    cs_vecstore_close(&vs);
    FILE *f = fopen(p, "wb");
    REQUIRE(f);
    char junk[100] = "not a vector file";
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    CHECK(cs_vecstore_open(&vs, p, 2, 0, &e) == -1 && strstr(e.msg, "bad magic"));
    free(p);
}

int main(void) {
    dir = t_tmpdir("vecstore");
    if (!dir) return 1;
    RUN(test_append_reopen);
    RUN(test_unsorted_ids_find);
    RUN(test_dim_mismatch);
    RUN(test_truncated);
    RUN(test_truncated_ids);
    RUN(test_uncommitted_tail);
    RUN(test_bad_input);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    free(dir);
    return T_DONE();
}
