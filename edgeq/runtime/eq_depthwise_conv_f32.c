/* DEPTHWISE_CONV_2D, float32. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_depthwise_conv_f32(const eq_context *ctx, const eq_dw_conv_params *params,
                                const eq_activation_f32 *activation, const eq_dims *input_dims,
                                const float *input, const eq_dims *filter_dims, const float *filter,
                                const float *bias, const eq_dims *output_dims, float *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_c = output_dims->c, mult = params->depth_multiplier;
    int32_t b, oy, ox, oc, ky, kx;
    (void)ctx;
    if (out_c != in_c * mult || filter_dims->c != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        for (oy = 0; oy < output_dims->h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < output_dims->w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                for (oc = 0; oc < out_c; oc++) {
                    const int32_t ic = oc / mult;
                    float total = 0.0f;
                    for (ky = 0; ky < k_h; ky++) {
                        const int32_t iy = iy0 + ky * params->dilation.h;
                        for (kx = 0; kx < k_w; kx++) {
                            const int32_t ix = ix0 + kx * params->dilation.w;
                            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                                total += input[((b * in_h + iy) * in_w + ix) * in_c + ic] *
                                         filter[(ky * k_w + kx) * out_c + oc];
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
