"""Shared fixtures: small real models built here, and the reference models when ../shared has them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf-tiny"
# The TFLM source tree the TFLM firmware compiles from (docs/device-loop.md); a TFLM_DIR already set wins.
SHARED_TFLM = Path(__file__).resolve().parents[1].parent / "shared" / "tflm"
if not os.environ.get("TFLM_DIR") and SHARED_TFLM.is_dir():
    os.environ["TFLM_DIR"] = str(SHARED_TFLM)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"reference models not present ({SHARED_MODELS})")
    return SHARED_MODELS


def build_small_cnn(input_shape=(8, 8, 1), classes=10, seed=0):
    """A small untrained CNN with every layer type a microcontroller model has."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape, name="input_layer"),  # named: the tests' messages do not depend on their order
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(classes, activation="softmax"),
    ])


@pytest.fixture(scope="session")
def small_cnn_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small_cnn.keras"
    build_small_cnn().save(path)
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> dict[str, Path]:
    """Calibration and labelled validation sets for the small CNN's (8, 8, 1) input."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("data")
    calib = folder / "calib.npz"
    val = folder / "val.npz"
    np.savez(calib, x=rng.random((32, 8, 8, 1), dtype=np.float32))
    np.savez(val, x=rng.random((20, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, 20))
    return {"calib": calib, "val": val}


@pytest.fixture(scope="session")
def small_cnn_int8(small_cnn_path, small_data) -> bytes:
    """The small CNN quantized to int8 by the real converter, calibrated on small_data's set."""
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    model = load_model(small_cnn_path)
    return convert(model, "int8", load_dataset(str(small_data["calib"]), model.input))


class _Forbidden(AssertionError):
    """A test of a pure stage started a program or opened a serial port."""


@pytest.fixture
def no_processes(monkeypatch):
    """For tests of pure stages: starting any program (every one goes through subprocess.Popen,
    edgeq.tools' door included), forking, or opening a serial port fails the test."""
    import os
    import subprocess

    import serial

    def refuse(what: str):
        def refused(*args, **kwargs):
            raise _Forbidden(f"a pure stage tried to {what}: {args[:1]!r}")
        return refused

    monkeypatch.setattr(subprocess, "Popen", refuse("start a program"))
    monkeypatch.setattr(os, "fork", refuse("fork"))
    monkeypatch.setattr(serial.Serial, "open", refuse("open a serial port"))
    monkeypatch.setattr(serial, "serial_for_url", refuse("open a serial port"))


# Both start and stop Ray on this machine (`ray stop --force` ends every Ray process), so they never overlap.
_SHARES_A_PROCESS = {"test_sweep.py": "ray", "test_sweep_cluster.py": "ray"}


def pytest_xdist_make_scheduler(config, log):
    """Under `pytest -n N` (make test) a test module runs whole in one process, so its module fixtures
    (converted models, trained networks, built firmware) are made once; the Ray modules share one.
    (pytest-xdist's own --dist loadgroup does not group under pytest 9; _split_scope is 3.8's, pinned.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return _SHARES_A_PROCESS.get(Path(module).name, module)

    return ByModule(config, log)
