"""Build -> flash -> measure: the loop that both `edgeq deploy` and the planner run on a device.

`run_on_device` builds a written firmware project with the profile's compiler (and the make
variables its runtime needs), flashes it (real boards) or starts it (QEMU, the host), and measures
it over serial; `run_project` does the same for a project still in memory, in a temporary folder,
and returns what the output folder keeps of it (the images, the measurement log). What to measure
against and how to count comes from the project's manifest: nothing is compiled again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq import console
from edgeq.codegen.sources import read_manifest
from edgeq.device.build import BUNDLE_BUILDER, BuildResult, build, profiled_name
from edgeq.device.connect import device_link
from edgeq.device.cycles import WINDOWS, add_estimated_cycles, refuse_unless_emulated
from edgeq.device.flash import FlashOptions, Images, flash
from edgeq.device.measure import DEFAULT_TIMEOUT_S, JOURNAL, Run, measure
from edgeq.device.native import HARNESS_LOG, measure_native
from edgeq.device.profile import profile_firmware
from edgeq.errors import BadInput, EdgeqError, ToolFailed
from edgeq.files import write_files
from edgeq.runtimes import EMULATED_METHODS, get_runtime


@dataclass
class DeviceRun:
    build: BuildResult | None = None
    measure: dict | None = None
    error: EdgeqError | None = None  # a failure after the build: the figures so far are kept
    # What the output folder keeps of a run in a temporary folder: the images and measure.jsonl.
    artifacts: dict[str, bytes] = field(default_factory=dict)


def measure_run(firmware_dir: Path, x, y: np.ndarray | None, journal: Path, *,
                tflite: bytes | None = None, model_name: str | None = None, resume: bool = False,
                timeout: float | None = None, label_output: int = 0) -> Run:
    """The edgeq.device.measure.Run for a firmware project: its model (or `tflite`), and from its
    manifest the runtime, the reference interpreter, the clock, the counter, the outputs' names and
    each step's MACs. `x` is Samples (or an array for a model with one input); `y` labels the output
    `label_output`."""
    manifest = read_manifest(firmware_dir)
    if tflite is None:
        model_path = firmware_dir / manifest.model
        if not model_path.is_file():
            raise BadInput(f"{model_path}: missing; the firmware project should hold the model it was built from")
        tflite, model_name = model_path.read_bytes(), manifest.model
    return Run(tflite=tflite, model_name=model_name or "the model", x=x, y=y, journal=journal,
               runtime=manifest.runtime, reference=manifest.reference, clock_hz=manifest.clock_hz,
               cycles_unit=manifest.cycles_unit, macs=manifest.macs or None, steps=manifest.steps,
               output_names=manifest.outputs, label_output=label_output, resume=resume,
               timeout=timeout or DEFAULT_TIMEOUT_S, hello_timeout=max(timeout or 0, DEFAULT_TIMEOUT_S))


def build_firmware(firmware_dir: Path, profile, profiled: bool = False) -> BuildResult:
    """The project built with the make variables its runtime needs."""
    runtime = get_runtime(read_manifest(firmware_dir).runtime)
    return build(firmware_dir, profile, profiled=profiled, variables=runtime.build_variables(profile))


def run_on_device(profile, firmware_dir: Path, run: Run, *, port: str | None = None,
                  flash_options: FlashOptions | None = None, cycles: bool = False) -> DeviceRun:
    """Builds the project, flashes it (real boards), starts it (QEMU, host) and measures it.

    A failed build raises (nothing was measured); a failure while measuring is returned in
    DeviceRun.error with the figures measured until then, so the report can keep them. A phone or
    Linux board (`port`: its adb serial or user@address) runs the native harness instead, with LiteRT's
    per-op profile always (its runs come after the timed ones). With `cycles` (QEMU boards), edgeq's
    cycle plugin counts each inference's instruction classes and the summary gets `estimated_cycles`."""
    if cycles:
        refuse_unless_emulated(profile)
    with console.stage("build", f"make in {firmware_dir}"):
        built = build_firmware(firmware_dir, profile)
    result = DeviceRun(build=built)
    if built.bundle is not None:  # a phone or Linux board: the native harness, pushed and run over adb or ssh
        try:
            result.measure = measure_native(profile, firmware_dir, run, port)
        except ToolFailed as exc:
            result.error = exc
        return result
    if profile.flash.method not in EMULATED_METHODS:
        with console.stage("flash", profile.flash.method):
            flash(profile, Images(elf=built.elf, bin=built.bin, hex=built.hex, image=built.elf, uf2=built.uf2),
                  flash_options or FlashOptions(port=port))
    where = {"qemu": "in QEMU", "host": "on this machine"}.get(profile.flash.method, f"on {port}")
    windows = _fresh(firmware_dir / WINDOWS) if cycles else None
    with console.stage("device", f"{len(run.x)} samples {where}, over serial"):
        try:
            with device_link(profile, built.elf, firmware_dir, port, cycles_out=windows) as link:
                result.measure = measure(link, run)
        except ToolFailed as exc:
            result.measure, result.error = getattr(exc, "measured", None), exc
    _estimate(result.measure, profile, windows)
    return result


