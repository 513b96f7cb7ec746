/* test_imagehash.c — aHash/dHash/pHash against the imagehash library's own
 * outputs (../shared/refs/imagehash/vectors.tsv, 351 images): aHash, dHash,
 * dHash-16 must agree on every row; pHash and pHash-16 on every row without an
 * exact-arithmetic tie at the median, and every disagreement must be on a
 * tied row (hashes.md section 5). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "index/imagehash.h"
#include "tests/t.h"

static void to_hex(const uint8_t *bits, int nbytes, char *out) {
    for (int i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", bits[i]);
}

typedef struct {
    const char *name;
    int n, col, tie_col; /* tie_col < 0: no ties possible */
    int (*fn)(const cs_grey *, int, uint8_t *, cs_err *);
    int rows, agree, tied_rows, tied_agree, untied_disagree;
} hcase;

static void test_vectors(void) {
    FILE *f = fopen("../shared/refs/imagehash/vectors.tsv", "r");
    REQUIRE(f);
    char line[4096];
    hcase cases[] = {
        {"ahash", 8, 1, -1, cs_ahash, 0, 0, 0, 0, 0},
        {"dhash", 8, 2, -1, cs_dhash, 0, 0, 0, 0, 0},
        {"phash", 8, 3, 9, cs_phash, 0, 0, 0, 0, 0},
        {"phash_16", 16, 5, 10, cs_phash, 0, 0, 0, 0, 0},
        {"dhash_16", 16, 6, -1, cs_dhash, 0, 0, 0, 0, 0},
    };
    int ncase = (int)(sizeof cases / sizeof cases[0]), images = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strncmp(line, "file\t", 5)) continue;
        char *c[11];
        if (t_split_tsv(line, c, 11) < 11) continue;
        char path[1024];
        snprintf(path, sizeof path, "../shared/refs/pdq/%s", c[0]);
        cs_image img;
        cs_grey g;
        cs_err err = {0};
        if (cs_image_load(&img, path, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            CHECK(0);
            continue;
        }
        images++;
        REQUIRE(cs_grey_from_image(&g, &img, &err) == 0);
        for (int k = 0; k < ncase; k++) {
            hcase *h = &cases[k];
            uint8_t bits[32];
            char hex[65];
            CHECK(h->fn(&g, h->n, bits, &err) == 0);
            to_hex(bits, h->n * h->n / 8, hex);
            int tied = h->tie_col >= 0 && atoi(c[h->tie_col]) > 0, same = !strcmp(hex, c[h->col]);
            h->rows++;
            h->agree += same;
            h->tied_rows += tied;
            h->tied_agree += tied && same;
            if (!same && !tied) {
                h->untied_disagree++;
                fprintf(stderr, "%s %s: got %s want %s\n", h->name, c[0], hex, c[h->col]);
            }
        }
        cs_grey_free(&g);
        cs_image_free(&img);
    }
    fclose(f);
    CHECK(images == 351);
    for (int k = 0; k < ncase; k++) {
        hcase *h = &cases[k];
        printf("%-8s agree %d/%d (%.1f%%); rows with a median tie: %d, of which agree %d; "
               "disagreements without a tie: %d\n",
               h->name, h->agree, h->rows, 100.0 * h->agree / (h->rows ? h->rows : 1), h->tied_rows,
               h->tied_agree, h->untied_disagree);
        CHECK(h->rows == 351);
        CHECK(h->untied_disagree == 0);
        if (h->tie_col < 0) CHECK(h->agree == h->rows);
    }
}

/* Known answers: the resize is a copy at the same size; a flat image resizes
 * to itself; a left-to-right ramp sets every dHash bit and the right half of
 * aHash. */
static void test_known(void) {
    cs_grey g = {16, 12, malloc(16 * 12)};
    REQUIRE(g.px);
    cs_err err = {0};
    uint8_t out[16 * 12], bits[8];
    for (int i = 0; i < 16 * 12; i++) g.px[i] = (uint8_t)(i * 7);
    CHECK(cs_grey_resize_lanczos(out, 16, 12, &g, &err) == 0 && !memcmp(out, g.px, 16 * 12));
    memset(g.px, 123, 16 * 12);
    CHECK(cs_grey_resize_lanczos(out, 5, 9, &g, &err) == 0);
    int flat = 1;
    for (int i = 0; i < 45; i++) flat &= out[i] == 123;
    CHECK(flat);
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 16; x++) g.px[y * 16 + x] = (uint8_t)(x * 16);
    CHECK(cs_dhash(&g, 8, bits, &err) == 0);
    CHECK(cs_imagehash64(bits) == UINT64_MAX);
    CHECK(cs_ahash(&g, 8, bits, &err) == 0);
    CHECK(cs_imagehash64(bits) == 0x0f0f0f0f0f0f0f0fULL);
    CHECK(cs_ahash(&g, 1, bits, &err) == -1); /* bad hash size */
    free(g.px);

    cs_image img;
    REQUIRE(cs_image_alloc(&img, 2, 1, &err) == 0);
    img.rgb[0] = 255, img.rgb[1] = 0, img.rgb[2] = 0;   /* red -> 76 */
    img.rgb[3] = 10, img.rgb[4] = 200, img.rgb[5] = 30; /* -> 123.something */
    REQUIRE(cs_grey_from_image(&g, &img, &err) == 0);
    CHECK(g.px[0] == 76);
    CHECK(g.px[1] == (19595 * 10 + 38470 * 200 + 7471 * 30 + 32768) >> 16);
    cs_grey_free(&g);
    cs_image_free(&img);
}

int main(void) {
    RUN(test_known);
    RUN(test_vectors);
    return T_DONE();
}
