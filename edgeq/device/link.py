"""The I/O edge of the serial protocol: `Link`, one serial port (a tty, `socket://`,
`rfc2217://`, `loop://`) to a device running `eq_serve()` from edgeq/runtime/eq_protocol.c; the
frames and payloads it speaks are edgeq.protocol's."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import serial

from edgeq.errors import BadInput
from edgeq.protocol import (
    ERR_BAD_FRAME,
    ERR_UNKNOWN_TYPE,
    ERROR,
    HELLO,
    HELLO_REQUEST,
    INFER,
    MEMORY,
    MEMORY_REQUEST,
    PROFILE,
    PROFILE_REQUEST,
    RESULT,
    DeviceError,
    DeviceMemory,
    Frame,
    FrameDecoder,
    HelloInfo,
    LinkError,
    LinkTimeout,
    ProtocolError,
    decode_error,
    decode_hello,
    decode_memory,
    decode_profile,
    decode_result,
    encode_frame,
)

_REPLY_NAMES = {RESULT: "RESULT", PROFILE: "PROFILE", MEMORY: "MEMORY"}


class ProfileUnsupported(LinkError):
    """The firmware answers INFER but was not built to count its steps."""


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
                    info = decode_hello(frame.payload)
                    try:  # kept only once every tensor's size is known
                        info.input_bytes
                        self.decoder.max_payload = max(8 + info.output_bytes, 4096)
                    except ProtocolError as exc:
                        raise ProtocolError(f"HELLO from {self.name}: {exc}") from None
                    self.info = info
                    return info
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
        """(cycles, output bytes) for one sample: every input's bytes, one after another, in; every
        output's, one after another, out. Each attempt waits up to `timeout` s; a corrupted or missing
        reply makes the host send the request again, up to `retries` times, with a fresh seq
        (inference is idempotent)."""
        info = self.info or self.hello(timeout)
        if len(input_bytes) != info.input_bytes:
            tensors = ", ".join(f"{t.dtype} {list(t.shape)}" for t in info.inputs)
            raise BadInput(f"input is {len(input_bytes)} bytes, but the device's inputs ({tensors}) take "
                           f"{info.input_bytes} bytes")
        frame = self._request(INFER, input_bytes, RESULT, "INFER", timeout, retries)
        return decode_result(frame.payload, info.output_bytes)

    def profile(self, timeout: float = 5.0, retries: int = 2) -> tuple[int, ...]:
        """The per-step counts of the last INFER (docs/serial-protocol.md, PROFILE). Firmware built
        without EQ_PROFILE does not know the request: ProfileUnsupported says how to build one that does."""
        try:
            frame = self._request(PROFILE_REQUEST, b"", PROFILE, "PROFILE_REQUEST", timeout, retries)
        except DeviceError as exc:
            if exc.code != ERR_UNKNOWN_TYPE:
                raise
            raise ProfileUnsupported(
                f"the firmware on {self.name} counts no steps (it was built without EQ_PROFILE): build the "
                "profiled image with `make PROFILE=1` (edgeq build --profile), flash it, and measure again") from None
        return decode_profile(frame.payload)

    def memory(self, timeout: float = 5.0, retries: int = 2) -> DeviceMemory | None:
        """The firmware's stack use so far (MEMORY), or None from firmware that predates the message."""
        try:
            frame = self._request(MEMORY_REQUEST, b"", MEMORY, "MEMORY_REQUEST", timeout, retries)
        except DeviceError as exc:
            if exc.code != ERR_UNKNOWN_TYPE:
                raise
            return None
        return decode_memory(frame.payload)

    def _request(self, type: int, payload: bytes, reply: int, what: str, timeout: float, retries: int) -> Frame:
        """Sends an idempotent request and returns its reply frame, resending on a garbled or missing reply."""
        sent: list[int] = []
        last_problem = ""
        for attempt in range(retries + 1):
            if attempt:
                self.retries += 1
            seq = self.next_seq()
            sent.append(seq)
            self.send_frame(type, seq, payload)
            crc_failures = self.decoder.crc_failures
            deadline = time.monotonic() + timeout
            last_problem = "timeout"
            while True:
                if self._frames:
                    frame = self._frames.popleft()
                    if frame.type == reply and frame.seq in sent:
                        return frame
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
            seqs = ", ".join(map(str, sent))
            raise LinkTimeout(f"no {_REPLY_NAMES[reply]} for {what} (seq {seqs}) from the device on "
                              f"{self.name}: {retries + 1} attempt(s) of {timeout:.1f} s each "
                              f"({self._diagnosis()})")
        raise LinkError(f"{what} failed on {self.name} after {retries + 1} attempt(s): {last_problem} "
                        f"({self._diagnosis()})")
