"""Stage 5, conversion: the TensorFlow Lite converter with representative data (`converter`),
edgeq's own calibration observers written into the converter's ranges (`calibrate`), the
weight transforms CLE and bias correction (`transforms`), and quantization-aware training (`qat`)."""

from edgeq.convert.converter import MAX_CALIBRATION_SAMPLES, Conversion, convert, convert_model

__all__ = ["MAX_CALIBRATION_SAMPLES", "Conversion", "convert", "convert_model"]
