/* fine_ref.c — the reference's pixels at the working resolution, re-read
 * from its source (see fine_ref.h). */
#include "analyze/fine_ref.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/hash_sha256.h"
#include "index/localfeat.h"

_Static_assert(CS_FINE_SIDE == CS_LF_SIDE, "the fine checks run at the local features' working side");

const char *cs_fine_name(int status) {
    switch (status) {
    case CS_FINE_OK: return "256";
    case CS_FINE_MISSING: return "64: reference source missing";
    case CS_FINE_CHANGED: return "64: reference source changed since index add";
    case CS_FINE_TAR: return "64: reference in a tar shard";
    case CS_FINE_UNDECODABLE: return "64: reference source not decodable";
    case CS_FINE_LOWRES: return "64: an image under 256 px on a side";
    case CS_FINE_COARSE: return "64: no verified geometry (the tiled-L2 alignment is too coarse for 256)";
    default: return "64";
    }
}

void cs_fine_open(cs_fine_refs *F, cs_store *s) {
    memset(F, 0, sizeof *F);
    F->s = s;
    pthread_mutex_init(&F->lock, NULL);
    sqlite3_stmt *st = NULL;
    /* main.refs: a sharded store's manifest holds every reference's row */
    if (s && sqlite3_prepare_v2(cs_store_db(s), "SELECT source, sha256 FROM main.refs WHERE id = ?", -1, &st, NULL) ==
                 SQLITE_OK) {
        F->st = st;
        F->ok = 1;
    }
}

void cs_fine_close(cs_fine_refs *F) {
    if (F->st) sqlite3_finalize(F->st);
    pthread_mutex_destroy(&F->lock);
    memset(F, 0, sizeof *F);
}

/* the reference's source and sha256 (malloc'd), 0 when found */
static int lookup(cs_fine_refs *F, int64_t id, char **src, char **sha) {
    *src = *sha = NULL;
    if (!F->ok) return -1;
    pthread_mutex_lock(&F->lock);
    sqlite3_stmt *st = F->st;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(st, 0), *b = (const char *)sqlite3_column_text(st, 1);
        *src = a ? strdup(a) : NULL;
        *sha = b ? strdup(b) : NULL;
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&F->lock);
    if (*src && *sha) return 0;
    free(*src);
    free(*sha);
    *src = *sha = NULL;
    return -1;
}

int cs_fine_image(const cs_image *img, int S, uint8_t *out) {
    cs_image r = {0};
    cs_err e = {0};
    if (!img->rgb || img->w < 1 || img->h < 1) return -1;
    /* localfeat.c's filter: area when shrinking, bicubic when enlarging */
    if (cs_image_resize(&r, img, S, S, CS_RESIZE_AUTO, &e)) return -1;
    memcpy(out, r.rgb, (size_t)S * S * 3);
    cs_image_free(&r);
    return 0;
}

int cs_fine_ref_load(cs_fine_refs *F, int64_t id, int S, uint8_t *out, int *orig_w, int *orig_h) {
    char *src, *sha;
    if (lookup(F, id, &src, &sha)) return CS_FINE_MISSING;
    int rc;
    uint8_t *buf = NULL;
    size_t len = 0;
    cs_err e = {0};
    char hex[65];
    cs_image img = {0};
    cs_image_opts o = {.max_pixels = (int64_t)1 << 40}; /* index add already accepted it */
    if (strstr(src, "//")) rc = CS_FINE_TAR; /* shard//member: no file of its own */
    else if (cs_read_file(src, &buf, &len, &e)) rc = CS_FINE_MISSING;
    else {
        cs_sha256_hex(buf, len, hex);
        if (strcmp(hex, sha)) rc = CS_FINE_CHANGED;
        else if (cs_image_decode(&img, buf, len, src, &o, &e) || cs_fine_image(&img, S, out)) rc = CS_FINE_UNDECODABLE;
        else {
            rc = CS_FINE_OK;
            *orig_w = img.w;
            *orig_h = img.h;
        }
    }
    cs_image_free(&img);
    free(buf);
    free(src);
    free(sha);
    return rc;
}
