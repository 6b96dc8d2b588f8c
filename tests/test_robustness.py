"""Whatever model a user brings deploys, or is refused with a clear reason: a crash in the
converter or an interpreter is contained, the known ones are avoided or named, recurrent layers
convert, a model that came quantized deploys as it is, and a runtime that lacks an op hands the
model to one that has it (docs/robustness.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgeq.errors import ToolFailed
from edgeq.graph import read_graph
from edgeq.isolate import ToolCrashed, contained
from edgeq.tflm_limits import softmax_scale_too_small, tflm_aborts


def edgeq(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


# ---- containment -------------------------------------------------------------------------------------

def test_a_crash_in_contained_native_code_is_a_tool_failure_naming_tool_subject_and_signal():
    with pytest.raises(ToolCrashed, match=r"the test tool crashed \(SIGABRT\) on model.tflite") as caught:
        contained("the test tool", "model.tflite", os.abort)
    assert caught.value.exit_code == ToolFailed.exit_code == 4


def test_after_a_crash_the_next_contained_call_gets_a_fresh_worker():
    with pytest.raises(ToolCrashed):
        contained("the test tool", "a model", os.abort)
    assert contained("the test tool", "a model", int, "42") == 42


def test_an_exception_in_contained_code_is_raised_as_it_was():
    with pytest.raises(ValueError, match="invalid literal"):
        contained("the test tool", "a model", int, "not a number")


# ---- the TFLM softmax abort ----------------------------------------------------------------------------

def constant_logits_model(path):
    """A classifier whose logits do not depend on its input: the softmax input's calibrated range is empty."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, kernel_initializer="zeros"),
                              keras.layers.Dense(4, activation="softmax", kernel_initializer="zeros",
                                                 bias_initializer="zeros")])
    model.save(path)
    return path


def test_the_converter_widens_a_softmax_input_range_tflm_would_abort_on(tmp_path):
    from edgeq.convert import convert
    from edgeq.load import Dataset, load_model
    from edgeq.measure.interpreters import run_tflm

    model = load_model(constant_logits_model(tmp_path / "flat.keras"))
    x = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    tflite = convert(model, "int8", Dataset(x=x, y=None, source="calibration"))
    assert softmax_scale_too_small(read_graph(tflite)) == []
    out = run_tflm(tflite, np.zeros((2, 16), np.int8))[0]  # TFLM prepares and runs it
    assert out.shape == (2, 4)


def test_tflm_limits_name_the_softmax_op_tflm_aborts_on(tmp_path):
    import keras
    import tensorflow as tf

    model = keras.models.load_model(constant_logits_model(tmp_path / "flat.keras"))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.full((1, 16), 0.5, np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    graph = read_graph(converter.convert())
    reasons = tflm_aborts(graph)
    assert len(reasons) == 1 and "SOFTMAX" in reasons[0] and "PreprocessSoftmaxScaling" in reasons[0]


# ---- recurrent layers --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gru_model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("gru")
    inputs = keras.Input((10, 4))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GRU(8)(inputs))
    keras.Model(inputs, outputs).save(folder / "gru.keras")
    np.savez(folder / "data.npz", x=np.random.default_rng(0).uniform(-1, 1, (16, 10, 4)).astype(np.float32),
             y=np.random.default_rng(1).integers(0, 3, 16))
    return folder


def test_a_gru_model_converts_unrolled_with_the_same_outputs(gru_model):
    import keras

    from edgeq.convert import convert
    from edgeq.load import load_dataset, load_model
    from edgeq.measure.interpreters import run_litert

    model = load_model(gru_model / "gru.keras")
    data = load_dataset(str(gru_model / "data.npz"), model.input)
    tflite = convert(model, "fp32")
    assert "WHILE" not in read_graph(tflite).op_names
    expected = keras.models.load_model(gru_model / "gru.keras")(data.x.single).numpy()
    assert np.allclose(run_litert(tflite, data).values[0], expected, atol=1e-5)


def test_a_gru_model_deploys_on_tflm_and_says_why_edgeq_c_could_not(gru_model, tmp_path):
    done = edgeq("deploy", gru_model / "gru.keras", "--device", "qemu-mps2-an386", "--quant", "int8",
                 "--data", gru_model / "data.npz", "--val", gru_model / "data.npz", "--out", tmp_path / "out",
                 "--no-device")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["quantization"]["runtime"] == "tflm"
    assert "edgeq-c cannot run this model" in report["quantization"]["reason"]
    assert "UNPACK" in report["quantization"]["reason"] or "SPLIT" in report["quantization"]["reason"]


