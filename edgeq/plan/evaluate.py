"""Building and measuring the planner's candidates, in this process or in spawned workers.

A candidate is a `Spec` (mode, weight granularity, calibration, transforms, layers kept float).
Its measurement does not depend on the device: model bytes, accuracy and SQNR on the validation
data in LiteRT, the TFLM arena its recording allocator reports, the edgeq-c arena and constant
bytes, and the work of every op for the cost model. So a measurement is cached by the model, the
data and the spec alone (edgeq.plan.session), and planning the same model for another board costs
nothing new.

Workers are spawned (TensorFlow is not fork-safe). Candidates that share a transformed float
model (CLE, bias correction) go to one worker as a group, so each transform and calibration pass
runs once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeq.aot import compile_model
from edgeq.aot.footprint import measure_footprint
from edgeq.codegen.tflm_ops import unsupported_ops
from edgeq.codegen.tflm_sources import cmsis_nn_refusals
from edgeq.convert import calibrate, transforms
from edgeq.convert.calibrate import layer_errors
from edgeq.convert.converter import MODES as CONVERTER_MODES
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import read_graph
from edgeq.load import Dataset
from edgeq.measure.costmodel import count_work
from edgeq.measure.interpreters import compare, run_litert, tflm_arena
from edgeq.plan.rules import RUNTIME_REFUSALS

# The converter's modes, and int4 weights (with int8 activations) through ai-edge-quantizer.
MODES = (*CONVERTER_MODES, "int4w", "as-is")  # as-is: a model that came quantized, deployed unchanged
SENSITIVITY_SAMPLES = 64



@dataclass(frozen=True)
class Spec:
    mode: str  # one of MODES; int4w = int4 weights, int8 activations
    per_channel: bool = True
    calibration: str = "minmax"  # edgeq.convert.calibrate.CALIBRATIONS
    cle: bool = False
    bias_correction: bool = False
    keep_float: tuple[str, ...] = ()  # op output tensors left in float (mixed precision)
    qat: bool = False
    runtime: str | None = None  # only this runtime (as-is candidates: one per runtime)

    @property
    def integer(self) -> bool:
        return self.mode in ("int8", "int4w", "int16x8", "as-is")

    @property
    def calibrated(self) -> bool:
        return self.mode in ("int8", "int4w")

    @property
    def weight_quantizer(self) -> str:
        if self.mode == "int4w":
            return "int4"
        return "int8-pc" if self.per_channel else "int8-pt"

    @property
    def transform(self) -> tuple[bool, str | None, tuple[str, ...]]:
        """What the float model goes through before calibration: CLE, and bias correction for this
        weight quantizer, except on the layers kept float (their weights keep no error to undo)."""
        if not self.bias_correction:
            return self.cle, None, ()
        return self.cle, self.weight_quantizer, self.keep_float

    @property
    def name(self) -> str:
        if self.mode == "as-is":
            return f"as-is/{self.runtime}"
        if not self.calibrated:
            return self.mode
        parts = [self.mode] + ([] if self.mode == "int4w" else ["pc" if self.per_channel else "pt"])
        parts.append("qat" if self.qat else self.calibration)
        name = "/".join(parts)
        extras = (["cle"] if self.cle else []) + (["bc"] if self.bias_correction else [])
        if self.keep_float:
            extras.append(f"float{len(self.keep_float)}")
        return name + "".join("+" + e for e in extras)

    def key(self) -> dict:
        return asdict(self)


# ---- inputs shared by every worker -----------------------------------------------------------------

@dataclass
class Inputs:
    float_tflite: bytes  # the float model; for a model that came quantized, that model

    calib_x: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray | None
    val_source: str
    val_synthetic: bool = False
    converted: dict[str, bytes] = field(default_factory=dict)  # fp16, dynamic-int8: from the source model
    prebuilt: dict[str, tuple[bytes, list[str]]] = field(default_factory=dict)  # spec name -> model, notes
    came_quantized: str | None = None  # "int8" or "int16x8" when the model came quantized: no float to compare
    dsp: bool = False  # the board has the DSP extension: edgeq-c's figures are those of its DSP kernels
    flash_bytes: int | None = None  # the board's flash, which decides whether those kernels' weights fit


_inputs: Inputs | None = None
_float_outputs = None
_bases: dict = {}
_measured: dict = {}


def use_inputs(inputs: Inputs) -> None:
    """Make `inputs` the ones this process builds from (keeping what it derived, if they are the same)."""
    global _inputs, _float_outputs, _bases, _measured
    if inputs is not _inputs:
        _inputs, _float_outputs, _bases, _measured = inputs, None, {}, {}


def warm_up() -> None:
    """Worker start: stdout sent away (native code prints there), the heavy imports done while the
    parent is still loading the model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")
    import ai_edge_litert.interpreter  # noqa: F401
    import tensorflow  # noqa: F401


