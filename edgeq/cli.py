"""The `edgeq` command: one subcommand per stage, and `deploy` for all of them.

Exit codes: 0 success, 2 bad input, 3 does not fit the device, 4 a tool or device failed,
130 interrupted, 1 an internal error (a bug: the log has the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from edgeq import console
from edgeq.errors import BadInput, DoesNotFit, EdgeqError

log = logging.getLogger("edgeq")

EXAMPLES = {
    "profiles": "edgeq profiles\n  edgeq profiles show nucleo-l4r5zi",
    "convert": "edgeq convert model.keras --quant int8 --data calib.npz --out model_int8.tflite",
    "measure": "edgeq measure model_int8.tflite --device nucleo-l4r5zi --val val.npz --float model_fp32.tflite",
    "generate": "edgeq generate model_int8.tflite --device qemu-mps2-an386 --runtime tflm --out fw/",
    "deploy": "edgeq deploy model.keras --device qemu-mps2-an386 --data calib.npz --val val.npz",
}


def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write each file to a temporary name beside its target, then rename it into place."""
    for rel, data in files.items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _profile(name: str):
    from edgeq.profiles import get_profile

    return get_profile(name)


# ---- subcommands ---------------------------------------------------------------------------


def cmd_profiles(args) -> int:
    from dataclasses import asdict

    from edgeq.profiles import format_profile, format_profile_table, get_profile, load_profiles

    if args.name:
        profile = get_profile(args.name)
        if args.json:
            console.emit_json(json.dumps(asdict(profile), indent=2))
        else:
            console.info(format_profile(profile))
    else:
        profiles = load_profiles()
        if args.json:
            console.emit_json(json.dumps([asdict(p) for p in profiles.values()], indent=2))
        else:
            console.info(format_profile_table(list(profiles.values())))
    return 0


def cmd_convert(args) -> int:
    from edgeq.convert import NEEDS_CALIBRATION, convert
    from edgeq.load import load_model
    from edgeq.pipeline import load_data

    out = Path(args.out) if args.out else Path(args.model).with_name(f"{Path(args.model).stem}_{args.quant}.tflite")
    with console.stage("load", args.model):
        model = load_model(args.model)
        calibration = load_data(model, args.data, None)[0] if args.quant in NEEDS_CALIBRATION else None
    with console.stage("convert", args.quant):
        tflite = convert(model, args.quant, calibration)
    write_files(out.parent, {out.name: tflite})
    console.info(f"wrote {out} ({len(tflite):,} bytes)")
    return 0


def cmd_measure(args) -> int:
    from edgeq.graph import read_graph
    from edgeq.load import TensorSpec, load_dataset
    from edgeq.measure import compare, litert_latency, run_litert, tflm_arena
    from edgeq.pipeline import firmware_arena
    from edgeq.report import assess_fit, fit_dict, kb

    profile = _profile(args.device)
    path = Path(args.model)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    tflite = path.read_bytes()
    graph = read_graph(tflite, str(path))
    float_tflite = Path(args.float).read_bytes() if args.float else tflite
    spec = TensorSpec(graph.input_tensors()[0].shape[1:], "float32")
    val = load_dataset(args.val, spec)
    threads = profile.litert.threads if profile.litert else 1
    with console.stage("measure", f"{len(val)} samples"):
        acc = compare(run_litert(float_tflite, val, threads, "float"), run_litert(tflite, val, threads, "model"), val)
        lat = litert_latency(tflite, val.x[0], threads)
        arena = tflm_arena(tflite) if profile.is_microcontroller else None
    fit = assess_fit(profile, len(tflite), firmware_arena(arena))
    result = {"samples": acc.samples, "accuracy": acc.quantized_accuracy, "float_accuracy": acc.float_accuracy,
              "agreement": acc.agreement, "sqnr_db": acc.sqnr_db, "host_ms_median": lat.median_ms,
              "tflm_arena_bytes": arena.total_bytes if arena else None, "fit": fit_dict(fit)}
    if args.json:
        console.emit_json(json.dumps(result, indent=2))
    else:
        if acc.quantized_accuracy is not None:
            console.info(f"accuracy {100 * acc.quantized_accuracy:.2f} %"
                         + (f" (reference {100 * acc.float_accuracy:.2f} %)" if args.float else ""))
        console.info(f"output SQNR {acc.sqnr_db:.1f} dB, host latency {lat.median_ms:.3f} ms (median)")
        if arena:
            console.info(f"TFLM arena {arena.total_bytes:,} bytes ({kb(arena.total_bytes)})")
        console.info(f"fit: {fit.verdict}" + "".join(f"\n  {r}" for r in fit.reasons()))
    return 0 if fit.verdict == "fits" else DoesNotFit.exit_code


