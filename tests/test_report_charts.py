"""report.json and plan.json as chart data: which bars, boxes and points a given report produces,
and the page drawn from them (self-contained, every chart with its table)."""

from __future__ import annotations

import re

import pytest

from edgeq.report import Report, charts
from edgeq.report.html import render_html, render_plan_html
from edgeq.report.svg import nice_ticks

pytestmark = pytest.mark.usefixtures("no_processes")

MEASURED = {"kind": "measured", "by": "the size tool on the linked firmware image"}
ESTIMATED = {"kind": "estimated", "from": "the .tflite plus 64 KB for TFLM's code"}


def arena_plan() -> dict:
    """Three steps: the input (tensor 0) read by step 0, which writes tensor 1 over it in place;
    tensor 2 from step 1, read by step 2, which writes the output (tensor 3); scratch at step 1."""
    return {
        "arena_bytes": 96, "lower_bound_bytes": 128, "alignment": 16, "strategy": "size",
        "live_bytes": [64, 96, 48, 16], "peak_step": 1,
        "steps": {"columns": ["op", "opcode", "kernel", "macs"],
                  "rows": [[0, "CONV_2D", "eq_conv_rows_s8", 1000], [1, "CONV_2D+ADD", "eq_conv_add_s8", 3000],
                           [2, "FULLY_CONNECTED", "eq_fc_s8", 500]]},
        "buffers": {"columns": ["tensor", "offset", "bytes", "first_step", "last_step"],
                    "rows": [[0, 0, 64, -1, 0], [1, 16, 48, 0, 1], [2, 64, 32, 1, 2], [3, 0, 16, 2, 3]]},
        "names": {"0": "input", "1": "conv", "2": "add", "3": "logits"},
        "in_place": {"columns": ["step", "input", "output", "kind"], "rows": [[0, 0, 1, "window_rows"]]},
        "scratch": {"columns": ["step", "offset", "bytes"], "rows": [[1, 0, 16]]},
    }


def report(**over) -> dict:
    """report.json of an edgeq-c deploy measured on its board, as a dict for each test to change."""
    r = {
        "schema_version": 3, "edgeq_version": "0.1.0",
        "model": {"path": "m.keras", "name": "m", "format": "keras", "sha256": "0" * 64,
                  "inputs": [{"name": "x", "shape": [4], "dtype": "float32"}],
                  "outputs": [{"name": "y", "shape": [3], "dtype": "float32"}],
                  "ops": ["CONV_2D", "FULLY_CONNECTED"]},
        "profile": {"name": "board", "display_name": "Board", "kind": "mcu", "core": "cortex-m4", "clock_mhz": 80,
                    "flash_bytes": 1_048_576, "ram_bytes": 262_144, "ram_for_model_bytes": 196_608, "source": ""},
        "quantization": {"mode": "int8", "description": "int8", "runtime": "edgeq-c", "reason": "r",
                         "came_quantized": False, "calibration": {"source": "c", "samples": 1, "synthetic": False}},
        "size": {"float_tflite_bytes": 40_000, "tflite_bytes": 12_000, "ratio": 0.3, "constant_bytes": 10_000,
                 "sources": {"constant_bytes": {"kind": "measured", "by": "the .tflite file"}}},
        "memory": {"edgeq_c_arena_bytes": 96, "edgeq_c_lower_bound_bytes": 128, "tflm_arena_bytes": 4816,
                   "tflm_arena_head_bytes": 1536, "tflm_arena_tail_bytes": 3280, "firmware_arena_bytes": 5312,
                   "edgeq_c_plan": arena_plan(),
                   "sources": {"edgeq_c_arena_bytes": {"kind": "measured", "by": "edgeq-c's static memory plan"}}},
        "fit": {"verdict": "fits", "reasons": [],
                "flash": {"needed_bytes": 30_000, "budget_bytes": 1_048_576, "used_fraction": 0.0286,
                          "what": "edgeq-c constants + kernels", "source": ESTIMATED},
                "ram": {"needed_bytes": 96, "budget_bytes": 196_608, "used_fraction": 0.0005,
                        "what": "edgeq-c arena", "source": MEASURED}},
        "accuracy": {"data": "v", "samples": 100, "labelled": True, "float": 0.98, "quantized": 0.97, "drop_pp": 1.0,
                     "agreement": 0.99, "sqnr_db": 30.5, "sources": {}},
        "latency": {"host_ms_median": 0.1, "host_ms_p95": 0.2, "runs": 5, "threads": 1, "interpreter": "litert",
                    "sources": {}},
        "measure": {"samples": 100, "samples_planned": 100, "runtime": "edgeq-c", "reference": "tflite-micro",
                    "accuracy": 0.97, "bit_exact_fraction": 1.0, "bit_exact_samples": 100, "cycles_unit": "instructions",
                    "cycles_min": 1000, "cycles_median": 1010, "cycles_p95": 1020, "cycles_max": 1030,
                    "clock_hz": 25_000_000, "time_ms_median": 0.0404, "cycles_per_mac": 0.22, "macs": 4500,
                    "sources": {"cycles_median": {"kind": "measured", "by": "QEMU's instruction count"}}},
        "device": {"status": "measured", "reason": None},
        "warnings": [],
    }
    r.update(over)
    return r


