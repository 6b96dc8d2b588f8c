"""The planner's parts one at a time: cost model, calibration ranges, bias correction, selection."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import BadInput


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """Conv (stride 2, SAME) -> depthwise -> dense, converted to float .tflite."""
    import keras

    from edgeq.convert.converter import convert
    from edgeq.load import load_model

    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((9, 9, 2)),
        keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="valid", depth_multiplier=2),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    path = tmp_path_factory.mktemp("units") / "conv.keras"
    model.save(path)
    return convert(load_model(path), "fp32")


# ---- cost model -------------------------------------------------------------------------------------

def test_macs_are_counted_from_the_graph(conv_model):
    from edgeq.graph import read_graph
    from edgeq.measure.costmodel import count_work

    work = {w.opcode: w for w in count_work(read_graph(conv_model))}
    assert work["CONV_2D"].macs == 5 * 5 * 6 * (3 * 3 * 2)  # out 5x5x6, each a 3x3x2 window
    assert work["DEPTHWISE_CONV_2D"].macs == 3 * 3 * 12 * (3 * 3)  # out 3x3x12, a 3x3 window each
    assert work["FULLY_CONNECTED"].macs == 3 * 108
    assert {w.dtype for w in work.values()} == {"fp32"}


def test_fitting_recovers_the_coefficients_that_made_the_counts():
    from edgeq.measure.costmodel import DEFAULTS, Coefficients, OpWork, Sample, estimate_cycles, fit_coefficients
    from edgeq.runtimes import EDGEQ_C

    truth = Coefficients({"int8": 1.7, "fp32": 5.5}, {"int8": 2.0, "fp32": 3.0}, 800.0, 3000.0)
    rng = np.random.default_rng(5)
    samples = []
    for i in range(12):
        work = (OpWork(0, "CONV_2D", "int8", macs=int(rng.integers(1e4, 1e6))),
                OpWork(1, "FULLY_CONNECTED", "fp32", macs=int(rng.integers(1e3, 1e5))),
                OpWork(2, "ADD", "int8", elements=int(rng.integers(1e2, 1e4))),
                OpWork(3, "SOFTMAX", "fp32", elements=int(rng.integers(10, 1e3))),
                *[OpWork(4 + k, "MAX_POOL_2D", "int8", elements=10) for k in range(int(rng.integers(0, 5)))])
        samples.append(Sample(work, estimate_cycles(list(work), truth, EDGEQ_C.costs), EDGEQ_C.costs, f"model {i}"))

    fit = fit_coefficients(samples, prior=DEFAULTS["cortex-m4"], strength=1e-9)

    assert fit.coefficients.per_mac["int8"] == pytest.approx(1.7, rel=1e-3)
    assert fit.coefficients.mac_cost("FULLY_CONNECTED", "fp32") == pytest.approx(5.5, rel=1e-3)
    assert fit.coefficients.per_op == pytest.approx(800.0, rel=1e-2)
    assert max(abs(r) for r in fit.residuals) < 1e-3
    # a dtype no sample used stays at its default
    assert fit.coefficients.per_mac["int16x8"] == pytest.approx(DEFAULTS["cortex-m4"].per_mac["int16x8"], rel=1e-3)


def test_latency_scales_with_the_clock():
    from edgeq.measure.costmodel import OpWork, estimate_ms
    from edgeq.profiles import get_profile
    from edgeq.runtimes import TFLM

    work = [OpWork(0, "CONV_2D", "int8", macs=1_000_000)]
    fast, slow = get_profile("nucleo-l4r5zi"), get_profile("sparkfun-edge")  # both Cortex-M4: 120 and 48 MHz
    assert estimate_ms(work, slow, TFLM.costs) == pytest.approx(estimate_ms(work, fast, TFLM.costs) * 120 / 48)


# ---- calibration and transforms ------------------------------------------------------------------

def test_a_rewritten_range_becomes_the_int8_scale(conv_model):
    from edgeq.convert import calibrate
    from edgeq.graph import read_graph

    x = np.random.default_rng(6).random((40, 9, 9, 2), dtype=np.float32)
    calibrated = calibrate.calibrate(conv_model, x)
    conv_out = read_graph(conv_model).tensors[read_graph(conv_model).operators[0].outputs[0]].name
    lo, hi = calibrate.recorded_ranges(calibrated)[conv_out]
    assert lo == 0.0 and hi > 0  # ReLU output

    quantized = calibrate.quantize_int8(calibrate.rewrite_ranges(calibrated, {conv_out: (0.0, hi / 4)}))

    tensor = next(t for t in read_graph(quantized).tensors if t.name == conv_out)
    assert tensor.type == "INT8"
    assert tensor.scales[0] == pytest.approx(hi / 4 / 255, rel=1e-6)
    assert tensor.zero_points[0] == -128


def test_the_linear_response_is_the_interpreters_convolution(conv_model):
    """linear_response (used for the bias-correction shift) against LiteRT's CONV_2D on one input."""
    from edgeq.convert.transforms import float_constant, linear_response, replace_constants
    from edgeq.graph import read_graph

    graph = read_graph(conv_model)
    conv = graph.operators[0]
    w = float_constant(graph, conv.inputs[1])
    x = np.random.default_rng(7).normal(size=(1, 9, 9, 2)).astype(np.float32)
    # LiteRT with a zero bias and the ReLU cut off by a huge positive bias shift instead:
    # y = relu(conv(x) + 1000) - 1000 = conv(x) for every value above -1000.
    no_relu = replace_constants(conv_model, {conv.inputs[2]: np.full(6, 1000.0, np.float32)})
    from edgeq.convert.calibrate import trace

    out_name = graph.tensors[conv.outputs[0]].name
    y = next(trace(no_relu, x))[out_name][0] - 1000.0
    np.testing.assert_allclose(linear_response(graph, conv, x[0], w), y.reshape(-1, 6).mean(axis=0), rtol=1e-4,
                               atol=1e-4)


