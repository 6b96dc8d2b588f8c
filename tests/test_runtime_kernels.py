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


@pytest.fixture(scope="module")
def strided_depthwise_results(tmp_path_factory):
    import tf_keras as keras

    L = keras.layers
    layers = {
        "same_relu6": ((1, 16, 16, 8), L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")),
        "valid_odd_channels": ((1, 21, 18, 7), L.DepthwiseConv2D(3, strides=2)),
        "five_by_five": ((1, 20, 20, 4), L.DepthwiseConv2D(5, strides=2, padding="same")),
    }
    return run_both_typed(build_family(layers), tmp_path_factory, "dwstrided",
                          lambda rng, t: rng.integers(-128, 128, size=t.shape, dtype=np.int8), dsp=True)


def test_strided_depthwise_for_dsp_cores_matches_tflm(strided_depthwise_results):
    compiled, results = strided_depthwise_results
    assert "eq_depthwise_conv_strided_s8" in compiled.kernels
    assert_bit_exact(results, "DEPTHWISE_CONV_2D")


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

def run_both_typed(tflite: bytes, tmp_path_factory, name: str, make_input, seeds=SEEDS, dsp: bool = False):
    """TFLM's outputs and edgeq-c's on the host; with `dsp`, the kernels and weight layouts a DSP core
    gets, run through their portable path."""
    from tflite_micro.python.tflite_micro import runtime

    graph = read_graph(tflite)
    producer = {t: op.opcode for op in graph.operators for t in op.outputs}
    compiled = compile_model(tflite, prefix=name, dsp=dsp)
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


def int4_model() -> bytes:
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
    return bytes(q.quantize(calibration).quantized_model)


def _int8_input(rng, t):
    return rng.integers(-128, 128, size=t.shape, dtype=np.int8)


@pytest.fixture(scope="module")
def int4_tflite() -> bytes:
    return int4_model()


@pytest.fixture(scope="module")
def int4_results(int4_tflite, tmp_path_factory):
    return run_both_typed(int4_tflite, tmp_path_factory, "int4", _int8_input)


@pytest.fixture(scope="module")
def int4_paired_results(int4_tflite, tmp_path_factory):
    return run_both_typed(int4_tflite, tmp_path_factory, "int4dsp", _int8_input, dsp=True)


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


@pytest.mark.parametrize("opcode", ["CONV_2D", "FULLY_CONNECTED"])
def test_int4_weights_in_the_paired_layout_match_tflm(int4_paired_results, opcode):
    compiled, results = int4_paired_results
    assert {"eq_conv_paired_s4", "eq_fully_connected_paired_s4"} <= set(compiled.kernels)
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


# ---- resampling: TRANSPOSE_CONV, RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR (int8) ----

def _outputs_of(tflite: bytes, results, keep) -> list:
    """The run_both results whose model output's producing op satisfies keep(op): run_both
    lists every output in graph order for each build and seed."""
    graph = read_graph(tflite)
    producer = {t: op for op in graph.operators for t in op.outputs}
    ops = [producer[o] for o in graph.outputs]
    return [r for k, r in enumerate(results) if keep(ops[k % len(ops)])]


def _patched(tflite: bytes, edit) -> bytes:
    """The model with edit(ModelT) applied to its object form."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _ops_named(model, opcode: str) -> list:
    from ai_edge_litert import schema_py_generated as schema

    codes = {i for i, c in enumerate(model.operatorCodes)
             if max(c.builtinCode, c.deprecatedBuiltinCode) == getattr(schema.BuiltinOperator, opcode)}
    return [op for op in model.subgraphs[0].operators if op.opcodeIndex in codes]


def _transpose_conv_layers():
    import tf_keras as keras

    L = keras.layers
    keras.utils.set_random_seed(3)

    def biased(filters, kernel, **kw):  # Keras' zero bias would be dropped by the converter
        return L.Conv2DTranspose(filters, kernel, bias_initializer=keras.initializers.RandomNormal(stddev=0.5), **kw)

    return {
        "k3_s1_same": ((1, 6, 7, 3), biased(4, 3, padding="same")),
        "k3_s2_same": ((1, 5, 6, 8), biased(6, 3, strides=2, padding="same")),
        "k3_s2_valid": ((1, 5, 4, 5), biased(7, 3, strides=2, padding="valid")),
        "k4_s2_same": ((1, 4, 4, 16), biased(8, 4, strides=2, padding="same")),
        "k4_s1_valid_no_bias": ((1, 5, 5, 2), L.Conv2DTranspose(3, 4, padding="valid", use_bias=False)),
        "k4_s2_valid_no_bias": ((1, 3, 5, 4), L.Conv2DTranspose(1, 4, strides=2, padding="valid", use_bias=False)),
        "k3_s2_same_no_bias": ((1, 4, 4, 12), L.Conv2DTranspose(9, 3, strides=2, padding="same", use_bias=False)),
        "k3x4_s2x1_same": ((1, 4, 6, 5), biased(5, (3, 4), strides=(2, 1), padding="same")),
        "k2_s3_same_gaps": ((1, 3, 4, 3), biased(4, 2, strides=3, padding="same")),  # rows no tap reaches
    }


@pytest.fixture(scope="module")
def transpose_conv_model():
    return build_family(_transpose_conv_layers())


@pytest.fixture(scope="module")
def transpose_conv_results(transpose_conv_model, tmp_path_factory):
    return run_both(transpose_conv_model, tmp_path_factory, "tconv")


def test_transpose_conv_matches_tflm_over_strides_paddings_kernel_sizes_and_channel_counts(transpose_conv_results):
    assert assert_bit_exact(transpose_conv_results, "TRANSPOSE_CONV") == {"eq_transpose_conv_s8"}


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias_as_fourth_input", "no_bias_input"])
def test_transpose_conv_matches_tflm_with_and_without_the_bias_input(transpose_conv_model, transpose_conv_results,
                                                                       with_bias):
    picked = _outputs_of(transpose_conv_model, transpose_conv_results,
                         lambda op: op.opcode == "TRANSPOSE_CONV" and (len(op.inputs) == 4) == with_bias)
    assert len(picked) >= 3 * 2 * len(SEEDS)  # three or more such layers, both builds, every seed
    assert_bit_exact(picked, "TRANSPOSE_CONV")


def test_transpose_conv_applies_its_fused_activation_like_tflm(transpose_conv_model, tmp_path_factory):
    """The converter leaves RELU unfused; a model with it fused into TRANSPOSE_CONV (TFLM's
    reference kernel clamps to it) must clamp the same."""
    from ai_edge_litert import schema_py_generated as schema

    def fuse(model):
        for k, op in enumerate(_ops_named(model, "TRANSPOSE_CONV")):
            act = schema.ActivationFunctionType.RELU if k % 2 else schema.ActivationFunctionType.RELU6
            op.builtinOptions.fusedActivationFunction = act

    fused = _patched(transpose_conv_model, fuse)
    results = run_both(fused, tmp_path_factory, "tconv_act", seeds=(0,))
    assert_bit_exact(results, "TRANSPOSE_CONV")
    graph = read_graph(fused)
    producer = {t: op for op in graph.operators for t in op.outputs}
    zero_points = [graph.tensors[o].zero_points[0] for o in graph.outputs if producer[o].opcode == "TRANSPOSE_CONV"]
    refs = [ref for _, _, ref, _ in results[:len(graph.outputs)]]
    assert all(ref.min() >= zp for ref, zp in zip(refs, zero_points))  # TFLM did clamp at 0.0
    assert any((ref == zp).mean() > 0.2 for ref, zp in zip(refs, zero_points))


def test_transpose_conv_refuses_int8_weights_that_are_not_constant(transpose_conv_model):
    from edgeq.errors import BadInput

    def unfreeze(model):
        filters = {op.inputs[1] for op in _ops_named(model, "TRANSPOSE_CONV")}
        for t in filters:
            model.subgraphs[0].tensors[t].buffer = 0  # buffer 0 is the empty one
        model.subgraphs[0].inputs = list(model.subgraphs[0].inputs) + sorted(filters)

    with pytest.raises(BadInput, match=r"TRANSPOSE_CONV .*the filter must be constant"):
        compile_model(_patched(transpose_conv_model, unfreeze))


@pytest.fixture(scope="module")
def resize_model():
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    v1 = tf.compat.v1.image
    layers = {
        "up_bilinear": ((1, 4, 5, 3), L.UpSampling2D(2, interpolation="bilinear")),  # half_pixel_centers
        "up_nearest": ((1, 3, 4, 5), L.UpSampling2D((2, 3), interpolation="nearest")),
        "a": ((1, 4, 5, 3), None), "b": ((1, 6, 10, 8), None), "c": ((1, 3, 3, 1), None),
    }

    def ops(x):
        a, b, c = x["a"], x["b"], x["c"]
        return {
            "bilinear_align_corners": v1.resize_bilinear(a, (7, 9), align_corners=True),
            "bilinear_neither": v1.resize_bilinear(a, (7, 9)),
            "bilinear_2x_exact_halves": v1.resize_bilinear(a, (8, 10)),  # weights 1/2: many ties to round
            "bilinear_half_pixel": tf.image.resize(a, (7, 9), method="bilinear"),
            "bilinear_half_pixel_down": tf.image.resize(b, (4, 3), method="bilinear"),
            "bilinear_align_corners_down": v1.resize_bilinear(b, (4, 7), align_corners=True),
            "bilinear_align_corners_one_column": v1.resize_bilinear(c, (5, 1), align_corners=True),
            "nearest_align_corners": v1.resize_nearest_neighbor(a, (7, 9), align_corners=True),
            "nearest_neither": v1.resize_nearest_neighbor(a, (7, 9)),
            "nearest_half_pixel": tf.image.resize(a, (7, 9), method="nearest"),
            "nearest_half_pixel_down": tf.image.resize(b, (4, 3), method="nearest"),
            "nearest_align_corners_down": v1.resize_nearest_neighbor(b, (5, 4), align_corners=True),
        }

    return build_family(layers, extra=ops)


@pytest.fixture(scope="module")
def resize_results(resize_model, tmp_path_factory):
    return run_both(resize_model, tmp_path_factory, "resize")


def _resize_modes(tflite: bytes, opcode: str) -> set[tuple[bool, bool]]:
    return {(bool(op.options.alignCorners), bool(op.options.halfPixelCenters))
            for op in read_graph(tflite).operators if op.opcode == opcode}


def test_resize_bilinear_matches_tflm_with_align_corners_half_pixel_centers_or_neither(resize_model,
                                                                                         resize_results):
    assert _resize_modes(resize_model, "RESIZE_BILINEAR") == {(True, False), (False, True), (False, False)}
    assert assert_bit_exact(resize_results, "RESIZE_BILINEAR") == {"eq_resize_bilinear_s8"}


def test_resize_nearest_neighbor_matches_tflm_with_align_corners_half_pixel_centers_or_neither(resize_model,
                                                                                                 resize_results):
    assert _resize_modes(resize_model, "RESIZE_NEAREST_NEIGHBOR") == {(True, False), (False, True), (False, False)}
    assert assert_bit_exact(resize_results, "RESIZE_NEAREST_NEIGHBOR") == {"eq_resize_nearest_neighbor_s8"}


def test_resize_tables_follow_tflites_index_arithmetic():
    from edgeq.aot.lower_resample import bilinear_taps, nearest_taps

    # 2x, half pixel centres: the first row reaches above the input (weight -256 on row 0 twice)
    assert bilinear_taps(4, 8, False, True)[:3].tolist() == [[0, 0, -256], [0, 1, 256], [0, 1, 768]]
    assert bilinear_taps(5, 3, True, False).tolist() == [[0, 0, 0], [2, 2, 0], [4, 4, 0]]
    assert bilinear_taps(3, 1, True, False).tolist() == [[0, 0, 0]]  # one output: align_corners has no effect
    assert nearest_taps(2, 3, True, False).tolist() == [0, 1, 1]  # 0.5 rounds away from zero
    assert nearest_taps(3, 7, False, False).tolist() == [0, 0, 0, 1, 1, 2, 2]  # floor
    assert nearest_taps(4, 8, False, True).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_resize_refuses_an_output_quantized_unlike_its_input(resize_model):
    from edgeq.errors import BadInput

    def rescale(model):
        op = _ops_named(model, "RESIZE_BILINEAR")[0]
        q = model.subgraphs[0].tensors[op.outputs[0]].quantization
        q.scale = [float(q.scale[0]) * 2]

    with pytest.raises(BadInput, match=r"RESIZE_BILINEAR .*must share scale and zero point"):
        compile_model(_patched(resize_model, rescale))


def test_resize_bilinear_refuses_align_corners_with_half_pixel_centers(resize_model):
    from edgeq.errors import BadInput

    def both(model):
        op = _ops_named(model, "RESIZE_BILINEAR")[0]
        op.builtinOptions.alignCorners = op.builtinOptions.halfPixelCenters = True

    with pytest.raises(BadInput, match=r"RESIZE_BILINEAR .*align_corners and half_pixel_centers together"):
        compile_model(_patched(resize_model, both))


@pytest.fixture(scope="module")
def chained_model():
    """CONV_2D -> TRANSPOSE_CONV -> RESIZE_BILINEAR, a segmentation head in small."""
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    keras.utils.set_random_seed(4)
    x = keras.Input((8, 8, 3), batch_size=1, name="x")
    y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.Conv2DTranspose(6, 3, strides=2, padding="same",
                          bias_initializer=keras.initializers.RandomNormal(stddev=0.5))(y)
    model = keras.Model(x, L.UpSampling2D(2, interpolation="bilinear")(y))

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32, name="x")])
    def serve(x):
        return {"out": model(x)}

    return convert_int8(serve, {"x": (1, 8, 8, 3)}, model)


def test_conv_transpose_conv_resize_chain_is_bit_exact_with_portable_and_dsp_kernels(chained_model, tmp_path):
    from tflite_micro.python.tflite_micro import runtime

    assert [op.opcode for op in read_graph(chained_model).operators] == ["CONV_2D", "TRANSPOSE_CONV",
                                                                         "RESIZE_BILINEAR"]
    tflm = runtime.Interpreter.from_bytes(chained_model)
    conv_kernels = set()
    for dsp in (False, True):
        compiled = compile_model(chained_model, prefix=f"chain{int(dsp)}", dsp=dsp)
        assert {"eq_transpose_conv_s8", "eq_resize_bilinear_s8"} <= set(compiled.kernels)
        conv_kernels.add(next(k for k in compiled.kernels if k.startswith("eq_conv")))
        host = HostModel(build_shared_library(compiled, tmp_path / f"dsp{int(dsp)}"), compiled)
        for seed in SEEDS:
            x = np.random.default_rng(seed).integers(-128, 128, size=(1, 8, 8, 3), dtype=np.int8)
            tflm.set_input(x, 0)
            tflm.invoke()
            assert host.run([x])[0].tobytes() == tflm.get_output(0).tobytes(), (dsp, seed)
    assert len(conv_kernels) == 2  # the DSP build did take other convolution kernels


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_conv_transpose_conv_resize_chain_compiles_cleanly_for_cortex_m4(chained_model, tmp_path):
    from edgeq.aot.footprint import measure_footprint

    for dsp in (False, True):
        compiled = compile_model(chained_model, prefix=f"chain{int(dsp)}", dsp=dsp)
        assert {"eq_transpose_conv_s8.c", "eq_resize_bilinear_s8.c"} <= set(compiled.sources)
        footprint = measure_footprint(compiled, tmp_path / f"dsp{int(dsp)}")  # -Werror: a warning fails
        assert footprint.kernel_code_bytes > 0
