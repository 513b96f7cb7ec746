/* fuzz_scratch.h — the scratch folder of the fuzz targets that need files
 * (fuzz_jsonl, fuzz_tar): one folder per process under FUZZ_TMP (default
 * /tmp), the last input's store and its sidecar files removed before each
 * input (no fork: slow under ASan), the input written to a file there. Any
 * failure of the harness itself traps: it is not the code under test. */
#ifndef FUZZ_SCRATCH_H
#define FUZZ_SCRATCH_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[512];

/* Writes data to <dir>/<name> (path in in[600]) and names a fresh store
 * <dir>/t.db (db[600]); the folder is <FUZZ_TMP>/fuzz-<tag>-<pid>. */
static void fuzz_scratch(const char *tag, const char *name, const uint8_t *data, size_t size, char db[600],
                         char in[600]) {
    if (!fuzz_dir[0]) {
        const char *t = getenv("FUZZ_TMP");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz-%s-%ld", t ? t : "/tmp", tag, (long)getpid());
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", fuzz_dir, fuzz_dir);
        if (system(cmd)) __builtin_trap();
    }
    DIR *d = opendir(fuzz_dir);
    if (!d) __builtin_trap();
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "t.db", 4)) continue;
        char p[900];
        snprintf(p, sizeof p, "%s/%s", fuzz_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    snprintf(db, 600, "%s/t.db", fuzz_dir);
    snprintf(in, 600, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) __builtin_trap();
}

#endif
