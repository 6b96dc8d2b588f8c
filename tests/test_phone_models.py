"""The models phones ship, as they ship them: float .tflite files with fp16 weights behind DEQUANTIZE,
MediaPipe's custom ops, a user's custom op, state kept in resource variables. Each gets the
candidates it can have, and what cannot run it says so once, naming the op and its index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import BadInput
from edgeq.load import Dataset, load_model
from edgeq.measure.interpreters import run_litert
from edgeq.plan import PlanRequest, format_plan_table, run_plan
from edgeq.profiles import get_profile
from tests.modelkit import TRANSPOSE_CONV_BIAS, with_custom_op, with_transpose_conv_bias


def edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


def _converted(model, fp16: bool = False) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fp16:  # the converter's fp16 mode: float16 weights behind DEQUANTIZE, as phone models come
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


@pytest.fixture(scope="module")
def phone_models(tmp_path_factory) -> dict[str, Path]:
    """A small segmentation-shaped model (conv, then a transposed conv) as a float .tflite with fp16
    weights, the same with MediaPipe's Convolution2DTransposeBias, and with a custom op nobody has;
    and data for them."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    image = keras.Input((8, 8, 3), batch_size=1, name="image")
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(image)
    x = L.Conv2DTranspose(2, 3, strides=2, padding="same", bias_initializer="random_normal")(x)
    model = keras.Model(image, L.Flatten(name="mask")(x))
    folder = tmp_path_factory.mktemp("phone")
    paths = {"fp16": folder / "fp16.tflite", "mediapipe": folder / "mediapipe.tflite",
             "unknown": folder / "unknown.tflite", "data": folder / "data.npz"}
    paths["fp16"].write_bytes(_converted(model, fp16=True))
    float_tflite = _converted(model)
    paths["mediapipe"].write_bytes(with_transpose_conv_bias(float_tflite))
    paths["unknown"].write_bytes(with_custom_op(float_tflite, 0, "MyOp"))
    np.savez(paths["data"], x=np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype(np.float32))
    return paths


def _plan(path: Path, data: Path, tmp_path: Path, device: str = "pixel-8"):
    return run_plan(PlanRequest(model=path, profile=get_profile(device), data=str(data), val=str(data),
                                cache_dir=tmp_path / "cache", jobs=1))


def test_fp16_weights_behind_dequantize_are_folded_to_float32_at_load(phone_models):
    model = load_model(phone_models["fp16"])
    from edgeq.graph import read_graph

    given, folded = read_graph(model.as_given), read_graph(model.tflite)
    assert "DEQUANTIZE" in given.op_names and "DEQUANTIZE" not in folded.op_names
    assert model.weights_as_given == "fp16" and model.folded
    assert all(t.type != "FLOAT16" for t in folded.tensors)


def test_sparse_weights_behind_densify_are_made_dense_at_load_with_the_same_outputs(tmp_path):
    import keras
    import tensorflow as tf

    from edgeq.graph import read_graph

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)])
    weights, bias = model.layers[0].get_weights()
    weights[np.random.default_rng(0).random(weights.shape) < 0.9] = 0  # pruned, as sparse models are
    model.layers[0].set_weights([weights, bias])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path = tmp_path / "sparse.tflite"
    path.write_bytes(converter.convert())
    assert "DENSIFY" in read_graph(path.read_bytes()).op_names
    loaded = load_model(path)
    assert "DENSIFY" not in read_graph(loaded.tflite).op_names and loaded.weights_as_given is None
    x = Dataset(x=np.random.default_rng(1).normal(size=(4, 64)).astype(np.float32), y=None, source="x")
    np.testing.assert_array_equal(run_litert(loaded.tflite, x).values[0], run_litert(path.read_bytes(), x).values[0])


def test_a_float_tflite_with_fp16_weights_gets_fp16_dynamic_int8_int8_and_int16x8_on_a_phone(phone_models, tmp_path):
    result = _plan(phone_models["fp16"], phone_models["data"], tmp_path)
    built = {c.spec.mode for c in result.candidates if c.record and "error" not in c.record}
    assert {"fp16", "dynamic-int8", "int8", "int16x8", "fp32"} <= built


def test_a_model_that_came_fp16_is_in_fp16_the_file_as_given(phone_models, tmp_path):
    result = _plan(phone_models["fp16"], phone_models["data"], tmp_path)
    fp16 = next(c for c in result.candidates if c.spec.mode == "fp16")
    assert fp16.tflite == phone_models["fp16"].read_bytes()


def test_mediapipes_transpose_conv_runs_on_the_phone_but_rules_out_calibration_named_once(phone_models, tmp_path):
    result = _plan(phone_models["mediapipe"], phone_models["data"], tmp_path)
    feasible = {c.spec.mode for c in result.candidates if c.feasible}
    assert {"fp32", "fp16", "dynamic-int8"} <= feasible
    table = format_plan_table(result)
    refusals = [line for line in table.splitlines() if TRANSPOSE_CONV_BIAS in line]
    assert len(refusals) == 1 and "calibrator" in refusals[0] and f"CUSTOM:{TRANSPOSE_CONV_BIAS} (op 1)" in refusals[0]
    assert refusals[0].startswith("refused 37 (")  # int16x8, 32 int8 and 4 int4-weight candidates


