/* arm.h - private to arch/arm/: the fill functions of each AArch64 variant. */
#ifndef AX_BACKEND_CPU_ARCH_ARM_H
#define AX_BACKEND_CPU_ARCH_ARM_H

#include "backend/cpu/kernels.h"

/* NEON (always present on AArch64). */
void kern_arm_neon_fill(struct kern_table *t);
/* NEON plus the dot-product extension (SDOT), ARMv8.2+. */
void kern_arm_dotprod_fill(struct kern_table *t);

#endif
