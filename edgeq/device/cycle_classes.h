/* The Thumb and Thumb-2 instruction classes edgeq's cycle plugin counts, decoded from the encodings
 * of the ARMv7-M Architecture Reference Manual (A5.2 16-bit, A5.3 32-bit; ARMv8-M mainline is the
 * same for everything counted here). Each instruction is in exactly one class; the counters after
 * EQ_CLASSES refine them (pipelined loads, registers moved, conditional and taken branches, loads
 * into the PC). The classes are what the cores' cycle tables price differently, not a full decoder:
 * an encoding this does not know lands in "other". */
#ifndef EQ_CYCLE_CLASSES_H
#define EQ_CYCLE_CLASSES_H

#include <stdint.h>

enum {
  EQ_ALU, EQ_MUL, EQ_MLA, EQ_MULL, EQ_DSP, EQ_DIV, EQ_LDR, EQ_STR, EQ_LDRD, EQ_STRD, EQ_LDM, EQ_STM,
  EQ_BRANCH, EQ_IT, EQ_FPU, EQ_OTHER,
  EQ_CLASSES,
  /* Refinements, each a subset or a sum of the classes above. */
  EQ_LDR_PIPELINED = EQ_CLASSES,  /* a single load right after a single load whose result it does not address with */
  EQ_LDM_REGISTERS, EQ_STM_REGISTERS,
  EQ_BRANCH_CONDITIONAL, EQ_BRANCH_TAKEN,  /* taken: counted as blocks run, not when decoded */
  EQ_PC_LOAD,                              /* POP {..., pc}, LDR pc, TBB, TBH: a load that branches */
  EQ_COUNTERS
};

static const char *const eq_counter_names[EQ_COUNTERS] = {
  [EQ_ALU] = "alu", [EQ_MUL] = "mul", [EQ_MLA] = "mla", [EQ_MULL] = "mull", [EQ_DSP] = "dsp",
  [EQ_DIV] = "div", [EQ_LDR] = "ldr", [EQ_STR] = "str", [EQ_LDRD] = "ldrd", [EQ_STRD] = "strd",
  [EQ_LDM] = "ldm", [EQ_STM] = "stm", [EQ_BRANCH] = "branch", [EQ_IT] = "it", [EQ_FPU] = "fpu",
  [EQ_OTHER] = "other", [EQ_LDR_PIPELINED] = "ldr_pipelined", [EQ_LDM_REGISTERS] = "ldm_registers",
  [EQ_STM_REGISTERS] = "stm_registers", [EQ_BRANCH_CONDITIONAL] = "branch_conditional",
  [EQ_BRANCH_TAKEN] = "branch_taken", [EQ_PC_LOAD] = "pc_load",
};

/* What an instruction does to the PC, for the taken test of the block that follows it. */
enum { EQ_END_NONE, EQ_END_JUMP, EQ_END_CONDITIONAL };

/* What decoding carries from one instruction of a block to the next. */
typedef struct {
  int it_remaining;   /* instructions still inside the current IT block */
  int last_load_rt;   /* the register the previous single load wrote, or -1 */
} eq_decoder_t;

#define EQ_BITS(value, high, low) (((uint32_t)(value) >> (low)) & ((1u << ((high) - (low) + 1)) - 1u))

typedef struct {
  int cls;
  int registers;  /* LDM/STM, PUSH/POP */
  int rt, rn;     /* a single load or store: the data and base registers */
  int jump;       /* a branch (or a load into the PC) */
  int conditional;
} eq_insn_t;

static eq_insn_t eq_insn(int cls) {
  eq_insn_t insn = {cls, 0, -1, -1, 0, 0};
  return insn;
}

static eq_insn_t eq_single(int load, int rt, int rn) {
  eq_insn_t insn = eq_insn(load ? EQ_LDR : EQ_STR);
  insn.rt = rt;
  insn.rn = rn;
  insn.jump = load && rt == 15;
  return insn;
}

static eq_insn_t eq_multiple(int load, uint32_t list) {
  eq_insn_t insn = eq_insn(load ? EQ_LDM : EQ_STM);
  insn.registers = __builtin_popcount(list);
  insn.jump = load && (list & 0x8000u) != 0u;
  return insn;
}

static eq_insn_t eq_branch(int conditional) {
  eq_insn_t insn = eq_insn(EQ_BRANCH);
  insn.jump = 1;
  insn.conditional = conditional;
  return insn;
}

