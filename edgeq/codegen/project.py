"""One firmware (or harness) project per runtime: edgeq-c (the generated model, its kernels and
main.c), TFLM, or LiteRT; each with board support, a Makefile for the profile's compiler, the
.tflite it embeds and its manifest."""

from __future__ import annotations

import json

import edgeq
from edgeq.aot import CompiledModel, compile_if_supported
from edgeq.codegen.boards import board_params_for, compile_flags, link_flags, render_board
from edgeq.codegen.esp_idf import esp_idf_project
from edgeq.codegen.litert import render_litert_harness
from edgeq.codegen.sources import (
    FIRMWARE_MANIFEST,
    FIRMWARE_PROGRAM,
    firmware_manifest,
    hello_payload,
    runtime_sources,
    single_tensor,
)
from edgeq.codegen.tflm import TflmTarget, render_tflm_project, tflm_version
from edgeq.codegen.tflm_sources import cmsis_device
from edgeq.csource import c_byte_array, generated_notice, render_template
from edgeq.errors import BadInput
from edgeq.graph import Graph


def _board_files(profile) -> tuple[dict[str, str], object | None]:
    """Board support for boards edgeq can build for (the QEMU machines and the host); none elsewhere."""
    if not (profile.is_emulated or profile.kind == "host" or profile.board is not None) or _is_esp_idf(profile):
        return {}, None
    params = board_params_for(profile)
    return {f"board/{name}": text for name, text in render_board(params).items()}, params


def _has_uf2(params) -> bool:
    """Whether the board boots from a UF2 drive (the RP2040's boot ROM), so edgeq build writes a .uf2."""
    return params is not None and params.chip is not None and params.chip.boot2


def _toolchain_flags(profile, params) -> tuple[list[str], list[str]]:
    """Compile and link flags: edgeq.codegen.boards' for boards it supports; for any other microcontroller the
    same shape (the profile's cflags, a board/linker.ld the user supplies, newlib-nano)."""
    if params is not None:
        compile_, link = compile_flags(params), link_flags(params, "board/linker.ld")
    else:
        cflags = list(profile.toolchain.cflags)
        compile_, link = cflags, [*cflags, "-T", "board/linker.ld", "--specs=nano.specs", "--specs=nosys.specs"]
    # Every function and object in its own section, and the unused ones dropped at the link: the
    # kernels' files hold variants a given model never calls.
    compile_ += [f for f in ("-ffunction-sections", "-fdata-sections") if f not in compile_]
    link += [f for f in ("-Wl,--gc-sections",) if f not in link]
    return compile_, link


def render_firmware_makefile(tflite: bytes, profile, params, runtime: str, sources: list[str]) -> str:
    """The Makefile of a firmware project: the profile's compiler, -O level and flags, the board's link
    flags, --gc-sections, and `firmware.elf` (+ .bin and .hex when cross-compiling) as the result."""
    if profile.toolchain is None:
        raise BadInput(f"{profile.source or profile.name}: toolchain: missing; edgeq builds {runtime} firmware "
                       "with the profile's C compiler")
    compiler = profile.toolchain.compiler
    prefix = profile.toolchain.prefix
    cross = bool(prefix)
    arch_flags, link = _toolchain_flags(profile, params)
    bare_metal = profile.kind == "mcu"
    board_files = ["eq_board.h", "eq_board.c"] + (["linker.ld"] if bare_metal else [])
    supported = params is not None
    advice = ("re-run edgeq generate to render it" if supported else
              f"edgeq has no board support for {profile.name}: write eq_board.h/.c "
              f"(see docs/boards.md){', startup code and linker.ld' if bare_metal else ''} into board/")
    return render_template("harness/Makefile.j2", notice=generated_notice(tflite), runtime=runtime, device=profile.name,
                   program=FIRMWARE_PROGRAM, cc=compiler, size=f"{prefix}size",
                   objcopy=f"{prefix}objcopy" if cross else "", optimize=profile.toolchain.optimize,
                   arch_flags=" ".join(arch_flags), link_flags=" ".join(link), bare_metal=bare_metal,
                   sources=sources, board_files=board_files, board_advice=advice)


def tflm_target(profile, params) -> TflmTarget:
    """The TFLM build for a profile: the same compiler, -O level and board flags as its edgeq-c firmware,
    and the CMSIS device header of its core on a microcontroller."""
    if profile.toolchain is None:
        raise BadInput(f"{profile.source or profile.name}: toolchain: missing; edgeq builds tflm firmware "
                       "with the profile's C compiler")
    arch_flags, link = _toolchain_flags(profile, params)
    bare_metal = profile.kind == "mcu"
    advice = ("re-run edgeq generate to render it" if params is not None else
              f"edgeq has no board support for {profile.name}: write eq_board.h/.c "
              f"(see docs/boards.md){', startup code and linker.ld' if bare_metal else ''} into board/")
    return TflmTarget(device=profile.name, compiler=profile.toolchain.compiler, tool_prefix=profile.toolchain.prefix,
                      optimize=profile.toolchain.optimize, arch_flags=tuple(arch_flags), link_flags=tuple(link),
                      cmsis_device=cmsis_device(profile.core) if profile.core.lower().startswith("cortex-m") else "",
                      bare_metal=bare_metal, board_advice=advice)


