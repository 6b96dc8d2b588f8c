"""How the planner's choice reads to a person: the candidate table, the reason for the choice,
quality and latency in words. Estimates are marked (edgeq.sources.ESTIMATE_MARK)."""

from __future__ import annotations

from edgeq.plan.candidates import LATENCY_TIE, SIZE_TIE, Candidate, PlanRequest, PlanResult
from edgeq.sources import ESTIMATE_MARK
from edgeq.units import format_bytes as kb


def quality_text(c: Candidate) -> str:
    if c.drop_pp is not None and c.accuracy is not None:
        return f"accuracy {100 * c.accuracy:.2f}% ({pp_text(-c.drop_pp)}), SQNR {db_text(c.sqnr_db)}"
    return f"SQNR {db_text(c.sqnr_db)}"


def pp_text(x: float) -> str:
    return f"{x:+.2f} pp".replace("-0.00", "+0.00")


def db_text(x: float | None) -> str:
    return "-" if x is None else ("identical" if x == float("inf") else f"{x:.1f} dB")


def why_text(c: Candidate, request: PlanRequest) -> str:
    rule = {"latency": f"the fastest within {LATENCY_TIE:.0%}, then the closest to the float model",
            "size": f"the smallest within {SIZE_TIE:.0%}, then the closest to the float model",
            "accuracy": "the closest to the float model, then the fastest"}[request.objective]
    return (f"{rule} of the feasible candidates: {c.runtime}, {kb(c.flash_bytes)} flash, {kb(c.ram_bytes)} RAM, "
            f"{latency_text(c)}, {quality_text(c)}")


def latency_text(c: Candidate) -> str:
    if c.latency_ms_ranked is not None:
        return (f"{c.latency_ms_ranked:.3g} ms, {c.latency_source} on the board "
                f"(the cost model's ~{c.latency_ms:.3g} ms)")
    return f"~{c.latency_ms:.3g} ms estimated"


def _quality(c: Candidate, metric: str) -> str:
    if metric == "accuracy":
        return "-" if c.accuracy is None else f"{100 * c.accuracy:.2f}% ({pp_text(-(c.drop_pp or 0.0))})"
    return db_text(c.sqnr_db)


def _cells(c: Candidate, metric: str) -> tuple[str, ...]:
    """What a row shows of a candidate, but its name: two candidates with the same cells measured alike."""
    flash, ram = kb(c.flash_bytes), kb(c.ram_bytes)
    if c.fit is not None:
        flash, ram = c.fit.flash.source.mark(flash), c.fit.ram.source.mark(ram)
    why = "" if c.chosen else (c.rejected_because or "; ".join(c.problems))
    if why.startswith("feasible; "):
        why = "feasible, not best"
    return (c.runtime or "-", flash, ram, "-" if c.latency_ms is None else f"{ESTIMATE_MARK}{c.latency_ms:.3g} ms",
            _board_latency(c), _quality(c, metric), why)


def _board_latency(c: Candidate) -> str:
    if c.latency_ms_ranked is None:
        return "-"
    mark = ESTIMATE_MARK if c.latency_source.startswith("estimated") else ""
    return f"{mark}{c.latency_ms_ranked:.3g} ms"


def _refused(c: Candidate) -> bool:
    """Refused before anything was measured: the device or its runtimes cannot run it, or it could not be built."""
    return c.record is None or "error" in c.record or c.runtime is None


def _groups(candidates: list[Candidate], metric: str) -> list[list[Candidate]]:
    """Measured candidates with identical results, in the order of their first member."""
    groups: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        key = (c.chosen, c.feasible, _cells(c, metric)) if not _refused(c) else ("refused", id(c))
        groups.setdefault(key, []).append(c)
    return [g for g in groups.values() if not _refused(g[0])]


def _name(group: list[Candidate]) -> str:
    """A group's row name: its first member, and how many more measured the same."""
    first = group[0].name
    return first if len(group) == 1 else f"{first} (+{len(group) - 1} alike)"


