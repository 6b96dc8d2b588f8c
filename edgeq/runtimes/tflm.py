"""TensorFlow Lite Micro with Arm's CMSIS-NN kernels, the peer Cortex-M users deploy with: the model
as a C array under TFLM's interpreter, built from a user's TFLM source tree ($TFLM_DIR). It refuses
the ops TFLM lacks, what CMSIS-NN's kernels refuse in Prepare and what TFLM aborts on, each named;
it fits a profile by the arena TFLM's own allocator needs on this host and an estimate of its code
until the firmware is linked; its firmware must equal the tflite-micro interpreter's outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeq.codegen.tflm import arena_size_with_margin, cmsis_nn_mve_arena_bytes, render_tflm_firmware, tflm_version
from edgeq.codegen.tflm_ops import check_tflm_ops, model_op_names
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import Graph, ops_text
from edgeq.litert_ops import HostOps
from edgeq.measure.costmodel import CostSection
from edgeq.measure.fit import Budget, Fit
from edgeq.measure.interpreters import ArenaUse, tflm_arena
from edgeq.runtimes.base import Prepared, Runtime
from edgeq.sources import TFLM_ALLOCATE_TENSORS, TFLM_FIRMWARE_ARENA, TFLM_RECORDING_ALLOCATOR, Source, estimated
from edgeq.tflm_limits import tflm_aborts
from edgeq.units import format_bytes

# Until the TFLM firmware is linked, its interpreter and kernels are an estimate: TFLM's
# interpreter with a handful of reference kernels for Cortex-M at -Os.
TFLM_CODE_BYTES_ESTIMATE = 64 * 1024
# A file every tree create_tflm_tree.py writes holds.
TFLM_MARKER = "tensorflow/lite/micro/micro_interpreter.h"


@dataclass(frozen=True)
class TflmModel(Prepared):
    arena: ArenaUse | None = None  # measured by tflite-micro on this host


def tflm_fit(profile, tflite_bytes: int, arena_bytes: int | None) -> Fit:
    """TFLM before its firmware is linked: the model and an estimate of TFLM's code in flash; in
    RAM the arena the firmware reserves (the smallest TFLM accepts, plus the codegen margin)."""
    flash = Budget(tflite_bytes + TFLM_CODE_BYTES_ESTIMATE, profile.memory.flash_bytes,
                   f"model {format_bytes(tflite_bytes)} + TFLM code {format_bytes(TFLM_CODE_BYTES_ESTIMATE)}",
                   estimated(f"the .tflite plus {format_bytes(TFLM_CODE_BYTES_ESTIMATE)} for TFLM's interpreter "
                             "and kernels (typical for Cortex-M at -Os), until the firmware is linked"))
    if arena_bytes is None:
        ram = Budget(0, profile.ram_for_model_bytes, "tensor arena", estimated("no TFLM arena could be measured"))
    else:
        ram = Budget(arena_bytes, profile.ram_for_model_bytes, "tensor arena", TFLM_FIRMWARE_ARENA)
    return Fit(flash, ram)


def firmware_arena(arena: ArenaUse | None) -> int | None:
    """The arena the TFLM firmware reserves: the smallest TFLM accepts, plus the codegen margin."""
    return arena_size_with_margin(arena.smallest_bytes) if arena else None


def cmsis_nn_refusals(graph: Graph) -> list[str]:
    """Why CMSIS-NN's TFLM kernels would refuse this model's operators in Prepare (the firmware then
    sends an ERROR instead of HELLO), one line per operator; the reference kernels take them.

    kernels/cmsis_nn/fully_connected.cc: per-channel weights only with int8 input, so an int16x8
    FULLY_CONNECTED with per-channel weights (what the converter writes) does not start."""
    found = []
    for op in graph.operators:
        if op.opcode != "FULLY_CONNECTED" or len(op.inputs) < 2:
            continue
        data, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        if data.type == "INT16" and len(weights.scales or ()) > 1:
            found.append(f"FULLY_CONNECTED (index {op.index}) has int16 input and per-channel weights, which "
                         "CMSIS-NN's TFLM kernel does not take (kernels/cmsis_nn/fully_connected.cc)")
    return found


def tflm_dir_from_env() -> Path:
    """The TFLM source tree TFLM firmware compiles from: $TFLM_DIR, checked to be one."""
    value = os.environ.get("TFLM_DIR")
    if not value:
        raise BadInput("TFLM firmware compiles TFLM from a source tree: set TFLM_DIR to one made by TFLM's "
                       "create_tflm_tree.py (OPTIMIZED_KERNEL_DIR=cmsis_nn); docs/device-loop.md says how")
    tree = Path(value).expanduser()
    if not (tree / TFLM_MARKER).is_file():
        raise BadInput(f"TFLM_DIR={value} is not a TFLM source tree (no {TFLM_MARKER} in it): point TFLM_DIR at "
                       "the folder create_tflm_tree.py wrote")
    return tree.resolve()


class Tflm(Runtime):
    name = "tflm"
    label = "TFLM + CMSIS-NN"
    mode_refusals = {
        "dynamic-int8": "TFLM runs no dynamic-range (hybrid) models: it has no kernels that take int8 weights "
                        "with float activations",
        "fp16": "TFLM runs no fp16 weights: it has no float16 kernels and no DEQUANTIZE from float16",
    }
    preferred_modes = ("int8", "int16x8", "fp32")
    reference = "tflite-micro"
    costs = CostSection("tflm", "TFLM + CMSIS-NN", fitted=True)
    record_key = "tflm"
    arena_figure = "firmware_arena_bytes"

    def version(self) -> str:
        return tflm_version()

    def refuses_ops(self, profile, tflite: bytes, graph: Graph, host: HostOps) -> str | None:
        op_names = model_op_names(tflite, graph)
        try:
            check_tflm_ops(op_names, graph)
        except BadInput as exc:
            return str(exc)
        if "VAR_HANDLE" in op_names:
            state = ops_text((op.index, op.opcode) for op in graph.operators if op.opcode == "VAR_HANDLE")
            return (f"TFLM: the model keeps state in resource variables ({state}), and edgeq's TFLM harness creates "
                    "no MicroResourceVariables for them")
        return None

    def refusal(self, tflite: bytes, graph: Graph) -> str | None:
        """Why TFLM with CMSIS-NN cannot run the model (an op it lacks, a kernel that refuses it in
        Prepare, an abort it would hit), or None."""
        refused_ops = self.refuses_ops(None, tflite, graph, HostOps())
        if refused_ops:
            return refused_ops
        refused = cmsis_nn_refusals(graph)
        if refused:
            return (f"TFLM with CMSIS-NN kernels cannot run this model: {'; '.join(refused)}. Quantize it as int8, "
                    "or deploy it with the edgeq-c runtime")
        aborts = tflm_aborts(graph)
        return "TensorFlow Lite Micro cannot run this model: " + "; ".join(aborts) if aborts else None

    def prepare(self, profile, tflite: bytes, graph: Graph, source: str) -> TflmModel:
        refusal = self.refusal(tflite, graph)
        if refusal:
            return TflmModel(self.name, refusal)
        try:
            return TflmModel(self.name, arena=tflm_arena(tflite))
        except BadInput as exc:
            return TflmModel(self.name, str(exc))

    def fit(self, profile, prepared: TflmModel, tflite: bytes) -> Fit:
        return tflm_fit(profile, len(tflite), firmware_arena(prepared.arena))

    def memory(self, prepared: TflmModel) -> dict[str, tuple[object, Source]]:
        a = prepared.arena
        if a is None:
            return {}
        return {"tflm_arena_bytes": (a.total_bytes, TFLM_RECORDING_ALLOCATOR),
                "tflm_arena_head_bytes": (a.head_bytes, TFLM_RECORDING_ALLOCATOR),
                "tflm_arena_tail_bytes": (a.tail_bytes, TFLM_RECORDING_ALLOCATOR),
                "tflm_arena_smallest_bytes": (a.smallest_bytes, TFLM_ALLOCATE_TENSORS),
                "firmware_arena_bytes": (firmware_arena(a), TFLM_FIRMWARE_ARENA)}

    def generate(self, profile, tflite: bytes, graph: Graph, stem: str, prepared: TflmModel
                 ) -> dict[str, str | bytes]:
        return render_tflm_firmware(profile, tflite, graph, prepared.arena.smallest_bytes, stem, self.identity)

    def unreachable(self, profile, port: str | None) -> str | None:
        if not os.environ.get("TFLM_DIR"):
            return ("the TFLM firmware compiles TFLM from a source tree made by create_tflm_tree.py: set TFLM_DIR "
                    "to one to build, flash and measure it")
        return super().unreachable(profile, port)

    def build_variables(self, profile) -> dict[str, str]:
        return {"TFLM_DIR": str(tflm_dir_from_env())}

    def candidate_record(self, mode: str, tflite: bytes, graph: Graph, *, dsp: bool,
                         flash_bytes: int | None, widen: str = "auto") -> dict:
        """TFLM's arena as its recording allocator reports it (the int4 kernels' unpack scratch, one
        byte a weight, is part of what it allocates), or why it cannot run the candidate."""
        refusal = self.refuses_mode(mode) or self.refusal(tflite, graph)
        if refusal:
            return {"error": refusal}
        try:
            arena = tflm_arena(tflite)
        except EdgeqError as exc:
            return {"error": str(exc)}
        return {"arena_bytes": arena.total_bytes, "head_bytes": arena.head_bytes, "tail_bytes": arena.tail_bytes,
                "smallest_bytes": arena.smallest_bytes, "mve_extra_bytes": cmsis_nn_mve_arena_bytes(graph)}

    def candidate_fit(self, record: dict, profile) -> Fit | str:
        tflm = record.get(self.record_key) or {}
        if "arena_bytes" not in tflm:
            return f"TFLM: {tflm.get('error', 'not measured')}"
        arena = (tflm.get("smallest_bytes") or tflm["arena_bytes"]) + (
            tflm.get("mve_extra_bytes", 0) if profile.has_mve else 0)
        return tflm_fit(profile, record["tflite_bytes"], arena_size_with_margin(arena))


TFLM = Tflm()
