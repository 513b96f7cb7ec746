/* q8 vector columns (index/vecstore.h): the file holds per row a float32
 * scale and dim int8 values (checked by reading the bytes), each value is
 * the original rounded on the grid max|v|/127, the decoded row is q * scale
 * and keeps the original's norm; appends decode only the new rows; an
 * existing column keeps its dtype whatever the opener asks. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "index/vecstore.h"
#include "t.h"

enum { DIM = 96, N = 50 };
static char *dir;

static char *path_in(const char *name) {
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/%s", dir, name);
    return p;
}

/* unit rows of a fixed LCG; row 7 is all zero */
static void fill(float *v) {
    uint64_t x = 88172645463325252ULL;
    for (int r = 0; r < N; r++) {
        double n2 = 0;
        for (int i = 0; i < DIM; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            v[r * DIM + i] = r == 7 ? 0.0f : (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
            n2 += (double)v[r * DIM + i] * v[r * DIM + i];
        }
        for (int i = 0; r != 7 && i < DIM; i++) v[r * DIM + i] = (float)(v[r * DIM + i] / sqrt(n2));
    }
}

static unsigned char *slurp(const char *p, long *len) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*len);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void test_q8_rows(void) {
    char *p = path_in("q.vec");
    static float v[N * DIM];
    int64_t ids[N];
    fill(v);
    for (int r = 0; r < N; r++) ids[r] = 1000 + r;
    cs_err e = {0};
    cs_vecstore vs;
    REQUIRE(cs_vecstore_open_dtype(&vs, p, DIM, CS_VS_Q8, 1, &e) == 0);
    CHECK(cs_vecstore_append(&vs, ids, v, 20, &e) == 0); /* in three appends: only new rows decoded */
    CHECK(cs_vecstore_append(&vs, ids + 20, v + 20 * DIM, 1, &e) == 0);
    CHECK(cs_vecstore_append(&vs, ids + 21, v + 21 * DIM, N - 21, &e) == 0);
    CHECK(vs.n == N && vs.dtype == CS_VS_Q8);
    cs_vecstore_close(&vs);

    long len = 0;
    unsigned char *raw = slurp(p, &len);
    REQUIRE(raw);
    CHECKF(len == CS_VS_HEADER_SIZE + (long)N * (DIM + 4), "%ld bytes", len);
    REQUIRE(cs_vecstore_open(&vs, p, 0, 0, &e) == 0);
    CHECK(vs.n == N && vs.dim == DIM && vs.dtype == CS_VS_Q8 && vs.ids[N - 1] == 1000 + N - 1);
    int bad_grid = 0, bad_decode = 0, bad_norm = 0;
    for (int r = 0; r < N && len == CS_VS_HEADER_SIZE + (long)N * (DIM + 4); r++) {
        const unsigned char *row = raw + CS_VS_HEADER_SIZE + (size_t)r * (DIM + 4);
        float s, mx = 0;
        memcpy(&s, row, 4);
        for (int i = 0; i < DIM; i++) mx = fmaxf(mx, fabsf(v[r * DIM + i]));
        double g = mx / 127.0, n0 = 0, n1 = 0;
        for (int i = 0; i < DIM; i++) {
            int q = (int8_t)row[4 + i];
            if (fabs(q * g - v[r * DIM + i]) > g / 2 + 1e-7) bad_grid++;
            if (vs.vecs[r * DIM + i] != (float)q * s) bad_decode++;
            n0 += (double)v[r * DIM + i] * v[r * DIM + i];
            n1 += (double)vs.vecs[r * DIM + i] * vs.vecs[r * DIM + i];
        }
        if (fabs(sqrt(n1) - sqrt(n0)) > 1e-5) bad_norm++;
    }
    CHECKF(!bad_grid && !bad_decode && !bad_norm, "grid %d decode %d norm %d", bad_grid, bad_decode, bad_norm);
    for (int i = 0; i < DIM; i++) CHECK(vs.vecs[7 * DIM + i] == 0.0f); /* the zero row stays zero, no NaN */
    cs_vecstore_close(&vs);
    free(raw);

    /* reopened for appending by an f32 opener: still q8, rows still decoded */
    REQUIRE(cs_vecstore_open(&vs, p, DIM, 1, &e) == 0);
    CHECK(vs.dtype == CS_VS_Q8);
    int64_t id = 5000;
    CHECK(cs_vecstore_append(&vs, &id, v + 3 * DIM, 1, &e) == 0);
    CHECK(vs.n == N + 1 && !memcmp(vs.vecs + N * DIM, vs.vecs + 3 * DIM, DIM * sizeof(float)));
    cs_vecstore_close(&vs);
    free(p);
}

int main(void) {
    dir = t_tmpdir("vecq8");
    if (!dir) return 1;
    RUN(test_q8_rows);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    free(dir);
    return T_DONE();
}
