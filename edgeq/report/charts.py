"""report.json and plan.json as chart data: bars, boxes and points, each with its label, unit and
whether it was measured or estimated, plus the table that says the same in text.

Pure: a Report (edgeq.report.schema) and plan.json's dict in, frozen dataclasses out; nothing here computes a figure the reports do not
already hold (a bar's length is a report value; the only arithmetic is a remainder, such as the
part of the linked image that is not weights, and its label says so). html.py draws the charts.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.report.schema import Report
from edgeq.runtimes import get_runtime
from edgeq.sources import source_text
from edgeq.units import format_bytes


@dataclass(frozen=True)
class Bar:
    row: str  # bars on one row stack from `start`
    label: str
    start: float
    value: float  # the length
    unit: str
    measured: bool
    source: str = ""  # "measured: by what" or "estimated: from what"
    kind: str = ""  # what it is, for the colour: weights, code, arena, reserve, ...


@dataclass(frozen=True)
class Box:
    label: str
    x0: float  # steps: [first_step, last_step + 1)
    x1: float
    y0: float  # bytes: [offset, offset + size)
    y1: float
    kind: str  # input, output, tensor, in-place, scratch
    measured: bool = True
    note: str = ""


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    measured: bool  # whether x (the latency or the size) was measured
    chosen: bool = False
    feasible: bool = True
    note: str = ""  # why it was rejected, for the hover text
    front: bool = False  # on the Pareto front of latency against accuracy (a sweep's device)
    link: str = ""  # where a click on it goes (a sweep cell's report.html)


@dataclass(frozen=True)
class Mark:
    """A reference line: a budget, a tolerance, the peak step."""

    label: str
    value: float
    axis: str  # "x" or "y"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    kind: str  # bars, boxes, points
    x_label: str
    x_unit: str
    items: tuple
    header: tuple[str, ...]  # the text equivalent: a table
    rows: tuple[tuple[str, ...], ...]
    y_label: str = ""
    y_unit: str = ""
    marks: tuple[Mark, ...] = ()
    ticks: tuple[tuple[float, str], ...] = ()  # named x ticks (steps), instead of numbers
    note: str = ""
    from_zero: bool = True  # False: the x axis spans the data (a narrow spread far from zero)
    row_scale: bool = False  # True: each row has its own axis (flash and RAM have different budgets)


def _src(section, key: str) -> tuple[bool, str]:
    """Whether a section's figure was measured, and its source as text; `section` is a report section
    (with `sources`) or a dict with a "sources" key."""
    sources = (section or {}).get("sources") if isinstance(section, dict) or section is None else section.sources
    s = (sources or {}).get(key) or {}
    if not s:
        return True, ""
    return s["kind"] == "measured", source_text(s)


def _of(source: dict) -> tuple[bool, str]:
    return _src({"sources": {"x": source}}, "x")


def _b(n) -> str:
    return "-" if n is None else f"{n:,} B ({format_bytes(n)})"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


# ---- fit at a glance -----------------------------------------------------------------------


def _arena(r: Report) -> tuple[int | None, str]:
    """The arena of the runtime that runs the model, and its figure's key."""
    key = get_runtime(r.quantization.runtime).arena_figure
    return (r.memory.get(key), key) if key else (None, "")


def _weights(r: Report) -> tuple:
    """The flash the model's constants take: the runtime's own constants where it has them (edgeq-c's
    generated arrays: weights widened for DSP cores, requantization tables), else the .tflite's."""
    runtime = get_runtime(r.quantization.runtime)
    key = runtime.constants_figure
    if key and r.memory.get(key) is not None:
        return (r.memory.get(key), f"weights ({runtime.label}'s constant arrays)", "weights", *_src(r.memory, key))
    return (r.size.constant_bytes, "weights (model constants)", "weights", *_src(r.size, "constant_bytes"))


