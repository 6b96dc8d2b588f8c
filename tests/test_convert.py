"""Conversion through the real TensorFlow Lite converter, one test per promise it keeps."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.convert.converter import convert
from edgeq.errors import BadInput
from edgeq.graph import read_graph
from edgeq.load import load_dataset, load_model


@pytest.fixture(scope="module")
def model(small_cnn_path):
    return load_model(small_cnn_path)


@pytest.fixture(scope="module")
def calibration(model, small_data):
    return load_dataset(str(small_data["calib"]), model.input)


@pytest.fixture(scope="module")
def int8_graph(model, calibration):
    return read_graph(convert(model, "int8", calibration))


def test_int8_model_has_int8_input_and_output(int8_graph):
    assert int8_graph.input_tensors()[0].type == "INT8"
    assert int8_graph.output_tensors()[0].type == "INT8"


def test_int8_model_has_per_channel_conv_weights(int8_graph):
    conv = next(op for op in int8_graph.operators if op.opcode == "CONV_2D")
    weights = int8_graph.tensors[conv.inputs[1]]
    assert weights.type == "INT8" and len(weights.scales) == weights.shape[0] == 4


def test_batch_is_fixed_at_one_so_flatten_needs_no_shape_ops(int8_graph):
    assert int8_graph.input_tensors()[0].shape == (1, 8, 8, 1)
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(int8_graph.op_names)


def test_fp32_keeps_float_weights(model):
    graph = read_graph(convert(model, "fp32"))
    conv = next(op for op in graph.operators if op.opcode == "CONV_2D")
    assert graph.tensors[conv.inputs[1]].type == "FLOAT32"


def test_fp16_stores_half_precision_weights(model):
    graph = read_graph(convert(model, "fp16"))
    assert any(t.type == "FLOAT16" and t.is_constant for t in graph.tensors)
    assert "DEQUANTIZE" in graph.op_names


def test_dynamic_int8_has_int8_weights_and_float_activations(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # The converter leaves weights under 1024 elements in float, so the layer must be larger.
    keras.Sequential([keras.Input((64,)), keras.layers.Dense(64)]).save(tmp_path / "dense.keras")
    graph = read_graph(convert(load_model(tmp_path / "dense.keras"), "dynamic-int8"))
    fc = graph.operators[0]
    assert graph.input_tensors()[0].type == "FLOAT32"
    assert graph.tensors[fc.inputs[1]].type == "INT8"


def test_int16x8_has_int16_activations_and_int8_weights(model, calibration):
    graph = read_graph(convert(model, "int16x8", calibration))
    conv = next(op for op in graph.operators if op.opcode == "CONV_2D")
    assert graph.tensors[conv.inputs[0]].type == "INT16"
    assert graph.tensors[conv.inputs[1]].type == "INT8"


def test_int8_without_calibration_data_is_refused(model):
    with pytest.raises(BadInput, match="mode int8 needs calibration data"):
        convert(model, "int8")


def test_unknown_mode_lists_the_modes(model):
    with pytest.raises(BadInput, match="unknown quantization mode 'int3'.*fp32, fp16, dynamic-int8, int8, int16x8"):
        convert(model, "int3")


def test_h5_model_from_tf_keras_converts_to_int8(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    legacy = tf_keras.Sequential([tf_keras.layers.Input((6,)), tf_keras.layers.Dense(4, activation="relu"),
                                  tf_keras.layers.Dense(2)])
    legacy.save(tmp_path / "legacy.h5")
    model = load_model(tmp_path / "legacy.h5")
    from edgeq.load import check_dataset

    calib = check_dataset(np.random.default_rng(0).random((16, 6), dtype=np.float32), None, model.input, "calib")
    graph = read_graph(convert(model, "int8", calib))
    assert graph.op_names == ["FULLY_CONNECTED"]
    assert graph.input_tensors()[0].shape == (1, 6)


def test_saved_model_with_free_batch_converts_with_batch_one(tmp_path, small_cnn_path):
    import keras

    keras.models.load_model(small_cnn_path).export(tmp_path / "sm", verbose=False)
    graph = read_graph(convert(load_model(tmp_path / "sm"), "fp32"))
    assert graph.input_tensors()[0].shape == (1, 8, 8, 1)
    assert "SHAPE" not in graph.op_names


@pytest.fixture(scope="module")
def float_tflite_model(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("tflite") / "m.tflite"
    path.write_bytes(convert(model, "fp32"))
    return load_model(path)


def test_float_tflite_passes_through_as_fp32(float_tflite_model):
    assert convert(float_tflite_model, "fp32") == float_tflite_model.tflite


def test_float_tflite_quantizes_to_int8_like_the_converter(float_tflite_model, model, calibration):
    from_tflite = read_graph(convert(float_tflite_model, "int8", calibration))
    from_keras = read_graph(convert(model, "int8", calibration))
    assert from_tflite.op_names == from_keras.op_names
    assert from_tflite.input_tensors()[0].type == from_tflite.output_tensors()[0].type == "INT8"
    conv = [from_tflite.tensors[op.inputs[1]] for op in from_tflite.operators if op.opcode == "CONV_2D"][0]
    reference = [from_keras.tensors[op.inputs[1]] for op in from_keras.operators if op.opcode == "CONV_2D"][0]
    assert conv.scales == reference.scales and conv.data == reference.data


def test_float_tflite_quantizes_to_int16x8(float_tflite_model, calibration):
    graph = read_graph(convert(float_tflite_model, "int16x8", calibration))
    assert graph.input_tensors()[0].type == "INT16"


def test_float_tflite_quantizes_to_dynamic_int8_and_fp16_weights_without_its_source_model(float_tflite_model):
    dynamic = read_graph(convert(float_tflite_model, "dynamic-int8"))
    conv = [dynamic.tensors[op.inputs[1]] for op in dynamic.operators if op.opcode == "CONV_2D"][0]
    assert conv.type == "INT8" and dynamic.input_tensors()[0].type == "FLOAT32"
    fp16 = read_graph(convert(float_tflite_model, "fp16"))
    assert "DEQUANTIZE" in fp16.op_names and any(t.type == "FLOAT16" for t in fp16.tensors)
