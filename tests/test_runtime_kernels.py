"""edgeq-c kernels against TFLite Micro, byte for byte.

Each family of single-op models is built with Keras, converted to full int8 once per
module, compiled by edgeq-c into one shared library, and run on seeded random inputs
beside the tflite_micro Python interpreter. Every output must match exactly.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from edgeq.aot import compile_model
from edgeq.aot.host import HostModel, build_shared_library
from edgeq.graph import read_graph

pytestmark = [pytest.mark.host, pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")]

SEEDS = (0, 1, 2)


def convert_int8(fn, input_shapes: dict[str, tuple[int, ...]], keras_model, seed: int = 0) -> bytes:
    """Full-int8 conversion of a batch-1 tf.function (inputs named as in input_shapes)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(24):
            yield {name: (rng.normal(size=shape) * 2).astype(np.float32) for name, shape in input_shapes.items()}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def build_family(layers: dict[str, tuple[tuple[int, ...], object]], extra=None) -> bytes:
    """One model: input `name` of `shape` feeds `layer`; `extra(inputs)` adds raw TF ops."""
    import tensorflow as tf
    import tf_keras as keras

    inputs = {name: keras.Input(shape[1:], batch_size=1, name=name) for name, (shape, _) in layers.items()}
    outputs = {name: layer(inputs[name]) for name, (_, layer) in layers.items() if layer is not None}
    model = keras.Model(list(inputs.values()), list(outputs.values()))
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, (shape, _) in layers.items()]

    @tf.function(input_signature=specs)
    def serve(*args):
        named = dict(zip(layers, args))
        result = {}
        if outputs:
            produced = model(list(args))
            produced = produced if isinstance(produced, list) else [produced]
            result.update({f"out_{k}": v for k, v in zip(outputs, produced)})
        if extra is not None:
            result.update(extra(named))
        return result

    return convert_int8(serve, {name: shape for name, (shape, _) in layers.items()}, model)


def run_both(tflite: bytes, tmp_path_factory, name: str, seeds=SEEDS):
    """(producing opcode, its kernel, TFLM output, edgeq output) for every output and seed, from
    two builds: every tensor in its own bytes, and the arena plan with in-place kernels."""
    from tflite_micro.python.tflite_micro import runtime

    graph = read_graph(tflite)
    producer = {t: op.opcode for op in graph.operators for t in op.outputs}
    tflm = runtime.Interpreter.from_bytes(tflite)
    results = []
    for in_place in (False, True):
        compiled = compile_model(tflite, prefix=name, in_place=in_place)
        kernel = {}
        for op in compiled.ops:  # "<op index> <OPCODE> -> <kernel>"
            index, kernel_name = int(op.split()[0]), op.split()[-1]
            kernel.update({t: kernel_name for t in graph.operators[index].outputs})
        host = HostModel(build_shared_library(compiled, tmp_path_factory.mktemp(name)), compiled)
        for seed in seeds:
            rng = np.random.default_rng(seed)
            xs = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in compiled.inputs]
            for i, x in enumerate(xs):
                tflm.set_input(x, i)
            tflm.invoke()
            ours = host.run(xs)
            for i, o in enumerate(graph.outputs):
                results.append((producer[o], kernel[o], tflm.get_output(i), ours[i]))
    return results


def assert_bit_exact(results, opcode: str) -> set[str]:
    """Every output `opcode` produced matches TFLM; returns the kernels that produced them."""
    checked = [(kernel, ref, out) for op, kernel, ref, out in results if op == opcode]
    assert checked, f"the model has no {opcode} output"
    for kernel, ref, out in checked:
        assert ref.dtype == out.dtype and ref.shape == out.shape
        diff = np.flatnonzero(ref.astype(np.int32) != out.astype(np.int32))
        assert diff.size == 0, f"{opcode} ({kernel}): {diff.size} of {ref.size} values differ, first at " \
                               f"{diff[:5]}: TFLM {ref.reshape(-1)[diff[:5]]} edgeq {out.reshape(-1)[diff[:5]]}"
    return {kernel for kernel, _, _ in checked}


