/* edgeq serial protocol, device side: framing, resynchronization and the
 * request loop. See docs/serial-protocol.md for the wire format. */
#include "eq_protocol.h"

#include "eq_board.h"

/* A rejected header must fit in the lookback to be scanned again whole. */
typedef char eq_rx_lookback_holds_a_header[(EQ_RX_LOOKBACK >= 6u) ? 1 : -1];

/* CRC-32 by nibbles: 64 bytes of table instead of 1 KiB, at two lookups a byte,
 * which is still far faster than any UART delivers bytes. */
static const uint32_t eq_crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t eq_crc32(uint32_t crc, const uint8_t *data, uint32_t length) {
  uint32_t i;
  crc = ~crc;
  for (i = 0; i < length; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ eq_crc32_nibble[crc & 0x0Fu];
    crc = (crc >> 4) ^ eq_crc32_nibble[crc & 0x0Fu];
  }
  return ~crc;
}

static void eq_put_u32_le(uint8_t *dst, uint32_t value) {
  dst[0] = (uint8_t)(value & 0xFFu);
  dst[1] = (uint8_t)((value >> 8) & 0xFFu);
  dst[2] = (uint8_t)((value >> 16) & 0xFFu);
  dst[3] = (uint8_t)((value >> 24) & 0xFFu);
}

static uint32_t eq_get_u32_le(const uint8_t *src) {
  return (uint32_t)src[0] | ((uint32_t)src[1] << 8) | ((uint32_t)src[2] << 16) |
         ((uint32_t)src[3] << 24);
}

void eq_hello_set_arena_bytes(uint8_t *hello, uint32_t arena_bytes) {
  eq_put_u32_le(hello + EQ_HELLO_ARENA_OFFSET, arena_bytes);
}

/* A frame written as it goes, its CRC folded in part by part: no buffer for a payload whose size
 * depends on the model. */
static uint32_t eq_frame_begin(uint8_t type, uint8_t seq, uint32_t length) {
  uint8_t header[EQ_FRAME_HEADER_BYTES];
  header[0] = EQ_FRAME_MARKER_0;
  header[1] = EQ_FRAME_MARKER_1;
  header[2] = type;
  header[3] = seq;
  eq_put_u32_le(header + 4, length);
  eq_port_write(header, EQ_FRAME_HEADER_BYTES);
  return eq_crc32(0u, header + 2, EQ_FRAME_HEADER_BYTES - 2u);
}

static uint32_t eq_frame_part(uint32_t crc, const uint8_t *data, uint32_t length) {
  if (length == 0u) return crc;
  eq_port_write(data, length);
  return eq_crc32(crc, data, length);
}

static void eq_frame_end(uint32_t crc) {
  uint8_t trailer[EQ_FRAME_CRC_BYTES];
  eq_put_u32_le(trailer, crc);
  eq_port_write(trailer, EQ_FRAME_CRC_BYTES);
}

void eq_send_frame(uint8_t type, uint8_t seq, const uint8_t *part0, uint32_t length0,
                   const uint8_t *part1, uint32_t length1) {
  uint32_t crc = eq_frame_begin(type, seq, length0 + length1);
  crc = eq_frame_part(crc, part0, length0);
  eq_frame_end(eq_frame_part(crc, part1, length1));
}

/* ---- ERROR messages, formatted without stdio ---- */

typedef struct {
  uint8_t text[72];
  uint32_t length;
} eq_text_t;

static void eq_text_str(eq_text_t *t, const char *s) {
  while (*s != '\0' && t->length < sizeof(t->text)) t->text[t->length++] = (uint8_t)*s++;
}

static void eq_text_u32(eq_text_t *t, uint32_t value) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value != 0u);
  while (n > 0 && t->length < sizeof(t->text)) t->text[t->length++] = (uint8_t)digits[--n];
}

static void eq_text_hex8(eq_text_t *t, uint32_t value) {
  static const char hex[] = "0123456789abcdef";
  char s[5];
  s[0] = '0';
  s[1] = 'x';
  s[2] = hex[(value >> 4) & 0x0Fu];
  s[3] = hex[value & 0x0Fu];
  s[4] = '\0';
  eq_text_str(t, s);
}

