"""The serial protocol: framing and HELLO in pure Python, then the real C device side.

The device is tests/c/protocol/protocol_device.c (the board API over stdin/stdout, a
trivial model: output byte i = input[2i] + input[2i+1] mod 256) built with the host
gcc under ASan/UBSan and run on a pseudo-terminal. The device gets the pty master as
its stdin/stdout and the host opens the slave's path (/dev/pts/N) with
`Link.open`, exactly as it opens /dev/ttyACM0 for a real board; pyserial cannot open
a master fd, and the slave is a real tty whose termios pyserial configures.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import tty
from pathlib import Path

import pytest

from edgeq.device.link import Link
from edgeq.errors import BadInput, ToolFailed
from edgeq.protocol import (
    ERROR,
    HELLO,
    HELLO_ARENA_OFFSET,
    HELLO_REQUEST,
    INFER,
    RESULT,
    DeviceError,
    DeviceMemory,
    FrameDecoder,
    HelloInfo,
    LinkError,
    LinkTimeout,
    ProtocolError,
    TensorInfo,
    crc32,
    decode_error,
    decode_hello,
    decode_memory,
    decode_result,
    encode_frame,
    encode_hello,
)
from edgeq.resources import REPO_ROOT, RUNTIME_DIR

DRIVER_DIR = REPO_ROOT / "tests" / "c" / "protocol"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

HELLO_INFO = HelloInfo(
    model_hash=hashlib.sha256(b"protocol test model").digest(),
    runtime="edgeq-c", runtime_version="0.1.0", clock_hz=25_000_000, arena_bytes=0,
    inputs=(TensorInfo("INT8", (1, 4, 4), 0.5, -3),),
    outputs=(TensorInfo("INT8", (1, 8), 0.25, 7),),
)
PATCHED_ARENA_BYTES = 5120  # what the driver writes with eq_hello_set_arena_bytes


def model(x: bytes) -> bytes:
    return bytes((x[2 * i] + x[2 * i + 1]) & 0xFF for i in range(len(x) // 2))


# ---------------------------------------------------------------- pure: framing

def test_crc32_is_the_ieee_802_3_check_value():
    assert crc32(b"123456789") == 0xCBF43926


def test_frames_round_trip_through_the_decoder():
    sent = [(HELLO_REQUEST, 1, b""), (INFER, 2, bytes(range(256)) * 3), (ERROR, 255, b"\x01\x00bad")]
    frames = FrameDecoder().feed(b"".join(encode_frame(*f) for f in sent))
    assert [(f.type, f.seq, f.payload) for f in frames] == sent


def test_decoder_assembles_a_frame_fed_one_byte_at_a_time():
    decoder = FrameDecoder()
    frames = [f for b in encode_frame(RESULT, 9, b"\xa5\x5a\xa5") for f in decoder.feed(bytes([b]))]
    assert [(f.type, f.seq, f.payload) for f in frames] == [(RESULT, 9, b"\xa5\x5a\xa5")]


def test_decoder_resyncs_after_garbage_holding_false_markers():
    rng = random.Random(1)
    garbage = bytearray(rng.randbytes(300))
    garbage[50:52] = b"\xa5\x5a"  # false markers; their lengths are far beyond capacity
    garbage[200:202] = b"\xa5\x5a"
    decoder = FrameDecoder(max_payload=64)
    frames = decoder.feed(bytes(garbage) + encode_frame(RESULT, 3, b"ok"))
    assert [(f.seq, f.payload) for f in frames] == [(3, b"ok")]
    assert decoder.discarded_bytes == 300


def test_decoder_resyncs_after_a_dropped_byte():
    first = encode_frame(INFER, 1, bytes(range(40)))
    dropped = first[:20] + first[21:]
    decoder = FrameDecoder()
    frames = decoder.feed(dropped + encode_frame(INFER, 2, b"next"))
    assert [(f.seq, f.payload) for f in frames] == [(2, b"next")]
    assert decoder.crc_failures == 1


def test_decoder_rejects_a_flipped_bit_by_crc():
    frame = bytearray(encode_frame(RESULT, 4, bytes(16)))
    frame[12] ^= 0x10
    decoder = FrameDecoder()
    assert decoder.feed(bytes(frame)) == []
    assert decoder.crc_failures == 1


def test_decoder_finds_a_good_frame_after_a_truncated_one():
    truncated = encode_frame(INFER, 5, bytes(range(100)))[:30]
    decoder = FrameDecoder()
    frames = decoder.feed(truncated + encode_frame(INFER, 6, b"whole") + bytes(100))
    assert [(f.seq, f.payload) for f in frames] == [(6, b"whole")]


def test_decoder_does_not_wait_for_a_length_beyond_its_capacity():
    bogus = b"\xa5\x5a\x82\x01" + struct.pack("<I", 1 << 30)
    decoder = FrameDecoder(max_payload=1024)
    frames = decoder.feed(bogus + encode_frame(RESULT, 7, b"x"))
    assert [(f.seq, f.payload) for f in frames] == [(7, b"x")]
    assert decoder.length_rejects == 1


def test_decoder_takes_a_marker_right_after_a_lone_first_marker_byte():
    frames = FrameDecoder().feed(b"\xa5" + encode_frame(HELLO, 0, b"h"))
    assert [f.payload for f in frames] == [b"h"]


# ---------------------------------------------------------------- pure: payloads

def test_hello_round_trips():
    assert decode_hello(encode_hello(HELLO_INFO)) == HELLO_INFO


def test_hello_keeps_arena_bytes_at_the_documented_offset():
    hello = bytearray(encode_hello(HELLO_INFO))
    hello[HELLO_ARENA_OFFSET : HELLO_ARENA_OFFSET + 4] = struct.pack("<I", 123456)
    assert decode_hello(bytes(hello)).arena_bytes == 123456


def test_hello_carries_tflite_tensor_type_codes():
    hello = encode_hello(HELLO_INFO)
    strings_end = 44 + 1 + len("edgeq-c") + 1 + len("0.1.0")
    assert hello[strings_end] == 9  # TensorType.INT8
    assert hello[strings_end + 1] == 3  # rank


def test_hello_of_another_version_is_rejected_with_advice():
    hello = bytearray(encode_hello(HELLO_INFO))
    hello[0] = 3
    with pytest.raises(ProtocolError, match="HELLO version 3 .* rebuild the firmware"):
        decode_hello(bytes(hello))


def test_truncated_hello_names_the_field_it_ends_in():
    with pytest.raises(ProtocolError, match="ends inside output 0 tensor quantization"):
        decode_hello(encode_hello(HELLO_INFO)[:-3])


def test_hello_carries_every_input_and_output_in_order_and_splits_a_result_by_output():
    info = HelloInfo(**{**HELLO_INFO.__dict__,
                        "inputs": (TensorInfo("INT8", (1, 6, 6, 1), 0.5, 0), TensorInfo("INT8", (1, 4), 0.25, 1)),
                        "outputs": (TensorInfo("INT8", (1, 3), 0.125, 2), TensorInfo("INT16", (1, 2), 2.0, 0))})
    decoded = decode_hello(encode_hello(info))
    assert decoded == info and (decoded.input_bytes, decoded.output_bytes) == (36 + 4, 3 + 4)
    assert decoded.split_outputs(bytes(range(7))) == (b"\x00\x01\x02", b"\x03\x04\x05\x06")


def test_a_hello_without_inputs_is_refused_when_encoded():
    with pytest.raises(BadInput, match="HELLO carries 1 to 255 inputs; the model has 0"):
        encode_hello(HelloInfo(**{**HELLO_INFO.__dict__, "inputs": ()}))


def test_encode_hello_rejects_a_hash_that_is_not_sha256():
    bad = HelloInfo(**{**HELLO_INFO.__dict__, "model_hash": b"\x00" * 20})
    with pytest.raises(BadInput, match="model_hash is 20 bytes; a SHA-256 is 32"):
        encode_hello(bad)


def test_result_decodes_cycles_and_output():
    payload = struct.pack("<Q", 1 << 40) + b"\x01\x02\x03"
    assert decode_result(payload, 3) == (1 << 40, b"\x01\x02\x03")


def test_result_of_the_wrong_size_is_rejected_naming_both_sizes():
    with pytest.raises(ProtocolError, match="RESULT carries 5 output bytes, but the output tensors take 8 bytes"):
        decode_result(struct.pack("<Q", 1) + bytes(5), 8)


def test_error_decodes_code_and_text():
    assert decode_error(b"\x03\x00invoke returned status 7") == (3, "invoke returned status 7")


# ---------------------------------------------------------------- Link without a device

def test_link_open_names_a_missing_port_and_exits_4():
    with pytest.raises(LinkError, match="cannot open serial port /dev/edgeq-no-such-port") as err:
        Link.open("/dev/edgeq-no-such-port")
    assert isinstance(err.value, ToolFailed) and err.value.exit_code == 4


def test_hello_times_out_naming_what_it_waited_for():
    with Link.open("loop://") as link, pytest.raises(LinkTimeout) as err:
        link.hello(timeout=0.3, request_interval=0.1)
    assert "no HELLO from the device on loop:// within 0.3 s" in str(err.value)
    assert "HELLO_REQUESTs sent" in str(err.value)


def test_infer_times_out_after_its_retries_skipping_its_own_echo():
    # loop:// echoes each INFER back: a frame of another type, which infer must skip
    with Link.open("loop://") as link, pytest.raises(LinkTimeout) as err:
        link.info = HELLO_INFO
        link.infer(bytes(16), timeout=0.1, retries=1)
    assert "no RESULT for INFER (seq 1, 2)" in str(err.value)
    assert "2 attempt(s) of 0.1 s each" in str(err.value)


def test_infer_refuses_an_input_of_the_wrong_size_before_sending():
    with Link.open("loop://") as link, pytest.raises(BadInput, match=r"input is 15 bytes.*take 16 bytes"):
        link.info = HELLO_INFO
        link.infer(bytes(15))


# ---------------------------------------------------------------- the real C device

def run_compiler(args: list[str]) -> str:
    """Runs a compiler; on failure the test fails showing its diagnostics."""
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)}\n{done.stderr}", pytrace=False)
    return done.stdout


def _c_array(data: bytes) -> str:
    return ",\n".join(", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12))


@pytest.fixture(scope="module")
def device_exe(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs the host C compiler (gcc)")
    build = tmp_path_factory.mktemp("protocol_device")
    (build / "eq_test_hello.h").write_text(
        "#include <stdint.h>\n"
        f"#define EQ_TEST_INPUT_BYTES {HELLO_INFO.input_bytes}u\n"
        f"#define EQ_TEST_OUTPUT_BYTES {HELLO_INFO.output_bytes}u\n"
        f"#define EQ_TEST_ARENA_BYTES {PATCHED_ARENA_BYTES}u\n"
        f"static const uint8_t eq_test_hello[] = {{\n{_c_array(encode_hello(HELLO_INFO))}\n}};\n")
    exe = build / "protocol_device"
    run_compiler(
        ["gcc", *STRICT, "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", f"-I{build}", f"-I{DRIVER_DIR}", f"-I{RUNTIME_DIR}",
         str(RUNTIME_DIR / "eq_protocol.c"), str(DRIVER_DIR / "protocol_device.c"), "-o", str(exe)])
    return exe


class Device:
    """protocol_device on a pty: the process holds the master, `path` is the slave."""

    def __init__(self, exe: Path, stderr_path: Path):
        master, self._slave = os.openpty()
        # Raw before the device writes: a cooked slave would echo and translate bytes.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stderr = open(stderr_path, "w+")
        env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
        self.proc = subprocess.Popen([str(exe)], stdin=master, stdout=master, stderr=self._stderr,
                                     env=env, close_fds=True)
        os.close(master)

    def stop(self) -> tuple[int, str]:
        """Closes the last slave fd (the device then reads EIO, ends eq_serve and exits)."""
        os.close(self._slave)
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._stderr.seek(0)
        report = self._stderr.read()
        self._stderr.close()
        return code, report


@pytest.fixture
def device(device_exe, tmp_path):
    dev = Device(device_exe, tmp_path / "stderr.txt")
    yield dev
    if dev.proc.returncode is None:
        dev.stop()


@pytest.fixture
def link(device):
    with Link.open(device.path) as link:
        yield link


def request(link: Link, type: int, payload: bytes, timeout: float = 2.0):
    """Sends one raw frame and returns the first reply carrying its seq."""
    seq = link.next_seq()
    link.send_frame(type, seq, payload)
    deadline = time.monotonic() + timeout
    while (frame := link.read_frame(deadline)) is not None:
        if frame.seq == seq:
            return frame
    raise AssertionError(f"no reply to frame type 0x{type:02x} seq {seq}")


def next_reply(link: Link, timeout: float = 2.0):
    """The next frame that is not a HELLO: link.hello() may have left one behind (the
    unprompted HELLO and the answer to its HELLO_REQUEST can both arrive)."""
    deadline = time.monotonic() + timeout
    while (frame := link.read_frame(deadline)) is not None and frame.type == HELLO:
        pass
    return frame


@pytest.mark.host
def test_device_hello_decodes_with_the_arena_the_harness_patched(link):
    info = link.hello(timeout=3)
    assert info == HelloInfo(**{**HELLO_INFO.__dict__, "arena_bytes": PATCHED_ARENA_BYTES})


@pytest.mark.host
def test_device_answers_hello_request_with_the_request_seq(link):
    reply = request(link, HELLO_REQUEST, b"")
    assert reply.type == HELLO and decode_hello(reply.payload).runtime == "edgeq-c"


@pytest.mark.host
def test_device_infer_returns_the_model_output_and_a_cycle_count(link):
    rng = random.Random(2)
    for _ in range(5):
        x = rng.randbytes(16)
        cycles, y = link.infer(x, timeout=3)
        assert y == model(x)
        assert 0 < cycles < 10**9  # the host board counts nanoseconds around invoke only
    assert link.stats.retries == 0 and link.stats.crc_failures == 0


@pytest.mark.host
def test_device_answers_a_corrupted_request_with_error_1_and_serves_the_next(link):
    link.hello(timeout=3)
    frame = bytearray(encode_frame(INFER, 77, bytes(16)))
    frame[15] ^= 0x01
    link.send_raw(bytes(frame))
    reply = next_reply(link)
    assert (reply.type, reply.seq) == (ERROR, 77)
    assert decode_error(reply.payload) == (1, "CRC mismatch")
    x = bytes(range(16))
    assert link.infer(x, timeout=3)[1] == model(x)


@pytest.mark.host
def test_device_skips_noise_before_a_request(link):
    link.hello(timeout=3)
    noise = bytearray(random.Random(3).randbytes(200))
    noise[40:42] = noise[120:122] = b"\xa5\x5a"
    link.send_raw(bytes(noise))
    x = bytes(range(100, 116))
    assert link.infer(x, timeout=3)[1] == model(x)


@pytest.mark.host
def test_device_recovers_a_request_sent_right_after_a_truncated_one(link):
    # The missing bytes make the device eat the next frame's marker as CRC; its
    # lookback scans those bytes again, so the second request is answered at once.
    link.hello(timeout=3)
    x = bytes(range(16))
    link.send_raw(encode_frame(INFER, 10, x)[:-3] + encode_frame(INFER, 11, x))
    first, second = next_reply(link), next_reply(link)
    assert (first.type, first.seq, decode_error(first.payload)[0]) == (ERROR, 10, 1)
    assert (second.type, second.seq) == (RESULT, 11)
    assert decode_result(second.payload, 8)[1] == model(x)


@pytest.mark.host
def test_device_answers_a_too_long_frame_with_error_4_and_serves_the_next(link):
    link.hello(timeout=3)
    reply = request(link, INFER, bytes(40))
    assert reply.type == ERROR
    assert decode_error(reply.payload) == (4, "frame of 40 bytes; the inputs take 16")
    assert link.infer(bytes(16), timeout=3)[1] == bytes(8)


@pytest.mark.host
def test_device_answers_a_short_infer_with_error_2(link):
    reply = request(link, INFER, bytes(15))
    assert decode_error(reply.payload) == (2, "INFER carries 15 bytes; the inputs take 16")


@pytest.mark.host
def test_device_reports_a_failed_invoke_as_device_error_3(link):
    with pytest.raises(DeviceError, match=r"device error 3 \(invoke failed\): invoke returned status 7") as err:
        link.infer(b"\xee" * 16, timeout=3)
    assert err.value.code == 3


@pytest.mark.host
def test_a_board_without_stack_painting_answers_memory_with_zeros_for_unknown(link):
    link.hello(timeout=3)
    assert link.memory(timeout=3) == DeviceMemory(stack_bytes=0, stack_peak_bytes=0)


def test_memory_of_another_version_or_length_is_refused():
    with pytest.raises(ProtocolError, match="MEMORY version 2"):
        decode_memory(bytes([2, 0, 0, 0]) + bytes(8))
    with pytest.raises(ProtocolError, match="8 bytes; version 1 has 12"):
        decode_memory(bytes([1, 0, 0, 0]) + bytes(4))


@pytest.mark.host
def test_device_answers_an_unknown_type_with_error_5(link):
    reply = request(link, 0x07, b"")
    assert decode_error(reply.payload) == (5, "unknown message type 0x07")


@pytest.mark.host
def test_device_ignores_frames_of_its_own_types_so_an_echo_cannot_loop(link):
    link.hello(timeout=3)
    link.send_frame(RESULT, 50, bytes(12))
    seq = link.next_seq()
    link.send_frame(HELLO_REQUEST, seq)
    seen = []
    deadline = time.monotonic() + 2
    while (frame := link.read_frame(deadline)) is not None and (frame.type, frame.seq) != (HELLO, seq):
        seen.append((frame.type, frame.seq))
    assert frame is not None, "no HELLO for the request after the echoed RESULT"
    assert [t for t, _ in seen if t != HELLO] == []


@pytest.mark.host
def test_device_survives_random_traffic_clean_under_sanitizers(device):
    rng = random.Random(4)
    try:
        with Link.open(device.path) as link:
            link.hello(timeout=3)
            for i in range(30):
                payload = rng.randbytes(rng.choice([0, 16, 17, 300]))
                frame = bytearray(encode_frame(rng.choice([INFER, HELLO_REQUEST, 0x33]), i, payload))
                if rng.random() < 0.5:
                    frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
                cut = rng.randrange(1, len(frame) + 1)
                link.send_raw(bytes(frame[:cut]) + rng.randbytes(rng.randrange(20)))
            # whatever state the noise left, retries bring the device back
            x = rng.randbytes(16)
            assert link.infer(x, timeout=1.0, retries=4)[1] == model(x)
    except LinkError as exc:
        pytest.fail(f"{exc}\ndevice stderr:\n{device.stop()[1]}")
    code, report = device.stop()
    assert (code, report) == (0, "")


# ---------------------------------------------------------------- over socket://, through a faulty relay

class Relay:
    """Loopback TCP <-> the device's pty; can drop or corrupt one byte of either direction."""

    def __init__(self, tty_path: str, lifetime: float = 15.0, hold: float = 0.0):
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(5)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._tty = os.open(tty_path, os.O_RDWR | os.O_NOCTTY)
        self._lock = threading.Lock()
        self._count = {"to_device": 0, "to_host": 0}
        self._faults: dict[tuple[str, int], str] = {}
        self._stop = threading.Event()
        self._lifetime = lifetime
        self._hold = hold
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def arm(self, direction: str, offset: int, fault: str) -> None:
        """`fault` ("drop" or "flip") the byte `offset` bytes past what has gone `direction`."""
        with self._lock:
            self._faults[(direction, self._count[direction] + offset)] = fault

    def _mangle(self, direction: str, data: bytes) -> bytes:
        out = bytearray()
        with self._lock:
            for b in data:
                fault = self._faults.pop((direction, self._count[direction]), None)
                self._count[direction] += 1
                if fault != "drop":
                    out.append(b ^ 0x40 if fault == "flip" else b)
        return bytes(out)

    def _run(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        end = time.monotonic() + self._lifetime
        # pyserial's socket:// open discards whatever already arrived; holding the
        # device's output a moment plays a board that boots after the host connects.
        self._stop.wait(self._hold)
        with conn:
            while not self._stop.is_set() and time.monotonic() < end:
                ready, _, _ = select.select([conn, self._tty], [], [], 0.05)
                if conn in ready:
                    data = conn.recv(4096)
                    if not data:
                        break
                    os.write(self._tty, self._mangle("to_device", data))
                if self._tty in ready:
                    conn.sendall(self._mangle("to_host", os.read(self._tty, 4096)))

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
        os.close(self._tty)


@pytest.fixture
def relay(device):
    r = Relay(device.path)
    yield r
    r.close()


@pytest.mark.host
def test_unprompted_hello_arrives_over_a_socket(device):
    relay = Relay(device.path, hold=0.3)
    try:
        with Link.open(relay.url) as link:
            frame = link.read_frame(time.monotonic() + 3)
    finally:
        relay.close()
    assert (frame.type, frame.seq) == (HELLO, 0)
    assert decode_hello(frame.payload).arena_bytes == PATCHED_ARENA_BYTES


@pytest.mark.host
def test_host_resends_when_the_reply_is_corrupted_on_the_wire(relay):
    with Link.open(relay.url) as link:
        link.hello(timeout=3)
        relay.arm("to_host", 12, "flip")  # inside the RESULT's cycle count
        x = bytes(range(16))
        assert link.infer(x, timeout=5)[1] == model(x)
        # One retry, caused by the one CRC failure: the request went out again on the bad reply.
        assert (link.stats.crc_failures, link.stats.retries) == (1, 1)


@pytest.mark.host
def test_host_resends_when_a_request_byte_is_lost_on_the_wire(relay):
    with Link.open(relay.url) as link:
        link.hello(timeout=3)
        relay.arm("to_device", 20, "drop")  # inside the INFER payload: the device waits
        x = bytes(range(50, 66))
        assert link.infer(x, timeout=1.0)[1] == model(x)
        assert link.stats.retries == 1


# ---------------------------------------------------------------- builds

@pytest.mark.host
def test_protocol_c_compiles_warning_free_for_cortex_m4_in_under_2_kib(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc")
    obj = tmp_path / "eq_protocol.o"
    run_compiler(["arm-none-eabi-gcc", *STRICT, "-mcpu=cortex-m4", "-mthumb", "-Os", f"-I{DRIVER_DIR}",
                  "-c", str(RUNTIME_DIR / "eq_protocol.c"), "-o", str(obj)])
    size = subprocess.run(["arm-none-eabi-size", str(obj)], check=True, capture_output=True, text=True)
    text_bytes = int(size.stdout.splitlines()[1].split()[0])
    assert 0 < text_bytes < 2048


@pytest.mark.host
def test_protocol_header_compiles_as_cpp_for_the_tflm_harness(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    src = tmp_path / "main.cc"
    src.write_text('#include "eq_protocol.h"\nint main() { eq_server_t s = {}; (void)s; return 0; }\n')
    run_compiler(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{RUNTIME_DIR}",
                  "-c", str(src), "-o", str(tmp_path / "main.o")])
