"""A cell's figures, taken from the report its deploy made, and sweep.json: every cell, where it ran,
and each device's Pareto front of latency against accuracy.

Pure: a Report (and plan.json's dict) in, plain dicts out. No figure is computed here that the
report does not hold; each keeps its `sources` entry, so sweep.html marks estimates as report.html
does.
"""

from __future__ import annotations

from edgeq.report.schema import Report

SWEEP_SCHEMA_VERSION = 1
FINISHED = ("done", "does-not-fit")  # statuses a rerun keeps; a failed cell is run again unless it was refused
KEPT_FAILURES = (2, 3)  # bad input and does-not-fit: the same content gives the same refusal


def _latency(report: Report, plan: dict | None, estimate: tuple[float, dict] | None) -> tuple:
    """The cell's latency on its device and its source: measured there when it ran, else the
    planner's estimate for the chosen candidate, else the cost model's (`estimate`)."""
    m = report.measure or {}
    if m.get("time_ms_median") is not None:
        return m["time_ms_median"], (m.get("sources") or {}).get("time_ms_median")
    if plan:
        chosen = next((c for c in plan["candidates"] if c["chosen"]), None)
        if chosen is not None:
            for key in ("latency_ms_measured", "latency_ms_estimated"):
                if chosen.get(key) is not None:
                    return chosen[key], chosen["sources"].get(key)
    if estimate is not None:
        return estimate
    return None, None


def cell_figures(report: Report, plan: dict | None = None, estimate: tuple[float, dict] | None = None) -> dict:
    """What the sweep's matrix shows of one deployed cell, each figure with its source."""
    fit, acc, m = report.fit.to_dict(), report.accuracy, report.measure or {}
    latency, latency_source = _latency(report, plan, estimate)
    cycles = m.get("estimated_cycles") or {}
    sources = {"flash_bytes": fit["flash"]["source"], "ram_bytes": fit["ram"]["source"]}
    if latency_source:
        sources["latency_ms"] = latency_source
    if cycles:
        sources["cycles_ms_estimated"] = {"kind": "estimated", "from": cycles["source"]}
    if acc is not None:
        sources.update({k: acc.sources[s] for k, s in (("accuracy", "quantized"), ("float_accuracy", "float"),
                                                        ("sqnr_db", "sqnr_db")) if s in acc.sources})
    if (m.get("sources") or {}).get("bit_exact_fraction"):
        sources["bit_exact_fraction"] = m["sources"]["bit_exact_fraction"]
    return {
        "mode": report.quantization.mode, "runtime": report.quantization.runtime, "fit": fit["verdict"],
        "flash_bytes": fit["flash"]["needed_bytes"], "flash_budget_bytes": fit["flash"]["budget_bytes"],
        "ram_bytes": fit["ram"]["needed_bytes"], "ram_budget_bytes": fit["ram"]["budget_bytes"],
        "latency_ms": latency, "cycles_ms_estimated": cycles.get("estimate_ms"),
        "cycles_ms_band": [cycles["low_ms"], cycles["high_ms"]] if cycles else None,
        "instructions_median": m.get("cycles_median") if m.get("cycles_unit") == "instructions" else None,
        "accuracy": acc.quantized if acc else None, "float_accuracy": acc.float if acc else None,
        "accuracy_drop_pp": acc.drop_pp if acc else None, "sqnr_db": acc.sqnr_db if acc else None,
        "bit_exact_fraction": m.get("bit_exact_fraction"),
        "device_status": report.device.status if report.device else None,
        "sources": sources,
    }


def pareto_front(points: list[tuple[str, float, float]]) -> set[str]:
    """The names of the points no other point beats: as fast or faster and as accurate or more,
    better in one. Points are (name, latency, accuracy)."""
    front = set()
    for name, x, y in points:
        if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for _, x2, y2 in points):
            front.add(name)
    return front


def quality(cell: dict) -> tuple[str, float] | None:
    """The accuracy axis of a cell: top-1 accuracy where the validation data has labels, else SQNR."""
    f = cell.get("figures") or {}
    if f.get("accuracy") is not None:
        return "accuracy", 100 * f["accuracy"]
    if f.get("sqnr_db") is not None:
        return "sqnr_db", f["sqnr_db"]
    return None


def fronts(cells: list[dict]) -> dict[str, list[str]]:
    """Each device's Pareto front among its cells that fit and have a latency and an accuracy on one axis."""
    out = {}
    for device in dict.fromkeys(c["device"] for c in cells):
        points = [(c["name"], c["figures"]["latency_ms"], quality(c)) for c in cells
                  if c["device"] == device and c["status"] == "done" and c.get("figures", {}).get("latency_ms")
                  is not None and quality(c) is not None]
        axes = {q[0] for _, _, q in points}
        if len(axes) > 1:  # labelled and unlabelled models do not share an axis: rank the labelled ones
            points = [p for p in points if p[2][0] == "accuracy"]
        out[device] = sorted(pareto_front([(n, x, q[1]) for n, x, q in points]))
    return out


def reusable(previous: dict | None, key: str) -> bool:
    """Whether an earlier run's cell record answers for the cell with `key`."""
    if not previous or previous.get("key") != key:
        return False
    return previous.get("status") in FINISHED or previous.get("exit_code") in KEPT_FAILURES


def sweep_document(cells: list[dict], request: dict, cluster: dict, seconds: float, edgeq_version: str) -> dict:
    counts = {status: sum(c["status"] == status for c in cells) for status in ("done", "does-not-fit", "failed")}
    return {"schema_version": SWEEP_SCHEMA_VERSION, "edgeq_version": edgeq_version, "request": request,
            "cluster": cluster, "seconds": round(seconds, 3),
            "summary": {"cells": len(cells), **counts, "reused": sum(bool(c.get("reused")) for c in cells),
                        "retried": sum(c.get("attempts", 1) > 1 for c in cells)},
            "pareto": fronts(cells), "cells": cells}

