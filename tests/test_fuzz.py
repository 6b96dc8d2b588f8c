"""Property-based fuzzing of the four parsers that read what users and devices hand edgeq.

On any input each one returns a value or raises one of edgeq's own errors (an EdgeqError, whose
message names the file, the key or the message it was reading); never another exception, never a hang.

- the .tflite reader, `graph.read_graph` (and `load.load_model` on a .tflite): random bytes, and a
  small real model, truncated and with bytes and words overwritten;
- device profiles: `profiles.parse_profile` on arbitrary YAML-like data and on the shipped profile
  with keys replaced or deleted, `profiles.load_profile_file` on arbitrary text;
- data sets: `load.load_dataset` / `read_arrays` on .npy and .npz files of any dtype and shape (object
  arrays, NaN, 0-d, empty, wrong labels), damaged files and random bytes; `load.check_dataset`;
- the serial protocol's host side: `FrameDecoder` on noisy byte streams, `decode_hello`,
  `decode_result` and `decode_error` on damaged payloads, and `Link` on a port that sends them.

Each `check_*` function is one property: it raises AssertionError (or the unexpected exception
itself) when the property fails. The tests run each for a bounded, derandomized number of examples;
`bench/fuzz_bench.py` runs the same properties, through `TARGETS`, for as long as it is asked to.
"""

from __future__ import annotations

import copy
import functools
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from edgeq import protocol
from edgeq.device.link import Link
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import read_graph
from edgeq.load import TensorSpec, check_dataset, load_dataset, load_model
from edgeq.profiles import DELEGATES, FLASH_METHODS, KINDS, NUMERICS, OPTIMIZE_LEVELS, load_profile_file, parse_profile
from edgeq.profiles.schema import _SCHEMA, _Section
from edgeq.resources import PROFILE_DIR
from edgeq.runtimes import NAMES as RUNTIMES
from edgeq.runtimes import check_profile

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def raises_only_edgeq_errors(call: Callable[[], Any], *names: str) -> tuple[Any, EdgeqError | None]:
    """(result, None) or (None, the EdgeqError), which must name one of `names`; anything else escapes."""
    try:
        return call(), None
    except EdgeqError as exc:
        text = str(exc)
        assert any(n in text for n in names), f"{type(exc).__name__} names none of {names}: {text}"
        return None, exc


# ---- 1. the .tflite reader ------------------------------------------------------------------------

TFLITE_SOURCE = "fuzz-model.tflite"


