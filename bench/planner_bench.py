"""`edgeq plan` on the digits example and the MLPerf Tiny Keras models: every candidate, the choice,
and the planner's wall time from a cold cache and from a warm one.

    python bench/planner_bench.py [--device nucleo-l4r5zi] [--jobs 2] [--only digits|resnet8|ad01]

- digits: examples/digits/artifacts (trained first if missing), labelled validation data: accuracy.
- ResNet-8 (pretrainedResnet.h5) and the anomaly-detection autoencoder (ad01.h5) from
  ../shared/models/mlperf-tiny, skipped when absent. They come without data sets, so inputs are
  generated (seeded): ResNet-8 random 32x32x3 images with pixels 0..255 (the int8 reference model's
  input is scale 1, zero point -128); ad01 vectors of 640 log-mel values drawn from N(-30, 12)
  clipped to [-85, 15] (the reference int8 input's range). Without labels the metric is the output
  SQNR against the float model.

Columns: the model's .tflite bytes; flash and RAM on the runtime the planner picked for that
candidate (TFLM: model + 64 KB code estimate, firmware arena; edgeq-c: measured Cortex-M4 -Os
objects); the TFLM and edgeq-c arenas; the cost model's latency; accuracy (drop) or SQNR.
Cold: a fresh cache directory; cached: the same run again. The target: digits cold <= 120 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeq.plan import PlanDoesNotFit, PlanRequest, format_plan_table, run_plan  # noqa: E402
from edgeq.profiles import get_profile  # noqa: E402
from edgeq.units import format_bytes as kb  # noqa: E402

MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
DIGITS = REPO / "examples" / "digits" / "artifacts"
DIGITS_TARGET_S = 120.0
SAMPLES = 200


def _digits() -> dict:
    if not (DIGITS / "digits.keras").exists():
        import subprocess

        subprocess.run([sys.executable, str(REPO / "examples" / "digits" / "train.py"), "--out", str(DIGITS)],
                       check=True)
    return {"model": DIGITS / "digits.keras", "data": str(DIGITS / "calib.npz"), "val": str(DIGITS / "val.npz")}


def _generated(name: str, folder: Path, make) -> dict | None:
    model = MLPERF / name
    if not model.exists():
        return None
    rng = np.random.default_rng(0)
    calib, val = folder / f"{model.stem}_calib.npz", folder / f"{model.stem}_val.npz"
    np.savez(calib, x=make(rng, SAMPLES))
    np.savez(val, x=make(rng, SAMPLES))
    return {"model": model, "data": str(calib), "val": str(val)}


def _images(rng, n):
    return rng.integers(0, 256, (n, 32, 32, 3)).astype(np.float32)


def _log_mels(rng, n):
    return np.clip(rng.normal(-30.0, 12.0, (n, 640)), -85.0, 15.0).astype(np.float32)


def _plan(case: dict, device: str, jobs: int, cache: Path):
    request = PlanRequest(model=case["model"], profile=get_profile(device), data=case["data"], val=case["val"],
                          jobs=jobs, cache_dir=cache)
    start = time.perf_counter()
    try:
        result = run_plan(request)
    except PlanDoesNotFit as exc:
        result = exc.result
    return result, time.perf_counter() - start


def _rows(result) -> str:
    header = ("", "candidate", "runtime", "model", "flash", "RAM", "TFLM arena", "edgeq-c arena", "latency",
              "accuracy" if result.metric == "accuracy" else "SQNR", "status")
    rows = [header]
    for c in result.candidates:
        d = c.to_dict()
        if result.metric == "accuracy":
            drop = f"{-d['accuracy_drop_pp']:+.2f}".replace("-0.00", "+0.00") if d["accuracy"] is not None else ""
            quality = "-" if d["accuracy"] is None else f"{100 * d['accuracy']:.2f}% ({drop} pp)"
        else:
            quality = "identical" if d["identical_to_float"] else ("-" if d["sqnr_db"] is None else f"{d['sqnr_db']:.1f} dB")
        status = "CHOSEN" if c.chosen else ("feasible" if c.feasible else (c.problems[0] if c.problems else "-"))
        rows.append(("*" if c.chosen else "", c.name, c.runtime or "-", kb(d["model_bytes"]), kb(d["flash_bytes"]),
                     kb(d["ram_bytes"]), kb(d["tflm_arena_bytes"]), kb(d["edgeq_c_arena_bytes"]),
                     "-" if d["latency_ms_estimated"] is None else f"{d['latency_ms_estimated']:.3g} ms",
                     quality, status[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="nucleo-l4r5zi")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=("digits", "resnet8", "ad01"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edgeq-plan-bench-") as tmp:
        folder = Path(tmp)
        cases = {"digits": _digits(), "resnet8": _generated("pretrainedResnet.h5", folder, _images),
                 "ad01": _generated("ad01.h5", folder, _log_mels)}
        summary = []
        for label, case in cases.items():
            if args.only and label != args.only:
                continue
            if case is None:
                print(f"{label}: skipped ({MLPERF} not present)\n")
                continue
            cache = folder / f"cache-{label}"
            result, cold = _plan(case, args.device, args.jobs, cache)
            again, cached = _plan(case, args.device, args.jobs, cache)
            assert again.cache_misses == 0, "the second run should come entirely from the cache"
            print(f"== {label} on {args.device}: {len(result.candidates)} candidates, cold {cold:.1f} s, "
                  f"cached {cached:.2f} s ({again.cache_hits} cache hits)")
            print(_rows(result))
            print(format_plan_table(result).splitlines()[-2] if result.chosen else f"no plan: {result.message}")
            print()
            summary.append((label, result.chosen.name if result.chosen else "none", cold, cached))
        print("model     chosen                          cold      cached")
        for label, chosen, cold, cached in summary:
            target = f"  (target <= {DIGITS_TARGET_S:.0f} s: {'PASS' if cold <= DIGITS_TARGET_S else 'FAIL'})" \
                if label == "digits" else ""
            print(f"{label:<9} {chosen:<31} {cold:6.1f} s  {cached:6.2f} s{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
