"""The planner's last resorts when no post-training plan is feasible: AdaRound, then
quantization-aware training, both for the plan closest to feasible of those that fit the memory.

AdaRound (edgeq.convert.adaround) needs no labels and runs first. Training runs only when that is
not feasible either and labelled training data was given (`--train`). Both take the closest plan's
mode, weight granularity and calibration, without transforms (they do what CLE and bias
correction do), run in edgeq's worker process (edgeq.isolate), and hand their model to the very
Builder the post-training candidates came from, so the deployed weights are the grid they chose.
plan.json's `adaround` and `qat` say what was done, for how long and why it stopped, how closely the
simulation matched the deployed PTQ model before training (step 0), and what training recovered
against a float fine-tune of the same budget (the control).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

import edgeq.convert.qat as qat
import edgeq.plan.evaluate as plan_eval
from edgeq import console
from edgeq.convert.converter import convert
from edgeq.errors import BadInput, EdgeqError
from edgeq.isolate import contained
from edgeq.load import check_dataset, load_model, read_arrays
from edgeq.plan.evaluate import Spec

TRAINABLE_MODES = ("int8", "int4w", "int16x8")


def qat_spec(base: Spec) -> Spec:
    """The spec QAT trains for, from the closest post-training candidate's."""
    if base.mode not in TRAINABLE_MODES:
        raise BadInput(f"quantization-aware training simulates {', '.join(TRAINABLE_MODES)} plans; the closest "
                       f"candidate is {base.mode}")
    return Spec(base.mode, base.per_channel, base.calibration, qat=True)


def training_data(model, train_spec: str):
    """The training inputs and integer class labels, checked against the model."""
    arrays = read_arrays(train_spec)
    train = check_dataset(arrays.inputs, arrays.labels, model.inputs, train_spec, model.outputs)
    if not train.has_class_labels:
        raise BadInput(f"{train_spec}: quantization-aware training needs integer class labels as 'y'")
    if len(train.x) < 2:
        raise BadInput(f"{train_spec}: quantization-aware training needs more than one sample")
    return np.asarray(train.x.single), np.asarray(train.y).astype(np.int64), arrays.sha256()


def _deployed(builder: plan_eval.Builder, source, keras_model, spec: Spec) -> bytes:
    """A trained float Keras model, in place of `source`'s (an edgeq.load.Model), through the
    planner's conversion path for `spec` (no QAT)."""
    float_tflite = convert(dataclasses.replace(source, keras=keras_model), "fp32", in_worker=False)
    plain = Spec(spec.mode, spec.per_channel, spec.calibration)
    return plan_eval.Builder(dataclasses.replace(builder.inputs, float_tflite=float_tflite)).build(plain)[0]


def _adaround_job(inputs_path: str, model_path: str, spec: Spec) -> tuple[bytes, dict]:
    from edgeq.convert.adaround import adaround

    builder = plan_eval.builder_from(inputs_path)
    source = load_model(model_path)
    rounded, record = adaround(source.keras, spec.mode, spec.per_channel, np.asarray(builder.inputs.calib_x.single))
    return _deployed(builder, source, rounded, spec), record


def _job(inputs_path: str, model_path: str, spec: Spec, x: np.ndarray, y: np.ndarray, settings: dict,
         budget_s: float) -> tuple[bytes, dict]:
    builder = plan_eval.builder_from(inputs_path)
    inputs = builder.inputs
    if inputs.val_y is None:
        raise BadInput("quantization-aware training measures its simulation on labelled validation data (--val)")
    source = load_model(model_path)
    val = (np.asarray(inputs.val_x.single), np.asarray(inputs.val_y).astype(np.int64))
    calib = np.asarray(inputs.calib_x.single)
    trained, record = qat.train_quantized(source.keras, spec.mode, spec.per_channel, spec.calibration, x, y, calib,
                                          val, settings, budget_s)
    tflite = _deployed(builder, source, trained.model, spec)
    control = qat.train_float(source.keras, x, y, settings, budget_s)
    control_tflite = _deployed(builder, source, control.model, spec)
    record.update(epochs=trained.epochs, seconds=round(trained.seconds, 2), stop_reason=trained.stop_reason,
                  history=trained.history,
                  control={"what": "the float model fine-tuned with the same settings and budget, then quantized "
                                   "with the same plan", "epochs": control.epochs,
                           "seconds": round(control.seconds, 2), "stop_reason": control.stop_reason,
                           "accuracy": builder.accuracy(Spec(spec.mode, spec.per_channel, spec.calibration),
                                                        control_tflite)["accuracy"]})
    return tflite, record


def train(session, spec: Spec, train_spec: str, budget_s: float) -> tuple[bytes, dict]:
    """QAT for `spec` in edgeq's worker: the deployed .tflite and what plan.json records of it."""
    model = session.model
    if model.keras is None:
        raise BadInput(f"{model.path}: quantization-aware training needs a Keras model (.keras or .h5); "
                       "export a PyTorch model's QAT through litert-torch's PT2E quantizer instead")
    x, y, sha = training_data(model, train_spec)
    start = time.perf_counter()
    tflite, record = contained("quantization-aware training", str(model.path), _job, str(session.inputs_file()),
                               str(Path(model.path)), spec, x, y, dict(qat.SETTINGS), budget_s)
    record.update(train_sha256=sha, train_samples=len(x), wall_seconds=round(time.perf_counter() - start, 2))
    return tflite, record


