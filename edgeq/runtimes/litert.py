"""LiteRT (TensorFlow Lite's runtime) on phones, Linux boards and the host: the .tflite as it is,
run by the interpreter with the profile's delegate and threads. It runs every builtin op and every
mode, and the custom ops the profile declares (litert.custom_ops); it fits by the model file in
storage and an estimate of the interpreter's RAM until the device measures its peak RSS. Its project is
edgeq's native harness (LiteRT's C runtime, edgeq.codegen.litert), built into a bundle for the
profile's CPU and run over adb, ssh or on this machine (edgeq.device.native)."""

from __future__ import annotations

from importlib.metadata import version

from edgeq.codegen.litert import harness_arguments, harness_command, render_litert_project
from edgeq.graph import Graph, ops_text
from edgeq.litert_ops import HostOps, host_ops
from edgeq.measure.costmodel import CostSection
from edgeq.measure.fit import Budget, Fit
from edgeq.modes import get_mode
from edgeq.runtimes.base import Prepared, Runtime
from edgeq.sources import FLATBUFFER, estimated

# An OS loads the flatbuffer into RAM and the interpreter's buffers come on top: about twice the model.
LITERT_RAM_PER_MODEL_BYTE = 2


def litert_fit(profile, tflite_bytes: int) -> Fit:
    """LiteRT on an OS: the model file in storage; in RAM the flatbuffer and the interpreter's buffers."""
    flash = Budget(tflite_bytes, profile.memory.flash_bytes, "model file", FLATBUFFER)
    ram = Budget(tflite_bytes * LITERT_RAM_PER_MODEL_BYTE, profile.ram_for_model_bytes,
                 "model and interpreter buffers",
                 estimated(f"{LITERT_RAM_PER_MODEL_BYTE}x the model file: the flatbuffer an OS loads and the "
                           "interpreter's buffers"))
    return Fit(flash, ram)


class LiteRt(Runtime):
    name = "litert"
    label = "LiteRT"
    mode_refusals: dict[str, str] = {}
    preferred_modes = ("int8", "fp16", "fp32")
    reference = "litert"
    # It folds ops on constants (fp16 weights' DEQUANTIZE) when it prepares the model.
    costs = CostSection("litert", "LiteRT", folds_constant_ops=True, by_delegate=True)
    settings = "litert"

    # What each delegate computes best, best first: the GPU in fp16, the CPU (XNNPACK) and an NPU in int8.
    delegate_modes = {"gpu": ("fp16", "fp32", "int8"), "xnnpack": ("int8", "fp16", "fp32"), "nnapi": ("int8", "fp32")}

    def version(self) -> str:
        return version("ai-edge-litert")

    def default_mode(self, profile) -> str | None:
        """The first mode its delegate computes best that the device runs well."""
        delegate = profile.litert.delegate if profile.litert is not None else "xnnpack"
        return next((m for m in self.delegate_modes.get(delegate, self.preferred_modes)
                     if profile.supports(get_mode(m).numeric)), None)

    def default_reason(self, profile, mode: str) -> str:
        delegate = profile.litert.delegate if profile.litert is not None else "xnnpack"
        return f"the mode LiteRT's {delegate} delegate computes best that {profile.name} runs well"

    def refuses_ops(self, profile, tflite: bytes, graph: Graph, host: HostOps) -> str | None:
        """The custom ops neither LiteRT (with XNNPACK, which runs some of MediaPipe's) nor the device's
        declared op library has; LiteRT has every builtin op."""
        declared = profile.litert.custom_ops if profile.litert is not None else ()
        lacking = [m for m in host.litert if m.custom not in declared]
        if lacking:
            return (f"LiteRT has no kernel for {ops_text((m.index, m.text) for m in lacking)}; if {profile.name}'s "
                    "LiteRT has it (your op library, MediaPipe's), declare it with --custom-op NAME or in the "
                    "profile's litert.custom_ops")
        if host.litert_detail:
            return host.litert_reason()
        return None

    def prepare(self, profile, tflite: bytes, graph: Graph, source: str) -> Prepared:
        return Prepared(self.name, self.refuses_ops(profile, tflite, graph, host_ops(tflite, graph)))

    def fit(self, profile, prepared: Prepared, tflite: bytes) -> Fit:
        return litert_fit(profile, len(tflite))

    def generate(self, profile, tflite: bytes, graph: Graph, stem: str, prepared: Prepared
                 ) -> dict[str, str | bytes]:
        command = harness_command(profile, harness_arguments(profile.litert.threads))
        files: dict[str, str | bytes] = dict(render_litert_project(tflite, graph, stem, profile, self.identity,
                                                                   command))
        files[f"{stem}.tflite"] = tflite
        return files

    def unreachable(self, profile, port: str | None) -> str | None:
        if profile.flash.method == "ssh" and port is None and not profile.is_emulated:
            return f"{profile.name} is reached over ssh: give its address with --host user@address"
        if profile.flash.method == "adb" and port is None:
            return (f"{profile.name} is a phone: connect it (adb devices lists it) and give its serial with --serial; "
                    f"edgeq build and edgeq flash --dry-run show the commands")
        return None

    def candidate_fit(self, record: dict, profile) -> Fit | str:
        return litert_fit(profile, record["tflite_bytes"])


LITERT = LiteRt()
