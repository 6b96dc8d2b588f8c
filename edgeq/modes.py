"""The quantization modes, named once: what each stores, what it computes in, whether it needs
calibration data, and what the device must run well for it (docs/quantization.md).

The converter makes each of them, the planner searches over them and the runtimes say which they
run; all three read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.errors import BadInput


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    numeric: str  # what the device must run well: one of a profile's numerics
    weights: str  # the weights' type in the .tflite: float32, float16, int8 or int4
    activations: str  # what the activations are computed in: float32, int8 or int16
    calibrated: bool  # needs representative data (the activations' ranges)
    user_choice: bool = True  # `--quant` offers it; the others are the planner's own candidates

    @property
    def integer(self) -> bool:
        """Full integer: integer activations, input and output."""
        return self.activations != "float32"


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("fp32", "float32 weights and activations", "fp32", "float32", "float32", False),
    Mode("fp16", "float16 weights, float32 compute", "fp16", "float16", "float32", False),
    Mode("dynamic-int8", "int8 weights, float activations (dynamic range)", "int8", "int8", "float32", False),
    Mode("int8", "full integer: int8 activations, input and output; per-channel int8 weights", "int8", "int8",
         "int8", True),
    Mode("int16x8", "int16 activations, int8 weights", "int16x8", "int8", "int16", True),
    # ai-edge-quantizer's packed INT4 weights with int8 activations; the planner tries it where int8 fits badly.
    Mode("int4w", "int4 weights (packed, two a byte), int8 activations", "int8", "int4", "int8", True,
         user_choice=False),
)}
# What `--quant` offers, in the order people read them.
USER_MODES = tuple(name for name, m in MODES.items() if m.user_choice)


def get_mode(name: str) -> Mode:
    """The mode called `name`; an unknown name is a BadInput listing the modes."""
    try:
        return MODES[name]
    except KeyError:
        raise BadInput(f"unknown quantization mode '{name}' (choose one of: {', '.join(USER_MODES)})") from None
