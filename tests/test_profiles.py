"""Device profiles: the shipped YAML files load, and a bad profile is refused with a message that names
the file, the dotted key and what was expected."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest
import yaml

from edgeq.errors import BadInput
from edgeq.profiles import (
    DEFAULT_PROFILE,
    format_profile,
    format_profile_table,
    get_profile,
    load_profile_file,
    load_profiles,
    parse_profile,
)
from edgeq.resources import PROFILE_DIR
from edgeq.runtimes import check_profile
from edgeq.units import format_bytes

REQUIRED_BOARDS = {
    "arduino-nano-33-ble-sense", "nucleo-l4r5zi", "stm32f746g-disco", "nucleo-h743zi2", "rpi-pico",
    "esp32-s3-devkitc", "sparkfun-edge", "qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500",
    "qemu-mps2-an505", "rpi4", "pixel-8", "host",
}
SOURCE = "device_profiles/qemu-mps2-an386.yaml"


@pytest.fixture(scope="module")
def profiles():
    return load_profiles()


@pytest.fixture
def good() -> dict:
    """The parsed YAML of a known-good profile, for each test to break in one place."""
    return yaml.safe_load((PROFILE_DIR / "qemu-mps2-an386.yaml").read_text())


def refused(data: dict, source: str = SOURCE) -> str:
    """The error of a profile the schema (edgeq.profiles) or its runtimes (edgeq.runtimes) refuse."""
    with pytest.raises(BadInput) as caught:
        check_profile(parse_profile(data, source))
    return str(caught.value)


# ---- the shipped profiles ---------------------------------------------------------------------------

def test_every_shipped_profile_loads_and_there_are_at_least_fourteen(profiles):
    assert len(profiles) >= 14
    assert len(profiles) == len(list(PROFILE_DIR.glob("*.yaml")))


def test_profile_names_equal_their_file_stems(profiles):
    for name, profile in profiles.items():
        assert profile.name == name
        assert profile.source.endswith(f"{name}.yaml")


def test_the_required_boards_are_shipped(profiles):
    assert REQUIRED_BOARDS <= set(profiles)


def test_the_default_profile_exists_and_is_an_emulated_microcontroller(profiles):
    default = profiles[DEFAULT_PROFILE]
    assert default.is_emulated
    assert default.is_microcontroller
    assert default.emulator.qemu_machine == "mps2-an386"


def test_every_microcontroller_leaves_ram_for_a_model_and_has_a_linker_map(profiles):
    for profile in profiles.values():
        if profile.is_microcontroller:
            assert 0 < profile.ram_for_model_bytes < profile.memory.ram_bytes
            assert profile.memory.flash_origin is not None and profile.memory.ram_origin is not None
            assert profile.toolchain is not None


def test_emulated_boards_use_the_emulator_map_qemu_7_2_builds(profiles):
    # Origins and sizes from QEMU 7.2 hw/arm/mps2.c and mps2-tz.c (AN505 runs from the Secure aliases).
    expected = {
        "qemu-mps2-an385": (0x00000000, 0x20000000, 25),
        "qemu-mps2-an386": (0x00000000, 0x20000000, 25),
        "qemu-mps2-an500": (0x00000000, 0x20000000, 25),
        "qemu-mps2-an505": (0x10000000, 0x38000000, 20),
    }
    for name, (flash_origin, ram_origin, mhz) in expected.items():
        profile = profiles[name]
        assert (profile.memory.flash_origin, profile.memory.ram_origin, profile.clock_mhz) == (
            flash_origin, ram_origin, mhz)
        assert profile.memory.flash_bytes == profile.memory.ram_bytes == 4 * 1024 * 1024
        assert profile.runtimes == ("edgeq-c", "tflm")


@pytest.mark.emulator
def test_every_emulated_board_names_a_machine_the_installed_qemu_knows(profiles):
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm is not installed")
    listing = subprocess.run(["qemu-system-arm", "-machine", "help"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    machines = {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    for profile in profiles.values():
        if profile.emulator and profile.emulator.qemu_machine:
            assert profile.emulator.qemu_machine in machines, profile.name


def test_phones_and_linux_boards_run_litert_with_their_settings(profiles):
    assert profiles["rpi4"].runtimes == ("litert",)
    assert (profiles["rpi4"].litert.threads, profiles["rpi4"].litert.delegate) == (4, "xnnpack")
    assert profiles["pixel-8"].supports("fp16")
    assert profiles["pixel-8"].toolchain.compiler == "aarch64-linux-gnu-gcc"  # the native harness
    assert (profiles["pixel-8"].litert.abi, profiles["pixel-8"].flash.method) == ("aarch64", "adb")
    emulated = profiles["qemu-aarch64"]
    assert (emulated.emulator.qemu_user, emulated.flash.method) == ("qemu-aarch64", "ssh")


def test_the_host_profile_builds_with_gcc_and_runs_every_runtime(profiles):
    host = profiles["host"]
    assert (host.kind, host.flash.method, host.toolchain.compiler) == ("host", "host", "gcc")
    assert host.runtimes == ("edgeq-c", "tflm", "litert")


# ---- derived properties -----------------------------------------------------------------------------

def test_ram_for_the_model_is_ram_less_what_the_application_reserves(profiles):
    nucleo = profiles["nucleo-l4r5zi"]
    assert nucleo.ram_for_model_bytes == 640 * 1024 - 32 * 1024


def test_derived_properties_read_the_profile(profiles):
    nano = profiles["arduino-nano-33-ble-sense"]
    assert nano.clock_hz == 64_000_000
    assert nano.default_runtime == "edgeq-c"
    assert nano.has_fpu and not profiles["rpi-pico"].has_fpu
    assert nano.supports("fp32") and not nano.supports("fp16")
    assert not profiles["rpi4"].is_microcontroller


def test_asking_about_an_unknown_numeric_is_an_error_not_false(profiles):
    with pytest.raises(BadInput, match="unknown numeric 'int7'; expected one of int8, int16x8"):
        profiles["host"].supports("int7")


# ---- rejections -------------------------------------------------------------------------------------

def test_a_zero_ram_size_is_refused_with_file_key_and_expectation(good):
    good["memory"]["ram_bytes"] = 0
    assert refused(good) == f"{SOURCE}: memory.ram_bytes: expected a positive integer, got 0"


def test_an_unknown_top_level_key_lists_the_allowed_keys(good):
    good["colour"] = "blue"
    message = refused(good)
    assert message.startswith(f"{SOURCE}: colour: unknown key; allowed keys: name, display_name, kind,")
    assert "memory" in message and "datasheet" in message


def test_an_unknown_nested_key_names_the_dotted_key_and_suggests_the_close_one(good):
    good["memory"]["ram_byte"] = 1024
    assert refused(good) == (
        f"{SOURCE}: memory.ram_byte: unknown key (did you mean ram_bytes?); allowed keys: "
        "flash_bytes, ram_bytes, ram_reserved_bytes, flash_origin, ram_origin, flash_wait_states")


def test_a_missing_required_key_is_named(good):
    del good["clock_mhz"]
    assert refused(good) == f"{SOURCE}: clock_mhz: missing; expected a positive number"


def test_a_missing_nested_key_is_named_with_its_section(good):
    del good["memory"]["ram_reserved_bytes"]
    assert refused(good) == f"{SOURCE}: memory.ram_reserved_bytes: missing; expected a non-negative integer"


def test_a_missing_section_is_named_with_its_keys(good):
    del good["serial"]
    assert refused(good) == f"{SOURCE}: serial: missing; expected a mapping with keys baud"


@pytest.mark.parametrize("key, value, expected", [
    ("cores", "one", "cores: expected a positive integer, got 'one'"),
    ("cores", True, "cores: expected a positive integer, got True"),
    ("clock_mhz", -25, "clock_mhz: expected a positive number, got -25"),
    ("kind", "fpga", "kind: expected one of mcu, linux, phone, host, got 'fpga'"),
    ("simd", "dsp", "simd: expected a list of names, without repeats, got 'dsp'"),
    ("memory", [4194304], "memory: expected a mapping with keys flash_bytes, ram_bytes"),
])
def test_a_value_of_the_wrong_type_or_range_is_refused(good, key, value, expected):
    good[key] = value
    assert refused(good).startswith(f"{SOURCE}: {expected}")


def test_reserving_all_the_ram_leaves_nothing_for_the_model_and_is_refused(good):
    good["memory"]["ram_reserved_bytes"] = good["memory"]["ram_bytes"]
    assert refused(good) == (f"{SOURCE}: memory.ram_reserved_bytes: expected less than "
                             "memory.ram_bytes (4194304), got 4194304")


def test_an_unknown_numeric_is_refused(good):
    good["numerics"] = ["int8", "int3"]
    assert refused(good) == (f"{SOURCE}: numerics: expected a non-empty list of names from int8, "
                             "int16x8, int4, fp16, fp32, without repeats, got ['int8', 'int3']")


def test_a_repeated_numeric_is_refused(good):
    good["numerics"] = ["int8", "int8"]
    assert "numerics: expected a non-empty list of names from" in refused(good)


def test_an_unknown_runtime_is_refused(good):
    good["runtimes"] = ["cmsis-nn"]
    assert refused(good) == (f"{SOURCE}: runtimes: expected a non-empty list of names from tflm, "
                             "edgeq-c, litert, without repeats, got ['cmsis-nn']")


def test_a_profile_without_runtimes_is_refused(good):
    good["runtimes"] = []
    assert refused(good).startswith(f"{SOURCE}: runtimes: expected a non-empty list")


def test_an_unknown_flash_method_is_refused(good):
    good["flash"]["method"] = "jlink"
    assert refused(good).startswith(f"{SOURCE}: flash.method: expected one of qemu, host, pyocd,")
    assert refused(good).endswith(", adb, ssh, got 'jlink'")


def test_an_unknown_optimisation_level_is_refused(good):
    good["toolchain"]["optimize"] = "-O0"
    assert refused(good) == f"{SOURCE}: toolchain.optimize: expected one of -Os, -O2, -O3, got '-O0'"


def test_a_name_that_differs_from_the_file_stem_is_refused(good):
    good["name"] = "qemu-mps2-an999"
    assert refused(good) == (f"{SOURCE}: name: expected the file name without .yaml "
                             "('qemu-mps2-an386'), got 'qemu-mps2-an999'")


def test_a_microcontroller_needs_a_ram_origin_for_its_linker_script(good):
    del good["memory"]["ram_origin"]
    assert refused(good).startswith(f"{SOURCE}: memory.ram_origin: missing; expected the RAM address")


def test_a_microcontroller_needs_a_toolchain(good):
    del good["toolchain"]
    assert refused(good) == (f"{SOURCE}: toolchain: missing; expected a toolchain section, "
                             "since kind mcu builds firmware or edgeq's native LiteRT harness from C")


def test_the_litert_runtime_needs_a_litert_section(good):
    good["runtimes"] = ["edgeq-c", "litert"]
    assert refused(good) == (f"{SOURCE}: litert: missing; expected a litert section (threads, delegate, custom_ops, "
                             "abi, cpus), since runtimes include litert")


def test_a_litert_section_without_the_litert_runtime_is_refused(good):
    good["litert"] = {"threads": 1, "delegate": "xnnpack"}
    assert refused(good).startswith(f"{SOURCE}: litert: expected no litert section unless runtimes")


def test_flashing_with_qemu_needs_an_emulator_section(good):
    del good["emulator"]
    assert refused(good) == (f"{SOURCE}: emulator: missing; expected an emulator section with "
                             "qemu_machine, since flash.method is qemu")


def test_an_unknown_flash_placeholder_is_refused(good):
    good["flash"]["args"] = ["{firmware}"]
    assert refused(good) == (f"{SOURCE}: flash.args: expected arguments whose placeholders are among "
                             "{image}, {elf}, {bin}, {hex}, {uf2}, {fsbl}, {port}, {host}, got ['{firmware}']")


def test_a_document_that_is_not_a_mapping_is_refused(good):
    assert refused(["name", "x"]) == (f"{SOURCE}: profile: expected a mapping with keys name, "
                                      f"display_name, kind, core, cores, clock_mhz, fpu, simd, memory, "
                                      f"numerics, runtimes, toolchain, flash, serial, emulator, board, litert, "
                                      f"datasheet, notes, got ['name', 'x']")


def test_the_good_profile_itself_parses(good):
    assert parse_profile(copy.deepcopy(good), SOURCE).name == "qemu-mps2-an386"


# ---- files and look-up ------------------------------------------------------------------------------

def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nmemory:\n  ram_bytes: [1, 2\n  flash_bytes: 3\n")
    with pytest.raises(BadInput, match=re.escape(str(path)) + r": line \d+, column \d+: not valid YAML"):
        load_profile_file(path)


def test_a_missing_profile_file_is_bad_input_naming_it(tmp_path):
    with pytest.raises(BadInput, match=re.escape(str(tmp_path / "gone.yaml")) + ": cannot read"):
        load_profile_file(tmp_path / "gone.yaml")


def test_a_misspelt_name_is_answered_with_close_matches():
    with pytest.raises(BadInput) as caught:
        get_profile("nucleo-l4")
    assert str(caught.value).startswith("unknown device profile 'nucleo-l4' (close matches: nucleo-l4r5zi")
    assert str(caught.value).endswith("; `edgeq profiles` lists them all")


def test_a_name_with_no_close_match_just_points_at_the_list():
    with pytest.raises(BadInput) as caught:
        get_profile("cray-1")
    assert str(caught.value) == "unknown device profile 'cray-1'; `edgeq profiles` lists them all"


def test_a_path_to_a_yaml_file_is_accepted_as_the_name(tmp_path, good):
    good["name"] = "my-board"
    path = tmp_path / "my-board.yaml"
    path.write_text(yaml.safe_dump(good))
    assert get_profile(str(path)).name == "my-board"


def test_profiles_are_looked_up_in_the_directory_given(tmp_path, good):
    good["name"] = "lab-board"
    (tmp_path / "lab-board.yaml").write_text(yaml.safe_dump(good))
    assert list(load_profiles(tmp_path)) == ["lab-board"]
    assert get_profile("lab-board", directory=tmp_path).memory.ram_bytes == 4194304


# ---- text ---------------------------------------------------------------------------------------------

def test_the_table_has_one_row_for_every_profile(profiles):
    rows = format_profile_table(profiles).splitlines()
    assert rows[0].split()[:3] == ["NAME", "CORE", "CLOCK"]
    assert [row.split()[0] for row in rows[1:]] == list(profiles)


def test_the_table_shows_sizes_human_readably(profiles):
    row = next(r for r in format_profile_table(profiles).splitlines() if r.startswith("nucleo-l4r5zi"))
    assert row.split() == ["nucleo-l4r5zi", "cortex-m4", "120", "MHz", "2", "MB", "640", "KB", "608", "KB",
                           "int8,int16x8,fp32", "edgeq-c,tflm"]


@pytest.mark.parametrize("n, text", [
    (262144, "256 KB"), (1048576, "1 MB"), (983040, "960 KB"), (4161536, "3.97 MB"), (1 << 33, "8 GB"),
    (100, "100 B"),
])
def test_sizes_are_written_in_binary_units(n, text):
    assert format_bytes(n) == text


def test_showing_one_profile_gives_every_fact_about_it(profiles):
    text = format_profile(profiles["nucleo-h743zi2"])
    for fact in ("nucleo-h743zi2: ST NUCLEO-H743ZI2", "cortex-m7 at 480 MHz", "fpv5-d16",
                 "2 MB at 0x08000000",
                 "512 KB at 0x24000000", "480 KB (491520 bytes)", "edgeq-c, tflm (default edgeq-c)",
                 "arm-none-eabi-gcc -O2 -mcpu=cortex-m7", "st-flash --reset write {bin} 0x08000000",
                 "115200 baud", "DS12110", "nucleo-h743zi2.yaml"):
        assert fact in text


def test_a_bare_file_name_of_a_shipped_profile_is_found_among_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert get_profile("rpi4.yaml").name == "rpi4"
