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
        return f"{c.latency_ms_ranked:.3g} ms {c.latency_source} on the board (~{c.latency_ms:.3g} ms estimated)"
    return f"~{c.latency_ms:.3g} ms estimated"


def format_plan_table(result: PlanResult) -> str:
    """One row a candidate, the chosen one marked with '*', feasible ones with '+'."""
    header = ("", "CANDIDATE", "RUNTIME", "FLASH", "RAM", "ESTIMATED", "MEASURED",
              "ACCURACY" if result.metric == "accuracy" else "SQNR", "WHY NOT")
    rows = [header]
    for c in result.candidates:
        if result.metric == "accuracy":
            quality = "-" if c.accuracy is None else f"{100 * c.accuracy:.2f}% ({pp_text(-(c.drop_pp or 0.0))})"
        else:
            quality = db_text(c.sqnr_db)
        mark = "*" if c.chosen else ("+" if c.feasible else "")
        why = "" if c.chosen else (c.rejected_because or "; ".join(c.problems))
        if why.startswith("feasible; "):
            why = "feasible, not best"
        flash, ram = kb(c.flash_bytes), kb(c.ram_bytes)
        if c.fit is not None:
            flash, ram = c.fit.flash.source.mark(flash), c.fit.ram.source.mark(ram)
        rows.append((mark, c.name, c.runtime or "-", flash, ram,
                     "-" if c.latency_ms is None else f"{ESTIMATE_MARK}{c.latency_ms:.3g} ms",
                     "-" if c.latency_ms_ranked is None else f"{c.latency_ms_ranked:.3g} ms", quality, why))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    budget = result.budgets
    tol = (f"accuracy drop <= {result.tolerance['max_accuracy_drop_pp']:g} pp"
           + (f" (float {100 * result.float_accuracy:.2f}%)" if result.float_accuracy is not None else "")
           if result.metric == "accuracy" else f"SQNR >= {result.tolerance['min_sqnr_db']:g} dB")
    lines.insert(0, f"plan for {result.model} on {result.profile}: objective {result.objective}, {tol}, "
                    f"RAM {kb(budget['ram_for_model_bytes'])}, flash {kb(budget['flash_bytes'])}")
    if result.chosen is not None:
        lines.append(f"chosen: {result.chosen.name} — {result.message}")
    lines.append(f"{ESTIMATE_MARK} estimated (plan.json says from what); MEASURED: latency on the board")
    lines.append(f"{len(result.candidates)} candidates in {result.seconds:.1f} s "
                 f"({result.cache_hits} cached, {result.cache_misses} measured)")
    return "\n".join(line.rstrip() for line in lines)
