"""The runtimes behind one interface: what each says of itself and of a model, asked the same way by
the planner, deploy, the device loop and the report."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgeq.boards import board_params_for
from edgeq.device.loop import measure_run
from edgeq.device.measure import REFERENCE_INTERPRETERS
from edgeq.errors import BadInput
from edgeq.files import write_files
from edgeq.graph import read_graph
from edgeq.modes import MODES, USER_MODES
from edgeq.profiles import get_profile
from edgeq.runtimes import NAMES, RUNTIMES, choose_runtime, get_runtime, runtimes_of


@pytest.mark.parametrize("name", NAMES)
def test_every_runtime_names_its_reference_interpreter_cost_section_and_preferred_modes(name):
    runtime = get_runtime(name)
    assert runtime.name == name and runtime.label
    assert runtime.reference in REFERENCE_INTERPRETERS
    assert runtime.costs.key == name
    assert set(runtime.preferred_modes) <= set(MODES) and set(runtime.mode_refusals) <= set(USER_MODES)


def test_an_unknown_runtime_is_refused_listing_the_known_ones():
    with pytest.raises(BadInput, match=r"unknown runtime 'cmsis-nn' \(choose one of: tflm, edgeq-c, litert\)"):
        get_runtime("cmsis-nn")


def test_a_profiles_runtimes_come_in_its_order_of_preference():
    assert [r.name for r in runtimes_of(get_profile("host"))] == ["edgeq-c", "tflm", "litert"]
    assert choose_runtime(get_profile("qemu-mps2-an386")) is RUNTIMES["edgeq-c"]


def test_the_mcu_runtimes_refuse_fp16_and_say_why_while_litert_runs_it():
    profile = get_profile("host")
    assert "float16" in get_runtime("edgeq-c").refuses_mode("fp16")
    assert "fp16" in get_runtime("tflm").refuses_mode("fp16")
    assert get_runtime("litert").refuses_mode("fp16") is None
    assert get_runtime("litert").default_mode(get_profile("pixel-8")) == "int8"
    assert get_runtime("edgeq-c").default_mode(profile) == "int8"


def test_each_runtime_prepares_a_model_it_runs_without_a_refusal_and_fits_it(small_cnn_int8):
    profile = get_profile("qemu-mps2-an386")
    graph = read_graph(small_cnn_int8)
    for runtime in runtimes_of(profile):
        prepared = runtime.prepare(profile, small_cnn_int8, graph, "small.tflite")
        assert prepared.refusal is None, runtime.name
        fit = runtime.fit(profile, prepared, small_cnn_int8)
        assert fit.verdict == "fits" and fit.ram.needed_bytes > 0
        assert runtime.arena_figure in runtime.memory(prepared)


def test_tflm_refuses_an_op_it_lacks_naming_the_op_and_its_index(small_cnn_int8):
    graph = read_graph(small_cnn_int8)
    gelu = dataclasses.replace(graph, operators=[dataclasses.replace(graph.operators[0], opcode="GELU"),
                                                 *graph.operators[1:]])
    refusal = get_runtime("tflm").refusal(small_cnn_int8, gelu)
    assert refusal.startswith("op 'GELU' (index 0) is not supported by TensorFlow Lite Micro")


def test_board_parameters_are_computed_once_per_profile():
    profile = get_profile("qemu-mps2-an505")
    assert board_params_for(profile) is board_params_for(profile)


def test_measuring_a_firmware_reads_its_steps_and_macs_from_the_manifest_and_compiles_nothing(small_cnn_int8,
                                                                                            tmp_path, monkeypatch):
    files = get_runtime("edgeq-c").project(get_profile("qemu-mps2-an386"), small_cnn_int8, "m")
    write_files(tmp_path, {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()})

    def no_compiling(*args, **kwargs):
        raise AssertionError("measuring compiled the model again")

    import edgeq.aot

    monkeypatch.setattr(edgeq.aot, "compile_model", no_compiling)
    monkeypatch.setattr(edgeq.aot, "_compile", no_compiling)
    run = measure_run(tmp_path, None, None, tmp_path / "m.jsonl")
    manifest = json.loads(files["edgeq-firmware.json"])
    assert run.macs == sum(s["macs"] for s in manifest["steps"]) > 0
    assert [s.kernel for s in run.steps] == [s["kernel"] for s in manifest["steps"]]
    assert (run.runtime, run.reference, run.cycles_unit) == ("edgeq-c", "tflite-micro", "instructions")
