"""`edgeq deploy`: every stage in order, from a model file to firmware and a report.

It returns what it produced (files as bytes, the report as a dict); the CLI writes them, so a
failed run leaves nothing half-written behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import edgeq
from edgeq import codegen, console
from edgeq.convert import MODES, convert
from edgeq.errors import BadInput
from edgeq.graph import Graph, read_graph
from edgeq.load import Dataset, Model, load_dataset, load_model, random_dataset
from edgeq.measure import Accuracy, ArenaUse, Latency, compare, litert_latency, run_litert, tflm_arena
from edgeq.plan import Plan, plan
from edgeq.report import Fit, assess_fit, fit_dict, render_markdown, to_json
from edgeq.tflm_ops import check_tflm_ops, model_op_names


@dataclass(frozen=True)
class Request:
    model: Path
    profile: object  # edgeq.profiles.Profile
    data: str | None = None  # calibration data spec
    val: str | None = None  # validation data spec
    mode: str | None = None
    runtime: str | None = None


@dataclass
class Deployment:
    report: dict
    fit: Fit
    files: dict[str, bytes] = field(default_factory=dict)


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


def firmware_arena(arena: ArenaUse | None) -> int | None:
    """The arena the TFLM firmware reserves: the smallest TFLM accepts, plus the codegen margin."""
    return codegen.arena_size_with_margin(arena.smallest_bytes) if arena else None


def build_report(req: Request, model: Model, graph: Graph, chosen: Plan, calibration: Dataset,
                 validation: Dataset, float_tflite: bytes, tflite: bytes, accuracy: Accuracy,
                 latency: Latency, arena: ArenaUse | None, fit: Fit, outputs: dict[str, str],
                 warnings: list[str]) -> dict:
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
        "outputs": outputs,
        "warnings": warnings,
    }


def deploy(req: Request) -> Deployment:
    """Load, plan, convert, measure, generate. Raises EdgeqError subclasses on bad input."""
    profile = req.profile
    with console.stage("load", str(req.model)):
        model = load_model(req.model)
        calibration, validation = load_data(model, req.data, req.val)
    with console.stage("plan"):
        chosen = plan(profile, req.runtime, req.mode)
        for w in chosen.warnings:
            console.warn(w)
    console.info(f"  {'':9} {chosen.mode} on {chosen.runtime}: {chosen.reason}")
    with console.stage("convert", f"{chosen.mode} ({len(calibration)} calibration samples)"):
        float_tflite = convert(model, "fp32")
        tflite = float_tflite if chosen.mode == "fp32" else convert(model, chosen.mode, calibration)
        graph = read_graph(tflite, f"{model.name}_{chosen.mode}.tflite")
        check_runtime_ops(tflite, graph, chosen.runtime)
    threads = profile.litert.threads if profile.litert is not None else 1
    with console.stage("measure", f"{len(validation)} samples, LiteRT on the host"):
        accuracy = compare(run_litert(float_tflite, validation, threads, "float"),
                           run_litert(tflite, validation, threads, chosen.mode), validation)
        latency = litert_latency(tflite, validation.x[0], threads)
        arena = tflm_arena(tflite) if profile.is_microcontroller or chosen.runtime == "tflm" else None
    fit = assess_fit(profile, len(tflite), firmware_arena(arena))

    stem = f"{model.name}_{chosen.mode}"
    files: dict[str, bytes] = {f"{model.name}_fp32.tflite": float_tflite, f"{stem}.tflite": tflite}
    outputs = {"tflite": f"{stem}.tflite", "float_tflite": f"{model.name}_fp32.tflite"}
    if fit.verdict == "fits":
        with console.stage("generate", f"{chosen.runtime} project"):
            project = codegen.render_project(chosen.runtime, profile, tflite, graph,
                                             arena.smallest_bytes if arena else None, stem)
        files.update({f"firmware/{chosen.runtime}/{path}": text.encode() if isinstance(text, str) else text
                      for path, text in project.items()})
        outputs["firmware"] = f"firmware/{chosen.runtime}"
    report = build_report(req, model, graph, chosen, calibration, validation, float_tflite, tflite, accuracy,
                          latency, arena, fit, outputs, console.take_warnings())
    files["report.json"] = to_json(report).encode()
    files["report.md"] = render_markdown(report).encode()
    return Deployment(report=report, fit=fit, files=files)
