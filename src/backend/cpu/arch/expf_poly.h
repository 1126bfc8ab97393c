/* expf_poly.h - the constants of the vector e^x in the SIMD kernels (exp512
 * in x86/avx512_common.h, exp8 in x86/avx2.c, exp4 in arm/neon_impl.h),
 * kept in one place so the three stay one function: x is clamped to
 * +-EXPF_XMAX (about the exponent of the smallest normal float), reduced
 * to x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, so that n ln2 is
 * exact), and e^r = 1 + r + r^2 (((((P0 r + P1) r + P2) r + P3) r + P4) r
 * + P5), the polynomial of Cephes' expf. Within 2 ulp of expf. */
#ifndef AX_BACKEND_CPU_ARCH_EXPF_POLY_H
#define AX_BACKEND_CPU_ARCH_EXPF_POLY_H

#define EXPF_XMAX 88.0f
#define EXPF_LOG2E 1.44269504088896341f
#define EXPF_LN2_HI 0.693359375f
#define EXPF_LN2_LO -2.12194440e-4f
#define EXPF_P0 1.9875691500e-4f
#define EXPF_P1 1.3981999507e-3f
#define EXPF_P2 8.3334519073e-3f
#define EXPF_P3 4.1665795894e-2f
#define EXPF_P4 1.6666665459e-1f
#define EXPF_P5 5.0000001201e-1f

#endif
