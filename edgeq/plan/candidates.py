"""What `edgeq plan` works with: the request, each candidate and what was measured of it, the
result that plan.json records, and the selection constants (docs/planner.md)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.errors import DoesNotFit
from edgeq.measure.fit import Fit
from edgeq.plan.rules import Plan
from edgeq.sources import (
    EDGEQ_C_CONSTANTS,
    EDGEQ_C_MEMORY_PLAN,
    FLATBUFFER,
    LITERT_HOST,
    TFLM_RECORDING_ALLOCATOR,
    Source,
    estimated,
    measured,
    sources_dict,
)

# 2: every candidate carries `sources`; flash and RAM come from edgeq.measure.fit.
PLAN_SCHEMA_VERSION = 2


def cost_model(coefficients_source: str) -> Source:
    """Where a latency estimate came from: the cost model, with the coefficients it used."""
    return estimated(f"edgeq's per-op cost model (plan.json's cost_model), coefficients "
                     f"{coefficients_source or 'given by the caller'}")

OBJECTIVES = ("latency", "size", "accuracy")
DEFAULT_MAX_ACCURACY_DROP_PP = 1.0
DEFAULT_MIN_SQNR_DB = 25.0
LATENCY_TIE = 0.10  # candidates this close to the fastest count as equally fast
SIZE_TIE = 0.05
FIDELITY_CAP_DB = 60.0  # past this SQNR a candidate is as good as the float model
MIXED_MAX_FLOAT_LAYERS = 3
DEVICE_SAMPLES = 5  # inferences per candidate measured on the board
DEVICE_CANDIDATES = 3  # the fastest feasible candidates by estimate that are measured there
QAT_BUDGET_S = 120.0  # quantization-aware training's default time budget (--qat-budget)


@dataclass(frozen=True)
class Loaded:
    """What `edgeq deploy` already loaded and converted, so the planner does not do it again."""
    model: object  # edgeq.load.Model
    calibration: object  # edgeq.load.Dataset
    validation: object
    float_tflite: bytes


@dataclass(frozen=True)
class PlanRequest:
    model: Path
    profile: object  # edgeq.profiles.Profile
    data: str | None = None  # calibration data spec
    val: str | None = None  # validation data spec
    train: str | None = None  # labelled training data: enables quantization-aware training
    qat_budget_s: float = QAT_BUDGET_S  # the longest quantization-aware training may take
    label_output: str | None = None  # the output the validation labels are for (several outputs)
    objective: str = "latency"
    max_accuracy_drop_pp: float = DEFAULT_MAX_ACCURACY_DROP_PP
    min_sqnr_db: float = DEFAULT_MIN_SQNR_DB
    ram_budget: int | None = None  # bytes for the model; overrides the profile
    flash_budget: int | None = None
    runtime: str | None = None
    jobs: int = 2
    cache_dir: Path | None = None  # default $EDGEQ_CACHE or build/.cache/plan
    use_cache: bool = True
    cost_coefficients: dict | None = None  # profile name -> edgeq.measure.costmodel.Coefficients, fitted on the board
    # Measure the best candidates by estimate on the board when it is reachable (QEMU always; a real
    # board only with `device_port`), and rank them by the measured latency.
    measure_on_device: bool = True
    device_port: str | None = None
    device_samples: int = DEVICE_SAMPLES
    device_candidates: int = DEVICE_CANDIDATES
    loaded: Loaded | None = None  # what deploy already loaded and converted


@dataclass
class Candidate:
    spec: object  # edgeq.plan.evaluate.Spec
    record: dict | None = None  # the measurement; None when the device cannot run the spec at all
    runtime: str | None = None
    fit: Fit | None = None  # on `runtime`: flash and RAM needed, each with where the figure came from
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    latency_ms: float | None = None  # estimated by the cost model
    latency_ms_measured: float | None = None  # on the board: median instructions or cycles / clock
    # On an emulated Cortex-M board: the cycles its core would take, estimated from the instruction
    # classes QEMU ran, at the profile's clock (the band is in `device`).
    latency_ms_cycles: float | None = None
    device: dict | None = None  # what measuring on the board found (or why it failed)
    # What the latency objective ranks by once the board ran: the latency measured on this candidate
    # or on one with the same ops, types and weight granularity (edgeq-c's instruction count does not
    # depend on the calibration or the values); on an emulated Cortex-M, its estimated cycles, and
    # for the candidates not run there, the cost model's estimate in the same unit.
    latency_ms_ranked: float | None = None
    latency_source: str = "estimated"
    cost_model_source: str = ""  # which coefficients priced latency_ms: fitted (to what) or the defaults
    drop_pp: float | None = None
    problems: list[str] = field(default_factory=list)  # what makes it infeasible
    rejected_because: str | None = None
    chosen: bool = False
    cached: bool = False
    tflite: bytes | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feasible(self) -> bool:
        return self.record is not None and "error" not in self.record and not self.problems

    @property
    def fits_memory(self) -> bool:
        """Measured, and what keeps it from being feasible, if anything, is its accuracy or SQNR."""
        return (self.record is not None and "error" not in self.record and self.runtime is not None
                and all("accuracy" in p or "SQNR" in p for p in self.problems))

    @property
    def ranking_latency_ms(self) -> float | None:
        """What the latency objective ranks by: measured on the board when it was, else the estimate."""
        return self.latency_ms_ranked if self.latency_ms_ranked is not None else self.latency_ms

    @property
    def accuracy(self) -> float | None:
        return self.record.get("accuracy") if self.record else None

    @property
    def sqnr_db(self) -> float | None:
        """None when not measured (or nothing to compare with); inf when the outputs equal the float model's."""
        if not self.record or "error" in self.record or self.record.get("came_quantized"):
            return None
        if self.record.get("not_measured"):  # the float model itself, or the file as given, equals the float model
            return float("inf") if self.record.get("as_reference") else None
        value = self.record.get("sqnr_db")
        return float("inf") if value is None else value

    def fidelity(self) -> tuple[float, float]:
        """Closeness to the float model: accuracy kept (a gain over float counts as none), then SQNR."""
        drop = max(self.drop_pp or 0.0, 0.0)
        return (-round(drop, 2), round(min(self.sqnr_db or 0.0, FIDELITY_CAP_DB), 1))

    def to_dict(self) -> dict:
        s, r = self.spec, self.record or {}
        tflm, c = r.get("tflm") or {}, r.get("edgeq_c") or {}
        sqnr = self.sqnr_db
        return {
            "name": self.name, "chosen": self.chosen, "mode": s.mode,
            "weights": ("per-channel" if s.per_channel else "per-tensor") if s.integer else None,
            "calibration": ("qat" if s.qat else s.calibration) if s.calibrated else None,
            "transforms": [t for t, on in (("cle", s.cle), ("bias_correction", s.bias_correction)) if on],
            "float_layers": list(s.keep_float), "runtime": self.runtime,
            "accuracy": self.accuracy, "accuracy_drop_pp": None if self.drop_pp is None else round(self.drop_pp, 4),
            "agreement": r.get("agreement"),
            "sqnr_db": None if sqnr is None or sqnr == float("inf") else round(sqnr, 3),
            "identical_to_float": sqnr == float("inf"),
            "outputs": r.get("outputs", []),
            "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
            "latency_ms_estimated": None if self.latency_ms is None else round(self.latency_ms, 4),
            "latency_ms_measured": None if self.latency_ms_measured is None else round(self.latency_ms_measured, 4),
            "latency_ms_cycles_estimated": (None if self.latency_ms_cycles is None
                                            else round(self.latency_ms_cycles, 4)),
            "latency_source": self.latency_source if self.latency_ms is not None else None,
            "device": self.device,
            "model_bytes": r.get("tflite_bytes"), "tflm_arena_bytes": tflm.get("arena_bytes"),
            "edgeq_c_arena_bytes": c.get("arena_bytes"), "edgeq_c_const_bytes": c.get("const_bytes"),
            "int4_unpack_bytes": r.get("int4_unpack_bytes") or None,
            "rejected_because": self.rejected_because, "problems": self.problems,
            "notes": r.get("notes", []), "cached": self.cached,
            "sources": self.sources(),
        }

    def sources(self) -> dict:
        """Where each figure of to_dict() came from."""
        measured_latency = None
        if self.latency_ms_measured is not None:
            unit = (self.device or {}).get("cycles_unit") or "cycles"
            measured_latency = measured(
                "the native LiteRT harness on the device: median over its timed runs"
                if (self.device or {}).get("native") else
                f"the board over serial: median {unit} a sample at the profile's clock")
        return sources_dict({
            "flash_bytes": self.fit.flash.source if self.fit else None,
            "ram_bytes": self.fit.ram.source if self.fit else None,
            "latency_ms_estimated": (cost_model(self.cost_model_source) if self.latency_ms is not None else None),
            "latency_ms_measured": measured_latency,
            "latency_ms_cycles_estimated": (
                estimated(f"the instruction classes edgeq's QEMU plugin counted on the board, priced "
                          f"by {self.device['estimated_cycles']['source'].split(' by ', 1)[-1]}")
                if self.latency_ms_cycles is not None else None),
            **dict.fromkeys(("accuracy", "agreement", "sqnr_db"),
                            measured(self.record["accuracy_by"]) if (self.record or {}).get("accuracy_by")
                            else LITERT_HOST),
            "model_bytes": FLATBUFFER, "tflm_arena_bytes": TFLM_RECORDING_ALLOCATOR,
            "edgeq_c_arena_bytes": EDGEQ_C_MEMORY_PLAN, "edgeq_c_const_bytes": EDGEQ_C_CONSTANTS,
        })


