"""edgeq.quant: the quantization formulas, TFLite's conventions, int4 packing, observers, metrics.

Hand-worked numbers are written out in the tests; the converter tests at the end hold edgeq's
weight quantization against what the real TFLite converter writes, to the bit.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from edgeq import quant
from edgeq.errors import BadInput
from edgeq.graph import read_graph

# --- rounding -----------------------------------------------------------------------------


def test_ties_round_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert quant.round_half_away_from_zero(x).tolist() == [-3, -2, -1, 1, 2, 3]
    assert np.round(x).tolist() == [-2, -2, -0, 0, 2, 2]  # why edgeq cannot use np.round


def test_rounding_just_below_a_half_goes_down():
    below_half = np.nextafter(0.5, 0.0)  # floor(x + 0.5) would wrongly give 1 here
    assert quant.round_half_away_from_zero(np.array([below_half, -below_half])).tolist() == [0, 0]


def test_rounding_keeps_float32():
    assert quant.round_half_away_from_zero(np.float32([1.5])).dtype == np.float32


# --- asymmetric (affine) ------------------------------------------------------------------


def test_asymmetric_unsigned_params_worked_by_hand():
    # [-1, 3], 8 bits unsigned: s = 4/255 = 0.015686..., z = round(1 / s) = round(63.75) = 64.
    p = quant.asymmetric_params(-1.0, 3.0, bits=8, signed=False)
    assert p.scale == pytest.approx(0.0156863, rel=1e-5)
    assert p.scale == np.float32(4) / np.float32(255)
    assert p.zero_point == 64
    assert (p.qmin, p.qmax) == (0, 255)


def test_asymmetric_signed_params_shift_the_zero_point():
    # Same range on [-128, 127]: z = round(-128 + 63.75) = round(-64.25) = -64.
    p = quant.asymmetric_params(-1.0, 3.0, bits=8, signed=True)
    assert p.scale == np.float32(4) / np.float32(255)
    assert p.zero_point == -64
    assert (p.qmin, p.qmax) == (-128, 127)


def test_asymmetric_quantize_worked_by_hand():
    p = quant.asymmetric_params(-1.0, 3.0, bits=8, signed=False)
    # -1 -> round(-63.75) + 64 = 0;  1 -> round(63.75) + 64 = 128;  3 -> round(191.25) + 64 = 255.
    assert quant.quantize(np.array([-1.0, 0.0, 1.0, 3.0]), p).tolist() == [0, 64, 128, 255]
    # 128 -> (4/255) * (128 - 64) = 1.00392...
    assert quant.dequantize(np.array([128], np.uint8), p)[0] == pytest.approx(256 / 255, rel=1e-6)


def test_asymmetric_quantize_clamps_at_the_ends():
    p = quant.asymmetric_params(-1.0, 3.0, bits=8, signed=False)
    assert quant.quantize(np.array([-10.0, 10.0, -np.inf, np.inf]), p).tolist() == [0, 255, 0, 255]


def test_positive_range_is_widened_to_include_zero():
    # [2, 5] -> [0, 5]: s = 5/255, and 0.0 sits on qmin.
    p = quant.asymmetric_params(2.0, 5.0, bits=8, signed=True)
    assert p.scale == np.float32(5) / np.float32(255)
    assert p.zero_point == -128


def test_negative_range_is_widened_to_include_zero():
    p = quant.asymmetric_params(-5.0, -2.0, bits=8, signed=True)
    assert p.zero_point == 127


def test_degenerate_range_still_has_a_usable_scale():
    p = quant.asymmetric_params(0.0, 0.0)
    assert p.scale > 0
    assert quant.dequantize(quant.quantize(np.zeros(3), p), p).tolist() == [0.0, 0.0, 0.0]


def test_zero_maps_exactly_to_an_integer():
    rng = np.random.default_rng(1)
    for _ in range(200):
        lo, hi = sorted(rng.normal(scale=rng.uniform(0.01, 100), size=2))
        for signed in (False, True):
            p = quant.asymmetric_params(lo, hi, bits=8, signed=signed)
            q0 = quant.quantize(np.zeros(1), p)
            assert q0[0] == p.zero_point
            assert quant.dequantize(q0, p)[0] == 0.0


def test_asymmetric_params_per_channel():
    p = quant.asymmetric_params(np.array([-1.0, 0.0]), np.array([3.0, 2.55]), bits=8, signed=False, axis=1)
    assert p.scale.shape == (2,)
    assert p.zero_point.tolist() == [64, 0]
    x = np.array([[-1.0, 2.55], [3.0, 0.0]])
    assert quant.quantize(x, p).tolist() == [[0, 255], [255, 0]]


# --- symmetric ----------------------------------------------------------------------------


def test_symmetric_params_worked_by_hand():
    # absmax 2.54, 8 bits: s = 2.54 / 127 = 0.02, z = 0, q in [-127, 127] (narrow range).
    p = quant.symmetric_params(2.54)
    assert p.scale == np.float32(2.54) / np.float32(127)
    assert p.zero_point == 0
    assert (p.qmin, p.qmax) == (-127, 127)
    assert quant.quantize(np.array([-2.54, -1.0, 0.0, 1.0, 2.54]), p).tolist() == [-127, -50, 0, 50, 127]


def test_symmetric_quantize_clamps_to_the_narrow_range():
    p = quant.symmetric_params(127.0)  # s = 1
    assert quant.quantize(np.array([-200.0, 200.0]), p).tolist() == [-127, 127]


def test_symmetric_full_range_reaches_the_most_negative_integer():
    p = quant.symmetric_params(127.0, narrow_range=False)
    assert (p.qmin, p.qmax) == (-128, 127)
    assert quant.quantize(np.array([-200.0]), p).tolist() == [-128]


def test_symmetric_quantize_rounds_ties_away_from_zero():
    p = quant.symmetric_params(127.0)  # s = 1, so x / s is exactly the tie
    assert quant.quantize(np.array([-2.5, -0.5, 0.5, 2.5]), p).tolist() == [-3, -1, 1, 3]


def test_symmetric_dequantize_worked_by_hand():
    p = quant.symmetric_params(7.0, bits=4)  # s = 7 / 7 = 1
    assert quant.dequantize(np.array([-7, 3], np.int8), p).tolist() == [-7.0, 3.0]


def test_all_zero_absmax_still_has_a_positive_scale():
    # TFLite widens a range under 1e-6 to [-5e-7, 5e-7]: s = 5e-7 / 127.
    p = quant.symmetric_params(0.0)
    assert p.scale == np.float32(5e-7) / np.float32(127)


# --- floor rounding: the course notes' formulas ---------------------------------------------
# The notes give the formulas with floor but no worked numeric example; these are worked by
# hand from their formulas, z = floor(-beta / s) and x_q = clamp(floor(x / s) + z, 0, 2^n - 1).


def test_floor_zero_point_follows_the_notes():
    # [-1, 3], 8 bits: -beta / s = 63.75 -> floor 63 (round-to-nearest gives 64).
    assert quant.asymmetric_params(-1.0, 3.0, bits=8, signed=False, rounding="floor").zero_point == 63


def test_floor_quantize_follows_the_notes():
    # [-1, 2.75], 4 bits: s = 3.75 / 15 = 0.25, z = floor(4) = 4.
    p = quant.asymmetric_params(-1.0, 2.75, bits=4, signed=False, rounding="floor")
    assert (float(p.scale), int(p.zero_point)) == (0.25, 4)
    x = np.array([0.7, -0.3, 2.75, 5.0])
    # 0.7/0.25 = 2.8 -> 2 + 4 = 6;  -0.3/0.25 = -1.2 -> -2 + 4 = 2;  11 + 4 = 15;  clamp 24 -> 15.
    assert quant.quantize(x, p, rounding="floor").tolist() == [6, 2, 15, 15]
    assert quant.quantize(x, p).tolist() == [7, 3, 15, 15]  # round to nearest, for contrast
    assert quant.dequantize(np.array([6], np.uint8), p).tolist() == [0.5]  # s (x_q - z) = 0.25 * 2


def test_floor_symmetric_quantize_follows_the_notes():
    p = quant.symmetric_params(7.0, bits=4)  # s = 1, q in [-7, 7]
    assert quant.quantize(np.array([-2.5, 2.5, 9.0]), p, rounding="floor").tolist() == [-3, 2, 7]


def test_unknown_rounding_is_refused_by_name():
    with pytest.raises(BadInput, match="rounding must be one of .* not 'ceil'"):
        quant.quantize(np.zeros(1), quant.symmetric_params(1.0), rounding="ceil")


# --- properties over 2..16 bits ------------------------------------------------------------

# Quantizing runs in float32 like TFLite's kernels: a few ulps of x on top of half a step.
FLOAT32_SLACK = 4 * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("bits", range(2, 17))
def test_integer_ranges_for_every_width(bits):
    assert quant.integer_range(bits, signed=False) == (0, 2**bits - 1)
    assert quant.integer_range(bits, signed=True) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert quant.integer_range(bits, signed=True, narrow_range=True) == (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)


def test_storage_types_are_the_smallest_that_hold_the_values():
    assert quant.storage_dtype(4, True) == np.int8 and quant.storage_dtype(8, False) == np.uint8
    assert quant.storage_dtype(12, True) == np.int16 and quant.storage_dtype(16, False) == np.uint16


@pytest.mark.parametrize("bits", range(2, 17))
@pytest.mark.parametrize("signed", [False, True])
def test_asymmetric_round_trip_stays_within_half_a_step(bits, signed):
    rng = np.random.default_rng(bits)
    lo, hi = -rng.uniform(0.1, 10), rng.uniform(0.1, 10)
    p = quant.asymmetric_params(lo, hi, bits=bits, signed=signed)
    assert p.scale == pytest.approx((hi - lo) / (2**bits - 1), rel=1e-6)
    x = rng.uniform(lo, hi, size=2000).astype(np.float32)
    q = quant.quantize(x, p)
    assert q.dtype == quant.storage_dtype(bits, signed)
    assert q.min() >= p.qmin and q.max() <= p.qmax
    error = np.abs(quant.fake_quantize(x, p) - x)
    assert np.all(error <= float(p.scale) / 2 + FLOAT32_SLACK * np.abs(x))


@pytest.mark.parametrize("bits", range(2, 17))
def test_symmetric_round_trip_stays_within_half_a_step(bits):
    rng = np.random.default_rng(100 + bits)
    x = rng.normal(size=2000).astype(np.float32)
    p = quant.symmetric_params(np.abs(x).max(), bits=bits)
    assert p.scale == pytest.approx(np.abs(x).max() / (2 ** (bits - 1) - 1), rel=1e-6)
    q = quant.quantize(x, p)
    assert q.min() >= -(2 ** (bits - 1) - 1) and q.max() <= 2 ** (bits - 1) - 1
    assert np.all(np.abs(quant.fake_quantize(x, p) - x) <= float(p.scale) / 2 + FLOAT32_SLACK * np.abs(x))


@pytest.mark.parametrize("bits", [1, 17, 8.0, True])
def test_unsupported_bit_widths_are_refused(bits):
    with pytest.raises(BadInput, match=r"bits must be an integer from 2 to 16, not"):
        quant.asymmetric_params(-1.0, 1.0, bits=bits)


def test_inverted_range_is_refused_with_its_values():
    with pytest.raises(BadInput, match=r"min \[3.0\] is above max \[1.0\]|min 3.0 is above max 1.0"):
        quant.asymmetric_params(3.0, 1.0)


def test_non_finite_range_is_refused():
    with pytest.raises(BadInput, match="max must be finite, got nan"):
        quant.asymmetric_params(0.0, float("nan"))


def test_quantizing_nan_is_refused():
    with pytest.raises(BadInput, match=r"cannot quantize NaN: tensor of shape \(3,\) holds 1"):
        quant.quantize(np.array([0.0, np.nan, 1.0]), quant.symmetric_params(1.0))


# --- per channel ----------------------------------------------------------------------------


def test_per_channel_absmax_along_axis_0():
    w = np.zeros((3, 2, 2, 1), np.float32)
    w[0, 0, 0, 0], w[1, 1, 1, 0], w[2, 0, 1, 0] = -4.0, 2.0, 0.5
    assert quant.per_channel_absmax(w, 0).tolist() == [4.0, 2.0, 0.5]


@pytest.mark.parametrize("axis", [0, 3])
def test_per_channel_weights_use_each_channels_own_scale(axis):
    rng = np.random.default_rng(axis)
    shape = (4, 3, 3, 5)
    others = tuple(i for i in range(4) if i != axis)
    spread = np.expand_dims(rng.uniform(0.01, 10, size=shape[axis]), others)  # channels far apart
    w = (rng.normal(size=shape) * spread).astype(np.float32)
    q, p = quant.quantize_weights_per_channel(w, axis)
    assert p.scale.shape == (shape[axis],)
    assert p.axis == axis and p.per_channel and p.symmetric
    for c in range(shape[axis]):
        alone = quant.symmetric_params(np.abs(np.take(w, c, axis=axis)).max())
        assert p.scale[c] == alone.scale
        assert np.abs(np.take(q, c, axis=axis)).max() == 127  # each channel's largest weight uses the full range
    half_step = np.expand_dims(p.scale, others) / 2
    assert np.all(np.abs(quant.dequantize(q, p) - w) <= half_step + FLOAT32_SLACK * np.abs(w))


def test_negative_axis_counts_from_the_end():
    w = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
    q_last, p_last = quant.quantize_weights_per_channel(w, -1)
    q_two, p_two = quant.quantize_weights_per_channel(w, 2)
    assert np.array_equal(q_last, q_two) and np.array_equal(p_last.scale, p_two.scale)


def test_channel_count_mismatch_names_the_shapes():
    _, p = quant.quantize_weights_per_channel(np.ones((4, 2), np.float32), 0)
    message = r"tensor of shape \(3, 2\) has 3 channels along axis 0, but the quantization parameters have 4"
    with pytest.raises(BadInput, match=message):
        quant.quantize(np.ones((3, 2)), p)


def test_per_channel_axis_out_of_range_names_the_shape():
    with pytest.raises(BadInput, match=r"axis 4 is out of range for a tensor of shape \(2, 2\)"):
        quant.quantize_weights_per_channel(np.ones((2, 2), np.float32), 4)


# --- int4 packing -----------------------------------------------------------------------------


def test_int4_lower_index_goes_in_the_low_nibble():
    assert quant.pack_int4(np.array([1, -2])).tolist() == [0xE1]
    assert quant.unpack_int4(np.array([0x7F], np.uint8), 2).tolist() == [-1, 7]


def test_int4_odd_count_is_padded():
    assert quant.pack_int4(np.array([3, -8, 5])).tolist() == [0x83, 0x05]
    assert quant.unpack_int4(np.array([0x83, 0x05], np.uint8), 3).tolist() == [3, -8, 5]


def test_int4_round_trip_over_every_value():
    values = np.random.default_rng(4).integers(-8, 8, size=1001).astype(np.int8)
    packed = quant.pack_int4(values)
    assert packed.dtype == np.uint8 and packed.size == 501
    assert np.array_equal(quant.unpack_int4(packed, values.size), values)
    assert np.array_equal(quant.unpack_int4(packed.tobytes(), values.size), values)


def test_int4_value_out_of_range_names_index_and_value():
    with pytest.raises(BadInput, match=r"int4 values must lie in \[-8, 7\]: value 9 at index 2"):
        quant.pack_int4(np.array([0, 1, 9]))


def test_int4_too_few_bytes_is_refused():
    with pytest.raises(BadInput, match="int4 data of 1 bytes cannot hold 3 values"):
        quant.unpack_int4(np.zeros(1, np.uint8), 3)


def test_int4_weights_from_ai_edge_quantizer_unpack_to_their_float_weights(converted):
    """The layout checked against a real int4 model: ai-edge-quantizer's weight-only int4 Dense."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(converted.float_tflite)
    q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
                             num_bits=4, granularity=qtyping.QuantGranularity.CHANNELWISE)
    graph = read_graph(bytes(q.quantize(enable_progress_report=False).quantized_model))
    int4 = [t for t in graph.tensors if t.type == "INT4" and t.shape == (5, 7)]
    assert len(int4) == 1 and len(int4[0].data) == 18  # 35 values: odd, so the last byte is padded
    stored = int4[0].numpy()
    params = quant.params_from_tensor(int4[0])
    w = converted.int4_dense_weights
    # ai-edge-quantizer rounds w / s with np.rint; a swapped nibble order could not match this.
    assert np.array_equal(stored, np.clip(np.rint(w / params.scale[:, None]), -7, 7))
    assert np.all(np.abs(quant.dequantize(stored, params) - w) <= params.scale[:, None] / 2 * 1.0001)


