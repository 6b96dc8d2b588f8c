"""`edgeq deploy`: every stage in order, from a model file to firmware and a report, then, on a
device edgeq can reach, build -> flash -> measure.

`deploy` returns what it produced (files as bytes, the report as a dict); the CLI writes them, so a
failed run leaves nothing half-written behind. `run_on_device` then builds the written firmware
project, flashes it, measures it over serial and returns the figures that `with_device_results`
adds to the report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edgeq
from edgeq import codegen, console
from edgeq.convert import MODES, convert
from edgeq.errors import BadInput, EdgeqError, ToolFailed
from edgeq.graph import Graph, read_graph
from edgeq.load import Dataset, Model, load_dataset, load_model, random_dataset
from edgeq.measure import Accuracy, ArenaUse, Latency, compare, litert_latency, run_litert, tflm_arena
from edgeq.plan import Plan, plan
from edgeq.report import (EDGEQ_C_CODE_BYTES_ESTIMATE, Fit, assess_fit, assess_fit_edgeq_c, fit_dict,
                          render_markdown, to_json)
from edgeq.tflm_ops import check_tflm_ops, model_op_names


@dataclass(frozen=True)
class Request:
    model: Path
    profile: object  # edgeq.profiles.Profile
    data: str | None = None  # calibration data spec
    val: str | None = None  # validation data spec
    mode: str | None = None
    runtime: str | None = None
    planner: object | None = None  # an edgeq.plan.PlanRequest: let the planner choose mode and runtime


@dataclass
class Deployment:
    report: dict
    fit: Fit
    files: dict[str, bytes] = field(default_factory=dict)
    tflite: bytes = b""
    validation: Dataset | None = None


def load_data(model: Model, data: str | None, val: str | None) -> tuple[Dataset, Dataset]:
    if data is not None:
        calibration = load_dataset(data, model.input)
    else:
        calibration = random_dataset(model.input)
        console.warn("no calibration data given (--data): calibrating on random uniform [0, 1) inputs. "
                     "Quantization ranges, and so accuracy, will be poor unless real inputs look like that.")
    if val is not None:
        validation = load_dataset(val, model.input)
    else:
        validation = calibration
        console.warn("no validation data given (--val): figures are measured on the calibration inputs, "
                     "without labels, so no accuracy can be claimed.")
    return calibration, validation


def check_runtime_ops(tflite: bytes, graph: Graph, runtime: str) -> None:
    """Fail before code generation when the runtime lacks one of the model's ops."""
    if runtime == "tflm":
        check_tflm_ops(model_op_names(tflite, graph), graph)
    elif runtime == "edgeq-c":
        from edgeq.aot import compile_model

        compile_model(tflite)  # raises BadInput naming the op, its index and its types


def edgeq_c_model(tflite: bytes, source: str):
    """edgeq-c's compilation of the model, for its arena figures beside TFLM's; None when edgeq-c
    lacks one of its ops or types."""
    from edgeq.aot import compile_model

    try:
        return compile_model(tflite, source=source)
    except BadInput:
        return None


def edgeq_c_fit(profile, compiled, graph: Graph) -> Fit:
    """Fit from the compiled model's footprint, measured with the profile's compiler when it is installed."""
    from edgeq.aot.footprint import measure_footprint

    toolchain = profile.toolchain
    if toolchain is not None and toolchain.compiler.endswith("gcc") and shutil.which(toolchain.compiler):
        size = toolchain.compiler[: -len("gcc")] + "size"
        with tempfile.TemporaryDirectory(prefix="edgeq-footprint-") as tmp:
            footprint = measure_footprint(compiled, Path(tmp), cc=toolchain.compiler, size=size,
                                          cflags=(*toolchain.cflags, toolchain.optimize))
        return assess_fit_edgeq_c(profile, footprint.flash_bytes, footprint.ram_bytes, measured=True)
    return assess_fit_edgeq_c(profile, graph.constant_bytes() + EDGEQ_C_CODE_BYTES_ESTIMATE,
                              compiled.arena_bytes, measured=False)


