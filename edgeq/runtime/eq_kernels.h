/* edgeq-c runtime: the public kernel API. One function per source file.
 * The int8 CONV_2D kernels (eq_conv_s8, eq_conv_add_s8, eq_conv_1x1_in_place_s8, eq_conv_rows_s8)
 * and eq_fully_connected_s8 take their filter blocked (eq_types.h); on cores with the DSP
 * extension their inner loops, and the int8 depthwise ones, use SXTB16/SMLAD (eq_dot_s8.h). */
#ifndef EQ_KERNELS_H
#define EQ_KERNELS_H

#include "eq_types.h"

eq_status eq_conv_s8(const eq_context *ctx, const eq_conv_params *params,
                     const eq_quant_params *quant, const eq_dims *input_dims,
                     const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                     const int32_t *bias, const eq_dims *output_dims, int8_t *output);

/* CONV_2D with the ADD consuming its output fused in (ResNet's residual connection):
 * output = ADD(conv(input), skip) with both ops' quantization; output may be skip. */
eq_status eq_conv_add_s8(const eq_context *ctx, const eq_conv_params *params,
                         const eq_quant_params *quant, const eq_add_params *add,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                         const int8_t *skip, const eq_dims *output_dims, int8_t *output);

/* eq_conv_s8, eq_conv_add_s8 and eq_conv_rows_s8 with the filter widened (eq_types.h), for
 * windows (kernel h * w * input channels) of up to EQ_CONV_COL_BYTES. */
eq_status eq_conv_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                          const eq_quant_params *quant, const eq_dims *input_dims,
                          const int8_t *input, const eq_dims *filter_dims, const int32_t *filter,
                          const int32_t *bias, const eq_dims *output_dims, int8_t *output);
eq_status eq_conv_add_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                              const eq_quant_params *quant, const eq_add_params *add,
                              const eq_dims *input_dims, const int8_t *input,
                              const eq_dims *filter_dims, const int32_t *filter, const int32_t *bias,
                              const int8_t *skip, const eq_dims *output_dims, int8_t *output);
eq_status eq_conv_rows_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                               const eq_quant_params *quant, const eq_dims *input_dims,
                               const int8_t *input, const eq_dims *filter_dims, const int32_t *filter,
                               const int32_t *bias, const eq_dims *output_dims, int8_t *output);

/* In-place variants: output may overlap input as docs/edgeq-c-memory.md derives; they
 * need scratch (sized by *_scratch_size) for the part of the input they copy first. */
int32_t eq_conv_1x1_in_place_s8_scratch_size(const eq_dims *input_dims);
eq_status eq_conv_1x1_in_place_s8(const eq_context *ctx, const eq_conv_params *params,
                                  const eq_quant_params *quant, const eq_dims *input_dims,
                                  const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                                  const int32_t *bias, const eq_dims *output_dims, int8_t *output);
/* The same with the filter widened (eq_types.h); its scratch is eq_conv_1x1_in_place_s8's. */
eq_status eq_conv_1x1_in_place_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims, const int32_t *filter,
                                       const int32_t *bias, const eq_dims *output_dims, int8_t *output);
int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                                   const eq_dims *output_dims);
eq_status eq_depthwise_conv_in_place_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                        const eq_quant_params *quant, const eq_dims *input_dims,
                                        const int8_t *input, const eq_dims *filter_dims,
                                        const int8_t *filter, const int32_t *bias,
                                        const eq_dims *output_dims, int8_t *output);

/* Depth multiplier 1 at strides above 1 on DSP cores, output over the input or in its own bytes:
 * rows straight from the input, each written into place from a ring of rows in scratch. */
int32_t eq_depthwise_conv_strided_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *input_dims,
                                                  const eq_dims *output_dims);
eq_status eq_depthwise_conv_strided_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                                       const int32_t *bias, const eq_dims *output_dims, int8_t *output);

/* Row-buffered variants (batch 1): the output may start before the input's end. */
int32_t eq_conv_rows_s8_scratch_size(const eq_dims *output_dims);
eq_status eq_conv_rows_s8(const eq_context *ctx, const eq_conv_params *params,
                          const eq_quant_params *quant, const eq_dims *input_dims,
                          const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                          const int32_t *bias, const eq_dims *output_dims, int8_t *output);
