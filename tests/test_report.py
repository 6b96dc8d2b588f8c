"""The fit verdict, where each of its figures came from, and the reports' arithmetic."""

from __future__ import annotations

from edgeq.measure.fit import (
    EDGEQ_C_CODE_BYTES_ESTIMATE,
    TFLM_CODE_BYTES_ESTIMATE,
    edgeq_c_fit,
    linked_fit,
    litert_fit,
    tflm_fit,
)
from edgeq.profiles import get_profile
from edgeq.report import render_markdown
from edgeq.units import format_bytes as kb


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


def test_the_markdown_fit_table_marks_an_estimate():
    fit = tflm_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=1000, arena_bytes=4096).to_dict()
    report = {
        "model": {"name": "m", "path": "m.keras", "format": "keras", "sha256": "0" * 64,
                  "input": {"shape": [1, 4], "dtype": "float32"}, "ops": ["FULLY_CONNECTED"]},
        "profile": {"name": "p", "display_name": "P", "core": "cortex-m4", "clock_mhz": 80.0,
                    "flash_bytes": 1 << 20, "ram_bytes": 1 << 18, "ram_for_model_bytes": 1 << 17},
        "quantization": {"mode": "int8", "description": "int8", "runtime": "tflm", "reason": "r",
                         "calibration": {"source": "x", "samples": 1}},
        "size": {"float_tflite_bytes": 4000, "tflite_bytes": 1000, "ratio": 0.25},
        "memory": {}, "fit": fit,
        "accuracy": {"samples": 1, "data": "x", "float": None, "quantized": None, "drop_pp": None,
                     "agreement": 1.0, "sqnr_db": 30.0},
        "latency": {"host_ms_median": 0.1, "host_ms_p95": 0.2, "runs": 5, "threads": 1},
        "warnings": [],
    }
    flash_row = next(line for line in render_markdown(report).splitlines() if line.startswith("| flash |"))
    assert "**estimated**" in flash_row
