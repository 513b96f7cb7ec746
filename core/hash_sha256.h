/* hash_sha256.h — SHA-256 as lowercase hex, of a buffer or a file (nettle). */
#ifndef CS_HASH_SHA256_H
#define CS_HASH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* out: 64 hex digits + NUL. */
void cs_sha256_hex(const void *buf, size_t len, char out[65]);
/* Streams the file; fails with CS_EIO naming the path. */
int cs_sha256_file_hex(const char *path, char out[65], cs_err *err);

#endif
