"""Read what LiteRT's / TensorFlow Lite's `benchmark_model` prints, and the profile summary tables.

edgeq cannot load the GPU and NPU delegates in its own process, so it runs `benchmark_model` on the phone
over adb and gets back only text; and its own LiteRT harness gets the per-op profile as text too
(`LiteRtGetProfileSummary`). This module turns both into numbers: latency in ms, memory in MB, which
delegate took how many nodes, and the time per node type.

The format was read from the code that prints it:
- tensorflow/tensorflow tensorflow/lite/tools/benchmark/benchmark_model.cc: "Initialized session in ..ms.",
  "Running benchmark for at least ..", one `Stat::OutputToStream` line per run phase (warm-up, then timed),
  "Inference timings in us: Init: .., First inference: .., Warmup (avg): .., Inference (avg): ..",
  "Memory footprint delta from the start of the tool (MB): init=.. overall=..", "Overall peak memory
  footprint (MB) via periodic monitoring: ..". Older builds print "Peak memory footprint (MB): init=..
  overall=.." and "Average inference timings in us: Warmup: .., Init: .., Inference: ..".
- tensorflow/tensorflow tensorflow/core/util/stats_calculator.{h,cc} and its successor
  third_party/xla/xla/tsl/util/stats_calculator.cc: "count=.. first=.. curr=.. min=.. max=.. avg=.. std=.."
  (or "count=1 curr=.." when every run took the same time), the "Run Order" / "Top by Computation Time"
  tables (the older one has a [start] column) and "Summary by node type"; tensorflow/lite/profiling/
  profile_summary_formatter.cc puts them together, benchmark_model's profiling listener heads them
  "Profiling Info for Benchmark Initialization:" / "Operator-wise Profiling Info for Regular Benchmark Runs:".
- tensorflow/tensorflow tensorflow/lite/tools/benchmark/benchmark_tflite_model.cc: "Explicitly applied X
  delegate, and the model graph will be completely / partially executed by the delegate w/ N delegate
  kernels." and "Though X delegate is explicitly applied, the model graph will not be executed by the
  delegate."; tensorflow/lite/core/subgraph.cc: "Replacing N out of M node(s) with delegate (X) node,
  yielding K partitions ..." (older builds: "Replacing N node(s) with delegate (X) node, yielding K partitions.").
- google-ai-edge/LiteRT litert/tools/benchmark_litert_model.h: LiteRT's CompiledModel `benchmark_model`
  prints a "BENCHMARK RESULTS" block in ms ("Model initialization: 4.48 ms", "Inference (avg): 0.46 ms
  (2112 runs)", "Init footprint: 8.94 MB", ..) instead of the "Inference timings in us" line; with
  --use_profiler it prints the same Run Order / Summary tables, which is the text LiteRT's
  `LiteRtGetProfileSummary` (litert/c/litert_profiler.h) hands back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgeq.errors import ToolFailed

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # C++ streams print 2.71985e+06 for large averages
_VAL = rf"(?:{_NUM}|-?nan|-?inf)"

# On Android the tool's lines often arrive through logcat, each behind "MM-DD hh:mm:ss.mmm pid tid I tag  : "
# (threadtime) or "MM-DD hh:mm:ss.mmm I/tag( pid): " (time); the table rows must be read without it.
_LOGCAT = re.compile(r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?(?:\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s?"
                     r"|[VDIWEF]/[^(:]*\(\s*\d+\):\s?)")
_TIMINGS = re.compile(r"inference timings in us:(.*)", re.IGNORECASE)
_TIMING_FIELD = re.compile(rf"(Init|First inference|Warmup|Inference)(?: \(avg\))?:\s*({_VAL})")
_LITERT_FIELD = re.compile(rf"(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((?:avg|min|max|std)\)"
                           rf"|Init footprint|Overall footprint|Peak memory):\s+({_VAL})( ms| MB)?(?: \((\d+) runs\))?")
_SESSION = re.compile(rf"Initialized session in ({_VAL})\s*ms")
_STAT_PAIR = re.compile(rf"\b(count|first|curr|min|max|avg|std)=({_VAL})")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_VAL}) overall=({_VAL})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_VAL})")
_REPLACING = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((.*?)\) node, "
                        r"yielding (\d+) partitions")
_APPLIED = re.compile(r"Explicitly applied (.+?) delegate, and the model graph will be (?:completely|partially) "
                      r"executed")
_NOT_APPLIED = re.compile(r"Though (.+?) delegate is explicitly applied, the model graph will not be executed")
_WARNING = re.compile(r"\bERROR\b|\b[Ff]ailed\b")
_SUMMARY_ROW = re.compile(rf"^\s*(\S.*?)\s+(\d+)\s+({_NUM})\s+({_NUM})%\s+{_NUM}%\s+{_NUM}\s+(-?\d+)\s*$")
# The Run Order row carries a [start] column in TF's stats_calculator and not in XLA/TSL's; the node type may
# contain spaces ("Convolution (NHWC, QC8) IGEMM"), so the fixed numeric columns anchor the split.
_RUN_ROW = re.compile(rf"^\s*(\S.*?)\s+(?:{_NUM}\s+)?{_NUM}\s+({_NUM})\s+{_NUM}%\s+{_NUM}%\s+{_NUM}\s+(-?\d+)\s+\S")
_REGULAR_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs"
_INIT_PROFILE = "Profiling Info for Benchmark Initialization"


@dataclass(frozen=True)
class OpRow:
    """One node type of the profile summary."""

    op: str  # node type, e.g. "CONV_2D", "TfLiteXNNPackDelegate", "Convolution (NHWC, QC8) IGEMM"
    count: int  # nodes of this type
    avg_ms: float  # time per inference spent in them
    share: float  # their part of the profiled time, 0..1 ([avg %] / 100)
    times_called: int  # calls per inference


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark_model run; None wherever the text did not say."""

    init_ms: float | None  # model load, delegate application and tensor allocation
    first_ms: float | None  # the first inference (of the warm-up)
    warmup_avg_ms: float | None
    avg_ms: float | None  # steady state: the mean of the timed runs
    std_ms: float | None
    min_ms: float | None
    max_ms: float | None
    runs: int | None  # timed runs
    memory_init_mb: float | None  # footprint growth over initialisation
    memory_overall_mb: float | None  # footprint growth by the end of the run
    peak_memory_mb: float | None  # only with --report_peak_memory_footprint
    delegate: str | None  # the delegate that took nodes, in TFLite's words ("TfLiteGpuDelegateV2", "GPU")
    nodes_delegated: int | None
    nodes_total: int | None
    partitions: int | None  # the pieces the delegate split the graph into
    op_profile: list[OpRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_benchmark_output(text: str) -> BenchmarkResult:
    """Read a benchmark_model run; ToolFailed when it never reported a timed run."""
    lines = _lines(text)
    tf: dict[str, float | None] = {}
    litert: dict[str, float | None] = {}
    stats: list[dict[str, float | None]] = []
    timed = False
    for line in lines:
        if m := _TIMINGS.search(line):
            timed = True
            tf.update((key, _ms(value, 1e-3)) for key, value in _TIMING_FIELD.findall(m.group(1)))
            continue
        for label, value, unit, runs in _LITERT_FIELD.findall(line):
            if unit or label == "Inference (std)":  # bare numbers after these labels elsewhere are µs
                litert.setdefault(label, _ms(value, 1.0))
                if runs:
                    litert.setdefault(label + " runs", float(runs))
        if "count=" in line and "Timings (microseconds)" not in line and "Memory (bytes)" not in line:
            # The profiler's "Timings (microseconds): count=.." totals profiled ops, not benchmark runs.
            stats.append({k: _ms(v, 1.0 if k == "count" else 1e-3) for k, v in _STAT_PAIR.findall(line)})
        if m := _MEMORY.search(line):
            tf["init MB"], tf["overall MB"] = _ms(m.group(1), 1.0), _ms(m.group(2), 1.0)
        if m := _PEAK.search(line):
            tf["peak MB"] = _ms(m.group(1), 1.0)
        if m := _SESSION.search(line):
            tf.setdefault("session", _ms(m.group(1), 1.0))
    if not timed and "Inference (avg)" not in litert:
        tail = [line.strip() for line in lines if line.strip()][-5:]
        quoted = "\n".join("  | " + "".join(c if c.isprintable() else "?" for c in line[:200]) for line in tail)
        raise ToolFailed('benchmark_model printed no "Inference timings" line, so it finished no timed run; '
                         f"its output ended with:\n{quoted or '  (nothing)'}")
    # The first count= line is the warm-up phase, the last one the timed runs; one alone is only the warm-up.
    warm, run = (_all_same(stats[0]), _all_same(stats[-1])) if len(stats) >= 2 else ({}, {})
    delegate, delegated, total, partitions = _delegation(lines)
    return BenchmarkResult(
        init_ms=_first(tf.get("Init"), tf.get("session"), litert.get("Model initialization")),
        first_ms=_first(tf.get("First inference"), warm.get("first"), litert.get("Warmup (first)")),
        warmup_avg_ms=_first(tf.get("Warmup"), warm.get("avg"), litert.get("Warmup (avg)")),
        avg_ms=_first(tf.get("Inference"), run.get("avg"), litert.get("Inference (avg)")),
        std_ms=_first(run.get("std"), litert.get("Inference (std)")),
        min_ms=_first(run.get("min"), litert.get("Inference (min)")),
        max_ms=_first(run.get("max"), litert.get("Inference (max)")),
        runs=_int(_first(run.get("count"), litert.get("Inference (avg) runs"))),
        memory_init_mb=_first(tf.get("init MB"), litert.get("Init footprint")),
        memory_overall_mb=_first(tf.get("overall MB"), litert.get("Overall footprint")),
        peak_memory_mb=_first(tf.get("peak MB"), litert.get("Peak memory")),
        delegate=delegate, nodes_delegated=delegated, nodes_total=total, partitions=partitions,
        op_profile=_summary_rows(_regular_section(lines)), warnings=_warnings(lines))


def parse_op_profile(text: str) -> list[OpRow]:
    """The "Summary by node type" of a profile summary; without one, its Run Order table summed by node type."""
    lines = _regular_section(_lines(text))
    return _summary_rows(lines) or _aggregate(_table(lines, "Run Order", _RUN_ROW))


def _lines(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [_LOGCAT.sub("", line) for line in str(text or "").splitlines()]


def _ms(value: str, scale: float) -> float | None:
    number = float(value)
    return number * scale if math.isfinite(number) else None  # C++ prints nan for an average of no runs


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _all_same(stat: dict[str, float | None]) -> dict[str, float | None]:
    if "min" not in stat and "curr" in stat:  # "count=5 curr=..(all same)": every run took curr
        curr = stat["curr"]
        return {**stat, "first": curr, "min": curr, "max": curr, "avg": curr, "std": 0.0}
    return stat


def _delegation(lines: list[str]) -> tuple[str | None, int | None, int | None, int | None]:
    replacing = [m.groups() for line in lines if (m := _REPLACING.search(line))]
    if replacing:
        chosen = _accelerator([name for _, _, name, _ in replacing])
        mine = [r for r in replacing if r[2] == chosen]
        totals = [r[1] for r in mine]
        return (chosen, sum(int(r[0]) for r in mine), None if None in totals else sum(int(t) for t in totals),
                sum(int(r[3]) for r in mine))
    applied = [m.group(1) for line in lines if (m := _APPLIED.search(line))]
    if applied:
        return _accelerator(applied), None, None, None
    # A delegate asked for that took nothing is still named, with 0 nodes, so a CPU fallback shows as one.
    refused = [m.group(1) for line in lines if (m := _NOT_APPLIED.search(line))]
    return (refused[0], 0, None, None) if refused else (None, None, None, None)


def _accelerator(names: list[str]) -> str:
    # XNNPACK also takes the CPU remainder of a GPU/NPU run; the accelerator asked for is the one to report.
    return next((name for name in names if "xnnpack" not in name.lower()), names[0])


def _warnings(lines: list[str]) -> list[str]:
    # A failing delegate repeats the same error per node and per run; one copy of each says it.
    return list(dict.fromkeys(line.strip() for line in lines if _WARNING.search(line)))


def _regular_section(lines: list[str]) -> list[str]:
    starts = [i for i, line in enumerate(lines) if _REGULAR_RUNS in line]
    if starts:
        return lines[starts[-1] + 1:]
    # A text cut off after the initialisation profile holds only ModifyGraphWithDelegate / AllocateTensors.
    return [] if any(_INIT_PROFILE in line for line in lines) else lines


def _table(lines: list[str], title: str, row: re.Pattern) -> list[re.Match]:
    start = next((i for i, line in enumerate(lines) if "====" in line and title in line), None)
    rows: list[re.Match] = []
    for line in lines[start + 1:] if start is not None else []:
        if m := row.match(line):
            rows.append(m)
        elif rows or "====" in line or (line.strip() and "[" not in line):
            break  # the blank line after the rows, or the next table; a truncated row ends it too
    return rows


def _summary_rows(lines: list[str]) -> list[OpRow]:
    return [OpRow(m.group(1), int(m.group(2)), float(m.group(3)), float(m.group(4)) / 100, int(m.group(5)))
            for m in _table(lines, "Summary by node type", _SUMMARY_ROW)]


def _aggregate(rows: Iterable[re.Match]) -> list[OpRow]:
    by_type: dict[str, list[float]] = {}
    for m in rows:
        entry = by_type.setdefault(m.group(1), [0, 0.0, 0])
        entry[0] += 1
        entry[1] += float(m.group(2))
        entry[2] += int(m.group(3))
    total = sum(entry[1] for entry in by_type.values())
    # The summarizer's own table shares each type's time out of the summed op time, largest first; so does this.
    ordered = sorted(by_type.items(), key=lambda item: -item[1][1])
    return [OpRow(op, int(n), ms, ms / total if total else 0.0, int(called)) for op, (n, ms, called) in ordered]
