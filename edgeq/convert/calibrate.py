"""Activation ranges from edgeq's observers, and the quantizers that use them.

Everything starts from the float .tflite. TensorFlow's calibrator runs it over the calibration
data and writes each activation's min/max into the model; the converter's MLIR quantizer then
turns that calibrated model into the int8 model. That pair is exactly what
`TFLiteConverter(..., representative_dataset)` does inside (same tensors, same ops as
`edgeq.convert.converter.convert(model, "int8")`; only the metadata differs).

edgeq's observers plug in between the two: the float model runs once more in LiteRT with every
intermediate tensor kept, the observers (edgeq.quant: percentile, MSE) see each activation, and
their ranges overwrite the recorded min/max before the quantizer reads them. Why there and not
through ai-edge-quantizer's `calibrate()`: with the converter's quantizer the min/max candidate
is the very model `edgeq convert --quant int8` makes, so any difference between calibration
candidates is the ranges and nothing else; per-tensor weights and layers kept in float
(`denylisted_nodes`) come from the same quantizer. ai-edge-quantizer is used where the converter
cannot go: int4 weights. Its calibration result is overwritten with the same observer ranges.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np

from edgeq.convert.transforms import WEIGHTED_OPS, float_op
from edgeq.errors import BadInput
from edgeq.graph import read_graph
from edgeq.load import Samples
from edgeq.quant import MinMaxObserver, MseObserver, PercentileObserver, round_half_away_from_zero

CALIBRATIONS = ("minmax", "p99.9", "p99.99", "mse")
_CHUNK = 32  # samples per observer batch: bounds memory on models with large activations


def make_observer(method: str):
    if method == "minmax":
        return MinMaxObserver()
    if method.startswith("p"):
        return PercentileObserver(float(method[1:]))
    if method == "mse":
        return MseObserver(bits=8, signed=True, symmetric=False)
    raise BadInput(f"unknown calibration method '{method}' (choose one of: {', '.join(CALIBRATIONS)})")


def as_samples(x) -> Samples:
    """Calibration inputs as Samples (one array per model input); an array is one input's."""
    return x if isinstance(x, Samples) else Samples((np.asarray(x),))


def _representative(x):
    x = as_samples(x)

    def generate():
        for i in range(len(x)):
            yield [np.asarray(a, np.float32) for a in x.batch(i)]
    return generate


def debug_interpreter(tflite: bytes):
    """A LiteRT interpreter that keeps every intermediate tensor, on the reference kernels
    (a delegate would fuse ops and leave their intermediate tensors unwritten)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT warns that preserving all tensors is for debugging: it is
        interpreter = Interpreter(model_content=tflite, experimental_preserve_all_tensors=True, num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _dequantized(interpreter, detail: dict) -> np.ndarray:
    value = interpreter.get_tensor(detail["index"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(value.dtype, np.floating) or scale == 0:
        return value.astype(np.float32)
    return ((value.astype(np.int32) - zero_point) * scale).astype(np.float32)


_NOT_VALUES = ("RESOURCE", "VARIANT", "STRING")  # handles (VAR_HANDLE's output) and text: nothing to observe


def _activation_details(interpreter, tflite: bytes) -> list[dict]:
    graph = read_graph(tflite, "model")
    computed = {o for op in graph.operators for o in op.outputs} | set(graph.inputs)
    return [d for d in interpreter.get_tensor_details()
            if d["index"] in computed and graph.tensors[d["index"]].type not in _NOT_VALUES]


def trace(tflite: bytes, x, chunk: int = _CHUNK):
    """Yield, for each chunk of samples, {tensor name: values (chunk, *shape)} of every computed tensor.

    Quantized tensors come back dequantized, so float and quantized traces compare directly.
    """
    x = as_samples(x)
    interpreter = debug_interpreter(tflite)
    inputs = interpreter.get_input_details()
    details = _activation_details(interpreter, tflite)
    for start in range(0, len(x), chunk):
        values: dict[str, list[np.ndarray]] = {d["name"]: [] for d in details}
        for i in range(start, min(start + chunk, len(x))):
            for detail, sample in zip(inputs, x[i]):
                interpreter.set_tensor(detail["index"], _input(sample, detail))
            interpreter.invoke()
            for d in details:
                values[d["name"]].append(_dequantized(interpreter, d))
        yield {name: np.stack(v) for name, v in values.items()}


def _input(sample: np.ndarray, detail: dict) -> np.ndarray:
    x = np.asarray(sample, np.float32)[None, ...]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    # float32 division, as TFLite's QUANTIZE kernel does it
    q = round_half_away_from_zero(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


@dataclass
class ActivationStats:
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # method -> name -> range
    means: dict[int, np.ndarray] = field(default_factory=dict)  # tensor index -> mean over samples


def activation_stats(float_tflite: bytes, x, methods: tuple[str, ...] = (),
                     with_means: bool = False) -> ActivationStats:
    """Observer ranges of every activation for each method, and (for bias correction) the mean of
    every tensor, over the samples `x`."""
    graph = read_graph(float_tflite, "float model")
    index_of = {t.name: t.index for t in graph.tensors}
    observers: dict[str, dict[str, object]] = {m: {} for m in methods}
    sums: dict[str, np.ndarray] = {}
    count = 0
    for values in trace(float_tflite, x):
        for name, v in values.items():
            for m in methods:
                observers[m].setdefault(name, make_observer(m)).observe(v)
            if with_means:
                sums[name] = sums.get(name, 0.0) + v.astype(np.float64).sum(axis=0)
        count += len(next(iter(values.values()))) if values else 0
    stats = ActivationStats()
    for m in methods:
        stats.ranges[m] = {name: tuple(map(float, obs.range())) for name, obs in observers[m].items()}
    if with_means and count:
        stats.means = {index_of[name]: s / count for name, s in sums.items() if name in index_of}
    return stats


# ---- the converter's calibrator and quantizer ----------------------------------------------------

def calibrate(float_tflite: bytes, x) -> bytes:
    """The float model with TensorFlow's min/max calibration recorded in it."""
    from tensorflow.lite.python.optimize import calibrator

    return bytes(calibrator.Calibrator(calibrator.add_intermediate_tensors(float_tflite))
                 .calibrate(_representative(x)))


