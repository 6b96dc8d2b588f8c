"""The host side of edgeq's serial protocol (docs/serial-protocol.md).

Pure part: framing (`encode_frame`, `FrameDecoder`), the HELLO payload (`HelloInfo`,
`encode_hello`, `decode_hello`) and the RESULT/ERROR payloads. I/O edge: `Link`, one
serial port (a tty, `socket://`, `rfc2217://`, `loop://`) to a device running
`eq_serve()` from edgeq/runtime/eq_protocol.c.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput, ToolFailed
from edgeq.graph import NUMPY_DTYPES

MARKER = b"\xa5\x5a"
HEADER_BYTES = 8  # marker, type, seq, length
CRC_BYTES = 4

HELLO_REQUEST = 0x01
INFER = 0x02
PROFILE_REQUEST = 0x03  # answered only by firmware built with EQ_PROFILE
MEMORY_REQUEST = 0x04
HELLO = 0x81
RESULT = 0x82
PROFILE = 0x83
MEMORY = 0x84
ERROR = 0xEE

ERR_BAD_FRAME = 1
ERR_INPUT_SIZE = 2
ERR_INVOKE_FAILED = 3
ERR_FRAME_TOO_LONG = 4
ERR_UNKNOWN_TYPE = 5
ERROR_NAMES = {
    ERR_BAD_FRAME: "bad frame (CRC mismatch)",
    ERR_INPUT_SIZE: "input size mismatch",
    ERR_INVOKE_FAILED: "invoke failed",
    ERR_FRAME_TOO_LONG: "frame too long",
    ERR_UNKNOWN_TYPE: "unknown message type",
}

HELLO_VERSION = 2  # 2: every input and output of the model, counted in the header
HELLO_ARENA_OFFSET = 4  # EQ_HELLO_ARENA_OFFSET: the harness patches the arena it allocated here
MAX_RANK = 8
MAX_TENSORS = 255  # inputs (and outputs) a HELLO can describe: the count is one byte
# Largest payload the host accepts before it knows the model (HELLO, ERROR, a stale
# RESULT); after HELLO, Link narrows it to what a RESULT of that model can be.
DEFAULT_MAX_PAYLOAD = 1 << 20

_TYPE_CODES = {k: v for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in _TYPE_CODES.items()}


class LinkError(ToolFailed):
    """The device or the serial link failed; exit code 4."""


class LinkTimeout(LinkError):
    pass


class ProtocolError(LinkError):
    """A frame arrived intact but its payload does not follow the protocol."""


class DeviceError(LinkError):
    def __init__(self, code: int, text: str, seq: int | None = None):
        self.code, self.text, self.seq = code, text, seq
        name = ERROR_NAMES.get(code, "unknown error code")
        super().__init__(f"device error {code} ({name}): {text}")


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 (IEEE 802.3), continued from `crc`; the device's eq_crc32 computes the same."""
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def encode_frame(type: int, seq: int, payload: bytes = b"") -> bytes:
    body = struct.pack("<BBI", type, seq & 0xFF, len(payload)) + bytes(payload)
    return MARKER + body + struct.pack("<I", crc32(body))


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


