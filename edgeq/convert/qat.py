"""Quantization-aware training: the planner's last resort when no post-training plan is feasible.

tensorflow-model-optimization (tfmot) inserts fake-quantization into a tf_keras model, the model is
fine-tuned on the labelled training data for a few epochs, and the converter turns it into a
full-integer int8 model whose ranges come from the learned fake-quant nodes.

tfmot only knows tf_keras (Keras 2). A Keras 3 model is therefore rebuilt in tf_keras: each layer
from its config (minus what Keras 2 does not know: initializers, which the copied weights make
moot, and Keras 3 only keys), wired as the original graph is wired, then its weights copied.
Importing tfmot also sets TF_USE_LEGACY_KERAS=1 for the process, so all of this runs in a spawned
child process and leaves the planner's own Keras untouched.
"""

from __future__ import annotations

import dataclasses
import inspect
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.convert.converter import convert
from edgeq.errors import BadInput
from edgeq.load import Dataset, check_dataset, load_model, read_arrays

EPOCHS = 10
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
SEED = 0
SETTINGS = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "seed": SEED}
_BASE_LAYER_KEYS = {"name", "trainable", "dtype"}


@dataclass(frozen=True)
class QatOutcome:
    tflite: bytes
    train_sha256: str
    settings: dict
    keras_note: str
    train_accuracy: dict = field(default_factory=dict)  # before / after fine-tuning, on the training data


# ---- Keras 3 -> tf_keras ---------------------------------------------------------------------------

def _layer_config(layer, cls) -> dict:
    config = dict(layer.get_config())
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        config["dtype"] = dtype.get("config", {}).get("name", "float32")
    accepted = set(inspect.signature(cls.__init__).parameters) | _BASE_LAYER_KEYS
    return {k: v for k, v in config.items()
            if k in accepted and not k.endswith(("_initializer", "_regularizer", "_constraint"))}


def _translate_layer(layer):
    import tf_keras

    cls = getattr(tf_keras.layers, type(layer).__name__, None)
    if cls is None:
        raise BadInput(f"layer '{layer.name}' ({type(layer).__name__}) has no tf_keras equivalent, so "
                       "quantization-aware training (tfmot, tf_keras only) cannot take this model")
    return cls(**_layer_config(layer, cls))


def to_tf_keras(model):
    """A tf_keras copy of a Keras 3 Sequential or functional model, weights included."""
    import keras
    import tf_keras

    if isinstance(model, tf_keras.Model):
        return model
    inputs = [tf_keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
    mapped = {id(k): v for k, v in zip(model.inputs, inputs)}
    translated = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        new = _translate_layer(layer)
        for node in layer._inbound_nodes:
            def swap(t):
                return mapped[id(t)] if isinstance(t, keras.KerasTensor) else t

            args = keras.tree.map_structure(swap, node.arguments.args)
            kwargs = keras.tree.map_structure(swap, node.arguments.kwargs)
            outputs = new(*args, **kwargs)
            for old, out in zip(keras.tree.flatten(node.output_tensors), _flatten(outputs)):
                mapped[id(old)] = out
        translated.append((layer, new))
    copy = tf_keras.Model(inputs, [mapped[id(t)] for t in model.outputs], name=model.name)
    for old, new in translated:
        new.set_weights(old.get_weights())
    return copy


def _flatten(x) -> list:
    return [y for item in x for y in _flatten(item)] if isinstance(x, (list, tuple)) else [x]


# ---- fine-tuning ------------------------------------------------------------------------------------

def _outputs_probabilities(model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def finetune(keras_model, train_x: np.ndarray, train_y: np.ndarray, epochs: int = EPOCHS,
             batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE, seed: int = SEED):
    """The model wrapped in tfmot's fake quantization and fine-tuned; returns (model, accuracy before, after)."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    base = to_tf_keras(keras_model)
    model = tfmot.quantization.keras.quantize_model(base)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not _outputs_probabilities(base)),
                  metrics=["accuracy"])
    before = float(model.evaluate(train_x, train_y, batch_size=256, verbose=0)[1])
    dataset = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(len(train_x), seed=seed)
    model.fit(dataset.batch(batch_size), epochs=epochs, verbose=0)
    after = float(model.evaluate(train_x, train_y, batch_size=256, verbose=0)[1])
    return model, before, after


def _job(model_path: str, train_x, train_y, calib_x, settings: dict) -> tuple[bytes, str, dict]:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    source = load_model(model_path)
    import tf_keras

    note = ("tf_keras model used as loaded" if isinstance(source.keras, tf_keras.Model) else
            "Keras 3 model rebuilt in tf_keras (layer configs, same wiring, weights copied) for tfmot")
    model, before, after = finetune(source.keras, train_x, train_y, **settings)
    qat_model = dataclasses.replace(source, keras=model)
    tflite = convert(qat_model, "int8", Dataset(x=calib_x, y=None, source="calibration"), in_worker=False)
    return tflite, note, {"before": before, "after": after}


def run_isolated(model, train_spec: str, calib_x: np.ndarray) -> QatOutcome:
    """Fine-tune `model` (an edgeq.load.Model) on `train_spec` in a child process; the int8 .tflite."""
    if model.keras is None:
        raise BadInput(f"{model.path}: quantization-aware training needs a Keras model (.keras or .h5)")
    try:
        import tensorflow_model_optimization  # noqa: F401
    except ImportError:
        raise BadInput("quantization-aware training (--train) needs tensorflow-model-optimization: "
                       "pip install tensorflow-model-optimization==0.8.1") from None
    arrays = read_arrays(train_spec)
    train = check_dataset(arrays.inputs, arrays.labels, model.inputs, train_spec, model.outputs)
    if not train.has_class_labels:
        raise BadInput(f"{train_spec}: quantization-aware training needs integer class labels as 'y'")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        tflite, note, accuracy = pool.submit(_job, str(Path(model.path)), train.x.single, train.y.astype(np.int64),
                                             calib_x, dict(SETTINGS)).result()
    return QatOutcome(tflite, arrays.sha256(), dict(SETTINGS), note, accuracy)
