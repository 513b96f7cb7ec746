/* ingest_walk.c — turning `index add` arguments into jobs: folders (walked
 * recursively, entries in byte order so every run sees the same sequence),
 * single files, list files and tar shards. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/image.h"
#include "index/ingest_internal.h"

static const char *const image_exts[] = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", NULL};
static const char *const tar_exts[] = {".tar", ".tar.gz", ".tgz", NULL};
static const char *const list_exts[] = {".txt", ".lst", NULL};
/* companions of a dataset that a shell glob brings along: never images */
static const char *const companion_exts[] = {".json", ".jsonl", ".csv", ".parquet", ".md", NULL};

/* A .txt beside an image of the same stem is that image's caption, not a list. */
static int is_sidecar(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    size_t stem = (size_t)(dot - path);
    char *p = malloc(stem + 8);
    if (!p) return 0;
    static const char *const e[] = {".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", NULL};
    int found = 0;
    struct stat st;
    for (int i = 0; e[i] && !found; i++) {
        memcpy(p, path, stem);
        strcpy(p + stem, e[i]);
        found = stat(p, &st) == 0;
    }
    free(p);
    return found;
}

int ing_has_ext(const char *name, const char *const *exts) {
    size_t n = strlen(name);
    for (; *exts; exts++) {
        size_t k = strlen(*exts);
        if (n > k && !strcasecmp(name + n - k, *exts)) return 1;
    }
    return 0;
}

int ing_is_image_name(const char *name) { return ing_has_ext(name, image_exts); }
int ing_is_tar_name(const char *name) { return ing_has_ext(name, tar_exts); }

char *ing_abs_path(const char *p) {
    char *r = realpath(p, NULL);
    if (r) return r;
    if (p[0] == '/') return strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return strdup(p);
    while (p[0] == '.' && p[1] == '/') p += 2;
    size_t a = strlen(cwd), b = strlen(p);
    char *o = malloc(a + b + 2);
    if (!o) return NULL;
    memcpy(o, cwd, a);
    o[a] = '/';
    memcpy(o + a + 1, p, b + 1);
    return o;
}

static char *parent_dir(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    if (s == path) return strdup("/");
    return strndup(path, (size_t)(s - path));
}

/* Queues an image file (path absolute). pre_error: known failure, or NULL. */
static int push_file(ing_ctx *c, const char *path, const char *pre_error, cs_err *err) {
    ing_job j = {0};
    j.source = strdup(path);
    j.path = strdup(path);
    if (pre_error) j.pre_error = strdup(pre_error);
    /* mapping files of every enclosing folder (each read once per run), so
     * data/img/x.png finds data/captions.jsonl however it was named */
    char *dir = parent_dir(path);
    while (dir) {
        ing_load_caption_files(c, dir);
        if (!strcmp(dir, "/") || !strcmp(dir, ".")) break;
        char *up = parent_dir(dir);
        free(dir);
        dir = up;
    }
    free(dir);
    const char *cap = ing_map_get(ing_captions(c), path);
    if (cap) j.caption = strdup(cap);
    return ing_push(c, &j, 0, err); /* counted for the progress total in the first pass */
}

static int cmp_names(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Why stat failed, for a path that may be a symbolic link: only a link
 * whose target is missing is "dangling"; a loop (ELOOP) says so. */
static const char *link_problem(int is_link, int serr) {
    if (is_link && serr == ENOENT) return "dangling symbolic link";
    if (serr == ELOOP) return "symbolic link loop (too many levels of links)";
    return strerror(serr);
}

static int walk_dir(ing_ctx *c, const char *dir, int depth, cs_err *err) {
    if (depth > 64) return 0; /* deeper trees are not a reference set; stop */
    ing_load_caption_files(c, dir);
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, cmp_names);
    if (n < 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: cannot list folder: %s", dir, strerror(errno));
        return push_file(c, dir, msg, err);
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (rc || !strcmp(name, ".") || !strcmp(name, "..")) continue;
        char *p = cs_path_join(dir, name);
        if (!p) continue;
        struct stat ls, st;
        if (lstat(p, &ls) != 0) {
            free(p);
            continue;
        }
        int is_link = S_ISLNK(ls.st_mode), ok = stat(p, &st) == 0, serr = ok ? 0 : errno;
        if (ok && S_ISDIR(st.st_mode)) {
            /* symbolic links to folders are not followed: they can loop */
            if (!is_link) rc = walk_dir(c, p, depth + 1, err);
        } else if (ok && S_ISREG(st.st_mode) && ing_is_tar_name(name)) {
            rc = ing_tar(c, p, err);
        } else if (ing_is_image_name(name)) {
            char msg[1200];
            int bad = !ok || !S_ISREG(st.st_mode);
            if (!ok) snprintf(msg, sizeof msg, "%s: %s", p, link_problem(is_link, serr));
            else if (bad) snprintf(msg, sizeof msg, "%s: not a regular file", p);
            rc = push_file(c, p, bad ? msg : NULL, err);
        }
        free(p);
    }
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    return rc;
}

/* One path per line; '#' comments and blank lines skipped; relative paths
 * are relative to the list's folder. */
static int walk_list(ing_ctx *c, const char *list, cs_err *err) {
    uint8_t *buf;
    size_t len;
    cs_err e = {0};
    if (cs_read_file(list, &buf, &len, &e)) return push_file(c, list, e.msg, err);
    char *dir = parent_dir(list);
    char *s = (char *)buf, *end = s + len;
    int rc = 0;
    while (!rc && s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        char *line = strndup(s, n);
        s += n + 1;
        if (!line) continue;
        size_t k = strlen(line);
        while (k && (line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) line[--k] = 0;
        if (k && line[0] != '#') {
            char *p = line[0] == '/' ? strdup(line) : cs_path_join(dir ? dir : ".", line);
            if (p) rc = ing_walk_input(c, p, 1, err);
            free(p);
        }
        free(line);
    }
    free(dir);
    free(buf);
    return rc;
}

int ing_walk_input(ing_ctx *c, const char *arg, int from_list, cs_err *err) {
    char *abs = ing_abs_path(arg);
    if (!abs) return cs_fail(err, CS_ENOMEM, "out of memory");
    size_t k = strlen(abs);
    while (k > 1 && abs[k - 1] == '/') abs[--k] = 0;
    struct stat ls, st;
    int rc;
    if (lstat(abs, &ls) != 0 || stat(abs, &st) != 0) {
        char msg[1200];
        int serr = errno, is_link = lstat(abs, &ls) == 0 && S_ISLNK(ls.st_mode);
        snprintf(msg, sizeof msg, "%s: %s", abs, link_problem(is_link, serr));
        rc = push_file(c, abs, msg, err);
    } else if (S_ISDIR(st.st_mode)) {
        rc = walk_dir(c, abs, 0, err);
    } else if (ing_is_tar_name(abs)) {
        rc = ing_tar(c, abs, err);
    } else if (ing_has_ext(abs, companion_exts) || (ing_has_ext(abs, list_exts) && is_sidecar(abs))) {
        rc = 0; /* captions and metadata, read where they belong */
    } else if (!from_list && ing_has_ext(abs, list_exts)) {
        rc = walk_list(c, abs, err);
    } else if (!S_ISREG(st.st_mode)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: not a regular file", abs);
        rc = push_file(c, abs, msg, err);
    } else {
        rc = push_file(c, abs, NULL, err); /* anything named explicitly is tried */
    }
    free(abs);
    return rc;
}
