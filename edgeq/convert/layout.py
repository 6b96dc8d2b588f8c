"""Channel-last fix-ups for a float .tflite converted from a channels-first (PyTorch, ONNX) model.

litert-torch turns a channels-first model into channel-last convolutions and pools, but keeps
PyTorch's meaning of `flatten`: the NCHW order of the elements. It writes that as a TRANSPOSE back
to NCHW before the RESHAPE that flattens, which edgeq-c has no kernel for (the model would then
fall back to TFLM) and which costs a copy of the feature map on the device.

`fold_flatten_transposes` removes such a TRANSPOSE when everything that reads the flattened
vector is a FULLY_CONNECTED with constant weights: it flattens the NHWC tensor directly and
permutes the weight columns to match, W'[:, (h, w, c)] = W[:, (c, h, w)]. The float function is
unchanged (a test checks the outputs agree); the model is then only ops edgeq-c runs.
"""

from __future__ import annotations

import numpy as np

from edgeq.graph import read_graph

_TO_CHANNELS_FIRST = {4: (0, 3, 1, 2), 3: (0, 2, 1)}


def fold_flatten_transposes(tflite: bytes) -> tuple[bytes, int]:
    """The model with each foldable TRANSPOSE -> RESHAPE(flat) -> FULLY_CONNECTED chain's TRANSPOSE
    removed, and how many were removed."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    graph = read_graph(tflite)
    consumers: dict[int, list] = {}
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                consumers.setdefault(i, []).append(op)
    outputs = set(graph.outputs)
    plans = []  # (transpose op index, reshape op index, [(weight tensor, permuted weights)])
    for op in graph.operators:
        if op.opcode != "TRANSPOSE" or len(op.inputs) < 2:
            continue
        src, perm_t, out = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], op.outputs[0]
        rank = len(src.shape)
        if rank not in _TO_CHANNELS_FIRST or not perm_t.is_constant or src.type != "FLOAT32" or out in outputs:
            continue
        if tuple(int(p) for p in perm_t.numpy().ravel()) != _TO_CHANNELS_FIRST[rank] or src.shape[0] != 1:
            continue
        readers = consumers.get(out, [])
        if len(readers) != 1 or readers[0].opcode != "RESHAPE":
            continue
        reshape = readers[0]
        flat = graph.tensors[reshape.outputs[0]]
        size = int(np.prod(src.shape))
        if tuple(flat.shape) != (1, size) or reshape.outputs[0] in outputs:
            continue
        fcs = consumers.get(reshape.outputs[0], [])
        if not fcs or any(fc.opcode != "FULLY_CONNECTED" or fc.inputs[0] != reshape.outputs[0]
                          or not graph.tensors[fc.inputs[1]].is_constant
                          or graph.tensors[fc.inputs[1]].type != "FLOAT32" for fc in fcs):
            continue
        # column k of the channel-last flat vector is element (h, w, c) = column order[k] of the NCHW one
        channels_first = (src.shape[-1], *src.shape[1:-1])
        order = np.arange(size).reshape(channels_first).transpose(*range(1, rank - 1), 0).ravel()
        weights = [(fc.inputs[1], graph.tensors[fc.inputs[1]].numpy().astype(np.float32)[:, order]) for fc in fcs]
        plans.append((op.index, reshape.index, op.inputs[0], weights))
    if not plans:
        return tflite, 0
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    subgraph = model.subgraphs[0]
    for _, reshape_index, source, weights in plans:
        reshape = subgraph.operators[reshape_index]
        inputs = list(reshape.inputs)
        inputs[0] = source
        reshape.inputs = np.array(inputs, np.int32)
        for tensor_index, array in weights:
            buffer = schema.BufferT()  # a buffer of its own: another tensor may share the old one
            buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
            model.buffers.append(buffer)
            subgraph.tensors[tensor_index].buffer = len(model.buffers) - 1
    dropped = {transpose for transpose, *_ in plans}
    subgraph.operators = [op for i, op in enumerate(subgraph.operators) if i not in dropped]
    # An operator code no op uses any more must go too: the calibrator's op resolver refuses it.
    used = sorted({op.opcodeIndex for sub in model.subgraphs for op in sub.operators})
    renumber = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for sub in model.subgraphs:
        for op in sub.operators:
            op.opcodeIndex = renumber[op.opcodeIndex]
    builder = flatbuffers.Builder(max(1024, len(tflite) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), len(plans)
