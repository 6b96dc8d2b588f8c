/* CONV_2D, float32. Taps are summed in TFLite's order (row, column, channel) and the
 * bias added last, so results track TFLite's reference kernel closely. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_conv_f32(const eq_context *ctx, const eq_conv_params *params,
                      const eq_activation_f32 *activation, const eq_dims *input_dims,
                      const float *input, const eq_dims *filter_dims, const float *filter,
                      const float *bias, const eq_dims *output_dims, float *output)
{
    const int32_t in_c = input_dims->c, out_c = output_dims->c;
    const int32_t taps = filter_dims->h * filter_dims->w;
    int32_t oc, ic;
    (void)ctx;
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        for (oc = 0; oc < out_c; oc++) {
            float total = 0.0f;
            EQ_FOR_EACH_CONV_TAP(tap, win, params, input_dims, filter_dims, {
                const float *in = input + tap.pixel * in_c;
                const float *f = filter + (oc * taps + tap.k) * in_c;
                for (ic = 0; ic < in_c; ic++) {
                    total += in[ic] * f[ic];
                }
            });
            total += bias != 0 ? bias[oc] : 0.0f;
            output[win.pixel * out_c + oc] = EQ_CLAMP(total, activation->min, activation->max);
        }
    });
    return EQ_OK;
}
