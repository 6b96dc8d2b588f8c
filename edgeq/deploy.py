"""`edgeq deploy`: every stage in order, from a model file to firmware measured on its device and a
report. The pipeline is here; the runtimes (edgeq.runtimes) decide what is specific to each.

`deploy` returns what it produced (files as bytes, the report as a typed Report); the CLI writes
them, so a failed run leaves nothing half-written behind. It loads the model and the data once,
converts the float model once, parses the graph once, lets each runtime of the profile prepare the
model once (edgeq-c compiles it, TFLM measures its arena), and hands the planner what it loaded.
On a device edgeq can reach, the firmware is built, flashed and measured in a temporary folder
(edgeq.device.loop), and the images and the measurement log come back among the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import edgeq
from edgeq import console
from edgeq.convert.converter import conversion_fidelity, convert_model
from edgeq.device.loop import DeviceRun, run_project
from edgeq.device.measure import JOURNAL
from edgeq.errors import BadInput, EdgeqError
from edgeq.graph import Graph, read_graph
from edgeq.litert_ops import host_ops
from edgeq.load import Dataset, Model, load_data, load_model
from edgeq.measure.fit import bundle_fit, linked_fit
from edgeq.measure.interpreters import accuracy_alone, compare, litert_latency, run_litert
from edgeq.modes import MODES
from edgeq.plan import PlanRequest, PlanResult, format_plan_table, run_plan
from edgeq.plan.candidates import Loaded
from edgeq.plan.rules import Plan, plan
from edgeq.report import Report, report_files
from edgeq.report.schema import (
    Accuracy,
    Build,
    Calibration,
    DeviceInfo,
    DeviceStatus,
    Latency,
    Memory,
    ModelInfo,
    OutputAccuracy,
    Quantization,
    Size,
    TensorDesc,
)
from edgeq.runtimes import Prepared, get_runtime, runnable, runtimes_of
from edgeq.sources import BUNDLE_FILES, FLATBUFFER, LINKED_IMAGE, LITERT_HOST, sources_dict


@dataclass(frozen=True)
class DeviceRequest:
    """The device leg: whether to run it, on which port, on how many samples, per layer or not, with
    estimated cycles or not."""

    run: bool = True  # False: generate only (--no-device)
    port: str | None = None  # a real board's serial port
    samples: int | None = None  # the first N validation samples (default: all)
    per_layer: bool = False  # also count each step (--profile)
    cycles: bool = False  # an emulated board: also estimate its core's cycles (--cycles)


@dataclass(frozen=True)
class Request:
    model: Path
    profile: object  # edgeq.profiles.Profile
    data: str | None = None  # calibration data spec
    val: str | None = None  # validation data spec
    mode: str | None = None
    runtime: str | None = None
    planner: PlanRequest | None = None  # let the planner choose mode and runtime
    device: DeviceRequest = field(default_factory=DeviceRequest)
    label_output: str | None = None  # the output the validation labels are for (several outputs)
    every_candidate: bool = False  # the planner's table with a row for every candidate (--all)


@dataclass
class Deployment:
    report: Report
    files: dict[str, bytes] = field(default_factory=dict)  # relative path in the output folder -> bytes
    failure: EdgeqError | None = None  # what stopped the device leg; the files and report are still whole
    plan: PlanResult | None = None


class Warnings:
    """The warnings of one deploy, shown as they arise and kept for the report, each once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, *messages: str) -> None:
        for message in messages:
            if message not in self.items:
                self.items.append(message)
                console.warn(message)


