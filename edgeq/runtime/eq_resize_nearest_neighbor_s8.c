/* RESIZE_NEAREST_NEIGHBOR, int8 (any type of one byte): rows[y] and cols[x] (generated, TFLite's
 * GetNearestNeighbor) are output row y's and column x's source row and column. */
#include <string.h>
#include "eq_kernels.h"

eq_status eq_resize_nearest_neighbor_s8(const eq_context *ctx, const int32_t *rows, const int32_t *cols,
                                        const eq_dims *input_dims, const int8_t *input,
                                        const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    const int32_t row_size = in_w * depth;
    int32_t b, y, x;
    (void)ctx;
    if (output_dims->c != depth || output_dims->n != input_dims->n) {
        return EQ_ERROR_ARGUMENT;
    }
    for (y = 0; y < output_dims->h; y++) {
        if (rows[y] < 0 || rows[y] >= in_h) {
            return EQ_ERROR_ARGUMENT;
        }
    }
    for (x = 0; x < output_dims->w; x++) {
        if (cols[x] < 0 || cols[x] >= in_w) {
            return EQ_ERROR_ARGUMENT;
        }
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_h * row_size;
        for (y = 0; y < output_dims->h; y++) {
            const int8_t *row = in_batch + rows[y] * row_size;
            for (x = 0; x < output_dims->w; x++) {
                memcpy(output, row + cols[x] * depth, (size_t)depth);
                output += depth;
            }
        }
    }
    return EQ_OK;
}
