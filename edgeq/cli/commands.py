"""What each `edgeq` subcommand does: read its arguments, call the stage, write what it returns,
print the facts (as a table for people, as the same facts in JSON with --json).

Imports of the stages wait inside each command so that `edgeq --help` and `edgeq profiles` start
in a fraction of a second, without TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeq import console
from edgeq.errors import BadInput, DoesNotFit, EdgeqError
from edgeq.files import write_files
from edgeq.sources import ESTIMATE_MARK
from edgeq.units import format_bytes


def _result(args, facts: dict, text: str) -> None:
    """The facts as JSON with --json, else the text for a person."""
    if args.json:
        console.emit_json(json.dumps(facts, indent=2))
    else:
        console.info(text)


def _generate_out(args) -> Path:
    path = Path(args.model)
    return Path(args.out) if args.out else path.with_name(f"{path.stem}_{args.runtime or 'firmware'}")


def _read_tflite(path: Path):
    from edgeq.graph import read_graph

    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.suffix != ".tflite":
        raise BadInput(f"{path}: not a .tflite file")
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
    from edgeq.convert.converter import NEEDS_CALIBRATION, convert
    from edgeq.load import load_data, load_model

    out = Path(args.out) if args.out else Path(args.model).with_name(f"{Path(args.model).stem}_{args.quant}.tflite")
    with console.stage("load", args.model):
        model = load_model(args.model)
        calibration = load_data(model, args.data, None)[0] if args.quant in NEEDS_CALIBRATION else None
    with console.stage("convert", args.quant):
        tflite = convert(model, args.quant, calibration)
    write_files(out.parent, {out.name: tflite})
    _result(args, {"tflite": str(out), "bytes": len(tflite), "mode": args.quant},
            f"wrote {out} ({len(tflite):,} bytes)")
    return 0


def cmd_evaluate(args) -> int:
    """A .tflite on this host: accuracy and latency in LiteRT, TFLM's arena, the fit verdict."""
    from edgeq.codegen.project import compile_for
    from edgeq.deploy import assess
    from edgeq.load import TensorSpec, load_dataset
    from edgeq.measure.interpreters import compare, litert_latency, run_litert, tflm_arena
    from edgeq.plan.rules import choose_runtime

    profile = _profile(args.device)
    tflite, graph = _read_tflite(Path(args.model))
    float_tflite = _read_tflite(Path(args.float))[0] if args.float else tflite
    runtime = choose_runtime(profile, args.runtime)
    spec = TensorSpec(graph.input_tensors()[0].shape[1:], "float32")
    val = load_dataset(args.val, spec)
    threads = profile.litert.threads if profile.litert else 1
    with console.stage("measure", f"{len(val)} samples, LiteRT on the host"):
        acc = compare(run_litert(float_tflite, val, threads, "float"), run_litert(tflite, val, threads, "model"), val)
        lat = litert_latency(tflite, val.x[0], threads)
        arena = tflm_arena(tflite) if profile.is_microcontroller else None
    compiled = compile_for(profile, tflite, args.model)[0] if runtime == "edgeq-c" else None
    fit = assess(profile, runtime, graph, tflite, arena, compiled)
    result = {"samples": acc.samples, "accuracy": acc.quantized_accuracy, "float_accuracy": acc.float_accuracy,
              "agreement": acc.agreement, "sqnr_db": acc.sqnr_db, "host_ms_median": lat.median_ms,
              "tflm_arena_bytes": arena.total_bytes if arena else None,
              "edgeq_c_arena_bytes": compiled.arena_bytes if compiled else None, "runtime": runtime,
              "fit": fit.to_dict(),
              "sources": {"accuracy": "measured: LiteRT on this host", "host_ms_median": "measured: LiteRT on this host",
                          "tflm_arena_bytes": "measured: tflite-micro's recording allocator on this host"}}
    lines = []
    if acc.quantized_accuracy is not None:
        lines.append(f"accuracy {100 * acc.quantized_accuracy:.2f} %"
                     + (f" (reference {100 * acc.float_accuracy:.2f} %)" if args.float else ""))
    lines.append(f"output SQNR {acc.sqnr_db:.1f} dB, host latency {lat.median_ms:.3f} ms (median, LiteRT on this host)")
    if arena:
        lines.append(f"TFLM arena {arena.total_bytes:,} bytes ({format_bytes(arena.total_bytes)})")
    lines.append(f"fit on {runtime}: {fit.verdict}"
                 + "".join(f"\n  {k}: {b.source.mark(format_bytes(b.needed_bytes))} of {format_bytes(b.budget_bytes)}"
                           for k, b in (("flash", fit.flash), ("RAM", fit.ram)))
                 + "".join(f"\n  {r}" for r in fit.reasons()) + f"\n  ({ESTIMATE_MARK} estimated)")
    _result(args, result, "\n".join(lines))
    return 0 if fit.verdict == "fits" else DoesNotFit.exit_code


