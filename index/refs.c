/* refs.c — reading references and their thumbnails (see refs.h). */
#include "index/refs.h"

#include <stdlib.h>
#include <string.h>

int cs_refs_load_thumbs(cs_store *s, cs_ref_thumbs *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    out->w = out->h = CS_THUMB_SIZE;
    sqlite3_stmt *q;
    if (cs_store_prepare(s, &q,
                         "SELECT count(*) FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "
                         "WHERE r.status = 'ok'",
                         err))
        return -1;
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    if (n < 0) return cs_store_fail(s, err, "counting thumbnails");
    if (n == 0) return 0;
    const size_t px = (size_t)CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    out->ids = calloc((size_t)n, sizeof *out->ids);
    out->sources = calloc((size_t)n, sizeof *out->sources);
    out->captions = calloc((size_t)n, sizeof *out->captions);
    out->rgb = malloc(px * (size_t)n);
    if (!out->ids || !out->sources || !out->captions || !out->rgb) {
        cs_ref_thumbs_free(out);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory for %lld thumbnails", cs_store_path(s),
                       (long long)n);
    }
    if (cs_store_prepare(s, &q,
                         "SELECT r.id, r.source, r.caption, t.w, t.h, t.rgb FROM refs r "
                         "JOIN ref_thumbs t ON t.ref_id = r.id WHERE r.status = 'ok' ORDER BY r.id",
                         err)) {
        cs_ref_thumbs_free(out);
        return -1;
    }
    int64_t i = 0;
    int r;
    while (i < n && (r = sqlite3_step(q)) == SQLITE_ROW) {
        int w = sqlite3_column_int(q, 3), h = sqlite3_column_int(q, 4);
        const void *b = sqlite3_column_blob(q, 5);
        if (w != CS_THUMB_SIZE || h != CS_THUMB_SIZE || !b || (size_t)sqlite3_column_bytes(q, 5) != px) {
            int64_t id = sqlite3_column_int64(q, 0);
            sqlite3_finalize(q);
            out->n = i;
            cs_ref_thumbs_free(out);
            return cs_fail(err, CS_EFORMAT, "%s: thumbnail of reference %lld is not %dx%d RGB",
                           cs_store_path(s), (long long)id, CS_THUMB_SIZE, CS_THUMB_SIZE);
        }
        const char *src = (const char *)sqlite3_column_text(q, 1);
        const char *cap = (const char *)sqlite3_column_text(q, 2);
        out->ids[i] = sqlite3_column_int64(q, 0);
        out->sources[i] = strdup(src ? src : "");
        out->captions[i] = cap ? strdup(cap) : NULL;
        memcpy(out->rgb + px * (size_t)i, b, px);
        i++;
    }
    sqlite3_finalize(q);
    out->n = i; /* rows may vanish between the two queries; never more */
    return 0;
}

void cs_ref_thumbs_free(cs_ref_thumbs *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->sources) free(t->sources[i]);
        if (t->captions) free(t->captions[i]);
    }
    free(t->ids);
    free(t->sources);
    free(t->captions);
    free(t->rgb);
    memset(t, 0, sizeof *t);
}
