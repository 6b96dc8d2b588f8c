/* CONCATENATION, int8 (TFLite requires equal quantization, so this is a copy). */
#include <string.h>
#include "eq_kernels.h"

eq_status eq_concatenation_s8(const eq_context *ctx, int32_t count, const int8_t *const *inputs,
                              const int32_t *copy_sizes, int32_t outer_size, int8_t *output)
{
    int32_t o, i;
    (void)ctx;
    for (o = 0; o < outer_size; o++) {
        for (i = 0; i < count; i++) {
            memcpy(output, inputs[i] + o * copy_sizes[i], (size_t)copy_sizes[i]);
            output += copy_sizes[i];
        }
    }
    return EQ_OK;
}
