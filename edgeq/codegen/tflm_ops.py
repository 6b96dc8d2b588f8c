"""Which TFLite operators TensorFlow Lite Micro can run, and how a harness registers each.

A TFLM firmware registers exactly the operators its model uses in a
`tflite::MicroMutableOpResolver<N>`, one `Add...()` call each; registering all of them
(`AllOpsResolver`) would link every kernel into flash. The table below is read from
TFLM's `tensorflow/lite/micro/micro_mutable_op_resolver.h` (tensorflow/tflite-micro at
90b983c2, August 2026); refresh it from that header when TFLM adds kernels.
Keys are TFLite BuiltinOperator names as `edgeq.graph` gives them; custom operators are
"CUSTOM:<custom_code>", which is also how `edgeq.graph` names them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput
from edgeq.graph import Graph

TFLM_SOURCE = "tensorflow/tflite-micro@90b983c2 tensorflow/lite/micro/micro_mutable_op_resolver.h"

BUILTIN_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

# Custom ops TFLM ships, under the custom_code the converter (or TFLM's own tools) writes.
CUSTOM_RESOLVER_METHODS: dict[str, str] = {
    "CUSTOM:CIRCULAR_BUFFER": "AddCircularBuffer",
    "CUSTOM:SignalDelay": "AddDelay",
    "CUSTOM:SignalEnergy": "AddEnergy",
    "CUSTOM:SignalFftAutoScale": "AddFftAutoScale",
    "CUSTOM:SignalFilterBank": "AddFilterBank",
    "CUSTOM:SignalFilterBankLog": "AddFilterBankLog",
    "CUSTOM:SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "CUSTOM:SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "CUSTOM:SignalFramer": "AddFramer",
    "CUSTOM:SignalIrfft": "AddIrfft",
    "CUSTOM:SignalOverlapAdd": "AddOverlapAdd",
    "CUSTOM:SignalPCAN": "AddPCAN",
    "CUSTOM:SignalRfft": "AddRfft",
    "CUSTOM:SignalStacker": "AddStacker",
    "CUSTOM:SignalWindow": "AddWindow",
    "CUSTOM:TFLM_DECODE": "AddDecode",
    "CUSTOM:TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "CUSTOM:ethos-u": "AddEthosU",
}

RESOLVER_METHODS: dict[str, str] = {**BUILTIN_RESOLVER_METHODS, **CUSTOM_RESOLVER_METHODS}

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _not_supported(op: str, where: str | None) -> BadInput:
    place = f" ({where})" if where else ""
    return BadInput(f"op '{op}'{place} is not supported by TensorFlow Lite Micro")


def tflm_resolver_method(op: str, index: int | None = None) -> str:
    """The MicroMutableOpResolver method that registers `op`; `index` (the operator's
    position in the model) only goes into the error message."""
    try:
        return RESOLVER_METHODS[op]
    except KeyError:
        raise _not_supported(op, None if index is None else f"index {index}") from None


def unsupported_ops(op_names: Iterable[str]) -> list[str]:
    """The names among `op_names` that TFLM has no kernel for, in their given order."""
    return list(dict.fromkeys(op for op in op_names if op not in RESOLVER_METHODS))


def model_op_names(tflite: bytes, graph: Graph) -> list[str]:
    """Every distinct operator the model runs: `graph.op_names` (the first subgraph), then
    those found only in further subgraphs (bodies of IF/WHILE/CALL_ONCE), which TFLM must
    resolve too but `Graph` does not describe."""
    names = list(graph.op_names)
    if graph.subgraph_count <= 1:
        return names
    model = schema.Model.GetRootAs(tflite, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        name = _OPCODE_NAMES.get(builtin, f"OP_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
        codes.append(name)
    for s in range(1, model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            name = codes[subgraph.Operators(o).OpcodeIndex()]
            if name not in names:
                names.append(name)
    return names


def check_tflm_ops(op_names: Iterable[str], graph: Graph) -> list[str]:
    """The resolver methods for `op_names`, in order. An op TFLM lacks is a BadInput naming
    it and the operator index where it first runs (or 'nested subgraph'), and any others."""
    op_names = list(op_names)
    missing = unsupported_ops(op_names)
    if missing:
        op = missing[0]
        first = next((o.index for o in graph.operators if o.opcode == op), None)
        message = str(_not_supported(op, f"index {first}" if first is not None else "nested subgraph"))
        if len(missing) > 1:
            message += "; nor are " + ", ".join(f"'{o}'" for o in missing[1:])
        raise BadInput(message)
    return [RESOLVER_METHODS[op] for op in op_names]