def firmware_arena(arena: ArenaUse | None) -> int | None:
    """The arena the TFLM firmware reserves: the smallest TFLM accepts, plus the codegen margin."""
    return codegen.arena_size_with_margin(arena.smallest_bytes) if arena else None


def build_report(req: Request, model: Model, graph: Graph, chosen: Plan, calibration: Dataset,
                 validation: Dataset, float_tflite: bytes, tflite: bytes, accuracy: Accuracy,
                 latency: Latency, arena: ArenaUse | None, fit: Fit, outputs: dict[str, str],
                 warnings: list[str], compiled=None) -> dict:
    p = req.profile
    drop = None
    if accuracy.float_accuracy is not None:
        drop = round(100 * (accuracy.float_accuracy - accuracy.quantized_accuracy), 4)
    return {
        "schema_version": 1,
        "edgeq_version": edgeq.__version__,
        "model": {
            "path": str(model.path), "name": model.name, "format": model.format, "sha256": model.sha256,
            "input": {"shape": list(model.input.shape), "dtype": model.input.dtype},
            "output": {"shape": list(model.output.shape), "dtype": model.output.dtype},
            "ops": graph.op_names,
        },
        "profile": {
            "name": p.name, "display_name": p.display_name, "kind": p.kind, "core": p.core,
            "clock_mhz": p.clock_mhz, "flash_bytes": p.memory.flash_bytes, "ram_bytes": p.memory.ram_bytes,
            "ram_for_model_bytes": p.ram_for_model_bytes,
        },
        "quantization": {
            "mode": chosen.mode, "description": MODES[chosen.mode], "runtime": chosen.runtime,
            "reason": chosen.reason,
            "calibration": {"source": calibration.source, "samples": len(calibration),
                            "synthetic": calibration.synthetic},
        },
        "size": {
            "float_tflite_bytes": len(float_tflite), "tflite_bytes": len(tflite),
            "ratio": round(len(tflite) / len(float_tflite), 4), "constant_bytes": graph.constant_bytes(),
        },
        "memory": {
            "tflm_arena_bytes": arena.total_bytes if arena else None,
            "tflm_arena_head_bytes": arena.head_bytes if arena else None,
            "tflm_arena_tail_bytes": arena.tail_bytes if arena else None,
            "tflm_arena_smallest_bytes": arena.smallest_bytes if arena else None,
            "firmware_arena_bytes": firmware_arena(arena),
            "edgeq_c_arena_bytes": compiled.arena_bytes if compiled else None,
            "edgeq_c_lower_bound_bytes": compiled.lower_bound_bytes if compiled else None,
            "flash_used_bytes": None,  # from the linked firmware, once it is built
            "ram_used_bytes": None,
        },
        "accuracy": {
            "data": validation.source, "samples": accuracy.samples, "labelled": accuracy.float_accuracy is not None,
            "float": accuracy.float_accuracy, "quantized": accuracy.quantized_accuracy, "drop_pp": drop,
            "agreement": accuracy.agreement, "sqnr_db": round(accuracy.sqnr_db, 3),
        },
        "latency": {
            "host_ms_median": round(latency.median_ms, 5), "host_ms_p95": round(latency.p95_ms, 5),
            "runs": latency.runs, "threads": latency.threads, "interpreter": "litert",
        },
        "fit": fit_dict(fit),
        "build": None,
        "measure": None,
        "device": None,
        "outputs": outputs,
        "warnings": warnings,
    }