def runtime_that_runs(req: Request, chosen: Plan, prepared: dict[str, Prepared]) -> Plan:
    """`chosen`, or, when its runtime refuses the model and the user named no runtime, the profile's
    next runtime that runs it (and the mode), with the reason. With a runtime the user named, the
    error names what is refused and the runtimes that would run it."""
    refusal = prepared[chosen.runtime].refusal
    if refusal is None:
        return chosen
    others = []
    for runtime in runtimes_of(req.profile):
        if runtime.name == chosen.runtime or prepared[runtime.name].refusal is not None:
            continue
        try:
            warnings = runtime.check_mode(chosen.mode, req.profile)
        except BadInput:
            continue
        others.append((runtime.name, warnings))
    if req.runtime is not None or not others:
        where = (f"; {', '.join(r for r, _ in others)} on {req.profile.name} runs it: give --runtime "
                 f"{others[0][0]} or leave --runtime out" if others else
                 f"; no runtime of {req.profile.name} ({', '.join(req.profile.runtimes)}) runs it")
        raise BadInput(refusal + where)
    runtime, warnings = others[0]
    reason = f"{chosen.runtime} cannot run this model ({refusal.splitlines()[0]}); {runtime} runs every op of it"
    return Plan(runtime, chosen.mode, reason, chosen.warnings + warnings)


def _choose(req: Request, model: Model, loaded: Loaded) -> tuple[Plan, PlanResult | None]:
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
        planned = run_plan(dataclasses.replace(req.planner, loaded=loaded))
    console.info(format_plan_table(planned, req.every_candidate))
    return planned.plan, planned


def _tensor(spec) -> TensorDesc:
    desc = TensorDesc(spec.name, list(spec.shape), spec.dtype)
    if spec.source_shape is not None:
        desc = dataclasses.replace(desc, layout="NHWC" if len(spec.shape) == 3 else "NLC",
                                   source_shape=list(spec.source_shape), source_layout=spec.source_layout)
    return desc


def _model_info(model: Model, graph: Graph, fidelity: dict | None) -> ModelInfo:
    return ModelInfo(str(model.path), model.name, model.format, model.sha256, [_tensor(s) for s in model.inputs],
                     [_tensor(s) for s in model.outputs], graph.op_names, fidelity, list(model.folded))


def _device_info(p) -> DeviceInfo:
    return DeviceInfo(p.name, p.display_name, p.kind, p.core, p.clock_mhz, p.memory.flash_bytes, p.memory.ram_bytes,
                      p.ram_for_model_bytes, p.source)


