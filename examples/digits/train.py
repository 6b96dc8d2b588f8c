"""Train the digits example: a small CNN on scikit-learn's bundled 8x8 digits, sized for Cortex-M.

    python examples/digits/train.py [--out DIR]

writes into DIR (default examples/digits/artifacts):
    digits.keras  Keras 3 model, input (8, 8, 1) float32 in [0, 1], softmax over 10 classes
    calib.npz     x: training samples for post-training quantization calibration
    val.npz       x, y: the held-out validation split
    train.npz     x, y: the training split, for quantization-aware fine-tuning

Same seed, same splits and same weights on every run; prints one summary line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# Quiets TensorFlow's C++ logging once it is loaded; _import_keras handles what it logs while loading.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 0
VAL_FRACTION = 0.2
CALIB_SAMPLES = 300
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 5e-3
DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts"
MODEL_NAME = "digits.keras"


@contextlib.contextmanager
def _stderr_held() -> Iterator[None]:
    """Hold back what native code writes to file descriptor 2; replay it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _import_keras() -> tuple[ModuleType, ModuleType]:
    """keras and tensorflow, without their load-time INFO lines.

    TensorFlow 2.21 logs oneDNN and CUDA-driver notices from static initializers, before it reads
    TF_CPP_MIN_LOG_LEVEL, so the variable alone cannot hide them.
    """
    if "tensorflow" not in sys.modules:
        with _stderr_held():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    return sys.modules["keras"], sys.modules["tensorflow"]


def load_splits(seed: int = SEED) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train / val / calib splits as (x, y): x float32 (N, 8, 8, 1) in [0, 1], y int32 class ids.

    val is a stratified hold-out; calib is a seeded subset of train, so calibration never sees val.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel intensities in the bundled data are integers 0..16.
    x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = digits.target.astype(np.int32)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, stratify=y, random_state=seed
    )
    pick = np.sort(np.random.default_rng(seed).permutation(len(x_train))[:CALIB_SAMPLES])
    return {
        "train": (x_train, y_train),
        "val": (x_val, y_val),
        "calib": (x_train[pick], y_train[pick]),
    }


def build_model() -> keras.Model:
    """About 6k parameters: small enough for a few KB of int8 weights and a tiny arena."""
    keras, _ = _import_keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), dtype="float32", name="image"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="digits",
    )


def train(splits: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = SEED) -> tuple[keras.Model, float]:
    """Fit build_model() on splits["train"]; returns the model and its float accuracy on splits["val"]."""
    keras, tf = _import_keras()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x_train, y_train = splits["train"]
    model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True, verbose=0)
    x_val, y_val = splits["val"]
    predicted = np.argmax(model.predict(x_val, batch_size=256, verbose=0), axis=-1)
    return model, float(np.mean(predicted == y_val))


def write_artifacts(
    model: keras.Model, splits: dict[str, tuple[np.ndarray, np.ndarray]], out: Path
) -> list[Path]:
    """Write everything into a staging dir, then rename each file into `out`.

    The model goes last: `make` takes digits.keras as the sign that the whole set is there, so an
    interrupted run must never leave it beside missing or half-written data files. Staging inside
    `out` keeps the renames on one filesystem, and leftovers of a killed run inside the ignored dir.
    """
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        x_train, y_train = splits["train"]
        x_val, y_val = splits["val"]
        np.savez(staging / "calib.npz", x=splits["calib"][0])
        np.savez(staging / "val.npz", x=x_val, y=y_val)
        np.savez(staging / "train.npz", x=x_train, y=y_train)
        model.save(staging / MODEL_NAME)
        names = ["calib.npz", "val.npz", "train.npz", MODEL_NAME]
        # An old model next to a half-replaced data set would look up to date to make.
        (out / MODEL_NAME).unlink(missing_ok=True)
        for name in names:
            os.replace(staging / name, out / name)
        return [out / name for name in names]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the splits and training (default 0)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    splits = load_splits(args.seed)
    model, val_accuracy = train(splits, args.seed)
    written = write_artifacts(model, splits, args.out)
    seconds = time.perf_counter() - started
    print(
        f"digits: {model.count_params()} params, float val accuracy {val_accuracy:.4f} "
        f"({len(splits['val'][1])} samples), {seconds:.0f} s; wrote "
        + ", ".join(p.name for p in written)
        + f" to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