static eq_insn_t eq_decode16(eq_decoder_t *d, uint32_t op) {
  if (EQ_BITS(op, 15, 14) == 0u) return eq_insn(EQ_ALU);  /* shifts, add, subtract, move, compare */
  if (EQ_BITS(op, 15, 10) == 0x10u) return eq_insn(EQ_BITS(op, 9, 6) == 0xDu ? EQ_MUL : EQ_ALU);
  if (EQ_BITS(op, 15, 10) == 0x11u) {  /* high registers, BX, BLX */
    uint32_t rd = EQ_BITS(op, 7, 7) << 3 | EQ_BITS(op, 2, 0);
    if (EQ_BITS(op, 9, 8) == 3u || (EQ_BITS(op, 9, 8) != 1u && rd == 15u)) return eq_branch(0);
    return eq_insn(EQ_ALU);
  }
  if (EQ_BITS(op, 15, 11) == 0x9u) return eq_single(1, (int)EQ_BITS(op, 10, 8), 15);  /* LDR literal */
  if (EQ_BITS(op, 15, 12) == 0x5u) {  /* register offset: STR, STRH, STRB, then the loads */
    return eq_single(EQ_BITS(op, 11, 9) >= 3u, (int)EQ_BITS(op, 2, 0), (int)EQ_BITS(op, 5, 3));
  }
  if (EQ_BITS(op, 15, 13) == 0x3u || EQ_BITS(op, 15, 12) == 0x8u) {
    return eq_single((int)EQ_BITS(op, 11, 11), (int)EQ_BITS(op, 2, 0), (int)EQ_BITS(op, 5, 3));
  }
  if (EQ_BITS(op, 15, 12) == 0x9u) return eq_single((int)EQ_BITS(op, 11, 11), (int)EQ_BITS(op, 10, 8), 13);
  if (EQ_BITS(op, 15, 12) == 0xAu) return eq_insn(EQ_ALU);  /* ADR, ADD SP */
  if (EQ_BITS(op, 15, 12) == 0xBu) {
    if ((op & 0xF500u) == 0xB100u) return eq_branch(1);  /* CBZ, CBNZ */
    if ((op & 0xFE00u) == 0xB400u) return eq_multiple(0, (op & 0xFFu) | (op & 0x100u) << 6);  /* PUSH, LR */
    if ((op & 0xFE00u) == 0xBC00u) return eq_multiple(1, (op & 0xFFu) | (op & 0x100u) << 7);  /* POP, PC */
    if ((op & 0xFF00u) == 0xBF00u) {
      if ((op & 0xFu) == 0u) return eq_insn(EQ_OTHER);  /* NOP, WFI and the other hints */
      d->it_remaining = 4 - __builtin_ctz(op & 0xFu);
      return eq_insn(EQ_IT);
    }
    if ((op & 0xFF00u) == 0xBE00u || (op & 0xFFE8u) == 0xB660u) return eq_insn(EQ_OTHER);  /* BKPT, CPS */
    return eq_insn(EQ_ALU);  /* ADD/SUB SP, SXTB, UXTH, REV, ... */
  }
  if (EQ_BITS(op, 15, 12) == 0xCu) return eq_multiple((int)EQ_BITS(op, 11, 11), op & 0xFFu);
  if (EQ_BITS(op, 15, 12) == 0xDu) return EQ_BITS(op, 11, 9) == 7u ? eq_insn(EQ_OTHER) : eq_branch(1);  /* UDF, SVC */
  if (EQ_BITS(op, 15, 11) == 0x1Cu) return eq_branch(0);
  return eq_insn(EQ_OTHER);
}

static eq_insn_t eq_decode_data_register(uint32_t hw1, uint32_t hw2) {
  uint32_t op1 = EQ_BITS(hw1, 7, 4), op2 = EQ_BITS(hw2, 7, 4);
  if (op1 < 8u && op2 == 0u) return eq_insn(EQ_ALU);  /* LSL, LSR, ASR, ROR by register */
  if (op1 < 8u && (op2 & 8u)) {  /* extend, and extend and add */
    if (op1 == 2u || op1 == 3u || EQ_BITS(hw1, 3, 0) != 15u) return eq_insn(EQ_DSP);  /* SXTB16, SXTAB, ... */
    return eq_insn(EQ_ALU);
  }
  if ((op1 & 8u) && !(op2 & 8u)) return eq_insn(EQ_DSP);  /* SADD16, QSUB8, ... */
  if ((op1 & 0xCu) == 8u && (op2 & 0xCu) == 8u) return eq_insn(op1 == 9u || op1 == 11u ? EQ_ALU : EQ_DSP);
  return eq_insn(EQ_OTHER);
}

