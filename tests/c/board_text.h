/*
 * Text over eq_board.h's port, for the test programs that print their results: a string, and a
 * number in decimal without printf (newlib-nano's pulls in more than the images should hold).
 */
#ifndef EDGEQ_TESTS_BOARD_TEXT_H_
#define EDGEQ_TESTS_BOARD_TEXT_H_

#include <stdint.h>

#include "eq_board.h"

static inline void write_text(const char *text)
{
    uint32_t length = 0u;
    while (text[length] != '\0') {
        ++length;
    }
    eq_port_write((const uint8_t *)text, length);
}

static inline void write_u64(uint64_t value)
{
    uint8_t digits[20];
    uint32_t count = 0u;
    do {
        digits[sizeof(digits) - 1u - count] = (uint8_t)('0' + (uint32_t)(value % 10u));
        value /= 10u;
        ++count;
    } while (value != 0u);
    eq_port_write(&digits[sizeof(digits) - count], count);
}

#endif /* EDGEQ_TESTS_BOARD_TEXT_H_ */
