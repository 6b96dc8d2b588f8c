/* MEAN, int8, over any subset of the four NHWC dimensions. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_mean_s8(const eq_context *ctx, const eq_mean_params *params,
                     const eq_dims *input_dims, const int8_t *input,
                     const eq_dims *output_dims, int8_t *output)
{
    const int32_t rn = params->reduce.n ? input_dims->n : 1;
    const int32_t rh = params->reduce.h ? input_dims->h : 1;
    const int32_t rw = params->reduce.w ? input_dims->w : 1;
    const int32_t rc = params->reduce.c ? input_dims->c : 1;
    const int32_t sh = input_dims->w * input_dims->c;
    const int32_t sn = input_dims->h * sh;
    int32_t n, h, w, c, a, b, d, e;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++) {
                for (c = 0; c < output_dims->c; c++) {
                    const int8_t *base = input + n * sn + h * sh + w * input_dims->c + c;
                    int32_t sum = 0;
                    for (a = 0; a < rn; a++) {
                        for (b = 0; b < rh; b++) {
                            for (d = 0; d < rw; d++) {
                                const int8_t *in = base + a * sn + b * sh + d * input_dims->c;
                                for (e = 0; e < rc; e++) {
                                    sum += in[e];
                                }
                            }
                        }
                    }
                    sum += params->input_offset * params->count;
                    sum = eq_requantize(sum, params->multiplier, params->shift) + params->output_offset;
                    *output++ = (int8_t)EQ_CLAMP(sum, -128, 127);
                }
            }
        }
    }
    return EQ_OK;
}
