"""The per-layer profile for real: a small CNN generated for edgeq-c and TFLM, built both ways (the
default image and `make PROFILE=1`) with the real cross compiler, run in qemu-system-arm on
qemu-mps2-an386 and asked over serial for each step's instruction count."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.aot import compile_model
from edgeq.codegen.sources import Step, read_manifest
from edgeq.codegen.tflm import tflm_steps
from edgeq.device.build import build
from edgeq.device.connect import device_link
from edgeq.device.link import ProfileUnsupported
from edgeq.device.loop import build_firmware, measure_run
from edgeq.device.measure import measure
from edgeq.device.profile import measure_profile, profile_section
from edgeq.files import write_files
from edgeq.graph import read_graph
from edgeq.profiles import get_profile
from edgeq.protocol import ProtocolError, decode_profile
from edgeq.report import format_measure
from edgeq.resources import REPO_ROOT
from edgeq.runtimes import get_runtime

BOARD = "qemu-mps2-an386"
# Each step's count runs from the end of the one before, so the rows add up to the invoke but for the
# instructions before the first mark and after the last, and the counting itself: a SysTick read and a
# store a step, about 40 instructions (one tick of the an386's SysTick is 40). Allowed: 100 a step.
PER_STEP = 100


def within(count: float, invoke: float, steps: int) -> bool:
    return abs(count - invoke) <= PER_STEP * steps

needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")
needs_tflm = pytest.mark.skipif(
    not os.environ.get("TFLM_DIR") or shutil.which("arm-none-eabi-g++") is None,
    reason="needs a TFLM source tree (TFLM_DIR) and arm-none-eabi-g++")


@pytest.fixture(scope="module")
def tflite(small_cnn_int8) -> bytes:
    return small_cnn_int8


def generate(folder: Path, runtime: str, tflite: bytes) -> Path:
    files = get_runtime(runtime).project(get_profile(BOARD), tflite, "small_int8")
    write_files(folder, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
    return folder


def profiled_run(runtime: str, tflite: bytes, folder: Path, samples: int = 3):
    """Both images built; the plain one measured, the profiled one profiled on the same inputs."""
    profile = get_profile(BOARD)
    project = generate(folder, runtime, tflite)
    plain, profiled = build_firmware(project, profile), build_firmware(project, profile, profiled=True)
    x = np.random.default_rng(1).random((samples, 8, 8, 1), dtype=np.float32)
    run = measure_run(project, x, None, folder / "measure.jsonl")
    with device_link(profile, plain.elf, project) as link:
        summary = measure(link, run)
    with device_link(profile, profiled.elf, project) as link:
        section = measure_profile(link, run, invoke_median=summary["cycles_median"])
    return project, plain, summary, section


@pytest.fixture(scope="module")
def edgeq_c(tflite, tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    return profiled_run("edgeq-c", tflite, tmp_path_factory.mktemp("edgeq-c"))


@pytest.fixture(scope="module")
def tflm(tflite, tmp_path_factory):
    if not os.environ.get("TFLM_DIR") or shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("needs a TFLM source tree (TFLM_DIR) and arm-none-eabi-g++")
    return profiled_run("tflm", tflite, tmp_path_factory.mktemp("tflm"))


# ---- the pure parts ------------------------------------------------------------------------------

def test_a_profile_payload_is_a_step_count_then_one_u32_a_step():
    assert decode_profile(struct.pack("<I3I", 3, 10, 20, 30)) == (10, 20, 30)
    with pytest.raises(ProtocolError, match="announces 3 steps"):
        decode_profile(struct.pack("<I2I", 3, 10, 20))


def test_edgeq_c_steps_in_the_manifest_are_its_kernel_calls_named_by_the_operator_and_kernel(tflite, tmp_path):
    compiled = compile_model(tflite, dsp=get_profile(BOARD).has_dsp)  # the kernels the board's firmware runs
    rows = read_manifest(generate(tmp_path, "edgeq-c", tflite)).steps
    assert [f"{r.index} {r.op} -> {r.kernel}" for r in rows] == list(compiled.ops)
    assert [r.macs for r in rows] == list(compiled.macs)
    assert "RESHAPE" not in [r.op for r in rows]  # edgeq-c aliases it: no kernel runs


def test_tflm_steps_are_every_operator_of_the_graph(tflite):
    graph = read_graph(tflite)
    rows = tflm_steps(graph)
    assert [(r.index, r.op) for r in rows] == [(op.index, op.opcode) for op in graph.operators]
    assert rows[0].kernel == "cmsis_nn/conv.cc"


def test_shares_add_up_and_the_sum_is_compared_with_the_unprofiled_invoke():
    rows = [Step(0, "CONV_2D", "k", (1, 4), 100), Step(1, "SOFTMAX", "s", (1, 4), 0)]
    p = profile_section(rows, [(300, 100), (310, 90), (290, 110)], [402, 401, 400], runtime="edgeq-c",
                        cycles_unit="instructions", bit_exact=3, invoke_median=398.0)
    assert [r["count"] for r in p["layers"]] == [300.0, 100.0]
    assert [r["share"] for r in p["layers"]] == [0.75, 0.25]
    assert (p["layers"][0]["per_mac"], p["layers"][1]["per_mac"]) == (3.0, None)
    assert p["total_count"] == 400.0 and p["sum_vs_invoke"] == round(2 / 398, 6)
    assert p["overhead"] == round(3 / 398, 6)


def test_counts_for_another_number_of_steps_are_refused():
    rows = [Step(0, "CONV_2D", "k", (1, 4), 100)]
    with pytest.raises(ProtocolError, match="counted 2 steps for sample 0, but edgeq-c runs this model in 1"):
        profile_section(rows, [(1, 2)], [3], runtime="edgeq-c", cycles_unit="cycles", bit_exact=1,
                        invoke_median=None)


# ---- on QEMU -------------------------------------------------------------------------------------

@needs_qemu
def test_edgeq_c_profile_has_one_row_per_kernel_call_adding_up_to_the_invoke(edgeq_c, tflite):
    _, _, summary, p = edgeq_c
    firmware = compile_model(tflite, dsp=get_profile(BOARD).has_dsp)  # the kernels the board's firmware runs
    assert [f"{r['index']} {r['op']} -> {r['kernel']}" for r in p["layers"]] == list(firmware.ops)
    assert any("wide" in r["kernel"] for r in p["layers"])
    assert all(r["count"] > 0 for r in p["layers"]) and p["unit"] == "instructions"
    assert within(p["total_count"], summary["cycles_median"], len(p["layers"]))
    assert within(p["profiled_invoke_median"], summary["cycles_median"], len(p["layers"]))  # the overhead


@needs_qemu
def test_edgeq_c_outputs_stay_bit_exact_while_profiling(edgeq_c):
    _, _, summary, p = edgeq_c
    assert p["bit_exact_samples"] == p["samples"] == summary["bit_exact_samples"] == 3


@needs_qemu
def test_the_default_image_counts_nothing_and_says_how_to_build_one_that_does(edgeq_c):
    project, plain, _, _ = edgeq_c
    symbols = subprocess.run(["arm-none-eabi-nm", str(plain.elf)], capture_output=True, text=True).stdout
    assert "profile" not in symbols
    with device_link(get_profile(BOARD), plain.elf, project) as link:
        link.hello()
        with pytest.raises(ProfileUnsupported, match=r"built without EQ_PROFILE.*make PROFILE=1"):
            link.profile()


def without_profiling(text: str) -> str:
    """C text with every `#ifdef EQ_PROFILE` block taken out (its `#else` branch kept)."""
    out, state = [], None
    for line in text.splitlines(keepends=True):
        if line.strip() == "#ifdef EQ_PROFILE":
            state = "profile"
        elif state and line.strip() == "#else":
            state = "else"
        elif state and line.strip().startswith("#endif"):
            state = None
        elif state != "profile":
            out.append(line)
    return "".join(out)


@needs_qemu
def test_the_default_image_is_the_same_bytes_as_the_sources_without_the_profiling_code(edgeq_c, tmp_path):
    project, plain, _, _ = edgeq_c
    stripped = tmp_path / "stripped"
    shutil.copytree(project, stripped, ignore=shutil.ignore_patterns("obj*", "firmware*"))
    for path in [*stripped.glob("*.c"), *stripped.glob("*.h")]:
        path.write_text(without_profiling(path.read_text()))
    assert "#ifdef EQ_PROFILE" not in (stripped / "edgeq_model.c").read_text()
    again = build(stripped, get_profile(BOARD))
    assert again.bin.read_bytes() == plain.bin.read_bytes()


@needs_tflm
def test_tflm_profile_has_one_row_per_operator_adding_up_to_the_invoke(tflm, tflite):
    _, _, summary, p = tflm
    assert [r["op"] for r in p["layers"]] == [op.opcode for op in read_graph(tflite).operators]
    assert all(r["count"] > 0 for r in p["layers"])
    assert within(p["total_count"], summary["cycles_median"], len(p["layers"]))
    assert p["bit_exact_samples"] == p["samples"] == 3


@needs_qemu
def test_measure_profile_prints_the_table_and_writes_it_to_measure_json(edgeq_c, tmp_path):
    project = edgeq_c[0]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "edgeq", "measure", str(project), "--samples", "2", "--profile",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| # | op | kernel | output | MACs | instructions | instructions/MAC | share |" in done.stdout
    assert "against the un-profiled invoke" in done.stdout
    saved = json.loads((tmp_path / "measure.json").read_text())["profile"]
    assert len(saved["layers"]) == len(compile_model((project / "small_int8.tflite").read_bytes()).ops)
    assert saved["sources"]["count"]["kind"] == "measured"
    assert "| **total** |" in "\n".join(format_measure(json.loads((tmp_path / "measure.json").read_text())))
    assert 'data-table="profile"' in (tmp_path / "report.html").read_text()  # the page has the table too


@needs_qemu
def test_deploy_profile_puts_the_table_into_report_json(small_cnn_path, small_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "edgeq", "deploy", str(small_cnn_path), "--device", BOARD,
                           "--data", str(small_data["calib"]), "--val", str(small_data["val"]), "--quant", "int8",
                           "--runtime", "edgeq-c", "--samples", "2", "--profile", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    p = report["measure"]["profile"]
    steps = read_manifest(tmp_path / report["outputs"]["firmware"]).steps
    assert [r["op"] for r in p["layers"]] == [r.op for r in steps]
    assert p["invoke_median"] == report["measure"]["cycles_median"]
    assert "Per layer (edgeq-c" in (tmp_path / "report.md").read_text()
