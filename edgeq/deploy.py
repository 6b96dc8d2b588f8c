"""`edgeq deploy`: every stage in order, from a model file to firmware and a report, then, on a
device edgeq can reach, build -> flash -> measure (edgeq.device.loop).

`deploy` returns what it produced (files as bytes, the report as a dict); the CLI writes them, so
a failed run leaves nothing half-written behind. It loads the model and the data once, converts
the float model once, parses the graph once and compiles the model with edgeq-c once, and hands
the planner what it loaded. `with_device_results` adds what the device loop measured, and the fit
verdict from the linked image, to the report.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import edgeq
from edgeq import console
from edgeq.aot import CompiledModel
from edgeq.aot.footprint import measure_footprint
from edgeq.codegen import project as codegen
from edgeq.codegen.tflm import arena_size_with_margin
from edgeq.codegen.tflm_ops import check_tflm_ops, model_op_names
from edgeq.convert.converter import MODES, conversion_fidelity, convert
from edgeq.device.loop import DeviceRun
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import Graph, read_graph
from edgeq.load import Dataset, Model, load_data, load_model
from edgeq.measure.fit import Fit, edgeq_c_fit, linked_fit, litert_fit, tflm_fit
from edgeq.measure.interpreters import (
    Accuracy,
    ArenaUse,
    Latency,
    accuracy_alone,
    compare,
    litert_latency,
    run_litert,
    tflm_arena,
)
from edgeq.plan.candidates import PlanRequest, Prepared
from edgeq.plan.rules import Plan, check_mode, plan
from edgeq.plan.search import run_plan
from edgeq.plan.table import format_plan_table
from edgeq.report import SCHEMA_VERSION, report_files
from edgeq.report.arena import edgeq_c_plan
from edgeq.sources import (
    EDGEQ_C_CONSTANTS,
    EDGEQ_C_MEMORY_PLAN,
    FLATBUFFER,
    LINKED_IMAGE,
    LITERT_HOST,
    TFLM_ALLOCATE_TENSORS,
    TFLM_FIRMWARE_ARENA,
    TFLM_RECORDING_ALLOCATOR,
    sources_dict,
)
from edgeq.tflm_limits import tflm_aborts


@dataclass(frozen=True)
class Request:
    model: Path
    profile: object  # edgeq.profiles.Profile
    data: str | None = None  # calibration data spec
    val: str | None = None  # validation data spec
    mode: str | None = None
    runtime: str | None = None
    planner: PlanRequest | None = None  # let the planner choose mode and runtime


@dataclass
class Deployment:
    report: dict
    fit: Fit
    files: dict[str, bytes] = field(default_factory=dict)
    tflite: bytes = b""
    validation: Dataset | None = None
    compiled: CompiledModel | None = None  # edgeq-c's, for the device's instructions per MAC and kernel names


def runtime_refusal(tflite: bytes, graph: Graph, runtime: str, edgeq_c_refusal: str | None) -> str | None:
    """Why `runtime` cannot run the model (an op or a type it lacks, or an abort TFLM would hit),
    or None when it can. LiteRT runs every builtin op."""
    if runtime == "edgeq-c":
        return edgeq_c_refusal
    if runtime == "tflm":
        try:
            check_tflm_ops(model_op_names(tflite, graph), graph)
        except BadInput as exc:
            return str(exc)
        aborts = tflm_aborts(graph)
        return "TensorFlow Lite Micro cannot run this model: " + "; ".join(aborts) if aborts else None
    return None


def check_runtime_ops(tflite: bytes, graph: Graph, runtime: str, edgeq_c_refusal: str | None) -> None:
    """Fail before code generation when the runtime lacks one of the model's ops."""
    refusal = runtime_refusal(tflite, graph, runtime, edgeq_c_refusal)
    if refusal is not None:
        raise BadInput(refusal)


def runtime_that_runs(req: Request, chosen: Plan, tflite: bytes, graph: Graph, edgeq_c_refusal: str | None) -> Plan:
    """`chosen`, or, when its runtime lacks one of the model's ops and the user named no runtime,
    the profile's next runtime that runs them all (and the mode), with the reason. With a runtime
    the user named, the error names the op and the runtimes that have it."""
    refusal = runtime_refusal(tflite, graph, chosen.runtime, edgeq_c_refusal)
    if refusal is None:
        return chosen
    others = []
    for runtime in req.profile.runtimes:
        if runtime == chosen.runtime or runtime_refusal(tflite, graph, runtime, edgeq_c_refusal) is not None:
            continue
        try:
            warnings = check_mode(chosen.mode, runtime, req.profile)
        except BadInput:
            continue
        others.append((runtime, warnings))
    if req.runtime is not None or not others:
        where = (f"; {', '.join(r for r, _ in others)} on {req.profile.name} runs it: give --runtime "
                 f"{others[0][0]} or leave --runtime out" if others else
                 f"; no runtime of {req.profile.name} ({', '.join(req.profile.runtimes)}) runs it")
        raise BadInput(refusal + where)
    runtime, warnings = others[0]
    reason = f"{chosen.runtime} cannot run this model ({refusal.splitlines()[0]}); {runtime} runs every op of it"
    return Plan(runtime, chosen.mode, reason, chosen.warnings + warnings)