# --- observers ----------------------------------------------------------------------------------


def test_min_max_observer_keeps_the_extremes_of_all_batches():
    obs = quant.MinMaxObserver()
    obs.observe(np.array([0.5, 2.0])).observe(np.array([-1.0, 1.0]))
    assert obs.range() == (-1.0, 2.0)


def test_min_max_observer_per_channel_along_the_last_axis():
    obs = quant.MinMaxObserver(axis=-1)
    obs.observe(np.array([[[1.0, -2.0]], [[3.0, 0.5]]]))
    obs.observe(np.array([[[-1.0, 4.0]]]))
    lo, hi = obs.range()
    assert lo.tolist() == [-1.0, -2.0] and hi.tolist() == [3.0, 4.0]


def test_observer_without_batches_says_so():
    with pytest.raises(BadInput, match=r"MinMaxObserver: no batch was observed \(is the calibration set empty\?\)"):
        quant.MinMaxObserver().range()


def test_observer_refuses_a_batch_with_nan_naming_it():
    obs = quant.PercentileObserver().observe(np.ones(3))
    with pytest.raises(BadInput, match="PercentileObserver: batch 1 holds non-finite values"):
        obs.observe(np.array([1.0, np.nan]))


def test_moving_average_converges_to_a_steady_range():
    obs = quant.MovingAverageMinMaxObserver(momentum=0.8)
    obs.observe(np.array([-10.0, 10.0]))
    for k in range(1, 31):
        obs.observe(np.array([-1.0, 3.0]))
        lo, hi = obs.range()
        # The distance to the steady range shrinks by the momentum every batch.
        assert abs(lo + 1.0) == pytest.approx(9.0 * 0.8**k)
        assert abs(hi - 3.0) == pytest.approx(7.0 * 0.8**k)
    assert obs.range() == pytest.approx((-1.0, 3.0), abs=0.02)


