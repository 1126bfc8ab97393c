/* x86.c - probes the x86 CPU once and installs the best kernel variant.
 * Compiled without ISA flags: only the variant files use them. */
#include "backend/cpu/arch/x86/x86.h"

#include <cpuid.h>
#include <stdint.h>

#include "util/log.h"

/* CPUID bits (Intel SDM vol. 2, CPUID) plus XCR0, which says the OS saves
 * the wider registers. __builtin_cpu_supports lacks "f16c" in some
 * compilers, so ask the CPU directly. */
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static int have_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!(fma && osxsave && avx && f16c) || (xcr0() & 6) != 6)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return b >> 5 & 1;
}

static int have_avx512(void)
{
    unsigned a, b, c, d;
    if (!have_avx2() || (xcr0() & 0xe6) != 0xe6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 16 & 1) && (b >> 30 & 1) && (b >> 31 & 1); /* F, BW, VL */
}

static int have_avx512vnni(void)
{
    unsigned a, b, c, d;
    if (!have_avx512() || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return c >> 11 & 1;
}

/* AVX512_BF16: CPUID leaf 7 subleaf 1, EAX bit 5 */
static int have_avx512bf16(void)
{
    unsigned a, b, c, d;
    if (!have_avx512() || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1 ||
        !__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return 0;
    return a >> 5 & 1;
}

void kern_arch_init(struct kern_table *t)
{
    if (have_avx512vnni())
        kern_x86_avx512vnni_fill(t);
    else if (have_avx512())
        kern_x86_avx512_fill(t);
    else if (have_avx2())
        kern_x86_avx2_fill(t);
    if (have_avx512bf16())
        kern_x86_avx512bf16_fill(t);
    if (have_avx512bf16() && have_avx512vnni())
        kern_x86_avx512_split_fill(t);
    ax_debug("cpu: x86 kernels: %s", t->name);
}

int kern_arch_variants(struct kern_table *out, int max)
{
    int n = 0;
    if (n < max && have_avx2()) {
        kern_table_init_ref(&out[n]);
        kern_x86_avx2_fill(&out[n++]);
    }
    if (n < max && have_avx512()) {
        kern_table_init_ref(&out[n]);
        kern_x86_avx512_fill(&out[n]);
        if (have_avx512bf16())
            kern_x86_avx512bf16_fill(&out[n]);
        n++;
    }
    if (n < max && have_avx512vnni()) {
        kern_table_init_ref(&out[n]);
        kern_x86_avx512vnni_fill(&out[n]);
        if (have_avx512bf16()) {
            kern_x86_avx512bf16_fill(&out[n]);
            kern_x86_avx512_split_fill(&out[n]);
        }
        n++;
    }
    return n;
}
