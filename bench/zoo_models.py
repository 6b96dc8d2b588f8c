"""The zoo's models with several inputs or outputs, or with state, as phone and MCU products ship them;
each built from Keras layers, trained briefly on seeded synthetic data that has something to learn,
and saved with that data (the calibration and validation set: the data it was trained on).

- ssd_detector: 128x128x3 image, a MobileNet-style backbone, two heads (boxes and scores) at two
  feature-map scales (16x16 and 8x8, two anchors a cell), each head's outputs reshaped to one row an
  anchor and concatenated across scales: outputs `boxes` (640, 4) and `scores` (640, 1).
- landmark: 64x64x3 image, outputs `points` (21 points x 3) and `presence` (a sigmoid).
- two_input: a 32x32x1 image and an 8-value sensor vector, one class output.
- segmentation: 64x64x3 image, a transposed convolution and a bilinear resize back to 64x64: a mask.
- streaming_state: a keyword model that takes one 10-value frame a call and keeps the last 8 frames
  in a resource variable (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, as streaming keyword models
  keep them), shipped as the float .tflite the TensorFlow Lite converter makes of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = 256
EPOCHS = 6


def _blob_images(rng, n: int, size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images, each with one bright square; and the square's centre and size, in 0..1."""
    x = rng.normal(0.0, 0.15, (n, size, size, channels)).astype(np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        side = int(rng.integers(size // 8, size // 3))
        r, c = rng.integers(0, size - side, 2)
        x[i, r:r + side, c:c + side, :] += 1.0
        boxes[i] = ((c + side / 2) / size, (r + side / 2) / size, side / size, side / size)
    return x, boxes


def _anchor_targets(boxes: np.ndarray, grids: tuple[int, ...], anchors: int) -> tuple[np.ndarray, np.ndarray]:
    """SSD targets: for every anchor of every grid cell, the box relative to the cell and whether
    the object's centre lies in the cell."""
    out_boxes, out_scores = [], []
    for g in grids:
        centres = (np.arange(g) + 0.5) / g
        cx, cy = boxes[:, 0, None, None], boxes[:, 1, None, None]
        dx = (cx - centres[None, None, :]) * g
        dy = (cy - centres[None, :, None]) * g
        inside = ((np.abs(dx) <= 0.5) & (np.abs(dy) <= 0.5)).astype(np.float32)
        wh = np.broadcast_to(boxes[:, None, None, 2:], (len(boxes), g, g, 2))
        cell = np.concatenate([np.stack([np.broadcast_to(dx, (len(boxes), g, g)),
                                         np.broadcast_to(dy, (len(boxes), g, g))], -1), wh], -1)
        out_boxes.append(np.repeat(cell[:, :, :, None, :], anchors, 3).reshape(len(boxes), -1, 4))
        out_scores.append(np.repeat(inside[:, :, :, None], anchors, 3).reshape(len(boxes), -1, 1))
    return np.concatenate(out_boxes, 1).astype(np.float32), np.concatenate(out_scores, 1).astype(np.float32)


def _separable(x, filters: int, strides: int):
    import keras

    L = keras.layers
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", activation="relu")(x)
    return L.Conv2D(filters, 1, activation="relu")(x)


def ssd_detector():
    import keras

    L = keras.layers
    image = keras.Input((128, 128, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)  # 64x64
    x = _separable(x, 16, 2)  # 32x32
    fine = _separable(x, 24, 2)  # 16x16
    coarse = _separable(fine, 32, 2)  # 8x8
    boxes, scores = [], []
    for feature in (fine, coarse):  # two anchors a cell at each scale
        boxes.append(L.Reshape((-1, 4))(L.Conv2D(2 * 4, 3, padding="same")(feature)))
        scores.append(L.Reshape((-1, 1))(L.Conv2D(2, 3, padding="same")(feature)))
    box_out = L.Concatenate(axis=1, name="boxes")(boxes)
    score_out = L.Activation("sigmoid", name="scores")(L.Concatenate(axis=1)(scores))
    return keras.Model(image, [box_out, score_out])


def landmark():
    import keras

    L = keras.layers
    image = keras.Input((64, 64, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = _separable(x, 16, 2)
    x = _separable(x, 32, 2)
    x = L.GlobalAveragePooling2D()(x)
    points = L.Dense(63, name="points")(x)
    presence = L.Dense(1, activation="sigmoid", name="presence")(x)
    return keras.Model(image, [points, presence])


def two_input():
    import keras

    L = keras.layers
    image = keras.Input((32, 32, 1), name="image")
    sensor = keras.Input((8,), name="sensor")
    x = L.Conv2D(8, 3, strides=2, activation="relu")(image)
    x = L.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    s = L.Dense(16, activation="relu")(sensor)
    x = L.Concatenate()([x, s])
    return keras.Model([image, sensor], L.Dense(4, activation="softmax", name="label")(x))


def segmentation():
    import keras

    L = keras.layers
    image = keras.Input((64, 64, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)  # 32x32
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # 16x16
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)  # 32x32
    x = L.Conv2D(1, 1)(x)
    x = L.Resizing(64, 64, interpolation="bilinear")(x)
    return keras.Model(image, L.Activation("sigmoid", name="mask")(x))


def _train(model, x, y, loss) -> None:
    model.compile("adam", loss)
    model.fit(x, y, epochs=EPOCHS, batch_size=32, verbose=0)


def _save(folder: Path, name: str, model, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    path = folder / f"{name}.keras"
    model.save(path)
    data = folder / f"{name}.npz"
    np.savez(data, **arrays)
    return path, data


def build(name: str, folder: Path) -> tuple[Path, Path]:
    """The model file and its data (.npz: one array per input by name, labels where there are some)."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if name == "ssd_detector":
        x, boxes = _blob_images(rng, SAMPLES, 128)
        box_y, score_y = _anchor_targets(boxes, (16, 8), 2)
        model = ssd_detector()
        _train(model, x, [box_y, score_y], ["mse", "binary_crossentropy"])
        return _save(folder, name, model, {"image": x})
    if name == "landmark":
        x, boxes = _blob_images(rng, SAMPLES, 64)
        points = np.repeat(boxes[:, None, :3], 21, 1).reshape(SAMPLES, 63) * np.linspace(0.5, 1.5, 63)
        presence = (rng.random(SAMPLES) > 0.2).astype(np.float32)
        x[presence == 0] = rng.normal(0.0, 0.15, x[presence == 0].shape)
        model = landmark()
        _train(model, x, [points.astype(np.float32), presence[:, None]], ["mse", "binary_crossentropy"])
        return _save(folder, name, model, {"image": x})
    if name == "two_input":
        sensor = rng.normal(0, 1, (SAMPLES, 8)).astype(np.float32)
        bright = rng.random(SAMPLES) > 0.5  # the image's top half is brighter
        image = rng.normal(0, 0.3, (SAMPLES, 32, 32, 1)).astype(np.float32)
        image[bright, :16] += 1.0
        label = (bright.astype(np.int64) * 2 + (sensor[:, 0] > 0)).astype(np.int64)
        model = two_input()
        _train(model, [image, sensor], label, "sparse_categorical_crossentropy")
        return _save(folder, name, model, {"image": image, "sensor": sensor, "y": label})
    if name == "segmentation":
        x, _ = _blob_images(rng, SAMPLES, 64)
        mask = (x.mean(axis=-1, keepdims=True) > 0.5).astype(np.float32)
        model = segmentation()
        _train(model, x, mask, "binary_crossentropy")
        return _save(folder, name, model, {"image": x})
    if name == "streaming_state":
        return streaming_state(folder, rng)
    raise KeyError(name)


FRAMES, FEATURES = 8, 10


def streaming_state(folder: Path, rng) -> tuple[Path, Path]:
    """Trained on windows of 8 frames; shipped as the streaming model that keeps those frames itself."""
    import keras
    import tensorflow as tf

    L = keras.layers
    windows = rng.normal(0, 1, (SAMPLES, FRAMES, FEATURES)).astype(np.float32)
    label = (windows[:, :, 0].mean(axis=1) > 0).astype(np.int64) + 2 * (windows[:, -1, 1] > 0)
    hidden, scores = L.Dense(32, activation="relu"), L.Dense(4, activation="softmax")
    window = keras.Input((FRAMES, FEATURES))
    trained = keras.Model(window, scores(hidden(L.Flatten()(window))))
    _train(trained, windows, label, "sparse_categorical_crossentropy")

    class Streaming(tf.Module):
        def __init__(self):
            super().__init__()
            self.frames = tf.Variable(tf.zeros((1, FRAMES, FEATURES)), trainable=False, name="frames")
            self.weights = [w.value for w in trained.weights]  # tracked, so that the export finds them

        @tf.function(input_signature=[tf.TensorSpec((1, 1, FEATURES), tf.float32, name="frame")])
        def serve(self, frame):
            frames = tf.concat([self.frames[:, 1:, :], frame], axis=1)
            self.frames.assign(frames)
            return {"scores": scores(hidden(tf.reshape(frames, (1, FRAMES * FEATURES))))}

    module = Streaming()
    saved = folder / "streaming_state_savedmodel"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.experimental_enable_resource_variables = True
    path = folder / "streaming_state.tflite"
    path.write_bytes(converter.convert())
    frames = windows.reshape(-1, 1, FEATURES)[:SAMPLES]  # a stream of frames, fed in order
    data = folder / "streaming_state.npz"
    np.savez(data, frame=frames)
    return path, data


NAMES = ("ssd_detector", "landmark", "two_input", "segmentation", "streaming_state")
REFUSED_ON_MCU = ("streaming_state",)  # neither edgeq-c nor edgeq's TFLM harness keeps resource variables
