"""Ray, at the edge of the sweep: a local instance sized to this machine or an existing cluster,
one task a cell, the inputs shipped through the object store, and the results handed back as
they finish.

A cell takes one CPU; a cell bound to a board also takes that board's resource (`board:<device>`,
which only the node wired to it advertises, one unit), so a board runs one cell at a time and on
its own node. A worker that dies mid-cell has its cell run once more (the task's `max_retries`);
a small actor, the ledger, records each start, so the sweep knows what is running and what was
retried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

import ray

import edgeq.sweep.worker as worker
from edgeq.device.build import MAKE_JOBS_VARIABLE
from edgeq.errors import ToolFailed
from edgeq.sweep.cells import Cell, bind, pack

RETRIES = 1  # a cell whose worker died is run once more, on whichever worker is free
# A cell holds one CPU: TensorFlow's and OpenMP's thread pools and make's jobs are sized to it, not to
# the machine, so that cells side by side do not fight over the cores.
ONE_CPU = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", MAKE_JOBS_VARIABLE)


@ray.remote(num_cpus=0)
class Ledger:
    """Where and how often each cell started."""

    def __init__(self):
        self.starts: dict[str, list[dict]] = {}

    def started(self, name: str, where: dict) -> None:
        self.starts.setdefault(name, []).append(where)

    def snapshot(self) -> dict[str, list[dict]]:
        return self.starts


@ray.remote(num_cpus=1, max_retries=RETRIES)
def cell_task(cell: Cell, roles: tuple[str, ...], code: str, cache_dir: str, ledger, *blobs) -> worker.Outcome:
    # The blobs come as arguments, fetched before the task starts: a task that waits in ray.get gives
    # its CPU back to Ray, which would start another cell beside it on the same core.
    for threads in ONE_CPU:  # before TensorFlow starts here or in the worker's converter process
        os.environ.setdefault(threads, "1")
    context = ray.get_runtime_context()
    where = {"node": context.get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    ledger.started.remote(cell.name, where)
    outcome = worker.run_cell(cell, dict(zip(roles, blobs)), code, Path(cache_dir))
    outcome.where = where
    return outcome


def _nodes() -> list[dict]:
    return [{"node": n["NodeID"], "address": n["NodeManagerAddress"], "host": n.get("NodeManagerHostname"),
             "cpus": n["Resources"].get("CPU", 0),
             "boards": sorted(r for r in n["Resources"] if r.startswith("board:"))}
            for n in ray.nodes() if n["Alive"]]


def _reachable(address: str) -> None:
    """Fail in seconds, not in Ray's minutes of retries, when nothing listens at `address`."""
    if address == "auto":  # the cluster this machine's `ray start` joined: Ray finds it
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port) if port.isdigit() else 6379), timeout=10):
        pass


@contextlib.contextmanager
def connected(address: str | None, workers: int | None) -> Iterator[list[dict]]:
    """Ray, for the block: the cluster at `address`, else a new local instance with `workers` CPUs
    (default: this machine's). Yields the cluster's live nodes."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls home
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            _reachable(address)
            ray.init(address=address, **quiet)
        except (OSError, RuntimeError, ray.exceptions.RayError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ToolFailed(f"--address {address}: no Ray cluster took this sweep ({first}); start one with "
                             "ray start --head (docs/sweep.md), give this machine its RAY_AUTH_TOKEN, or leave "
                             "--address out for a local one") from None
    else:
        ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False, **quiet)
    try:
        yield _nodes()
    finally:
        ray.shutdown()


def _missing_board(cell: Cell) -> worker.Outcome:
    return worker.Outcome(cell.name, cell.key, "failed", 4,
                          f"no node of the Ray cluster advertises {cell.resource}: on the machine {cell.device} is "
                          f"wired to, start a node with ray start --address HEAD:6379 --resources "
                          f"'{{\"{cell.resource}\": 1}}' (docs/sweep.md)")


def _lost(cell: Cell, exc: Exception) -> worker.Outcome:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ray.exceptions.RayTaskError):  # the task raised past run_cell: a bug
        return worker.Outcome(cell.name, cell.key, "failed", 1, f"internal error in the cell's task: {first}")
    return worker.Outcome(cell.name, cell.key, "failed", 4,
                          f"the worker running it was lost, and again on the retry: {first}")


def run_cells(cells: list[Cell], code: str, cache_dir: Path,
              finished: Callable[[Cell, worker.Outcome, int], None],
              progress: Callable[[int, int, int], None] = lambda running, done, failed: None) -> None:
    """Run `cells` on the connected cluster; call `finished(cell, outcome, attempts)` for each as it
    ends, and `progress(running, done, failed)` as they go."""
    advertised = set(ray.cluster_resources())
    ledger = Ledger.remote()
    shipped: dict[Path, ray.ObjectRef] = {}
    pending: dict[ray.ObjectRef, Cell] = {}
    starts: dict[str, list[dict]] = {}
    done = failed = 0

    def end(cell: Cell, outcome: worker.Outcome, attempts: int) -> None:
        nonlocal done, failed
        done, failed = done + (outcome.status != "failed"), failed + (outcome.status == "failed")
        finished(cell, outcome, attempts)

    for cell in cells:
        cell = bind(cell, advertised)
        if cell.resource is not None and cell.resource not in advertised:
            end(cell, _missing_board(cell), 0)
            continue
        files = cell.files()
        for path in files.values():
            if path.resolve() not in shipped:
                shipped[path.resolve()] = ray.put(pack(path))
        options = {"resources": {cell.resource: 1}} if cell.resource else {}
        task = cell_task.options(**options).remote(cell, tuple(files), code, str(cache_dir), ledger,
                                                   *(shipped[p.resolve()] for p in files.values()))
        pending[task] = cell
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            try:
                starts = ray.get(ledger.snapshot.remote(), timeout=30)
            except ray.exceptions.RayError:  # the ledger's node is busy or gone: keep what it last said
                pass
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    outcome = _lost(cell, exc)
                end(cell, outcome, len(starts.get(cell.name, ())) or 1)
            progress(sum(c.name in starts for c in pending.values()), done, failed)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise

