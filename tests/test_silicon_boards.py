"""Register-level board support for real microcontrollers (edgeq.boards.silicon, chips, images),
checked without the boards: every real profile's firmware built with arm-none-eabi-gcc and its image read
back with arm-none-eabi-readelf (vector table at the flash origin, initial stack pointer in RAM, every
section inside the profile's flash or RAM), the .bin/.hex/.uf2 files the flash tools take, and the two
ports QEMU can run (netduinoplus2: the STM32 USART; microbit: the nRF UART on a Cortex-M0) measured for
real over the serial protocol, bit-exact with the tflite-micro interpreter.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeq.boards import board_params_for
from edgeq.boards.chips import CHIPS, baud_error
from edgeq.boards.images import BOOT2_ASM, BOOT2_CODE, RP2040_FAMILY_ID, boot2_image, crc32_rp2040, uf2_from_bin
from edgeq.codegen.board import render_board
from edgeq.device.build import build
from edgeq.device.flash import FlashOptions, Images, flash
from edgeq.device.loop import measure_run, run_on_device
from edgeq.errors import BadInput
from edgeq.files import write_files
from edgeq.profiles import Board, get_profile, load_profile_file
from edgeq.resources import PROFILE_DIR
from edgeq.runtimes import get_runtime

REAL_PROFILES = ["nucleo-l4r5zi", "stm32f746g-disco", "nucleo-h743zi2", "stm32n6570-dk",
                 "arduino-nano-33-ble-sense", "rpi-pico", "sparkfun-edge"]
EMULATED_SILICON = ["qemu-netduinoplus2", "qemu-microbit"]
# TFLM for one profile per distinct set of CPU flags: Cortex-M4F (also the Nano 33, the Edge and the
# netduinoplus2), Cortex-M7 with the double-precision FPU, Cortex-M0+; the F746's single-precision M7
# differs from the H743 only in -mfpu.
TFLM_REPRESENTATIVES = ["nucleo-l4r5zi", "nucleo-h743zi2", "rpi-pico"]
PORTS = {"nucleo-l4r5zi": None, "stm32f746g-disco": None, "nucleo-h743zi2": None, "stm32n6570-dk": None,
         "arduino-nano-33-ble-sense": "/dev/ttyACM0", "rpi-pico": None, "sparkfun-edge": None}

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-g++ and qemu-system-arm")
needs_tree = pytest.mark.skipif(not os.environ.get("TFLM_DIR"), reason="needs a TFLM source tree (TFLM_DIR)")


def generate(folder: Path, profile_name: str, runtime: str, tflite: bytes) -> Path:
    files = get_runtime(runtime).project(get_profile(profile_name), tflite, "small")
    write_files(folder, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
    return folder


# ---- the chip table and the profiles (pure) -------------------------------------------------------------

@pytest.mark.parametrize("profile_name", REAL_PROFILES + EMULATED_SILICON)
def test_every_real_microcontroller_profile_has_board_support_for_its_chip(profile_name):
    profile = get_profile(profile_name)
    params = board_params_for(profile)
    assert params.chip is CHIPS[profile.board.chip] and params.family == profile.board.family
    files = render_board(params)
    assert {"eq_board.h", "eq_board.c", "startup.c", "linker.ld"} <= set(files)
    assert f"ORIGIN = 0x{profile.memory.ram_origin:08X}, LENGTH = {profile.memory.ram_bytes}" in files["linker.ld"]


@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_real_boards_raise_the_clock_and_count_core_cycles(profile_name):
    params = board_params_for(get_profile(profile_name))
    source = render_board(params)["eq_board.c"]
    assert params.cycles_unit == "cycles" and "eq_clock_init();" in source
    expected = "systick" if params.cpu in ("cortex-m0", "cortex-m0plus") else "dwt"
    assert params.counter == expected and ("EQ_DWT_CYCCNT" in source) == (expected == "dwt")


@pytest.mark.parametrize("profile_name", REAL_PROFILES + EMULATED_SILICON)
def test_uart_divisor_is_within_two_percent_of_the_profiles_baud(profile_name):
    params = board_params_for(get_profile(profile_name))
    assert baud_error(params.uart, params.baud_rate) < 0.02


def test_lpuart1_brr_is_256_times_the_kernel_clock_over_the_baud():
    assert board_params_for(get_profile("nucleo-l4r5zi")).uart_divisor == {"brr": 266667}  # 256 * 120 MHz / 115200


def test_an_image_the_stm32n6_boot_rom_starts_sets_its_own_stack_and_limit_before_any_c():
    files = render_board(board_params_for(get_profile("stm32n6570-dk")))
    entry = files["startup.c"].split("void Reset_Handler(void)\n{")[1].split("}")[0]
    assert "naked" in files["startup.c"].split("void Reset_Handler(void)\n{")[0].splitlines()[-1]
    assert [line.strip() for line in entry.splitlines() if line.strip().startswith('"')] == [
        '"ldr r0, =__StackLimit\\n\\t"', '"msr msplim, r0\\n\\t"', '"ldr r0, =__StackTop\\n\\t"',
        '"msr msp, r0\\n\\t"', '"b eq_reset\\n\\t");']
    assert "SecureFault_Handler," in files["startup.c"]  # the FSBL runs in Secure state
    assert "eq_icache_enable();" in files["eq_board.c"]
    assert "msplim" not in render_board(board_params_for(get_profile("nucleo-h743zi2")))["startup.c"]


def test_cortex_m7_unlocks_dwt_before_counting():
    source = render_board(board_params_for(get_profile("nucleo-h743zi2")))["eq_board.c"]
    assert source.index("EQ_DWT_LAR = EQ_DWT_LAR_KEY;") < source.index("EQ_DWT_CTRL |= EQ_DWT_CTRL_CYCCNTENA;")


@pytest.mark.parametrize("profile_name,ratio", [("qemu-netduinoplus2", (125, 21)), ("qemu-microbit", (125, 2))])
def test_under_qemu_the_clock_set_up_is_left_out_and_systick_counts_instructions(profile_name, ratio):
    params = board_params_for(get_profile(profile_name))
    source = render_board(params)["eq_board.c"]
    assert (params.cycles_unit, params.counter, params.tick_ratio) == ("instructions", "systick", ratio)
    assert "eq_clock_init" not in source


def test_the_cortex_m0_has_no_vtor_and_no_it_blocks():
    startup = render_board(board_params_for(get_profile("qemu-microbit")))["startup.c"]
    assert "EQ_SCB_VTOR" not in startup and "ite eq" not in startup


def test_unknown_chip_is_rejected_naming_the_file_and_key():
    profile = get_profile("nucleo-l4r5zi")
    with pytest.raises(BadInput, match=r"nucleo-l4r5zi\.yaml: board\.chip: no board support for chip "
                                       r"'stm32g474re'; family stm32 has stm32l4r5zi"):
        board_params_for(dataclasses.replace(profile, board=Board("stm32", "stm32g474re", "lpuart1")))


def test_uart_the_chip_lacks_is_rejected_naming_the_key():
    profile = get_profile("nucleo-l4r5zi")
    with pytest.raises(BadInput, match=r"board\.uart: stm32l4r5zi has no board support for UART 'usart9'; "
                                       r"expected one of lpuart1"):
        board_params_for(dataclasses.replace(profile, board=Board("stm32", "stm32l4r5zi", "usart9")))


def test_clock_other_than_the_chips_is_rejected_naming_the_key():
    profile = dataclasses.replace(get_profile("nucleo-h743zi2"), clock_mhz=400)
    with pytest.raises(BadInput, match=r"clock_mhz: edgeq's board support runs the stm32h743zi at 480 MHz, "
                                       r"not 400 MHz"):
        board_params_for(profile)


def test_ram_outside_what_qemu_maps_is_rejected_naming_the_key():
    profile = get_profile("qemu-microbit")
    big = dataclasses.replace(profile, memory=dataclasses.replace(profile.memory, ram_bytes=32768))
    with pytest.raises(BadInput, match=r"memory\.ram_origin: 0x20000000 \+ 32768 bytes is not inside one "
                                       r"memory of QEMU's microbit"):
        board_params_for(big)


def test_board_family_outside_the_known_ones_is_rejected_when_the_profile_is_read(tmp_path):
    path = tmp_path / "nucleo-l4r5zi.yaml"
    path.write_text((PROFILE_DIR / "nucleo-l4r5zi.yaml").read_text().replace("family: stm32", "family: stm99"))
    with pytest.raises(BadInput, match=r"nucleo-l4r5zi\.yaml: board\.family: expected one of stm32, nrf5, "
                                       r"rp2040, apollo3"):
        load_profile_file(path)


# ---- RP2040 boot2 and UF2 (pure) -----------------------------------------------------------------------

def test_rp2040_crc32_is_crc32_mpeg2():
    assert crc32_rp2040(b"123456789") == 0x0376E6E7  # the catalogued check value of CRC-32/MPEG-2


def test_boot2_is_256_bytes_ending_in_the_crc_of_the_first_252():
    image = boot2_image()
    assert len(image) == 256 and image.startswith(BOOT2_CODE)
    assert struct.unpack("<I", image[252:])[0] == crc32_rp2040(image[:252])


@needs_arm
def test_boot2_code_is_its_source_assembled(tmp_path):
    source = tmp_path / "boot2.S"
    source.write_text(".syntax unified\n.cpu cortex-m0plus\n.thumb\n.section .boot2, \"ax\"\n" + BOOT2_ASM)
    subprocess.run(["arm-none-eabi-as", str(source), "-o", str(tmp_path / "boot2.o")], check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".boot2", str(tmp_path / "boot2.o"),
                    str(tmp_path / "boot2.bin")], check=True)
    assert (tmp_path / "boot2.bin").read_bytes() == BOOT2_CODE


def _uf2_blocks(data: bytes) -> list[tuple]:
    assert len(data) % 512 == 0
    return [struct.unpack_from("<8I", data, at) + (data[at + 32:at + 508], struct.unpack_from("<I", data, at + 508)[0])
            for at in range(0, len(data), 512)]


def test_uf2_blocks_carry_256_byte_payloads_to_consecutive_addresses_with_the_family_id():
    image = bytes(range(256)) * 2 + b"tail"
    blocks = _uf2_blocks(uf2_from_bin(image, 0x1000_0000))
    assert len(blocks) == 3
    for number, block in enumerate(blocks):
        magic0, magic1, flags, address, size, index, total, family, _payload, magic_end = block
        assert (magic0, magic1, magic_end) == (0x0A324655, 0x9E5D5157, 0x0AB16F30)
        assert (flags, family) == (0x2000, RP2040_FAMILY_ID)
        assert (address, size, index, total) == (0x1000_0000 + 256 * number, 256, number, 3)
    assert b"".join(b[8][:256] for b in blocks)[:len(image)] == image


# ---- built with arm-none-eabi-gcc, read back with readelf ------------------------------------------------

_SECTION = re.compile(r"^\s*\[\s*\d+\]\s+(?P<name>\S+)\s+(?P<type>\S+)\s+(?P<addr>[0-9a-f]{8})\s+[0-9a-f]+\s+"
                      r"(?P<size>[0-9a-f]+)\s+\S+\s+(?P<flags>[A-Z]*)\s", re.MULTILINE)


def allocated_sections(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (address, size) of every section the image occupies memory with, from readelf -S."""
    text = subprocess.run(["arm-none-eabi-readelf", "-S", "-W", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    return {m["name"]: (int(m["addr"], 16), int(m["size"], 16)) for m in _SECTION.finditer(text)
            if "A" in m["flags"] and int(m["size"], 16) > 0}


def symbol(elf: Path, name: str) -> int:
    text = subprocess.run(["arm-none-eabi-readelf", "-s", "-W", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    return next(int(line.split()[1], 16) for line in text.splitlines() if line.split()[-1:] == [name])


@pytest.fixture(scope="module")
def built(small_cnn_int8, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """Each real profile's edgeq-c firmware, generated as edgeq deploy does and built by edgeq build."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc")
    root = tmp_path_factory.mktemp("silicon")
    return {name: (root / name, build(generate(root / name, name, "edgeq-c", small_cnn_int8), get_profile(name)))
            for name in REAL_PROFILES}


def _application_origin(profile) -> int:
    return profile.memory.flash_origin + (0x100 if profile.board.chip == "rp2040" else 0)


@needs_arm
@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_vector_table_sits_at_the_flash_origin(profile_name, built):
    profile = get_profile(profile_name)
    sections = allocated_sections(built[profile_name][1].elf)
    assert sections[".vectors"][0] == _application_origin(profile)
    if profile.board.chip == "rp2040":
        assert sections[".boot2"] == (profile.memory.flash_origin, 256)


@needs_arm
@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_initial_stack_pointer_lies_in_ram(profile_name, built):
    profile = get_profile(profile_name)
    result = built[profile_name][1]
    offset = _application_origin(profile) - profile.memory.flash_origin
    initial_sp, reset = struct.unpack_from("<II", result.bin.read_bytes(), offset)
    assert profile.memory.ram_origin < initial_sp <= profile.memory.ram_origin + profile.memory.ram_bytes
    assert initial_sp == symbol(result.elf, "__StackTop") and initial_sp % 8 == 0
    assert reset & 1 and reset & ~1 == symbol(result.elf, "Reset_Handler") & ~1  # a Thumb address


@needs_arm
@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_every_section_fits_the_profiles_flash_or_ram(profile_name, built):
    memory = get_profile(profile_name).memory
    regions = [(memory.flash_origin, memory.flash_bytes), (memory.ram_origin, memory.ram_bytes)]
    for name, (address, size) in allocated_sections(built[profile_name][1].elf).items():
        assert any(base <= address and address + size <= base + length for base, length in regions), name


@needs_arm
@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_bin_starts_at_the_flash_origin_and_hex_carries_its_extended_address(profile_name, built):
    profile = get_profile(profile_name)
    result = built[profile_name][1]
    memory = profile.memory
    sections = allocated_sections(result.elf)
    assert min(address for address, _ in sections.values()
               if memory.flash_origin <= address < memory.flash_origin + memory.flash_bytes) == memory.flash_origin
    vectors_at = sections[".vectors"][0] - profile.memory.flash_origin
    vectors = subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", "-j", ".vectors", str(result.elf), "/dev/stdout"],
        capture_output=True, check=True).stdout
    assert result.bin.read_bytes()[vectors_at:vectors_at + len(vectors)] == vectors
    assert first_hex_address(result.hex.read_text()) == memory.flash_origin


def first_hex_address(text: str) -> int:
    """Where the first data record of an Intel hex file goes: its offset plus the extended linear (04)
    or segment (02) address before it."""
    base = 0
    for record in (line for line in text.splitlines() if line.startswith(":")):
        kind, value = record[7:9], record[9:13]
        if kind == "04":
            base = int(value, 16) << 16
        elif kind == "02":
            base = int(value, 16) << 4
        elif kind == "00":
            return base + int(record[3:7], 16)
    raise AssertionError("no data record")


@needs_arm
def test_pico_uf2_writes_the_bin_from_0x10000000_for_the_rp2040_family(built):
    result = built["rpi-pico"][1]
    blocks = _uf2_blocks(result.uf2.read_bytes())
    image = result.bin.read_bytes()
    assert [b[3] for b in blocks] == [0x1000_0000 + 256 * n for n in range(len(blocks))]
    assert all(b[7] == RP2040_FAMILY_ID and b[2] == 0x2000 for b in blocks)
    assert b"".join(b[8][:256] for b in blocks)[:len(image)] == image
    assert crc32_rp2040(image[:252]) == struct.unpack_from("<I", image, 252)[0]


def expected_flash_commands(profile_name: str, folder: Path) -> list[list[str]]:
    files = {suffix: str(folder / f"firmware.{suffix}") for suffix in ("elf", "bin")}
    fsbl = str(folder / "firmware-fsbl.bin")
    return {
        "nucleo-l4r5zi": [["st-flash", "--reset", "write", files["bin"], "0x08000000"]],
        "stm32f746g-disco": [["st-flash", "--reset", "write", files["bin"], "0x08000000"]],
        "nucleo-h743zi2": [["st-flash", "--reset", "write", files["bin"], "0x08000000"]],
        "stm32n6570-dk": [["STM32_SigningTool_CLI", "-bin", files["bin"], "-nk", "-of", "0x80000000", "-t", "fsbl",
                           "-hv", "2.3", "-align", "-o", fsbl],
                          ["STM32_Programmer_CLI", "-c", "port=SWD", "mode=HOTPLUG", "-el",
                           "MX66UW1G45G_STM32N6570-DK.stldr", "-hardRst", "-w", fsbl, "0x70000000"]],
        "arduino-nano-33-ble-sense": [["bossac", "--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "--offset=0x10000",
                                       files["bin"], "-R"]],
        "rpi-pico": [["picotool", "load", "-v", "-x", files["elf"]]],
        "sparkfun-edge": [["pyocd", "flash", "--target", "ama3b1kk_kbr", files["elf"]]],
    }[profile_name]


@needs_arm
@pytest.mark.parametrize("profile_name", REAL_PROFILES)
def test_flash_dry_run_is_the_exact_command_on_files_the_build_wrote(profile_name, built):
    profile = get_profile(profile_name)
    folder, result = built[profile_name]
    images = Images(elf=result.elf, bin=result.bin, hex=result.hex, image=result.elf, uf2=result.uf2)
    commands = flash(profile, images, FlashOptions(port=PORTS[profile_name]), dry_run=True)
    assert commands == expected_flash_commands(profile_name, folder)
    assert all(Path(arg).is_file() for arg in commands[0] if arg.startswith(str(folder / "firmware.")))


# ---- TFLM for each distinct core ------------------------------------------------------------------------

@needs_tree
@needs_arm
@pytest.mark.parametrize("profile_name", TFLM_REPRESENTATIVES)
def test_tflm_firmware_builds_and_fits(profile_name, small_cnn_int8, tmp_path):
    profile = get_profile(profile_name)
    result = build(generate(tmp_path, profile_name, "tflm", small_cnn_int8), profile)
    sections = allocated_sections(result.elf)
    assert sections[".vectors"][0] == _application_origin(profile)
    assert result.memory.flash_bytes < profile.memory.flash_bytes and result.memory.ram_bytes < profile.memory.ram_bytes


# ---- QEMU's models of the same silicon: measured over the serial protocol -------------------------------

@pytest.fixture(scope="module")
def x_val(small_data) -> np.ndarray:
    with np.load(small_data["val"]) as val:
        return val["x"][:8]


@needs_qemu
@pytest.mark.emulator
@pytest.mark.parametrize("profile_name", EMULATED_SILICON)
def test_bring_up_program_counts_a_200000_instruction_loop_and_echoes_each_byte_plus_one(profile_name, tmp_path):
    from .test_boards import ECHO_EXPECTED, SPIN_INSTRUCTIONS, _build_arm, _echo, _greeting, _qemu

    params = board_params_for(get_profile(profile_name))
    elf = _build_arm(params, tmp_path / "board")
    with _qemu(params.board, elf, tmp_path / "qemu.log") as connection:
        greeting = _greeting(connection)
        assert (greeting["board"].decode(), greeting["unit"]) == (params.board, b"instructions")
        # To within the instructions eq_board_cycles itself takes: a tick is 125/21 or 62.5 of them.
        assert 0 <= int(greeting["spin"]) - SPIN_INSTRUCTIONS <= 100
        assert _echo(connection) == ECHO_EXPECTED


@needs_qemu
@pytest.mark.emulator
@pytest.mark.parametrize("runtime", ["edgeq-c", pytest.param("tflm", marks=needs_tree)])
@pytest.mark.parametrize("profile_name", EMULATED_SILICON)
def test_stm32_and_nrf5_ports_in_qemu_are_bit_exact_with_the_tflite_micro_interpreter(
        profile_name, runtime, small_cnn_int8, x_val, tmp_path):
    profile = get_profile(profile_name)
    project = generate(tmp_path, profile_name, runtime, small_cnn_int8)
    result = run_on_device(profile, project, measure_run(project, x_val, None, project / "m.jsonl"))
    assert result.error is None
    summary = result.measure
    assert (summary["samples"], summary["bit_exact_fraction"], summary["max_abs_diff"]) == (len(x_val), 1.0, 0)
    assert summary["cycles_unit"] == "instructions" and summary["cycles_median"] > 0


# ---- ESP32-S3: an ESP-IDF project, not built here ---------------------------------------------------------

@pytest.mark.parametrize("runtime", ["edgeq-c", "tflm"])
def test_esp32_s3_gets_an_esp_idf_project_with_the_model_as_a_component(runtime, small_cnn_int8):
    files = get_runtime(runtime).project(get_profile("esp32-s3-devkitc"), small_cnn_int8, "small")
    main = "main/main.cc" if runtime == "tflm" else "main/main.c"
    assert {"CMakeLists.txt", "sdkconfig.defaults", main, "main/eq_board_esp32.c", "main/CMakeLists.txt",
            "components/edgeq_model/CMakeLists.txt", "components/edgeq_model/eq_protocol.c"} <= set(files)
    assert "Makefile" not in files and not any(name.startswith("board/") for name in files)
    assert "void app_main(void)" in files["main/eq_board_esp32.c"]
    assert "CONFIG_ESP_CONSOLE_NONE=y" in files["sdkconfig.defaults"]  # UART0 is the protocol's alone
    assert ("espressif/esp-tflite-micro" in files.get("main/idf_component.yml", "")) == (runtime == "tflm")


def test_esp32_s3_project_is_built_by_idf_py_and_its_bin_goes_at_0x10000(small_cnn_int8, tmp_path):
    from edgeq.codegen.sources import read_manifest
    from edgeq.device.build import make_command
    project = generate(tmp_path, "esp32-s3-devkitc", "edgeq-c", small_cnn_int8)
    manifest = read_manifest(project)
    assert manifest.builder == "esp-idf" and manifest.hex is None
    assert make_command(project, manifest) == ["idf.py", "-C", str(project), "build"]
    images = Images(elf=project / manifest.elf, bin=project / manifest.bin, image=project / manifest.elf)
    command = flash(get_profile("esp32-s3-devkitc"), images, FlashOptions(port="/dev/ttyUSB0"), dry_run=True)[0]
    assert command[-2:] == ["0x10000", str(project / "build" / "firmware.bin")]