@functools.lru_cache(maxsize=1)
def tiny_models() -> tuple[bytes, ...]:
    """A seeded Conv2D + Dense model (4x4x1 -> 3) converted by edgeq to int8 and to fp32."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgeq.convert.converter import convert
    from edgeq.load import random_dataset

    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(2, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    with tempfile.TemporaryDirectory(prefix="edgeq-fuzz-") as tmp:
        path = Path(tmp) / "tiny.keras"
        net.save(path)
        model = load_model(path)
        return (convert(model, "int8", random_dataset(model.input, 16)), convert(model, "fp32"))


# A damage to a model: (kind, position, value). Positions wrap around the model's length, so the
# recipe does not depend on the model's bytes and reads well in a failure report. Hypothesis favours
# small integers; scrambled, they land all over the model instead of mostly in its first bytes.
_WORDS = st.sampled_from([0, 1, 2, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
_POSITIONS = st.integers(0, 0xFFFFFFFF).map(lambda n: (n * 2654435761 + 0x9E3779B9) % (1 << 32))
DAMAGE = st.one_of(
    st.tuples(st.just("flip"), _POSITIONS, st.integers(0, 7)),
    st.tuples(st.just("byte"), _POSITIONS, st.integers(0, 255)),
    st.tuples(st.just("word"), _POSITIONS, st.one_of(_WORDS, st.integers(0, 0xFFFFFFFF))),
)
CUT = st.tuples(st.just("cut"), _POSITIONS, st.just(0))
TFLITE_INPUTS = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=600)),
    # random bytes behind a plausible root offset and the identifier, so the parser gets to work
    st.tuples(st.just("bytes"), st.builds(lambda root, body: struct.pack("<I", root) + b"TFL3" + body,
                                          st.one_of(st.integers(8, 64), st.integers(0, 0xFFFFFFFF)),
                                          st.binary(max_size=600))),
    st.tuples(st.just("model"), st.tuples(st.integers(0, 1), st.tuples(CUT).map(list))),
    *[st.tuples(st.just("model"), st.tuples(st.integers(0, 1), st.lists(DAMAGE, min_size=1, max_size=3)))] * 4,
)


def damaged(data: bytes, damage: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, value in damage:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << value
        elif kind == "byte":
            b[i] = value
        elif kind == "word":
            b[i : i + 4] = struct.pack("<I", value)[: len(b) - i]
        else:
            del b[i:]
    return bytes(b)


def tflite_bytes(case) -> bytes:
    kind, value = case
    if kind == "bytes":
        return value
    which, damage = value
    return damaged(tiny_models()[which], damage)


def check_tflite(case) -> None:
    """read_graph returns a graph that is safe to walk, or BadInput naming the source."""
    data = tflite_bytes(case)
    graph, _ = raises_only_edgeq_errors(lambda: read_graph(data, TFLITE_SOURCE), TFLITE_SOURCE)
    if graph is None:
        return
    graph.input_tensors(), graph.output_tensors(), graph.op_names, graph.constant_bytes()
    for op in graph.operators:
        assert all(-1 <= i < len(graph.tensors) for i in (*op.inputs, *op.outputs)), f"tensor index out of range: {op}"
    with tempfile.TemporaryDirectory(prefix="edgeq-fuzz-") as tmp:
        path = Path(tmp) / TFLITE_SOURCE
        path.write_bytes(data)
        raises_only_edgeq_errors(lambda: load_model(path), TFLITE_SOURCE)


@pytest.fixture(scope="module")
def built_models():
    return tiny_models()


def test_the_tiny_model_itself_reads(built_models):
    for data in built_models:
        graph = read_graph(data, TFLITE_SOURCE)
        assert {"CONV_2D", "FULLY_CONNECTED"} <= set(graph.op_names)
        check_tflite(("model", (0, [])))


@FUZZ
@given(TFLITE_INPUTS)
def test_any_bytes_read_as_a_tflite_fail_only_with_bad_input(built_models, case):
    check_tflite(case)


# ---- 2. device profiles ---------------------------------------------------------------------------

PROFILE_SOURCE = "qemu-mps2-an386.yaml"  # its stem is the profile's name, so the real one parses
REAL_PROFILE = yaml.safe_load((PROFILE_DIR / PROFILE_SOURCE).read_text())


def _dotted_keys(section: _Section, prefix: str = "") -> list[str]:
    keys = []
    for key, rule in section.keys.items():
        keys.append(prefix + key)
        if isinstance(rule, _Section):
            keys += _dotted_keys(rule, f"{prefix}{key}.")
    return keys


SCHEMA_KEYS = _dotted_keys(_SCHEMA)
_WORDS_IN_PROFILES = (*KINDS, *NUMERICS, *RUNTIMES, *FLASH_METHODS, *OPTIMIZE_LEVELS, *DELEGATES,
                      "qemu-mps2-an386", "none", "{image}", "{firmware}", "mps2-an386", "")
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2, 2**33), st.floats(), st.text(max_size=12),
    st.sampled_from(_WORDS_IN_PROFILES),
)
YAML_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(st.sampled_from(_WORDS_IN_PROFILES), max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(SCHEMA_KEYS), st.integers(),
                                  st.none(), st.booleans()), inner, max_size=5),
    ),
    max_leaves=16,
)
_DELETE = "<delete>"
# (dotted key, new value or _DELETE); keys may be new (an unknown key, or a section not there)
PROFILE_EDITS = st.lists(
    st.tuples(st.one_of(st.sampled_from(SCHEMA_KEYS),
                        st.builds("{}.{}".format, st.sampled_from(SCHEMA_KEYS),
                                  st.text("abcdefgh_-", min_size=1, max_size=6))),
              st.one_of(st.just(_DELETE), YAML_VALUES)),
    min_size=1, max_size=4,
)


def edited_profile(edits: list[tuple[str, Any]]) -> dict:
    data = copy.deepcopy(REAL_PROFILE)
    for dotted, value in edits:
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is _DELETE or value == _DELETE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return data


def check_profile_data(data: Any) -> None:
    """parse_profile returns a Profile or raises BadInput that starts with the file's name."""
    profile, error = raises_only_edgeq_errors(lambda: check_profile(parse_profile(data, PROFILE_SOURCE)),
                                               PROFILE_SOURCE)
    if error is not None:
        assert str(error).startswith(f"{PROFILE_SOURCE}: "), str(error)
    else:
        profile.ram_for_model_bytes, profile.clock_hz, profile.default_runtime, profile.is_emulated