def typed(r: dict) -> Report:
    return Report.from_dict(r)


def plan_json() -> dict:
    def cand(name, latency_est, latency_meas, flash, acc, chosen=False, problems=(), why=None, flash_kind="measured"):
        return {"name": name, "runtime": "edgeq-c", "chosen": chosen, "accuracy": acc, "sqnr_db": 40.0,
                "flash_bytes": flash, "latency_ms_estimated": latency_est, "latency_ms_measured": latency_meas,
                "problems": list(problems), "rejected_because": why,
                "sources": {"flash_bytes": {"kind": flash_kind}}}
    return {"model": "m.keras", "profile": "board", "objective": "latency", "metric": "accuracy",
            "tolerance": {"max_accuracy_drop_pp": 1.0}, "float_accuracy": 0.98, "chosen": "int8/pc/minmax",
            "reason": "the fastest", "layer_errors": [],
            "candidates": [cand("int8/pc/minmax", 4.0, 3.5, 20_000, 0.975, chosen=True),
                           cand("int8/pt/mse", 4.2, None, 19_000, 0.96, problems=["accuracy -2.00 pp > 1"],
                                why="accuracy -2.00 pp > 1"),
                           cand("fp16", None, None, None, None, why="board does not run fp16"),
                           cand("int8/pc/minmax on tflm", 9.0, None, 90_000, 0.975, why="slower",
                                flash_kind="estimated")]}


def test_fit_bars_stack_weights_then_the_rest_and_mark_the_estimate():
    c = charts.fit_chart(typed(report()))
    flash = [b for b in c.items if b.row == "flash"]
    assert [(b.kind, b.start, b.value, b.measured) for b in flash] == [
        ("weights", 0, 10_000, True), ("rest", 10_000, 20_000, False)]
    ram = [b for b in c.items if b.row == "RAM"]
    assert [(b.kind, b.start, b.value) for b in ram] == [("arena", 0, 96), ("reserve", 196_608, 65_536)]
    assert {(m.axis, m.value) for m in c.marks} == {("flash", 1_048_576), ("RAM", 196_608)}
    assert c.x_unit == "B" and len(c.rows) == len(c.items) + 2


def test_after_a_build_the_fit_is_the_whole_device_without_a_reserve():
    r = report()
    r["fit"]["ram"] = {"needed_bytes": 17_712, "budget_bytes": 262_144, "used_fraction": 0.0676,
                       "what": "whole firmware image: arena, data and stack", "source": MEASURED}
    ram = [b for b in charts.fit_chart(typed(r)).items if b.row == "RAM"]
    assert [(b.kind, b.value, b.measured) for b in ram] == [("arena", 96, True), ("rest", 17_616, True)]


def test_arena_boxes_are_tensors_over_their_steps_with_in_place_scratch_and_peak():
    c = charts.arena_chart(typed(report()))
    boxes = {b.label.split()[1] if b.kind != "scratch" else "s": b for b in c.items}
    assert (boxes["0"].x0, boxes["0"].x1, boxes["0"].y0, boxes["0"].y1, boxes["0"].kind) == (-1, 1, 0, 64, "input")
    assert boxes["1"].kind == "in-place" and "over tensor 0 at step 0" in boxes["1"].note
    assert (boxes["3"].kind, boxes["3"].x1) == ("output", 4)
    assert (boxes["s"].x0, boxes["s"].x1, boxes["s"].y1) == (1, 2, 16)
    assert [m.value for m in c.marks] == [96, 128, 1.5] and "peak: step 1, 96 B of tensors live" in c.marks[2].label
    assert c.ticks[2] == (1.5, "1 CONV_2D+ADD") and "Fused: step 1 (CONV_2D+ADD)" in c.note
    assert (c.x_unit, c.y_unit) == ("step", "B") and len(c.rows) == 5


def test_no_arena_plan_no_arena_or_layer_chart():
    r = report()
    del r["memory"]["edgeq_c_plan"]
    assert charts.arena_chart(typed(r)) is None and charts.layer_chart(typed(r)) is None


