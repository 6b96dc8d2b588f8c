"""The fit verdict and the reports: report.json for machines, report.md for people.

The JSON layout is documented in docs/report-schema.md; bump SCHEMA_VERSION when a key
changes meaning or goes away (adding keys does not need a bump).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SCHEMA_VERSION = 1

# Until `edgeq build` has linked the firmware and measured it, the runtime's own code is an
# estimate: TFLM's interpreter with a handful of reference kernels for Cortex-M at -Os.
TFLM_CODE_BYTES_ESTIMATE = 64 * 1024
# edgeq-c's kernels and glue, when no compiler for the profile is at hand to measure them
# (the KWS model's come to about 6 KB on Cortex-M4 at -Os).
EDGEQ_C_CODE_BYTES_ESTIMATE = 16 * 1024


@dataclass(frozen=True)
class Budget:
    needed_bytes: int
    budget_bytes: int
    what: str  # how `needed` was made up

    @property
    def used_fraction(self) -> float:
        return self.needed_bytes / self.budget_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.budget_bytes


@dataclass(frozen=True)
class Fit:
    flash: Budget
    ram: Budget

    @property
    def verdict(self) -> str:
        return "fits" if self.flash.fits and self.ram.fits else "does-not-fit"

    def reasons(self) -> list[str]:
        out = []
        if not self.flash.fits:
            out.append(f"flash: {kb(self.flash.needed_bytes)} needed ({self.flash.what}) > "
                       f"{kb(self.flash.budget_bytes)} on the device")
        if not self.ram.fits:
            out.append(f"RAM: {kb(self.ram.needed_bytes)} needed ({self.ram.what}) > "
                       f"{kb(self.ram.budget_bytes)} left for the model")
        return out


def kb(n: int | float | None) -> str:
    if n is None:
        return "-"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.2f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{int(n)} B"


def assess_fit(profile, tflite_bytes: int, arena_bytes: int | None, code_bytes: int | None = None) -> Fit:
    """Flash and RAM needed against what the profile offers the model."""
    if profile.is_microcontroller:
        code = TFLM_CODE_BYTES_ESTIMATE if code_bytes is None else code_bytes
        code_what = "runtime code estimate" if code_bytes is None else "runtime code"
        flash = Budget(tflite_bytes + code, profile.memory.flash_bytes, f"model {kb(tflite_bytes)} + {code_what} {kb(code)}")
        ram = Budget(arena_bytes or 0, profile.ram_for_model_bytes, "tensor arena")
    else:  # an OS loads the flatbuffer into RAM; the interpreter's buffers come on top of it
        flash = Budget(tflite_bytes, profile.memory.flash_bytes, "model file")
        ram = Budget(tflite_bytes * 2, profile.ram_for_model_bytes, "model and interpreter buffers, about twice the model")
    return Fit(flash, ram)


def assess_fit_edgeq_c(profile, flash_bytes: int, ram_bytes: int, measured: bool) -> Fit:
    """Fit of an edgeq-c build: its constants and code in flash, its arena (and any data) in RAM."""
    how = "measured with the profile's compiler" if measured else "weights + runtime code estimate"
    return Fit(Budget(flash_bytes, profile.memory.flash_bytes, f"edgeq-c model and kernels, {how}"),
               Budget(ram_bytes, profile.ram_for_model_bytes, "edgeq-c arena" + (" and data" if measured else "")))


def _budget_dict(b: Budget) -> dict:
    return {"needed_bytes": b.needed_bytes, "budget_bytes": b.budget_bytes,
            "used_fraction": round(b.used_fraction, 4), "what": b.what}


def fit_dict(fit: Fit) -> dict:
    return {"verdict": fit.verdict, "flash": _budget_dict(fit.flash), "ram": _budget_dict(fit.ram),
            "reasons": fit.reasons()}


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _pp(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} pp"


def render_markdown(r: dict) -> str:
    """report.md: the same facts as report.json, for a person."""
    m, p, q, s = r["model"], r["profile"], r["quantization"], r["size"]
    mem, acc, lat, fit = r["memory"], r["accuracy"], r["latency"], r["fit"]
    lines = [
        f"# edgeq report: {m['name']} on {p['name']}",
        "",
        f"- Model: `{m['path']}` ({m['format']}), sha256 `{m['sha256'][:16]}…`, input {m['input']['shape']} "
        f"{m['input']['dtype']}, ops: {', '.join(m['ops'])}",
        f"- Device: {p['display_name']} — {p['core']} @ {p['clock_mhz']:g} MHz, flash {kb(p['flash_bytes'])}, "
        f"RAM {kb(p['ram_bytes'])} ({kb(p['ram_for_model_bytes'])} for the model)",
        f"- Quantization: **{q['mode']}** ({q['description']}) on runtime **{q['runtime']}** — {q['reason']}",
        f"- Calibration data: {q['calibration']['source']} ({q['calibration']['samples']} samples)",
        "",
        "## Size and memory",
        "",
        "| | bytes | |",
        "|---|---:|---|",
        f"| float .tflite | {s['float_tflite_bytes']:,} | |",
        f"| {q['mode']} .tflite | {s['tflite_bytes']:,} | {s['ratio']:.2f}x of float |",
    ]
    if mem.get("tflm_arena_bytes") is not None:
        lines.append(f"| TFLM arena (recorded) | {mem['tflm_arena_bytes']:,} | head {mem['tflm_arena_head_bytes']:,} "
                     f"+ tail {mem['tflm_arena_tail_bytes']:,} |")
    if mem.get("edgeq_c_arena_bytes") is not None:
        lines.append(f"| edgeq-c arena (static plan) | {mem['edgeq_c_arena_bytes']:,} | lower bound without "
                     f"in-place kernels {mem['edgeq_c_lower_bound_bytes']:,} |")
    build = r.get("build")
    if build:
        lines.append(f"| firmware flash used (linked) | {build['flash_used_bytes']:,} | "
                     f"{100 * build['flash_used_fraction']:.2f} % of {kb(build['flash_budget_bytes'])}; "
                     f"text {build['text_bytes']:,} + data {build['data_bytes']:,} |")
        lines.append(f"| firmware RAM used (linked) | {build['ram_used_bytes']:,} | "
                     f"{100 * build['ram_used_fraction']:.2f} % of {kb(build['ram_budget_bytes'])}; "
                     f"data {build['data_bytes']:,} + bss {build['bss_bytes']:,} (stack included) |")
    lines += [
        "",
        f"**Fit: {fit['verdict']}**",
        "",
        "| | needed | budget | used | made of |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in (("flash", "flash"), ("ram", "RAM")):
        b = fit[key]
        lines.append(f"| {label} | {kb(b['needed_bytes'])} | {kb(b['budget_bytes'])} | "
                     f"{100 * b['used_fraction']:.1f} % | {b['what']} |")
    lines += [f"- {reason}" for reason in fit["reasons"]]
    lines += [
        "",
        "## Accuracy",
        "",
        f"On {acc['samples']} samples of {acc['data']}:",
        "",
        "| float | quantized | drop | top-1 agreement | output SQNR |",
        "|---:|---:|---:|---:|---:|",
        f"| {_pct(acc['float'])} | {_pct(acc['quantized'])} | {_pp(acc['drop_pp'])} | "
        f"{_pct(acc['agreement'])} | {acc['sqnr_db']:.1f} dB |",
        "",
        "## Latency",
        "",
        f"Host LiteRT interpreter: median {lat['host_ms_median']:.3f} ms, p95 {lat['host_ms_p95']:.3f} ms "
        f"({lat['runs']} runs, {lat['threads']} thread{'s' if lat['threads'] != 1 else ''}). "
        "This is this machine, not the device.",
    ]
    lines += device_lines(r)
    if r.get("outputs"):
        lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in r["outputs"].items()]
    if r["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in r["warnings"]]
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
             "",
             f"| {unit} per inference: min | median | p95 | time (median) | {unit} per MAC | samples/s over the link |",
             "|---:|---:|---:|---:|---:|---:|",
             f"| {_num(m['cycles_min'])} | {_num(m['cycles_median'])} | {_num(m['cycles_p95'])} | "
             f"{_num(m['time_ms_median'], 3)} ms ({at_clock}) | {_num(m['cycles_per_mac'], 2)} "
             f"({_num(m['macs'])} MACs) | {_num(m['samples_per_second'], 1)} |"]
    return lines


def device_lines(r: dict) -> list[str]:
    device = r.get("device")
    if not device:
        return []
    lines = ["", "## On the device", ""]
    if device["status"] == "skipped":
        return lines + [f"Not measured on the device: {device['reason']}."]
    if r.get("measure"):
        lines += format_measure(r["measure"])
    if device["status"] == "failed":
        lines += ["", f"**The run failed**: {device['reason']}"]
    return lines
