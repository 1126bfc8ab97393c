/* safetensors.c - validates and indexes a safetensors header (format and
 * the list of checks in safetensors.h). Does not map files or look at
 * tensor data. */
#include "model/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* ---- dtypes ------------------------------------------------------------ */

struct dtype_info {
    const char *name;
    enum model_dtype dt;
    unsigned size; /* bytes per element */
};

/* Every dtype the safetensors format defines; ones we do not compute with
 * map to DT_OTHER but keep their size so the byte count is still checked. */
static const struct dtype_info dtypes[] = {
    {"F32", DT_F32, 4},    {"F16", DT_F16, 2},       {"BF16", DT_BF16, 2},     {"I32", DT_I32, 4},
    {"I64", DT_I64, 8},    {"U8", DT_U8, 1},         {"I8", DT_I8, 1},         {"F64", DT_OTHER, 8},
    {"I16", DT_OTHER, 2},  {"U16", DT_OTHER, 2},     {"U32", DT_OTHER, 4},     {"U64", DT_OTHER, 8},
    {"BOOL", DT_OTHER, 1}, {"F8_E4M3", DT_OTHER, 1}, {"F8_E5M2", DT_OTHER, 1},
};

static const struct dtype_info *dtype_lookup(const char *s)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtypes[i].name, s))
            return &dtypes[i];
    return NULL;
}

/* The first table row with this dtype; DT_OTHER has no single size. */
static const struct dtype_info *dtype_row(enum model_dtype dt)
{
    for (size_t i = 0; dt != DT_OTHER && i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dt == dt)
            return &dtypes[i];
    return NULL;
}

size_t st_dtype_size(enum model_dtype dt)
{
    const struct dtype_info *d = dtype_row(dt);
    return d ? d->size : 0;
}

const char *st_dtype_name(enum model_dtype dt)
{
    const struct dtype_info *d = dtype_row(dt);
    return d ? d->name : "other";
}

/* ---- one entry --------------------------------------------------------- */

/* JSON integer in [0, max] (jansson integers are signed 64-bit). */
static int get_u64(const json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v))
        return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max)
        return 0;
    *out = (uint64_t)x;
    return 1;
}

static enum ax_err parse_entry(const char *path, const char *name, const json_t *o,
                               uint64_t data_size, struct st_tensor *t, char *err)
{
    if (!json_is_object(o))
        return ax_fail(err, AX_EFORMAT, "%s: tensor '%s': entry is not an object", path, name);
    const json_t *jd = json_object_get(o, "dtype");
    const json_t *js = json_object_get(o, "shape");
    const json_t *jo = json_object_get(o, "data_offsets");
    if (!json_is_string(jd))
        return ax_fail(err, AX_EFORMAT, "%s: tensor '%s': missing or non-string dtype", path, name);
    const struct dtype_info *di = dtype_lookup(json_string_value(jd));
    if (!di)
        return ax_fail(err, AX_EFORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, name,
                       json_string_value(jd));
    if (!json_is_array(js) || json_array_size(js) > ST_MAX_DIMS)
        return ax_fail(err, AX_EFORMAT,
                       "%s: tensor '%s': shape must be an array of at most %d integers", path, name,
                       ST_MAX_DIMS);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return ax_fail(err, AX_EFORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", path,
                       name);
    t->dtype = di->dt;
    t->ndim = (int)json_array_size(js);
    size_t bytes = di->size;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        /* Each dimension below 2^62 so it fits int64_t; the product is
         * checked separately. */
        if (!get_u64(json_array_get(js, (size_t)i), (uint64_t)1 << 62, &d))
            return ax_fail(err, AX_EFORMAT,
                           "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name,
                           i);
        t->shape[i] = (int64_t)d;
        if (d > SIZE_MAX || ax_mul_overflow(bytes, (size_t)d, &bytes))
            return ax_fail(err, AX_EFORMAT, "%s: tensor '%s': shape too large (overflow)", path,
                           name);
    }
    if (!get_u64(json_array_get(jo, 0), data_size, &t->begin) ||
        !get_u64(json_array_get(jo, 1), data_size, &t->end) || t->begin > t->end)
        return ax_fail(err, AX_EFORMAT,
                       "%s: tensor '%s': data_offsets out of range (data section is %llu "
                       "bytes; file truncated?)",
                       path, name, (unsigned long long)data_size);
    if (t->end - t->begin != (uint64_t)bytes)
        return ax_fail(err, AX_EFORMAT,
                       "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype %s "
                       "need %zu",
                       path, name, (unsigned long long)(t->end - t->begin), di->name, bytes);
    return AX_OK;
}

