"""LiteRT (TensorFlow Lite's runtime) on phones, Linux boards and the host: the .tflite as it is,
run by the interpreter with the profile's delegate and threads. It runs every builtin op and every
mode, and the custom ops the profile declares (litert.custom_ops); it fits by the model file in
storage and an estimate of the interpreter's RAM; its harness is a Python script, so edgeq's device
loop does not reach it yet."""

from __future__ import annotations

from importlib.metadata import version

from edgeq.codegen.litert import render_litert_harness
from edgeq.graph import Graph, ops_text
from edgeq.litert_ops import HostOps, host_ops
from edgeq.measure.costmodel import CostSection
from edgeq.measure.fit import Budget, Fit
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
    costs = CostSection("litert", "LiteRT", folds_constant_ops=True)
    settings = "litert"

    def version(self) -> str:
        return version("ai-edge-litert")

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
        files: dict[str, str | bytes] = dict(render_litert_harness(
            tflite, f"{stem}.tflite", profile.litert.threads, profile.litert.delegate))
        files[f"{stem}.tflite"] = tflite
        return files

    def unreachable(self, profile, port: str | None) -> str | None:
        return "the LiteRT harness runs under Python on the device (run_litert.py), not over edgeq's serial protocol"

    def candidate_fit(self, record: dict, profile) -> Fit | str:
        return litert_fit(profile, record["tflite_bytes"])


LITERT = LiteRt()
