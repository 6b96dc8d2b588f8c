"""The quantization maps, in numpy: affine and symmetric scales and zero points, TFLite's conventions.

A real value x and its integer q are tied by x = scale * (q - zero_point). Everything here
follows what the TFLite converter writes into a .tflite, bit for bit where it can be checked:

- rounding is to nearest with ties away from zero (C's `std::round`, TFLite's `TfLiteRound`),
  not numpy's ties-to-even; `rounding="floor"` reproduces the course notes' formulas;
- an activation range is widened to include 0 before its scale is taken, so 0.0 maps exactly
  to the zero point (padding and ReLU depend on it);
- scales are float32 computed in float32 arithmetic (the converter's `legacy_float_scale`);
- int8 weights are symmetric, per channel, narrow range [-127, 127].

docs/quantization.md derives the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import BadInput
from edgeq.graph import Tensor

ROUNDING_MODES = ("nearest", "floor")

# The converter widens a range narrower than this so tiny weights don't give huge integers.
_NEAR_ZERO_RANGE = 1.0e-6


def round_half_away_from_zero(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties away from zero, as TFLite does (np.round ties to even)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    whole = np.trunc(x)
    # x - trunc(x) is exact in floating point, so the tie test is exact too; the usual
    # floor(|x| + 0.5) rounds 0.49999999999999994 up because the addition itself rounds.
    with np.errstate(invalid="ignore"):  # inf - inf: the fraction test is False, inf stays
        return whole + np.where(np.abs(x - whole) >= 0.5, np.sign(x), 0).astype(x.dtype)


def _round(x: np.ndarray, rounding: str) -> np.ndarray:
    if rounding == "nearest":
        return round_half_away_from_zero(x)
    if rounding == "floor":
        return np.floor(x)
    raise BadInput(f"rounding must be one of {ROUNDING_MODES}, not {rounding!r}")


def integer_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """(qmin, qmax) of an n-bit integer; narrow range drops the most negative value."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise BadInput(f"quantization bits must be an integer from 2 to 16, not {bits!r}")
    bits = int(bits)
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    return (qmin + 1 if narrow_range else qmin), qmax


def storage_dtype(bits: int, signed: bool) -> np.dtype:
    """The numpy type that holds one quantized value (int4 is held unpacked, in int8)."""
    if bits <= 8:
        return np.dtype(np.int8 if signed else np.uint8)
    return np.dtype(np.int16 if signed else np.uint16)


@dataclass(frozen=True, eq=False)
class QuantParams:
    """scale and zero_point are arrays: shape () per tensor, (channels,) per channel along `axis`."""

    scale: np.ndarray  # float32
    zero_point: np.ndarray  # int64
    bits: int
    signed: bool
    symmetric: bool
    axis: int | None
    qmin: int
    qmax: int

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def dtype(self) -> np.dtype:
        return storage_dtype(self.bits, self.signed)

    def broadcast_to(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """scale and zero_point shaped to broadcast against a tensor of `shape`."""
        if self.axis is None:
            return self.scale, self.zero_point
        axis = normalize_axis(self.axis, shape)
        if shape[axis] != self.scale.size:
            raise BadInput(
                f"tensor of shape {tuple(shape)} has {shape[axis]} channels along axis {self.axis}, "
                f"but the quantization parameters have {self.scale.size}"
            )
        along = [1] * len(shape)
        along[axis] = -1
        return self.scale.reshape(along), self.zero_point.reshape(along)


def normalize_axis(axis: int, shape: tuple[int, ...]) -> int:
    if not -len(shape) <= axis < len(shape):
        raise BadInput(f"axis {axis} is out of range for a tensor of shape {tuple(shape)}")
    return axis % len(shape)


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(values)):
        raise BadInput(f"{name} must be finite, got {values.tolist()}")
    return values


def _check_channels(values: np.ndarray, axis: int | None, what: str) -> None:
    if axis is None and values.ndim != 0:
        raise BadInput(f"{what} has shape {values.shape}: a per-channel range needs `axis`")
    if axis is not None and values.ndim != 1:
        raise BadInput(f"{what} has shape {values.shape}: per-channel values must be one-dimensional")


def asymmetric_params(
    min: float | np.ndarray,
    max: float | np.ndarray,
    bits: int = 8,
    signed: bool = True,
    *,
    axis: int | None = None,
    rounding: str = "nearest",
) -> QuantParams:
    """Affine map of [min, max]: scale = (max - min) / (qmax - qmin), zero_point = qmin - min / scale.

    Unsigned that is the textbook z = round(-min / s) on [0, 2^n - 1]; signed (TFLite's int8
    activations) the same map shifted by -2^(n-1). The range is first widened to include 0.
    """
    lo = _finite("min", min)
    hi = _finite("max", max)
    if lo.shape != hi.shape:
        raise BadInput(f"min has shape {lo.shape} but max has shape {hi.shape}")
    _check_channels(lo, axis, "min")
    if np.any(lo > hi):
        raise BadInput(f"min {lo.tolist()} is above max {hi.tolist()}")
    qmin, qmax = integer_range(bits, signed)
    rmin, rmax = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    # float32 arithmetic on float32 bounds, as the converter's DownCastScale does.
    scale = (rmax.astype(np.float32) - rmin.astype(np.float32)) / np.float32(qmax - qmin)
    # An all-zero range (max == min == 0 after widening) has no natural scale; any positive one
    # represents 0.0 exactly. 1.0 with zero_point = qmin is what the MLIR quantizer picks.
    degenerate = (rmax - rmin < np.finfo(np.float64).eps) | (scale == 0)
    scale = np.where(degenerate, np.float32(1.0), scale).astype(np.float32)
    zero_point_from_min = (qmin - rmin / scale.astype(np.float64)).astype(np.float32)
    zero_point = np.clip(_round(zero_point_from_min, rounding), qmin, qmax).astype(np.int64)
    zero_point = np.where(degenerate, qmin, zero_point).astype(np.int64)
    return QuantParams(scale, zero_point, int(bits), bool(signed), False, axis, qmin, qmax)