static void eq_send_error(uint8_t seq, uint16_t code, const eq_text_t *t) {
  uint8_t code_le[2];
  code_le[0] = (uint8_t)(code & 0xFFu);
  code_le[1] = (uint8_t)(code >> 8);
  eq_send_frame(EQ_MSG_ERROR, seq, code_le, 2u, t->text, t->length);
}

/* ---- Receiving ----
 * The payload goes straight into the input tensor, so the receiver cannot keep a
 * whole failed frame to scan again as the host does. It keeps the last
 * EQ_RX_LOOKBACK bytes it consumed instead: enough to find the next request's
 * marker when a few bytes of the previous one were lost (the lost bytes make
 * the receiver eat the start of the next frame as CRC), and the whole header
 * of a frame whose length is rejected. */

typedef struct {
  uint8_t history[EQ_RX_LOOKBACK]; /* ring of the last bytes consumed */
  uint32_t history_next;
  uint8_t replay[EQ_RX_LOOKBACK]; /* consumed bytes to scan again before the port */
  uint32_t replay_pos;
  uint32_t replay_length;
  uint32_t since_marker; /* bytes consumed after the current frame's marker */
} eq_rx_t;

static int eq_rx_getc(eq_rx_t *rx) {
  int c;
  if (rx->replay_pos < rx->replay_length) {
    c = rx->replay[rx->replay_pos++];
  } else {
    c = eq_port_getc();
    if (c < 0) return -1;
  }
  rx->history[rx->history_next] = (uint8_t)c;
  rx->history_next = (rx->history_next + 1u) % EQ_RX_LOOKBACK;
  rx->since_marker++;
  return c;
}

/* Arranges for the bytes consumed after the failed frame's marker (at most the
 * last EQ_RX_LOOKBACK of them) to be scanned again, ahead of any replay not yet
 * read. When replay is left unread, every byte since the marker came from it, so
 * both fit in the replay buffer together. */
static void eq_rx_rescan(eq_rx_t *rx) {
  uint8_t merged[EQ_RX_LOOKBACK];
  uint32_t unread = rx->replay_length - rx->replay_pos;
  uint32_t keep = rx->since_marker < EQ_RX_LOOKBACK ? rx->since_marker : EQ_RX_LOOKBACK;
  uint32_t i;
  if (keep + unread > EQ_RX_LOOKBACK) keep = EQ_RX_LOOKBACK - unread;
  for (i = 0; i < keep; ++i) {
    merged[i] = rx->history[(rx->history_next + EQ_RX_LOOKBACK - keep + i) % EQ_RX_LOOKBACK];
  }
  for (i = 0; i < unread; ++i) merged[keep + i] = rx->replay[rx->replay_pos + i];
  for (i = 0; i < keep + unread; ++i) rx->replay[i] = merged[i];
  rx->replay_pos = 0u;
  rx->replay_length = keep + unread;
}

/* Consumes bytes up to and including the next start marker; -1 at end of input. */
static int eq_rx_find_marker(eq_rx_t *rx) {
  int c = eq_rx_getc(rx);
  for (;;) {
    if (c < 0) return -1;
    if (c == (int)EQ_FRAME_MARKER_0) {
      c = eq_rx_getc(rx);
      if (c == (int)EQ_FRAME_MARKER_1) {
        rx->since_marker = 0u;
        return 0;
      }
      continue; /* c may itself be the first marker byte */
    }
    c = eq_rx_getc(rx);
  }
}

/* Reads n bytes, into dst when it is not NULL, folding them into *crc. */
static int eq_rx_read(eq_rx_t *rx, uint8_t *dst, uint32_t n, uint32_t *crc) {
  uint32_t i;
  for (i = 0; i < n; ++i) {
    uint8_t b;
    int c = eq_rx_getc(rx);
    if (c < 0) return -1;
    b = (uint8_t)c;
    if (dst != 0) dst[i] = b;
    *crc = eq_crc32(*crc, &b, 1u);
  }
  return 0;
}

/* Reads n bytes into the tensors one after the other (what is past their end is dropped), folding
 * them into *crc. */
