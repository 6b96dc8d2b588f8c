"""Stage 12, the reports: report.json for machines, report.md and report.html for people, all
from one typed Report (`schema.py`, docs/report-schema.md).

`markdown.py` writes report.md; `charts.py` turns a Report (and plan.json) into chart data (bars,
boxes, points); `html.py` draws those as one self-contained page; `sweep.py` draws `edgeq sweep`'s
sweep.json as sweep.html and its terminal table.
"""

from edgeq.report.html import render_html, render_measure_html, render_plan_html
from edgeq.report.markdown import device_lines, format_measure, render_markdown
from edgeq.report.schema import SCHEMA_VERSION, Report
from edgeq.report.sweep import format_sweep_table, render_sweep_html

__all__ = ["SCHEMA_VERSION", "Report", "device_lines", "format_measure", "format_sweep_table", "render_html",
           "render_markdown", "render_measure_html", "render_plan_html", "render_sweep_html", "report_files"]


def report_files(report: Report, plan: dict | None = None) -> dict[str, bytes]:
    """report.json, report.md and report.html for a deploy, from one Report (and plan.json's)."""
    return {"report.json": report.to_json().encode(), "report.md": render_markdown(report).encode(),
            "report.html": render_html(report, plan).encode()}
