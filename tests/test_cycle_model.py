"""Estimated cycles: the timing model on hand-made instruction class counts, the profile's flash wait
states, the plugin's QEMU argument and its place in the report (pure); the plugin's Thumb decoder on
instructions the cross assembler encodes, and its build cache (host compiler); and on the emulated
Cortex-M4 the plugin's count in the measurement window against the instructions SysTick measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeq.boards import qemu_command
from edgeq.boards.systick import qemu_tick
from edgeq.device import cycles as cycle_plugin
from edgeq.device.cycles import CyclePlugin, build_plugin, estimated_cycles, parse_nm_output
from edgeq.errors import BadInput
from edgeq.measure.cycle_model import CLASSES, estimate_cycles
from edgeq.profiles import get_profile, parse_profile
from edgeq.report.markdown import format_estimated_cycles
from edgeq.resources import PROFILE_DIR

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs the host C compiler (cc)")
needs_arm_as = pytest.mark.skipif(shutil.which("cc") is None or shutil.which("arm-none-eabi-gcc") is None,
                                  reason="needs the host C compiler and arm-none-eabi-gcc")
needs_qemu = pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs cc, arm-none-eabi-gcc and qemu-system-arm")


def window(fetch: str = "flash", flash_reads: int = 0, **classes) -> dict:
    """One measurement window as the plugin writes it, with the given class counts (16-bit code)."""
    code_bytes = 2 * sum(v for k, v in classes.items() if k in CLASSES)
    return {"classes": classes, "fetch_bytes": {"flash": code_bytes if fetch == "flash" else 0,
                                                 "ram": code_bytes if fetch == "ram" else 0, "other": 0},
            "data": {"flash": {"reads": flash_reads, "read_bytes": 4 * flash_reads, "writes": 0, "write_bytes": 0}}}


def band(w: dict, core: str = "cortex-m4", waits: int = 0):
    return estimate_cycles(w, core, 100_000_000, waits)


# ---- the timing model (pure) ----

@pytest.mark.usefixtures("no_processes")
def test_back_to_back_loads_pipeline_on_the_m4_but_not_on_the_m0plus():
    four_loads = window(ldr=4, ldr_pipelined=3)
    assert band(four_loads).estimate == 2 + 1 + 1 + 1  # Cortex-M4 TRM 3.3.2
    assert band(four_loads, "cortex-m0plus").estimate == 4 * 2


@pytest.mark.usefixtures("no_processes")
def test_a_taken_branch_costs_the_pipeline_refill_and_a_not_taken_one_a_single_cycle():
    not_taken = band(window(branch=10, branch_conditional=10, branch_taken=0))
    taken = band(window(branch=10, branch_conditional=10, branch_taken=10))
    assert (not_taken.low, not_taken.high) == (10, 10)
    assert (taken.low, taken.estimate, taken.high) == (10 * 2, 10 * 3, 10 * 4)  # 1 + P, P from 1 to 3


@pytest.mark.usefixtures("no_processes")
def test_ldm_and_stm_cost_one_cycle_plus_one_a_register():
    assert band(window(ldm=2, ldm_registers=8, stm=1, stm_registers=4)).estimate == (1 + 4) * 2 + (1 + 4)


@pytest.mark.usefixtures("no_processes")
def test_a_load_into_the_pc_adds_the_refill_to_the_load():
    pop_pc = band(window(ldm=1, ldm_registers=2, pc_load=1))
    assert (pop_pc.low, pop_pc.high) == (1 + 2 + 1, 1 + 2 + 3)


@pytest.mark.usefixtures("no_processes")
def test_the_m4_multiplies_accumulates_and_does_dsp_in_one_cycle_where_the_m3_takes_more():
    mix = window(mla=10, mull=10, dsp=10)
    assert band(mix).estimate == 30
    assert band(mix, "cortex-m3").estimate > 40


@pytest.mark.usefixtures("no_processes")
def test_flash_wait_states_raise_the_high_edge_only_when_the_code_runs_from_flash():
    loop = dict(alu=900, branch=100, branch_conditional=100, branch_taken=100)
    from_ram, from_flash = window("ram", **loop), window("flash", **loop)
    assert band(from_ram, waits=5).high == band(from_ram, waits=0).high
    assert band(from_flash, waits=5).high > band(from_flash, waits=0).high
    assert band(from_flash, waits=5).low == band(from_flash, waits=0).low  # the accelerator hides them


@pytest.mark.usefixtures("no_processes")
def test_data_read_from_flash_waits_once_a_line_at_the_estimate_and_every_read_at_the_high_edge():
    weights = {**window("ram", flash_reads=100, ldr=100), "flash_line_reads": 30}
    no_waits, waits = band(weights), band(weights, waits=5)
    assert waits.estimate - no_waits.estimate == 5 * 30
    assert waits.high - no_waits.high == 5 * 100


@pytest.mark.usefixtures("no_processes")
def test_the_m7_is_the_single_issue_price_times_a_dual_issue_factor():
    mix = window(alu=100, ldr=100)
    m4, m7 = band(mix), band(mix, "cortex-m7")
    assert (m7.low, m7.estimate, m7.high) == pytest.approx((m4.low * 0.5, m4.estimate * 0.68, m4.high))
    assert "approximat" in m7.source


@pytest.mark.usefixtures("no_processes")
def test_the_m55_prices_a_vector_instruction_one_to_two_cycles_and_a_loop_end_up_to_two():
    scalar, vector = window(alu=100, ldr=100), window(fpu=100, other=10)
    assert (band(scalar, "cortex-m55").low, band(scalar, "cortex-m55").high) == (band(scalar).low, band(scalar).high)
    m55 = band(vector, "cortex-m55")
    assert (m55.low, m55.estimate, m55.high) == (100, 155, 220)
    assert "approximat" in m55.source and "dual-beat" in m55.notes[0]


@pytest.mark.usefixtures("no_processes")
def test_the_band_is_given_in_milliseconds_at_the_profiles_clock():
    b = estimate_cycles(window(alu=25_000), "cortex-m4", 25_000_000)
    assert b.to_dict()["estimate_ms"] == 1.0


@pytest.mark.usefixtures("no_processes")
def test_a_core_the_model_has_no_table_for_is_refused_naming_the_known_ones():
    with pytest.raises(BadInput, match="no timing for 'cortex-m85'.*cortex-m4"):
        band(window(alu=1), "cortex-m85")


@pytest.mark.usefixtures("no_processes")
def test_counts_that_contradict_each_other_are_refused():
    with pytest.raises(BadInput, match="3 pipelined loads but only 2 loads"):
        band(window(ldr=2, ldr_pipelined=3))


# ---- the profile, QEMU's command line, the report (pure) ----

@pytest.mark.usefixtures("no_processes")
def test_flash_wait_states_default_to_none_and_the_l4r5_at_120_mhz_has_five():
    assert get_profile("qemu-mps2-an386").memory.flash_wait_states == 0
    assert get_profile("nucleo-l4r5zi").memory.flash_wait_states == 5


@pytest.mark.usefixtures("no_processes")
def test_negative_flash_wait_states_are_refused_naming_the_key():
    raw = yaml.safe_load((PROFILE_DIR / "qemu-mps2-an386.yaml").read_text())
    raw["memory"]["flash_wait_states"] = -1
    with pytest.raises(BadInput, match="memory.flash_wait_states"):
        parse_profile(raw, "bad.yaml")


@pytest.mark.usefixtures("no_processes")
def test_qemu_loads_the_plugin_with_its_arguments_after_the_kernel():
    plugin = CyclePlugin(Path("/c/cycle_plugin.so"), 0x101, 0x111, 0, 0x400000, 0x20000000, 0x400000,
                         Path("/o/cycles.jsonl"))
    argv = qemu_command("mps2-an386", "fw.elf", 4444, plugin=plugin.argument())
    assert argv[-4:] == ["-kernel", "fw.elf", "-plugin",
                         "file=/c/cycle_plugin.so,begin=0x101,end=0x111,flash_origin=0x0,flash_bytes=0x400000,"
                         "ram_origin=0x20000000,ram_bytes=0x400000,out=/o/cycles.jsonl"]
    assert "-plugin" not in qemu_command("mps2-an386", "fw.elf", 4444)


@pytest.mark.usefixtures("no_processes")
def test_a_path_with_a_comma_is_refused_since_qemu_splits_plugin_arguments_there():
    plugin = CyclePlugin(Path("/c/cycle_plugin.so"), 1, 2, 0, 1, 2, 1, Path("/o,p/cycles.jsonl"))
    with pytest.raises(BadInput, match="comma"):
        plugin.argument()


@pytest.mark.usefixtures("no_processes")
def test_cycles_on_a_device_qemu_does_not_run_are_refused_not_left_out(tmp_path):
    from edgeq.device.loop import measure_firmware

    with pytest.raises(BadInput, match="nucleo-l4r5zi is not an emulated board"):
        measure_firmware(get_profile("nucleo-l4r5zi"), tmp_path, np.zeros((1, 4)), None, tmp_path,
                         port="/dev/ttyACM0", cycles=True)


@pytest.mark.usefixtures("no_processes")
def test_the_window_is_found_in_nm_output_without_the_thumb_bit():
    text = "00000141 T eq_measure_begin\n00000145 T eq_measure_end\n00000100 T main\n"
    assert parse_nm_output(text) == {"eq_measure_begin": 0x140, "eq_measure_end": 0x144}
    with pytest.raises(BadInput, match="no eq_measure_end: .*generate and build it again"):
        parse_nm_output("00000141 T eq_measure_begin\n")


@pytest.mark.usefixtures("no_processes")
def test_the_summary_block_is_labelled_estimated_and_every_figure_in_report_md_is_marked():
    block = estimated_cycles([window(alu=1000), window(alu=1200), window(alu=1100)], "cortex-m4", 25_000_000)
    assert block["estimate_cycles"] == 1100 and block["instructions_median"] == 1100
    assert block["source"].startswith("estimated from QEMU instruction classes by edgeq's timing model for cortex-m4")
    text = "\n".join(format_estimated_cycles(block))
    assert "estimated, not measured" in text and "measured:" not in text
    assert "~1,100" in text and "~0.044 ms" in text


# ---- the plugin: its decoder and its build (host compiler) ----

DECODE_HARNESS = r"""
#include <stdio.h>
#include "cycle_classes.h"
int main(void) {
  unsigned char code[4096];
  size_t n = fread(code, 1, sizeof code, stdin), at = 0;
  eq_decoder_t d = {0, -1};
  while (at + 2 <= n) {
    uint32_t counts[EQ_COUNTERS] = {0};
    uint16_t first = (uint16_t)(code[at] | code[at + 1] << 8);
    unsigned size = (first >> 11) >= 0x1Du ? 4u : 2u;
    uint16_t second = size == 4u ? (uint16_t)(code[at + 2] | code[at + 3] << 8) : 0u;
    int end = eq_classify(&d, first, second, size, counts), k, printed = 0;
    for (k = 0; k < EQ_COUNTERS; ++k) {
      if (counts[k]) printf("%s%s=%u", printed++ ? " " : "", eq_counter_names[k], counts[k]);
    }
    printf("%s\n", end == EQ_END_JUMP ? " jump" : end == EQ_END_CONDITIONAL ? " conditional" : "");
    at += size;
  }
  return 0;
}
"""

# Each instruction and what the plugin must count for it: its class, then the refinements.
DECODED = [
    ("adds r0, r1, r2", "alu=1"), ("mov.w r0, r1, lsl #3", "alu=1"), ("muls r0, r1, r0", "mul=1"),
    ("mla r0, r1, r2, r3", "mla=1"), ("smull r0, r1, r2, r3", "mull=1"), ("smlad r0, r1, r2, r0", "dsp=1"),
    ("sxtb16 r0, r1, ror #8", "dsp=1"), ("ssat r0, #8, r1", "dsp=1"), ("qadd r0, r1, r2", "dsp=1"),
    ("sxtb r0, r1", "alu=1"), ("sdiv r0, r1, r2", "div=1"), ("ldr r0, [r1, #4]", "ldr=1"),
    ("ldr r2, [r3]", "ldr=1 ldr_pipelined=1"), ("ldr r2, [r2]", "ldr=1"),
    ("ldrb.w r0, [r1, r2]", "ldr=1 ldr_pipelined=1"),
    ("str r0, [r1]", "str=1"), ("ldrd r0, r1, [r2]", "ldrd=1"), ("strd r0, r1, [r2, #8]", "strd=1"),
    ("ldmia r0!, {r1-r4}", "ldm=1 ldm_registers=4"), ("push {r4-r7, lr}", "stm=1 stm_registers=5"),
    ("push.w {r4-r11, lr}", "stm=1 stm_registers=9"), ("pop {r4, pc}", "ldm=1 ldm_registers=2 pc_load=1"),
    ("bx lr", "branch=1 jump"), ("bl .", "branch=1 jump"), ("beq .", "branch=1 branch_conditional=1 conditional"),
    ("cbz r0, 9f", "branch=1 branch_conditional=1 conditional"),
    ("it eq", "it=1"), ("bxeq lr", "branch=1 branch_conditional=1 conditional"),
    ("tbb [pc, r0]", "ldr=1 pc_load=1"), ("vadd.f32 s0, s1, s2", "fpu=1"), ("nop", "other=1"),
]


# Helium (the M55): every vector instruction is in the class the M55's row prices as a vector one, and
# the low-overhead loop instructions in `other`, which it prices as nearly free.
MVE_DECODED = [
    ("vldrb.8 q0, [r0], #16", "fpu=1"), ("vmladava.s8 r2, q1, q0", "fpu=1"), ("vshl.i8 q1, q2, #4", "fpu=1"),
    ("vand q1, q2, q3", "fpu=1"), ("vqrdmulh.s32 q0, q1, q2", "fpu=1"), ("vstrb.32 q0, [r1]", "fpu=1"),
    ("8: dls lr, r3", "other=1"), ("wls lr, r3, 9f", "other=1"), ("le lr, 8b", "other=1"),
]


def _decoded(tmp_path: Path, program: list[tuple[str, str]], cpu_flags: list[str]) -> list[str]:
    """What the plugin's decoder counts for each instruction of `program`, assembled with `cpu_flags`."""
    (tmp_path / "harness.c").write_text(DECODE_HARNESS)
    source = Path(cycle_plugin.__file__).parent
    subprocess.run(["cc", "-O1", "-I", str(source), "-o", str(tmp_path / "decode"), str(tmp_path / "harness.c")],
                   check=True)
    (tmp_path / "code.s").write_text(".syntax unified\n.thumb\n" + "\n".join(i for i, _ in program) + "\n9:\n")
    subprocess.run(["arm-none-eabi-gcc", *cpu_flags, "-c", "-o", str(tmp_path / "code.o"), str(tmp_path / "code.s")],
                   check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "code.o"),
                    str(tmp_path / "code.bin")], check=True)
    return subprocess.run([str(tmp_path / "decode")], input=(tmp_path / "code.bin").read_bytes(),
                          capture_output=True, check=True).stdout.decode().splitlines()


