"""What each `edgeq` subcommand does: read its arguments, call the stage, write what it returns
atomically, print the facts (as a table for people, as the same facts in JSON with --json).

Imports of the stages wait inside each command so that `edgeq --help` and `edgeq profiles` start
in a fraction of a second, without TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeq import console
from edgeq.device.cycles import estimates_cycles
from edgeq.errors import BadInput, DoesNotFit
from edgeq.files import write_files
from edgeq.sources import ESTIMATE_MARK
from edgeq.units import format_bytes


def _result(args, facts: dict, text: str) -> None:
    """The facts as JSON with --json, else the text for a person."""
    if args.json:
        console.emit_json(json.dumps(facts, indent=2))
    else:
        console.info(text)


def _warn(warnings) -> None:
    for w in warnings:
        console.warn(w)


def _read_tflite(path: Path):
    from edgeq.graph import read_graph

    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.suffix != ".tflite":
        raise BadInput(f"{path}: not a .tflite file")
    tflite = path.read_bytes()
    return tflite, read_graph(tflite, str(path))


def device_profile(name: str, custom_ops: list[str] | None = None):
    """The profile called `name`, its runtimes checked (edgeq.runtimes), with the custom ops given by
    --custom-op added to those its LiteRT declares."""
    from dataclasses import replace

    from edgeq.profiles import get_profile
    from edgeq.runtimes import check_profile

    profile = check_profile(get_profile(name))
    if not custom_ops:
        return profile
    if profile.litert is None:
        raise BadInput(f"--custom-op {custom_ops[0]}: {profile.name} runs no LiteRT (its runtimes: "
                       f"{', '.join(profile.runtimes)}); custom ops are declared for a device's LiteRT")
    declared = tuple(dict.fromkeys(profile.litert.custom_ops + tuple(custom_ops)))
    return replace(profile, litert=replace(profile.litert, custom_ops=declared))


def _firmware(path: str):
    """A firmware folder and its manifest; a .tflite or a missing folder is refused."""
    from edgeq.codegen.sources import read_manifest

    firmware = Path(path)
    if firmware.suffix == ".tflite" or firmware.is_file():
        raise BadInput(f"{firmware}: edgeq measure runs a firmware folder on its device; "
                       f"to measure a .tflite on this host use: edgeq evaluate {firmware} --device NAME --val VAL")
    if not firmware.is_dir():
        raise BadInput(f"{firmware}: no such firmware folder (edgeq generate or edgeq deploy makes one)")
    return firmware, read_manifest(firmware)


# ---- subcommands ---------------------------------------------------------------------------


def cmd_profiles(args) -> int:
    from dataclasses import asdict

    from edgeq.profiles import format_profile, format_profile_table, load_profiles
    from edgeq.runtimes import check_profile

    if args.name:
        profile = device_profile(args.name)
        if args.json:
            console.emit_json(json.dumps(asdict(profile), indent=2))
        else:
            console.info(format_profile(profile))
    else:
        profiles = [check_profile(p) for p in load_profiles().values()]
        if args.json:
            console.emit_json(json.dumps([asdict(p) for p in profiles], indent=2))
        else:
            console.info(format_profile_table(profiles))
    return 0


def cmd_convert(args) -> int:
    from edgeq.convert.converter import convert_model
    from edgeq.load import load_data, load_model
    from edgeq.modes import get_mode

    out = Path(args.out) if args.out else Path(args.model).with_name(f"{Path(args.model).stem}_{args.quant}.tflite")
    with console.stage("load", args.model):
        model = load_model(args.model)
        calibration = load_data(model, args.data, None)[0] if get_mode(args.quant).calibrated else None
    if calibration is not None:
        _warn(calibration.warnings)
    with console.stage("convert", args.quant):
        converted = convert_model(model, args.quant, calibration)
    _warn(converted.warnings)
    write_files(out.parent, {out.name: converted.tflite})
    _result(args, {"tflite": str(out), "bytes": len(converted.tflite), "mode": args.quant,
                   "warnings": list(converted.warnings)}, f"wrote {out} ({len(converted.tflite):,} bytes)")
    return 0


def cmd_evaluate(args) -> int:
    """A .tflite on this host: accuracy and latency in LiteRT, each runtime's own figures, the fit verdict."""
    from edgeq.load import load_dataset, load_model
    from edgeq.measure.interpreters import compare, litert_latency, run_litert
    from edgeq.runtimes import choose_runtime, runtimes_of

    profile = device_profile(args.device)
    tflite, graph = _read_tflite(Path(args.model))
    float_tflite = _read_tflite(Path(args.float))[0] if args.float else tflite
    runtime = choose_runtime(profile, args.runtime)
    model = load_model(args.model)
    val = load_dataset(args.val, model.inputs, model.outputs, args.label_output)
    threads = profile.litert.threads if profile.litert else 1
    with console.stage("measure", f"{len(val)} samples, LiteRT on the host"):
        acc = compare(run_litert(float_tflite, val, threads, "float"), run_litert(tflite, val, threads, "model"), val)
        lat = litert_latency(tflite, val.x[0], threads)
        # Every runtime of the profile: its own figures beside the chosen one's, as the report has them.
        prepared = {r: r.prepare(profile, tflite, graph, args.model) for r in runtimes_of(profile)}
    if prepared[runtime].refusal:
        raise BadInput(prepared[runtime].refusal)
    _warn(prepared[runtime].warnings)
    fit = runtime.fit(profile, prepared[runtime], tflite)
    figures = {key: figure for r, p in prepared.items() for key, figure in r.memory(p).items()}
    result = {"samples": acc.samples, "accuracy": acc.quantized_accuracy, "float_accuracy": acc.float_accuracy,
              "agreement": acc.agreement, "sqnr_db": acc.sqnr_db, "host_ms_median": lat.median_ms,
              **{key: value for key, (value, _) in figures.items() if not isinstance(value, dict)},
              "runtime": runtime.name, "fit": fit.to_dict(),
              "sources": {"accuracy": "measured: LiteRT on this host", "host_ms_median": "measured: LiteRT on this host",
                          **{key: source.to_dict() for key, (value, source) in figures.items()
                             if not isinstance(value, dict)}}}
    lines = []
    if acc.quantized_accuracy is not None:
        lines.append(f"accuracy {100 * acc.quantized_accuracy:.2f} %"
                     + (f" (reference {100 * acc.float_accuracy:.2f} %)" if args.float else ""))
    lines.append(f"output SQNR {acc.sqnr_db:.1f} dB, host latency {lat.median_ms:.3f} ms (median, LiteRT on this host)")
    arena = runtime.arena_figure and figures.get(runtime.arena_figure)
    if arena:
        lines.append(f"{runtime.label} arena {arena[0]:,} bytes ({format_bytes(arena[0])})")
    lines.append(f"fit on {runtime.name}: {fit.verdict}"
                 + "".join(f"\n  {k}: {b.source.mark(format_bytes(b.needed_bytes))} of {format_bytes(b.budget_bytes)}"
                           for k, b in (("flash", fit.flash), ("RAM", fit.ram)))
                 + "".join(f"\n  {r}" for r in fit.reasons()) + f"\n  ({ESTIMATE_MARK} estimated)")
    _result(args, result, "\n".join(lines))
    return 0 if fit.verdict == "fits" else DoesNotFit.exit_code