def fit_chart(r: Report) -> Chart:
    """Flash and RAM against the device as stacked bars: weights and the rest of the image in
    flash; the arena and the rest in RAM; past the budget, what the application keeps."""
    fit, p, mem = r.fit.to_dict(), r.profile, r.memory
    bars, marks, rows = [], [], []
    arena, arena_key = _arena(r)
    for key, row, total in (("flash", "flash", p.flash_bytes), ("ram", "RAM", p.ram_bytes)):
        side = fit[key]
        measured, source = _of(side["source"])
        needed = side["needed_bytes"]
        first = _weights(r) if key == "flash" else (arena, f"{r.quantization.runtime} arena", "arena",
                                                    *_src(mem, arena_key))
        start = 0
        if first[0] is not None and 0 < first[0] <= needed:
            bars.append(Bar(row, first[1], 0, first[0], "B", first[3], first[4], first[2]))
            start = first[0]
        rest = "code, data and stack" if key == "ram" else "code and data"
        label = f"{rest} (the rest of the {side['what'].split(':')[0]})" if start else side["what"]
        if needed > start or not start:  # no empty remainder when the arena is all of it
            bars.append(Bar(row, label, start, needed - start, "B", measured, source, "rest"))
        reserve = total - side["budget_bytes"]
        if reserve > 0:  # before a build the model gets RAM less the application's reserve
            bars.append(Bar(row, "kept for the application (profile)", side["budget_bytes"], reserve, "B",
                            True, f"the profile: {p.source or p.name}", "reserve"))
        marks.append(Mark(f"{row} budget {format_bytes(side['budget_bytes'])}", side["budget_bytes"], row))
    for b in bars:
        rows.append((b.row, b.label, _b(int(b.value)), b.source))
    for key, row in (("flash", "flash"), ("ram", "RAM")):
        side = fit[key]
        rows.append((row, f"needed of budget: {100 * side['used_fraction']:.2f} %", _b(side["needed_bytes"]),
                     f"budget {_b(side['budget_bytes'])}"))
    return Chart("fit", f"Fit: {fit['verdict']} on {p.display_name}", "bars", "bytes", "B", tuple(bars),
                 ("memory", "part", "bytes", "source"), tuple(rows), marks=tuple(marks),
                 note="; ".join(fit["reasons"]), row_scale=True)


# ---- memory over time ----------------------------------------------------------------------


def _table(entry: dict, key: str) -> list[dict]:
    part = entry.get(key) or {"columns": [], "rows": []}
    return [dict(zip(part["columns"], row)) for row in part["rows"]]


def arena_chart(r: Report) -> Chart | None:
    """edgeq-c's arena plan: each tensor a box over the steps it lives (x) and the bytes it holds (y)."""
    plan = r.memory.get("edgeq_c_plan")
    if not plan:
        return None
    steps = _table(plan, "steps")
    n = len(steps)
    names = plan.get("names") or {}
    over = {p["output"]: p for p in _table(plan, "in_place")}
    boxes, rows = [], []
    for b in _table(plan, "buffers"):
        t = b["tensor"]
        kind = ("in-place" if t in over else "input" if b["first_step"] < 0 else
                "output" if b["last_step"] >= n else "tensor")
        note = (f"written over tensor {over[t]['input']} at step {over[t]['step']} ({over[t]['kind']})"
                if t in over else "")
        label = f"tensor {t} {names.get(str(t), '')}".strip()
        boxes.append(Box(label, b["first_step"], b["last_step"] + 1, b["offset"], b["offset"] + b["bytes"], kind,
                         note=note))
        first = "model input" if b["first_step"] < 0 else f"{b['first_step']}"
        last = "model output" if b["last_step"] >= n else f"{b['last_step']}"
        rows.append((str(t), names.get(str(t), ""), f"{b['offset']:,}", f"{b['bytes']:,}", f"{first} – {last}",
                     kind + (f": {note}" if note else "")))
    for s in _table(plan, "scratch"):
        boxes.append(Box(f"scratch of step {s['step']}", s["step"], s["step"] + 1, s["offset"],
                         s["offset"] + s["bytes"], "scratch"))
        rows.append(("-", f"scratch of step {s['step']}", f"{s['offset']:,}", f"{s['bytes']:,}", str(s["step"]),
                     "scratch"))
    marks = [Mark(f"arena {plan['arena_bytes']:,} B", plan["arena_bytes"], "y"),
             Mark(f"lower bound without in-place {plan['lower_bound_bytes']:,} B", plan["lower_bound_bytes"], "y")]
    if plan.get("peak_step") is not None:
        marks.append(Mark(f"peak: step {plan['peak_step']}, {plan['live_bytes'][plan['peak_step']]:,} B of tensors live"
                          + (" (in-place pairs overlap)" if plan["live_bytes"][plan["peak_step"]] > plan["arena_bytes"]
                             else ""),
                          plan["peak_step"] + 0.5, "x"))
    ticks = [(-0.5, "in")] + [(k + 0.5, f"{k} {s['opcode']}") for k, s in enumerate(steps)] + [(n + 0.5, "out")]
    fused = [f"step {k} ({s['opcode']})" for k, s in enumerate(steps) if "+" in s["opcode"]]
    in_place = [f"step {p['step']}: tensor {p['output']} over {p['input']} ({p['kind']})" for p in over.values()]
    note = ("In place: " + "; ".join(in_place) + ". " if in_place else "No kernel writes over its input. ") + \
           ("Fused: " + ", ".join(fused) + "." if fused else "No fused steps.")
    return Chart("arena", f"edgeq-c arena over time: {plan['arena_bytes']:,} bytes, {n} steps", "boxes",
                 "step (kernel call)", "step", tuple(boxes),
                 ("tensor", "name", "offset (B)", "bytes", "steps alive", "kind"), tuple(rows),
                 y_label="arena address", y_unit="B", marks=tuple(marks), ticks=tuple(ticks), note=note)


