"""Observers: what a calibration pass sees of a tensor, turned into a range.

Min/max, a moving average of it, a percentile of a histogram (clipping outliers) and the range
that minimises the quantization error (MSE); docs/quantization.md describes each.
"""

from __future__ import annotations

import numpy as np

from edgeq.errors import BadInput
from edgeq.quant.maps import (
    asymmetric_params,
    integer_range,
    normalize_axis,
    round_half_away_from_zero,
    symmetric_params,
)


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
        axis = normalize_axis(self.axis, batch.shape)
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
