/* cpu_backend.c - placeholder until the cpu backend lands. */
#include "backend/cpu/cpu.h"

enum ax_err cpu_backend_open(const struct backend_opts *opts, const struct model *m,
                             struct backend *b, char *err)
{
    (void)opts;
    (void)m;
    (void)b;
    return ax_fail(err, AX_EUNSUPPORTED, "the cpu backend is not built yet");
}