def check_profile_edits(edits: list[tuple[str, Any]]) -> None:
    """An edited real profile parses, or the error names the file and then a dotted schema key."""
    profile, error = raises_only_edgeq_errors(lambda: check_profile(parse_profile(edited_profile(edits), PROFILE_SOURCE)),
                                              PROFILE_SOURCE)
    if error is None:
        profile.ram_for_model_bytes, profile.clock_hz, profile.default_runtime, profile.is_emulated
        return
    text = str(error)
    assert text.startswith(f"{PROFILE_SOURCE}: "), text
    named = text[len(PROFILE_SOURCE) + 2:]
    known = ["profile", *SCHEMA_KEYS, *(dotted for dotted, _ in edits)]
    assert any(named.startswith((f"{key}:", f"{key}.")) for key in known), text


_YAML_SNIPPETS = st.sampled_from([
    "2001-02-30", "2001-13-45", "2001-02-03 25:61:61", "!!int zz", "!!float ':'", "!!timestamp x",
    "!!binary '*'", "!!python/object:os.system x", "!!set {a, b}", "[" * 1500, "{" * 1500, "&a [*a]",
    "*nowhere", ".inf", "-.nan", "0x10", "1_000", "0o17", "1:20", "~", "'unterminated", "\t", "\x00",
    "\ufeff", "? [a]\n: b",
])
_PROFILE_TEXT = (PROFILE_DIR / PROFILE_SOURCE).read_text()
PROFILE_TEXTS = st.one_of(
    st.text(max_size=300).map(str.encode),
    st.binary(max_size=300),
    st.lists(st.one_of(_YAML_SNIPPETS, st.text(max_size=20)), max_size=6).map(lambda parts: "\n".join(parts).encode()),
    # the shipped profile with one value replaced by a snippet or random text, or cut short
    st.tuples(st.integers(0, 10_000), st.one_of(_YAML_SNIPPETS, st.text(max_size=10)), st.booleans()).map(
        lambda t: (_PROFILE_TEXT[: t[0] % len(_PROFILE_TEXT)] + ("" if t[2] else t[1])
                   + ("" if t[2] else _PROFILE_TEXT[t[0] % len(_PROFILE_TEXT):].partition("\n")[2])).encode()),
)


def check_profile_text(text: bytes) -> None:
    """load_profile_file on any file content: a Profile or BadInput naming the file."""
    with tempfile.TemporaryDirectory(prefix="edgeq-fuzz-") as tmp:
        path = Path(tmp) / PROFILE_SOURCE
        path.write_bytes(text)
        raises_only_edgeq_errors(lambda: load_profile_file(path), PROFILE_SOURCE)


@FUZZ
@given(YAML_VALUES)
def test_any_yaml_structure_as_a_profile_fails_only_with_bad_input_naming_the_file(data):
    check_profile_data(data)


@FUZZ
@given(PROFILE_EDITS)
def test_a_profile_with_keys_replaced_or_deleted_fails_naming_the_file_and_key(edits):
    check_profile_edits(edits)


