"""`edgeq plan`: each decision the planner makes, shown on a small real model built for it.

Every model is a tiny Keras model whose labels come from the float model itself (only samples it
classifies with a clear margin), so the float accuracy is 100% and any drop is quantization's.
Measurements go through the real converter, LiteRT, the TFLM interpreter and edgeq-c.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeq.errors import DoesNotFit
from edgeq.plan import PlanDoesNotFit, PlanRequest, run_plan
from edgeq.profiles import get_profile
from edgeq.units import parse_bytes
from tests import planner_models

# ---- models and data --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("planner")


@pytest.fixture(scope="module")
def cnn(folder) -> dict:
    """A small CNN: int8 needs a quarter of the float arena."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    x = np.random.default_rng(0).random((3000, 8, 8, 1), dtype=np.float32)
    planner_models.balance(model, x)
    return planner_models.write(model, x, folder, "cnn")


@pytest.fixture(scope="module")
def outliers(folder) -> dict:
    """A layer whose activations are ordinary except in one channel, which is 200 on 1% of samples.

    Channel 0 of `spiky` sees only input 0 (weight 200), which is 0 except on 1% of samples. min/max
    calibration stretches the layer's one int8 scale over [.., 200] and the other channels lose their
    resolution; the following tanh saturates anyway, so clipping the spikes costs nothing. The tanh
    also keeps cross-layer equalization out of it (it is not positively homogeneous).
    """
    import keras

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    inp = keras.Input((16,))
    h = keras.layers.Dense(32, name="spiky")(inp)
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Activation("tanh")(h))
    model = keras.Model(inp, out)
    w = rng.normal(0, 0.6, (16, 32)).astype(np.float32)
    w[:, 0], w[0, :] = 0.0, 0.0
    w[0, 0] = 200.0
    model.get_layer("spiky").set_weights([w, np.zeros(32, np.float32)])
    model.layers[-1].set_weights([rng.normal(0, 1, (32, 4)).astype(np.float32), np.zeros(4, np.float32)])
    x = rng.random((4000, 16), dtype=np.float32)
    x[:, 0] = np.where(rng.random(4000) < 0.01, 1.0, 0.0)
    planner_models.balance(model, x)
    return planner_models.write(model, x, folder, "outliers")


@pytest.fixture(scope="module")
def sensitive(folder) -> dict:
    return planner_models.sensitive(folder)


def _plan(data: dict, device: str, cache, **options):
    request = PlanRequest(model=data["model"], profile=get_profile(device), data=data["data"], val=data["val"],
                          jobs=options.pop("jobs", 1), cache_dir=cache, **options)
    return run_plan(request)


def _by_name(result) -> dict:
    return {c.name: c for c in result.candidates}


@pytest.fixture(scope="module")
def cache(folder):
    return folder / "cache"


@pytest.fixture(scope="module")
def cnn_on_mcu(cnn, cache):
    return _plan(cnn, "nucleo-l4r5zi", cache)


# ---- the decisions --------------------------------------------------------------------------------

def test_a_model_that_fits_only_as_int8_is_planned_int8(cnn, cache, cnn_on_mcu):
    generous = _by_name(cnn_on_mcu)
    int8_ram = max(c.ram_bytes for c in generous.values() if c.spec.mode == "int8" and c.ram_bytes)
    assert generous["fp32"].ram_bytes > int8_ram
    # TFLM's CMSIS-NN FULLY_CONNECTED takes no per-channel int16x8 weights: that candidate cannot run at all.
    assert generous["int16x8"].ram_bytes is None and "CMSIS-NN" in generous["int16x8"].rejected_because

    result = _plan(cnn, "nucleo-l4r5zi", cache, ram_budget=int8_ram)

    assert result.chosen.spec.mode == "int8"
    found = _by_name(result)
    assert "left for the model" in found["fp32"].rejected_because
    assert result.cache_misses == 0  # the measurements do not depend on the budget


