/* test_pdq.c — PDQ against the reference vectors in ../shared/refs/pdq:
 * every row of vectors.tsv (plain hash + quality, and pdq_noresize), every
 * row of vectors-dihedral.tsv, bit for bit; plus known answers on synthetic
 * images. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "index/pdq.h"
#include "tests/t.h"

#define REFDIR "../shared/refs/pdq/"

static int load(const char *rel, cs_image *img) {
    char path[1024];
    snprintf(path, sizeof path, REFDIR "%s", rel);
    cs_err err = {0};
    if (cs_image_load(img, path, NULL, &err)) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return -1;
    }
    return 0;
}

/* step > 1: only every step-th row (the baseline-code rerun). */
static void check_vectors(int step) {
    FILE *f = fopen(REFDIR "vectors.tsv", "r");
    REQUIRE(f);
    char line[4096];
    REQUIRE(fgets(line, sizeof line, f)); /* header */
    int rows = 0, ok = 0, okq = 0, rows_nr = 0, ok_nr = 0, okq_nr = 0;
    int row = 0;
    while (fgets(line, sizeof line, f)) {
        char *c[10];
        if (t_split_tsv(line, c, 10) < 9) continue;
        if (row++ % step) continue;
        cs_image img;
        rows++;
        if (load(c[0], &img)) continue;
        cs_pdq p, pn;
        cs_err err = {0};
        CHECK(cs_pdq_compute(&img, 0, &p, &err) == 0);
        char hex[65];
        cs_pdq_to_hex(p.hash, hex);
        if (!strcmp(hex, c[1])) ok++;
        else {
            uint8_t want[32];
            cs_pdq_from_hex(c[1], want);
            fprintf(stderr, "pdq %s: got %s want %s (%d bits, near_median %s)\n", c[0], hex, c[1],
                    cs_pdq_distance(want, p.hash), c[8]);
        }
        if (p.quality == atoi(c[2])) okq++;
        else fprintf(stderr, "quality %s: got %d want %s\n", c[0], p.quality, c[2]);
        if (c[6][0]) {
            rows_nr++;
            CHECK(cs_pdq_compute(&img, CS_PDQ_NORESIZE, &pn, &err) == 0);
            cs_pdq_to_hex(pn.hash, hex);
            if (!strcmp(hex, c[6])) ok_nr++;
            else fprintf(stderr, "pdq_noresize %s: got %s want %s\n", c[0], hex, c[6]);
            if (pn.quality == atoi(c[7])) okq_nr++;
            else fprintf(stderr, "quality_noresize %s: got %d want %s\n", c[0], pn.quality, c[7]);
        }
        cs_image_free(&img);
    }
    fclose(f);
    printf("pdq: %d/%d hashes, %d/%d qualities; noresize: %d/%d hashes, %d/%d qualities\n", ok, rows,
           okq, rows, ok_nr, rows_nr, okq_nr, rows_nr);
    CHECK(rows == (351 + step - 1) / step);
    CHECK(step > 1 || rows_nr == 349);
    CHECK(ok == rows);
    CHECK(okq == rows);
    CHECK(ok_nr == rows_nr);
    CHECK(okq_nr == rows_nr);
}

static void test_vectors(void) { check_vectors(1); }

/* The same vectors through the SSE2/scalar code (what a CPU without AVX2 runs). */
static void test_vectors_baseline(void) {
    cs_pdq_force_baseline(1);
    check_vectors(3);
    cs_pdq_force_baseline(0);
}

static void test_dihedral(void) {
    FILE *f = fopen(REFDIR "vectors-dihedral.tsv", "r");
    REQUIRE(f);
    char line[4096];
    REQUIRE(fgets(line, sizeof line, f));
    int rows = 0, ok = 0, okq = 0;
    while (fgets(line, sizeof line, f)) {
        char *c[11];
        if (t_split_tsv(line, c, 11) < 10) continue;
        cs_image img;
        if (load(c[0], &img)) {
            rows++;
            continue;
        }
        cs_pdq d[CS_PDQ_NDIHEDRAL];
        cs_err err = {0};
        CHECK(cs_pdq_dihedral(&img, 0, d, &err) == 0);
        for (int k = 0; k < CS_PDQ_NDIHEDRAL; k++) {
            char hex[65];
            cs_pdq_to_hex(d[k].hash, hex);
            rows++;
            if (!strcmp(hex, c[1 + k])) ok++;
            else fprintf(stderr, "dihedral %s %s: got %s want %s\n", c[0], cs_pdq_dihedral_names[k],
                         hex, c[1 + k]);
            okq += d[k].quality == atoi(c[9]);
        }
        cs_image_free(&img);
    }
    fclose(f);
    printf("pdq dihedral: %d/%d hashes, %d/%d qualities\n", ok, rows, okq, rows);
    CHECK(rows == 351 * 8);
    CHECK(ok == rows);
    CHECK(okq == rows);
}