def test_percentile_observer_clips_a_planted_outlier():
    rng = np.random.default_rng(7)
    data = rng.normal(size=20_000).astype(np.float32)
    data[123] = 1000.0
    obs = quant.PercentileObserver(percentile=99.99)
    for batch in np.array_split(data, 10):
        obs.observe(batch)
    lo, hi = obs.range()
    assert hi < 5.0 and lo > -5.0
    assert quant.MinMaxObserver().observe(data).range()[1] == 1000.0


def test_percentile_observer_agrees_with_numpy_across_growing_batches():
    rng = np.random.default_rng(8)
    batches = [rng.normal(scale=s, size=5000).astype(np.float32) for s in (0.01, 0.1, 1.0, 30.0)]
    obs = quant.PercentileObserver(percentile=99.0)
    for b in batches:
        obs.observe(b)  # each batch widens the histogram, which must merge its bins exactly
    everything = np.concatenate(batches)
    bin_width = 2 * 128.0 / 2**14  # the histogram ends at the power of two above max |x|
    assert np.abs(np.array(obs.range()) - np.percentile(everything, [1.0, 99.0])).max() <= 2 * bin_width


def test_percentile_observer_counts_zeros_seen_before_any_other_value():
    obs = quant.PercentileObserver(percentile=95.0)
    obs.observe(np.zeros(9000))  # a ReLU output that was all zero for the first batch
    obs.observe(np.linspace(1.0, 2.0, 1000))
    lo, hi = obs.range()
    bin_width = 2 * 4.0 / 2**14  # R = 4, the power of two above max |x| = 2
    assert lo == pytest.approx(0.0, abs=bin_width)
    assert hi == pytest.approx(1.5, abs=bin_width)  # the 9500th of 10000 values


