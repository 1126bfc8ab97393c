/* kernels.h - the CPU backend's compute kernels: weight formats, the
 * function-pointer table chosen once at start-up, and the scalar reference
 * implementations that define what every kernel computes.
 *
 * Private to src/backend/cpu/ (and its tests). Not thread-aware: callers
 * split work by rows. The ISA variants live in arch/ and only fill entries
 * of struct kern_table; nothing outside arch/ knows which ISA is in use.
 *
 * Weight formats (one row of k inputs; row r of a matrix starts at
 * data + r * row_bytes):
 *   KQ_F32   float[k]
 *   KQ_BF16  uint16[k]  (upper half of an IEEE float)
 *   KQ_F16   uint16[k]  (IEEE half)
 *   KQ_Q8    uint16 d[k/32] (f16 scale per block of 32), then int8 q[k];
 *            value = d[b] * q[i], q in -127..127
 *   KQ_Q4    uint16 d[k/32] (f16 scale), then uint8 p[k/2]; block b owns
 *            bytes p[16b .. 16b+15]: byte j holds element 32b+j in its low
 *            nibble and element 32b+j+16 in its high nibble;
 *            value = d[b] * (nibble - 8)
 *   KQ_Q8I, KQ_Q4I  the same values, laid out for integer dot-product
 *            instructions that sum 4 byte products into each 32-bit lane
 *            (vpdpbusd, sdot): blocks go in groups of 16, one block per
 *            lane, so one instruction advances 16 blocks by 4 elements and
 *            a group needs one scale step instead of one per block.
 *            ng = ceil(k/512) groups; blocks past k/32 are padding (scale
 *            0, value 0). Row: uint16 d[16*ng] (f16 scales), then per
 *            group the codes of its 16 blocks, in 64-byte steps:
 *   KQ_Q8I   512 bytes per group; step u (0..7), byte 4l+m = element 4u+m
 *            of block l, stored as q+128 (0..255); value = d * (code-128)
 *   KQ_Q4I   256 bytes per group; step c (0..3), byte 4l+m: low nibble =
 *            element 8c+m of block l, high nibble = element 8c+4+m;
 *            value = d * (nibble - 8)
 * Activations for KQ_Q8/KQ_Q4 weights are quantised per row into KA_Q8:
 *            float d[k/32], then int8 q[k]; value = d[b] * q[i]
 * and for KQ_Q8I/KQ_Q4I weights into KA_Q8I: float d[16*ng], int32
 *            s[16*ng] (sum of the block's codes, for the weight offsets),
 *            then per group 512 bytes of int8 codes laid out as KQ_Q8I
 *            (signed, no offset); padding blocks are all zero.
 * Quantised formats need k % 32 == 0. Which layout --quant uses is the
 * kernel table's choice (q8_type, q4_type): the values are the same. */
#ifndef AX_BACKEND_CPU_KERNELS_H
#define AX_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define KQ_BLOCK 32

#define KQ_GROUP 16 /* blocks per group in the interleaved layouts */

enum kq_type {
    KQ_F32 = 0,
    KQ_BF16 = 1,
    KQ_F16 = 2,
    KQ_Q8 = 3,
    KQ_Q4 = 4,
    KQ_Q8I = 5,
    KQ_Q4I = 6,
    KQ_COUNT = 7
};

const char *kq_name(enum kq_type t);
/* Bytes of one row of k weights in format t (k % 32 == 0 for Q8/Q4). */
size_t kq_row_bytes(enum kq_type t, int k);
/* Groups of KQ_GROUP blocks in a row of k (interleaved layouts; the last
 * one padded). */
int kq_groups(int k);
/* 1 if weights of type t take quantised (KA_Q8 or KA_Q8I) activations. */
int kq_is_quant(enum kq_type t);
/* Bytes of one KA_Q8 activation row of k values. */
size_t ka_q8_row_bytes(int k);
/* Bytes of one activation row of k values for weights of type t (f32 rows
 * for float weights, else KA_Q8 or KA_Q8I). */
size_t ka_row_bytes(enum kq_type t, int k);

/* What the split products (below) need of a BF16 weight row, made once
 * at load: inv = 127 / mw (0 if mw == 0), sw = mw / 127, corr. */
struct ks_row {
    float inv, sw;
    int32_t corr;
};

/* One matrix product: y[t * y_stride + r] = dot(row r of w, activation t)
 * for t in [0, n) and the rows r in [r0, r1) given to the kernel. x points
 * at f32 rows (float weights) or KA_Q8 rows (quantised weights). */
