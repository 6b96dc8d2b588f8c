"""Quantization-aware training on Keras 3: the model is fine-tuned through a simulation of the very
plan it will be deployed with (edgeq.convert.qat_graph), then exported with every kernel on its
deployed grid, so that the normal conversion path gives back the integers that were trained.

Activation ranges come from the plan's observer (min/max, percentile, MSE) on the calibration
data, seen as the converter's calibrator sees them: the float activations of the model with its
weights on the grid. They are observed again after every epoch, so the ranges trained with are
those the export is calibrated with. Training: towards the float model's own outputs
(distillation), Adam with cosine decay at each of a few learning rates from the same start, early
stopping on a held-out split of the training data, the best epoch of the best rate kept, stopped
early too when the time budget would be passed.

A float fine-tune of the same budget, quantized the same way, is the control: what training alone,
without the simulation, would have given back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edgeq.convert.calibrate import make_observer
from edgeq.convert.qat_graph import clip_weights_by_mse, float_export, qat_model, unsupported_layers
from edgeq.errors import BadInput

# distillation: the weight of the float model's own outputs in the targets, beside the labels.
# learning_rates: each is tried from the same start, the budget shared; the one whose best epoch has
# the lowest held-out loss is kept (the right rate differs from model to model by 10x).
SETTINGS = {"max_epochs": 40, "batch_size": 32, "learning_rates": [1e-3, 3e-4, 1e-4], "patience": 5,
            "holdout": 0.15, "distillation": 1.0, "seed": 0}
BUDGET_S = 120.0
MIN_EPOCHS = 3  # fewer than this in the budget is not worth training: the trial epoch says so


@dataclass
class Trained:
    model: object  # the float Keras model, weights on the deployed grid
    epochs: int
    seconds: float
    stop_reason: str
    history: dict = field(default_factory=dict)


def outputs_probabilities(model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"


def _check(model) -> None:
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "_inbound_nodes"):
        raise BadInput("quantization-aware training needs a Keras 3 model (.keras, or .h5 Keras 3 reads)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BadInput(f"quantization-aware training takes a model with one input and one output; this one has "
                       f"{len(model.inputs)} and {len(model.outputs)}")


def observe_ranges(trained, quantizers, x: np.ndarray, calibration: str, float_weights: bool = False) -> None:
    """Each activation quantizer's range from the plan's observer over the float activations of the
    model as it is now (weights on the grid, activations not), as the calibrator will see the
    export; with `float_weights`, as it saw the float model (post-training quantization). The model
    input keeps its min/max, as the deployed model does."""
    import keras

    weighted = [layer for layer in trained.layers if hasattr(layer, "on_grid")]
    for layer in weighted:
        layer.on_grid.assign(0.0 if float_weights else 1.0)
    for q in quantizers:
        q.enabled.assign(0.0)
    probe = keras.Model(trained.inputs, [q.input for q in quantizers])
    values = probe.predict(x, batch_size=256, verbose=0)
    values = values if isinstance(values, (list, tuple)) else [values]
    for q, v in zip(quantizers, values):
        if q.fixed is not None:
            q.min.assign(q.fixed[0])
            q.max.assign(q.fixed[1])
            q.enabled.assign(1.0)
            continue
        observer = make_observer("minmax" if getattr(q, "is_input", False) else calibration).observe(v)
        lo, hi = observer.range()
        lo, hi = min(float(np.min(lo)), 0.0), float(np.max(hi))
        if q.grid.symmetric:  # int16: zero point 0, the range the larger side's
            hi = max(-lo, hi)
            lo = -hi
        q.min.assign(lo)
        q.max.assign(max(hi, lo + 1e-6))
        q.enabled.assign(1.0)
    for layer in weighted:
        layer.on_grid.assign(1.0)


def _split(x: np.ndarray, y: np.ndarray, holdout: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(round(len(x) * holdout)))
    if len(x) - cut < 1:
        raise BadInput(f"quantization-aware training needs more than {len(x)} training samples")
    return x[order[cut:]], y[order[cut:]], x[order[:cut]], y[order[:cut]]


def targets(teacher, x: np.ndarray, y: np.ndarray, distillation: float, probabilities: bool) -> np.ndarray:
    """Soft targets: the labels, mixed with the float model's own class probabilities. What is lost
    to quantization is the float model's behaviour, and its outputs say more per sample than a
    label does (knowledge distillation)."""
    out = teacher.predict(x, batch_size=256, verbose=0).astype(np.float64)
    if not probabilities:
        out = np.exp(out - out.max(axis=-1, keepdims=True))
        out /= out.sum(axis=-1, keepdims=True)
    onehot = np.eye(out.shape[-1])[y]
    return ((1.0 - distillation) * onehot + distillation * out).astype(np.float32)


def fit(model, x: np.ndarray, y: np.ndarray, settings: dict, learning_rate: float, budget_s: float,
        probabilities: bool, on_epoch=None) -> tuple[int, str, dict]:
    """Fine-tune `model` (compiled here) on x and soft targets y (`targets`); returns the epochs run,
    why it stopped and its history. `probabilities`: the model ends in a softmax (else logits)."""
    import keras

    s = settings
    train_x, train_y, hold_x, hold_y = _split(x, y, s["holdout"], s["seed"])
    steps = max(1, int(np.ceil(len(train_x) / s["batch_size"])))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps * s["max_epochs"])
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=not probabilities),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    stop = {"reason": f"{s['max_epochs']} epochs (the most it trains)"}
    start = time.perf_counter()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if on_epoch is not None:
                on_epoch()
            spent = time.perf_counter() - start
            per_epoch = spent / (epoch + 1)
            if epoch == 0 and per_epoch * MIN_EPOCHS > budget_s:
                self.model.stop_training = True
                stop["reason"] = (f"over budget: the first epoch took {per_epoch:.1f} s, {MIN_EPOCHS} would take "
                                  f"{per_epoch * MIN_EPOCHS:.0f} s > {budget_s:g} s")
            elif spent + per_epoch > budget_s:
                self.model.stop_training = True
                stop["reason"] = f"time budget ({budget_s:g} s)"

    class Patience(keras.callbacks.EarlyStopping):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if self.model.stop_training and self.stopped_epoch:
                stop["reason"] = f"early stopping: no better held-out loss in {s['patience']} epochs"

    keras.utils.set_random_seed(s["seed"])
    history = model.fit(train_x, train_y, batch_size=s["batch_size"], epochs=s["max_epochs"], verbose=0,
                        validation_data=(hold_x, hold_y), shuffle=True,
                        callbacks=[Budget(), Patience(monitor="val_loss", patience=s["patience"],
                                                      restore_best_weights=True)])
    return len(history.history["loss"]), stop["reason"], {k: [round(float(v), 5) for v in vals]
                                                          for k, vals in history.history.items()}


def fit_best(model, x: np.ndarray, y: np.ndarray, settings: dict, budget_s: float, probabilities: bool,
             on_epoch=None) -> tuple[int, str, dict, float]:
    """`fit` at each of the settings' learning rates from the same start, in one shared budget; the
    model is left with the weights of the run whose best held-out loss is lowest. Returns that run's
    epochs, stop reason and history, and its learning rate."""
    start, initial, best = time.perf_counter(), model.get_weights(), None
    rates = settings["learning_rates"]
    for i, rate in enumerate(rates):
        share = (budget_s - (time.perf_counter() - start)) / (len(rates) - i)
        if share <= 0:
            break
        model.set_weights(initial)
        epochs, reason, history = fit(model, x, y, settings, rate, share, probabilities, on_epoch)
        loss = min(history["val_loss"])
        if best is None or loss < best[0]:
            best = (loss, (epochs, reason, history, rate), model.get_weights())
    model.set_weights(best[2])
    return best[1]


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1) == y))


def train_quantized(model, mode: str, per_channel: bool, calibration: str, x: np.ndarray, y: np.ndarray,
                    calib_x: np.ndarray, val: tuple[np.ndarray, np.ndarray], settings: dict = SETTINGS,
                    budget_s: float = BUDGET_S) -> tuple[Trained, dict]:
    """QAT of `model` for the plan (mode, per_channel, calibration). Returns the trained float model
    (weights on the grid) and what plan.json records: the simulation's accuracy on the validation
    data before and after training (step 0 is compared with the deployed PTQ model's)."""
    _check(model)
    trained, quantizers = qat_model(model, mode, per_channel)
    observe_ranges(trained, quantizers, calib_x, calibration, float_weights=True)
    before = _accuracy(trained, *val)  # step 0: the deployed PTQ model, simulated
    clip_weights_by_mse(trained)
    observe_ranges(trained, quantizers, calib_x, calibration)
    clipped = _accuracy(trained, *val)
    start = time.perf_counter()
    probabilities = outputs_probabilities(model)
    soft = targets(model, x, y, settings["distillation"], probabilities)
    epochs, reason, history, rate = fit_best(
        trained, x, soft, settings, budget_s, probabilities,
        on_epoch=lambda: observe_ranges(trained, quantizers, calib_x, calibration))
    observe_ranges(trained, quantizers, calib_x, calibration)
    record = {"sim_accuracy_before": before, "sim_accuracy_clipped": clipped,
              "sim_accuracy_after": _accuracy(trained, *val), "learning_rate": rate,
              "not_simulated": unsupported_layers(model)}
    return Trained(float_export(trained, mode, per_channel), epochs, time.perf_counter() - start, reason,
                   history), record


def train_float(model, x: np.ndarray, y: np.ndarray, settings: dict = SETTINGS, budget_s: float = BUDGET_S) -> Trained:
    """The control: the float model fine-tuned with the same settings and budget, no simulation."""
    import keras

    _check(model)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    start = time.perf_counter()
    probabilities = outputs_probabilities(model)
    soft = targets(model, x, y, settings["distillation"], probabilities)
    epochs, reason, history, rate = fit_best(copy, x, soft, settings, budget_s, probabilities)
    return Trained(copy, epochs, time.perf_counter() - start, reason, dict(history, learning_rate=rate))