def cmd_measure(args) -> int:
    """A firmware folder on its device: over serial, or a phone's or Linux board's native harness."""
    from edgeq.cli.phone import benchmark_tool, device_dry_run
    from edgeq.device.loop import measure_firmware
    from edgeq.device.measure import SUMMARY, device_data
    from edgeq.report import format_measure, render_measure_html

    firmware, manifest = _firmware(args.firmware)
    profile = device_profile(args.device or manifest.device)
    model_path = Path(args.against) if args.against else firmware / manifest.model
    if not model_path.is_file():
        raise BadInput(f"{model_path}: no such model file")
    tflite = model_path.read_bytes()
    data = device_data(args.val, tflite, args.samples, str(model_path), args.label_output)
    _warn(data.warnings)
    out = Path(args.out) if args.out else firmware
    address = args.port or args.host or args.serial
    tool = benchmark_tool(profile, args.benchmark_model, args.dry_run)
    delegate = args.delegate or (profile.litert.delegate if profile.litert else "xnnpack")
    if args.dry_run:
        _result(args, *device_dry_run(profile, firmware, address, per_layer=args.profile, benchmark_model=tool,
                                      delegate=delegate))
        return 0
    found = measure_firmware(profile, firmware, data.x, data.y, out, tflite=tflite, model_name=model_path.name,
                             port=address, resume=args.resume, timeout=args.timeout, per_layer=args.profile,
                             label_output=data.label_output, cycles=estimates_cycles(profile, args.cycles))
    if found.summary is not None and tool is not None and found.failure is None:
        from edgeq.device.native import run_benchmark_model

        with console.stage("device", f"benchmark_model with the {delegate} delegate, over adb"):
            found.summary["benchmark_model"] = run_benchmark_model(profile, firmware, tool, address, delegate)
    if found.summary is not None:
        write_files(out, {SUMMARY: (json.dumps(found.summary, indent=2) + "\n").encode(),
                          "report.html": render_measure_html(found.summary, f"edgeq measure: {firmware}").encode()})
        _result(args, found.summary, "\n".join(format_measure(found.summary)))
    if found.failure is not None:
        if found.summary is not None:
            console.info(f"kept {found.summary['samples']} measured samples in {found.journal}; --resume continues")
        raise found.failure
    return 0


