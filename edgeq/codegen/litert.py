"""The native LiteRT harness for phones and Linux boards: `harness.c` (LiteRT's C API, no Python),
its Makefile, which gathers the bundle the device runs, a README, the manifest `edgeq build`, `flash`
and `measure` read, and the command that runs it on the device.

The harness is run by the bundle's own loader (`./ld-linux-aarch64.so.1 --library-path . ./harness`),
so it depends on nothing of the target's libc; pinned with taskset to the profile's CPUs (a phone's
big cores); and on an emulated Arm device under qemu-user with a /proc/cpuinfo that matches the
emulated CPU (XNNPACK reads it to choose its kernels, and the host's x86 one crashes it).
"""

from __future__ import annotations

import shlex

import numpy as np

from edgeq.codegen.sources import FIRMWARE_MANIFEST, RuntimeId, describe, firmware_manifest, io_tensors
from edgeq.csource import generated_notice, model_sha256, render_template
from edgeq.errors import BadInput
from edgeq.graph import NUMPY_DTYPES, Graph

HARNESS = "harness"
LOADERS = {"aarch64": "ld-linux-aarch64.so.1"}
# The CPU ids XNNPACK reads from /proc/cpuinfo, for the -cpu names qemu-aarch64 emulates (Arm's TRMs).
CPU_PARTS = {"cortex-a53": "0xd03", "cortex-a55": "0xd05", "cortex-a72": "0xd08", "cortex-a76": "0xd0b",
             "neoverse-n1": "0xd0c", "cortex-a710": "0xd47", "max": "0xd0c"}
_ARMV8_0 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_ARMV8_2 = _ARMV8_0 + " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"  # fphp/asimdhp: fp16 arithmetic
CPU_FEATURES = {"cortex-a53": _ARMV8_0, "cortex-a72": _ARMV8_0, "cortex-a55": _ARMV8_2, "cortex-a76": _ARMV8_2,
                "neoverse-n1": _ARMV8_2 + " ssbs"}


def cpuinfo_text(cpu: str, cores: int) -> str:
    """A /proc/cpuinfo as an aarch64 Linux kernel writes it for `cores` CPUs of the kind `cpu`."""
    name = cpu.split(",")[0]
    if name not in CPU_PARTS:
        raise BadInput(f"no /proc/cpuinfo known for -cpu {cpu}; known: {', '.join(CPU_PARTS)}")
    if name == "max" and "sme=off" not in cpu.split(","):
        raise BadInput("-cpu max enables SME, under which XNNPACK's int8 results are wrong on QEMU 7.2: "
                       "use max,sme=off or a named CPU (cortex-a72, neoverse-n1)")
    features = CPU_FEATURES.get(name, CPU_FEATURES["neoverse-n1"])
    block = ("processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: " + features + "\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: " + CPU_PARTS[name] + "\nCPU revision\t: 0\n\n")
    return "".join(block.format(n=n) for n in range(cores))


def cpu_mask(cpus: tuple[int, ...]) -> str:
    """taskset's hexadecimal mask (toybox on Android and util-linux both take it) for the CPU numbers."""
    return format(sum(1 << c for c in cpus), "x")


def emulated_cpuinfo(profile) -> str | None:
    """The /proc/cpuinfo an emulated Arm device's run binds over the host's (None for a real device)."""
    emulator = profile.emulator
    return cpuinfo_text(emulator.cpu, profile.cores) if emulator is not None and emulator.qemu_user else None


def harness_command(profile, arguments: list[str], *, loader: bool = True) -> list[str]:
    """The command, run in the bundle's folder on the device, that runs the harness with `arguments`
    (on an emulated device, `cpuinfo` beside it is what emulated_cpuinfo wrote); without `loader`, a
    harness built with the NDK, which runs on the device's own bionic."""
    litert = profile.litert
    loader = LOADERS.get(litert.abi) if loader else None
    argv = ([f"./{loader}", "--library-path", ".", f"./{HARNESS}"] if loader else [f"./{HARNESS}"]) + arguments
    emulator = profile.emulator
    if emulator is not None and emulator.qemu_user:
        # A private mount namespace so the matching cpuinfo is seen by this process alone.
        argv = ["unshare", "--mount", "sh", "-c", 'mount --bind cpuinfo /proc/cpuinfo && exec "$@"', "sh",
                emulator.qemu_user, "-cpu", emulator.cpu, *argv]
    if litert.cpus:
        argv = ["taskset", cpu_mask(litert.cpus), *argv]
    return argv


HARNESS_PROGRAM = "bundle/harness"
BUILDER = "litert-bundle"  # the manifest's builder: make gathers a bundle, there is no image to size
MAX_TENSORS = 16  # MAX_TENSORS in harness.c.j2
WARMUP_RUNS = 5
TIMED_RUNS = 50


def tensor_bytes(tensor) -> int:
    return int(np.prod(tensor.shape)) * np.dtype(NUMPY_DTYPES[tensor.type]).itemsize


def harness_arguments(threads: int, *, warmup: int = WARMUP_RUNS, runs: int = TIMED_RUNS,
                      profile_file: str | None = None) -> list[str]:
    """The harness's command-line arguments for one measurement."""
    arguments = ["--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs)]
    return arguments + (["--profile", profile_file] if profile_file else [])


def render_litert_project(tflite: bytes, graph: Graph, stem: str, profile, runtime: RuntimeId,
                          command: list[str]) -> dict[str, str]:
    """harness.c, Makefile, README.md and the manifest; `command` is how the harness is run on the
    device, for the README."""
    tflite_name = f"{stem}.tflite"
    inputs, outputs = io_tensors(graph, "input"), io_tensors(graph, "output")
    if len(inputs) > MAX_TENSORS or len(outputs) > MAX_TENSORS:
        raise BadInput(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; the native harness takes "
                       f"at most {MAX_TENSORS} of each")
    litert = profile.litert
    input_sizes, output_sizes = [tensor_bytes(t) for t in inputs], [tensor_bytes(t) for t in outputs]
    context = {
        "notice": generated_notice(tflite), "tflite_name": tflite_name, "sha256": model_sha256(tflite),
        "litert_version": runtime.version, "device": profile.name, "abi": litert.abi,
        "num_inputs": len(inputs), "num_outputs": len(outputs),
        "input_bytes": sum(input_sizes), "output_bytes": sum(output_sizes),
        "input_sizes": ", ".join(map(str, input_sizes)), "output_sizes": ", ".join(map(str, output_sizes)),
        "inputs_text": describe(inputs), "outputs_text": describe(outputs),
        "threads": litert.threads, "warmup": WARMUP_RUNS, "runs": TIMED_RUNS,
        "cc": profile.toolchain.compiler, "optimize": profile.toolchain.optimize,
        "bundle_libs": litert.abi != "x86-64",
        "method": profile.flash.method, "command": shlex.join(command),
    }
    manifest = firmware_manifest(tflite, profile, runtime, stem, HARNESS_PROGRAM, bin_hex=False,
                                 clock_hz=profile.clock_hz, cycles_unit="ns", arena_bytes=None, steps=(),
                                 builder=BUILDER)
    return {
        "harness.c": render_template("litert/harness.c.j2", **context),
        "Makefile": render_template("litert/Makefile.j2", **context),
        "README.md": render_template("litert/README.md.j2", **context),
        FIRMWARE_MANIFEST: manifest.to_json(),
    }
