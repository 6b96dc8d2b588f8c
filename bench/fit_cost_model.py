"""Fit the planner's cost model to instruction counts measured on the four QEMU MPS2 boards.

    python bench/fit_cost_model.py [--samples 3] [--boards qemu-mps2-an386,...] [--runtimes edgeq-c,tflm] [--refit]

Builds edgeq-c firmware, and TFLM + CMSIS-NN firmware through edgeq's TFLM harness when a TFLM tree is
there ($TFLM_DIR, or ../shared/tflm), for a set of models on each board, runs it in qemu-system-arm
-icount shift=0, takes the median instructions per inference, and fits
`edgeq.measure.costmodel.Coefficients` per runtime and board by non-negative least squares
(edgeq.measure.costmodel.fit_board). Models: the digits example (int8;
trained first if its artifacts are missing), small synthetic Keras models that each stress one
kind of op (conv, depthwise, fully connected, pooling) in int8, int16x8, float32 and int4 weights
(float32 not on the AN385, which has no FPU), and the MLPerf Tiny models (int8 and float32) from
../shared/models/mlperf-tiny when present. A model a runtime refuses (an op or type it has no kernel
for, e.g. int16x8 FULLY_CONNECTED in CMSIS-NN) is skipped for that runtime. Writes
edgeq/measure/cost_coefficients.json (per runtime: date, and per board the coefficients, the models, the
measured work and counts, the error of the fit on each model) and prints predicted vs measured.

--refit fits again from the measurements already in the table, without running anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from edgeq.measure import costmodel  # noqa: E402
from edgeq.runtimes import RUNTIMES, get_runtime  # noqa: E402

BOARDS = ("qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505")
MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
SHARED_TFLM = REPO.parent / "shared" / "tflm"
MLPERF_MODELS = (("kws-int8", "kws_ref_model.tflite"), ("vww-int8", "vww_96_int8.tflite"),
                 ("resnet8-int8", "pretrainedResnet_quant.tflite"), ("ad01-int8", "ad01_int8.tflite"),
                 ("kws-fp32", "kws_ref_model_float32.tflite"), ("vww-fp32", "vww_96_float.tflite"),
                 ("resnet8-fp32", "pretrainedResnet.tflite"), ("ad01-fp32", "ad01_fp32.tflite"))
SYNTHETIC_MODES = ("int8", "int16x8", "fp32", "int4w")


def _keras_models():
    """Small models, each dominated by one kind of work, so the fit can tell them apart."""
    import keras

    keras.utils.set_random_seed(11)
    L = keras.layers
    return {
        "conv": keras.Sequential([keras.Input((20, 20, 4)), L.Conv2D(16, 3, padding="same", activation="relu"),
                                  L.Conv2D(16, 3, padding="same", activation="relu"), L.Flatten(), L.Dense(4)]),
        "depthwise": keras.Sequential([keras.Input((24, 24, 16)), L.DepthwiseConv2D(3, padding="same"),
                                       L.ReLU(), L.DepthwiseConv2D(5, padding="same"),
                                       L.AveragePooling2D(6), L.Flatten(), L.Dense(4)]),
        "fc": keras.Sequential([keras.Input((256,)), L.Dense(128, activation="relu"),
                                L.Dense(96, activation="relu"), L.Dense(10)]),
        "pool": keras.Sequential([keras.Input((32, 32, 8)), L.Conv2D(8, 1), L.MaxPooling2D(2),
                                  L.AveragePooling2D(2), L.MaxPooling2D(2), L.Flatten(), L.Dense(4),
                                  L.Softmax()]),
    }


def synthetic_models(work: Path) -> list[tuple[str, bytes]]:
    from edgeq.convert.calibrate import quantize_int4_weights
    from edgeq.convert.converter import convert
    from edgeq.load import load_model, random_dataset

    out = []
    for name, keras_model in _keras_models().items():
        path = work / f"{name}.keras"
        keras_model.save(path)
        model = load_model(path)
        calibration = random_dataset(model.input, count=32, seed=1)
        for mode in SYNTHETIC_MODES:
            if mode == "int4w":  # int4 weights, int8 activations: edgeq-c unpacks the weights as it goes
                out.append((f"{name}-int4w", quantize_int4_weights(convert(model, "fp32"), calibration.x)))
            else:
                out.append((f"{name}-{mode}", convert(model, mode, calibration if mode != "fp32" else None)))
    return out


def all_models(work: Path) -> list[tuple[str, bytes]]:
    from device_bench import digits

    models = [("digits-int8", digits()[0])] + synthetic_models(work)
    if MLPERF.is_dir():
        models += [(name, (MLPERF / file).read_bytes()) for name, file in MLPERF_MODELS]
    else:
        print(f"MLPerf Tiny models not found at {MLPERF}: digits and synthetic models only", file=sys.stderr)
    return models


def measure_instructions(name: str, tflite: bytes, board: str, work: Path, samples: int,
                         runtime: str = "edgeq-c") -> float:
    """Median instructions per inference of `runtime`'s firmware for `tflite` on a QEMU board, on
    seeded uniform inputs, built and measured as bench/device_bench.py does."""
    from device_bench import run

    from edgeq.graph import read_graph

    tensor = read_graph(tflite).input_tensors()[0]
    x = np.random.default_rng(0).uniform(0, 1, (samples, *tensor.shape[1:])).astype(np.float32)
    return float(run(name.replace("-", "_"), tflite, x, board, work, runtime)["instructions"])


def collect(boards: list[str], samples: int, runtime: str) -> dict[str, list[costmodel.Sample]]:
    from edgeq.errors import BadInput, EdgeqError
    from edgeq.graph import read_graph
    from edgeq.profiles import get_profile

    measured: dict[str, list[costmodel.Sample]] = {b: [] for b in boards}
    with tempfile.TemporaryDirectory(prefix="edgeq-fit-") as tmp:
        work = Path(tmp)
        for name, tflite in all_models(work):
            ops = costmodel.count_work(read_graph(tflite, name))
            for board in boards:
                if name.endswith("fp32") and not get_profile(board).supports("fp32"):
                    continue
                try:
                    count = measure_instructions(name, tflite, board, work, samples, runtime)
                except BadInput as exc:  # an op or type the runtime lacks: the model says nothing about the board
                    print(f"  {runtime} {name}: skipped ({str(exc).splitlines()[0]})", file=sys.stderr, flush=True)
                    break
                except (EdgeqError, RuntimeError) as exc:  # e.g. the reference interpreter refusing the model
                    print(f"  {runtime} {name} on {board}: skipped ({str(exc).splitlines()[0]})", file=sys.stderr,
                          flush=True)
                    continue
                measured[board].append(costmodel.Sample(tuple(ops), count, get_runtime(runtime).costs, name))
                print(f"  {runtime} {name} on {board}: {count:,.0f} instructions", file=sys.stderr, flush=True)
    return measured


def to_json(table: dict) -> str:
    """Indented, with each op's work (a list of scalars) on one line."""
    text = json.dumps(table, indent=1)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]",
                  text) + "\n"


