"""Phones and Linux boards: edgeq's native LiteRT harness (LiteRT's C runtime, no Python), built for
x86-64 and, as a self-contained bundle, for aarch64; run on this machine, under qemu-aarch64 reached
over a real sshd on 127.0.0.1, and over adb on a phone when one is connected. Every output is checked
against LiteRT with XNNPACK on this host."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeq.codegen.litert import cpuinfo_text, harness_command
from edgeq.device.loop import build_firmware, measure_run
from edgeq.device.measure import FirmwareMismatch, Run
from edgeq.device.native import measure_native, native_summary
from edgeq.device.remote import Adb, Ssh, run_tag
from edgeq.errors import BadInput
from edgeq.files import write_files
from edgeq.graph import read_graph
from edgeq.profiles import get_profile
from edgeq.protocol import TensorInfo
from edgeq.runtimes import LITERT

needs_arm_linux = pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64")
                                     is None, reason="make arm-linux installs the aarch64 cross compiler and qemu-user")


def built(profile, tflite: bytes, folder):
    """The LiteRT project for `profile`, written and built (edgeq build) into `folder`."""
    files = LITERT.project(profile, tflite, "small")
    write_files(folder, {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()})
    return build_firmware(folder, profile)


def samples(small_data):
    data = np.load(small_data["val"])
    return data["x"].astype(np.float32), data["y"]


@pytest.fixture(scope="module")
def host_bundle(small_cnn_int8, tmp_path_factory):
    folder = tmp_path_factory.mktemp("host-litert")
    return folder, built(get_profile("host"), small_cnn_int8, folder)


@pytest.fixture(scope="module")
def arm_bundle(small_cnn_int8, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arm-litert")
    return folder, built(get_profile("qemu-aarch64"), small_cnn_int8, folder)


def test_the_host_harness_outputs_are_byte_identical_to_litert_on_this_host(host_bundle, small_data):
    folder, _ = host_bundle
    x, y = samples(small_data)
    summary = measure_native(get_profile("host"), folder, measure_run(folder, x, y, folder / "measure.jsonl"))
    assert summary["bit_exact_fraction"] == 1.0 and summary["samples"] == len(x)
    assert summary["accuracy"] == summary["reference_accuracy"]
    native = summary["native"]
    assert native["cpu"]["machine"] == "x86_64" and not native["emulated"]
    assert 0 < native["latency_ms"]["min"] <= native["latency_ms"]["median"] <= native["latency_ms"]["p95"]
    assert native["init_ms"] > 0 and native["peak_rss_bytes"] > native["rss_before_model_bytes"] > 0


def test_the_bundle_records_the_litert_wheel_and_the_hash_of_its_library(arm_bundle):
    folder, result = arm_bundle
    bundle = json.loads((folder / "bundle" / "bundle.json").read_text())
    library = (folder / "bundle" / "libLiteRt.so").read_bytes()
    assert bundle["abi"] == "aarch64" and bundle["litert_version"] == "2.3.0"
    assert bundle["libLiteRt_sha256"] == hashlib.sha256(library).hexdigest()
    assert "manylinux_2_27_aarch64" in bundle["wheel"]
    assert {"ld-linux-aarch64.so.1", "libc.so.6", "libstdc++.so.6", "harness", "small.tflite"} <= set(bundle["files"])
    assert result.bundle["bytes"] == sum(bundle["files"].values())


@needs_arm_linux
@pytest.mark.parametrize("cpu", ["cortex-a72", "cortex-a53", "neoverse-n1"])
def test_the_aarch64_bundle_over_ssh_under_qemu_gives_the_host_litert_outputs(arm_bundle, small_data, cpu):
    folder, _ = arm_bundle
    base = get_profile("qemu-aarch64")
    profile = dataclasses.replace(base, emulator=dataclasses.replace(base.emulator, cpu=cpu))
    x, y = samples(small_data)
    summary = measure_native(profile, folder, measure_run(folder, x, y, folder / f"measure-{cpu}.jsonl"))
    assert summary["bit_exact_fraction"] == 1.0, summary["outputs"]
    native = summary["native"]
    assert native["emulated"] and native["cpu"]["machine"] == "aarch64"
    assert native["cpu"]["part"] == cpuinfo_text(cpu, 1).split("CPU part\t: ")[1].split()[0]
    assert "emulated: not the device's speed" in summary["sources"]["time_ms_median"]["by"]


@needs_arm_linux
def test_the_per_op_profile_names_each_op_and_its_share(arm_bundle, small_data):
    folder, _ = arm_bundle
    x, y = samples(small_data)
    summary = measure_native(get_profile("qemu-aarch64"), folder, measure_run(folder, x[:4], y[:4], folder / "p.jsonl"),
                             per_layer=True)
    rows = summary["native"]["op_profile"]
    assert rows and any("Convolution" in r["op"] for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=0.01)


def test_the_harness_refuses_inputs_that_are_not_whole_samples_naming_the_file(host_bundle, tmp_path):
    folder, result = host_bundle
    (tmp_path / "inputs.bin").write_bytes(b"\0" * 65)  # the model takes 64 bytes a sample
    done = subprocess.run([str(result.elf), "--model", str(folder / "bundle" / "small.tflite")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "inputs.bin holds 65 bytes, not a whole number of 64-byte samples" in done.stderr


def test_outputs_of_a_harness_built_for_another_model_are_refused(small_cnn_int8, small_data, tmp_path):
    x, y = samples(small_data)
    graph = read_graph(small_cnn_int8)
    output = TensorInfo("INT8", tuple(graph.output_tensors()[0].shape), 0.0, 0)
    run = measure_run_for(small_cnn_int8, x, y, tmp_path)
    with pytest.raises(FirmwareMismatch, match=r"built for the model with SHA-256 0000000000000000"):
        native_summary({"model_sha256": "0" * 64}, b"", [b""], run, (output,), where="a phone", emulated=False)


def measure_run_for(tflite, x, y, folder):
    return Run(tflite=tflite, model_name="small.tflite", x=x, y=y, journal=folder / "j.jsonl", runtime="litert",
               reference="litert", clock_hz=1, cycles_unit="ns", output_names=("out",))


def test_a_float_output_beyond_the_tolerance_is_flagged_with_the_tolerance(small_data, tmp_path):
    reference = [np.array([1.0, 2.0], np.float32).tobytes()]
    device = np.array([1.0, 2.1], np.float32).tobytes()
    result = {"model_sha256": hashlib.sha256(b"m").hexdigest(), "sample_ms": [0.5], "init_ms": 1.0,
              "first_ms": 0.5, "latency_ms": {"min": 0.4, "median": 0.5, "p95": 0.6, "max": 0.7, "mean": 0.5},
              "warmup_runs": 1, "runs": 3, "threads": 1, "peak_rss_bytes": 2, "rss_before_model_bytes": 1,
              "cpu": {}, "litert_version": "2.3.0"}
    run = measure_run_for(b"m", np.zeros((1, 2), np.float32), None, tmp_path)
    summary, _ = native_summary(result, device, reference, run, (TensorInfo("FLOAT32", (1, 2), 0.0, 0),),
                                where="a phone", emulated=False)
    out = summary["outputs"][0]
    assert out["within_tolerance"] is False and out["tolerance"] == pytest.approx(2e-5)
    assert out["max_abs_diff"] == pytest.approx(0.1, rel=1e-5)


def test_a_linux_board_without_an_address_is_not_reached_and_says_how():
    assert "--host user@address" in LITERT.unreachable(get_profile("rpi4"), None)
    assert LITERT.unreachable(get_profile("rpi4"), "pi@10.0.0.2") is None
    assert LITERT.unreachable(get_profile("qemu-aarch64"), None) is None  # edgeq starts its own sshd


def test_a_phone_runs_the_harness_pinned_to_its_big_cores_through_the_bundles_loader():
    argv = harness_command(get_profile("pixel-8"), ["--threads", "4"])
    assert argv == ["taskset", "1f0", "./ld-linux-aarch64.so.1", "--library-path", ".", "./harness", "--threads", "4"]


def test_the_emulated_device_runs_under_qemu_with_a_cpuinfo_of_its_own():
    argv = harness_command(get_profile("qemu-aarch64"), [])
    assert argv[:3] == ["unshare", "--mount", "sh"] and "mount --bind cpuinfo /proc/cpuinfo" in argv[4]
    assert argv[6:9] == ["qemu-aarch64", "-cpu", "cortex-a72"]


def test_ssh_and_adb_commands_are_plain_argument_lists():
    ssh = Ssh("pi@10.0.0.2", "/tmp/edgeq-x", "/cfg")
    assert ssh.run(["./harness"]) == ["ssh", "-F", "/cfg", "-o", "BatchMode=yes", "pi@10.0.0.2",
                                      "cd /tmp/edgeq-x && ./harness"]
    adb = Adb("R5CT", "/data/local/tmp/edgeq-x")
    assert adb.cleanup() == ["adb", "-s", "R5CT", "shell", "rm -rf /data/local/tmp/edgeq-x"]
    assert adb.facts()["fingerprint"] == ["adb", "-s", "R5CT", "shell", "getprop", "ro.build.fingerprint"]


def test_cpuinfo_for_a_cpu_edgeq_does_not_know_is_refused_naming_it():
    with pytest.raises(BadInput, match=r"no /proc/cpuinfo known for -cpu cortex-x9"):
        cpuinfo_text("cortex-x9", 4)


def edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@needs_arm_linux
def test_a_pixel_8_firmware_builds_and_its_dry_runs_print_the_adb_commands(small_cnn_int8, small_data, tmp_path):
    model = tmp_path / "small.tflite"
    model.write_bytes(small_cnn_int8)
    assert edgeq("generate", model, "--device", "pixel-8", "--out", tmp_path / "fw").returncode == 0
    assert edgeq("build", tmp_path / "fw").returncode == 0
    flashed = edgeq("flash", tmp_path / "fw", "--dry-run", "--serial", "R5CT", "--json")
    commands = json.loads(flashed.stdout)["commands"]
    assert commands[0] == ["adb", "-s", "R5CT", "shell", "mkdir -p /data/local/tmp/edgeq-"
                           + hashlib.sha256(small_cnn_int8).hexdigest()[:12]]
    assert commands[1][:4] == ["adb", "-s", "R5CT", "push"] and str(tmp_path / "fw/bundle/libLiteRt.so") in commands[1]
    measured = edgeq("measure", tmp_path / "fw", "--dry-run", "--serial", "R5CT", "--val", small_data["val"], "--json")
    stages = [c[3] if c[3] != "shell" else c[4].split(" && ")[-1].split()[0] for c in
              json.loads(measured.stdout)["commands"]]
    assert stages == ["mkdir", "push", "taskset", "pull", "pull", "rm"]


def test_a_phone_connected_over_adb_is_measured_bit_exact(small_cnn_int8, small_data, tmp_path):
    listed = subprocess.run(["adb", "devices"], capture_output=True, text=True, timeout=30) if shutil.which("adb") \
        else None
    phones = [line.split()[0] for line in (listed.stdout if listed else "").splitlines()[1:] if line.endswith("device")]
    if listed and not phones:  # `adb devices` started adb's server: leave nothing running behind
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)
    if not phones:
        pytest.skip("no phone: adb devices lists none (connect one with USB debugging on to run the phone loop)")
    profile = get_profile("pixel-8")
    built(profile, small_cnn_int8, tmp_path)
    x, y = samples(small_data)
    summary = measure_native(profile, tmp_path, measure_run(tmp_path, x, y, tmp_path / "m.jsonl"), phones[0])
    assert summary["bit_exact_fraction"] == 1.0 and summary["native"]["facts"]["fingerprint"]


def test_qemus_max_cpu_with_sme_is_refused_because_xnnpack_int8_is_wrong_there():
    with pytest.raises(BadInput, match=r"-cpu max enables SME"):
        cpuinfo_text("max", 4)
    assert "CPU part\t: 0xd0c" in cpuinfo_text("max,sme=off", 1)


def test_two_runs_of_one_model_on_one_device_get_folders_of_their_own():
    sha = "ab" * 32
    first, second = run_tag(sha), run_tag(sha)
    assert first != second and first.startswith("abababababab-") and second.startswith("abababababab-")
