"""Convert a loaded model to a .tflite flatbuffer in one quantization mode.

The model is first exported as a SavedModel whose signature fixes the batch at 1. Two reasons:
the converter keeps a free batch dimension as SHAPE / STRIDED_SLICE / PACK ops around every
Flatten, which a microcontroller would then execute for nothing; and `from_keras_model` /
`from_concrete_functions` on Keras 3 models leave READ_VARIABLE ops that break calibration.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgeq.convert.calibrate as calibrate
from edgeq.convert.signature import in_signature_order
from edgeq.errors import BadInput, EdgeqError, ToolFailed
from edgeq.graph import read_graph
from edgeq.isolate import contained
from edgeq.litert_ops import host_ops
from edgeq.load import TORCH_FORMATS, Dataset, Model, Samples, load_model
from edgeq.modes import USER_MODES, get_mode
from edgeq.tflm_limits import softmax_min_input_scale, softmax_scale_too_small

MAX_CALIBRATION_SAMPLES = 1000  # the converter's histogram-free min/max settles long before this


@dataclass(frozen=True)
class Conversion:
    """A converted model and what the user should know about how it was made."""

    tflite: bytes
    warnings: tuple[str, ...] = ()


CRASH_ADVICE = ("A crash here is the converter's, not the model file's: docs/robustness.md lists the known "
                "ones; convert the model yourself and give edgeq the .tflite, or simplify the layer it fails on")


def _unrolled(keras_model):
    """The Keras 3 model with every recurrent layer unrolled over its (fixed) time steps.

    A rolled LSTM or GRU converts to a WHILE loop, which the converter's calibrator crashes on
    (SIGSEGV in MinMax::Update) and which microcontroller runtimes run slowly if at all; unrolled,
    it is straight-line FULLY_CONNECTED and element-wise ops with the same weights and outputs."""
    import keras

    def recurrent(layer) -> bool:
        inner = getattr(layer, "forward_layer", None)
        return isinstance(layer, keras.layers.RNN) or isinstance(inner, keras.layers.RNN)

    layers = list(keras_model._flatten_layers(include_self=False))
    if not any(recurrent(layer) and not getattr(layer, "unroll", False) for layer in layers):
        return keras_model, ()

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.RNN):
            config["unroll"] = True
        elif recurrent(layer):  # Bidirectional: the wrapped layer's config, and its backward twin's
            for key in ("layer", "backward_layer"):
                if isinstance(config.get(key), dict):
                    config[key]["config"]["unroll"] = True
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(keras_model, clone_function=clone)
        copy.set_weights(keras_model.get_weights())
    except Exception as exc:  # a subclassed model clone_model cannot rebuild: convert it as it is
        return keras_model, (f"could not unroll the recurrent layers ({type(exc).__name__}: {exc}); converting "
                             "them as a loop, which the converter's calibrator may not survive",)
    return copy, ()


def _export_saved_model(model: Model, directory: Path) -> tuple[str, ...]:
    """The model as a SavedModel in `directory`, batch fixed at 1, its signature naming each input and
    output as the model does; what the user should know of it."""
    import tensorflow as tf

    signature = [tf.TensorSpec((1, *spec.shape), spec.dtype, name=spec.name) for spec in model.inputs]
    output_names = [spec.name for spec in model.outputs]

    def named(results) -> dict:
        results = results if isinstance(results, (list, tuple)) else [results]
        return dict(zip(output_names, results))

    if model.keras is not None:
        import keras

        if isinstance(model.keras, keras.Model):
            unrolled, warnings = _unrolled(model.keras)
            archive = keras.export.ExportArchive()
            archive.track(unrolled)

            def serve(*args):
                return named(unrolled(list(args) if len(args) > 1 else args[0], training=False))

            archive.add_endpoint("serving_default", serve, input_signature=signature)
            archive.write_out(str(directory), verbose=False)
            return warnings
        keras_model = model.keras  # a tf_keras model saves through tf.saved_model directly

        @tf.function(input_signature=signature)
        def serve_tf_keras(*args):
            return named(keras_model(list(args) if len(args) > 1 else args[0], training=False))

        tf.saved_model.save(keras_model, str(directory), signatures=serve_tf_keras)
        return ()
    if model.saved_model is not None:
        source = model.saved_model.signatures["serving_default"]
        input_names = [spec.name for spec in model.inputs]
        module = tf.Module()
        module.source = model.saved_model

        @tf.function(input_signature=signature)
        def serve_fixed(*args):
            return dict(source(**dict(zip(input_names, args))))

        module.serve = serve_fixed
        tf.saved_model.save(module, str(directory), signatures=serve_fixed)
        return ()
    raise BadInput(f"{model.path}: nothing to export")


def _representative(model: Model, calibration: Dataset, by_name: bool = False):
    """The calibration samples one at a time, batch 1, each input in its own dtype (a model that
    takes uint8 pixels is calibrated on uint8 pixels): a list in the subgraph's input order, or with
    `by_name` a dict keyed by the signature's input names."""
    samples = calibration.x[:MAX_CALIBRATION_SAMPLES]
    dtypes = [spec.dtype if not spec.quantized else np.float32 for spec in model.inputs]

    def generate():
        for i in range(len(samples)):
            batch = [np.asarray(a, dtype=d) for a, d in zip(samples.batch(i), dtypes)]
            yield {spec.name: a for spec, a in zip(model.inputs, batch)} if by_name else batch

    return generate


