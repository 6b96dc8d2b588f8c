"""`edgeq sweep`: cells keyed by content, failed cells recorded while the rest go on, finished cells
reused without starting Ray, the Pareto front per device, and sweep.html in Chromium. The sweep
runs for real: `edgeq sweep` in a subprocess, a local Ray instance, QEMU boards."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.errors import BadInput
from edgeq.profiles import get_profile
from edgeq.sweep import Options, SweepRequest
from edgeq.sweep.cells import bind, plan_cells
from edgeq.sweep.summary import pareto_front, reusable
from tests.browser import CHROMIUM, opened
from tests.interrupt import interruptible

needs_boards = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                  reason="needs qemu-system-arm and arm-none-eabi-gcc")
DEVICES = ("qemu-mps2-an386", "qemu-mps2-an385")


def sweep(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", "sweep", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def _request(models, **kw) -> SweepRequest:
    return SweepRequest(models=tuple(models), profiles=tuple(get_profile(d) for d in DEVICES), **kw)


# ---- cells, keys and the front: pure -----------------------------------------------------------

@pytest.mark.usefixtures("no_processes")
def test_a_cell_key_follows_the_content_of_model_and_data_not_their_paths(tmp_path, small_cnn_path, small_data):
    copy = tmp_path / "elsewhere.keras"
    shutil.copy(small_cnn_path, copy)
    first, moved = (plan_cells(_request([m], data=(str(small_data["calib"]),), quants=("int8",)))[0]
                    for m in (small_cnn_path, copy))
    assert first.key == moved.key
    other_data = plan_cells(_request([small_cnn_path], data=(str(small_data["val"]),), quants=("int8",)))[0]
    other_samples = plan_cells(_request([small_cnn_path], data=(str(small_data["calib"]),), quants=("int8",),
                                        options=Options(samples=3)))[0]
    assert len({first.key, other_data.key, other_samples.key}) == 3


@pytest.mark.usefixtures("no_processes")
def test_every_model_meets_every_device_and_quantization_in_order(tmp_path, small_cnn_path):
    (tmp_path / "v2").mkdir()
    other = tmp_path / "v2" / small_cnn_path.name
    shutil.copy(small_cnn_path, other)
    cells = plan_cells(_request([small_cnn_path, other, other], quants=("int8", "plan")))
    assert [c.name for c in cells][:4] == [f"{small_cnn_path.parent.name}-small_cnn-{d}-{q}"
                                           for d in DEVICES for q in ("int8", "plan")]
    assert [c.name for c in cells][4:9:4] == [f"v2-small_cnn-1-{DEVICES[0]}-int8", f"v2-small_cnn-2-{DEVICES[0]}-int8"]
    assert len({c.name for c in cells}) == 12


@pytest.mark.usefixtures("no_processes")
def test_data_is_given_once_for_all_models_or_once_per_model(small_cnn_path, small_data):
    calib = str(small_data["calib"])
    assert {c.data for c in plan_cells(_request([small_cnn_path] * 2, data=(calib,)))} == {calib}
    with pytest.raises(BadInput, match="--data was given 2 times for 3 models"):
        plan_cells(_request([small_cnn_path] * 3, data=(calib, calib)))


@pytest.mark.usefixtures("no_processes")
def test_a_real_board_with_a_port_needs_its_resource_and_an_emulated_one_only_where_advertised(small_cnn_path):
    req = SweepRequest(models=(small_cnn_path,), profiles=(get_profile("nucleo-l4r5zi"), get_profile(DEVICES[0])),
                       ports={"nucleo-l4r5zi": "/dev/ttyACM0"})
    board, emulated = plan_cells(req)
    assert board.resource == "board:nucleo-l4r5zi" and board.port == "/dev/ttyACM0"
    assert emulated.resource is None
    assert bind(emulated, {"CPU", f"board:{DEVICES[0]}"}).resource == f"board:{DEVICES[0]}"
    with pytest.raises(BadInput, match="--port rpi-pico=...: rpi-pico is not one of the sweep's devices"):
        plan_cells(dataclasses.replace(req, ports={"rpi-pico": "/dev/ttyACM0"}))


def test_the_pareto_front_keeps_the_cells_no_other_beats_in_latency_and_accuracy():
    points = [("fast", 1.0, 90.0), ("accurate", 3.0, 99.0), ("beaten", 2.0, 89.0), ("tie", 1.0, 90.0),
              ("middle", 2.0, 95.0)]
    assert pareto_front(points) == {"fast", "tie", "middle", "accurate"}


def test_a_rerun_keeps_finished_cells_and_refusals_but_retries_tool_failures():
    assert reusable({"key": "k", "status": "done", "exit_code": 0}, "k")
    assert reusable({"key": "k", "status": "does-not-fit", "exit_code": 3}, "k")
    assert reusable({"key": "k", "status": "failed", "exit_code": 2}, "k")
    assert not reusable({"key": "k", "status": "failed", "exit_code": 4}, "k")
    assert not reusable({"key": "old", "status": "done", "exit_code": 0}, "k")


# ---- a real sweep on a local Ray instance ----------------------------------------------------------

@pytest.fixture(scope="module")
def swept(tmp_path_factory, small_cnn_path, small_data):
    """small_cnn and a broken model on two emulated boards, int8, three samples each."""
    folder = tmp_path_factory.mktemp("sweep")
    shutil.copy(small_cnn_path, folder / "small.keras")
    (folder / "broken.tflite").write_bytes(b"not a flatbuffer")
    args = ("small.keras", "broken.tflite", "--device", ",".join(DEVICES), "--quant", "int8", "--data",
            str(small_data["calib"]), "--val", str(small_data["val"]), "--samples", "3", "--out", "out")
    result = sweep(*args, cwd=folder)
    return folder, args, result, json.loads((folder / "out" / "sweep.json").read_text())


@pytest.mark.emulator
@needs_boards
def test_every_cell_is_deployed_and_measured_with_its_own_report(swept):
    folder, _, _, doc = swept
    done = [c for c in doc["cells"] if c["status"] == "done"]
    assert sorted(c["device"] for c in done) == sorted(DEVICES)
    for cell in done:
        f = cell["figures"]
        assert f["sources"]["latency_ms"]["kind"] == "measured" and f["latency_ms"] > 0
        assert f["bit_exact_fraction"] == 1.0 and f["fit"] == "fits"
        assert json.loads((folder / "out" / cell["folder"] / "report.json").read_text())["device"]["status"] == \
            "measured"
        assert (folder / "out" / cell["report"]).is_file()
    assert doc["pareto"] == {d: [f"small-{d}-int8"] for d in DEVICES}


@pytest.mark.emulator
@needs_boards
def test_a_failed_cell_records_its_error_and_exit_code_and_the_rest_go_on(swept):
    _, _, result, doc = swept
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    assert [c["model"] for c in failed] == ["broken.tflite"] * 2
    assert all(c["exit_code"] == 2 and "broken.tflite: not a TensorFlow Lite flatbuffer" in c["error"]
               for c in failed)
    assert result.returncode == 2, result.stderr
    assert doc["summary"] == {"cells": 4, "done": 2, "does-not-fit": 0, "failed": 2, "reused": 0, "retried": 0}


@pytest.mark.emulator
@needs_boards
def test_a_rerun_reuses_every_finished_cell_without_starting_ray(swept):
    folder, args, _, doc = swept
    start = time.monotonic()
    again = sweep(*args, cwd=folder)
    seconds = time.monotonic() - start
    redone = json.loads((folder / "out" / "sweep.json").read_text())
    assert again.returncode == 2 and "4 from an earlier run, 0 to run" in again.stdout
    assert redone["summary"]["reused"] == 4 and redone["cluster"]["nodes"] == []
    assert [c["figures"] for c in redone["cells"]] == [c["figures"] for c in doc["cells"]]
    assert seconds < 10


@pytest.fixture(scope="module")
def page(swept, tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip("needs chromium (make browser installs it)")
    out = swept[0] / "out"
    with opened(out / "sweep.html", out / "sweep.png", tmp_path_factory.mktemp("chromium")) as seen:
        yield seen


@pytest.mark.emulator
@needs_boards
def test_sweep_html_opens_offline_with_the_matrix_a_chart_per_device_and_links_to_each_report(swept, page):
    folder, _, _, doc = swept
    tab, errors, requests = page
    assert errors == [] and requests == []
    statuses = tab.evaluate("Object.fromEntries([...document.querySelectorAll('td[data-cell]')]"
                            ".map(td => [td.dataset.cell, td.dataset.status]))")
    assert statuses == {c["name"]: c["status"] for c in doc["cells"]}
    for device in DEVICES:
        assert tab.locator(f"#fig-sweep-{device} circle.on-front").count() == 1
    for cell in (c for c in doc["cells"] if c["status"] == "done"):
        shown = tab.locator(f"td[data-cell='{cell['name']}']").inner_text()
        assert f"{cell['figures']['latency_ms']:,.3f} ms" in shown and "fits" in shown
    links = tab.evaluate("[...document.querySelectorAll('table[data-table=matrix] a')].map(a => a.href)")
    assert len(links) == 2 and all(Path(link.removeprefix("file://")).is_file() for link in links)


@pytest.mark.emulator
@needs_boards
def test_an_interrupted_sweep_keeps_its_finished_cells_and_a_rerun_finishes_the_rest(tmp_path, small_cnn_path,
                                                                                     small_data):
    import signal

    args = (str(small_cnn_path), "--device", ",".join(DEVICES), "--quant", "int8", "--data", str(small_data["calib"]),
            "--samples", "2", "--no-cycles", "--workers", "1", "--out", "out")
    proc = subprocess.Popen([sys.executable, "-m", "edgeq", "sweep", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "out" / "cells").glob("*/cell.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr
    (first,) = (tmp_path / "out" / "cells").glob("*/cell.json")
    kept = first.read_bytes()
    again = sweep(*args, cwd=tmp_path)
    assert again.returncode == 0 and "1 from an earlier run, 1 to run" in again.stdout, again.stdout + again.stderr
    assert first.read_bytes() == kept
    doc = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert doc["summary"]["done"] == 2 and doc["summary"]["reused"] == 1
