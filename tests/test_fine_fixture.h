/* test_fine_fixture.h — a 256 px template with a fine emblem, for the part
 * measurement at the working resolution (test_lf_part, test_lf_blur,
 * test_part_al_fine).
 * Include after <string.h> and analyze/fine_ref.h. */
#ifndef CS_TEST_FINE_FIXTURE_H
#define CS_TEST_FINE_FIXTURE_H

/* a 256 px template: a page, a folder-like body, and an emblem of 12 px
 * squares in two colours (c0, c1) at 4k+2 offsets (no thumbnail pixel of
 * the 64 px image lies inside one square with its 8 neighbours) */
static inline void fine_template(uint8_t *p, const uint8_t c0[3], const uint8_t c1[3]) {
    enum { F = CS_FINE_SIDE };
    for (int y = 0; y < F; y++)
        for (int x = 0; x < F; x++) {
            uint8_t *o = p + ((size_t)y * F + x) * 3;
            int body = x >= 32 && x < 224 && y >= 64 && y < 224, tab = x >= 32 && x < 112 && y >= 44 && y < 64;
            int em = x >= 98 && x < 170 && y >= 110 && y < 182;
            const uint8_t page[3] = {235, 235, 235}, fold[3] = {200, 150, 60};
            /* two bands of the reference's emblem colours on the body, the
             * same in the twin: its colours are the template's palette, not
             * colours recoloured wherever they occur (lf_colour.h) */
            const uint8_t blue[3] = {40, 40, 160}, white[3] = {250, 250, 250};
            int b0 = body && y >= 200 && y < 216, b1 = body && y >= 72 && y < 88;
            const uint8_t *c = em   ? (((x - 98) / 12 + (y - 110) / 12) % 2 ? c1 : c0)
                               : b0 ? blue
                               : b1 ? white
                               : body || tab ? fold
                                             : page;
            memcpy(o, c, 3);
        }
}

#endif
