"""What every runtime answers: the interface the planner, deploy, the device loop and the report ask,
so that none of them tests a runtime's name (STYLE.md: "What varies lives behind one interface").

A runtime says which quantization modes it runs, what it refuses in a model and why, what it makes
of a model for a profile (`prepare`: edgeq-c compiles it, TFLM measures its arena), how that fits
the profile, how its project is generated, what building it needs, which interpreter its outputs
must equal, and its section of the cost model. A new runtime is one module here and its templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgeq.codegen.sources import RuntimeId
from edgeq.errors import BadInput
from edgeq.graph import Graph, read_graph
from edgeq.litert_ops import HostOps
from edgeq.measure.costmodel import CostSection
from edgeq.measure.fit import Fit
from edgeq.modes import get_mode
from edgeq.sources import Source

EMULATED_METHODS = ("qemu", "host")  # flash methods whose device edgeq starts itself


@dataclass(frozen=True)
class Prepared:
    """What a runtime made of one model for one profile, before generating its project: why it
    cannot run the model (None when it can), what the user should know, and its own findings
    (edgeq-c's compiled model, TFLM's arena) in the subclasses."""

    runtime: str
    refusal: str | None = None
    warnings: tuple[str, ...] = ()


class Runtime:
    name: ClassVar[str]
    label: ClassVar[str]  # how people name it: "TFLM + CMSIS-NN"
    mode_refusals: ClassVar[dict[str, str]]  # the modes it cannot run at all, and why
    preferred_modes: ClassVar[tuple[str, ...]]  # used when the user names none, best first
    reference: ClassVar[str]  # the interpreter on this host whose outputs its firmware must equal
    costs: ClassVar[CostSection]
    record_key: ClassVar[str | None] = None  # its section of a planner candidate's record
    settings: ClassVar[str | None] = None  # the profile section that only it reads
    # The report.json memory figures that are its arena and its constants in flash (report.html's fit chart).
    arena_figure: ClassVar[str | None] = None
    constants_figure: ClassVar[str | None] = None

    def __repr__(self) -> str:
        return f"<runtime {self.name}>"

    # ---- modes ---------------------------------------------------------------------------------------

    def refuses_mode(self, mode: str) -> str | None:
        """Why it cannot run `mode` at all, or None."""
        return self.mode_refusals.get(mode)

    def check_mode(self, mode: str, profile) -> tuple[str, ...]:
        """BadInput for a mode it cannot run; a warning for one the device runs slowly."""
        numeric = get_mode(mode).numeric
        refusal = self.refuses_mode(mode)
        if refusal:
            raise BadInput(f"mode {mode} cannot run on {profile.name} with runtime {self.name}: {refusal}")
        if not profile.supports(numeric):
            return (f"{profile.name} does not run {numeric} well (it runs {', '.join(profile.numerics)}); "
                    f"expect {mode} to be slow there",)
        return ()

    def default_mode(self, profile) -> str | None:
        """The first of its preferred modes the device runs well, or None."""
        return next((m for m in self.preferred_modes
                     if profile.supports(get_mode(m).numeric) and not self.refuses_mode(m)), None)

    def default_reason(self, profile, mode: str) -> str:
        """Why `default_mode` chose `mode`, for the plan's reason."""
        return f"the smallest mode {profile.name} runs well with {self.name}"

    # ---- a model on a profile ------------------------------------------------------------------------

    def refuses_ops(self, profile, tflite: bytes, graph: Graph, host: HostOps) -> str | None:
        """Why it can run no version of this model, quantized or not: the ops it has no kernel for
        (custom ops above all), each named with its index. The planner asks once, of the float model,
        before it builds a candidate; `host` is what this host's LiteRT lacks (edgeq.litert_ops)."""
        return None

    def prepare(self, profile, tflite: bytes, graph: Graph, source: str) -> Prepared:
        """What it makes of the model for the profile, and why it cannot run it (`refusal`)."""
        raise NotImplementedError

    def fit(self, profile, prepared: Prepared, tflite: bytes) -> Fit:
        """Flash and RAM the model needs on the profile before anything is linked, each with its source."""
        raise NotImplementedError

    def memory(self, prepared: Prepared) -> dict[str, tuple[object, Source]]:
        """Its figures for report.json's memory section: key -> (value, where it came from)."""
        return {}

    def generate(self, profile, tflite: bytes, graph: Graph, stem: str, prepared: Prepared
                 ) -> dict[str, str | bytes]:
        """Its project for the profile: {relative path: text or bytes}."""
        raise NotImplementedError

    def project(self, profile, tflite: bytes, stem: str, graph: Graph | None = None) -> dict[str, str | bytes]:
        """prepare then generate, with BadInput naming what it refuses."""
        graph = graph if graph is not None else read_graph(tflite, f"{stem}.tflite")
        prepared = self.prepare(profile, tflite, graph, f"{stem}.tflite")
        if prepared.refusal:
            raise BadInput(prepared.refusal)
        return self.generate(profile, tflite, graph, stem, prepared)

    @property
    def identity(self) -> RuntimeId:
        """Its name, version and reference interpreter, as its firmware declares them."""
        return RuntimeId(self.name, self.version(), self.reference)

    def version(self) -> str:
        raise NotImplementedError

    # ---- the device loop -----------------------------------------------------------------------------

    def unreachable(self, profile, port: str | None) -> str | None:
        """Why edgeq cannot build, flash and measure its firmware on the device, or None when it can."""
        if profile.flash.method not in EMULATED_METHODS and port is None:
            return f"{profile.name} is a real board: give its serial port with --port to build, flash and measure on it"
        return None

    def build_variables(self, profile) -> dict[str, str]:
        """The make variables its firmware's Makefile needs from this machine."""
        return {}

    # ---- the planner ---------------------------------------------------------------------------------

    def candidate_record(self, mode: str, tflite: bytes, graph: Graph, *, dsp: bool,
                         flash_bytes: int | None, widen: str = "auto") -> dict | None:
        """What the planner keeps of a candidate for it, independent of the board but for `dsp`,
        `flash_bytes` and `widen` (which are in the planner cache's key); None when it keeps nothing."""
        return None

    def candidate_fit(self, record: dict, profile) -> Fit | str:
        """A candidate's fit from its record, or why it cannot run the candidate."""
        raise NotImplementedError
