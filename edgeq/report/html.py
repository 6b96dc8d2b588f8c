"""report.html: one self-contained page (inline CSS and SVG, no script, no network) drawn from
report.json's Report and, when the planner ran, plan.json: the same data, so no figure is computed twice.

Sections: fit at a glance, memory over time, per-layer profile, accuracy (and the plan's
candidates), on the device. Each chart has its table under it; `render_plan_html` is the page for
`edgeq plan`, which has plan.json only.
"""

from __future__ import annotations

from html import escape

import edgeq.report.charts as charts
from edgeq.report.charts import Chart
from edgeq.report.markdown import format_estimated_cycles, format_native
from edgeq.report.schema import Report
from edgeq.report.svg import svg
from edgeq.units import format_bytes

CSS = """
:root{--fg:#1d2330;--muted:#5b6473;--bg:#fff;--panel:#f5f7fa;--line:#d5dae1;--accent:#2f6fb3}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}main{max-width:1040px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.2em 0}h2{font-size:1.2rem;margin:1.6em 0 .4em;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.2em 0 .3em}.sub{color:var(--muted);margin:0 0 .8em}
nav{display:flex;flex-wrap:wrap;gap:.4em 1em;margin:.6em 0 1em}nav a{color:var(--accent)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.tile{background:var(--panel);border-radius:8px;padding:10px 12px}.tile b{display:block;font-size:1.35rem}
.tile span{color:var(--muted);font-size:.85rem}.fits{color:#1a7f37}.does-not-fit{color:#c62828}
figure{margin:.6em 0 1.2em}figcaption{color:var(--muted);font-size:.9rem}
svg.chart{width:100%;height:auto;display:block;background:var(--bg)}
.tablewrap{overflow-x:auto}table{border-collapse:collapse;font-size:.85rem;margin:.4em 0;min-width:50%}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}summary{cursor:pointer;color:var(--accent)}
.legend{font-size:.85rem;color:var(--muted)}.sw{display:inline-block;width:14px;height:10px;margin:0 4px 0 10px;
border:1px solid #345}.sw.est{background:repeating-linear-gradient(45deg,#fff 0 2px,#7a8696 2px 4px);
border-style:dashed}.sw.meas{background:#5b7fa8}
.axis{stroke:#6b7380}.grid{stroke:#e6e9ee}.tick{font-size:11px;fill:#4a5160}.rowlabel{font-size:12px;fill:#1d2330}
.axislabel{font-size:12px;fill:#4a5160}.value{font-size:11px;fill:#1d2330}.marklabel{font-size:10.5px;fill:#7a2e2e}
.mark{stroke:#b23b3b;stroke-width:1.5;stroke-dasharray:5 3}.mark.peak{stroke:#8a4baf}
.hatch-bg{fill:#fff}.hatch-line{stroke:#7a8696;stroke-width:3}
.bar,.box{stroke:#2c3e50;stroke-width:.8}.k-weights{fill:#3f74b0}.k-rest{fill:#8fb3d9}.k-arena{fill:#e08a3c}
.k-reserve{fill:#d9dde3}.k-tail{fill:#f3c38f}.k-bound{fill:#c9ced6}.k-macs{fill:#4c9a6a}.k-range{fill:#8fb3d9}
.k-float{fill:#7a8696}.k-quantized{fill:#3f74b0}.k-agreement{fill:#4c9a6a}.k-on-the-device{fill:#e08a3c}
.k-error{fill:#b25757}.k-tensor{fill:#8fb3d9}.k-input{fill:#b9d7a8}.k-output{fill:#f3c38f}
.box{fill-opacity:.75}.k-in-place{fill:#c59be0;stroke:#5d2d80;stroke-width:1.4}.k-scratch{fill:#e3e3e3}
.bar.estimated,.box.estimated{stroke:#2c3e50}
.pt{fill:#3f74b0;stroke:#1d3a5c;stroke-width:1.2}.pt.rejected{fill:#b7bec8;stroke:#7a8696}
.pt.estimated{fill:#fff}.pt.chosen{fill:#e08a3c;stroke:#7a3d08;stroke-width:2.5}.pt.chosen.estimated{fill:#fff}
.chosen-label{fill:#7a3d08;font-weight:600}.front{fill:none;stroke:#1a7f37;stroke-width:1.6;stroke-dasharray:6 3}
.pt.on-front{stroke:#1a7f37;stroke-width:2.5}.failed{color:#c62828}.done{color:#1a7f37}
td.cell{min-width:150px}td.cell b{display:block}
.svgwrap{overflow-x:auto}
@media (max-width:600px){body{font-size:14px}main{padding:10px}table{font-size:.78rem}svg.chart{min-width:600px}}
"""