/* ---- whole header ------------------------------------------------------ */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Empty tensors (begin == end) own no bytes and cannot overlap. */
static enum ax_err check_overlap(const char *path, struct st_header *h, char *err)
{
    if (h->n < 2)
        return AX_OK;
    const struct st_tensor **v = ax_mallocarray(
        h->n, sizeof *v); /* NOLINT(bugprone-sizeof-expression): an array of pointers */
    if (!v)
        return ax_fail(err, AX_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < h->n; i++)
        v[i] = &h->t[i];
    qsort(v, h->n, sizeof *v, by_begin); /* NOLINT(bugprone-sizeof-expression) */
    enum ax_err rc = AX_OK;
    uint64_t prev_end = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < h->n && rc == AX_OK; i++) {
        if (v[i]->begin == v[i]->end)
            continue;
        if (prev && v[i]->begin < prev_end)
            rc = ax_fail(err, AX_EFORMAT, "%s: tensors '%s' and '%s' overlap", path, prev,
                         v[i]->name);
        prev = v[i]->name;
        prev_end = v[i]->end;
    }
    ax_free(v);
    return rc;
}

static enum ax_err parse_entries(const char *path, json_t *root, uint64_t data_size,
                                 struct st_header *h, char *err)
{
    size_t n = json_object_size(root);
    h->t = ax_calloc(n ? n : 1, sizeof *h->t);
    if (!h->t)
        return ax_fail(err, AX_ENOMEM, "%s: out of memory for %zu tensors", path, n);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val))
                return ax_fail(err, AX_EFORMAT, "%s: __metadata__ is not an object", path);
            continue;
        }
        if (!*key)
            return ax_fail(err, AX_EFORMAT, "%s: a tensor has an empty name", path);
        struct st_tensor *t = &h->t[h->n];
        enum ax_err rc = parse_entry(path, key, val, data_size, t, err);
        if (rc != AX_OK)
            return rc;
        t->name = ax_strdup(key);
        if (!t->name)
            return ax_fail(err, AX_ENOMEM, "%s: out of memory", path);
        h->n++;
    }
    qsort(h->t, h->n, sizeof *h->t, by_name);
    return check_overlap(path, h, err);
}

enum ax_err st_parse(const uint8_t *file, size_t size, const char *path, struct st_header *out,
                     char *err)
{
    memset(out, 0, sizeof *out);
    if (size < 8)
        return ax_fail(err, AX_EFORMAT, "%s: %zu bytes, too short for a safetensors file", path,
                       size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | file[i];
    if (n > ST_MAX_HEADER)
        return ax_fail(err, AX_EFORMAT, "%s: header length %llu exceeds the %llu-byte limit", path,
                       (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n < 2 || n > size - 8)
        return ax_fail(err, AX_EFORMAT,
                       "%s: header length %llu but the file has only %zu bytes after the "
                       "length field (truncated file?)",
                       path, (unsigned long long)n, size - 8);
    json_error_t je;
    json_t *root = json_loadb((const char *)file + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ax_fail(err, AX_EFORMAT, "%s: header is not valid JSON: %s (byte %d)", path, je.text,
                       je.position);
    enum ax_err rc;
    if (!json_is_object(root))
        rc = ax_fail(err, AX_EFORMAT, "%s: header is not a JSON object", path);
    else {
        out->data_start = 8 + n;
        rc = parse_entries(path, root, size - out->data_start, out, err);
    }
    json_decref(root);
    if (rc != AX_OK)
        st_header_free(out);
    return rc;
}

void st_header_free(struct st_header *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        ax_free(h->t[i].name);
    ax_free(h->t);
    memset(h, 0, sizeof *h);
}

const struct st_tensor *st_find(const struct st_header *h, const char *name)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, h->t[mid].name);
        if (!c)
            return &h->t[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