def compiled_footprint(profile, compiled: CompiledModel) -> tuple[int | None, int | None]:
    """edgeq-c's flash and RAM, compiled and sized with the profile's cross compiler when it is
    installed; (None, None) when it is not."""
    toolchain = profile.toolchain
    if toolchain is None or not toolchain.compiler.endswith("gcc") or not shutil.which(toolchain.compiler):
        return None, None
    with tempfile.TemporaryDirectory(prefix="edgeq-footprint-") as tmp:
        footprint = measure_footprint(compiled, Path(tmp), cc=toolchain.compiler, size=toolchain.tool("size"),
                                      cflags=(*toolchain.cflags, toolchain.optimize))
    return footprint.flash_bytes, footprint.ram_bytes


def firmware_arena(arena: ArenaUse | None) -> int | None:
    """The arena the TFLM firmware reserves: the smallest TFLM accepts, plus the codegen margin."""
    return arena_size_with_margin(arena.smallest_bytes) if arena else None


def assess(profile, runtime: str, graph: Graph, tflite: bytes, arena: ArenaUse | None,
           compiled: CompiledModel | None) -> Fit:
    """The fit before anything is linked, for the runtime that will run the model."""
    if runtime == "edgeq-c" and compiled is not None:
        flash, ram = compiled_footprint(profile, compiled)
        return edgeq_c_fit(profile, flash, ram, compiled.const_bytes, compiled.arena_bytes)
    if runtime == "litert":
        return litert_fit(profile, len(tflite))
    return tflm_fit(profile, len(tflite), firmware_arena(arena))


def build_report(req: Request, model: Model, graph: Graph, chosen: Plan, calibration: Dataset,
                 validation: Dataset, float_tflite: bytes | None, tflite: bytes, accuracy: Accuracy,
                 latency: Latency, arena: ArenaUse | None, fit: Fit, outputs: dict[str, str],
                 warnings: list[str], compiled: CompiledModel | None = None) -> dict:
    p = req.profile
    drop = None
    if accuracy.float_accuracy is not None:
        drop = round(100 * (accuracy.float_accuracy - accuracy.quantized_accuracy), 4)
    on_validation = LITERT_HOST.how + f", on {accuracy.samples} samples of {validation.source}"
    return {
        "schema_version": SCHEMA_VERSION,
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
            "ram_for_model_bytes": p.ram_for_model_bytes, "source": p.source,
        },
        "quantization": {
            "mode": chosen.mode, "description": MODES[chosen.mode], "runtime": chosen.runtime,
            "reason": chosen.reason, "came_quantized": model.quantized is not None,
            "calibration": {"source": calibration.source, "samples": len(calibration),
                            "synthetic": calibration.synthetic},
        },
        "size": {
            "float_tflite_bytes": len(float_tflite) if float_tflite else None, "tflite_bytes": len(tflite),
            "ratio": round(len(tflite) / len(float_tflite), 4) if float_tflite else None,
            "constant_bytes": graph.constant_bytes(),
            "sources": sources_dict({"float_tflite_bytes": FLATBUFFER if float_tflite else None,
                                     "tflite_bytes": FLATBUFFER, "constant_bytes": FLATBUFFER}),
        },
        "memory": {
            "tflm_arena_bytes": arena.total_bytes if arena else None,
            "tflm_arena_head_bytes": arena.head_bytes if arena else None,
            "tflm_arena_tail_bytes": arena.tail_bytes if arena else None,
            "tflm_arena_smallest_bytes": arena.smallest_bytes if arena else None,
            "firmware_arena_bytes": firmware_arena(arena),
            "edgeq_c_arena_bytes": compiled.arena_bytes if compiled else None,
            "edgeq_c_lower_bound_bytes": compiled.lower_bound_bytes if compiled else None,
            "edgeq_c_constant_bytes": compiled.const_bytes if compiled else None,  # widened on DSP cores
            "edgeq_c_plan": edgeq_c_plan(compiled, graph),  # for report.html's arena over time
            "flash_used_bytes": None,  # from the linked firmware, once it is built
            "ram_used_bytes": None,
            "sources": sources_dict({
                "tflm_arena_bytes": TFLM_RECORDING_ALLOCATOR if arena else None,
                "tflm_arena_head_bytes": TFLM_RECORDING_ALLOCATOR if arena else None,
                "tflm_arena_tail_bytes": TFLM_RECORDING_ALLOCATOR if arena else None,
                "tflm_arena_smallest_bytes": TFLM_ALLOCATE_TENSORS if arena else None,
                "firmware_arena_bytes": TFLM_FIRMWARE_ARENA if arena else None,
                "edgeq_c_arena_bytes": EDGEQ_C_MEMORY_PLAN if compiled else None,
                "edgeq_c_lower_bound_bytes": EDGEQ_C_MEMORY_PLAN if compiled else None,
                "edgeq_c_constant_bytes": EDGEQ_C_CONSTANTS if compiled else None,
                "edgeq_c_plan": EDGEQ_C_MEMORY_PLAN if compiled else None,
            }),
        },
        "accuracy": {
            "data": validation.source, "samples": accuracy.samples, "labelled": accuracy.float_accuracy is not None,
            "float": accuracy.float_accuracy, "quantized": accuracy.quantized_accuracy, "drop_pp": drop,
            "agreement": accuracy.agreement,
            "sqnr_db": None if accuracy.sqnr_db is None else round(accuracy.sqnr_db, 3),
            "sources": {key: {"kind": "measured", "by": on_validation}
                        for key in ("float", "quantized", "drop_pp", "agreement", "sqnr_db")},
        },
        "latency": {
            "host_ms_median": round(latency.median_ms, 5), "host_ms_p95": round(latency.p95_ms, 5),
            "runs": latency.runs, "threads": latency.threads, "interpreter": "litert",
            "sources": {key: {"kind": "measured", "by": f"{LITERT_HOST.how}, {latency.runs} runs: this machine, "
                                                         "not the device"}
                        for key in ("host_ms_median", "host_ms_p95")},
        },
        "fit": fit.to_dict(),
        "build": None,
        "measure": None,
        "device": None,
        "outputs": outputs,
        "warnings": warnings,
    }


