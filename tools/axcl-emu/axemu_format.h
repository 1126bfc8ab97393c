/* axemu_format.h - the AXCL emulator's own "axmodel" file format.
 *
 * These files are NOT vendor axmodels. They carry exactly the vendor's IO
 * contract for a compiled Qwen3 decoder layer or post model (tensor names,
 * shape groups, bf16 activations, uint32 indices, mask semantics, K/V out
 * rows), plus the layer's weights in bf16, so the emulator can execute them
 * on the CPU. Written by `axserve emu-compile`, read by libaxcl_emu.so.
 * All integers little-endian (x86_64 and aarch64 hosts).
 *
 * Header (256 bytes):
 *   off  size  field
 *   0    8     magic "AXEMUMD1"
 *   8    4     kind: 1 = decoder layer, 2 = post model (final norm + lm_head)
 *   12   4     hidden            (hidden_size)
 *   16   4     intermediate      (layer; 0 for post)
 *   20   4     n_heads
 *   24   4     n_kv_heads
 *   28   4     head_dim
 *   32   4     vocab             (post; 0 for a layer)
 *   36   4     kv_cache_num N    (layer: decode K_cache rows; mask N+1)
 *   40   4     prefill P         (layer: rows per prefill chunk)
 *   44   4     n_groups G        (layer: 1 decode + G-1 prefill; post: 1)
 *   48   8     rope_theta (f64)
 *   56   8     rms_eps (f64)
 *   64   64    history[16] (u32): history[g] = H_g for prefill group g >= 1
 *   128  8     weights offset (bytes from file start, = 256)
 *   136  8     weights size (bytes)
 *   144  112   reserved, zero
 *
 * Weights (bf16, row-major [out][in], concatenated in this order):
 *   layer: input_layernorm[hidden], post_attention_layernorm[hidden],
 *          q_norm[head_dim], k_norm[head_dim],
 *          q_proj[n_heads*head_dim][hidden], k_proj[n_kv*head_dim][hidden],
 *          v_proj[n_kv*head_dim][hidden], o_proj[hidden][n_heads*head_dim],
 *          gate_proj[intermediate][hidden], up_proj[intermediate][hidden],
 *          down_proj[hidden][intermediate]
 *   post:  norm[hidden], lm_head[vocab][hidden]
 *
 * IO contract the emulator presents (kv = n_kv*head_dim; group 0 decode
 * with R = 1 row and history N; group g >= 1 prefill with R = P rows and
 * history H_g):
 *   inputs  K_cache [1,H,kv] bf16, V_cache [1,H,kv] bf16, indices [1,R] u32,
 *           input [1,R,hidden] bf16, mask [1,R,H+R] bf16
 *   outputs K_cache_out [1,R,kv] bf16, V_cache_out [1,R,kv] bf16,
 *           output [1,R,hidden] bf16
 *   post:   input [1,1,hidden] bf16 -> output [1,1,vocab] bf16
 * The index order is deliberately not the order the facts list them in:
 * hosts must look names up. */
#ifndef AXEMU_FORMAT_H
#define AXEMU_FORMAT_H

#include <stdint.h>

#define AXEMU_MAGIC "AXEMUMD1"
#define AXEMU_KIND_LAYER 1
#define AXEMU_KIND_POST 2
#define AXEMU_MAX_GROUPS 16
#define AXEMU_HEADER_SIZE 256

struct axemu_header {
    char magic[8];
    uint32_t kind;
    uint32_t hidden;
    uint32_t intermediate;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t vocab;
    uint32_t kv_cache_num;
    uint32_t prefill;
    uint32_t n_groups;
    double rope_theta;
    double rms_eps;
    uint32_t history[AXEMU_MAX_GROUPS];
    uint64_t weights_offset;
    uint64_t weights_size;
    uint8_t reserved[112];
};

_Static_assert(sizeof(struct axemu_header) == AXEMU_HEADER_SIZE, "axemu header is 256 bytes");

/* Number of bf16 weights a file of this header must carry (0 on a bad
 * header). Sizes are checked by both writer and reader. */
static inline uint64_t axemu_weight_count(const struct axemu_header *h)
{
    uint64_t hd = h->hidden, q = (uint64_t)h->n_heads * h->head_dim,
             kv = (uint64_t)h->n_kv_heads * h->head_dim, in = h->intermediate;
    if (h->kind == AXEMU_KIND_LAYER)
        return 2 * hd + 2 * (uint64_t)h->head_dim + q * hd + 2 * kv * hd + hd * q + 3 * in * hd;
    if (h->kind == AXEMU_KIND_POST)
        return hd + (uint64_t)h->vocab * hd;
    return 0;
}

#endif
