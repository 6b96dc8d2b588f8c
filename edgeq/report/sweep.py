"""sweep.html and the terminal table of `edgeq sweep`, drawn from sweep.json alone.

The page: the matrix (a row a model and quantization, a column a device; each cell its fit,
latency, accuracy, flash and RAM, linking its own report.html), a latency-against-accuracy chart per
device with its Pareto front, and every cell's figures, where it ran and how long it took.
Estimated figures carry ESTIMATE_MARK and are drawn hollow, as in report.html.
"""

from __future__ import annotations

from html import escape

from edgeq.report.charts import Chart, Point
from edgeq.report.html import figure, page, section
from edgeq.sources import ESTIMATE_MARK, source_text
from edgeq.units import format_bytes


def _measured(cell: dict, key: str) -> bool:
    return ((cell.get("figures") or {}).get("sources", {}).get(key) or {}).get("kind") == "measured"


def _figure(cell: dict, key: str, text: str) -> str:
    """`text` for the figure `key` of `cell`, marked when it was estimated."""
    return text if _measured(cell, key) else ESTIMATE_MARK + text


def _latency(cell: dict) -> str:
    ms = (cell.get("figures") or {}).get("latency_ms")
    return "-" if ms is None else _figure(cell, "latency_ms", f"{ms:,.3f} ms")


def _quality(cell: dict) -> str:
    f = cell.get("figures") or {}
    if f.get("accuracy") is not None:
        return f"{100 * f['accuracy']:.2f} %"
    return f"{f['sqnr_db']:.1f} dB" if f.get("sqnr_db") is not None else "-"


def _bytes(cell: dict, key: str) -> str:
    n = (cell.get("figures") or {}).get(key)
    return "-" if n is None else _figure(cell, key, format_bytes(n))


def _status(cell: dict) -> str:
    return cell["status"] if cell["status"] != "failed" else f"failed (exit {cell['exit_code']})"


def _rows(doc: dict) -> list[tuple[str, str]]:
    """The matrix's rows: (model, quantization) in the request's order."""
    return list(dict.fromkeys((c["model"], c["quant"]) for c in doc["cells"]))