def test_asking_edgeq_c_for_a_model_it_cannot_run_names_the_op_and_the_runtime_that_can(gru_model, tmp_path):
    done = edgeq("deploy", gru_model / "gru.keras", "--device", "qemu-mps2-an386", "--quant", "int8",
                 "--runtime", "edgeq-c", "--data", gru_model / "data.npz", "--out", tmp_path / "out", "--no-device")
    assert done.returncode == 2
    assert "is not supported by edgeq-c" in done.stderr and "tflm" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_calibrator_crash_on_a_rolled_loop_is_exit_4_with_the_tool_named(gru_model, tmp_path):
    import keras
    import tensorflow as tf

    model = keras.models.load_model(gru_model / "gru.keras")  # rolled: a WHILE loop once converted
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec((1, 10, 4), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    rolled = tmp_path / "gru_rolled_fp32.tflite"
    rolled.write_bytes(converter.convert())
    assert "WHILE" in read_graph(rolled.read_bytes()).op_names
    done = edgeq("convert", rolled, "--quant", "int8", "--data", gru_model / "data.npz", "--out", tmp_path / "q.tflite")
    assert done.returncode == 4, done.stderr
    assert "the converter's calibrator crashed (SIG" in done.stderr and "docs/robustness.md" in done.stderr
    assert not (tmp_path / "q.tflite").exists()


# ---- a model that came quantized ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_tflite(small_cnn_path, small_data, tmp_path_factory):
    from edgeq.convert import convert
    from edgeq.load import load_dataset, load_model

    model = load_model(small_cnn_path)
    path = tmp_path_factory.mktemp("int8") / "small_int8.tflite"
    path.write_bytes(convert(model, "int8", load_dataset(str(small_data["calib"]), model.input)))
    return path


@pytest.mark.emulator
def test_a_model_that_came_quantized_deploys_as_it_is_bit_exact_on_the_board(int8_tflite, small_data, tmp_path):
    done = edgeq("deploy", int8_tflite, "--device", "qemu-mps2-an386", "--quant", "int8", "--val", small_data["val"],
                 "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["quantization"]["came_quantized"] is True
    assert report["size"]["tflite_bytes"] == int8_tflite.stat().st_size
    assert (tmp_path / "out" / "small_int8_int8.tflite").read_bytes() == int8_tflite.read_bytes()
    assert report["measure"]["bit_exact_fraction"] == 1.0
    assert report["accuracy"]["float"] is None and report["accuracy"]["quantized"] is not None


def test_a_model_that_came_quantized_is_not_quantized_again(int8_tflite, small_data, tmp_path):
    done = edgeq("deploy", int8_tflite, "--device", "qemu-mps2-an386", "--quant", "int16x8",
                 "--val", small_data["val"], "--out", tmp_path / "out", "--no-device")
    assert done.returncode == 2 and "came quantized as int8" in done.stderr


def test_the_planner_chooses_only_a_runtime_for_a_model_that_came_quantized(int8_tflite, small_data, tmp_path):
    done = edgeq("plan", int8_tflite, "--device", "qemu-mps2-an386", "--val", small_data["val"],
                 "--out", tmp_path / "plan", "--no-measure", "--no-cache")
    assert done.returncode == 0, done.stderr
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert {c["name"] for c in plan["candidates"]} == {"as-is/edgeq-c", "as-is/tflm"}
    assert plan["chosen"].startswith("as-is/")


# ---- the zoo, at small sizes (bench/zoo_bench.py runs it at 96x96) ---------------------------------------

@pytest.mark.emulator
@pytest.mark.parametrize("network", ["MobileNetV2", "MobileNetV3Small"])
def test_a_keras_applications_mobile_network_deploys_bit_exact_on_edgeq_c(network, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    build = getattr(keras.applications, network)
    extra = {"include_preprocessing": False, "minimalistic": True} if "V3" in network else {}
    build(input_shape=(32, 32, 3), alpha=0.35 if network == "MobileNetV2" else 0.75, weights=None, classes=10,
          **extra).save(tmp_path / "net.keras")
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
    done = edgeq("deploy", tmp_path / "net.keras", "--device", "qemu-mps2-an386", "--quant", "int8",
                 "--data", tmp_path / "data.npz", "--val", tmp_path / "data.npz", "--samples", "2",
                 "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["quantization"]["runtime"] == "edgeq-c"
    assert report["measure"]["bit_exact_fraction"] == 1.0
