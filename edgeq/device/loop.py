"""Build -> flash -> measure: the loop that both `edgeq deploy` and the planner run on a device.

`run_on_device` builds a written firmware project with the profile's compiler, flashes it (real
boards) or starts it (QEMU, the host), and measures it over serial; `run_project` does the same for
a project still in memory, in a temporary folder, for the planner's candidates.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq import console
from edgeq.codegen.boards import board_params_for
from edgeq.codegen.project import compile_for
from edgeq.device.build import BuildResult, build, read_manifest
from edgeq.device.connect import device_link
from edgeq.device.flash import FlashOptions, Images, flash
from edgeq.device.measure import DEFAULT_TIMEOUT_S, Run, measure
from edgeq.errors import BadInput, EdgeqError, ToolFailed
from edgeq.files import write_files

EMULATED_METHODS = ("qemu", "host")


def device_unreachable(profile, runtime: str, port: str | None) -> str | None:
    """Why deploy cannot build, flash and measure on this device, or None when it can."""
    if runtime == "litert":
        return "the LiteRT harness runs under Python on the device (run_litert.py), not over edgeq's serial protocol"
    if runtime == "tflm" and not os.environ.get("TFLM_DIR"):
        return ("the TFLM firmware compiles TFLM from a source tree made by create_tflm_tree.py: set TFLM_DIR "
                "to one to build, flash and measure it")
    if profile.flash.method not in EMULATED_METHODS and port is None:
        return f"{profile.name} is a real board: give its serial port with --port to build, flash and measure on it"
    return None


def cycles_unit(profile) -> str:
    """What the firmware's cycle count counts on this device: instructions under QEMU, ns on the host."""
    if profile.flash.method in EMULATED_METHODS:
        return board_params_for(profile).cycles_unit
    return "cycles"


@dataclass
class DeviceRun:
    build: BuildResult | None = None
    measure: dict | None = None
    error: EdgeqError | None = None  # a failure after the build: the figures so far are kept


def measure_run(profile, firmware_dir: Path, x: np.ndarray, y: np.ndarray | None, journal: Path, *,
                tflite: bytes | None = None, model_name: str | None = None, resume: bool = False,
                timeout: float | None = None, compiled=None):
    """The edgeq.device.measure.Run for a firmware project: its model (or `tflite`), the profile's clock.
    `compiled` is edgeq-c's CompiledModel of that model for this profile, when the caller has one: its
    MACs and its choice of kernels (the step names of a per-layer profile) come from it."""
    manifest = read_manifest(firmware_dir)
    if tflite is None:
        model_path = firmware_dir / manifest["model"]
        if not model_path.is_file():
            raise BadInput(f"{model_path}: missing; the firmware project should hold the model it was built from")
        tflite, model_name = model_path.read_bytes(), manifest["model"]
    if compiled is None:  # edgeq-c counts the MACs, whichever runtime the firmware runs
        compiled, _ = compile_for(profile, tflite, model_name or "model")
    return Run(tflite=tflite, model_name=model_name or "the model", x=x, y=y, journal=journal,
               clock_hz=profile.clock_hz, cycles_unit=cycles_unit(profile),
               macs=int(sum(compiled.macs)) if compiled else None, dsp=bool(compiled and compiled.dsp),
               resume=resume,
               timeout=timeout or DEFAULT_TIMEOUT_S, hello_timeout=max(timeout or 0, DEFAULT_TIMEOUT_S))


def run_on_device(profile, firmware_dir: Path, run, *, port: str | None = None, flash_options=None) -> DeviceRun:
    """Builds the project, flashes it (real boards), starts it (QEMU, host) and measures it.

    A failed build raises (nothing was measured); a failure while measuring is returned in
    DeviceRun.error with the figures measured until then, so the report can keep them."""
    with console.stage("build", f"make in {firmware_dir}"):
        built = build(firmware_dir, profile)
    result = DeviceRun(build=built)
    if profile.flash.method not in EMULATED_METHODS:
        with console.stage("flash", profile.flash.method):
            flash(profile, Images(elf=built.elf, bin=built.bin, hex=built.hex, image=built.elf, uf2=built.uf2),
                  flash_options or FlashOptions(port=port))
    where = {"qemu": "in QEMU", "host": "on this machine"}.get(profile.flash.method, f"on {port}")
    with console.stage("device", f"{len(run.x)} samples {where}, over serial"):
        try:
            with device_link(profile, built.elf, firmware_dir, port) as link:
                result.measure = measure(link, run)
        except ToolFailed as exc:
            result.measure, result.error = getattr(exc, "measured", None), exc
    return result




def run_project(profile, files: dict[str, str | bytes], x: np.ndarray, *, port: str | None = None) -> DeviceRun:
    """A project still in memory (as codegen renders it) built, flashed and measured on `x` in a
    temporary folder that is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="edgeq-device-") as tmp:
        project = Path(tmp)
        write_files(project, {name: c if isinstance(c, bytes) else c.encode() for name, c in files.items()})
        run = measure_run(profile, project, x, None, project / "measure.jsonl")
        return run_on_device(profile, project, run, port=port)