def test_percentile_observer_survives_a_range_growing_by_sixty_orders_of_magnitude():
    obs = quant.PercentileObserver(percentile=100.0)
    obs.observe(np.full(10, 2.0**-100)).observe(np.array([-(2.0**100), 2.0**100]))
    assert obs.range() == (-(2.0**100), 2.0**100)


def test_mse_observer_beats_min_max_on_data_with_outliers():
    rng = np.random.default_rng(9)
    data = np.concatenate([rng.normal(size=50_000), 10 * rng.normal(size=50)]).astype(np.float32)
    mse_obs, minmax = quant.MseObserver(bits=8), quant.MinMaxObserver()
    for batch in np.array_split(rng.permutation(data), 8):
        mse_obs.observe(batch)
        minmax.observe(batch)

    def error(observer):
        return quant.mse(data, quant.fake_quantize(data, quant.asymmetric_params(*observer.range())))

    assert error(mse_obs) < 0.95 * error(minmax)


def test_mse_observer_keeps_the_full_range_of_uniform_data():
    data = np.linspace(-1, 1, 10_001, dtype=np.float32)
    lo, hi = quant.MseObserver(bits=8).observe(data).range()
    assert lo == pytest.approx(-1.0, abs=0.02) and hi == pytest.approx(1.0, abs=0.02)


