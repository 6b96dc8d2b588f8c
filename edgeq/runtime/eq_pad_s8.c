/* PAD / PADV2, int8, up to 4D (NHWC), constant padding value. */
#include <string.h>
#include "eq_kernels.h"

eq_status eq_pad_s8(const eq_context *ctx, const eq_pad_params *params,
                    const eq_dims *input_dims, const int8_t *input,
                    const eq_dims *output_dims, int8_t *output)
{
    const int32_t *lo = params->before;
    const int8_t pad = (int8_t)params->pad_value;
    const size_t row = (size_t)output_dims->c;
    int32_t n, h, w;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        const int32_t in_n = n - lo[0];
        for (h = 0; h < output_dims->h; h++) {
            const int32_t in_h = h - lo[1];
            for (w = 0; w < output_dims->w; w++) {
                const int32_t in_w = w - lo[2];
                if (in_n < 0 || in_n >= input_dims->n || in_h < 0 || in_h >= input_dims->h ||
                    in_w < 0 || in_w >= input_dims->w) {
                    memset(output, pad, row);
                } else {
                    const int8_t *in = input + ((in_n * input_dims->h + in_h) * input_dims->w + in_w) * input_dims->c;
                    memset(output, pad, (size_t)lo[3]);
                    memcpy(output + lo[3], in, (size_t)input_dims->c);
                    memset(output + lo[3] + input_dims->c, pad, (size_t)params->after[3]);
                }
                output += row;
            }
        }
    }
    return EQ_OK;
}
