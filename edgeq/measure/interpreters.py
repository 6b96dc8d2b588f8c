"""Measure a converted model: accuracy and latency in the LiteRT interpreter, the TFLM arena.

These are emulated measurements on the host; `flash`-and-measure on a board is the other path.
Each interpreter runs in edgeq's worker process (edgeq.isolate), so an interpreter that crashes
on a model is an error naming it, not the end of edgeq; TFLM is asked first whether it would
abort on the model (edgeq.tflm_limits), so that known case is named with its op.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np

from edgeq.console import progress
from edgeq.errors import BadInput, ToolFailed
from edgeq.graph import read_graph
from edgeq.isolate import contained
from edgeq.litert_ops import HostOps, missing_from
from edgeq.load import Dataset, Samples
from edgeq.quant import round_half_away_from_zero, sqnr_db
from edgeq.tflm_limits import tflm_aborts

LATENCY_RUNS = 50
MAX_ARENA_PROBE_BYTES = 256 << 20


@dataclass(frozen=True)
class Outputs:
    """Every output of every sample, one array per model output, in the model's output order."""

    values: tuple[np.ndarray, ...]  # float (dequantized) outputs, (samples, *output shape)
    raw: tuple[np.ndarray, ...]  # outputs in the model's own output dtype
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputAccuracy:
    """One output of the quantized model against the float model's."""

    name: str
    sqnr_db: float | None  # None without a float model; inf when identical
    agreement: float | None  # top-1 agreement, for an output with more than one element a sample


@dataclass(frozen=True)
class Accuracy:
    samples: int
    float_accuracy: float | None  # top-1 against the labels, on the labelled output, 0-1
    quantized_accuracy: float | None
    agreement: float | None  # share of samples whose top-1 class matches the float model's (labelled output)
    sqnr_db: float | None  # the worst output's SQNR against the float outputs; None without a float model
    outputs: tuple[OutputAccuracy, ...] = ()
    label_output: int = 0  # the output top-1 accuracy and agreement are measured on


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p95_ms: float
    runs: int
    threads: int


@dataclass(frozen=True)
class ArenaUse:
    total_bytes: int
    head_bytes: int  # non-persistent: activations, reused between ops
    tail_bytes: int  # persistent: tensor structs, op data
    smallest_bytes: int | None = None  # the smallest arena AllocateTensors succeeds in


