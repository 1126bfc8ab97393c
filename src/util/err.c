/* err.c - messages for enum ax_err. A switch, not a table, and no default
 * label, so -Wswitch reports a code that has no message. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *ax_strerror(enum ax_err e)
{
    switch (e) {
    case AX_OK: return "success";
    case AX_ENOMEM: return "out of memory";
    case AX_EINVAL: return "invalid argument";
    case AX_EIO: return "input/output error";
    case AX_EFORMAT: return "malformed data";
    case AX_ELFS: return "Git LFS pointer instead of the real file";
    case AX_ETOOBIG: return "input too large";
    case AX_ERANGE: return "value out of range";
    case AX_ECANCELED: return "cancelled";
    case AX_EBACKEND: return "backend failure";
    case AX_ETEMPLATE: return "chat template error";
    case AX_EBUSY: return "busy";
    case AX_ENOTFOUND: return "not found";
    case AX_EUNSUPPORTED: return "not supported";
    case AX_EDEVICE: return "device error";
    case AX_ECONTEXT: return "context length exceeded";
    case AX_EJSON: return "invalid JSON";
    case AX_EUTF8: return "invalid UTF-8";
    case AX_ESHUTDOWN: return "shutting down";
    }
    return "unknown error";
}

enum ax_err ax_fail(char *err, enum ax_err code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, AX_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return code;
}
