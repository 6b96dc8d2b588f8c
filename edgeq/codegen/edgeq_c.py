"""The edgeq-c firmware project: the model edgeq.aot compiled, its kernels, eq_protocol and main.c
serving it over edgeq's serial protocol, board support, a Makefile for the profile's compiler, the
.tflite it was built from and the manifest (with each kernel call as a step)."""

from __future__ import annotations

from edgeq.aot import CompiledModel
from edgeq.codegen.firmware import board_files, finish_project, render_firmware_makefile
from edgeq.codegen.sources import RuntimeId, Step, describe, hello_payload, io_tensors, runtime_sources
from edgeq.csource import c_byte_array, generated_notice, render_template
from edgeq.graph import Graph


def render_edgeq_c_harness(tflite: bytes, graph: Graph, compiled: CompiledModel, hello: bytes) -> str:
    """main.c: fills an eq_server_t with the generated model's inputs, outputs and invoke, then serves."""
    inputs, outputs = io_tensors(graph, "input"), io_tensors(graph, "output")
    return render_template("harness/main.c.j2", notice=generated_notice(tflite), prefix=compiled.prefix,
                           P=compiled.prefix.upper(), inputs_desc=describe(inputs), outputs_desc=describe(outputs),
                           input_bytes=[t.nbytes for t in inputs], output_bytes=[t.nbytes for t in outputs],
                           arena_bytes=compiled.arena_bytes, hello_length=len(hello), hello_bytes=c_byte_array(hello))


def edgeq_c_steps(compiled: CompiledModel, graph: Graph) -> tuple[Step, ...]:
    """Each kernel call of the generated invoke: the operator its output comes from, the kernel, MACs."""
    steps = []
    for step, macs in zip(compiled.ops, compiled.macs):  # "<op index> <OPCODE> -> <kernel>"
        head, _, kernel = step.partition(" -> ")
        index, _, op = head.partition(" ")
        outputs = graph.operators[int(index)].outputs
        shape = tuple(graph.tensors[outputs[0]].shape) if outputs else ()
        steps.append(Step(int(index), op, kernel, shape, int(macs)))
    return tuple(steps)


def render_edgeq_c_project(profile, tflite: bytes, graph: Graph, stem: str, compiled: CompiledModel,
                           runtime: RuntimeId) -> dict[str, str | bytes]:
    """The complete edgeq-c firmware project for `profile`, as {relative path: content}."""
    board, params = board_files(profile)
    hello = hello_payload(tflite, graph, runtime, profile.clock_hz, compiled.arena_bytes)
    files: dict[str, str | bytes] = {**compiled.files, **runtime_sources(),
                                     "main.c": render_edgeq_c_harness(tflite, graph, compiled, hello)}
    sources = sorted(name for name in files if name.endswith(".c"))
    files["Makefile"] = render_firmware_makefile(tflite, profile, params, runtime.name, sources)
    files.update(board)
    return finish_project(files, profile, params, tflite, stem, runtime, arena_bytes=compiled.arena_bytes,
                          steps=edgeq_c_steps(compiled, graph))
