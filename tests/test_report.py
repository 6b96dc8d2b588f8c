"""The fit verdict, where each of its figures came from, the report as a type, and the reports'
arithmetic."""

from __future__ import annotations

import json

import pytest

from edgeq.errors import BadInput
from edgeq.measure.fit import linked_fit
from edgeq.profiles import get_profile
from edgeq.report import Report, render_markdown
from edgeq.report.schema import (
    Accuracy,
    Calibration,
    DeviceInfo,
    DeviceStatus,
    Latency,
    Memory,
    ModelInfo,
    Quantization,
    Size,
    TensorDesc,
)
from edgeq.runtimes.edgeq_c import EDGEQ_C_CODE_BYTES_ESTIMATE, edgeq_c_fit
from edgeq.runtimes.litert import litert_fit
from edgeq.runtimes.tflm import TFLM_CODE_BYTES_ESTIMATE, tflm_fit
from edgeq.units import format_bytes as kb

pytestmark = pytest.mark.usefixtures("no_processes")


def test_model_within_flash_and_ram_fits():
    fit = tflm_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=100_000, arena_bytes=50_000)
    assert fit.verdict == "fits" and fit.reasons() == []
    assert fit.flash.needed_bytes == 100_000 + TFLM_CODE_BYTES_ESTIMATE


def test_arena_larger_than_ram_left_for_the_model_does_not_fit_and_says_by_how_much():
    profile = get_profile("arduino-nano-33-ble-sense")
    fit = tflm_fit(profile, tflite_bytes=10_000, arena_bytes=profile.ram_for_model_bytes + 1)
    assert fit.verdict == "does-not-fit"
    assert fit.reasons() == [f"RAM: {kb(profile.ram_for_model_bytes + 1)} needed (tensor arena) > "
                             f"{kb(profile.ram_for_model_bytes)} left for the model"]


def test_model_larger_than_flash_does_not_fit():
    profile = get_profile("rpi-pico")
    fit = tflm_fit(profile, tflite_bytes=profile.memory.flash_bytes, arena_bytes=1000)
    assert fit.verdict == "does-not-fit" and fit.reasons()[0].startswith("flash:")


def test_used_fraction_is_needed_over_budget():
    fit = tflm_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=1000, arena_bytes=65_536)
    assert abs(fit.ram.used_fraction - 65_536 / get_profile("nucleo-l4r5zi").ram_for_model_bytes) < 1e-12


def test_tflm_flash_before_the_link_is_marked_an_estimate_and_its_arena_measured():
    fit = tflm_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=1000, arena_bytes=4096).to_dict()
    assert fit["flash"]["source"]["kind"] == "estimated" and "TFLM" in fit["flash"]["source"]["from"]
    assert fit["ram"]["source"] == {"kind": "measured", "by": fit["ram"]["source"]["by"]}
    assert "AllocateTensors" in fit["ram"]["source"]["by"]


def test_edgeq_c_without_a_compiler_estimates_its_code_and_measures_its_arena():
    fit = edgeq_c_fit(get_profile("nucleo-l4r5zi"), None, None, const_bytes=5000, arena_bytes=800)
    assert fit.flash.needed_bytes == 5000 + EDGEQ_C_CODE_BYTES_ESTIMATE and not fit.flash.source.measured
    assert fit.ram.needed_bytes == 800 and fit.ram.source.measured


def test_edgeq_c_compiled_objects_are_measured_on_both_sides():
    fit = edgeq_c_fit(get_profile("nucleo-l4r5zi"), 12_000, 900, const_bytes=5000, arena_bytes=800)
    assert (fit.flash.needed_bytes, fit.ram.needed_bytes) == (12_000, 900) and fit.measured


def test_litert_ram_is_an_estimate_from_the_model_size():
    fit = litert_fit(get_profile("rpi4"), 1000)
    assert fit.flash.source.measured and not fit.ram.source.measured and fit.ram.needed_bytes == 2000


def test_the_linked_image_is_set_against_the_whole_device():
    profile = get_profile("qemu-mps2-an386")
    fit = linked_fit(profile, 40_000, 30_000)
    assert fit.measured and fit.ram.budget_bytes == profile.memory.ram_bytes
    assert fit.flash.budget_bytes == profile.memory.flash_bytes


def test_sizes_print_in_binary_units():
    assert (kb(512), kb(2048), kb(1536), kb(3 * 1024 * 1024), kb(None)) == ("512 B", "2 KB", "1.5 KB", "3 MB", "-")


def a_report(**changes) -> Report:
    """A small report as deploy makes one, on a TFLM firmware that was not measured."""
    fields = dict(
        model=ModelInfo("m.keras", "m", "keras", "0" * 64, [TensorDesc("x", [1, 4], "float32")],
                        [TensorDesc("logits", [3], "float32")], ["FULLY_CONNECTED"]),
        profile=DeviceInfo("p", "P", "mcu", "cortex-m4", 80.0, 1 << 20, 1 << 18, 1 << 17, "p.yaml"),
        quantization=Quantization("int8", "int8", "tflm", "r", False, Calibration("x", 1, False)),
        size=Size(4000, 1000, 0.25, 900, {}),
        memory=Memory({"tflm_arena_bytes": 4096, "tflm_arena_head_bytes": 3000, "tflm_arena_tail_bytes": 1096},
                      sources={"tflm_arena_bytes": {"kind": "measured", "by": "b"}}),
        accuracy=Accuracy("x", 1, False, None, None, None, 1.0, 30.0, {}),
        latency=Latency(0.1, 0.2, 5, 1, "litert", {}),
        fit=tflm_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=1000, arena_bytes=4096),
        device=DeviceStatus("skipped", "no port"), outputs={"tflite": "m_int8.tflite"}, warnings=["w"],
        edgeq_version="0.1.0")
    fields.update(changes)
    return Report(**fields)


def test_the_markdown_fit_table_marks_an_estimate():
    flash_row = next(line for line in render_markdown(a_report()).splitlines() if line.startswith("| flash |"))
    assert "**estimated**" in flash_row


def test_a_report_reads_back_from_its_json_as_the_same_report():
    report = a_report(measure={"samples": 2, "cycles_median": 10.0})
    again = Report.from_json(report.to_json())
    assert again == report and again.to_json() == report.to_json()


def test_a_runtimes_memory_figures_sit_in_the_memory_section_of_report_json():
    memory = json.loads(a_report().to_json())["memory"]
    assert memory["tflm_arena_bytes"] == 4096 and memory["flash_used_bytes"] is None
    assert memory["sources"]["tflm_arena_bytes"]["kind"] == "measured"


def test_a_report_of_another_schema_is_refused_naming_both_versions():
    data = json.loads(a_report().to_json()) | {"schema_version": 2}
    with pytest.raises(BadInput, match=r"r\.json: report schema 2, this edgeq reads schema 3"):
        Report.from_dict(data, "r.json")


def test_a_report_missing_a_section_is_refused_naming_it():
    data = json.loads(a_report().to_json())
    del data["fit"]
    with pytest.raises(BadInput, match=r"r\.json: not a report this edgeq wrote \(KeyError: 'fit'\)"):
        Report.from_dict(data, "r.json")
