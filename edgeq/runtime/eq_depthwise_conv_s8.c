/* DEPTHWISE_CONV_2D, int8, any depth multiplier and dilation.
 * Accumulates a whole pixel's output channels at once in caller scratch so the inner
 * loop runs over contiguous channels of filter and input. On DSP cores, depth multiplier 1
 * instead keeps four channels' sums in registers over the window: one word of input and one
 * of filter per tap, widened by SXTB16 and multiplied lane by lane with SMLABB/SMLATT. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

static inline int8_t eq_dw_s8_output(int32_t acc, const eq_dw_conv_params *params, const eq_quant_params *quant,
                                     int32_t c)
{
    acc = eq_requantize_channel(acc, quant, c) + params->output_offset;
    return (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
}

#if EQ_DSP
/* acc[0..3] += four channels' window, all taps inside the image, no dilation: its own function
 * so that the few values live in the loop stay in registers at -Os. */
static void eq_dw_s8_window4_dsp(const int8_t *x, const int8_t *f, int32_t k_h, int32_t k_w, int32_t channels,
                                 int32_t row_skip, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ky++, x += row_skip) {
        for (kx = 0; kx < k_w; kx++, x += channels, f += channels) {
            const uint32_t xv = eq_read_s8x4(x), w = eq_read_s8x4(f);
            const int32_t x02 = eq_lanes02(xv), w02 = eq_lanes02(w);
            const int32_t x13 = eq_lanes13(xv), w13 = eq_lanes13(w);
            a0 = __smlabb(x02, w02, a0);
            a2 = __smlatt(x02, w02, a2);
            a1 = __smlabb(x13, w13, a1);
            a3 = __smlatt(x13, w13, a3);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One output pixel, depth multiplier 1. A tap outside the image reads the zero point in
 * every lane (the folded bias expects it: eq_types.h). */
static void eq_dw_s8_pixel_dsp(const eq_dw_conv_params *params, const eq_quant_params *quant,
                               const eq_dims *input_dims, const int8_t *in_batch, const eq_dims *filter_dims,
                               const int8_t *filter, const int32_t *bias, int32_t iy0, int32_t ix0, int32_t channels,
                               int8_t *out)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t zero_point = -params->input_offset;
    const uint32_t pad = (uint32_t)(uint8_t)zero_point * 0x01010101u;
    const int inside = iy0 >= 0 && iy0 + (k_h - 1) * params->dilation.h < in_h && ix0 >= 0 &&
                       ix0 + (k_w - 1) * params->dilation.w < in_w;
    const int32_t row_step = params->dilation.h * in_w * channels;
    int32_t c, ky, kx;
    for (c = 0; c + 4 <= channels; c += 4) {
        int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
        if (inside && params->dilation.w == 1) {
            int32_t acc[4];
            acc[0] = a0;
            acc[1] = a1;
            acc[2] = a2;
            acc[3] = a3;
            eq_dw_s8_window4_dsp(in_batch + (iy0 * in_w + ix0) * channels + c, filter + c, k_h, k_w, channels,
                                 row_step - k_w * channels, acc);
            a0 = acc[0];
            a1 = acc[1];
            a2 = acc[2];
            a3 = acc[3];
            out[c] = eq_dw_s8_output(a0, params, quant, c);
            out[c + 1] = eq_dw_s8_output(a1, params, quant, c + 1);
            out[c + 2] = eq_dw_s8_output(a2, params, quant, c + 2);
            out[c + 3] = eq_dw_s8_output(a3, params, quant, c + 3);
            continue;
        }
        for (ky = 0; ky < k_h; ky++) {
            const int32_t iy = iy0 + ky * params->dilation.h;
            const int row_inside = iy >= 0 && iy < in_h;
            const int8_t *f = filter + ky * k_w * channels + c;
            for (kx = 0; kx < k_w; kx++) {
                const int32_t ix = ix0 + kx * params->dilation.w;
                const uint32_t x = (row_inside && ix >= 0 && ix < in_w)
                                       ? eq_read_s8x4(in_batch + (iy * in_w + ix) * channels + c) : pad;
                const uint32_t w = eq_read_s8x4(f + kx * channels);
                const int32_t x02 = eq_lanes02(x), w02 = eq_lanes02(w);
                const int32_t x13 = eq_lanes13(x), w13 = eq_lanes13(w);
                a0 = __smlabb(x02, w02, a0);
                a2 = __smlatt(x02, w02, a2);
                a1 = __smlabb(x13, w13, a1);
                a3 = __smlatt(x13, w13, a3);
            }
        }
        out[c] = eq_dw_s8_output(a0, params, quant, c);
        out[c + 1] = eq_dw_s8_output(a1, params, quant, c + 1);
        out[c + 2] = eq_dw_s8_output(a2, params, quant, c + 2);
        out[c + 3] = eq_dw_s8_output(a3, params, quant, c + 3);
    }
    for (; c < channels; c++) {
        int32_t acc = bias[c];
        for (ky = 0; ky < k_h; ky++) {
            const int32_t iy = iy0 + ky * params->dilation.h;
            for (kx = 0; kx < k_w; kx++) {
                const int32_t ix = ix0 + kx * params->dilation.w;
                const int32_t x = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
                                      ? in_batch[(iy * in_w + ix) * channels + c] : zero_point;
                acc += (int32_t)filter[(ky * k_w + kx) * channels + c] * x;
            }
        }
        out[c] = eq_dw_s8_output(acc, params, quant, c);
    }
}
#endif

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
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                int8_t *out = output + (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
#if EQ_DSP
                if (mult == 1) {
                    eq_dw_s8_pixel_dsp(params, quant, input_dims, in_batch, filter_dims, filter, bias, iy0, ix0,
                                       out_c, out);
                    continue;
                }
#endif
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
                    out[c] = eq_dw_s8_output(acc[c], params, quant, c);
                }
            }
        }
    }
    return EQ_OK;
}
