/* backend.c - picks a backend by name and checks its interface version. */
#include "backend/backend.h"

#include <string.h>

#include "backend/axcl/axcl.h"
#include "backend/cpu/cpu.h"
#include "model/model.h"
#include "util/mem.h"

enum ax_err backend_open(const struct backend_opts *opts, const struct model *m,
                         struct backend **out, char *err)
{
    *out = NULL;
    /* "auto": an AXERA compiled directory can only run on the card, an HF
     * checkpoint only on the CPU. */
    const char *name = opts->name;
    if (!name || !strcmp(name, "auto"))
        name = model_kind(m) == MODEL_AXMODEL ? "axcl" : "cpu";
    struct backend *b = ax_calloc(1, sizeof *b);
    if (!b)
        return ax_fail(err, AX_ENOMEM, "out of memory opening backend");
    enum ax_err e;
    if (!strcmp(name, "cpu"))
        e = cpu_backend_open(opts, m, b, err);
    else if (!strcmp(name, "axcl"))
        e = axcl_backend_open(opts, m, b, err);
    else
        e = ax_fail(err, AX_EINVAL, "unknown backend '%s' (use auto, cpu or axcl)", name);
    if (e == AX_OK && (!b->ops || b->ops->version != BACKEND_IFACE_VERSION)) {
        if (b->ops && b->ops->free)
            b->ops->free(b->ctx);
        e = ax_fail(err, AX_EBACKEND, "backend '%s' has interface version %d, expected %d",
                    name, b->ops ? b->ops->version : -1, BACKEND_IFACE_VERSION);
    }
    if (e != AX_OK) {
        ax_free(b);
        return e;
    }
    *out = b;
    return AX_OK;
}

void backend_free(struct backend *b)
{
    if (!b)
        return;
    if (b->ops && b->ops->free)
        b->ops->free(b->ctx);
    ax_free(b);
}
