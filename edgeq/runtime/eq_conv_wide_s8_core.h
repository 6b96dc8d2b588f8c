/* CONV_2D int8 body with the filter widened (eq_types.h), shared by eq_conv_wide_s8,
 * eq_conv_rows_wide_s8 (through eq_conv_wide_s8) and eq_conv_add_wide_s8: every output pixel is
 * eq_matvec_wide_s8's product of the filter with the pixel's window, read in place when it is
 * one run of the input, else gathered into a stack buffer (eq_conv_s8_gather_window, taps
 * outside the image as the zero point). The generator picks these kernels only for windows
 * of up to EQ_CONV_COL_BYTES. */
#ifndef EQ_CONV_WIDE_S8_CORE_H
#define EQ_CONV_WIDE_S8_CORE_H

#include "eq_conv_s8_core.h"
#include "eq_matvec_wide_s8.h"

/* out[j] = ADD(channel c0 + j's own int8 output, skip[j]) for the accumulators acc[0..n), the
 * convolution's and the ADD's requantizations in their bounded forms when both have them. */
static EQ_NOINLINE void eq_output_add_channels_s8(const int32_t *acc, int32_t n, const eq_quant_params *quant,
                                                  int32_t c0, const eq_conv_params *params,
                                                  const eq_add_params *add, const int8_t *skip, int8_t *out)
{
    int32_t j;
    if (quant->bounded != 0 && add->bounded != 0) {
        /* everything loop-invariant in locals: the int8 stores could alias the structs */
        const eq_requant *r = quant->bounded + (quant->per_channel ? c0 : 0);
        const int32_t r_step = quant->per_channel ? 1 : 0;
        const int32_t own_offset = params->output_offset;
        const int32_t lo = params->activation.min, hi = params->activation.max;
        const int32_t add_lo = add->activation.min, add_hi = add->activation.max;
        const int32_t shift = add->left_shift, offset1 = add->input1_offset, offset2 = add->input2_offset;
        const int32_t offset = add->output_offset;
        const eq_requant in1 = add->bounded[0], in2 = add->bounded[1], sum = add->bounded[2];
        for (j = 0; j < n; j++, r += r_step) {
            int32_t own = eq_requantize_bounded(acc[j], r) + own_offset;
            int32_t a, b, v;
            own = own < lo ? lo : own;
            own = own > hi ? hi : own;
            a = eq_requantize_bounded_any((own + offset1) * (1 << shift), &in1);
            b = eq_requantize_bounded_any((skip[j] + offset2) * (1 << shift), &in2);
            v = eq_requantize_bounded_any(a + b, &sum) + offset;
            v = v < add_lo ? add_lo : v;
            out[j] = (int8_t)(v > add_hi ? add_hi : v);
        }
        return;
    }
    for (j = 0; j < n; j++) {
        out[j] = eq_conv_s8_output(acc[j], quant, c0 + j, params, add, skip - c0);
    }
}

/* `skip` (read only when `add` is given) has the output's shape; output may be skip itself. */
static inline eq_status eq_conv_wide_s8_core(const eq_conv_params *params, const eq_quant_params *quant,
                                             const eq_dims *input_dims, const int8_t *input,
                                             const eq_dims *filter_dims, const int32_t *filter,
                                             const int32_t *bias, const eq_dims *output_dims, int8_t *output,
                                             const eq_add_params *add, const int8_t *skip)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t size = k_h * k_w * in_c;
    const int32_t row_words = (size + 3) / 4 * 2;
    const int contiguous_rows = params->dilation.w == 1 && (k_h == 1 || (k_w == in_w && params->dilation.h == 1));
    uint32_t col_words[EQ_CONV_COL_BYTES / 4];
    int32_t acc[EQ_WIDE_UNITS];
#if EQ_DSP
    int32_t xw[EQ_CONV_COL_BYTES / 2]; /* the window widened (eq_widen_s8) */
#endif
    int8_t *col = (int8_t *)col_words;
    int32_t b, oy, ox, o, n;
    if (filter_dims->c != in_c || filter_dims->n != out_c || size > EQ_CONV_COL_BYTES) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + (int32_t)b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            const int rows_inside = iy0 >= 0 && iy0 + (k_h - 1) * params->dilation.h < in_h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                const int32_t pixel = (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
                const int inside = rows_inside && ix0 >= 0 && ix0 + (k_w - 1) * params->dilation.w < in_w;
                const int8_t *window = col;
                if (inside && contiguous_rows) {
                    window = in_batch + (iy0 * in_w + ix0) * in_c;
                } else {
                    eq_conv_s8_gather_window(params, input_dims, filter_dims, in_batch, iy0, ix0, col);
                }
#if EQ_DSP
                eq_widen_s8(window, size, xw);
#endif
                for (o = 0; o < out_c; o += n) {
                    n = EQ_MIN(EQ_WIDE_UNITS, out_c - o);
#if EQ_DSP
                    eq_matvec_wide16_acc(filter + o * row_words, xw, row_words / 2, n, bias + o, acc);
#else
                    eq_matvec_wide_acc(filter + o * row_words, window, size, n, bias + o, acc);
#endif
                    if (add == 0) {
                        eq_output_channels_s8(acc, n, quant, o, params->output_offset, &params->activation,
                                              output + pixel + o);
                    } else {
                        eq_output_add_channels_s8(acc, n, quant, o, params, add, skip + pixel + o, output + pixel + o);
                    }
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_CONV_WIDE_S8_CORE_H */