static eq_insn_t eq_decode32(uint32_t hw1, uint32_t hw2) {
  uint32_t op1 = EQ_BITS(hw1, 12, 11), op2 = EQ_BITS(hw1, 10, 4), op = EQ_BITS(hw2, 15, 15);
  int rt = (int)EQ_BITS(hw2, 15, 12), rn = (int)EQ_BITS(hw1, 3, 0);
  if (op1 == 1u) {
    if ((op2 & 0x64u) == 0u) {  /* LDM, STM, PUSH.W, POP.W (SRS and RFE aside) */
      uint32_t kind = EQ_BITS(hw1, 8, 7);
      return kind == 1u || kind == 2u ? eq_multiple((int)EQ_BITS(hw1, 4, 4), hw2 & 0xFFFFu) : eq_insn(EQ_OTHER);
    }
    if ((op2 & 0x64u) == 4u) {  /* dual, exclusive, table branch */
      uint32_t o1 = EQ_BITS(hw1, 8, 7), o2 = EQ_BITS(hw1, 5, 4), o3 = EQ_BITS(hw2, 7, 4);
      if (o1 == 1u && o2 == 1u && o3 <= 1u) {  /* TBB, TBH: a load and a branch */
        return eq_single(1, 15, rn);
      }
      if (o1 <= 1u && o2 <= 1u) return eq_single((int)(o2 & 1u), rt, rn);  /* LDREX, STREX and kin */
      return eq_insn(EQ_BITS(hw1, 4, 4) ? EQ_LDRD : EQ_STRD);
    }
    if ((op2 & 0x60u) == 0x20u) return eq_insn(EQ_ALU);  /* data processing, shifted register */
    return eq_insn(EQ_FPU);  /* coprocessor: the FPU's VLDR, VADD, ... */
  }
  if (op1 == 2u) {
    if (op) {
      uint32_t o = EQ_BITS(hw2, 14, 12);
      if ((o & 5u) == 0u) return EQ_BITS(hw1, 9, 7) != 7u ? eq_branch(1) : eq_insn(EQ_OTHER);  /* MSR, DSB, ... */
      if ((o & 5u) == 1u || (o & 5u) == 5u) return eq_branch(0);  /* B.W, BL */
      return eq_insn(EQ_OTHER);
    }
    if (!EQ_BITS(hw1, 9, 9)) return eq_insn(EQ_ALU);  /* modified immediate */
    switch (EQ_BITS(hw1, 8, 4)) {
      case 0x10u: case 0x12u: case 0x18u: case 0x1Au: return eq_insn(EQ_DSP);  /* SSAT, SSAT16, USAT, USAT16 */
      default: return eq_insn(EQ_ALU);  /* ADDW, MOVW, MOVT, BFI, UBFX, ... */
    }
  }
  /* op1 == 3 */
  if ((op2 & 0x71u) == 0u) return eq_single(0, rt, rn);
  if ((op2 & 0x67u) == 1u || (op2 & 0x67u) == 3u) {  /* byte and halfword loads; Rt = PC is a preload hint */
    return rt == 15 ? eq_insn(EQ_OTHER) : eq_single(1, rt, rn);
  }
  if ((op2 & 0x67u) == 5u) return eq_single(1, rt, rn);
  if ((op2 & 0x70u) == 0x20u) return eq_decode_data_register(hw1, hw2);
  if ((op2 & 0x78u) == 0x30u) {  /* multiply, multiply accumulate, absolute difference */
    uint32_t o1 = EQ_BITS(hw1, 6, 4), o2 = EQ_BITS(hw2, 5, 4);
    if (o1 == 0u && o2 == 0u) return eq_insn(EQ_BITS(hw2, 15, 12) == 15u ? EQ_MUL : EQ_MLA);
    if (o1 == 0u && o2 == 1u) return eq_insn(EQ_MLA);  /* MLS */
    return eq_insn(EQ_DSP);  /* SMLABB, SMLAD, SMLAWB, SMLSD, SMMLA, USADA8, ... */
  }
  if ((op2 & 0x78u) == 0x38u) {  /* long multiply, long multiply accumulate, divide */
    uint32_t o1 = EQ_BITS(hw1, 6, 4), o2 = EQ_BITS(hw2, 7, 4);
    if ((o1 == 1u || o1 == 3u) && o2 == 0xFu) return eq_insn(EQ_DIV);
    if (o2 == 0u && (o1 == 0u || o1 == 2u || o1 == 4u || o1 == 6u)) return eq_insn(EQ_MULL);
    return eq_insn(EQ_DSP);  /* SMLALBB, SMLALD, SMLSLD, UMAAL */
  }
  if (op2 & 0x40u) return eq_insn(EQ_FPU);
  return eq_insn(EQ_OTHER);
}

/* Counts one instruction into `counts`; returns what it does to the PC (EQ_END_*). */
static int eq_classify(eq_decoder_t *d, uint16_t first, uint16_t second, unsigned size, uint32_t *counts) {
  int conditional_by_it = d->it_remaining > 0;
  eq_insn_t insn = size == 4u ? eq_decode32(first, second) : eq_decode16(d, first);
  int after_load = d->last_load_rt;
  if (conditional_by_it) d->it_remaining -= 1;
  if (insn.cls == EQ_IT) conditional_by_it = 0;
  counts[insn.cls] += 1u;
  d->last_load_rt = -1;
  if (insn.cls == EQ_LDR) {
    if (after_load >= 0 && insn.rn != after_load) counts[EQ_LDR_PIPELINED] += 1u;
    d->last_load_rt = insn.rt;
  }
  if (insn.cls == EQ_LDM) counts[EQ_LDM_REGISTERS] += (uint32_t)insn.registers;
  if (insn.cls == EQ_STM) counts[EQ_STM_REGISTERS] += (uint32_t)insn.registers;
  if (!insn.jump) return EQ_END_NONE;
  if (insn.cls != EQ_BRANCH) {
    counts[EQ_PC_LOAD] += 1u;
    return EQ_END_NONE;  /* priced as a load that refills the pipeline: always taken */
  }
  if (insn.conditional || conditional_by_it) {
    counts[EQ_BRANCH_CONDITIONAL] += 1u;
    return EQ_END_CONDITIONAL;
  }
  return EQ_END_JUMP;
}

#endif
