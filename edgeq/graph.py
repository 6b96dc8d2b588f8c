"""A .tflite flatbuffer read into plain dataclasses: tensors, operators, quantization.

Parsing goes through the schema module that ships with ai-edge-litert; edgeq has no
flatbuffer parser of its own. Everything downstream (codegen, measure, the edgeq-c
compiler, the planner) reads a model through `read_graph`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

# TensorType name -> numpy dtype of one stored element. INT4 is stored packed, two a byte.
NUMPY_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
    "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
    "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
    "BOOL": np.bool_, "INT4": np.int8,
}


# TFLite stores INT4 tensors packed: two signed nibbles a byte, the lower index in the low nibble.

def pack_int4(values: np.ndarray) -> np.ndarray:
    """Two signed 4-bit values a byte, the lower index in the low nibble; an odd count pads 0."""
    v = np.asarray(values).ravel()
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise BadInput(f"int4 values must be integers, got dtype {v.dtype}")
    outside = np.flatnonzero((v < -8) | (v > 7))
    if outside.size:
        i = int(outside[0])
        raise BadInput(f"int4 values must lie in [-8, 7]: value {int(v[i])} at index {i}")
    if v.size % 2:
        v = np.append(v, 0)
    nibbles = (v.astype(np.int16) & 0xF).astype(np.uint8)
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_int4(packed: np.ndarray | bytes, count: int) -> np.ndarray:
    """The inverse of pack_int4: `count` int8 values, sign-extended from their nibbles."""
    if isinstance(packed, (bytes, bytearray, memoryview)):
        packed = np.frombuffer(packed, np.uint8)
    p = np.asarray(packed).ravel()
    if p.dtype not in (np.uint8, np.int8):
        raise BadInput(f"packed int4 data must be bytes (uint8 or int8), got dtype {p.dtype}")
    p = p.view(np.uint8)
    if count < 0 or 2 * p.size < count:
        raise BadInput(f"int4 data of {p.size} bytes cannot hold {count} values")
    out = np.empty(2 * p.size, np.int8)
    out[0::2] = (p << 4).view(np.int8) >> 4  # shift the low nibble up so >> sign-extends it
    out[1::2] = p.view(np.int8) >> 4
    return out[:count]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: str  # TFLite TensorType name: "INT8", "FLOAT32", ...
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data: bytes | None = None  # constant tensors only (weights, biases, shapes)
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def element_count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.type == "INT4":
            return (self.element_count + 1) // 2
        return self.element_count * np.dtype(NUMPY_DTYPES.get(self.type, np.uint8)).itemsize

    def numpy(self) -> np.ndarray:
        """The constant's values (INT4 unpacked to one int8 per value)."""
        if self.data is None:
            raise ValueError(f"tensor {self.index} '{self.name}' is not a constant")
        if self.type == "INT4":
            return unpack_int4(np.frombuffer(self.data, np.uint8), self.element_count).reshape(self.shape)
        return np.frombuffer(self.data, NUMPY_DTYPES[self.type]).reshape(self.shape)


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str  # TFLite BuiltinOperator name: "CONV_2D", "FULLY_CONNECTED", ...
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: object | None = None  # the schema's *OptionsT object, or None
    version: int = 1


@dataclass(frozen=True)
class Graph:
    """The first subgraph of a model, which is what microcontroller runtimes execute."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_count: int = 1
    description: str = ""
    metadata: dict[str, bytes] = field(default_factory=dict)
    # The first signature's names of the subgraph's inputs and outputs: tensor index -> name.
    signature: dict[int, str] = field(default_factory=dict)

    @property
    def op_names(self) -> list[str]:
        """The distinct operator names, in the order they first run."""
        return list(dict.fromkeys(op.opcode for op in self.operators))

    def io_name(self, index: int) -> str:
        """An input's or output's name as the model's signature gives it, else its tensor's own (without
        the converter's "serving_default_" prefix and ":0" suffix)."""
        if index in self.signature:
            return self.signature[index]
        name = self.tensors[index].name.removeprefix("serving_default_")
        return name[:-2] if name.endswith(":0") else name

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def constant_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors if t.is_constant)