class FrameDecoder:
    """Turns a byte stream into frames, skipping noise.

    A candidate frame starts at a marker; it is rejected when its length exceeds
    `max_payload` or its CRC does not match, and scanning resumes at the byte after
    the marker, so a good frame hidden inside a rejected one is still found.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.max_payload = max_payload
        self.discarded_bytes = 0
        self.crc_failures = 0
        self.length_rejects = 0
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def _discard(self, n: int) -> None:
        del self._buffer[:n]
        self.discarded_bytes += n

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buf = self._buffer
        while True:
            start = buf.find(MARKER)
            if start < 0:
                # A lone first marker byte at the end may begin a frame still arriving.
                self._discard(len(buf) - (1 if buf.endswith(MARKER[:1]) else 0))
                return frames
            self._discard(start)
            if len(buf) < HEADER_BYTES:
                return frames
            type, seq, length = struct.unpack_from("<BBI", buf, 2)
            if length > self.max_payload:
                self.length_rejects += 1
                self._discard(len(MARKER))
                continue
            end = HEADER_BYTES + length + CRC_BYTES
            if len(buf) < end:
                return frames
            (sent_crc,) = struct.unpack_from("<I", buf, end - CRC_BYTES)
            if crc32(bytes(buf[2 : end - CRC_BYTES])) != sent_crc:
                self.crc_failures += 1
                self._discard(len(MARKER))
                continue
            frames.append(Frame(type, seq, bytes(buf[HEADER_BYTES : end - CRC_BYTES])))
            del buf[:end]


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the device reports it; `dtype` in TFLite's words."""

    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0  # 0.0 for a float tensor
    zero_point: int = 0

    @property
    def nbytes(self) -> int:
        count = math.prod(self.shape)
        if self.dtype == "INT4":
            return (count + 1) // 2
        if self.dtype not in NUMPY_DTYPES:
            raise ProtocolError(f"tensor type {self.dtype} has no known element size")
        return count * np.dtype(NUMPY_DTYPES[self.dtype]).itemsize


@dataclass(frozen=True)
class HelloInfo:
    model_hash: bytes  # SHA-256 of the .tflite the firmware was built from
    runtime: str  # the runtime's name, as edgeq.runtimes gives it
    runtime_version: str
    clock_hz: int
    arena_bytes: int
    inputs: tuple[TensorInfo, ...]  # in the model's order: an INFER payload is their bytes, one after another
    outputs: tuple[TensorInfo, ...]  # a RESULT carries their bytes after the cycles
    version: int = HELLO_VERSION

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    def split_outputs(self, data: bytes) -> tuple[bytes, ...]:
        """A RESULT's output bytes, one chunk per output."""
        chunks, pos = [], 0
        for t in self.outputs:
            chunks.append(bytes(data[pos:pos + t.nbytes]))
            pos += t.nbytes
        return tuple(chunks)