struct kern_mm {
    const uint8_t *w; /* weight rows */
    size_t w_stride;  /* bytes between weight rows */
    const void *x;    /* activation rows */
    size_t x_stride;  /* bytes between activation rows */
    float *y;         /* OUT */
    size_t y_stride;  /* floats between output rows (one per token) */
    int n;            /* activation rows (tokens) */
    int k;            /* inner dimension */
    const float *xp;  /* x as panels (below), for mm_bf16_panel; NULL elsewhere */
    const uint8_t *sp;       /* x as split panels (below), for mm_bf16_split; NULL elsewhere */
    const struct ks_row *rs; /* mm_bf16_split: its numbers of each weight row (rs[r]) */
    uint8_t *wq;             /* mm_bf16_split's scratch of ks_wq_bytes(k) bytes */
};

/* Activation panels: the f32 rows of x transposed so that a vector holds
 * one input of 16 consecutive tokens. Tokens go in groups of KP_TOKENS;
 * group g starts at xp + g * KP_TOKENS * k and holds input i of token t
 * at [i * KP_TOKENS + t % KP_TOKENS]. kern_table.panel writes them 16
 * tokens at a time; slots of tokens past n, up to the next multiple of
 * 16, are zero (later ones are never read). */
#define KP_TOKENS 64
/* Floats of the panels of n rows of k inputs. */
size_t kp_floats(int n, int k);
/* Writes tokens [t0, t0 + 16) (t0 % 16 == 0, t0 < n) of the panels of the
 * n rows x[t] = (const float *)((const char *)x + t * x_stride). */
typedef void (*kern_panel_fn)(const float *x, size_t x_stride, int n, int k, int t0, float *xp);
void kern_panel_ref(const float *x, size_t x_stride, int n, int k, int t0, float *xp);

/* Split panels (kern_table.split and mm_bf16_split): BF16 weights times
 * f32 activations nearly as exactly as mm[KQ_BF16], with bf16 and int8
 * dot products (32 and 64 products an instruction against an FMA's 16).
 * Each activation x is split into h = bf16(x) (kern_f32_to_bf16) and the
 * rest l = x - h (exact in f32, |l| <= 2^-9 |x|). The sum of w h comes
 * from exact bf16 products summed in f32; the sum of w l, about 2^-9 of
 * the result, from int8 codes of l and w, summed exactly in integers:
 *   per token: m = max |l_i|, s = m / 127, code_i = rint(l_i * (127 / m))
 *              + 128 (all 128 and s = 0 if m == 0)
 *   per row:   mw = max |w_i|, sw = mw / 127, q_i = rint(w_i * (127 / mw))
 *              (all 0 if mw == 0), corr = 128 * sum q_i (struct ks_row)
 *   y = sum w_i h_i + (float)(sum q_i code_i - corr) * (sw * s)
 * Per element the second term's error is at most |w_i l_i|, the error of
 * bf16 activations alone (--bf16-act, llama.cpp), and in practice far
 * less: the codes carry 7 bits of each l. Needs k % 4 == 0 and
 * k <= KS_MAX_K (the integer sums then fit in 32 bits).
 * Layout: groups of KP_TOKENS tokens; group g at sp + g * ks_group_bytes(k):
 *   u32 hi[k / 2][KP_TOKENS]  inputs 2p (low half) and 2p + 1 of token t
 *   u32 lo[k / 4][KP_TOKENS]  codes of inputs 4p + j (byte j) of token t
 *   f32 scale[KP_TOKENS]      s of token t
 * Slots of tokens past n, up to the next multiple of 16, hold zeros
 * (codes 128, s = 0). */
#define KS_MAX_K 65536
/* Weight rows one mm_bf16_split call codes at a time into a->wq. */
#define KS_ROWS 192
size_t ks_group_bytes(int k);
/* Bytes of the split panels of n rows of k inputs. */
size_t ks_bytes(int n, int k);
/* Bytes of mm_bf16_split's scratch (a->wq, 64-byte aligned): the codes
 * of KS_ROWS rows of k weights. */
size_t ks_wq_bytes(int k);
/* out[r] for the weight rows r0 .. r1-1 of k (k % 4 == 0) BF16 weights
 * w_stride bytes apart */
typedef void (*kern_split_rows_fn)(const uint8_t *w, size_t w_stride, int k, int r0, int r1,
                                   struct ks_row *out);