def arena_sizes_chart(r: Report) -> Chart | None:
    """The arenas side by side: edgeq-c's plan and its lower bound, TFLM's recorded head and tail
    and the arena its firmware would reserve."""
    mem = r.memory
    wanted = [("edgeq-c", "static plan", "edgeq_c_arena_bytes", 0, "arena"),
              ("edgeq-c bound", "lower bound without in-place", "edgeq_c_lower_bound_bytes", 0, "bound"),
              ("TFLM", "head (activations)", "tflm_arena_head_bytes", 0, "arena"),
              ("TFLM", "tail (tensor structs, op data)", "tflm_arena_tail_bytes", "tflm_arena_head_bytes", "tail"),
              ("TFLM firmware", "smallest arena + margin", "firmware_arena_bytes", 0, "arena")]
    bars = []
    for row, label, key, start, kind in wanted:
        if mem.get(key) is None:
            continue
        bars.append(Bar(row, label, (mem.get(start) or 0) if start else 0, mem.get(key), "B", *_src(mem, key), kind))
    if not bars:
        return None
    return Chart("arenas", "Arena size by runtime", "bars", "bytes", "B", tuple(bars),
                 ("runtime", "part", "bytes", "source"),
                 tuple((b.row, b.label, _b(b.value), b.source) for b in bars))


# ---- per-layer profile ---------------------------------------------------------------------


def layer_chart(r: Report) -> Chart | None:
    """MACs per edgeq-c step in model order (per-layer instruction counts are not measured yet)."""
    plan = r.memory.get("edgeq_c_plan")
    if not plan:
        return None
    steps = _table(plan, "steps")
    bars = tuple(Bar(f"{k} {s['opcode']}", s["kernel"], 0, s["macs"], "MACs", True,
                     "measured: edgeq-c's lowering, counted from the shapes", "macs") for k, s in enumerate(steps))
    total = sum(s["macs"] for s in steps) or None
    rows = tuple((str(k), s["opcode"], s["kernel"], f"{s['macs']:,}",
                  "-" if not total else f"{100 * s['macs'] / total:.1f} %") for k, s in enumerate(steps))
    m = r.measure or {}
    note = ("Counts per layer: see the profile above." if m.get("profile") else
            "Counts per layer: not measured (edgeq measure --profile or deploy --profile counts them).")
    if m.get("cycles_per_mac") is not None:
        note += f" Whole model: {m['cycles_per_mac']:.2f} {m['cycles_unit']} per MAC ({m['macs']:,} MACs)."
    return Chart("layers", "Multiply-accumulates per step", "bars", "multiply-accumulates", "MACs", bars,
                 ("step", "op", "kernel", "MACs", "share"), rows, note=note)


