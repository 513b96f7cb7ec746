/* atomic_file.c — see atomic_file.h. */
#include "core/atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