@pytest.fixture(scope="module")
def conv_results(tmp_path_factory):
    import tf_keras as keras

    L = keras.layers
    layers = {
        "same_relu": ((1, 12, 12, 3), L.Conv2D(8, 3, padding="same", activation="relu")),
        "valid_stride2": ((1, 11, 13, 4), L.Conv2D(6, 3, strides=2, padding="valid")),
        "dilated_relu6": ((1, 10, 10, 5), L.Conv2D(4, 5, padding="same", dilation_rate=2, activation="relu6")),
        "pointwise": ((1, 9, 9, 8), L.Conv2D(16, 1)),
        "rect_no_bias": ((1, 16, 6, 1), L.Conv2D(5, (4, 3), strides=(2, 1), padding="same", use_bias=False)),
        "odd_channels": ((1, 7, 7, 3), L.Conv2D(7, 3, strides=2, padding="same")),
    }
    return run_both(build_family(layers), tmp_path_factory, "conv")


@pytest.fixture(scope="module")
def depthwise_results(tmp_path_factory):
    import tf_keras as keras

    L = keras.layers
    layers = {
        "same_relu": ((1, 12, 12, 8), L.DepthwiseConv2D(3, padding="same", activation="relu")),
        "valid_stride2_mult2": ((1, 11, 9, 3), L.DepthwiseConv2D(3, strides=2, depth_multiplier=2)),
        "dilated_relu6": ((1, 10, 10, 4), L.DepthwiseConv2D(3, padding="same", dilation_rate=2, activation="relu6")),
        "rect_mult3": ((1, 8, 8, 2), L.DepthwiseConv2D((5, 3), strides=(1, 2), padding="same", depth_multiplier=3)),
    }
    return run_both(build_family(layers), tmp_path_factory, "dwconv")


@pytest.fixture(scope="module")
def dense_pool_results(tmp_path_factory):
    import tf_keras as keras

    L = keras.layers
    layers = {
        "dense_relu": ((1, 20), L.Dense(10, activation="relu")),
        "dense_odd": ((1, 37), L.Dense(5)),
        "avg_same": ((1, 9, 9, 4), L.AveragePooling2D(3, strides=2, padding="same")),
        "avg_valid": ((1, 8, 8, 3), L.AveragePooling2D(2)),
        "max_same": ((1, 9, 9, 4), L.MaxPooling2D(3, strides=2, padding="same")),
        "max_valid": ((1, 10, 10, 2), L.MaxPooling2D(2)),
    }
    return run_both(build_family(layers), tmp_path_factory, "densepool")


@pytest.fixture(scope="module")
def elementwise_results(tmp_path_factory):
    import tensorflow as tf

    shapes = {"a": (1, 6, 5, 4), "b": (1, 6, 5, 4), "c": (1, 1, 1, 4), "v": (1, 10), "s": (1, 3, 7)}

    def ops(x):
        a, b, c, v, s = x["a"], x["b"], x["c"], x["v"], x["s"]
        return {
            "add": a + b,
            "add_relu": tf.nn.relu(a + b * 0.5),
            "add_broadcast": a + c,
            "mul": a * b,
            "mul_broadcast": b * c,
            "concat": tf.concat([a, b], axis=3),
            "concat_h": tf.concat([a, tf.nn.relu(b)], axis=1),
            "pad": tf.pad(a, [[0, 0], [1, 2], [2, 1], [0, 0]]),
            "pad_channels": tf.pad(b, [[0, 0], [0, 0], [0, 0], [1, 3]]),
            "mean_hw": tf.reduce_mean(a, axis=[1, 2], keepdims=True),
            "mean_w": tf.reduce_mean(b, axis=[2]),
            "mean_c": tf.reduce_mean(s, axis=[-1]),
            "logistic": tf.sigmoid(a),
            "tanh": tf.tanh(b),
            "relu": tf.nn.relu(v),
            "relu6": tf.nn.relu6(a),
            "leaky_relu": tf.nn.leaky_relu(b, alpha=0.2),
            "hard_swish": s * tf.nn.relu6(s + 3.0) / 6.0,
            "softmax": tf.nn.softmax(v),
            "softmax_rows": tf.nn.softmax(s * 4.0),
        }

    layers = {name: (shape, None) for name, shape in shapes.items()}
    return run_both(build_family(layers, extra=ops), tmp_path_factory, "elementwise")


def test_conv_2d_matches_tflm_over_paddings_strides_dilations_and_activations(conv_results):
    assert_bit_exact(conv_results, "CONV_2D")


def test_depthwise_conv_2d_matches_tflm_for_depth_multipliers_and_dilations(depthwise_results):
    kernels = assert_bit_exact(depthwise_results, "DEPTHWISE_CONV_2D")
    assert {"eq_depthwise_conv_s8", "eq_depthwise_conv_in_place_s8"} <= kernels


