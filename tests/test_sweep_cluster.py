"""`edgeq sweep` on real Ray clusters: a head and a worker node started with `ray start` on
127.0.0.1, each advertising a board, get the cells bound to their own board; and a worker process
killed mid-cell loses no finished cell, its cell run again on another worker."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEVICES = ("qemu-mps2-an386", "qemu-mps2-an385")
RAY = Path(sys.executable).with_name("ray")

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs qemu-system-arm and arm-none-eabi-gcc"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict) -> None:
    result = subprocess.run([str(RAY), *args], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def two_nodes(tmp_path):
    """A head node with board:<first device> and a worker node with board:<second device>, one CPU each;
    stopped afterwards. Token authentication on, as a cluster that accepts jobs should be."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    try:
        _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
             "--include-dashboard=false", f"--resources={json.dumps({f'board:{DEVICES[0]}': 1})}", env=env)
        _ray("start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             f"--resources={json.dumps({f'board:{DEVICES[1]}': 1})}", env=env)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_every_cell_bound_to_a_board_runs_on_the_node_that_advertises_it(two_nodes, tmp_path, small_cnn_path,
                                                                          small_data):
    address, env = two_nodes
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "edgeq", "sweep", str(small_cnn_path),
                             "--device", ",".join(DEVICES), "--quant", "int8", "--data", str(small_data["calib"]),
                             "--val", str(small_data["val"]), "--samples", "2", "--no-cycles", "--address", address,
                             "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((out / "sweep.json").read_text())
    nodes = {board: n["node"] for n in doc["cluster"]["nodes"] for board in n["boards"]}
    assert len(doc["cluster"]["nodes"]) == 2 and set(nodes) == {f"board:{d}" for d in DEVICES}
    assert len(doc["cells"]) == len(DEVICES)
    for cell in doc["cells"]:
        assert cell["status"] == "done" and cell["resource"] == f"board:{cell['device']}"
        assert cell["where"]["node"] == nodes[cell["resource"]], cell["name"]


def _cell_processes() -> list[int]:
    """Ray worker processes running a cell: Ray names a worker's process after the task it runs."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::cell_task"):
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return found


def test_a_worker_killed_mid_cell_loses_no_finished_cell_and_its_cell_is_run_again(tmp_path, small_cnn_path,
                                                                                   small_data):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edgeq", "sweep", str(small_cnn_path), "--device", ",".join(DEVICES),
                             "--quant", "int8", "--data", str(small_data["calib"]), "--samples", "2", "--no-cycles",
                             "--workers", "1", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 600
        while not list((out / "cells").glob("*/cell.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        first = next((out / "cells").glob("*/cell.json"))
        kept = first.read_bytes()
        running = []
        while not running and time.monotonic() < deadline:
            running = _cell_processes()
            time.sleep(0.05)
        assert len(running) == 1
        os.kill(running[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout + stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert [c["status"] for c in doc["cells"]] == ["done"] * len(DEVICES)
    assert first.read_bytes() == kept
    retried = [c for c in doc["cells"] if c["attempts"] == 2]
    assert len(retried) == 1 and retried[0]["where"]["pid"] != running[0]
    assert doc["summary"]["retried"] == 1