def test_mse_observer_symmetric_gives_a_symmetric_range():
    data = np.random.default_rng(10).standard_t(3, size=20_000).astype(np.float32)
    lo, hi = quant.MseObserver(bits=4, symmetric=True).observe(data).range()
    assert lo == -hi and 0 < hi < np.abs(data).max()


# --- metrics ------------------------------------------------------------------------------------


def test_mse_worked_by_hand():
    assert quant.mse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])) == pytest.approx(5 / 3)


def test_sqnr_worked_by_hand():
    # signal 1+1+1+1 = 4, noise 1: 10 log10(4) = 6.0206 dB
    assert quant.sqnr_db(np.ones(4), np.array([1.0, 1.0, 1.0, 0.0])) == pytest.approx(6.0206, abs=1e-4)


def test_sqnr_is_infinite_when_equal():
    assert quant.sqnr_db(np.array([3.0, 4.0]), np.array([3.0, 4.0])) == float("inf")


def test_cosine_similarity_of_parallel_orthogonal_and_opposite():
    a = np.array([1.0, 2.0])
    assert quant.cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert quant.cosine_similarity(a, np.array([-2.0, 1.0])) == pytest.approx(0.0)
    assert quant.cosine_similarity(a, -a) == pytest.approx(-1.0)


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(BadInput, match=r"cannot compare tensors of shapes \(2,\) and \(3,\)"):
        quant.sqnr_db(np.zeros(2), np.zeros(3))


