/* CONV_2D int8 body shared by eq_conv_s8 and eq_conv_add_s8 (static inline: each kernel file
 * compiles its own copy, so a model using only one of them links only one). */
#ifndef EQ_CONV_S8_CORE_H
#define EQ_CONV_S8_CORE_H

#include "eq_kernels.h"
#include "eq_math.h"
#include "eq_dot_s8.h"

/* Sum of filter taps whose input falls outside the image: they read the zero point. */
static inline int32_t eq_conv_s8_padded_tap(const int8_t *f, int32_t n, int32_t zero_point)
{
    int32_t sum = 0;
    int32_t i;
    for (i = 0; i < n; i++) {
        sum += f[i];
    }
    return sum * zero_point;
}

/* The convolution's own int8 output, clamped to its activation range; with a fused ADD,
 * that value then goes through ADD's arithmetic with the skip tensor's value, exactly as
 * the two standalone ops would compute it. */
static inline int8_t eq_conv_s8_output(int32_t acc, const eq_quant_params *quant, int32_t oc,
                                const eq_conv_params *params, const eq_add_params *add, int32_t skip)
{
    const int32_t q = quant->per_channel ? oc : 0;
    acc = eq_requantize(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
    acc = EQ_CLAMP(acc, params->activation.min, params->activation.max);
    return (int8_t)(add != 0 ? eq_add_quantized(add, acc, skip) : acc);
}

/* `skip` (read only when `add` is given) has the output's shape; output may be skip itself. */
static inline eq_status eq_conv_s8_core(const eq_conv_params *params, const eq_quant_params *quant,
                                 const eq_dims *input_dims, const int8_t *input,
                                 const eq_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                                 const eq_dims *output_dims, int8_t *output,
                                 const eq_add_params *add, const int8_t *skip)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t s_h = params->stride.h, s_w = params->stride.w;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t zero_point = -params->input_offset;
    const int32_t filter_size = k_h * k_w * in_c;
    const int32_t row_len = (d_w == 1) ? k_w * in_c : in_c;
    int32_t b, oy, ox, oc, ky, kx;
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + (int32_t)b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * s_h - params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * s_w - params->padding.w;
                const int interior = iy0 >= 0 && iy0 + (k_h - 1) * d_h < in_h && ix0 >= 0 &&
                                     ix0 + (k_w - 1) * d_w < in_w;
                const int32_t pixel = (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
                int8_t *out = output + pixel;
                const int8_t *res = add != 0 ? skip + pixel : 0;
                oc = 0;
                if (interior) {
                    const int8_t *in = in_batch + (iy0 * in_w + ix0) * in_c;
                    for (; oc + 4 <= out_c; oc += 4) {
                        int32_t acc4[4];
                        const int8_t *f = filter + oc * filter_size;
                        int32_t j;
                        for (j = 0; j < 4; j++) {
                            acc4[j] = bias[oc + j];
                        }
                        for (ky = 0; ky < k_h; ky++) {
                            const int8_t *row = in + ky * d_h * in_w * in_c;
                            if (d_w == 1) {
                                eq_dot4_s8(f, filter_size, row, row_len, acc4);
                                f += row_len;
                            } else {
                                for (kx = 0; kx < k_w; kx++) {
                                    eq_dot4_s8(f, filter_size, row + kx * d_w * in_c, in_c, acc4);
                                    f += in_c;
                                }
                            }
                        }
                        for (j = 0; j < 4; j++) {
                            out[oc + j] = eq_conv_s8_output(acc4[j], quant, oc + j, params, add,
                                                                     res != 0 ? res[oc + j] : 0);
                        }
                    }
                }
                for (; oc < out_c; oc++) {
                    const int8_t *f = filter + oc * filter_size;
                    int32_t acc = bias[oc];
                    if (interior) {
                        const int8_t *in = in_batch + (iy0 * in_w + ix0) * in_c;
                        for (ky = 0; ky < k_h; ky++) {
                            const int8_t *row = in + ky * d_h * in_w * in_c;
                            if (d_w == 1) {
                                acc = eq_dot_s8(acc, f, row, row_len);
                                f += row_len;
                            } else {
                                for (kx = 0; kx < k_w; kx++) {
                                    acc = eq_dot_s8(acc, f, row + kx * d_w * in_c, in_c);
                                    f += in_c;
                                }
                            }
                        }
                    } else {
                        for (ky = 0; ky < k_h; ky++) {
                            const int32_t iy = iy0 + ky * d_h;
                            for (kx = 0; kx < k_w; kx++) {
                                const int32_t ix = ix0 + kx * d_w;
                                if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                                    acc = eq_dot_s8(acc, f, in_batch + (iy * in_w + ix) * in_c, in_c);
                                } else {
                                    acc += eq_conv_s8_padded_tap(f, in_c, zero_point);
                                }
                                f += in_c;
                            }
                        }
                    }
                    out[oc] = eq_conv_s8_output(acc, quant, oc, params, add, res != 0 ? res[oc] : 0);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_CONV_S8_CORE_H */
