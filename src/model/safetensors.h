/* safetensors.h - parser for the header of a .safetensors file (model/
 * private to the module and its tests; other modules use model.h).
 *
 * File layout (https://github.com/huggingface/safetensors, "Format"):
 *
 *   offset   size  meaning
 *   0        8     N, unsigned little-endian: header length in bytes
 *   8        N     UTF-8 JSON object: {"NAME": {"dtype": "BF16",
 *                  "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
 *                  "__metadata__": {"k": "v", ...} (optional)}
 *   8+N      ...   tensor data; a tensor's bytes are [8+N+begin, 8+N+end),
 *                  row-major, little-endian
 *
 * What we check (the file is untrusted): N <= ST_MAX_HEADER and 8+N <= file
 * size; valid JSON object, no duplicate names; every entry an object with a
 * known dtype string, a shape of at most ST_MAX_DIMS non-negative integers
 * and two integer offsets with begin <= end <= data size; end - begin ==
 * product(shape) * element size, computed with overflow checks; no two
 * tensors overlap. Gaps between tensors and trailing bytes are allowed (the
 * reference writer produces none, but they do no harm to a reader).
 * It does not check the tensor names against a model; model.c does. */
#ifndef AX_MODEL_SAFETENSORS_H
#define AX_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "util/err.h"

/* 100 MB: real checkpoints' headers are well under 1 MB; the ceiling keeps
 * a hostile length from making us allocate or parse gigabytes. */
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)
#define ST_MAX_DIMS 4

struct st_tensor {
    char *name; /* owned */
    enum model_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets relative to the data section */
};

struct st_header {
    struct st_tensor *t; /* sorted by name */
    size_t n;
    uint64_t data_start; /* 8 + N: file offset of the data section */
};

/* Parses and validates the header of a file image of size bytes. path is
 * only used in messages. OUT *out valid on AX_OK (free with st_header_free);
 * on error *out is empty. */
enum ax_err st_parse(const uint8_t *file, size_t size, const char *path, struct st_header *out,
                     char *err);
void st_header_free(struct st_header *h);
/* Binary search by name; NULL if absent. Borrowed from h. */
const struct st_tensor *st_find(const struct st_header *h, const char *name);

/* Bytes per element of a model dtype (0 for DT_OTHER). */
size_t st_dtype_size(enum model_dtype dt);
/* "BF16" etc. for messages. */
const char *st_dtype_name(enum model_dtype dt);

#endif