def test_bias_correction_removes_the_mean_shift_of_weight_quantization(conv_model):
    from edgeq.convert import calibrate
    from edgeq.convert.transforms import correct_bias, dequantized_weights, float_constant, linear_response
    from edgeq.graph import read_graph

    x = np.random.default_rng(8).random((64, 9, 9, 2), dtype=np.float32) + 0.5  # a mean far from zero
    quantized = calibrate.quantize_int8(calibrate.calibrate(conv_model, x), per_channel=False)
    stats = calibrate.activation_stats(conv_model, x, with_means=True)

    corrected = correct_bias(conv_model, dequantized_weights(quantized), stats.means)

    graph, after = read_graph(conv_model), read_graph(corrected.tflite)
    dense = graph.operators[-1]
    name = graph.tensors[dense.outputs[0]].name
    w, w_q = float_constant(graph, dense.inputs[1]), dequantized_weights(quantized)[-1]
    shift = linear_response(graph, dense, stats.means[dense.inputs[0]], w_q - w)
    assert np.abs(shift).max() > 1e-4 and corrected.shifts[name] == pytest.approx(np.abs(shift).max(), rel=1e-5)
    # Keras' zero bias was dropped by the converter; the correction brings one back.
    assert dense.inputs[2:] in ((), (-1,))
    np.testing.assert_allclose(float_constant(after, after.operators[-1].inputs[2]), -shift, rtol=1e-5, atol=1e-7)
    conv = graph.operators[0]
    assert after.operators[0].inputs[2] == conv.inputs[2]  # an existing bias is corrected in place
    assert not np.allclose(float_constant(after, conv.inputs[2]), float_constant(graph, conv.inputs[2]))