def cmd_build(args) -> int:
    from edgeq.device.loop import build_firmware

    firmware, manifest = _firmware(args.firmware)
    profile = device_profile(args.device or manifest.device)
    with console.stage("build", f"make{' PROFILE=1' if args.profile else ''} in {firmware}"):
        result = build_firmware(firmware, profile, profiled=args.profile)
    if result.bundle is not None:
        b = result.bundle
        _result(args, {**b, "harness": str(result.elf), "command": " ".join(result.command)},
                f"{result.elf.parent}: {len(b['files'])} files, {format_bytes(b['bytes'])} for {b['abi']} "
                f"(libLiteRt.so of ai-edge-litert {b['litert_version']}, SHA-256 {b['libLiteRt_sha256'][:16]}...; "
                "measured: the bundle's files)")
        return 0
    facts = result.to_dict()
    kb = format_bytes
    _result(args, facts, f"{result.elf}: flash {facts['flash_used_bytes']:,} bytes ({kb(facts['flash_used_bytes'])}, "
                     f"{100 * facts['flash_used_fraction']:.2f} % of {kb(facts['flash_budget_bytes'])}), "
                     f"RAM {facts['ram_used_bytes']:,} bytes ({kb(facts['ram_used_bytes'])}, "
                     f"{100 * facts['ram_used_fraction']:.2f} % of {kb(facts['ram_budget_bytes'])}, stack included; "
                     "measured: the size tool on the linked image)")
    return 0


