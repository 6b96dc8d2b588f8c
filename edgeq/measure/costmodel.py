"""Latency estimate from the graph: work per op times cost per unit of work on the device's core.

    cycles = invoke + sum over ops of (op + mac[opcode][dtype] * MACs + output[dtype] * outputs
                                       + element[dtype] * elements)

MACs and outputs are counted from the graph (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: each output
is requantized and stored, which on a small layer costs more than its MACs); every other op
is charged per output element (per window element for pooling, eight times for the
transcendental ops). `dtype` is what the op computes in: int8, int4 (int8 compute after
unpacking), int16x8, fp32, fp16, hybrid (float activations, int8 weights).

The default coefficients (`DEFAULTS`) are order-of-magnitude figures, not measurements: see
docs/planner.md for where each comes from. `fit_coefficients` replaces them for a board from
measured (work, cycle or instruction count) pairs. The QEMU boards' fits, made by
bench/fit_cost_model.py from edgeq-c and TFLM + CMSIS-NN firmware measured there, are committed in
cost_coefficients.json and used for those two runtimes on those boards.

What differs between runtimes is their `CostSection`, which each runtime module of edgeq.runtimes
declares: its section of the fitted table, its per-op overhead, whether it folds ops on constants.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.graph import Graph
from edgeq.profiles import get_profile
from edgeq.resources import COST_COEFFICIENTS

DTYPES = ("int8", "int4", "int16x8", "fp32", "fp16", "hybrid")
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_POOL_OPS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
_TRANSCENDENTAL = ("SOFTMAX", "LOGISTIC", "TANH", "EXP", "LOG_SOFTMAX", "GELU", "HARD_SWISH")
_TRANSCENDENTAL_WEIGHT = 8
# Ops that only relabel memory: no kernel runs (TFLM and edgeq-c alias them).
_FREE_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


@dataclass(frozen=True)
class OpWork:
    index: int
    opcode: str
    dtype: str
    macs: int = 0
    elements: int = 0
    constant_input: bool = False  # e.g. DEQUANTIZE of fp16 weights, which LiteRT folds at load time
    outputs: int = 0  # a MAC op's output elements


def _elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _dtype(graph: Graph, op) -> str:
    activation = graph.tensors[op.inputs[0]].type if op.inputs and op.inputs[0] >= 0 else "FLOAT32"
    if op.opcode in MAC_OPS and len(op.inputs) > 1:
        weight = graph.tensors[op.inputs[1]].type
        if activation == "FLOAT32":
            return "hybrid" if weight == "INT8" else "fp32"
        if activation == "INT16":
            return "int16x8"
        return "int4" if weight == "INT4" else "int8"
    if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
        return "fp32"  # one float multiply and round per element either way
    out = graph.tensors[op.outputs[0]].type if op.outputs else activation
    return {"INT8": "int8", "UINT8": "int8", "INT16": "int16x8", "FLOAT16": "fp16"}.get(out, "fp32")


def count_work(graph: Graph) -> list[OpWork]:
    """The work of every op: MACs for weighted ops, elements for the rest."""
    work = []
    for op in graph.operators:
        out_shape = graph.tensors[op.outputs[0]].shape if op.outputs else ()
        dtype = _dtype(graph, op)
        if op.opcode in MAC_OPS:
            w = graph.tensors[op.inputs[1]].shape
            if op.opcode == "CONV_2D":
                macs = _elements(out_shape) * w[1] * w[2] * w[3]
            elif op.opcode == "DEPTHWISE_CONV_2D":
                macs = _elements(out_shape) * w[1] * w[2]
            else:
                macs = _elements(out_shape) * w[-1]
            work.append(OpWork(op.index, op.opcode, dtype, macs=int(macs), outputs=_elements(out_shape)))
            continue
        elements = _elements(out_shape)
        if op.opcode in _POOL_OPS and op.options is not None:
            elements *= max(op.options.filterHeight, 1) * max(op.options.filterWidth, 1)
        elif op.opcode in _TRANSCENDENTAL:
            elements *= _TRANSCENDENTAL_WEIGHT
        elif op.opcode in _FREE_OPS:
            elements = 0
        constant = bool(op.inputs) and op.inputs[0] >= 0 and graph.tensors[op.inputs[0]].is_constant
        work.append(OpWork(op.index, op.opcode, dtype, elements=int(elements), constant_input=constant))
    return work


@dataclass(frozen=True)
class CostSection:
    """A runtime's part of the cost model."""

    key: str  # its section of cost_coefficients.json, and of a board's fits
    label: str  # how the fits' sources name the runtime ("TFLM + CMSIS-NN")
    op_factor: float = 1.0  # its dispatch cost per op against an interpreter's
    folds_constant_ops: bool = False  # ops on constants (fp16 weights' DEQUANTIZE) run once, when it loads
    fitted: bool = False  # bench/fit_cost_model.py measures it on the QEMU boards
    by_delegate: bool = False  # priced by the profile's litert.delegate when it is not the CPU's


