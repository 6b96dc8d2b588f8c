/* CONV_2D, float32. Taps are summed in TFLite's order (row, column, channel) and the
 * bias added last, so results track TFLite's reference kernel closely. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_conv_f32(const eq_context *ctx, const eq_conv_params *params,
                      const eq_activation_f32 *activation, const eq_dims *input_dims,
                      const float *input, const eq_dims *filter_dims, const float *filter,
                      const float *bias, const eq_dims *output_dims, float *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, out_c = output_dims->c;
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
                    float total = 0.0f;
                    for (ky = 0; ky < k_h; ky++) {
                        const int32_t iy = iy0 + ky * params->dilation.h;
                        for (kx = 0; kx < k_w; kx++) {
                            const int32_t ix = ix0 + kx * params->dilation.w;
                            const float *in;
                            const float *f = filter + ((oc * k_h + ky) * k_w + kx) * in_c;
                            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                                continue;
                            }
                            in = input + ((b * in_h + iy) * in_w + ix) * in_c;
                            for (ic = 0; ic < in_c; ic++) {
                                total += in[ic] * f[ic];
                            }
                        }
                    }
                    total += bias != 0 ? bias[oc] : 0.0f;
                    output[((b * output_dims->h + oy) * output_dims->w + ox) * out_c + oc] =
                        EQ_CLAMP(total, activation->min, activation->max);
                }
            }
        }
    }
    return EQ_OK;
}
