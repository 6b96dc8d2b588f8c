/* DEPTHWISE_CONV_2D, int16 activations (zero point 0), int8 weights, int64 bias. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_depthwise_conv_s16(const eq_context *ctx, const eq_dw_conv_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int16_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int64_t *bias,
                                const eq_dims *output_dims, int16_t *output)
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
            int64_t acc = 0;
            EQ_FOR_EACH_CONV_TAP(tap, win, params, input_dims, filter_dims,
                                 acc += (int64_t)filter[tap.k * out_c + oc] * input[tap.pixel * in_c + ic];);
            output[win.pixel * out_c + oc] = eq_output_s16(acc, bias, quant, oc, params->output_offset,
                                                           &params->activation);
        }
    });
    return EQ_OK;
}
