/* Any int8 -> int8 element-wise function as a 256-entry table indexed by the input's
 * bit pattern (0..127 then -128..-1). Safe in place (input == output). */
#include "eq_kernels.h"

eq_status eq_lut_s8(const eq_context *ctx, const int8_t *table, int32_t size,
                    const int8_t *input, int8_t *output)
{
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        output[i] = table[(uint8_t)input[i]];
    }
    return EQ_OK;
}
