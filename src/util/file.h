/* file.h - reading whole files under a size ceiling, and read-only
 * mappings for weights (which are sliced, never copied). */
#ifndef AX_UTIL_FILE_H
#define AX_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
/* Hint that bytes [p, p + n) of a mapping will be read in full again and
 * again (weights used in place): pages not yet cached are then read in,
 * and mapped, as huge pages where the kernel can. Not for data read here
 * and there (an embedding's rows): a huge page makes 2 MiB resident for
 * every row touched. */
void ax_map_advise_whole(const void *p, size_t n);
/* The opposite: [p, p + n) is read a row here and there: base pages. */
void ax_map_advise_rows(const void *p, size_t n);
/* Unmaps the pages holding [p, p + n) from this process (they are read
 * back from the file if touched again): for bytes copied out at load. */
void ax_map_release(const void *p, size_t n);

/* Writers of large files: gives stream f (before any I/O on it) a
 * buffer of AX_WRITE_BUFFER bytes, so the file is written in pieces of
 * that size. The kernel caches a file in pieces as large as its writes,
 * and a read-only mapping of it then gets huge pages (see
 * ax_map_advise_whole); with stdio's 4 KiB writes it gets none. Returns
 * the buffer, to ax_free after fclose, or NULL (the stream keeps its
 * own, which is only slower to map). */
#define AX_WRITE_BUFFER ((size_t)4 << 20)
void *ax_write_buffer(FILE *f);

/* 1 if the path exists and is a regular file. */
int ax_file_exists(const char *path);
/* Joins dir and name into out (size n); AX_ETOOBIG if it does not fit. */
enum ax_err ax_path_join(char *out, size_t n, const char *dir, const char *name);

#endif