_loaded_from: str | None = None


def _use_inputs_from(path: str) -> None:
    """In a worker: the inputs from the file the parent wrote once, not sent with every task."""
    global _loaded_from
    if _loaded_from != path:
        with open(path, "rb") as fh:
            use_inputs(pickle.load(fh))
        _loaded_from = path


def evaluate_group_from(path: str, specs: list[Spec]) -> list[tuple[dict, bytes | None]]:
    _use_inputs_from(path)
    return evaluate_group(specs)


def analyse_layers_from(path: str, spec: Spec) -> list[dict]:
    _use_inputs_from(path)
    return analyse_layers(spec)


def write_inputs(inputs: Inputs, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".plan-inputs-", suffix=".pkl", dir=directory)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(inputs, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(name)


def _validation():
    return Dataset(x=_inputs.val_x, y=_inputs.val_y, source=_inputs.val_source, synthetic=_inputs.val_synthetic)


# ---- building -------------------------------------------------------------------------------------

@dataclass
class _Base:
    """The float model after a spec's transforms, calibrated, with observer ranges on demand."""

    tflite: bytes
    calibrated: bytes
    input_names: frozenset[str]
    notes: list[str]
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


def _plain_quantized(tflite: bytes, calibrated: bytes, weight_quantizer: str) -> bytes:
    if weight_quantizer == "int4":
        return calibrate.quantize_int4_weights(tflite, _inputs.calib_x)
    return calibrate.quantize_int8(calibrated, per_channel=weight_quantizer == "int8-pc")


def _base(transform: tuple[bool, str | None, tuple[str, ...]]) -> _Base:
    if transform in _bases:
        return _bases[transform]

    cle, bias_quantizer, float_layers = transform
    tflite, notes = _inputs.float_tflite, []
    if cle:
        eq = transforms.equalize(tflite)
        tflite = eq.tflite
        worst = max(eq.range_ratio_before, default=1.0)
        notes.append(f"CLE on {len(eq.pairs)} layer pair(s); worst channel range spread {worst:.1f}x -> "
                     f"{max(eq.range_ratio_after, default=1.0):.1f}x")
    if bias_quantizer:
        quantized = _plain_quantized(tflite, calibrate.calibrate(tflite, _inputs.calib_x), bias_quantizer)
        means = calibrate.activation_stats(tflite, _inputs.calib_x, with_means=True).means
        bc = transforms.correct_bias(tflite, transforms.dequantized_weights(quantized), means,
                                     skip=frozenset(float_layers))
        tflite = bc.tflite
        notes.append(f"bias correction on {len(bc.shifts)} layer(s); largest shift "
                     f"{max(bc.shifts.values(), default=0.0):.3g}")
    graph = read_graph(tflite, "float model")
    base = _Base(tflite, calibrate.calibrate(tflite, _inputs.calib_x),
                 frozenset(graph.tensors[i].name for i in graph.inputs), notes)
    _bases[transform] = base
    return base


def _ranges(base: _Base, methods: list[str]) -> None:
    missing = [m for m in methods if m != "minmax" and m not in base.ranges]
    if missing:
        base.ranges.update(calibrate.activation_stats(base.tflite, _inputs.calib_x, tuple(missing)).ranges)


def build(spec: Spec) -> tuple[bytes, list[str]]:
    """The .tflite of a candidate and notes on how it was made."""
    if spec.qat:
        if spec.name not in _inputs.prebuilt:
            raise BadInput("the QAT model was not given to the worker")
        return _inputs.prebuilt[spec.name]
    if spec.mode in ("fp32", "as-is"):
        return _inputs.float_tflite, []
    if spec.mode in ("fp16", "dynamic-int8"):
        if spec.mode not in _inputs.converted:
            raise BadInput(f"{spec.mode} needs the source model (.keras, .h5 or SavedModel), not a .tflite")
        return _inputs.converted[spec.mode], []
    if spec.mode == "int16x8":
        return calibrate.quantize_int16x8(_inputs.float_tflite, _inputs.calib_x), []
    base = _base(spec.transform)
    ranges = None
    if spec.calibration != "minmax":
        _ranges(base, [spec.calibration])
        ranges = base.ranges[spec.calibration]
    if spec.mode == "int4w":
        return calibrate.quantize_int4_weights(base.tflite, _inputs.calib_x, ranges, keep=base.input_names), base.notes
    calibrated = base.calibrated
    if ranges is not None:
        calibrated = calibrate.rewrite_ranges(calibrated, ranges, keep=base.input_names)
    return calibrate.quantize_int8(calibrated, spec.per_channel, spec.keep_float), base.notes


# ---- measuring ------------------------------------------------------------------------------------

def _tflm(spec: Spec, tflite: bytes, graph) -> dict:
    refusal = RUNTIME_REFUSALS["tflm"].get(spec.mode)
    if refusal:
        return {"error": refusal}
    missing = unsupported_ops(graph.op_names)
    if missing:
        return {"error": f"TFLM has no kernel for {', '.join(missing)}"}
    refused = cmsis_nn_refusals(graph)  # edgeq's TFLM firmware runs CMSIS-NN's kernels on every board
    if refused:
        return {"error": f"TFLM with CMSIS-NN: {refused[0]}"}
    try:
        arena = tflm_arena(tflite)
    except EdgeqError as exc:
        return {"error": str(exc)}
    return {"arena_bytes": arena.total_bytes, "head_bytes": arena.head_bytes, "tail_bytes": arena.tail_bytes,
            "smallest_bytes": getattr(arena, "smallest_bytes", None)}


def _edgeq_c(spec: Spec, tflite: bytes, dsp: bool, flash_bytes: int | None) -> dict:
    """edgeq-c's arena, and its flash and RAM from the objects compiled for Cortex-M4 at -Os: one
    reference build for the kernels the board gets (the DSP ones widen weights, when they fit its
    `flash_bytes`, and plan other scratch; both are in the cache's fingerprint)."""

    refusal = RUNTIME_REFUSALS["edgeq-c"].get(spec.mode)
    if refusal:
        return {"error": refusal}
    try:
        compiled = compile_model(tflite, dsp=dsp, flash_bytes=flash_bytes)
    except EdgeqError as exc:
        return {"error": str(exc)}
    except ImportError as exc:  # edgeq-c not installed in this build
        return {"error": f"edgeq-c is not available ({exc})"}
    record = {"arena_bytes": compiled.arena_bytes, "const_bytes": compiled.const_bytes,
              "kernels": list(compiled.kernels)}
    try:
        with tempfile.TemporaryDirectory(prefix="edgeq-plan-") as tmp:
            footprint = measure_footprint(compiled, Path(tmp))
        record.update(flash_bytes=footprint.flash_bytes, ram_bytes=footprint.ram_bytes,
                      code_bytes=footprint.code_bytes, footprint="arm-none-eabi-gcc -mcpu=cortex-m4 -Os")
    except (EdgeqError, ImportError) as exc:  # no cross compiler here: the planner estimates the code
        record["footprint_error"] = str(exc).splitlines()[0]
    return record


def _int4_unpack_bytes(graph) -> int:
    """The largest int4 filter, one byte a weight: the scratch TFLM's int4 kernels unpack into."""
    return max((graph.tensors[op.inputs[1]].element_count for op in graph.operators
                if len(op.inputs) > 1 and op.inputs[1] >= 0 and graph.tensors[op.inputs[1]].type == "INT4"),
               default=0)


def measure(spec: Spec, tflite: bytes) -> dict:
    """Everything the planner needs to know about one built candidate."""
    global _float_outputs

    graph = read_graph(tflite, spec.name)
    validation = _validation()
    if _float_outputs is None:
        _float_outputs = run_litert(_inputs.float_tflite, validation, 1, "float")
    accuracy = compare(_float_outputs, run_litert(tflite, validation, 1, spec.name), validation)
    if _inputs.came_quantized:  # the model against itself: only its accuracy is a figure
        accuracy = dataclasses.replace(accuracy, float_accuracy=None, agreement=None, sqnr_db=float("nan"))
    return {
        "came_quantized": _inputs.came_quantized,
        "tflite_bytes": len(tflite),
        "tflite_sha256": hashlib.sha256(tflite).hexdigest(),
        "samples": accuracy.samples,
        "accuracy": accuracy.quantized_accuracy,
        "float_accuracy": accuracy.float_accuracy,
        "agreement": accuracy.agreement,
        "sqnr_db": None if accuracy.sqnr_db == float("inf") or math.isnan(accuracy.sqnr_db) else accuracy.sqnr_db,
        "tflm": _tflm(spec, tflite, graph),
        "edgeq_c": _edgeq_c(spec, tflite, _inputs.dsp, _inputs.flash_bytes),
        "int4_unpack_bytes": _int4_unpack_bytes(graph),
        "work": [[w.index, w.opcode, w.dtype, w.macs, w.elements, w.constant_input, w.outputs]
                 for w in count_work(graph)],
        "ops": graph.op_names,
    }


def evaluate(spec: Spec) -> tuple[dict, bytes | None]:
    """Build and measure one candidate; a failure is recorded, not raised."""
    start = time.perf_counter()
    try:
        tflite, notes = build(spec)
        # Variants often build the same bytes (a transform with nothing to change, a range the
        # quantizer overrides): measure each distinct model once per process.
        key = (hashlib.sha256(tflite).hexdigest(), spec.mode)
        if key not in _measured:
            _measured[key] = measure(spec, tflite)
        record = dict(_measured[key])
    except EdgeqError as exc:
        return {"error": str(exc), "seconds": time.perf_counter() - start}, None
    except Exception as exc:  # the converter, quantizer or an interpreter refused this variant
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return {"error": f"{type(exc).__name__}: {first}", "seconds": time.perf_counter() - start}, None
    record["notes"] = notes
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record, tflite


def evaluate_group(specs: list[Spec]) -> list[tuple[dict, bytes | None]]:
    """Candidates sharing a transformed float model: its observer ranges come from one pass."""
    methods = sorted({s.calibration for s in specs if s.calibrated and not s.qat} - {"minmax"})
    for transform in {s.transform for s in specs if s.calibrated and not s.qat}:
        try:
            _ranges(_base(transform), methods)
        except Exception:  # noqa: BLE001 - each candidate then records its own failure in evaluate()
            pass
    return [evaluate(s) for s in specs]


def analyse_layers(spec: Spec) -> list[dict]:
    """Per-layer error of a candidate against the float model (see calibrate.layer_errors)."""
    tflite, _ = build(spec)
    x = _inputs.calib_x[:SENSITIVITY_SAMPLES]
    return [asdict(e) | {"sqnr_db": _finite(float(e.sqnr_db)), "nsr": _finite(float(e.nsr))}
            for e in layer_errors(_base(spec.transform).tflite, tflite, x)]


def _finite(x: float) -> float | None:
    return None if x == float("inf") else x
