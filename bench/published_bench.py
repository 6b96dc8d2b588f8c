"""Published phone models through edgeq, as a new user would try them: MediaPipe's face and palm
detectors, face, hand, iris and pose landmark models and selfie segmentation (float .tflite files
with fp16 weights behind DEQUANTIZE, sparse weights, several outputs, custom ops).

    python bench/published_bench.py [--devices pixel-8,qemu-mps2-an500] [--only NAME,...] [--samples 3]

The models come from the `mediapipe` wheel on PyPI (MEDIAPIPE, pinned), fetched with `pip download`
into build/.cache/published and unpacked there once. Each model is planned on the phone
(`edgeq plan`, measured on this host) and deployed int8 to the microcontroller (`edgeq deploy
--quant int8`, built and run in QEMU), on seeded images in [0, 1]: no data set comes with them,
so figures are SQNR against the float model. Columns: the exit code and the rows of the planner's
table, the chosen candidate, on the microcontroller the runtime, bit-exactness and instructions,
and for each failure the last line of the error.

Targets checked (exit 1 names each miss): no crash (an exit other than 0, 2 refused with a reason,
3 does not fit); every refusal names the model file, an op or a key; every plan table at most 15
rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edgeq_cli import REPO, exit_code, last_error, plan_table_rows, run_edgeq  # noqa: E402

CACHE = REPO / "build" / ".cache" / "published"
MEDIAPIPE = "mediapipe==0.10.14"  # the last wheel that ships the solutions' .tflite models
MAX_PLAN_ROWS = 15
# What a refusal must name: the model file, an op (as edgeq names ops) or a key.
NAMES_SOMETHING = re.compile(r"\.tflite|[A-Z][A-Z0-9_]{2,}|CUSTOM:|--[a-z-]+|'[\w/:.]+'")


def fetch_models() -> dict[str, Path]:
    """Every .tflite of the pinned mediapipe wheel, unpacked into the cache (downloaded once)."""
    models = CACHE / "models"
    if not any(models.glob("*.tflite")):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", MEDIAPIPE, "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "-d", str(CACHE)],
                       check=True, capture_output=True)
        wheel = next(CACHE.glob("mediapipe-*.whl"))
        models.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".tflite"):
                    (models / Path(name).name).write_bytes(archive.read(name))
    return {p.stem: p for p in sorted(models.glob("*.tflite"))}


def images(path: Path, folder: Path, samples: int) -> Path:
    """Seeded images in [0, 1] for every input of the model, keyed x0, x1, ..."""
    sys.path.insert(0, str(REPO))
    from edgeq.graph import read_graph

    graph = read_graph(path.read_bytes(), str(path))
    rng = np.random.default_rng(0)
    arrays = {f"x{k}": rng.random((samples, *graph.tensors[i].shape[1:])).astype(np.float32)
              for k, i in enumerate(graph.inputs)}
    data = folder / f"{path.stem}.npz"
    np.savez(data, **arrays)
    return data


def plan(path: Path, data: Path, device: str, out: Path) -> dict:
    done, seconds = run_edgeq("plan", str(path), "--device", device, "--data", str(data), "--val", str(data),
                              "--no-measure", "--out", str(out))
    chosen = next((line.split(" — ")[0].removeprefix("chosen: ") for line in (done.stdout + done.stderr).splitlines()
                   if line.startswith("chosen:")), None)
    return {"exit": exit_code(done), "seconds": seconds, "rows": plan_table_rows(done), "chosen": chosen,
            "error": last_error(done)}


def deploy(path: Path, data: Path, device: str, samples: int, out: Path) -> dict:
    done, seconds = run_edgeq("deploy", str(path), "--device", device, "--quant", "int8", "--data", str(data),
                              "--val", str(data), "--samples", str(samples), "--out", str(out))
    row = {"exit": exit_code(done), "seconds": seconds, "error": last_error(done)}
    report = out / "report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        m, acc = r.get("measure") or {}, r.get("accuracy") or {}
        row.update(runtime=r["quantization"]["runtime"], exact=m.get("bit_exact_fraction"),
                   instructions=m.get("cycles_median"), sqnr=acc.get("sqnr_db"),
                   outputs=len(acc.get("outputs") or []))
    return row


def _fmt(value, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def misses(rows: dict[tuple[str, str], dict]) -> list[str]:
    found = []
    for (name, what), r in rows.items():
        if r["exit"] not in (0, 2, 3):  # 4 is a tool that failed: on a published model, edgeq's to prevent
            found.append(f"{name} ({what}): exit {r['exit']}: {r['error']}")
        elif r["exit"] and not NAMES_SOMETHING.search(r["error"]):
            found.append(f"{name} ({what}): the error names no file, op or key: {r['error']}")
        if r.get("rows") is not None and r["rows"] > MAX_PLAN_ROWS:
            found.append(f"{name} ({what}): the plan's table takes {r['rows']} rows")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="pixel-8,qemu-mps2-an500",
                        help="the phone (planned) and the microcontroller (deployed int8)")
    parser.add_argument("--only", help="comma-separated model names (file stems)")
    parser.add_argument("--samples", type=int, default=3, help="samples measured on the microcontroller")
    args = parser.parse_args()
    phone, mcu = args.devices.split(",")
    models = {n: p for n, p in fetch_models().items() if not args.only or n in args.only.split(",")}
    rows: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgeq-published-") as tmp:
        for name, path in models.items():
            folder = Path(tmp) / name
            folder.mkdir()
            data = images(path, folder, 16)
            rows[name, f"plan {phone}"] = plan(path, data, phone, folder / "plan")
            rows[name, f"int8 {mcu}"] = deploy(path, data, mcu, args.samples, folder / "deploy")
            for what in (f"plan {phone}", f"int8 {mcu}"):
                r = rows[name, what]
                print(f"  {name:<40} {what:<22} exit {r['exit']}  {r['seconds']:.0f} s  {r['error'][:150]}",
                      file=sys.stderr, flush=True)
    print(f"\n{MEDIAPIPE} models: planned on {phone} (this host), deployed int8 to {mcu}\n")
    print(f"| model | plan exit | plan rows | chosen | {mcu} exit | runtime | outputs | SQNR dB | exact | "
          "instructions |")
    print("|---|---:|---:|---|---:|---|---:|---:|---:|---:|")
    for name in models:
        p, d = rows[name, f"plan {phone}"], rows[name, f"int8 {mcu}"]
        print(f"| {name} | {p['exit']} | {_fmt(p['rows'])} | {p['chosen'] or '-'} | {d['exit']} | "
              f"{d.get('runtime', '-')} | {_fmt(d.get('outputs'))} | {_fmt(d.get('sqnr'), '.1f')} | "
              f"{_fmt(d.get('exact'), '.0%')} | {_fmt(d.get('instructions'), ',.0f')} |")
    for (name, what), r in rows.items():
        if r["exit"]:
            print(f"- {name} ({what}), exit {r['exit']}: {r['error']}")
    missed = misses(rows)
    print("\n" + ("every target checked holds" if not missed else "missed:\n" + "\n".join(f"- {m}" for m in missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
