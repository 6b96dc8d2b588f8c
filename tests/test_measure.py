"""Host measurements: the TFLM arena, LiteRT accuracy and latency, on real models."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.load import Dataset
from edgeq.measure.interpreters import Outputs, compare, parse_arena_report, run_litert, tflm_arena

# TFLM's recording allocator on a 64-bit host, as shared/models/README.md lists it.
MLPERF_ARENAS = {"kws_ref_model.tflite": 24_272, "vww_96_int8.tflite": 103_680,
                 "pretrainedResnet_quant.tflite": 55_984, "ad01_int8.tflite": 3_984}


@pytest.mark.parametrize("name", sorted(MLPERF_ARENAS))
def test_tflm_arena_equals_the_recording_allocators_total_for_the_reference_models(shared_models, name):
    arena = tflm_arena((shared_models / name).read_bytes())
    assert arena.total_bytes == MLPERF_ARENAS[name] == arena.head_bytes + arena.tail_bytes


def test_smallest_arena_is_one_tflm_can_allocate_in_and_16_bytes_less_is_not(shared_models):
    from edgeq.measure.interpreters import _allocates_in_child

    tflite = (shared_models / "ad01_int8.tflite").read_bytes()
    smallest = tflm_arena(tflite).smallest_bytes
    assert _allocates_in_child(tflite, smallest) and not _allocates_in_child(tflite, smallest - 16)


def test_arena_report_parser_reads_the_three_summary_lines():
    text = ("[RecordingMicroAllocator] Arena allocation total 24272 bytes\n"
            "[RecordingMicroAllocator] Arena allocation head 16000 bytes\n"
            "[RecordingMicroAllocator] Arena allocation tail 8272 bytes\n")
    arena = parse_arena_report(text)
    assert (arena.total_bytes, arena.head_bytes, arena.tail_bytes) == (24272, 16000, 8272)


def test_arena_report_without_a_summary_is_an_error():
    with pytest.raises(ValueError, match="no arena summary"):
        parse_arena_report("nothing here")


def test_accuracy_agreement_and_sqnr_of_a_quantized_classifier():
    y = np.array([0, 1, 2, 1])
    data = Dataset(x=np.zeros((4, 1), np.float32), y=y, source="t")
    float_out = Outputs(values=(np.eye(3, dtype=np.float32)[[0, 1, 2, 2]],), raw=())
    quant_out = Outputs(values=(np.eye(3, dtype=np.float32)[[0, 1, 1, 2]] * 0.9,), raw=())
    acc = compare(float_out, quant_out, data)
    assert (acc.float_accuracy, acc.quantized_accuracy, acc.agreement) == (0.75, 0.5, 0.75)
    assert np.isfinite(acc.sqnr_db)


def test_with_several_outputs_each_is_compared_the_labels_score_theirs_and_the_worst_sqnr_is_the_models():
    y = np.array([0, 1, 2, 1])
    data = Dataset(x=np.zeros((4, 1), np.float32), y=y, source="t", label_output=1)
    boxes = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    scores = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    float_out = Outputs(values=(boxes, scores), raw=(), names=("boxes", "scores"))
    quant_out = Outputs(values=(boxes + 0.05, scores), raw=(), names=("boxes", "scores"))
    acc = compare(float_out, quant_out, data)
    assert [o.name for o in acc.outputs] == ["boxes", "scores"] and acc.label_output == 1
    assert acc.quantized_accuracy == acc.float_accuracy == 1.0 and acc.outputs[1].sqnr_db == float("inf")
    assert acc.sqnr_db == acc.outputs[0].sqnr_db < 30


def test_int8_model_runs_in_litert_with_inputs_quantized_by_its_own_parameters(small_cnn_path, small_data):
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    model = load_model(small_cnn_path)
    calib = load_dataset(str(small_data["calib"]), model.input)
    val = load_dataset(str(small_data["val"]), model.input)
    float_out = run_litert(convert(model, "fp32"), val)
    int8_out = run_litert(convert(model, "int8", calib), val)
    assert int8_out.raw[0].dtype == np.int8 and float_out.values[0].shape == int8_out.values[0].shape == (20, 10)
    assert compare(float_out, int8_out, val).sqnr_db > 15
