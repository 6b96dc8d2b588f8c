"""The Keras 3 model quantization-aware training trains: the float model rewritten so that its forward
pass computes what the deployed integer model will, and back again to a float model whose weights
sit on the deployed grid.

What is simulated is what edgeq deploys (edgeq.convert.calibrate):
- weights symmetric, per output channel or per tensor (`weight_grid`): int8 per channel or per
  tensor in every weighted op (the converter's quantizer); with int4 weights, 4 bits per channel in
  CONV_2D, per tensor in FULLY_CONNECTED, DEPTHWISE_CONV_2D kept int8 per channel (ai-edge-quantizer's
  static_wi4_ai8 and TFLM's int4 FULLY_CONNECTED, which takes one scale); int16x8, int8 per channel.
  The scale is clip / qmax, the clip a trained fraction of the largest weight, never above it, so
  the exported kernel's largest weight is qmax steps and the converter finds the same scale;
- activations (`activation_grid`) int8 asymmetric, or int16 symmetric in int16x8, over the range
  the plan's observer gives on the calibration data, at each tensor the converter quantizes: the
  input and every op output, after an activation the converter fuses (ReLU, ReLU6 after a
  weighted op or ADD), before a softmax, and the softmax output on its fixed grid;
- BatchNormalization folded into the weighted op before it, as the converter folds it, and frozen.

Rounding goes straight through in the backward pass (the straight-through estimator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import BadInput

FUSED_ACTIVATIONS = ("relu", "relu6")  # what the converter folds into the op before it
MIN_CLIP = 0.01  # the least fraction of its largest weight a kernel is clipped at
# The clip is trained as clip / CLIP_GAIN: the fine-tuning rates that suit the weights would move it
# too slowly to matter in a few epochs.
CLIP_GAIN = 10.0
# Ops whose output shares its input's scale in TFLite: no quantization point of their own.
SAME_SCALE = ("Flatten", "Reshape", "MaxPooling1D", "MaxPooling2D", "AveragePooling2D", "Dropout", "Identity",
              "InputLayer", "ZeroPadding2D", "Cropping2D", "Permute")


@dataclass(frozen=True)
class WeightGrid:
    bits: int
    per_channel: bool

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1


def weight_grid(layer_type: str, mode: str, per_channel: bool) -> WeightGrid:
    """The grid edgeq deploys a weighted layer's kernel on, for a plan's mode and granularity."""
    if mode == "int4w":
        if layer_type == "Conv2D":
            return WeightGrid(4, True)
        if layer_type == "Dense":
            return WeightGrid(4, False)
        return WeightGrid(8, True)
    if mode == "int8":
        return WeightGrid(8, per_channel)
    if mode == "int16x8":  # the converter's 16x8 mode: int8 weights per channel
        return WeightGrid(8, True)
    raise BadInput(f"quantization-aware training simulates int8, int4w and int16x8 plans, not {mode}")


@dataclass(frozen=True)
class ActivationGrid:
    """How a plan quantizes activations: int8 asymmetric, or int16 symmetric (zero point 0, 65535
    levels: the converter's 16x8 mode), and the fixed range of a softmax's output."""

    bits: int
    symmetric: bool
    softmax: tuple[float, float]


ACTIVATIONS = {"int8": ActivationGrid(8, False, (0.0, 255 / 256)),  # SOFTMAX out: scale 1/256, zero point -128
               "int16x8": ActivationGrid(16, True, (-1.0, 1.0))}  # SOFTMAX out: scale 1/32767, zero point 0


def activation_grid(mode: str) -> ActivationGrid:
    return ACTIVATIONS["int16x8" if mode == "int16x8" else "int8"]


def _channel_axes(layer_type: str, rank: int) -> tuple[int, ...]:
    """The kernel's axes a per-channel scale is taken over: all but the output channel (and for a
    depthwise kernel, (kh, kw, in, multiplier), all but the last two, which TFLite flattens)."""
    return (0, 1) if layer_type == "DepthwiseConv2D" else tuple(range(rank - 1))


def kernel_bound(kernel: np.ndarray, layer_type: str, grid: WeightGrid) -> np.ndarray:
    """The largest |weight| per channel (or of the tensor) as the grid scales it: max|w| = qmax steps."""
    axes = _channel_axes(layer_type, kernel.ndim) if grid.per_channel else None
    return np.max(np.abs(kernel), axis=axes, keepdims=True)


def snapped(kernel: np.ndarray, layer_type: str, grid: WeightGrid, clip: np.ndarray | float = 1.0) -> np.ndarray:
    """The kernel clipped at `clip` times its largest weight (per channel or per tensor; at most 1)
    and put on its grid: what the deployed integer weights times their scale are. Converting it
    again gives the same scale (its largest weight is qmax steps) and the same integers."""
    bound = kernel_bound(kernel, layer_type, grid)
    alpha = np.maximum(bound * np.clip(clip, MIN_CLIP, 1.0), 1e-9).astype(np.float32)
    scale = alpha / np.float32(grid.qmax)
    return (np.clip(np.round(np.clip(kernel, -alpha, alpha) / scale), -grid.qmax, grid.qmax) * scale).astype(np.float32)


def mse_clip(kernel: np.ndarray, layer_type: str, grid: WeightGrid, steps: int = 60) -> np.ndarray:
    """The clip (a fraction of the largest weight, per channel or per tensor) that puts the kernel
    on its grid with the least squared error: outliers given up for finer steps everywhere else
    (percentile clipping's idea, chosen by error as the MSE observer chooses activation ranges)."""
    axes = _channel_axes(layer_type, kernel.ndim) if grid.per_channel else None
    best, best_error = None, None
    for fraction in np.linspace(0.2, 1.0, steps):
        error = np.sum((snapped(kernel, layer_type, grid, fraction) - kernel) ** 2, axis=axes, keepdims=True)
        if best_error is None:
            best, best_error = np.full_like(error, fraction), error
        else:
            better = error < best_error
            best, best_error = np.where(better, fraction, best), np.where(better, error, best_error)
    return best.astype(np.float32)


def _keras_classes():
    """The layer classes, made on first use: they subclass Keras', which imports TensorFlow."""
    import keras
    from keras import ops

    def fake_weights(kernel, clip, layer_type: str, grid: WeightGrid):
        """The kernel clipped and on its grid; the rounding passes gradients straight through, the
        clipping value learns from the weights it clips (never above the largest weight, so that
        the export's scale is the one trained with)."""
        axes = _channel_axes(layer_type, len(kernel.shape)) if grid.per_channel else None
        bound = ops.stop_gradient(ops.max(ops.abs(kernel), axis=axes, keepdims=True))
        # A fraction of the largest weight: Adam's steps move it alike on every layer's scale.
        alpha = ops.maximum(bound * ops.clip(clip * CLIP_GAIN, MIN_CLIP, 1.0), 1e-9)
        clipped = ops.clip(kernel, -alpha, alpha)
        scale = alpha / grid.qmax
        steps = clipped / scale
        # Rounded in the forward pass only; the scale keeps its gradient (LSQ): finer steps are
        # learnt where they lower the loss, not only where they lower the weights' own error.
        return (steps + ops.stop_gradient(ops.round(steps) - steps)) * scale

    class _Quantized:
        grid: WeightGrid

        def build(self, input_shape):
            super().build(input_shape)
            axes = _channel_axes(self.base_type, len(self.kernel.shape)) if self.grid.per_channel else None
            shape = tuple(1 if axes is None or i in axes else d for i, d in enumerate(self.kernel.shape))
            self.clip = self.add_weight(shape=shape, initializer=keras.initializers.Constant(1.0 / CLIP_GAIN),
                                        trainable=True, name="clip")
            # 0 while the ranges are observed for step 0: PTQ calibrates on the float weights.
            self.on_grid = self.add_weight(shape=(), initializer="ones", trainable=False, name="on_grid")

        def clip_fraction(self) -> np.ndarray:
            """Where the kernel is clipped, as a fraction of its largest weight (per channel or tensor)."""
            return np.asarray(self.clip) * CLIP_GAIN

        def set_clip_fraction(self, fraction) -> None:
            self.clip.assign(np.broadcast_to(np.float32(fraction) / CLIP_GAIN, self.clip.shape))

        def quantized_kernel(self):
            return self.grid_kernel(self.kernel)

        def grid_kernel(self, kernel):
            fake = fake_weights(kernel, self.clip, self.base_type, self.grid)
            return self.on_grid * fake + (1.0 - self.on_grid) * kernel

    class QatDense(_Quantized, keras.layers.Dense):
        base_type = "Dense"

        def call(self, inputs):
            y = ops.matmul(inputs, self.quantized_kernel())
            if self.use_bias:
                y = ops.add(y, self.bias)
            return self.activation(y) if self.activation is not None else y

    class QatConv2D(_Quantized, keras.layers.Conv2D):
        base_type = "Conv2D"

        def convolution_op(self, inputs, kernel):
            return super().convolution_op(inputs, self.grid_kernel(kernel))

    class QatDepthwiseConv2D(_Quantized, keras.layers.DepthwiseConv2D):
        base_type = "DepthwiseConv2D"

        def call(self, inputs):
            y = ops.depthwise_conv(inputs, self.quantized_kernel(), strides=self.strides, padding=self.padding,
                                   dilation_rate=self.dilation_rate, data_format=self.data_format)
            if self.use_bias:
                y = ops.add(y, ops.reshape(self.bias, (1,) * (len(y.shape) - 1) + (-1,)))
            return self.activation(y) if self.activation is not None else y

    class ActivationQuantizer(keras.layers.Layer):
        """Fake quantization over [min, max] on the plan's activation grid (int8: TFLite's nudged
        asymmetric grid; int16: symmetric, narrow range); switched off while the ranges are observed."""

        grid: ActivationGrid = ACTIVATIONS["int8"]

        def build(self, input_shape):
            self.min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="min")
            self.max = self.add_weight(shape=(), initializer="ones", trainable=False, name="max")
            self.enabled = self.add_weight(shape=(), initializer="ones", trainable=False, name="enabled")

        def call(self, x):
            q = keras.quantizers.fake_quant_with_min_max_vars(x, self.min, self.max, num_bits=self.grid.bits,
                                                              narrow_range=self.grid.symmetric)
            return self.enabled * q + (1.0 - self.enabled) * x

    return {"Dense": QatDense, "Conv2D": QatConv2D, "DepthwiseConv2D": QatDepthwiseConv2D}, ActivationQuantizer


