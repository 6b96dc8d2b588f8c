/* DEPTHWISE_CONV_2D, float32. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_depthwise_conv_f32(const eq_context *ctx, const eq_dw_conv_params *params,
                                const eq_activation_f32 *activation, const eq_dims *input_dims,
                                const float *input, const eq_dims *filter_dims, const float *filter,
                                const float *bias, const eq_dims *output_dims, float *output)
{
    const int32_t in_c = input_dims->c, out_c = output_dims->c, mult = params->depth_multiplier;
    int32_t oc;
    (void)ctx;
    if (out_c != in_c * mult || filter_dims->c != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        for (oc = 0; oc < out_c; oc++) {
            const int32_t ic = oc / mult;
            float total = 0.0f;
            EQ_FOR_EACH_CONV_TAP(tap, win, params, input_dims, filter_dims,
                                 total += input[tap.pixel * in_c + ic] * filter[tap.k * out_c + oc];);
            total += bias != 0 ? bias[oc] : 0.0f;
            output[win.pixel * out_c + oc] = EQ_CLAMP(total, activation->min, activation->max);
        }
    });
    return EQ_OK;
}
