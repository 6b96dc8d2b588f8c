"""Model transforms applied to the float .tflite before it is quantized.

Both work on the converter's float flatbuffer rather than on the Keras model: there batch
normalization is already folded into the convolutions and fused activations are explicit, so
one implementation covers Keras 3, tf_keras, SavedModel and float .tflite inputs alike.

- Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and
  Bias Correction", ICCV 2019): for a layer whose output feeds the next layer through ReLU or no
  activation, divide output channel c of the first layer (weights and bias) by s_c and multiply the
  matching input channel of the second by s_c, with s_c = sqrt(r1_c / r2_c), so that both weight
  ranges become sqrt(r1_c * r2_c). ReLU is positively homogeneous (relu(x / s) = relu(x) / s for
  s > 0), so the float function is unchanged; per-tensor weight quantization loses much less.
- Bias correction (same paper, the empirical variant): weight quantization shifts the expected
  output of a layer by E[(W_q - W) x] = (W_q - W) E[x], which is exact for the linear part because
  convolution is linear. E[x] is the mean input of the layer on the calibration data, W_q the
  weights the quantizer really produced; subtracting the shift from the bias removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput
from edgeq.graph import Graph, Operator, read_graph
from edgeq.quant import dequantize, params_from_tensor

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Activations f with f(x / s) = f(x) / s for every s > 0.
_HOMOGENEOUS = (schema.ActivationFunctionType.NONE, schema.ActivationFunctionType.RELU)
# Ops between two weighted layers that act on each channel alone and commute with a positive
# per-channel scale (RESHAPE only reorders; its channel is the flat index modulo the channels).
_PASS_THROUGH = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "PAD")
_SWEEPS = 20


# ---- reading and writing constants ----------------------------------------------------------

def weighted_ops(graph: Graph) -> list[Operator]:
    """CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops whose weights are float constants."""
    return [op for op in graph.operators if op.opcode in WEIGHTED_OPS
            and graph.tensors[op.inputs[1]].is_constant and graph.tensors[op.inputs[1]].type == "FLOAT32"]


def float_constant(graph: Graph, index: int) -> np.ndarray:
    return graph.tensors[index].numpy().astype(np.float32)


def replace_constants(tflite: bytes, values: dict[int, np.ndarray], new_biases: dict[int, np.ndarray] | None = None
                      ) -> bytes:
    """The model with the float32 constants of the given tensor indices replaced, and a bias tensor
    added to each op index in `new_biases` (the converter drops all-zero biases).

    A buffer the converter shared between identical constants is split first, so that
    changing one tensor never changes another behind its back.
    """
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    subgraph = model.subgraphs[0]
    users: dict[int, int] = {}
    for sub in model.subgraphs:
        for t in sub.tensors or []:
            users[t.buffer] = users.get(t.buffer, 0) + 1
    for index, array in values.items():
        tensor = subgraph.tensors[index]
        array = np.ascontiguousarray(array, np.float32)
        if tuple(array.shape) != tuple(tensor.shape):
            raise BadInput(f"tensor {index}: new value of shape {array.shape}, the model holds {tuple(tensor.shape)}")
        if users.get(tensor.buffer, 0) > 1:
            users[tensor.buffer] -= 1
            model.buffers.append(schema.BufferT())
            tensor.buffer = len(model.buffers) - 1
        model.buffers[tensor.buffer].data = np.frombuffer(array.tobytes(), np.uint8)
    for op_index, array in (new_biases or {}).items():
        array = np.ascontiguousarray(array, np.float32)
        op = subgraph.operators[op_index]
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(array.tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer = np.array(array.shape, np.int32), schema.TensorType.FLOAT32, \
            len(model.buffers) - 1
        out = subgraph.tensors[op.outputs[0]].name
        tensor.name = (out.decode() if isinstance(out, bytes) else out) + "/bias"
        subgraph.tensors.append(tensor)
        inputs = list(op.inputs)
        inputs = inputs + [-1] * (3 - len(inputs))
        inputs[2] = len(subgraph.tensors) - 1
        op.inputs = np.array(inputs, np.int32)
    builder = flatbuffers.Builder(max(1024, len(tflite) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---- channel bookkeeping ----------------------------------------------------------------------

def _out_axis(opcode: str) -> int:
    return 3 if opcode == "DEPTHWISE_CONV_2D" else 0


def _activation(op: Operator) -> int:
    return getattr(op.options, "fusedActivationFunction", schema.ActivationFunctionType.NONE)


def _consumers(graph: Graph) -> dict[int, list[Operator]]:
    found: dict[int, list[Operator]] = {}
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                found.setdefault(i, []).append(op)
    return found


def _depth_multiplier(graph: Graph, op: Operator) -> int:
    channels_in = graph.tensors[op.inputs[0]].shape[-1]
    return graph.tensors[op.inputs[1]].shape[3] // max(channels_in, 1)


def _consumer_columns(graph: Graph, op: Operator, channels: int) -> tuple[int, np.ndarray]:
    """(axis, producer channel of each index along it) of the consumer's weights."""
    w_shape = graph.tensors[op.inputs[1]].shape
    if op.opcode == "CONV_2D":
        return 3, np.arange(w_shape[3]) % channels
    if op.opcode == "DEPTHWISE_CONV_2D":
        return 3, np.arange(w_shape[3]) // _depth_multiplier(graph, op)
    return 1, np.arange(w_shape[1]) % channels


