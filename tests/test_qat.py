"""Quantization-aware training on Keras 3 trains what edgeq deploys: the simulation's grid is the
converter's, and the exported weights come back from the converter as the same integers."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.convert import calibrate
from edgeq.convert.converter import convert
from edgeq.graph import read_graph
from edgeq.load import load_model

# Keras layout -> TFLite layout of each weighted op's kernel.
TO_TFLITE = {"CONV_2D": (3, 0, 1, 2), "FULLY_CONNECTED": (1, 0), "DEPTHWISE_CONV_2D": None}


@pytest.fixture(scope="module")
def small():
    """A conv with BatchNormalization and ReLU, a depthwise conv, a 1x1 conv into an ADD, a dense
    softmax: every kind of quantization point the simulation places."""
    import keras

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    inp = keras.Input((8, 8, 2), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
    h = keras.layers.Add(name="add")([keras.layers.Conv2D(8, 1, name="pw")(h), h])
    out = keras.layers.Dense(4, activation="softmax", name="dense")(keras.layers.Flatten(name="flatten")(h))
    model = keras.Model(inp, out)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.5, 8), rng.normal(0, 0.5, 8), rng.uniform(0.5, 2, 8)])
    return model, rng.random((64, 8, 8, 2), dtype=np.float32)


def _float_tflite(keras_model, folder) -> bytes:
    """The model saved as a user would and converted by edgeq, float."""
    path = folder / "m.keras"
    keras_model.save(path)
    return convert(load_model(path), "fp32", in_worker=False)


def _deployed_int8(keras_model, x, folder) -> bytes:
    return calibrate.quantize_int8(calibrate.calibrate(_float_tflite(keras_model, folder), x))


def _assert_dense_kernels_come_back_as_int4(keras_model, x, folder) -> None:
    """Through ai-edge-quantizer, each Dense kernel is per tensor, 4 bits, its largest weight 7 steps,
    and scale times integer is the kernel."""
    deployed = _weights(calibrate.quantize_int4_weights(_float_tflite(keras_model, folder), x))
    kernels = [layer.get_weights()[0] for layer in keras_model.layers if type(layer).__name__ == "Dense"]
    assert len(deployed) == len(kernels)
    for (opcode, q, scales), kernel in zip(deployed, kernels):
        assert opcode == "FULLY_CONNECTED" and len(scales) == 1 and np.abs(q).max() == 7
        np.testing.assert_allclose(q * scales[0], kernel.T, rtol=1e-6, atol=1e-9)


def _weights(tflite: bytes) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each weighted op's integer weights and scales, in graph order."""
    graph = read_graph(tflite)
    out = []
    for op in graph.operators:
        if op.opcode in TO_TFLITE:
            w = graph.tensors[op.inputs[1]]
            out.append((op.opcode, w.numpy().astype(np.int32), np.asarray(w.scales, np.float32)))
    return out


def test_with_float_weights_and_no_activation_quantization_it_computes_the_float_model(small):
    from edgeq.convert.qat_graph import qat_model

    model, x = small
    trained, quantizers = qat_model(model, "int8", True)
    for layer in trained.layers:
        if hasattr(layer, "on_grid"):
            layer.on_grid.assign(0.0)
    for q in quantizers:
        q.enabled.assign(0.0)
    # BatchNormalization folded into the conv before it, the softmax split from its logits: same function.
    np.testing.assert_allclose(trained.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in trained.layers)


def test_activations_are_quantized_where_the_converter_quantizes_them(small):
    from edgeq.convert.qat_graph import qat_model

    _, quantizers = qat_model(small[0], "int8", True)
    # The input; after the ReLU the conv and its folded BN fuse with (not before it); after the
    # depthwise and its own ReLU; the 1x1 conv; the ADD; the logits, and the softmax's fixed output.
    assert [q.name.removesuffix("_act_quant") for q in quantizers] == [
        "image", "relu", "dw", "pw", "add", "dense", "dense_softmax"]
    assert [q.is_input for q in quantizers] == [True] + [False] * 6
    assert quantizers[-1].fixed == (0.0, 255 / 256) and all(q.fixed is None for q in quantizers[:-1])


