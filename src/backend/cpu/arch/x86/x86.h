/* x86.h - private to arch/x86/: the fill functions of each x86 variant. */
#ifndef AX_BACKEND_CPU_ARCH_X86_H
#define AX_BACKEND_CPU_ARCH_X86_H

#include "backend/cpu/kernels.h"

/* Requires AVX2, FMA and F16C. */
void kern_x86_avx2_fill(struct kern_table *t);
/* Requires the above plus AVX-512 F/BW/VL. */
void kern_x86_avx512_fill(struct kern_table *t);
/* The fused attention of the AVX-512 table (same requirements). */
void kern_x86_avx512_attn_fill(struct kern_table *t);
void kern_x86_avx512_attn_block_fill(struct kern_table *t);
/* The panel pair (panel, mm_bf16_panel) of the AVX-512 table (same
 * requirements). */
void kern_x86_avx512_panel_fill(struct kern_table *t);
/* Requires the above plus AVX-512 VNNI. */
void kern_x86_avx512vnni_fill(struct kern_table *t);
/* Adds mm_bf16_act to an AVX-512 table; requires AVX-512 BF16 as well. */
void kern_x86_avx512bf16_fill(struct kern_table *t);
/* Adds the split pair (split, mm_bf16_split) to an AVX-512 table;
 * requires AVX-512 BF16 and VNNI as well. */
void kern_x86_avx512_split_fill(struct kern_table *t);

#endif
