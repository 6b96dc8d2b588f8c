"""`edgeq build`: compile a generated firmware project with make and read how much flash and RAM it uses.

Pure: `parse_size_output` reads what `size` prints, `parse_overflow` what ld prints when the image does
not fit, `make_command` builds the make invocation. At the edge, `build` runs `make` in the project (the
Makefile codegen rendered from the profile) and `size` on the result, and sets both against the profile.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgeq.boards.images import uf2_from_bin
from edgeq.codegen.litert import BUILDER as BUNDLE_BUILDER
from edgeq.codegen.sources import Manifest, read_manifest
from edgeq.device.litert_lib import BIONIC, CROSS_PACKAGES, HOST_ABI, bundle_libc, litert_library, runtime_libraries
from edgeq.errors import BadInput, DoesNotFit, ToolFailed
from edgeq.files import write_atomic
from edgeq.tools import output_tail, require, run_tool

MAKE_JOBS = 2
MAKE_JOBS_VARIABLE = "EDGEQ_MAKE_JOBS"  # set where edgeq holds fewer cores: one in an `edgeq sweep` cell
IDF_PROVIDES = "ESP-IDF 5.x (docs.espressif.com/projects/esp-idf: install it, then source its export.sh)"
_MAKE_SAYS = re.compile(r"(?:\*\*\* |^)edgeq: (.*?)(?:\.  Stop\.)?$", re.MULTILINE)
_OVERFLOW = re.compile(r"region `(?P<region>\w+)' overflowed by (?P<bytes>\d+) bytes")


@dataclass(frozen=True)
class MemoryUse:
    """What `size` (Berkeley format) reports for an image, and what that means for the device."""

    text: int  # code, read-only data and the vector table: flash
    data: int  # initialised RAM, whose initial values also sit in flash
    bss: int  # zeroed RAM; with edgeq's linker script it includes the heap and the stack it reserves

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss


def parse_size_output(text: str) -> MemoryUse:
    """`arm-none-eabi-size firmware.elf` (or `size`) -> MemoryUse. The first file's row counts."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for header, row in zip(lines, lines[1:]):
        if header[:3] == ["text", "data", "bss"]:
            try:
                return MemoryUse(int(row[0]), int(row[1]), int(row[2]))
            except (ValueError, IndexError):
                break
    raise ToolFailed(f"cannot read the output of size (expected a 'text data bss' header and a row): {text[:200]!r}")


@dataclass(frozen=True)
class Overflow:
    region: str  # FLASH or RAM, as the linker script names them
    bytes: int


def parse_overflow(stderr: str) -> list[Overflow]:
    """ld's "region `RAM' overflowed by N bytes" lines, each region once."""
    found: dict[str, int] = {}
    for match in _OVERFLOW.finditer(stderr):
        found.setdefault(match["region"], int(match["bytes"]))
    return [Overflow(region, n) for region, n in found.items()]


@dataclass(frozen=True)
class BuildResult:
    project: Path
    elf: Path
    bin: Path | None
    hex: Path | None
    memory: MemoryUse
    flash_budget_bytes: int
    ram_budget_bytes: int
    command: tuple[str, ...]
    uf2: Path | None = None
    # A phone's or Linux board's harness bundle (edgeq.codegen.litert): its files and what LiteRT it
    # carries; `memory.text` is then the bundle's bytes in storage and RAM is what the device measures.
    bundle: dict | None = None

    def to_dict(self, shown_as: str | None = None) -> dict:
        """The figures as report.json keeps them; `shown_as` names the project in the command as the
        output folder holds it (a deploy builds in a temporary folder)."""
        m = self.memory
        command = [shown_as if shown_as is not None and part == str(self.project) else part for part in self.command]
        return {
            "elf": self.elf.name, "text_bytes": m.text, "data_bytes": m.data, "bss_bytes": m.bss,
            "flash_used_bytes": m.flash_bytes, "flash_budget_bytes": self.flash_budget_bytes,
            "flash_used_fraction": round(m.flash_bytes / self.flash_budget_bytes, 6),
            "ram_used_bytes": m.ram_bytes, "ram_budget_bytes": self.ram_budget_bytes,
            "ram_used_fraction": round(m.ram_bytes / self.ram_budget_bytes, 6),
            "command": " ".join(command),
        }


def overflow_message(overflows: list[Overflow], profile, ld_lines: list[str]) -> str:
    budget = {"FLASH": profile.memory.flash_bytes, "RAM": profile.memory.ram_bytes}
    parts = [f"{o.region} by {o.bytes:,} bytes (the device has {budget[o.region]:,})" if o.region in budget
             else f"{o.region} by {o.bytes:,} bytes" for o in overflows]
    return (f"the firmware does not fit {profile.name}: it overflows " + "; ".join(parts)
            + ". The linker said:\n  " + "\n  ".join(ld_lines))


# ---- the edge: files and programs ---------------------------------------------------------------------

def make_command(project: Path, manifest: Manifest, variables: dict[str, str] | None = None, jobs: int | None = None,
                 profiled: bool = False) -> list[str]:
    """The make invocation for a project: its generated Makefile with the `variables` its runtime
    needs (TFLM's source tree, edgeq.runtimes.tflm); PROFILE=1 for the image that counts each step
    (`profiled_name`)."""
    if manifest.builder == "esp-idf":  # edgeq.codegen.esp_idf: CMake under idf.py
        return ["idf.py", "-C", str(project), "build"]
    jobs = jobs or int(os.environ.get(MAKE_JOBS_VARIABLE) or MAKE_JOBS)
    command = ["make", "-C", str(project), f"-j{jobs}"]
    command += [f"{name}={value}" for name, value in (variables or {}).items()]
    if profiled:
        command.append("PROFILE=1")
    return command