@pytest.mark.parametrize("opcode", ["FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_dense_and_pooling_match_tflm(dense_pool_results, opcode):
    assert_bit_exact(dense_pool_results, opcode)


@pytest.mark.parametrize("opcode", ["ADD", "MUL", "CONCATENATION", "PAD", "MEAN", "LOGISTIC", "TANH", "RELU",
                                    "RELU6", "LEAKY_RELU", "HARD_SWISH", "SOFTMAX"])
def test_elementwise_and_shape_ops_match_tflm(elementwise_results, opcode):
    assert_bit_exact(elementwise_results, opcode)


def test_c_fixed_point_primitives_agree_with_tflites_arithmetic(tmp_path):
    """eq_math.h against edgeq.aot.arith (the Python model that generates all tables),
    including INT32_MIN, saturation and exact halves."""
    import subprocess
    from pathlib import Path

    from edgeq.aot import arith
    from edgeq.aot.host import STRICT_CFLAGS
    from edgeq.resources import RUNTIME_DIR

    driver = Path(__file__).parent / "c" / "runtime" / "eq_math_driver.c"
    exe = tmp_path / "eq_math_driver"
    subprocess.run(["gcc", *STRICT_CFLAGS, "-O2", "-fsanitize=undefined", "-fno-sanitize-recover=all",
                    "-I", str(RUNTIME_DIR), str(driver), "-o", str(exe)], check=True)
    rng = np.random.default_rng(5)
    cases = [(-(1 << 31), -(1 << 31), 0), ((1 << 31) - 1, (1 << 31) - 1, 0), (3, 1 << 30, -1), (-3, 1 << 30, -1),
             (5, 1 << 30, -2), (-6, 1 << 30, -2), (100, 1518500250, 3), (0, 1 << 30, -31)]
    cases += [(int(x), int(m), int(s)) for x, m, s in zip(rng.integers(-(1 << 20), 1 << 20, 400),
                                                          rng.integers(1 << 30, (1 << 31) - 1, 400),
                                                          rng.integers(-31, 8, 400))]
    text = "".join(f"{x} {m} {s}\n" for x, m, s in cases)
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout.split("\n")
    for (x, m, s), line in zip(cases, out):
        expected = (arith.multiply_by_quantized_multiplier(x, m, s), arith.rounding_divide_by_pot(x, abs(s)),
                    arith.srdhm(x, m))
        assert tuple(map(int, line.split())) == expected, (x, m, s)


def test_bounded_requantization_is_multiply_by_quantized_multiplier_over_the_proved_range(tmp_path):
    """eq_requant (edgeq.aot.arith.bounded_requant's cheaper form: SMMULR and one rounding add)
    on accumulators at both ends and inside the range it was made for, shifts 0 to 31 and
    channels whose result is one value throughout, against MultiplyByQuantizedMultiplier."""
    import subprocess
    from pathlib import Path

    from edgeq.aot import arith
    from edgeq.aot.host import STRICT_CFLAGS
    from edgeq.resources import RUNTIME_DIR

    driver = Path(__file__).parent / "c" / "runtime" / "eq_requant_driver.c"
    exe = tmp_path / "eq_requant_driver"
    subprocess.run(["gcc", *STRICT_CFLAGS, "-O2", "-fsanitize=undefined", "-fno-sanitize-recover=all",
                    "-I", str(RUNTIME_DIR), str(driver), "-o", str(exe)], check=True)
    rng = np.random.default_rng(6)
    cases, kinds = [], set()
    while len(cases) < 600:
        m, s = int(rng.integers(1 << 30, (1 << 31) - 1)), int(rng.choice([-31, -27, -12, -7, -1, 0]))
        centre = int(rng.choice([0, rng.integers(-(1 << 30), 1 << 30)]))
        spread = int(rng.choice([100, 1 << 16, 1 << 28]))
        lo, hi = max(centre - spread, -(1 << 31) + 1), min(centre + spread, (1 << 31) - 1)
        fast = arith.bounded_requant([(m, s)], [(lo, hi)], zero_shift=True)
        if fast is None:  # neither bounded nor one value throughout: the kernels keep the general form
            continue
        kinds.add("one value" if fast[0][0] == 0 else f"shift {fast[0][2]}")
        cases += [(x, *fast[0], m, s) for x in (lo, hi, int(rng.integers(lo, hi + 1)))]
    assert {"one value", "shift 0", "shift 31"} <= kinds
    text = "".join(f"{x} {bm} {r} {bs}\n" for x, bm, r, bs, _, _ in cases)
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout.split("\n")
    for (x, _, _, _, m, s), line in zip(cases, out):
        expected = arith.multiply_by_quantized_multiplier(x, m, s)
        assert tuple(map(int, line.split())) == (expected, expected), (x, m, s)


# ---- int16x8, packed int4 weights, float32 ----

def run_both_typed(tflite: bytes, tmp_path_factory, name: str, make_input, seeds=SEEDS):
    from tflite_micro.python.tflite_micro import runtime

    graph = read_graph(tflite)
    producer = {t: op.opcode for op in graph.operators for t in op.outputs}
    compiled = compile_model(tflite, prefix=name)
    kernel = {t: op.split()[-1] for op in compiled.ops for t in graph.operators[int(op.split()[0])].outputs}
    host = HostModel(build_shared_library(compiled, tmp_path_factory.mktemp(name)), compiled)
    tflm = runtime.Interpreter.from_bytes(tflite)
    results = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        xs = [make_input(rng, t) for t in compiled.inputs]
        for i, x in enumerate(xs):
            tflm.set_input(x, i)
        tflm.invoke()
        ours = host.run(xs)
        results += [(producer[o], kernel[o], tflm.get_output(i), ours[i]) for i, o in enumerate(graph.outputs)]
    return compiled, results


@pytest.fixture(scope="module")
def int16x8_results(tmp_path_factory):
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    shapes = {"a": (1, 9, 9, 3), "b": (1, 8, 8, 4), "c": (1, 20), "d": (1, 1, 1, 4)}
    inputs = {n: keras.Input(s[1:], batch_size=1, name=n) for n, s in shapes.items()}
    model = keras.Model(list(inputs.values()), [
        L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inputs["a"]),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", dilation_rate=2)(inputs["b"]),
        L.Dense(7)(inputs["c"]),
    ])

    @tf.function(input_signature=[tf.TensorSpec(s, tf.float32, name=n) for n, s in shapes.items()])
    def serve(a, b, c, d):
        conv, dw, fc = model([a, b, c, d])
        return {"conv": conv, "dw": dw, "fc": fc, "add_broadcast": b + d, "add_relu": tf.nn.relu(conv + conv)}

    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
                                                for _ in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = tf.int16
    converter.inference_output_type = tf.int16
    _, results = run_both_typed(converter.convert(), tmp_path_factory, "int16x8",
                                lambda rng, t: rng.integers(-32768, 32768, size=t.shape).astype(np.int16))
    return results


@pytest.fixture(scope="module")
def int4_results(tmp_path_factory):
    """CONV_2D with per-channel int4 weights (27 a channel: channels start mid-byte) and
    FULLY_CONNECTED with per-tensor int4 weights, as ai-edge-quantizer writes them. (TFLM
    rejects per-channel int4 FULLY_CONNECTED, so there is no reference to test that on.)"""
    import tensorflow as tf
    import tf_keras as keras
    from ai_edge_quantizer import quantizer, recipe, recipe_manager
    from ai_edge_quantizer.recipe import TFLOperationName

    L = keras.layers
    keras.utils.set_random_seed(1)
    x = keras.Input((7, 7, 3), batch_size=1, name="x")
    conv = L.Conv2D(6, 3, padding="same", activation="relu")(x)
    model = keras.Model(x, [conv, L.Dense(5)(L.Flatten()(conv))])

    @tf.function(input_signature=[tf.TensorSpec((1, 7, 7, 3), tf.float32, name="x")])
    def serve(x):
        conv_out, dense_out = model(x)
        return {"conv": conv_out, "dense": dense_out}

    float_model = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model).convert()
    recipes = recipe_manager.RecipeManager()
    recipes.add_static_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                              weight_num_bits=8)
    recipes.add_static_config(regex=".*", operation_name=TFLOperationName.CONV_2D, activation_num_bits=8,
                              weight_num_bits=4)
    recipes.add_static_config(regex=".*", operation_name=TFLOperationName.FULLY_CONNECTED, activation_num_bits=8,
                              weight_num_bits=4, weight_granularity=recipe.QuantGranularity.TENSORWISE)
    q = quantizer.Quantizer(float_model)
    q.load_quantization_recipe(recipes.get_quantization_recipe())
    rng = np.random.default_rng(0)
    calibration = q.calibrate({"serving_default": [{"x": rng.normal(size=(1, 7, 7, 3)).astype(np.float32)}
                                                   for _ in range(16)]})
    tflite = bytes(q.quantize(calibration).quantized_model)
    compiled, results = run_both_typed(tflite, tmp_path_factory, "int4",
                                       lambda rng, t: rng.integers(-128, 128, size=t.shape, dtype=np.int8))
    return compiled, results


