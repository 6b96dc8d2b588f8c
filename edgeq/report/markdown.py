"""report.md: the same facts as report.json (edgeq.report.schema.Report), for people."""

from __future__ import annotations

from edgeq.report.schema import ModelInfo, Report
from edgeq.sources import ESTIMATE_MARK, source_text
from edgeq.units import format_bytes as kb


def _source_text(section, key: str) -> str:
    """'measured: by what' or 'estimated: from what' for a figure of a report section (or a dict)."""
    sources = section.get("sources") if isinstance(section, dict) else section.sources
    src = (sources or {}).get(key)
    return source_text(src) if src else ""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _pp(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} pp"


def _tensors(what: str, tensors) -> str:
    shown = ", ".join(f"`{t.name}` {t.shape} {t.dtype}" for t in tensors)
    return f"{what}{'s' if len(tensors) > 1 else ''} {shown}"


def _output_rows(acc) -> list[str]:
    """One row per output: its SQNR against the float model and its top-1 agreement."""
    if len(acc.outputs) < 2:
        return []
    rows = ["", "| output | SQNR | top-1 agreement |", "|---|---:|---:|"]
    for o in acc.outputs:
        sqnr = "-" if o.sqnr_db is None else f"{o.sqnr_db:.1f} dB"
        mark = " (labelled)" if o.name == acc.label_output and acc.labelled else ""
        rows.append(f"| `{o.name}`{mark} | {sqnr} | {_pct(o.agreement)} |")
    return rows


def _conversion_lines(m: ModelInfo) -> list[str]:
    """An ONNX or .pt2 model's layout and how faithfully it was converted to a float .tflite; a float
    .tflite's weights folded to float32."""
    lines = []
    for inp in m.inputs:
        if inp.source_layout:
            lines.append(f"- Layout: the model takes {inp.source_shape} {inp.source_layout}; the converted model "
                         f"and the firmware take {inp.shape} {inp.layout} (data is accepted in either)")
    if m.folded:
        more = f" and {len(m.folded) - 3} more" if len(m.folded) > 3 else ""
        lines.append(f"- Constant weights folded to float32 at load, before quantizing: {len(m.folded)} op(s), "
                     f"{', '.join(m.folded[:3])}{more}")
    f = m.conversion_fidelity
    if f:
        sqnr = "identical outputs" if f["identical"] else f"output SQNR {f['sqnr_db']} dB"
        verdict = "" if f["identical"] or (f["sqnr_db"] or 0) >= f["threshold_db"] else \
            f" — **below {f['threshold_db']:g} dB**: {f['note']}"
        lines.append(f"- Conversion fidelity: {f['converted']} against {f['reference']} on {f['samples']} validation "
                     f"samples: {sqnr}, max |error| {f['max_abs_error']:.3g}{verdict}")
    return lines


def _accuracy_lines(acc) -> list[str]:
    return [
        f"{_source_text(acc, 'quantized').capitalize()}:",
        "",
        "| float | quantized | drop | top-1 agreement | output SQNR |",
        "|---:|---:|---:|---:|---:|",
        f"| {_pct(acc.float)} | {_pct(acc.quantized)} | {_pp(acc.drop_pp)} | "
        f"{_pct(acc.agreement)} | {'-' if acc.sqnr_db is None else format(acc.sqnr_db, '.1f') + ' dB'} |",
        *_output_rows(acc),
    ]


