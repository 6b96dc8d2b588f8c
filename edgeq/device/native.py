"""Measure a model on a phone or a Linux board with edgeq's native LiteRT harness: push the bundle and
the samples, run it (adb, ssh, or this machine), pull the outputs and its result, and check every
output against LiteRT with XNNPACK on this host, on the same samples.

Pure: `native_summary` turns what the harness wrote into the `measure` section of report.json (the
same figures as an MCU's: accuracy, per-output bit-exactness, plus the phone's own: init, first run,
the steady-state latency distribution, peak RSS, the per-op profile). At the edge, `measure_native`
drives a transport (edgeq.device.remote); an emulated Arm device gets its own sshd for the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from edgeq import console
from edgeq.codegen.litert import (
    HARNESS,
    TIMED_RUNS,
    WARMUP_RUNS,
    cpu_mask,
    emulated_cpuinfo,
    harness_arguments,
    harness_command,
)
from edgeq.codegen.sources import io_tensors, read_manifest, tensor_info
from edgeq.device.litert_lib import BIONIC, CROSS_LIBS, HOST_ABI, LIBRARY
from edgeq.device.measure import (
    FirmwareMismatch,
    Journal,
    Run,
    Sample,
    device_inputs,
    inputs_sha256,
    reference_outputs,
    sample_bytes,
    summarize,
)
from edgeq.device.remote import Transport, run_commands, run_tag, transport_for
from edgeq.device.sshd import local_ssh_server
from edgeq.errors import BadInput, ToolFailed
from edgeq.graph import read_graph
from edgeq.measure.benchmark_model import parse_benchmark_output, parse_op_profile
from edgeq.tools import run_tool

INPUTS, OUTPUTS, RESULT, PROFILE = "inputs.bin", "outputs.bin", "result.json", "profile.txt"
PROFILED_OUTPUTS, PROFILED_RESULT = "profiled-outputs.bin", "profiled-result.json"  # the profiled run's, not pulled
CPUINFO = "cpuinfo"  # an emulated device's, pushed with the samples (edgeq.codegen.litert.harness_command)
HARNESS_LOG = "harness.log"
# A float output agrees with the host when every element is within this share of the output's largest
# magnitude: XNNPACK's fp32 kernels differ between x86 and Arm by reassociation (4e-7 seen), fp16 by more.
FLOAT_TOLERANCE = {"float32": 1e-5, "float16": 5e-3}
EMULATED = "emulated: not the device's speed"


def _float_check(figures: dict, got: list[bytes], expected: list[bytes], dtype: str) -> None:
    """Adds the tolerance and whether every sample of a float output is within it."""
    tolerance = FLOAT_TOLERANCE.get(dtype)
    if tolerance is None:
        return
    scale = max((float(np.abs(np.frombuffer(e, dtype)).max()) for e in expected if e), default=0.0)
    limit = tolerance * max(scale, 1.0)
    figures["tolerance"] = limit
    figures["within_tolerance"] = figures["max_abs_diff"] is not None and figures["max_abs_diff"] <= limit


def native_summary(result: dict, outputs: bytes, reference: list[bytes], run: Run, tensors, *,
                   where: str, emulated: bool, op_profile: str | None = None, facts: dict | None = None,
                   bundle: dict | None = None) -> tuple[dict, list[Sample]]:
    """The `measure` section from the harness's result.json and outputs.bin, checked against `reference`
    (the host's LiteRT outputs per sample); and the samples, for the journal."""
    sha = hashlib.sha256(run.tflite).hexdigest()
    if result.get("model_sha256") != sha:
        raise FirmwareMismatch(f"the harness on {where} was built for the model with SHA-256 "
                               f"{str(result.get('model_sha256'))[:16]}..., not {run.model_name} ({sha[:16]}...)")
    per_sample = sum(t.nbytes for t in tensors)
    count = len(reference)
    if len(outputs) != per_sample * count or len(result.get("sample_ms", ())) != count:
        raise ToolFailed(f"the harness on {where} returned {len(outputs)} bytes of outputs for {count} samples of "
                         f"{per_sample} bytes: it stopped early (see {HARNESS_LOG})")
    samples = [Sample(i, round(ms * 1e6), outputs[i * per_sample:(i + 1) * per_sample], ms / 1e3)
               for i, ms in enumerate(result["sample_ms"])]
    summary = summarize(samples, reference, run.y, tensors, planned=count, runtime="litert", reference_name="litert",
                        macs=None, clock_hz=run.clock_hz, cycles_unit="ns", names=run.output_names,
                        label_output=run.label_output)
    offsets = np.cumsum([0, *(t.nbytes for t in tensors)])
    for k, (figures, tensor) in enumerate(zip(summary["outputs"], tensors)):
        part = slice(int(offsets[k]), int(offsets[k + 1]))
        _float_check(figures, [s.output[part] for s in samples], [r[part] for r in reference],
                     {"FLOAT32": "float32", "FLOAT16": "float16"}.get(tensor.dtype, ""))
    latency = result["latency_ms"]
    how = f"edgeq's native LiteRT harness on {where} (CLOCK_MONOTONIC around each run)"
    if emulated:
        how += f"; {EMULATED}"
    summary["time_ms_median"] = latency["median"]
    summary["native"] = {
        "where": where, "emulated": emulated, "init_ms": result["init_ms"], "first_ms": result["first_ms"],
        "latency_ms": latency, "warmup_runs": result["warmup_runs"], "runs": result["runs"],
        "threads": result["threads"], "peak_rss_bytes": result["peak_rss_bytes"],
        "rss_before_model_bytes": result["rss_before_model_bytes"], "cpu": result["cpu"],
        "litert_version": result["litert_version"], "facts": facts or {}, "bundle": bundle,
        "op_profile": [{"op": r.op, "count": r.count, "avg_ms": r.avg_ms, "share": r.share}
                       for r in parse_op_profile(op_profile)] if op_profile else None,
    }
    summary["sources"].update({key: {"kind": "measured", "by": how} for key in
                               ("time_ms_median", "init_ms", "first_ms", "latency_ms", "peak_rss_bytes")})
    return summary, samples


def _harness_failure(done, where: str) -> str:
    said = [line for line in (done.stderr or "").splitlines() if line.startswith("edgeq-harness:")]
    tail = said or (done.stderr or done.stdout or "").strip().splitlines()[-5:]
    return f"the LiteRT harness failed on {where} (exit code {done.returncode}): " + " / ".join(tail)


def _bundle_record(project: Path) -> dict:
    bundle_file = (project / read_manifest(project).elf).parent / "bundle.json"
    return json.loads(bundle_file.read_text()) if bundle_file.is_file() else {}


def bundle_files(project: Path, profile, *, built: bool = False) -> list[Path]:
    """What goes to the device: the harness, the model, libLiteRt.so and (aarch64, unless built with
    the NDK) the glibc it carries, in bundle/; with `built`, a BadInput unless make gathered them all."""
    manifest = read_manifest(project)
    bundle = (project / manifest.elf).parent
    own_libc = profile.litert.abi != HOST_ABI and _bundle_record(project).get("libc") != BIONIC
    names = [HARNESS, manifest.model, LIBRARY, *(CROSS_LIBS if own_libc else ())]
    files = [bundle / name for name in sorted(names)]
    missing = [f.name for f in files if not f.is_file()]
    if built and missing:
        raise BadInput(f"{bundle}: {', '.join(missing)} missing: the bundle is not built here; run edgeq build "
                       f"{project} first")
    return files


def device_commands(profile, project: Path, transport: Transport, *, per_layer: bool = False,
                    into: Path = Path("."), dry_run: bool = False) -> dict[str, list[list[str]]]:
    """Every command a measurement runs, in order: push the bundle and the samples, run the harness
    (and, for the per-op profile, once more with LiteRT's profiler, in a process of its own so that
    neither its overhead nor its buffers are in the timings and the peak RSS), pull what it wrote,
    clean up (what --dry-run prints)."""
    loader = _bundle_record(project).get("libc") != BIONIC
    emulated = [into / CPUINFO] if emulated_cpuinfo(profile) is not None else []
    runs = [harness_arguments(profile.litert.threads)]
    if per_layer:
        runs.append(harness_arguments(profile.litert.threads, warmup=1, profile_file=PROFILE)
                    + ["--outputs", PROFILED_OUTPUTS, "--result", PROFILED_RESULT])
    return {"push": transport.push(bundle_files(project, profile, built=not dry_run) + [into / INPUTS] + emulated),
            "facts": list(transport.facts().values()),
            "run": [transport.run(harness_command(profile, arguments, loader=loader)) for arguments in runs],
            "pull": transport.pull([OUTPUTS, RESULT] + ([PROFILE] if per_layer else []), into),
            "cleanup": [transport.cleanup()]}


def run_harness(profile, project: Path, xq: tuple[np.ndarray, ...], transport: Transport, *, per_layer: bool,
                into: Path) -> tuple[dict, bytes, str | None, dict]:
    """Push the bundle and the samples, run the harness, pull what it wrote into `into`, clean up."""
    (into / INPUTS).write_bytes(b"".join(sample_bytes(xq, i) for i in range(len(xq[0]))))
    cpuinfo = emulated_cpuinfo(profile)
    if cpuinfo is not None:
        (into / CPUINFO).write_text(cpuinfo)
    commands = device_commands(profile, project, transport, per_layer=per_layer, into=into)
    where = f"{profile.name} ({transport.name}{' ' + transport.address if transport.address else ''})"
    run_commands(transport, commands["push"], kind="flash")
    try:
        facts = {}
        for key, argv in transport.facts().items():
            done = run_tool(argv, transport.provides, kind="query", check=False)
            facts[key] = (done.stdout or "").strip() if done.returncode == 0 else None
        log = []
        for argv in commands["run"]:
            done = run_tool(argv, transport.provides, check=False)
            log.append((done.stdout or "") + (done.stderr or ""))
            (project / HARNESS_LOG).write_text("".join(log))
            if done.returncode != 0:
                raise ToolFailed(_harness_failure(done, where))
        run_commands(transport, commands["pull"], kind="flash")
    finally:
        run_tool(commands["cleanup"][0], transport.provides, kind="query", check=False)
    try:
        result = json.loads((into / RESULT).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolFailed(f"the harness on {where} wrote no readable {RESULT}: {exc}") from None
    profile_text = (into / PROFILE).read_text(errors="replace") if per_layer and (into / PROFILE).is_file() else None
    return result, (into / OUTPUTS).read_bytes(), profile_text, facts


@contextlib.contextmanager
def _reach(profile, address: str | None):
    """The address (and ssh_config) of the device: an emulated one gets an sshd of its own for the run."""
    if address is None and profile.is_emulated and profile.flash.method == "ssh":
        with local_ssh_server() as server:
            yield server.address, str(server.config)
    else:
        yield address, None


def measure_native(profile, project: Path, run: Run, address: str | None = None, *, per_layer: bool = True) -> dict:
    """The harness of `project` (built) run on `profile`'s device on `run.x`; the measure section, with
    LiteRT's per-op profile unless `per_layer` is False (its runs come after the timed ones)."""
    manifest = read_manifest(project)
    graph = read_graph(run.tflite, run.model_name)
    inputs = tuple(map(tensor_info, io_tensors(graph, "input")))
    outputs = tuple(map(tensor_info, io_tensors(graph, "output")))
    if len(run.x) == 0:
        raise BadInput("no samples to measure")
    xq = device_inputs(run.x, inputs)
    reference = reference_outputs(run.reference, run.tflite, xq)
    bundle = _bundle_record(project) or None
    with _reach(profile, address) as (reached, ssh_config), tempfile.TemporaryDirectory(prefix="edgeq-native-") as tmp:
        transport = transport_for(profile, reached, run_tag(manifest.model_sha256), ssh_config)
        with console.stage("device", f"{len(xq[0])} samples on {profile.name}, over {transport.name}"):
            result, raw, op_profile, facts = run_harness(profile, project, xq, transport, per_layer=per_layer,
                                                         into=Path(tmp))
    where = f"{profile.name} over {transport.name}"
    summary, samples = native_summary(result, raw, reference, run, outputs, where=where, emulated=profile.is_emulated,
                                      op_profile=op_profile, facts=facts, bundle=bundle)
    header = {"model_sha256": manifest.model_sha256, "inputs_sha256": inputs_sha256(xq),
              "samples_planned": len(samples), "runtime": "litert", "runtime_version": result["litert_version"],
              "device": where, "clock_hz": run.clock_hz, "cycles_unit": "ns"}
    journal = Journal(run.journal, header)
    try:
        for sample in samples:
            journal.add(sample)
    finally:
        journal.close()
    return summary


# LiteRT's own benchmark tool, for the delegates a glibc harness cannot load on Android (GPU, NPU):
# its documented flags (tensorflow/lite/tools/benchmark/README.md).
BENCHMARK_DELEGATE_FLAGS = {"gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"], "xnnpack": ["--use_xnnpack=true"]}


def benchmark_model_commands(profile, project: Path, tool: Path, transport: Transport, delegate: str,
                             *, runs: int = TIMED_RUNS, warmup: int = WARMUP_RUNS) -> dict:
    """Push LiteRT's benchmark_model and the model, run it with `delegate`, clean up."""
    if delegate not in BENCHMARK_DELEGATE_FLAGS:
        raise BadInput(f"delegate {delegate!r}: benchmark_model runs one of {', '.join(BENCHMARK_DELEGATE_FLAGS)}")
    manifest = read_manifest(project)
    argv = [f"./{tool.name}", f"--graph={manifest.model}", f"--num_threads={profile.litert.threads}",
            f"--warmup_runs={warmup}", f"--num_runs={runs}", "--enable_op_profiling=true",
            *BENCHMARK_DELEGATE_FLAGS[delegate]]
    if profile.litert.cpus:
        argv = ["taskset", cpu_mask(profile.litert.cpus), *argv]
    return {"push": transport.push([tool, project / manifest.model]), "run": [transport.run(argv)],
            "cleanup": [transport.cleanup()]}


def run_benchmark_model(profile, project: Path, tool: Path, address: str | None, delegate: str) -> dict:
    """benchmark_model on the device with `delegate`: its figures (edgeq.measure.benchmark_model), labelled."""
    manifest = read_manifest(project)
    transport = transport_for(profile, address, run_tag(manifest.model_sha256))
    commands = benchmark_model_commands(profile, project, tool, transport, delegate)
    run_commands(transport, commands["push"])
    try:
        done = run_tool(commands["run"][0], transport.provides, check=False)
    finally:
        run_tool(commands["cleanup"][0], transport.provides, kind="query", check=False)
    text = (done.stdout or "") + (done.stderr or "")
    (project / "benchmark_model.log").write_text(text)
    result = parse_benchmark_output(text)
    figures = dataclasses.asdict(result)
    figures["delegate_requested"] = delegate
    figures["source"] = {"kind": "measured",
                         "by": f"LiteRT's benchmark_model on {profile.name} over {transport.name}, with the "
                               f"{delegate} delegate; outputs not checked"}
    return figures