void kern_split_rows_ref(const uint8_t *w, size_t w_stride, int k, int r0, int r1,
                         struct ks_row *out);
/* Writes tokens [t0, t0 + 16) (t0 % 16 == 0, t0 < n) of the split panels
 * of the n rows x[t] = (const float *)((const char *)x + t * x_stride). */
typedef void (*kern_split_fn)(const float *x, size_t x_stride, int n, int k, int t0, uint8_t *sp);
void kern_split_ref(const float *x, size_t x_stride, int n, int k, int t0, uint8_t *sp);

typedef void (*kern_mm_fn)(const struct kern_mm *a, int r0, int r1);
/* x[k] -> one quantised activation row (k % 32 == 0) */
typedef void (*kern_quant_fn)(const float *x, int k, uint8_t *out);

/* Causal attention of g query heads that share one KV head, for nq >= 1
 * consecutive tokens of one sequence: token b (0..nq-1) sees the cached
 * positions 0..n+b-1 (n >= 1), and for each of its heads h,
 *   s_j = scale * dot(q_bh, K_j),  p = softmax(s),  out_bh = sum_j p_j V_j
 * K_j, V_j: rows of d values (f16 if kv_f16, else f32), stride bytes
 * apart. q_bh = q + b * q_tstride + h * q_stride (floats), out likewise.
 * s: scratch of g * nq * (n + nq - 1) floats. Several tokens in one call
 * let a kernel convert each K and V row once for all of them (prefill). */
struct kern_attn {
    const float *q;
    size_t q_stride;
    float *out;
    size_t out_stride;
    const uint8_t *k, *v;
    size_t stride;
    int kv_f16;
    int n, d, g;
    float scale;
    float *s;
    int nq;
    size_t q_tstride, out_tstride;
    float *work; /* attn_block only: kern_attn_block_floats(d) floats, 64-byte aligned */
};

/* kern_table.attn_block takes the g * nq query rows of a call as the lanes
 * of KAB_LANES (g a power of two <= KAB_LANES / 16, nq <= KAB_LANES / g)
 * and the cached positions in blocks of KAB_POS. */
#define KAB_LANES 64
#define KAB_POS 64
/* Floats of attn_block's scratch for heads of d values. */
size_t kern_attn_block_floats(int d);

/* The dispatch table. Every entry is filled with the scalar reference by
 * kern_table_init_ref and may be replaced by an ISA variant. */
struct kern_table {
    const char *name;          /* e.g. "avx2+fma+f16c"; for the log */
    kern_mm_fn mm[KQ_COUNT];   /* matrix product per weight type */
    enum kq_type q8_type;      /* layout for --quant q8: KQ_Q8 or KQ_Q8I */
    enum kq_type q4_type;      /* layout for --quant q4: KQ_Q4 or KQ_Q4I */
    kern_quant_fn quant_act;   /* x -> KA_Q8 */
    kern_quant_fn quant_act_i; /* x -> KA_Q8I */
    /* KV cache helpers over one head of d values */
    float (*dot_f16)(const float *q, const uint16_t *k, int d);
    float (*dot_f32)(const float *q, const float *k, int d);
    void (*axpy_f16)(float a, const uint16_t *v, float *out, int d); /* out += a*v */
    void (*axpy_f32)(float a, const float *v, float *out, int d);
    void (*f32_to_f16)(const float *x, uint16_t *out, int n);
    void (*silu_mul)(float *a, const float *b, int n); /* kern_silu_mul */
    /* kern_rmsnorm, kern_rope */
    void (*rmsnorm)(const float *x, const float *w, int n, float eps, float *out);
    void (*rope)(float *x, const float *cos_t, const float *sin_t, int d);
    /* fused attention (optional: NULL means the caller composes it from
     * dot_* and axpy_*: kern_attn_composed) */
    void (*attn)(const struct kern_attn *a);
    /* optional: the same for a prefill call whose query rows fill vector
     * lanes (see KAB_LANES; a->work set) */
    void (*attn_block)(const struct kern_attn *a);
    /* optional (NULL unless the CPU has a fast bf16 dot product): BF16
     * weights with f32 activations rounded to bf16 (round to nearest
     * even), the exact products summed in f32, as kern_mm_ref_bf16_act.
     * Less exact than mm[KQ_BF16]; used for prefill when --bf16-act asks. */
    kern_mm_fn mm_bf16_act;
    /* optional pair (NULL unless a variant has them): BF16 weights times
     * activations given as panels (a->xp, built by panel), the same
     * products as mm[KQ_BF16] summed in another order. For prefill: the
     * panel build is paid once per input and all of the weight matrix. */
    kern_panel_fn panel;
    kern_mm_fn mm_bf16_panel;
    /* optional trio (NULL unless the CPU has bf16 and int8 dot products):
     * split panels (above), the weight rows' numbers, and BF16 weights
     * times the panels (a->sp, a->rs, a->wq), as kern_mm_ref_bf16_split
     * up to float summation order */
    kern_split_fn split;
    kern_split_rows_fn split_rows;
    kern_mm_fn mm_bf16_split;
};

