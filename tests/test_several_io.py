"""Models with several inputs and outputs, as detectors and landmark models are: loaded with every
tensor named in the signature's order, fed from one array per input, converted, deployed to an
emulated board with edgeq-c and TFLM and checked there output by output, and reported by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import BadInput
from edgeq.load import load_dataset, load_model

needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")
needs_tflm = pytest.mark.skipif(not os.environ.get("TFLM_DIR"), reason="needs a TFLM tree in TFLM_DIR")

SAMPLES = 24


def edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory) -> dict[str, Path]:
    """A model with inputs `image` (6, 6, 1) and `sensor` (4,) and outputs `points` (3 values) and
    `label` (3 classes), trained a little, with its data: one array per input, labels for `label`."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    image, sensor = keras.Input((6, 6, 1), name="image"), keras.Input((4,), name="sensor")
    x = L.Flatten()(L.Conv2D(4, 3, activation="relu")(image))
    x = L.Concatenate()([x, L.Dense(4, activation="relu")(sensor)])
    model = keras.Model([image, sensor], [L.Dense(3, name="points")(x), L.Dense(3, activation="softmax", name="label")(x)])
    rng = np.random.default_rng(0)
    images = rng.normal(size=(SAMPLES, 6, 6, 1)).astype(np.float32)
    readings = rng.normal(size=(SAMPLES, 4)).astype(np.float32)
    labels = (readings[:, 0] > 0).astype(np.int64) + (images.mean(axis=(1, 2, 3)) > 0)
    model.compile("adam", ["mse", "sparse_categorical_crossentropy"])
    model.fit([images, readings], [readings[:, :3], labels], epochs=3, verbose=0)
    folder = tmp_path_factory.mktemp("two_by_two")
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", image=images, sensor=readings, y_label=labels)
    np.savez(folder / "positional.npz", x0=images, x1=readings)
    np.savez(folder / "plain_y.npz", image=images, sensor=readings, y=labels)
    return {"model": folder / "model.keras", "data": folder / "data.npz", "positional": folder / "positional.npz",
            "plain_y": folder / "plain_y.npz", "folder": folder}


def test_a_model_loads_with_every_input_and_output_named_in_signature_order(two_by_two):
    model = load_model(two_by_two["model"])
    assert [(t.name, t.shape) for t in model.inputs] == [("image", (6, 6, 1)), ("sensor", (4,))]
    assert [(t.name, t.shape) for t in model.outputs] == [("points", (3,)), ("label", (3,))]


def test_one_array_per_input_is_matched_by_the_inputs_name(two_by_two):
    model = load_model(two_by_two["model"])
    data = load_dataset(str(two_by_two["data"]), model.inputs, model.outputs)
    assert [a.shape for a in data.x.arrays] == [(SAMPLES, 6, 6, 1), (SAMPLES, 4)]
    assert data.label_output == 1 and data.y.shape == (SAMPLES,)


def test_arrays_named_x0_x1_are_the_inputs_in_the_models_order(two_by_two):
    model = load_model(two_by_two["model"])
    by_position = load_dataset(str(two_by_two["positional"]), model.inputs, model.outputs)
    by_name = load_dataset(str(two_by_two["data"]), model.inputs, model.outputs)
    assert all(np.array_equal(a, b) for a, b in zip(by_position.x.arrays, by_name.x.arrays))


def test_a_missing_input_array_is_refused_naming_the_input(two_by_two, tmp_path):
    model = load_model(two_by_two["model"])
    np.savez(tmp_path / "half.npz", image=np.zeros((4, 6, 6, 1), np.float32))
    with pytest.raises(BadInput, match="sensor"):
        load_dataset(str(tmp_path / "half.npz"), model.inputs, model.outputs)


def test_plain_y_with_several_outputs_asks_which_output_it_labels(two_by_two):
    model = load_model(two_by_two["model"])
    with pytest.raises(BadInput, match=r"--label-output.*y_<output name>"):
        load_dataset(str(two_by_two["plain_y"]), model.inputs, model.outputs)
    data = load_dataset(str(two_by_two["plain_y"]), model.inputs, model.outputs, "label")
    assert data.label_output == 1


def test_a_label_output_the_model_lacks_is_refused_naming_its_outputs(two_by_two):
    model = load_model(two_by_two["model"])
    with pytest.raises(BadInput, match=r"--label-output scores: .*its outputs: points, label"):
        load_dataset(str(two_by_two["plain_y"]), model.inputs, model.outputs, "scores")


def test_the_converted_tflite_keeps_the_names_and_order_of_inputs_and_outputs(two_by_two, tmp_path):
    out = tmp_path / "model.tflite"
    assert edgeq("convert", two_by_two["model"], "--quant", "fp32", "--out", out).returncode == 0
    model = load_model(out)
    assert [t.name for t in model.inputs] == ["image", "sensor"]
    assert [t.name for t in model.outputs] == ["points", "label"]


def _deployed(two_by_two, tmp_path, *extra) -> dict:
    out = tmp_path / "out"
    done = edgeq("deploy", two_by_two["model"], "--device", "qemu-mps2-an386", "--quant", "int8",
                 "--data", two_by_two["data"], "--val", two_by_two["data"], "--samples", 6, "--out", out, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "report.json").read_text()) | {"markdown": (out / "report.md").read_text()}


def _every_output_bit_exact(report: dict) -> None:
    measured = report["measure"]
    assert measured["samples"] == 6 and measured["bit_exact_fraction"] == 1.0
    assert [(o["name"], o["bit_exact_fraction"]) for o in measured["outputs"]] == [("points", 1.0), ("label", 1.0)]
    assert measured["label_output"] == "label" and measured["accuracy"] == measured["reference_accuracy"]


@pytest.mark.emulator
@needs_qemu
def test_edgeq_c_on_an_emulated_board_is_bit_exact_on_every_output(two_by_two, tmp_path):
    report = _deployed(two_by_two, tmp_path)
    assert report["quantization"]["runtime"] == "edgeq-c"
    _every_output_bit_exact(report)


@pytest.mark.emulator
@needs_qemu
@needs_tflm
def test_tflm_on_an_emulated_board_is_bit_exact_on_every_output(two_by_two, tmp_path):
    report = _deployed(two_by_two, tmp_path, "--runtime", "tflm")
    assert report["quantization"]["runtime"] == "tflm"
    _every_output_bit_exact(report)


@pytest.mark.emulator
@needs_qemu
def test_the_report_gives_each_outputs_figures_by_name(two_by_two, tmp_path):
    report = _deployed(two_by_two, tmp_path)
    accuracy = report["accuracy"]
    assert [o["name"] for o in accuracy["outputs"]] == ["points", "label"]
    assert accuracy["label_output"] == "label" and accuracy["quantized"] is not None
    assert accuracy["sqnr_db"] == min(o["sqnr_db"] for o in accuracy["outputs"])
    assert accuracy["outputs"][0]["agreement"] is None  # three values are no classes
    assert [t["name"] for t in report["model"]["inputs"]] == ["image", "sensor"]
    for name in ("`points`", "`label`"):
        assert report["markdown"].count(name) >= 2  # a row on the host, a row on the device