def test_exported_kernels_come_back_from_the_converter_as_the_integers_trained(small, tmp_path):
    from edgeq.convert.qat_graph import float_export, qat_model

    model, x = small
    trained, _ = qat_model(model, "int8", True)
    for layer in trained.layers:  # clipped below their largest weight, as training leaves them
        if hasattr(layer, "clip"):
            layer.set_clip_fraction(0.6)
    plain = float_export(trained, "int8", True)
    deployed = _weights(_deployed_int8(plain, x, tmp_path))
    kernels = [layer.get_weights()[0] for layer in plain.layers if type(layer).__name__ in
               ("Conv2D", "DepthwiseConv2D", "Dense")]
    assert len(deployed) == len(kernels) == 4
    for (opcode, q, scales), kernel in zip(deployed, kernels):
        order = TO_TFLITE[opcode]
        tflite_layout = kernel.reshape(1, *kernel.shape[:2], -1) if order is None else kernel.transpose(order)
        axis = 3 if order is None else 0
        shape = [1] * q.ndim
        shape[axis] = -1
        # Every channel uses its whole grid, and scale times integer is the exported weight.
        assert np.all(np.abs(q).max(axis=tuple(i for i in range(q.ndim) if i != axis)) == 127), opcode
        np.testing.assert_allclose(q * scales.reshape(shape), tflite_layout, rtol=1e-6, atol=1e-9)


def test_int4_weights_come_back_from_ai_edge_quantizer_on_the_grid_trained(tmp_path):
    import keras

    from edgeq.convert.qat_graph import float_export, qat_model

    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    x = np.random.default_rng(6).random((32, 12), dtype=np.float32)
    trained, _ = qat_model(model, "int4w", True)
    for layer in trained.layers:
        if hasattr(layer, "clip"):
            layer.set_clip_fraction(0.7)
    _assert_dense_kernels_come_back_as_int4(float_export(trained, "int4w", True), x, tmp_path)


def test_step_0_the_simulation_agrees_with_the_deployed_ptq_model(small, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgeq.convert.qat import observe_ranges
    from edgeq.convert.qat_graph import qat_model

    model, x = small
    trained, quantizers = qat_model(model, "int8", True)
    observe_ranges(trained, quantizers, x, "minmax", float_weights=True)
    simulated = trained.predict(x, verbose=0)

    interpreter = Interpreter(model_content=_deployed_int8(model, x, tmp_path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    deployed = []
    for sample in x:
        q = np.clip(np.round(sample / s_in) + z_in, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        deployed.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - z_out) * s_out)
    # The softmax's output grid is 1/256: simulated and deployed differ by rounding inside, a step or two.
    assert np.abs(simulated - np.array(deployed)).max() <= 3 / 256


def test_adarounded_kernels_come_back_from_ai_edge_quantizer_as_the_integers_chosen(tmp_path):
    import keras

    from edgeq.convert.adaround import adaround

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    x = np.random.default_rng(7).random((64, 12), dtype=np.float32)
    rounded, record = adaround(model, "int4w", True, x)
    assert 0 < max(record["rounded_away_from_nearest"].values()) < 0.5  # some weights, not most, round the other way
    _assert_dense_kernels_come_back_as_int4(rounded, x, tmp_path)


def test_int16x8_the_simulation_agrees_with_the_deployed_16x8_model(small, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgeq.convert.qat import observe_ranges
    from edgeq.convert.qat_graph import qat_model

    model, x = small
    trained, quantizers = qat_model(model, "int16x8", True)
    observe_ranges(trained, quantizers, x, "minmax", float_weights=True)
    simulated = trained.predict(x, verbose=0)
    interpreter = Interpreter(model_content=calibrate.quantize_int16x8(_float_tflite(model, tmp_path), x))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int16 and inp["quantization"][1] == 0  # symmetric: zero point 0
    deployed = []
    for sample in x:
        q = np.clip(np.round(sample / inp["quantization"][0]), -32768, 32767).astype(np.int16)
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        deployed.append(interpreter.get_tensor(out["index"])[0].astype(np.float32) * out["quantization"][0])
    assert np.abs(simulated - np.array(deployed)).max() <= 2e-3