/* ---- scalar references (the spec and the test oracle) ---------------- */
void kern_table_init_ref(struct kern_table *t);

void kern_mm_ref_f32(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_bf16(const struct kern_mm *a, int r0, int r1);
/* BF16 weights, each activation first rounded to bf16 (kern_f32_to_bf16);
 * the reference of kern_table.mm_bf16_act (not in the table by default). */
void kern_mm_ref_bf16_act(const struct kern_mm *a, int r0, int r1);
/* The split product's numerics (see split panels) from the f32 rows a->x;
 * the reference of kern_table.mm_bf16_split (not in the table). */
void kern_mm_ref_bf16_split(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_f16(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_q8(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_q4(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_q8i(const struct kern_mm *a, int r0, int r1);
void kern_mm_ref_q4i(const struct kern_mm *a, int r0, int r1);
void kern_quant_act_ref(const float *x, int k, uint8_t *out);
void kern_quant_act_i_ref(const float *x, int k, uint8_t *out);
float kern_dot_f16_ref(const float *q, const uint16_t *k, int d);
float kern_dot_f32_ref(const float *q, const float *k, int d);
void kern_axpy_f16_ref(float a, const uint16_t *v, float *out, int d);
void kern_axpy_f32_ref(float a, const float *v, float *out, int d);
void kern_f32_to_f16_ref(const float *x, uint16_t *out, int n);
void kern_attn_ref(const struct kern_attn *a);
/* kern_attn_ref's computation with the table's dot_* and axpy_* (for
 * tables without a fused attention) */
void kern_attn_composed(const struct kern_table *kt, const struct kern_attn *a);

/* Scalar conversions (portable, exact IEEE semantics, round to nearest even). */
float kern_f16_to_f32(uint16_t h);
uint16_t kern_f32_to_f16(float f);
float kern_bf16_to_f32(uint16_t h);
uint16_t kern_f32_to_bf16(float f);

/* Load-time weight quantisation of one row of k floats (k % 32 == 0). */
void kern_quant_row_q8(const float *x, int k, uint8_t *out);
void kern_quant_row_q4(const float *x, int k, uint8_t *out);
/* Any quantised type t (KQ_Q8, KQ_Q4, KQ_Q8I, KQ_Q4I); the interleaved
 * layouts hold exactly the values of their plain counterparts. */
void kern_quant_row(enum kq_type t, const float *x, int k, uint8_t *out);
/* The activation quantiser of table kt for weights of type t (NULL for
 * float weights). */
kern_quant_fn kern_act_quantiser(const struct kern_table *kt, enum kq_type t);
/* Row of k weights of type t -> floats (any type; used for embeddings,
 * load-time conversion and tests). */
void kern_row_to_f32(enum kq_type t, const uint8_t *row, int k, float *out);

/* Quantised activation row (the layout weights of type t take) -> floats. */
void kern_act_to_f32(enum kq_type t, const uint8_t *row, int k, float *out);

/* Small portable ops; kern_silu_mul, kern_rmsnorm and kern_rope are also
 * the references of the table's entries of those names. */
void kern_rmsnorm(const float *x, const float *w, int n, float eps, float *out);
void kern_silu_mul(float *a, const float *b, int n); /* a = silu(a) * b */
/* In-place neox RoPE on one head of d values with cos/sin tables of d/2. */
void kern_rope(float *x, const float *cos_t, const float *sin_t, int d);
/* In-place softmax; returns nothing, handles -inf-free input. */
void kern_softmax(float *x, int n);

/* ---- ISA probing (one implementation per architecture, in arch/) ------ */
/* Replaces entries of t with the best variants this CPU supports and sets
 * t->name. Variants the CPU lacks are never installed. */
void kern_arch_init(struct kern_table *t);

/* For tests: every variant this build has for this CPU, one table each,
 * each starting from the reference. Returns how many were written
 * (at most max). */
int kern_arch_variants(struct kern_table *out, int max);

#endif