def _encode_str(text: str, field: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 255:
        raise BadInput(f"HELLO {field} is {len(data)} bytes in UTF-8; at most 255 fit")
    return bytes([len(data)]) + data


def _encode_tensor(t: TensorInfo, field: str) -> bytes:
    if t.dtype not in _TYPE_CODES:
        raise BadInput(f"HELLO {field} tensor type {t.dtype!r} is not a TFLite TensorType")
    if len(t.shape) > MAX_RANK:
        raise BadInput(f"HELLO {field} tensor shape {list(t.shape)} has rank > {MAX_RANK}")
    return (struct.pack("<BB", _TYPE_CODES[t.dtype], len(t.shape))
            + struct.pack(f"<{len(t.shape)}I", *t.shape)
            + struct.pack("<fi", t.scale, t.zero_point))


def encode_hello(info: HelloInfo) -> bytes:
    """The HELLO payload; codegen emits it as a C array for eq_server_t.hello."""
    if len(info.model_hash) != 32:
        raise BadInput(f"HELLO model_hash is {len(info.model_hash)} bytes; a SHA-256 is 32")
    for what, tensors in (("inputs", info.inputs), ("outputs", info.outputs)):
        if not 1 <= len(tensors) <= MAX_TENSORS:
            raise BadInput(f"HELLO carries 1 to {MAX_TENSORS} {what}; the model has {len(tensors)}")
    return (struct.pack("<BBBxII", info.version, len(info.inputs), len(info.outputs), info.arena_bytes,
                        info.clock_hz)
            + info.model_hash
            + _encode_str(info.runtime, "runtime") + _encode_str(info.runtime_version, "runtime_version")
            + b"".join(_encode_tensor(t, f"input {k}") for k, t in enumerate(info.inputs))
            + b"".join(_encode_tensor(t, f"output {k}") for k, t in enumerate(info.outputs)))


class _Reader:
    def __init__(self, payload: bytes, what: str):
        self.data, self.pos, self.what = payload, 0, what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"{self.what} payload of {len(self.data)} bytes ends inside {field} "
                                f"(at byte {self.pos}, {n} more needed)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, field: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), field))

    def string(self, field: str) -> str:
        (n,) = self.unpack("<B", field)
        return self.take(n, field).decode("utf-8", errors="replace")

    def tensor(self, field: str) -> TensorInfo:
        code, rank = self.unpack("<BB", f"{field} tensor")
        if rank > MAX_RANK:
            raise ProtocolError(f"{self.what} {field} tensor has rank {rank}; at most {MAX_RANK}")
        shape = self.unpack(f"<{rank}I", f"{field} tensor shape")
        scale, zero_point = self.unpack("<fi", f"{field} tensor quantization")
        return TensorInfo(_TYPE_NAMES.get(code, f"TYPE_{code}"), tuple(shape), scale, zero_point)


def decode_hello(payload: bytes) -> HelloInfo:
    r = _Reader(payload, "HELLO")
    (version,) = r.unpack("<B", "version")
    if version != HELLO_VERSION:
        raise ProtocolError(f"HELLO version {version} is not one this edgeq reads ({HELLO_VERSION}); "
                            "rebuild the firmware with this edgeq")
    inputs, outputs = r.unpack("<BB", "tensor counts")
    r.take(1, "reserved byte")
    arena_bytes, clock_hz = r.unpack("<II", "arena_bytes, clock_hz")
    model_hash = r.take(32, "model hash")
    runtime, runtime_version = r.string("runtime"), r.string("runtime_version")
    info = HelloInfo(model_hash=model_hash, runtime=runtime, runtime_version=runtime_version, clock_hz=clock_hz,
                     arena_bytes=arena_bytes, inputs=tuple(r.tensor(f"input {k}") for k in range(inputs)),
                     outputs=tuple(r.tensor(f"output {k}") for k in range(outputs)), version=version)
    if r.pos != len(payload):
        raise ProtocolError(f"HELLO has {len(payload) - r.pos} unexpected bytes after the output tensors")
    return info


def decode_result(payload: bytes, output_nbytes: int) -> tuple[int, bytes]:
    """(cycles, output bytes) from a RESULT, which must carry exactly the output tensors."""
    if len(payload) != 8 + output_nbytes:
        got = f"{len(payload) - 8} output bytes" if len(payload) >= 8 else f"only {len(payload)} bytes"
        raise ProtocolError(f"RESULT carries {got}, but the output tensors take {output_nbytes} bytes "
                            "(is the firmware built from this model?)")
    (cycles,) = struct.unpack_from("<Q", payload)
    return cycles, bytes(payload[8:])


def decode_profile(payload: bytes) -> tuple[int, ...]:
    """The per-step counts of the last INFER from a PROFILE payload: steps u32, then a u32 each."""
    if len(payload) < 4:
        raise ProtocolError(f"PROFILE payload of {len(payload)} bytes has no 4-byte step count")
    (steps,) = struct.unpack_from("<I", payload)
    if len(payload) != 4 + 4 * steps:
        raise ProtocolError(f"PROFILE announces {steps} steps ({4 + 4 * steps} bytes) but carries {len(payload)} bytes")
    return struct.unpack_from(f"<{steps}I", payload, 4)


MEMORY_VERSION = 1


@dataclass(frozen=True)
class DeviceMemory:
    """What a MEMORY reply says: the stack the image reserves and the most of it used since reset
    (found by painting the stack at reset and looking for the deepest overwritten word); 0 when the
    board support cannot tell."""

    stack_bytes: int
    stack_peak_bytes: int


def decode_memory(payload: bytes) -> DeviceMemory:
    if len(payload) != 12:
        raise ProtocolError(f"MEMORY payload of {len(payload)} bytes; version {MEMORY_VERSION} has 12")
    version, stack_bytes, peak = struct.unpack("<B3xII", payload)
    if version != MEMORY_VERSION:
        raise ProtocolError(f"MEMORY version {version}; this edgeq reads version {MEMORY_VERSION}")
    return DeviceMemory(stack_bytes, peak)


def decode_error(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        raise ProtocolError(f"ERROR payload of {len(payload)} bytes has no 2-byte code")
    (code,) = struct.unpack_from("<H", payload)
    return code, bytes(payload[2:]).decode("utf-8", errors="replace")
