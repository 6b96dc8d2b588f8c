"""edgeq-c, edgeq's ahead-of-time C runtime (edgeq.aot, docs/edgeq-c.md): the model compiled to C
calls of its kernels with a static arena. It refuses what its lowering lacks, naming the op; it
fits a profile by its compiled objects' sizes (or its constants and a code estimate); its firmware
must equal the tflite-micro interpreter's outputs."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import edgeq
from edgeq.aot import CompiledModel, compile_if_supported, ops_without_kernel
from edgeq.aot.arena_summary import arena_summary
from edgeq.aot.footprint import measure_footprint
from edgeq.codegen.edgeq_c import render_edgeq_c_project
from edgeq.errors import EdgeqError
from edgeq.graph import Graph, ops_text
from edgeq.litert_ops import HostOps
from edgeq.measure.costmodel import CostSection
from edgeq.measure.fit import Budget, Fit
from edgeq.runtimes.base import Prepared, Runtime
from edgeq.sources import COMPILED_OBJECTS, EDGEQ_C_CONSTANTS, EDGEQ_C_MEMORY_PLAN, Source, estimated, measured
from edgeq.units import format_bytes

# edgeq-c's kernels and glue when no compiler for the profile is at hand to measure them
# (the KWS model's come to about 6 KB on Cortex-M4 at -Os).
EDGEQ_C_CODE_BYTES_ESTIMATE = 16 * 1024
# The planner sizes every candidate with one reference build, whatever the board.
REFERENCE_BUILD = "arm-none-eabi-gcc -mcpu=cortex-m4 -Os"


@dataclass(frozen=True)
class EdgeqCModel(Prepared):
    compiled: CompiledModel | None = None
    arena_plan: dict | None = None  # report.json's compact copy of the arena plan (edgeq.aot.arena_summary)


def edgeq_c_fit(profile, flash_bytes: int | None, ram_bytes: int | None, const_bytes: int,
                arena_bytes: int, compiled_by: Source = COMPILED_OBJECTS) -> Fit:
    """edgeq-c before a build: its constants and code in flash, its arena (and any data) in RAM,
    from the compiled objects when a compiler measured them (`flash_bytes`, `ram_bytes`, measured
    as `compiled_by` says), else from the generated constants and a code estimate."""
    if flash_bytes is not None and ram_bytes is not None:
        return Fit(Budget(flash_bytes, profile.memory.flash_bytes, "edgeq-c model and kernels", compiled_by),
                   Budget(ram_bytes, profile.ram_for_model_bytes, "edgeq-c arena and data", compiled_by))
    flash = const_bytes + EDGEQ_C_CODE_BYTES_ESTIMATE
    return Fit(Budget(flash, profile.memory.flash_bytes, "edgeq-c constants + kernels",
                      estimated(f"the generated model's constant arrays plus {format_bytes(EDGEQ_C_CODE_BYTES_ESTIMATE)} "
                                "for edgeq-c's kernels (no compiler for the profile to measure them)")),
               Budget(arena_bytes, profile.ram_for_model_bytes, "edgeq-c arena", EDGEQ_C_MEMORY_PLAN))


def compiled_footprint(profile, compiled: CompiledModel) -> tuple[int | None, int | None]:
    """edgeq-c's flash and RAM, compiled and sized with the profile's cross compiler when it is
    installed; (None, None) when it is not."""
    toolchain = profile.toolchain
    if toolchain is None or not toolchain.compiler.endswith("gcc") or not shutil.which(toolchain.compiler):
        return None, None
    with tempfile.TemporaryDirectory(prefix="edgeq-footprint-") as tmp:
        footprint = measure_footprint(compiled, Path(tmp), cc=toolchain.compiler, size=toolchain.tool("size"),
                                      cflags=(*toolchain.cflags, toolchain.optimize))
    return footprint.flash_bytes, footprint.ram_bytes


# The profile's optimisation level says what the user puts first, as STM32Cube.AI's "time",
# "balanced" and "ram" do: at -Os flash (no widened weights), at -O2 both (widened where each weight
# is used at least lowering.WIDEN_MIN_USES times an inference), at -O3 speed (widened wherever a
# kernel takes them). Widened weights are still dropped when they do not fit the flash.
WIDENING = {"-Os": "never", "-O2": "auto", "-O3": "always"}


def widening(profile) -> str:
    """Which filters edgeq-c widens for `profile` (lowering.WIDEN_POLICIES): none on a core with Helium,
    whose kernels read int8 weights sixteen at a time."""
    if profile.has_mve:
        return "never"
    return WIDENING.get(profile.toolchain.optimize, "auto")


class EdgeqC(Runtime):
    name = "edgeq-c"
    label = "edgeq-c"
    mode_refusals = {
        "dynamic-int8": "edgeq-c runs integer and float32 models, not dynamic-range (hybrid) ones",
        "fp16": "edgeq-c has no float16 kernels",
    }
    preferred_modes = ("int8", "int16x8", "fp32")
    reference = "tflite-micro"
    # Its direct kernel calls cost less per op than an interpreter's loop and kernel lookups.
    costs = CostSection("edgeq-c", "edgeq-c", op_factor=0.3, fitted=True)
    record_key = "edgeq_c"
    arena_figure = "edgeq_c_arena_bytes"
    constants_figure = "edgeq_c_constant_bytes"

    def version(self) -> str:
        return edgeq.__version__

    def compile(self, profile, tflite: bytes, source: str = "<bytes>", graph: Graph | None = None
                ) -> tuple[CompiledModel | None, str | None]:
        """The model compiled for `profile` (or None and why edgeq-c cannot run it): the DSP kernels where
        the core has them, with the weights widened that `widening` asks for and the flash holds.
        Everything that compiles for a device goes through here, so the firmware, the fit and the
        per-layer profile agree on the kernels."""
        return compile_if_supported(tflite, source, graph, dsp=profile.has_dsp, flash_bytes=profile.memory.flash_bytes,
                                    widen=widening(profile), mve=profile.has_mve)

    def refuses_ops(self, profile, tflite: bytes, graph: Graph, host: HostOps) -> str | None:
        missing = ops_without_kernel(graph)
        if not missing:
            return None
        return "edgeq-c has no kernel for " + ops_text((op.index, op.opcode) for op in missing)

    def prepare(self, profile, tflite: bytes, graph: Graph, source: str) -> EdgeqCModel:
        compiled, refusal = self.compile(profile, tflite, source, graph)
        warnings = ()
        if compiled is not None and profile.has_dsp and compiled.widen != widening(profile):
            warnings = (f"edgeq-c: widened weights would not fit {profile.name}'s flash; every layer keeps its int8 "
                        f"weights ({compiled.const_bytes:,} bytes of constants), slower",)
        return EdgeqCModel(self.name, refusal, warnings, compiled, arena_summary(compiled, graph))

    def fit(self, profile, prepared: EdgeqCModel, tflite: bytes) -> Fit:
        compiled = prepared.compiled
        flash, ram = compiled_footprint(profile, compiled)
        return edgeq_c_fit(profile, flash, ram, compiled.const_bytes, compiled.arena_bytes)

    def memory(self, prepared: EdgeqCModel) -> dict[str, tuple[object, Source]]:
        c = prepared.compiled
        if c is None:
            return {}
        return {"edgeq_c_arena_bytes": (c.arena_bytes, EDGEQ_C_MEMORY_PLAN),
                "edgeq_c_lower_bound_bytes": (c.lower_bound_bytes, EDGEQ_C_MEMORY_PLAN),
                "edgeq_c_constant_bytes": (c.const_bytes, EDGEQ_C_CONSTANTS),  # widened on DSP cores
                "edgeq_c_plan": (prepared.arena_plan, EDGEQ_C_MEMORY_PLAN)}  # for report.html's arena over time

    def generate(self, profile, tflite: bytes, graph: Graph, stem: str, prepared: EdgeqCModel
                 ) -> dict[str, str | bytes]:
        return render_edgeq_c_project(profile, tflite, graph, stem, prepared.compiled, self.identity)

    def candidate_record(self, mode: str, tflite: bytes, graph: Graph, *, dsp: bool,
                         flash_bytes: int | None, widen: str = "auto") -> dict:
        """Its arena and constants, and its flash and RAM from the objects compiled by REFERENCE_BUILD:
        one reference build for the kernels the board gets (the DSP ones widen the weights `widen`
        names when they fit `flash_bytes`, and plan other scratch)."""
        refusal = self.refuses_mode(mode)
        if refusal:
            return {"error": refusal}
        compiled, refusal = compile_if_supported(tflite, graph=graph, dsp=dsp, flash_bytes=flash_bytes, widen=widen)
        if compiled is None:
            return {"error": refusal}
        record = {"arena_bytes": compiled.arena_bytes, "const_bytes": compiled.const_bytes,
                  "kernels": list(compiled.kernels)}
        try:
            with tempfile.TemporaryDirectory(prefix="edgeq-plan-") as tmp:
                footprint = measure_footprint(compiled, Path(tmp))
            record.update(flash_bytes=footprint.flash_bytes, ram_bytes=footprint.ram_bytes,
                          code_bytes=footprint.code_bytes, footprint=REFERENCE_BUILD)
        except EdgeqError as exc:  # no cross compiler here: the planner estimates the code
            record["footprint_error"] = str(exc).splitlines()[0]
        return record

    def candidate_fit(self, record: dict, profile) -> Fit | str:
        c = record.get(self.record_key) or {}
        if "arena_bytes" not in c:
            return f"edgeq-c: {c.get('error', 'not measured')}"
        compiled_by = measured(f"{c.get('footprint')} on edgeq-c's generated code (one reference build for every board)")
        return edgeq_c_fit(profile, c.get("flash_bytes"), c.get("ram_bytes"), c["const_bytes"], c["arena_bytes"],
                           compiled_by)


EDGEQ_C = EdgeqC()
