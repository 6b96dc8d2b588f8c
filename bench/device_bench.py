"""edgeq-c firmware on the four emulated Cortex-M boards, measured over the serial protocol.

    python bench/device_bench.py [--samples 5] [--boards qemu-mps2-an386,...]

For each model (the digits example, trained and converted first if its artifacts are missing, and the
MLPerf Tiny int8 models from ../shared/models/mlperf-tiny when present) on each QEMU MPS2 board, the
firmware is generated, built with arm-none-eabi-gcc at the profile's -O level, started in
qemu-system-arm -icount shift=0 and sent --samples inputs (the first validation images for digits,
seeded random int8 tensors otherwise). Columns:

- flash, RAM: what the linked image uses (arm-none-eabi-size: text + data, data + bss; RAM includes
  the 16 KiB stack the linker script reserves).
- instructions: per inference, the median (QEMU counts guest instructions, to within one SysTick tick).
- /MAC: instructions per multiply-accumulate of the model (edgeq-c's count).
- exact: the share of outputs bit-exact with the tflite-micro interpreter.
- samples/s: round trips over the serial link (TCP to QEMU's UART), inference included.

When a TFLM source tree is there ($TFLM_DIR, or ../shared/tflm), the same model on the same board also
runs as TFLM + CMSIS-NN firmware built through edgeq's TFLM harness (TFLM's release flags: framework
-Os, kernels -O2; the harness -Os), measured the same way: its flash, RAM, instructions, /MAC and
exactness, and `TFLM/eq` = TFLM's instructions over edgeq-c's. --models and --boards pick a subset.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeq import codegen  # noqa: E402
from edgeq.device.build import build  # noqa: E402
from edgeq.device.connect import device_link  # noqa: E402
from edgeq.device.loop import measure_run  # noqa: E402
from edgeq.device.measure import measure  # noqa: E402
from edgeq.graph import read_graph  # noqa: E402
from edgeq.profiles import get_profile  # noqa: E402

BOARDS = ("qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505")
MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
SHARED_TFLM = REPO.parent / "shared" / "tflm"
MLPERF_MODELS = (("KWS", "kws_ref_model.tflite"), ("VWW", "vww_96_int8.tflite"),
                 ("ResNet-8", "pretrainedResnet_quant.tflite"), ("AD01", "ad01_int8.tflite"))
DIGITS = REPO / "examples" / "digits" / "artifacts"


def digits() -> tuple[bytes, np.ndarray]:
    """The digits example quantized to int8 and its validation images."""
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    if not (DIGITS / "digits.keras").is_file():
        print("digits artifacts missing: training examples/digits (about 15 s)", file=sys.stderr)
        subprocess.run([sys.executable, str(REPO / "examples" / "digits" / "train.py")], check=True)
    model = load_model(DIGITS / "digits.keras")
    tflite = convert(model, "int8", load_dataset(str(DIGITS / "calib.npz"), model.input))
    with np.load(DIGITS / "val.npz") as val:
        return tflite, val["x"]


def random_inputs(tflite: bytes, count: int) -> np.ndarray:
    tensor = read_graph(tflite).input_tensors()[0]
    return np.random.default_rng(0).integers(-128, 127, (count, *tensor.shape[1:]), endpoint=True).astype(np.int8)


def run(name: str, tflite: bytes, x: np.ndarray, board: str, work: Path, runtime: str = "edgeq-c") -> dict:
    from edgeq.measure.interpreters import tflm_arena

    profile = get_profile(board)
    project = work / f"{name}-{board}-{runtime}"
    arena = tflm_arena(tflite).smallest_bytes if runtime == "tflm" else None
    files = codegen.render_project(runtime, profile, tflite, read_graph(tflite), arena, name)
    for path, content in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_bytes(content if isinstance(content, bytes) else content.encode())
    built = build(project, profile)
    measured = measure_run(profile, project, x, None, project / "measure.jsonl")
    with device_link(profile, built.elf, project) as link:
        summary = measure(link, measured)
    return {"flash": built.memory.flash_bytes, "ram": built.memory.ram_bytes, "instructions": summary["cycles_median"],
            "per_mac": summary["instructions_per_mac"], "exact": summary["bit_exact_fraction"],
            "rate": summary["samples_per_second"], "samples": summary["samples"]}


def format_table(rows: list[dict]) -> str:
    tflm = any("tflm" in r for r in rows)
    header = ("model", "board", "flash B", "RAM B", "instructions", "/MAC", "exact", "samples/s", "n")
    if tflm:
        header += ("TFLM flash B", "TFLM RAM B", "TFLM instructions", "TFLM /MAC", "TFLM exact", "TFLM/eq")
    lines = [header]
    for r in rows:
        e = r["edgeq-c"]
        line = (r["model"], r["board"], f"{e['flash']:,}", f"{e['ram']:,}", f"{e['instructions']:,.0f}",
                f"{e['per_mac']:.2f}", f"{100 * e['exact']:.0f} %", f"{e['rate']:.1f}", str(e["samples"]))
        if tflm:
            t = r.get("tflm")
            line += (f"{t['flash']:,}", f"{t['ram']:,}", f"{t['instructions']:,.0f}", f"{t['per_mac']:.2f}",
                     f"{100 * t['exact']:.0f} %", f"{t['instructions'] / e['instructions']:.2f}") if t else ("-",) * 6
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="inputs per model and board (default 5)")
    parser.add_argument("--boards", default=",".join(BOARDS), help="comma-separated QEMU profiles")
    parser.add_argument("--models", default="", help="comma-separated model names (default: all)")
    args = parser.parse_args()
    if not os.environ.get("TFLM_DIR") and SHARED_TFLM.is_dir():
        os.environ["TFLM_DIR"] = str(SHARED_TFLM)
    with_tflm = bool(os.environ.get("TFLM_DIR"))
    if not with_tflm:
        print(f"no TFLM source tree (TFLM_DIR unset, {SHARED_TFLM} absent): edgeq-c only", file=sys.stderr)
    tflite, x = digits()
    models = [("digits", tflite, x[:max(args.samples, 50)])]
    if MLPERF.is_dir():
        models += [(name, (MLPERF / file).read_bytes(), None) for name, file in MLPERF_MODELS]
    else:
        print(f"MLPerf Tiny models not found at {MLPERF}: digits only", file=sys.stderr)
    if args.models:
        wanted = args.models.split(",")
        models = [m for m in models if m[0] in wanted]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeq-device-bench-") as work:
        for name, model, inputs in models:
            inputs = inputs if inputs is not None else random_inputs(model, args.samples)
            for board in args.boards.split(","):
                row = {"model": name, "board": board.removeprefix("qemu-"),
                       "edgeq-c": run(name, model, inputs, board, Path(work))}
                if with_tflm:
                    row["tflm"] = run(name, model, inputs, board, Path(work), "tflm")
                rows.append(row)
                print(f"  {name} on {board}: done", file=sys.stderr)
    print(format_table(rows))
    exact = [r[k]["exact"] for r in rows for k in ("edgeq-c", "tflm") if k in r]
    return 0 if all(e == 1.0 for e in exact) else 1


if __name__ == "__main__":
    sys.exit(main())