def _tflm_arena_or_none(tflite: bytes, runtime: str) -> ArenaUse | None:
    """TFLM's arena, for the firmware (runtime tflm) or for comparison (edgeq-c); without it for
    comparison when TFLM cannot run the model, with a warning."""
    try:
        return tflm_arena(tflite)
    except BadInput as exc:
        if runtime == "tflm":
            raise
        console.warn(f"no TFLM arena to compare edgeq-c's with: {exc}")
        return None


def _choose(req: Request, model: Model, prepared: Prepared):
    """The plan, from the planner (measured) or the quick rules; and the planner's result, if it ran."""
    if model.quantized and req.mode not in (None, model.quantized):
        raise BadInput(f"{model.path} came quantized as {model.quantized}; edgeq deploys such a model as it is, without "
                       f"quantizing it again: leave --quant out (or give --quant {model.quantized}), or give the "
                       "float model to quantize it as " + req.mode)
    if req.planner is None:
        with console.stage("plan"):
            chosen = plan(req.profile, req.runtime, model.quantized or req.mode)
        if model.quantized:
            chosen = dataclasses.replace(chosen, reason=f"the model came quantized ({model.quantized}): deployed as "
                                                        "it is, not quantized again")
        return chosen, None
    with console.stage("plan", "measuring every candidate the device can run"):
        planned = run_plan(dataclasses.replace(req.planner, prepared=prepared))
    console.info(format_plan_table(planned))
    return planned.plan, planned


