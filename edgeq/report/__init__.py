"""Stage 10, the reports: report.json for machines, report.md and report.html for people, all
from one dict (docs/report-schema.md).

`markdown.py` writes report.md; `charts.py` turns report.json (and plan.json) into chart data
(bars, boxes, points); `html.py` draws those as one self-contained page; `arena.py` is the
compact form of edgeq-c's arena plan that report.json carries for the memory chart.
"""

from edgeq.report.html import render_html, render_measure_html, render_plan_html
from edgeq.report.markdown import SCHEMA_VERSION, device_lines, format_measure, render_markdown, to_json

__all__ = ["SCHEMA_VERSION", "device_lines", "format_measure", "render_html", "render_markdown",
           "render_measure_html", "render_plan_html", "report_files", "to_json"]


def report_files(report: dict, plan: dict | None = None) -> dict[str, bytes]:
    """report.json, report.md and report.html for a deploy, from one dict (and plan.json's)."""
    return {"report.json": to_json(report).encode(), "report.md": render_markdown(report).encode(),
            "report.html": render_html(report, plan).encode()}