def test_the_same_model_on_a_phone_is_planned_differently(cnn, cache, cnn_on_mcu):
    result = _plan(cnn, "pixel-8", cache)

    assert result.chosen.runtime == "litert"
    assert result.chosen.name != cnn_on_mcu.chosen.name
    # A microcontroller runtime could not run the phone's choice at all...
    assert result.chosen.spec.mode in ("fp16", "dynamic-int8")
    # ...and on the phone full int8 is no faster by more than the tie margin, so fidelity decided.
    fastest = min(c.latency_ms for c in result.candidates if c.feasible)
    assert result.chosen.latency_ms <= 1.10 * fastest
    assert result.chosen.sqnr_db > _by_name(result)["int8/pc/minmax"].sqnr_db


def test_activation_outliers_are_clipped_by_percentile_or_mse_calibration(outliers, cache):
    result = _plan(outliers, "nucleo-l4r5zi", cache)
    found = _by_name(result)

    minmax = found["int8/pc/minmax"]
    assert minmax.drop_pp > 1.0 and "accuracy" in minmax.rejected_because
    assert result.chosen.spec.mode == "int8"
    assert result.chosen.spec.calibration in ("p99.9", "p99.99", "mse")
    assert result.chosen.drop_pp < minmax.drop_pp and result.chosen.drop_pp <= 1.0


def test_one_sensitive_layer_gets_a_mixed_precision_plan(sensitive, cache):
    result = _plan(sensitive, "nucleo-l4r5zi", cache)

    full_integer = [c for c in result.candidates if c.spec.mode in ("int8", "int4w") and not c.spec.keep_float]
    assert full_integer and all(any("accuracy" in p for p in c.problems) for c in full_integer)
    assert "sensitive" in result.layer_errors[0]["name"]  # the per-layer analysis blames the right layer
    assert result.chosen.spec.keep_float and "sensitive" in result.chosen.spec.keep_float[0]
    assert result.chosen.drop_pp <= 1.0
    # Keeping one layer in float is cheaper than keeping them all.
    assert result.chosen.latency_ms < _by_name(result)["fp32"].latency_ms


def _trained(data: dict, device: str, cache, **options):
    try:
        return _plan(data, device, cache, train=data["train"], **options)
    except PlanDoesNotFit as still:
        return still.result


@pytest.fixture(scope="module")
def sensitive_trained(sensitive, cache):
    return _trained(sensitive, "rpi-pico", cache, qat_budget_s=40.0)  # bench/qat_bench.py trains for the default 120 s


def test_without_training_data_an_int8_only_device_gets_no_plan_and_is_told_of_qat(sensitive, cache):
    # The Pico runs int8 only: no float layers to fall back on, so nothing post-training is feasible.
    with pytest.raises(PlanDoesNotFit) as raised:
        _plan(sensitive, "rpi-pico", cache)
    assert raised.value.result.qat is None
    assert "quantization-aware training (--train train.npz)" in str(raised.value)


def test_quantization_aware_training_recovers_most_of_what_the_same_int8_plan_lost(sensitive_trained):
    qat = sensitive_trained.qat
    trained = _by_name(sensitive_trained)[qat["after"]["name"]]
    assert trained.spec.qat and trained.record and "error" not in trained.record
    # The accuracy is the deployed .tflite's, measured by the planner as any candidate's.
    assert qat["accuracy"] == trained.accuracy
    assert qat["recovered_fraction"] >= 0.7, qat


def test_before_training_the_simulation_reproduces_the_deployed_ptq_accuracy(sensitive_trained):
    assert abs(sensitive_trained.qat["sim_vs_deployed_gap_pp"]) <= 1.0


def test_a_float_fine_tune_of_the_same_budget_recovers_less_than_training_through_the_plan(sensitive_trained):
    qat = sensitive_trained.qat
    assert qat["control"]["epochs"] >= 1 and qat["control"]["recovered_fraction"] < qat["recovered_fraction"] / 2


def test_the_plan_table_says_what_training_recovered(sensitive_trained):
    from edgeq.plan.table import format_plan_table

    line = next(line for line in format_plan_table(sensitive_trained).splitlines()
                if line.startswith("quantization-aware training"))
    assert "of the drop recovered" in line and "a float fine-tune of the same budget" in line