def cmd_generate(args) -> int:
    from edgeq import codegen
    from edgeq.graph import read_graph
    from edgeq.measure import tflm_arena
    from edgeq.pipeline import check_runtime_ops
    from edgeq.plan import choose_runtime

    profile = _profile(args.device)
    path = Path(args.model)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    tflite = path.read_bytes()
    graph = read_graph(tflite, str(path))
    runtime = choose_runtime(profile, args.runtime)
    check_runtime_ops(tflite, graph, runtime)
    arena = tflm_arena(tflite).smallest_bytes if runtime == "tflm" else None
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_{runtime}")
    with console.stage("generate", f"{runtime} project"):
        project = codegen.render_project(runtime, profile, tflite, graph, arena, path.stem)
    write_files(out, {k: v.encode() if isinstance(v, str) else v for k, v in project.items()})
    console.info(f"wrote {len(project)} files to {out}/")
    return 0


def cmd_deploy(args) -> int:
    from edgeq.pipeline import Request, deploy

    profile = _profile(args.device)
    req = Request(model=Path(args.model), profile=profile, data=args.data, val=args.val,
                  mode=args.quant, runtime=args.runtime)
    console.info(f"edgeq deploy: {req.model} -> {profile.name}")
    result = deploy(req)
    write_files(args.out_dir, result.files)
    r = result.report
    acc = r["accuracy"]
    if acc["float"] is not None:
        console.info(f"  accuracy  float {100 * acc['float']:.2f} %, {r['quantization']['mode']} "
                     f"{100 * acc['quantized']:.2f} % ({acc['drop_pp']:+.2f} pp drop)")
    console.info("")
    console.info((args.out_dir / "report.md").read_text())
    if args.json:
        console.emit_json((args.out_dir / "report.json").read_text())
    if result.fit.verdict != "fits":
        raise DoesNotFit(f"{r['model']['name']} does not fit {profile.name}: " + "; ".join(result.fit.reasons()))
    console.info(f"report: {args.out_dir / 'report.md'}  ({args.out_dir / 'report.json'})")
    return 0


# ---- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeq", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgeq {__import__('edgeq').__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's own log in the terminal")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                           epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("profiles", cmd_profiles, "list device profiles, or show one")
    p.add_argument("show", nargs="?", choices=["show"], help=argparse.SUPPRESS)
    p.add_argument("name", nargs="?", help="profile name")

    p = add("convert", cmd_convert, "convert a model to .tflite in one quantization mode")
    p.add_argument("model")
    p.add_argument("--quant", required=True, help="fp32, fp16, dynamic-int8, int8 or int16x8")
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--out", help="output .tflite (default: beside the model)")

    p = add("measure", cmd_measure, "measure a .tflite on the host: accuracy, latency, TFLM arena, fit")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--val", required=True, help="validation data: .npz with x and y")
    p.add_argument("--float", help="the float .tflite to compare against")

    p = add("generate", cmd_generate, "generate a firmware project for a .tflite")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--runtime", help="tflm, edgeq-c or litert (default: the profile's first)")
    p.add_argument("--out", help="output folder")

    p = add("deploy", cmd_deploy, "run every stage: load, plan, convert, measure, generate, report")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--val", help="validation data: .npz with x and y")
    p.add_argument("--quant", help="quantization mode (default: chosen for the device)")
    p.add_argument("--runtime", help="tflm, edgeq-c or litert (default: the profile's first)")
    p.add_argument("--out", help="output folder (default: build/<model>-<device>)")
    return parser


def _log_path(args) -> Path:
    if args.command == "deploy":
        name = Path(args.model).stem if Path(args.model).suffix else Path(args.model).name
        args.out_dir = Path(args.out) if args.out else Path("build") / f"{name}-{args.device}"
        return args.out_dir / "edgeq.log"
    return Path("build") / "edgeq.log"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.quiet_tensorflow()
    console.machine_output(args.json)
    log_path = _log_path(args)
    try:
        if args.verbose:
            return args.func(args)
        with console.quiet_logs(log_path):
            try:
                return args.func(args)
            except EdgeqError as exc:
                log.error("%s", exc, exc_info=True)
                console.error(str(exc))
                return exc.exit_code
            except KeyboardInterrupt:
                console.error("interrupted")
                return 130
            except Exception as exc:
                log.exception("internal error")
                console.error(f"internal error: {exc!r} (traceback in {log_path})")
                return 1
    except EdgeqError as exc:  # raised with --verbose, or before the log was open
        console.error(str(exc))
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