def recorded_ranges(calibrated: bytes) -> dict[str, tuple[float, float]]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    found = {}
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        if q is not None and q.min is not None and len(q.min) == 1:
            found[t.name.decode() if isinstance(t.name, bytes) else t.name] = (float(q.min[0]), float(q.max[0]))
    return found


def rewrite_ranges(calibrated: bytes, ranges: dict[str, tuple[float, float]], keep: frozenset[str] = frozenset()
                   ) -> bytes:
    """The calibrated model with the recorded min/max of each named tensor replaced.

    Names in `keep` keep their recorded range: the model input's range is the data's nominal
    range (pixels in [0, 1]), and clipping it would throw input information away before the
    first layer sees it.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    for t in model.subgraphs[0].tensors:
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        q = t.quantization
        if name in keep or name not in ranges or q is None or q.min is None or len(q.min) != 1:
            continue
        lo, hi = ranges[name]
        if hi <= lo:  # an all-constant tensor: leave what the calibrator saw
            continue
        q.min = np.array([lo], np.float32)
        q.max = np.array([hi], np.float32)
    builder = flatbuffers.Builder(len(calibrated) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_int8(calibrated: bytes, per_channel: bool = True, keep_float: tuple[str, ...] = ()) -> bytes:
    """Full-integer int8 (int8 input and output) from a calibrated model; ops whose output tensor is
    named in `keep_float` stay float, with QUANTIZE/DEQUANTIZE around them."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    return bytes(tf_convert.mlir_quantize(calibrated, disable_per_channel=not per_channel,
                                          input_data_type=tf.int8, output_data_type=tf.int8,
                                          denylisted_nodes=list(keep_float) or None))


def quantize_int16x8(float_tflite: bytes, x) -> bytes:
    """int16 activations, int8 weights, int16 input and output: what the converter's
    EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 produces (same tensors)."""
    import tensorflow as tf
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.python.util import modify_model_io_type

    quantized = calibrator.Calibrator(calibrator.add_intermediate_tensors(float_tflite)).calibrate_and_quantize(
        _representative(x), tf.float32, tf.float32, False, tf.int16, tf.int64)
    return bytes(modify_model_io_type(quantized, tf.int16, tf.int16))