def render_markdown(r: Report) -> str:
    """report.md: the same facts as report.json, for a person."""
    m, p, q, s = r.model, r.profile, r.quantization, r.size
    mem, acc, lat, fit = r.memory, r.accuracy, r.latency, r.fit
    ratio = f"{s.ratio:.2f}x of float" if s.ratio else "as given"
    lines = [
        f"# edgeq report: {m.name} on {p.name}",
        "",
        f"- Model: `{m.path}` ({m.format}), sha256 `{m.sha256[:16]}…`, ops: {', '.join(m.ops)}",
        f"- {_tensors('Input', m.inputs)}; {_tensors('output', m.outputs)}",
        f"- Device: {p.display_name} — {p.core} @ {p.clock_mhz:g} MHz, flash {kb(p.flash_bytes)}, "
        f"RAM {kb(p.ram_bytes)} ({kb(p.ram_for_model_bytes)} for the model)",
        *_conversion_lines(m),
        f"- Quantization: **{q.mode}** ({q.description}) on runtime **{q.runtime}** — {q.reason}",
        ("- Calibration: none needed, the model came quantized" if q.came_quantized else
         f"- Calibration data: {q.calibration.source} ({q.calibration.samples} samples)"),
        "",
        "## Size and memory",
        "",
        "| | bytes | | source |",
        "|---|---:|---|---|",
        (f"| float .tflite | {s.float_tflite_bytes:,} | | {_source_text(s, 'float_tflite_bytes')} |"
         if s.float_tflite_bytes else "| float .tflite | - | the model came quantized | |"),
        f"| {q.mode} .tflite | {s.tflite_bytes:,} | {ratio} | "
        f"{_source_text(s, 'tflite_bytes')} |",
    ]
    if mem.get("tflm_arena_bytes") is not None:
        lines.append(f"| TFLM arena (recorded) | {mem.get('tflm_arena_bytes'):,} | head "
                     f"{mem.get('tflm_arena_head_bytes'):,} + tail {mem.get('tflm_arena_tail_bytes'):,} | "
                     f"{_source_text(mem, 'tflm_arena_bytes')} |")
    if mem.get("edgeq_c_arena_bytes") is not None:
        lines.append(f"| edgeq-c arena (static plan) | {mem.get('edgeq_c_arena_bytes'):,} | lower bound without "
                     f"in-place kernels {mem.get('edgeq_c_lower_bound_bytes'):,} | "
                     f"{_source_text(mem, 'edgeq_c_arena_bytes')} |")
    build = r.build
    if build:
        lines.append(f"| firmware flash used (linked) | {build.flash_used_bytes:,} | "
                     f"{100 * build.flash_used_fraction:.2f} % of {kb(build.flash_budget_bytes)}; "
                     f"text {build.text_bytes:,} + data {build.data_bytes:,} | {_source_text(mem, 'flash_used_bytes')} |")
        lines.append(f"| firmware RAM used (linked) | {build.ram_used_bytes:,} | "
                     f"{100 * build.ram_used_fraction:.2f} % of {kb(build.ram_budget_bytes)}; "
                     f"data {build.data_bytes:,} + bss {build.bss_bytes:,} (stack included) | "
                     f"{_source_text(mem, 'ram_used_bytes')} |")
    lines += [
        "",
        f"**Fit: {fit.verdict}**",
        "",
        "| | needed | budget | used | made of | source |",
        "|---|---:|---:|---:|---|---|",
    ]
    for b, label in ((fit.flash, "flash"), (fit.ram, "RAM")):
        how = source_text(b.source.to_dict(), estimated_label="**estimated**")
        lines.append(f"| {label} | {kb(b.needed_bytes)} | {kb(b.budget_bytes)} | "
                     f"{100 * b.used_fraction:.1f} % | {b.what} | {how} |")
    lines += [f"- {reason}" for reason in fit.reasons()]
    lines += ["", "## Accuracy", ""] + (_accuracy_lines(acc) if acc else [f"Not measured: {r.not_measured}."])
    lines += ["", "## Latency", ""]
    lines.append(f"Host LiteRT interpreter: median {lat.host_ms_median:.3f} ms, p95 {lat.host_ms_p95:.3f} ms "
                 f"({lat.runs} runs, {lat.threads} thread{'s' if lat.threads != 1 else ''}). "
                 "This is this machine, not the device." if lat else f"Not measured: {r.not_measured}.")
    lines += device_lines(r)
    if r.outputs:
        lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in r.outputs.items()]
    if r.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in r.warnings]
    return "\n".join(lines) + "\n"


