/* kern_main.c - plain-C harness for the CPU kernel checks (kern_checks.h)
 * on AArch64, cross-built and run under qemu-user by the suite
 * cpu-aarch64 (cmocka is not installed for the target). Exits non-zero on
 * any failure. */
#include <stdio.h>

#include "../unit/kern_checks.h"

int main(void)
{
    int f = kc_reference();
    printf("scalar reference: %d failures\n", f);
    struct kern_table v[4];
    int n = kern_arch_variants(v, 4);
    for (int i = 0; i < n; i++) {
        int fv = kc_variant(&v[i]);
        printf("variant %s vs reference: %d failures\n", v[i].name, fv);
        f += fv;
    }
    struct kern_table t;
    kern_table_init_ref(&t);
    kern_arch_init(&t);
    printf("chosen at start-up: %s\n", t.name);
    if (n < 1) {
        printf("no SIMD variant ran\n");
        f++;
    }
    return f != 0;
}
