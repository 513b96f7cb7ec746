/* test_sd_fixture.h — the sd-tiny reference cases (../shared/refs/sd-tiny,
 * made with the original CompVis/CLIP code) as the SD tests read them: a
 * case file by name, and its fp32 tensors. */
#ifndef TEST_SD_FIXTURE_H
#define TEST_SD_FIXTURE_H

#include <stdio.h>

#include "core/safetensors.h"

#define REFS "../shared/refs/sd-tiny"

/* The fp32 tensor name of a case (NULL when absent or of another type);
 * *n its element count. */
static inline const float *case_tensor(cs_safetensors *st, const char *name, size_t *n) {
    const cs_safetensors_tensor *t = cs_safetensors_find(st, name);
    if (!t || t->dtype != CS_DT_F32) return NULL;
    if (n) *n = (size_t)t->numel;
    return t->data;
}

/* Opens REFS/cases/<name>.safetensors; -1 (said on stderr) when it cannot. */
static inline int open_case(cs_safetensors *st, const char *name) {
    char path[512];
    cs_err err = {0};
    snprintf(path, sizeof path, REFS "/cases/%s.safetensors", name);
    if (cs_safetensors_open(st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

#endif
