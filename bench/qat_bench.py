"""Quantization-aware training through `edgeq plan --train`, on the planner's two test models.

    python bench/qat_bench.py [--budget 120] [--strict]

- `sensitive` on rpi-pico (int8 only): one layer int8 weights cannot represent, so nothing
  post-training is feasible;
- the heavy-tailed MLP on nucleo-l4r5zi (edgeq-c) with a 14 KB flash budget: only int4 weights
  fit, and post-training int4 loses 20-30 pp.

Each is planned from scratch (no cache) with its training data. Printed per model: the plan
trained, the float, post-training (same plan, and the best fitting candidate) and QAT accuracies
on the validation data, measured on the deployed .tflite in LiteRT by the planner, the fraction
of the drop recovered, the float fine-tune control's, the step-0 gap between the simulation and
the deployed PTQ model, the epochs and seconds; AdaRound's candidate (no labels) beside them.
--strict checks issue 21's targets: QAT recovers at least 80 % where only int4 fits (70 % on
`sensitive`) within the budget, |gap| <= 1 pp; AdaRound at least half where only int4 fits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import planner_models  # noqa: E402

TARGETS = {"sensitive": 0.70, "mlp": 0.80}


def plan(data: dict, device: str, budget_s: float, cache: Path, **options) -> tuple[dict, dict, float]:
    from edgeq.plan import PlanDoesNotFit, PlanRequest, run_plan
    from edgeq.profiles import get_profile

    request = PlanRequest(model=data["model"], profile=get_profile(device), data=data["data"], val=data["val"],
                          train=data["train"], qat_budget_s=budget_s, jobs=2, cache_dir=cache, use_cache=False,
                          measure_on_device=False, **options)
    start = time.perf_counter()
    try:
        result = run_plan(request)
    except PlanDoesNotFit as still:
        result = still.result
    plan_json = result.to_dict()
    return plan_json["qat"], plan_json["adaround"], time.perf_counter() - start


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _adaround(rounded: dict | None, qat: dict) -> str:
    if not rounded or "error" in rounded:
        return "-"
    lost = qat["float_accuracy"] - qat["ptq_accuracy"]
    share = (rounded["accuracy"] - qat["ptq_accuracy"]) / lost if lost > 0 else None
    return f"{_pct(rounded['accuracy'])} ({_pct(share)}, {rounded['seconds']:.0f} s)"


def main() -> int:
    from edgeq.units import parse_bytes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=120.0, help="--qat-budget, seconds")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    missed = []
    print("| model | plan | float | PTQ (same plan) | AdaRound (recovered, s) | best PTQ | QAT "
          "| recovered (same plan / best) | control | step-0 gap | epochs | training s | plan s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="qat-bench-") as tmp:
        folder = Path(tmp)
        cases = [("sensitive", planner_models.sensitive(folder), "rpi-pico", {}),
                 ("mlp", planner_models.heavy_tailed_mlp(folder), "nucleo-l4r5zi",
                  {"runtime": "edgeq-c", "flash_budget": parse_bytes(planner_models.INT4_ONLY_FLASH)})]
        for name, data, device, options in cases:
            qat, rounded, seconds = plan(data, device, args.budget, folder / "cache", **options)
            if not qat or "error" in qat:
                print(f"| {name} | QAT did not run: {(qat or {}).get('error')} |")
                missed.append(name)
                continue
            best = qat["best_ptq"] or {}
            control = qat["control"]
            print(f"| {name} on {device} | {qat['after']['name']} | {_pct(qat['float_accuracy'])} "
                  f"| {_pct(qat['ptq_accuracy'])} | {_adaround(rounded, qat)} "
                  f"| {_pct(best.get('accuracy'))} ({best.get('name')}) "
                  f"| {_pct(qat['accuracy'])} | {_pct(qat['recovered_fraction'])} / "
                  f"{_pct(qat['recovered_fraction_vs_best_ptq'])} | {_pct(control['accuracy'])} "
                  f"({_pct(control['recovered_fraction'])} recovered) | {qat['sim_vs_deployed_gap_pp']:+.1f} pp "
                  f"| {qat['epochs']} | {qat['seconds']:.0f} | {seconds:.0f} |")
            if (qat["recovered_fraction"] or 0) < TARGETS[name] or qat["seconds"] > args.budget \
                    or abs(qat["sim_vs_deployed_gap_pp"]) > 1.0:
                missed.append(name)
            lost = qat["float_accuracy"] - qat["ptq_accuracy"]
            if name == "mlp" and (not rounded or (rounded.get("accuracy", 0) - qat["ptq_accuracy"]) < lost / 2):
                missed.append("AdaRound on mlp")
    print("accuracies: measured on the deployed .tflite in LiteRT on the validation data (the planner's harness)")
    if args.strict and missed:
        print(f"targets missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
