/*
 * Board bring-up check, written against eq_board.h only. Prints one greeting line:
 *   EQ-BOARD <name> unit=<unit> spin=<counted> spin_instructions=<known> work=<counted> fpu=<n>
 * then answers every byte it receives with that byte + 1, until end of input.
 *
 * spin runs a loop of exactly spin_instructions instructions on Arm (two a turn: subs, bne), which
 * ties eq_board_cycles() to the instruction count under QEMU -icount. work is a fixed C computation
 * whose count must repeat exactly from run to run. fpu exercises floating point, which faults unless
 * the start-up code enabled the FPU.
 *
 * With -DEQ_TEST_FAULT it executes an undefined instruction after the greeting instead.
 */
#include <stdint.h>

#include "eq_board.h"
#include "../board_text.h"

#define SPIN_TURNS 100000u
/* -DWORK_LENGTH=... grows .bss, to build an image too large for its RAM. */
#ifndef WORK_LENGTH
#define WORK_LENGTH 256u
#endif

static void spin(uint32_t turns)
{
#if defined(__arm__)
  __asm__ volatile(
#if defined(__ARM_ARCH_6M__)
      /* GCC passes Armv6-M inline assembly in divided syntax: there SUB is the 16-bit, flag-setting SUBS. */
      "1: sub %0, #1\n\t"
#else
      "1: subs %0, %0, #1\n\t"
#endif
      "bne 1b\n\t"
      : "+r"(turns)
      :
      : "cc");
#else
  volatile uint32_t left = turns;
  while (left != 0u) {
    left = left - 1u;
  }
#endif
}

static uint32_t work(void)
{
  static uint32_t values[WORK_LENGTH];
  uint32_t i;
  uint32_t hash = 2166136261u;
  for (i = 0u; i < WORK_LENGTH; ++i) {
    values[i] = i * 2654435761u;
  }
  for (i = 0u; i < WORK_LENGTH; ++i) {
    hash = (hash ^ values[i]) * 16777619u;
  }
  return hash;
}

static uint32_t float_check(void)
{
  volatile float x = 1.5f;
  volatile float y = 3.0f;
  return (uint32_t)(x * y * 1000.0f);
}

int main(void)
{
  uint64_t start;
  uint64_t spin_cycles;
  uint64_t work_cycles;
  uint32_t hash;
  int byte;

  eq_board_init();

  start = eq_board_cycles();
  spin(SPIN_TURNS);
  spin_cycles = eq_board_cycles() - start;

  start = eq_board_cycles();
  hash = work();
  work_cycles = eq_board_cycles() - start;

  write_text("EQ-BOARD " EQ_BOARD_NAME " unit=" EQ_BOARD_CYCLES_UNIT " spin=");
  write_u64(spin_cycles);
  write_text(" spin_instructions=");
  write_u64(2u * (uint64_t)SPIN_TURNS);
  write_text(" work=");
  write_u64(work_cycles);
  write_text(" hash=");
  write_u64(hash);
  write_text(" fpu=");
  write_u64(float_check());
  write_text("\n");

#if defined(EQ_TEST_FAULT)
  __builtin_trap();
#endif

  for (;;) {
    uint8_t reply;
    byte = eq_port_getc();
    if (byte < 0) {
      return 0;
    }
    reply = (uint8_t)(byte + 1);
    eq_port_write(&reply, 1u);
  }
}
