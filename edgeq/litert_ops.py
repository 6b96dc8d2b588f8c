"""Which of a model's ops this host cannot run, named: LiteRT as edgeq measures with it (its built-in
ops and the XNNPACK delegate, which also runs some of MediaPipe's custom ops, such as
Convolution2DTransposeBias), and the converter's calibrator (LiteRT's built-in ops alone: no
delegate, so no custom op beyond the few LiteRT registers itself).

Each is asked by preparing the model, in edgeq's worker process, and its error is turned into the
op's name and index. A model that needs an op neither has is refused by name before anything is
built, instead of failing once per candidate with the calibrator's "Failed to initialize op
resolver for calibration", which names nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeq.graph import Graph, ops_text, read_graph
from edgeq.isolate import contained

_NODE = re.compile(r"Node number (\d+) \(([^)]+)\) failed to prepare")
_CUSTOM = re.compile(r"unresolved custom op: ([^\s.]+)")
_BUILTIN = re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'")


@dataclass(frozen=True)
class MissingOp:
    index: int | None  # None when the interpreter did not say which node
    name: str  # as edgeq.graph names ops: CONV_2D, CUSTOM:Convolution2DTransposeBias
    version: int | None = None  # a builtin op's version the interpreter lacks

    @property
    def custom(self) -> str | None:
        return self.name.split(":", 1)[1] if self.name.startswith("CUSTOM:") else None

    @property
    def text(self) -> str:
        return self.name + (f" version {self.version}" if self.version else "")


@dataclass(frozen=True)
class HostOps:
    """What this host lacks to run a model: `litert` for measuring it in LiteRT, `calibrator` for
    recording activation ranges (int8, int16x8, int4 weights); `detail` is the interpreter's own
    message when it failed for another reason."""

    litert: tuple[MissingOp, ...] = ()
    calibrator: tuple[MissingOp, ...] = ()
    litert_detail: str | None = None
    calibrator_detail: str | None = None

    @property
    def litert_runs(self) -> bool:
        return not self.litert and self.litert_detail is None

    def litert_reason(self) -> str | None:
        return _reason(self.litert, self.litert_detail, "LiteRT on this host")

    def unmeasured(self, declared: tuple[str, ...]) -> str | None:
        """Why this host cannot measure a model whose every missing op the device declares it has
        (litert.custom_ops, --custom-op); None when it can measure it, or when the device lacks one too."""
        if not self.litert or any(m.custom not in declared for m in self.litert):
            return None
        return (f"LiteRT on this host has no kernel for {ops_text((m.index, m.text) for m in self.litert)}, "
                "which the device's LiteRT has (declared in litert.custom_ops or by --custom-op)")

    def calibrator_reason(self) -> str | None:
        reason = _reason(self.calibrator, self.calibrator_detail, "the converter's calibrator")
        if reason is None:
            return None
        return reason + ": int8, int16x8 and int4 weights record activation ranges by running the model there"


def _reason(missing: tuple[MissingOp, ...], detail: str | None, who: str) -> str | None:
    if missing:
        return f"{who} has no kernel for {ops_text((m.index, m.text) for m in missing)}"
    return f"{who} cannot prepare the model: {detail}" if detail else None


def missing_from(message: str, graph) -> tuple[MissingOp, ...]:
    """The ops an interpreter's error names: the node that failed to prepare, each unresolved custom
    op (at every index the model uses it), each builtin version it lacks."""
    found: dict[tuple, MissingOp] = {}
    for name in _CUSTOM.findall(message):
        for op in graph.operators:
            if op.opcode == f"CUSTOM:{name}":
                found[(op.index, op.opcode)] = MissingOp(op.index, op.opcode)
        if not any(m.custom == name for m in found.values()):
            found[(None, name)] = MissingOp(None, f"CUSTOM:{name}")
    for opcode, version in _BUILTIN.findall(message):
        ops = [op for op in graph.operators if op.opcode == opcode] or [None]
        for op in ops:
            found[(op.index if op else None, opcode)] = MissingOp(op.index if op else None, opcode, int(version))
    if not found:
        for index, _ in _NODE.findall(message):
            op = graph.operators[int(index)] if int(index) < len(graph.operators) else None
            if op is not None and op.opcode.startswith("CUSTOM:"):
                found[(op.index, op.opcode)] = MissingOp(op.index, op.opcode)
    return tuple(sorted(found.values(), key=lambda m: (m.index is None, m.index or 0, m.name)))


def _prepare(tflite: bytes, delegates: bool) -> str | None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        Interpreter(model_content=tflite, num_threads=1, experimental_op_resolver_type=resolver).allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        return str(exc)
    return None


def _host_ops(tflite: bytes) -> HostOps:
    graph = read_graph(tflite)
    litert, calibrator = _prepare(tflite, True), _prepare(tflite, False)
    litert_missing = missing_from(litert, graph) if litert else ()
    calibrator_missing = missing_from(calibrator, graph) if calibrator else ()
    return HostOps(litert_missing, calibrator_missing,
                   _first_line(litert) if litert and not litert_missing else None,
                   _first_line(calibrator) if calibrator and not calibrator_missing else None)


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or [""])[0][:300]


def host_ops(tflite: bytes, graph: Graph | None = None) -> HostOps:
    """What this host's LiteRT and calibrator lack to run `tflite` (asked in the worker process). A
    model of builtin ops alone is not asked about: a builtin version newer than this LiteRT's shows,
    named by LiteRT, where the model is measured."""
    graph = graph if graph is not None else read_graph(tflite)
    if not any(op.opcode.startswith("CUSTOM:") for op in graph.operators):
        return HostOps()
    return contained("the LiteRT interpreter", "the model's ops", _host_ops, tflite)