def _fresh(windows: Path) -> Path:
    """The plugin's output path, without what an earlier run left there."""
    windows.unlink(missing_ok=True)
    return windows


def _estimate(summary: dict | None, profile, windows: Path | None) -> None:
    """The estimated cycle band added to a summary, from the windows the plugin counted (also those of
    a run cut off part way: each window is one whole inference)."""
    if summary is not None and windows is not None and windows.is_file() and windows.stat().st_size:
        add_estimated_cycles(summary, profile, windows)


def _kept(project: Path, profiled: bool) -> dict[str, bytes]:
    """The images the build made and the measurement log, by their name in the project."""
    manifest = read_manifest(project)
    names = [manifest.image(key) for key in ("elf", "bin", "hex", "uf2")]
    if profiled:
        names.append(profiled_name(manifest.elf))
    names += [JOURNAL, WINDOWS, HARNESS_LOG, "bundle/bundle.json"]
    return {name: (project / name).read_bytes() for name in names if name and (project / name).is_file()}


def run_project(profile, files: dict[str, str | bytes], x, y: np.ndarray | None = None, *,
                port: str | None = None, per_layer: bool = False, label_output: int = 0,
                cycles: bool = False) -> DeviceRun:
    """A project still in memory (as a runtime generates it) built, flashed and measured on `x` in a
    temporary folder that is gone afterwards; with `per_layer`, each step counted too (the profiled
    image, in `measure["profile"]`). The build's failure is raised; a failure after it is in `error`."""
    with tempfile.TemporaryDirectory(prefix="edgeq-device-") as tmp:
        project = Path(tmp)
        write_files(project, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
        run = measure_run(project, x, y, project / JOURNAL, label_output=label_output)
        result = run_on_device(profile, project, run, port=port, cycles=cycles)
        if per_layer and result.build.bundle is None and result.error is None and result.measure is not None:
            try:
                result.measure["profile"] = profile_firmware(profile, project, run, result.measure["cycles_median"],
                                                             port, flash_board=True)
            except EdgeqError as exc:
                result.error = exc
        result.artifacts = _kept(project, per_layer)
        return result


@dataclass
class FirmwareMeasurement:
    """What `edgeq measure` found on a written firmware: the summary (measure.json), and what stopped it."""

    summary: dict | None
    failure: EdgeqError | None
    journal: Path


def measure_firmware(profile, firmware: Path, x, y: np.ndarray | None, out: Path, *,
                     tflite: bytes | None = None, model_name: str | None = None, port: str | None = None,
                     resume: bool = False, timeout: float | None = None, per_layer: bool = False,
                     label_output: int = 0, cycles: bool = False) -> FirmwareMeasurement:
    """A firmware folder edgeq generated, already built, measured on its device (started under QEMU or
    as a host program, or a real board already flashed); the journal goes to `out` as samples arrive,
    so an interrupted run keeps them and `resume` continues it. With `cycles`, the estimated cycle
    band of each inference from edgeq's QEMU plugin (its windows in `out`/cycles.jsonl)."""
    if cycles:
        refuse_unless_emulated(profile)
    run = measure_run(firmware, x, y, out / JOURNAL, tflite=tflite, model_name=model_name, resume=resume,
                      timeout=timeout, label_output=label_output)
    manifest = read_manifest(firmware)
    elf = firmware / manifest.elf
    summary, failure = None, None
    if manifest.builder == BUNDLE_BUILDER:  # a phone, a Linux board or the host: the native LiteRT harness
        try:
            summary = measure_native(profile, firmware, run, port)
        except EdgeqError as exc:
            failure = exc
        return FirmwareMeasurement(summary, failure, run.journal)
    windows = _fresh(out / WINDOWS) if cycles else None
    with console.stage("device", f"{len(x)} samples on {profile.name}, over serial"):
        try:
            with device_link(profile, elf, firmware, port, cycles_out=windows) as link:
                summary = measure(link, run)
        except EdgeqError as exc:
            summary, failure = getattr(exc, "measured", None), exc
    _estimate(summary, profile, windows)
    if per_layer and failure is None:
        summary["profile"] = profile_firmware(profile, firmware, run, summary["cycles_median"], port)
    return FirmwareMeasurement(summary, failure, run.journal)