def cmd_measure(args) -> int:
    """A firmware folder on its device, over serial."""
    firmware = Path(args.firmware)
    if firmware.suffix == ".tflite" or firmware.is_file():
        raise BadInput(f"{firmware}: edgeq measure runs a firmware folder on its device; "
                       f"to measure a .tflite on this host use: edgeq evaluate {firmware} --device NAME --val VAL")
    if not firmware.is_dir():
        raise BadInput(f"{firmware}: no such firmware folder (edgeq generate or edgeq deploy makes one)")
    return _measure_on_device(args, firmware)


def _measure_on_device(args, firmware: Path) -> int:
    from edgeq.device.build import read_manifest
    from edgeq.device.connect import device_link
    from edgeq.device.loop import measure_run
    from edgeq.device.measure import JOURNAL, SUMMARY, device_data, measure
    from edgeq.device.profile import profile_firmware
    from edgeq.report import format_measure, render_measure_html

    manifest = read_manifest(firmware)
    profile = _profile(args.device or manifest["device"])
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
    if args.profile and failure is None:
        summary["profile"] = profile_firmware(profile, firmware, run, summary["cycles_median"], args.port)
    if summary is not None:
        write_files(out, {SUMMARY: (json.dumps(summary, indent=2) + "\n").encode(),
                          "report.html": render_measure_html(summary, f"edgeq measure: {firmware}").encode()})
        _result(args, summary, "\n".join(format_measure(summary)))
    if failure is not None:
        if summary is not None:
            console.info(f"kept {summary['samples']} measured samples in {run.journal}; --resume continues")
        raise failure
    return 0


def cmd_build(args) -> int:
    from edgeq.device.build import build, read_manifest

    firmware = Path(args.firmware)
    profile = _profile(args.device or read_manifest(firmware)["device"])
    with console.stage("build", f"make{' PROFILE=1' if args.profile else ''} in {firmware}"):
        result = build(firmware, profile, profiled=args.profile)
    facts = result.to_dict()
    kb = format_bytes
    _result(args, facts, f"{result.elf}: flash {facts['flash_used_bytes']:,} bytes ({kb(facts['flash_used_bytes'])}, "
                     f"{100 * facts['flash_used_fraction']:.2f} % of {kb(facts['flash_budget_bytes'])}), "
                     f"RAM {facts['ram_used_bytes']:,} bytes ({kb(facts['ram_used_bytes'])}, "
                     f"{100 * facts['ram_used_fraction']:.2f} % of {kb(facts['ram_budget_bytes'])}, stack included; measured: the size tool on the linked image)")
    return 0


def cmd_flash(args) -> int:
    from edgeq.device.build import profiled_name, read_manifest
    from edgeq.device.connect import device_link, free_tcp_port
    from edgeq.device.flash import FlashOptions, Images, QemuRunner, flash

    firmware = Path(args.firmware)
    manifest = read_manifest(firmware)
    profile = _profile(args.device or manifest["device"])
    name = profiled_name if args.profile else str
    files = {key: firmware / name(manifest[key]) if manifest.get(key) else None
             for key in ("elf", "bin", "hex", "uf2")}
    options = FlashOptions(port=args.port, host=args.host, probe=args.probe, erase=args.erase)
    if args.dry_run and profile.flash.method == "qemu":
        from edgeq.codegen.boards import board_params_for

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
    same = info.model_hash.hex() == manifest["model_sha256"]
    facts["hello"] = {"runtime": info.runtime, "runtime_version": info.runtime_version,
                      "model_sha256": info.model_hash.hex(), "this_firmware": same, "arena_bytes": info.arena_bytes,
                      "clock_hz": info.clock_hz}
    if args.json:
        console.emit_json(json.dumps(facts, indent=2))
    console.info(f"HELLO from {profile.name}: {info.runtime} {info.runtime_version}, model "
                 f"{info.model_hash.hex()[:16]}... ({'this firmware' + chr(39) + 's model' if same else 'ANOTHER model'}), "
                 f"arena {info.arena_bytes:,} bytes, clock {info.clock_hz / 1e6:g} MHz")
    if not same:
        from edgeq.device.measure import FirmwareMismatch

        raise FirmwareMismatch(f"the device answers with the model {info.model_hash.hex()[:16]}..., not "
                               f"{manifest['model']} ({manifest['model_sha256'][:16]}...): the flash did not take")
    return 0