@dataclass(frozen=True)
class Pair:
    """Two weighted ops whose shared channels can be rescaled without changing the function."""

    first: int  # op index of the producer
    second: int  # op index of the consumer
    channels: int


def equalization_pairs(graph: Graph) -> list[Pair]:
    """Producer/consumer pairs joined only through homogeneous activations and per-channel ops."""
    consumers = _consumers(graph)
    outputs = set(graph.outputs)
    candidates = {op.index for op in weighted_ops(graph)}
    pairs = []
    for op in graph.operators:
        if op.index not in candidates or _activation(op) not in _HOMOGENEOUS:
            continue
        channels = graph.tensors[op.outputs[0]].shape[-1]
        tensor = op.outputs[0]
        while True:
            users = consumers.get(tensor, [])
            if tensor in outputs or len(users) != 1:
                break
            user = users[0]
            if user.opcode in _PASS_THROUGH and user.inputs[0] == tensor:
                if user.opcode == "PAD" or _activation(user) in _HOMOGENEOUS:
                    tensor = user.outputs[0]
                    continue
                break
            if user.index in candidates and user.inputs[0] == tensor:
                if graph.tensors[tensor].shape[-1] % channels == 0:
                    pairs.append(Pair(op.index, user.index, channels))
            break
    return pairs


def _per_channel_absmax(w: np.ndarray, axis: int, groups: np.ndarray, channels: int) -> np.ndarray:
    moved = np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(axis=1)
    out = np.zeros(channels, np.float64)
    np.maximum.at(out, groups, moved)
    return out


@dataclass(frozen=True)
class Equalization:
    tflite: bytes
    pairs: tuple[Pair, ...]
    range_ratio_before: tuple[float, ...]  # max/min of the producer's per-channel weight ranges
    range_ratio_after: tuple[float, ...]


def _spread(r: np.ndarray) -> float:
    r = r[r > 0]
    return float(r.max() / r.min()) if r.size else 1.0


