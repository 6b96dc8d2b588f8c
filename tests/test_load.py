"""Loading models and data: every format, and every kind of bad input with a message that names it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import BadInput
from edgeq.load import TensorSpec, check_dataset, load_dataset, load_model, random_dataset

SPEC = TensorSpec((8, 8, 1), "float32")


def test_keras_model_loads_with_its_input_and_output_shapes(small_cnn_path):
    model = load_model(small_cnn_path)
    assert model.format == "keras"
    assert (model.input.shape, model.input.dtype) == ((8, 8, 1), "float32") and model.input.name
    assert model.output.shape == (10,)
    assert len(model.sha256) == 64


def test_keras2_h5_model_loads(tmp_path):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Input((6,)), tf_keras.layers.Dense(3)])
    model.save(tmp_path / "legacy.h5")
    loaded = load_model(tmp_path / "legacy.h5")
    assert loaded.format == "h5" and loaded.input.shape == (6,) and loaded.output.shape == (3,)


def test_saved_model_directory_loads(tmp_path, small_cnn_path):
    import keras

    keras.models.load_model(small_cnn_path).export(tmp_path / "sm", verbose=False)
    model = load_model(tmp_path / "sm")
    assert model.format == "saved_model" and model.input.shape == (8, 8, 1)


def test_float_tflite_loads(tmp_path, small_cnn_path):
    from edgeq.convert.converter import convert

    path = tmp_path / "m.tflite"
    path.write_bytes(convert(load_model(small_cnn_path), "fp32"))
    model = load_model(path)
    assert model.format == "tflite" and model.input.shape == (8, 8, 1) and model.tflite == path.read_bytes()


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(BadInput, match=r"nope\.keras: no such file"):
        load_model(tmp_path / "nope.keras")


def test_unsupported_model_suffix_names_the_formats(tmp_path):
    (tmp_path / "model.mlmodel").write_bytes(b"\0")
    with pytest.raises(BadInput, match=r"model\.mlmodel: unsupported model file '\.mlmodel'.*\.keras, \.h5.*\.onnx"):
        load_model(tmp_path / "model.mlmodel")


def test_corrupt_keras_file_names_the_path_and_reason(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    with pytest.raises(BadInput, match=r"broken\.keras: Keras could not read the model"):
        load_model(tmp_path / "broken.keras")


def test_corrupt_tflite_is_rejected(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(BadInput, match=r"bad\.tflite: not a TensorFlow Lite flatbuffer"):
        load_model(tmp_path / "bad.tflite")


def test_npz_with_labels_loads(small_data):
    data = load_dataset(str(small_data["val"]), SPEC)
    assert data.x.single.shape == (20, 8, 8, 1) and data.has_class_labels


def test_npy_inputs_load_without_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 1), np.float32))
    data = load_dataset(str(tmp_path / "x.npy"), SPEC)
    assert len(data) == 3 and data.y is None


def test_samples_saved_with_a_batch_dimension_are_accepted():
    data = check_dataset(np.zeros((4, 1, 8, 8, 1), np.float32), None, SPEC, "d")
    assert data.x.single.shape == (4, 8, 8, 1)


def test_wrong_sample_shape_names_the_sample_and_both_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 8, 8), np.float32))
    with pytest.raises(BadInput, match=r"d\.npz: sample 0 has shape \(8, 8\) but the model input is \(8, 8, 1\)"):
        load_dataset(str(tmp_path / "d.npz"), SPEC)


def test_nan_is_rejected_with_the_sample_index():
    x = np.zeros((6, 8, 8, 1), np.float32)
    x[4, 2, 2, 0] = np.nan
    with pytest.raises(BadInput, match="data.npz: sample 4 contains NaN or infinity"):
        check_dataset(x, None, SPEC, "data.npz")


def test_npz_without_x_lists_what_it_has(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.zeros((2, 8, 8, 1)))
    with pytest.raises(BadInput, match=r"no array 'x' \(found: inputs\)"):
        load_dataset(str(tmp_path / "d.npz"), SPEC)


def test_label_count_must_match_inputs():
    with pytest.raises(BadInput, match="3 inputs but 2 labels"):
        check_dataset(np.zeros((3, 8, 8, 1), np.float32), np.zeros(2, int), SPEC, "d")


def samples_with_labels():
    for i in range(3):
        yield np.full((8, 8, 1), i, np.float32), i


def samples_of_two_shapes():
    yield np.zeros((8, 8, 1), np.float32)
    yield np.zeros((8, 8, 1), np.float32)
    yield np.zeros((8, 8), np.float32)


def test_module_function_yields_samples_and_labels():
    data = load_dataset("tests.test_load:samples_with_labels", SPEC)
    assert data.x.single.shape == (3, 8, 8, 1) and list(data.y) == [0, 1, 2]


def test_module_function_with_a_misshapen_sample_names_it():
    with pytest.raises(BadInput, match=r"sample 2 has shape \(8, 8\), sample 0 has \(8, 8, 1\)"):
        load_dataset("tests.test_load:samples_of_two_shapes", SPEC)


def test_unknown_module_function_is_a_clear_error():
    with pytest.raises(BadInput, match="cannot import nothing_here from tests.test_load"):
        load_dataset("tests.test_load:nothing_here", SPEC)


def test_random_fallback_is_marked_synthetic():
    data = random_dataset(SPEC, count=7)
    assert data.synthetic and data.x.single.shape == (7, 8, 8, 1) and "random" in data.source
