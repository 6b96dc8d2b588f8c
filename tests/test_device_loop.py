"""The device loop for real: the digits model generated, built with the real cross compiler, run in
qemu-system-arm on the four MPS2 boards (and natively on the host, on a pseudo-terminal) and measured
over the serial protocol against the tflite-micro interpreter.

Faults are injected for real: a TCP proxy between the host and QEMU that corrupts, silences or
rewrites what the device sends, firmware built for another model, QEMU killed mid-run, a PATH
without QEMU, a port that is already taken.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeq.device.build import build
from edgeq.device.connect import device_link, qemu_link, start_qemu
from edgeq.device.loop import measure_run
from edgeq.device.measure import FirmwareMismatch, measure, quantized_input
from edgeq.errors import ToolFailed
from edgeq.graph import read_graph
from edgeq.measure.interpreters import run_tflm
from edgeq.profiles import get_profile
from edgeq.protocol import RESULT, FrameDecoder, LinkError, LinkTimeout, ProtocolError, TensorInfo, encode_frame
from edgeq.resources import REPO_ROOT
from edgeq.runtimes import get_runtime

EMULATED = ["qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547"]
DIGITS = REPO_ROOT / "examples" / "digits"

needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")


@dataclass(frozen=True)
class Digits:
    tflite: bytes
    x: np.ndarray  # float validation images
    y: np.ndarray
    artifacts: Path


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Digits:
    """The digits example converted to int8 with its calibration set (trained first when absent)."""
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    artifacts = DIGITS / "artifacts"
    if not (artifacts / "digits.keras").is_file():
        artifacts = tmp_path_factory.mktemp("digits")
        subprocess.run([sys.executable, str(DIGITS / "train.py"), "--out", str(artifacts)], check=True,
                       capture_output=True, timeout=600)
    model = load_model(artifacts / "digits.keras")
    tflite = convert(model, "int8", load_dataset(str(artifacts / "calib.npz"), model.input))
    with np.load(artifacts / "val.npz") as val:
        return Digits(tflite, val["x"], val["y"], artifacts)


def generate(directory: Path, profile_name: str, tflite: bytes, stem: str = "digits_int8") -> Path:
    project = get_runtime("edgeq-c").project(get_profile(profile_name), tflite, stem)
    for name, content in project.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return directory


@pytest.fixture(scope="module")
def firmware(digits, tmp_path_factory) -> dict[str, Path]:
    """The digits firmware, generated and built once per board that the machine can build for."""
    built = {}
    for name in EMULATED + ["host"]:
        compiler = get_profile(name).toolchain.compiler
        if shutil.which(compiler) is None:
            continue
        project = generate(tmp_path_factory.mktemp(name), name, digits.tflite)
        build(project, get_profile(name))
        built[name] = project
    return built


def run_for(profile_name: str, project: Path, x, y, journal: Path, **changes):
    run = measure_run(project, x, y, journal)
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def emulated_accuracy(tflite: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of the same quantized model in the tflite-micro interpreter, computed independently."""
    graph = read_graph(tflite)
    tensor = graph.tensors[graph.inputs[0]]
    xq = quantized_input(x, TensorInfo(tensor.type, tuple(tensor.shape), tensor.scales[0], tensor.zero_points[0]))
    return float(np.mean(run_tflm(tflite, xq)[0].argmax(axis=1) == y))