def equalize(tflite: bytes, sweeps: int = _SWEEPS) -> Equalization:
    """Cross-layer equalization of every eligible pair, repeated until the scales settle."""
    graph = read_graph(tflite, "float model")
    pairs = equalization_pairs(graph)
    ops = {op.index: op for op in graph.operators}
    weights: dict[int, np.ndarray] = {}
    for p in pairs:
        for op in (ops[p.first], ops[p.second]):
            weights.setdefault(op.inputs[1], float_constant(graph, op.inputs[1]))
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                weights.setdefault(op.inputs[2], float_constant(graph, op.inputs[2]))

    def ranges(p: Pair) -> tuple[np.ndarray, np.ndarray]:
        first, second = ops[p.first], ops[p.second]
        w1 = weights[first.inputs[1]]
        axis1 = _out_axis(first.opcode)
        r1 = _per_channel_absmax(w1, axis1, np.arange(w1.shape[axis1]), p.channels)
        axis2, groups = _consumer_columns(graph, second, p.channels)
        r2 = _per_channel_absmax(weights[second.inputs[1]], axis2, groups, p.channels)
        return r1, r2

    before = tuple(_spread(ranges(p)[0]) for p in pairs)
    for _ in range(sweeps):
        largest_step = 0.0
        for p in pairs:
            first, second = ops[p.first], ops[p.second]
            r1, r2 = ranges(p)
            scale = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1.0)), 1.0)
            largest_step = max(largest_step, float(np.abs(np.log(scale)).max(initial=0.0)))
            axis1 = _out_axis(first.opcode)
            shape = [1] * weights[first.inputs[1]].ndim
            shape[axis1] = -1
            weights[first.inputs[1]] = (weights[first.inputs[1]] / scale.reshape(shape)).astype(np.float32)
            if len(first.inputs) > 2 and first.inputs[2] >= 0:
                weights[first.inputs[2]] = (weights[first.inputs[2]] / scale).astype(np.float32)
            axis2, groups = _consumer_columns(graph, second, p.channels)
            w2 = weights[second.inputs[1]]
            shape = [1] * w2.ndim
            shape[axis2] = -1
            weights[second.inputs[1]] = (w2 * scale[groups].reshape(shape)).astype(np.float32)
        if largest_step < 1e-6:
            break
    after = tuple(_spread(ranges(p)[0]) for p in pairs)
    return Equalization(replace_constants(tflite, weights) if pairs else tflite, tuple(pairs), before, after)


# ---- bias correction --------------------------------------------------------------------------

def _same_padding(size: int, kernel: int, stride: int, dilation: int, out: int) -> int:
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2


def _patches(x: np.ndarray, kh: int, kw: int, op: Operator, out_hw: tuple[int, int]) -> np.ndarray:
    """(out_h, out_w, kh, kw, channels) windows of one (h, w, channels) map, zero-padded as the op pads."""
    o = op.options
    sh, sw = o.strideH, o.strideW
    dh, dw = max(o.dilationHFactor, 1), max(o.dilationWFactor, 1)
    oh, ow = out_hw
    ph = _same_padding(x.shape[0], kh, sh, dh, oh) if o.padding == schema.Padding.SAME else 0
    pw = _same_padding(x.shape[1], kw, sw, dw, ow) if o.padding == schema.Padding.SAME else 0
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    padded = np.zeros((max(need_h, x.shape[0] + ph), max(need_w, x.shape[1] + pw), x.shape[2]), np.float64)
    padded[ph:ph + x.shape[0], pw:pw + x.shape[1]] = x
    rows = (np.arange(oh) * sh)[:, None] + (np.arange(kh) * dh)[None, :]
    cols = (np.arange(ow) * sw)[:, None] + (np.arange(kw) * dw)[None, :]
    return padded[rows[:, None, :, None], cols[None, :, None, :]]