WEIGHTED = ("Dense", "Conv2D", "DepthwiseConv2D")


def _consumers(layer) -> list:
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


def _activation_name(layer) -> str | None:
    """The activation a layer applies: a weighted layer's own, or an Activation / ReLU layer's."""
    kind = type(layer).__name__
    if kind == "ReLU":
        return "relu6" if getattr(layer, "max_value", None) == 6 else "relu"
    if kind == "Softmax":
        return "softmax"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", None) if fn is not None else None


def _folds_into(bn, layer) -> bool:
    """A BatchNormalization the converter folds into `layer`: its only consumer, on the channel axis,
    after a layer with no activation of its own."""
    rank = len(layer.output.shape)
    axis = bn.axis[0] if isinstance(bn.axis, (list, tuple)) and len(bn.axis) == 1 else bn.axis
    return (type(layer).__name__ in WEIGHTED and _activation_name(layer) in (None, "linear")
            and _consumers(layer) == [bn] and axis in (-1, rank - 1))


def _fold(layer, bn) -> list[np.ndarray]:
    """`layer`'s kernel and bias with `bn`'s inference-time affine map folded in."""
    kernel, *rest = layer.get_weights()
    bias = rest[0] if layer.use_bias else np.zeros(kernel.shape[-1] if type(layer).__name__ != "DepthwiseConv2D"
                                                   else kernel.shape[-2] * kernel.shape[-1], np.float32)
    values = dict(zip([w.name for w in bn.weights], bn.get_weights()))
    gamma = values.get("gamma", np.ones_like(values["moving_mean"]))
    beta = values.get("beta", np.zeros_like(values["moving_mean"]))
    factor = gamma / np.sqrt(values["moving_variance"] + bn.epsilon)
    shaped = factor.reshape(kernel.shape[-2:]) if type(layer).__name__ == "DepthwiseConv2D" else factor
    return [(kernel * shaped).astype(np.float32), ((bias - values["moving_mean"]) * factor + beta).astype(np.float32)]


