"""The `edgeq` command: one subcommand per stage, and `deploy` for all of them.

Exit codes: 0 success, 2 bad input, 3 does not fit the device, 4 a tool or device failed,
130 interrupted, 1 an internal error (a bug: the log has the traceback).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from pathlib import Path

from edgeq import console
from edgeq.cli.commands import (
    cmd_build,
    cmd_convert,
    cmd_deploy,
    cmd_evaluate,
    cmd_flash,
    cmd_generate,
    cmd_measure,
    cmd_plan,
    cmd_profiles,
    cmd_report,
)
from edgeq.cli.sweep import DEFAULT_OUT as SWEEP_OUT
from edgeq.cli.sweep import add_sweep_arguments, cmd_sweep
from edgeq.errors import EdgeqError
from edgeq.modes import USER_MODES
from edgeq.plan.candidates import DEFAULT_MAX_ACCURACY_DROP_PP, DEFAULT_MIN_SQNR_DB, OBJECTIVES, QAT_BUDGET_S
from edgeq.runtimes import NAMES as RUNTIMES

# argparse refuses a wrong choice before anything heavy starts, and names the valid values.
QUANT_MODES = USER_MODES

log = logging.getLogger("edgeq")

EXAMPLES = {
    "profiles": "edgeq profiles\n  edgeq profiles show nucleo-l4r5zi",
    "convert": "edgeq convert model.keras --quant int8 --data calib.npz --out model_int8.tflite",
    "measure": "edgeq measure build/digits-qemu-mps2-an386/firmware/edgeq-c --val val.npz --samples 100\n"
               "  edgeq measure fw/ --device nucleo-l4r5zi --port /dev/ttyACM0 --val val.npz --resume\n"
               "  edgeq measure build/digits-qemu-mps2-an386/firmware/edgeq-c --samples 10 --no-cycles",
    "evaluate": "edgeq evaluate model_int8.tflite --device nucleo-l4r5zi --val val.npz --float model_fp32.tflite",
    "generate": "edgeq generate model_int8.tflite --device qemu-mps2-an386 --runtime tflm --out fw/",
    "build": "edgeq build build/digits-qemu-mps2-an386/firmware/edgeq-c",
    "flash": "edgeq flash fw/ --device nucleo-l4r5zi --port /dev/ttyACM0\n"
             "  edgeq flash fw/ --device nucleo-l4r5zi --dry-run",
    "plan": "edgeq plan model.keras --device nucleo-l4r5zi --data calib.npz --val val.npz --objective size",
    "report": "edgeq report build/digits-qemu-mps2-an386\n"
              "  edgeq report build/digits-qemu-mps2-an386 --json",
    "deploy": "edgeq deploy model.keras --device qemu-mps2-an386 --data calib.npz --val val.npz\n"
              "  edgeq deploy model.keras --device nucleo-l4r5zi --val val.npz --port /dev/ttyACM0",
    "sweep": "edgeq sweep a.keras b.keras --device qemu-mps2-an386,qemu-mps2-an505 --quant int8,plan "
             "--data calib.npz --val val.npz\n"
             "  edgeq sweep a.keras --device nucleo-l4r5zi --val val.npz --address head:6379 "
             "--port nucleo-l4r5zi=/dev/ttyACM0",
}


# ---- parser --------------------------------------------------------------------------------


def add_label_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label-output", metavar="NAME",
                   help="a model with several outputs: the one the labels (y) are for, top-1 accuracy's")


def add_device_address(p: argparse.ArgumentParser, *, host: bool = True) -> None:
    """Where a phone or Linux board is: its adb serial, or user@address for ssh."""
    if host:
        p.add_argument("--host", help="a Linux board's ssh address, user@address or a Host of your ssh_config "
                                      "($EDGEQ_SSH_CONFIG names another config file)")
    p.add_argument("--serial", help="a phone's adb serial (adb devices lists it)")


def add_cycles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cycles", action=argparse.BooleanOptionalAction, default=None,
                   help="estimate the cycles of the profile's core from the instruction classes edgeq's QEMU plugin "
                        "counts in each inference (default: on the emulated Cortex-M boards; about 1.7x the "
                        "emulation time; docs/cycles.md)")


def add_custom_op(p: argparse.ArgumentParser) -> None:
    p.add_argument("--custom-op", action="append", default=[], metavar="NAME",
                   help="a custom op the device's LiteRT has (your op library): LiteRT is not refused for it; "
                        "adds to the profile's litert.custom_ops (repeat for several)")


def add_planner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", choices=OBJECTIVES, default="latency",
                   help="what the planner optimizes among feasible candidates (default: latency)")
    p.add_argument("--max-accuracy-drop", type=float, default=DEFAULT_MAX_ACCURACY_DROP_PP, metavar="PP",
                   help="largest top-1 accuracy drop against the float model, in percentage points")
    p.add_argument("--min-sqnr-db", type=float, default=DEFAULT_MIN_SQNR_DB, metavar="DB",
                   help="for models without class labels: smallest output SQNR against the float model")
    p.add_argument("--ram-budget", help="RAM for the model (e.g. 256K), instead of the profile's")
    p.add_argument("--flash-budget", help="flash for the model (e.g. 1M), instead of the profile's")
    p.add_argument("--train", help="labelled training data (.npz x, y): allows quantization-aware training")
    p.add_argument("--qat-budget", type=float, default=QAT_BUDGET_S, metavar="SECONDS",
                   help=f"the longest quantization-aware training may take (default {QAT_BUDGET_S:g} s; a float "
                        "fine-tune of the same budget runs beside it as the control)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes that measure candidates")
    p.add_argument("--no-cache", action="store_true", help="measure every candidate again")
    p.add_argument("--no-measure", action="store_true",
                   help="rank by the cost model only: do not run the best candidates on a reachable board")
    p.add_argument("--all", action="store_true",
                   help="print a row for every candidate (by default: the chosen one, each mode's best, and one "
                        "line per reason candidates were refused; plan.json keeps them all)")


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
    p.add_argument("--quant", required=True, choices=QUANT_MODES, help="the quantization mode")
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--out", help="output .tflite (default: beside the model)")

    p = add("measure", cmd_measure, "measure a firmware on its device over serial: accuracy, bit-exactness, cycles")
    p.add_argument("firmware", metavar="FIRMWARE_DIR", help="a firmware folder edgeq generated")
    p.add_argument("--device", help="device profile (default: the one the firmware was built for)")
    p.add_argument("--val", help="validation data: .npz with x and y (without it: random inputs)")
    p.add_argument("--samples", type=int, help="measure only the first N samples (default: all)")
    p.add_argument("--port", help="a real board's serial port: /dev/ttyACM0, socket://HOST:PORT, rfc2217://...")
    p.add_argument("--resume", action="store_true", help="continue the run recorded in measure.jsonl")
    p.add_argument("--model", dest="against", metavar="MODEL.tflite",
                   help="the model to check the firmware against (default: the one in the firmware folder)")
    p.add_argument("--out", help="where measure.jsonl, measure.json and the log go (default: the firmware folder)")
    p.add_argument("--timeout", type=float, help="seconds to wait for each reply (default 10)")
    add_cycles(p)
    p.add_argument("--profile", action="store_true",
                   help="also count each layer: op, shape, MACs, count, per MAC, share (QEMU and host: builds and runs "
                        "the profiled image too; a real board must run it: edgeq build/flash --profile; a phone or "
                        "Linux board: LiteRT's per-op profile)")
    add_device_address(p)
    p.add_argument("--benchmark-model", metavar="PATH",
                   help="a phone: LiteRT's benchmark_model built for it, run over adb with --delegate as well (the "
                        "GPU and NPU delegates, which edgeq's harness cannot load there)")
    p.add_argument("--delegate", choices=("gpu", "nnapi", "xnnpack"),
                   help="the delegate benchmark_model runs (default: the profile's litert.delegate)")
    p.add_argument("--dry-run", action="store_true",
                   help="a phone or Linux board: print the commands (push, run, pull, clean up) instead of "
                        "running them")
    add_label_output(p)

    p = add("evaluate", cmd_evaluate, "measure a .tflite on this host: LiteRT accuracy and latency, TFLM arena, fit")
    p.add_argument("model", metavar="MODEL.tflite")
    p.add_argument("--device", required=True)
    p.add_argument("--val", required=True, help="validation data: .npz with x and y")
    p.add_argument("--float", help="the float .tflite to compare against (default: the model itself)")
    p.add_argument("--runtime", choices=RUNTIMES, help="the runtime whose fit is assessed (default: the profile's first)")
    add_label_output(p)

    p = add("generate", cmd_generate, "generate a firmware project for a .tflite")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--runtime", choices=RUNTIMES, help="default: the profile's first")
    p.add_argument("--out", help="output folder")
    add_custom_op(p)

    p = add("build", cmd_build, "compile a firmware project; report the flash and RAM it uses")
    p.add_argument("firmware", metavar="FIRMWARE_DIR")
    p.add_argument("--device", help="device profile (default: the one the project was generated for)")
    p.add_argument("--profile", action="store_true",
                   help="build the image that counts each layer (make PROFILE=1: firmware-profile.elf)")

    p = add("flash", cmd_flash, "put a built firmware on its device (QEMU and host: start it) and wait for HELLO")
    p.add_argument("firmware", metavar="FIRMWARE_DIR")
    p.add_argument("--device", help="device profile (default: the one the project was generated for)")
    p.add_argument("--port", help="the board's serial port, for tools that flash over it and to check HELLO")
    p.add_argument("--host", help="a Linux board's ssh address: user@address or a Host of your ssh_config")
    p.add_argument("--serial", help="a phone's adb serial (adb devices lists it)")
    p.add_argument("--probe", help="serial number of the debug probe to use")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first")
    p.add_argument("--profile", action="store_true",
                   help="flash the image that counts each layer (edgeq build --profile)")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for HELLO (default 10)")

    p = add("plan", cmd_plan, "find the smallest, fastest quantization that fits the device and keeps the accuracy")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--val", help="validation data: .npz with x and y")
    p.add_argument("--runtime", choices=RUNTIMES, help="default: every runtime of the profile")
    p.add_argument("--out", help="output folder for plan.json and the chosen model")
    p.add_argument("--port", help="a real board's serial port: run the best candidates on it")
    add_device_address(p)
    add_planner_options(p)
    add_label_output(p)
    add_custom_op(p)

    p = add("deploy", cmd_deploy, "run every stage: load, plan, convert, measure, generate, and on a device it can "
                                  "reach build, flash and measure over serial; then report")
    p.add_argument("model")
    p.add_argument("--device", required=True)
    p.add_argument("--data", help="calibration data: .npy, .npz (x) or package.module:function")
    p.add_argument("--val", help="validation data: .npz with x and y")
    p.add_argument("--quant", choices=QUANT_MODES, help="quantization mode (default: the planner chooses)")
    p.add_argument("--runtime", choices=RUNTIMES, help="default: the profile's first")
    p.add_argument("--out", help="output folder (default: build/<model>-<device>)")
    p.add_argument("--port", help="a real board's serial port: build, flash and measure on it")
    add_device_address(p)
    p.add_argument("--samples", type=int, help="measure only the first N validation samples on the device")
    p.add_argument("--no-device", action="store_true", help="generate only: do not build, flash or measure")
    p.add_argument("--profile", action="store_true",
                   help="also profile each layer on the device (the profiled image, make PROFILE=1): report.json's "
                        "measure.profile")
    add_cycles(p)
    add_planner_options(p)
    add_label_output(p)
    add_custom_op(p)

    p = add("sweep", cmd_sweep, "deploy and measure many models on many devices: each (model, device, "
                                "quantization) cell a Ray task, on this machine or a cluster with boards")
    add_sweep_arguments(p)
    add_cycles(p)
    add_label_output(p)

    p = add("report", cmd_report, "write report.md and report.html again from report.json (and plan.json) in an "
                                  "output folder, without rerunning anything")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="a deploy, plan or measure output folder")
    return parser


def _out_dirs(args) -> Path | None:
    """Each command's output folder, where its log goes too; None for those that write nothing."""
    if args.command == "deploy":
        name = Path(args.model).stem if Path(args.model).suffix else Path(args.model).name
        args.out_dir = Path(args.out) if args.out else Path("build") / f"{name}-{args.device}"
        return args.out_dir
    if args.command == "sweep":
        args.out_dir = Path(args.out) if args.out else SWEEP_OUT
        return args.out_dir
    if args.command == "plan":
        args.out_dir = Path(args.out) if args.out else Path("build") / f"{Path(args.model).stem}-{args.device}-plan"
        return args.out_dir
    if args.command == "convert":
        return Path(args.out).parent if args.out else Path(args.model).parent
    if args.command == "generate":
        if args.out is None:
            from edgeq.profiles import get_profile
            from edgeq.runtimes import choose_runtime

            model = Path(args.model)
            runtime = choose_runtime(get_profile(args.device), args.runtime)
            args.out = str(model.with_name(f"{model.stem}_{runtime.name}"))
        return Path(args.out)
    if args.command in ("build", "flash"):
        return Path(args.firmware)
    if args.command == "report":
        return args.out_dir if args.out_dir.is_dir() else None
    if args.command == "measure":
        return Path(args.out) if args.out else (Path(args.firmware) if Path(args.firmware).is_dir() else None)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.quiet_tensorflow()
    console.machine_output(args.json)
    try:
        out = _out_dirs(args)
        if args.verbose:
            return args.func(args)
        log_path = out / "edgeq.log" if out is not None else Path(tempfile.gettempdir()) / f"edgeq-{args.command}.log"
        with console.quiet_logs(log_path):
            try:
                return args.func(args)
            except EdgeqError as exc:
                log.error("%s", exc, exc_info=True)
                console.error(str(exc))
                return exc.exit_code
            except KeyboardInterrupt:
                return _interrupted()
            except Exception as exc:
                log.exception("internal error")
                console.error(f"internal error: {exc!r} (traceback in {log_path})")
                return 1
    except EdgeqError as exc:  # raised with --verbose, or before the log was open
        console.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    """Exit code 130, kept: a second Ctrl-C, or one still pending while the interpreter shuts its
    worker pools down, would otherwise end the process by the signal (exit -2) after the message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.error("interrupted")
    return 130


if __name__ == "__main__":
    sys.exit(main())
