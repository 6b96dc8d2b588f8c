/* edgeq-c runtime: shared types and conventions.
 *
 * Conventions (said once here, assumed by every eq_* kernel):
 *  - Layout is NHWC for activations. CONV_2D filters are OHWI, DEPTHWISE_CONV_2D
 *    filters are 1HWC (C = input channels * depth multiplier), FULLY_CONNECTED
 *    filters are [output units][input depth], exactly as TFLite stores them, except
 *    where a kernel says it takes them *blocked*: [units][depth] reordered at generation
 *    time so that four output channels are read through one pointer. For each group of
 *    four units, bytes 4i..4i+3 of each of the four rows in turn (16 bytes a step), then the
 *    last depth % 4 bytes of each of the four rows in turn; the last units % 4 rows follow
 *    unchanged. The size is the same. (edgeq.aot.lowering.block_filter makes it.) Kernels
 *    named *_wide_* take them *widened* instead, for the DSP cores: int32 words, each two
 *    int16 weights, ceil(depth / 4) steps of two words a row (a row's weights 4i, 4i+2 in the
 *    low and high half of the first, 4i+1, 4i+3 of the second; zero past the depth), for each
 *    group of four units the four rows' two words in turn a step, the last units % 4 rows
 *    one after the other. (edgeq.aot.lowering.widen_filter makes it.)
 *  - An "offset" is the negative of a zero point: input_offset = -input_zero_point.
 *    output_offset is added after requantization, so it is +output_zero_point.
 *  - Requantization is TFLite's: multiplier is a Q31 value in [2^30, 2^31), shift is
 *    a power-of-two exponent (positive = left shift), double rounding as in
 *    MultiplyByQuantizedMultiplier of tensorflow/lite/kernels/internal/common.cc.
 *  - Convolution-like kernels take the *effective* bias:
 *      bias[c] + input_offset * sum(filter[c])
 *    computed ahead of time; taps outside the input read as the input zero point,
 *    which makes the folded bias exact at borders too.
 *  - int8 values span [-128, 127]; int16 values [-32768, 32767]; int32 accumulators.
 *  - Kernels never allocate. Scratch memory, when a kernel needs it, is sized by the
 *    kernel's *_scratch_size() function and passed in an eq_context by the caller.
 *  - Every kernel returns EQ_OK or a negative eq_status.
 */
#ifndef EQ_TYPES_H
#define EQ_TYPES_H

#include <stdint.h>
#include <stddef.h>

typedef enum {
    EQ_OK = 0,
    EQ_ERROR_ARGUMENT = -1, /* a parameter is outside what the kernel supports */
    EQ_ERROR_SCRATCH = -2   /* the caller's scratch buffer is missing or too small */
} eq_status;

/* A 4D shape, NHWC (or [n, 1, 1, c] for 2D tensors). */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} eq_dims;

typedef struct {
    int32_t w;
    int32_t h;
} eq_tile;

/* Clamp range of the output in quantized units (a fused activation or the type's range). */
typedef struct {
    int32_t min;
    int32_t max;
} eq_activation;

typedef struct {
    void *buf;
    int32_t size;
} eq_context;

/* One channel's requantization in the cheaper form that is exact when the generator has
 * proved |accumulator| < 2^29 and the shift is a right shift of 1 to 31, or 0 for ADD's
 * (eq_requantize_bounded in eq_math.h; edgeq.aot.arith.bounded_requant makes them). */
typedef struct {
    int32_t multiplier;
    int32_t round;       /* 2^(right_shift - 1); 0 for a shift of 0 */
    int32_t right_shift; /* -shift */
} eq_requant;

/* Requantization: one (multiplier, shift) pair per output channel, or one for all. int8
 * kernels use `bounded` instead when it is given (same values, fewer instructions); the
 * generator then leaves multiplier and shift null. */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t per_channel; /* 0: use multiplier[0], shift[0] for every channel */
    const eq_requant *bounded;
} eq_quant_params;

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    eq_tile stride;
    eq_tile padding; /* leading padding (top, left) */
    eq_tile dilation;
    eq_activation activation;
} eq_conv_params;

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t depth_multiplier;
    eq_tile stride;
    eq_tile padding;
    eq_tile dilation;
    eq_activation activation;
} eq_dw_conv_params;

typedef struct {
    int32_t input_offset; /* folded into the bias; kept for symmetry with TFLite */
    int32_t output_offset;
    eq_activation activation;
} eq_fc_params;

typedef struct {
    eq_tile stride;
    eq_tile padding;
    eq_tile filter;
    eq_activation activation;
} eq_pool_params;

/* Element-wise binary ops. Broadcasting: each input has its own element strides over
 * the 4D output index (0 along a broadcast dimension). */
typedef struct {
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t left_shift;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_multiplier;
    int32_t output_shift;
    eq_activation activation;
    const eq_requant *bounded; /* input 1's, input 2's and the output's, when all are bounded; else null */
} eq_add_params;

typedef struct {
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    eq_activation activation;
} eq_mul_params;

typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} eq_strides;

typedef struct {
    /* exp_table[d] = raw Q0.31 exp(-d * input_scale * beta) for d = max - x in [0, 255],
     * exactly as TFLite's gemmlowp arithmetic computes it; 0 where TFLite skips the
     * value (d beyond diff_min). */
    const int32_t *exp_table;
} eq_softmax_params;

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t multiplier; /* already divided by the number of reduced elements */
    int32_t shift;
    int32_t count;      /* number of reduced elements */
    eq_strides reduce;  /* 1 where the dimension is reduced, 0 where it is kept */
} eq_mean_params;

typedef struct {
    int32_t before[4]; /* NHWC padding before each dimension */
    int32_t after[4];
    int32_t pad_value;
} eq_pad_params;

typedef struct {
    float scale;
    int32_t zero_point;
} eq_affine_params;

/* float paths */
typedef struct {
    float min;
    float max;
} eq_activation_f32;

#endif /* EQ_TYPES_H */
