/* CONV_2D with int4 weights in the paired layout (eq_matvec_paired_s4.h) over
 * [output channels][kh * kw * in_c], unpacked in registers; int8 activations. Each output pixel
 * is a matrix-vector product with its window, gathered into a stack buffer as eq_conv_s8 does
 * (taps outside the image the zero point: the folded bias expects them, eq_types.h). */
#include "eq_conv_s8_core.h"
#include "eq_matvec_paired_s4.h"

eq_status eq_conv_paired_s4(const eq_context *ctx, const eq_conv_params *params,
                            const eq_quant_params *quant, const eq_dims *input_dims,
                            const int8_t *input, const eq_dims *filter_dims, const uint32_t *filter,
                            const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t size = filter_dims->h * filter_dims->w * in_c;
    int8_t col[EQ_PAIRED_MAX_DEPTH];
    int32_t b, oy, ox;
    (void)ctx;
    if (filter_dims->c != in_c || filter_dims->n != out_c || size > EQ_PAIRED_MAX_DEPTH) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, 0, size, col);
                eq_matvec_paired_s4(filter, size, out_c, col, bias, quant, params->output_offset,
                                    &params->activation, output + ((b * out_h + oy) * out_w + ox) * out_c);
            }
        }
    }
    return EQ_OK;
}