def _from_input(tensor) -> bool:
    history = getattr(tensor, "_keras_history", None)
    return history is not None and type(history.operation).__name__ == "InputLayer"


def qat_model(model, mode: str, per_channel: bool):
    """The Keras 3 functional or Sequential `model` for training: weighted layers that compute on
    fake-quantized kernels, BatchNormalization folded, an ActivationQuantizer at each tensor the
    deployed model quantizes. Returns the model and its activation quantizers."""
    import keras

    if isinstance(model, keras.Sequential):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    classes, ActivationQuantizer = _keras_classes()
    folded = {}  # a weighted layer's name -> its BN-folded weights
    for layer in model.layers:
        parents = layer._inbound_nodes[0].parent_nodes if layer._inbound_nodes else []
        if type(layer).__name__ == "BatchNormalization" and parents and _folds_into(layer, parents[0].operation):
            folded[parents[0].operation.name] = _fold(parents[0].operation, layer)
    folded_bn = {_consumers(model.get_layer(name))[0].name for name in folded}
    quantizers, quantized_inputs = [], {}

    def clone(layer):
        kind = type(layer).__name__
        if layer.name in folded_bn:
            return keras.layers.Identity(name=layer.name)
        if kind in classes:
            config = dict(layer.get_config(), use_bias=layer.use_bias or layer.name in folded)
            if _activation_name(layer) == "softmax":
                config["activation"] = "linear"  # the softmax goes after the logits' quantizer
            new = classes[kind].from_config(config)
            new.grid = weight_grid(kind, mode, per_channel)
            return new
        return layer.__class__.from_config(layer.get_config())

    activations = activation_grid(mode)

    def quantize(tensor, name: str, is_input: bool = False, fixed: tuple[float, float] | None = None):
        q = ActivationQuantizer(name=f"{name}_act_quant")
        q.grid = activations
        q.is_input = is_input  # the model input keeps its min/max in the deployed model
        q.fixed = fixed  # a range TFLite fixes, not observed
        quantizers.append(q)
        return q(tensor)

    def input_quantized(tensor):
        if not isinstance(tensor, keras.KerasTensor) or not _from_input(tensor):
            return tensor
        if id(tensor) not in quantized_inputs:
            quantized_inputs[id(tensor)] = quantize(tensor, tensor._keras_history.operation.name, is_input=True)
        return quantized_inputs[id(tensor)]

    def call(layer, *args, **kwargs):
        args = keras.tree.map_structure(input_quantized, args)
        out = args[0] if layer.name in folded_bn else layer(*args, **kwargs)  # folded: its conv computes it
        original = model.get_layer(layer.name)
        kind = type(original).__name__
        weighted = kind in WEIGHTED or layer.name in folded_bn  # a folded BN's output is its conv's
        if layer.name in folded or (not weighted and kind in SAME_SCALE):
            return out
        if not weighted and _activation_name(original) == "softmax":
            return quantize(out, layer.name, fixed=activations.softmax)
        consumers = _consumers(original)
        fused = (len(consumers) == 1 and type(consumers[0]).__name__ in ("Activation", "ReLU")
                 and _activation_name(consumers[0]) in FUSED_ACTIVATIONS
                 and (weighted or kind == "Add") and _activation_name(original) in (None, "linear"))
        if fused:
            return out
        out = quantize(out, layer.name)
        if kind in WEIGHTED and _activation_name(original) == "softmax":
            out = keras.layers.Softmax(name=f"{layer.name}_softmax")(out)
            out = quantize(out, f"{layer.name}_softmax", fixed=activations.softmax)
        return out

    trained = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.weights and layer.name not in folded_bn:
            new, weights = trained.get_layer(layer.name), folded.get(layer.name) or layer.get_weights()
            if hasattr(new, "clip"):  # kernel and bias; the clip starts at 1 (the largest weight), as PTQ's scale
                new.kernel.assign(weights[0])
                if new.use_bias:
                    new.bias.assign(weights[1] if len(weights) > 1 else np.zeros(new.bias.shape, np.float32))
            else:
                new.set_weights(weights)
    return trained, quantizers