def _quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating) or x.dtype == dtype:
        return x.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise BadInput(f"input tensor '{detail['name']}' is {dtype} without quantization parameters")
    info = np.iinfo(dtype)
    # float32 division, as TFLite's QUANTIZE kernel does it, so ties land where they land there
    q = round_half_away_from_zero(x.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(y.dtype, np.floating) or scale == 0:
        return y.astype(np.float32)
    return ((y.astype(np.int32) - zero_point) * scale).astype(np.float32)


def litert_interpreter(tflite: bytes, threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=threads)
    try:
        interpreter.allocate_tensors()
    except RuntimeError as exc:  # its message names a missing op only in passing: name it first
        reason = HostOps(litert=missing_from(str(exc), read_graph(tflite))).litert_reason()
        if reason:
            raise BadInput(reason) from None
        raise
    return interpreter


LITERT = "the LiteRT interpreter"
TFLM = "the tflite-micro interpreter"
_ADVICE = "docs/robustness.md lists the interpreter crashes edgeq knows of and what to do about them"


def _subject(tflite: bytes) -> str:
    return f"the model of {len(tflite):,} bytes (SHA-256 {hashlib.sha256(tflite).hexdigest()[:12]})"


def check_tflm_can_prepare(tflite: bytes, source: str = "the model") -> None:
    """BadInput naming the op when TFLM would abort while preparing the model."""
    reasons = tflm_aborts(read_graph(tflite, source))
    if reasons:
        raise BadInput(f"{source}: TensorFlow Lite Micro cannot run this model: " + "; ".join(reasons))


def run_litert(tflite: bytes, data: Dataset, threads: int = 1, label: str = "infer") -> Outputs:
    """Every sample through LiteRT (in the worker process)."""
    return contained(LITERT, _subject(tflite), _run_litert, tflite, data, threads, label, advice=_ADVICE)


def litert_latency(tflite: bytes, sample: tuple[np.ndarray, ...], threads: int = 1,
                   runs: int = LATENCY_RUNS) -> Latency:
    """Median and 95th percentile of `runs` invokes after a warm-up (timed in the worker process)."""
    return contained(LITERT, _subject(tflite), _litert_latency, tflite, sample, threads, runs, advice=_ADVICE)


def tflm_arena(tflite: bytes) -> ArenaUse:
    """The arena the TFLM interpreter allocates for this model, as its recording allocator reports it,
    and the smallest arena it can be given."""
    check_tflm_can_prepare(tflite)
    return contained(TFLM, _subject(tflite), _tflm_arena, tflite, advice=_ADVICE)


def run_tflm(tflite: bytes, x) -> tuple[np.ndarray, ...]:
    """Raw outputs of the TFLM interpreter for already-quantized inputs (one array per input, or a
    single array for a model with one input), one sample at a time, in order: one array per output."""
    check_tflm_can_prepare(tflite)
    return contained(TFLM, _subject(tflite), _run_tflm, tflite, x, advice=_ADVICE)


def run_litert_raw(tflite: bytes, xq) -> tuple[np.ndarray, ...]:
    """LiteRT's raw outputs for already-quantized inputs (the reference for LiteRT firmware): one
    array per output, as run_tflm."""
    return contained(LITERT, _subject(tflite), _run_litert_raw, tflite, xq, advice=_ADVICE)


# ---- in the worker process ------------------------------------------------------------------------

def _arrays(x) -> tuple[np.ndarray, ...]:
    """Inputs as one (samples, ...) array per model input: Samples, a tuple of arrays, or one array."""
    if isinstance(x, Samples):
        return x.arrays
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _ordered_details(interpreter, tflite: bytes) -> tuple[list[dict], list[dict]]:
    """The interpreter's input and output details in the subgraph's order (the model's)."""
    graph = read_graph(tflite)
    inputs = {d["index"]: d for d in interpreter.get_input_details()}
    outputs = {d["index"]: d for d in interpreter.get_output_details()}
    return [inputs[i] for i in graph.inputs], [outputs[o] for o in graph.outputs]


def _run_litert_raw(tflite: bytes, xq) -> tuple[np.ndarray, ...]:
    interpreter = litert_interpreter(tflite)
    inputs, outputs = _ordered_details(interpreter, tflite)
    arrays = _arrays(xq)
    raws: list[list[np.ndarray]] = [[] for _ in outputs]
    for i in range(len(arrays[0])):
        for detail, a in zip(inputs, arrays):
            interpreter.set_tensor(detail["index"], a[i][None, ...])
        interpreter.invoke()
        for k, detail in enumerate(outputs):
            raws[k].append(interpreter.get_tensor(detail["index"])[0].copy())
    return tuple(np.stack(r) for r in raws)


def _run_litert(tflite: bytes, data: Dataset, threads: int = 1, label: str = "infer") -> Outputs:
    """Run every sample through LiteRT, in order (a model with state carries it from one to the next);
    inputs quantized with the model's input parameters."""
    interpreter = litert_interpreter(tflite, threads)
    inputs, outputs = _ordered_details(interpreter, tflite)
    raws: list[list[np.ndarray]] = [[] for _ in outputs]
    for i in progress(range(len(data)), len(data), label):
        for detail, a in zip(inputs, data.x.batch(i)):
            interpreter.set_tensor(detail["index"], _quantize_input(a, detail))
        interpreter.invoke()
        for k, detail in enumerate(outputs):
            raws[k].append(interpreter.get_tensor(detail["index"])[0].copy())
    raw = tuple(np.stack(r) for r in raws)
    graph = read_graph(tflite)
    return Outputs(values=tuple(_dequantize_output(r, d) for r, d in zip(raw, outputs)), raw=raw,
                   names=tuple(graph.io_name(o) for o in graph.outputs))


def _litert_latency(tflite: bytes, sample: tuple[np.ndarray, ...], threads: int = 1,
                    runs: int = LATENCY_RUNS) -> Latency:
    interpreter = litert_interpreter(tflite, threads)
    inputs, _ = _ordered_details(interpreter, tflite)
    for detail, a in zip(inputs, sample):
        interpreter.set_tensor(detail["index"], _quantize_input(np.asarray(a)[None, ...], detail))
    for _ in range(5):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return Latency(statistics.median(times), float(np.percentile(times, 95)), runs, threads)


def _top1(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1).argmax(axis=1)


def _classifier(values: np.ndarray) -> bool:
    """An output of class scores: one axis of more than one element a sample ((classes,), (1, classes));
    a mask, a map or boxes (several such axes) has no top-1."""
    return sum(d > 1 for d in values.shape[1:]) == 1


def _top1_accuracy(values: np.ndarray, data: Dataset) -> float | None:
    labelled = data.has_class_labels and _classifier(values) and not data.synthetic
    return float(np.mean(_top1(values) == data.y)) if labelled else None


def compare(float_outputs: Outputs, quantized_outputs: Outputs, data: Dataset) -> Accuracy:
    """The quantized model against the float one, output by output: SQNR (the worst output's is the
    model's), top-1 agreement, and top-1 accuracy on the output the labels are for."""
    per_output = []
    label = min(data.label_output, len(float_outputs.values) - 1)
    for k, (f, q) in enumerate(zip(float_outputs.values, quantized_outputs.values)):
        name = quantized_outputs.names[k] if k < len(quantized_outputs.names) else str(k)
        # Of several outputs, only the labelled one is known to hold classes (a box is no class).
        classes = _classifier(f) and (len(float_outputs.values) == 1 or (k == label and data.has_class_labels))
        per_output.append(OutputAccuracy(name, float(sqnr_db(f, q)),
                                         float(np.mean(_top1(f) == _top1(q))) if classes else None))
    f, q = float_outputs.values[label], quantized_outputs.values[label]
    return Accuracy(samples=len(data), float_accuracy=_top1_accuracy(f, data),
                    quantized_accuracy=_top1_accuracy(q, data), agreement=per_output[label].agreement,
                    sqnr_db=min(o.sqnr_db for o in per_output), outputs=tuple(per_output), label_output=label)


def accuracy_alone(outputs: Outputs, data: Dataset) -> Accuracy:
    """The accuracy of a model that came quantized: against the labels only, no float to compare with."""
    label = min(data.label_output, len(outputs.values) - 1)
    per_output = tuple(OutputAccuracy(outputs.names[k] if k < len(outputs.names) else str(k), None, None)
                       for k in range(len(outputs.values)))
    return Accuracy(samples=len(data), float_accuracy=None,
                    quantized_accuracy=_top1_accuracy(outputs.values[label], data), agreement=None, sqnr_db=None,
                    outputs=per_output, label_output=label)


_ARENA_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def parse_arena_report(text: str) -> ArenaUse:
    """Read the RecordingMicroAllocator's summary lines."""
    found = {kind: int(n) for kind, n in _ARENA_LINE.findall(text)}
    if set(found) != {"total", "head", "tail"}:
        raise ValueError(f"no arena summary in the TFLM allocator report: {text[:200]!r}")
    return ArenaUse(found["total"], found["head"], found["tail"])


def _tflm_arena(tflite: bytes) -> ArenaUse:
    """The allocator prints to the process's stderr from C++, so fd 2 is pointed at a temporary
    file for the call.
    """
    from tflite_micro.python.tflite_micro import runtime

    # Room for every activation at once plus the interpreter's own structs: TFLM's default (10x
    # the model) is too small for models whose activations outweigh their weights. A multiple of
    # 16: the persistent tail is allocated down from the arena's end, and an unaligned end would
    # add its misalignment to the recorded total.
    activations = sum(t.nbytes + 16 for t in read_graph(tflite).tensors if not t.is_constant)
    arena_size = (10 * len(tflite) + 2 * activations + 65536 + 15) // 16 * 16
    interpreter = _tflm_call(lambda: runtime.Interpreter.from_bytes(tflite, arena_size=arena_size), "prepare")
    detail = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), 0)
    _tflm_call(interpreter.invoke, "run")
    recorded = parse_arena_report(_captured_stderr(interpreter.print_allocations)[1])
    return replace(recorded, smallest_bytes=tflm_smallest_arena(tflite, recorded.total_bytes))


