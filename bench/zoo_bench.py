"""A zoo of the architectures people deploy, each through `edgeq deploy` to an emulated board.

    python bench/zoo_bench.py [--device qemu-mps2-an386] [--samples 5] [--only NAME,...] [--small]

Every model is built here (keras.applications mobile networks at 96x96x3 with small widths and
random weights; small models of the other shapes users deploy), saved, and deployed with
`edgeq deploy MODEL --device DEVICE --quant int8` (fp32 for the float one) in a subprocess, as a
user would run it. Columns, from each run's report.json:

- exit: the exit code (0 deployed, 2 refused with a reason, 3 does not fit, 4 a tool failed;
  anything else, a crash, fails the bench).
- runtime: the runtime that runs the model (edgeq-c, or the fallback and why).
- exact: the share of the device's outputs bit-exact with the tflite-micro interpreter.
- agree / SQNR: top-1 agreement and output SQNR of the quantized model against the float one
  (LiteRT on this host).
- arena, flash: the runtime's arena (edgeq-c's static plan, or TFLM's smallest) and the linked image.
- instructions: median per inference on the board (QEMU's count).

`--small` builds the networks at 32x32 (and the smallest widths) for a quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CRASH = -1


def mobile(name: str, size: int):
    import keras

    apps = keras.applications
    kw = dict(input_shape=(size, size, 3), weights=None, classes=10)
    return {
        "mobilenet_v1_0.25": lambda: apps.MobileNet(alpha=0.25, **kw),
        "mobilenet_v2_0.35": lambda: apps.MobileNetV2(alpha=0.35, **kw),
        "mobilenet_v3_small_min": lambda: apps.MobileNetV3Small(alpha=0.75, minimalistic=True,
                                                                include_preprocessing=False, **kw),
        "mobilenet_v3_small": lambda: apps.MobileNetV3Small(alpha=0.75, include_preprocessing=False, **kw),
        "mobilenet_v3_large_min": lambda: apps.MobileNetV3Large(alpha=0.75, minimalistic=True,
                                                                include_preprocessing=False, **kw),
        "mobilenet_v3_large": lambda: apps.MobileNetV3Large(alpha=0.75, include_preprocessing=False, **kw),
    }[name]()


def small(name: str):
    import keras

    L = keras.layers
    if name == "conv1d_sensor":  # accelerometer windows: 128 steps, 3 axes
        return keras.Sequential([keras.Input((128, 3)), L.Conv1D(16, 5, activation="relu"), L.MaxPooling1D(2),
                                 L.Conv1D(32, 5, activation="relu"), L.GlobalAveragePooling1D(),
                                 L.Dense(6, activation="softmax")])
    if name == "ds_cnn_audio":  # depthwise-separable keyword spotting on 49x10 MFCCs
        return keras.Sequential([keras.Input((49, 10, 1)), L.Conv2D(32, (10, 4), strides=2, padding="same",
                                                                    activation="relu"),
                                 L.DepthwiseConv2D(3, padding="same", activation="relu"), L.Conv2D(32, 1, activation="relu"),
                                 L.DepthwiseConv2D(3, padding="same", activation="relu"), L.Conv2D(32, 1, activation="relu"),
                                 L.GlobalAveragePooling2D(), L.Dense(12, activation="softmax")])
    if name in ("lstm", "gru"):
        rnn = L.LSTM(32) if name == "lstm" else L.GRU(32)
        return keras.Sequential([keras.Input((49, 10)), rnn, L.Dense(12, activation="softmax")])
    if name == "attention":
        inputs = keras.Input((16, 32))
        x = L.MultiHeadAttention(num_heads=2, key_dim=16)(inputs, inputs)
        x = L.LayerNormalization()(x + inputs)
        outputs = L.Dense(4, activation="softmax")(L.GlobalAveragePooling1D()(x))
        return keras.Model(inputs, outputs)
    if name == "float_io_regressor":  # float in, float out: deployed in fp32
        return keras.Sequential([keras.Input((32,)), L.Dense(64, activation="relu"), L.Dense(8)])
    if name == "uint8_image":  # raw pixels in
        inputs = keras.Input((32, 32, 3), dtype="uint8")
        x = L.Rescaling(1 / 255)(inputs)
        x = L.Conv2D(8, 3, activation="relu")(x)
        outputs = L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(x))
        return keras.Model(inputs, outputs)
    raise KeyError(name)


MOBILE = ("mobilenet_v1_0.25", "mobilenet_v2_0.35", "mobilenet_v3_small_min", "mobilenet_v3_small",
          "mobilenet_v3_large_min", "mobilenet_v3_large")
OTHERS = ("conv1d_sensor", "ds_cnn_audio", "lstm", "gru", "attention", "float_io_regressor", "uint8_image")


def build(name: str, folder: Path, size: int) -> tuple[Path, Path, str]:
    """The model saved as .keras, seeded data for it, and the mode it deploys in."""
    import keras

    keras.utils.set_random_seed(0)
    model = mobile(name, size) if name in MOBILE else small(name)
    path = folder / f"{name}.keras"
    model.save(path)
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    if model.inputs[0].dtype == "uint8":
        x = rng.integers(0, 256, (24, *shape)).astype(np.float32)
    else:
        x = rng.uniform(-1, 1, (24, *shape)).astype(np.float32)
    data = folder / f"{name}.npz"
    np.savez(data, x=x)
    return path, data, "fp32" if name == "float_io_regressor" else "int8"


def deploy(path: Path, data: Path, mode: str, device: str, samples: int, out: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgeq", "deploy", str(path), "--device", device, "--quant", mode,
                           "--data", str(data), "--val", str(data), "--samples", str(samples), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    row = {"exit": done.returncode if done.returncode >= 0 else CRASH, "seconds": time.perf_counter() - start,
           "error": (done.stderr.strip().splitlines() or [""])[-1][:160] if done.returncode else ""}
    report_path = out / "report.json"
    if report_path.is_file():
        r = json.loads(report_path.read_text())
        m, mem, acc = r.get("measure") or {}, r["memory"], r["accuracy"]
        runtime = r["quantization"]["runtime"]
        row.update(runtime=runtime, exact=m.get("bit_exact_fraction"), agreement=acc.get("agreement"),
                   sqnr=acc.get("sqnr_db"), instructions=m.get("cycles_median"),
                   arena=mem.get("edgeq_c_arena_bytes") if runtime == "edgeq-c" else mem.get("firmware_arena_bytes"),
                   flash=mem.get("flash_used_bytes"), device=(r.get("device") or {}).get("reason"))
    return row


def _fmt(value, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="qemu-mps2-an386")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--small", action="store_true", help="32x32 mobile networks, for a quick run")
    args = parser.parse_args()
    names = [n for n in (*MOBILE, *OTHERS) if not args.only or n in args.only.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="edgeq-zoo-") as tmp:
        for name in names:
            folder = Path(tmp) / name
            folder.mkdir()
            path, data, mode = build(name, folder, 32 if args.small else 96)
            rows[name] = deploy(path, data, mode, args.device, args.samples, folder / "out")
            r = rows[name]
            print(f"  {name:<24} exit {r['exit']}  {r.get('runtime', '-')}  {r['seconds']:.0f} s  {r['error']}",
                  file=sys.stderr, flush=True)
    print(f"\nzoo on {args.device} ({args.samples} samples on the device each)\n")
    print("| model | exit | runtime | exact | agree | SQNR dB | arena B | flash B | instructions |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['exit']} | {r.get('runtime', '-')} | {_fmt(r.get('exact'), '.0%')} | "
              f"{_fmt(r.get('agreement'), '.0%')} | {_fmt(r.get('sqnr'), '.1f')} | {_fmt(r.get('arena'))} | "
              f"{_fmt(r.get('flash'))} | {_fmt(r.get('instructions'), ',.0f')} |")
    refused = {n: r["error"] for n, r in rows.items() if r["exit"] == 2}
    for name, why in refused.items():
        print(f"- {name} refused: {why}")
    crashed = [n for n, r in rows.items() if r["exit"] not in (0, 2, 3, 4)]
    mobile_not_exact = [n for n in rows if n in MOBILE and (rows[n]["exit"] != 0 or rows[n].get("runtime") != "edgeq-c"
                                                             or rows[n].get("exact") != 1.0)]
    print(f"\ncrashed: {', '.join(crashed) or 'none'}; mobile networks not bit-exact on edgeq-c: "
          f"{', '.join(mobile_not_exact) or 'none'}")
    return 1 if crashed or mobile_not_exact else 0


if __name__ == "__main__":
    sys.exit(main())
