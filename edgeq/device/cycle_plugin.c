/* edgeq's QEMU TCG plugin: counts the Thumb instructions a Cortex-M firmware executes between
 * eq_measure_begin() and eq_measure_end(), by the classes the cores' cycle tables price (ALU, MUL,
 * DSP, DIV, single/dual/multiple loads and stores, branches taken or not), and the data it reads and
 * writes by memory region. One JSON line per window goes to `out`; edgeq.measure.cycle_model turns
 * the counts into cycles. docs/cycles.md explains what is counted and why.
 *
 * Arguments (-plugin file=cycle_plugin.so,NAME=VALUE,...): begin, end (the two functions' addresses),
 * flash_origin, flash_bytes, ram_origin, ram_bytes (the board's memory map), out (a file path).
 *
 * Built by edgeq.device.cycles with the host compiler; QEMU's own header is not needed: Debian's
 * qemu-system-arm 7.2 ships none, so the few functions of plugin API version 1 used here are
 * declared below, as QEMU 7.2's include/qemu/qemu-plugin.h defines them. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU 7.2 plugin API, version 1 (only what this plugin uses) ---- */
#define EQ_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

EQ_EXPORT int qemu_plugin_version = 1;

/* ---- What is counted ---- */
#include "cycle_classes.h"

enum { EQ_FLASH, EQ_RAM, EQ_OTHER_REGION, EQ_REGIONS };
static const char *const eq_region_names[EQ_REGIONS] = {"flash", "ram", "other"};

/* A translated block's counts, fixed at translation time, added each time it runs in a window. */
typedef struct {
  uint64_t vaddr;
  uint64_t fall_through;  /* the address after its last instruction */
  uint32_t counts[EQ_COUNTERS];
  uint32_t insns;
  uint32_t fetch_bytes;
  int fetch_region;
  int ends_in;            /* EQ_END_*: what its last instruction does to the PC */
} eq_block_t;

static struct {
  uint64_t begin, end;
  uint64_t flash_origin, flash_bytes, ram_origin, ram_bytes;
  FILE *out;
  bool counting;
  uint32_t windows;
  const eq_block_t *previous;
  uint64_t counts[EQ_COUNTERS];
  uint64_t insns;
  uint64_t fetch_bytes[EQ_REGIONS];
  uint64_t reads[EQ_REGIONS], read_bytes[EQ_REGIONS], writes[EQ_REGIONS], write_bytes[EQ_REGIONS];
  /* Data reads from flash that start a new 64-bit flash line: a flash without a data cache waits
   * once a line, however many reads it serves in a row (EQ_FLASH_LINE_SHIFT). */
  uint64_t flash_lines, last_flash_line;
} eq;

enum { EQ_FLASH_LINE_SHIFT = 3 };

static int eq_region(uint64_t address) {
  if (address - eq.flash_origin < eq.flash_bytes) return EQ_FLASH;
  if (address - eq.ram_origin < eq.ram_bytes) return EQ_RAM;
  return EQ_OTHER_REGION;
}

static void eq_write_window(void) {
  int k;
  fprintf(eq.out, "{\"window\": %u, \"instructions\": %llu, \"classes\": {", eq.windows,
          (unsigned long long)eq.insns);
  for (k = 0; k < EQ_COUNTERS; ++k) {
    fprintf(eq.out, "%s\"%s\": %llu", k ? ", " : "", eq_counter_names[k], (unsigned long long)eq.counts[k]);
  }
  fprintf(eq.out, "}, \"fetch_bytes\": {");
  for (k = 0; k < EQ_REGIONS; ++k) {
    fprintf(eq.out, "%s\"%s\": %llu", k ? ", " : "", eq_region_names[k], (unsigned long long)eq.fetch_bytes[k]);
  }
  fprintf(eq.out, "}, \"data\": {");
  for (k = 0; k < EQ_REGIONS; ++k) {
    fprintf(eq.out, "%s\"%s\": {\"reads\": %llu, \"read_bytes\": %llu, \"writes\": %llu, \"write_bytes\": %llu}",
            k ? ", " : "", eq_region_names[k], (unsigned long long)eq.reads[k],
            (unsigned long long)eq.read_bytes[k], (unsigned long long)eq.writes[k],
            (unsigned long long)eq.write_bytes[k]);
  }
  fprintf(eq.out, "}, \"flash_line_reads\": %llu}\n", (unsigned long long)eq.flash_lines);
  /* Flushed per window: edgeq reads the file while QEMU still runs, and QEMU ends by a signal. */
  fflush(eq.out);
  eq.windows += 1u;
}

