/* neon.c - the baseline AArch64 variant: NEON kernels (neon_impl.h) with
 * widening-multiply int8 dots. */
#define ARM_DOTPROD 0
#include "backend/cpu/arch/arm/neon_impl.h"

void kern_arm_neon_fill(struct kern_table *t) { fill(t, "neon"); }
