/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, channel by channel so that the output may
 * be written over the input (output == input).
 *
 * For each (batch, channel) the channel's H*W input values are copied to caller scratch,
 * then every output of that channel is computed from the copy and stored at its NHWC
 * position. An output byte of channel c only ever lands on a channel-c byte of this batch
 * or an earlier one, whose value has already been copied (docs/edgeq-c-memory.md), and
 * bytes of other channels are never written. */
#include "eq_kernels.h"
#include "eq_math.h"

int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dims *input_dims)
{
    return input_dims->h * input_dims->w;
}

eq_status eq_depthwise_conv_in_place_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                        const eq_quant_params *quant, const eq_dims *input_dims,
                                        const int8_t *input, const eq_dims *filter_dims,
                                        const int8_t *filter, const int32_t *bias,
                                        const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t s_h = params->stride.h, s_w = params->stride.w;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t zero_point = -params->input_offset;
    const int32_t plane_size = in_h * in_w;
    int8_t *plane;
    int32_t b, c, i, oy, ox, ky, kx;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < eq_depthwise_conv_in_place_s8_scratch_size(input_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (params->depth_multiplier != 1 || output_dims->c != depth || filter_dims->c != depth ||
        out_h * out_w > plane_size) {
        return EQ_ERROR_ARGUMENT;
    }
    plane = (int8_t *)ctx->buf;
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * plane_size * depth;
        int8_t *out_batch = output + b * out_h * out_w * depth;
        for (c = 0; c < depth; c++) {
            const int32_t q = quant->per_channel ? c : 0;
            const int32_t multiplier = quant->multiplier[q], shift = quant->shift[q];
            const int8_t *f = filter + c;
            for (i = 0; i < plane_size; i++) {
                plane[i] = in_batch[i * depth + c];
            }
            for (oy = 0; oy < out_h; oy++) {
                const int32_t iy0 = oy * s_h - params->padding.h;
                const int rows_inside = iy0 >= 0 && iy0 + (k_h - 1) * d_h < in_h;
                for (ox = 0; ox < out_w; ox++) {
                    const int32_t ix0 = ox * s_w - params->padding.w;
                    int32_t acc = bias[c];
                    if (rows_inside && ix0 >= 0 && ix0 + (k_w - 1) * d_w < in_w) {
                        const int8_t *p = plane + iy0 * in_w + ix0;
                        for (ky = 0; ky < k_h; ky++) {
                            for (kx = 0; kx < k_w; kx++) {
                                acc += (int32_t)f[(ky * k_w + kx) * depth] * (int32_t)p[ky * d_h * in_w + kx * d_w];
                            }
                        }
                    } else {
                        for (ky = 0; ky < k_h; ky++) {
                            const int32_t iy = iy0 + ky * d_h;
                            for (kx = 0; kx < k_w; kx++) {
                                const int32_t ix = ix0 + kx * d_w;
                                const int32_t x = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
                                                      ? plane[iy * in_w + ix] : zero_point;
                                acc += (int32_t)f[(ky * k_w + kx) * depth] * x;
                            }
                        }
                    }
                    acc = eq_requantize(acc, multiplier, shift) + params->output_offset;
                    out_batch[(oy * out_w + ox) * depth + c] =
                        (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return EQ_OK;
}
