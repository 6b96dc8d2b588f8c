"""What every firmware project edgeq generates carries: the model as a C array, the serial
protocol's C side, the HELLO the firmware sends, and the manifest `edgeq build/flash/measure` read
(what the firmware runs, which interpreter checks it, what each step computes: measuring reads it
and never compiles the model again).

Every renderer here and in the other codegen modules is pure: data in, `{relative path: text}`
out, the same bytes for the same inputs. Templates in `firmware_templates/` hold the layout;
every number they print is computed in Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import edgeq
from edgeq.csource import (
    ARENA_ALIGNMENT,
    c_byte_array,
    generated_notice,
    model_sha256,
    render_template,
    validate_symbol,
)
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import Graph, Tensor, read_graph
from edgeq.protocol import HelloInfo, TensorInfo, encode_hello
from edgeq.resources import RUNTIME_DIR

DEFAULT_MODEL_SYMBOL = "g_model"
DEFAULT_PREFIX = "edgeq"
HELLO_ARENA_OFFSET = 4  # EQ_HELLO_ARENA_OFFSET in eq_protocol.h: the harness writes its arena there
RUNTIME_FILES = ("eq_protocol.h", "eq_protocol.c")
FIRMWARE_MANIFEST = "edgeq-firmware.json"
FIRMWARE_PROGRAM = "firmware"
# 2: the runtime's reference interpreter, the board's clock and counter, the arena and each step.
MANIFEST_VERSION = 2


@dataclass(frozen=True)
class RuntimeId:
    """Who the firmware says it is: the runtime's name and version in its HELLO, and the interpreter
    on this host whose outputs it must reproduce bit for bit (edgeq.runtimes names each)."""

    name: str
    version: str
    reference: str


@dataclass(frozen=True)
class Step:
    """One step the firmware counts (an edgeq-c kernel call, a TFLM operator's Invoke)."""

    index: int  # the graph operator (edgeq-c: the one its output comes from)
    op: str  # TFLite's name; a fused step joins its operators with "+"
    kernel: str | None  # the C function edgeq-c calls; for TFLM the kernel file its op resolver links
    shape: tuple[int, ...]  # the step's output
    macs: int


@dataclass(frozen=True)
class Manifest:
    """`edgeq-firmware.json`: what `edgeq build`, `flash` and `measure` need to know about a project."""

    runtime: str
    device: str
    model: str  # the .tflite beside it
    model_sha256: str
    elf: str
    reference: str  # the interpreter whose outputs the firmware must equal
    clock_hz: int
    cycles_unit: str  # what its cycle counter counts: instructions (QEMU), cycles, ns (host)
    arena_bytes: int | None
    steps: tuple[Step, ...] = ()
    inputs: tuple[str, ...] = ()  # the model's inputs and outputs by name, in the order the firmware takes them
    outputs: tuple[str, ...] = ()
    bin: str | None = None
    hex: str | None = None
    uf2: str | None = None  # written by edgeq build from the .bin, for the RP2040's drive
    builder: str = "make"  # or "esp-idf"
    edgeq_version: str = field(default=edgeq.__version__)
    manifest_version: int = MANIFEST_VERSION

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def image(self, key: str) -> str | None:
        """The file of one of the images a build makes: elf, bin, hex or uf2."""
        return {"elf": self.elf, "bin": self.bin, "hex": self.hex, "uf2": self.uf2}[key]

    def to_json(self) -> str:
        data = asdict(self)
        data["steps"] = [dict(s, shape=list(s["shape"])) for s in data["steps"]]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str) -> Manifest:
        if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
            raise BadInput(f"{source}: made by another edgeq (manifest version "
                           f"{data.get('manifest_version') if isinstance(data, dict) else None}, this edgeq reads "
                           f"{MANIFEST_VERSION}): generate the firmware again")
        known = {f.name for f in fields(cls)}
        try:
            steps = tuple(Step(**dict(s, shape=tuple(s["shape"]))) for s in data.get("steps", ()))
            lists = {k: tuple(data.get(k, ())) for k in ("inputs", "outputs")}
            return cls(**{k: v for k, v in data.items() if k in known and k not in ("steps", *lists)}, steps=steps,
                       **lists)
        except (TypeError, KeyError) as exc:
            raise BadInput(f"{source}: not a firmware manifest edgeq wrote ({exc})") from None


