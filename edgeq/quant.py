"""The quantization maths, in numpy: affine and symmetric maps, TFLite's conventions, observers.

A real value x and its integer q are tied by x = scale * (q - zero_point). Everything here
follows what the TFLite converter writes into a .tflite, bit for bit where it can be checked:

- rounding is to nearest with ties away from zero (C's `std::round`, TFLite's `TfLiteRound`),
  not numpy's ties-to-even; `rounding="floor"` reproduces the course notes' formulas;
- an activation range is widened to include 0 before its scale is taken, so 0.0 maps exactly
  to the zero point (padding and ReLU depend on it);
- scales are float32 computed in float32 arithmetic (the converter's `legacy_float_scale`);
- int8 weights are symmetric, per channel, narrow range [-127, 127].

docs/quantization.md derives the formulas and describes the observers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgeq.errors import BadInput

if TYPE_CHECKING:
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
        axis = _normalize_axis(self.axis, shape)
        if shape[axis] != self.scale.size:
            raise BadInput(
                f"tensor of shape {tuple(shape)} has {shape[axis]} channels along axis {self.axis}, "
                f"but the quantization parameters have {self.scale.size}"
            )
        along = [1] * len(shape)
        along[axis] = -1
        return self.scale.reshape(along), self.zero_point.reshape(along)


def _normalize_axis(axis: int, shape: tuple[int, ...]) -> int:
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
    axis = _normalize_axis(axis, w.shape)
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
    axis = _normalize_axis(axis, w.shape)
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


# --- int4 packing --------------------------------------------------------------------------


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Two signed 4-bit values a byte, the lower index in the low nibble; an odd count pads 0."""
    v = np.asarray(values).ravel()
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise BadInput(f"int4 values must be integers, got dtype {v.dtype}")
    outside = np.flatnonzero((v < -8) | (v > 7))
    if outside.size:
        i = int(outside[0])
        raise BadInput(f"int4 values must lie in [-8, 7]: value {int(v[i])} at index {i}")
    if v.size % 2:
        v = np.append(v, 0)
    nibbles = (v.astype(np.int16) & 0xF).astype(np.uint8)
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_int4(packed: np.ndarray | bytes, count: int) -> np.ndarray:
    """The inverse of pack_int4: `count` int8 values, sign-extended from their nibbles."""
    if isinstance(packed, (bytes, bytearray, memoryview)):
        packed = np.frombuffer(packed, np.uint8)
    p = np.asarray(packed).ravel()
    if p.dtype not in (np.uint8, np.int8):
        raise BadInput(f"packed int4 data must be bytes (uint8 or int8), got dtype {p.dtype}")
    p = p.view(np.uint8)
    if count < 0 or 2 * p.size < count:
        raise BadInput(f"int4 data of {p.size} bytes cannot hold {count} values")
    out = np.empty(2 * p.size, np.int8)
    out[0::2] = (p << 4).view(np.int8) >> 4  # shift the low nibble up so >> sign-extends it
    out[1::2] = p.view(np.int8) >> 4
    return out[:count]


# --- observers ------------------------------------------------------------------------------