def render_edgeq_c_harness(tflite: bytes, graph: Graph, compiled, hello: bytes) -> str:
    """main.c: fills an eq_server_t with the generated model's input, output and invoke, then serves."""
    inp, out = single_tensor(graph, "input"), single_tensor(graph, "output")
    return render_template("harness/main.c.j2", notice=generated_notice(tflite), prefix=compiled.prefix,
                   P=compiled.prefix.upper(), input_desc=f"{inp.type} {list(inp.shape)}",
                   output_desc=f"{out.type} {list(out.shape)}", input_bytes=inp.nbytes, output_bytes=out.nbytes,
                   arena_bytes=compiled.arena_bytes, hello_length=len(hello), hello_bytes=c_byte_array(hello))


def compile_for(profile, tflite: bytes, source: str = "<bytes>", graph: Graph | None = None
                ) -> tuple[CompiledModel | None, str | None]:
    """edgeq-c's model for `profile` (or None and why edgeq-c cannot run it): the DSP kernels where the
    core has them and their widened weights fit its flash. Everything that compiles for a device
    goes through here, so the firmware, the fit and the per-layer profile agree on the kernels."""
    return compile_if_supported(tflite, source, graph, dsp=profile.has_dsp, flash_bytes=profile.memory.flash_bytes)


def render_edgeq_c_project(profile, tflite: bytes, graph: Graph, stem: str, compiled=None) -> dict[str, str | bytes]:
    """The complete edgeq-c firmware project: generated model, kernels, eq_protocol, main.c, board
    support, Makefile, the .tflite it was built from and the manifest."""
    if compiled is None:
        compiled, refusal = compile_for(profile, tflite, f"{stem}.tflite", graph)
        if compiled is None:
            raise BadInput(refusal)
    board, params = _board_files(profile)
    hello = hello_payload(tflite, graph, "edgeq-c", edgeq.__version__, profile.clock_hz, compiled.arena_bytes)
    files: dict[str, str | bytes] = {**compiled.files, **runtime_sources(),
                                     "main.c": render_edgeq_c_harness(tflite, graph, compiled, hello)}
    sources = sorted(name for name in files if name.endswith(".c"))
    files["Makefile"] = render_firmware_makefile(tflite, profile, params, "edgeq-c", sources)
    files.update(board)
    files[f"{stem}.tflite"] = tflite
    cross = bool(profile.toolchain.prefix)
    files[FIRMWARE_MANIFEST] = firmware_manifest(tflite, profile, "edgeq-c", stem, f"{FIRMWARE_PROGRAM}.elf",
                                                 bin_hex=cross, uf2=_has_uf2(params))
    return files


def render_project(runtime: str, profile, tflite: bytes, graph: Graph, arena_bytes: int | None,
                   stem: str) -> dict[str, str | bytes]:
    """The firmware (or harness) project for `runtime` on `profile`, as {relative path: content}.

    `arena_bytes` is, for TFLM, the smallest arena its AllocateTensors accepts (the project adds
    the margin). Firmware projects (edgeq-c, TFLM) carry the .tflite they embed and
    `edgeq-firmware.json`, so `edgeq build/flash/measure FIRMWARE_DIR` need nothing else.
    """
    if runtime == "litert":
        files: dict[str, str | bytes] = dict(render_litert_harness(
            tflite, f"{stem}.tflite", profile.litert.threads, profile.litert.delegate))
        files[f"{stem}.tflite"] = tflite
        return files
    if profile.board is not None and profile.board.family == "esp_idf":
        return _esp_idf(runtime, profile, tflite, graph, arena_bytes, stem)
    if runtime == "tflm":
        board, params = _board_files(profile)
        hello = hello_payload(tflite, graph, "tflm", tflm_version(), profile.clock_hz, 0)
        cross = bool(profile.toolchain.prefix)
        return {**render_tflm_project(tflite, graph, arena_bytes, hello, target=tflm_target(profile, params),
                                      baud=profile.serial.baud),
                **board, f"{stem}.tflite": tflite,
                FIRMWARE_MANIFEST: firmware_manifest(tflite, profile, "tflm", stem, f"{FIRMWARE_PROGRAM}.elf",
                                                     bin_hex=cross, uf2=_has_uf2(params))}
    if runtime == "edgeq-c":
        return render_edgeq_c_project(profile, tflite, graph, stem)
    raise BadInput(f"no code generator for runtime '{runtime}'")


def _is_esp_idf(profile) -> bool:
    return profile.board is not None and profile.board.family == "esp_idf"


def _esp_idf(runtime: str, profile, tflite: bytes, graph: Graph, arena_bytes, stem: str) -> dict[str, str | bytes]:
    """The ESP-IDF project (edgeq.codegen.esp_idf) around the firmware's sources; built by idf.py."""
    if runtime == "tflm":
        hello = hello_payload(tflite, graph, "tflm", tflm_version(), profile.clock_hz, 0)
        files = dict(render_tflm_project(tflite, graph, arena_bytes, hello, target=tflm_target(profile, None),
                                         baud=profile.serial.baud))
    else:
        files = dict(render_edgeq_c_project(profile, tflite, graph, stem))
    files[f"{stem}.tflite"] = tflite
    project = esp_idf_project(files, profile, runtime, tflite)
    manifest = json.loads(firmware_manifest(tflite, profile, runtime, stem, f"build/{FIRMWARE_PROGRAM}.elf",
                                            bin_hex=True))
    manifest.update(hex=None, builder="esp-idf")
    project[FIRMWARE_MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    return project