@dataclass(frozen=True)
class Coefficients:
    """Cycles (or, fitted on QEMU, instructions) per unit of work on one core and runtime.

    `per_mac_op` (opcode -> dtype -> cost) refines `per_mac` where a kernel's MAC costs differ from
    the others': edgeq-c's depthwise loop spends about four times a convolution's instructions a MAC.
    """

    per_mac: dict[str, float]
    per_element: dict[str, float]
    per_op: float
    per_invoke: float = 0.0
    source: str = ""
    per_mac_op: dict[str, dict[str, float]] = field(default_factory=dict)
    per_output: dict[str, float] = field(default_factory=dict)  # each output of a MAC op, by dtype

    def mac_cost(self, opcode: str, dtype: str) -> float:
        table = self.per_mac_op.get(opcode, {})
        return table[dtype] if dtype in table else _fallback(self.per_mac, dtype)

    def as_vector(self) -> np.ndarray:
        """In the order of `features`: MAC costs by op and dtype, output and element costs by dtype, per op,
        per invoke."""
        return np.array([self.mac_cost(op, d) for op in MAC_OPS for d in DTYPES]
                        + [self.per_output.get(d, 0.0) for d in DTYPES]
                        + [_fallback(self.per_element, d) for d in DTYPES] + [self.per_op, self.per_invoke])

    @classmethod
    def from_vector(cls, v: np.ndarray, source: str) -> Coefficients:
        n, m = len(DTYPES), len(MAC_OPS) * len(DTYPES)
        per_mac_op = {op: dict(zip(DTYPES, map(float, v[i * n:(i + 1) * n]))) for i, op in enumerate(MAC_OPS)}
        per_output = dict(zip(DTYPES, map(float, v[m:m + n])))
        return cls(dict(per_mac_op["CONV_2D"]), dict(zip(DTYPES, map(float, v[m + n:m + 2 * n]))),
                   float(v[m + 2 * n]), float(v[m + 2 * n + 1]), source, per_mac_op, per_output)


def _core(mac: dict[str, float], element: dict[str, float], per_op: float, per_invoke: float,
          source: str) -> Coefficients:
    return Coefficients(mac, element, per_op, per_invoke, source)


_MCU_NOTE = ("default, not measured: Arm TRM instruction timings (SMLAD, two 16-bit MACs a cycle on cores "
             "with the DSP extension; VMLA.F32 about 3 cycles) times about 3-4 for the loads, index arithmetic "
             "and requantization of portable C kernels")
_APP_NOTE = ("default, not measured: XNNPACK-class NEON kernels (int8 dot products and fp32 FMA, tens of MACs a "
             "cycle at peak) derated for small layers, plus the interpreter's dispatch per op and per invoke")

