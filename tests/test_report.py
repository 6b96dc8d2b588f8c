"""The fit verdict and the reports' arithmetic."""

from __future__ import annotations

from edgeq.profiles import get_profile
from edgeq.report import TFLM_CODE_BYTES_ESTIMATE, assess_fit, kb


def test_model_within_flash_and_ram_fits():
    fit = assess_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=100_000, arena_bytes=50_000)
    assert fit.verdict == "fits" and fit.reasons() == []
    assert fit.flash.needed_bytes == 100_000 + TFLM_CODE_BYTES_ESTIMATE


def test_arena_larger_than_ram_left_for_the_model_does_not_fit_and_says_by_how_much():
    profile = get_profile("arduino-nano-33-ble-sense")
    fit = assess_fit(profile, tflite_bytes=10_000, arena_bytes=profile.ram_for_model_bytes + 1)
    assert fit.verdict == "does-not-fit"
    assert fit.reasons() == [f"RAM: {kb(profile.ram_for_model_bytes + 1)} needed (tensor arena) > "
                             f"{kb(profile.ram_for_model_bytes)} left for the model"]


def test_model_larger_than_flash_does_not_fit():
    profile = get_profile("rpi-pico")
    fit = assess_fit(profile, tflite_bytes=profile.memory.flash_bytes, arena_bytes=1000)
    assert fit.verdict == "does-not-fit" and fit.reasons()[0].startswith("flash:")


def test_used_fraction_is_needed_over_budget():
    fit = assess_fit(get_profile("nucleo-l4r5zi"), tflite_bytes=1000, arena_bytes=65_536)
    assert abs(fit.ram.used_fraction - 65_536 / get_profile("nucleo-l4r5zi").ram_for_model_bytes) < 1e-12


def test_sizes_print_in_binary_units():
    assert (kb(512), kb(2048), kb(3 * 1024 * 1024)) == ("512 B", "2.0 KB", "3.00 MB")