def _matrix(doc: dict) -> str:
    devices = doc["request"]["devices"]
    by = {(c["model"], c["quant"], c["device"]): c for c in doc["cells"]}
    head = "<th>model</th><th>quantization</th>" + "".join(f"<th>{escape(d)}</th>" for d in devices)
    body = []
    for model, quant in _rows(doc):
        cells = []
        for device in devices:
            c = by.get((model, quant, device))
            if c is None:
                cells.append("<td></td>")
                continue
            f = c.get("figures") or {}
            status = "fits" if c["status"] == "done" else c["status"]
            lines = [f'<b class="{escape(c["status"])}">{escape(status if c["status"] != "failed" else _status(c))}'
                     "</b>"]
            if f:
                lines.append(f"{escape(f.get('mode') or '')} on {escape(f.get('runtime') or '')}")
                lines.append(f"latency {escape(_latency(c))}, {escape(_quality(c))}")
                lines.append(f"flash {escape(_bytes(c, 'flash_bytes'))}, RAM {escape(_bytes(c, 'ram_bytes'))}")
            if c.get("error") and c["status"] == "failed":
                lines.append(f'<span class="sub">{escape(c["error"].splitlines()[0][:160])}</span>')
            if c.get("report"):
                lines.append(f'<a href="{escape(c["report"])}">report</a>')
            cells.append(f'<td class="cell" data-cell="{escape(c["name"])}" data-status="{escape(c["status"])}">'
                         + "".join(f"<div>{line}</div>" for line in lines) + "</td>")
        body.append(f"<tr><td>{escape(model)}</td><td>{escape(quant)}</td>{''.join(cells)}</tr>")
    return (f'<div class="tablewrap"><table data-table="matrix"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def device_chart(doc: dict, device: str) -> Chart | None:
    """Accuracy (or SQNR) against latency for `device`'s cells, the Pareto front marked."""
    cells = [c for c in doc["cells"] if c["device"] == device and (c.get("figures") or {}).get("latency_ms")
             is not None and _quality(c) != "-"]
    if not cells:
        return None
    labelled = any((c["figures"]).get("accuracy") is not None for c in cells)
    if labelled:
        cells = [c for c in cells if c["figures"].get("accuracy") is not None]
    front = set(doc.get("pareto", {}).get(device, ()))
    points, rows = [], []
    for c in cells:
        f = c["figures"]
        y = 100 * f["accuracy"] if labelled else f["sqnr_db"]
        fits = c["status"] == "done"
        note = "on the Pareto front" if c["name"] in front else ("" if fits else _status(c))
        points.append(Point(f"{c['model']} ({c['quant']})", f["latency_ms"], y, _measured(c, "latency_ms"),
                            feasible=fits, note=note, front=c["name"] in front, link=c.get("report") or ""))
        rows.append((c["name"], _latency(c), _quality(c), "yes" if c["name"] in front else "", _status(c)))
    y_label, y_unit = ("top-1 accuracy", "%") if labelled else ("output SQNR", "dB")
    return Chart(f"sweep-{device}", f"{device}: {y_label} against latency", "points", "latency", "ms",
                 tuple(points), ("cell", "latency", y_label, "Pareto front", "status"), tuple(rows),
                 y_label=y_label, y_unit=y_unit,
                 note="Ringed in green and joined: the Pareto front, the cells no other cell on this device beats in "
                      "both latency and accuracy. Hollow: latency estimated; grey: does not fit or failed. Click a "
                      "point for its report.")


def _cells_table(doc: dict) -> str:
    head = ("cell", "status", "mode", "runtime", "latency", "latency source", "est. cycles", "accuracy", "flash",
            "RAM", "bit-exact", "node", "attempts", "seconds", "reused")
    rows = []
    for c in doc["cells"]:
        f = c.get("figures") or {}
        src = (f.get("sources") or {}).get("latency_ms")
        where = c.get("where") or {}
        values = (c["name"], _status(c), f.get("mode") or "-", f.get("runtime") or "-", _latency(c),
                  source_text(src) if src else "-",
                  f"{ESTIMATE_MARK}{f['cycles_ms_estimated']:,.3f} ms" if f.get("cycles_ms_estimated") else "-",
                  _quality(c), _bytes(c, "flash_bytes"), _bytes(c, "ram_bytes"),
                  f"{100 * f['bit_exact_fraction']:.1f} %" if f.get("bit_exact_fraction") is not None else "-",
                  f"{where.get('host', '-')} {str(where.get('node', ''))[:8]}", str(c.get("attempts", 1)),
                  f"{c.get('seconds', 0):.1f}", "yes" if c.get("reused") else "")
        link = f'<a href="{escape(c["report"])}">{escape(c["name"])}</a>' if c.get("report") else escape(c["name"])
        rows.append(f'<tr data-row="{escape(c["name"])}"><td>{link}</td>'
                    + "".join(f"<td>{escape(v)}</td>" for v in values[1:]) + "</tr>")
    return (f'<div class="tablewrap"><table data-table="cells"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _nodes(n: int) -> str:
    return "no Ray needed" if n == 0 else f"{n} node" + ("s" if n > 1 else "")


def render_sweep_html(doc: dict) -> str:
    s, request = doc["summary"], doc["request"]
    title = f"edgeq sweep: {len(request['models'])} models on {len(request['devices'])} devices"
    subtitle = (f"{s['cells']} cells: {s['done']} fit, {s['does-not-fit']} do not fit, {s['failed']} failed; "
                f"{s['reused']} from an earlier run, {s['retried']} retried; {doc['seconds']:.1f} s on Ray "
                f"({doc['cluster']['address']}, {_nodes(len(doc['cluster']['nodes']))}); edgeq {doc['edgeq_version']}")
    charts = "".join(figure(device_chart(doc, d), f"{d}: no cell has both a latency and an accuracy.")
                     for d in request["devices"])
    body = (section("matrix", "The matrix", _matrix(doc))
            + section("pareto", "Latency against accuracy, per device", charts)
            + section("cells", "Every cell", _cells_table(doc)))
    return page(title, subtitle, [("matrix", "matrix"), ("pareto", "latency vs accuracy"), ("cells", "cells")], body)


def format_sweep_table(doc: dict) -> str:
    """The terminal's view: a row a cell."""
    head = ("cell", "status", "mode on runtime", "latency", "accuracy", "flash", "RAM")
    rows = [head]
    for c in doc["cells"]:
        f = c.get("figures") or {}
        runs = f"{f['mode']} on {f['runtime']}" if f.get("mode") else "-"
        rows.append((c["name"], _status(c), runs, _latency(c), _quality(c), _bytes(c, "flash_bytes"),
                     _bytes(c, "ram_bytes")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [c for c in doc["cells"] if c["status"] != "done" and c.get("error")]
    lines += [f"{c['name']}: {c['error'].splitlines()[0]}" for c in failed]
    return "\n".join(lines) + f"\n{ESTIMATE_MARK} estimated (from what: sweep.html and each cell's report)"