# Keyed by the profile's `core`. Unknown cores fall back to the closest family in _FAMILY.
DEFAULTS: dict[str, Coefficients] = {
    "cortex-m0plus": _core({"int8": 12.0, "int4": 14.0, "int16x8": 14.0, "fp32": 80.0, "hybrid": 80.0},
                           {"int8": 6.0, "int16x8": 7.0, "fp32": 40.0}, 1500.0, 2000.0, _MCU_NOTE),
    "cortex-m3": _core({"int8": 8.0, "int4": 10.0, "int16x8": 9.0, "fp32": 60.0, "hybrid": 60.0},
                       {"int8": 4.0, "int16x8": 5.0, "fp32": 30.0}, 1200.0, 2000.0, _MCU_NOTE),
    "cortex-m4": _core({"int8": 4.0, "int4": 5.0, "int16x8": 5.0, "fp32": 6.0, "hybrid": 8.0},
                       {"int8": 3.0, "int16x8": 3.5, "fp32": 4.0}, 1000.0, 2000.0, _MCU_NOTE),
    "cortex-m33": _core({"int8": 4.0, "int4": 5.0, "int16x8": 5.0, "fp32": 6.0, "hybrid": 8.0},
                        {"int8": 3.0, "int16x8": 3.5, "fp32": 4.0}, 1000.0, 2000.0, _MCU_NOTE),
    "cortex-m7": _core({"int8": 2.0, "int4": 2.5, "int16x8": 2.5, "fp32": 2.5, "hybrid": 4.0},
                       {"int8": 1.5, "int16x8": 2.0, "fp32": 2.0}, 600.0, 1200.0, _MCU_NOTE),
    "xtensa-lx7": _core({"int8": 3.0, "int4": 4.0, "int16x8": 4.0, "fp32": 5.0, "hybrid": 6.0},
                        {"int8": 2.5, "int16x8": 3.0, "fp32": 3.5}, 1000.0, 2000.0, _MCU_NOTE),
    "cortex-a72": _core({"int8": 0.12, "int4": 0.15, "int16x8": 0.5, "fp32": 0.25, "fp16": 0.25, "hybrid": 0.2},
                        {"int8": 0.3, "int16x8": 0.5, "fp32": 0.4, "fp16": 0.4}, 2000.0, 10000.0, _APP_NOTE),
    "cortex-x3": _core({"int8": 0.02, "int4": 0.03, "int16x8": 0.2, "fp32": 0.08, "fp16": 0.08, "hybrid": 0.05},
                       {"int8": 0.1, "int16x8": 0.3, "fp32": 0.15, "fp16": 0.15}, 3000.0, 15000.0, _APP_NOTE),
    "x86-64": _core({"int8": 0.05, "int4": 0.06, "int16x8": 0.3, "fp32": 0.06, "fp16": 0.06, "hybrid": 0.08},
                    {"int8": 0.2, "int16x8": 0.3, "fp32": 0.2, "fp16": 0.2}, 2000.0, 10000.0, _APP_NOTE),
}
_GPU_NOTE = ("default, not measured: a mobile GPU delegate (Mali-G715 class) computing in fp16: fp16 the fastest, "
             "fp32 at half its rate, int8 dequantized to fp16 on the way in and out, and a launch cost per invoke")
_NPU_NOTE = ("default, not measured: an NPU through NNAPI: int8 its native type, float ops left to the CPU "
             "(XNNPACK), and a hand-over per invoke")
# A delegate's costs where the delegate, not the CPU core, sets them; in cycles of the profile's clock.
DELEGATE_DEFAULTS: dict[str, Coefficients] = {
    "gpu": _core({"int8": 0.03, "int4": 0.03, "int16x8": 0.5, "fp32": 0.04, "fp16": 0.02, "hybrid": 0.04},
                 {"int8": 0.06, "int16x8": 0.5, "fp32": 0.05, "fp16": 0.03}, 4000.0, 600000.0, _GPU_NOTE),
    "nnapi": _core({"int8": 0.005, "int4": 0.005, "int16x8": 0.2, "fp32": 0.08, "fp16": 0.08, "hybrid": 0.05},
                   {"int8": 0.02, "int16x8": 0.3, "fp32": 0.15, "fp16": 0.15}, 3000.0, 300000.0, _NPU_NOTE),
}
_FAMILY = {"cortex-m0": "cortex-m0plus", "cortex-m23": "cortex-m0plus", "cortex-m55": "cortex-m7",
           "cortex-m85": "cortex-m7", "cortex-a53": "cortex-a72", "cortex-a55": "cortex-a72",
           "cortex-a76": "cortex-x3", "cortex-a78": "cortex-x3", "cortex-x1": "cortex-x3"}


