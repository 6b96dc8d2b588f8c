"""`edgeq build`: the generated firmware project (harness, Makefile, board support) and the build that
reads flash and RAM from `size` — parsed in pure Python, then built for real with gcc and
arm-none-eabi-gcc."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess

import pytest

import edgeq
from edgeq import codegen
from edgeq.aot import compile_model
from edgeq.codegen.sources import read_manifest
from edgeq.device.build import MemoryUse, Overflow, build, parse_overflow, parse_size_output
from edgeq.errors import BadInput, DoesNotFit, ToolFailed
from edgeq.graph import read_graph
from edgeq.profiles import get_profile
from edgeq.runtimes import get_runtime

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")

# What arm-none-eabi-size printed for the digits firmware on mps2-an386.
SIZE_OUTPUT = """   text\t   data\t    bss\t    dec\t    hex\tfilename
  14412\t      8\t  17704\t  32124\t   7d7c\tfirmware.elf
"""


def write_project(directory, profile, tflite: bytes):
    for name, content in get_runtime("edgeq-c").project(profile, tflite, "small_int8").items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return directory


# ---- pure ----------------------------------------------------------------------------------------------

def test_flash_used_is_text_plus_data_and_ram_used_is_data_plus_bss():
    memory = parse_size_output(SIZE_OUTPUT)
    assert memory == MemoryUse(text=14412, data=8, bss=17704)
    assert (memory.flash_bytes, memory.ram_bytes) == (14420, 17712)


def test_size_output_without_its_header_is_refused_quoting_it():
    with pytest.raises(ToolFailed, match=r"cannot read the output of size .*'firmware.elf: no such file'"):
        parse_size_output("firmware.elf: no such file")


def test_ld_overflow_messages_are_read_once_per_region():
    stderr = ("ld: firmware.elf section `.bss' will not fit in region `RAM'\n"
              "ld: region `RAM' overflowed by 20512 bytes\nld: region `FLASH' overflowed by 1500 bytes\n"
              "ld: region `RAM' overflowed by 20512 bytes\n")
    assert parse_overflow(stderr) == [Overflow("RAM", 20512), Overflow("FLASH", 1500)]


def test_makefile_compiles_with_the_profiles_cpu_fpu_float_abi_and_optimization_level(small_cnn_int8):
    project = get_runtime("edgeq-c").project(get_profile("qemu-mps2-an386"), small_cnn_int8, "m")
    makefile = project["Makefile"]
    assert "CC := arm-none-eabi-gcc" in makefile and "OPT := -O2" in makefile
    assert ("ARCH_FLAGS := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -ffunction-sections "
            "-fdata-sections") in makefile
    assert ("LINK_FLAGS := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -T board/linker.ld "
            "--specs=nano.specs --specs=nosys.specs -Wl,--gc-sections") in makefile
    assert "$(PROGRAM).bin $(PROGRAM).hex" in makefile


def test_host_makefile_uses_the_native_gcc_at_the_profiles_O2_without_a_linker_script(small_cnn_int8):
    makefile = get_runtime("edgeq-c").project(get_profile("host"), small_cnn_int8, "m")["Makefile"]
    assert "CC := gcc" in makefile and "OPT := -O2" in makefile and "SIZE := size" in makefile
    assert "linker.ld" not in makefile.split("check-board:")[0] and "OBJCOPY" not in makefile


def test_edgeq_c_project_holds_model_kernels_harness_board_and_makefile_deterministically(small_cnn_int8):
    graph = read_graph(small_cnn_int8)
    profile = get_profile("qemu-mps2-an505")
    project = get_runtime("edgeq-c").project(profile, small_cnn_int8, "m", graph)
    # the an505's M33 has the DSP extension: CONV_2D takes its widened-weight kernel
    for name in ("main.c", "Makefile", "edgeq_model.c", "edgeq_model.h", "eq_protocol.c", "eq_conv_wide_s8.c",
                 "board/eq_board.c", "board/startup.c", "board/linker.ld", "m.tflite", "edgeq-firmware.json"):
        assert name in project, name
    assert project["m.tflite"] == small_cnn_int8
    assert get_runtime("edgeq-c").project(profile, small_cnn_int8, "m", graph) == project
    manifest = json.loads(project["edgeq-firmware.json"])
    compiled = compile_model(small_cnn_int8, dsp=True)
    assert {k: v for k, v in manifest.items() if k != "steps"} == {
        "edgeq_version": edgeq.__version__, "manifest_version": 2, "runtime": "edgeq-c", "device": "qemu-mps2-an505",
        "model": "m.tflite", "model_sha256": codegen.model_sha256(small_cnn_int8), "elf": "firmware.elf",
        "bin": "firmware.bin", "hex": "firmware.hex", "uf2": None, "builder": "make", "reference": "tflite-micro",
        "clock_hz": 20_000_000, "cycles_unit": "instructions", "arena_bytes": compiled.arena_bytes,
        "inputs": [graph.io_name(i) for i in graph.inputs], "outputs": [graph.io_name(o) for o in graph.outputs]}


def test_the_manifest_names_each_step_the_firmware_counts_with_its_kernel_and_macs(small_cnn_int8):
    project = get_runtime("edgeq-c").project(get_profile("qemu-mps2-an505"), small_cnn_int8, "m")
    steps = json.loads(project["edgeq-firmware.json"])["steps"]
    compiled = compile_model(small_cnn_int8, dsp=True)
    assert [s["kernel"] for s in steps] == [op.split(" -> ")[1] for op in compiled.ops]
    assert [s["macs"] for s in steps] == list(compiled.macs) and sum(compiled.macs) > 0


def test_harness_serves_the_hello_payload_byte_for_byte(small_cnn_int8):
    graph = read_graph(small_cnn_int8)
    profile = get_profile("qemu-mps2-an386")
    main = get_runtime("edgeq-c").project(profile, small_cnn_int8, "m", graph)["main.c"]
    body = re.search(r"static const uint8_t edgeq_hello\[(\d+)\] = \{(.*?)\};", main, re.S)
    embedded = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body[2]))
    expected = codegen.hello_payload(small_cnn_int8, graph, get_runtime("edgeq-c").identity, 25_000_000,
                                     compile_model(small_cnn_int8, dsp=True).arena_bytes)  # the M4 has DSP
    assert embedded == expected and int(body[1]) == len(expected)
    assert "eq_board_init();" in main and "eq_serve(&server);" in main
    assert "inputs[0].bytes = EDGEQ_INPUT0_BYTES;" in main and "server.input_count = EDGEQ_INPUT_COUNT;" in main


def test_manifest_missing_is_refused_naming_the_folder(tmp_path):
    with pytest.raises(BadInput, match=r"edgeq-firmware\.json: missing; .* is not a firmware project edgeq "
                                       r"generated"):
        read_manifest(tmp_path)


# ---- real builds ---------------------------------------------------------------------------------------

@pytest.mark.host
@needs_gcc
def test_host_build_is_warning_free_under_pedantic_c99(small_cnn_int8, tmp_path):
    project = write_project(tmp_path, get_profile("host"), small_cnn_int8)
    done = subprocess.run(["make", "-C", str(project), "EXTRA_CFLAGS=-Werror -pedantic"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (project / "firmware.elf").is_file()


@pytest.mark.emulator
@needs_arm
def test_cortex_m_build_reports_flash_and_ram_used_with_the_arena_and_stack_in_ram(small_cnn_int8, tmp_path):
    from edgeq.boards import board_params_for

    profile = get_profile("qemu-mps2-an386")
    project = write_project(tmp_path, profile, small_cnn_int8)
    result = build(project, profile)
    assert result.elf == project / "firmware.elf" and result.bin.is_file() and result.hex.is_file()
    stack = board_params_for(profile).stack_bytes
    assert result.memory.ram_bytes >= compile_model(small_cnn_int8).arena_bytes + stack
    assert result.memory.flash_bytes >= read_graph(small_cnn_int8).constant_bytes()
    assert result.memory.flash_bytes == result.bin.stat().st_size  # the image is text then data
    facts = result.to_dict()
    assert facts["flash_budget_bytes"] == profile.memory.flash_bytes
    assert facts["ram_used_fraction"] == round(result.memory.ram_bytes / profile.memory.ram_bytes, 6)


@pytest.mark.emulator
@needs_arm
def test_cortex_m_build_is_warning_free_under_pedantic_c99(small_cnn_int8, tmp_path):
    project = write_project(tmp_path, get_profile("qemu-mps2-an385"), small_cnn_int8)
    done = subprocess.run(["make", "-C", str(project), "EXTRA_CFLAGS=-Werror -pedantic"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.emulator
@needs_arm
def test_an_image_too_large_for_flash_fails_with_lds_numbers_and_exit_3(small_cnn_int8, tmp_path):
    profile = get_profile("qemu-mps2-an386")
    small = dataclasses.replace(profile, memory=dataclasses.replace(profile.memory, flash_bytes=4096))
    project = write_project(tmp_path, small, small_cnn_int8)
    with pytest.raises(DoesNotFit, match=r"the firmware does not fit qemu-mps2-an386: it overflows FLASH by "
                                         r"[\d,]+ bytes \(the device has 4,096\)") as raised:
        build(project, small)
    assert re.search(r"region `FLASH' overflowed by \d+ bytes", str(raised.value))
    assert raised.value.exit_code == 3


@pytest.mark.emulator
@needs_arm
def test_a_real_board_without_board_support_says_what_to_put_in_board(small_cnn_int8, tmp_path):
    # A user's board: a profile without a board section (no chip edgeq knows).
    profile = dataclasses.replace(get_profile("nucleo-l4r5zi"), board=None)
    project = write_project(tmp_path, profile, small_cnn_int8)
    with pytest.raises(ToolFailed, match=r"no board/eq_board\.h: edgeq has no board support for nucleo-l4r5zi: "
                                         r"write eq_board\.h/\.c \(see docs/boards\.md\), startup code and "
                                         r"linker\.ld into board/"):
        build(project, profile)


def test_a_project_is_built_only_for_the_device_it_was_generated_for(small_cnn_int8, tmp_path):
    project = write_project(tmp_path, get_profile("qemu-mps2-an386"), small_cnn_int8)
    with pytest.raises(BadInput, match=r"was generated for qemu-mps2-an386, not qemu-mps2-an500; build it with "
                                       r"--device qemu-mps2-an386"):
        build(project, get_profile("qemu-mps2-an500"))