@pytest.fixture(scope="module")
def float32_results(tmp_path_factory):
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    shapes = {"a": (1, 10, 10, 3), "b": (1, 9, 9, 4), "c": (1, 24), "d": (1, 1, 1, 3)}
    inputs = {n: keras.Input(s[1:], batch_size=1, name=n) for n, s in shapes.items()}
    model = keras.Model(list(inputs.values()), [
        L.Conv2D(5, 3, strides=2, padding="same", activation="relu6")(inputs["a"]),
        L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2, padding="same")(inputs["b"]),
        L.Dense(6, activation="relu")(inputs["c"]),
        L.AveragePooling2D(3, strides=2, padding="same")(inputs["b"]),
        L.MaxPooling2D(2)(inputs["a"]),
        L.Softmax()(inputs["c"]),
    ])

    @tf.function(input_signature=[tf.TensorSpec(s, tf.float32, name=n) for n, s in shapes.items()])
    def serve(a, b, c, d):
        outs = model([a, b, c, d])
        return {**{f"o{i}": o for i, o in enumerate(outs)}, "add": tf.nn.relu(a + d)}

    tflite = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model).convert()
    _, results = run_both_typed(tflite, tmp_path_factory, "float32",
                                lambda rng, t: (rng.normal(size=t.shape) * 3).astype(np.float32))
    return results


