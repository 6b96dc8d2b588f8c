/* TRANSPOSE_CONV, int8 activations and weights (OHWI), per-channel or per-tensor requantization.
 *
 * TFLite's reference scatters every input pixel through the filter into an int32 buffer of the
 * output's size. Here each output pixel gathers instead: with t = output row + top padding, the
 * filter rows that reach it are ky = t mod stride, + stride, ..., each from input row
 * (t - ky) / stride (the same for columns), so a pixel's sums need no scratch. The int32 sums
 * are the reference's in another order, which wraps identically.
 *
 * The input offset is not added in the loop: tap_offsets[c * taps + tap] (generated) is
 * input_offset * the sum of output channel c's weights at that tap, added once for each tap
 * inside the input; taps outside it add nothing, as in the reference. bias may be null. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

/* acc[j] += output channels c..c+n's sums (n of 1 or 4) over the taps that reach the output
 * pixel whose padded position is (ty, tx). */
static EQ_HOT_INLINE void eq_transpose_conv_s8_taps(const eq_conv_params *params, const eq_dims *input_dims,
                                                    const eq_dims *filter_dims, const int8_t *in_batch,
                                                    const int8_t *filter, const int32_t *tap_offsets, int32_t ty,
                                                    int32_t tx, int32_t c, int32_t n, int32_t *acc)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t s_h = params->stride.h, s_w = params->stride.w;
    const int32_t window = taps * in_c;
    int32_t ky, kx, j;
    for (ky = ty % s_h; ky < k_h; ky += s_h) {
        const int32_t iy = (ty - ky) / s_h;
        if (iy < 0) {
            break; /* later rows read further up */
        }
        if (iy >= in_h) {
            continue;
        }
        for (kx = tx % s_w; kx < k_w; kx += s_w) {
            const int32_t ix = (tx - kx) / s_w;
            const int32_t tap = ky * k_w + kx;
            const int8_t *x;
            if (ix < 0) {
                break;
            }
            if (ix >= in_w) {
                continue;
            }
            x = in_batch + (iy * in_w + ix) * in_c;
            if (n == 4) {
                eq_dot4_s8(filter + c * window + tap * in_c, window, x, in_c, acc);
            } else {
                acc[0] = eq_dot_s8(acc[0], filter + c * window + tap * in_c, x, in_c);
            }
            for (j = 0; j < n; j++) {
                acc[j] += tap_offsets[(c + j) * taps + tap];
            }
        }
    }
}

EQ_VECTORIZE eq_status eq_transpose_conv_s8(const eq_context *ctx, const eq_conv_params *params,
                                            const eq_quant_params *quant, const eq_dims *input_dims,
                                            const int8_t *input, const eq_dims *filter_dims,
                                            const int8_t *filter, const int32_t *bias,
                                            const int32_t *tap_offsets, const eq_dims *output_dims,
                                            int8_t *output)
{
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t in_size = input_dims->h * input_dims->w * input_dims->c;
    int32_t b, oy, ox, c, j;
    (void)ctx;
    if (filter_dims->n != out_c || filter_dims->c != input_dims->c || input_dims->n != output_dims->n ||
        params->stride.h < 1 || params->stride.w < 1 || params->padding.h < 0 || params->padding.w < 0) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_size;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t ty = oy + params->padding.h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t tx = ox + params->padding.w;
                int8_t *out = output + ((b * out_h + oy) * out_w + ox) * out_c;
                int32_t acc[4];
                for (c = 0; c + 4 <= out_c; c += 4) {
                    for (j = 0; j < 4; j++) {
                        acc[j] = bias != 0 ? bias[c + j] : 0;
                    }
                    eq_transpose_conv_s8_taps(params, input_dims, filter_dims, in_batch, filter, tap_offsets, ty, tx,
                                              c, 4, acc);
                    for (j = 0; j < 4; j++) {
                        out[c + j] = eq_output_s8(acc[j], quant, c + j, params->output_offset, &params->activation);
                    }
                }
                for (; c < out_c; c++) {
                    acc[0] = bias != 0 ? bias[c] : 0;
                    eq_transpose_conv_s8_taps(params, input_dims, filter_dims, in_batch, filter, tap_offsets, ty, tx,
                                              c, 1, acc);
                    out[c] = eq_output_s8(acc[0], quant, c, params->output_offset, &params->activation);
                }
            }
        }
    }
    return EQ_OK;
}
