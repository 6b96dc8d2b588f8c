"""What TFLM's kernels abort on instead of returning an error, checked before TFLM sees a model.

A TFLITE_CHECK in a kernel's Prepare calls abort(): the tflite-micro Python interpreter takes its
process down, and firmware hangs in its abort handler. edgeq reads the model first, names the op
and the reason, and the converter (edgeq.convert) avoids producing such models where it can.
docs/robustness.md describes each case.
"""

from __future__ import annotations

import math

from edgeq.graph import Graph

# TFLM's int8 SOFTMAX (softmax_common.cc, CalculateSoftmaxParams) rescales the input differences
# to Q5.26 with PreprocessSoftmaxScaling, which calls QuantizeMultiplierGreaterThanOne on
# beta * input_scale * 2^26 and aborts unless that is above 1.
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_MULTIPLIER_FLOOR = float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS))


def softmax_min_input_scale(beta: float) -> float:
    """The smallest int8 SOFTMAX input scale TFLM accepts for this beta (a hair above the limit)."""
    return math.nextafter(1.0 / (beta * SOFTMAX_MULTIPLIER_FLOOR), math.inf) * (1 + 2 ** -20)


def softmax_scale_aborts(beta: float, input_scale: float) -> bool:
    """Whether TFLM's int8 SOFTMAX aborts on this beta and input scale."""
    return beta * input_scale * SOFTMAX_MULTIPLIER_FLOOR <= 1.0


def softmax_scale_too_small(graph: Graph) -> list[tuple[int, str, float]]:
    """(op index, input tensor name, beta) of every int8 SOFTMAX whose input scale TFLM aborts on."""
    found = []
    for op in graph.operators:
        if op.opcode != "SOFTMAX":
            continue
        tensor = graph.tensors[op.inputs[0]]
        if tensor.type != "INT8" or not tensor.scales:
            continue
        beta = float(getattr(op.options, "beta", 1.0) or 1.0)
        if softmax_scale_aborts(beta, float(tensor.scales[0])):
            found.append((op.index, tensor.name, beta))
    return found


def tflm_aborts(graph: Graph) -> list[str]:
    """Why TFLM would abort while preparing this model, one line per op; empty when it would not."""
    reasons = []
    for index, name, beta in softmax_scale_too_small(graph):
        scale = float(graph.tensors[graph.operators[index].inputs[0]].scales[0])
        reasons.append(
            f"op {index} SOFTMAX: its input '{name}' has scale {scale:.3g}, and beta x scale x 2^26 = "
            f"{beta * scale * SOFTMAX_MULTIPLIER_FLOOR:.3g} is not above 1, which TFLM's "
            "PreprocessSoftmaxScaling refuses with an abort (the logits' calibrated range is under "
            f"{255 * softmax_min_input_scale(beta):.2g}: untrained weights, or calibration data that does not "
            "reach this layer)")
    return reasons
