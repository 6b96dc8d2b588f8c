"""Building and running edgeq-c output on the host: a shared library driven through
ctypes (tests, benchmarks) or a stand-alone program (sanitizer runs)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from edgeq import tools
from edgeq.errors import ToolFailed
from edgeq.graph import NUMPY_DTYPES

STRICT_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")

_DRIVER = r"""
#include <stdio.h>
#include "{prefix}_model.h"
static const unsigned long in_bytes[] = {{{in_bytes}}};
static const unsigned long out_bytes[] = {{{out_bytes}}};
int main(void)
{{
    int i, rc;
    for (i = 0; i < {prefix_upper}_INPUT_COUNT; i++) {{
        if (fread({prefix}_input_ptr(i), 1, in_bytes[i], stdin) != in_bytes[i]) return 3;
    }}
    rc = {prefix}_invoke();
    if (rc != 0) return 4;
    for (i = 0; i < {prefix_upper}_OUTPUT_COUNT; i++) {{
        fwrite({prefix}_output_ptr(i), 1, out_bytes[i], stdout);
    }}
    return 0;
}}
"""


def write_sources(model, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in model.files.items():
        (directory / name).write_text(text)
    return [directory / n for n in model.sources]


def run_tool(args: list[str], install_hint: str = "install a C compiler") -> str:
    """Run a compiler or binutils program through edgeq.tools; its stdout."""
    return tools.run_tool(args, install_hint).stdout


def build_shared_library(model, directory: Path, cflags=("-O3",), cc: str = "gcc") -> Path:
    sources = write_sources(model, directory)
    out = directory / f"lib{model.prefix}.so"
    run_tool([cc, *STRICT_CFLAGS, *cflags, "-shared", "-fPIC", "-I", str(directory),
              *map(str, sources), "-o", str(out), "-lm"])
    return out


def build_program(model, directory: Path, cflags=("-O3",), cc: str = "gcc") -> Path:
    sources = write_sources(model, directory)
    driver = directory / "driver_main.c"
    driver.write_text(_DRIVER.format(prefix=model.prefix, prefix_upper=model.prefix.upper(),
                                     in_bytes=", ".join(str(t.nbytes) + "UL" for t in model.inputs),
                                     out_bytes=", ".join(str(t.nbytes) + "UL" for t in model.outputs)))
    out = directory / f"{model.prefix}_driver"
    run_tool([cc, *STRICT_CFLAGS, *cflags, "-I", str(directory), *map(str, sources), str(driver), "-o", str(out),
              "-lm"])
    return out


def run_program(program: Path, model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    data = b"".join(np.ascontiguousarray(x).tobytes() for x in inputs)
    proc = tools.run_tool([str(program)], "the host C compiler", input=data, check=False)
    if proc.returncode != 0:
        raise ToolFailed(f"{program} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-4000:]}")
    outputs, pos = [], 0
    for t in model.outputs:
        outputs.append(np.frombuffer(proc.stdout[pos:pos + t.nbytes], NUMPY_DTYPES[t.dtype]).reshape(t.shape))
        pos += t.nbytes
    return outputs


class HostModel:
    """A compiled model loaded through ctypes: set inputs, invoke, read outputs."""

    def __init__(self, library: Path, model):
        self.model = model
        self.lib = ctypes.CDLL(str(library))
        p = model.prefix
        self._input_ptr = getattr(self.lib, f"{p}_input_ptr")
        self._output_ptr = getattr(self.lib, f"{p}_output_ptr")
        for fn in (self._input_ptr, self._output_ptr):
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_int]
        self._invoke = getattr(self.lib, f"{p}_invoke")
        self._invoke.restype = ctypes.c_int

    def set_input(self, index: int, value: np.ndarray) -> None:
        info = self.model.inputs[index]
        data = np.ascontiguousarray(value, NUMPY_DTYPES[info.dtype]).tobytes()
        if len(data) != info.nbytes:
            raise ValueError(f"input {index} needs {info.nbytes} bytes, got {len(data)}")
        ctypes.memmove(self._input_ptr(index), data, len(data))

    def output(self, index: int) -> np.ndarray:
        info = self.model.outputs[index]
        raw = ctypes.string_at(self._output_ptr(index), info.nbytes)
        return np.frombuffer(raw, NUMPY_DTYPES[info.dtype]).reshape(info.shape).copy()

    def invoke(self) -> None:
        rc = self._invoke()
        if rc != 0:
            raise ToolFailed(f"{self.model.prefix}_invoke returned {rc}")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self.set_input(i, x)
        self.invoke()
        return [self.output(i) for i in range(len(self.model.outputs))]