def quantize_int4_weights(float_tflite: bytes, x, ranges: dict[str, tuple[float, float]] | None = None,
                          keep: frozenset[str] = frozenset()) -> bytes:
    """int8 activations with int4 weights in CONV_2D (per channel) and FULLY_CONNECTED (per tensor:
    TFLM's int4 FULLY_CONNECTED takes one scale), int8 elsewhere, through ai-edge-quantizer.
    DEPTHWISE_CONV_2D keeps int8 weights: TFLM has int4 kernels for it, but ai-edge-quantizer's
    policy (static_wi4_ai8) allows int4 only in CONV_2D and FULLY_CONNECTED.
    `ranges` replace its min/max calibration, tensor by tensor."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer

    signatures = Interpreter(model_content=float_tflite).get_signature_list()
    if not signatures:
        raise BadInput("int4 weights go through ai-edge-quantizer, which needs a model with a signature")
    key = next(iter(signatures))
    graph = read_graph(float_tflite, "float model")
    names = [graph.io_name(i) for i in graph.inputs]  # in the subgraph's order, as the samples are
    x = as_samples(x)
    op = qtyping.TFLOperationName
    q = quantizer.Quantizer(float_tflite)
    q.add_static_config(".*", op.ALL_SUPPORTED, 8, 8)
    q.add_static_config(".*", op.CONV_2D, 8, 4, qtyping.QuantGranularity.CHANNELWISE)
    q.add_static_config(".*", op.FULLY_CONNECTED, 8, 4, qtyping.QuantGranularity.TENSORWISE)
    samples = {key: [{name: np.asarray(a, np.float32) for name, a in zip(names, x.batch(i))}
                     for i in range(len(x))]}
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # its progress bar and
        warnings.simplefilter("ignore")  # its interpreters' debugging notice are not for our users
        result = q.calibrate(samples, num_threads=1)
        for tensor, qsv in result.items():
            if ranges and tensor in ranges and tensor not in keep and "min" in qsv and ranges[tensor][1] > ranges[tensor][0]:
                lo, hi = ranges[tensor]
                result[tensor] = dict(qsv, min=np.full_like(qsv["min"], lo), max=np.full_like(qsv["max"], hi))
        return bytes(q.quantize(result, enable_progress_report=False).quantized_model)


def _quantized_with(float_tflite: bytes, recipe) -> bytes:
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(float_tflite)
    q.load_quantization_recipe(recipe)
    # It prints its size summary on stdout: edgeq's output is its own.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return bytes(q.quantize().quantized_model)


def quantize_fp16_weights(float_tflite: bytes) -> bytes:
    """float16 weights behind DEQUANTIZE, float32 compute: the converter's fp16 mode, made from a float
    .tflite by ai-edge-quantizer's float casting (the weighted ops' weights; biases stay float32)."""
    from ai_edge_quantizer import qtyping, recipe, recipe_manager

    op = qtyping.TFLOperationName
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
    manager = recipe_manager.RecipeManager()
    for name in (op.FULLY_CONNECTED, op.CONV_2D, op.DEPTHWISE_CONV_2D, op.CONV_2D_TRANSPOSE):
        manager.add_quantization_config(".*", name, config, algorithm_key=recipe.AlgorithmName.FLOAT_CASTING)
    return _quantized_with(float_tflite, manager.get_quantization_recipe())


def quantize_dynamic_int8(float_tflite: bytes) -> bytes:
    """int8 weights (per channel), float activations quantized on the fly: the converter's dynamic-range
    mode, made from a float .tflite by ai-edge-quantizer's recipe for it."""
    from ai_edge_quantizer import recipe

    return _quantized_with(float_tflite, recipe.dynamic_wi8_afp32())


# ---- per-layer error, for mixed precision -----------------------------------------------------------

@dataclass(frozen=True)
class LayerError:
    name: str  # the float model's output tensor of the op: what `keep_float` (denylisted_nodes) takes
    opcode: str
    index: int  # op index in the quantized model
    sqnr_db: float  # the op alone: its quantized output against the float op on the same input
    nsr: float  # the same as a noise-to-signal power ratio


def layer_errors(float_tflite: bytes, quantized_tflite: bytes, x) -> list[LayerError]:
    """The error each weighted op of the quantized model makes by itself, worst first.

    The idea of TFLite's QuantizationDebugger with its per-layer verification: the quantized model
    runs with every intermediate tensor kept; each CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
    gets its own input (as the quantized model computed it, dequantized) through its float weights,
    bias and activation, and that is compared with what the quantized op produced. Measuring the op
    in isolation keeps a layer from being blamed for error it inherits or for amplifying it.
    """
    f_graph = read_graph(float_tflite, "float model")
    q_graph = read_graph(quantized_tflite, "quantized model")
    f_ops = [op for op in f_graph.operators if op.opcode in WEIGHTED_OPS]
    q_ops = [op for op in q_graph.operators if op.opcode in WEIGHTED_OPS]
    if len(f_ops) != len(q_ops):
        raise BadInput(f"the float model has {len(f_ops)} weighted ops, the quantized one {len(q_ops)}")
    noise = np.zeros(len(q_ops))
    signal = np.zeros(len(q_ops))
    for values in trace(quantized_tflite, x):
        for k, (f_op, q_op) in enumerate(zip(f_ops, q_ops)):
            inputs = values[q_graph.tensors[q_op.inputs[0]].name]
            outputs = values[q_graph.tensors[q_op.outputs[0]].name]
            for sample, got in zip(inputs, outputs):
                want = float_op(f_graph, f_op, sample).reshape(got.shape)
                noise[k] += float(np.sum((got.astype(np.float64) - want) ** 2))
                signal[k] += float(np.sum(want ** 2))
    errors = []
    for k, (f_op, q_op) in enumerate(zip(f_ops, q_ops)):
        nsr = noise[k] / signal[k] if signal[k] > 0 else (0.0 if noise[k] == 0 else float("inf"))
        errors.append(LayerError(f_graph.tensors[f_op.outputs[0]].name, q_op.opcode, q_op.index,
                                 float("inf") if nsr == 0 else float(-10 * np.log10(nsr)), nsr))
    return sorted(errors, key=lambda e: e.nsr, reverse=True)
