"""The `edgeq` command: one subcommand per stage, and `deploy` for all of them.

Exit codes: 0 success, 2 bad input, 3 does not fit the device, 4 a tool or device failed,
130 interrupted, 1 an internal error (a bug: the log has the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edgeq import console
from edgeq.errors import BadInput, DoesNotFit, EdgeqError
from edgeq.files import write_files

log = logging.getLogger("edgeq")

EXAMPLES = {
    "profiles": "edgeq profiles\n  edgeq profiles show nucleo-l4r5zi",
    "convert": "edgeq convert model.keras --quant int8 --data calib.npz --out model_int8.tflite",
    "measure": "edgeq measure build/digits-qemu-mps2-an386/firmware/edgeq-c --val val.npz --samples 100\n"
               "  edgeq measure fw/ --device nucleo-l4r5zi --port /dev/ttyACM0 --val val.npz --resume\n"
               "  edgeq measure model_int8.tflite --device nucleo-l4r5zi --val val.npz --float model_fp32.tflite",
    "generate": "edgeq generate model_int8.tflite --device qemu-mps2-an386 --runtime tflm --out fw/",
    "build": "edgeq build build/digits-qemu-mps2-an386/firmware/edgeq-c",
    "flash": "edgeq flash fw/ --device nucleo-l4r5zi --port /dev/ttyACM0\n"
             "  edgeq flash fw/ --device nucleo-l4r5zi --dry-run",
    "plan": "edgeq plan model.keras --device nucleo-l4r5zi --data calib.npz --val val.npz --objective size",
    "deploy": "edgeq deploy model.keras --device qemu-mps2-an386 --data calib.npz --val val.npz\n"
              "  edgeq deploy model.keras --device nucleo-l4r5zi --val val.npz --port /dev/ttyACM0",
}


def _read_tflite(path: Path):
    from edgeq.graph import read_graph

    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    tflite = path.read_bytes()
    return tflite, read_graph(tflite, str(path))


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
    if Path(args.model).is_dir():
        return _measure_on_device(args, Path(args.model))
    from edgeq.load import TensorSpec, load_dataset
    from edgeq.measure import compare, litert_latency, run_litert, tflm_arena
    from edgeq.pipeline import firmware_arena
    from edgeq.report import assess_fit, fit_dict, kb

    if not args.device or not args.val:
        raise BadInput("measuring a .tflite on the host needs --device and --val (a firmware folder measures on "
                       "its device instead)")
    profile = _profile(args.device)
    path = Path(args.model)
    tflite, graph = _read_tflite(path)
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


def _measure_on_device(args, firmware: Path) -> int:
    from edgeq.build import read_manifest
    from edgeq.connect import device_link
    from edgeq.measure_device import JOURNAL, SUMMARY, device_data, measure
    from edgeq.pipeline import measure_run
    from edgeq.report import format_measure

    manifest = read_manifest(firmware)
    profile = _profile(args.device or manifest["device"])
    if args.float:
        raise BadInput("--float compares two .tflite files on the host; a firmware folder is measured on its device")
    model_path = Path(args.against) if args.against else firmware / manifest["model"]
    if not model_path.is_file():
        raise BadInput(f"{model_path}: no such model file")
    tflite = model_path.read_bytes()
    x, y = device_data(args.val, tflite, args.samples, str(model_path))
    out = Path(args.out) if args.out else firmware
    run = measure_run(profile, firmware, x, y, out / JOURNAL, tflite=tflite, model_name=model_path.name,
                      resume=args.resume, timeout=args.timeout)
    elf = firmware / manifest["elf"]
    summary, failure = None, None
    with console.stage("device", f"{len(x)} samples on {profile.name}, over serial"):
        try:
            with device_link(profile, elf, firmware, args.port) as link:
                summary = measure(link, run)
        except EdgeqError as exc:
            summary, failure = getattr(exc, "measured", None), exc
    if summary is not None:
        write_files(out, {SUMMARY: (json.dumps(summary, indent=2) + "\n").encode()})
        if args.json:
            console.emit_json(json.dumps(summary, indent=2))
        else:
            console.info("\n".join(format_measure(summary)))
    if failure is not None:
        if summary is not None:
            console.info(f"kept {summary['samples']} measured samples in {run.journal}; --resume continues")
        raise failure
    return 0


def cmd_build(args) -> int:
    from edgeq.build import build, read_manifest
    from edgeq.report import kb

    firmware = Path(args.firmware)
    profile = _profile(args.device or read_manifest(firmware)["device"])
    with console.stage("build", f"make in {firmware}"):
        result = build(firmware, profile)
    facts = result.to_dict()
    if args.json:
        console.emit_json(json.dumps(facts, indent=2))
    else:
        console.info(f"{result.elf}: flash {facts['flash_used_bytes']:,} bytes ({kb(facts['flash_used_bytes'])}, "
                     f"{100 * facts['flash_used_fraction']:.2f} % of {kb(facts['flash_budget_bytes'])}), "
                     f"RAM {facts['ram_used_bytes']:,} bytes ({kb(facts['ram_used_bytes'])}, "
                     f"{100 * facts['ram_used_fraction']:.2f} % of {kb(facts['ram_budget_bytes'])}, stack included)")
    return 0


def cmd_flash(args) -> int:
    from edgeq.build import read_manifest
    from edgeq.connect import device_link, free_tcp_port
    from edgeq.flash import FlashOptions, Images, QemuRunner, flash

    firmware = Path(args.firmware)
    manifest = read_manifest(firmware)
    profile = _profile(args.device or manifest["device"])
    files = {key: firmware / manifest[key] if manifest.get(key) else None for key in ("elf", "bin", "hex")}
    options = FlashOptions(port=args.port, host=args.host, probe=args.probe, erase=args.erase)
    if args.dry_run and profile.flash.method == "qemu":
        from edgeq.boards import board_params_for

        console.info(" ".join(QemuRunner().command(board_params_for(profile).board, files["elf"], free_tcp_port())))
        return 0
    if not args.dry_run and (files["elf"] is None or not files["elf"].is_file()):
        raise BadInput(f"{files['elf']}: not built yet; run edgeq build {firmware} first")
    flash(profile, Images(image=files["elf"], **files), options, dry_run=args.dry_run)
    if args.dry_run or (profile.flash.method not in ("qemu", "host") and args.port is None):
        return 0
    # The board (or the emulator edgeq starts) must now say HELLO with this firmware's model.
    with device_link(profile, files["elf"], firmware, args.port) as link:
        info = link.hello(timeout=args.timeout)
    same = info.model_hash.hex() == manifest["model_sha256"]
    console.info(f"HELLO from {profile.name}: {info.runtime} {info.runtime_version}, model "
                 f"{info.model_hash.hex()[:16]}... ({'this firmware' + chr(39) + 's model' if same else 'ANOTHER model'}), "
                 f"arena {info.arena_bytes:,} bytes, clock {info.clock_hz / 1e6:g} MHz")
    if not same:
        from edgeq.measure_device import FirmwareMismatch

        raise FirmwareMismatch(f"the device answers with the model {info.model_hash.hex()[:16]}..., not "
                               f"{manifest['model']} ({manifest['model_sha256'][:16]}...): the flash did not take")
    return 0


def cmd_generate(args) -> int:
    from edgeq import codegen
    from edgeq.measure import tflm_arena
    from edgeq.pipeline import check_runtime_ops
    from edgeq.plan import choose_runtime

    profile = _profile(args.device)
    path = Path(args.model)
    tflite, graph = _read_tflite(path)
    runtime = choose_runtime(profile, args.runtime)
    check_runtime_ops(tflite, graph, runtime)
    arena = tflm_arena(tflite).smallest_bytes if runtime == "tflm" else None
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_{runtime}")
    with console.stage("generate", f"{runtime} project"):
        project = codegen.render_project(runtime, profile, tflite, graph, arena, path.stem)
    write_files(out, {k: v.encode() if isinstance(v, str) else v for k, v in project.items()})
    console.info(f"wrote {len(project)} files to {out}/")
    return 0


def plan_request(args, profile):
    from edgeq.plan import PlanRequest, parse_bytes

    return PlanRequest(
        model=Path(args.model), profile=profile, data=args.data, val=args.val, runtime=args.runtime,
        train=getattr(args, "train", None), objective=args.objective,
        max_accuracy_drop_pp=args.max_accuracy_drop, min_sqnr_db=args.min_sqnr_db,
        ram_budget=parse_bytes(args.ram_budget) if args.ram_budget else None,
        flash_budget=parse_bytes(args.flash_budget) if args.flash_budget else None,
        jobs=args.jobs, use_cache=not args.no_cache, measure_on_device=not args.no_measure,
        device_port=getattr(args, "port", None))


def cmd_plan(args) -> int:
    from edgeq.plan import PlanDoesNotFit, format_plan_table, run_plan

    profile = _profile(args.device)
    out = Path(args.out) if args.out else Path("build") / f"{Path(args.model).stem}-{profile.name}-plan"
    console.info(f"edgeq plan: {args.model} -> {profile.name} (objective: {args.objective})")
    try:
        with console.stage("plan", "measuring every candidate"):
            result = run_plan(plan_request(args, profile))
    except PlanDoesNotFit as exc:
        write_files(out, exc.result.files())
        console.info(format_plan_table(exc.result))
        raise
    write_files(out, result.files())
    if args.json:
        console.emit_json(result.to_json())
    console.info(format_plan_table(result))
    console.info(f"plan: {out / 'plan.json'}")
    return 0


def cmd_deploy(args) -> int:
    from edgeq.pipeline import Request, deploy
    from edgeq.plan import PlanDoesNotFit

    profile = _profile(args.device)
    req = Request(model=Path(args.model), profile=profile, data=args.data, val=args.val,
                  mode=args.quant, runtime=args.runtime,
                  planner=None if args.quant else plan_request(args, profile))
    console.info(f"edgeq deploy: {req.model} -> {profile.name}")
    try:
        result = deploy(req)
    except PlanDoesNotFit as exc:
        write_files(args.out_dir, exc.result.files())
        raise
    write_files(args.out_dir, result.files)
    r = result.report
    failure = None
    if "firmware" in r["outputs"]:
        r, failure = _deploy_on_device(args, profile, result)
    acc = r["accuracy"]
    if acc["float"] is not None:
        console.info(f"  accuracy  float {100 * acc['float']:.2f} %, {r['quantization']['mode']} "
                     f"{100 * acc['quantized']:.2f} % ({acc['drop_pp']:+.2f} pp drop)")
    console.info("")
    console.info((args.out_dir / "report.md").read_text())
    if args.json:
        console.emit_json((args.out_dir / "report.json").read_text())
    if failure is not None:
        raise failure
    if result.fit.verdict != "fits":
        raise DoesNotFit(f"{r['model']['name']} does not fit {profile.name}: " + "; ".join(result.fit.reasons()))
    console.info(f"report: {args.out_dir / 'report.md'}  ({args.out_dir / 'report.json'})")
    return 0


def _deploy_on_device(args, profile, result) -> tuple[dict, EdgeqError | None]:
    """build -> flash -> measure when the device can be reached; the report gains the figures."""
    from edgeq.measure_device import JOURNAL
    from edgeq.pipeline import device_unreachable, measure_run, run_on_device, with_device_results
    from edgeq.report import render_markdown, to_json

    r = result.report
    firmware = args.out_dir / r["outputs"]["firmware"]
    skipped = "--no-device was given" if args.no_device else device_unreachable(
        profile, r["quantization"]["runtime"], args.port)
    device, failure = None, None
    if skipped:
        console.info(f"  {'device':<9} skipped: {skipped}")
    else:
        validation = result.validation
        x, y = validation.x, validation.y if validation.has_class_labels and not validation.synthetic else None
        if args.samples is not None:
            x, y = x[:args.samples], (y[:args.samples] if y is not None else None)
        run = measure_run(profile, firmware, x, y, args.out_dir / JOURNAL, tflite=result.tflite,
                          model_name=r["outputs"]["tflite"])
        try:
            device = run_on_device(profile, firmware, run, port=args.port)
            failure = device.error
        except EdgeqError as exc:  # the build or the flash failed: nothing was measured
            failure = exc
    r = with_device_results(r, device, skipped, failure)
    if device is not None and device.measure is not None:
        r["outputs"] = {**r["outputs"], "measure_log": JOURNAL}
    write_files(args.out_dir, {"report.json": to_json(r).encode(), "report.md": render_markdown(r).encode()})
    return r, failure


# ---- parser --------------------------------------------------------------------------------


def add_planner_options(p: argparse.ArgumentParser) -> None:
    from edgeq.plan import DEFAULT_MAX_ACCURACY_DROP_PP, DEFAULT_MIN_SQNR_DB

    p.add_argument("--objective", choices=["latency", "size", "accuracy"], default="latency",
                   help="what the planner optimizes among feasible candidates (default: latency)")
    p.add_argument("--max-accuracy-drop", type=float, default=DEFAULT_MAX_ACCURACY_DROP_PP, metavar="PP",
                   help="largest top-1 accuracy drop against the float model, in percentage points")
    p.add_argument("--min-sqnr-db", type=float, default=DEFAULT_MIN_SQNR_DB, metavar="DB",
                   help="for models without class labels: smallest output SQNR against the float model")
    p.add_argument("--ram-budget", help="RAM for the model (e.g. 256K), instead of the profile's")
    p.add_argument("--flash-budget", help="flash for the model (e.g. 1M), instead of the profile's")
    p.add_argument("--jobs", type=int, default=2, help="worker processes that measure candidates")
    p.add_argument("--no-cache", action="store_true", help="measure every candidate again")
    p.add_argument("--no-measure", action="store_true",
                   help="rank by the cost model only: do not run the best candidates on a reachable board")


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

    p = add("measure", cmd_measure, "measure a firmware on its device over serial, or a .tflite on the host")
    p.add_argument("model", metavar="FIRMWARE_DIR|MODEL.tflite",
                   help="a firmware folder edgeq generated (measured on its device) or a .tflite (on the host)")
    p.add_argument("--device", help="device profile (default for a firmware folder: the one it was built for)")
    p.add_argument("--val", help="validation data: .npz with x and y (a firmware folder without it: random inputs)")
    p.add_argument("--samples", type=int, help="measure only the first N samples (default: all)")
    p.add_argument("--port", help="a real board's serial port: /dev/ttyACM0, socket://HOST:PORT, rfc2217://...")
    p.add_argument("--resume", action="store_true", help="continue the run recorded in measure.jsonl")
    p.add_argument("--model", dest="against", metavar="MODEL.tflite",
                   help="the model to check the firmware against (default: the one in the firmware folder)")
    p.add_argument("--out", help="where measure.jsonl and measure.json go (default: the firmware folder)")
    p.add_argument("--timeout", type=float, help="seconds to wait for each reply (default 10)")
    p.add_argument("--float", help="(a .tflite on the host) the float .tflite to compare against")

    p = add("generate", cmd_generate, "generate a firmware project for a .tflite")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--runtime", help="tflm, edgeq-c or litert (default: the profile's first)")
    p.add_argument("--out", help="output folder")

    p = add("build", cmd_build, "compile a firmware project; report the flash and RAM it uses")
    p.add_argument("firmware", metavar="FIRMWARE_DIR")
    p.add_argument("--device", help="device profile (default: the one the project was generated for)")

    p = add("flash", cmd_flash, "put a built firmware on its device (QEMU and host: start it) and wait for HELLO")
    p.add_argument("firmware", metavar="FIRMWARE_DIR")
    p.add_argument("--device", help="device profile (default: the one the project was generated for)")
    p.add_argument("--port", help="the board's serial port, for tools that flash over it and to check HELLO")
    p.add_argument("--host", help="user@address of a networked board (scp)")
    p.add_argument("--probe", help="serial number of the debug probe (or adb device) to use")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for HELLO (default 10)")

    p = add("plan", cmd_plan, "find the smallest, fastest quantization that fits the device and keeps the accuracy")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--val", help="validation data: .npz with x and y")
    p.add_argument("--train", help="labelled training data (.npz x, y): allows quantization-aware training")
    p.add_argument("--runtime", help="tflm, edgeq-c or litert (default: every runtime of the profile)")
    p.add_argument("--out", help="output folder for plan.json and the chosen model")
    p.add_argument("--port", help="a real board's serial port: run the best candidates on it")
    add_planner_options(p)

    p = add("deploy", cmd_deploy, "run every stage: load, plan, convert, measure, generate, and on a device it can "
                                  "reach build, flash and measure over serial; then report")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--val", help="validation data: .npz with x and y")
    p.add_argument("--quant", help="quantization mode (default: chosen for the device)")
    p.add_argument("--runtime", help="tflm, edgeq-c or litert (default: the profile's first)")
    p.add_argument("--out", help="output folder (default: build/<model>-<device>)")
    p.add_argument("--port", help="a real board's serial port: build, flash and measure on it")
    p.add_argument("--samples", type=int, help="measure only the first N validation samples on the device")
    p.add_argument("--no-device", action="store_true", help="generate only: do not build, flash or measure")
    add_planner_options(p)
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