def profile_chart(m: dict | None) -> Chart | None:
    """The count of each step on the device (`measure --profile`, `deploy --profile`), in model order,
    from the measurement (measure.json, report.json's `measure`)."""
    p = (m or {}).get("profile")
    if not p:
        return None
    unit, (measured, source) = p["unit"], _src(p, "count")
    layers = p["layers"]
    bars = tuple(Bar(f"{row['index']} {row['op']}", row["kernel"] or row["op"], 0, row["count"], unit, measured,
                     source, "on-the-device") for row in layers)
    rows = tuple((str(row["index"]), row["op"], row["kernel"] or "-", "x".join(map(str, row["shape"])),
                  f"{row['macs']:,}" if row["macs"] else "-", f"{row['count']:,.0f}",
                  "-" if row["per_mac"] is None else f"{row['per_mac']:.2f}", _pct(row["share"])) for row in layers)
    rows += (("", "total", "", "", f"{p['macs']:,}", f"{p['total_count']:,.0f}",
              "-" if p["per_mac"] is None else f"{p['per_mac']:.2f}", "100.00 %"),)
    against = "un-profiled" if p["invoke_median"] is not None else "profiled image's own"
    note = (f"{source}. The rows add up to {_pct(p['sum_vs_invoke'])} off the {against} invoke; "
            f"{p['bit_exact_samples']} of {p['samples']} samples bit-exact while profiling.")
    return Chart("profile", f"{unit.capitalize()} per layer on the device ({p['runtime']})", "bars", unit, unit,
                 bars, ("#", "op", "kernel", "output", "MACs", unit, f"{unit}/MAC", "share"), rows, note=note)


# ---- accuracy ------------------------------------------------------------------------------


def _on_the_device(m: dict) -> tuple:
    return ("on the device", "top-1 on the device", m.get("accuracy"), m, "accuracy")


def _accuracy(wanted: list[tuple], samples: int, sqnr_row: tuple = ()) -> Chart:
    bars = tuple(Bar(row, label, 0, 100 * v, "%", *_src(sec, key), row.replace(" ", "-"))
                 for row, label, v, sec, key in wanted if v is not None)
    rows = tuple((b.row, b.label, f"{b.value:.2f} %", b.source) for b in bars) + ((sqnr_row,) if sqnr_row else ())
    return Chart("accuracy", f"Accuracy on {samples} samples", "bars", "top-1", "%", bars,
                 ("figure", "what", "value", "source"), rows)


def accuracy_chart(r: Report) -> Chart | None:
    acc = r.accuracy
    if acc is None:  # not measured on this host: what the device measured, if anything
        return device_accuracy_chart(r.measure) if r.measure else None
    wanted = [("float", "top-1, float model", acc.float, acc, "float"),
              ("quantized", f"top-1, {r.quantization.mode}", acc.quantized, acc, "quantized"),
              ("agreement", "top-1 agreement with float", acc.agreement, acc, "agreement"),
              _on_the_device(r.measure or {})]
    sqnr = ("SQNR", "quantized outputs against float", "-" if acc.sqnr_db is None else f"{acc.sqnr_db:.1f} dB",
            _src(acc, "sqnr_db")[1])
    return _accuracy(wanted, acc.samples, sqnr)


def device_accuracy_chart(m: dict) -> Chart:
    """Accuracy on the device alone (`edgeq measure`, which has no float model to compare with)."""
    return _accuracy([_on_the_device(m)], m["samples"])


def layer_error_chart(plan: dict | None) -> Chart | None:
    errors = (plan or {}).get("layer_errors") or []
    if not errors:
        return None
    key = next((k for k in ("sqnr_db", "error", "nmse", "mse") if k in errors[0]), None)
    if key is None:
        return None
    bars = tuple(Bar(str(e.get("name") or e.get("op") or i), str(e.get("opcode", "")), 0, e[key] or 0,
                     "dB" if key == "sqnr_db" else "", True, "measured: LiteRT on this host", "error")
                 for i, e in enumerate(errors))
    return Chart("layer-errors", "Per-layer error of the quantized model (planner's analysis)", "bars", key,
                 "dB" if key == "sqnr_db" else "", bars, ("layer", "op", key),
                 tuple((b.row, b.label, f"{b.value:.4g}") for b in bars))