def _table(c: Chart, limit: int = 14) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in c.header)
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if _numeric(v) else ""}">{escape(v)}</td>' for v in row) + "</tr>" for row in c.rows)
    table = f'<div class="tablewrap"><table data-table="{c.id}"><thead><tr>{head}</tr></thead><tbody>{body}' \
            f'</tbody></table></div>'
    if len(c.rows) > limit:  # long tables fold, still in the page for search and screen readers
        return f"<details><summary>Table: {escape(c.title)} ({len(c.rows)} rows)</summary>{table}</details>"
    return table


def _numeric(v: str) -> bool:
    return bool(v) and (v[0].isdigit() or v[0] == "-" and len(v) > 1)


def figure(c: Chart | None, missing: str = "") -> str:
    if c is None:
        return f'<p class="sub">{escape(missing)}</p>' if missing else ""
    note = f"<figcaption>{escape(c.note)}</figcaption>" if c.note else ""
    return f'<figure id="fig-{c.id}"><h3>{escape(c.title)}</h3><div class="svgwrap">{svg(c)}</div>{note}{_table(c)}</figure>'


def _tile(label: str, value: str, detail: str, key: str = "", raw=None) -> str:
    data = f' data-key="{escape(key)}" data-value="{escape(str(raw))}"' if key else ""
    return f'<div class="tile"{data}><span>{escape(label)}</span><b>{escape(value)}</b><span>{escape(detail)}</span></div>'


def _how(source: dict) -> str:
    return "measured" if source["kind"] == "measured" else "estimated"


def tiles(r: Report) -> str:
    fit, acc, m = r.fit.to_dict(), r.accuracy, r.measure or {}
    out = [f'<div class="tile" data-key="fit.verdict" data-value="{escape(fit["verdict"])}"><span>fit</span>'
           f'<b class="{escape(fit["verdict"])}">{escape(fit["verdict"])}</b><span>{escape(r.quantization.mode)} '
           f'on {escape(r.quantization.runtime)}</span></div>']
    for key, label in (("flash", "flash"), ("ram", "RAM")):
        side = fit[key]
        out.append(_tile(label, format_bytes(side["needed_bytes"]),
                         f"{100 * side['used_fraction']:.2f} % of {format_bytes(side['budget_bytes'])}, "
                         f"{_how(side['source'])}", f"fit.{key}.needed_bytes", side["needed_bytes"]))
    if acc is not None and acc.quantized is not None:
        ref = f"float {100 * acc.float:.2f} %" if acc.float is not None else "no float reference"
        out.append(_tile("top-1 accuracy", f"{100 * acc.quantized:.2f} %", ref, "accuracy.quantized", acc.quantized))
    if m.get("time_ms_median") is not None:
        out.append(_tile("latency on the device", f"{m['time_ms_median']:.3f} ms",
                         f"median {m['cycles_median']:,.0f} {m['cycles_unit']}", "measure.time_ms_median",
                         m["time_ms_median"]))
    if m.get("bit_exact_fraction") is not None:
        out.append(_tile("bit-exact on the device", f"{100 * m['bit_exact_fraction']:.1f} %",
                         f"{m['bit_exact_samples']} of {m['samples']} samples", "measure.bit_exact_fraction",
                         m["bit_exact_fraction"]))
    return '<div class="tiles">' + "".join(out) + "</div>"


LEGEND = ('<p class="legend">Drawn<span class="sw meas"></span>solid: measured'
          '<span class="sw est"></span>hatched, dashed outline: estimated. Hover a shape for its figure and '
          'source; the table under each chart holds the same figures.</p>')


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}" data-section="{sid}"><h2>{escape(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{sid}">{escape(t)}</a>' for sid, t in nav)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p><nav>{links}</nav>{LEGEND}{body}"
            "</main></body></html>\n")


def _plan_figures(plan: dict | None) -> str:
    if not plan:
        return ""
    head = (f'<p>The planner built {len(plan["candidates"])} candidates (objective: {escape(plan["objective"])}); '
            f'chosen: <b data-key="plan.chosen">{escape(str(plan["chosen"]))}</b>. {escape(plan.get("reason") or "")}'
            "</p>")
    return head + "".join(figure(c) for c in charts.candidate_charts(plan)) + \
        figure(charts.layer_error_chart(plan), "No per-layer error analysis: the planner runs it only when it "
                                               "tries mixed precision.")


def native_table(m: dict | None) -> str:
    """A phone's or Linux board's figures from the native harness as HTML tables (the same rows as
    report.md: edgeq.report.markdown.format_native)."""
    native = (m or {}).get("native")
    return _tables(format_native(native)) if native else ""


