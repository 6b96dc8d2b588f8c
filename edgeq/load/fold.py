"""A float .tflite's constant weights made plain float32 before it is quantized.

Phone models come with fp16 weights behind DEQUANTIZE ops (the converter's fp16 mode), or with
sparse weights behind DENSIFY: neither the converter's calibrator nor a microcontroller runtime
wants them. Each DEQUANTIZE of a constant (float16, or int8 with its scales) becomes the float32
constant it computes, in numpy, exactly as TFLite's kernel does; each DENSIFY of a constant
becomes the dense constant LiteRT computes for it. The folded ops are gone from the graph; the
model's inputs, outputs and signature stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput
from edgeq.graph import read_graph

_FOLDED = ("DEQUANTIZE", "DENSIFY")


@dataclass(frozen=True)
class Folded:
    tflite: bytes
    ops: tuple[str, ...]  # "op 3 DEQUANTIZE (float16 'conv/kernel')" for each op folded away
    fp16_weights: bool  # the weights came as float16: the model came fp16


def _dequantized(tensor) -> np.ndarray:
    data = tensor.data
    if tensor.type == "FLOAT16":
        return np.frombuffer(data, np.float16).astype(np.float32).reshape(tensor.shape)
    if tensor.type in ("INT8", "UINT8", "INT16") and tensor.scales:
        dtype = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}[tensor.type]
        q = np.frombuffer(data, dtype).astype(np.float32).reshape(tensor.shape)
        scales = np.asarray(tensor.scales, np.float32)
        zero_points = np.asarray(tensor.zero_points or (0,) * len(scales), np.float32)
        if len(scales) > 1:  # per channel, along the quantized dimension
            shape = [1] * q.ndim
            shape[tensor.quantized_dimension] = len(scales)
            scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
        return ((q - zero_points) * scales).astype(np.float32)
    raise ValueError(f"a DEQUANTIZE of a {tensor.type} constant")


def _densified(tflite: bytes, tensor_index: int, source: str) -> np.ndarray:
    """The dense values LiteRT computes for a DENSIFY's output (it needs every op of the model)."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # The built-in kernels: XNNPACK takes the sparse weights itself and leaves DENSIFY's output unwritten.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # preserving every tensor is "for debugging": it is what is wanted
            interpreter = Interpreter(model_content=tflite, experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        interpreter.invoke()
        return np.array(interpreter.get_tensor(tensor_index), np.float32)
    except Exception as exc:
        raise BadInput(f"{source}: the sparse weights (DENSIFY) could not be densified: LiteRT cannot run the "
                       f"model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def fold_constant_weights(tflite: bytes, source: str = "the model") -> Folded:
    """`tflite` with every DEQUANTIZE and DENSIFY of a constant replaced by its float32 result."""
    graph = read_graph(tflite, source)
    todo = [op for op in graph.operators if op.opcode in _FOLDED and op.inputs
            and graph.tensors[op.inputs[0]].is_constant and graph.tensors[op.outputs[0]].type == "FLOAT32"]
    if not todo:
        return Folded(tflite, (), False)
    values, notes = {}, []
    fp16 = False
    for op in todo:
        tensor = graph.tensors[op.inputs[0]]
        try:
            result = _dequantized(tensor) if op.opcode == "DEQUANTIZE" else _densified(tflite, op.outputs[0], source)
        except ValueError as exc:
            raise BadInput(f"{source}: op {op.index} DEQUANTIZE: {exc} cannot be folded") from None
        fp16 = fp16 or tensor.type == "FLOAT16"
        values[op.outputs[0]] = result
        notes.append(f"op {op.index} {op.opcode} ({tensor.type.lower()} '{tensor.name}')")
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    subgraph = model.subgraphs[0]
    for index, value in values.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(value, np.float32).tobytes(), np.uint8)
        model.buffers.append(buffer)
        subgraph.tensors[index].buffer = len(model.buffers) - 1
    folded = {op.index for op in todo}
    subgraph.operators = [op for i, op in enumerate(subgraph.operators) if i not in folded]
    _drop_unused_tensors(model)
    _drop_unused_operator_codes(model)
    builder = flatbuffers.Builder(max(1024, len(tflite) * 2 + 1024))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return Folded(bytes(builder.Output()), tuple(notes), fp16)


def _drop_unused_tensors(model) -> None:
    """The first subgraph without the tensors nothing reads or writes any more (the folded ops'
    float16 or sparse inputs), and their buffers emptied; tensor indices renumbered everywhere."""
    subgraph = model.subgraphs[0]
    used = set(subgraph.inputs) | set(subgraph.outputs)
    for op in subgraph.operators:
        used |= {int(i) for i in op.inputs if i >= 0} | {int(i) for i in op.outputs if i >= 0}
    keep = [i for i in range(len(subgraph.tensors)) if i in used]
    if len(keep) == len(subgraph.tensors):
        return
    new = {old: k for k, old in enumerate(keep)}
    for i, tensor in enumerate(subgraph.tensors):
        if i not in used and tensor.buffer > 0:
            model.buffers[tensor.buffer].data = None
    subgraph.tensors = [subgraph.tensors[i] for i in keep]
    subgraph.inputs = [new[int(i)] for i in subgraph.inputs]
    subgraph.outputs = [new[int(i)] for i in subgraph.outputs]
    for op in subgraph.operators:
        op.inputs = [new[int(i)] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [new[int(i)] if i >= 0 else -1 for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [new[int(i)] for i in op.intermediates if int(i) in new]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for entry in [*(sig.inputs or []), *(sig.outputs or [])]:
                entry.tensorIndex = new.get(entry.tensorIndex, entry.tensorIndex)


def _drop_unused_operator_codes(model) -> None:
    """The operator codes no op uses any more (the folded DEQUANTIZE's), gone: a reader checks every
    code against its kernels, and the converter's calibrator lacks DEQUANTIZE's newer versions."""
    used = sorted({op.opcodeIndex for sg in model.subgraphs for op in sg.operators or []})
    if len(used) == len(model.operatorCodes):
        return
    new = {old: k for k, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for sg in model.subgraphs:
        for op in sg.operators or []:
            op.opcodeIndex = new[op.opcodeIndex]
