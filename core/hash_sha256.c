/* hash_sha256.c — thin wrapper over nettle's SHA-256. */
#include "core/hash_sha256.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>

static void to_hex(const uint8_t d[SHA256_DIGEST_SIZE], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[64] = 0;
}

void cs_sha256_hex(const void *buf, size_t len, char out[65]) {
    struct sha256_ctx c;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&c);
    sha256_update(&c, len, buf);
    sha256_digest(&c, sizeof d, d);
    to_hex(d, out);
}

int cs_sha256_file_hex(const char *path, char out[65], cs_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    struct sha256_ctx c;
    sha256_init(&c);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, n, buf);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) return cs_fail(err, CS_EIO, "%s: read failed: %s", path, strerror(e));
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&c, sizeof d, d);
    to_hex(d, out);
    return 0;
}