static int eq_rx_read_tensors(eq_rx_t *rx, const eq_tensor_t *tensors, uint32_t count, uint32_t n,
                              uint32_t *crc) {
  uint32_t k;
  for (k = 0; k < count && n > 0u; ++k) {
    uint32_t take = n < tensors[k].bytes ? n : tensors[k].bytes;
    if (eq_rx_read(rx, tensors[k].data, take, crc) < 0) return -1;
    n -= take;
  }
  return eq_rx_read(rx, 0, n, crc);
}

static uint32_t eq_total_bytes(const eq_tensor_t *tensors, uint32_t count) {
  uint32_t total = 0u;
  uint32_t k;
  for (k = 0; k < count; ++k) total += tensors[k].bytes;
  return total;
}

static int eq_rx_crc_matches(eq_rx_t *rx, uint32_t crc, int *matches) {
  uint8_t trailer[EQ_FRAME_CRC_BYTES];
  uint32_t ignored = 0u;
  if (eq_rx_read(rx, trailer, EQ_FRAME_CRC_BYTES, &ignored) < 0) return -1;
  *matches = eq_get_u32_le(trailer) == crc;
  return 0;
}

/* ---- The request loop ---- */

/* RESULT: cycles u64, then every output's bytes, streamed with the CRC folded in as it goes. */
static void eq_send_result(const eq_server_t *server, uint8_t seq, const uint8_t cycles_le[8]) {
  uint32_t k;
  uint32_t crc = eq_frame_begin(EQ_MSG_RESULT, seq, 8u + eq_total_bytes(server->outputs, server->output_count));
  crc = eq_frame_part(crc, cycles_le, 8u);
  for (k = 0; k < server->output_count; ++k) {
    crc = eq_frame_part(crc, server->outputs[k].data, server->outputs[k].bytes);
  }
  eq_frame_end(crc);
}

/* The measurement window edgeq's QEMU cycle plugin counts in (docs/cycles.md): it finds these two by
 * their addresses, so they must stay real calls; the empty asm keeps the compiler from dropping them. */
__attribute__((noinline)) void eq_measure_begin(void) { __asm__ volatile(""); }
__attribute__((noinline)) void eq_measure_end(void) { __asm__ volatile(""); }

static void eq_answer_infer(const eq_server_t *server, uint8_t seq, uint32_t length) {
  eq_text_t t;
  uint64_t start;
  uint64_t cycles;
  uint8_t cycles_le[8];
  int status;
  uint32_t i;
  uint32_t input_bytes = eq_total_bytes(server->inputs, server->input_count);
  t.length = 0u;
  if (length != input_bytes) {
    eq_text_str(&t, "INFER carries ");
    eq_text_u32(&t, length);
    eq_text_str(&t, " bytes; the inputs take ");
    eq_text_u32(&t, input_bytes);
    eq_send_error(seq, EQ_ERR_INPUT_SIZE, &t);
    return;
  }
  start = eq_board_cycles();
  eq_measure_begin();
  status = server->invoke();
  eq_measure_end();
  cycles = eq_board_cycles() - start;
  if (status != 0) {
    eq_text_str(&t, "invoke returned status ");
    if (status < 0) eq_text_str(&t, "-");
    eq_text_u32(&t, status < 0 ? 0u - (uint32_t)status : (uint32_t)status);
    eq_send_error(seq, EQ_ERR_INVOKE_FAILED, &t);
    return;
  }
  for (i = 0; i < 8u; ++i) cycles_le[i] = (uint8_t)((cycles >> (8u * i)) & 0xFFu);
  eq_send_result(server, seq, cycles_le);
}

/* Boards that paint their stack at reset define these in eq_board.c; the others report 0, unknown. */
__attribute__((weak)) uint32_t eq_board_stack_bytes(void) { return 0u; }
__attribute__((weak)) uint32_t eq_board_stack_peak_bytes(void) { return 0u; }

static void eq_answer_memory(uint8_t seq) {
  uint8_t payload[12] = {EQ_MEMORY_VERSION, 0u, 0u, 0u};
  eq_put_u32_le(payload + 4, eq_board_stack_bytes());
  eq_put_u32_le(payload + 8, eq_board_stack_peak_bytes());
  eq_send_frame(EQ_MSG_MEMORY, seq, payload, sizeof payload, 0, 0u);
}

