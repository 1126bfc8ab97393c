/* err.h - the one error enum of axserve, and the helpers that fill an
 * error buffer.
 *
 * A code gives the class of a failure; a caller-supplied buffer of
 * AX_ERRLEN bytes gives the detail (which file, which field, the fix).
 * Codes are append-only: never renumber or reuse a value. */
#ifndef AX_UTIL_ERR_H
#define AX_UTIL_ERR_H

#include <stddef.h>

#define AX_ERRLEN 512

enum ax_err {
    AX_OK = 0,
    AX_ENOMEM = 1,       /* allocation failed */
    AX_EINVAL = 2,       /* bad argument or request */
    AX_EIO = 3,          /* read/write/open failed */
    AX_EFORMAT = 4,      /* malformed file or data */
    AX_ELFS = 5,         /* file is a Git LFS pointer, not the real file */
    AX_ETOOBIG = 6,      /* input exceeds a configured ceiling */
    AX_ERANGE = 7,       /* index, count or size out of range */
    AX_ECANCELED = 8,    /* cancelled by the caller (client went away) */
    AX_EBACKEND = 9,     /* the compute backend failed */
    AX_ETEMPLATE = 10,   /* chat template syntax or runtime error */
    AX_EBUSY = 11,       /* queue full, try later */
    AX_ENOTFOUND = 12,   /* file, tensor, token or route missing */
    AX_EUNSUPPORTED = 13,/* valid but not supported by this build/model */
    AX_EDEVICE = 14,     /* accelerator missing, lost or out of memory */
    AX_ECONTEXT = 15,    /* prompt + generation exceed the context */
    AX_EJSON = 16,       /* JSON syntax or type error */
    AX_EUTF8 = 17,       /* invalid UTF-8 */
    AX_ESHUTDOWN = 18,   /* server is stopping */
};

const char *ax_strerror(enum ax_err e);

/* Formats a message into err (AX_ERRLEN bytes) if err is not NULL and
 * returns code, so a failing path reads `return ax_fail(err, AX_EIO, ...)`. */
enum ax_err ax_fail(char *err, enum ax_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
