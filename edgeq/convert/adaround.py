"""AdaRound: each weight rounded up or down as the layer's output needs, not to the nearest step.

Post-training and without labels (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training
Quantization", 2020): layer by layer, in graph order, a continuous variable per weight chooses
between the grid step below it and the one above, trained on the calibration data to make the
layer's output with the rounded kernel match its output with the float kernel, while a
regulariser, annealed, pushes every choice to 0 or 1. The grid is the deployed one
(edgeq.convert.qat_graph.weight_grid), clipped where its error is least (`mse_clip`), with the
clipped weights at qmax steps, so the kernel exported with the chosen roundings converts to
exactly those integers.
"""

from __future__ import annotations

import time

import numpy as np

from edgeq.convert.qat_graph import WEIGHTED, kernel_bound, mse_clip, weight_grid
from edgeq.errors import BadInput

ITERATIONS = 2000  # Adam steps per layer
BATCH = 64
LEARNING_RATE = 1e-2
REGULARIZATION = 0.01
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch: h reaches 0 and 1 exactly
BETA = (20.0, 2.0)  # the regulariser's exponent, annealed from the first to the second
WARM_UP = 0.2  # the share of iterations before the regulariser starts


def _layers(model) -> list:
    return [layer for layer in model.layers if type(layer).__name__ in WEIGHTED]


def _pre_activation(layer, x, kernel):
    """The layer's output before its activation, with `kernel` in place of its own."""
    from keras import ops

    kind = type(layer).__name__
    if kind == "Dense":
        y = ops.matmul(x, kernel)
    elif kind == "Conv2D":
        y = ops.conv(x, kernel, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate)
    else:
        y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                               dilation_rate=layer.dilation_rate)
    return y + layer.bias if layer.use_bias else y


def _round_layer(layer, x: np.ndarray, mode: str, per_channel: bool, seed: int) -> tuple[np.ndarray, float]:
    """The layer's kernel with learnt rounding, and the share of weights rounded away from nearest."""
    import keras
    import tensorflow as tf

    original = np.asarray(layer.kernel)
    kind = type(layer).__name__
    grid = weight_grid(kind, mode, per_channel)
    # Clipped where the grid's error is least; the clipped weights stay qmax steps, so the
    # converter takes the same scale from the export.
    alpha = np.maximum(kernel_bound(original, kind, grid) * mse_clip(original, kind, grid), 1e-9).astype(np.float32)
    kernel = np.clip(original, -alpha, alpha)
    scale = alpha / np.float32(grid.qmax)
    floor = np.floor(kernel / scale)
    rest = kernel / scale - floor
    # h(V) starts at the remainder: the soft kernel starts as the float kernel.
    v = tf.Variable(-np.log((ZETA - GAMMA) / (np.clip(rest, 1e-4, 1 - 1e-4) - GAMMA) - 1).astype(np.float32))
    floor_t, scale_t = tf.constant(floor, tf.float32), tf.constant(scale)
    target = np.asarray(_pre_activation(layer, x, original))
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    rng = np.random.default_rng(seed)

    def soft() -> tf.Tensor:
        return tf.clip_by_value(tf.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    @tf.function
    def step(xb, yb, beta, weight):
        with tf.GradientTape() as tape:
            h = soft()
            w = tf.clip_by_value(floor_t + h, -grid.qmax, grid.qmax) * scale_t
            error = tf.reduce_mean(tf.reduce_sum(tf.square(_pre_activation(layer, xb, w) - yb), axis=-1))
            loss = error + weight * tf.reduce_sum(1.0 - tf.pow(tf.abs(2.0 * h - 1.0), beta))
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])

    warm = int(ITERATIONS * WARM_UP)
    for i in range(ITERATIONS):
        pick = rng.integers(0, len(x), min(BATCH, len(x)))
        progress = max(i - warm, 0) / max(ITERATIONS - warm, 1)
        beta = BETA[0] + (BETA[1] - BETA[0]) * progress
        step(tf.constant(x[pick]), tf.constant(target[pick]), tf.constant(beta, tf.float32),
             tf.constant(0.0 if i < warm else REGULARIZATION, tf.float32))
    up = np.asarray(soft()) >= 0.5
    steps = np.clip(floor + up, -grid.qmax, grid.qmax)
    steps = np.where(np.abs(kernel) >= alpha, np.sign(kernel) * grid.qmax, steps)
    changed = float(np.mean(steps != np.clip(np.round(kernel / scale), -grid.qmax, grid.qmax)))
    return (steps * scale).astype(np.float32), changed


def adaround(model, mode: str, per_channel: bool, calib_x: np.ndarray, seed: int = 0) -> tuple[object, dict]:
    """A copy of the Keras `model` whose kernels sit on the deployed grid with AdaRound's roundings.
    Each layer learns on the inputs it sees from the layers before it, already rounded."""
    import keras

    if len(model.inputs) != 1:
        raise BadInput("AdaRound takes a model with one input")
    start = time.perf_counter()
    rounded = keras.models.clone_model(model)
    rounded.set_weights(model.get_weights())
    changed = {}
    for layer in _layers(rounded):
        if len(layer._inbound_nodes) != 1:
            raise BadInput(f"AdaRound: layer {layer.name} is called more than once")
        x = keras.Model(rounded.inputs, layer.input).predict(calib_x, batch_size=256, verbose=0)
        kernel, changed[layer.name] = _round_layer(layer, x, mode, per_channel, seed)
        layer.kernel.assign(kernel)
    return rounded, {"seconds": round(time.perf_counter() - start, 2), "iterations": ITERATIONS,
                     "rounded_away_from_nearest": {k: round(v, 4) for k, v in changed.items()}}

