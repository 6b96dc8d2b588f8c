/* CONV_2D, int16 activations (zero point 0), int8 weights, int64 bias and accumulator:
 * TFLite's 16x8 quantization. Out-of-bounds taps read 0, the zero point. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_conv_s16(const eq_context *ctx, const eq_conv_params *params,
                      const eq_quant_params *quant, const eq_dims *input_dims,
                      const int16_t *input, const eq_dims *filter_dims, const int8_t *filter,
                      const int64_t *bias, const eq_dims *output_dims, int16_t *output)
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
            int64_t acc = 0;
            EQ_FOR_EACH_CONV_TAP(tap, win, params, input_dims, filter_dims, {
                const int16_t *in = input + tap.pixel * in_c;
                const int8_t *f = filter + (oc * taps + tap.k) * in_c;
                for (ic = 0; ic < in_c; ic++) {
                    acc += (int64_t)((int32_t)f[ic] * (int32_t)in[ic]);
                }
            });
            output[win.pixel * out_c + oc] = eq_output_s16(acc, bias, quant, oc, params->output_offset,
                                                           &params->activation);
        }
    });
    return EQ_OK;
}