/* Known answers that need no reference: tiny images, a flat image, hex round trip. */
static void test_small_and_flat(void) {
    cs_image img;
    cs_err err = {0};
    REQUIRE(cs_image_alloc(&img, 4, 100, &err) == 0);
    memset(img.rgb, 77, 4 * 100 * 3);
    cs_pdq p;
    memset(p.hash, 0xff, 32);
    CHECK(cs_pdq_compute(&img, 0, &p, &err) == 0);
    int zero = 1;
    for (int i = 0; i < 32; i++) zero &= p.hash[i] == 0;
    CHECK(zero && p.quality == 0); /* under 5 px: all-zero hash, quality 0 */
    cs_image_free(&img);

    REQUIRE(cs_image_alloc(&img, 200, 150, &err) == 0);
    memset(img.rgb, 200, 200 * 150 * 3);
    CHECK(cs_pdq_compute(&img, 0, &p, &err) == 0);
    CHECK(p.quality == 0); /* no gradients at all */
    cs_image_free(&img);

    uint8_t h[32], h2[32];
    for (int i = 0; i < 32; i++) h[i] = (uint8_t)(i * 37 + 1);
    char hex[65];
    cs_pdq_to_hex(h, hex);
    CHECK(cs_pdq_from_hex(hex, h2) == 0 && !memcmp(h, h2, 32));
    CHECK(cs_pdq_from_hex("zz", h2) == -1);
    h2[0] ^= 0x81;
    CHECK(cs_pdq_distance(h, h2) == 2);
}

/* A horizontal ramp: a pure low horizontal frequency; exactly 128 bits set
 * (distinct coefficients) and the mirrored image's hash equals the flipy
 * dihedral of the original within a few bits. */
static void test_ramp_mirror(void) {
    cs_image a, b;
    cs_err err = {0};
    REQUIRE(cs_image_alloc(&a, 300, 200, &err) == 0);
    REQUIRE(cs_image_alloc(&b, 300, 200, &err) == 0);
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 300; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t v = (uint8_t)((x * 255 / 299 + y * y / 300 + (x * y) % 7 + 13 * c) & 255);
                a.rgb[(y * 300 + x) * 3 + c] = v;
                b.rgb[(y * 300 + (299 - x)) * 3 + c] = v;
            }
    cs_pdq d[CS_PDQ_NDIHEDRAL], pb;
    CHECK(cs_pdq_dihedral(&a, 0, d, &err) == 0);
    CHECK(cs_pdq_compute(&b, 0, &pb, &err) == 0);
    int bits = 0;
    for (int i = 0; i < 32; i++) bits += __builtin_popcount(d[0].hash[i]);
    CHECK(bits == 128);
    int dist = cs_pdq_distance(d[CS_PDQ_FLIPY].hash, pb.hash);
    CHECKF(dist <= 16, "mirror distance %d", dist);
    cs_image_free(&a);
    cs_image_free(&b);
}

/* Odd sizes (tiny, thin, just over 512, not multiples of the SIMD strips):
 * no crash (ASan run), the dihedral entry point's identity equals the plain
 * hash (same path except for 64x64), noresize equals plain up to 512 px, and
 * the quality is in range. */
static void test_odd_sizes(void) {
    static const int sz[][2] = {{5, 5},     {6, 1000}, {1000, 6}, {513, 7},  {7, 513},
                                {17, 17},   {63, 65},  {65, 63},  {129, 300}, {300, 129},
                                {511, 512}, {512, 33}, {700, 90}, {1030, 1031}};
    cs_err err = {0};
    uint64_t r = 12345;
    for (size_t t = 0; t < sizeof sz / sizeof sz[0]; t++) {
        cs_image img;
        REQUIRE(cs_image_alloc(&img, sz[t][0], sz[t][1], &err) == 0);
        for (size_t i = 0; i < (size_t)sz[t][0] * sz[t][1] * 3; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            img.rgb[i] = (uint8_t)((r >> 56) / 2 + (i / 3 % (size_t)sz[t][0]) % 128);
        }
        cs_pdq p, pn, d[CS_PDQ_NDIHEDRAL];
        CHECK(cs_pdq_compute(&img, 0, &p, &err) == 0);
        CHECK(cs_pdq_compute(&img, CS_PDQ_NORESIZE, &pn, &err) == 0);
        CHECK(cs_pdq_dihedral(&img, 0, d, &err) == 0);
        CHECKF(!memcmp(p.hash, d[0].hash, 32), "%dx%d", sz[t][0], sz[t][1]);
        cs_pdq_force_baseline(1);
        cs_pdq pb;
        CHECK(cs_pdq_compute(&img, 0, &pb, &err) == 0);
        cs_pdq_force_baseline(0);
        CHECKF(!memcmp(p.hash, pb.hash, 32) && p.quality == pb.quality, "baseline %dx%d", sz[t][0],
               sz[t][1]);
        if (sz[t][0] <= 512 && sz[t][1] <= 512) {
            CHECK(!memcmp(p.hash, pn.hash, 32));
            /* the luma entry point on core/image's luma gives the same hash */
            float *y = malloc(sizeof(float) * (size_t)sz[t][0] * sz[t][1]);
            REQUIRE(y);
            cs_image_luma(y, &img);
            cs_pdq pl;
            CHECK(cs_pdq_from_luma(y, sz[t][0], sz[t][1], 0, &pl, &err) == 0);
            CHECK(!memcmp(p.hash, pl.hash, 32) && p.quality == pl.quality);
            free(y);
        }
        CHECK(p.quality >= 0 && p.quality <= 100);
        cs_image_free(&img);
    }
}

int main(void) {
    RUN(test_odd_sizes);
    RUN(test_small_and_flat);
    RUN(test_ramp_mirror);
    RUN(test_vectors);
    RUN(test_vectors_baseline);
    RUN(test_dihedral);
    return T_DONE();
}
