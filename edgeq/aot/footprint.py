"""Flash and RAM of edgeq-c output on a microcontroller, measured from the compiled objects.

Every source is compiled on its own with function and data sections, and the sections are
read back with `size -A`: `.rodata*` of the generated model file are the model's constants
(weights, biases, requantization parameters, kernel argument structs), `.text*` of every
object is code (kernels and the generated glue), and `.data`/`.bss` are RAM. The arena is a
static array of the model file, so it is part of `.bss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeq.aot.host import STRICT_CFLAGS, run_tool, write_sources

CORTEX_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-Os")


@dataclass(frozen=True)
class Footprint:
    weights_bytes: int  # read-only data of the generated model file: constants, kept in flash
    code_bytes: int  # machine code of kernels and glue
    kernel_code_bytes: int  # the part of code_bytes in runtime kernels
    other_rodata_bytes: int  # read-only data of the kernels (tables, jump tables), also flash
    data_bytes: int  # initialized RAM
    bss_bytes: int  # zeroed RAM, the arena included

    @property
    def ram_bytes(self) -> int:
        return self.data_bytes + self.bss_bytes

    @property
    def flash_bytes(self) -> int:
        return self.weights_bytes + self.code_bytes + self.other_rodata_bytes + self.data_bytes


def parse_size_sections(text: str) -> dict[str, int]:
    """`size -A` output of one object -> section name -> bytes."""
    sections: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = sections.get(parts[0], 0) + int(parts[1])
    return sections


def _sum(sections: dict[str, int], prefix: str) -> int:
    return sum(n for name, n in sections.items() if name == prefix or name.startswith(prefix + "."))


def footprint_from_sections(per_object: dict[str, dict[str, int]], model_object: str) -> Footprint:
    """Classify the sections of every object (name -> sections); `model_object` is the glue's."""
    weights = other = code = kernel_code = data = bss = 0
    for name, sections in per_object.items():
        rodata = _sum(sections, ".rodata")
        text = _sum(sections, ".text")
        if name == model_object:
            weights += rodata
        else:
            other += rodata
            kernel_code += text
        code += text
        data += _sum(sections, ".data")
        bss += _sum(sections, ".bss") + _sum(sections, "COMMON")
    return Footprint(weights, code, kernel_code, other, data, bss)


def _run(args: list[str]) -> str:
    return run_tool(args, "install the Arm GNU toolchain")


def measure_footprint(model, directory: Path, cc: str = "arm-none-eabi-gcc", size: str = "arm-none-eabi-size",
                      cflags=CORTEX_M4_FLAGS) -> Footprint:
    """Compile `model` (a CompiledModel) for the target and measure its sections."""
    write_sources(model, directory)
    per_object = {}
    for src in model.sources:
        obj = directory / (src[:-2] + ".o")
        _run([cc, *STRICT_CFLAGS, *cflags, "-ffunction-sections", "-fdata-sections", "-I", str(directory),
              "-c", str(directory / src), "-o", str(obj)])
        per_object[obj.name] = parse_size_sections(_run([size, "-A", str(obj)]))
    return footprint_from_sections(per_object, f"{model.prefix}_model.o")