def cmd_generate(args) -> int:
    from edgeq.codegen import project as codegen
    from edgeq.deploy import check_runtime_ops
    from edgeq.measure.interpreters import tflm_arena
    from edgeq.plan.rules import choose_runtime

    profile = _profile(args.device)
    path = Path(args.model)
    tflite, graph = _read_tflite(path)
    runtime = choose_runtime(profile, args.runtime)
    compiled, refusal = codegen.compile_for(profile, tflite, str(path)) if runtime == "edgeq-c" else (None, None)
    check_runtime_ops(tflite, graph, runtime, refusal)
    arena = tflm_arena(tflite).smallest_bytes if runtime == "tflm" else None
    out = _generate_out(args)
    with console.stage("generate", f"{runtime} project"):
        if compiled is not None:
            project = codegen.render_edgeq_c_project(profile, tflite, graph, path.stem, compiled)
        else:
            project = codegen.render_project(runtime, profile, tflite, graph, arena, path.stem)
    write_files(out, {k: v.encode() if isinstance(v, str) else v for k, v in project.items()})
    _result(args, {"runtime": runtime, "device": profile.name, "out": str(out), "files": sorted(project)},
            f"wrote {len(project)} files to {out}/")
    return 0


def plan_request(args, profile):
    from edgeq.plan import PlanRequest
    from edgeq.units import parse_bytes

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
    out = args.out_dir
    console.info(f"edgeq plan: {args.model} -> {profile.name} (objective: {args.objective})")
    try:
        with console.stage("plan", "measuring every candidate"):
            result = run_plan(plan_request(args, profile))
    except PlanDoesNotFit as exc:
        write_files(out, _plan_files(exc.result))
        console.info(format_plan_table(exc.result))
        raise
    write_files(out, _plan_files(result))
    _result(args, result.to_dict(), format_plan_table(result) + f"\nplan: {out / 'plan.json'}  ({out / 'report.html'})")
    return 0


def _plan_files(result) -> dict[str, bytes]:
    """plan.json, the chosen model, and report.html drawn from plan.json."""
    from edgeq.report import render_plan_html

    files = result.files()
    files["report.html"] = render_plan_html(json.loads(files["plan.json"])).encode()
    return files


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def cmd_report(args) -> int:
    """report.md and report.html again from report.json (and plan.json), or report.html from
    plan.json or measure.json alone: nothing is rerun."""
    from edgeq.device.measure import SUMMARY
    from edgeq.report import render_measure_html, render_plan_html, report_files

    out = Path(args.out_dir)
    report, plan, measured = (_read_json(out / name) for name in ("report.json", "plan.json", SUMMARY))
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
    from edgeq.deploy import Request, deploy
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
    if r["fit"]["verdict"] != "fits":
        raise DoesNotFit(f"{r['model']['name']} does not fit {profile.name}: " + "; ".join(r["fit"]["reasons"]))
    console.info(f"report: {args.out_dir / 'report.md'}  ({args.out_dir / 'report.json'}, {args.out_dir / 'report.html'})")
    return 0


def _deploy_on_device(args, profile, result) -> tuple[dict, EdgeqError | None]:
    """build -> flash -> measure when the device can be reached; the report gains the figures."""
    from edgeq.deploy import with_device_results
    from edgeq.device.loop import device_unreachable, measure_run, run_on_device
    from edgeq.device.measure import JOURNAL
    from edgeq.device.profile import profile_firmware
    from edgeq.report import report_files

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
                          model_name=r["outputs"]["tflite"], compiled=result.compiled)
        try:
            device = run_on_device(profile, firmware, run, port=args.port)
            failure = device.error
            if args.profile and failure is None:
                device.measure["profile"] = profile_firmware(profile, firmware, run, device.measure["cycles_median"],
                                                             args.port, flash_board=True)
        except EdgeqError as exc:  # the build or the flash failed: nothing was measured
            failure = exc
    r = with_device_results(r, profile, device, skipped, failure)
    if device is not None and device.measure is not None:
        r["outputs"] = {**r["outputs"], "measure_log": JOURNAL}
    write_files(args.out_dir, report_files(r, _read_json(args.out_dir / "plan.json")))
    return r, failure


