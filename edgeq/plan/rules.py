"""Decide how to quantize for a device: which runtime runs the model, in which mode, and why.

Two doors. `plan(profile, runtime, mode)`, here, is the quick one `edgeq deploy --quant` uses: it
refuses a mode the runtime cannot execute before any conversion work is spent.
`edgeq.plan.search.run_plan(request)` is `edgeq plan`: it builds every candidate the device can
run, measures each (edgeq.plan.evaluate), and picks the best one that fits flash and RAM and
keeps accuracy within tolerance (selection rules in `select`, documented in docs/planner.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.convert.converter import MODES
from edgeq.errors import BadInput

RUNTIMES = ("tflm", "edgeq-c", "litert")

# What each runtime can execute at all, and why not where it can't.
RUNTIME_REFUSALS = {
    "tflm": {
        "dynamic-int8": "TFLM runs no dynamic-range (hybrid) models: it has no kernels that take int8 weights "
                        "with float activations",
        "fp16": "TFLM runs no fp16 weights: it has no float16 kernels and no DEQUANTIZE from float16",
    },
    "edgeq-c": {
        "dynamic-int8": "edgeq-c runs integer and float32 models, not dynamic-range (hybrid) ones",
        "fp16": "edgeq-c has no float16 kernels",
    },
    "litert": {},
}

# The mode used when the user names none, best first, where the device runs it well.
PREFERRED_MODES = {
    "tflm": ("int8", "int16x8", "fp32"),
    "edgeq-c": ("int8", "int16x8", "fp32"),
    "litert": ("int8", "fp16", "fp32"),
}
NUMERIC_OF_MODE = {"fp32": "fp32", "fp16": "fp16", "dynamic-int8": "int8", "int8": "int8", "int16x8": "int16x8"}


@dataclass(frozen=True)
class Plan:
    runtime: str
    mode: str
    reason: str
    warnings: tuple[str, ...] = ()


def choose_runtime(profile, requested: str | None = None) -> str:
    if requested is None:
        return profile.default_runtime
    if requested not in RUNTIMES:
        raise BadInput(f"unknown runtime '{requested}' (choose one of: {', '.join(RUNTIMES)})")
    if requested not in profile.runtimes:
        raise BadInput(f"profile {profile.name} does not run '{requested}' (its runtimes: {', '.join(profile.runtimes)})")
    return requested


def check_mode(mode: str, runtime: str, profile) -> tuple[str, ...]:
    """Refuse a mode the runtime cannot run; warn about one the device runs slowly."""
    if mode not in MODES:
        raise BadInput(f"unknown quantization mode '{mode}' (choose one of: {', '.join(MODES)})")
    refusal = RUNTIME_REFUSALS[runtime].get(mode)
    if refusal:
        raise BadInput(f"mode {mode} cannot run on {profile.name} with runtime {runtime}: {refusal}")
    numeric = NUMERIC_OF_MODE[mode]
    if not profile.supports(numeric):
        return (f"{profile.name} does not run {numeric} well (it runs {', '.join(profile.numerics)}); "
                f"expect {mode} to be slow there",)
    return ()


def plan(profile, runtime: str | None = None, mode: str | None = None) -> Plan:
    runtime = choose_runtime(profile, runtime)
    if mode is not None:
        return Plan(runtime, mode, "chosen by the user", check_mode(mode, runtime, profile))
    for candidate in PREFERRED_MODES[runtime]:
        if profile.supports(NUMERIC_OF_MODE[candidate]) and candidate not in RUNTIME_REFUSALS[runtime]:
            return Plan(runtime, candidate, f"the smallest mode {profile.name} runs well with {runtime}")
    return Plan(runtime, "fp32", "no quantized mode suits this device", check_mode("fp32", runtime, profile))
