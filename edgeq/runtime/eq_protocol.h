/* The device side of edgeq's serial protocol (docs/serial-protocol.md).
 *
 * Frame: 0xA5 0x5A | type u8 | seq u8 | length u32 LE | payload | CRC-32 u32 LE
 * (IEEE 802.3, the same as zlib.crc32, over type..payload). The device sends
 * HELLO unprompted at start and on each HELLO_REQUEST, and answers each INFER
 * with a RESULT or an ERROR carrying the request's seq.
 *
 * C99, no malloc, no stdio: the only I/O is through the board API in eq_board.h.
 */
#ifndef EQ_PROTOCOL_H_
#define EQ_PROTOCOL_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EQ_FRAME_MARKER_0 0xA5u
#define EQ_FRAME_MARKER_1 0x5Au
#define EQ_FRAME_HEADER_BYTES 8u /* marker, type, seq, length */
#define EQ_FRAME_CRC_BYTES 4u

#define EQ_MSG_HELLO_REQUEST 0x01u
#define EQ_MSG_INFER 0x02u
#define EQ_MSG_PROFILE_REQUEST 0x03u /* EQ_PROFILE builds only; others answer ERROR 5 */
#define EQ_MSG_MEMORY_REQUEST 0x04u
#define EQ_MSG_HELLO 0x81u
#define EQ_MSG_RESULT 0x82u
#define EQ_MSG_PROFILE 0x83u
#define EQ_MSG_MEMORY 0x84u
#define EQ_MSG_ERROR 0xEEu

#define EQ_ERR_BAD_FRAME 1u
#define EQ_ERR_INPUT_SIZE 2u
#define EQ_ERR_INVOKE_FAILED 3u
#define EQ_ERR_FRAME_TOO_LONG 4u
#define EQ_ERR_UNKNOWN_TYPE 5u

/* HELLO payload: version u8, input count u8, output count u8, a reserved byte,
 * arena_bytes u32 at this fixed offset (so a harness can patch the arena it
 * really allocated), clock_hz u32, the model's SHA-256, then strings and the
 * tensor descriptions, inputs then outputs. */
#define EQ_HELLO_VERSION 2u
#define EQ_HELLO_ARENA_OFFSET 4u
#define EQ_HELLO_CLOCK_OFFSET 8u
#define EQ_HELLO_MODEL_HASH_OFFSET 12u

/* MEMORY payload: version u8, 3 reserved bytes, the stack the image reserves u32, the most of it
 * used since reset u32 (0 for both when the board support cannot tell). */
#define EQ_MEMORY_VERSION 1u

/* A frame longer than the input tensor but no longer than this is taken for a
 * real (wrong) request: it is read to its end and answered with ERROR 4. A
 * longer length is taken for a false start marker in noise. */
#ifndef EQ_RX_DRAIN_MAX
#define EQ_RX_DRAIN_MAX 65536u
#endif

/* How many of the bytes consumed after a failed frame's marker the receiver
 * keeps to scan again (the payload itself went into the input tensor). */
#ifndef EQ_RX_LOOKBACK
#define EQ_RX_LOOKBACK 16u
#endif

/* Where one of the model's inputs or outputs lives, and how many bytes it takes. */
typedef struct {
  uint8_t *data;
  uint32_t bytes;
} eq_tensor_t;

typedef struct {
  const uint8_t *hello;
  uint32_t hello_length; /* HELLO payload, generated in Python at codegen time */
  const eq_tensor_t *inputs; /* an INFER payload is every input's bytes, in order */
  uint32_t input_count;
  const eq_tensor_t *outputs; /* RESULT carries every output's bytes, in order, after the cycles */
  uint32_t output_count;
  int (*invoke)(void);   /* 0 = ok */
#ifdef EQ_PROFILE
  /* The count of each step (kernel call or operator) of the last invoke, in
   * eq_board_cycles() units: points *counts at them and returns how many. Only
   * in firmware built for profiling, so the default image stays as it was. */
  uint32_t (*profile)(const uint32_t **counts);
#endif
} eq_server_t;

/* CRC-32 (IEEE 802.3) continued from `crc` over `data`, as zlib.crc32(data, crc):
 * start with 0, feed the previous result to continue. */
uint32_t eq_crc32(uint32_t crc, const uint8_t *data, uint32_t length);

/* Sends one frame whose payload is part0 followed by part1 (either may be empty),
 * so RESULT (cycles, then the output tensor) needs no staging buffer. */
void eq_send_frame(uint8_t type, uint8_t seq, const uint8_t *part0, uint32_t length0,
                   const uint8_t *part1, uint32_t length1);

/* Writes arena_bytes into a HELLO payload kept in RAM, little-endian, at
 * EQ_HELLO_ARENA_OFFSET. */
void eq_hello_set_arena_bytes(uint8_t *hello, uint32_t arena_bytes);

/* Called right before and right after every invoke: empty, never inlined, so that
 * edgeq's QEMU cycle plugin can count what runs between them (docs/cycles.md). */
void eq_measure_begin(void);
void eq_measure_end(void);

/* Sends HELLO, then answers requests. Does not return on a board; it returns
 * only when eq_port_getc() reports the end of input (-1), which only the
 * native host board does, when the host closes its end. */
void eq_serve(const eq_server_t *server);

#ifdef __cplusplus
}
#endif

#endif /* EQ_PROTOCOL_H_ */
