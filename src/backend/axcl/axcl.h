/* axcl.h - the AX650N backend over the AXCL runtime, loaded with dlopen. */
#ifndef AX_BACKEND_AXCL_AXCL_H
#define AX_BACKEND_AXCL_AXCL_H

#include "backend/backend.h"

/* Fills b->ops, b->ctx and b->lim. */
enum ax_err axcl_backend_open(const struct backend_opts *opts, const struct model *m,
                              struct backend *b, char *err);

#endif