#ifdef EQ_PROFILE
/* PROFILE: steps u32, then each step's count u32, little-endian like the rest,
 * streamed with the CRC folded in as it goes: no buffer for a payload whose
 * length depends on the model. */
static void eq_answer_profile(const eq_server_t *server, uint8_t seq) {
  const uint32_t *counts = 0;
  uint32_t steps = server->profile(&counts);
  uint8_t word[4];
  uint32_t crc = eq_frame_begin(EQ_MSG_PROFILE, seq, 4u + 4u * steps);
  uint32_t i;
  eq_put_u32_le(word, steps);
  crc = eq_frame_part(crc, word, 4u);
  for (i = 0; i < steps; ++i) {
    eq_put_u32_le(word, counts[i]);
    crc = eq_frame_part(crc, word, 4u);
  }
  eq_frame_end(crc);
}
#endif

static void eq_dispatch(const eq_server_t *server, uint8_t type, uint8_t seq, uint32_t length) {
  eq_text_t t;
  t.length = 0u;
  if (type == EQ_MSG_HELLO_REQUEST) {
    eq_send_frame(EQ_MSG_HELLO, seq, server->hello, server->hello_length, 0, 0u);
  } else if (type == EQ_MSG_INFER) {
    eq_answer_infer(server, seq, length);
  } else if (type == EQ_MSG_MEMORY_REQUEST) {
    eq_answer_memory(seq);
#ifdef EQ_PROFILE
  } else if (type == EQ_MSG_PROFILE_REQUEST) {
    eq_answer_profile(server, seq);
#endif
  } else if (type < 0x80u) {
    eq_text_str(&t, "unknown message type ");
    eq_text_hex8(&t, type);
    eq_send_error(seq, EQ_ERR_UNKNOWN_TYPE, &t);
  }
  /* Types from 0x80 up travel device -> host; one arriving here is an echo of
   * our own output (a terminal left in echo mode), and answering it would loop. */
}

void eq_serve(const eq_server_t *server) {
  eq_rx_t rx;
  uint8_t header[6]; /* type, seq, length */
  eq_text_t t;
  uint32_t input_bytes = eq_total_bytes(server->inputs, server->input_count);
  rx.history_next = 0u;
  rx.replay_pos = 0u;
  rx.replay_length = 0u;
  rx.since_marker = 0u;

  eq_send_frame(EQ_MSG_HELLO, 0u, server->hello, server->hello_length, 0, 0u);
  for (;;) {
    uint32_t crc = 0u;
    uint32_t length;
    int matches;
    if (eq_rx_find_marker(&rx) < 0) return;
    if (eq_rx_read(&rx, header, sizeof(header), &crc) < 0) return;
    length = eq_get_u32_le(header + 2);
    t.length = 0u;
    if (length <= input_bytes) {
      if (eq_rx_read_tensors(&rx, server->inputs, server->input_count, length, &crc) < 0) return;
      if (eq_rx_crc_matches(&rx, crc, &matches) < 0) return;
      if (matches) {
        eq_dispatch(server, header[0], header[1], length);
        continue;
      }
    } else if (length <= EQ_RX_DRAIN_MAX) {
      if (eq_rx_read(&rx, 0, length, &crc) < 0) return;
      if (eq_rx_crc_matches(&rx, crc, &matches) < 0) return;
      if (matches) {
        eq_text_str(&t, "frame of ");
        eq_text_u32(&t, length);
        eq_text_str(&t, " bytes; the inputs take ");
        eq_text_u32(&t, input_bytes);
        eq_send_error(header[1], EQ_ERR_FRAME_TOO_LONG, &t);
        continue;
      }
    } else {
      eq_rx_rescan(&rx); /* a false marker: look again at what followed it */
      continue;
    }
    eq_text_str(&t, "CRC mismatch");
    eq_send_error(header[1], EQ_ERR_BAD_FRAME, &t);
    eq_rx_rescan(&rx);
  }
}
