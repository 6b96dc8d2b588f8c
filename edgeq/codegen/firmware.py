"""What every firmware project shares, whichever runtime it runs: board support for the boards edgeq
can build for, the compile and link flags, the Makefile, the manifest's counter, and the ESP-IDF
layout for the ESP32-S3. Pure: data in, `{relative path: text}` out."""

from __future__ import annotations

import dataclasses

from edgeq.boards import board_params_for
from edgeq.codegen.board import compile_flags, link_flags, render_board
from edgeq.codegen.esp_idf import esp_idf_project
from edgeq.codegen.sources import FIRMWARE_MANIFEST, FIRMWARE_PROGRAM, RuntimeId, Step, firmware_manifest
from edgeq.csource import generated_notice, render_template
from edgeq.errors import BadInput


def is_esp_idf(profile) -> bool:
    """ESP-IDF owns the ESP32-S3's start-up, linker script and clocks: its projects are laid out for idf.py."""
    return profile.board is not None and profile.board.family == "esp_idf"


def board_files(profile) -> tuple[dict[str, str], object | None]:
    """Board support (under board/) and its parameters, for the boards edgeq can build for: the QEMU
    machines, the host and the chips of edgeq.boards; none elsewhere."""
    if not (profile.is_emulated or profile.kind == "host" or profile.board is not None) or is_esp_idf(profile):
        return {}, None
    params = board_params_for(profile)
    return {f"board/{name}": text for name, text in render_board(params).items()}, params


def has_uf2(params) -> bool:
    """Whether the board boots from a UF2 drive (the RP2040's boot ROM), so edgeq build writes a .uf2."""
    return params is not None and params.chip is not None and params.chip.boot2


def cycles_unit(params) -> str:
    """What the firmware's cycle counter counts: instructions under QEMU, ns on the host, cycles on silicon."""
    return params.cycles_unit if params is not None else "cycles"


def toolchain_flags(profile, params) -> tuple[list[str], list[str]]:
    """Compile and link flags: edgeq.codegen.board's for boards it supports; for any other microcontroller the
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


def require_toolchain(profile, runtime: str) -> None:
    if profile.toolchain is None:
        raise BadInput(f"{profile.source or profile.name}: toolchain: missing; edgeq builds {runtime} firmware "
                       "with the profile's C compiler")


def board_advice(profile, params) -> str:
    """What the Makefile says when a board file is missing."""
    if params is not None:
        return "re-run edgeq generate to render it"
    bare_metal = profile.kind == "mcu"
    return (f"edgeq has no board support for {profile.name}: write eq_board.h/.c "
            f"(see docs/boards.md){', startup code and linker.ld' if bare_metal else ''} into board/")


def render_firmware_makefile(tflite: bytes, profile, params, runtime: str, sources: list[str]) -> str:
    """The Makefile of a firmware project: the profile's compiler, -O level and flags, the board's link
    flags, --gc-sections, and `firmware.elf` (+ .bin and .hex when cross-compiling) as the result."""
    require_toolchain(profile, runtime)
    prefix = profile.toolchain.prefix
    arch_flags, link = toolchain_flags(profile, params)
    bare_metal = profile.kind == "mcu"
    board = ["eq_board.h", "eq_board.c"] + (["linker.ld"] if bare_metal else [])
    return render_template("harness/Makefile.j2", notice=generated_notice(tflite), runtime=runtime, device=profile.name,
                           program=FIRMWARE_PROGRAM, cc=profile.toolchain.compiler, size=f"{prefix}size",
                           objcopy=f"{prefix}objcopy" if prefix else "", optimize=profile.toolchain.optimize,
                           arch_flags=" ".join(arch_flags), link_flags=" ".join(link), bare_metal=bare_metal,
                           sources=sources, board_files=board, board_advice=board_advice(profile, params))


def finish_project(files: dict[str, str | bytes], profile, params, tflite: bytes, stem: str, runtime: RuntimeId,
                   *, arena_bytes: int | None, steps: tuple[Step, ...], registry_tflm: bool = False
                   ) -> dict[str, str | bytes]:
    """A runtime's rendered sources made a project: the .tflite it embeds and its manifest beside
    them, or, on the ESP32-S3, laid out for ESP-IDF (`registry_tflm`: TFLM from its component registry)."""
    files = {**files, f"{stem}.tflite": tflite}
    facts = {"clock_hz": profile.clock_hz, "cycles_unit": cycles_unit(params), "arena_bytes": arena_bytes,
             "steps": steps}
    if is_esp_idf(profile):
        project = esp_idf_project(files, profile, runtime.name, tflite, registry_tflm=registry_tflm)
        manifest = firmware_manifest(tflite, profile, runtime, stem, f"build/{FIRMWARE_PROGRAM}.elf", bin_hex=True,
                                     builder="esp-idf", **facts)
        project[FIRMWARE_MANIFEST] = dataclasses.replace(manifest, hex=None).to_json()
        return project
    cross = bool(profile.toolchain.prefix)
    files[FIRMWARE_MANIFEST] = firmware_manifest(tflite, profile, runtime, stem, f"{FIRMWARE_PROGRAM}.elf",
                                                 bin_hex=cross, uf2=has_uf2(params), **facts).to_json()
    return files
