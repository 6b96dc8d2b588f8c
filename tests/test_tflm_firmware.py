"""TFLM + CMSIS-NN firmware built for real from a TFLM source tree (../shared/tflm, or $TFLM_DIR):
the generated Makefile compiles the framework and the model's kernels into the library cache,
arm-none-eabi-gcc links the firmware, QEMU runs it, and edgeq measures it over serial against the
tflite-micro interpreter. The kernel list the Makefile renders is also checked without building.

The library cache is the Makefile's default (~/.cache/edgeq/tflm, or $TFLM_CACHE): cold, the two
Cortex-M builds compile about 130 TFLM files each (under a minute each on 2 cores); warm, seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeq import codegen
from edgeq.codegen.tflm import cmsis_nn_mve_arena_bytes
from edgeq.codegen.tflm_ops import RESOLVER_METHODS
from edgeq.codegen.tflm_sources import OP_KERNELS, SIGNAL_OPS, kernel_sources
from edgeq.device.connect import device_link
from edgeq.device.loop import build_firmware, measure_run, run_on_device
from edgeq.errors import BadInput, ToolFailed
from edgeq.files import write_files
from edgeq.graph import read_graph
from edgeq.measure.interpreters import tflm_arena
from edgeq.profiles import get_profile
from edgeq.runtimes import get_runtime

from .conftest import SHARED_TFLM

SMALL_CNN_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
KERNELS = "tensorflow/lite/micro/kernels"

needs_tree = pytest.mark.skipif(not os.environ.get("TFLM_DIR"),
                                reason=f"needs a TFLM source tree: {SHARED_TFLM} is absent and TFLM_DIR is unset")
needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-g++ (with libstdc++) and qemu-system-arm")


def generate(folder: Path, board: str, tflite: bytes) -> Path:
    files = get_runtime("tflm").project(get_profile(board), tflite, "small_int8")
    write_files(folder, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
    return folder


def make_print(project: Path, variable: str, tflm_dir: str = "/opt/tflm") -> str:
    done = subprocess.run(["make", "-s", "-C", str(project), f"TFLM_DIR={tflm_dir}", f"print-{variable}"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


# ---- what the Makefile compiles, without compiling it --------------------------------------------------

def test_makefile_compiles_the_cmsis_nn_kernels_of_the_models_ops_and_nothing_else(small_cnn_int8, tmp_path):
    project = generate(tmp_path, "qemu-mps2-an386", small_cnn_int8)
    assert list(read_graph(small_cnn_int8).op_names) == SMALL_CNN_OPS
    assert make_print(project, "TFLM_KERNEL_SRCS").split() == [
        f"{KERNELS}/cmsis_nn/{k}.cc" for k in ("conv", "depthwise_conv", "fully_connected", "pooling", "softmax")
    ] + [f"{KERNELS}/{k}.cc" for k in ("conv_common", "depthwise_conv_common", "fully_connected_common",
                                       "kernel_util", "pooling_common", "reshape", "reshape_common",
                                       "softmax_common")]
    assert make_print(project, "TFLM_CMSIS_NN_DIRS").split() == [
        f"third_party/cmsis_nn/Source/{d}" for d in ("ConvolutionFunctions", "FullyConnectedFunctions",
                                                     "NNSupportFunctions", "PoolingFunctions", "SoftmaxFunctions",
                                                     "TransposeFunctions")]


def test_on_an_mve_core_the_arena_also_holds_cmsis_nns_weight_sums_and_mve_scratch(small_cnn_int8, tmp_path):
    graph = read_graph(small_cnn_int8)
    fc_units = [graph.tensors[op.inputs[1]].shape[0] for op in graph.operators if op.opcode == "FULLY_CONNECTED"]
    extra = cmsis_nn_mve_arena_bytes(graph)
    # each FULLY_CONNECTED keeps an int32 sum per output unit for good (16-byte aligned), plus scratch
    assert extra > sum(-(-4 * units // 16) * 16 for units in fc_units) > 0

    def arena(board: str) -> int:
        harness = (generate(tmp_path / board, board, small_cnn_int8) / "main.cc").read_text()
        return int(harness.split("constexpr size_t kArenaSize = ")[1].split(";")[0])

    assert arena("qemu-mps3-an547") >= arena("qemu-mps2-an505") + extra


def test_library_flags_are_tflms_release_build_for_the_boards_core(small_cnn_int8, tmp_path):
    project = generate(tmp_path, "qemu-mps2-an385", small_cnn_int8)
    assert (make_print(project, "TFLM_CORE_OPT"), make_print(project, "TFLM_KERNEL_OPT")) == ("-Os", "-O2")
    flags = make_print(project, "TFLM_CXXFLAGS").split()
    for flag in ("-mcpu=cortex-m3", "-mfloat-abi=soft", "-DTF_LITE_STATIC_MEMORY", "-DCMSIS_NN", "-DNDEBUG",
                 "-DTF_LITE_STRIP_ERROR_STRINGS", "-DARMCM3", "-I/opt/tflm/third_party/cmsis_nn/Include",
                 "-I/opt/tflm/third_party/cmsis/Cortex_DFP/Device/ARMCM3/Include"):
        assert flag in flags, flag
    assert make_print(project, "TFLM_BUILD").startswith(
        f"{os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'}/edgeq/tflm/")


def test_the_cache_folder_differs_by_tree_and_cpu_flags(small_cnn_int8, tmp_path):
    m3, m4 = generate(tmp_path / "m3", "qemu-mps2-an385", small_cnn_int8), generate(tmp_path / "m4", "qemu-mps2-an386",
                                                                                 small_cnn_int8)
    builds = {make_print(m3, "TFLM_BUILD"), make_print(m4, "TFLM_BUILD"), make_print(m4, "TFLM_BUILD", "/opt/other")}
    assert len(builds) == 3


def test_every_op_tflm_registers_has_its_kernel_files_named():
    assert set(RESOLVER_METHODS) - {"VAR_HANDLE"} <= set(OP_KERNELS) | set(SIGNAL_OPS)


def test_an_op_without_known_kernel_files_is_refused_naming_it():
    with pytest.raises(BadInput, match="op 'GELU': edgeq does not know which TFLM kernel files implement it"):
        kernel_sources(["CONV_2D", "GELU"])


@needs_tree
def test_every_file_the_table_names_is_in_the_tflm_tree():
    tree = Path(os.environ["TFLM_DIR"])
    sources = kernel_sources([*OP_KERNELS, *SIGNAL_OPS])
    assert [path for path in sources.paths if not (tree / path).is_file()] == []
    assert [d for d in sources.cmsis_nn_dirs if not list((tree / d).glob("*.c"))] == []


# ---- failures say what to do ----------------------------------------------------------------------------

def test_without_tflm_dir_the_build_is_refused_saying_what_to_set(small_cnn_int8, tmp_path, monkeypatch):
    monkeypatch.delenv("TFLM_DIR", raising=False)
    project = generate(tmp_path, "qemu-mps2-an386", small_cnn_int8)
    with pytest.raises(BadInput, match="set TFLM_DIR to one made by TFLM's create_tflm_tree.py"):
        build_firmware(project, get_profile("qemu-mps2-an386"))


def test_a_folder_that_is_no_tflm_tree_is_refused_naming_it(small_cnn_int8, tmp_path, monkeypatch):
    monkeypatch.setenv("TFLM_DIR", str(tmp_path))
    project = generate(tmp_path / "fw", "qemu-mps2-an386", small_cnn_int8)
    with pytest.raises(BadInput, match=rf"TFLM_DIR={tmp_path} is not a TFLM source tree \(no tensorflow/lite/micro/"):
        build_firmware(project, get_profile("qemu-mps2-an386"))


@needs_tree
def test_a_tree_lacking_a_kernel_the_model_needs_fails_naming_the_file_and_the_op(small_cnn_int8, tmp_path,
                                                                                  monkeypatch):
    tree = tmp_path / "tree"  # the real tree as symbolic links, less one kernel
    subprocess.run(["cp", "-as", str(Path(os.environ["TFLM_DIR"]).resolve()), str(tree)], check=True)
    (tree / KERNELS / "cmsis_nn" / "softmax.cc").unlink()
    monkeypatch.setenv("TFLM_DIR", str(tree))
    project = generate(tmp_path / "fw", "qemu-mps2-an386", small_cnn_int8)
    with pytest.raises(ToolFailed, match=rf"{tree}/{KERNELS}/cmsis_nn/softmax.cc is missing: SOFTMAX needs it"):
        build_firmware(project, get_profile("qemu-mps2-an386"))


# ---- built, run in QEMU, measured ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def x_val(small_data) -> np.ndarray:
    with np.load(small_data["val"]) as val:
        return val["x"]


@needs_tree
@needs_qemu
@pytest.mark.emulator
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-mps2-an385", "qemu-mps3-an547"])
def test_tflm_firmware_in_qemu_is_bit_exact_with_the_tflite_micro_interpreter(board, small_cnn_int8, x_val, tmp_path):
    profile = get_profile(board)
    project = generate(tmp_path, board, small_cnn_int8)
    run = measure_run(project, x_val, None, project / "measure.jsonl")
    result = run_on_device(profile, project, run)
    assert result.error is None
    summary = result.measure
    assert (summary["samples"], summary["bit_exact_fraction"], summary["max_abs_diff"]) == (len(x_val), 1.0, 0)
    assert summary["cycles_unit"] == "instructions" and summary["cycles_median"] > 0
    assert result.build.elf.name == "firmware.elf" and (project / "firmware.bin").is_file()
    assert 0 < result.build.memory.flash_bytes < profile.memory.flash_bytes
    with device_link(profile, result.build.elf, project) as link:
        hello = link.hello(timeout=10)
    # The arena the interpreter really used, patched into HELLO at start-up; on an MVE core CMSIS-NN's
    # kernels also keep their weight sums and scratch there.
    mve = cmsis_nn_mve_arena_bytes(read_graph(small_cnn_int8)) if profile.has_mve else 0
    assert hello.runtime == "tflm" and 0 < hello.arena_bytes <= codegen.arena_size_with_margin(
        tflm_arena(small_cnn_int8).smallest_bytes + mve)


@needs_tree
@needs_qemu
@pytest.mark.emulator
def test_a_second_project_for_the_same_core_compiles_no_tflm_file_again(small_cnn_int8, tmp_path):
    from edgeq.codegen.sources import read_manifest
    from edgeq.device.build import make_command
    profile = get_profile("qemu-mps2-an386")
    first = generate(tmp_path / "first", "qemu-mps2-an386", small_cnn_int8)
    build_firmware(first, profile)  # warms the cache with edgeq build's own flags, if the tests above have not
    second = generate(tmp_path / "second", "qemu-mps2-an386", small_cnn_int8)
    variables = get_runtime("tflm").build_variables(None)
    done = subprocess.run(make_command(second, read_manifest(second), variables), capture_output=True, text=True,
                          check=True)
    assert "  TFLM " not in done.stdout and (second / "firmware.elf").is_file()


def test_an_int16x8_model_cmsis_nn_cannot_start_is_refused_at_generation_naming_the_op(small_cnn_path, small_data):
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    model = load_model(small_cnn_path)
    tflite = convert(model, "int16x8", load_dataset(str(small_data["calib"]), model.input))
    with pytest.raises(BadInput, match=r"TFLM with CMSIS-NN kernels cannot run this model: FULLY_CONNECTED "
                                       r"\(index 4\) has int16 input and per-channel weights"):
        get_runtime("tflm").project(get_profile("qemu-mps2-an386"), tflite, "m")


@needs_tree
@needs_qemu
@pytest.mark.emulator
def test_firmware_whose_arena_is_too_small_says_why_it_did_not_start(small_cnn_int8, x_val, tmp_path):
    from edgeq.codegen.tflm import render_tflm_firmware

    profile = get_profile("qemu-mps2-an386")
    files = render_tflm_firmware(profile, small_cnn_int8, read_graph(small_cnn_int8), 256, "m",
                                 get_runtime("tflm").identity)
    write_files(tmp_path, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
    result = run_on_device(profile, tmp_path, measure_run(tmp_path, x_val[:2], None, tmp_path / "m.jsonl"))
    assert isinstance(result.error, ToolFailed)
    assert "did not start: edgeq: AllocateTensors() failed: the arena (288 bytes) is too small" in str(
        result.error)