def qemu_processes(marker: str) -> list[int]:
    """Running processes whose command line mentions `marker` (a firmware path of this test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-system-arm" in cmdline and marker in cmdline:
                found.append(int(entry.name))
    return found


# ---- every board, the whole validation set ----------------------------------------------------------

@pytest.mark.parametrize("profile_name", [pytest.param(n, marks=[pytest.mark.emulator, needs_qemu]) for n in EMULATED]
                         + [pytest.param("host", marks=[pytest.mark.host, needs_gcc])])
def test_digits_on_the_device_is_bit_exact_with_tflite_micro_and_as_accurate_as_emulated(
        profile_name, digits, firmware, tmp_path):
    profile = get_profile(profile_name)
    project = firmware[profile_name]
    run = measure_run(project, digits.x, digits.y, tmp_path / "measure.jsonl")
    with device_link(profile, project / "firmware.elf", tmp_path) as link:
        summary = measure(link, run)
    assert summary["samples"] == len(digits.y) == 360 and summary["complete"]
    assert summary["bit_exact_fraction"] == 1.0 and summary["max_abs_diff"] == 0
    assert summary["accuracy"] == emulated_accuracy(digits.tflite, digits.x, digits.y) > 0.95
    assert summary["cycles_unit"] == ("ns" if profile_name == "host" else "instructions")
    assert 0 < summary["cycles_min"] <= summary["cycles_median"] <= summary["cycles_p95"]
    assert summary["macs"] == 117_568 and summary["samples_per_second"] > 10
    if profile_name != "host":
        # QEMU counts instructions, the same for every run of the same image on the same input.
        assert summary["instructions_per_mac"] == round(summary["cycles_median"] / summary["macs"], 4)
        assert summary["time_ms_median"] == round(summary["cycles_median"] / profile.clock_hz * 1e3, 6)


@pytest.mark.emulator
@needs_qemu
def test_instruction_counts_repeat_from_run_to_run_to_within_one_systick_tick(digits, firmware, tmp_path):
    # The UART wait before each inference runs a host-timed number of instructions, so where the
    # inference starts within a SysTick period varies: the count is exact to one tick.
    from edgeq.boards import board_params_for

    profile = get_profile("qemu-mps2-an505")
    counts = []
    for attempt in range(2):
        run = measure_run(firmware["qemu-mps2-an505"], digits.x[:5], None, tmp_path / f"{attempt}.jsonl")
        with device_link(profile, firmware["qemu-mps2-an505"] / "firmware.elf", tmp_path) as link:
            measure(link, run)
        counts.append([json.loads(line)["cycles"] for line in (tmp_path / f"{attempt}.jsonl").read_text().splitlines()[1:]])
    tick = board_params_for(profile).cycles_per_tick
    assert all(abs(a - b) <= tick for a, b in zip(counts[0], counts[1])) and len(counts[0]) == 5


@pytest.mark.emulator
@needs_qemu
def test_the_measured_stack_peak_is_inside_the_reserved_stack_and_named_as_measured(digits, firmware, tmp_path):
    from edgeq.boards import board_params_for

    profile = get_profile("qemu-mps2-an386")
    run = measure_run(firmware["qemu-mps2-an386"], digits.x[:2], None, tmp_path / "measure.jsonl")
    with device_link(profile, firmware["qemu-mps2-an386"] / "firmware.elf", tmp_path) as link:
        summary = measure(link, run)
    assert summary["stack_bytes"] == board_params_for(profile).stack_bytes
    # The serial loop and the kernels' frames: far more than nothing, far less than the reservation.
    assert 64 < summary["stack_peak_bytes"] < summary["stack_bytes"] // 2
    assert summary["sources"]["stack_peak_bytes"]["kind"] == "measured"


@pytest.mark.emulator
@pytest.mark.shared
@needs_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-mps2-an500"])
@pytest.mark.parametrize("model", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_mlperf_tiny_model_runs_bit_exact_on_the_device(board, model, shared_models, tmp_path):
    tflite = (shared_models / model).read_bytes()
    project = generate(tmp_path / "fw", board, tflite, Path(model).stem)
    build(project, get_profile(board))
    tensor = read_graph(tflite).input_tensors()[0]
    x = np.random.default_rng(7).integers(-128, 127, (3, *tensor.shape[1:]), endpoint=True).astype(np.int8)
    run = measure_run(project, x, None, tmp_path / "measure.jsonl")
    with device_link(get_profile(board), project / "firmware.elf", tmp_path) as link:
        summary = measure(link, run)
    assert summary["samples"] == 3 and summary["bit_exact_fraction"] == 1.0
    assert summary["instructions_per_mac"] > 1


# ---- faults between the host and QEMU ----------------------------------------------------------------

class Proxy:
    """TCP between the host's Link and QEMU's UART; `mangle(bytes) -> bytes` edits what the device sends."""

    def __init__(self, qemu_port: int, mangle):
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._qemu_port = qemu_port
        self._mangle = mangle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        self._server.settimeout(10)
        try:
            host, _ = self._server.accept()
        except OSError:
            return
        deadline = time.monotonic() + 10
        while True:
            try:
                device = socket.create_connection(("127.0.0.1", self._qemu_port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        with host, device:
            while not self._stop.is_set():
                ready, _, _ = select.select([host, device], [], [], 0.05)
                for source in ready:
                    data = source.recv(4096)
                    if not data:
                        return
                    if source is device:
                        host.sendall(self._mangle(data))
                    else:
                        device.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)


def _through_proxy(firmware, digits, tmp_path, mangle, count=40, **run_changes):
    """Measures `count` digits through a proxy; returns (summary or exception, journal lines, QEMU)."""
    from edgeq.device.connect import open_link

    project = firmware["qemu-mps2-an386"]
    run = run_for("qemu-mps2-an386", project, digits.x[:count], digits.y[:count], tmp_path / "measure.jsonl",
                  **run_changes)
    outcome = None
    with start_qemu("mps2-an386", project / "firmware.elf", tmp_path / "qemu.log") as qemu:
        proxy = Proxy(qemu.port, mangle)
        try:
            with open_link(proxy.url) as link:
                try:
                    outcome = measure(link, run)
                except ToolFailed as exc:
                    outcome = exc
        finally:
            proxy.close()
    lines = (tmp_path / "measure.jsonl").read_text().splitlines() if (tmp_path / "measure.jsonl").exists() else []
    return outcome, lines, qemu


@pytest.mark.emulator
@needs_qemu
def test_bytes_corrupted_on_the_line_are_resent_and_every_result_is_still_exact(firmware, digits, tmp_path):
    sent = [0]

    def flip_every_500th(data: bytes) -> bytes:
        out = bytearray(data)
        for i in range(len(out)):
            sent[0] += 1
            if sent[0] % 500 == 0:
                out[i] ^= 0x10
        return bytes(out)

    summary, lines, qemu = _through_proxy(firmware, digits, tmp_path, flip_every_500th)
    assert isinstance(summary, dict), summary
    assert summary["samples"] == 40 and summary["bit_exact_fraction"] == 1.0
    assert qemu.process.poll() is not None


@pytest.mark.emulator
@needs_qemu
def test_garbage_on_the_line_ends_with_exit_4_keeping_what_was_measured(firmware, digits, tmp_path):
    rng = np.random.default_rng(3)
    sent = [0]

    def garbage_after_ten_replies(data: bytes) -> bytes:
        sent[0] += len(data)
        return data if sent[0] < 10 * 30 + 120 else rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()

    failure, lines, qemu = _through_proxy(firmware, digits, tmp_path, garbage_after_ten_replies, timeout=0.5)
    assert isinstance(failure, LinkError) and failure.exit_code == 4
    assert "CRC failures" in str(failure)
    kept = len(lines) - 1
    assert 5 <= kept < 40 and failure.measured["samples"] == kept and failure.measured["bit_exact_fraction"] == 1.0
    assert qemu.process.poll() is not None and not qemu_processes(str(firmware["qemu-mps2-an386"]))


@pytest.mark.emulator
@needs_qemu
def test_a_device_that_stops_answering_mid_run_times_out_with_exit_4(firmware, digits, tmp_path):
    sent = [0]

    def silent_after_ten_replies(data: bytes) -> bytes:
        sent[0] += len(data)
        return data if sent[0] < 10 * 30 + 120 else b""

    failure, lines, _ = _through_proxy(firmware, digits, tmp_path, silent_after_ten_replies, timeout=0.3)
    assert isinstance(failure, LinkTimeout) and failure.exit_code == 4
    assert "no RESULT for INFER" in str(failure) and "3 attempt(s) of 0.3 s" in str(failure)
    assert 5 <= len(lines) - 1 < 40


@pytest.mark.emulator
@needs_qemu
def test_a_device_that_never_says_hello_times_out_naming_what_it_waited_for(firmware, digits, tmp_path):
    failure, lines, _ = _through_proxy(firmware, digits, tmp_path, lambda data: b"", hello_timeout=1.0)
    assert isinstance(failure, LinkTimeout) and "no HELLO from the device" in str(failure)
    assert re.search(r"within 1\.0 s \(\d+ HELLO_REQUESTs sent; 0 bytes received", str(failure)), failure
    assert lines == []


@pytest.mark.emulator
@needs_qemu
def test_a_result_of_the_wrong_size_is_refused_naming_both_sizes(firmware, digits, tmp_path):
    decoder = FrameDecoder()
    results = [0]

    def short_after_five_results(data: bytes) -> bytes:
        out = []
        for frame in decoder.feed(data):
            payload = frame.payload
            if frame.type == RESULT:
                results[0] += 1
                payload = payload[:-1] if results[0] > 5 else payload
            out.append(encode_frame(frame.type, frame.seq, payload))
        return b"".join(out)

    failure, lines, _ = _through_proxy(firmware, digits, tmp_path, short_after_five_results)
    assert isinstance(failure, ProtocolError) and failure.exit_code == 4
    assert "RESULT carries 9 output bytes, but the output tensors take 10 bytes" in str(failure)
    assert len(lines) - 1 == 5


@pytest.mark.emulator
@needs_qemu
def test_firmware_built_for_another_model_is_refused_before_measuring(firmware, digits, tmp_path):
    other = bytearray(digits.tflite)
    other[-1] ^= 1  # a different file: another SHA-256
    run = run_for("qemu-mps2-an386", firmware["qemu-mps2-an386"], digits.x[:3], None, tmp_path / "m.jsonl",
                  tflite=bytes(other), model_name="other.tflite")
    with pytest.raises(FirmwareMismatch, match=r"was built from the model with SHA-256 [0-9a-f]{16}\.\.\., not from "
                                               r"other\.tflite") as raised:
        with qemu_link("mps2-an386", firmware["qemu-mps2-an386"] / "firmware.elf", tmp_path / "q.log") as link:
            measure(link, run)
    assert raised.value.exit_code == 4 and not (tmp_path / "m.jsonl").exists()


@pytest.mark.emulator
@needs_qemu
def test_a_busy_tcp_port_is_refused_naming_it(firmware, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ToolFailed, match=rf"TCP port {port} on 127\.0\.0\.1 is busy"):
            with start_qemu("mps2-an386", firmware["qemu-mps2-an386"] / "firmware.elf", tmp_path / "q.log",
                            serial_port=port):
                pass
    assert not qemu_processes(str(firmware["qemu-mps2-an386"]))


# ---- the command line ----------------------------------------------------------------------------------

def edgeq(*args, env=None, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, **popen)


@pytest.mark.emulator
@needs_qemu
def test_qemu_killed_mid_run_exits_4_keeps_the_samples_and_resume_finishes_the_run(firmware, digits, tmp_path):
    project = firmware["qemu-mps2-an386"]
    out = tmp_path / "out"
    val = digits.artifacts / "val.npz"
    command = [sys.executable, "-m", "edgeq", "measure", str(project), "--val", str(val), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / "measure.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and len(journal.read_text().splitlines()) > 20):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.005)
    for pid in qemu_processes(str(project)):
        os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 4, stderr
    assert "QEMU exited with code -9" in stderr
    kept = len(journal.read_text().splitlines()) - 1
    assert 20 <= kept < 360
    assert json.loads((out / "measure.json").read_text())["samples"] == kept
    resumed = edgeq("measure", project, "--val", val, "--out", out, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["samples"], summary["complete"], summary["bit_exact_fraction"]) == (360, True, 1.0)
    assert len(journal.read_text().splitlines()) == 361
    assert not qemu_processes(str(project))


@pytest.mark.emulator
@needs_qemu
def test_without_qemu_on_the_path_measure_exits_4_naming_the_package(firmware, tmp_path):
    result = edgeq("measure", firmware["qemu-mps2-an386"], "--samples", "2", "--out", tmp_path,
                   env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 4
    assert "qemu-system-arm not found on PATH: install the Debian package qemu-system-arm" in result.stderr


@pytest.mark.emulator
@needs_qemu
def test_without_the_cross_compiler_build_exits_4_naming_the_package(digits, tmp_path):
    project = generate(tmp_path / "fw", "qemu-mps2-an386", digits.tflite)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "make").symlink_to(shutil.which("make"))
    result = edgeq("build", project, env={**os.environ, "PATH": str(tools)})
    assert result.returncode == 4
    assert ("arm-none-eabi-gcc not found on PATH: install the Debian packages gcc-arm-none-eabi and "
            "libnewlib-arm-none-eabi") in result.stderr


@pytest.mark.host
@needs_gcc
def test_a_serial_port_another_program_holds_is_refused_as_busy(firmware, tmp_path):
    import fcntl

    master, slave = os.openpty()
    tty.setraw(slave)
    holder = os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive open takes
    try:
        result = edgeq("measure", firmware["host"], "--device", "nucleo-l4r5zi", "--port", os.ttyname(slave),
                       "--samples", "2", "--out", tmp_path)
    finally:
        for fd in (holder, slave, master):
            os.close(fd)
    assert result.returncode == 4
    assert "is busy: another program has it open" in result.stderr


@pytest.mark.emulator
@needs_qemu
def test_flash_on_qemu_starts_the_board_reads_hello_and_stops_it(firmware):
    project = firmware["qemu-mps2-an505"]
    result = edgeq("flash", project)
    assert result.returncode == 0, result.stderr
    assert "HELLO from qemu-mps2-an505: edgeq-c 0.1.0, model" in result.stdout and "this firmware's model" in result.stdout
    assert not qemu_processes(str(project))


@pytest.mark.emulator
@needs_qemu
def test_deploy_builds_flashes_and_measures_on_qemu_and_reports_the_figures(digits, tmp_path):
    out = tmp_path / "out"
    result = edgeq("deploy", digits.artifacts / "digits.keras", "--device", "qemu-mps2-an386",
                   "--data", digits.artifacts / "calib.npz", "--val", digits.artifacts / "val.npz",
                   "--samples", "60", "--out", out)
    assert result.returncode == 0, result.stderr
    for stage in ("generate", "build", "device"):
        assert f"\n  {stage} " in result.stdout
    report = json.loads((out / "report.json").read_text())
    measured = report["measure"]
    assert measured["samples"] == 60 and measured["bit_exact_fraction"] == 1.0
    assert measured["accuracy"] == emulated_accuracy(digits.tflite, digits.x[:60], digits.y[:60])
    assert measured["instructions_per_mac"] > 1 and measured["cycles_unit"] == "instructions"
    memory = report["memory"]
    assert memory["edgeq_c_arena_bytes"] <= memory["edgeq_c_lower_bound_bytes"] < memory["tflm_arena_bytes"]
    assert 0 < memory["flash_used_bytes"] == report["build"]["flash_used_bytes"] < 64 * 1024
    assert memory["ram_used_bytes"] == report["build"]["ram_used_bytes"] > memory["edgeq_c_arena_bytes"]
    assert report["device"] == {"status": "measured", "reason": None}
    assert "## On the device" in (out / "report.md").read_text() and "## On the device" in result.stdout
    # On an emulated Cortex-M, the cycles its core would take, estimated, beside the instructions counted.
    assert measured["estimated_cycles"]["core"] == "cortex-m4"
    assert measured["estimated_cycles"]["estimate_cycles"] > measured["cycles_median"]
    assert measured["sources"]["estimated_cycles"]["kind"] == "estimated"


@pytest.mark.emulator
@needs_qemu
def test_deploy_keeps_the_images_it_built_and_the_measurement_log_in_the_output_folder(digits, tmp_path):
    out = tmp_path / "out"
    result = edgeq("deploy", digits.artifacts / "digits.keras", "--device", "qemu-mps2-an386", "--quant", "int8",
                   "--data", digits.artifacts / "calib.npz", "--val", digits.artifacts / "val.npz",
                   "--samples", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    firmware = out / "firmware" / "edgeq-c"
    assert (firmware / "firmware.elf").is_file() and (firmware / "firmware.bin").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["build"]["command"] == "make -C firmware/edgeq-c -j2"
    assert report["outputs"]["measure_log"] == "measure.jsonl"
    assert len((out / "measure.jsonl").read_text().splitlines()) == 1 + 3  # the header, then a line a sample
