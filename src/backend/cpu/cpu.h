/* cpu.h - the CPU backend: Qwen3 forward pass over mmapped safetensors. */
#ifndef AX_BACKEND_CPU_CPU_H
#define AX_BACKEND_CPU_CPU_H

#include "backend/backend.h"

/* Fills b->ops, b->ctx and b->lim. */
enum ax_err cpu_backend_open(const struct backend_opts *opts, const struct model *m,
                             struct backend *b, char *err);

#endif