@needs_arm_as
def test_the_plugins_decoder_puts_each_instruction_in_the_class_its_cycle_table_prices(tmp_path):
    decoded = _decoded(tmp_path, DECODED, ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"])
    assert [(i, line) for (i, _), line in zip(DECODED, decoded)] == [(i, want) for i, want in DECODED]


@needs_arm_as
def test_the_plugins_decoder_counts_helium_instructions_as_vector_ones_and_loop_ends_as_other(tmp_path):
    decoded = _decoded(tmp_path, MVE_DECODED, ["-mcpu=cortex-m55", "-mfloat-abi=hard"])
    assert [(i, line) for (i, _), line in zip(MVE_DECODED, decoded)] == [(i, want) for i, want in MVE_DECODED]


@needs_cc
def test_the_plugin_is_built_once_and_then_taken_from_the_cache(tmp_path, monkeypatch):
    first = build_plugin(tmp_path)
    assert first.name == f"cycle_plugin-{cycle_plugin.plugin_hash()}.so" and first.stat().st_size > 0

    def no_compiler(*args, **kwargs):
        raise AssertionError("the plugin was built again")

    monkeypatch.setattr(cycle_plugin, "run_tool", no_compiler)
    assert build_plugin(tmp_path) == first


# ---- on the emulated Cortex-M4 ----

@pytest.fixture(scope="module")
def an386_firmware(small_cnn_int8, tmp_path_factory) -> Path:
    """The small CNN's edgeq-c firmware for the emulated Cortex-M4, built."""
    from edgeq.device.loop import build_firmware
    from edgeq.runtimes import get_runtime

    project = tmp_path_factory.mktemp("an386")
    profile = get_profile("qemu-mps2-an386")
    for name, content in get_runtime("edgeq-c").project(profile, small_cnn_int8, "small_cnn").items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    build_firmware(project, profile)
    return project


@needs_qemu
def test_the_plugin_counts_the_instructions_systick_measures_in_each_inference(an386_firmware, small_cnn_int8,
                                                                                tmp_path):
    from edgeq.device.loop import measure_firmware
    from edgeq.device.measure import device_data

    profile = get_profile("qemu-mps2-an386")
    data = device_data(None, small_cnn_int8, 3, "small_cnn.tflite")
    found = measure_firmware(profile, an386_firmware, data.x, None, tmp_path, tflite=small_cnn_int8, cycles=True)
    windows = cycle_plugin.read_windows(tmp_path / "cycles.jsonl")
    measured = [json.loads(line)["cycles"] for line in (tmp_path / "measure.jsonl").read_text().splitlines()[1:]]
    assert found.failure is None and len(windows) == len(measured) == 3
    # SysTick counts in steps of one tick (40 instructions at 25 MHz under -icount shift=0) and also counts
    # eq_board_cycles() itself and the two calls around the window (about 30 instructions).
    (tick, _), _ = qemu_tick(25_000_000)
    assert np.abs(np.array(measured) - [w["instructions"] for w in windows]).max() <= tick + 32
    block = found.summary["estimated_cycles"]
    assert block["instructions_median"] <= block["low_cycles"] <= block["estimate_cycles"] <= block["high_cycles"]
    assert found.summary["sources"]["estimated_cycles"]["kind"] == "estimated"


@needs_qemu
def test_edgeq_measure_on_an_emulated_m4_writes_the_band_into_measure_json_and_prints_it_as_estimated(
        an386_firmware, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgeq", "measure", str(an386_firmware), "--samples", "2",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "measure.json").read_text())
    assert summary["estimated_cycles"]["core"] == "cortex-m4" and summary["estimated_cycles"]["windows"] == 2
    assert "estimated, not measured" in done.stdout and "estimated cycles on cortex-m4" in done.stdout
    assert "estimated cycles on cortex-m4" in (tmp_path / "report.html").read_text()


@needs_qemu
def test_edgeq_measure_no_cycles_leaves_the_estimate_out(an386_firmware, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgeq", "measure", str(an386_firmware), "--samples", "1",
                           "--no-cycles", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "estimated_cycles" not in json.loads((tmp_path / "measure.json").read_text())
    assert not (tmp_path / "cycles.jsonl").exists()
