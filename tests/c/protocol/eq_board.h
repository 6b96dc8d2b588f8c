/* The board API as device_api.md fixes it, for building the protocol test
 * driver on its own. The shipped declaration, when present beside
 * eq_protocol.c, is found first and wins (a quoted include searches the
 * including file's directory before -I paths). */
#ifndef EQ_BOARD_H_
#define EQ_BOARD_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void eq_board_init(void);
int eq_port_getc(void);
void eq_port_write(const uint8_t *data, uint32_t length);
uint64_t eq_board_cycles(void);

#ifdef __cplusplus
}
#endif

#endif /* EQ_BOARD_H_ */
