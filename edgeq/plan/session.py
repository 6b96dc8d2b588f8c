"""The state of one `edgeq plan` run: its inputs, the measurement cache and the worker processes.

The cache keeps one record (and the built .tflite) per candidate, keyed by a hash of the model
file, the calibration and validation arrays, the candidate's spec, and edgeq's code and tool
versions. Files are written to a temporary name and renamed into place, the .tflite before its
record, so a reader never sees half an entry. Location: `cache_dir`, else $EDGEQ_CACHE, else
build/.cache/plan.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from importlib import metadata
from pathlib import Path

import numpy as np

import edgeq.plan.evaluate as plan_eval
from edgeq import __version__
from edgeq.convert.converter import MAX_CALIBRATION_SAMPLES, convert
from edgeq.device.cycles import can_estimate
from edgeq.device.loop import run_project
from edgeq.device.measure import device_data
from edgeq.errors import BadInput, EdgeqError
from edgeq.files import write_atomic
from edgeq.isolate import ToolCrashed, contained
from edgeq.litert_ops import HostOps, host_ops
from edgeq.load import Samples, detect_format, file_sha256, load_data, load_model, read_arrays
from edgeq.modes import MODES
from edgeq.plan.evaluate import Inputs, Spec
from edgeq.resources import PACKAGE_DIR, TEMPLATE_DIR
from edgeq.runtimes import get_runtime
from edgeq.runtimes.edgeq_c import widening

CACHE_SCHEMA = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGEQ_CACHE") or Path("build") / ".cache" / "plan")


_TOOL_PACKAGES = ("tensorflow", "ai-edge-litert", "ai-edge-quantizer", "tflite-micro")
_code: str | None = None


def code_fingerprint() -> str:
    """edgeq's version, a hash of its own sources (Python and the C runtime) and the versions of the
    tools that build and measure: a change to any of them invalidates cached measurements."""
    global _code
    if _code is None:
        h = hashlib.sha256(__version__.encode())
        for root in (PACKAGE_DIR, TEMPLATE_DIR / "edgeq_c"):
            for path in sorted(root.rglob("*")):
                if path.suffix in (".py", ".c", ".h", ".j2") and "__pycache__" not in path.parts:
                    h.update(path.relative_to(root).as_posix().encode())
                    h.update(path.read_bytes())
        for name in _TOOL_PACKAGES:
            try:
                h.update(f"{name}=={metadata.version(name)}".encode())
            except metadata.PackageNotFoundError:
                h.update(f"{name} missing".encode())
        _code = h.hexdigest()
    return _code


def cache_key(fingerprint: dict, what: str, spec: Spec) -> str:
    text = json.dumps({"fingerprint": fingerprint, "what": what, "spec": spec.key(), "edgeq": __version__,
                       "code": code_fingerprint(), "schema": CACHE_SCHEMA}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_load(directory: Path, key: str) -> tuple[dict, bytes | None] | None:
    """The cached record and model, or None. A record is only ever read once its model is written."""
    record_path = directory / f"{key}.json"
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    tflite = None
    if record.get("has_tflite"):
        model_path = directory / f"{key}.tflite"
        if not model_path.is_file():
            return None
        tflite = model_path.read_bytes()
    return record, tflite


def cache_store(directory: Path, key: str, record: dict, tflite: bytes | None) -> None:
    if tflite is not None:
        write_atomic(directory / f"{key}.tflite", tflite)
    write_atomic(directory / f"{key}.json", json.dumps(dict(record, has_tflite=tflite is not None)).encode())


# ---- one run ------------------------------------------------------------------------------------------

class PlanSession:
    """The state of one run_plan call: inputs built on first need, the cache, the counters."""

    def __init__(self, request):  # edgeq.plan.rules.PlanRequest
        self.request = request
        path = Path(request.model)
        if not path.exists():
            raise BadInput(f"{path}: no such file or directory")
        self.format = detect_format(path)
        self.fingerprint = {"model": file_sha256(path),
                            "calib": read_arrays(request.data).sha256() if request.data else "random",
                            "val": read_arrays(request.val).sha256() if request.val else "calib",
                            "label_output": request.label_output,
                            "dsp": request.profile.has_dsp, "flash_bytes": request.profile.memory.flash_bytes,
                            "widen": widening(request.profile),
                            "custom_ops": list(self.declared_ops)}
        self.cache_dir = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
        self.hits = self.misses = 0
        self.warnings: list[str] = []  # what the user should know of the run, for PlanResult
        self._inputs: Inputs | None = None
        self._host: HostOps | None = None
        self._inputs_file: Path | None = None
        self._model = None
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._inputs_file is not None:
            self._inputs_file.unlink(missing_ok=True)
            self._inputs_file = None

    def pool(self) -> ProcessPoolExecutor:
        """Worker processes, started before the model loads so that their imports overlap it."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.request.jobs,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=plan_eval.warm_up)
        return self._pool

    @property
    def model(self):
        if self._model is None:
            loaded = self.request.loaded
            self._model = loaded.model if loaded is not None else load_model(self.request.model)
        return self._model

    def inputs(self) -> Inputs:
        if self._inputs is None:
            model, loaded = self.model, self.request.loaded
            if loaded is not None:
                calibration, validation = loaded.calibration, loaded.validation
            else:
                calibration, validation = load_data(model, self.request.data, self.request.val,
                                                    self.request.label_output)
                self.warnings += [w for w in (*calibration.warnings, *validation.warnings) if w not in self.warnings]
            converted, failed = {}, {}
            for mode in ("fp16", "dynamic-int8"):  # made whole, by the converter or ai-edge-quantizer
                runs = [r for r in self.request.profile.runtimes if not get_runtime(r).refuses_mode(mode)]
                if runs and self.request.profile.supports(MODES[mode].numeric):
                    try:
                        converted[mode] = convert(model, mode)
                    except EdgeqError as exc:  # recorded against the candidate, not the end of the plan
                        failed[mode] = str(exc).splitlines()[0]
            float_tflite = loaded.float_tflite if loaded is not None else convert(model, "fp32")
            self._host = host_ops(float_tflite)
            self._inputs = Inputs(float_tflite=float_tflite,
                                  calib_x=calibration.x[:MAX_CALIBRATION_SAMPLES],
                                  val_x=validation.x, val_y=validation.y, val_label_output=validation.label_output,
                                  val_source=validation.source,
                                  val_synthetic=validation.synthetic, converted=converted, conversion_errors=failed,
                                  came_quantized=model.quantized, dsp=self.request.profile.has_dsp,
                                  flash_bytes=self.request.profile.memory.flash_bytes,
                                  widen=widening(self.request.profile),
                                  as_given=(model.weights_as_given,) if model.weights_as_given else (),
                                  unmeasured=self._host.unmeasured(self.declared_ops))
        return self._inputs

    @property
    def declared_ops(self) -> tuple[str, ...]:
        """The custom ops the device's LiteRT has beyond the stock ones (litert.custom_ops)."""
        litert = self.request.profile.litert
        return litert.custom_ops if litert is not None else ()

    def host(self) -> HostOps:
        """What this host's LiteRT and calibrator lack to run the float model (edgeq.litert_ops)."""
        self.inputs()
        return self._host

    def inputs_file(self) -> Path:
        """The inputs as the workers read them, written once (again after `add_prebuilt`)."""
        if self._inputs_file is None:
            self._inputs_file = plan_eval.write_inputs(self.inputs(), self.cache_dir)
        return self._inputs_file

    def add_prebuilt(self, spec: Spec, tflite: bytes, notes: list[str]) -> None:
        """A candidate built outside the workers (QAT): they get it from a new inputs file."""
        self.inputs().prebuilt[spec.name] = (tflite, notes)
        if self._inputs_file is not None:
            self._inputs_file.unlink(missing_ok=True)
            self._inputs_file = None

    def key(self, what: str, spec: Spec) -> str:
        return cache_key(self.fingerprint, what, spec)

    def lookup(self, what: str, spec: Spec):
        return cache_load(self.cache_dir, self.key(what, spec)) if self.request.use_cache else None

    def store(self, what: str, spec: Spec, record: dict, tflite: bytes | None) -> None:
        if self.request.use_cache:
            cache_store(self.cache_dir, self.key(what, spec), record, tflite)

    def measure(self, specs: list[Spec]) -> dict[Spec, tuple[dict, bytes | None, bool]]:
        """Records for `specs`: from the cache, else built and measured (in parallel) and cached."""
        done: dict[Spec, tuple[dict, bytes | None, bool]] = {}
        todo = []
        for spec in specs:
            hit = self.lookup("measure", spec)
            if hit is not None:
                done[spec] = (hit[0], hit[1], True)
                self.hits += 1
            else:
                todo.append(spec)
        if not todo:
            return done
        self.misses += len(todo)
        groups: dict[tuple, list[Spec]] = {}
        for spec in todo:
            groups.setdefault(spec.transform if spec.calibrated else ("plain",), []).append(spec)
        ordered = sorted(groups.values(), key=len, reverse=True)
        inputs_file = self.inputs_file()
        results = None
        if self.request.jobs > 1 and len(ordered) > 1:
            try:
                results = list(self.pool().map(plan_eval.evaluate_group_from, [str(inputs_file)] * len(ordered),
                                               ordered))
            except BrokenProcessPool:  # a worker crashed: find out which candidates, one group at a time
                self._pool = None
                self.warnings.append("a planner worker crashed; measuring the candidates again one group at a time "
                                     "to find the ones that crash it")
        if results is None:
            results = [self._contained_group(group) for group in ordered]
        for group, outcome in zip(ordered, results):
            for spec, (record, tflite) in zip(group, outcome):
                self.store("measure", spec, record, tflite)
                done[spec] = (record, tflite, False)
        return done

    def _contained_group(self, group: list[Spec]) -> list[tuple[dict, bytes | None]]:
        """One group of candidates built and measured in edgeq's worker process; a crash there is
        recorded against each of them instead of ending the plan."""
        try:
            return contained("the converter or an interpreter", ", ".join(s.name for s in group),
                             plan_eval.evaluate_group_from, str(self.inputs_file()), group)
        except ToolCrashed as exc:
            return [({"error": str(exc).splitlines()[0]}, None) for _ in group]

    def layer_errors(self, spec: Spec) -> list[dict]:
        hit = self.lookup("layers", spec)
        if hit is not None:
            self.hits += 1
            return hit[0]["layers"]
        self.misses += 1
        layers = contained("the converter or an interpreter", f"the layers of {spec.name}",
                           plan_eval.analyse_layers_from, str(self.inputs_file()), spec)
        self.store("layers", spec, {"layers": layers}, None)
        return layers

    def board_inputs(self, tflite: bytes, count: int) -> Samples:
        """The first validation (else calibration) samples, read without loading the model (a
        cached plan imports no TensorFlow); seeded random inputs when no data was given."""
        spec = self.request.val or self.request.data
        return device_data(spec, tflite, count, spec or "random inputs", self.request.label_output).x

    def measure_on_board(self, profile, candidate, x: np.ndarray) -> dict:
        """One candidate built for the board and run on it: median instructions (QEMU) or cycles a
        sample and the latency at the profile's clock, and on an emulated Cortex-M board the cycles
        its core would take, estimated from the instruction classes QEMU ran (what the planner
        ranks by there); a failure is recorded, not raised."""
        try:
            files = get_runtime(candidate.runtime).project(profile, candidate.tflite, "model")
            device = run_project(profile, files, x, port=self.request.device_port, cycles=can_estimate(profile))
        except EdgeqError as exc:
            return {"error": str(exc).splitlines()[0]}
        summary = device.measure or {}
        if device.error is not None or summary.get("time_ms_median") is None:
            return {"error": str(device.error or "no samples measured").splitlines()[0]}
        native = summary.get("native")  # a phone or Linux board: the harness's bundle and peak RSS
        record = {"cycles_median": summary["cycles_median"], "cycles_unit": summary.get("cycles_unit"),
                  "latency_ms": summary["time_ms_median"],
                  "bit_exact_fraction": summary.get("bit_exact_fraction"), "samples": summary.get("samples"),
                  "flash_used_bytes": device.build.memory.flash_bytes,
                  "ram_used_bytes": native["peak_rss_bytes"] if native else device.build.memory.ram_bytes,
                  "native": native is not None}
        band = summary.get("estimated_cycles")
        if band:
            record["estimated_cycles"] = {key: band[key] for key in (
                "low_ms", "estimate_ms", "high_ms", "estimate_cycles", "core", "flash_wait_states", "source")}
        return record