def linear_map(graph: Graph, op: Operator, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The op's output for one input `x` (without the batch dimension), with weights `w`, without
    bias or activation, in float64: the reference the quantized op is measured against."""
    out_shape = graph.tensors[op.outputs[0]].shape
    if op.opcode == "FULLY_CONNECTED":
        rows = x.reshape(-1, w.shape[1]).astype(np.float64)
        return (rows @ w.T.astype(np.float64)).reshape(out_shape[1:] if len(out_shape) > 1 else out_shape)
    x = x.reshape(graph.tensors[op.inputs[0]].shape[-3:]).astype(np.float64)
    windows = _patches(x, w.shape[1], w.shape[2], op, (out_shape[1], out_shape[2]))  # oh, ow, kh, kw, cin
    if op.opcode == "CONV_2D":
        return np.einsum("abijc,oijc->abo", windows, w.astype(np.float64))
    windows = windows[..., np.arange(w.shape[3]) // _depth_multiplier(graph, op)]  # DEPTHWISE_CONV_2D
    return np.einsum("abijo,ijo->abo", windows, w[0].astype(np.float64))


def linear_response(graph: Graph, op: Operator, x_mean: np.ndarray, w: np.ndarray) -> np.ndarray:
    """`linear_map` averaged over output positions: one value per output channel. With the mean
    input and w = W_q - W, the mean output shift weight quantization causes."""
    y = linear_map(graph, op, x_mean, w)
    return y.reshape(-1, y.shape[-1]).mean(axis=0)


_ACTIVATION_FUNCTIONS = {
    schema.ActivationFunctionType.NONE: lambda y: y,
    schema.ActivationFunctionType.RELU: lambda y: np.maximum(y, 0.0),
    schema.ActivationFunctionType.RELU6: lambda y: np.clip(y, 0.0, 6.0),
    schema.ActivationFunctionType.RELU_N1_TO_1: lambda y: np.clip(y, -1.0, 1.0),
    schema.ActivationFunctionType.TANH: np.tanh,
}


def float_op(graph: Graph, op: Operator, x: np.ndarray) -> np.ndarray:
    """The weighted op of a float model applied to one input: weights, bias, fused activation."""
    y = linear_map(graph, op, x, float_constant(graph, op.inputs[1]))
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        y = y + float_constant(graph, op.inputs[2])
    return _ACTIVATION_FUNCTIONS.get(_activation(op), lambda v: v)(y)


@dataclass(frozen=True)
class BiasCorrection:
    tflite: bytes
    shifts: dict[str, float]  # op output name -> largest |shift| removed from its bias


def correct_bias(tflite: bytes, quantized_weights: list[np.ndarray], input_means: dict[int, np.ndarray],
                 skip: frozenset[str] = frozenset()) -> BiasCorrection:
    """Subtract from each layer's bias the mean output shift its weight quantization causes.

    `quantized_weights` are the weights of every weighted op of the quantized model, in graph order,
    dequantized to float (see `dequantized_weights`); `input_means` maps tensor indices of the float
    model to their mean over the calibration data. An op whose input mean is unknown is left alone,
    and so is one whose output is named in `skip` (a layer that stays float: no weight error to undo).
    """
    graph = read_graph(tflite, "float model")
    ops = weighted_ops(graph)
    if len(ops) != len(quantized_weights):
        raise BadInput(f"bias correction: the float model has {len(ops)} weighted ops, the quantized one "
                       f"{len(quantized_weights)}")
    corrected: dict[int, np.ndarray] = {}
    added: dict[int, np.ndarray] = {}
    shifts: dict[str, float] = {}
    for op, w_q in zip(ops, quantized_weights):
        w = float_constant(graph, op.inputs[1])
        if w_q.shape != w.shape:
            raise BadInput(f"bias correction: op {op.index} {op.opcode} has weights {w.shape} in the float model "
                           f"but {w_q.shape} in the quantized one")
        if op.inputs[0] not in input_means or graph.tensors[op.outputs[0]].name in skip:
            continue
        shift = linear_response(graph, op, input_means[op.inputs[0]], w_q.astype(np.float32) - w)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            corrected[op.inputs[2]] = (float_constant(graph, op.inputs[2]).astype(np.float64) - shift).astype(np.float32)
        else:  # the converter dropped an all-zero bias: the correction becomes the bias
            added[op.index] = (-shift).astype(np.float32)
        shifts[graph.tensors[op.outputs[0]].name] = float(np.abs(shift).max(initial=0.0))
    changed = corrected or added
    return BiasCorrection(replace_constants(tflite, corrected, added) if changed else tflite, shifts)


def dequantized_weights(quantized_tflite: bytes) -> list[np.ndarray]:
    """The weights of every weighted op of a quantized model, dequantized, in graph order (the
    quantizers keep the float model's order of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED)."""

    graph = read_graph(quantized_tflite, "quantized model")
    found = []
    for op in graph.operators:
        if op.opcode not in WEIGHTED_OPS:
            continue
        w = graph.tensors[op.inputs[1]]
        if w.is_constant and w.type in ("INT8", "INT4") and w.scales:
            found.append(dequantize(w.numpy(), params_from_tensor(w)))
        elif w.is_constant and w.type == "FLOAT32":
            found.append(w.numpy().astype(np.float32))
    return found