_TFLM_FAILED_NODE = re.compile(r"Node (\w+) \(number (\d+)[^)]*\) failed to (invoke|prepare)[^\n]*")


def _captured_stderr(fn):
    """fn()'s result and what the C++ code printed to fd 2 meanwhile (also passed on to the log)."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            result, error = fn(), None
        except RuntimeError as exc:
            result, error = None, exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    os.write(2, text.encode())
    if error is not None:
        error.tflm_output = text
        raise error
    return result, text


def _tflm_call(fn, what: str):
    """fn() of the TFLM interpreter; its RuntimeError as BadInput naming the op TFLM says failed."""
    try:
        return _captured_stderr(fn)[0]
    except RuntimeError as exc:
        node = _TFLM_FAILED_NODE.search(getattr(exc, "tflm_output", ""))
        where = f": op {node.group(2)} {node.group(1)} failed to {node.group(3)}" if node else f" ({exc})"
        raise BadInput(f"TensorFlow Lite Micro cannot {what} this model{where}") from None


def _allocates_in_child(tflite: bytes, arena_size: int) -> bool:
    """Whether TFLM's AllocateTensors succeeds in `arena_size` bytes, tried in a forked child.

    The interpreter can crash (not raise) when preparation fails for lack of memory, so each
    attempt runs in its own process; a crash counts as "does not fit".
    """
    from tflite_micro.python.tflite_micro import runtime

    pid = os.fork()
    if pid == 0:  # the child: no Python cleanup, only the verdict as exit status
        try:
            faulthandler.disable()  # an expected crash here is an answer, not a report
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            runtime.Interpreter.from_bytes(tflite, arena_size=arena_size)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def tflm_smallest_arena(tflite: bytes, recorded_total: int) -> int:
    """The smallest arena (to 16 bytes) in which TFLM's AllocateTensors succeeds.

    The recording allocator's total leaves out the memory planner's temporary memory, which
    AllocateTensors needs and frees again, so a firmware given exactly that total can fail to start.
    """
    # The answer is at least the recorded total (the memory still in use at the end), usually a
    # little more: try the total, then grow the step geometrically, then bisect.
    total = max(16, (recorded_total + 15) // 16 * 16)
    if _allocates_in_child(tflite, total):
        return total
    low, step = total, 1024
    while not _allocates_in_child(tflite, low + step):
        low, step = low + step, step * 2
        if step > MAX_ARENA_PROBE_BYTES:
            raise ToolFailed(f"{TFLM} could not allocate this model's tensors in any arena up to "
                             f"{MAX_ARENA_PROBE_BYTES >> 20} MB (it crashes or fails in AllocateTensors)")
    high = low + step
    while high - low > 16:
        middle = (low + high) // 32 * 16
        low, high = (low, middle) if _allocates_in_child(tflite, middle) else (middle, high)
    return high


def _run_tflm(tflite: bytes, x) -> tuple[np.ndarray, ...]:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = _tflm_call(lambda: runtime.Interpreter.from_bytes(tflite), "prepare")
    arrays = _arrays(x)
    graph = read_graph(tflite)
    outputs: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    for i in range(len(arrays[0])):
        for k, a in enumerate(arrays):
            interpreter.set_input(a[i][None, ...], k)
        _tflm_call(interpreter.invoke, "run")
        for k in range(len(outputs)):
            outputs[k].append(interpreter.get_output(k)[0].copy())
    return tuple(np.stack(o) for o in outputs)
