/* Reads "x multiplier shift" lines, prints eq_requantize and eq_rounding_divide_by_pot
 * results, so tests can hold eq_math.h to the Python model of TFLite's arithmetic. */
#include <stdio.h>
#include "eq_math.h"

int main(void)
{
    long x, m, s;
    while (scanf("%ld %ld %ld", &x, &m, &s) == 3) {
        const int32_t e = (int32_t)(s < 0 ? -s : s);
        printf("%ld %ld %ld\n", (long)eq_requantize((int32_t)x, (int32_t)m, (int32_t)s),
               (long)eq_rounding_divide_by_pot((int32_t)x, e),
               (long)eq_sat_rounding_doubling_high_mul((int32_t)x, (int32_t)m));
    }
    return 0;
}