def test_a_custom_op_on_a_microcontroller_is_refused_by_every_runtime_by_name_with_exit_2(phone_models, tmp_path):
    done = edgeq("deploy", phone_models["mediapipe"], "--device", "qemu-mps2-an386", "--data", phone_models["data"],
                 "--out", tmp_path / "out")
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert f"edgeq-c has no kernel for CUSTOM:{TRANSPOSE_CONV_BIAS} (op 1)" in message
    assert f"'CUSTOM:{TRANSPOSE_CONV_BIAS}' (index 1) is not supported by TensorFlow Lite Micro" in message
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_custom_op_nobody_has_is_refused_on_the_phone_saying_how_to_declare_it(phone_models, tmp_path):
    done = edgeq("plan", phone_models["unknown"], "--device", "pixel-8", "--data", phone_models["data"],
                 "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "LiteRT has no kernel for CUSTOM:MyOp (op 0)" in done.stderr and "--custom-op" in done.stderr


def test_a_declared_custom_op_deploys_on_the_phone_and_says_what_this_host_cannot_measure(phone_models, tmp_path):
    out = tmp_path / "out"
    done = edgeq("deploy", phone_models["unknown"], "--device", "pixel-8", "--custom-op", "MyOp",
                 "--data", phone_models["data"], "--val", phone_models["data"], "--out", out)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["mode"] == "fp32" and report["quantization"]["runtime"] == "litert"
    assert report["accuracy"] is None and report["latency"] is None
    assert "CUSTOM:MyOp (op 0)" in report["not_measured"]
    assert edgeq("report", out).returncode == 0  # report.json reads back with nothing measured on the host


def test_custom_op_on_the_command_line_needs_a_device_with_litert(phone_models, tmp_path):
    done = edgeq("plan", phone_models["unknown"], "--device", "qemu-mps2-an386", "--custom-op", "MyOp",
                 "--out", tmp_path / "out")
    assert done.returncode == 2 and "--custom-op MyOp: qemu-mps2-an386 runs no LiteRT" in done.stderr


# ---- state ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def streaming(tmp_path_factory) -> Path:
    """A model that keeps its last two input frames in a resource variable, as streaming keyword
    models do, converted from a SavedModel with resource variables enabled."""
    import tensorflow as tf

    class Streaming(tf.Module):
        def __init__(self):
            super().__init__()
            self.frames = tf.Variable(tf.zeros((1, 2, 3)), trainable=False)
            self.kernel = tf.Variable(tf.random.stateless_normal((6, 2), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec((1, 1, 3), tf.float32, name="frame")])
        def serve(self, frame):
            frames = tf.concat([self.frames[:, 1:, :], frame], axis=1)
            self.frames.assign(frames)
            return {"scores": tf.matmul(tf.reshape(frames, (1, 6)), self.kernel)}

    folder = tmp_path_factory.mktemp("streaming")
    module = Streaming()
    tf.saved_model.save(module, str(folder / "saved"), signatures={"serving_default": module.serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    converter.experimental_enable_resource_variables = True
    path = folder / "streaming.tflite"
    path.write_bytes(converter.convert())
    np.savez(folder / "frames.npz", frame=np.random.default_rng(0).normal(size=(8, 1, 3)).astype(np.float32))
    return path


def test_litert_carries_state_from_one_sample_to_the_next_in_order(streaming):
    tflite = streaming.read_bytes()
    frames = np.random.default_rng(1).normal(size=(3, 1, 3)).astype(np.float32)
    in_order = run_litert(tflite, Dataset(x=frames, y=None, source="frames")).values[0]
    alone = run_litert(tflite, Dataset(x=frames[2:], y=None, source="frames")).values[0]
    assert not np.allclose(in_order[2], alone[0])  # the third output saw the two frames before it


def test_state_on_a_microcontroller_is_refused_naming_the_resource_variables(streaming, tmp_path):
    done = edgeq("deploy", streaming, "--device", "qemu-mps2-an386", "--data", streaming.parent / "frames.npz",
                 "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "VAR_HANDLE" in done.stderr and "resource variables" in done.stderr


def test_state_deploys_on_a_phone(streaming, tmp_path):
    out = tmp_path / "out"
    data = streaming.parent / "frames.npz"
    done = edgeq("deploy", streaming, "--device", "pixel-8", "--quant", "int8", "--data", data, "--val", data,
                 "--out", out)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "report.json").read_text())["accuracy"]["sqnr_db"] > 20


# ---- the plan's table -----------------------------------------------------------------------------

def test_the_default_table_fits_a_screen_and_every_candidate_stays_in_plan_json(phone_models, tmp_path):
    result = _plan(phone_models["fp16"], phone_models["data"], tmp_path)
    table = format_plan_table(result).splitlines()
    assert len(table) <= 20  # the rows, a title, the choice and two notes
    assert len(format_plan_table(result, every_row=True).splitlines()) > len(result.candidates)
    assert len(json.loads(result.to_json())["candidates"]) == len(result.candidates) == 40


def test_candidates_measured_alike_share_a_row_that_counts_them(phone_models, tmp_path):
    result = _plan(phone_models["fp16"], phone_models["data"], tmp_path)
    table = format_plan_table(result)
    shared = [line for line in table.splitlines() if "alike)" in line]
    assert shared, table
    for line in shared:
        assert line.split("(+")[1].split(" alike")[0].isdigit()


def test_a_plan_no_runtime_can_run_is_bad_input(phone_models, tmp_path):
    with pytest.raises(BadInput, match=r"no runtime of qemu-mps2-an386 can run it: edgeq-c has no kernel for CUSTOM:"):
        _plan(phone_models["mediapipe"], phone_models["data"], tmp_path, "qemu-mps2-an386")
