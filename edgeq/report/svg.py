"""Charts (edgeq.report.charts) drawn as inline SVG: no script, no library, no network.

Every SVG has a viewBox and scales to its container, so the page reads on a phone. Estimated
figures are hatched with a dashed outline; measured ones are solid. Each shape carries a
<title>, which browsers show on hover and screen readers read.
"""

from __future__ import annotations

import math
from html import escape

from edgeq.report.charts import Chart
from edgeq.units import format_bytes

W = 720  # viewBox width; the page scales it


def fmt(value: float, unit: str) -> str:
    """An axis or label number in its unit."""
    if unit == "B":
        return format_bytes(int(value))
    if unit in ("%", "ms", "dB"):
        return f"{value:,.4g} {unit}"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.4g} M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.4g} k"
    return f"{value:,.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5, unit: str = "") -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 times a power of ten apart; bytes in
    binary steps, so that the labels read 1 KB, 2 KB rather than 976.6 KB)."""
    if hi <= lo:
        hi = lo + 1
    if unit == "B" and hi - lo >= 2048:
        k = 1024 ** int(math.log(hi - lo, 1024))
        return [t * k for t in nice_ticks(lo / k, hi / k, count)]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _defs(cid: str) -> str:
    return (f'<defs><pattern id="hatch-{cid}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/>'
            f'<line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern></defs>')


def _style(cid: str, measured: bool) -> str:
    return "" if measured else f' fill="url(#hatch-{cid})" stroke-dasharray="4 2"'


def _open(c: Chart, height: float) -> str:
    return (f'<svg viewBox="0 0 {W} {height:.0f}" role="img" aria-labelledby="t-{c.id}" class="chart" '
            f'data-chart="{c.id}"><title id="t-{c.id}">{escape(c.title)}</title>{_defs(c.id)}')


def _axis_label(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit and unit not in text else text


def bars(c: Chart) -> str:
    """Horizontal bars, one row per label; bars of a row stack. Marks are vertical lines, over
    every row (axis "x") or over the row they name."""
    rows = list(dict.fromkeys(b.row for b in c.items))
    left, right, row_h, top = 170, 24, 40 if c.row_scale else 30, 8
    axis_h = 34
    height = top + len(rows) * (row_h + (18 if c.row_scale else 0)) + axis_h + 18
    out = [_open(c, height)]

    def span(items, marks) -> tuple[float, float]:
        ends = [b.start + b.value for b in items] + [m.value for m in marks]
        starts = [b.start for b in items] + [m.value for m in marks]
        lo = 0.0 if c.from_zero else min(starts)
        hi = max(ends + [lo + 1])
        if not c.from_zero:
            pad = (hi - lo) * 0.15 or abs(hi) * 0.01 or 1
            lo, hi = lo - pad, hi + pad
        ticks = nice_ticks(lo, hi, unit=c.x_unit)
        return (ticks[0] if not c.from_zero else 0.0), ticks[-1]

    def axis(y: float, lo: float, hi: float, sx) -> None:
        out.append(f'<line x1="{left}" y1="{y}" x2="{W - right}" y2="{y}" class="axis"/>')
        for t in nice_ticks(lo, hi, unit=c.x_unit):
            if lo <= t <= hi:
                out.append(f'<line x1="{sx(t):.1f}" y1="{y}" x2="{sx(t):.1f}" y2="{y + 4}" class="axis"/>'
                           f'<text x="{sx(t):.1f}" y="{y + 15}" class="tick" text-anchor="middle">'
                           f'{escape(fmt(t, c.x_unit))}</text>')

    def scale(lo: float, hi: float):
        return lambda v: left + (v - lo) / (hi - lo) * (W - left - right)

    lo, hi = span(c.items, c.marks)
    sx = scale(lo, hi)
    y = top
    for row in rows:
        items = [b for b in c.items if b.row == row]
        if c.row_scale:
            lo, hi = span(items, [m for m in c.marks if m.axis == row])
            sx = scale(lo, hi)
        out.append(f'<text x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" class="rowlabel" text-anchor="end">'
                   f'{escape(row)}</text>')
        for b in items:
            x0, x1 = sx(b.start), sx(b.start + b.value)
            width = max(x1 - x0, 2.0)  # a non-zero figure stays visible at any scale
            tip = f"{b.row}: {b.label}, {fmt(b.value, b.unit)}" + (f" ({b.source})" if b.source else "")
            out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{width:.1f}" height="{row_h - 8}" '
                       f'class="bar k-{escape(b.kind)}{"" if b.measured else " estimated"}" '
                       f'data-value="{b.value}"{_style(c.id, b.measured)}><title>{escape(tip)}</title></rect>')
        total = max(b.start + b.value for b in items)
        text = fmt(total, c.x_unit) if c.id != "latency" else ""
        out.append(f'<text x="{min(sx(total) + 6, W - right - 60):.1f}" y="{y + row_h / 2 + 4:.1f}" '
                   f'class="value">{escape(text)}</text>')
        for m in c.marks:
            if m.axis in (row, "x"):
                mx = sx(m.value)
                out.append(f'<line x1="{mx:.1f}" y1="{y}" x2="{mx:.1f}" y2="{y + row_h}" class="mark">'
                           f'<title>{escape(m.label)}</title></line>'
                           f'<text x="{mx - 3:.1f}" y="{y + 10}" class="marklabel" text-anchor="end">'
                           f'{escape(m.label)}</text>')
        y += row_h
        if c.row_scale:
            axis(y, lo, hi, sx)
            y += 18
    if not c.row_scale:
        axis(y, lo, hi, sx)
    out.append(f'<text x="{(left + W - right) / 2}" y="{height - 4}" class="axislabel" text-anchor="middle">'
               f'{escape(_axis_label(c.x_label, c.x_unit))}</text></svg>')
    return "".join(out)


def boxes(c: Chart) -> str:
    """Rectangles in (step, address): the arena plan. Address 0 at the bottom."""
    left, right, top, bottom, height = 70, 16, 12, 92, 400
    xs = [t[0] for t in c.ticks] or [0, 1]
    x_lo, x_hi = min(xs) - 0.5, max(xs) + 0.5
    y_hi = max([b.y1 for b in c.items] + [m.value for m in c.marks if m.axis == "y"] + [1])
    y_ticks = nice_ticks(0, y_hi, unit=c.y_unit)
    y_hi = y_ticks[-1]

    def sx(v):
        return left + (v - x_lo) / (x_hi - x_lo) * (W - left - right)

    def sy(v):
        return height - bottom - v / y_hi * (height - top - bottom)

    out = [_open(c, height)]
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{W - right}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">'
                   f'{escape(fmt(t, c.y_unit))}</text>')
    for b in c.items:
        x0, x1, y0, y1 = sx(b.x0), sx(b.x1), sy(b.y1), sy(b.y0)
        tip = f"{b.label}: {int(b.y1 - b.y0):,} B at offset {int(b.y0):,}, steps {b.x0:g} to {b.x1 - 1:g}" + \
              (f"; {b.note}" if b.note else "")
        out.append(f'<rect x="{x0 + 1:.1f}" y="{y0:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
                   f'height="{max(y1 - y0, 1):.1f}" class="box k-{escape(b.kind)}"{_style(c.id, b.measured)}>'
                   f'<title>{escape(tip)}</title></rect>')
    for m in c.marks:
        if m.axis == "y":
            out.append(f'<line x1="{left}" y1="{sy(m.value):.1f}" x2="{W - right}" y2="{sy(m.value):.1f}" '
                       f'class="mark"/><text x="{W - right - 2}" y="{sy(m.value) - 3:.1f}" class="marklabel" '
                       f'text-anchor="end">{escape(m.label)}</text>')
        else:
            out.append(f'<line x1="{sx(m.value):.1f}" y1="{top}" x2="{sx(m.value):.1f}" y2="{height - bottom}" '
                       f'class="mark peak"/><text x="{sx(m.value) + 4:.1f}" y="{top + 10}" class="marklabel">'
                       f'{escape(m.label)}</text>')
    base = height - bottom
    out.append(f'<line x1="{left}" y1="{base}" x2="{W - right}" y2="{base}" class="axis"/>')
    for v, label in c.ticks:
        out.append(f'<text transform="translate({sx(v):.1f},{base + 10}) rotate(40)" class="tick">'
                   f'{escape(label)}</text>')
    out.append(f'<text x="{(left + W) / 2}" y="{height - 4}" class="axislabel" text-anchor="middle">'
               f'{escape(c.x_label)}</text><text transform="translate(14,{(top + base) / 2}) rotate(-90)" '
               f'class="axislabel" text-anchor="middle">{escape(_axis_label(c.y_label, c.y_unit))}</text></svg>')
    return "".join(out)


def points(c: Chart) -> str:
    """A scatter plot: hollow dashed circles where x is estimated, filled where measured; the
    chosen point ringed and named; infeasible points grey with their reason in the hover text."""
    left, right, top, bottom, height = 76, 20, 14, 46, 340
    xs = [p.x for p in c.items] or [0, 1]
    ys = [p.y for p in c.items] + [m.value for m in c.marks if m.axis == "y"] or [0, 1]
    x_ticks = nice_ticks(min(xs) - 0.05 * (max(xs) - min(xs) or 1), max(xs) + 0.05 * (max(xs) - min(xs) or 1),
                         unit=c.x_unit)
    y_ticks = nice_ticks(min(ys) - 0.05 * (max(ys) - min(ys) or 1), max(ys) + 0.05 * (max(ys) - min(ys) or 1))

    def sx(v):
        return left + (v - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (W - left - right)

    def sy(v):
        return height - bottom - (v - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * (height - top - bottom)

    out = [_open(c, height)]
    for t in x_ticks:
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{height - bottom}" class="grid"/>'
                   f'<text x="{sx(t):.1f}" y="{height - bottom + 15}" class="tick" text-anchor="middle">'
                   f'{escape(fmt(t, c.x_unit))}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{W - right}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">'
                   f'{escape(fmt(t, c.y_unit))}</text>')
    for m in c.marks:
        out.append(f'<line x1="{left}" y1="{sy(m.value):.1f}" x2="{W - right}" y2="{sy(m.value):.1f}" class="mark"/>'
                   f'<text x="{W - right - 2}" y="{sy(m.value) + 12:.1f}" class="marklabel" text-anchor="end">'
                   f'{escape(m.label)}</text>')
    front = sorted((p for p in c.items if p.front), key=lambda p: p.x)
    if len(front) > 1:  # the front as a staircase: each step the next faster-or-better point
        steps = [f"{sx(front[0].x):.1f},{sy(front[0].y):.1f}"]
        for a, b in zip(front, front[1:]):
            steps += [f"{sx(b.x):.1f},{sy(a.y):.1f}", f"{sx(b.x):.1f},{sy(b.y):.1f}"]
        out.append(f'<polyline points="{" ".join(steps)}" class="front"/>')
    for p in sorted(c.items, key=lambda p: (p.chosen, p.front)):  # the chosen one and the front on top
        state = "chosen" if p.chosen else ("feasible" if p.feasible else "rejected")
        tip = (f"{p.label}: {fmt(p.x, c.x_unit)} ({'measured' if p.measured else 'estimated'}), "
               f"{fmt(p.y, c.y_unit)}" + (f" — {p.note}" if p.note else ""))
        dot = (f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{7 if p.chosen or p.front else 4.5}" '
               f'class="pt {state}{" on-front" if p.front else ""}{"" if p.measured else " estimated"}"'
               f'{"" if p.measured else chr(32) + "stroke-dasharray=" + chr(34) + "2 2" + chr(34)}>'
               f'<title>{escape(tip)}</title></circle>')
        out.append(f'<a href="{escape(p.link)}">{dot}</a>' if p.link else dot)
        if p.chosen:
            out.append(f'<text x="{sx(p.x) + 10:.1f}" y="{sy(p.y) - 8:.1f}" class="marklabel chosen-label">'
                       f'chosen: {escape(p.label)}</text>')
    out.append(f'<text x="{(left + W) / 2}" y="{height - 6}" class="axislabel" text-anchor="middle">'
               f'{escape(_axis_label(c.x_label, c.x_unit))}</text>'
               f'<text transform="translate(14,{(top + height - bottom) / 2}) rotate(-90)" class="axislabel" '
               f'text-anchor="middle">{escape(_axis_label(c.y_label, c.y_unit))}</text></svg>')
    return "".join(out)


def svg(c: Chart) -> str:
    return {"bars": bars, "boxes": boxes, "points": points}[c.kind](c)
