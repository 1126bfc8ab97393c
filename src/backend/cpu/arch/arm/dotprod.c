/* dotprod.c - the AArch64 variant with the dot-product extension (SDOT for
 * the int8 block dots); built with -march=armv8.2-a+dotprod and installed
 * only when hwcaps report it (arm.c). */
#define ARM_DOTPROD 1
#include "backend/cpu/arch/arm/neon_impl.h"

void kern_arm_dotprod_fill(struct kern_table *t) { fill(t, "neon+dotprod"); }