def read_manifest(project: Path) -> Manifest:
    """The manifest of a firmware folder edgeq generated."""
    path = Path(project) / FIRMWARE_MANIFEST
    if not Path(project).is_dir():
        raise BadInput(f"{project}: no such firmware folder")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: missing; {project} is not a firmware project edgeq generated "
                       "(run edgeq generate or edgeq deploy)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON: {exc}") from None
    return Manifest.from_dict(data, str(path))


def render_model_data(tflite: bytes, symbol: str = DEFAULT_MODEL_SYMBOL) -> dict[str, str]:
    """`model_data.h` / `model_data.cc`: the flatbuffer as `const unsigned char <symbol>[]`,
    16-byte aligned, and its length as `const unsigned int <symbol>_len`."""
    validate_symbol(symbol, "model symbol")
    if not tflite:
        raise BadInput("the model is empty (0 bytes); nothing to embed")
    context = {
        "notice": generated_notice(tflite), "symbol": symbol, "length": len(tflite),
        "guard": f"EDGEQ_{symbol.upper()}_MODEL_DATA_H_", "alignment": ARENA_ALIGNMENT,
        "bytes": c_byte_array(tflite),
    }
    return {
        "model_data.h": render_template("model_data/model_data.h.j2", **context),
        "model_data.cc": render_template("model_data/model_data.cc.j2", **context),
    }


def io_tensors(graph: Graph, which: str) -> list[Tensor]:
    """The model's inputs (or outputs) as a firmware serves them, in order; each needs a fixed shape."""
    tensors = graph.input_tensors() if which == "input" else graph.output_tensors()
    if not tensors:
        raise BadInput(f"the model has no {which}s")
    for tensor in tensors:
        if any(d < 0 for d in tensor.shape):
            raise BadInput(f"{which} tensor '{tensor.name}' has a dynamic shape {list(tensor.shape)}; "
                           f"a microcontroller harness needs a fixed one (convert with batch 1)")
    return tensors


def describe(tensors: list[Tensor]) -> str:
    """Tensors as a generated file's comment lists them: name, type, shape."""
    return "; ".join(f"{t.name} {t.type} {list(t.shape)}" for t in tensors)


def runtime_sources() -> dict[str, str]:
    """eq_protocol.h/.c as shipped in edgeq/runtime, copied so the project builds on its own."""
    files = {}
    for name in RUNTIME_FILES:
        path = RUNTIME_DIR / name
        if not path.is_file():
            raise EdgeqError(f"edgeq's C runtime is incomplete: {path} is missing (reinstall edgeq)")
        files[name] = path.read_text()
    return files


def tensor_info(tensor: Tensor) -> TensorInfo:
    return TensorInfo(tensor.type, tuple(tensor.shape), tensor.scales[0] if tensor.scales else 0.0,
                      tensor.zero_points[0] if tensor.zero_points else 0)


def hello_payload(tflite: bytes, graph: Graph, runtime: RuntimeId, clock_hz: int, arena_bytes: int) -> bytes:
    """The HELLO the firmware sends: which model, which runtime, its tensors."""
    return encode_hello(HelloInfo(
        model_hash=hashlib.sha256(tflite).digest(), runtime=runtime.name, runtime_version=runtime.version,
        clock_hz=clock_hz, arena_bytes=arena_bytes, inputs=tuple(map(tensor_info, io_tensors(graph, "input"))),
        outputs=tuple(map(tensor_info, io_tensors(graph, "output")))))


def firmware_manifest(tflite: bytes, profile, runtime: RuntimeId, stem: str, program: str, *, bin_hex: bool,
                      uf2: bool = False, clock_hz: int, cycles_unit: str, arena_bytes: int | None,
                      steps: tuple[Step, ...], builder: str = "make") -> Manifest:
    """The manifest of a project for `profile` whose build makes `program` (+ .bin and .hex)."""
    graph = read_graph(tflite)
    return Manifest(runtime=runtime.name, device=profile.name, model=f"{stem}.tflite", model_sha256=model_sha256(tflite),
                    inputs=tuple(graph.io_name(i) for i in graph.inputs),
                    outputs=tuple(graph.io_name(o) for o in graph.outputs),
                    elf=program, reference=runtime.reference, clock_hz=clock_hz, cycles_unit=cycles_unit,
                    arena_bytes=arena_bytes, steps=steps, bin=program.replace(".elf", ".bin") if bin_hex else None,
                    hex=program.replace(".elf", ".hex") if bin_hex else None,
                    uf2=program.replace(".elf", ".uf2") if uf2 else None, builder=builder)