def _quantize_float_tflite(model: Model, mode: str, calibration: Dataset | None) -> bytes:
    """A float flatbuffer quantized: fp16 and dynamic-int8 by ai-edge-quantizer's recipes (a model that
    came with fp16 weights is, in fp16, the file as given); int8 and int16x8 by the converter's own
    calibrator, which runs the representative data through the float model, records each tensor's
    range and quantizes the same way the converter does after it has built a float model itself."""
    if mode == "fp16":
        return model.as_given if model.weights_as_given == "fp16" else calibrate.quantize_fp16_weights(model.tflite)
    if mode == "dynamic-int8":
        return calibrate.quantize_dynamic_int8(model.tflite)
    import tensorflow as tf
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.python.util import modify_model_io_type

    activations, bias, io = (tf.int8, tf.int32, tf.int8) if mode == "int8" else (tf.int16, tf.int64, tf.int16)
    model_content = model.tflite if mode == "int8" else calibrator.add_intermediate_tensors(model.tflite)
    try:
        quantized = calibrator.Calibrator(model_content).calibrate_and_quantize(
            _representative(model, calibration), tf.float32, tf.float32, False, activations, bias)
    except Exception as exc:
        lacking = host_ops(model.tflite).calibrator_reason()  # its own message names no op
        if lacking:
            raise BadInput(f"{model.path}: cannot quantize as {mode}: {lacking}") from exc
        raise converter_failure(model, mode, exc, "the converter's calibrator") from exc
    return bytes(modify_model_io_type(quantized, io, io))


# How the converter says that a model holds an op it cannot express in TFLite's builtins.
_UNSUPPORTED_OP = re.compile(r"'(tf\.\w+|tfl\.\w+)' op (?:is neither a custom op nor a flex op|is not supported)"
                             r"|failed to legalize operation '([\w.]+)'")


def converter_failure(model: Model, mode: str, exc: Exception, tool: str) -> EdgeqError:
    """The converter's exception as edgeq's error: bad input when the model holds an op the
    converter cannot handle (named), a tool failure otherwise."""
    text = str(exc).strip()
    first_line = text.splitlines()[0] if text else type(exc).__name__
    unsupported = _UNSUPPORTED_OP.search(text)
    if unsupported:
        op = unsupported.group(1) or unsupported.group(2)
        return BadInput(f"{model.path}: {tool} cannot convert the op {op} in mode {mode}: TFLite has no builtin "
                        "for it; replace the layer or keep it out of the exported model (details in the log)")
    return ToolFailed(f"{model.path}: {tool} failed in mode {mode}: {first_line} (the full message is in the "
                      "log); this is the converter's failure, not the model's")


