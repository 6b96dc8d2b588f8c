"""edgeq works once installed from its wheel, outside the repository: the profiles, templates, C
runtime and cost coefficients travel inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edgeq.resources import REPO_ROOT

pytestmark = pytest.mark.skipif(REPO_ROOT is None, reason="needs the repository to build the wheel from")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A fresh virtualenv with the wheel installed; the pinned dependencies are borrowed from this
    environment (a .pth line), so the test needs no network and installs nothing else."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "dist"),
                    str(REPO_ROOT)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("edgeq-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEQ_PROFILE_PATH")}
    return {"python": python, "wheel": wheel, "env": env, "cwd": tmp}


def run_installed(installed, *args, cwd=None):
    return subprocess.run([str(installed["python"]), "-m", "edgeq", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or installed["cwd"], env=installed["env"], timeout=600)


def test_the_wheel_carries_profiles_templates_runtime_and_coefficients(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "edgeq/device_profiles/qemu-mps2-an386.yaml" in names
    assert "edgeq/firmware_templates/edgeq_c/model.c.j2" in names
    assert "edgeq/runtime/eq_conv_s8.c" in names
    assert "edgeq/measure/cost_coefficients.json" in names


def test_the_installed_package_is_the_one_imported(installed):
    done = subprocess.run([str(installed["python"]), "-c", "import edgeq; print(edgeq.__file__)"],
                          capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"])
    assert "venv" in done.stdout and str(REPO_ROOT) not in done.stdout


def test_installed_edgeq_lists_every_shipped_profile(installed):
    done = run_installed(installed, "profiles", "--json")
    assert done.returncode == 0, done.stderr
    import json

    names = {p["name"] for p in json.loads(done.stdout)}
    assert len(names) == len(list((REPO_ROOT / "device_profiles").glob("*.yaml")))
    assert "qemu-mps2-an386" in names


def test_installed_edgeq_generates_an_edgeq_c_project(installed, small_cnn_path, small_data, tmp_path):
    from edgeq.convert import convert
    from edgeq.load import load_dataset, load_model

    model = load_model(small_cnn_path)
    tflite = tmp_path / "small_int8.tflite"
    tflite.write_bytes(convert(model, "int8", load_dataset(str(small_data["calib"]), model.input)))
    out = tmp_path / "fw"
    done = run_installed(installed, "generate", tflite, "--device", "qemu-mps2-an386", "--runtime", "edgeq-c",
                         "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "edgeq_model.c").is_file() and (out / "board" / "startup.c").is_file()
    assert (out / "Makefile").read_text().count("arm-none-eabi-gcc") >= 1
