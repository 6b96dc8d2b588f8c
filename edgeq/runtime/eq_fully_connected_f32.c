/* FULLY_CONNECTED, float32. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_fully_connected_f32(const eq_context *ctx, const eq_activation_f32 *activation,
                                 const eq_dims *input_dims, const float *input,
                                 const eq_dims *filter_dims, const float *filter,
                                 const float *bias, const eq_dims *output_dims, float *output)
{
    const int32_t depth = filter_dims->c, units = filter_dims->n;
    int32_t b, o, i;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < output_dims->n; b++) {
        for (o = 0; o < units; o++) {
            float total = 0.0f;
            for (i = 0; i < depth; i++) {
                total += input[b * depth + i] * filter[o * depth + i];
            }
            total += bias != 0 ? bias[o] : 0.0f;
            output[b * units + o] = EQ_CLAMP(total, activation->min, activation->max);
        }
    }
    return EQ_OK;
}
