"""The `edgeq` command as users run it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.interrupt import interruptible

REPORT_KEYS = ["model.sha256", "profile.name", "quantization.mode", "size.tflite_bytes",
               "memory.tflm_arena_bytes", "accuracy.float", "accuracy.quantized", "latency.host_ms_median",
               "fit.verdict"]


def edgeq(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def lookup(report: dict, dotted: str):
    value = report
    for key in dotted.split("."):
        value = value[key]
    return value


@pytest.fixture(scope="module")
def deployed(small_cnn_path, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "out"
    result = edgeq("deploy", small_cnn_path, "--device", "qemu-mps2-an386", "--data", small_data["calib"],
                   "--val", small_data["val"], "--runtime", "tflm", "--quant", "int8", "--out", out)
    return result, out


def test_deploy_succeeds_and_prints_one_line_per_stage(deployed):
    result, _ = deployed
    assert result.returncode == 0, result.stderr
    for stage in ("load", "plan", "convert", "measure", "generate"):
        assert f"\n  {stage} " in result.stdout


def test_deploy_keeps_tensorflow_log_noise_out_of_the_terminal(deployed):
    result, out = deployed
    assert "tensorflow" not in (result.stdout + result.stderr).lower()
    assert "W0000" not in result.stderr and result.stderr == ""
    assert (out / "edgeq.log").stat().st_size > 0


def test_report_json_has_the_documented_keys(deployed):
    _, out = deployed
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 3
    for key in REPORT_KEYS:
        lookup(report, key)
    assert report["profile"]["name"] == "qemu-mps2-an386" and report["quantization"]["mode"] == "int8"
    assert 0 <= report["accuracy"]["quantized"] <= 1 and report["fit"]["verdict"] == "fits"


def test_reported_arena_is_the_recording_allocators_total_for_the_produced_model(deployed):
    from edgeq.measure.interpreters import tflm_arena

    _, out = deployed
    report = json.loads((out / "report.json").read_text())
    tflite = (out / report["outputs"]["tflite"]).read_bytes()
    assert report["memory"]["tflm_arena_bytes"] == tflm_arena(tflite).total_bytes


def test_tflm_firmware_project_holds_harness_model_data_and_board(deployed):
    _, out = deployed
    firmware = out / "firmware" / "tflm"
    for name in ("main.cc", "model_data.cc", "model_data.h", "Makefile", "eq_protocol.c", "board/eq_board.h"):
        assert (firmware / name).is_file(), name
    assert (out / "report.md").read_text().startswith("# edgeq report: small_cnn on qemu-mps2-an386")


def test_no_temporary_files_are_left_in_the_output_folder(deployed):
    _, out = deployed
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_missing_model_exits_2_naming_it_and_writes_nothing(tmp_path):
    result = edgeq("deploy", tmp_path / "absent.keras", "--device", "host", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "absent.keras: no such file or directory" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["edgeq.log"]


def test_data_of_the_wrong_shape_exits_2_naming_both_shapes(tmp_path, small_cnn_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 8, 8, 3), np.float32))
    result = edgeq("deploy", small_cnn_path, "--device", "host", "--data", tmp_path / "bad.npz",
                   "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "bad.npz: sample 0 has shape (8, 8, 3) but the model input 'input_layer' is (8, 8, 1)" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["edgeq.log"]


def test_unknown_profile_exits_2_with_close_matches(tmp_path, small_cnn_path):
    result = edgeq("deploy", small_cnn_path, "--device", "nucleo-l4", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "unknown device profile 'nucleo-l4'" in result.stderr and "nucleo-l4r5zi" in result.stderr


def test_mode_the_runtime_cannot_run_is_refused_before_conversion(tmp_path, small_cnn_path):
    result = edgeq("deploy", small_cnn_path, "--device", "nucleo-l4r5zi", "--runtime", "tflm",
                   "--quant", "dynamic-int8", "--out", tmp_path / "out")
    assert result.returncode == 2 and "TFLM runs no dynamic-range" in result.stderr
    assert "convert" not in result.stdout


def test_model_too_large_for_the_device_exits_3_with_the_numbers_and_no_firmware(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # 128x128x32 int8 activations are 512 KB: more than the Nano 33 BLE's 256 KB of RAM.
    keras.Sequential([keras.Input((128, 128, 3)), keras.layers.Conv2D(32, 3, padding="same"),
                      keras.layers.GlobalAveragePooling2D()]).save(tmp_path / "wide.keras")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((4, 128, 128, 3), dtype=np.float32))
    out = tmp_path / "out"
    result = edgeq("deploy", tmp_path / "wide.keras", "--device", "arduino-nano-33-ble-sense", "--runtime", "tflm",
                   "--quant", "int8",
                   "--data", tmp_path / "calib.npz", "--out", out)
    assert result.returncode == 3, result.stderr
    assert "does not fit arduino-nano-33-ble-sense: RAM:" in result.stderr and "left for the model" in result.stderr
    assert json.loads((out / "report.json").read_text())["fit"]["verdict"] == "does-not-fit"
    assert not (out / "firmware").exists()


def test_without_calibration_data_the_random_fallback_is_loud_and_in_the_report(tmp_path, small_cnn_path):
    out = tmp_path / "out"
    result = edgeq("deploy", small_cnn_path, "--device", "host", "--runtime", "tflm", "--quant", "int8",
                   "--out", out)
    assert result.returncode == 0, result.stderr
    assert "WARNING: no calibration data given" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["calibration"]["synthetic"] is True
    assert any("no calibration data" in w for w in report["warnings"])


def test_profiles_lists_every_profile():
    from edgeq.profiles import load_profiles

    result = edgeq("profiles")
    assert result.returncode == 0
    for name in load_profiles():
        assert name in result.stdout


def test_profiles_show_prints_one_profile_and_refuses_unknown_names():
    shown = edgeq("profiles", "show", "nucleo-l4r5zi")
    assert shown.returncode == 0 and "cortex-m4" in shown.stdout.lower()
    unknown = edgeq("profiles", "show", "pixel8")
    assert unknown.returncode == 2 and "pixel-8" in unknown.stderr


def test_stage_commands_convert_measure_and_generate_chain(tmp_path, small_cnn_path, small_data):
    tflite = tmp_path / "m_int8.tflite"
    assert edgeq("convert", small_cnn_path, "--quant", "int8", "--data", small_data["calib"],
                 "--out", tflite).returncode == 0
    measured = edgeq("evaluate", tflite, "--device", "nucleo-l4r5zi", "--val", small_data["val"], "--json")
    assert measured.returncode == 0, measured.stderr
    assert json.loads(measured.stdout)["tflm_arena_bytes"] > 0
    generated = edgeq("generate", tflite, "--device", "pixel-8", "--out", tmp_path / "fw")
    assert generated.returncode == 0, generated.stderr
    assert (tmp_path / "fw" / "harness.c").is_file() and (tmp_path / "fw" / "m_int8.tflite").is_file()


def test_deploy_without_a_mode_deploys_the_planners_choice_and_keeps_plan_json(tmp_path, small_cnn_path, small_data):
    out = tmp_path / "out"
    result = edgeq("deploy", small_cnn_path, "--device", "qemu-mps2-an386", "--data", small_data["calib"],
                   "--val", small_data["val"], "--runtime", "tflm", "--no-measure", "--out", out)
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "plan.json").read_text())
    chosen = next(c for c in plan["candidates"] if c["chosen"])
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["plan"]["candidate"] == chosen["name"]


def test_plan_with_an_impossible_ram_budget_exits_3_and_still_writes_plan_json(tmp_path, small_cnn_path, small_data):
    # after the deploy above: its candidates come from the plan cache, as they do for a user who
    # plans again with another budget (the measurements do not depend on it)
    out = tmp_path / "plan"
    result = edgeq("plan", small_cnn_path, "--device", "qemu-mps2-an386", "--data", small_data["calib"],
                   "--val", small_data["val"], "--ram-budget", "64", "--out", out)
    assert result.returncode == 3, result.stderr
    assert "Closest: " in result.stderr and "It would take" in result.stderr and "--ram-budget" in result.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["candidates"] and not any(c["chosen"] for c in plan["candidates"])


def test_an_unknown_quantization_mode_is_refused_before_the_model_loads_listing_the_valid_ones(tmp_path):
    done = edgeq("convert", tmp_path / "absent.keras", "--quant", "int9", cwd=tmp_path)
    assert done.returncode == 2
    assert "int9" in done.stderr and "int16x8" in done.stderr and "absent.keras" not in done.stderr


def test_an_unknown_runtime_is_refused_listing_the_valid_ones(tmp_path):
    done = edgeq("deploy", tmp_path / "absent.keras", "--device", "host", "--runtime", "tensorrt", cwd=tmp_path)
    assert done.returncode == 2 and "edgeq-c" in done.stderr


def test_measure_refuses_a_tflite_and_names_the_command_that_takes_it(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 16)
    done = edgeq("measure", model, cwd=tmp_path)
    assert done.returncode == 2 and "edgeq evaluate" in done.stderr


def test_a_missing_float_model_is_bad_input_not_an_internal_error(tmp_path, small_cnn_path, small_data):
    assert edgeq("convert", small_cnn_path, "--quant", "fp32", "--out", tmp_path / "m.tflite").returncode == 0
    done = edgeq("evaluate", tmp_path / "m.tflite", "--device", "host", "--val", small_data["val"],
                 "--float", tmp_path / "absent.tflite", cwd=tmp_path)
    assert done.returncode == 2 and "absent.tflite" in done.stderr


def test_convert_and_generate_print_their_facts_as_json(tmp_path, small_cnn_path, small_data):
    converted = edgeq("convert", small_cnn_path, "--quant", "int8", "--data", small_data["calib"],
                      "--out", tmp_path / "m_int8.tflite", "--json")
    assert converted.returncode == 0 and json.loads(converted.stdout)["mode"] == "int8"
    generated = edgeq("generate", tmp_path / "m_int8.tflite", "--device", "qemu-mps2-an386", "--runtime", "edgeq-c",
                      "--out", tmp_path / "fw", "--json")
    assert generated.returncode == 0, generated.stderr
    facts = json.loads(generated.stdout)
    assert facts["runtime"] == "edgeq-c" and "main.c" in facts["files"]
    assert (tmp_path / "fw" / "edgeq.log").is_file()


def test_a_users_profile_folder_is_searched_and_a_bad_profile_names_its_file_and_key(tmp_path):
    import yaml

    from edgeq.resources import PROFILE_DIR

    board = yaml.safe_load((PROFILE_DIR / "qemu-mps2-an386.yaml").read_text())
    board["name"] = "my-board"
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "my-board.yaml").write_text(yaml.safe_dump(board))
    env = dict(os.environ, EDGEQ_PROFILE_PATH=str(tmp_path / "boards"))
    shown = subprocess.run([sys.executable, "-m", "edgeq", "profiles", "show", "my-board"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert shown.returncode == 0 and "my-board" in shown.stdout
    board["clock_mhz"] = "fast"
    (tmp_path / "boards" / "my-board.yaml").write_text(yaml.safe_dump(board))
    bad = subprocess.run([sys.executable, "-m", "edgeq", "profiles"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "my-board.yaml" in bad.stderr and "clock_mhz" in bad.stderr


def test_an_interrupted_deploy_exits_130_and_leaves_no_report(tmp_path, small_cnn_path, small_data):
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edgeq", "deploy", str(small_cnn_path), "--device", "host",
                             "--quant", "int8", "--data", str(small_data["calib"]), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while not (out / "edgeq.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # inside the load or the conversion
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not (out / "report.json").exists()