def _shown(groups: list[list[Candidate]], result: PlanResult) -> list[list[Candidate]]:
    """The default view: the chosen candidate's group, then each mode's best (feasible first, then
    closest to the float model, then fastest) post-training, with AdaRound and trained, at most
    MAX_ROWS in all."""
    def rank(group: list[Candidate]) -> tuple:
        c = group[0]
        return (not c.chosen, not c.feasible, tuple(-v for v in c.fidelity()),
                c.ranking_latency_ms if c.ranking_latency_ms is not None else float("inf"))

    best: dict[tuple, list[Candidate]] = {}
    for group in sorted(groups, key=rank):
        spec = group[0].spec
        best.setdefault((spec.mode, spec.adaround, spec.qat), group)
    shown = sorted(best.values(), key=rank)
    return shown[:MAX_ROWS]


def _refusal_lines(candidates: list[Candidate]) -> list[str]:
    """One line per reason a candidate was refused or could not be built, with the candidates it killed."""
    reasons: dict[str, list[str]] = {}
    for c in candidates:
        if _refused(c):
            reasons.setdefault("; ".join(c.problems) or "not measured", []).append(c.name)
    lines = []
    for reason, names in reasons.items():
        listed = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        lines.append(f"refused {len(names)} ({listed}): {reason}")
    return lines


def qat_line(qat: dict) -> str:
    """What quantization-aware training did, in one line: or why it could not run."""
    if "error" in qat:
        return f"quantization-aware training could not run: {qat['error']}"

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    control = qat.get("control") or {}
    return (f"quantization-aware training for {qat['plan']['mode']} ({qat['epochs']} epochs, {qat['seconds']:g} s, "
            f"{qat['stop_reason']}): {pct(qat['ptq_accuracy'])} post-training -> {pct(qat['accuracy'])}, "
            f"{pct(qat['recovered_fraction'])} of the drop recovered ({pct(qat['recovered_fraction_vs_best_ptq'])} "
            f"of the best post-training candidate's); a float fine-tune of the same budget: "
            f"{pct(control.get('recovered_fraction'))}"
            + ("" if qat["sim_vs_deployed_gap_pp"] is None else
               f"; simulation vs deployed before training {qat['sim_vs_deployed_gap_pp']:+.1f} pp"))


MAX_ROWS = 8  # candidate rows of the default table; with the header, refusals and notes, one screen


def format_plan_table(result: PlanResult, every_row: bool = False) -> str:
    """The candidates as a table, the chosen one marked '*', feasible ones '+'. By default candidates
    that measured alike share a row, only the chosen one and each mode's best are shown, and each
    reason for refusing candidates is one line; `every_row` shows every candidate (plan.json has
    them all either way)."""
    header = ("", "CANDIDATE", "RUNTIME", "FLASH", "RAM", "ESTIMATED", "BOARD",
              "ACCURACY" if result.metric == "accuracy" else "SQNR", "WHY NOT")
    metric = result.metric
    if every_row:
        groups = [[c] for c in result.candidates]
    else:
        groups = _shown(_groups(result.candidates, metric), result)
    rows = [header]
    for group in groups:
        c = group[0]
        mark = "*" if c.chosen else ("+" if c.feasible else "")
        rows.append((mark, c.name if every_row else _name(group), *_cells(c, metric)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    if not every_row:
        lines += _refusal_lines(result.candidates)
    budget = result.budgets
    tol = (f"accuracy drop <= {result.tolerance['max_accuracy_drop_pp']:g} pp"
           + (f" (float {100 * result.float_accuracy:.2f}%)" if result.float_accuracy is not None else "")
           if result.metric == "accuracy" else f"SQNR >= {result.tolerance['min_sqnr_db']:g} dB")
    lines.insert(0, f"plan for {result.model} on {result.profile}: objective {result.objective}, {tol}, "
                    f"RAM {kb(budget['ram_for_model_bytes'])}, flash {kb(budget['flash_bytes'])}")
    if result.qat:
        lines.append(qat_line(result.qat))
    if result.chosen is not None:
        lines.append(f"chosen: {result.chosen.name} — {result.message}")
    shown = "" if every_row else f"; {len(groups)} rows shown, --all shows every candidate"
    lines.append(f"{ESTIMATE_MARK} estimated (plan.json says from what); BOARD: latency on the board, measured, or "
                 f"on an emulated Cortex-M the cycles of its core estimated from the instructions measured{shown}")
    lines.append(f"{len(result.candidates)} candidates in {result.seconds:.1f} s "
                 f"({result.cache_hits} cached, {result.cache_misses} measured)")
    return "\n".join(line.rstrip() for line in lines)
