"""The host side of edgeq's serial protocol (docs/serial-protocol.md).

Pure part: framing (`encode_frame`, `FrameDecoder`), the HELLO payload (`HelloInfo`,
`encode_hello`, `decode_hello`) and the RESULT/ERROR payloads. I/O edge: `Link`, one
serial port (a tty, `socket://`, `rfc2217://`, `loop://`) to a device running
`eq_serve()` from edgeq/runtime/eq_protocol.c.
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np
import serial
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import BadInput, ToolFailed
from edgeq.graph import NUMPY_DTYPES

MARKER = b"\xa5\x5a"
HEADER_BYTES = 8  # marker, type, seq, length
CRC_BYTES = 4

HELLO_REQUEST = 0x01
INFER = 0x02
HELLO = 0x81
RESULT = 0x82
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

HELLO_VERSION = 1
HELLO_ARENA_OFFSET = 4  # EQ_HELLO_ARENA_OFFSET: the harness patches the arena it allocated here
MAX_RANK = 8
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
    runtime: str  # "edgeq-c", "tflm"
    runtime_version: str
    clock_hz: int
    arena_bytes: int
    input: TensorInfo
    output: TensorInfo
    version: int = HELLO_VERSION


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
    return (struct.pack("<B3xII", info.version, info.arena_bytes, info.clock_hz)
            + info.model_hash
            + _encode_str(info.runtime, "runtime") + _encode_str(info.runtime_version, "runtime_version")
            + _encode_tensor(info.input, "input") + _encode_tensor(info.output, "output"))


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
    r.take(3, "reserved bytes")
    arena_bytes, clock_hz = r.unpack("<II", "arena_bytes, clock_hz")
    model_hash = r.take(32, "model hash")
    info = HelloInfo(model_hash=model_hash, runtime=r.string("runtime"),
                     runtime_version=r.string("runtime_version"), clock_hz=clock_hz,
                     arena_bytes=arena_bytes, input=r.tensor("input"), output=r.tensor("output"),
                     version=version)
    if r.pos != len(payload):
        raise ProtocolError(f"HELLO has {len(payload) - r.pos} unexpected bytes after the output tensor")
    return info


def decode_result(payload: bytes, output_nbytes: int) -> tuple[int, bytes]:
    """(cycles, output bytes) from a RESULT, which must carry exactly the output tensor."""
    if len(payload) != 8 + output_nbytes:
        got = f"{len(payload) - 8} output bytes" if len(payload) >= 8 else f"only {len(payload)} bytes"
        raise ProtocolError(f"RESULT carries {got}, but the output tensor takes {output_nbytes} bytes "
                            "(is the firmware built from this model?)")
    (cycles,) = struct.unpack_from("<Q", payload)
    return cycles, bytes(payload[8:])


def decode_error(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        raise ProtocolError(f"ERROR payload of {len(payload)} bytes has no 2-byte code")
    (code,) = struct.unpack_from("<H", payload)
    return code, bytes(payload[2:]).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class LinkStats:
    received_bytes: int
    discarded_bytes: int
    crc_failures: int
    retries: int


class Link:
    """A serial connection to a device running eq_serve()."""

    def __init__(self, port: serial.SerialBase, name: str | None = None):
        self.port = port
        self.name = name or getattr(port, "portstr", None) or "serial port"
        self.decoder = FrameDecoder()
        self.info: HelloInfo | None = None
        self.received_bytes = 0
        self.retries = 0
        self._frames: deque[Frame] = deque()
        self._seq = 0

    @classmethod
    def open(cls, url: str, baudrate: int = 115200, poll: float = 0.05) -> Link:
        """`url`: a device path (/dev/ttyACM0), socket://HOST:PORT, rfc2217://..., loop://."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=poll)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LinkError(f"cannot open serial port {url}: {exc}") from exc
        return cls(port, url)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> LinkStats:
        d = self.decoder
        return LinkStats(self.received_bytes, d.discarded_bytes, d.crc_failures, self.retries)

    def next_seq(self) -> int:
        # seq 0 is left to the device's unprompted HELLO
        self._seq = self._seq % 255 + 1
        return self._seq

    def send_frame(self, type: int, seq: int, payload: bytes = b"") -> None:
        self.send_raw(encode_frame(type, seq, payload))

    def send_raw(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"writing to {self.name} failed: {exc}") from exc

    def read_frame(self, deadline: float) -> Frame | None:
        """The next intact frame, or None once time.monotonic() passes `deadline`."""
        while not self._frames:
            if time.monotonic() >= deadline:
                return None
            self._read_some()
        return self._frames.popleft()

    def _read_some(self) -> None:
        """Waits at most one poll interval for bytes and decodes what came."""
        try:
            data = self.port.read(max(1, self.port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"reading from {self.name} failed: {exc}") from exc
        self.received_bytes += len(data)
        self._frames.extend(self.decoder.feed(data))

    def _diagnosis(self) -> str:
        s = self.stats
        text = (f"{s.received_bytes} bytes received, {s.discarded_bytes} discarded, "
                f"{s.crc_failures} CRC failures")
        if s.received_bytes and s.discarded_bytes == s.received_bytes:
            text += "; nothing but noise arrived: check the baud rate"
        return text

    def hello(self, timeout: float = 5.0, request_interval: float = 0.5) -> HelloInfo:
        """Waits for the device's unprompted HELLO, asking again every `request_interval`."""
        start = time.monotonic()
        deadline = start + timeout
        wait_until = min(deadline, start + min(0.2, request_interval))
        requests = 0
        while True:
            frame = self.read_frame(wait_until)
            if frame is not None:
                if frame.type == HELLO:
                    self.info = decode_hello(frame.payload)
                    self.decoder.max_payload = max(8 + self.info.output.nbytes, 4096)
                    return self.info
                if frame.type == ERROR and decode_error(frame.payload)[0] != ERR_BAD_FRAME:  # why it cannot start
                    raise LinkError(f"the firmware on {self.name} did not start: {decode_error(frame.payload)[1]}")
                continue
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"no HELLO from the device on {self.name} within {timeout:.1f} s "
                                  f"({requests} HELLO_REQUESTs sent; {self._diagnosis()})")
            self.send_frame(HELLO_REQUEST, self.next_seq())
            requests += 1
            wait_until = min(deadline, time.monotonic() + request_interval)

    def infer(self, input_bytes: bytes, timeout: float = 5.0, retries: int = 2) -> tuple[int, bytes]:
        """(cycles, output bytes) for one input. Each attempt waits up to `timeout` s;
        a corrupted or missing reply makes the host send the request again, up to
        `retries` times, with a fresh seq (inference is idempotent)."""
        info = self.info or self.hello(timeout)
        if len(input_bytes) != info.input.nbytes:
            raise BadInput(f"input is {len(input_bytes)} bytes, but the device's input tensor "
                           f"({info.input.dtype} {list(info.input.shape)}) takes {info.input.nbytes} bytes")
        sent: list[int] = []
        last_problem = ""
        for attempt in range(retries + 1):
            if attempt:
                self.retries += 1
            seq = self.next_seq()
            sent.append(seq)
            self.send_frame(INFER, seq, input_bytes)
            crc_failures = self.decoder.crc_failures
            deadline = time.monotonic() + timeout
            last_problem = "timeout"
            while True:
                if self._frames:
                    frame = self._frames.popleft()
                    if frame.type == RESULT and frame.seq in sent:
                        return decode_result(frame.payload, info.output.nbytes)
                    if frame.type == ERROR and frame.seq in sent:
                        code, text = decode_error(frame.payload)
                        if code != ERR_BAD_FRAME:
                            raise DeviceError(code, text, frame.seq)
                        if frame.seq == seq:  # the device got this request garbled
                            last_problem = f"the device reported a bad frame ({text})"
                            break
                    continue  # a reply to an earlier request, or an unprompted HELLO
                if self.decoder.crc_failures > crc_failures:  # the reply came garbled
                    last_problem = "the reply failed its CRC"
                    break
                if time.monotonic() >= deadline:
                    break
                self._read_some()
        if last_problem == "timeout":
            raise LinkTimeout(f"no RESULT for INFER (seq {', '.join(map(str, sent))}) from the device on "
                              f"{self.name}: {retries + 1} attempt(s) of {timeout:.1f} s each "
                              f"({self._diagnosis()})")
        raise LinkError(f"INFER failed on {self.name} after {retries + 1} attempt(s): {last_problem} "
                        f"({self._diagnosis()})")
