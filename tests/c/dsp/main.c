/*
 * Runs the int8 kernel cases of the generated cases.c (tests/test_dsp_kernels.py) and prints, for
 * each, one line: "<name> <status> <instructions> <output bytes in hex>", then "END".
 * The same program runs on the host (portable path) and on the emulated boards (DSP path on
 * the M4, M7 and M33), so the lines must agree bit for bit apart from the instruction count.
 */
#include <stdint.h>

#include "eq_board.h"
#include "../board_text.h"
#include "cases.h"

static void emit(const char *name, int status, uint64_t instructions, const int8_t *out, int32_t size)
{
    static const char hex[] = "0123456789abcdef";
    int32_t i;
    write_text(name);
    write_text(status == 0 ? " ok " : " error ");
    write_u64(instructions);
    write_text(" ");
    for (i = 0; i < size; i++) {
        const uint8_t b = (uint8_t)out[i];
        const uint8_t pair[2] = {(uint8_t)hex[b >> 4], (uint8_t)hex[b & 15u]};
        eq_port_write(pair, 2u);
    }
    write_text("\n");
}

int main(void)
{
    eq_board_init();
    write_text("BEGIN\n");
    eq_run_cases(emit, eq_board_cycles);
    write_text("END\n");
    for (;;) {
        if (eq_port_getc() < 0) {
            return 0;
        }
    }
}
