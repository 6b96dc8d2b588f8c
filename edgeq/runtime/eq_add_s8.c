/* ADD, int8, with broadcasting through per-input strides. Safe in place over an input
 * that is not broadcast: out[i] is written after in[i] is read. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_add_s8(const eq_context *ctx, const eq_add_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output)
{
    const eq_strides *s1 = input1_strides, *s2 = input2_strides;
    int32_t n, h, w, c;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++) {
                const int8_t *a = input1 + n * s1->n + h * s1->h + w * s1->w;
                const int8_t *b = input2 + n * s2->n + h * s2->h + w * s2->w;
                for (c = 0; c < output_dims->c; c++) {
                    *output++ = (int8_t)eq_add_quantized(params, a[c * s1->c], b[c * s2->c]);
                }
            }
        }
    }
    return EQ_OK;
}
