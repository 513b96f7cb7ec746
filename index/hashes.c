/* hashes.c — every perceptual hash of an image, in one call (see hashes.h). */
#include "index/hashes.h"

#include <stdio.h>
#include <string.h>

#include "index/imagehash.h"
#include "index/pdq.h"

int cs_hashes_compute(const cs_image *img, cs_hashes *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    cs_pdq p;
    if (cs_pdq_compute(img, 0, &p, err)) return -1;
    memcpy(out->pdq, p.hash, 32);
    out->pdq_quality = p.quality;
    cs_grey g;
    if (cs_grey_from_image(&g, img, err)) return -1;
    uint8_t bits[3][8];
    int rc = cs_phash(&g, 8, bits[0], err) || cs_dhash(&g, 8, bits[1], err) ||
             cs_ahash(&g, 8, bits[2], err);
    cs_grey_free(&g);
    if (rc) return -1;
    out->phash = cs_imagehash64(bits[0]);
    out->dhash = cs_imagehash64(bits[1]);
    out->ahash = cs_imagehash64(bits[2]);
    return 0;
}

void cs_pdq_hex(const uint8_t pdq[32], char out[65]) { cs_pdq_to_hex(pdq, out); }

void cs_hash64_hex(uint64_t h, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}
