/* arm.c - probes the AArch64 CPU once (hwcaps from the kernel) and installs
 * the best kernel variant. Compiled without extra ISA flags. */
#include "backend/cpu/arch/arm/arm.h"

#include <sys/auxv.h>

#include "util/log.h"

/* HWCAP_ASIMDDP from the Linux arm64 uapi: the SDOT/UDOT instructions. */
#define HWCAP_DOTPROD_BIT (1ul << 20)

static int have_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_DOTPROD_BIT) != 0; }

void kern_arch_init(struct kern_table *t)
{
    if (have_dotprod())
        kern_arm_dotprod_fill(t);
    else
        kern_arm_neon_fill(t);
    ax_debug("cpu: arm kernels: %s", t->name);
}

int kern_arch_variants(struct kern_table *out, int max)
{
    int n = 0;
    if (n < max) {
        kern_table_init_ref(&out[n]);
        kern_arm_neon_fill(&out[n++]);
    }
    if (n < max && have_dotprod()) {
        kern_table_init_ref(&out[n]);
        kern_arm_dotprod_fill(&out[n++]);
    }
    return n;
}
