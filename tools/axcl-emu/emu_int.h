/* emu_int.h - private interface between the emulator's runtime (emu.c)
 * and its model executor (emu_exec.c). */
#ifndef AXEMU_EMU_INT_H
#define AXEMU_EMU_INT_H

#include <stdint.h>

#include "axemu_format.h"
#include "util/mem.h"

/* The emulator allocates through axserve's util/mem.c, linked in with
 * hidden visibility. */
#define emu_calloc ax_calloc
#define emu_realloc ax_realloc
#define emu_free ax_free

#define EMU_MAX_IO 8

/* 0 if the header describes a model this emulator can run. */
int emu_check_header(const struct axemu_header *h);
int emu_n_inputs(const struct axemu_header *h);
int emu_n_outputs(const struct axemu_header *h);
/* Tensor name, size in bytes for shape group g, and AXCL data type of
 * input (out = 0) or output (out = 1) i. NULL / 0 when out of range. */
const char *emu_io_name(const struct axemu_header *h, int out, uint32_t i);
uint64_t emu_io_size(const struct axemu_header *h, int out, uint32_t g, uint32_t i);
int32_t emu_io_dtype(const struct axemu_header *h, int out, uint32_t i);

/* Executes shape group g: in/out point at the tensors (emulator views of
 * device memory) in index order. Outputs are written only after every input
 * has been read, so outputs may alias inputs. 0 on success. */
int emu_run(const struct axemu_header *h, const uint16_t *weights, int g, const uint8_t *const *in,
            uint8_t *const *out);

#endif
