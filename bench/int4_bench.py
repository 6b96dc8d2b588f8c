"""edgeq-c with int4 weights against the same model in int8, on the emulated Cortex-M boards.

    python bench/int4_bench.py [--samples 2] [--boards qemu-mps2-an386,...] [--strict]

For each model with a Keras source (the digits example; AD01 and ResNet-8 from ../shared/models/mlperf-tiny
when present), the same float model is converted twice with the same calibration set (32 seeded random
samples; the digits' own calibration set): int8 (the TFLite converter) and int4 weights with int8
activations (ai-edge-quantizer: CONV_2D per channel, FULLY_CONNECTED per tensor, the rest int8;
edgeq.convert.calibrate.quantize_int4_weights). Both are generated, built and measured as edgeq-c
firmware on each board, exactly as bench/device_bench.py does, in the same run.

Printed per model and board: instructions per inference of both and int4's over int8's, the model's
constant bytes (weights, biases, tables, as the firmware holds them) of both and their ratio, and the
share of outputs bit-exact with the tflite-micro interpreter. --strict checks issue 20's targets: int4's
constant bytes <= 0.55x int8's and instructions <= 1.2x int8's on the DSP boards, bit-exact everywhere.
bench/device_bench.py --strict runs this too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import device_bench as db  # noqa: E402

KERAS_SOURCES = (("AD01", "ad01.h5"), ("ResNet-8", "pretrainedResnet.h5"))
MAX_WEIGHTS_VS_INT8 = 0.55
MAX_INSTRUCTIONS_VS_INT8 = 1.2


def converted(name: str) -> tuple[bytes, bytes]:
    """The model `name` (digits or one of KERAS_SOURCES) as int8 and with int4 weights."""
    from edgeq.convert.calibrate import quantize_int4_weights
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model, random_dataset

    if name == "digits":
        db.digits()  # trains the example when its artifacts are missing
        model = load_model(db.DIGITS / "digits.keras")
        calibration = load_dataset(str(db.DIGITS / "calib.npz"), model.input)
    else:
        model = load_model(db.MLPERF / dict(KERAS_SOURCES)[name])
        calibration = random_dataset(model.input, count=32, seed=1)
    return convert(model, "int8", calibration), quantize_int4_weights(convert(model, "fp32"), calibration.x)


def int4_rows(models: list[str], boards: list[str], samples: int, work: Path) -> list[dict]:
    rows = []
    for name in models:
        int8, int4 = converted(name)
        x = db.random_inputs(int8, samples)
        for board in boards:
            row = {"model": name, "board": board.removeprefix("qemu-")}
            for mode, tflite in (("int8", int8), ("int4", int4)):
                row[mode] = db.run(f"{name}-{mode}", tflite, x, board, work, cycles=False)
            rows.append(row)
            print(f"  {name} int8 and int4 on {board}: done", file=sys.stderr)
    return rows


def _weights(r: dict) -> int:
    return r["flash"] - r["code"]


def int4_table(rows: list[dict]) -> str:
    lines = [(r["model"], r["board"], f"{r['int8']['instructions']:,.0f}", f"{r['int4']['instructions']:,.0f}",
              f"{r['int4']['instructions'] / r['int8']['instructions']:.2f}", f"{_weights(r['int8']):,}",
              f"{_weights(r['int4']):,}", f"{_weights(r['int4']) / _weights(r['int8']):.2f}",
              f"{r['int8']['exact']:.0%}", f"{r['int4']['exact']:.0%}") for r in rows]
    header = ("model", "board", "int8 instr", "int4 instr", "int4/int8", "int8 const B", "int4 const B",
              "int4/int8", "int8 exact", "int4 exact")
    return db.format_table(header, lines)


def int4_failures(rows: list[dict]) -> list[str]:
    failures = []
    for r in rows:
        where, e8, e4 = f"{r['model']} on {r['board']}", r["int8"], r["int4"]
        if e8["exact"] != 1.0 or e4["exact"] != 1.0:
            failures.append(f"{where}: not bit-exact (int8 {e8['exact']:.0%}, int4 {e4['exact']:.0%})")
        if r["board"] not in db.DSP_BOARDS:
            continue
        if _weights(e4) > MAX_WEIGHTS_VS_INT8 * _weights(e8):
            failures.append(f"{where}: int4 constants {_weights(e4) / _weights(e8):.2f}x int8's "
                            f"(target <= {MAX_WEIGHTS_VS_INT8}x)")
        if e4["instructions"] > MAX_INSTRUCTIONS_VS_INT8 * e8["instructions"]:
            failures.append(f"{where}: int4 instructions {e4['instructions'] / e8['instructions']:.2f}x int8's "
                            f"(target <= {MAX_INSTRUCTIONS_VS_INT8}x)")
    return failures


def available_models() -> list[str]:
    return ["digits"] + [name for name, file in KERAS_SOURCES if (db.MLPERF / file).is_file()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2, help="inputs per model and board (default 2)")
    parser.add_argument("--boards", default=",".join(db.BOARDS), help="comma-separated QEMU profiles")
    parser.add_argument("--models", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target of issue 20 is missed")
    args = parser.parse_args()
    models = [m for m in available_models() if not args.models or m in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="edgeq-int4-bench-") as work:
        rows = int4_rows(models, args.boards.split(","), args.samples, Path(work))
    print(int4_table(rows))
    failures = int4_failures(rows)
    for failure in failures:
        print(f"target missed: {failure}")
    exact = all(r[m]["exact"] == 1.0 for r in rows for m in ("int8", "int4"))
    return 1 if (args.strict and failures) or not exact else 0


if __name__ == "__main__":
    np.set_printoptions(linewidth=120)
    sys.exit(main())