def test_tflms_recorded_arena_already_holds_the_int4_unpack_buffer(tmp_path):
    """One FULLY_CONNECTED with 64 x 512 weights and small activations: in int8 the arena holds little
    more than the activations; with int4 weights TFLM adds a buffer of one byte per weight, and the
    recording allocator counts it, so the planner must not add it a second time."""
    import keras

    from edgeq.convert import calibrate
    from edgeq.convert.converter import convert
    from edgeq.graph import read_graph
    from edgeq.load import load_model
    from edgeq.measure.interpreters import tflm_arena
    from edgeq.plan.evaluate import _int4_unpack_bytes

    keras.utils.set_random_seed(9)
    keras.Sequential([keras.Input((512,)), keras.layers.Dense(64)]).save(tmp_path / "fc.keras")
    model = convert(load_model(tmp_path / "fc.keras"), "fp32")
    x = np.random.default_rng(9).random((30, 512), dtype=np.float32)
    int8 = calibrate.quantize_int8(calibrate.calibrate(model, x))
    int4 = calibrate.quantize_int4_weights(model, x)
    unpack = _int4_unpack_bytes(read_graph(int4))

    assert unpack == 64 * 512
    assert tflm_arena(int8).head_bytes < 1024
    assert tflm_arena(int4).head_bytes >= unpack + 512 + 64


# ---- selection --------------------------------------------------------------------------------------

def _candidate(name: str, latency: float, sqnr: float, flash: int = 1000, drop: float | None = None):
    from edgeq.plan import Candidate
    from edgeq.plan.evaluate import Spec

    spec = Spec("fp16") if name == "fp16" else Spec("int8", calibration=name)
    return Candidate(spec, record={"sqnr_db": sqnr, "accuracy": None}, runtime="litert", flash_bytes=flash,
                     ram_bytes=2 * flash, latency_ms=latency, drop_pp=drop)


def test_latency_within_the_tie_margin_goes_to_the_candidate_closer_to_float():
    from edgeq.plan.search import select

    fast, close = _candidate("minmax", 1.00, 35.0), _candidate("fp16", 1.08, 80.0)
    assert select([fast, close], "latency") is close
    assert "closer to the float model" in fast.rejected_because


def test_latency_beyond_the_tie_margin_wins_over_fidelity():
    from edgeq.plan.search import select

    fast, close = _candidate("minmax", 1.00, 35.0), _candidate("fp16", 1.20, 80.0)
    assert select([fast, close], "latency") is fast
    assert close.rejected_because == "feasible; int8/pc/minmax is faster (1 ms vs 1.2 ms)"


def test_a_latency_measured_on_the_board_ranks_over_the_estimate():
    from edgeq.plan.search import select

    fast_on_paper, fast_on_board = _candidate("minmax", 1.00, 35.0), _candidate("fp16", 1.05, 35.0)
    fast_on_paper.latency_ms_ranked, fast_on_board.latency_ms_ranked = 2.0, 1.0
    assert select([fast_on_paper, fast_on_board], "latency") is fast_on_board
    assert fast_on_paper.rejected_because == "feasible; fp16 is faster (1 ms vs 2 ms, measured)"


def test_a_gain_in_accuracy_over_float_counts_as_no_loss():
    from edgeq.plan.search import select

    lucky, faithful = _candidate("minmax", 1.0, 30.0, drop=-0.5), _candidate("mse", 1.0, 40.0, drop=0.0)
    assert select([lucky, faithful], "accuracy") is faithful


def test_the_size_objective_takes_the_smallest():
    from edgeq.plan.search import select

    big, small = _candidate("minmax", 1.0, 40.0, flash=2000), _candidate("mse", 2.0, 30.0, flash=1000)
    assert select([big, small], "size") is small


def test_sizes_are_read_in_binary_units():
    from edgeq.units import parse_bytes

    assert parse_bytes("256K") == 262144 and parse_bytes("1.5M") == 1572864 and parse_bytes("4096") == 4096
    assert parse_bytes("64 KB") == 65536
    with pytest.raises(BadInput, match="cannot read 'lots' as a size"):
        parse_bytes("lots")
