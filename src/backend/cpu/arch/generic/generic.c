/* generic.c - the portable build: no ISA variants, the scalar reference
 * kernels are used as they are. */
#include "backend/cpu/kernels.h"

void kern_arch_init(struct kern_table *t) { t->name = "scalar (portable build)"; }

int kern_arch_variants(struct kern_table *out, int max)
{
    (void)out;
    (void)max;
    return 0;
}