def coefficients_for(profile, section: CostSection, fitted: dict[str, Coefficients] | None = None) -> Coefficients:
    """The coefficients for a profile: fitted ones by profile name first (`fitted`, else the committed
    table measured on the QEMU boards, for a runtime fitted there), then the delegate's defaults (the
    GPU, an NPU) for a runtime priced by delegate, then the core's defaults."""
    if fitted is None and section.fitted:
        fitted = read_fitted_table(section)
    if fitted and profile.name in fitted:
        return fitted[profile.name]
    delegate = profile.litert.delegate if section.by_delegate and profile.litert is not None else None
    if delegate in DELEGATE_DEFAULTS:
        return DELEGATE_DEFAULTS[delegate]
    core = profile.core if profile.core in DEFAULTS else _FAMILY.get(profile.core, "cortex-m4")
    base = DEFAULTS[core]
    return replace(base, per_op=base.per_op * section.op_factor)


def _fallback(table: dict[str, float], dtype: str) -> float:
    # A dtype without its own figure costs like its nearest neighbour: fp16 like fp32, int4 like int8.
    for d in (dtype, {"fp16": "fp32", "int4": "int8", "hybrid": "fp32"}.get(dtype, dtype), "fp32"):
        if d in table:
            return table[d]
    return 0.0


def features(work: list[OpWork], section: CostSection) -> np.ndarray:
    """The work as a vector matching `Coefficients.as_vector`: MACs by op and dtype, elements by
    dtype, the op count and one invoke."""
    macs = {(op, d): 0.0 for op in MAC_OPS for d in DTYPES}
    outputs = dict.fromkeys(DTYPES, 0.0)
    elements = dict.fromkeys(DTYPES, 0.0)
    ops = 0
    for w in work:
        if w.constant_input and section.folds_constant_ops:
            continue  # folded when the interpreter prepares the model
        if w.macs == 0 and w.elements == 0:
            continue
        if w.macs:
            macs[(w.opcode if w.opcode in MAC_OPS else "CONV_2D", w.dtype)] += w.macs
            outputs[w.dtype] += w.outputs
        elements[w.dtype] += w.elements
        ops += 1
    return np.array([macs[(op, d)] for op in MAC_OPS for d in DTYPES] + [outputs[d] for d in DTYPES]
                    + [elements[d] for d in DTYPES] + [ops, 1.0])


FEATURE_NAMES = tuple([f"per_mac_op.{op}.{d}" for op in MAC_OPS for d in DTYPES]
                      + [f"per_output.{d}" for d in DTYPES] + [f"per_element.{d}" for d in DTYPES]
                      + ["per_op", "per_invoke"])


def estimate_cycles(work: list[OpWork], coefficients: Coefficients, section: CostSection) -> float:
    return float(features(work, section) @ coefficients.as_vector())


def estimate_ms(work: list[OpWork], profile, section: CostSection,
                fitted: dict[str, Coefficients] | None = None) -> float:
    cycles = estimate_cycles(work, coefficients_for(profile, section, fitted), section)
    return cycles / (profile.clock_mhz * 1e3)


def _nonnegative_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with x >= 0: solve, pin the negative coefficients at 0, solve the rest again."""
    free = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    while free.any():
        x[:] = 0.0
        x[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
        negative = free & (x < 0)
        if not negative.any():
            break
        free &= ~negative
    return x


@dataclass(frozen=True)
class Sample:
    """One measured run: the model's work and what the board counted for one invoke."""

    work: tuple[OpWork, ...]
    count: float  # cycles, or instructions on QEMU
    section: CostSection
    label: str = ""


@dataclass(frozen=True)
class Fit:
    coefficients: Coefficients
    residuals: tuple[float, ...] = field(default_factory=tuple)  # relative error of each sample


def fit_coefficients(samples: list[Sample], prior: Coefficients, strength: float = 1e-3) -> Fit:
    """Non-negative least squares of the measured counts on the work, pulled towards `prior`.

    The pull (ridge towards the prior, weighted by `strength` times each feature's scale) keeps
    coefficients the samples say nothing about at their defaults and stops a handful of samples
    from producing nonsense for the rest.
    """
    if not samples:
        return Fit(prior)
    a = np.array([features(list(s.work), s.section) for s in samples])
    y = np.array([s.count for s in samples], float)
    c0 = prior.as_vector()
    # Each row is divided by its count so that every sample weighs by its relative error.
    rel = a / np.maximum(y, 1.0)[:, None]
    scale = np.sqrt((rel ** 2).sum(axis=0))
    weight = np.sqrt(strength) * np.where(scale > 0, scale, 1.0)  # no data: held at the prior
    system = np.vstack([rel, np.diag(weight)])
    target = np.concatenate([np.ones(len(y)), weight * c0])
    solution = _nonnegative_lstsq(system, target)
    fitted = Coefficients.from_vector(solution, f"fitted to {len(samples)} measured runs")
    residuals = tuple(float((a[i] @ solution - y[i]) / y[i]) for i in range(len(samples)))
    return Fit(fitted, residuals)


