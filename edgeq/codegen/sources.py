"""What every firmware project edgeq generates carries: the model as a C array, the serial
protocol's C side, the HELLO the firmware sends, and the manifest `edgeq build/flash/measure` read.

Every renderer here and in the other codegen modules is pure: data in, `{relative path: text}`
out, the same bytes for the same inputs. Templates in `firmware_templates/` hold the layout;
every number they print is computed in Python.
"""

from __future__ import annotations

import hashlib
import json

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
from edgeq.graph import Graph, Tensor
from edgeq.protocol import HelloInfo, TensorInfo, encode_hello
from edgeq.resources import RUNTIME_DIR

DEFAULT_MODEL_SYMBOL = "g_model"
DEFAULT_PREFIX = "edgeq"
HELLO_ARENA_OFFSET = 4  # EQ_HELLO_ARENA_OFFSET in eq_protocol.h: the harness writes its arena there
RUNTIME_FILES = ("eq_protocol.h", "eq_protocol.c")
FIRMWARE_MANIFEST = "edgeq-firmware.json"
FIRMWARE_PROGRAM = "firmware"


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


def single_tensor(graph: Graph, which: str):
    indices = graph.inputs if which == "input" else graph.outputs
    if len(indices) != 1:
        raise BadInput(f"the TFLM harness serves one input and one output tensor; the model has "
                       f"{len(indices)} {which}s")
    tensor = graph.tensors[indices[0]]
    if any(d < 0 for d in tensor.shape):
        raise BadInput(f"{which} tensor '{tensor.name}' has a dynamic shape {list(tensor.shape)}; "
                       f"a microcontroller harness needs a fixed one (convert with batch 1)")
    return tensor


def runtime_sources() -> dict[str, str]:
    """eq_protocol.h/.c as shipped in edgeq/runtime, copied so the project builds on its own."""
    files = {}
    for name in RUNTIME_FILES:
        path = RUNTIME_DIR / name
        if not path.is_file():
            raise EdgeqError(f"edgeq's C runtime is incomplete: {path} is missing (reinstall edgeq)")
        files[name] = path.read_text()
    return files


def _tensor_info(tensor: Tensor) -> TensorInfo:
    return TensorInfo(tensor.type, tuple(tensor.shape), tensor.scales[0] if tensor.scales else 0.0,
                      tensor.zero_points[0] if tensor.zero_points else 0)


def hello_payload(tflite: bytes, graph: Graph, runtime: str, runtime_version: str, clock_hz: int,
                  arena_bytes: int) -> bytes:
    """The HELLO the firmware sends: which model, which runtime, its tensors."""
    return encode_hello(HelloInfo(
        model_hash=hashlib.sha256(tflite).digest(), runtime=runtime, runtime_version=runtime_version,
        clock_hz=clock_hz, arena_bytes=arena_bytes, input=_tensor_info(single_tensor(graph, "input")),
        output=_tensor_info(single_tensor(graph, "output"))))


def firmware_manifest(tflite: bytes, profile, runtime: str, stem: str, program: str, *,
                      bin_hex: bool, uf2: bool = False) -> str:
    """`edgeq-firmware.json`: what `edgeq build`, `flash` and `measure` need to know about a project
    (which model, which device, which file the build produces)."""
    manifest = {
        "edgeq_version": edgeq.__version__, "runtime": runtime, "device": profile.name,
        "model": f"{stem}.tflite", "model_sha256": model_sha256(tflite),
        "elf": program, "bin": program.replace(".elf", ".bin") if bin_hex else None,
        "hex": program.replace(".elf", ".hex") if bin_hex else None,
    }
    if uf2:  # written by edgeq build from the .bin (edgeq.codegen.boards.images), for the RP2040's drive
        manifest["uf2"] = program.replace(".elf", ".uf2")
    return json.dumps(manifest, indent=2) + "\n"
