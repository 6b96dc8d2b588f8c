/* DEPTHWISE_CONV_2D, int8, any depth multiplier and dilation.
 * Accumulates a whole pixel's output channels at once in caller scratch so the inner
 * loop runs over contiguous channels of filter and input. On DSP cores, depth multiplier 1
 * instead runs four channels a pass with their sums in registers (eq_depthwise_across_s8.h). */
#include "eq_kernels.h"
#include "eq_dot_s8.h"
#include "eq_depthwise_across_s8.h"

int32_t eq_depthwise_conv_s8_scratch_size(const eq_dims *output_dims)
{
    return output_dims->c * (int32_t)sizeof(int32_t);
}

EQ_VECTORIZE eq_status eq_depthwise_conv_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                            const eq_quant_params *quant, const eq_dims *input_dims,
                                            const int8_t *input, const eq_dims *filter_dims,
                                            const int8_t *filter, const int32_t *bias,
                                            const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t mult = params->depth_multiplier;
    const int32_t zero_point = -params->input_offset;
    int32_t *acc;
    int32_t b, oy, ox, ky, kx, c, m;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < eq_depthwise_conv_s8_scratch_size(output_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (out_c != in_c * mult || filter_dims->c != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    acc = (int32_t *)ctx->buf;
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + (int32_t)b * in_h * in_w * in_c;
#if EQ_DSP
        if (mult == 1 && eq_dw_rows_s8(params, quant, input_dims, in_batch, filter_dims, filter, bias, 0, out_h,
                                       out_w, output + (int32_t)b * out_h * out_w * out_c) == 0) {
            continue;
        }
#endif
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                int8_t *out = output + (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
                for (c = 0; c < out_c; c++) {
                    acc[c] = bias[c];
                }
                for (ky = 0; ky < k_h; ky++) {
                    const int32_t iy = iy0 + ky * params->dilation.h;
                    for (kx = 0; kx < k_w; kx++) {
                        const int32_t ix = ix0 + kx * params->dilation.w;
                        const int8_t *f = filter + (ky * k_w + kx) * out_c;
                        if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                            const int8_t *in = in_batch + (iy * in_w + ix) * in_c;
                            if (mult == 1) {
                                for (c = 0; c < out_c; c++) {
                                    acc[c] += (int32_t)f[c] * (int32_t)in[c];
                                }
                            } else {
                                for (c = 0; c < in_c; c++) {
                                    const int32_t x = in[c];
                                    for (m = 0; m < mult; m++) {
                                        acc[c * mult + m] += (int32_t)f[c * mult + m] * x;
                                    }
                                }
                            }
                        } else {
                            for (c = 0; c < out_c; c++) {
                                acc[c] += (int32_t)f[c] * zero_point;
                            }
                        }
                    }
                }
                for (c = 0; c < out_c; c++) {
                    out[c] = eq_output_s8(acc[c], quant, c, params->output_offset, &params->activation);
                }
            }
        }
    }
    return EQ_OK;
}