# ---- the fitted table: coefficients measured on the QEMU boards ----------------------------------------

FITTED_TABLE = COST_COEFFICIENTS


def prior_for(profile, section: CostSection) -> Coefficients:
    """The defaults a fit starts from (and falls back to where the samples say nothing)."""
    return coefficients_for(profile, section, fitted={})


def fit_board(board: str, samples: list[Sample], section: CostSection, strength: float = 1e-3) -> dict:
    """One board's entry of the fitted table: coefficients, the models, their work and the fit's error."""
    fit = fit_coefficients(samples, prior_for(get_profile(board), section), strength)
    coefficients = replace(fit.coefficients,
                           source=f"fitted to {len(samples)} {section.label} runs measured on {board}")
    exercised = np.array([features(list(s.work), s.section) for s in samples]).any(axis=0)
    return {
        "coefficients": coefficients_dict(coefficients),
        "defaults_kept": [n for n, used in zip(FEATURE_NAMES, exercised) if not used],
        "models": [{"label": s.label, "measured": s.count, "predicted": round(s.count * (1 + e)),
                    "error": round(e, 4),
                    "work": [[w.index, w.opcode, w.dtype, w.macs, w.elements, w.constant_input, w.outputs]
                             for w in s.work]}
                   for s, e in zip(samples, fit.residuals)],
    }


def coefficients_dict(c: Coefficients) -> dict:
    # Zeros are kept: a missing entry would fall back to another dtype's or op's cost.
    return {"per_mac": {k: round(v, 4) for k, v in c.per_mac.items()},
            "per_mac_op": {op: {k: round(v, 4) for k, v in t.items()} for op, t in c.per_mac_op.items()},
            "per_output": {k: round(v, 4) for k, v in c.per_output.items()},
            "per_element": {k: round(v, 4) for k, v in c.per_element.items()},
            "per_op": round(c.per_op, 2), "per_invoke": round(c.per_invoke, 2), "source": c.source}


def table_samples(entry: dict, section: CostSection) -> list[Sample]:
    """The measurements a table entry was fitted to, to fit them again."""
    return [Sample(tuple(OpWork(*w) for w in m["work"]), float(m["measured"]), section, m["label"])
            for m in entry["models"]]


def parse_table(table: dict, section: CostSection) -> dict[str, Coefficients]:
    """Profile name -> fitted coefficients of the runtime `section` belongs to, from the table's JSON."""
    out = {}
    fits = table.get("runtimes", {}).get(section.key, {})
    for board, entry in fits.get("boards", {}).items():
        c = entry["coefficients"]
        out[board] = Coefficients(dict(c["per_mac"]), dict(c["per_element"]), float(c["per_op"]),
                                  float(c["per_invoke"]), f"{c['source']} ({fits.get('date', 'undated')})",
                                  {op: dict(t) for op, t in c.get("per_mac_op", {}).items()},
                                  dict(c.get("per_output", {})))
    return out


@functools.lru_cache(maxsize=None)
def _shipped_table(section: CostSection) -> dict[str, Coefficients]:
    return parse_table(json.loads(FITTED_TABLE.read_text()), section)


def read_fitted_table(section: CostSection, path: Path = FITTED_TABLE) -> dict[str, Coefficients]:
    """The fitted coefficients of a runtime (from the table edgeq ships, read once); a missing table is an
    error, not a silent fall back to the defaults."""
    if not path.is_file():
        raise EdgeqError(f"{path}: the fitted cost coefficients are missing"
                         + (" (edgeq's installation is incomplete: reinstall it)" if path == FITTED_TABLE else ""))
    if path != FITTED_TABLE:
        return parse_table(json.loads(path.read_text()), section)
    return _shipped_table(section)
