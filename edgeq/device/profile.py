"""Per-layer profile on the device: the count of each step of an inference, from firmware built with
EQ_PROFILE (`make PROFILE=1`), set beside what each step computes.

A step is what the firmware counts: one kernel call of edgeq-c's generated invoke (a fused
CONV_2D+ADD is one step; a RESHAPE edgeq-c aliases is none), one operator's Invoke in TFLM. Each
count runs from the end of the step before, so the counts add up to the whole invoke
(docs/device-loop.md, "Per-layer profile"). What each step computes the firmware's manifest says,
written when the project was generated: nothing is compiled again here.

Pure: `profile_section` (the table from the counts). At the edge: `measure_profile` drives a Link.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq import console
from edgeq.codegen.sources import Step, read_manifest
from edgeq.console import progress
from edgeq.device.build import build, profiled_name
from edgeq.device.connect import device_link
from edgeq.device.flash import FlashOptions, Images, flash
from edgeq.device.link import Link
from edgeq.device.measure import Run, check_firmware, counter_text, device_inputs, reference_outputs, sample_bytes
from edgeq.errors import BadInput
from edgeq.protocol import ProtocolError
from edgeq.runtimes import EMULATED_METHODS, get_runtime
from edgeq.sources import measured


def profile_section(rows: tuple[Step, ...], counts: list[tuple[int, ...]], totals: list[int], *, runtime: str,
                    cycles_unit: str, bit_exact: int, invoke_median: float | None) -> dict:
    """The `profile` of measure.json and report.json's `measure`: one row per step with the median
    count over the samples, and how the sum compares with the whole invoke.

    `totals` are the profiled image's own RESULT counts; `invoke_median` the un-profiled image's
    median (None when only the profiled image ran), which the overhead is stated against."""
    for sample, c in enumerate(counts):
        if len(c) != len(rows):
            raise ProtocolError(f"the firmware counted {len(c)} steps for sample {sample}, but {runtime} runs this "
                                f"model in {len(rows)}: is the firmware built from this model?")
    median = np.median(np.array(counts, dtype=np.float64), axis=0) if counts else np.zeros(len(rows))
    total = float(median.sum())
    profiled = float(np.median(totals)) if totals else None
    reference = invoke_median if invoke_median is not None else profiled
    table = []
    for row, count in zip(rows, median.tolist()):
        table.append({"index": row.index, "op": row.op, "kernel": row.kernel, "shape": list(row.shape),
                      "macs": row.macs, "count": count,
                      "per_mac": round(count / row.macs, 4) if row.macs else None,
                      "share": round(count / total, 6) if total else None})
    macs = sum(r.macs for r in rows)
    counter = counter_text(cycles_unit)
    return {
        "runtime": runtime, "unit": cycles_unit, "samples": len(counts), "bit_exact_samples": bit_exact,
        "layers": table, "total_count": total, "macs": macs,
        "per_mac": round(total / macs, 4) if macs else None,
        "profiled_invoke_median": profiled, "invoke_median": invoke_median,
        # How far the rows' sum is from the whole inference without profiling (or, when only the
        # profiled image ran, from its own invoke), and what the counting itself costs.
        "sum_vs_invoke": round((total - reference) / reference, 6) if reference else None,
        "overhead": (round((profiled - invoke_median) / invoke_median, 6)
                     if profiled is not None and invoke_median else None),
        "sources": {"count": measured(f"{counter}, read before and after each step by firmware built with "
                                      "EQ_PROFILE; the median over the samples").to_dict(),
                    "macs": measured("the .tflite file: each operator's output and weight shapes").to_dict()},
    }


def measure_profile(link: Link, run: Run, invoke_median: float | None = None, on_sample=None) -> dict:
    """Sends every sample of `run` to profiled firmware, asking after each INFER for its step counts;
    every output must still equal the reference interpreter's."""
    info = link.hello(timeout=run.hello_timeout)
    check_firmware(info, run.tflite, run.model_name, link.name, run.runtime)
    rows = run.steps
    if not rows:
        raise BadInput(f"a per-layer profile needs edgeq-c or TFLM firmware whose manifest lists its steps; this one "
                       f"runs {run.runtime} with none")
    if len(run.x) == 0:
        raise BadInput("no samples to profile")
    xq = device_inputs(run.x, info.inputs)
    reference = reference_outputs(run.reference, run.tflite, xq)
    counts, totals, exact = [], [], 0
    for i in progress(range(len(xq[0])), len(xq[0]), "profile"):
        cycles, output = link.infer(sample_bytes(xq, i), timeout=run.timeout)
        counts.append(link.profile(timeout=run.timeout))
        totals.append(cycles)
        exact += output == reference[i]
        if on_sample is not None:
            on_sample(i)
    return profile_section(rows, counts, totals, runtime=info.runtime, cycles_unit=run.cycles_unit,
                           bit_exact=exact, invoke_median=invoke_median)


def profile_firmware(profile, firmware: Path, run: Run, invoke_median: float | None, port: str | None = None,
                     flash_board: bool = False) -> dict:
    """The profile of a firmware project: on QEMU and the host its profiled image (make PROFILE=1) built
    and started, its rows compared with `invoke_median` of the default image. A real board must already
    run the profiled image (edgeq build/flash --profile), unless `flash_board` (deploy --profile) builds
    and flashes it; its own invoke is then what the rows are compared with."""
    emulated = profile.flash.method in EMULATED_METHODS
    manifest = read_manifest(firmware)
    if emulated or flash_board:
        with console.stage("build", f"make PROFILE=1 in {firmware}"):
            built = build(firmware, profile, profiled=True,
                          variables=get_runtime(manifest.runtime).build_variables(profile))
        elf = built.elf
        if not emulated:
            with console.stage("flash", f"{profile.flash.method}, the profiled image"):
                flash(profile, Images(elf=built.elf, bin=built.bin, hex=built.hex, image=built.elf),
                      FlashOptions(port=port))
    else:
        elf = firmware / profiled_name(manifest.elf)
    with console.stage("profile", f"{len(run.x)} samples, each step counted"), \
            device_link(profile, elf, firmware, port) as link:
        return measure_profile(link, run, invoke_median=invoke_median if emulated else None)
