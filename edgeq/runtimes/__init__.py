"""Stage 9, the runtimes: one module per runtime that runs a model on a device (edgeq-c, TFLM with
CMSIS-NN, LiteRT), each behind the interface of `base.Runtime`. The planner, deploy, the device loop
and the report ask a runtime; none of them tests a runtime's name (docs/layout.md, "Runtimes").

A profile names its runtimes in order of preference (`runtimes: [edgeq-c, tflm]`);
`runtimes_of(profile)` turns the names into runtimes and refuses one edgeq does not know, naming the
file and key, as the profile stage does for its own keys.
"""

from __future__ import annotations

from edgeq.errors import BadInput
from edgeq.graph import read_graph
from edgeq.litert_ops import HostOps, host_ops
from edgeq.profiles import section_keys, shown_value
from edgeq.runtimes.base import EMULATED_METHODS, Prepared, Runtime
from edgeq.runtimes.edgeq_c import EDGEQ_C, EdgeqCModel
from edgeq.runtimes.litert import LITERT
from edgeq.runtimes.tflm import TFLM, TflmModel

RUNTIMES: dict[str, Runtime] = {r.name: r for r in (TFLM, EDGEQ_C, LITERT)}
NAMES = tuple(RUNTIMES)

__all__ = ["EDGEQ_C", "EMULATED_METHODS", "LITERT", "NAMES", "RUNTIMES", "TFLM", "EdgeqCModel", "Prepared",
           "Runtime", "TflmModel",
           "check_profile", "choose_runtime", "get_runtime", "runtimes_of", "runnable"]


def get_runtime(name: str) -> Runtime:
    """The runtime called `name`; an unknown name is a BadInput listing them."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise BadInput(f"unknown runtime '{name}' (choose one of: {', '.join(NAMES)})") from None


def check_profile(profile):
    """The profile, when every runtime it names exists and has the settings it reads; else a BadInput
    naming the file and the key."""
    source = profile.source or profile.name
    if any(name not in RUNTIMES for name in profile.runtimes):
        raise BadInput(f"{source}: runtimes: expected a non-empty list of names from {', '.join(NAMES)}, without "
                       f"repeats, got {shown_value(list(profile.runtimes))}")
    for runtime in RUNTIMES.values():
        if runtime.settings is None:
            continue
        present = getattr(profile, runtime.settings) is not None
        if runtime.name in profile.runtimes and not present:
            raise BadInput(f"{source}: {runtime.settings}: missing; expected a {runtime.settings} section "
                           f"({', '.join(section_keys(runtime.settings))}), since runtimes include {runtime.name}")
        if present and runtime.name not in profile.runtimes:
            raise BadInput(f"{source}: {runtime.settings}: expected no {runtime.settings} section unless runtimes "
                           f"include {runtime.name}, got a {runtime.settings} section")
    return profile


def runtimes_of(profile) -> tuple[Runtime, ...]:
    """The profile's runtimes, in its order of preference."""
    check_profile(profile)
    return tuple(RUNTIMES[name] for name in profile.runtimes)


def choose_runtime(profile, requested: str | None = None) -> Runtime:
    """The runtime the user asked for, when the profile runs it, else the profile's first."""
    available = runtimes_of(profile)
    if requested is None:
        return available[0]
    runtime = get_runtime(requested)
    if runtime not in available:
        raise BadInput(f"profile {profile.name} does not run '{requested}' (its runtimes: "
                       f"{', '.join(profile.runtimes)})")
    return runtime


def runnable(profile, tflite: bytes, source: str, runtimes: tuple[Runtime, ...] | None = None,
             host: HostOps | None = None) -> tuple[Runtime, ...]:
    """The runtimes (the profile's, or `runtimes`) that can run some version of the model `tflite`
    (its float form, or the model as it came); a BadInput naming each runtime's reason, op by op,
    when none can. `host`: what this host lacks to run it, when the caller asked already."""
    runtimes = runtimes if runtimes is not None else runtimes_of(profile)
    graph = read_graph(tflite, source)
    host = host if host is not None else host_ops(tflite, graph)
    refusals = {r: r.refuses_ops(profile, tflite, graph, host) for r in runtimes}
    usable = tuple(r for r in runtimes if not refusals[r])
    if not usable:
        raise BadInput(f"{source}: no runtime of {profile.name} can run it: " + "; ".join(refusals.values()))
    return usable
