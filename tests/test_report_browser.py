"""report.html of a real deploy of the digits example to qemu-mps2-an386, opened in headless
Chromium (Debian's, driven by Playwright): no console errors, no network requests, each section
present with the numbers of report.json; the screenshot stays in the output folder as report.png.

`make test` installs chromium (scripts/ensure-browser.sh) and playwright (the `test` extra)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, opened

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs chromium (make toolchain installs it)"),
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs qemu-system-arm and arm-none-eabi-gcc"),
]


def _digits(tmp: Path) -> Path:
    """The digits example as `make demo` trains it, trained here when it is not there yet."""
    artifacts = ROOT / "examples" / "digits" / "artifacts"
    if (artifacts / "digits.keras").is_file():
        return artifacts
    subprocess.run([sys.executable, str(ROOT / "examples" / "digits" / "train.py"), "--out", str(tmp)],
                   check=True, capture_output=True, timeout=600)
    return tmp


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    digits = _digits(tmp_path_factory.mktemp("digits"))
    out = tmp_path_factory.mktemp("deploy") / "digits-qemu-mps2-an386"
    result = subprocess.run([sys.executable, "-m", "edgeq", "deploy", str(digits / "digits.keras"),
                             "--device", "qemu-mps2-an386", "--data", str(digits / "calib.npz"),
                             "--val", str(digits / "val.npz"), "--samples", "60", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def page(deployed, tmp_path_factory):
    with opened(deployed / "report.html", deployed / "report.png", tmp_path_factory.mktemp("chromium")) as seen:
        yield seen


def test_the_report_opens_offline_without_errors_and_leaves_a_screenshot(deployed, page):
    tab, errors, requests = page
    assert errors == [] and requests == []
    assert (deployed / "report.png").stat().st_size > 10_000
    assert tab.evaluate("document.querySelectorAll('script, link, img').length") == 0


def test_each_section_is_there_with_report_json_numbers(deployed, page):
    tab, _, _ = page
    r = json.loads((deployed / "report.json").read_text())
    plan = json.loads((deployed / "plan.json").read_text())
    for sid in ("fit", "memory", "layers", "accuracy", "device"):
        assert tab.locator(f'section[data-section="{sid}"] svg').count() >= 1, sid

    def value(key: str) -> str:
        return tab.get_attribute(f'[data-key="{key}"]', "data-value")

    assert value("fit.verdict") == r["fit"]["verdict"] == "fits"
    assert int(value("fit.flash.needed_bytes")) == r["fit"]["flash"]["needed_bytes"] == r["build"]["flash_used_bytes"]
    assert int(value("fit.ram.needed_bytes")) == r["fit"]["ram"]["needed_bytes"]
    assert float(value("accuracy.quantized")) == r["accuracy"]["quantized"]
    assert float(value("measure.time_ms_median")) == r["measure"]["time_ms_median"]
    fit_table = tab.inner_text('table[data-table="fit"]')
    assert f"{r['fit']['flash']['needed_bytes']:,} B" in fit_table
    arena = r["memory"]["edgeq_c_plan"]
    assert tab.locator('svg[data-chart="arena"] rect.box').count() == len(arena["buffers"]["rows"]) + len(
        arena["scratch"]["rows"])
    assert f"peak: step {arena['peak_step']}" in tab.inner_text('section[data-section="memory"]')
    assert f"{r['memory']['tflm_arena_head_bytes']:,} B" in tab.inner_text('table[data-table="arenas"]')
    layers = tab.inner_text('table[data-table="layers"]')
    assert all(f"{row[3]:,}" in layers for row in arena["steps"]["rows"])
    assert f"{100 * r['accuracy']['float']:.2f} %" in tab.inner_text('table[data-table="accuracy"]')
    assert tab.inner_text('[data-key="plan.chosen"]') == plan["chosen"]
    built = [c for c in plan["candidates"] if c["accuracy"] is not None and c["latency_ms_estimated"] is not None]
    assert tab.locator('svg[data-chart="candidates-latency"] circle').count() == len(built)
    assert tab.locator('svg[data-chart="candidates-latency"] circle.chosen').count() == 1
    device = tab.inner_text('section[data-section="device"]')
    assert f"{r['measure']['cycles_median']:,.0f} instructions" in device
    assert tab.inner_text('[data-key="measure.bit_exact_samples"]') == str(r["measure"]["bit_exact_samples"])


def test_edgeq_report_writes_the_same_page_again_without_rerunning(deployed):
    before = (deployed / "report.html").read_bytes()
    (deployed / "report.html").unlink()
    result = subprocess.run([sys.executable, "-m", "edgeq", "report", str(deployed), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == ["report.html", "report.md"]
    assert (deployed / "report.html").read_bytes() == before
