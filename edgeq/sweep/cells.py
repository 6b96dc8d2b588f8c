"""The cells of a sweep: every (model, device, quantization) a user asked for, each with the key of
its content, and the inputs Ray ships to the worker that runs it.

A cell's key is a hash of what decides its result: the model's and the data's bytes, the device
profile as edgeq reads it, the quantization and the options that change the measurement, and
edgeq's code and tool versions (the planner cache's fingerprint). Two runs with the same key give
the same cell, so a finished one is never run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.errors import BadInput
from edgeq.load import file_sha256
from edgeq.plan.candidates import DEFAULT_MAX_ACCURACY_DROP_PP, DEFAULT_MIN_SQNR_DB
from edgeq.plan.session import code_fingerprint

PLAN = "plan"  # the quantization of a cell the planner chooses
CELL_SCHEMA = 1


@dataclass(frozen=True)
class Blob:
    """A file (or a SavedModel folder, as a tar) shipped to the worker through Ray's object store."""

    name: str
    data: bytes
    folder: bool = False

    def unpack(self, into: Path) -> Path:
        path = into / self.name
        if self.folder:
            with tarfile.open(fileobj=io.BytesIO(self.data)) as tar:
                tar.extractall(path, filter="data")
        else:
            path.write_bytes(self.data)
        return path


def pack(path: Path) -> Blob:
    if path.is_dir():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for item in sorted(path.rglob("*")):
                tar.add(item, arcname=item.relative_to(path).as_posix(), recursive=False)
        return Blob(path.name, buffer.getvalue(), folder=True)
    return Blob(path.name, path.read_bytes())


@dataclass(frozen=True)
class Options:
    """What every cell of one sweep shares."""

    samples: int | None = None  # validation samples measured on the device (default: all)
    cycles: bool | None = None  # estimate the core's cycles on emulated Cortex-M boards (default: there)
    objective: str = "latency"  # the planner's, for cells it plans
    max_accuracy_drop_pp: float = DEFAULT_MAX_ACCURACY_DROP_PP
    min_sqnr_db: float = DEFAULT_MIN_SQNR_DB
    label_output: str | None = None


@dataclass(frozen=True)
class Cell:
    name: str  # its folder under cells/
    model: Path
    profile: object  # edgeq.profiles.Profile
    quant: str  # PLAN, or a quantization mode
    data: str | None  # a file, or package.module:function (run on the worker)
    val: str | None
    options: Options
    port: str | None = None  # a real board's serial port, a phone's adb serial or an ssh address, on its node
    resource: str | None = None  # the Ray resource of the board it runs on: board:<device>
    key: str = ""

    @property
    def device(self) -> str:
        return self.profile.name

    def files(self) -> dict[str, Path]:
        """The inputs that travel to the worker: the model, and the data given as files."""
        out = {"model": self.model}
        for role in ("data", "val"):
            spec = getattr(self, role)
            if spec is not None and Path(spec).exists():
                out[role] = Path(spec)
        return out


@dataclass(frozen=True)
class SweepRequest:
    models: tuple[Path, ...]
    profiles: tuple  # edgeq.profiles.Profile, one per device
    quants: tuple[str, ...] = (PLAN,)
    data: tuple[str, ...] = ()  # one for every model, or one for all
    val: tuple[str, ...] = ()
    options: Options = field(default_factory=Options)
    ports: dict[str, str] = field(default_factory=dict)  # device -> where it is, on the node wired to it
    out: Path = Path("build") / "sweep"
    address: str | None = None  # an existing Ray cluster; None: a local Ray instance
    workers: int | None = None  # the local instance's CPUs (default: the machine's)
    use_cache: bool = True  # reuse the finished cells of an earlier run in `out`


def _per_model(values: tuple[str, ...], models: tuple[Path, ...], option: str) -> list[str | None]:
    if not values:
        return [None] * len(models)
    if len(values) == 1:
        return [values[0]] * len(models)
    if len(values) != len(models):
        raise BadInput(f"--{option} was given {len(values)} times for {len(models)} models: give it once for all "
                       "of them, or once for each model in the models' order")
    return list(values)


def physical(profile) -> bool:
    """A board or phone a node is wired to, as opposed to an emulator or this host."""
    return not profile.is_emulated and profile.kind != "host"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


def _names(models: tuple[Path, ...]) -> list[str]:
    """Each model's name in cell folders: its file's stem; with its folder's name where two stems
    meet; numbered where a model is given twice."""
    stems = [_safe(m.stem if m.suffix else m.name) for m in models]
    names = [f"{_safe(m.resolve().parent.name)}-{s}" if stems.count(s) > 1 else s for m, s in zip(models, stems)]
    return [f"{n}-{names[:i].count(n) + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _spec_hash(spec: str | None) -> str | None:
    if spec is None:
        return None
    path = Path(spec)
    return file_sha256(path) if path.exists() else f"callable {spec}"


def _profile_content(profile) -> dict:
    content = dataclasses.asdict(profile)
    content.pop("source", None)  # where the YAML was read from, not what it says
    return content


def cell_key(cell: Cell) -> str:
    text = json.dumps({"schema": CELL_SCHEMA, "model": file_sha256(cell.model), "data": _spec_hash(cell.data),
                       "val": _spec_hash(cell.val), "profile": _profile_content(cell.profile), "quant": cell.quant,
                       "options": dataclasses.asdict(cell.options), "on_a_port": cell.port is not None,
                       "code": code_fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def plan_cells(req: SweepRequest) -> list[Cell]:
    """Every cell, in the order models x devices x quantizations, keyed. A cell that will use a real
    board (a port was given for it) needs that board's resource."""
    for model in req.models:
        if not model.exists():
            raise BadInput(f"{model}: no such file or directory")
    unknown = sorted(set(req.ports) - {p.name for p in req.profiles})
    if unknown:
        raise BadInput(f"--port {unknown[0]}=...: {unknown[0]} is not one of the sweep's devices "
                       f"({', '.join(p.name for p in req.profiles)})")
    data, val = _per_model(req.data, req.models, "data"), _per_model(req.val, req.models, "val")
    cells = []
    for model, name, d, v in zip(req.models, _names(req.models), data, val):
        for profile in req.profiles:
            port = req.ports.get(profile.name)
            resource = f"board:{profile.name}" if port is not None and physical(profile) else None
            for quant in req.quants:
                cell = Cell(f"{name}-{profile.name}-{quant}", model, profile, quant, d, v, req.options, port, resource)
                cells.append(dataclasses.replace(cell, key=cell_key(cell)))
    return cells


def bind(cell: Cell, advertised: set[str]) -> Cell:
    """`cell`, bound to its board's node when the cluster advertises a resource for its device (an
    emulated board can be pinned to a node this way too)."""
    resource = f"board:{cell.device}"
    return dataclasses.replace(cell, resource=resource) if resource in advertised else cell