def _num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def format_measure(m: dict) -> list[str]:
    """The on-device figures as markdown lines (report.md and `edgeq measure` print the same)."""
    unit = m["cycles_unit"]
    clock = f"{m['clock_hz'] / 1e6:g} MHz"
    at_clock = {"ns": "wall clock", "instructions": f"one instruction a cycle at {clock}"}.get(unit, f"at {clock}")
    head = (f"{m['samples']} of {m['samples_planned']} samples measured on the device"
            + ("" if m["complete"] else " (interrupted: `--resume` continues)")
            + f"; reference: the {m['reference']} interpreter on the same quantized model.")
    lines = [head, "",
             "| accuracy | reference accuracy | bit-exact | largest difference |",
             "|---:|---:|---:|---:|",
             f"| {_pct(m['accuracy'])} | {_pct(m['reference_accuracy'])} | {_pct(m['bit_exact_fraction'])} "
             f"({m['bit_exact_samples']}) | {_num(m['max_abs_diff'], 4 if m['max_abs_diff'] and m['max_abs_diff'] % 1 else 0)} |",
             ""]
    if m.get("native"):
        lines += format_native(m["native"])
    else:
        lines += [f"| {unit} per inference: min | median | p95 | time (median) | {unit} per MAC "
                  "| samples/s over the link |",
                  "|---:|---:|---:|---:|---:|---:|",
                  f"| {_num(m['cycles_min'])} | {_num(m['cycles_median'])} | {_num(m['cycles_p95'])} | "
                  f"{_num(m['time_ms_median'], 3)} ms ({at_clock}) | {_num(m['cycles_per_mac'], 2)} "
                  f"({_num(m['macs'])} MACs) | {_num(m['samples_per_second'], 1)} |"]
    outputs = m.get("outputs") or []
    if any("tolerance" in o for o in outputs):
        lines += ["", "| output | bit-exact | largest difference | tolerance | within |", "|---|---:|---:|---:|---|"]
        lines += [f"| `{o['name']}` | {_pct(o['bit_exact_fraction'])} ({o['bit_exact_samples']}) | "
                  f"{_num(o['max_abs_diff'], 7)} | {_num(o.get('tolerance'), 7)} | "
                  f"{'-' if 'within_tolerance' not in o else 'yes' if o['within_tolerance'] else '**no**'} |"
                  for o in outputs]
    elif len(outputs) > 1:
        lines += ["", "| output | bit-exact | largest difference |", "|---|---:|---:|"]
        lines += [f"| `{o['name']}` | {_pct(o['bit_exact_fraction'])} ({o['bit_exact_samples']}) | "
                  f"{_num(o['max_abs_diff'], 4 if o['max_abs_diff'] and o['max_abs_diff'] % 1 else 0)} |"
                  for o in outputs]
    if m.get("native"):
        lines += ["", f"Times {_source_text(m, 'time_ms_median')}."]
    elif _source_text(m, "cycles_median"):
        lines += ["", f"Counts {_source_text(m, 'cycles_median')}."]
    if m.get("estimated_cycles"):
        lines += [""] + format_estimated_cycles(m["estimated_cycles"])
    if m.get("benchmark_model"):
        lines += [""] + format_benchmark_model(m["benchmark_model"])
    if m.get("profile"):
        lines += [""] + format_profile(m["profile"])
    return lines


def format_estimated_cycles(e: dict) -> list[str]:
    """The cycle band edgeq's timing model estimated from the instruction classes QEMU ran: marked
    estimated in every cell, never shown as a measurement."""
    clock = f"{e['clock_hz'] / 1e6:g} MHz"
    mark = ESTIMATE_MARK
    waits = f"; {e['flash_wait_states']} flash wait states" if e.get("flash_wait_states") else ""
    return [f"| estimated cycles on {e['core']}: low | estimate | high | estimated time at {clock}: low | "
            "estimate | high |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {mark}{_num(e['low_cycles'])} | {mark}{_num(e['estimate_cycles'])} | {mark}{_num(e['high_cycles'])} | "
            f"{mark}{_num(e['low_ms'], 3)} ms | {mark}{_num(e['estimate_ms'], 3)} ms | "
            f"{mark}{_num(e['high_ms'], 3)} ms |",
            "", f"Cycles {mark}estimated, not measured; {e['source']}{waits}; over {e['windows']} inferences of "
            f"{_num(e['instructions_median'])} instructions (docs/cycles.md)."]


