/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, channel by channel so that the output may
 * be written over the input (output == input).
 *
 * For each (batch, channel) the channel's H*W input values are copied to caller scratch,
 * then every output of that channel is computed from the copy and stored at its NHWC
 * position. An output byte of channel c only ever lands on a channel-c byte of this batch
 * or an earlier one, whose value has already been copied (docs/edgeq-c-memory.md), and
 * bytes of other channels are never written.
 *
 * On DSP cores, filters up to 4 wide and EQ_DW_DSP_ROWS high without horizontal dilation take
 * a row of the window as one word (SXTB16 splits it into lanes 0, 2 and 1, 3) against the
 * channel's filter row, widened once per channel into the same two int16 pairs (a missing
 * fourth tap is 0): two SMLADs a row. A word that would reach past the plane's end (the
 * last pixels of the last rows) takes the byte-wise path instead. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_DSP_ROWS 8

int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dims *input_dims)
{
    return input_dims->h * input_dims->w;
}

#if EQ_DSP
static inline int32_t eq_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* acc + one window row: lanes 0..3 of p against the packed filter row (w02, w13). */
static inline int32_t eq_dw_row_dsp(int32_t acc, const int8_t *p, int32_t w02, int32_t w13)
{
    const uint32_t x = eq_read_s8x4(p);
    return __smlad(eq_lanes13(x), w13, __smlad(eq_lanes02(x), w02, acc));
}
#endif

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
#if EQ_DSP
            const int packed = d_w == 1 && k_w <= 4 && k_h <= EQ_DW_DSP_ROWS;
            int32_t w02[EQ_DW_DSP_ROWS], w13[EQ_DW_DSP_ROWS];
            if (packed) {
                for (ky = 0; ky < k_h; ky++) {
                    int32_t t[4] = {0, 0, 0, 0};
                    for (kx = 0; kx < k_w; kx++) {
                        t[kx] = f[(ky * k_w + kx) * depth];
                    }
                    w02[ky] = eq_pack16(t[0], t[2]);
                    w13[ky] = eq_pack16(t[1], t[3]);
                }
            }
#endif
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
#if EQ_DSP
                        if (packed && (iy0 + (k_h - 1) * d_h) * in_w + ix0 + 4 <= plane_size) {
                            for (ky = 0; ky < k_h; ky++) {
                                acc = eq_dw_row_dsp(acc, p + ky * d_h * in_w, w02[ky], w13[ky]);
                            }
                        } else
#endif
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