def convert(model: Model, mode: str, calibration: Dataset | None = None, *, in_worker: bool = True) -> bytes:
    """The .tflite bytes of `convert_model`, for callers that report none of its warnings."""
    return convert_model(model, mode, calibration, in_worker=in_worker).tflite


def convert_model(model: Model, mode: str, calibration: Dataset | None = None, *,
                  in_worker: bool = True) -> Conversion:
    """`model` quantized as `mode` (one of edgeq.modes.USER_MODES), and the warnings of the conversion.

    The converter runs in edgeq's worker process (edgeq.isolate), which loads the model from its
    file: a crash in the converter is an error naming it and the model, not the end of edgeq.
    `in_worker=False` converts here, for a model that exists only in memory (QAT's, which is
    already in a process of its own)."""
    if mode not in USER_MODES:
        raise BadInput(f"unknown quantization mode '{mode}' (choose one of: {', '.join(USER_MODES)})")
    if get_mode(mode).calibrated and calibration is None:
        raise BadInput(f"mode {mode} needs calibration data (--data)")
    if model.tflite is not None and mode == "fp32":
        return Conversion(model.tflite)
    if not in_worker:
        converted = _convert_here(model, mode, calibration)
    else:
        tool = ("the converter's calibrator" if model.tflite is not None else
                "litert-torch" if model.format in TORCH_FORMATS and mode == "fp32" else
                "litert-torch and the converter's calibrator" if model.format in TORCH_FORMATS else
                "the TensorFlow Lite converter")
        x = calibration.x[:MAX_CALIBRATION_SAMPLES] if calibration is not None else None
        converted = contained(tool, f"{model.path} (mode {mode})", _convert_file, str(model.path), model.sha256,
                              mode, x, advice=CRASH_ADVICE)
    if mode == "int8":
        converted = _softmax_ranges_tflm_accepts(model, converted, calibration, in_worker)
    return converted


_loaded: dict[tuple[str, str], Model] = {}


def _convert_file(path: str, sha256: str, mode: str, x: Samples | None) -> Conversion:
    """In the worker: the model loaded from `path` (once per file and content), then converted."""
    key = (path, sha256)
    if key not in _loaded:
        _loaded.clear()  # one model at a time: a planner run converts one model many ways
        _loaded[key] = load_model(path)
    calibration = Dataset(x=x, y=None, source="calibration") if x is not None else None
    return _convert_here(_loaded[key], mode, calibration)


_torch_float: dict[str, bytes] = {}


def _torch_float_tflite(model: Model) -> bytes:
    """In the worker: an ONNX or .pt2 model's float .tflite, converted once per model content."""
    import edgeq.convert.torch_convert as torch_convert

    if model.sha256 not in _torch_float:
        _torch_float.clear()
        _torch_float[model.sha256] = torch_convert.float_tflite(model)
    return _torch_float[model.sha256]


def _convert_here(model: Model, mode: str, calibration: Dataset | None) -> Conversion:
    if model.format in TORCH_FORMATS and model.tflite is None:
        float_tflite = _torch_float_tflite(model)
        if mode == "fp32":
            return Conversion(float_tflite)
        model = dataclasses.replace(model, tflite=float_tflite)
    if model.tflite is not None:
        return Conversion(_quantize_float_tflite(model, mode, calibration))
    return _convert_exported(model, mode, calibration)


def _here(tool: str, subject: str, fn, *args, advice: str = ""):
    return fn(*args)


