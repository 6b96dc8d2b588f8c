/* RESIZE_BILINEAR, int8: TFLite's integer interpolation (ResizeBilinearInteger), input and
 * output sharing scale and zero point.
 *
 * rows[3 * y] and rows[3 * y + 1] (generated) are output row y's two source rows y0 <= y1,
 * rows[3 * y + 2] the weight dy of y1 in 1/1024 (y0's is 1024 - dy); cols the same for the
 * columns. The weighted sum is in 1/2^20 and rounds half away from zero, as the reference
 * (without TFLITE_SINGLE_ROUNDING) does. Weights may leave [0, 1024] at a border, where y0 = y1:
 * the generator bounds them so that the sum fits in int32. */
#include "eq_kernels.h"
#include "eq_math.h"

EQ_VECTORIZE eq_status eq_resize_bilinear_s8(const eq_context *ctx, const int32_t *rows, const int32_t *cols,
                                             const eq_dims *input_dims, const int8_t *input,
                                             const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    const int32_t row_size = in_w * depth;
    int32_t b, y, x, c;
    (void)ctx;
    if (output_dims->c != depth || output_dims->n != input_dims->n) {
        return EQ_ERROR_ARGUMENT;
    }
    for (y = 0; y < output_dims->h; y++) {
        if (rows[3 * y] < 0 || rows[3 * y] >= in_h || rows[3 * y + 1] < 0 || rows[3 * y + 1] >= in_h) {
            return EQ_ERROR_ARGUMENT;
        }
    }
    for (x = 0; x < output_dims->w; x++) {
        if (cols[3 * x] < 0 || cols[3 * x] >= in_w || cols[3 * x + 1] < 0 || cols[3 * x + 1] >= in_w) {
            return EQ_ERROR_ARGUMENT;
        }
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_h * row_size;
        for (y = 0; y < output_dims->h; y++) {
            const int8_t *row0 = in_batch + rows[3 * y] * row_size;
            const int8_t *row1 = in_batch + rows[3 * y + 1] * row_size;
            const int32_t wy1 = rows[3 * y + 2], wy0 = 1024 - wy1;
            for (x = 0; x < output_dims->w; x++) {
                const int32_t x0 = cols[3 * x] * depth, x1 = cols[3 * x + 1] * depth;
                const int32_t wx1 = cols[3 * x + 2], wx0 = 1024 - wx1;
                const int32_t w00 = wy0 * wx0, w10 = wy1 * wx0, w01 = wy0 * wx1, w11 = wy1 * wx1;
                const int8_t *p00 = row0 + x0, *p10 = row1 + x0, *p01 = row0 + x1, *p11 = row1 + x1;
                for (c = 0; c < depth; c++) {
                    const int32_t sum = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
                    output[c] = (int8_t)((sum + (sum > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
                }
                output += depth;
            }
        }
    }
    return EQ_OK;
}