def cmd_flash(args) -> int:
    from edgeq.boards import board_params_for
    from edgeq.device.build import BUNDLE_BUILDER, profiled_name
    from edgeq.device.connect import device_link, free_tcp_port
    from edgeq.device.flash import FlashOptions, Images, QemuRunner, flash
    from edgeq.device.measure import FirmwareMismatch

    firmware, manifest = _firmware(args.firmware)
    profile = device_profile(args.device or manifest.device)
    name = profiled_name if args.profile else str
    files = {key: firmware / name(manifest.image(key)) if manifest.image(key) else None
             for key in ("elf", "bin", "hex", "uf2")}
    if manifest.builder == BUNDLE_BUILDER:  # a phone, a Linux board or the host: the harness bundle, pushed
        from edgeq.cli.phone import flash_dry_run, push_bundle

        address = args.host or args.serial
        _result(args, *(flash_dry_run if args.dry_run else push_bundle)(profile, firmware, address))
        return 0
    options = FlashOptions(port=args.port, host=args.host, probe=args.probe, erase=args.erase)
    if args.dry_run and profile.flash.method == "qemu":
        command = QemuRunner().command(board_params_for(profile).board, files["elf"], free_tcp_port())
        _result(args, {"device": profile.name, "method": "qemu", "dry_run": True, "commands": [command]},
                " ".join(command))
        return 0
    if not args.dry_run and (files["elf"] is None or not files["elf"].is_file()):
        option = " --profile" if args.profile else ""
        raise BadInput(f"{files['elf']}: not built yet; run edgeq build {firmware}{option} first")
    commands = flash(profile, Images(image=files["elf"], **files), options, dry_run=args.dry_run and not args.json)
    facts = {"device": profile.name, "method": profile.flash.method, "dry_run": args.dry_run,
             "commands": [list(map(str, argv)) for argv in commands], "hello": None}
    if args.dry_run or (profile.flash.method not in ("qemu", "host") and args.port is None):
        if args.json:
            console.emit_json(json.dumps(facts, indent=2))
        return 0
    # The board (or the emulator edgeq starts) must now say HELLO with this firmware's model.
    with device_link(profile, files["elf"], firmware, args.port) as link:
        info = link.hello(timeout=args.timeout)
    same = info.model_hash.hex() == manifest.model_sha256
    facts["hello"] = {"runtime": info.runtime, "runtime_version": info.runtime_version,
                      "model_sha256": info.model_hash.hex(), "this_firmware": same, "arena_bytes": info.arena_bytes,
                      "clock_hz": info.clock_hz}
    if args.json:
        console.emit_json(json.dumps(facts, indent=2))
    console.info(f"HELLO from {profile.name}: {info.runtime} {info.runtime_version}, model "
                 f"{info.model_hash.hex()[:16]}... ({'this firmware' + chr(39) + 's model' if same else 'ANOTHER model'}), "
                 f"arena {info.arena_bytes:,} bytes, clock {info.clock_hz / 1e6:g} MHz")
    if not same:
        raise FirmwareMismatch(f"the device answers with the model {info.model_hash.hex()[:16]}..., not "
                               f"{manifest.model} ({manifest.model_sha256[:16]}...): the flash did not take")
    return 0


def cmd_generate(args) -> int:
    from edgeq.runtimes import choose_runtime

    profile = device_profile(args.device, args.custom_op)
    path = Path(args.model)
    tflite, graph = _read_tflite(path)
    runtime = choose_runtime(profile, args.runtime)
    out = Path(args.out)
    with console.stage("generate", f"{runtime.name} project"):
        prepared = runtime.prepare(profile, tflite, graph, str(path))
        if prepared.refusal:
            raise BadInput(prepared.refusal)
        project = runtime.generate(profile, tflite, graph, path.stem, prepared)
    _warn(prepared.warnings)
    write_files(out, {k: v.encode() if isinstance(v, str) else v for k, v in project.items()})
    _result(args, {"runtime": runtime.name, "device": profile.name, "out": str(out), "files": sorted(project)},
            f"wrote {len(project)} files to {out}/")
    return 0


def plan_request(args, profile):
    from edgeq.plan import PlanRequest
    from edgeq.units import parse_bytes

    return PlanRequest(
        model=Path(args.model), profile=profile, data=args.data, val=args.val, runtime=args.runtime,
        train=args.train, label_output=args.label_output, objective=args.objective,
        max_accuracy_drop_pp=args.max_accuracy_drop, min_sqnr_db=args.min_sqnr_db,
        ram_budget=parse_bytes(args.ram_budget) if args.ram_budget else None,
        flash_budget=parse_bytes(args.flash_budget) if args.flash_budget else None,
        jobs=args.jobs, use_cache=not args.no_cache, measure_on_device=not args.no_measure,
        qat_budget_s=args.qat_budget,
        device_port=getattr(args, "port", None) or getattr(args, "host", None) or getattr(args, "serial", None))


def _plan_files(result) -> dict[str, bytes]:
    """plan.json, the chosen model, and report.html drawn from plan.json."""
    from edgeq.report import render_plan_html

    files = result.files()
    files["report.html"] = render_plan_html(json.loads(files["plan.json"])).encode()
    return files