# --- against the TFLite converter -----------------------------------------------------------------


class Converted:
    """A small Keras model, its float and full-int8 .tflite, and its float weights."""

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        inp = keras.Input((8, 8, 3), batch_size=1)
        x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inp)
        x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(5, activation="relu")(x)
        out = keras.layers.Dense(3)(x)
        model = keras.Model(inp, out)
        conv, _, _, _, ties = (layer for layer in model.layers[1:])
        kernel, bias = conv.get_weights()  # [h, w, in, out]
        kernel[..., 0] = 0.0  # an all-zero filter
        kernel[..., 1] *= 1e-7  # a filter narrower than the converter's 1e-6 floor
        conv.set_weights([kernel, bias])
        # Dense kernels are [in, out]. Output 0 has absmax 127 (s = 1), output 1 absmax 63.5
        # (s = 0.5): every other weight is an exact tie between two integers.
        kernel, bias = ties.get_weights()
        kernel[:, 0] = [127.0, 2.5, -2.5, 0.5, -0.5]
        kernel[:, 1] = [63.5, 0.25, -0.75, 1.25, -31.75]
        ties.set_weights([kernel, bias])
        self.model = model
        self.calibration = [rng.normal(size=(1, 8, 8, 3)).astype(np.float32) for _ in range(8)]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in self.calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        small = keras.Sequential([keras.Input((7,), batch_size=1), keras.layers.Dense(5)])
        self.int4_dense_weights = small.layers[0].get_weights()[0].T  # [out, in], as TFLite stores it
        with warnings.catch_warnings():  # the converter's chatter about float inputs and signatures
            warnings.simplefilter("ignore", UserWarning)
            self.tflite = converter.convert()  # float input and output: QUANTIZE, DEQUANTIZE at the ends
            self.float_tflite = tf.lite.TFLiteConverter.from_keras_model(small).convert()
        self.graph = read_graph(self.tflite, "converted.tflite")

    def tflite_layout_weights(self, opcode: str) -> list[np.ndarray]:
        """Each layer's float kernel rearranged to the layout TFLite stores, in graph order."""
        import keras

        kinds = {"CONV_2D": keras.layers.Conv2D, "DEPTHWISE_CONV_2D": keras.layers.DepthwiseConv2D,
                 "FULLY_CONNECTED": keras.layers.Dense}
        kernels = [layer.get_weights()[0] for layer in self.model.layers if type(layer) is kinds[opcode]]
        if opcode == "CONV_2D":  # [h, w, in, out] -> [out, h, w, in]
            return [k.transpose(3, 0, 1, 2) for k in kernels]
        if opcode == "DEPTHWISE_CONV_2D":  # [h, w, in, multiplier] -> [1, h, w, in * multiplier]
            return [k.reshape(1, k.shape[0], k.shape[1], -1) for k in kernels]
        return [k.T for k in kernels]  # [in, out] -> [out, in]

    def weight_tensors(self, opcode: str):
        return [self.graph.tensors[op.inputs[1]] for op in self.graph.operators if op.opcode == opcode]


