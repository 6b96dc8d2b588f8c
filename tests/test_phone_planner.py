"""The planner for phones: each delegate's mode (fp16 for the GPU, int8 for the CPU and an NPU), its
costs labelled as the delegate's defaults, and fp16 accuracy judged on emulated Arm, not on x86."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from edgeq.convert.converter import convert
from edgeq.load import load_dataset, load_model
from edgeq.measure.costmodel import OpWork, coefficients_for, estimate_ms
from edgeq.measure.interpreters import run_litert
from edgeq.plan.arm import ARM_CPU, arm_outputs, judge_fp16_on_arm, judged_on_arm
from edgeq.plan.candidates import Candidate
from edgeq.plan.evaluate import Spec
from edgeq.plan.rules import plan
from edgeq.profiles import get_profile
from edgeq.runtimes import LITERT


def with_delegate(name: str, delegate: str):
    profile = get_profile(name)
    return dataclasses.replace(profile, litert=dataclasses.replace(profile.litert, delegate=delegate))


@pytest.mark.parametrize(("delegate", "mode"), [("gpu", "fp16"), ("xnnpack", "int8"), ("nnapi", "int8")])
def test_each_delegate_gets_the_mode_it_computes_best(delegate, mode):
    chosen = plan(with_delegate("pixel-8", delegate))
    assert chosen.mode == mode and f"{delegate} delegate" in chosen.reason


def test_the_gpu_delegate_prices_fp16_below_int8_and_the_cpu_the_other_way():
    work = [OpWork(0, "CONV_2D", dtype, 1_000_000, 10_000) for dtype in ("fp16", "int8")]
    for delegate, faster in (("gpu", "fp16"), ("xnnpack", "int8")):
        profile = with_delegate("pixel-8", delegate)
        fp16, int8 = (estimate_ms([w], profile, LITERT.costs) for w in work)
        assert (fp16 < int8) == (faster == "fp16"), delegate
    assert "GPU delegate" in coefficients_for(with_delegate("pixel-8", "gpu"), LITERT.costs).source


def test_phones_that_run_fp16_on_arm_are_judged_on_emulated_arm():
    assert judged_on_arm(get_profile("pixel-8"))
    assert not judged_on_arm(get_profile("rpi4"))  # no fp16 arithmetic on the A72
    assert not judged_on_arm(get_profile("host"))


@pytest.fixture(scope="module")
def fp16_candidate(small_cnn_path, small_data):
    model = load_model(small_cnn_path)
    candidate = Candidate(Spec("fp16"))
    candidate.tflite = convert(model, "fp16")
    validation = load_dataset(str(small_data["val"]), model.input)
    float_tflite = convert(model, "fp32")
    candidate.record = {"accuracy": 0.5, "sqnr_db": 99.0, "agreement": 1.0, "outputs": []}
    return candidate, float_tflite, validation


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="make arm-linux installs qemu-user")
def test_fp16_accuracy_comes_from_the_harness_on_emulated_arm(fp16_candidate):
    candidate, float_tflite, validation = fp16_candidate
    warnings = judge_fp16_on_arm([candidate], get_profile("pixel-8"), float_tflite, validation)
    assert warnings == []
    record = candidate.record
    assert ARM_CPU in record["accuracy_by"] and "emulated Arm" in record["accuracy_by"]
    assert record["sqnr_db"] != 99.0 and record["sqnr_db"] > 30  # measured, and fp16 stays close to float
    assert 0 <= record["accuracy"] <= 1 and record["outputs"][0]["sqnr_db"] == pytest.approx(record["sqnr_db"])


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="make arm-linux installs qemu-user")
def test_emulated_arm_fp16_outputs_are_close_to_the_hosts_but_computed_there(fp16_candidate):
    candidate, _, validation = fp16_candidate
    arm = arm_outputs(get_profile("pixel-8"), candidate.tflite, validation.x).values[0]
    host = run_litert(candidate.tflite, validation, 1, "fp16").values[0]
    assert arm.shape == host.shape
    assert np.abs(arm - host).max() < 1e-2
