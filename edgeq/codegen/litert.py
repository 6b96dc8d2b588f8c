"""The LiteRT harness for phones and Linux boards: run_litert.py (ai-edge-litert and numpy only)
and its README."""

from __future__ import annotations

from edgeq.csource import generated_notice, model_sha256, render_template
from edgeq.errors import BadInput

LITERT_DELEGATES = ("xnnpack", "gpu", "none")


def render_litert_harness(tflite: bytes, tflite_name: str, threads: int = 4, delegate: str = "xnnpack", *,
                          warmup: int = 5, runs: int = 50) -> dict[str, str]:
    """`run_litert.py` (ai-edge-litert and numpy only) and its README, for a Raspberry Pi,
    phone-side Python or the host: latency and top-1 accuracy of `tflite_name`, as JSON."""
    if not isinstance(tflite_name, str) or not tflite_name or "/" in tflite_name or "\\" in tflite_name:
        raise BadInput(f"tflite_name must be a plain file name (the .tflite beside run_litert.py), "
                       f"got {tflite_name!r}")
    if delegate not in LITERT_DELEGATES:
        raise BadInput(f"LiteRT delegate {delegate!r} is not one of {', '.join(LITERT_DELEGATES)}")
    for key, value, low in (("threads", threads, 1), ("warmup", warmup, 0), ("runs", runs, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise BadInput(f"LiteRT harness {key} must be an integer >= {low}, got {value!r}")
    context = {
        "notice": generated_notice(tflite), "tflite_name": tflite_name,
        "model_literal": repr(tflite_name), "threads": threads, "delegate_literal": repr(delegate),
        "delegate": delegate, "delegates_literal": repr(LITERT_DELEGATES), "warmup": warmup, "runs": runs,
        "sha256": model_sha256(tflite),
    }
    return {
        "run_litert.py": render_template("litert/run_litert.py.j2", **context),
        "README.md": render_template("litert/README.md.j2", **context),
    }
