"""The phone and Linux-board loop on the emulated Arm device (qemu-aarch64), judged from the outside.

    python bench/phone_bench.py [--samples N]

1. `edgeq deploy digits.keras --device qemu-aarch64 --quant int8` run twice as a user runs it (the
   first warms the cache: the aarch64 LiteRT wheel, TensorFlow's imports); the second is timed.
   From its report.json: the share of samples bit-exact with the host's LiteRT, accuracy, init,
   first run, latency median and p95, peak RSS, the bundle's size.
2. The same bundle (built once) run under qemu-aarch64 with -cpu cortex-a53, cortex-a72 and
   neoverse-n1, over ssh: bit-exact share and whether the three gave the same output bytes.

Targets checked (exit 1 names each miss): the warm deploy under 60 s, 100 % bit-exact with a
per-op profile; the three CPUs 100 % bit-exact and byte-identical to each other. Times are the
emulator's: not any device's speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edgeq_cli import REPO, last_error, run_edgeq  # noqa: E402

DIGITS = REPO / "examples" / "digits" / "artifacts"
CPUS = ("cortex-a53", "cortex-a72", "neoverse-n1")
WARM_DEPLOY_S = 60.0


def deploy(out: Path, samples: int | None) -> tuple[dict | None, float, str]:
    args = ["deploy", str(DIGITS / "digits.keras"), "--device", "qemu-aarch64", "--data", str(DIGITS / "calib.npz"),
            "--val", str(DIGITS / "val.npz"), "--quant", "int8", "--out", str(out)]
    done, seconds = run_edgeq(*args, *(["--samples", str(samples)] if samples else []))
    report = out / "report.json"
    return (json.loads(report.read_text()) if done.returncode == 0 and report.is_file() else None), seconds, \
        last_error(done)


def across_cpus(firmware: Path, samples: int | None) -> list[tuple[str, float, bytes]]:
    """The deployed project's bundle (edgeq build: the output folder keeps the harness, not the
    libraries) measured on each CPU: bit-exact share and the output bytes."""
    from edgeq.device.loop import build_firmware, measure_run
    from edgeq.device.native import measure_native
    from edgeq.profiles import get_profile

    data = np.load(DIGITS / "val.npz")
    x, y = data["x"][:samples].astype(np.float32), data["y"][:samples]
    base = get_profile("qemu-aarch64")
    build_firmware(firmware, base)
    rows = []
    for cpu in CPUS:
        profile = dataclasses.replace(base, emulator=dataclasses.replace(base.emulator, cpu=cpu))
        with tempfile.TemporaryDirectory() as tmp:
            journal = Path(tmp) / "measure.jsonl"
            summary = measure_native(profile, firmware, measure_run(firmware, x, y, journal))
            outputs = b"".join(bytes.fromhex(json.loads(line)["output"])
                               for line in journal.read_text().splitlines()[1:])
        rows.append((cpu, summary["bit_exact_fraction"], outputs))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, help="the first N validation samples (default: all)")
    args = parser.parse_args()
    if not (DIGITS / "digits.keras").is_file():
        print(f"{DIGITS}/digits.keras is missing: run make demo (or examples/digits/train.py) first")
        return 1
    misses = []
    with tempfile.TemporaryDirectory(prefix="phone-bench-") as tmp:
        deploy(Path(tmp) / "cold", args.samples)
        report, seconds, error = deploy(Path(tmp) / "warm", args.samples)
        if report is None:
            print(f"deploy failed: {error}")
            return 1
        m, n = report["measure"], report["measure"]["native"]
        print("edgeq deploy digits.keras --device qemu-aarch64 --quant int8 (warm cache), "
              "emulated: not any device's speed")
        print(f"  {seconds:.1f} s; {m['samples']} samples, bit-exact {100 * m['bit_exact_fraction']:.2f} %, "
              f"accuracy {100 * m['accuracy']:.2f} % (host LiteRT {100 * m['reference_accuracy']:.2f} %)")
        print(f"  init {n['init_ms']:.1f} ms, first {n['first_ms']:.2f} ms, latency median "
              f"{n['latency_ms']['median']:.3f} ms, p95 {n['latency_ms']['p95']:.3f} ms, peak RSS "
              f"{n['peak_rss_bytes'] / 2**20:.1f} MiB, bundle {n['bundle']['bytes'] / 2**20:.1f} MiB, "
              f"{len(n['op_profile'] or [])} op kinds profiled")
        if seconds >= WARM_DEPLOY_S:
            misses.append(f"the warm deploy took {seconds:.1f} s (target < {WARM_DEPLOY_S:.0f} s)")
        if m["bit_exact_fraction"] != 1.0:
            misses.append(f"the deploy was {100 * m['bit_exact_fraction']:.2f} % bit-exact, not 100 %")
        if not n["op_profile"]:
            misses.append("the deploy has no per-op profile")
        rows = across_cpus(Path(tmp) / "warm" / "firmware" / "litert", args.samples)
    print("the same bundle on three emulated CPUs:")
    for cpu, exact, outputs in rows:
        same = outputs == rows[0][2]
        print(f"  {cpu:<12} bit-exact {100 * exact:.2f} %, outputs {'identical to' if same else 'DIFFER from'} "
              f"{rows[0][0]}'s")
        if exact != 1.0 or not same:
            misses.append(f"{cpu}: {100 * exact:.2f} % bit-exact, outputs {'same' if same else 'different'}")
    for miss in misses:
        print(f"MISS: {miss}")
    print("every target checked holds" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
