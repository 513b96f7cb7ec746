/* ingest_captions.c — where captions come from (sidecar NAME.txt,
 * captions.jsonl, captions.csv, webdataset KEY.txt/KEY.json) and how they
 * are cleaned (invalid UTF-8 replaced by U+FFFD, never fatal). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/fs.h"
#include "core/image.h"
#include "index/ingest_internal.h"

/* ---- string map ---- */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_grow(ing_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    char **k = calloc(cap, sizeof *k), **v = calloc(cap, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = fnv1a(m->keys[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = cap;
    return 0;
}

static int map_put(ing_map *m, const char *key, const char *val, int replace) {
    if ((m->n + 1) * 2 > m->cap && map_grow(m)) return -1;
    size_t j = fnv1a(key) & (m->cap - 1);
    while (m->keys[j] && strcmp(m->keys[j], key)) j = (j + 1) & (m->cap - 1);
    if (m->keys[j] && !replace) return 0;
    char *v = strdup(val ? val : "");
    if (!v) return -1;
    if (m->keys[j]) {
        free(m->vals[j]);
        m->vals[j] = v;
        return 0;
    }
    m->keys[j] = strdup(key);
    if (!m->keys[j]) {
        free(v);
        return -1;
    }
    m->vals[j] = v;
    m->n++;
    return 0;
}

int ing_map_put(ing_map *m, const char *key, const char *val) { return map_put(m, key, val, 1); }

const char *ing_map_get(const ing_map *m, const char *key) {
    if (!m->cap) return NULL;
    size_t j = fnv1a(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void ing_map_free(ing_map *m) {
    for (size_t i = 0; i < m->cap; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- cleaning ---- */

char *ing_clean_caption(const char *s, size_t n, int *repaired) {
    *repaired = 0;
    while (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r')) s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *out = malloc(n * 3 + 1), *d = out; /* each bad byte grows to 3 */
    if (!out) return NULL;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp == 0) { /* invalid sequence or NUL: one byte becomes U+FFFD */
            memcpy(d, "\xef\xbf\xbd", 3);
            d += 3;
            i++;
            *repaired = 1;
            continue;
        }
        memcpy(d, p + i, (size_t)k);
        d += k;
        i += (size_t)k;
    }
    *d = 0;
    return out;
}

char *ing_json_caption(const char *text, size_t n) {
    cJSON *j = cJSON_ParseWithLength(text, n);
    if (!j) return NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "caption");
    char *out = cJSON_IsString(c) && c->valuestring ? strdup(c->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}

char *ing_read_sidecar(const char *image_path, int *unreadable) {
    *unreadable = 0;
    const char *slash = strrchr(image_path, '/'), *dot = strrchr(image_path, '.');
    if (!dot || (slash && dot < slash)) return NULL;
    size_t stem = (size_t)(dot - image_path);
    char *p = malloc(stem + 5);
    if (!p) return NULL;
    memcpy(p, image_path, stem);
    memcpy(p + stem, ".txt", 5);
    FILE *f = fopen(p, "rb");
    free(p);
    if (!f) return NULL;
    size_t cap = 1u << 20;
    char *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    if (!buf || ferror(f)) {
        *unreadable = 1;
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    return buf; /* may hold NULs: cleaned by the caller with its length via strlen */
}

/* ---- mapping files ---- */

/* dir/rel, with rel's leading "./" dropped (mapping files write them). */
static char *join(const char *dir, const char *rel) {
    while (rel[0] == '.' && rel[1] == '/') rel += 2;
    return cs_path_join(dir, rel);
}

static void put_caption(ing_ctx *c, const char *dir, const char *file, const char *caption) {
    char *k = join(dir, file);
    if (k) map_put(ing_captions(c), k, caption, 0); /* the first mapping read wins */
    free(k);
}

static void load_jsonl(ing_ctx *c, const char *dir, const char *path) {
    uint8_t *buf;
    size_t len;
    if (cs_read_file(path, &buf, &len, NULL)) return;
    char *s = (char *)buf, *end = s + len;
    while (s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n > 0 && !(n == 1 && s[0] == '\r')) {
            cJSON *j = cJSON_ParseWithLength(s, n);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "file");
            const cJSON *cap = cJSON_GetObjectItemCaseSensitive(j, "caption");
            if (cJSON_IsString(f) && cJSON_IsString(cap)) put_caption(c, dir, f->valuestring, cap->valuestring);
            else ing_note(c); /* an unusable line: counted, not fatal */
            cJSON_Delete(j);
        }
        s += n + 1;
    }
    free(buf);
}

/* RFC 4180 fields: quotes, doubled quotes, newlines inside quotes. Reads one
 * record from *p; returns the number of fields stored (at most 2). */
static int csv_record(char **p, char *end, char *field[2]) {
    int nf = 0;
    char *s = *p;
    for (;;) {
        char *out = s, *start = s; /* unescape in place */
        if (s < end && *s == '"') {
            s++;
            start = out = s;
            while (s < end) {
                if (*s == '"') {
                    if (s + 1 < end && s[1] == '"') {
                        *out++ = '"';
                        s += 2;
                        continue;
                    }
                    s++;
                    break;
                }
                *out++ = *s++;
            }
            while (s < end && *s != ',' && *s != '\n') s++; /* junk after the quote */
        } else {
            while (s < end && *s != ',' && *s != '\n') s++;
            out = s;
            if (out > start && out[-1] == '\r') out--;
        }
        char sep = s < end ? *s : '\n';
        *out = 0; /* out <= s: safe, s is a separator or end (buffer has a spare byte) */
        if (nf < 2) field[nf] = start;
        nf++;
        if (s < end) s++;
        if (sep == '\n') break;
    }
    *p = s;
    return nf < 2 ? nf : 2;
}

static void load_csv(ing_ctx *c, const char *dir, const char *path) {
    uint8_t *buf;
    size_t len;
    if (cs_read_file(path, &buf, &len, NULL)) return;
    char *s = realloc(buf, len + 1);
    if (!s) {
        free(buf);
        return;
    }
    s[len] = 0;
    char *p = s, *end = s + len;
    int first = 1;
    while (p < end) {
        char *f[2] = {0};
        int nf = csv_record(&p, end, f);
        if (first && nf == 2 && !strcasecmp(f[0], "file") && !strcasecmp(f[1], "caption")) {
            first = 0;
            continue;
        }
        first = 0;
        if (nf == 2 && f[0][0]) put_caption(c, dir, f[0], f[1]);
        else if (!(nf == 1 && !f[0][0])) ing_note(c); /* not a blank line */
    }
    free(s);
}

void ing_load_caption_files(ing_ctx *c, const char *dir) {
    ing_map *seen = ing_loaded_dirs(c);
    if (ing_map_get(seen, dir)) return;
    ing_map_put(seen, dir, "1");
    char *p = join(dir, "captions.jsonl"); /* read first: wins over the CSV */
    if (p) load_jsonl(c, dir, p);
    free(p);
    p = join(dir, "captions.csv");
    if (p) load_csv(c, dir, p);
    free(p);
}