def test_plan_json_records_what_was_trained_how_long_and_why_it_stopped(sensitive_trained):
    qat = sensitive_trained.to_dict()["qat"]
    assert qat["plan"]["weight_bits"] == 8 and qat["plan"]["mode"] == "int8"
    # The budget is checked between epochs: the last one may end past it.
    assert qat["epochs"] >= 1 and 0 < qat["seconds"] <= 60 and qat["stop_reason"]
    assert len(qat["train_sha256"]) == 64 and qat["settings"]["learning_rates"]


@pytest.fixture(scope="module")
def heavy_mlp(folder) -> dict:
    return planner_models.heavy_tailed_mlp(folder)


INT4_ONLY = {"runtime": "edgeq-c", "flash_budget": parse_bytes(planner_models.INT4_ONLY_FLASH)}


def test_without_labels_adaround_recovers_half_of_what_int4_weights_lost(heavy_mlp, cache):
    with pytest.raises(PlanDoesNotFit) as raised:
        _plan(heavy_mlp, "nucleo-l4r5zi", cache, **INT4_ONLY)
    result = raised.value.result
    candidates = _by_name(result)
    rounded = candidates[result.adaround["name"]]
    plain = candidates[rounded.name.replace("+adaround", "")]
    assert rounded.spec.adaround and rounded.flash_bytes == plain.flash_bytes  # the same plan, rounded otherwise
    assert plain.drop_pp >= 10
    assert (plain.drop_pp - rounded.drop_pp) / plain.drop_pp >= 0.5, (plain.drop_pp, rounded.drop_pp)


@pytest.fixture(scope="module")
def int4_trained(heavy_mlp, cache):
    return _trained(heavy_mlp, "nucleo-l4r5zi", cache, **INT4_ONLY)


def test_when_only_int4_weights_fit_training_recovers_most_of_their_drop(int4_trained):
    qat = int4_trained.qat
    assert qat["plan"]["mode"] == "int4w"
    assert qat["float_accuracy"] - qat["ptq_accuracy"] >= 0.10  # post-training int4 loses at least 10 pp
    assert qat["recovered_fraction"] >= 0.8, qat


def test_an_impossible_budget_exits_3_naming_the_closest_candidate(cnn, cache, cnn_on_mcu):
    with pytest.raises(PlanDoesNotFit) as raised:
        _plan(cnn, "nucleo-l4r5zi", cache, ram_budget=16)

    error = raised.value
    assert isinstance(error, DoesNotFit) and error.exit_code == 3
    message = str(error)
    assert "none feasible" in message and "left for the model" in message
    closest = message.split("Closest: ")[1].split(" on ")[0]
    assert closest in _by_name(error.result)
    assert "more RAM for the model (--ram-budget" in message
    assert error.result.chosen is None and error.result.to_dict()["candidates"]


def test_a_second_plan_with_the_same_inputs_comes_from_the_cache(cnn, folder):
    fresh = folder / "fresh-cache"
    # measured in two spawned workers; running on the board is not what this test is about
    first = _plan(cnn, "qemu-mps2-an386", fresh, jobs=2, measure_on_device=False)
    second = _plan(cnn, "qemu-mps2-an386", fresh, jobs=2, measure_on_device=False)

    assert first.cache_hits == 0 and first.cache_misses > 0
    assert second.cache_misses == 0 and second.cache_hits == first.cache_misses
    assert second.chosen.name == first.chosen.name
    assert second.chosen_tflite == first.chosen_tflite


def test_a_real_board_without_a_port_is_planned_on_estimates_and_says_why(cnn_on_mcu):
    device = cnn_on_mcu.to_dict()["device"]

    assert device["status"] == "skipped"
    assert "nucleo-l4r5zi is a real board" in device["reason"] and "--port" in device["reason"]
    assert all(c["latency_ms_measured"] is None and c["latency_source"] in ("estimated", None)
               for c in cnn_on_mcu.to_dict()["candidates"])
    # ...from the core's default coefficients, and the estimate says so.
    estimated = [c for c in cnn_on_mcu.to_dict()["candidates"] if c["latency_ms_estimated"] is not None]
    assert estimated and all("coefficients default, not measured" in c["sources"]["latency_ms_estimated"]["from"]
                             for c in estimated)


