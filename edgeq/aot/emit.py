"""C text for a lowered, planned model, rendered through the Jinja2 templates in
firmware_templates/edgeq_c/. Output is deterministic: same model, same bytes."""

from __future__ import annotations

import re

import jinja2
import numpy as np

from edgeq.aot.lowering import C_TYPES, ConstArray, Step
from edgeq.resources import TEMPLATE_DIR

_PLACEHOLDER = re.compile(r"@([TS])(\d+)@")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "edgeq_c")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=False, lstrip_blocks=False)


def _format_values(c: ConstArray) -> str:
    values = np.asarray(c.values).reshape(-1)
    if c.ctype == "float":
        items = [float(np.float32(v)).hex() + "f" for v in values.tolist()]
    elif c.ctype == "int32_t":
        # INT32_MIN has no literal form in C; spell it as an expression.
        items = ["(-2147483647 - 1)" if v == -(1 << 31) else str(v) for v in values.astype(np.int64).tolist()]
    elif c.ctype == "int64_t":
        items = [f"INT64_C({v})" for v in values.astype(np.int64).tolist()]
    else:
        items = [str(v) for v in values.astype(np.int64).tolist()]
    per_line = 16
    lines = ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines) if lines else "    0,"


def substitute(text: str, tensor_offsets: dict[int, int], scratch_offsets: dict[int, int], prefix: str) -> str:
    def repl(m: re.Match) -> str:
        table = tensor_offsets if m.group(1) == "T" else scratch_offsets
        return f"({prefix}_arena + {table[int(m.group(2))]})"
    return _PLACEHOLDER.sub(repl, text)


def render(*, prefix: str, banner: str, arena_bytes: int, consts: list[ConstArray], steps: list[Step],
           inputs: list[dict], outputs: list[dict], tensor_offsets: dict[int, int],
           scratch_offsets: dict[int, int]) -> dict[str, str]:
    env = _environment()
    sub = lambda s: substitute(s, tensor_offsets, scratch_offsets, prefix)  # noqa: E731
    step_views = [{"op_index": s.op_index, "opcode": s.opcode, "decls": [sub(d) for d in s.decls],
                   "call": sub(s.call)} for s in steps]
    const_views = [{"ctype": c.ctype, "name": c.name, "count": max(1, int(np.asarray(c.values).size)),
                    "body": _format_values(c)} for c in consts]
    io_views = []
    for io in inputs + outputs:
        io_views.append(dict(io, ptr=sub(io["ptr"]), ctype=C_TYPES.get(io["dtype"], "uint8_t")))
    ctx = dict(prefix=prefix, P=prefix.upper(), banner=banner, arena_bytes=max(arena_bytes, 16),
               consts=const_views, steps=step_views, inputs=io_views[:len(inputs)], outputs=io_views[len(inputs):])
    return {
        f"{prefix}_model.h": env.get_template("model.h.j2").render(**ctx),
        f"{prefix}_model.c": env.get_template("model.c.j2").render(**ctx),
    }
