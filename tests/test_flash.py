"""Flash runners: the exact argument list each tool gets from the shipped profiles, options a tool
cannot honour refused, a missing program named with its package, dry runs that run nothing."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.device.flash import (
    RUNNERS,
    FlashOptions,
    Images,
    NrfjprogRunner,
    OpenocdRunner,
    QemuRunner,
    flash,
    run_tool,
    runner_for,
)
from edgeq.errors import BadInput, ToolFailed
from edgeq.profiles import get_profile

FW = Path("/fw")
IMAGES = Images(elf=FW / "firmware.elf", bin=FW / "firmware.bin", hex=FW / "firmware.hex", image=FW / "firmware.elf")


def commands(profile_name: str, **options) -> list[list[str]]:
    profile = get_profile(profile_name)
    return runner_for(profile).commands(profile.flash.args, IMAGES, FlashOptions(**options))


def test_st_flash_writes_the_bin_at_the_flash_origin():
    assert commands("nucleo-l4r5zi") == [["st-flash", "--reset", "write", "/fw/firmware.bin", "0x08000000"]]


def test_st_flash_erases_first_and_selects_the_probe_in_both_commands():
    assert commands("nucleo-h743zi2", probe="0671FF", erase=True) == [
        ["st-flash", "--serial", "0671FF", "erase"],
        ["st-flash", "--serial", "0671FF", "--reset", "write", "/fw/firmware.bin", "0x08000000"]]


def test_stm32n6_fsbl_gets_st_boot_header_then_goes_to_the_nor_flash_through_the_external_loader():
    assert commands("stm32n6570-dk", probe="004A00", erase=True) == [
        ["STM32_SigningTool_CLI", "-bin", "/fw/firmware.bin", "-nk", "-of", "0x80000000", "-t", "fsbl", "-hv", "2.3",
         "-align", "-o", "/fw/firmware-fsbl.bin"],
        ["STM32_Programmer_CLI", "-c", "port=SWD", "sn=004A00", "mode=HOTPLUG",
         "-el", "MX66UW1G45G_STM32N6570-DK.stldr", "-hardRst", "-e", "all", "-w", "/fw/firmware-fsbl.bin",
         "0x70000000"]]


def test_bossac_gets_the_serial_port_in_its_own_argument_and_writes_at_the_bootloaders_offset():
    assert commands("arduino-nano-33-ble-sense", port="/dev/ttyACM0") == [
        ["bossac", "--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "--offset=0x10000", "/fw/firmware.bin", "-R"]]


def test_a_placeholder_without_a_value_is_refused_saying_which_option_gives_it():
    with pytest.raises(BadInput, match=r"flash.args use \{port\}, but there is none: give the board's serial "
                                       r"port with --port"):
        commands("arduino-nano-33-ble-sense")


def test_esptool_takes_the_port_as_a_global_option_and_erases_while_writing():
    assert commands("esp32-s3-devkitc", port="/dev/ttyUSB0", erase=True) == [
        ["esptool.py", "--port", "/dev/ttyUSB0", "--chip", "esp32s3", "--baud", "460800", "--before",
         "default_reset", "--after", "hard_reset", "write_flash", "--erase-all", "0x10000", "/fw/firmware.bin"]]


def test_pyocd_puts_probe_and_erase_after_its_subcommand():
    assert commands("sparkfun-edge", probe="0240000034", erase=True) == [
        ["pyocd", "flash", "-u", "0240000034", "--erase", "chip", "--target", "ama3b1kk_kbr", "/fw/firmware.elf"]]


def test_picotool_loads_the_elf_and_cannot_erase_the_whole_flash():
    assert commands("rpi-pico") == [["picotool", "load", "-v", "-x", "/fw/firmware.elf"]]
    with pytest.raises(BadInput, match=r"picotool cannot honour --erase: picotool has no way to erase the "
                                       r"whole flash"):
        commands("rpi-pico", erase=True)


def test_esptool_cannot_select_a_probe():
    with pytest.raises(BadInput, match=r"esptool cannot honour --probe: esptool has no way to select a debug probe"):
        commands("esp32-s3-devkitc", probe="X")


def test_openocd_selects_the_probe_before_its_first_command():
    args = ["-f", "interface/stlink.cfg", "-f", "target/stm32l4x.cfg", "-c", "program {elf} verify reset exit"]
    assert OpenocdRunner().commands(args, IMAGES, FlashOptions(probe="066D")) == [
        ["openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32l4x.cfg", "-c", "adapter serial 066D",
         "-c", "program /fw/firmware.elf verify reset exit"]]


def test_nrfjprog_chip_erase_replaces_the_sector_erase_and_the_probe_is_its_snr():
    args = ["--program", "{hex}", "--sectorerase", "--verify", "--reset"]
    assert NrfjprogRunner().commands(args, IMAGES, FlashOptions(probe="683000001", erase=True)) == [
        ["nrfjprog", "--program", "/fw/firmware.hex", "--verify", "--reset", "--chiperase", "--snr", "683000001"]]


def test_a_real_board_tool_without_arguments_is_refused():
    profile = get_profile("nucleo-l4r5zi")
    bare = dataclasses.replace(profile, flash=dataclasses.replace(profile.flash, args=()))
    with pytest.raises(BadInput, match=r"flash.args is empty: st-flash needs its arguments in the device profile"):
        runner_for(bare).commands(bare.flash.args, IMAGES, FlashOptions())


def test_qemu_has_nothing_to_write_and_starts_with_icount_and_a_nodelay_uart_socket():
    assert commands("qemu-mps2-an386") == []
    assert QemuRunner().command("mps2-an386", FW / "firmware.elf", 45678) == [
        "qemu-system-arm", "-M", "mps2-an386", "-icount", "shift=0", "-nodefaults", "-nographic", "-monitor",
        "none", "-no-reboot", "-serial", "tcp:127.0.0.1:45678,server=on,wait=on,nodelay=on",
        "-kernel", "/fw/firmware.elf"]
    with pytest.raises(BadInput, match=r"qemu cannot honour --erase"):
        commands("qemu-mps2-an386", erase=True)


def test_every_tool_names_the_package_that_provides_it():
    provides = {name: cls.provides for name, cls in RUNNERS.items() if name != "host"}
    assert provides == {
        "qemu": "the Debian package qemu-system-arm",
        "pyocd": "the PyPI package pyocd (pip install pyocd)",
        "openocd": "the Debian package openocd",
        "st-flash": "the Debian package stlink-tools",
        "stm32cubeprogrammer": "ST's STM32CubeProgrammer (st.com)",
        "esptool": "the PyPI package esptool (pip install esptool)",
        "picotool": "the Debian package picotool",
        "nrfjprog": "Nordic's nRF Command Line Tools (nordicsemi.com)",
        "bossac": "the Debian package bossa-cli",
    }


def test_a_missing_program_is_one_typed_error_naming_its_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolFailed, match=r"st-flash not found on PATH: install the Debian package stlink-tools"):
        flash(get_profile("nucleo-l4r5zi"), IMAGES, FlashOptions())


def test_dry_run_prints_the_command_and_runs_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # not even installed: a dry run does not look
    ran = flash(get_profile("nucleo-l4r5zi"), IMAGES, FlashOptions(), dry_run=True)
    assert capsys.readouterr().out.splitlines() == [shlex.join(argv) for argv in ran]


def test_a_tool_that_fails_is_reported_with_its_exit_code_and_output():
    with pytest.raises(ToolFailed, match=r"failed with exit code 3: .* -c .*\n.*no probe found"):
        run_tool([sys.executable, "-c", "import sys; print('no probe found'); sys.exit(3)"], "python")


def test_flash_dry_run_from_the_command_line_prints_the_profiles_tool(tmp_path, small_cnn_path, small_data):
    tflite = tmp_path / "m_int8.tflite"
    cli = [sys.executable, "-m", "edgeq"]
    subprocess.run([*cli, "convert", small_cnn_path, "--quant", "int8", "--data", small_data["calib"], "--out",
                    tflite], check=True, capture_output=True, timeout=600)
    subprocess.run([*cli, "generate", tflite, "--device", "nucleo-l4r5zi", "--runtime", "edgeq-c", "--out",
                    tmp_path / "fw"], check=True, capture_output=True, timeout=600)
    done = subprocess.run([*cli, "flash", tmp_path / "fw", "--dry-run"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"st-flash --reset write {tmp_path / 'fw' / 'firmware.bin'} 0x08000000"
