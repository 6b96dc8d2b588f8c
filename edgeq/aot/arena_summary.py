"""report.json's `memory.edgeq_c_plan`: edgeq-c's static arena plan in a compact form, so that
report.html can draw the arena over time from report.json alone (`edgeq report` reruns nothing).

Columns rather than one object per tensor keep a few hundred buffers to a few kilobytes; the
`columns` key names them, so the entry reads without the docs (docs/report-schema.md).
"""

from __future__ import annotations

BUFFER_COLUMNS = ("tensor", "offset", "bytes", "first_step", "last_step")
IN_PLACE_COLUMNS = ("step", "input", "output", "kind")
SCRATCH_COLUMNS = ("step", "offset", "bytes")
STEP_COLUMNS = ("op", "opcode", "kernel", "macs")
NAME_CHARS = 48  # TFLite tensor names can be hundreds of characters of scopes: keep the tail


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else "…" + name[-(NAME_CHARS - 1):]


def _step(text: str, macs: int) -> list:
    # CompiledModel.ops holds "<op index> <OPCODE> -> <kernel>"; "CONV_2D+ADD" is a fused step.
    head, _, kernel = text.partition(" -> ")
    op, _, opcode = head.partition(" ")
    return [int(op), opcode, kernel, int(macs)]


def arena_summary(compiled, graph) -> dict | None:
    """The entry for a CompiledModel (edgeq.aot) and the graph it was compiled from; None when
    the model has no plan (not compiled by edgeq-c)."""
    plan = compiled.plan if compiled is not None else None
    if plan is None:
        return None
    live = list(plan.live_bytes)
    peak = max(range(len(live)), key=live.__getitem__) if live else None
    buffers = sorted(compiled.buffers, key=lambda b: (b.first_step, b.tensor))
    return {
        "arena_bytes": compiled.arena_bytes, "lower_bound_bytes": plan.lower_bound_bytes,
        "alignment": plan.alignment, "strategy": plan.strategy,
        # live_bytes[k]: tensor bytes alive at step k (model inputs count from step 0, outputs to
        # the step after the last op, which is where the application reads them).
        "live_bytes": live, "peak_step": peak,
        "steps": {"columns": list(STEP_COLUMNS),
                  "rows": [_step(text, macs) for text, macs in zip(compiled.ops, compiled.macs)]},
        "buffers": {"columns": list(BUFFER_COLUMNS),
                    "rows": [[b.tensor, plan.offsets[b.tensor], b.nbytes, b.first_step, b.last_step]
                             for b in buffers if b.tensor in plan.offsets]},
        "names": {str(b.tensor): _short(graph.tensors[b.tensor].name) for b in buffers},
        "in_place": {"columns": list(IN_PLACE_COLUMNS),
                     "rows": [[r.step, r.input, r.output, r.kind] for r in plan.in_place]},
        "scratch": {"columns": list(SCRATCH_COLUMNS),
                    "rows": [[k, plan.scratch_offsets[k], n] for k, n in sorted(plan.scratch_bytes.items())
                             if k in plan.scratch_offsets]},
    }