@FUZZ
@given(PROFILE_TEXTS)
def test_any_text_in_a_profile_file_fails_only_with_bad_input_naming_the_file(text):
    check_profile_text(text)


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    data = dict(REAL_PROFILE, simd=yaml.safe_load("\n".join(lines))["a8"])  # 10**9 strings, once expanded
    with pytest.raises(BadInput, match=r"simd: expected a list of names") as caught:
        parse_profile(data, PROFILE_SOURCE)
    assert len(str(caught.value)) < 20_000


# ---- 3. data sets ---------------------------------------------------------------------------------

_DTYPES = st.one_of(
    npst.boolean_dtypes(), npst.integer_dtypes(), npst.unsigned_integer_dtypes(), npst.floating_dtypes(),
    npst.complex_number_dtypes(), npst.datetime64_dtypes(), npst.timedelta64_dtypes(),
    npst.byte_string_dtypes(max_len=3), npst.unicode_string_dtypes(max_len=3),
    npst.array_dtypes(max_size=2), st.just(np.dtype(object)),
)
_SHAPES = npst.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)


@st.composite
def arrays(draw, shape=_SHAPES) -> np.ndarray:
    dtype = draw(_DTYPES)
    if dtype == np.dtype(object):
        return draw(npst.arrays(dtype, shape, elements=st.one_of(st.integers(), st.floats(), st.text(max_size=3))))
    return draw(npst.arrays(dtype, shape))


@st.composite
def data_sets(draw):
    """(x, y or None, the model input's shape): shapes mostly made to fit, so later checks are reached."""
    x = draw(st.one_of(arrays(), npst.arrays(np.float32, _SHAPES), npst.arrays(np.float64, _SHAPES),
                       npst.arrays(np.int8, _SHAPES)))
    input_shape = draw(st.one_of(st.just(x.shape[1:]), st.just(x.shape[2:]), _SHAPES))
    samples = x.shape[0] if x.ndim else 1
    y = draw(st.one_of(st.none(), npst.arrays(np.int64, (samples,)), npst.arrays(np.int64, (samples + 1,)),
                       arrays()))
    return x, y, tuple(input_shape)


# How the arrays reach the disk: as .npy or .npz, saved right or oddly, damaged, or random bytes.
DATA_FILES = st.tuples(
    data_sets(),
    st.sampled_from(["npy", "npz", "npz-no-x", "npz-extra", "npz-compressed", "npz-named-npy", "npy-named-npz"]),
    st.one_of(st.just([]), st.lists(DAMAGE, min_size=1, max_size=3)),
    st.one_of(st.none(), st.binary(max_size=300)),
)


def write_data(folder: Path, case) -> str:
    (x, y, _), form, damage, raw = case
    suffix = ".npz" if form.startswith("npz") and form != "npz-named-npy" or form == "npy-named-npz" else ".npy"
    path = folder / f"fuzz-data{suffix}"
    if raw is not None:
        path.write_bytes(raw)
        return str(path)
    with open(path, "wb") as fh:
        if form in ("npy", "npy-named-npz"):
            np.save(fh, x, allow_pickle=True)
        else:
            members = {"inputs" if form == "npz-no-x" else "x": x}
            if y is not None:
                members["y"] = y
            if form == "npz-extra":
                members["notes"] = np.array("extra")
            (np.savez_compressed if form == "npz-compressed" else np.savez)(fh, **members)
    if damage:
        path.write_bytes(damaged(path.read_bytes(), damage))
    return str(path)


def check_data_file(case) -> None:
    """load_dataset gives checked (N, *input) float32 finite samples, or BadInput naming the file."""
    (_, _, input_shape) = case[0]
    with tempfile.TemporaryDirectory(prefix="edgeq-fuzz-") as tmp:
        spec = write_data(Path(tmp), case)
        data, _ = raises_only_edgeq_errors(lambda: load_dataset(spec, TensorSpec(input_shape, "float32")), spec)
    if data is not None:
        assert data.x.single.shape == (len(data.x), *input_shape) and data.x.single.dtype == np.float32, data.x.single.shape
        assert len(data.x) > 0, "an empty data set was accepted"
        assert np.isfinite(data.x.single).all(), "non-finite inputs were accepted (after the cast to float32)"
        assert data.y is None or len(data.y) == len(data.x), "as many labels as inputs"


