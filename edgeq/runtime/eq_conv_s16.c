/* CONV_2D, int16 activations (zero point 0), int8 weights, int64 bias and accumulator:
 * TFLite's 16x8 quantization. Out-of-bounds taps read 0, the zero point. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_conv_s16(const eq_context *ctx, const eq_conv_params *params,
                      const eq_quant_params *quant, const eq_dims *input_dims,
                      const int16_t *input, const eq_dims *filter_dims, const int8_t *filter,
                      const int64_t *bias, const eq_dims *output_dims, int16_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_c = output_dims->c;
    int32_t b, oy, ox, oc, ky, kx, ic;
    (void)ctx;
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        for (oy = 0; oy < output_dims->h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < output_dims->w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                for (oc = 0; oc < out_c; oc++) {
                    const int32_t q = quant->per_channel ? oc : 0;
                    int64_t acc = 0;
                    int32_t v;
                    for (ky = 0; ky < k_h; ky++) {
                        const int32_t iy = iy0 + ky * params->dilation.h;
                        for (kx = 0; kx < k_w; kx++) {
                            const int32_t ix = ix0 + kx * params->dilation.w;
                            const int16_t *in;
                            const int8_t *f = filter + ((oc * k_h + ky) * k_w + kx) * in_c;
                            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                                continue;
                            }
                            in = input + ((b * in_h + iy) * in_w + ix) * in_c;
                            for (ic = 0; ic < in_c; ic++) {
                                acc += (int64_t)((int32_t)f[ic] * (int32_t)in[ic]);
                            }
                        }
                    }
                    if (bias != 0) {
                        acc += bias[oc];
                    }
                    v = eq_requantize_s64(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
                    output[((b * output_dims->h + oy) * output_dims->w + ox) * out_c + oc] =
                        (int16_t)EQ_CLAMP(v, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return EQ_OK;
}