@pytest.fixture(scope="module")
def converted() -> Converted:
    return Converted()


WEIGHT_AXES = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


@pytest.mark.parametrize("opcode", WEIGHT_AXES)
def test_weight_scales_equal_the_converters(converted, opcode):
    tensors, weights = converted.weight_tensors(opcode), converted.tflite_layout_weights(opcode)
    assert len(tensors) == len(weights) >= 1
    for tensor, w in zip(tensors, weights):
        assert tensor.shape == w.shape and tensor.quantized_dimension == WEIGHT_AXES[opcode]
        _, params = quant.quantize_weights_per_channel(w, tensor.quantized_dimension)
        assert np.array_equal(params.scale, np.float32(tensor.scales))
        assert tensor.zero_points == (0,) * len(tensor.scales)


@pytest.mark.parametrize("opcode", WEIGHT_AXES)
def test_quantized_weights_equal_the_converters_exactly(converted, opcode):
    for tensor, w in zip(converted.weight_tensors(opcode), converted.tflite_layout_weights(opcode)):
        q, _ = quant.quantize_weights_per_channel(w, tensor.quantized_dimension)
        assert tensor.type == "INT8"
        assert np.array_equal(q, tensor.numpy())


def test_converter_rounds_weight_ties_away_from_zero(converted):
    tensor = converted.weight_tensors("FULLY_CONNECTED")[-1]
    assert tensor.scales[:2] == (1.0, 0.5)
    assert tensor.numpy()[0].tolist() == [127, 3, -3, 1, -1]
    assert tensor.numpy()[1].tolist() == [127, 1, -2, 3, -64]


def test_all_zero_filter_gets_the_converters_scale(converted):
    tensor = converted.weight_tensors("CONV_2D")[0]
    expected = quant.symmetric_params(0.0).scale
    assert np.float32(tensor.scales[0]) == expected == np.float32(tensor.scales[1])
    assert not tensor.numpy()[0].any()


def test_input_params_from_calibration_range_equal_the_converters(converted):
    quantize_op = next(op for op in converted.graph.operators if op.opcode == "QUANTIZE")
    tensor = converted.graph.tensors[quantize_op.outputs[0]]
    lo = min(float(x.min()) for x in converted.calibration)
    hi = max(float(x.max()) for x in converted.calibration)
    params = quant.asymmetric_params(lo, hi, bits=8, signed=True)
    assert np.float32(tensor.scales[0]) == params.scale
    assert tensor.zero_points[0] == params.zero_point


def test_quantize_and_dequantize_match_the_tflite_ops(converted):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    graph = converted.graph
    quantize_op = next(op for op in graph.operators if op.opcode == "QUANTIZE")
    dequantize_op = next(op for op in graph.operators if op.opcode == "DEQUANTIZE")
    interpreter = Interpreter(model_content=converted.tflite, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(11)
    for _ in range(20):
        x = (3 * rng.normal(size=(1, 8, 8, 3))).astype(np.float32)  # some beyond the range: clamps too
        interpreter.set_tensor(graph.inputs[0], x)
        interpreter.invoke()
        q_in = interpreter.get_tensor(quantize_op.outputs[0])
        assert np.array_equal(quant.quantize(x, quant.params_from_tensor(graph.tensors[quantize_op.outputs[0]])), q_in)
        q_out = interpreter.get_tensor(dequantize_op.inputs[0])
        out_params = quant.params_from_tensor(graph.tensors[dequantize_op.inputs[0]])
        assert np.array_equal(quant.dequantize(q_out, out_params), interpreter.get_tensor(dequantize_op.outputs[0]))