int32_t eq_depthwise_conv_rows_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                               const eq_dims *output_dims);
eq_status eq_depthwise_conv_rows_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                    const eq_quant_params *quant, const eq_dims *input_dims,
                                    const int8_t *input, const eq_dims *filter_dims,
                                    const int8_t *filter, const int32_t *bias,
                                    const eq_dims *output_dims, int8_t *output);

int32_t eq_depthwise_conv_s8_scratch_size(const eq_dims *output_dims);
eq_status eq_depthwise_conv_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                               const eq_quant_params *quant, const eq_dims *input_dims,
                               const int8_t *input, const eq_dims *filter_dims,
                               const int8_t *filter, const int32_t *bias,
                               const eq_dims *output_dims, int8_t *output);

/* TRANSPOSE_CONV: filter OHWI as TFLite stores it, bias per output channel (may be null) and
 * tap_offsets[c * filter h * filter w + tap] = input_offset * the sum of channel c's weights at
 * that tap, in place of a folded bias (which taps reach a pixel depends on the pixel). dilation
 * is ignored (TRANSPOSE_CONV has none); padding is TFLM's (top, left). No scratch. */
eq_status eq_transpose_conv_s8(const eq_context *ctx, const eq_conv_params *params,
                               const eq_quant_params *quant, const eq_dims *input_dims,
                               const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                               const int32_t *bias, const int32_t *tap_offsets,
                               const eq_dims *output_dims, int8_t *output);

/* The same with the filter widened (eq_types.h). */
eq_status eq_fully_connected_wide_s8(const eq_context *ctx, const eq_fc_params *params,
                                     const eq_quant_params *quant, const eq_dims *input_dims,
                                     const int8_t *input, const eq_dims *filter_dims,
                                     const int32_t *filter, const int32_t *bias,
                                     const eq_dims *output_dims, int8_t *output);
eq_status eq_fully_connected_s8(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output);

eq_status eq_avg_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output);

eq_status eq_max_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output);

eq_status eq_add_s8(const eq_context *ctx, const eq_add_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output);

eq_status eq_mul_s8(const eq_context *ctx, const eq_mul_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output);

eq_status eq_softmax_s8(const eq_context *ctx, const eq_softmax_params *params,
                        int32_t rows, int32_t depth, const int8_t *input, int8_t *output);

/* Copies `count` inputs along one axis: outer_size rows, each input contributing
 * copy_sizes[i] bytes per row. */
eq_status eq_concatenation_s8(const eq_context *ctx, int32_t count, const int8_t *const *inputs,
                              const int32_t *copy_sizes, int32_t outer_size, int8_t *output);

eq_status eq_pad_s8(const eq_context *ctx, const eq_pad_params *params,
                    const eq_dims *input_dims, const int8_t *input,
                    const eq_dims *output_dims, int8_t *output);

/* RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR with each output row's and column's source
 * rows and columns (and, bilinear, weights) from generated tables: see their files. */
eq_status eq_resize_bilinear_s8(const eq_context *ctx, const int32_t *rows, const int32_t *cols,
                                const eq_dims *input_dims, const int8_t *input,
                                const eq_dims *output_dims, int8_t *output);
eq_status eq_resize_nearest_neighbor_s8(const eq_context *ctx, const int32_t *rows, const int32_t *cols,
                                        const eq_dims *input_dims, const int8_t *input,
                                        const eq_dims *output_dims, int8_t *output);

eq_status eq_mean_s8(const eq_context *ctx, const eq_mean_params *params,
                     const eq_dims *input_dims, const int8_t *input,
                     const eq_dims *output_dims, int8_t *output);

/* out[i] = table[(uint8_t)in[i]]: any int8 -> int8 element-wise function. */
eq_status eq_lut_s8(const eq_context *ctx, const int8_t *table, int32_t size,
                    const int8_t *input, int8_t *output);

eq_status eq_quantize_f32_s8(const eq_context *ctx, const eq_affine_params *params,
                             int32_t size, const float *input, int8_t *output);

eq_status eq_dequantize_s8_f32(const eq_context *ctx, const eq_affine_params *params,
                               int32_t size, const int8_t *input, float *output);

/* int16x8: int16 activations (zero point 0), int8 weights, int64 bias. */
eq_status eq_conv_s16(const eq_context *ctx, const eq_conv_params *params,
                      const eq_quant_params *quant, const eq_dims *input_dims,
                      const int16_t *input, const eq_dims *filter_dims, const int8_t *filter,
                      const int64_t *bias, const eq_dims *output_dims, int16_t *output);