def tflm_tree() -> bool:
    if not os.environ.get("TFLM_DIR") and SHARED_TFLM.is_dir():
        os.environ["TFLM_DIR"] = str(SHARED_TFLM)
    return bool(os.environ.get("TFLM_DIR"))


def format_fit(board: str, entry: dict) -> str:
    lines = [f"{board}  ({entry['coefficients']['source']})",
             f"  {'model':<18} {'measured':>13} {'predicted':>13} {'error':>8}"]
    for m in entry["models"]:
        lines.append(f"  {m['label']:<18} {m['measured']:>13,.0f} {m['predicted']:>13,.0f} {100 * m['error']:>7.1f}%")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="inputs per model and board (default 3)")
    parser.add_argument("--boards", default=",".join(BOARDS), help="comma-separated QEMU profiles")
    fitted = [r.name for r in RUNTIMES.values() if r.costs.fitted]
    parser.add_argument("--runtimes", default=",".join(fitted),
                        help="comma-separated runtimes to measure and fit (default: edgeq-c,tflm)")
    parser.add_argument("--refit", action="store_true", help="fit again from the measurements in the table")
    parser.add_argument("--out", type=Path, default=costmodel.FITTED_TABLE)
    args = parser.parse_args()
    boards = args.boards.split(",")
    runtimes = args.runtimes.split(",")
    unknown = [r for r in runtimes if r not in fitted]
    if unknown:
        parser.error(f"--runtimes: {', '.join(unknown)} not one of {', '.join(fitted)}")
    if "tflm" in runtimes and not args.refit and not tflm_tree():
        print(f"no TFLM source tree (TFLM_DIR unset, {SHARED_TFLM} absent): fitting edgeq-c only", file=sys.stderr)
        runtimes.remove("tflm")
    table = json.loads(args.out.read_text()) if args.out.is_file() else {}
    table.update(tool="bench/fit_cost_model.py", unit="instructions (qemu-system-arm -icount shift=0)")
    for runtime in runtimes:
        section = get_runtime(runtime).costs
        fits = table.setdefault("runtimes", {}).setdefault(section.key, {"boards": {}})
        if args.refit:
            measured = {b: costmodel.table_samples(fits["boards"][b], section) for b in boards}
        else:
            measured = collect(boards, args.samples, runtime)
            fits["date"] = datetime.date.today().isoformat()
        for board in boards:
            entry = costmodel.fit_board(board, measured[board], section)
            fits["boards"][board] = entry
            print(format_fit(board, entry))
    args.out.write_text(to_json(table))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