def estimated_cycles_table(m: dict | None) -> str:
    """The estimated cycle band (report.md's rows, every figure marked estimated), or nothing."""
    band = (m or {}).get("estimated_cycles")
    return f'<div class="estimate">{_tables(format_estimated_cycles(band))}</div>' if band else ""


def _tables(lines: list[str]) -> str:
    """Markdown table rows and sentences as HTML tables and paragraphs."""
    html = []
    table: list[str] = []
    for line in lines + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            head, *rows = [[escape(c.strip().strip("*")) for c in row.strip("|").split("|")] for row in table
                           if not set(row) <= set("|-: ")]
            html.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows) + "</table>")
            table = []
        if line:
            html.append(f"<p>{escape(line.replace('**', ''))}</p>")
    return "".join(html)


def render_html(r: Report, plan: dict | None = None) -> str:
    """report.html for a deploy (report.json), with plan.json's candidates when the planner ran."""
    m, p = r.model, r.profile
    status, reason = (r.device.status, r.device.reason) if r.device else (None, None)
    sections = [
        section("fit", "Fit at a glance", tiles(r) + figure(charts.fit_chart(r))),
        section("memory", "Memory over time",
                figure(charts.arena_chart(r), "No edgeq-c arena plan in this report (the model was not compiled "
                                              "by edgeq-c, or the report predates memory.edgeq_c_plan).")
                + figure(charts.arena_sizes_chart(r))),
        section("layers", "Per-layer profile", figure(charts.profile_chart(r.measure)) +
                figure(charts.layer_chart(r), "Per-layer figures: not measured (no edgeq-c plan in this report).")),
        section("accuracy", "Accuracy",
                figure(charts.accuracy_chart(r), f"Not measured: {r.not_measured}." if r.not_measured else "")
                + _plan_figures(plan)),
    ]
    if status == "measured" or r.measure:
        ms = r.measure or {}
        facts = (f'<p>{ms.get("samples", 0)} of {ms.get("samples_planned", 0)} samples measured on '
                 f'{escape(p.display_name)} ({escape(str(ms.get("runtime")))}), against the '
                 f'{escape(str(ms.get("reference")))} interpreter: <b data-key="measure.bit_exact_samples">'
                 f'{ms.get("bit_exact_samples")}</b> bit-exact.</p>')
        body = facts + (native_table(r.measure) or
                        figure(charts.device_chart(r.measure), "No counts per inference were measured."))
        body += estimated_cycles_table(r.measure)
        if status == "failed":
            body += f'<p class="does-not-fit">The run failed: {escape(str(reason))}</p>'
    else:
        body = f'<p>Not measured on the device: {escape(str(reason or "the device was not reached"))}.</p>'
    sections.append(section("device", "On the device", body))
    if r.warnings:
        sections.append(section("warnings", "Warnings", "<ul>" + "".join(
            f"<li>{escape(w)}</li>" for w in r.warnings) + "</ul>"))
    nav = [("fit", "Fit"), ("memory", "Memory"), ("layers", "Layers"), ("accuracy", "Accuracy"),
           ("device", "On the device")]
    sub = (f"{m.name} ({m.format}) on {p.display_name}, {p.core} @ {p.clock_mhz:g} MHz; "
           f"{r.quantization.mode} on {r.quantization.runtime}; edgeq {r.edgeq_version}")
    return page(f"edgeq report: {m.name} on {p.name}", sub, nav, "".join(sections))


def render_plan_html(plan: dict) -> str:
    """plan.html for `edgeq plan`: the candidates, from plan.json alone."""
    body = section("accuracy", "Candidates", _plan_figures(plan))
    sub = f"{plan['model']} on {plan['profile']}: {plan.get('reason') or ''}"
    return page(f"edgeq plan: {plan['model']} on {plan['profile']}", sub, [("accuracy", "Candidates")], body)


def render_measure_html(m: dict, title: str) -> str:
    """The page for `edgeq measure`, from measure.json (the report's `measure` section)."""
    body = section("device", "On the device", f'<p><b data-key="measure.bit_exact_samples">{m["bit_exact_samples"]}'
                   f'</b> of {m["samples"]} samples bit-exact against the {escape(m["reference"])} interpreter.</p>'
                   + (native_table(m) or figure(charts.device_chart(m))) + estimated_cycles_table(m)
                   + figure(charts.device_accuracy_chart(m))
                   + figure(charts.profile_chart(m)))
    return page(title, f"{m['runtime']} firmware, {m['samples']} samples", [("device", "On the device")], body)
