/* file.c - whole-file reads and read-only mappings. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"

enum ax_err ax_file_read(const char *path, size_t max, char **out, size_t *len, char *err)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ax_fail(err, errno == ENOENT ? AX_ENOTFOUND : AX_EIO, "%s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ax_fail(err, AX_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ax_fail(err, AX_ETOOBIG, "%s: %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    char *buf = ax_malloc(n + 1);
    if (!buf) {
        close(fd);
        return ax_fail(err, AX_ENOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            ax_free(buf);
            return ax_fail(err, AX_EIO, "%s: short read", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return AX_OK;
}

enum ax_err ax_map_open(const char *path, struct ax_map *m, char *err)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ax_fail(err, errno == ENOENT ? AX_ENOTFOUND : AX_EIO, "%s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ax_fail(err, AX_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return AX_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return ax_fail(err, AX_EIO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return AX_OK;
}

static void advise(const void *p, size_t n, int advice)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (!p || !n || pg <= 0)
        return;
    size_t back = (uintptr_t)p % (uintptr_t)pg; /* madvise wants a page start */
    (void)madvise((void *)((const uint8_t *)p - back), n + back, advice);
}

void ax_map_advise_whole(const void *p, size_t n)
{
    advise(p, n, MADV_HUGEPAGE);
}

void ax_map_advise_rows(const void *p, size_t n)
{
    advise(p, n, MADV_NOHUGEPAGE);
}

void ax_map_release(const void *p, size_t n)
{
    advise(p, n, MADV_DONTNEED);
}

void *ax_write_buffer(FILE *f)
{
    void *buf = ax_malloc(AX_WRITE_BUFFER);
    if (buf && setvbuf(f, buf, _IOFBF, AX_WRITE_BUFFER) != 0) {
        ax_free(buf);
        buf = NULL;
    }
    return buf;
}

void ax_map_close(struct ax_map *m)
{
    if (m && m->data)
        munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

int ax_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

enum ax_err ax_path_join(char *out, size_t n, const char *dir, const char *name)
{
    int r = snprintf(out, n, "%s/%s", dir, name);
    if (r < 0 || (size_t)r >= n)
        return AX_ETOOBIG;
    return AX_OK;
}