def symmetric_params(
    absmax: float | np.ndarray, bits: int = 8, narrow_range: bool = True, *, axis: int | None = None
) -> QuantParams:
    """Symmetric map of [-absmax, absmax]: scale = absmax / (2^(n-1) - 1), zero_point = 0.

    Narrow range ([-127, 127] for 8 bits) is what TFLite requires of int8 weights: the integer
    range is then symmetric too, so negating a weight never overflows.
    """
    a = _finite("absmax", absmax)
    _check_channels(a, axis, "absmax")
    if np.any(a < 0):
        raise BadInput(f"absmax must not be negative, got {a.tolist()}")
    qmin, qmax = integer_range(bits, True, narrow_range)
    # The converter widens a range under 1e-6 to [-5e-7, 5e-7]: an all-zero channel still gets
    # a positive scale, and a channel of tiny weights doesn't quantize to enormous integers.
    a = np.where(2 * a > _NEAR_ZERO_RANGE, a, _NEAR_ZERO_RANGE / 2)
    # (a - -a) / (2 * qmax) in float32 is the correctly rounded a / qmax: the same float.
    scale = (a.astype(np.float32) / np.float32(qmax)).astype(np.float32)
    zero_point = np.zeros(scale.shape, np.int64)
    return QuantParams(scale, zero_point, int(bits), True, True, axis, qmin, qmax)


def quantize(x: np.ndarray, params: QuantParams, rounding: str = "nearest") -> np.ndarray:
    """q = clamp(round(x / scale) + zero_point, qmin, qmax), in float32 like TFLite's QUANTIZE op."""
    x = np.asarray(x, np.float32)
    if np.any(np.isnan(x)):
        raise BadInput(f"cannot quantize NaN: tensor of shape {x.shape} holds {int(np.isnan(x).sum())}")
    scale, zero_point = params.broadcast_to(x.shape)
    with np.errstate(over="ignore"):  # an overflow to inf clamps like any value out of range
        q = _round(x / scale, rounding) + zero_point
    return np.clip(q, params.qmin, params.qmax).astype(params.dtype)


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """x = scale * (q - zero_point), as float32."""
    q = np.asarray(q)
    scale, zero_point = params.broadcast_to(q.shape)
    return (scale.astype(np.float64) * (q.astype(np.int64) - zero_point)).astype(np.float32)


def fake_quantize(x: np.ndarray, params: QuantParams, rounding: str = "nearest") -> np.ndarray:
    """x through the integer grid and back: the value a quantized model computes with."""
    return dequantize(quantize(x, params, rounding), params)


def per_channel_absmax(w: np.ndarray, axis: int) -> np.ndarray:
    """max |w| over every axis but `axis`: one value per channel."""
    w = np.asarray(w)
    axis = normalize_axis(axis, w.shape)
    if w.size == 0:
        raise BadInput(f"cannot take per-channel ranges of an empty tensor of shape {w.shape}")
    others = tuple(i for i in range(w.ndim) if i != axis)
    return np.abs(w).max(axis=others)


def quantize_weights_per_channel(w: np.ndarray, axis: int, bits: int = 8) -> tuple[np.ndarray, QuantParams]:
    """Symmetric narrow-range per-channel weights, as the TFLite converter writes them.

    For 8 bits this reproduces the converter exactly: float32 scale absmax / 127, then
    round(w * float32(1 / scale)) in float32 arithmetic (the converter multiplies by the
    inverse scale, where the QUANTIZE op divides; the two can differ on a last-bit tie).
    """
    w = np.asarray(w, np.float32)
    if not np.all(np.isfinite(w)):
        raise BadInput(f"weights of shape {w.shape} hold {int((~np.isfinite(w)).sum())} non-finite values")
    axis = normalize_axis(axis, w.shape)
    params = symmetric_params(per_channel_absmax(w, axis), bits, narrow_range=True, axis=axis)
    scale, _ = params.broadcast_to(w.shape)
    inverse = (1.0 / scale.astype(np.float64)).astype(np.float32)
    q = np.clip(round_half_away_from_zero(w * inverse), params.qmin, params.qmax)
    return q.astype(params.dtype), params


def params_from_tensor(tensor: Tensor) -> QuantParams:
    """The QuantParams of a quantized `edgeq.graph.Tensor` (full integer range of its type)."""
    bits, signed = {"INT4": (4, True), "INT8": (8, True), "UINT8": (8, False),
                    "INT16": (16, True), "UINT16": (16, False)}.get(tensor.type, (None, None))
    if bits is None or not tensor.scales:
        raise BadInput(f"tensor {tensor.index} '{tensor.name}' ({tensor.type}) is not quantized")
    qmin, qmax = integer_range(bits, signed)
    per_channel = len(tensor.scales) > 1
    scale = np.asarray(tensor.scales, np.float32)
    zero_point = np.asarray(tensor.zero_points or [0] * len(tensor.scales), np.int64)
    if not per_channel:
        scale, zero_point = scale.reshape(()), zero_point.reshape(())
    return QuantParams(scale, zero_point, bits, signed, bool(np.all(zero_point == 0)),
                       tensor.quantized_dimension if per_channel else None, qmin, qmax)