def deploy(req: Request) -> Deployment:
    """Load, plan, convert, measure, generate. Raises EdgeqError subclasses on bad input."""
    profile = req.profile
    with console.stage("load", str(req.model)):
        model = load_model(req.model)
        calibration, validation = load_data(model, req.data, req.val)
    planned = None
    if req.planner is not None:
        from edgeq.plan import format_plan_table, run_plan

        with console.stage("plan", "measuring every candidate the device can run"):
            planned = run_plan(req.planner)
        console.info(format_plan_table(planned))
        chosen = planned.plan
    else:
        with console.stage("plan"):
            chosen = plan(profile, req.runtime, req.mode)
    for w in chosen.warnings:
        console.warn(w)
    console.info(f"  {'':9} {chosen.mode} on {chosen.runtime}: {chosen.reason}")
    with console.stage("convert", f"{chosen.mode} ({len(calibration)} calibration samples)"):
        float_tflite = convert(model, "fp32")
        if planned is not None:
            tflite = planned.chosen_tflite
        else:
            tflite = float_tflite if chosen.mode == "fp32" else convert(model, chosen.mode, calibration)
        graph = read_graph(tflite, f"{model.name}_{chosen.mode}.tflite")
        check_runtime_ops(tflite, graph, chosen.runtime)
    threads = profile.litert.threads if profile.litert is not None else 1
    with console.stage("measure", f"{len(validation)} samples, LiteRT on the host"):
        accuracy = compare(run_litert(float_tflite, validation, threads, "float"),
                           run_litert(tflite, validation, threads, chosen.mode), validation)
        latency = litert_latency(tflite, validation.x[0], threads)
        arena = tflm_arena(tflite) if profile.is_microcontroller or chosen.runtime == "tflm" else None
    compiled = None
    if chosen.runtime == "edgeq-c" or profile.is_microcontroller:
        compiled = edgeq_c_model(tflite, f"{model.name}_{chosen.mode}.tflite")
    if chosen.runtime == "edgeq-c" and compiled is not None:
        fit = edgeq_c_fit(profile, compiled, graph)
    else:
        fit = assess_fit(profile, len(tflite), firmware_arena(arena))

    stem = f"{model.name}_{chosen.mode}"
    files: dict[str, bytes] = {f"{model.name}_fp32.tflite": float_tflite, f"{stem}.tflite": tflite}
    outputs = {"tflite": f"{stem}.tflite", "float_tflite": f"{model.name}_fp32.tflite"}
    if fit.verdict == "fits":
        with console.stage("generate", f"{chosen.runtime} project"):
            if chosen.runtime == "edgeq-c" and compiled is not None:
                project = codegen.render_edgeq_c_project(profile, tflite, graph, stem, compiled)
            else:
                project = codegen.render_project(chosen.runtime, profile, tflite, graph,
                                                 arena.smallest_bytes if arena else None, stem)
        files.update({f"firmware/{chosen.runtime}/{path}": text.encode() if isinstance(text, str) else text
                      for path, text in project.items()})
        outputs["firmware"] = f"firmware/{chosen.runtime}"
    report = build_report(req, model, graph, chosen, calibration, validation, float_tflite, tflite, accuracy,
                          latency, arena, fit, outputs, console.take_warnings(), compiled)
    if planned is not None:
        files.update(planned.files())
        report["quantization"]["plan"] = {"candidate": planned.chosen.name, "file": "plan.json",
                                          "candidates": len(planned.candidates)}
        report["quantization"]["description"] = f"the planner's candidate {planned.chosen.name} (see plan.json)"
        outputs["plan"] = "plan.json"
    files["report.json"] = to_json(report).encode()
    files["report.md"] = render_markdown(report).encode()
    return Deployment(report=report, fit=fit, files=files, tflite=tflite, validation=validation)


# ---- on the device: build -> flash -> measure --------------------------------------------------------

EMULATED_METHODS = ("qemu", "host")


def device_unreachable(profile, runtime: str, port: str | None) -> str | None:
    """Why deploy cannot build, flash and measure on this device, or None when it can."""
    if runtime == "litert":
        return "the LiteRT harness runs under Python on the device (run_litert.py), not over edgeq's serial protocol"
    if runtime == "tflm" and not os.environ.get("TFLM_DIR"):
        return ("the TFLM firmware builds against a tflite-micro source tree: set TFLM_DIR to build, flash and "
                "measure it")
    if profile.flash.method not in EMULATED_METHODS and port is None:
        return f"{profile.name} is a real board: give its serial port with --port to build, flash and measure on it"
    return None