static void eq_block_exec(unsigned int vcpu, void *userdata) {
  const eq_block_t *block = userdata;
  int k;
  (void)vcpu;
  /* A branch is taken when the block that runs next does not start where the branch falls through. */
  if (eq.counting && eq.previous != NULL && eq.previous->ends_in != EQ_END_NONE) {
    bool taken = eq.previous->ends_in == EQ_END_JUMP || block->vaddr != eq.previous->fall_through;
    if (taken) eq.counts[EQ_BRANCH_TAKEN] += 1u;
  }
  eq.previous = block;
  if (block->vaddr == eq.end && eq.counting) {
    eq.counting = false;
    eq_write_window();
    return;
  }
  if (block->vaddr == eq.begin) {
    memset(eq.counts, 0, sizeof eq.counts);
    memset(eq.fetch_bytes, 0, sizeof eq.fetch_bytes);
    memset(eq.reads, 0, sizeof eq.reads);
    memset(eq.read_bytes, 0, sizeof eq.read_bytes);
    memset(eq.writes, 0, sizeof eq.writes);
    memset(eq.write_bytes, 0, sizeof eq.write_bytes);
    eq.insns = 0u;
    eq.flash_lines = 0u;
    eq.last_flash_line = UINT64_MAX;
    eq.counting = true;
  }
  if (!eq.counting) return;
  for (k = 0; k < EQ_COUNTERS; ++k) eq.counts[k] += block->counts[k];
  eq.insns += block->insns;
  eq.fetch_bytes[block->fetch_region] += block->fetch_bytes;
}

static void eq_memory_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata) {
  int region;
  uint64_t bytes;
  (void)vcpu;
  (void)userdata;
  if (!eq.counting) return;
  region = eq_region(vaddr);
  bytes = 1u << qemu_plugin_mem_size_shift(info);
  if (qemu_plugin_mem_is_store(info)) {
    eq.writes[region] += 1u;
    eq.write_bytes[region] += bytes;
  } else {
    eq.reads[region] += 1u;
    eq.read_bytes[region] += bytes;
    if (region == EQ_FLASH && vaddr >> EQ_FLASH_LINE_SHIFT != eq.last_flash_line) {
      eq.flash_lines += 1u;
      eq.last_flash_line = vaddr >> EQ_FLASH_LINE_SHIFT;
    }
  }
}

static void eq_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  size_t n = qemu_plugin_tb_n_insns(tb);
  size_t i;
  eq_block_t *block = calloc(1, sizeof *block);
  eq_decoder_t decoder;
  (void)id;
  if (block == NULL || n == 0) {
    free(block);
    return;
  }
  decoder.it_remaining = 0;
  decoder.last_load_rt = -1;  /* a block starts at a branch target: no load before it to pipeline with */
  block->vaddr = qemu_plugin_tb_vaddr(tb);
  block->fetch_region = eq_region(block->vaddr);
  for (i = 0; i < n; ++i) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    size_t size = qemu_plugin_insn_size(insn);
    const uint8_t *data = qemu_plugin_insn_data(insn);
    uint16_t first = (uint16_t)(data[0] | data[1] << 8);
    uint16_t second = size >= 4 ? (uint16_t)(data[2] | data[3] << 8) : 0u;
    int end = eq_classify(&decoder, first, second, (unsigned)size, block->counts);
    block->insns += 1u;
    block->fetch_bytes += (uint32_t)size;
    if (i + 1 == n) {
      block->ends_in = end;
      block->fall_through = qemu_plugin_insn_vaddr(insn) + size;
    }
    /* QEMU calls it only on the instruction's own memory operations, so every instruction may have it. */
    qemu_plugin_register_vcpu_mem_cb(insn, eq_memory_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
  }
  qemu_plugin_register_vcpu_tb_exec_cb(tb, eq_block_exec, QEMU_PLUGIN_CB_NO_REGS, block);
}

static void eq_exit(qemu_plugin_id_t id, void *userdata) {
  (void)id;
  (void)userdata;
  if (eq.out != NULL) fclose(eq.out);
  eq.out = NULL;
}

static bool eq_argument(const char *arg, const char *name, uint64_t *value) {
  size_t length = strlen(name);
  char *end;
  if (strncmp(arg, name, length) != 0 || arg[length] != '=') return false;
  *value = strtoull(arg + length + 1, &end, 0);
  return end != arg + length + 1 && *end == '\0';
}

EQ_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
  int i;
  const char *out = NULL;
  (void)info;
  for (i = 0; i < argc; ++i) {
    const char *arg = argv[i];
    if (strncmp(arg, "out=", 4) == 0) {
      out = arg + 4;
    } else if (!(eq_argument(arg, "begin", &eq.begin) || eq_argument(arg, "end", &eq.end) ||
                 eq_argument(arg, "flash_origin", &eq.flash_origin) ||
                 eq_argument(arg, "flash_bytes", &eq.flash_bytes) ||
                 eq_argument(arg, "ram_origin", &eq.ram_origin) || eq_argument(arg, "ram_bytes", &eq.ram_bytes))) {
      qemu_plugin_outs("edgeq cycle plugin: unknown or malformed argument: ");
      qemu_plugin_outs(arg);
      qemu_plugin_outs("\n");
      return -1;
    }
  }
  if (out == NULL || eq.begin == 0u || eq.end == 0u) {
    qemu_plugin_outs("edgeq cycle plugin: needs out=FILE, begin=ADDRESS and end=ADDRESS\n");
    return -1;
  }
  eq.out = fopen(out, "w");
  if (eq.out == NULL) {
    qemu_plugin_outs("edgeq cycle plugin: cannot write the out file\n");
    return -1;
  }
  /* Thumb function symbols carry bit 0; the blocks' addresses do not. */
  eq.begin &= ~(uint64_t)1u;
  eq.end &= ~(uint64_t)1u;
  qemu_plugin_register_vcpu_tb_trans_cb(id, eq_translate);
  qemu_plugin_register_atexit_cb(id, eq_exit, NULL);
  return 0;
}
