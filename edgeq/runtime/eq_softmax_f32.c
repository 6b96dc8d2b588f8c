/* SOFTMAX, float32: exp((x - max) * beta) over its row sum, as TFLite's reference. */
#include <math.h>
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_softmax_f32(const eq_context *ctx, float beta, int32_t rows, int32_t depth,
                         const float *input, float *output)
{
    int32_t r, c;
    (void)ctx;
    for (r = 0; r < rows; r++) {
        const float *in = input + r * depth;
        float *out = output + r * depth;
        float max = in[0];
        float sum = 0.0f;
        for (c = 1; c < depth; c++) {
            max = EQ_MAX(max, in[c]);
        }
        for (c = 0; c < depth; c++) {
            out[c] = expf((in[c] - max) * beta);
            sum += out[c];
        }
        for (c = 0; c < depth; c++) {
            out[c] = out[c] / sum;
        }
    }
    return EQ_OK;
}
