"""`edgeq sweep`: its arguments and the command (docs/sweep.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeq import console
from edgeq.errors import BadInput
from edgeq.files import write_files
from edgeq.modes import USER_MODES
from edgeq.plan.candidates import DEFAULT_MAX_ACCURACY_DROP_PP, DEFAULT_MIN_SQNR_DB, OBJECTIVES

DEFAULT_OUT = Path("build") / "sweep"


def _listed(text: str) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def _quants(text: str) -> list[str]:
    from edgeq.sweep import PLAN

    quants = _listed(text)
    wrong = [q for q in quants if q != PLAN and q not in USER_MODES]
    if wrong or not quants:
        raise argparse.ArgumentTypeError(f"{wrong[0] if wrong else text!r} is not {PLAN} or a quantization mode "
                                         f"({', '.join(USER_MODES)})")
    return quants


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help="the models: .keras, .h5, SavedModel, .tflite, .onnx")
    p.add_argument("--device", required=True, type=_listed, help="the devices, comma-separated profile names")
    p.add_argument("--quant", type=_quants, default=["plan"],
                   help="the quantizations, comma-separated: plan (the planner chooses; the default) and/or modes; "
                        "each model is deployed in each")
    p.add_argument("--data", action="append", default=[], metavar="DATA",
                   help="calibration data: once for every model, or once per model in the models' order")
    p.add_argument("--val", action="append", default=[], metavar="VAL",
                   help="validation data (.npz x, y): once for every model, or once per model")
    p.add_argument("--samples", type=int, help="validation samples measured on each device (default: all)")
    p.add_argument("--out", help=f"output folder (default: {DEFAULT_OUT}); a rerun there reuses finished cells")
    p.add_argument("--address", help="an existing Ray cluster's head, HOST:6379 (default: a local Ray instance "
                                     "sized to this machine)")
    p.add_argument("--workers", type=int, help="the local Ray instance's CPUs, one cell each (default: all)")
    p.add_argument("--port", action="append", default=[], metavar="DEVICE=PORT",
                   help="where a real device is, on the node wired to it: a serial port, a phone's adb serial or a "
                        "Linux board's ssh address (repeat for each device); its cells run on the node that "
                        "advertises the Ray resource board:DEVICE")
    p.add_argument("--no-cache", action="store_true", help="run every cell again, and the planner's candidates")
    p.add_argument("--objective", choices=OBJECTIVES, default="latency", help="the planner's, for plan cells")
    p.add_argument("--max-accuracy-drop", type=float, default=DEFAULT_MAX_ACCURACY_DROP_PP, metavar="PP",
                   help="the planner's largest top-1 accuracy drop, in percentage points")
    p.add_argument("--min-sqnr-db", type=float, default=DEFAULT_MIN_SQNR_DB, metavar="DB",
                   help="the planner's smallest output SQNR, for models without class labels")


def _ports(values: list[str]) -> dict[str, str]:
    ports = {}
    for value in values:
        device, sep, where = value.partition("=")
        if not sep or not device or not where:
            raise BadInput(f"--port {value}: give DEVICE=PORT, for example --port nucleo-l4r5zi=/dev/ttyACM0")
        ports[device] = where
    return ports


def cmd_sweep(args) -> int:
    from edgeq.cli.commands import device_profile
    from edgeq.report import format_sweep_table, render_sweep_html
    from edgeq.sweep import Options, SweepRequest, run_sweep

    if args.samples is not None and args.samples < 1:
        raise BadInput(f"--samples {args.samples}: give at least 1")
    if args.workers is not None and args.workers < 1:
        raise BadInput(f"--workers {args.workers}: give at least 1")
    req = SweepRequest(
        models=tuple(Path(m) for m in args.models), profiles=tuple(device_profile(d) for d in args.device),
        quants=tuple(args.quant), data=tuple(args.data), val=tuple(args.val),
        options=Options(samples=args.samples, cycles=args.cycles, objective=args.objective,
                        max_accuracy_drop_pp=args.max_accuracy_drop, min_sqnr_db=args.min_sqnr_db,
                        label_output=args.label_output),
        ports=_ports(args.port), out=args.out_dir, address=args.address, workers=args.workers,
        use_cache=not args.no_cache)
    console.info(f"edgeq sweep: {len(req.models)} models x {len(req.profiles)} devices x {len(req.quants)} "
                 f"quantizations -> {req.out}")
    doc = run_sweep(req).document
    write_files(req.out, {"sweep.json": (json.dumps(doc, indent=2) + "\n").encode(),
                          "sweep.html": render_sweep_html(doc).encode()})
    if args.json:
        console.emit_json(json.dumps(doc, indent=2))
    else:
        console.info(format_sweep_table(doc) + f"\nsweep: {req.out / 'sweep.json'}  ({req.out / 'sweep.html'})")
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    return failed[0]["exit_code"] if failed else 0