def deploy(req: Request) -> Deployment:
    """Load, plan, convert, measure, generate. Raises EdgeqError subclasses on bad input."""
    profile = req.profile
    with console.stage("load", str(req.model)):
        model = load_model(req.model)
        calibration, validation = load_data(model, req.data, req.val)
        # The reference every quantized candidate is measured against; none for a model that came quantized.
        float_tflite = None if model.quantized else convert(model, "fp32")
        # An ONNX or .pt2 model went through PyTorch and litert-torch: how close it came out.
        fidelity = conversion_fidelity(model, float_tflite, validation) if float_tflite else None
    chosen, planned = _choose(req, model, Prepared(model, calibration, validation, float_tflite or model.tflite))
    for w in chosen.warnings:
        console.warn(w)
    console.info(f"  {'':9} {chosen.mode} on {chosen.runtime}: {chosen.reason}")
    stem = f"{model.name}_{chosen.mode}"
    what = "as it came" if model.quantized else f"{chosen.mode} ({len(calibration)} calibration samples)"
    with console.stage("convert", what):
        if model.quantized:
            tflite = model.tflite
        elif planned is not None:
            tflite = planned.chosen_tflite
        else:
            tflite = float_tflite if chosen.mode == "fp32" else convert(model, chosen.mode, calibration)
        graph = read_graph(tflite, f"{stem}.tflite")
        compiled, refusal = (codegen.compile_for(profile, tflite, f"{stem}.tflite", graph)
                             if chosen.runtime == "edgeq-c" or profile.is_microcontroller else (None, None))
        fallback = runtime_that_runs(req, chosen, tflite, graph, refusal)
        if compiled is not None and profile.has_dsp and not compiled.dsp:
            console.warn(f"edgeq-c: the DSP kernels' widened weights would not fit {profile.name}'s flash; "
                         f"the int8 kernels ({compiled.const_bytes:,} bytes of constants) run instead, slower")
    if fallback is not chosen:
        console.warn(f"runtime {fallback.runtime}: {fallback.reason}")
        chosen = fallback
    threads = profile.litert.threads if profile.litert is not None else 1
    with console.stage("measure", f"{len(validation)} samples, LiteRT on the host"):
        quantized_outputs = run_litert(tflite, validation, threads, chosen.mode)
        accuracy = (accuracy_alone(quantized_outputs, validation) if float_tflite is None else
                    compare(run_litert(float_tflite, validation, threads, "float"), quantized_outputs, validation))
        latency = litert_latency(tflite, validation.x[0], threads)
        arena = _tflm_arena_or_none(tflite, chosen.runtime) if profile.is_microcontroller or chosen.runtime == "tflm" \
            else None
    fit = assess(profile, chosen.runtime, graph, tflite, arena, compiled)

    files: dict[str, bytes] = {f"{stem}.tflite": tflite}
    outputs = {"tflite": f"{stem}.tflite"}
    if float_tflite is not None:
        files[f"{model.name}_fp32.tflite"] = float_tflite
        outputs["float_tflite"] = f"{model.name}_fp32.tflite"
    if fit.verdict == "fits":
        with console.stage("generate", f"{chosen.runtime} project"):
            if chosen.runtime == "edgeq-c":
                project = codegen.render_edgeq_c_project(profile, tflite, graph, stem, compiled)
            else:
                project = codegen.render_project(chosen.runtime, profile, tflite, graph,
                                                 arena.smallest_bytes if arena else None, stem)
        files.update({f"firmware/{chosen.runtime}/{path}": text.encode() if isinstance(text, str) else text
                      for path, text in project.items()})
        outputs["firmware"] = f"firmware/{chosen.runtime}"
    report = build_report(req, model, graph, chosen, calibration, validation, float_tflite, tflite, accuracy,
                          latency, arena, fit, outputs, console.take_warnings(), compiled)
    if fidelity is not None:
        report["model"]["conversion_fidelity"] = fidelity
    if model.input.source_shape is not None:
        report["model"]["input"].update(layout="NHWC" if len(model.input.shape) == 3 else "NLC",
                                        source_shape=list(model.input.source_shape),
                                        source_layout=model.input.source_layout)
    if planned is not None:
        files.update(planned.files())
        report["quantization"]["plan"] = {"candidate": planned.chosen.name, "file": "plan.json",
                                          "candidates": len(planned.candidates)}
        report["quantization"]["description"] = f"the planner's candidate {planned.chosen.name} (see plan.json)"
        outputs["plan"] = "plan.json"
    files.update(report_files(report, planned.to_dict() if planned is not None else None))
    return Deployment(report=report, fit=fit, files=files, tflite=tflite, validation=validation,
                      compiled=compiled)


def with_device_results(report: dict, profile, device: DeviceRun | None, skipped: str | None = None,
                        error: EdgeqError | None = None) -> dict:
    """The report with the build's flash/RAM, the fit verdict from the linked image and the
    on-device measurement added; `skipped` says why the device was not reached, `error` what
    stopped the loop."""
    report = dict(report)
    memory = dict(report["memory"])
    if device is not None and device.build is not None:
        used = device.build.memory
        report["build"] = device.build.to_dict()
        memory["flash_used_bytes"], memory["ram_used_bytes"] = used.flash_bytes, used.ram_bytes
        memory["sources"] = dict(memory.get("sources") or {}, flash_used_bytes=LINKED_IMAGE.to_dict(),
                                 ram_used_bytes=LINKED_IMAGE.to_dict())
        report["fit"] = linked_fit(profile, used.flash_bytes, used.ram_bytes).to_dict()
    report["memory"] = memory
    if device is not None:
        report["measure"] = device.measure
    error = error or (device.error if device else None)
    status = "skipped" if skipped else ("failed" if error else "measured")
    report["device"] = {"status": status, "reason": skipped or (str(error) if error else None)}
    return report
