"""`edgeq sweep`: every (model, device, quantization) cell deployed and measured on Ray, each
cell's output folder written as soon as it ends, so an interrupted sweep loses no finished cell and
a rerun takes up where it stopped.

Cells live in `<out>/cells/<name>/`: what `edgeq deploy` writes for it, plus `cell.json` (its key,
status, figures and where it ran). A rerun reads those first and runs only the cells whose key
changed, that never ended, or that failed for a reason another run might not meet (a tool, a
device, a lost worker); with every cell finished it starts no Ray at all.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import edgeq
from edgeq import console
from edgeq.files import write_tree
from edgeq.plan.session import code_fingerprint, default_cache_dir
from edgeq.sweep.cells import Cell, SweepRequest, plan_cells
from edgeq.sweep.summary import reusable, sweep_document
from edgeq.sweep.worker import Outcome

CELLS = "cells"
RECORD = "cell.json"


@dataclass
class SweepResult:
    document: dict  # sweep.json
    cells: list[Cell]


def previous_records(out: Path) -> dict[str, dict]:
    """The cell records an earlier run left in `out`, by cell name; unreadable ones are ignored
    (their cells run again)."""
    records = {}
    for path in sorted((out / CELLS).glob(f"*/{RECORD}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "name" in record:
            records[record["name"]] = record
    return records


def cell_record(cell: Cell, outcome: Outcome, attempts: int) -> dict:
    folder = f"{CELLS}/{cell.name}"
    return {"name": cell.name, "key": cell.key, "model": str(cell.model), "device": cell.device,
            "quant": cell.quant, "status": outcome.status, "exit_code": outcome.exit_code, "error": outcome.error,
            "figures": outcome.figures, "folder": folder,
            "report": f"{folder}/report.html" if "report.html" in outcome.files else None,
            "resource": cell.resource, "where": outcome.where, "attempts": attempts, "seconds": outcome.seconds}


def _request_dict(req: SweepRequest) -> dict:
    return {"models": [str(m) for m in req.models], "devices": [p.name for p in req.profiles],
            "quants": list(req.quants), "data": list(req.data), "val": list(req.val),
            "options": dataclasses.asdict(req.options), "address": req.address or "local", "workers": req.workers}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _line(record: dict) -> str:
    what = record["status"] + (f" (exit {record['exit_code']})" if record["status"] == "failed" else "")
    retried = f", attempt {record['attempts']}" if record.get("attempts", 1) > 1 else ""
    return f"  {'cell':<9} {record['name']}  {what}  ({record['seconds']:.1f} s{retried})"


def run_sweep(req: SweepRequest) -> SweepResult:
    """Run every cell of `req` that an earlier run in `req.out` has not answered; return sweep.json."""
    from edgeq.sweep.cluster import connected, run_cells  # Ray is imported only when a cell must run

    start = time.perf_counter()
    with console.stage("plan", "cells and their keys"):
        cells = plan_cells(req)
        earlier = previous_records(req.out) if req.use_cache else {}
    records = {}
    for cell in cells:
        if reusable(earlier.get(cell.name), cell.key):
            records[cell.name] = dict(earlier[cell.name], reused=True)
    # The biggest models first, so that the last cells to end are short ones and no worker idles long.
    todo = sorted((c for c in cells if c.name not in records), key=lambda c: -_size(c.model))
    console.info(f"  {'sweep':<9} {len(cells)} cells: {len(records)} from an earlier run, {len(todo)} to run")
    cluster = {"address": req.address or "local", "nodes": []}
    if todo:
        def finished(cell: Cell, outcome: Outcome, attempts: int) -> None:
            record = cell_record(cell, outcome, attempts)
            write_tree(req.out / CELLS / cell.name,
                       {**outcome.files, RECORD: (json.dumps(record, indent=2) + "\n").encode()})
            records[cell.name] = record
            bar.close()
            console.info(_line(record))

        def progress(running: int, done: int, failed: int) -> None:
            bar.update(done + failed, f"{running} running, {failed} failed")

        with console.stage("run", f"{len(todo)} cells on Ray ({cluster['address']})"), \
                connected(req.address, req.workers) as nodes:
            cluster["nodes"] = nodes
            bar = console.Bar("cells", len(todo))
            try:
                run_cells(todo, code_fingerprint(), default_cache_dir().resolve(), finished, progress)
            finally:
                bar.close()
    document = sweep_document([records[c.name] for c in cells], _request_dict(req), cluster,
                              time.perf_counter() - start, edgeq.__version__)
    return SweepResult(document, cells)