@dataclass
class PlanResult:
    model: str
    profile: str
    objective: str
    metric: str  # "accuracy" (labelled validation data) or "sqnr"
    tolerance: dict
    budgets: dict
    candidates: list[Candidate]
    chosen: Candidate | None = None
    chosen_tflite: bytes | None = None
    float_accuracy: float | None = None
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    layer_errors: list[dict] = field(default_factory=list)
    qat: dict | None = None
    adaround: dict | None = None  # what AdaRound did to the closest plan, when nothing was feasible
    message: str = ""
    cost_model: dict = field(default_factory=dict)  # runtime -> the coefficients behind latency_ms_estimated
    device: dict = field(default_factory=dict)  # whether candidates were measured on the board, and why not
    warnings: list[str] = field(default_factory=list)  # what the user should know of the run

    @property
    def plan(self) -> Plan | None:
        """The choice in the terms `edgeq deploy` uses: runtime, base mode, reason."""
        if self.chosen is None:
            return None
        mode = {"int4w": "int8", "as-is": (self.chosen.record or {}).get("came_quantized")}.get(
            self.chosen.spec.mode, self.chosen.spec.mode)
        return Plan(self.chosen.runtime, mode, f"planned: {self.chosen.name} ({self.message})")

    def to_dict(self) -> dict:
        return {
            "schema_version": PLAN_SCHEMA_VERSION, "model": self.model, "profile": self.profile, "objective": self.objective,
            "metric": self.metric, "tolerance": self.tolerance, "budgets": self.budgets,
            "float_accuracy": self.float_accuracy,
            "chosen": self.chosen.name if self.chosen else None, "reason": self.message,
            "candidates": [c.to_dict() for c in self.candidates],
            "layer_errors": self.layer_errors, "qat": self.qat, "adaround": self.adaround,
            "cost_model": self.cost_model,
            "device": self.device, "warnings": self.warnings,
            "seconds": round(self.seconds, 2), "cache": {"hits": self.cache_hits, "misses": self.cache_misses},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def files(self) -> dict[str, bytes]:
        """What `edgeq plan --out DIR` writes: plan.json, and the chosen model when there is one
        (named after the model and the candidate, e.g. digits_int8-pt-p99.99-bc.tflite)."""
        out = {"plan.json": self.to_json().encode()}
        if self.chosen is not None and self.chosen_tflite is not None:
            slug = re.sub(r"[^A-Za-z0-9.]+", "-", self.chosen.name).strip("-")
            out[f"{Path(self.model).stem}_{slug}.tflite"] = self.chosen_tflite
        return out


class PlanDoesNotFit(DoesNotFit):
    """No candidate fits; `result` still holds the table for plan.json."""

    def __init__(self, message: str, result: PlanResult):
        super().__init__(message)
        self.result = result


def budget_profile(profile, ram_budget: int | None, flash_budget: int | None):
    """The profile with --ram-budget (RAM left for the model) and --flash-budget applied."""
    memory = profile.memory
    if ram_budget is not None:
        memory = dataclasses.replace(memory, ram_bytes=ram_budget + memory.ram_reserved_bytes)
    if flash_budget is not None:
        memory = dataclasses.replace(memory, flash_bytes=flash_budget)
    return dataclasses.replace(profile, memory=memory)
