"""Small models with what published phone models carry and the converter does not write: MediaPipe's
custom ops, built in the tests by rewriting a converted model's flatbuffer."""

from __future__ import annotations

import struct

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

TRANSPOSE_CONV_BIAS = "Convolution2DTransposeBias"  # MediaPipe's op: TRANSPOSE_CONV with its bias, one op
_PADDING = {schema.Padding.SAME: 1, schema.Padding.VALID: 2}  # TfLitePadding, as the op's options hold it


def _packed(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _custom_code(model: schema.ModelT, name: str) -> int:
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = name.encode(), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _zero_bias(model: schema.ModelT, subgraph, channels: int) -> int:
    buffer = schema.BufferT()
    buffer.data = list(np.zeros(channels, np.float32).tobytes())
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [channels], schema.TensorType.FLOAT32, \
        len(model.buffers) - 1, b"transpose_conv_bias"
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def with_transpose_conv_bias(tflite: bytes) -> bytes:
    """Every float TRANSPOSE_CONV as MediaPipe's Convolution2DTransposeBias custom op (inputs: data,
    filter, bias; options: TfLiteTransposeConvParams), as its segmentation models carry it. LiteRT's
    XNNPACK delegate runs that op; its built-in op set and the calibrator have no kernel for it."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    custom = _custom_code(model, TRANSPOSE_CONV_BIAS)
    subgraph = model.subgraphs[0]
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.TRANSPOSE_CONV:
            continue
        options = op.builtinOptions
        _, weights, data = op.inputs[:3]
        bias = op.inputs[3] if len(op.inputs) > 3 and op.inputs[3] >= 0 else \
            _zero_bias(model, subgraph, subgraph.tensors[weights].shape[0])
        op.inputs, op.opcodeIndex = [data, weights, bias], custom
        op.builtinOptionsType, op.builtinOptions = 0, None
        op.customOptions = list(struct.pack("<iii", _PADDING[options.padding], options.strideW, options.strideH))
    return _packed(model)


def with_custom_op(tflite: bytes, op_index: int, name: str) -> bytes:
    """Operator `op_index` renamed to the custom op `name`, which no runtime has."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    op = model.subgraphs[0].operators[op_index]
    op.opcodeIndex = _custom_code(model, name)
    op.builtinOptionsType, op.builtinOptions, op.customOptions = 0, None, None
    return _packed(model)
