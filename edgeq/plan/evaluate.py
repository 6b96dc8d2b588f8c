"""Building and measuring the planner's candidates, in this process or in spawned workers.

A candidate is a `Spec` (mode, weight granularity, calibration, transforms, layers kept float).
Its measurement does not depend on the device: model bytes, accuracy and SQNR on the validation
data in LiteRT, the TFLM arena its recording allocator reports, the edgeq-c arena and constant
bytes, and the work of every op for the cost model. So a measurement is cached by the model, the
data and the spec alone (edgeq.plan.session), and planning the same model for another board costs
nothing new.

Workers are spawned (TensorFlow is not fork-safe). Candidates that share a transformed float
model (CLE, bias correction) go to one worker as a group, so each transform and calibration pass
runs once. What a process builds from, and what it derived from that, is one `Builder`.
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

import edgeq.convert.calibrate as calibrate
import edgeq.convert.transforms as transforms
from edgeq.convert.calibrate import layer_errors
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import read_graph
from edgeq.load import Dataset, Samples
from edgeq.measure.costmodel import count_work
from edgeq.measure.interpreters import compare, run_litert
from edgeq.modes import MODES
from edgeq.runtimes import RUNTIMES

AS_IS = "as-is"  # a model that came quantized, deployed unchanged: a Spec mode beside edgeq.modes.MODES
SENSITIVITY_SAMPLES = 64


@dataclass(frozen=True)
class Spec:
    mode: str  # one of edgeq.modes.MODES (int4w = int4 weights, int8 activations), or AS_IS
    per_channel: bool = True
    calibration: str = "minmax"  # edgeq.convert.calibrate.CALIBRATIONS
    cle: bool = False
    bias_correction: bool = False
    keep_float: tuple[str, ...] = ()  # op output tensors left in float (mixed precision)
    qat: bool = False
    adaround: bool = False  # weights rounded by AdaRound (edgeq.convert.adaround), not to nearest
    runtime: str | None = None  # only this runtime (as-is candidates: one per runtime)

    @property
    def integer(self) -> bool:
        return self.mode == AS_IS or MODES[self.mode].integer

    @property
    def calibrated(self) -> bool:
        """The planner varies its calibration and transforms (int8 and int4 weights, docs/planner.md)."""
        return self.mode in ("int8", "int4w")

    @property
    def built_outside(self) -> bool:
        """Made from a retrained or re-rounded Keras model in edgeq.plan.qat, handed to the workers."""
        return self.qat or self.adaround

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
        if self.mode == AS_IS:
            return f"{AS_IS}/{self.runtime}"
        if not self.calibrated:
            return self.mode + ("/qat" if self.qat else "") + ("+adaround" if self.adaround else "")
        parts = [self.mode] + ([] if self.mode == "int4w" else ["pc" if self.per_channel else "pt"])
        parts.append("qat" if self.qat else self.calibration)
        name = "/".join(parts)
        extras = (["cle"] if self.cle else []) + (["bc"] if self.bias_correction else [])
        extras += ["adaround"] if self.adaround else []
        if self.keep_float:
            extras.append(f"float{len(self.keep_float)}")
        return name + "".join("+" + e for e in extras)

    def key(self) -> dict:
        return asdict(self)


# ---- inputs shared by every worker -----------------------------------------------------------------

@dataclass
class Inputs:
    float_tflite: bytes  # the float model; for a model that came quantized, that model

    calib_x: Samples
    val_x: Samples
    val_y: np.ndarray | None
    val_source: str
    val_label_output: int = 0  # the output `val_y` labels
    val_synthetic: bool = False
    converted: dict[str, bytes] = field(default_factory=dict)  # fp16, dynamic-int8: made from the whole model
    conversion_errors: dict[str, str] = field(default_factory=dict)  # why one of those could not be made
    prebuilt: dict[str, tuple[bytes, list[str]]] = field(default_factory=dict)  # spec name -> model, notes
    came_quantized: str | None = None  # "int8" or "int16x8" when the model came quantized: no float to compare
    dsp: bool = False  # the board has the DSP extension: edgeq-c's figures are those of its DSP kernels
    flash_bytes: int | None = None  # the board's flash, which decides whether those kernels' weights fit
    widen: str = "auto"  # which weights edgeq-c widens for the board (edgeq.runtimes.edgeq_c.widening)
    as_given: tuple[str, ...] = ()  # the mode the model came in when it came float16: that mode is the file itself
    unmeasured: str | None = None  # why LiteRT on this host cannot run the model (an op only the device has)

    def validation(self) -> Dataset:
        """The validation data as a Dataset, as the candidates' accuracy is measured on it."""
        return Dataset(x=self.val_x, y=self.val_y, source=self.val_source, synthetic=self.val_synthetic,
                       label_output=self.val_label_output)


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


