"""The graph lowered to kernel calls: each operator goes to its handler in lower_conv,
lower_elementwise or lower_resample, which build on the vocabulary in lowering."""

from __future__ import annotations

from typing import Mapping

import edgeq.aot.lower_conv as lower_conv
import edgeq.aot.lower_elementwise as lower_elementwise
import edgeq.aot.lower_resample as lower_resample
from edgeq.aot.lowering import ALIAS_OPS, Lowered, Lowering, Step, conv_add_fusions, unsupported
from edgeq.errors import BadInput
from edgeq.graph import Graph, Operator

HANDLERS = {**lower_conv.HANDLERS, **lower_elementwise.HANDLERS, **lower_resample.HANDLERS}


def ops_without_kernel(graph: Graph) -> list[Operator]:
    """The operators edgeq-c has no kernel for in any type (custom ops, ops it never lowers)."""
    return [op for op in graph.operators if op.opcode not in HANDLERS and op.opcode not in ALIAS_OPS]


def lower(graph: Graph, prefix: str, variants: Mapping[int, str] | None = None, dsp: bool = False,
          widen: str = "auto", mve: bool = False) -> Lowered:
    """Every operator of the graph as a kernel call; raises BadInput naming the first
    operator edgeq-c cannot run. `variants` (op index -> in-place kind) selects the kernels
    that may write their output over their input, for the ops the memory plan overlaps;
    `dsp` (the target has the DSP extension) the kernels and weight layouts made for it, the
    filters widened by the `widen` policy (lowering.WIDEN_POLICIES); `mve` (the target has Helium) its
    blocked filters' 16-byte steps, and no widened ones."""
    lw = Lowering(graph, prefix, variants, dsp, widen, mve)
    fusions = conv_add_fusions(graph)
    fused_convs = {c: a for a, c in fusions.items()}
    steps: list[Step] = []
    step_of: dict[int, int] = {}
    for op in graph.operators:
        if op.opcode in ALIAS_OPS:
            src, dst = op.inputs[0], op.outputs[0]
            if graph.tensors[src].nbytes != graph.tensors[dst].nbytes:
                raise unsupported(graph, op, "input and output sizes differ")
            if dst in graph.inputs:
                raise unsupported(graph, op, "reshaping into a model input")
            lw.alias[dst] = src
            continue
        if op.index in fused_convs:  # runs inside its ADD's step
            continue
        handler = HANDLERS.get(op.opcode)
        if handler is None:
            raise unsupported(graph, op)
        try:
            if op.index in fusions:
                conv = graph.operators[fusions[op.index]]
                step = lower_conv.conv_add(lw, conv, op)
                step_of[conv.index] = len(steps)
            else:
                step = handler(lw, op)
        except BadInput:
            raise
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise unsupported(graph, op, str(exc)) from exc
        step_of[op.index] = len(steps)
        steps.append(step)
    fused_tensors = frozenset(graph.operators[c].outputs[0] for c in fused_convs)
    return Lowered(steps=steps, alias=lw.alias, consts=lw.model_consts, const_tensors=lw.const_tensors,
                   step_of=step_of, fused_tensors=fused_tensors)