def test_plan_json_records_every_candidate_with_its_reason(cnn_on_mcu):
    import json

    record = json.loads(cnn_on_mcu.to_json())
    names = [c["name"] for c in record["candidates"]]
    assert len(names) == len(set(names)) == len(cnn_on_mcu.candidates)
    chosen = [c for c in record["candidates"] if c["chosen"]]
    assert [c["name"] for c in chosen] == [record["chosen"]] and chosen[0]["rejected_because"] is None
    for c in record["candidates"]:
        assert c["chosen"] or c["rejected_because"], c["name"]
        for key in ("accuracy", "flash_bytes", "ram_bytes", "latency_ms_estimated"):
            assert key in c
    fp16 = next(c for c in record["candidates"] if c["name"] == "fp16")
    assert fp16["rejected_because"] == "nucleo-l4r5zi does not run fp16 (its numerics: int8, int16x8, fp32)"


def test_cross_layer_equalization_keeps_the_float_function_and_equalizes_ranges(folder):
    import keras

    from edgeq.convert.converter import convert
    from edgeq.convert.transforms import equalize
    from edgeq.graph import read_graph
    from edgeq.load import Dataset, load_model
    from edgeq.measure.interpreters import run_litert

    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(6, 1, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])
    # Output channels 20x and 0.05x the others: what per-tensor weight quantization handles worst.
    w, b = model.layers[0].get_weights()
    spread = np.array([20.0, 0.05, 1, 1, 3, 1, 0.3, 1], np.float32)
    model.layers[0].set_weights([w * spread, b * spread])
    path = folder / "cle.keras"
    model.save(path)
    original = convert(load_model(path), "fp32")

    eq = equalize(original)

    assert [(p.first, p.second) for p in eq.pairs] == [(0, 1), (1, 3), (3, 5)]  # through max pool and flatten
    x = np.random.default_rng(3).random((16, 8, 8, 3), dtype=np.float32)
    data = Dataset(x=x, y=None, source="random")
    before, after = run_litert(original, data).values[0], run_litert(eq.tflite, data).values[0]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5 * np.abs(before).max())
    assert max(eq.range_ratio_before) > 100 and max(eq.range_ratio_after) < max(eq.range_ratio_before) / 10
    # At the fixed point each channel's range is the same on both sides of a pair.
    graph = read_graph(eq.tflite)
    first = graph.tensors[graph.operators[0].inputs[1]].numpy()  # [out, h, w, in]
    second = graph.tensors[graph.operators[1].inputs[1]].numpy()  # depthwise [1, h, w, channels]
    np.testing.assert_allclose(np.abs(first).reshape(8, -1).max(axis=1),
                               np.abs(second).reshape(-1, 8).max(axis=0), rtol=1e-3)


def test_the_chosen_model_is_written_beside_plan_json(cnn_on_mcu):
    from edgeq.graph import read_graph

    files = cnn_on_mcu.files()
    assert set(files) == {"plan.json", f"cnn_{cnn_on_mcu.chosen.name.replace('/', '-').replace('+', '-')}.tflite"}
    model = files[next(name for name in files if name.endswith(".tflite"))]
    assert model == cnn_on_mcu.chosen_tflite
    assert read_graph(model).input_tensors()[0].type == "INT8"


@pytest.mark.emulator
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_the_trained_int4_model_runs_bit_exact_on_an_emulated_board(int4_trained, heavy_mlp):
    from edgeq.device.loop import run_project
    from edgeq.runtimes import get_runtime

    trained = _by_name(int4_trained)[int4_trained.qat["after"]["name"]]
    profile = get_profile("qemu-mps2-an386")
    files = get_runtime("edgeq-c").project(profile, trained.tflite, "mlp")
    x = np.load(heavy_mlp["val"])["x"][:20]
    measured = run_project(profile, files, x, cycles=False).measure
    assert measured["samples"] == 20 and measured["bit_exact_fraction"] == 1.0
