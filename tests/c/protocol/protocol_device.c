/* A native stand-in for a flashed board, driven by tests/test_protocol.py: the
 * board API over stdin/stdout and a trivial "model" whose output byte i is the
 * sum (mod 256) of input bytes 2i and 2i+1. The test generates eq_test_hello.h
 * (the HELLO payload from edgeq.protocol.encode_hello and the tensor sizes).
 * An input of all 0xEE makes invoke fail, so the test can reach ERROR 3. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eq_board.h"
#include "eq_protocol.h"
#include "eq_test_hello.h"

static uint8_t input[EQ_TEST_INPUT_BYTES];
static uint8_t output[EQ_TEST_OUTPUT_BYTES];
static uint8_t hello[sizeof(eq_test_hello)]; /* in RAM so the arena can be patched */

static int model_invoke(void) {
  uint32_t i;
  int all_ee = 1;
  for (i = 0; i < EQ_TEST_INPUT_BYTES; ++i) all_ee = all_ee && input[i] == 0xEEu;
  if (all_ee) return 7;
  for (i = 0; i < EQ_TEST_OUTPUT_BYTES; ++i) {
    output[i] = (uint8_t)(input[2u * i] + input[2u * i + 1u]);
  }
  return 0;
}

void eq_board_init(void) {}

static uint8_t rx_buffer[256];
static size_t rx_length;
static size_t rx_pos;

int eq_port_getc(void) {
  if (rx_pos == rx_length) {
    ssize_t n;
    do {
      n = read(STDIN_FILENO, rx_buffer, sizeof(rx_buffer));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return -1; /* EOF, or EIO once the last pty slave closes */
    rx_length = (size_t)n;
    rx_pos = 0;
  }
  return rx_buffer[rx_pos++];
}

void eq_port_write(const uint8_t *data, uint32_t length) {
  while (length > 0u) {
    ssize_t n = write(STDOUT_FILENO, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    length -= (uint32_t)n;
  }
}

uint64_t eq_board_cycles(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(void) {
  eq_server_t server;
  eq_tensor_t inputs[1];
  eq_tensor_t outputs[1];
  eq_board_init();
  inputs[0].data = input;
  inputs[0].bytes = EQ_TEST_INPUT_BYTES;
  outputs[0].data = output;
  outputs[0].bytes = EQ_TEST_OUTPUT_BYTES;
  memcpy(hello, eq_test_hello, sizeof(hello));
  eq_hello_set_arena_bytes(hello, EQ_TEST_ARENA_BYTES);
  server.hello = hello;
  server.hello_length = sizeof(hello);
  server.inputs = inputs;
  server.input_count = 1u;
  server.outputs = outputs;
  server.output_count = 1u;
  server.invoke = model_invoke;
  eq_serve(&server);
  return 0;
}
