/* CONV_2D int8 body shared by eq_conv_s8 and eq_conv_add_s8 (static inline: each kernel file
 * compiles its own copy, so a model using only one of them links only one). */
#ifndef EQ_CONV_S8_CORE_H
#define EQ_CONV_S8_CORE_H

#include "eq_kernels.h"
#include "eq_math.h"
#include "eq_dot_s8.h"

/* Taps whose input falls outside the image read the zero point (the folded bias expects
 * it: eq_types.h): adds zero_point * sum(f_j[0..n)) to `lanes` (4 or 1) sums, rows `stride` apart. */
static EQ_HOT_INLINE void eq_conv_s8_pad(const int8_t *f, int32_t stride, int32_t lanes, int32_t zero_point, int32_t n,
                                  int32_t *acc)
{
    int32_t j, i;
    if (zero_point == 0 || n <= 0) { /* interior rows have no padded runs: keep them free */
        return;
    }
    for (j = 0; j < lanes; j++) {
        const int8_t *row = f + j * stride;
        int32_t sum = 0;
        for (i = 0; i < n; i++) {
            sum += row[i];
        }
        acc[j] += sum * zero_point;
    }
}

/* acc[j] += f_j . x over n values, for `lanes` (4 or 1) filter rows `stride` apart. */
static EQ_HOT_INLINE void eq_conv_s8_dot(const int8_t *f, int32_t stride, int32_t lanes, const int8_t *x, int32_t n,
                                  int32_t *acc)
{
    if (lanes == 4) {
        eq_dot4_s8(f, stride, x, n, acc);
    } else {
        acc[0] = eq_dot_s8(acc[0], f, x, n);
    }
}

/* Adds one output pixel's window, from input tap (iy0, ix0), to `lanes` output channels' sums.
 * Without horizontal dilation the in-bounds taps of a window row are contiguous in both the
 * input and the filter, so a row is one dot product, padded runs on either side aside; the
 * interior and the border take the same path. */
static EQ_HOT_INLINE void eq_conv_s8_window(const eq_conv_params *params, const eq_dims *input_dims,
                                     const eq_dims *filter_dims, const int8_t *in_batch, int32_t iy0, int32_t ix0,
                                     const int8_t *f, int32_t filter_size, int32_t lanes, int32_t *acc)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t zero_point = -params->input_offset;
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ky++) {
        const int32_t iy = iy0 + ky * d_h;
        const int8_t *frow = f + ky * k_w * in_c;
        if (iy < 0 || iy >= in_h) {
            eq_conv_s8_pad(frow, filter_size, lanes, zero_point, k_w * in_c, acc);
        } else if (d_w == 1) {
            const int32_t kx0 = EQ_MIN(k_w, EQ_MAX(0, -ix0));
            const int32_t kx1 = EQ_MAX(kx0, EQ_MIN(k_w, in_w - ix0));
            eq_conv_s8_pad(frow, filter_size, lanes, zero_point, kx0 * in_c, acc);
            eq_conv_s8_dot(frow + kx0 * in_c, filter_size, lanes, in_batch + (iy * in_w + ix0 + kx0) * in_c,
                           (kx1 - kx0) * in_c, acc);
            eq_conv_s8_pad(frow + kx1 * in_c, filter_size, lanes, zero_point, (k_w - kx1) * in_c, acc);
        } else {
            for (kx = 0; kx < k_w; kx++) {
                const int32_t ix = ix0 + kx * d_w;
                if (ix >= 0 && ix < in_w) {
                    eq_conv_s8_dot(frow + kx * in_c, filter_size, lanes, in_batch + (iy * in_w + ix) * in_c, in_c,
                                   acc);
                } else {
                    eq_conv_s8_pad(frow + kx * in_c, filter_size, lanes, zero_point, in_c, acc);
                }
            }
        }
    }
}

/* The convolution's own int8 output, clamped to its activation range; with a fused ADD,
 * that value then goes through ADD's arithmetic with the skip tensor's value, exactly as
 * the two standalone ops would compute it. */
static EQ_HOT_INLINE int8_t eq_conv_s8_output(int32_t acc, const eq_quant_params *quant, int32_t oc,
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
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t filter_size = filter_dims->h * filter_dims->w * in_c;
    int32_t b, oy, ox, oc, j;
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + (int32_t)b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                const int32_t pixel = (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
                int8_t *out = output + pixel;
                const int8_t *res = add != 0 ? skip + pixel : 0;
                /* Four output channels a pass: each input word is loaded once for four of them. */
                for (oc = 0; oc + 4 <= out_c; oc += 4) {
                    int32_t acc[4];
                    for (j = 0; j < 4; j++) {
                        acc[j] = bias[oc + j];
                    }
                    eq_conv_s8_window(params, input_dims, filter_dims, in_batch, iy0, ix0, filter + oc * filter_size,
                                      filter_size, 4, acc);
                    for (j = 0; j < 4; j++) {
                        out[oc + j] = eq_conv_s8_output(acc[j], quant, oc + j, params, add,
                                                        res != 0 ? res[oc + j] : 0);
                    }
                }
                for (; oc < out_c; oc++) {
                    int32_t acc = bias[oc];
                    eq_conv_s8_window(params, input_dims, filter_dims, in_batch, iy0, ix0, filter + oc * filter_size,
                                      filter_size, 1, &acc);
                    out[oc] = eq_conv_s8_output(acc, quant, oc, params, add, res != 0 ? res[oc] : 0);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_CONV_S8_CORE_H */
