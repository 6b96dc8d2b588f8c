"""The planner's search: which candidates to try, whether each is feasible, which one wins.

Stage 1 tries every mode the device's numerics and runtimes allow; for full-integer int8 every
combination of weight granularity (per channel, per tensor), calibration (min/max, 99.9 and
99.99 percentile, MSE) and transform (none, CLE, bias correction, both); int4 weights with
min/max or MSE calibration, with and without bias correction. Stage 2, only when every integer
candidate that fits misses the tolerance, keeps the layers that add the most error in float
(mixed precision). Stage 3, only when nothing is feasible and labelled training data was given,
fine-tunes with quantization-aware training.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import edgeq.plan.qat as qat_plan
from edgeq import console
from edgeq.convert.calibrate import CALIBRATIONS
from edgeq.errors import BadInput
from edgeq.measure.costmodel import OpWork, coefficients_for, estimate_ms
from edgeq.modes import MODES
from edgeq.plan.arm import ARM_CPU, judge_fp16_on_arm, judged_on_arm
from edgeq.plan.candidates import (
    LATENCY_TIE,
    MIXED_MAX_FLOAT_LAYERS,
    OBJECTIVES,
    SIZE_TIE,
    Candidate,
    PlanDoesNotFit,
    PlanRequest,
    PlanResult,
    budget_profile,
)
from edgeq.plan.evaluate import AS_IS, Spec
from edgeq.plan.session import PlanSession
from edgeq.plan.table import quality_text, why_text
from edgeq.runtimes import Runtime, choose_runtime, get_runtime, runnable, runtimes_of
from edgeq.units import format_bytes as kb

# ---- the search space --------------------------------------------------------------------------------

def stage1_specs() -> list[Spec]:
    specs = [Spec("fp32"), Spec("fp16"), Spec("dynamic-int8"), Spec("int16x8")]
    for per_channel in (True, False):
        for cle, bc in ((False, False), (True, False), (False, True), (True, True)):
            specs += [Spec("int8", per_channel, cal, cle, bc) for cal in CALIBRATIONS]
    specs += [Spec("int4w", True, cal, False, bc) for bc in (False, True) for cal in ("minmax", "mse")]
    return specs


def unsupported(spec: Spec, profile, runtimes: tuple[Runtime, ...], calibrator: str | None = None) -> str | None:
    """Why the device cannot run `spec` at all (so it is not even built), or None. `calibrator`: why
    this host cannot calibrate the model (an op the converter's calibrator lacks)."""
    needs = (() if spec.mode == AS_IS else (MODES[spec.mode].numeric,)) + (("fp32",) if spec.keep_float else ())
    missing = [n for n in needs if not profile.supports(n)]
    if missing:
        return f"{profile.name} does not run {', '.join(missing)} (its numerics: {', '.join(profile.numerics)})"
    refusals = [r.refuses_mode(spec.mode) for r in runtimes]
    if all(refusals):
        return "; ".join(refusals)
    if calibrator and spec.mode != AS_IS and MODES[spec.mode].calibrated:
        return calibrator
    return None


# ---- assessing one candidate -------------------------------------------------------------------------

def assess(candidate: Candidate, profile, runtimes: tuple[Runtime, ...], request: PlanRequest) -> Candidate:
    """Fill in the runtime, flash, RAM, latency, accuracy drop and the problems of a measured candidate."""
    record = candidate.record
    if record is None or "error" in record:
        if record is not None:
            candidate.problems = [f"could not be built: {record['error']}"]
        return candidate
    unmeasured = []
    if record.get("not_measured") and not record.get("as_reference"):  # the model as given needs no measuring
        unmeasured = [f"accuracy not measured: {record['not_measured']}"]
    fits = {}
    refused = []
    for runtime in (get_runtime(candidate.spec.runtime),) if candidate.spec.runtime else runtimes:
        refusal = runtime.refuses_mode(candidate.spec.mode)
        outcome = f"{runtime.name}: {refusal}" if refusal else runtime.candidate_fit(record, profile)
        if isinstance(outcome, str):
            refused.append(outcome)
        else:
            fits[runtime] = outcome
    if not fits:
        candidate.problems = unmeasured + refused
        return candidate
    # The profile's runtime order is its preference: the first that fits, else the first that runs it.
    runtime = next((r for r, fit in fits.items() if fit.verdict == "fits"), next(iter(fits)))
    candidate.runtime, candidate.fit = runtime.name, fits[runtime]
    candidate.flash_bytes, candidate.ram_bytes = candidate.fit.flash.needed_bytes, candidate.fit.ram.needed_bytes
    problems = candidate.fit.reasons()
    work = [OpWork(*w) for w in record["work"]]
    candidate.latency_ms = estimate_ms(work, profile, runtime.costs, request.cost_coefficients)
    candidate.cost_model_source = coefficients_for(profile, runtime.costs, request.cost_coefficients).source
    if record.get("accuracy") is not None and record.get("float_accuracy") is not None:
        candidate.drop_pp = 100.0 * (record["float_accuracy"] - record["accuracy"])
        if candidate.drop_pp > request.max_accuracy_drop_pp + 1e-9:
            problems = problems + [f"accuracy -{candidate.drop_pp:.2f} pp > {request.max_accuracy_drop_pp:g}"]
    elif candidate.sqnr_db is not None and candidate.sqnr_db < request.min_sqnr_db:
        problems = problems + [f"SQNR {candidate.sqnr_db:.1f} dB < {request.min_sqnr_db:g} dB"]
    candidate.problems = unmeasured + problems
    return candidate


# ---- choosing ---------------------------------------------------------------------------------------

def _simplicity(c: Candidate) -> tuple:
    s = c.spec
    return (len(s.keep_float), s.qat, s.cle + s.bias_correction, s.calibration != "minmax", not s.per_channel, c.name)


def select(candidates: list[Candidate], objective: str) -> Candidate | None:
    """The best feasible candidate for the objective; every other one learns why it lost.

    latency: the fastest; candidates within LATENCY_TIE of it count as equally fast, and among
      those the one closest to the float model wins (accuracy kept, then output SQNR up to
      FIDELITY_CAP_DB), then the smaller.
    size: the smallest flash; within SIZE_TIE, the closest to the float model, then the faster.
    accuracy: the closest to the float model, then the faster, then the smaller.
    Remaining ties go to the simpler candidate (fewer transforms, min/max, per channel).
    """
    if objective not in OBJECTIVES:
        raise BadInput(f"unknown objective '{objective}' (choose one of: {', '.join(OBJECTIVES)})")
    for c in candidates:  # selecting again (after measuring on the board) starts afresh
        c.chosen, c.rejected_because = False, None
    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        return None
    if objective == "latency":
        best = min(c.ranking_latency_ms for c in feasible)
        pool = [c for c in feasible if c.ranking_latency_ms <= best * (1 + LATENCY_TIE)]
        key = lambda c: (tuple(-v for v in c.fidelity()), c.flash_bytes, c.ranking_latency_ms,  # noqa: E731
                         _simplicity(c))
    elif objective == "size":
        best = min(c.flash_bytes for c in feasible)
        pool = [c for c in feasible if c.flash_bytes <= best * (1 + SIZE_TIE)]
        key = lambda c: (tuple(-v for v in c.fidelity()), c.ranking_latency_ms, c.flash_bytes,  # noqa: E731
                         _simplicity(c))
    else:
        pool = feasible
        key = lambda c: (tuple(-v for v in c.fidelity()), c.ranking_latency_ms, c.flash_bytes,  # noqa: E731
                         _simplicity(c))
    chosen = min(pool, key=key)
    chosen.chosen = True
    for c in candidates:
        if c is chosen:
            continue
        if not c.feasible:
            c.rejected_because = "; ".join(c.problems) or "not measured"
        else:
            c.rejected_because = _lost_because(c, chosen, objective, c in pool)
    return chosen


def _lost_because(c: Candidate, chosen: Candidate, objective: str, tied: bool) -> str:
    prefix = f"feasible; {chosen.name} "
    if objective == "latency" and not tied:
        how = ""
        if chosen.latency_ms_ranked is not None and c.latency_ms_ranked is not None:
            how = ", cycles estimated on the board" if chosen.latency_ms_cycles is not None else ", measured"
        return prefix + f"is faster ({chosen.ranking_latency_ms:.3g} ms vs {c.ranking_latency_ms:.3g} ms{how})"
    if objective == "size" and not tied:
        return prefix + f"is smaller ({kb(chosen.flash_bytes)} vs {kb(c.flash_bytes)})"
    if c.fidelity() != chosen.fidelity():
        return prefix + f"is closer to the float model ({quality_text(chosen)} vs {quality_text(c)})"
    return prefix + "is as good and smaller, faster or simpler"


def _shortfall(c: Candidate, profile, request: PlanRequest) -> float:
    score = 0.0
    if c.ram_bytes is not None:
        score += max(c.ram_bytes / profile.ram_for_model_bytes - 1.0, 0.0)
    if c.flash_bytes is not None:
        score += max(c.flash_bytes / profile.memory.flash_bytes - 1.0, 0.0)
    if c.drop_pp is not None:
        score += max(c.drop_pp - request.max_accuracy_drop_pp, 0.0) / max(request.max_accuracy_drop_pp, 0.1)
    elif c.sqnr_db is not None:
        score += max(request.min_sqnr_db - c.sqnr_db, 0.0) / max(request.min_sqnr_db, 1.0)
    return score


def closest(candidates: list[Candidate], profile, request: PlanRequest) -> Candidate | None:
    measured = [c for c in candidates if c.runtime is not None]
    return min(measured, key=lambda c: (_shortfall(c, profile, request), c.name), default=None)


def does_not_fit_message(result: PlanResult, near: Candidate | None, profile, request: PlanRequest) -> str:
    head = (f"no quantization plan for {result.model} fits {result.profile} within the budget and tolerance "
            f"({len(result.candidates)} candidates, none feasible)")
    if near is None:
        return head + "; no candidate could be built and measured (see plan.json)"
    changes = []
    if near.ram_bytes is not None and near.ram_bytes > profile.ram_for_model_bytes:
        changes.append(f"{kb(near.ram_bytes - profile.ram_for_model_bytes)} more RAM for the model "
                       f"(--ram-budget {near.ram_bytes})")
    if near.flash_bytes is not None and near.flash_bytes > profile.memory.flash_bytes:
        changes.append(f"{kb(near.flash_bytes - profile.memory.flash_bytes)} more flash "
                       f"(--flash-budget {near.flash_bytes})")
    if near.drop_pp is not None and near.drop_pp > request.max_accuracy_drop_pp:
        changes.append(f"a looser tolerance (--max-accuracy-drop {near.drop_pp:.2f})")
    elif near.drop_pp is None and near.sqnr_db is not None and near.sqnr_db < request.min_sqnr_db:
        changes.append(f"a looser tolerance (--min-sqnr-db {near.sqnr_db:.1f})")
    changes.append("a smaller model")
    if request.train is None and any("accuracy" in p for p in near.problems):
        changes.append("quantization-aware training (--train train.npz)")
    qat_failed = f" Quantization-aware training could not run: {result.qat['error']}" \
        if result.qat and "error" in result.qat else ""
    return (f"{head}. Closest: {near.name} on {near.runtime}: {'; '.join(near.problems)}. "
            f"It would take {', or '.join(changes)}.{qat_failed}")


# ---- the stages ----------------------------------------------------------------------------------------

def _candidates(session: PlanSession, specs: list[Spec], profile, runtimes, request) -> list[Candidate]:
    out, measurable = [], []
    calibrator = session.host().calibrator_reason()
    for spec in specs:
        reason = unsupported(spec, profile, runtimes, calibrator)
        c = Candidate(spec)
        if reason:
            c.problems = [reason]
        else:
            measurable.append(spec)
        out.append(c)
    records = session.measure(measurable)
    for c in out:
        if c.spec in records:
            c.record, c.tflite, c.cached = records[c.spec]
            assess(c, profile, runtimes, request)
    return out


def _mixed_specs(session: PlanSession, candidates: list[Candidate], profile) -> tuple[list[Spec], list[dict]]:
    """Stage 2: when integer candidates fit but all miss the tolerance, keep the worst layers float."""
    if not profile.supports("fp32"):
        return [], []
    integer = [c for c in candidates if c.spec.mode == "int8" and c.record and "error" not in c.record
               and c.runtime is not None]
    if not integer or any(c.feasible for c in candidates if c.spec.mode in ("int8", "int4w")):
        return [], []
    fitting = [c for c in integer if c.fits_memory]
    if not fitting:
        return [], []
    base = max(fitting, key=lambda c: (c.fidelity(), c.name))
    layers = session.layer_errors(base.spec)
    worst = [e["name"] for e in layers][:MIXED_MAX_FLOAT_LAYERS]
    specs = [Spec(base.spec.mode, base.spec.per_channel, base.spec.calibration, base.spec.cle,
                  base.spec.bias_correction, tuple(worst[:k])) for k in range(1, len(worst) + 1)]
    return specs, [dict(e, base=base.name) for e in layers]


def _search(session: PlanSession, request: PlanRequest, profile, runtimes):
    came_quantized = session.inputs().came_quantized
    runtimes = runnable(profile, session.inputs().float_tflite, Path(request.model).name, runtimes, session.host())
    if came_quantized:  # deployed as it is: the choice is among runtimes only
        if not profile.supports(came_quantized):
            session.warnings.append(f"{profile.name} does not run {came_quantized} well (its numerics: "
                                    f"{', '.join(profile.numerics)}); the model came that way")
        return (_candidates(session, [Spec(AS_IS, runtime=r.name) for r in runtimes], profile, runtimes, request),
                [], None, None)
    candidates = _candidates(session, stage1_specs(), profile, runtimes, request)
    if judged_on_arm(profile) and not session.inputs().unmeasured:
        fp16 = [c for c in candidates if c.spec.mode == "fp16" and c.record]
        if fp16:
            with console.stage("plan", f"fp16 accuracy on emulated Arm ({ARM_CPU})"):
                inputs = session.inputs()
                session.warnings += judge_fp16_on_arm(fp16, profile, inputs.float_tflite, inputs.validation())
            for c in fp16:
                assess(c, profile, runtimes, request)
    mixed, layers = _mixed_specs(session, candidates, profile)
    if mixed:
        console.info(f"  plan      no integer candidate within tolerance: trying {len(mixed)} mixed-precision plan(s)")
        candidates += _candidates(session, mixed, profile, runtimes, request)
    qat_summary = rounded = None
    build = lambda specs: _candidates(session, specs, profile, runtimes, request)  # noqa: E731
    if not any(c.feasible for c in candidates):
        found, rounded = qat_plan.adaround_stage(session, candidates, build)
        candidates += found
        if not any(c.feasible for c in candidates) and request.train is not None:
            found, qat_summary = qat_plan.stage(session, request, candidates, build)
            candidates += found
    return candidates, layers, qat_summary, rounded


def _latency_class(c: Candidate) -> tuple:
    """Candidates alike in this run the same kernels on the same shapes: the same instruction count."""
    work = tuple((w[1], w[2], w[3], w[4]) for w in c.record["work"])
    return c.runtime, c.spec.mode, c.spec.integer and c.spec.per_channel, work


def measure_best_on_board(candidates: list[Candidate], chosen: Candidate, profile, request: PlanRequest,
                          session: PlanSession) -> dict:
    """Build the chosen candidate, and the fastest by estimate of the next latency classes, for the
    board; run each there and rank every candidate of a measured class by its measurement.
    Returns what plan.json says about it."""
    unreachable = {r: get_runtime(r).unreachable(profile, request.device_port)
                   for r in {c.runtime for c in candidates if c.feasible}}
    if all(unreachable.values()):
        return {"status": "skipped", "reason": unreachable[chosen.runtime]}
    # The chosen candidate first; on a runtime the board cannot run (TFLM without TFLM_DIR), the
    # others still are, and compete with its estimate.
    feasible = sorted((c for c in candidates if c.feasible and not unreachable[c.runtime]),
                      key=lambda c: (c is not chosen, c.latency_ms, _simplicity(c)))
    todo: dict[tuple, Candidate] = {}
    for c in feasible:
        if len(todo) >= max(request.device_candidates, 1):
            break
        todo.setdefault(_latency_class(c), c)
    x = session.board_inputs(chosen.tflite, request.device_samples)
    with console.stage("device", f"{len(todo)} candidate(s) on {profile.name}, {len(x)} samples each"):
        for c in todo.values():
            c.device = session.measure_on_board(profile, c, x)
            c.latency_ms_measured = c.device.get("latency_ms")
            c.latency_ms_cycles = (c.device.get("estimated_cycles") or {}).get("estimate_ms")
    for c in feasible:
        measured = todo.get(_latency_class(c))
        if measured is not None and measured.latency_ms_measured is not None:
            # Where the board's core is priced, its estimated cycles rank: instructions alone would
            # rank a loop of loads from flash with one of adds.
            by_cycles = measured.latency_ms_cycles is not None
            c.latency_ms_ranked = measured.latency_ms_cycles if by_cycles else measured.latency_ms_measured
            how = "estimated from the instructions measured" if by_cycles else "measured"
            c.latency_source = how if measured is c else f"{how} on {measured.name} (same ops and types)"
    done = list(todo.values())
    _in_cycles(feasible, done)
    failed = [c.name for c in done if c.latency_ms_measured is None]
    return {"status": "failed" if failed else "measured", "board": profile.name,
            "measured": [c.name for c in done if c.latency_ms_measured is not None], "failed": failed,
            "samples": len(x), "port": request.device_port,
            "not_measured": {r: why for r, why in sorted(unreachable.items()) if why}}


def _in_cycles(feasible: list[Candidate], done: list[Candidate]) -> None:
    """The cost model counts instructions; where the measured candidates are ranked by estimated
    cycles, the others' estimates are scaled by the cycles an instruction those took, so that all
    compete in one unit."""
    ratios = sorted(c.latency_ms_cycles / c.latency_ms_measured for c in done
                    if c.latency_ms_cycles is not None and c.latency_ms_measured)
    if not ratios:
        return
    per_instruction = ratios[len(ratios) // 2]
    for c in feasible:
        if c.latency_ms_ranked is None and c.latency_ms is not None:
            c.latency_ms_ranked = c.latency_ms * per_instruction
            c.latency_source = (f"estimated: the cost model's instructions at {per_instruction:.2f} cycles, "
                                "the rate measured")


def run_plan(request: PlanRequest) -> PlanResult:
    start = time.perf_counter()
    if request.objective not in OBJECTIVES:
        raise BadInput(f"unknown objective '{request.objective}' (choose one of: {', '.join(OBJECTIVES)})")
    if not request.max_accuracy_drop_pp >= 0:
        raise BadInput(f"--max-accuracy-drop must be 0 or more percentage points, not {request.max_accuracy_drop_pp}")
    if request.jobs < 1:
        raise BadInput(f"--jobs must be at least 1, not {request.jobs}")
    if not request.qat_budget_s > 0:
        raise BadInput(f"--qat-budget must be more than 0 seconds, not {request.qat_budget_s}")
    profile = budget_profile(request.profile, request.ram_budget, request.flash_budget)
    runtimes = (choose_runtime(profile, request.runtime),) if request.runtime else runtimes_of(profile)
    session = PlanSession(request)
    try:
        candidates, layers, qat_summary, rounded = _search(session, request, profile, runtimes)
    finally:
        session.close()
    chosen = select(candidates, request.objective)
    device = {"status": "off", "reason": "not requested"}
    if chosen is not None and request.measure_on_device:
        device = measure_best_on_board(candidates, chosen, profile, request, session)
        chosen = select(candidates, request.objective)
    labelled = any(c.drop_pp is not None for c in candidates)
    float_acc = next((c.record.get("float_accuracy") for c in candidates if c.record and "error" not in c.record), None)
    result = PlanResult(
        model=Path(request.model).name, profile=request.profile.name, objective=request.objective,
        metric="accuracy" if labelled else "sqnr",
        tolerance={"max_accuracy_drop_pp": request.max_accuracy_drop_pp} if labelled
        else {"min_sqnr_db": request.min_sqnr_db},
        budgets={"ram_for_model_bytes": profile.ram_for_model_bytes, "flash_bytes": profile.memory.flash_bytes,
                 "overridden": {"ram": request.ram_budget is not None, "flash": request.flash_budget is not None}},
        candidates=candidates, chosen=chosen, float_accuracy=float_acc, layer_errors=layers, qat=qat_summary,
        adaround=rounded)
    result.cache_hits, result.cache_misses = session.hits, session.misses
    result.device = device
    result.cost_model = {r.name: dataclasses.asdict(coefficients_for(profile, r.costs, request.cost_coefficients))
                         for r in runtimes}
    result.warnings = session.warnings
    if chosen is not None:
        result.chosen_tflite = chosen.tflite
        result.message = why_text(chosen, request)
    result.seconds = time.perf_counter() - start
    if chosen is None:
        result.message = does_not_fit_message(result, closest(candidates, profile, request), profile, request)
        raise PlanDoesNotFit(result.message, result)
    return result
