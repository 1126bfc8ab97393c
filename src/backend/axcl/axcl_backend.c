/* axcl_backend.c - placeholder until the axcl backend lands. */
#include "backend/axcl/axcl.h"

enum ax_err axcl_backend_open(const struct backend_opts *opts, const struct model *m,
                             struct backend *b, char *err)
{
    (void)opts;
    (void)m;
    (void)b;
    return ax_fail(err, AX_EUNSUPPORTED, "the axcl backend is not built yet");
}