class _Observer:
    """Gathers statistics over calibration batches: call observe(batch) repeatedly, then range()."""

    def __init__(self) -> None:
        self.batches = 0

    def _take(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.size == 0:
            raise BadInput(f"{type(self).__name__}: batch {self.batches} is empty (shape {batch.shape})")
        if not np.all(np.isfinite(batch)):
            raise BadInput(f"{type(self).__name__}: batch {self.batches} holds non-finite values")
        return batch

    def _require_data(self) -> None:
        if self.batches == 0:
            raise BadInput(f"{type(self).__name__}: no batch was observed (is the calibration set empty?)")


class MinMaxObserver(_Observer):
    """The extremes of everything seen: what the TFLite calibrator records for each tensor."""

    def __init__(self, axis: int | None = None) -> None:
        super().__init__()
        self.axis = axis
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None

    def _batch_range(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.axis is None:
            return batch.min(), batch.max()
        axis = _normalize_axis(self.axis, batch.shape)
        others = tuple(i for i in range(batch.ndim) if i != axis)
        if self._min is not None and batch.shape[axis] != self._min.size:
            raise BadInput(f"{type(self).__name__}: batch {self.batches} of shape {batch.shape} has "
                           f"{batch.shape[axis]} channels along axis {self.axis}, earlier ones {self._min.size}")
        return batch.min(axis=others), batch.max(axis=others)

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self._min = lo if self._min is None else np.minimum(self._min, lo)
        self._max = hi if self._max is None else np.maximum(self._max, hi)

    def observe(self, batch: np.ndarray) -> MinMaxObserver:
        lo, hi = self._batch_range(self._take(batch))
        self._update(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
        self.batches += 1
        return self

    def range(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        self._require_data()
        if self.axis is None:
            return float(self._min), float(self._max)
        return self._min.copy(), self._max.copy()


class MovingAverageMinMaxObserver(MinMaxObserver):
    """min <- momentum * min + (1 - momentum) * batch_min (Keras' momentum); likewise max.

    Follows a drifting range and lets one batch's outlier fade instead of fixing the range.
    """

    def __init__(self, momentum: float = 0.9, axis: int | None = None) -> None:
        if not 0.0 <= momentum < 1.0:
            raise BadInput(f"momentum must be in [0, 1), not {momentum!r}")
        super().__init__(axis)
        self.momentum = float(momentum)

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        if self._min is None:
            self._min, self._max = lo, hi
            return
        m = self.momentum
        self._min = m * self._min + (1 - m) * lo
        self._max = m * self._max + (1 - m) * hi


def _power_of_two_above(x: float) -> float:
    """The smallest power of two strictly greater than x > 0."""
    return float(np.ldexp(1.0, int(np.frexp(x)[1])))


class _Histogram:
    """Counts over [-R, R] in `bins` equal bins; R is a power of two that doubles as data grows.

    Because R only ever grows by powers of two, each old bin falls inside one new bin and the
    merge is exact. Resolution is 2R/bins <= 4 * absmax / bins, far finer than an 8-bit step.
    """

    def __init__(self, bins: int) -> None:
        if bins < 2 or bins % 2:
            raise BadInput(f"histogram bins must be an even number of at least 2, not {bins}")
        self.bins = bins
        self.counts = np.zeros(bins, np.int64)
        self.radius = 0.0  # R; 0 until a nonzero value arrives
        self.pending_zeros = 0  # zeros seen before any nonzero value fixed R
        self.min = np.inf
        self.max = -np.inf

    def add(self, values: np.ndarray) -> None:
        values = values.astype(np.float64).ravel()
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))
        absmax = float(np.abs(values).max())
        if self.radius == 0.0:
            if absmax == 0.0:
                self.pending_zeros += values.size
                return
            self.radius = _power_of_two_above(absmax)
            values = np.append(values, np.zeros(self.pending_zeros))
            self.pending_zeros = 0
        elif absmax >= self.radius:
            self._widen(int(round(np.log2(_power_of_two_above(absmax) / self.radius))))
        width = 2 * self.radius / self.bins
        index = np.clip(np.floor((values + self.radius) / width), 0, self.bins - 1).astype(np.int64)
        self.counts += np.bincount(index, minlength=self.bins)

    def _widen(self, doublings: int) -> None:
        # Old bin i starts (f - 1) * bins/2 + i old widths above the new lower edge -f*R, so it
        # lands in new bin ((f - 1) * bins/2 + i) // f. Past f = bins every old bin lands in one
        # of the two middle bins, so f is capped there to keep the integers small.
        f = 1 << min(doublings, self.bins.bit_length())
        new_index = ((f - 1) * (self.bins // 2) + np.arange(self.bins)) // f
        self.counts = np.bincount(new_index, weights=self.counts, minlength=self.bins).astype(np.int64)
        self.radius *= 2.0**doublings

    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, count) of every nonempty bin, zeros included."""
        if self.radius == 0.0:
            return np.zeros(1), np.array([self.pending_zeros])
        width = 2 * self.radius / self.bins
        nonempty = np.flatnonzero(self.counts)
        return -self.radius + (nonempty + 0.5) * width, self.counts[nonempty]

    def quantile(self, fraction: float) -> float:
        """The value below which `fraction` of the samples lie, interpolated inside its bin."""
        if self.radius == 0.0:
            return 0.0
        width = 2 * self.radius / self.bins
        cumulative = np.cumsum(self.counts)
        target = fraction * cumulative[-1]
        i = int(np.searchsorted(cumulative, target, side="left"))
        i = min(i, self.bins - 1)
        before = cumulative[i - 1] if i else 0
        inside = (target - before) / self.counts[i] if self.counts[i] else 0.0
        value = -self.radius + (i + inside) * width
        return float(np.clip(value, self.min, self.max))


class PercentileObserver(_Observer):
    """The range between the (100 - p)th and pth percentiles: clips rare outliers.

    Keeps a histogram, not the samples: memory stays fixed however many batches calibration
    feeds, and the percentile is exact to one bin (at most absmax / 4096 with 2**14 bins).
    """

    def __init__(self, percentile: float = 99.99, bins: int = 2**14) -> None:
        if not 50.0 < percentile <= 100.0:
            raise BadInput(f"percentile must be in (50, 100], not {percentile!r}")
        super().__init__()
        self.percentile = float(percentile)
        self.histogram = _Histogram(bins)

    def observe(self, batch: np.ndarray) -> PercentileObserver:
        self.histogram.add(self._take(batch))
        self.batches += 1
        return self

    def range(self) -> tuple[float, float]:
        self._require_data()
        tail = 1.0 - self.percentile / 100.0
        return self.histogram.quantile(tail), self.histogram.quantile(1.0 - tail)


class MseObserver(_Observer):
    """The clipping range whose quantization error (mean squared, over all observed values) is least.

    Searches ranges shrunk from [min, max] by a common factor, then each end on its own, and
    scores each candidate on the histogram's bin centres with the exact quantizer edgeq uses.
    """

    def __init__(self, bits: int = 8, signed: bool = True, symmetric: bool = False, bins: int = 2**14,
                 steps: int = 100) -> None:
        super().__init__()
        integer_range(bits, signed)  # validates bits
        self.bits, self.signed, self.symmetric, self.steps = bits, signed, symmetric, steps
        self.histogram = _Histogram(bins)

    def observe(self, batch: np.ndarray) -> MseObserver:
        self.histogram.add(self._take(batch))
        self.batches += 1
        return self

    def _error(self, lo: float, hi: float, values: np.ndarray, counts: np.ndarray) -> float:
        if self.symmetric:
            params = symmetric_params(max(-lo, hi), self.bits)
        else:
            params = asymmetric_params(lo, hi, self.bits, self.signed)
        # float64 here: the search compares candidates, it need not mimic float32 kernels.
        q = np.clip(round_half_away_from_zero(values / float(params.scale)) + int(params.zero_point),
                    params.qmin, params.qmax)
        approx = float(params.scale) * (q - int(params.zero_point))
        return float(np.dot(counts, (values - approx) ** 2))

    def range(self) -> tuple[float, float]:
        self._require_data()
        h = self.histogram
        lo0, hi0 = min(float(h.min), 0.0), max(float(h.max), 0.0)
        if self.symmetric:
            hi0 = max(-lo0, hi0)
            lo0 = -hi0
        if lo0 == hi0:
            return lo0, hi0
        values, counts = h.centers()
        grid = np.linspace(1.0, 1.0 / self.steps, self.steps)  # 1.0 first: ties keep the full range

        def best(candidates: list[tuple[float, float]]) -> tuple[float, float]:
            errors = [self._error(lo, hi, values, counts) for lo, hi in candidates]
            return candidates[int(np.argmin(errors))]

        lo, hi = best([(t * lo0, t * hi0) for t in grid])
        if not self.symmetric:
            lo, _ = best([(t * lo0, hi) for t in grid]) if lo0 < 0 else (lo, hi)
            _, hi = best([(lo, t * hi0) for t in grid]) if hi0 > 0 else (lo, hi)
        return float(lo), float(hi)


# --- error metrics --------------------------------------------------------------------------


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise BadInput(f"cannot compare tensors of shapes {a.shape} and {b.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference."""
    a, b = _pair(a, b)
    return float(np.mean((a - b) ** 2))


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, 10 log10(sum ref^2 / sum (ref - test)^2); inf when equal."""
    reference, test = _pair(reference, test)
    noise = float(np.sum((reference - test) ** 2))
    if noise == 0.0:
        return float("inf")
    signal = float(np.sum(reference**2))
    return float("-inf") if signal == 0.0 else float(10.0 * np.log10(signal / noise))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """cos of the angle between a and b flattened; 1.0 when both are zero, 0.0 when one is."""
    a, b = _pair(a, b)
    a, b = a.ravel(), b.ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))