def format_native(n: dict) -> list[str]:
    """A phone's or Linux board's own figures from the native harness: start-up, the steady state's
    latency distribution, memory, the CPU it ran on, and LiteRT's per-op profile."""
    lat, cpu = n["latency_ms"], n["cpu"]
    cpu_text = " ".join(v for v in (cpu.get("machine"), cpu.get("model_name"),
                                    f"part {cpu['part']}" if cpu.get("part") else "") if v)
    lines = ["| init | first run | latency min | median | p95 | max | peak RSS | threads | CPU |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
             f"| {_num(n['init_ms'], 2)} ms | {_num(n['first_ms'], 3)} ms | {_num(lat['min'], 3)} ms | "
             f"{_num(lat['median'], 3)} ms | {_num(lat['p95'], 3)} ms | {_num(lat['max'], 3)} ms | "
             f"{kb(n['peak_rss_bytes'])} | {n['threads']} | {cpu_text or '-'} |",
             "", f"Latency over {n['runs']} timed runs after {n['warmup_runs']} warm-up runs, on {n['where']}"
             + (" (**emulated: not the device's speed**)." if n["emulated"] else ".")]
    facts = {k: v for k, v in (n.get("facts") or {}).items() if v}
    if facts:
        lines += ["Device: " + "; ".join(f"{k} `{v}`" for k, v in facts.items()) + "."]
    if n.get("op_profile"):
        lines += ["", "| op (LiteRT profile) | count | avg ms | share |", "|---|---:|---:|---:|"]
        lines += [f"| {r['op']} | {r['count']} | {_num(r['avg_ms'], 4)} | {_pct(r['share'])} |"
                  for r in n["op_profile"]]
    return lines


def format_benchmark_model(b: dict) -> list[str]:
    """LiteRT's benchmark_model with the delegate the plan needs (GPU, NPU): its own figures."""
    nodes = (f"{b['nodes_delegated']} of {b['nodes_total']} nodes delegated"
             if b.get("nodes_total") is not None else "delegated nodes not reported")
    lines = [f"benchmark_model, {b['delegate_requested']} delegate ({b.get('delegate') or 'none named'}; {nodes}):", "",
             "| init | first | warm-up avg | avg | std | memory overall |", "|---:|---:|---:|---:|---:|---:|",
             f"| {_num(b['init_ms'], 2)} ms | {_num(b['first_ms'], 3)} ms | {_num(b['warmup_avg_ms'], 3)} ms | "
             f"{_num(b['avg_ms'], 3)} ms | {_num(b['std_ms'], 3)} ms | {_num(b['memory_overall_mb'], 1)} MB |",
             "", f"{b['source']['by']}."]
    return lines


def _signed_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.3f} %"


def format_profile(p: dict) -> list[str]:
    """The per-layer table (`edgeq measure --profile`), one row per step the firmware counted."""
    unit = p["unit"]
    lines = [f"Per layer ({p['runtime']}, median of {p['samples']} samples, {p['bit_exact_samples']} of them "
             "bit-exact while profiling):", "",
             f"| # | op | kernel | output | MACs | {unit} | {unit}/MAC | share |",
             "|---:|---|---|---|---:|---:|---:|---:|"]
    for r in p["layers"]:
        lines.append(f"| {r['index']} | {r['op']} | {r['kernel'] or '-'} | {'x'.join(map(str, r['shape']))} | "
                     f"{_num(r['macs'] or None)} | {_num(r['count'])} | {_num(r['per_mac'], 2)} | {_pct(r['share'])} |")
    lines.append(f"| | **total** | | | {_num(p['macs'])} | {_num(p['total_count'])} | {_num(p['per_mac'], 2)} | "
                 "100.00 % |")
    total = f"The rows add up to {_num(p['total_count'])} {unit}"
    if p["invoke_median"] is not None:
        lines += ["", f"{total}, {_signed_pct(p['sum_vs_invoke'])} against the un-profiled invoke "
                  f"({_num(p['invoke_median'])}); counting costs "
                  f"{_num(p['profiled_invoke_median'] - p['invoke_median'])} {unit} ({_signed_pct(p['overhead'])}; "
                  f"profiled invoke {_num(p['profiled_invoke_median'])})."]
    else:
        lines += ["", f"{total}, {_signed_pct(p['sum_vs_invoke'])} against the profiled image's own invoke "
                  f"({_num(p['profiled_invoke_median'])}); the un-profiled image did not run."]
    if _source_text(p, "count"):
        lines.append(f"Counts {_source_text(p, 'count')}.")
    return lines


def device_lines(r: Report) -> list[str]:
    device = r.device
    if not device:
        return []
    lines = ["", "## On the device", ""]
    if device.status == "skipped":
        return lines + [f"Not measured on the device: {device.reason}."]
    if r.measure:
        lines += format_measure(r.measure)
    if device.status == "failed":
        lines += ["", f"**The run failed**: {device.reason}"]
    return lines
