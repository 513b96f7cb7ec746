/* fs.c — see fs.h. */
#include "core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *cs_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *r = malloc(n);
    if (r) snprintf(r, n, "%s/%s", dir, name);
    return r;
}

char *cs_abs_path(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    char cwd[PATH_MAX] = "";
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd)) return strdup(path);
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *in = malloc(n), *out = malloc(n + 1);
    if (!in || !out) {
        free(in);
        free(out);
        return NULL;
    }
    snprintf(in, n, "%s/%s", cwd, path);
    /* component by component: "." and "" dropped, ".." pops one */
    size_t k = 0;
    for (char *save = NULL, *c = strtok_r(in, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            while (k > 0 && out[k - 1] != '/') k--;
            if (k > 0) k--;
            continue;
        }
        out[k++] = '/';
        size_t l = strlen(c);
        memcpy(out + k, c, l);
        k += l;
    }
    if (k == 0) out[k++] = '/';
    out[k] = 0;
    free(in);
    return out;
}

int cs_mkdir_p(const char *path, cs_err *err) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return cs_fail(err, CS_EUSAGE, "%s: path too long", path);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST)
            return cs_fail(err, CS_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        *p = c;
        if (!c) break;
    }
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) return cs_fail(err, CS_EIO, "%s: not a folder", path);
    return 0;
}

double cs_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int cs_atomic_open(cs_atomic_file *a, const char *path, cs_err *err) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 32;
    if (!(a->tmp = malloc(n))) return cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->path = path;
    if (!(a->f = fopen(a->tmp, "wb"))) {
        cs_fail(err, CS_EIO, "%s: %s", a->tmp, strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        return -1;
    }
    return 0;
}

int cs_atomic_finish(cs_atomic_file *a, int ok, cs_err *err) {
    int rc = ok ? 0 : -1;
    if (!rc && (fflush(a->f) || fsync(fileno(a->f)))) rc = cs_fail(err, CS_EIO, "%s: %s", a->tmp, strerror(errno));
    if (fclose(a->f) && !rc) rc = cs_fail(err, CS_EIO, "%s: close: %s", a->tmp, strerror(errno));
    if (!rc && rename(a->tmp, a->path)) rc = cs_fail(err, CS_EIO, "%s: rename: %s", a->path, strerror(errno));
    if (rc) unlink(a->tmp);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    return rc;
}

int cs_write_file_atomic(const char *path, const void *data, size_t len, cs_err *err) {
    cs_atomic_file af;
    if (cs_atomic_open(&af, path, err)) return -1;
    int ok = len == 0 || fwrite(data, 1, len, af.f) == len; /* an empty file may come with data NULL */
    if (!ok) cs_fail(err, CS_EIO, "%s: cannot write: %s", path, strerror(errno));
    return cs_atomic_finish(&af, ok, err) || !ok ? -1 : 0;
}