def check_arrays(case) -> None:
    """check_dataset on arrays in memory: a Dataset that keeps its promises, or BadInput naming the source."""
    x, y, input_shape = case
    source = "fuzz-arrays.npz"
    data, _ = raises_only_edgeq_errors(lambda: check_dataset(x, y, TensorSpec(input_shape, "float32"), source),
                                       source)
    if data is not None:
        assert data.x.single.shape == (len(data.x), *input_shape) and data.x.single.dtype == np.float32, data.x.single.shape
        assert np.isfinite(data.x.single).all(), "non-finite inputs were accepted (after the cast to float32)"
        assert data.y is None or (data.y.ndim >= 1 and len(data.y) == len(data.x)), "one label per input"
        data.has_class_labels


@FUZZ
@given(DATA_FILES)
def test_any_npy_or_npz_file_loads_checked_or_fails_with_bad_input_naming_it(case):
    check_data_file(case)


@FUZZ
@given(data_sets())
def test_any_arrays_as_a_data_set_are_checked_or_fail_with_bad_input(case):
    check_arrays(case)


# ---- 4. the serial protocol -----------------------------------------------------------------------

_TENSOR_TYPES = sorted(protocol._TYPE_CODES)
TENSOR_INFOS = st.builds(
    protocol.TensorInfo,
    dtype=st.sampled_from(_TENSOR_TYPES),
    shape=st.lists(st.integers(0, 0xFFFFFFFF) | st.integers(1, 8), max_size=protocol.MAX_RANK).map(tuple),
    scale=st.floats(width=32, allow_nan=False),
    zero_point=st.integers(-(2**31), 2**31 - 1),
)
HELLO_INFOS = st.builds(
    protocol.HelloInfo,
    model_hash=st.binary(min_size=32, max_size=32),
    runtime=st.sampled_from(["edgeq-c", "tflm"]) | st.text(max_size=20),
    runtime_version=st.text(max_size=20),
    clock_hz=st.integers(0, 0xFFFFFFFF),
    arena_bytes=st.integers(0, 0xFFFFFFFF),
    inputs=st.lists(TENSOR_INFOS, min_size=1, max_size=3).map(tuple),
    outputs=st.lists(TENSOR_INFOS, min_size=1, max_size=3).map(tuple),
)
# A payload: random bytes, or a real HELLO, damaged or not
PAYLOADS = st.one_of(
    st.binary(max_size=200),
    st.tuples(HELLO_INFOS, st.one_of(st.just([]), st.lists(DAMAGE, min_size=1, max_size=4)))
    .map(lambda t: damaged(protocol.encode_hello(t[0]), t[1])),
)


def check_payload(payload: bytes) -> None:
    """The payload decoders return a value or raise ProtocolError naming the message."""
    hello, error = raises_only_edgeq_errors(lambda: protocol.decode_hello(payload), "HELLO")
    assert error is None or isinstance(error, protocol.ProtocolError)
    if hello is not None:
        for t in (*hello.inputs, *hello.outputs):
            raises_only_edgeq_errors(lambda: t.nbytes, "tensor type")
    for size in (0, 1, len(payload) - 8, 4096):
        raises_only_edgeq_errors(lambda: protocol.decode_result(payload, max(size, 0)), "RESULT")
    raises_only_edgeq_errors(lambda: protocol.decode_error(payload), "ERROR")


def check_hello_round_trip(info: protocol.HelloInfo) -> None:
    """What encode_hello writes, decode_hello reads back exactly (the scales are float32 values)."""
    back = protocol.decode_hello(protocol.encode_hello(info))
    assert back == info, (back, info)


FRAMES = st.builds(protocol.encode_frame, st.sampled_from([protocol.HELLO, protocol.RESULT, protocol.ERROR, 0x01,
                                                           0x02, 0x00, 0xFF]),
                   st.integers(0, 4), st.binary(max_size=40) | PAYLOADS)
