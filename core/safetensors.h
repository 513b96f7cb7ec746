/* safetensors.h — reading (mmap, strict validation) and writing safetensors.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header
 * {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}},
 * then the data section. Opening validates everything before any tensor is
 * used: header length within the file, valid JSON, known dtypes, each
 * tensor's byte range inside the data section and equal to shape x dtype
 * size, no overlapping ranges, unique names. */
#ifndef CS_SAFETENSORS_H
#define CS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    CS_DT_F32, CS_DT_F16, CS_DT_BF16, CS_DT_F64,
    CS_DT_I64, CS_DT_I32, CS_DT_I16, CS_DT_I8, CS_DT_U8, CS_DT_BOOL,
} cs_dtype;

size_t cs_dtype_size(cs_dtype dt);
const char *cs_dtype_name(cs_dtype dt);

#define CS_ST_MAX_DIMS 8

typedef struct {
    char *name;
    cs_dtype dtype;
    int ndim;
    int64_t shape[CS_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* points into the mapping */
    size_t nbytes;
} cs_safetensors_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int n;
    cs_safetensors_tensor *tensors;    /* sorted by name */
    char *metadata_json;      /* "__metadata__" object as JSON text, or NULL */
} cs_safetensors;

int cs_safetensors_open(cs_safetensors *st, const char *path, cs_err *err);
void cs_safetensors_close(cs_safetensors *st);

/* NULL when absent. */
const cs_safetensors_tensor *cs_safetensors_find(const cs_safetensors *st, const char *name);

/* Returns the tensor as float32, checking its shape (ndim and every dim; pass
 * ndim < 0 to skip the check). If the stored tensor is F32 and aligned, *out
 * points into the mapping and *owned = 0; otherwise a converted copy is
 * malloc'd and *owned = 1 (caller frees). Errors name file and tensor:
 * "<file>: <tensor>: missing" / "shape [..] expected [..]". F16 and BF16
 * widen exactly (subnormals, inf, nan kept; ~430 M values/s), F64 rounds;
 * integer and BOOL tensors are refused rather than read as weights. */
int cs_safetensors_get_f32(const cs_safetensors *st, const char *name, int ndim, const int64_t *shape,
                  const float **out, int *owned, cs_err *err);

/* Writing: a list of F32 (or other dtype) tensors to a new file. The data
 * section starts 8-byte aligned (header padded with spaces) and tensors are
 * laid out by element size, then name, so each is aligned to its element
 * size. metadata_json, if not NULL, must be a JSON object of strings. The
 * file is written beside path and renamed into place. Names must be unique. */
typedef struct {
    const char *name;
    cs_dtype dtype;
    int ndim;
    int64_t shape[CS_ST_MAX_DIMS];
    const void *data;
} cs_safetensors_out;

int cs_safetensors_write(const char *path, const cs_safetensors_out *t, int n, const char *metadata_json,
                cs_err *err);

/* fp16 / bf16 helpers */
float cs_f16_to_f32(uint16_t h);
uint16_t cs_f32_to_f16(float f);
float cs_bf16_to_f32(uint16_t h);
uint16_t cs_f32_to_bf16(float f); /* round to nearest even; nan stays nan */

#endif
