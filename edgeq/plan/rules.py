"""Decide how to quantize for a device: which runtime runs the model, in which mode, and why.

Two doors. `plan(profile, runtime, mode)`, here, is the quick one `edgeq deploy --quant` uses: it
refuses a mode the runtime cannot execute before any conversion work is spent.
`edgeq.plan.search.run_plan(request)` is `edgeq plan`: it builds every candidate the device can
run, measures each (edgeq.plan.evaluate), and picks the best one that fits flash and RAM and
keeps accuracy within tolerance (selection rules in `select`, documented in docs/planner.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.runtimes import choose_runtime


@dataclass(frozen=True)
class Plan:
    runtime: str
    mode: str
    reason: str
    warnings: tuple[str, ...] = ()


def plan(profile, runtime: str | None = None, mode: str | None = None) -> Plan:
    """The runtime the user named (or the profile's first) and the mode: the user's, checked against the
    runtime and the device, or the runtime's preferred mode that the device runs well."""
    chosen = choose_runtime(profile, runtime)
    if mode is not None:
        return Plan(chosen.name, mode, "chosen by the user", chosen.check_mode(mode, profile))
    default = chosen.default_mode(profile)
    if default is not None:
        return Plan(chosen.name, default, chosen.default_reason(profile, default))
    return Plan(chosen.name, "fp32", "no quantized mode suits this device", chosen.check_mode("fp32", profile))
