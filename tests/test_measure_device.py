"""Measuring on the device, the pure parts: the figures from the samples, the firmware check, input
quantization, the resumable journal, and how deploy decides whether it can reach the device."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from edgeq.device.measure import FirmwareMismatch, Journal, Sample, check_firmware, quantized_input, summarize
from edgeq.errors import BadInput
from edgeq.measure.interpreters import _quantize_input
from edgeq.profiles import get_profile
from edgeq.protocol import HelloInfo, TensorInfo
from edgeq.report import format_measure
from edgeq.runtimes import get_runtime

pytestmark = pytest.mark.usefixtures("no_processes")  # a pure stage: no program, fork or port

OUTPUT = TensorInfo("INT8", (1, 3), 0.00390625, -128)
# Raw int8 outputs of four samples (200 is -56, 250 is -6, 240 is -16). Top-1: 1, 2, 1, 0 for the
# reference; the device's sample 2 differs in its last element (7, not -16: off by 23), so its top-1 is 2.
REFERENCE = [bytes([200, 10, 0]), bytes([0, 250, 1]), bytes([0, 5, 240]), bytes([9, 9, 200])]
DEVICE = {0: REFERENCE[0], 1: REFERENCE[1], 2: bytes([0, 5, 7]), 3: REFERENCE[3]}
LABELS = np.array([1, 2, 2, 0])
CYCLES = {0: 1000, 1: 1100, 2: 1200, 3: 1300}


def samples(indices=range(4)) -> list[Sample]:
    return [Sample(i, CYCLES[i], DEVICE[i], 0.01) for i in indices]


def figures(**changes) -> dict:
    arguments = dict(planned=4, runtime="edgeq-c", reference_name="tflite-micro", macs=100, clock_hz=25_000_000,
                     cycles_unit="instructions")
    arguments.update(changes)
    return summarize(samples(), REFERENCE, LABELS, OUTPUT, **arguments)


def test_bit_exact_share_and_largest_difference_compare_raw_outputs_with_the_reference():
    m = figures()
    assert (m["bit_exact_fraction"], m["bit_exact_samples"], m["max_abs_diff"]) == (0.75, 3, 23.0)
    assert m["reference"] == "tflite-micro"


def test_accuracy_is_top1_of_the_device_outputs_and_of_the_reference_against_the_labels():
    m = figures()
    assert (m["accuracy"], m["reference_accuracy"]) == (1.0, 0.75)
    assert summarize(samples(), REFERENCE, None, OUTPUT, planned=4, runtime="tflm", reference_name="tflite-micro",
                     macs=None, clock_hz=1, cycles_unit="cycles")["accuracy"] is None


def test_cycle_figures_per_inference_per_mac_and_in_time_at_the_clock():
    m = figures()
    assert (m["cycles_min"], m["cycles_median"], m["cycles_p95"], m["cycles_max"]) == (1000, 1150.0, 1285.0, 1300)
    assert (m["cycles_per_mac"], m["instructions_per_mac"]) == (11.5, 11.5)
    assert m["time_ms_median"] == 0.046  # 1150 instructions at one a cycle and 25 MHz
    assert m["samples_per_second"] == 100.0


def test_time_is_wall_clock_when_the_counter_counts_nanoseconds_and_per_mac_is_not_instructions():
    m = figures(cycles_unit="ns")
    assert (m["time_ms_median"], m["instructions_per_mac"], m["cycles_per_mac"]) == (0.00115, None, 11.5)


def test_an_interrupted_run_is_summarized_as_incomplete():
    m = summarize(samples([0, 1]), REFERENCE, None, OUTPUT, planned=4, runtime="edgeq-c",
                  reference_name="tflite-micro", macs=None, clock_hz=1, cycles_unit="cycles")
    assert (m["samples"], m["samples_planned"], m["complete"], m["cycles_per_mac"]) == (2, 4, False, None)
    assert "2 of 4 samples measured on the device (interrupted: `--resume` continues)" in format_measure(m)[0]


def test_float_inputs_are_quantized_as_tflite_rounds_ties_away_from_zero():
    tensor = TensorInfo("INT8", (1, 4), 0.5, 0)
    assert quantized_input(np.array([[0.25, -0.25, 0.75, 100.0]], np.float32), tensor).tolist() == [[1, -1, 2, 127]]


def test_quantization_matches_the_host_measurements_on_random_data():
    rng = np.random.default_rng(5)
    x = rng.random((50, 8, 8, 1), dtype=np.float32)
    tensor = TensorInfo("INT8", (1, 8, 8, 1), 1 / 255, -128)
    detail = {"dtype": np.int8, "quantization": (1 / 255, -128), "name": "input"}
    np.testing.assert_array_equal(quantized_input(x, tensor), _quantize_input(x, detail))


def test_data_already_in_the_input_dtype_passes_through_unchanged():
    x = np.random.default_rng(6).integers(-128, 128, (3, 1, 4), dtype=np.int8)
    assert np.array_equal(quantized_input(x, TensorInfo("INT8", (1, 4), 0.5, 3)), x.reshape(3, 4))


def hello(model: bytes, runtime: str = "edgeq-c") -> HelloInfo:
    return HelloInfo(hashlib.sha256(model).digest(), runtime, "0.1.0", 25_000_000, 1024,
                     TensorInfo("INT8", (1, 4), 0.5, 0), OUTPUT)


def test_firmware_of_another_model_is_refused_naming_both_hashes_and_the_model():
    built, measured = b"model A", b"model B"
    with pytest.raises(FirmwareMismatch, match=(
            rf"the firmware on /dev/ttyACM0 was built from the model with SHA-256 "
            rf"{hashlib.sha256(built).hexdigest()[:16]}\.\.\., not from b\.tflite "
            rf"\({hashlib.sha256(measured).hexdigest()[:16]}\.\.\.\): flash the firmware built from b\.tflite")) as e:
        check_firmware(hello(built), measured, "b.tflite", "/dev/ttyACM0", "edgeq-c")
    assert e.value.exit_code == 4
    check_firmware(hello(measured), measured, "b.tflite", "/dev/ttyACM0", "edgeq-c")


def test_firmware_of_another_runtime_than_its_projects_is_refused():
    with pytest.raises(FirmwareMismatch, match=r"runs 'cmsis-pack', but the project was generated for 'edgeq-c'"):
        check_firmware(hello(b"m", "cmsis-pack"), b"m", "m.tflite", "port", "edgeq-c")


HEADER = {"model_sha256": "ab", "inputs_sha256": "cd", "samples_planned": 4}


def test_journal_resumes_from_the_complete_lines_of_a_run_cut_off_mid_line(tmp_path):
    path = tmp_path / "measure.jsonl"
    journal = Journal(path, HEADER)
    for sample in samples([0, 1]):
        journal.add(sample)
    journal.close()
    with open(path, "a") as torn:
        torn.write('{"sample": 2, "cyc')
    resumed = Journal(path, HEADER, resume=True)
    assert sorted(resumed.samples) == [0, 1] and resumed.samples[1] == samples([1])[0]
    resumed.add(samples([2])[0])
    resumed.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line).get("sample") for line in lines] == [None, 0, 1, 2]


def test_journal_of_other_data_cannot_be_resumed(tmp_path):
    path = tmp_path / "measure.jsonl"
    Journal(path, HEADER).close()
    with pytest.raises(BadInput, match=r"measure\.jsonl: cannot resume: it was measured with another model, other "
                                       r"data or another sample count; leave out --resume"):
        Journal(path, {**HEADER, "inputs_sha256": "ef"}, resume=True)


def test_journal_without_resume_starts_again(tmp_path):
    path = tmp_path / "measure.jsonl"
    journal = Journal(path, HEADER)
    journal.add(samples([0])[0])
    journal.close()
    assert Journal(path, HEADER).samples == {} and len(path.read_text().splitlines()) == 1


def test_deploy_reaches_emulated_boards_and_the_host_and_real_boards_only_with_a_port(monkeypatch):
    monkeypatch.delenv("TFLM_DIR", raising=False)
    edgeq_c, tflm, litert = get_runtime("edgeq-c"), get_runtime("tflm"), get_runtime("litert")
    assert edgeq_c.unreachable(get_profile("qemu-mps2-an505"), None) is None
    assert edgeq_c.unreachable(get_profile("host"), None) is None
    assert edgeq_c.unreachable(get_profile("nucleo-l4r5zi"), "/dev/ttyACM0") is None
    assert "give its serial port with --port" in edgeq_c.unreachable(get_profile("nucleo-l4r5zi"), None)
    assert "set TFLM_DIR" in tflm.unreachable(get_profile("qemu-mps2-an386"), None)
    assert litert.unreachable(get_profile("host"), None) is None  # the native LiteRT harness, run here
    assert litert.unreachable(get_profile("qemu-aarch64"), None) is None
    assert "--serial" in litert.unreachable(get_profile("pixel-8"), None)
