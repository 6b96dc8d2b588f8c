/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, channel by channel so that the output may
 * be written over the input (output == input).
 *
 * For each (batch, channel) the channel's H*W input values are copied to caller scratch,
 * then every output of that channel is computed from the copy and stored at its NHWC
 * position. An output byte of channel c only ever lands on a channel-c byte of this batch
 * or an earlier one, whose value has already been copied (docs/edgeq-c-memory.md), and
 * bytes of other channels are never written.
 *
 * Filters of up to EQ_DW_TAPS taps are copied out of the interleaved filter once per channel,
 * with their sum. A window then runs over the taps inside the image only (bounds computed
 * per output, not tested per tap); the taps outside read the zero point (the folded bias
 * expects them: eq_types.h), which adds zero_point * (the filter's sum - the inside taps' sum).
 * On DSP cores, filters up to 4 wide without horizontal dilation take an inside window row as
 * one word (SXTB16 splits it into lanes 0, 2 and 1, 3) against the row's taps widened once per
 * channel into the same two int16 pairs (a missing fourth tap is 0): two SMLADs a row. A word
 * that would reach past the plane's end takes the tap-by-tap path instead. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_TAPS 64
#define EQ_DW_ROWS 16 /* rows of a filter packed for the DSP path */

int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dims *input_dims)
{
    return input_dims->h * input_dims->w;
}

#if EQ_DSP
static inline int32_t eq_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}
#endif

/* First tap index k in [0, taps) whose position start + k * step is >= 0, and the first whose
 * position is >= size: the inside taps are [*k0, *k1). */
static inline void eq_dw_inside(int32_t start, int32_t step, int32_t taps, int32_t size, int32_t *k0, int32_t *k1)
{
    const int32_t lo = start < 0 ? (-start + step - 1) / step : 0;
    const int32_t hi = size - start > 0 ? (size - start + step - 1) / step : 0;
    *k0 = EQ_MIN(lo, taps);
    *k1 = EQ_MAX(*k0, EQ_MIN(hi, taps));
}

#if EQ_DSP
/* Outputs ox.. of output row oy while their windows lie inside the image (ox < ox_hi) and the
 * last window row's word inside the plane: one word and two SMLADs a window row. Returns the
 * first output not computed. */
static int32_t eq_dw_run_dsp(const eq_dw_conv_params *params, int32_t multiplier, int32_t shift, int32_t bias,
                             const eq_dims *input_dims, int32_t k_h, const int8_t *plane, const int32_t *w02,
                             const int32_t *w13, int32_t iy0, int32_t ox, int32_t ox_hi, int8_t *out, int32_t depth)
{
    const int32_t in_w = input_dims->w, s_w = params->stride.w;
    const int32_t row_step = params->dilation.h * in_w;
    const int32_t limit = input_dims->h * in_w - 4 - (iy0 + (k_h - 1) * params->dilation.h) * in_w;
    int32_t ix0 = ox * s_w - params->padding.w;
    const int8_t *p = plane + iy0 * in_w + ix0;
    int32_t ky;
    for (; ox < ox_hi && ix0 <= limit; ox++, ix0 += s_w, p += s_w, out += depth) {
        const int8_t *row = p;
        int32_t acc = bias;
        for (ky = 0; ky < k_h; ky++, row += row_step) {
            const uint32_t x = eq_read_s8x4(row);
            acc = __smlad(eq_lanes13(x), w13[ky], __smlad(eq_lanes02(x), w02[ky], acc));
        }
        acc = eq_requantize(acc, multiplier, shift) + params->output_offset;
        *out = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
    }
    return ox;
}
#endif

/* One channel's outputs from its plane, filter taps w[k_h * k_w] and their sum. */
static void eq_dw_channel(const eq_dw_conv_params *params, int32_t multiplier, int32_t shift, int32_t bias,
                          const eq_dims *input_dims, const eq_dims *filter_dims, const eq_dims *output_dims,
                          const int8_t *plane, const int8_t *w, int32_t w_sum, int8_t *out, int32_t depth)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_w = output_dims->w;
    const int32_t s_h = params->stride.h, s_w = params->stride.w;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t zero_point = -params->input_offset;
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
#if EQ_DSP
    const int packed = d_w == 1 && k_w <= 4 && k_h <= EQ_DW_ROWS;
    int32_t w02[EQ_DW_ROWS], w13[EQ_DW_ROWS];
    int32_t ox_lo = out_w, ox_hi = 0; /* outputs whose windows are inside horizontally */
    if (packed) {
        for (ky = 0; ky < k_h; ky++) {
            const int8_t *row = w + ky * k_w;
            w02[ky] = eq_pack16(row[0], k_w > 2 ? row[2] : 0);
            w13[ky] = eq_pack16(k_w > 1 ? row[1] : 0, k_w > 3 ? row[3] : 0);
        }
        for (ox = 0; ox < out_w; ox++) {
            const int32_t ix0 = ox * s_w - params->padding.w;
            if (ix0 >= 0 && ix0 + (k_w - 1) * d_w < in_w) {
                ox_lo = EQ_MIN(ox_lo, ox);
                ox_hi = ox + 1;
            }
        }
    }
#endif
    for (oy = 0; oy < output_dims->h; oy++) {
        const int32_t iy0 = oy * s_h - params->padding.h;
        eq_dw_inside(iy0, d_h, k_h, in_h, &ky0, &ky1);
        for (ox = 0; ox < out_w; ox++) {
            const int32_t ix0 = ox * s_w - params->padding.w;
            int32_t acc = bias, inside_sum = 0;
#if EQ_DSP
            if (packed && ky0 == 0 && ky1 == k_h && ox >= ox_lo && ox < ox_hi) {
                const int32_t next = eq_dw_run_dsp(params, multiplier, shift, bias, input_dims, k_h, plane, w02, w13,
                                                   iy0, ox, ox_hi, out + (oy * out_w + ox) * depth, depth);
                if (next > ox) {
                    ox = next - 1;
                    continue;
                }
            }
#endif
            eq_dw_inside(ix0, d_w, k_w, in_w, &kx0, &kx1);
            for (ky = ky0; ky < ky1; ky++) {
                const int8_t *p = plane + (iy0 + ky * d_h) * in_w + ix0;
                const int8_t *row = w + ky * k_w;
                for (kx = kx0; kx < kx1; kx++) {
                    acc += (int32_t)row[kx] * (int32_t)p[kx * d_w];
                    inside_sum += row[kx];
                }
            }
            acc += zero_point * (w_sum - inside_sum);
            acc = eq_requantize(acc, multiplier, shift) + params->output_offset;
            out[(oy * out_w + ox) * depth] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
        }
    }
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
    int8_t w[EQ_DW_TAPS];
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
            if (EQ_DSP && k_h * k_w <= EQ_DW_TAPS) {
                int32_t w_sum = 0;
                for (i = 0; i < k_h * k_w; i++) {
                    w[i] = f[i * depth];
                    w_sum += w[i];
                }
                eq_dw_channel(params, multiplier, shift, bias[c], input_dims, filter_dims, output_dims, plane, w,
                              w_sum, out_batch + c, depth);
                continue;
            }
            /* the portable path, and larger filters: inside windows by direct index, the border tap by tap
             * (on the M3 this form is the faster one) */
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