def _softmax_ranges_tflm_accepts(model: Model, converted: Conversion, calibration: Dataset,
                                 in_worker: bool) -> Conversion:
    """`converted`, or, when a SOFTMAX input's calibrated range is so narrow that TFLM aborts on its
    scale (edgeq.tflm_limits), the model quantized again with that range widened to the narrowest
    TFLM accepts: the logits were all but constant, so the wider range loses nothing."""
    narrow = softmax_scale_too_small(read_graph(converted.tflite))
    if not narrow:
        return converted
    warnings = list(converted.warnings)
    run = contained if in_worker else _here
    float_tflite = convert(model, "fp32", in_worker=in_worker)
    x = calibration.x[:MAX_CALIBRATION_SAMPLES]
    calibrated = run("the converter's calibrator", f"{model.path} (mode int8)", calibrate.calibrate,
                           float_tflite, x, advice=CRASH_ADVICE)
    ranges = calibrate.recorded_ranges(calibrated)
    float_graph = read_graph(float_tflite)
    for index, name, beta in narrow:
        if name not in ranges:
            raise ToolFailed(f"{model.path}: SOFTMAX op {index}'s input '{name}' has a range TFLM cannot run, and "
                             "the calibrated float model has no tensor of that name to widen")
        low, high = ranges[name]
        width = 255 * softmax_min_input_scale(beta)
        # The quantizer gives a RESHAPE's output its input's scale: widen back through such ops.
        for tensor in _same_scale_chain(float_graph, name):
            lo, hi = ranges.get(tensor, (low, high))
            if hi - lo < width:
                middle = (lo + hi) / 2
                ranges[tensor] = (middle - width / 2, middle + width / 2)
        warnings.append(f"SOFTMAX op {index}: its input '{name}' spans only {high - low:.2g} on the calibration "
                        f"data (untrained weights or a dead layer?); widened to {width:.2g}, the narrowest range "
                        "TFLM's softmax accepts")
    requantized = run("the converter's quantizer", f"{model.path} (mode int8)", calibrate.quantize_int8,
                            calibrate.rewrite_ranges(calibrated, ranges), advice=CRASH_ADVICE)
    if softmax_scale_too_small(read_graph(requantized)):
        raise ToolFailed(f"{model.path}: widening the SOFTMAX input ranges did not take; TFLM would abort on them")
    return Conversion(requantized, tuple(warnings))


def conversion_fidelity(model: Model, float_tflite: bytes, validation: Dataset) -> dict | None:
    """For an ONNX or .pt2 model: its float .tflite against ONNX Runtime or torch on the validation
    inputs (edgeq.convert.torch_convert.fidelity), with a `warning` below 40 dB; None for the others."""
    if model.format not in TORCH_FORMATS:
        return None
    import edgeq.convert.torch_convert as torch_convert

    x = tuple(a.astype(np.float32, copy=False) for a in validation.x[:MAX_CALIBRATION_SAMPLES].arrays)
    record = contained("ONNX Runtime / torch and LiteRT", f"{model.path} (conversion fidelity)",
                       torch_convert.fidelity, model, float_tflite, x, advice=CRASH_ADVICE)
    sqnr = record["sqnr_db"]
    if sqnr is not None and sqnr < torch_convert.FIDELITY_MIN_DB:
        record["warning"] = (f"the converted float model differs from {record['reference']}: output SQNR "
                             f"{sqnr:.1f} dB, below {torch_convert.FIDELITY_MIN_DB:.0f} dB, on {record['samples']} "
                             "validation samples; " + record["note"])
    return record


_SAME_SCALE_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


def _same_scale_chain(graph, name: str) -> list[str]:
    """`name` and the tensors before it through ops whose output takes their input's scale."""
    producer = {out: op for op in graph.operators for out in op.outputs}
    by_name = {t.name: t.index for t in graph.tensors}
    chain, index = [name], by_name.get(name)
    while index in producer and producer[index].opcode in _SAME_SCALE_OPS:
        index = producer[index].inputs[0]
        chain.append(graph.tensors[index].name)
    return chain


def _convert_exported(model: Model, mode: str, calibration: Dataset | None) -> Conversion:
    """The converter on the model exported with batch 1 (run contained)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edgeq-export-") as tmp:
        warnings = _export_saved_model(model, Path(tmp))
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if mode == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic-int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(model, calibration, by_name=True)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif mode == "int16x8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(model, calibration, by_name=True)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
        try:
            converted = bytes(converter.convert())
        except Exception as exc:
            raise converter_failure(model, mode, exc, "the TensorFlow Lite converter") from exc
        return Conversion(in_signature_order(converted, [s.name for s in model.inputs],
                                             [s.name for s in model.outputs]), warnings)