def _db(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _accuracy(accuracy, validation: Dataset) -> Accuracy:
    drop = None
    if accuracy.float_accuracy is not None:
        drop = round(100 * (accuracy.float_accuracy - accuracy.quantized_accuracy), 4)
    on_validation = LITERT_HOST.how + f", on {accuracy.samples} samples of {validation.source}"
    outputs = [OutputAccuracy(o.name, _db(o.sqnr_db), o.agreement) for o in accuracy.outputs]
    return Accuracy(validation.source, accuracy.samples, accuracy.float_accuracy is not None,
                    accuracy.float_accuracy, accuracy.quantized_accuracy, drop, accuracy.agreement,
                    _db(accuracy.sqnr_db),
                    {key: {"kind": "measured", "by": on_validation}
                     for key in ("float", "quantized", "drop_pp", "agreement", "sqnr_db", "outputs")},
                    outputs, outputs[accuracy.label_output].name if outputs else None)


def _latency(latency) -> Latency:
    return Latency(round(latency.median_ms, 5), round(latency.p95_ms, 5), latency.runs, latency.threads, "litert",
                   {key: {"kind": "measured", "by": f"{LITERT_HOST.how}, {latency.runs} runs: this machine, "
                                                    "not the device"}
                    for key in ("host_ms_median", "host_ms_p95")})


def _memory(prepared: dict[str, Prepared]) -> Memory:
    figures, sources = {}, {}
    for name, p in prepared.items():
        for key, (value, source) in get_runtime(name).memory(p).items():
            figures[key], sources[key] = value, source.to_dict()
    return Memory(figures, sources=sources)


def _device_leg(req: Request, runtime, project: dict, validation: Dataset) -> tuple[DeviceRun | None, str | None,
                                                                                    EdgeqError | None]:
    """Build, flash and measure when the device can be reached: the run, why it was skipped, or what
    stopped it."""
    ask = req.device
    skipped = "--no-device was given" if not ask.run else runtime.unreachable(req.profile, ask.port)
    if skipped:
        console.info(f"  {'device':<9} skipped: {skipped}")
        return None, skipped, None
    x = validation.x
    y = validation.y if validation.has_class_labels and not validation.synthetic else None
    if ask.samples is not None:
        x, y = x[:ask.samples], (y[:ask.samples] if y is not None else None)
    try:
        device = run_project(req.profile, project, x, y, port=ask.port, per_layer=ask.per_layer,
                             label_output=validation.label_output, cycles=ask.cycles)
    except EdgeqError as exc:  # the build or the flash failed: nothing was measured
        return None, None, exc
    return device, None, device.error


def deploy(req: Request) -> Deployment:
    """Load, plan, convert, measure on the host, generate, and on a reachable device build, flash and
    measure. Raises EdgeqError subclasses on bad input; a failure on the device is in `failure`."""
    profile = req.profile
    notes = Warnings()
    with console.stage("load", str(req.model)):
        model = load_model(req.model)
        calibration, validation = load_data(model, req.data, req.val, req.label_output)
        notes.add(*calibration.warnings, *validation.warnings)
        # The reference every quantized candidate is measured against; none for a model that came quantized.
        float_tflite = None
        if not model.quantized:
            converted = convert_model(model, "fp32")
            float_tflite = converted.tflite
            notes.add(*converted.warnings)
        # An ONNX or .pt2 model went through PyTorch and litert-torch: how close it came out.
        fidelity = conversion_fidelity(model, float_tflite, validation) if float_tflite else None
        if fidelity and fidelity.get("warning"):
            notes.add(fidelity["warning"])
        # An op no runtime of the profile has (a custom op, state) is named now, before anything is
        # quantized; one the user's runtime lacks is named later, with the runtime that has it.
        runnable(profile, float_tflite or model.tflite, str(req.model))
    chosen, planned = _choose(req, model, Loaded(model, calibration, validation, float_tflite or model.tflite))
    if planned is not None:
        notes.add(*planned.warnings)
    notes.add(*chosen.warnings)
    console.info(f"  {'':9} {chosen.mode} on {chosen.runtime}: {chosen.reason}")
    stem = f"{model.name}_{chosen.mode}"
    what = "as it came" if model.quantized else f"{chosen.mode} ({len(calibration)} calibration samples)"
    with console.stage("convert", what):
        if model.quantized:
            tflite = model.tflite
        elif planned is not None:
            tflite = planned.chosen_tflite
        elif chosen.mode == "fp32":
            tflite = float_tflite
        else:
            converted = convert_model(model, chosen.mode, calibration)
            tflite = converted.tflite
            notes.add(*converted.warnings)
        graph = read_graph(tflite, f"{stem}.tflite")
        prepared = {r.name: r.prepare(profile, tflite, graph, f"{stem}.tflite") for r in runtimes_of(profile)}
    fallback = runtime_that_runs(req, chosen, prepared)
    if fallback is not chosen:
        notes.add(f"runtime {fallback.runtime}: {fallback.reason}")
        chosen = fallback
    runtime = get_runtime(chosen.runtime)
    notes.add(*prepared[runtime.name].warnings)
    for name, p in prepared.items():
        if p.refusal and name != runtime.name and profile.is_microcontroller:
            notes.add(f"no {get_runtime(name).label} figures to compare {runtime.label}'s with: "
                      f"{p.refusal.splitlines()[0]}")

    threads = profile.litert.threads if profile.litert is not None else 1
    not_measured = host_ops(tflite, graph).unmeasured(profile.litert.custom_ops if profile.litert else ())
    accuracy = latency = None
    if not_measured:
        console.info(f"  {'measure':<9} skipped: {not_measured}")
        notes.add(f"accuracy and latency not measured: {not_measured}")
    else:
        with console.stage("measure", f"{len(validation)} samples, LiteRT on the host"):
            quantized_outputs = run_litert(tflite, validation, threads, chosen.mode)
            accuracy = (accuracy_alone(quantized_outputs, validation) if float_tflite is None else
                        compare(run_litert(float_tflite, validation, threads, "float"), quantized_outputs, validation))
            latency = litert_latency(tflite, validation.x[0], threads)
    fit = runtime.fit(profile, prepared[runtime.name], tflite)

    files: dict[str, bytes] = {f"{stem}.tflite": tflite}
    outputs = {"tflite": f"{stem}.tflite"}
    if float_tflite is not None:
        files[f"{model.name}_fp32.tflite"] = float_tflite
        outputs["float_tflite"] = f"{model.name}_fp32.tflite"
    device, skipped, failure, build = None, None, None, None
    memory = _memory(prepared)
    if fit.verdict == "fits":
        with console.stage("generate", f"{runtime.name} project"):
            project = runtime.generate(profile, tflite, graph, stem, prepared[runtime.name])
        firmware = f"firmware/{runtime.name}"
        files.update({f"{firmware}/{path}": text.encode() if isinstance(text, str) else text
                      for path, text in project.items()})
        outputs["firmware"] = firmware
        device, skipped, failure = _device_leg(req, runtime, project, validation)
        if device is not None:
            for name, data in device.artifacts.items():
                files[name if name == JOURNAL else f"{firmware}/{name}"] = data
            if device.measure is not None:
                outputs["measure_log"] = JOURNAL
            native = (device.measure or {}).get("native")
            if device.build is not None and device.build.bundle is not None:
                memory.flash_used_bytes = device.build.bundle["bytes"]
                memory.sources["flash_used_bytes"] = BUNDLE_FILES.to_dict()
                if native is not None:
                    fit = bundle_fit(profile, device.build.bundle["bytes"], native["peak_rss_bytes"], native["where"])
                    memory.ram_used_bytes = native["peak_rss_bytes"]
                    memory.sources["ram_used_bytes"] = fit.ram.source.to_dict()
            elif device.build is not None:
                used = device.build.memory
                build = Build(**device.build.to_dict(shown_as=firmware))
                memory.flash_used_bytes, memory.ram_used_bytes = used.flash_bytes, used.ram_bytes
                memory.sources.update(flash_used_bytes=LINKED_IMAGE.to_dict(), ram_used_bytes=LINKED_IMAGE.to_dict())
                fit = linked_fit(profile, used.flash_bytes, used.ram_bytes)
    status = None
    if "firmware" in outputs:
        status = DeviceStatus("skipped" if skipped else "failed" if failure else "measured",
                              skipped or (str(failure) if failure else None))

    quantization = Quantization(
        chosen.mode, MODES[chosen.mode].description, chosen.runtime, chosen.reason, model.quantized is not None,
        Calibration(calibration.source, len(calibration), calibration.synthetic))
    if planned is not None:
        files.update(planned.files())
        quantization.plan = {"candidate": planned.chosen.name, "file": "plan.json", "candidates": len(planned.candidates)}
        quantization.description = f"the planner's candidate {planned.chosen.name} (see plan.json)"
        outputs["plan"] = "plan.json"
    size = Size(len(float_tflite) if float_tflite else None, len(tflite),
                round(len(tflite) / len(float_tflite), 4) if float_tflite else None, graph.constant_bytes(),
                sources_dict({"float_tflite_bytes": FLATBUFFER if float_tflite else None, "tflite_bytes": FLATBUFFER,
                              "constant_bytes": FLATBUFFER}))
    report = Report(model=_model_info(model, graph, fidelity), profile=_device_info(profile),
                    quantization=quantization, size=size, memory=memory,
                    accuracy=_accuracy(accuracy, validation) if accuracy else None,
                    latency=_latency(latency) if latency else None, fit=fit, build=build,
                    measure=device.measure if device is not None else None, device=status, outputs=outputs,
                    warnings=notes.items, edgeq_version=edgeq.__version__, not_measured=not_measured)
    files.update(report_files(report, planned.to_dict() if planned is not None else None))
    return Deployment(report=report, files=files, failure=failure, plan=planned)