def write_inputs(inputs: Inputs, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".plan-inputs-", suffix=".pkl", dir=directory)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(inputs, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(name)


# A worker process's Builder, made from the inputs file the parent wrote once (not sent with every
# task); the pool's tasks are module-level functions, so this is where they find it.
_builder: tuple[str, Builder] | None = None


def builder_from(path: str) -> Builder:
    global _builder
    if _builder is None or _builder[0] != path:
        with open(path, "rb") as fh:
            _builder = (path, Builder(pickle.load(fh)))
    return _builder[1]


def evaluate_group_from(path: str, specs: list[Spec]) -> list[tuple[dict, bytes | None]]:
    return builder_from(path).evaluate_group(specs)


def analyse_layers_from(path: str, spec: Spec) -> list[dict]:
    return builder_from(path).analyse_layers(spec)


# ---- building and measuring ---------------------------------------------------------------------

@dataclass
class _Base:
    """The float model after a spec's transforms, calibrated, with observer ranges on demand."""

    tflite: bytes
    calibrated: bytes
    input_names: frozenset[str]
    notes: list[str]
    ranges: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


def _int4_unpack_bytes(graph) -> int:
    """The largest int4 filter, one byte a weight: the scratch TFLM's int4 kernels unpack into."""
    return max((graph.tensors[op.inputs[1]].element_count for op in graph.operators
                if len(op.inputs) > 1 and op.inputs[1] >= 0 and graph.tensors[op.inputs[1]].type == "INT4"),
               default=0)


def _finite(x: float) -> float | None:
    return None if x == float("inf") else x


class Builder:
    """Builds and measures candidates from one set of inputs, keeping what it derives along the way
    (the float model's outputs, each transformed and calibrated float model, each distinct model's
    measurement), so a group of candidates pays for each once."""

    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.float_outputs = None
        self.bases: dict[tuple, _Base] = {}
        self.measured: dict[tuple[str, str], dict] = {}

    def _plain_quantized(self, tflite: bytes, calibrated: bytes, weight_quantizer: str) -> bytes:
        if weight_quantizer == "int4":
            return calibrate.quantize_int4_weights(tflite, self.inputs.calib_x)
        return calibrate.quantize_int8(calibrated, per_channel=weight_quantizer == "int8-pc")

    def base(self, transform: tuple[bool, str | None, tuple[str, ...]]) -> _Base:
        if transform in self.bases:
            return self.bases[transform]
        cle, bias_quantizer, float_layers = transform
        calib_x = self.inputs.calib_x
        tflite, notes = self.inputs.float_tflite, []
        if cle:
            eq = transforms.equalize(tflite)
            tflite = eq.tflite
            worst = max(eq.range_ratio_before, default=1.0)
            notes.append(f"CLE on {len(eq.pairs)} layer pair(s); worst channel range spread {worst:.1f}x -> "
                         f"{max(eq.range_ratio_after, default=1.0):.1f}x")
        if bias_quantizer:
            quantized = self._plain_quantized(tflite, calibrate.calibrate(tflite, calib_x), bias_quantizer)
            means = calibrate.activation_stats(tflite, calib_x, with_means=True).means
            bc = transforms.correct_bias(tflite, transforms.dequantized_weights(quantized), means,
                                         skip=frozenset(float_layers))
            tflite = bc.tflite
            notes.append(f"bias correction on {len(bc.shifts)} layer(s); largest shift "
                         f"{max(bc.shifts.values(), default=0.0):.3g}")
        graph = read_graph(tflite, "float model")
        base = _Base(tflite, calibrate.calibrate(tflite, calib_x),
                     frozenset(graph.tensors[i].name for i in graph.inputs), notes)
        self.bases[transform] = base
        return base

    def ranges(self, base: _Base, methods: list[str]) -> None:
        missing = [m for m in methods if m != "minmax" and m not in base.ranges]
        if missing:
            base.ranges.update(calibrate.activation_stats(base.tflite, self.inputs.calib_x, tuple(missing)).ranges)

    def build(self, spec: Spec) -> tuple[bytes, list[str]]:
        """The .tflite of a candidate and notes on how it was made."""
        inputs = self.inputs
        if spec.built_outside:
            if spec.name not in inputs.prebuilt:
                raise BadInput(f"the model of {spec.name} was not given to the worker")
            return inputs.prebuilt[spec.name]
        if spec.mode in ("fp32", AS_IS):
            return inputs.float_tflite, []
        if spec.mode in ("fp16", "dynamic-int8"):
            if spec.mode not in inputs.converted:
                raise BadInput(inputs.conversion_errors.get(spec.mode, f"{spec.mode} was not made for this device"))
            return inputs.converted[spec.mode], []
        if spec.mode == "int16x8":
            return calibrate.quantize_int16x8(inputs.float_tflite, inputs.calib_x), []
        base = self.base(spec.transform)
        ranges = None
        if spec.calibration != "minmax":
            self.ranges(base, [spec.calibration])
            ranges = base.ranges[spec.calibration]
        if spec.mode == "int4w":
            return (calibrate.quantize_int4_weights(base.tflite, inputs.calib_x, ranges, keep=base.input_names),
                    base.notes)
        calibrated = base.calibrated
        if ranges is not None:
            calibrated = calibrate.rewrite_ranges(calibrated, ranges, keep=base.input_names)
        return calibrate.quantize_int8(calibrated, spec.per_channel, spec.keep_float), base.notes

    def measure(self, spec: Spec, tflite: bytes) -> dict:
        """Everything the planner needs to know about one built candidate: its accuracy, each
        runtime's record (edgeq.runtimes: TFLM's arena, edgeq-c's arena and footprint), its work."""
        graph = read_graph(tflite, spec.name)
        record = {"came_quantized": self.inputs.came_quantized, "tflite_bytes": len(tflite),
                  "tflite_sha256": hashlib.sha256(tflite).hexdigest()}
        if self.inputs.unmeasured:
            # Its values are the float model's when it is that model, or the file as it was given.
            as_reference = tflite == self.inputs.float_tflite or spec.mode in self.inputs.as_given
            record.update(samples=0, accuracy=None, float_accuracy=None, agreement=None, sqnr_db=None, outputs=[],
                          not_measured=self.inputs.unmeasured, as_reference=as_reference)
        else:
            record.update(self.accuracy(spec, tflite))
        for runtime in RUNTIMES.values():
            if runtime.record_key is not None:
                record[runtime.record_key] = runtime.candidate_record(
                    spec.mode, tflite, graph, dsp=self.inputs.dsp, flash_bytes=self.inputs.flash_bytes,
                    widen=self.inputs.widen)
        record.update(int4_unpack_bytes=_int4_unpack_bytes(graph),
                      work=[[w.index, w.opcode, w.dtype, w.macs, w.elements, w.constant_input, w.outputs]
                            for w in count_work(graph)],
                      ops=graph.op_names)
        return record

    def accuracy(self, spec: Spec, tflite: bytes) -> dict:
        """The candidate against the float model on the validation data, in LiteRT."""
        validation = self.inputs.validation()
        if self.float_outputs is None:
            self.float_outputs = run_litert(self.inputs.float_tflite, validation, 1, "float")
        accuracy = compare(self.float_outputs, run_litert(tflite, validation, 1, spec.name), validation)
        if self.inputs.came_quantized:  # the model against itself: only its accuracy is a figure
            accuracy = dataclasses.replace(accuracy, float_accuracy=None, agreement=None, sqnr_db=float("nan"))
        return {
            "samples": accuracy.samples,
            "accuracy": accuracy.quantized_accuracy,
            "float_accuracy": accuracy.float_accuracy,
            "agreement": accuracy.agreement,
            "sqnr_db": None if accuracy.sqnr_db == float("inf") or math.isnan(accuracy.sqnr_db) else accuracy.sqnr_db,
            "outputs": [{"name": o.name, "agreement": o.agreement,
                         "sqnr_db": None if o.sqnr_db is None or not math.isfinite(o.sqnr_db) else o.sqnr_db}
                        for o in accuracy.outputs],
        }

    def evaluate(self, spec: Spec) -> tuple[dict, bytes | None]:
        """Build and measure one candidate; a failure is recorded, not raised."""
        start = time.perf_counter()
        try:
            tflite, notes = self.build(spec)
            # Variants often build the same bytes (a transform with nothing to change, a range the
            # quantizer overrides): measure each distinct model once per process.
            key = (hashlib.sha256(tflite).hexdigest(), spec.mode)
            if key not in self.measured:
                self.measured[key] = self.measure(spec, tflite)
            record = dict(self.measured[key])
        except EdgeqError as exc:
            return {"error": str(exc), "seconds": time.perf_counter() - start}, None
        except Exception as exc:  # the converter, quantizer or an interpreter refused this variant
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            return {"error": f"{type(exc).__name__}: {first}", "seconds": time.perf_counter() - start}, None
        record["notes"] = notes
        record["seconds"] = round(time.perf_counter() - start, 3)
        return record, tflite

    def evaluate_group(self, specs: list[Spec]) -> list[tuple[dict, bytes | None]]:
        """Candidates sharing a transformed float model: its observer ranges come from one pass."""
        methods = sorted({s.calibration for s in specs if s.calibrated and not s.built_outside} - {"minmax"})
        for transform in {s.transform for s in specs if s.calibrated and not s.built_outside}:
            try:
                self.ranges(self.base(transform), methods)
            except Exception:  # noqa: BLE001 - each candidate then records its own failure in evaluate()
                pass
        return [self.evaluate(s) for s in specs]

    def analyse_layers(self, spec: Spec) -> list[dict]:
        """Per-layer error of a candidate against the float model (see calibrate.layer_errors)."""
        tflite, _ = self.build(spec)
        x = self.inputs.calib_x[:SENSITIVITY_SAMPLES]
        return [asdict(e) | {"sqnr_db": _finite(float(e.sqnr_db)), "nsr": _finite(float(e.nsr))}
                for e in layer_errors(self.base(spec.transform).tflite, tflite, x)]