def cmd_plan(args) -> int:
    from edgeq.plan import PlanDoesNotFit, format_plan_table, run_plan

    profile = device_profile(args.device, args.custom_op)
    out = args.out_dir
    console.info(f"edgeq plan: {args.model} -> {profile.name} (objective: {args.objective})")
    try:
        with console.stage("plan", "measuring every candidate"):
            result = run_plan(plan_request(args, profile))
    except PlanDoesNotFit as exc:
        write_files(out, _plan_files(exc.result))
        _warn(exc.result.warnings)
        console.info(format_plan_table(exc.result, args.all))
        raise
    write_files(out, _plan_files(result))
    _warn(result.warnings)
    _result(args, result.to_dict(),
            format_plan_table(result, args.all) + f"\nplan: {out / 'plan.json'}  ({out / 'report.html'})")
    return 0


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON: {exc}") from None


def cmd_report(args) -> int:
    """report.md and report.html again from report.json (and plan.json), or report.html from
    plan.json or measure.json alone: nothing is rerun."""
    from edgeq.device.measure import SUMMARY
    from edgeq.report import Report, render_measure_html, render_plan_html, report_files

    out = Path(args.out_dir)
    report = Report.from_json((out / "report.json").read_text(), str(out / "report.json")) \
        if (out / "report.json").is_file() else None
    plan, measured = (_read_json(out / name) for name in ("plan.json", SUMMARY))
    if report is not None:
        files = report_files(report, plan)
        del files["report.json"]  # the input: rewritten only by the run that measured it
    elif plan is not None:
        files = {"report.html": render_plan_html(plan).encode()}
    elif measured is not None:
        files = {"report.html": render_measure_html(measured, f"edgeq measure: {out.name}").encode()}
    else:
        raise BadInput(f"{out}: no report.json, plan.json or {SUMMARY} (edgeq deploy, plan or measure writes one)")
    write_files(out, files)
    written = sorted(files)
    _result(args, {"out": str(out), "from": [n for n, d in (("report.json", report), ("plan.json", plan),
                                                             (SUMMARY, measured)) if d is not None],
                   "written": written, "bytes": {n: len(files[n]) for n in written}},
            "\n".join(f"wrote {out / n} ({len(files[n]):,} bytes)" for n in written))
    return 0


def cmd_deploy(args) -> int:
    from edgeq.deploy import DeviceRequest, Request, deploy
    from edgeq.plan import PlanDoesNotFit
    from edgeq.report import render_markdown

    profile = device_profile(args.device, args.custom_op)
    req = Request(model=Path(args.model), profile=profile, data=args.data, val=args.val,
                  mode=args.quant, runtime=args.runtime, label_output=args.label_output, every_candidate=args.all,
                  planner=None if args.quant else plan_request(args, profile),
                  device=DeviceRequest(run=not args.no_device, port=args.port or args.host or args.serial,
                                       samples=args.samples, per_layer=args.profile,
                                       cycles=estimates_cycles(profile, args.cycles)))
    console.info(f"edgeq deploy: {req.model} -> {profile.name}")
    try:
        result = deploy(req)
    except PlanDoesNotFit as exc:
        write_files(args.out_dir, exc.result.files())
        raise
    write_files(args.out_dir, result.files)
    r = result.report
    acc = r.accuracy
    if acc is not None and acc.float is not None:
        console.info(f"  accuracy  float {100 * acc.float:.2f} %, {r.quantization.mode} "
                     f"{100 * acc.quantized:.2f} % ({acc.drop_pp:+.2f} pp drop)")
    console.info("")
    console.info(render_markdown(r))
    if args.json:
        console.emit_json(r.to_json())
    if result.failure is not None:
        raise result.failure
    if r.fit.verdict != "fits":
        raise DoesNotFit(f"{r.model.name} does not fit {profile.name}: " + "; ".join(r.fit.reasons()))
    console.info(f"report: {args.out_dir / 'report.md'}  ({args.out_dir / 'report.json'}, {args.out_dir / 'report.html'})")
    return 0
