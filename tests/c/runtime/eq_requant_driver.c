/* Reads "x multiplier round right_shift" lines (an eq_requant and an accumulator in its range),
 * prints eq_requantize_bounded_any and, for right shifts of at least 1, eq_requantize_bounded
 * (else the first again), so tests can hold the bounded form to TFLite's arithmetic. */
#include <stdio.h>
#include "eq_math.h"

int main(void)
{
    long x, m, round, shift;
    while (scanf("%ld %ld %ld %ld", &x, &m, &round, &shift) == 4) {
        const eq_requant r = {(int32_t)m, (int32_t)round, (int32_t)shift};
        const int32_t any = eq_requantize_bounded_any((int32_t)x, &r);
        printf("%ld %ld\n", (long)any, (long)(shift >= 1 ? eq_requantize_bounded((int32_t)x, &r) : any));
    }
    return 0;
}