def candidate_charts(plan: dict | None) -> list[Chart]:
    """Every built candidate as a point of accuracy (or SQNR) against latency and against flash."""
    if not plan or not plan.get("candidates"):
        return []
    by_accuracy = plan.get("metric") == "accuracy"
    y_label, y_unit = ("top-1 accuracy", "%") if by_accuracy else ("output SQNR", "dB")
    out = []
    for chart_id, x_label, x_unit in (("latency", "latency", "ms"), ("size", "flash", "B")):
        points, rows, skipped = [], [], 0
        for c in plan["candidates"]:
            if x_unit == "ms":
                x = c["latency_ms_measured"] if c.get("latency_ms_measured") is not None else c.get("latency_ms_estimated")
                measured = c.get("latency_ms_measured") is not None
            else:
                x = c.get("flash_bytes")
                measured = ((c.get("sources") or {}).get("flash_bytes") or {}).get("kind") == "measured"
            y = (100 * c["accuracy"] if c.get("accuracy") is not None else None) if by_accuracy else c.get("sqnr_db")
            if x is None or y is None:
                skipped += 1
                continue
            why = c.get("rejected_because") or "; ".join(c.get("problems") or [])
            points.append(Point(f"{c['name']} on {c['runtime']}", x, y, measured, c["chosen"], not c["problems"],
                                "chosen" if c["chosen"] else why))
            rows.append((c["name"], c["runtime"] or "-", f"{x:,.3f} ms" if x_unit == "ms" else _b(x),
                         "measured" if measured else "estimated", f"{y:.2f} {y_unit}",
                         "chosen" if c["chosen"] else why))
        marks = []
        tol = plan.get("tolerance") or {}
        if by_accuracy and plan.get("float_accuracy") is not None and "max_accuracy_drop_pp" in tol:
            floor = 100 * plan["float_accuracy"] - tol["max_accuracy_drop_pp"]
            marks.append(Mark(f"tolerance {floor:.2f} %", floor, "y"))
        elif "min_sqnr_db" in tol:
            marks.append(Mark(f"tolerance {tol['min_sqnr_db']:g} dB", tol["min_sqnr_db"], "y"))
        note = (f"{skipped} candidates have no {x_label} or {y_label} (not built, or identical to float) and are "
                "not drawn." if skipped else "")
        out.append(Chart(f"candidates-{chart_id}", f"Plan candidates: {y_label} against {x_label}", "points",
                         x_label, x_unit, tuple(points),
                         ("candidate", "runtime", x_label, "source", y_label, "chosen, or why not"), tuple(rows),
                         y_label=y_label, y_unit=y_unit, marks=tuple(marks), note=note))
    return out


# ---- on the device -------------------------------------------------------------------------


def device_chart(m: dict | None) -> Chart | None:
    """Counts per inference on the device: the range from min to max, with the median and p95, from the
    measurement (measure.json, report.json's `measure`)."""
    if not m or m.get("cycles_median") is None:
        return None
    unit, (measured, source) = m["cycles_unit"], _src(m, "cycles_median")
    bars = (Bar("per inference", "min to max", m["cycles_min"], m["cycles_max"] - m["cycles_min"], unit, measured,
                source, "range"),)
    marks = (Mark(f"median {m['cycles_median']:,.0f}", m["cycles_median"], "per inference"),
             Mark(f"p95 {m['cycles_p95']:,.0f}", m["cycles_p95"], "per inference"))
    rows = tuple((k, f"{m[f'cycles_{k}']:,.0f} {unit}") for k in ("min", "median", "p95", "max"))
    if m.get("time_ms_median") is not None:
        rows += (("time (median)", f"{m['time_ms_median']:.3f} ms at {m['clock_hz'] / 1e6:g} MHz"),)
    return Chart("latency", f"{unit.capitalize()} per inference, {m['samples']} samples", "bars", unit, unit, bars,
                 ("statistic", "value"), rows, marks=marks, note=source, from_zero=False)