def cycles_unit(profile) -> str:
    """What the firmware's cycle count counts on this device: instructions under QEMU, ns on the host."""
    if profile.flash.method in EMULATED_METHODS:
        from edgeq.boards import board_params_for

        return board_params_for(profile).cycles_unit
    return "cycles"


@dataclass
class DeviceRun:
    build: object | None = None  # edgeq.build.BuildResult
    measure: dict | None = None
    error: EdgeqError | None = None  # a failure after the build: the figures so far are kept


def measure_run(profile, firmware_dir: Path, x: np.ndarray, y: np.ndarray | None, journal: Path, *,
                tflite: bytes | None = None, model_name: str | None = None, resume: bool = False,
                timeout: float | None = None):
    """The edgeq.measure_device.Run for a firmware project: its model (or `tflite`), the profile's clock."""
    from edgeq.build import read_manifest
    from edgeq.measure_device import DEFAULT_TIMEOUT_S, Run

    manifest = read_manifest(firmware_dir)
    if tflite is None:
        model_path = firmware_dir / manifest["model"]
        if not model_path.is_file():
            raise BadInput(f"{model_path}: missing; the firmware project should hold the model it was built from")
        tflite, model_name = model_path.read_bytes(), manifest["model"]
    compiled = edgeq_c_model(tflite, model_name or "model")
    return Run(tflite=tflite, model_name=model_name or "the model", x=x, y=y, journal=journal,
               clock_hz=profile.clock_hz, cycles_unit=cycles_unit(profile),
               macs=int(sum(compiled.macs)) if compiled else None, resume=resume,
               timeout=timeout or DEFAULT_TIMEOUT_S, hello_timeout=max(timeout or 0, DEFAULT_TIMEOUT_S))


def run_on_device(profile, firmware_dir: Path, run, *, port: str | None = None, flash_options=None) -> DeviceRun:
    """Builds the project, flashes it (real boards), starts it (QEMU, host) and measures it.

    A failed build raises (nothing was measured); a failure while measuring is returned in
    DeviceRun.error with the figures measured until then, so the report can keep them."""
    from edgeq.build import build
    from edgeq.connect import device_link
    from edgeq.flash import FlashOptions, Images, flash
    from edgeq.measure_device import measure

    with console.stage("build", f"make in {firmware_dir}"):
        built = build(firmware_dir, profile)
    result = DeviceRun(build=built)
    if profile.flash.method not in EMULATED_METHODS:
        with console.stage("flash", profile.flash.method):
            flash(profile, Images(elf=built.elf, bin=built.bin, hex=built.hex, image=built.elf),
                  flash_options or FlashOptions(port=port))
    where = {"qemu": "in QEMU", "host": "on this machine"}.get(profile.flash.method, f"on {port}")
    with console.stage("device", f"{len(run.x)} samples {where}, over serial"):
        try:
            with device_link(profile, built.elf, firmware_dir, port) as link:
                result.measure = measure(link, run)
        except ToolFailed as exc:
            result.measure, result.error = getattr(exc, "measured", None), exc
    return result


def with_device_results(report: dict, device: DeviceRun | None, skipped: str | None = None,
                        error: EdgeqError | None = None) -> dict:
    """The report with the build's flash/RAM and the on-device measurement added; `skipped` says why
    the device was not reached, `error` what stopped the loop."""
    report = dict(report)
    memory = dict(report["memory"])
    if device is not None and device.build is not None:
        report["build"] = device.build.to_dict()
        memory["flash_used_bytes"] = device.build.memory.flash_bytes
        memory["ram_used_bytes"] = device.build.memory.ram_bytes
    report["memory"] = memory
    if device is not None:
        report["measure"] = device.measure
    error = error or (device.error if device else None)
    status = "skipped" if skipped else ("failed" if error else "measured")
    report["device"] = {"status": status, "reason": skipped or (str(error) if error else None)}
    return report
