"""fp16 judged as an Arm CPU computes it. XNNPACK runs a model with fp16 weights in fp16 arithmetic
on an Arm CPU that has it and in fp32 on x86, so the host's LiteRT says little about an fp16
candidate's accuracy on a phone (outputs differ by up to 3e-3). For a profile whose harness is built
for aarch64 and that runs fp16, the planner runs each fp16 candidate through the same native harness
a phone runs, under qemu-aarch64 on this machine (an Armv8.2 CPU with fp16 arithmetic), and takes its
accuracy, agreement and SQNR from those outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import numpy as np

from edgeq.codegen.sources import io_tensors, tensor_info
from edgeq.device.loop import build_firmware
from edgeq.device.measure import device_inputs
from edgeq.device.native import run_harness
from edgeq.device.remote import run_tag, transport_for
from edgeq.errors import EdgeqError
from edgeq.files import write_files
from edgeq.graph import NUMPY_DTYPES, read_graph
from edgeq.load import Dataset
from edgeq.measure.interpreters import Outputs, compare, run_litert
from edgeq.profiles.profile import Emulator, Flash
from edgeq.runtimes import LITERT

ARM_CPU = "neoverse-n1"  # Armv8.2-A with fp16 arithmetic (asimdhp), as QEMU 7.2 emulates it
JUDGE = f"the native LiteRT harness under qemu-aarch64 -cpu {ARM_CPU} (emulated Arm: fp16 as an Arm CPU computes it)"


def judged_on_arm(profile) -> bool:
    """Whether the profile's fp16 candidates are judged on emulated Arm rather than on this host."""
    return profile.litert is not None and profile.litert.abi == "aarch64" and profile.supports("fp16")


def arm_twin(profile):
    """The profile as this machine emulates it: its aarch64 harness run here, under qemu-aarch64."""
    return dataclasses.replace(profile, emulator=Emulator(qemu_user="qemu-aarch64", cpu=ARM_CPU), flash=Flash("host"),
                               litert=dataclasses.replace(profile.litert, cpus=(), threads=1))


def arm_outputs(profile, tflite: bytes, x) -> Outputs:
    """Every sample of `x` through `tflite` in the native harness on emulated Arm."""
    twin = arm_twin(profile)
    graph = read_graph(tflite)
    outputs = [tensor_info(t) for t in io_tensors(graph, "output")]
    xq = device_inputs(x, tuple(map(tensor_info, io_tensors(graph, "input"))))
    with tempfile.TemporaryDirectory(prefix="edgeq-arm-") as tmp:
        project, into = Path(tmp) / "project", Path(tmp) / "run"
        into.mkdir()
        files = LITERT.project(twin, tflite, "candidate")
        write_files(project, {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()})
        build_firmware(project, twin)
        transport = transport_for(twin, None, run_tag(hashlib.sha256(tflite).hexdigest()))
        _, raw, _, _ = run_harness(twin, project, xq, transport, per_layer=False, into=into)
    count, arrays, offset = len(xq[0]), [], 0
    block = np.frombuffer(raw, np.uint8).reshape(count, sum(t.nbytes for t in outputs))
    for t in outputs:
        dtype = np.dtype(NUMPY_DTYPES[t.dtype])
        arrays.append(block[:, offset:offset + t.nbytes].copy().view(dtype).reshape(count, *t.shape[1:]))
        offset += t.nbytes
    # An fp16 candidate's outputs are float already: its values are its raw outputs, as float32.
    return Outputs(tuple(a.astype(np.float32) for a in arrays), tuple(arrays),
                   tuple(graph.io_name(o) for o in graph.outputs))


def judge_fp16_on_arm(candidates, profile, float_tflite: bytes, validation: Dataset) -> list[str]:
    """Replaces the host's accuracy figures of each measured fp16 candidate with emulated Arm's; the
    warnings, when it cannot (no qemu-aarch64: the host's figures stay, said so)."""
    warnings, float_outputs = [], None
    for c in candidates:
        record = c.record
        measured = record and "error" not in record and (record.get("accuracy") is not None
                                                         or record.get("sqnr_db") is not None)
        if c.spec.mode != "fp16" or not measured:
            continue
        try:
            float_outputs = float_outputs or run_litert(float_tflite, validation, 1, "float")
            accuracy = compare(float_outputs, arm_outputs(profile, c.tflite, validation.x), validation)
        except EdgeqError as exc:
            warnings.append(f"{c.name}: accuracy from LiteRT on this host (x86), not emulated Arm: "
                            f"{str(exc).splitlines()[0]}")
            continue
        c.record = dict(record, accuracy=accuracy.quantized_accuracy, agreement=accuracy.agreement,
                        sqnr_db=None if not np.isfinite(accuracy.sqnr_db) else accuracy.sqnr_db,
                        outputs=[{"name": o.name, "agreement": o.agreement,
                                  "sqnr_db": None if o.sqnr_db is None or not np.isfinite(o.sqnr_db) else o.sqnr_db}
                                 for o in accuracy.outputs],
                        accuracy_by=JUDGE)
    return warnings
