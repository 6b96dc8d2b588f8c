"""Small Keras models whose labels come from the model itself (only samples it classifies with a
clear margin), so the float accuracy is 100% and any drop is quantization's: the planner's tests
and bench/qat_bench.py share them."""

from __future__ import annotations

import numpy as np


def balance(model, x: np.ndarray) -> None:
    """Centre and scale the last layer's logits over `x`, so that every class occurs."""
    import keras

    last = model.layers[-1]
    features = keras.Model(model.inputs, last.input).predict(x, verbose=0)
    w, b = last.get_weights()
    logits = features @ w + b
    spread = float(logits.std(axis=0).mean())
    last.set_weights([w / spread, (b - logits.mean(axis=0)) / spread])


def write(model, x: np.ndarray, folder, name: str, margin: float = 0.1) -> dict:
    """The model and its data: calibration (300 samples), validation (500) and training data (the rest),
    labelled by the model."""
    p = model.predict(x, verbose=0)
    top = np.sort(p, axis=1)
    keep = top[:, -1] - top[:, -2] > margin
    x, y = x[keep], p[keep].argmax(axis=1).astype(np.int32)
    path = folder / f"{name}.keras"
    model.save(path)
    np.savez(folder / f"{name}_calib.npz", x=x[:300])
    np.savez(folder / f"{name}_val.npz", x=x[300:800], y=y[300:800])
    np.savez(folder / f"{name}_train.npz", x=x[800:], y=y[800:])
    return {"model": path, "data": str(folder / f"{name}_calib.npz"), "val": str(folder / f"{name}_val.npz"),
            "train": str(folder / f"{name}_train.npz")}


def sensitive(folder) -> dict:
    """One layer int8 weights cannot represent: every output channel has weights +100 and -100 on two
    inputs that are always equal (they cancel), beside small weights that carry the signal. The
    per-channel scale is set by the 100s, so the small weights round to 0 or one step; equalization
    cannot help (the outliers are along the input axis) and neither can calibration."""
    import keras

    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    inp = keras.Input((16,))
    h = keras.layers.Dense(16, name="sensitive")(inp)
    h = keras.layers.Dense(64, activation="relu")(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(h))
    w = rng.normal(0, 0.3, (16, 16)).astype(np.float32)
    w[0, :], w[1, :] = 100.0, -100.0
    model.get_layer("sensitive").set_weights([w, np.zeros(16, np.float32)])
    x = rng.random((4000, 16), dtype=np.float32)
    x[:, 1] = x[:, 0]
    balance(model, x)
    return write(model, x, folder, "sensitive")


INT4_ONLY_FLASH = "14K"  # the MLP below fits nucleo-l4r5zi's edgeq-c only with int4 weights


def heavy_tailed_mlp(folder) -> dict:
    """A 32-96-96-16 MLP whose hidden weights are heavy-tailed (Student's t, 12 degrees of freedom),
    as trained weights are: one scale per FULLY_CONNECTED tensor over 15 int4 levels leaves most
    weights a step or two, and post-training int4 loses about 14 pp."""
    import keras

    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    inp = keras.Input((32,))
    h = keras.layers.Dense(96, activation="relu")(inp)
    h = keras.layers.Dense(96, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(16, activation="softmax")(h))
    for layer in model.layers[1:3]:
        w, b = layer.get_weights()
        layer.set_weights([(rng.standard_t(12, w.shape) * 0.1).astype(np.float32), b])
    x = rng.normal(0, 1, (6000, 32)).astype(np.float32)
    balance(model, x)
    return write(model, x, folder, "mlp")
