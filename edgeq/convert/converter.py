"""Convert a loaded model to a .tflite flatbuffer in one quantization mode.

The model is first exported as a SavedModel whose signature fixes the batch at 1. Two reasons:
the converter keeps a free batch dimension as SHAPE / STRIDED_SLICE / PACK ops around every
Flatten, which a microcontroller would then execute for nothing; and `from_keras_model` /
`from_concrete_functions` on Keras 3 models leave READ_VARIABLE ops that break calibration.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from edgeq.errors import BadInput, EdgeqError, ToolFailed
from edgeq.load import Dataset, Model

MODES = {
    "fp32": "float32 weights and activations",
    "fp16": "float16 weights, float32 compute",
    "dynamic-int8": "int8 weights, float activations (dynamic range)",
    "int8": "full integer: int8 activations, input and output; per-channel int8 weights",
    "int16x8": "int16 activations, int8 weights",
}
NEEDS_CALIBRATION = {"int8", "int16x8"}
MAX_CALIBRATION_SAMPLES = 1000  # the converter's histogram-free min/max settles long before this


def _export_saved_model(model: Model, directory: Path) -> Path:
    import tensorflow as tf

    signature = [tf.TensorSpec((1, *model.input.shape), model.input.dtype, name="input")]
    if model.keras is not None:
        import keras

        if isinstance(model.keras, keras.Model):
            model.keras.export(str(directory), format="tf_saved_model", input_signature=signature, verbose=False)
            return directory
        keras_model = model.keras  # a tf_keras model saves through tf.saved_model directly

        @tf.function(input_signature=signature)
        def serve(x):
            return keras_model(x, training=False)

        tf.saved_model.save(keras_model, str(directory), signatures=serve)
        return directory
    if model.saved_model is not None:
        source = model.saved_model.signatures["serving_default"]
        input_name = next(iter(source.structured_input_signature[1]))
        module = tf.Module()
        module.source = model.saved_model

        @tf.function(input_signature=signature)
        def serve_fixed(x):
            return next(iter(source(**{input_name: x}).values()))

        module.serve = serve_fixed
        tf.saved_model.save(module, str(directory), signatures=serve_fixed)
        return directory
    raise BadInput(f"{model.path}: nothing to export")


def _representative(calibration: Dataset):
    samples = calibration.x[:MAX_CALIBRATION_SAMPLES]

    def generate():
        for sample in samples:
            yield [np.asarray(sample, dtype=np.float32)[None, ...]]

    return generate


def _quantize_float_tflite(model: Model, mode: str, calibration: Dataset | None) -> bytes:
    """Post-training quantization of a float flatbuffer with the converter's own calibrator.

    It runs the representative data through the float model, records each tensor's range and
    quantizes the same way the converter does after it has built a float model itself.
    """
    if mode == "fp32":
        return model.tflite
    if mode not in NEEDS_CALIBRATION:
        raise BadInput(f"{model.path}: mode {mode} of an already converted .tflite needs its source model; "
                       "give edgeq the .keras, .h5 or SavedModel it was converted from (int8 and int16x8 "
                       "work from the .tflite itself)")
    import tensorflow as tf
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.python.util import modify_model_io_type

    activations, bias, io = (tf.int8, tf.int32, tf.int8) if mode == "int8" else (tf.int16, tf.int64, tf.int16)
    model_content = model.tflite if mode == "int8" else calibrator.add_intermediate_tensors(model.tflite)
    try:
        quantized = calibrator.Calibrator(model_content).calibrate_and_quantize(
            _representative(calibration), tf.float32, tf.float32, False, activations, bias)
    except Exception as exc:
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


def convert(model: Model, mode: str, calibration: Dataset | None = None) -> bytes:
    """Return the .tflite bytes of `model` quantized as `mode` (one of MODES)."""
    if mode not in MODES:
        raise BadInput(f"unknown quantization mode '{mode}' (choose one of: {', '.join(MODES)})")
    if mode in NEEDS_CALIBRATION and calibration is None:
        raise BadInput(f"mode {mode} needs calibration data (--data)")
    if model.tflite is not None:
        return _quantize_float_tflite(model, mode, calibration)

    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edgeq-export-") as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_export_saved_model(model, Path(tmp))))
        if mode == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic-int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif mode == "int16x8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(calibration)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
        try:
            return bytes(converter.convert())
        except Exception as exc:
            raise converter_failure(model, mode, exc, "the TensorFlow Lite converter") from exc
