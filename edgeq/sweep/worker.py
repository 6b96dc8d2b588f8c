"""One cell, on whichever machine runs it: the shipped model and data written to a temporary
folder, `edgeq deploy` run on them with its output in the cell's own log, and everything it
produced returned as bytes with the cell's figures. Nothing here knows about Ray (edgeq.sweep.cluster
calls it in a Ray task); nothing is left behind on the worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeq import console
from edgeq.deploy import DeviceRequest, Request, deploy
from edgeq.device.cycles import estimates_cycles
from edgeq.errors import DoesNotFit, EdgeqError
from edgeq.graph import read_graph
from edgeq.measure.costmodel import coefficients_for, count_work, estimate_ms
from edgeq.plan.candidates import PlanDoesNotFit, PlanRequest, cost_model
from edgeq.plan.session import code_fingerprint, default_cache_dir
from edgeq.runtimes import get_runtime
from edgeq.sweep.cells import PLAN, Blob, Cell
from edgeq.sweep.summary import cell_figures

log = logging.getLogger("edgeq")
LOG = "edgeq.log"


@dataclass
class Outcome:
    """What a cell produced: its status and figures, and its output folder's files."""

    name: str
    key: str
    status: str  # done, does-not-fit or failed
    exit_code: int  # as `edgeq deploy` would have ended
    error: str | None = None
    figures: dict = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0
    where: dict = field(default_factory=dict)  # the node, host and process that ran it


def _request(cell: Cell, model: Path, data: str | None, val: str | None, cache_dir: Path) -> Request:
    o = cell.options
    planner = None
    if cell.quant == PLAN:
        planner = PlanRequest(model=model, profile=cell.profile, data=data, val=val, label_output=o.label_output,
                              objective=o.objective, max_accuracy_drop_pp=o.max_accuracy_drop_pp,
                              min_sqnr_db=o.min_sqnr_db, jobs=1, cache_dir=cache_dir, device_port=cell.port)
    return Request(model=model, profile=cell.profile, data=data, val=val, mode=None if planner else cell.quant,
                   planner=planner, label_output=o.label_output,
                   device=DeviceRequest(port=cell.port, samples=o.samples,
                                        cycles=estimates_cycles(cell.profile, o.cycles)))


def _estimate(report, files: dict[str, bytes], profile) -> tuple[float, dict] | None:
    """The cost model's latency for the deployed model: the figure a cell has when nothing ran on
    its device and no planner estimated one."""
    tflite = files.get((report.outputs or {}).get("tflite", ""))
    if tflite is None:
        return None
    runtime = get_runtime(report.quantization.runtime)
    ms = estimate_ms(count_work(read_graph(tflite)), profile, runtime.costs)
    return ms, cost_model(coefficients_for(profile, runtime.costs).source).to_dict()


def _deployed(cell: Cell, req: Request) -> Outcome:
    try:
        result = deploy(req)
    except PlanDoesNotFit as exc:
        return Outcome(cell.name, cell.key, "does-not-fit", exc.exit_code, str(exc), files=exc.result.files())
    except DoesNotFit as exc:
        return Outcome(cell.name, cell.key, "does-not-fit", exc.exit_code, str(exc))
    except EdgeqError as exc:
        log.error("%s", exc, exc_info=True)
        return Outcome(cell.name, cell.key, "failed", exc.exit_code, str(exc))
    except Exception as exc:  # a bug: the cell's log has the traceback; the other cells go on
        log.exception("internal error")
        return Outcome(cell.name, cell.key, "failed", 1, f"internal error: {exc!r} (traceback in the cell's {LOG})")
    report = result.report
    plan = result.plan.to_dict() if result.plan is not None else None
    measured = (report.measure or {}).get("time_ms_median") is not None
    estimate = None if measured or plan else _estimate(report, result.files, cell.profile)
    outcome = Outcome(cell.name, cell.key, "done", 0, figures=cell_figures(report, plan, estimate),
                      files=dict(result.files))
    if result.failure is not None:
        outcome.status, outcome.exit_code, outcome.error = "failed", result.failure.exit_code, str(result.failure)
    elif report.fit.verdict != "fits":
        outcome.status, outcome.exit_code = "does-not-fit", DoesNotFit.exit_code
        outcome.error = f"{report.model.name} does not fit {cell.device}: " + "; ".join(report.fit.reasons())
    return outcome


def _name_originals(outcome: Outcome, originals: dict[str, str]) -> None:
    """Name the user's files, not the worker's copies of them, in the cell's error, figures and text files."""
    def named(text: str) -> str:
        for copy, original in originals.items():
            text = text.replace(copy, original)
        return text

    if outcome.error:
        outcome.error = named(outcome.error)
    outcome.figures = json.loads(named(json.dumps(outcome.figures)))
    for name, data in outcome.files.items():
        if any(copy.encode() in data for copy in originals):
            try:
                outcome.files[name] = named(data.decode("utf-8")).encode()
            except UnicodeDecodeError:  # an image's debug strings keep the copy's path
                continue


def _cache(wanted: Path | None) -> Path:
    """The planner's cache: the driver's when this machine can write there (a local sweep shares it
    with `edgeq plan`), else this worker's own."""
    for folder in (wanted, default_cache_dir().resolve(), Path(tempfile.gettempdir()) / "edgeq-plan-cache"):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:
            continue
    raise OSError("no writable folder for the planner's cache")


def run_cell(cell: Cell, blobs: dict[str, Blob], code: str, cache_dir: Path | None = None) -> Outcome:
    """Deploy `cell` from its shipped `blobs` (role -> file) and return what it produced. `code` is
    the driver's code fingerprint: a worker with other edgeq code or tools refuses the cell."""
    start = time.perf_counter()
    if code != code_fingerprint():
        return Outcome(cell.name, cell.key, "failed", 4,
                       "this worker runs other edgeq code or tool versions than the machine that started the sweep: "
                       "install the same edgeq (and its pinned tools) on every node")
    console.quiet_tensorflow()
    folder = Path(tempfile.mkdtemp(prefix="edgeq-cell-"))
    try:
        paths = {}
        for role, blob in blobs.items():  # a folder each: calib/data.npz and val/data.npz may share a name
            (folder / role).mkdir()
            paths[role] = str(blob.unpack(folder / role))
        req = _request(cell, Path(paths["model"]), paths.get("data", cell.data), paths.get("val", cell.val),
                       _cache(cache_dir))
        log_path = folder / LOG
        with console.quiet_logs(log_path), open(log_path, "a", encoding="utf-8") as out, \
                contextlib.redirect_stdout(out):
            console.info(f"edgeq sweep cell {cell.name}: {cell.model.name} -> {cell.device} ({cell.quant})")
            outcome = _deployed(cell, req)
        outcome.files[LOG] = log_path.read_bytes()
        _name_originals(outcome, {paths[role]: str(path) for role, path in cell.files().items()})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    outcome.seconds = round(time.perf_counter() - start, 3)
    return outcome