def clip_weights_by_mse(trained) -> None:
    """Each quantized kernel's clipping value set where its grid error is least (training starts there)."""
    for layer in trained.layers:
        if hasattr(layer, "clip"):
            layer.set_clip_fraction(mse_clip(np.asarray(layer.kernel), layer.base_type, layer.grid))


def unsupported_layers(model) -> list[str]:
    """Weighted layers whose kernels the simulation does not quantize: their deployed error is not
    trained against (the step-0 gap shows how much that matters)."""
    known = set(WEIGHTED) | {"BatchNormalization"}
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
            if layer.weights and type(layer).__name__ not in known]


def float_export(trained, mode: str, per_channel: bool):
    """The trained model as a plain float Keras model with every kernel on its deployed grid."""
    import keras

    def clone(layer):
        if type(layer).__name__ == "ActivationQuantizer":
            return layer  # never called: `call` leaves it out
        base = getattr(layer, "base_type", None)
        cls = getattr(keras.layers, base) if base else layer.__class__
        return cls.from_config(layer.get_config())

    def call(layer, *args, **kwargs):
        return args[0] if type(layer).__name__ == "ActivationQuantizer" else layer(*args, **kwargs)

    plain = keras.models.clone_model(trained, clone_function=clone, call_function=call)
    for layer in trained.layers:
        if type(layer).__name__ == "ActivationQuantizer" or not layer.weights:
            continue
        if hasattr(layer, "clip"):
            weights = [snapped(np.asarray(layer.kernel), layer.base_type, layer.grid, layer.clip_fraction())]
            weights += [np.asarray(layer.bias)] if layer.use_bias else []
        else:
            weights = layer.get_weights()
        plain.get_layer(layer.name).set_weights(weights)
    return plain
