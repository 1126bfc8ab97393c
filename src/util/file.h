/* file.h - reading whole files under a size ceiling, and read-only
 * mappings for weights (which are sliced, never copied). */
#ifndef AX_UTIL_FILE_H
#define AX_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Reads path into a NUL-terminated caller-owned buffer (free with
 * ax_free). Files larger than max are AX_ETOOBIG. */
enum ax_err ax_file_read(const char *path, size_t max, char **out, size_t *len, char *err);

struct ax_map {
    const uint8_t *data; /* read-only mapping, NULL for an empty file */
    size_t size;         /* bytes */
};

enum ax_err ax_map_open(const char *path, struct ax_map *m, char *err);
void ax_map_close(struct ax_map *m);

/* 1 if the path exists and is a regular file. */
int ax_file_exists(const char *path);
/* Joins dir and name into out (size n); AX_ETOOBIG if it does not fit. */
enum ax_err ax_path_join(char *out, size_t n, const char *dir, const char *name);

#endif