# A byte stream: noise, frames, damaged frames and loose markers, cut into chunks as a port delivers them
STREAMS = st.tuples(
    st.lists(st.one_of(st.binary(max_size=30), FRAMES, st.just(protocol.MARKER), st.just(protocol.MARKER[:1]),
                       st.tuples(FRAMES, st.lists(DAMAGE, min_size=1, max_size=2)).map(lambda t: damaged(*t))),
             max_size=8).map(b"".join),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)


def chunks(stream: bytes, sizes: list[int]) -> list[bytes]:
    out, i, k = [], 0, 0
    while i < len(stream):
        out.append(stream[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return out


def check_frame_decoder(case) -> None:
    """FrameDecoder never raises; chunking does not change what it finds; every frame it returns is intact."""
    stream, sizes = case
    whole = protocol.FrameDecoder(max_payload=256).feed(stream)
    decoder = protocol.FrameDecoder(max_payload=256)
    pieces = [frame for chunk in chunks(stream, sizes) for frame in decoder.feed(chunk)]
    assert pieces == whole
    for frame in whole:
        assert protocol.encode_frame(frame.type, frame.seq, frame.payload) in stream
    assert decoder.pending_bytes <= len(stream)
    assert decoder.pending_bytes < protocol.HEADER_BYTES + 256 + protocol.CRC_BYTES


class StreamPort:
    """A serial port that delivers `stream` in chunks, then nothing; it takes what it is sent."""

    portstr = "fuzz-port"

    def __init__(self, stream: bytes, sizes: list[int]):
        self._chunks = chunks(stream, sizes)
        self.sent = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self._chunks[0]) if self._chunks else 0

    def read(self, n: int) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def write(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


LINK_NAMES = ("fuzz-port", "HELLO", "RESULT", "device error")


def check_link(case) -> None:
    """Link.hello and Link.infer on a port that sends anything: results, or LinkErrors naming the port."""
    link = Link(StreamPort(*case))
    info, error = raises_only_edgeq_errors(lambda: link.hello(timeout=0.002, request_interval=0.001), *LINK_NAMES)
    assert error is None or isinstance(error, protocol.LinkError)
    if info is None or info.input.dtype not in protocol.NUMPY_DTYPES or info.input.nbytes > 4096:
        return
    result, error = raises_only_edgeq_errors(lambda: link.infer(bytes(info.input.nbytes), timeout=0.002, retries=1),
                                             *LINK_NAMES)
    assert error is None or isinstance(error, protocol.LinkError)
    if result is not None:
        cycles, output = result
        assert len(output) == info.output.nbytes


def test_the_protocol_errors_are_edgeq_errors():
    assert issubclass(protocol.ProtocolError, EdgeqError) and issubclass(protocol.LinkTimeout, EdgeqError)


@FUZZ
@given(STREAMS)
def test_any_byte_stream_is_framed_without_raising_and_chunking_does_not_matter(case):
    check_frame_decoder(case)


@FUZZ
@given(PAYLOADS)
def test_any_payload_decodes_or_fails_only_with_protocol_error(payload):
    check_payload(payload)


@FUZZ
@given(HELLO_INFOS)
def test_a_hello_reads_back_as_written(info):
    check_hello_round_trip(info)


@settings(FUZZ, max_examples=100)
@given(STREAMS)
def test_a_link_on_a_noisy_port_fails_only_with_link_errors(case):
    check_link(case)


# What bench/fuzz_bench.py runs: target -> [(property, strategy, check)]
TARGETS: dict[str, list[tuple[str, st.SearchStrategy, Callable[[Any], None]]]] = {
    "tflite": [("read_graph", TFLITE_INPUTS, check_tflite)],
    "profiles": [("parse_profile", YAML_VALUES, check_profile_data),
                 ("edited profile", PROFILE_EDITS, check_profile_edits),
                 ("load_profile_file", PROFILE_TEXTS, check_profile_text)],
    "data": [("load_dataset", DATA_FILES, check_data_file), ("check_dataset", data_sets(), check_arrays)],
    "protocol": [("FrameDecoder", STREAMS, check_frame_decoder), ("payloads", PAYLOADS, check_payload),
                 ("HELLO round trip", HELLO_INFOS, check_hello_round_trip), ("Link", STREAMS, check_link)],
}