def summary(spec: Spec, record: dict, before, best, after, float_accuracy: float | None) -> dict:
    """plan.json's `qat`: the plan trained, how, and what it recovered of the PTQ drop of `before`
    (the same plan, post-training) and of `best` (the best post-training candidate that fits), on
    the deployed model with the planner's harness, beside the control's."""
    bits = {"int8": 8, "int4w": 4, "int16x8": 8}[spec.mode]

    def recovered(accuracy, ptq=before):
        if accuracy is None or ptq is None or float_accuracy is None or ptq.accuracy is None:
            return None
        lost = float_accuracy - ptq.accuracy
        return round((accuracy - ptq.accuracy) / lost, 4) if lost > 0 else None

    after_accuracy = after.accuracy if after is not None else None
    step0 = record.get("sim_accuracy_before")
    gap = (None if step0 is None or before is None or before.accuracy is None
           else round(100 * (step0 - before.accuracy), 2))
    control = record.get("control") or {}
    granularity = {"int8": "per-channel" if spec.per_channel else "per-tensor", "int16x8": "per-channel",
                   "int4w": "int4 per channel in CONV_2D, per tensor in FULLY_CONNECTED; int8 per channel in "
                            "DEPTHWISE_CONV_2D"}[spec.mode]
    return {
        "plan": {"mode": spec.mode, "weight_bits": bits, "granularity": granularity,
                 "calibration": spec.calibration},
        "settings": dict(qat.SETTINGS), "epochs": record.get("epochs"), "seconds": record.get("seconds"),
        "stop_reason": record.get("stop_reason"), "train_sha256": record.get("train_sha256"),
        "float_accuracy": float_accuracy,
        "ptq_accuracy": before.accuracy if before is not None else None,
        "sim_accuracy_before": step0, "sim_vs_deployed_gap_pp": gap,
        "accuracy": after_accuracy, "recovered_fraction": recovered(after_accuracy),
        # Against the best post-training candidate that fits (transforms included), not only the same plan's.
        "best_ptq": {"name": best.name, "accuracy": best.accuracy} if best is not None else None,
        "recovered_fraction_vs_best_ptq": recovered(after_accuracy, best),
        "learning_rate": record.get("learning_rate"), "sim_accuracy_clipped": record.get("sim_accuracy_clipped"),
        "control": dict(control, recovered_fraction=recovered(control.get("accuracy"))),
        "not_simulated": record.get("not_simulated", []),
        "before": before.to_dict() if before is not None else None,
        "after": after.to_dict() if after is not None else None,
    }


def _nearest_fitting(candidates: list):
    """The candidate closest to the float model of those that fit the memory and miss only the
    tolerance: rounding and training change accuracy, not size."""
    return min((c for c in candidates if c.fits_memory and c.problems),
               key=lambda c: (tuple(-v for v in c.fidelity()), c.flash_bytes, c.name), default=None)


def adaround_stage(session, candidates: list, build) -> tuple[list, dict | None]:
    """Stage 3a, without labels: the plan closest to feasible with AdaRound's roundings, built and
    measured by `build(specs)` as every candidate is. Returns it and plan.json's `adaround`."""
    near = _nearest_fitting(candidates)
    if near is None or near.spec.mode not in TRAINABLE_MODES or session.model.keras is None:
        return [], None
    spec = Spec(near.spec.mode, near.spec.per_channel, near.spec.calibration, adaround=True)
    cached = session.lookup("adaround", spec)
    if cached is None:
        with console.stage("plan", f"AdaRound for {near.spec.mode}, on the calibration data"):
            try:
                tflite, record = contained("AdaRound", str(session.model.path), _adaround_job,
                                           str(session.inputs_file()), str(Path(session.model.path)), spec)
            except EdgeqError as exc:
                return [], {"error": str(exc).splitlines()[0]}
        session.store("adaround", spec, record, tflite)
    else:
        record, tflite = cached
    session.add_prebuilt(spec, tflite, [f"AdaRound: {record['iterations']} steps a layer, {record['seconds']:g} s"])
    found = build([spec])
    return found, dict(record, name=spec.name, accuracy=found[0].accuracy)


def stage(session, request, candidates: list, build) -> tuple[list, dict]:
    """The planner's stage 3b for `candidates` none of which is feasible: the trained candidate
    (built and measured by `build(specs)`, as every candidate is) and plan.json's `qat`. Cached like
    any candidate, by the training data, the settings and the budget too."""
    near = _nearest_fitting([c for c in candidates if not c.spec.adaround])
    if near is None:
        return [], {"error": "no post-training candidate fits the memory and misses only the tolerance: "
                             "training cannot make a model smaller"}
    try:
        spec = qat_spec(near.spec)
    except BadInput as exc:
        return [], {"error": str(exc), "closest": near.name}
    plain = Spec(spec.mode, spec.per_channel, spec.calibration)
    before = next((c for c in candidates if c.spec == plain and c.fits_memory), near)
    session.fingerprint = dict(session.fingerprint, train=read_arrays(request.train).sha256(),
                               qat=qat.SETTINGS, qat_budget_s=request.qat_budget_s)
    cached = session.lookup("qat", spec)
    if cached is None:
        with console.stage("plan", f"quantization-aware training for {plain.name}, budget {request.qat_budget_s:g} s"):
            try:
                tflite, record = train(session, spec, request.train, request.qat_budget_s)
            except EdgeqError as exc:  # no Keras model, unlabelled data, a layer it cannot train: say so
                return [], {"error": str(exc).splitlines()[0], "closest": near.name}
        session.store("qat", spec, record, tflite)
    else:
        record, tflite = cached
    session.add_prebuilt(spec, tflite, [f"quantization-aware training for {plain.name}: {record['epochs']} epochs in "
                                        f"{record['seconds']:g} s, stopped by {record['stop_reason']}"])
    found = build([spec])
    best = _nearest_fitting(candidates)  # AdaRound's candidate included: it is post-training too
    return found, summary(spec, record, before, best, found[0], (before.record or {}).get("float_accuracy"))