@pytest.mark.parametrize("opcode", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"])
def test_int16x8_ops_match_tflm(int16x8_results, opcode):
    assert_bit_exact(int16x8_results, opcode)


def test_int16x8_model_with_float_interface_quantizes_and_dequantizes_like_tflm(tmp_path_factory):
    import tensorflow as tf
    import tf_keras as keras

    x = keras.Input((6, 6, 2), batch_size=1, name="x")
    model = keras.Model(x, keras.layers.Conv2D(3, 3, padding="same")(x))

    @tf.function(input_signature=[tf.TensorSpec((1, 6, 6, 2), tf.float32, name="x")])
    def serve(x):
        return model(x)

    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.normal(size=(1, 6, 6, 2)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    compiled, results = run_both_typed(converter.convert(), tmp_path_factory, "float16x8",
                                       lambda rng, t: (rng.normal(size=t.shape) * 2).astype(np.float32))
    assert {"eq_quantize_f32_s16", "eq_conv_s16", "eq_dequantize_s16_f32"} <= set(compiled.kernels)
    for _, _, ref, out in results:
        assert ref.dtype == out.dtype == np.float32 and ref.tobytes() == out.tobytes()


@pytest.mark.parametrize("opcode", ["CONV_2D", "FULLY_CONNECTED"])
def test_packed_int4_weights_match_tflm(int4_results, opcode):
    compiled, results = int4_results
    assert {"eq_conv_s4", "eq_fully_connected_s4"} <= set(compiled.kernels)
    assert_bit_exact(results, opcode)


@pytest.mark.parametrize("opcode", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                                    "MAX_POOL_2D", "ADD", "SOFTMAX"])
def test_float32_ops_match_tflm_within_float_rounding(float32_results, opcode):
    """Float kernels sum in TFLite's order, so results agree to float rounding (in
    practice bit for bit on x86-64, where nothing contracts to FMA under -std=c99)."""
    checked = [(ref, out) for op, _, ref, out in float32_results if op == opcode]
    assert checked, f"the model has no {opcode} output"
    for ref, out in checked:
        assert ref.dtype == out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_quantize_multiplier_rounds_half_away_from_zero_and_carries_into_the_exponent():
    from edgeq.aot.arith import quantize_multiplier

    assert quantize_multiplier(((1 << 30) + 0.5) / (1 << 31)) == ((1 << 30) + 1, 0)  # round() would give 2^30
    assert quantize_multiplier(1.0 - 2.0 ** -33) == (1 << 30, 1)  # q rounds to 2^31: halve and bump the shift
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2^-31 TFLite flushes to zero