eq_status eq_depthwise_conv_s16(const eq_context *ctx, const eq_dw_conv_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int16_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int64_t *bias,
                                const eq_dims *output_dims, int16_t *output);
eq_status eq_fully_connected_s16(const eq_context *ctx, const eq_fc_params *params,
                                 const eq_quant_params *quant, const eq_dims *input_dims,
                                 const int16_t *input, const eq_dims *filter_dims,
                                 const int8_t *filter, const int64_t *bias,
                                 const eq_dims *output_dims, int16_t *output);
eq_status eq_add_s16(const eq_context *ctx, const eq_add_params *params,
                     const eq_strides *input1_strides, const int16_t *input1,
                     const eq_strides *input2_strides, const int16_t *input2,
                     const eq_dims *output_dims, int16_t *output);

eq_status eq_quantize_f32_s16(const eq_context *ctx, const eq_affine_params *params,
                              int32_t size, const float *input, int16_t *output);
eq_status eq_dequantize_s16_f32(const eq_context *ctx, const eq_affine_params *params,
                                int32_t size, const int16_t *input, float *output);

/* Packed int4 weights (two a byte, low nibble first), int8 activations. The filter of
 * one output channel is unpacked into caller scratch, then run as int8. */
int32_t eq_conv_s4_scratch_size(const eq_dims *filter_dims);
eq_status eq_conv_s4(const eq_context *ctx, const eq_conv_params *params,
                     const eq_quant_params *quant, const eq_dims *input_dims,
                     const int8_t *input, const eq_dims *filter_dims, const uint8_t *packed_filter,
                     const int32_t *bias, const eq_dims *output_dims, int8_t *output);
int32_t eq_fully_connected_s4_scratch_size(const eq_dims *filter_dims);
eq_status eq_fully_connected_s4(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const uint8_t *packed_filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output);
/* The same two with the int4 weights in the paired layout (eq_matvec_paired_s4.h), windows and
 * rows of up to 1024 weights; no scratch. */
eq_status eq_conv_paired_s4(const eq_context *ctx, const eq_conv_params *params,
                            const eq_quant_params *quant, const eq_dims *input_dims,
                            const int8_t *input, const eq_dims *filter_dims, const uint32_t *filter,
                            const int32_t *bias, const eq_dims *output_dims, int8_t *output);
eq_status eq_fully_connected_paired_s4(const eq_context *ctx, const eq_fc_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims,
                                       const uint32_t *filter, const int32_t *bias,
                                       const eq_dims *output_dims, int8_t *output);

/* float32 */
eq_status eq_conv_f32(const eq_context *ctx, const eq_conv_params *params,
                      const eq_activation_f32 *activation, const eq_dims *input_dims,
                      const float *input, const eq_dims *filter_dims, const float *filter,
                      const float *bias, const eq_dims *output_dims, float *output);
eq_status eq_depthwise_conv_f32(const eq_context *ctx, const eq_dw_conv_params *params,
                                const eq_activation_f32 *activation, const eq_dims *input_dims,
                                const float *input, const eq_dims *filter_dims, const float *filter,
                                const float *bias, const eq_dims *output_dims, float *output);
eq_status eq_fully_connected_f32(const eq_context *ctx, const eq_activation_f32 *activation,
                                 const eq_dims *input_dims, const float *input,
                                 const eq_dims *filter_dims, const float *filter,
                                 const float *bias, const eq_dims *output_dims, float *output);
eq_status eq_avg_pool_f32(const eq_context *ctx, const eq_pool_params *params,
                          const eq_activation_f32 *activation, const eq_dims *input_dims,
                          const float *input, const eq_dims *output_dims, float *output);
eq_status eq_max_pool_f32(const eq_context *ctx, const eq_pool_params *params,
                          const eq_activation_f32 *activation, const eq_dims *input_dims,
                          const float *input, const eq_dims *output_dims, float *output);
eq_status eq_add_f32(const eq_context *ctx, const eq_activation_f32 *activation,
                     const eq_strides *input1_strides, const float *input1,
                     const eq_strides *input2_strides, const float *input2,
                     const eq_dims *output_dims, float *output);
eq_status eq_softmax_f32(const eq_context *ctx, float beta, int32_t rows, int32_t depth,
                         const float *input, float *output);

#endif /* EQ_KERNELS_H */
