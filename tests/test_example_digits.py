"""The digits example: train.py writes a small, accurate model and fixed data splits for `make demo`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgeq.resources import REPO_ROOT

TRAIN_SCRIPT = REPO_ROOT / "examples" / "digits" / "train.py"
DIGITS_SAMPLES = 1797
ARTIFACTS = {"digits.keras", "calib.npz", "val.npz", "train.npz"}


def _import_train_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_train", TRAIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


digits = _import_train_script()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real training run, as a user would start it; the tests below read what it wrote."""
    out = tmp_path_factory.mktemp("digits") / "artifacts"
    run = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return out, run


@pytest.fixture(scope="module")
def model(trained: tuple[Path, subprocess.CompletedProcess[str]]):
    keras, _ = digits._import_keras()
    return keras.models.load_model(trained[0] / "digits.keras")


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_training_writes_the_model_and_three_data_files_and_nothing_else(trained):
    out, _ = trained
    assert {p.name for p in out.iterdir()} == ARTIFACTS


def test_training_prints_one_summary_line_naming_params_accuracy_and_output_dir(trained):
    out, run = trained
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    assert "params" in lines[0] and "val accuracy" in lines[0] and str(out) in lines[0]
    assert run.stderr == ""


def test_model_takes_an_8x8x1_float_image_and_returns_10_probabilities(trained, model):
    assert tuple(model.inputs[0].shape) == (None, 8, 8, 1)
    assert model.inputs[0].dtype == "float32"
    x_val = _npz(trained[0] / "val.npz")["x"]
    probabilities = model.predict(x_val[:8], verbose=0)
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_model_has_two_convolutions_pooling_and_a_dense_classifier(model):
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") >= 2
    assert any("Pooling" in kind for kind in kinds)
    assert kinds[-1] == "Dense"


def test_model_weights_fit_in_50_kb_even_at_four_bytes_each(model):
    # int8 weights with int32 biases take less than this bound.
    assert model.count_params() * 4 < 50 * 1024


def test_saved_model_classifies_at_least_95_percent_of_validation_digits(trained, model):
    val = _npz(trained[0] / "val.npz")
    predicted = np.argmax(model.predict(val["x"], batch_size=256, verbose=0), axis=-1)
    assert np.mean(predicted == val["y"]) >= 0.95


def test_saved_images_are_float32_8x8x1_scaled_to_the_unit_range(trained):
    out, _ = trained
    for name in ("calib.npz", "val.npz", "train.npz"):
        x = _npz(out / name)["x"]
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1), name
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5, name


def test_saved_labels_are_integer_class_ids_zero_to_nine(trained):
    out, _ = trained
    for name in ("val.npz", "train.npz"):
        data = _npz(out / name)
        assert np.issubdtype(data["y"].dtype, np.integer), name
        assert len(data["y"]) == len(data["x"]), name
        assert set(np.unique(data["y"])) == set(range(10)), name


def test_calibration_holds_a_few_hundred_samples_without_labels(trained):
    calib = _npz(trained[0] / "calib.npz")
    assert set(calib) == {"x"}
    assert 100 <= len(calib["x"]) <= 500


def test_saved_splits_are_the_splits_load_splits_returns(trained):
    out, _ = trained
    splits = digits.load_splits()
    for name in ("train", "val"):
        saved = _npz(out / f"{name}.npz")
        np.testing.assert_array_equal(saved["x"], splits[name][0])
        np.testing.assert_array_equal(saved["y"], splits[name][1])
    np.testing.assert_array_equal(_npz(out / "calib.npz")["x"], splits["calib"][0])


def test_load_splits_returns_identical_arrays_on_every_call():
    first, second = digits.load_splits(), digits.load_splits()
    assert first.keys() == second.keys() == {"train", "val", "calib"}
    for name in first:
        np.testing.assert_array_equal(first[name][0], second[name][0])
        np.testing.assert_array_equal(first[name][1], second[name][1])


def test_another_seed_draws_another_validation_split():
    assert not np.array_equal(digits.load_splits(0)["val"][1], digits.load_splits(1)["val"][1])


def test_validation_is_a_stratified_fifth_of_the_data_held_out_from_training():
    splits = digits.load_splits()
    y_train, y_val = splits["train"][1], splits["val"][1]
    assert len(y_train) + len(y_val) == DIGITS_SAMPLES
    class_counts = np.bincount(np.concatenate([y_train, y_val]), minlength=10)
    np.testing.assert_allclose(np.bincount(y_val, minlength=10), class_counts * 0.2, atol=1.0)


def test_calibration_samples_come_from_the_training_split():
    splits = digits.load_splits()
    train_rows = {row.tobytes() for row in splits["train"][0]}
    assert all(row.tobytes() in train_rows for row in splits["calib"][0])


def test_rewriting_an_earlier_run_replaces_every_file_and_leaves_no_staging_dir(tmp_path):
    out = tmp_path / "artifacts"
    out.mkdir()
    for name in ARTIFACTS:
        (out / name).write_bytes(b"from an earlier run")
    splits = digits.load_splits()

    digits.write_artifacts(digits.build_model(), splits, out)

    assert {p.name for p in out.iterdir()} == ARTIFACTS
    assert all((out / name).read_bytes() != b"from an earlier run" for name in ARTIFACTS)
    np.testing.assert_array_equal(_npz(out / "val.npz")["y"], splits["val"][1])