def ops_text(ops: Iterable[tuple[int | None, str]]) -> str:
    """Ops named as errors name them, each kind once with where it runs: "CUSTOM:MyOp (op 4),
    VAR_HANDLE (ops 0, 7)"; `ops` are (index or None, name) pairs."""
    where: dict[str, list[int]] = {}
    for index, name in ops:
        where.setdefault(name, [])
        if index is not None:
            where[name].append(index)
    parts = []
    for name, indices in where.items():
        shown = ", ".join(map(str, indices[:3])) + (", ..." if len(indices) > 3 else "")
        parts.append(f"{name} (op{'s' if len(indices) > 1 else ''} {shown})" if indices else name)
    return ", ".join(parts)


def _decode(name) -> str:
    # Names are for people; TFLite does not check their encoding, so neither does edgeq.
    return name.decode(errors="replace") if isinstance(name, bytes) else (name or "")


def read_graph(tflite: bytes, source: str = "<bytes>") -> Graph:
    """Parse a .tflite flatbuffer. `source` names the file in error messages."""
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise BadInput(f"{source}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    except Exception as exc:  # the generated parser raises whatever struct/index error it hits
        raise BadInput(f"{source}: corrupt TensorFlow Lite flatbuffer ({exc})") from exc
    if not model.subgraphs:
        raise BadInput(f"{source}: the model has no subgraph")
    graph = model.subgraphs[0]
    buffers = model.buffers or []

    def buffer_bytes(index: int) -> bytes | None:
        if index <= 0 or index >= len(buffers):
            return None
        buf = buffers[index]
        if buf.data is not None and len(buf.data):
            return bytes(bytearray(buf.data))
        if buf.offset and buf.size:  # models past 2 GB keep buffers after the flatbuffer
            return bytes(tflite[buf.offset : buf.offset + buf.size])
        return None

    tensors = []
    for i, t in enumerate(graph.tensors or []):
        q = t.quantization
        scales = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
        zps = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
        tensors.append(Tensor(
            index=i,
            name=_decode(t.name),
            shape=tuple(int(d) for d in (t.shape if t.shape is not None else ())),
            type=_TYPE_NAMES.get(t.type, f"TYPE_{t.type}"),
            scales=scales,
            zero_points=zps,
            quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
            data=buffer_bytes(t.buffer),
            is_variable=bool(t.isVariable),
        ))

    def indices(values, what: str, optional: bool = False) -> tuple[int, ...]:
        out = tuple(int(x) for x in (values if values is not None else ()))
        low = -1 if optional else 0  # -1 marks an omitted optional operator input
        bad = [x for x in out if not low <= x < len(tensors)]
        if bad:
            raise BadInput(f"{source}: corrupt TensorFlow Lite flatbuffer ({what} refers to tensor {bad[0]}, "
                           f"but the first subgraph has {len(tensors)} tensors)")
        return out

    codes = model.operatorCodes or []
    operators = []
    for i, op in enumerate(graph.operators or []):
        if op.opcodeIndex >= len(codes):
            raise BadInput(f"{source}: corrupt TensorFlow Lite flatbuffer (operator {i} uses opcode "
                           f"{op.opcodeIndex}, but the model has {len(codes)} operator codes)")
        code = codes[op.opcodeIndex]
        # Old models keep ops < 127 in deprecated_builtin_code only; the larger of the two is right.
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = _OPCODE_NAMES.get(builtin, f"OP_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{_decode(code.customCode)}"
        operators.append(Operator(
            index=i,
            opcode=name,
            inputs=indices(op.inputs, f"operator {i}'s inputs", optional=True),
            outputs=indices(op.outputs, f"operator {i}'s outputs", optional=True),
            options=op.builtinOptions,
            version=int(code.version),
        ))

    signature = {}
    for sig in (model.signatureDefs or [])[:1]:
        if sig.subgraphIndex == 0:
            for entry in [*(sig.inputs or []), *(sig.outputs or [])]:
                if 0 <= entry.tensorIndex < len(tensors):
                    signature[int(entry.tensorIndex)] = _decode(entry.name)

    metadata = {}
    for m in model.metadata or []:
        data = buffer_bytes(m.buffer)
        if data is not None:
            metadata[_decode(m.name)] = data

    return Graph(
        tensors=tuple(tensors),
        operators=tuple(operators),
        inputs=indices(graph.inputs, "the subgraph's inputs"),
        outputs=indices(graph.outputs, "the subgraph's outputs"),
        subgraph_count=len(model.subgraphs),
        description=_decode(model.description),
        metadata=metadata,
        signature=signature,
    )