def test_arena_sizes_put_tflm_tail_after_its_head():
    bars = {(b.row, b.kind): b for b in charts.arena_sizes_chart(typed(report())).items}
    assert (bars[("TFLM", "tail")].start, bars[("TFLM", "tail")].value) == (1536, 3280)
    assert bars[("edgeq-c", "arena")].value == 96 and bars[("edgeq-c bound", "bound")].value == 128


def test_layer_bars_are_macs_per_step_in_model_order_and_say_instructions_are_not_measured():
    c = charts.layer_chart(typed(report()))
    assert [(b.row, b.value, b.unit) for b in c.items] == [
        ("0 CONV_2D", 1000, "MACs"), ("1 CONV_2D+ADD", 3000, "MACs"), ("2 FULLY_CONNECTED", 500, "MACs")]
    assert "not measured" in c.note and "0.22 instructions per MAC" in c.note


def test_accuracy_bars_in_percent_with_sqnr_in_the_table():
    c = charts.accuracy_chart(typed(report()))
    assert [(b.row, round(b.value, 6)) for b in c.items] == [
        ("float", 98), ("quantized", 97), ("agreement", 99), ("on the device", 97)]
    assert c.rows[-1][0] == "SQNR" and c.rows[-1][2] == "30.5 dB"


def test_candidates_are_points_measured_where_the_board_ran_them_and_rejected_ones_say_why():
    by_latency, by_size = charts.candidate_charts(plan_json())
    pts = {p.label: p for p in by_latency.items}
    assert len(pts) == 3 and "fp16 on edgeq-c" not in pts and "1 candidates" in by_latency.note
    chosen = pts["int8/pc/minmax on edgeq-c"]
    assert (chosen.x, chosen.y, chosen.measured, chosen.chosen) == (3.5, 97.5, True, True)
    rejected = pts["int8/pt/mse on edgeq-c"]
    assert (rejected.x, rejected.measured, rejected.feasible, rejected.note) == (4.2, False, False,
                                                                                 "accuracy -2.00 pp > 1")
    assert by_latency.marks[0].value == 97.0 and (by_latency.x_unit, by_latency.y_unit) == ("ms", "%")
    sizes = {p.label: p for p in by_size.items}
    assert sizes["int8/pc/minmax on tflm on edgeq-c"].measured is False and by_size.x_unit == "B"


def test_device_range_runs_min_to_max_with_median_and_p95_marked():
    c = charts.device_chart(report()["measure"])
    assert [(b.start, b.value) for b in c.items] == [(1000, 30)]
    assert [m.value for m in c.marks] == [1010, 1020] and not c.from_zero
    assert charts.device_chart(None) is None


def test_byte_ticks_step_in_binary_units():
    assert nice_ticks(0, 4096, unit="B") == [0, 1024, 2048, 3072, 4096]
    assert nice_ticks(0, 1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_the_page_is_self_contained_and_every_chart_has_a_table_and_a_title():
    page = render_html(typed(report()), plan_json())
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    charts_drawn = re.findall(r'data-chart="([^"]+)"', page)
    assert charts_drawn == ["fit", "arena", "arenas", "layers", "accuracy", "candidates-latency",
                            "candidates-size", "latency"]
    for cid in charts_drawn:
        assert f'data-table="{cid}"' in page and f'aria-labelledby="t-{cid}"' in page
    assert 'url(#hatch-fit)' in page  # the estimated flash remainder is hatched
    assert "accuracy -2.00 pp &gt; 1" in page  # the rejected candidate's reason, as hover text
    for sid in ("fit", "memory", "layers", "accuracy", "device"):
        assert f'data-section="{sid}"' in page


def test_a_report_without_device_or_plan_says_what_was_not_measured():
    page = render_html(typed(report(measure=None, device={"status": "skipped", "reason": "--no-device was given"})))
    assert "Not measured on the device: --no-device was given." in page and "candidates" not in page
    assert 'data-chart="latency"' not in page


def test_the_plan_page_draws_candidates_from_plan_json_alone():
    page = render_plan_html(plan_json())
    assert page.count("<svg") == 2 and 'data-key="plan.chosen"' in page


def test_edgeq_c_weights_in_flash_are_its_generated_constants_not_the_tflites():
    r = report()
    r["memory"]["edgeq_c_constant_bytes"] = 19_000  # widened for a DSP core
    r["memory"]["sources"]["edgeq_c_constant_bytes"] = {"kind": "measured", "by": "edgeq-c's static memory plan"}
    flash = [b for b in charts.fit_chart(typed(r)).items if b.row == "flash"]
    assert [(b.kind, b.start, b.value) for b in flash] == [("weights", 0, 19_000), ("rest", 19_000, 11_000)]
    assert flash[0].label == "weights (edgeq-c's constant arrays)"