def profiled_name(image: str) -> str:
    """The profiled build's file for one of the manifest's images: firmware.elf -> firmware-profile.elf
    (the generated Makefiles' PROFILE=1 names)."""
    stem, dot, suffix = image.rpartition(".")
    return f"{stem}-profile{dot}{suffix}" if dot else f"{image}-profile"


def make_failure(output: str) -> str | None:
    """What a generated Makefile said when it stopped on purpose ("edgeq: ..." from $(error) or echo)."""
    lines = [m.group(1) for m in _MAKE_SAYS.finditer(output)]
    return "\n".join(dict.fromkeys(lines)) or None


def run_size(size_program: str, elf: Path) -> MemoryUse:
    return parse_size_output(run_tool([size_program, str(elf)], kind="query").stdout)


def build(project: str | Path, profile, profiled: bool = False, variables: dict[str, str] | None = None
          ) -> BuildResult:
    """Runs make in `project` (a folder edgeq generated for `profile`, with the make `variables` its
    runtime needs) and measures the image; with `profiled`, the image that counts each step for
    `edgeq measure --profile` (make PROFILE=1).

    ToolFailed when the compiler, make or size is missing (naming the package) or the build fails;
    DoesNotFit, with ld's own lines, when the image overflows the device's flash or RAM."""
    project = Path(project)
    manifest = read_manifest(project)
    if manifest.device != profile.name:
        raise BadInput(f"{project} was generated for {manifest.device}, not {profile.name}; "
                       f"build it with --device {manifest.device} or generate it again")
    if profile.toolchain is None:
        raise BadInput(f"{profile.source or profile.name}: toolchain: missing; {profile.name} builds no firmware")
    if manifest.builder == BUNDLE_BUILDER:
        return build_bundle(project, profile, manifest)
    compiler = profile.toolchain.compiler
    require(compiler)
    size_program = require(profile.toolchain.tool("size"))
    command = make_command(project, manifest, variables, profiled=profiled)
    done = run_tool(command, IDF_PROVIDES if command[0] == "idf.py" else None, kind="build", check=False)
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        overflows = parse_overflow(output)
        if overflows:
            ld_lines = [line.strip() for line in output.splitlines() if "overflowed by" in line or "edgeq:" in line]
            raise DoesNotFit(overflow_message(overflows, profile, ld_lines))
        said = make_failure(output)
        if said:
            raise ToolFailed(f"building {project} failed: {said}")
        raise ToolFailed(f"building {project} failed ({' '.join(command)}):\n{output_tail(done)}")
    name = profiled_name if profiled else str
    elf = project / name(manifest.elf)
    if not elf.is_file():
        raise ToolFailed(f"make finished but {elf} is not there")
    memory = run_size(size_program, elf)
    optional = {key: project / name(manifest.image(key)) if manifest.image(key) else None
                for key in ("bin", "hex", "uf2")}
    if optional["uf2"] is not None:
        write_uf2(optional["bin"], optional["uf2"], profile)
    return BuildResult(project=project, elf=elf, bin=optional["bin"], hex=optional["hex"], memory=memory,
                       flash_budget_bytes=profile.memory.flash_bytes, ram_budget_bytes=profile.memory.ram_bytes,
                       command=tuple(command), uf2=optional["uf2"])


def build_bundle(project: Path, profile, manifest: Manifest) -> BuildResult:
    """The native LiteRT harness compiled for the profile's CPU and gathered with libLiteRt.so (the
    ai-edge-litert wheel's build for that CPU) and, for Arm, the cross glibc, into bundle/."""
    abi = profile.litert.abi
    libc = bundle_libc(abi)
    if libc != BIONIC:  # with the NDK, its clang (the Makefile finds it) compiles instead
        require(profile.toolchain.compiler, CROSS_PACKAGES if abi != HOST_ABI else None)
    library = litert_library(abi)
    variables = {"LITERT_LIB": str(library.directory)}
    libraries = runtime_libraries(abi)
    if libraries:
        variables["BUNDLE_LIBS"] = " ".join(map(str, libraries))
    command = make_command(project, manifest, variables)
    done = run_tool(command, kind="build", check=False)
    if done.returncode != 0:
        output = (done.stdout or "") + (done.stderr or "")
        raise ToolFailed(f"building {project} failed: {make_failure(output) or output_tail(done)}")
    harness = project / manifest.elf
    if not harness.is_file():
        raise ToolFailed(f"make finished but {harness} is not there")
    record = harness.parent / "bundle.json"  # a previous build's: not part of what goes to the device
    sizes = {p.name: p.stat().st_size for p in sorted(harness.parent.iterdir()) if p.is_file() and p != record}
    stored = sum(sizes.values())
    bundle = {**library.to_dict(), "libc": libc, "files": sizes, "bytes": stored}
    write_atomic(record, (json.dumps(bundle, indent=2) + "\n").encode())
    return BuildResult(project=project, elf=harness, bin=None, hex=None, memory=MemoryUse(stored, 0, 0),
                       flash_budget_bytes=profile.memory.flash_bytes, ram_budget_bytes=profile.ram_for_model_bytes,
                       command=tuple(command), bundle=bundle)


def write_uf2(binary: Path, uf2: Path, profile) -> None:
    """The UF2 file for the boot ROM's drive, from the .bin make wrote (it starts at the flash origin)."""
    if binary is None or not binary.is_file():
        raise ToolFailed(f"make finished but {binary} is not there; the UF2 file is made from it")
    write_atomic(uf2, uf2_from_bin(binary.read_bytes(), profile.memory.flash_origin))
