"""Measure a firmware on its device over the serial protocol: accuracy against the labels, agreement
with the reference interpreter for that runtime on the same quantized model, cycles per inference.

Pure: `check_firmware` (the HELLO against the model), `device_inputs` (quantization as TFLite's
QUANTIZE does it), `summarize` (the figures from the samples). At the edge: `reference_outputs` runs
the reference interpreter, `Journal` keeps one JSON line per sample, flushed as it arrives, so an
interrupted run keeps what it measured and `resume` continues it, and `measure` drives a Link.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.console import progress
from edgeq.device.link import Link
from edgeq.errors import BadInput, ToolFailed
from edgeq.graph import NUMPY_DTYPES, read_graph
from edgeq.load import Dataset, Samples, TensorSpec, check_dataset, read_arrays
from edgeq.measure.interpreters import run_litert_raw, run_tflm
from edgeq.protocol import HelloInfo, TensorInfo
from edgeq.quant import round_half_away_from_zero
from edgeq.sources import STACK_PAINT

JOURNAL = "measure.jsonl"  # one line per sample
SUMMARY = "measure.json"
DEFAULT_TIMEOUT_S = 10.0
RANDOM_SAMPLES = 10  # measured without validation data


class FirmwareMismatch(ToolFailed):
    """The device runs firmware for another model (or another edgeq); exit code 4."""


def check_firmware(info: HelloInfo, tflite: bytes, model_name: str, where: str, runtime: str) -> None:
    """Refuses to measure unless the firmware on the device was built from exactly this model, for
    the runtime its manifest names."""
    sha = hashlib.sha256(tflite).digest()
    if info.model_hash != sha:
        raise FirmwareMismatch(
            f"the firmware on {where} was built from the model with SHA-256 {info.model_hash.hex()[:16]}..., "
            f"not from {model_name} ({sha.hex()[:16]}...): flash the firmware built from {model_name}, or "
            "measure with the model the firmware was built from")
    if info.runtime != runtime:
        raise FirmwareMismatch(f"the firmware on {where} runs {info.runtime!r}, but the project was generated for "
                               f"{runtime!r}: flash the firmware built from this project")


def device_inputs(x, tensors) -> tuple[np.ndarray, ...]:
    """Each input's samples in its tensor's dtype (one array per input; `x` is Samples, or an array for
    a model with one input, and `tensors` the HELLO's inputs, or one TensorInfo)."""
    tensors = (tensors,) if isinstance(tensors, TensorInfo) else tuple(tensors)
    arrays = x.arrays if isinstance(x, Samples) else (x,)
    if len(arrays) != len(tensors):
        raise BadInput(f"the data has {len(arrays)} input arrays, but the firmware takes {len(tensors)} inputs")
    return tuple(quantized_input(a, t) for a, t in zip(arrays, tensors))


def sample_bytes(xq: tuple[np.ndarray, ...], i: int) -> bytes:
    """Sample `i` as an INFER payload: every input's bytes, one after another."""
    return b"".join(np.ascontiguousarray(a[i]).tobytes() for a in xq)


def quantized_input(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """`x` in the input tensor's dtype: float data quantized with its scale and zero point (float32
    division, ties away from zero, as TFLite's QUANTIZE), data already in that dtype passed through."""
    dtype = np.dtype(NUMPY_DTYPES[tensor.dtype])
    x = np.asarray(x)
    if x.dtype == dtype or np.issubdtype(dtype, np.floating):
        return x.astype(dtype, copy=False).reshape(len(x), *tensor.shape[1:])
    if tensor.scale == 0:
        raise BadInput(f"the input tensor is {tensor.dtype} without a scale: give data already in {dtype}")
    q = round_half_away_from_zero(x.astype(np.float32) / np.float32(tensor.scale)) + tensor.zero_point
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype).reshape(len(x), *tensor.shape[1:])


# The interpreters on this host a firmware's outputs are checked against, by the name its manifest gives.
REFERENCE_INTERPRETERS = {"tflite-micro": run_tflm, "litert": run_litert_raw}


def reference_outputs(reference: str, tflite: bytes, xq: tuple[np.ndarray, ...]) -> list[bytes]:
    """The raw output bytes of the reference interpreter for each (quantized) sample: every output's
    bytes, one after another, as a RESULT carries them. Samples run in order."""
    if reference not in REFERENCE_INTERPRETERS:
        raise BadInput(f"no reference interpreter called {reference!r} (known: {', '.join(REFERENCE_INTERPRETERS)})")
    if not len(xq[0]):
        return []
    outputs = REFERENCE_INTERPRETERS[reference](tflite, xq)
    return [b"".join(np.ascontiguousarray(o[i]).tobytes() for o in outputs) for i in range(len(xq[0]))]


def device_data(spec: str | None, tflite: bytes, samples: int | None, source: str,
                label_output: str | None = None):
    """The Dataset to measure on a device: the validation data (the first `samples`), or without it
    seeded random inputs, which measure agreement and cycles but no accuracy (its warning says so)."""

    if samples is not None and samples <= 0:
        raise BadInput(f"--samples must be a positive number, got {samples}")
    graph = read_graph(tflite, source)
    tensors = graph.input_tensors()
    if spec is None:
        count = samples or RANDOM_SAMPLES
        warning = (f"no validation data given (--val): measuring {count} seeded random inputs, so no accuracy can "
                   "be claimed (agreement with the reference interpreter and cycles still are)",)
        rng = np.random.default_rng(0)
        arrays = []
        for tensor in tensors:
            dtype, shape = np.dtype(NUMPY_DTYPES[tensor.type]), (count, *tensor.shape[1:])
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                arrays.append(rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype))
            else:
                arrays.append(rng.random(shape, dtype=np.float32))
        return Dataset(Samples(tuple(arrays)), None, "seeded random inputs", synthetic=True, warnings=warning)
    given = read_arrays(spec)
    specs = []
    for tensor in tensors:  # data already in an integer input's type stays as it is; the rest is float
        dtype = np.dtype(NUMPY_DTYPES[tensor.type])
        kept = dtype if all(a.dtype == dtype for a in given.inputs.values()) else np.dtype("float32")
        specs.append(TensorSpec(tuple(tensor.shape[1:]), kept.name, name=graph.io_name(tensor.index)))
    outputs = tuple(TensorSpec(tuple(graph.tensors[o].shape[1:]), "float32", name=graph.io_name(o))
                    for o in graph.outputs)
    data = check_dataset(given.inputs, given.labels, specs, spec, outputs, label_output)
    y = data.y if data.has_class_labels else None
    if samples is not None:
        return dataclasses.replace(data, x=data.x[:samples], y=y[:samples] if y is not None else None)
    return dataclasses.replace(data, y=y)



@dataclass(frozen=True)
class Sample:
    index: int
    cycles: int
    output: bytes
    seconds: float  # round trip over the link: request, inference, reply

    def to_json(self) -> str:
        return json.dumps({"sample": self.index, "cycles": self.cycles, "output": self.output.hex(),
                           "seconds": round(self.seconds, 6)})


def _top1(outputs: list[bytes], dtype: np.dtype) -> np.ndarray:
    return np.array([np.frombuffer(o, dtype).argmax() for o in outputs])


def _split(data: bytes, outputs: tuple[TensorInfo, ...]) -> list[bytes]:
    chunks, pos = [], 0
    for t in outputs:
        chunks.append(data[pos:pos + t.nbytes])
        pos += t.nbytes
    return chunks


def _output_figures(got: list[bytes], expected: list[bytes], tensor: TensorInfo, name: str) -> dict:
    """One output over the samples: the share bit-exact with the reference, the largest difference."""
    dtype = np.dtype(NUMPY_DTYPES[tensor.dtype])
    exact = [g == e for g, e in zip(got, expected)]
    diffs = [float(np.abs(np.frombuffer(g, dtype).astype(np.float64) - np.frombuffer(e, dtype)).max())
             for g, e in zip(got, expected) if len(g) == len(e) and len(g)]
    return {"name": name, "dtype": tensor.dtype, "shape": list(tensor.shape),
            "bit_exact_fraction": float(np.mean(exact)) if exact else None, "bit_exact_samples": int(sum(exact)),
            "max_abs_diff": max(diffs) if diffs else None}


def summarize(samples: list[Sample], reference: list[bytes], labels: np.ndarray | None,
              outputs: tuple[TensorInfo, ...], *, planned: int, runtime: str, reference_name: str,
              macs: int | None, clock_hz: int, cycles_unit: str, names: tuple[str, ...] = (),
              label_output: int = 0) -> dict:
    """The `measure` section of report.json from the samples measured so far (in any order): each
    output checked on its own against the reference, top-1 accuracy on the output the labels are for."""
    outputs = (outputs,) if isinstance(outputs, TensorInfo) else tuple(outputs)
    samples = sorted(samples, key=lambda s: s.index)
    got = [_split(s.output, outputs) for s in samples]
    expected = [_split(reference[s.index], outputs) for s in samples]
    per_output = [_output_figures([g[k] for g in got], [e[k] for e in expected], t,
                                  names[k] if k < len(names) else str(k)) for k, t in enumerate(outputs)]
    exact = [s.output == reference[s.index] for s in samples]
    diffs = [o["max_abs_diff"] for o in per_output if o["max_abs_diff"] is not None]
    cycles = np.array([s.cycles for s in samples], dtype=np.float64)
    label = min(label_output, len(outputs) - 1)
    dtype = np.dtype(NUMPY_DTYPES[outputs[label].dtype])
    classifier = int(np.prod(outputs[label].shape)) > 1
    accuracy = reference_accuracy = None
    if labels is not None and classifier and samples:
        truth = np.asarray(labels)[[s.index for s in samples]]
        accuracy = float(np.mean(_top1([g[label] for g in got], dtype) == truth))
        reference_accuracy = float(np.mean(_top1([e[label] for e in expected], dtype) == truth))
    median = float(np.median(cycles)) if samples else None
    per_mac = round(median / macs, 4) if median is not None and macs else None
    if median is None:
        time_ms = None
    elif cycles_unit == "ns":
        time_ms = median / 1e6
    else:  # cycles, or instructions counted as one cycle each at the profile's clock
        time_ms = median / clock_hz * 1e3
    link_seconds = sum(s.seconds for s in samples)
    return {
        "samples": len(samples), "samples_planned": planned, "complete": len(samples) == planned,
        "runtime": runtime, "reference": reference_name,
        "accuracy": accuracy, "reference_accuracy": reference_accuracy,
        "bit_exact_fraction": float(np.mean(exact)) if samples else None,
        "bit_exact_samples": int(sum(exact)),
        "max_abs_diff": float(max(diffs)) if diffs else None,
        "outputs": per_output, "label_output": per_output[label]["name"] if labels is not None else None,
        "cycles_unit": cycles_unit,
        "cycles_min": int(cycles.min()) if samples else None, "cycles_median": median,
        "cycles_p95": float(np.percentile(cycles, 95)) if samples else None,
        "cycles_max": int(cycles.max()) if samples else None,
        "clock_hz": clock_hz, "time_ms_median": round(time_ms, 6) if time_ms is not None else None,
        "macs": macs, "cycles_per_mac": per_mac,
        "instructions_per_mac": per_mac if cycles_unit == "instructions" else None,
        "samples_per_second": round(len(samples) / link_seconds, 3) if link_seconds > 0 else None,
        "sources": _sources(cycles_unit, reference_name),
    }


_COUNTERS = {
    "instructions": "QEMU's instruction count (-icount shift=0), read through the SysTick counter on the device",
    "ns": "the host's monotonic clock inside the native firmware",
    "cycles": "the device's cycle counter, sent over serial",
}


def counter_text(cycles_unit: str) -> str:
    """What counted the device's cycles, for `sources` entries."""
    return _COUNTERS.get(cycles_unit, _COUNTERS["cycles"])


def _sources(cycles_unit: str, reference: str) -> dict:
    counter = counter_text(cycles_unit)
    compared = f"the device's outputs over serial, compared with the {reference} interpreter on this host"
    time = (f"{counter}, at the profile's clock" if cycles_unit != "ns" else counter)
    return {**{k: {"kind": "measured", "by": counter} for k in ("cycles_min", "cycles_median", "cycles_p95",
                                                               "cycles_max", "cycles_per_mac")},
            "time_ms_median": {"kind": "measured", "by": time},
            **{k: {"kind": "measured", "by": compared} for k in ("accuracy", "bit_exact_fraction", "max_abs_diff")}}


class Journal:
    """measure.jsonl: a header line, then one line per sample, flushed as each arrives."""

    def __init__(self, path: Path, header: dict, resume: bool = False):
        self.path = Path(path)
        self.samples: dict[int, Sample] = {}
        if resume and self.path.is_file():
            self.samples = self._read(header)
            self._file = open(self.path, "a", encoding="utf-8")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
            self._write({"header": header})

    def _read(self, header: dict) -> dict[int, Sample]:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            found = json.loads(lines[0])["header"] if lines else None
        except (json.JSONDecodeError, KeyError, TypeError):
            found = None
        keys = ("model_sha256", "inputs_sha256", "samples_planned")
        if found is None or any(found.get(k) != header[k] for k in keys):
            raise BadInput(f"{self.path}: cannot resume: it was measured with another model, other data or "
                           "another sample count; leave out --resume to start again")
        samples = {}
        for number, line in enumerate(lines[1:], 2):
            try:
                record = json.loads(line)
                sample = Sample(int(record["sample"]), int(record["cycles"]), bytes.fromhex(record["output"]),
                                float(record["seconds"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if number == len(lines):  # the run was cut off while writing its last line
                    break
                raise BadInput(f"{self.path}: line {number} is not a measured sample: {line[:80]!r}") from None
            samples[sample.index] = sample
        # Rewrite without a torn last line, so that appended lines start on a line of their own.
        self.path.write_text("\n".join([json.dumps({"header": found})] + [s.to_json() for s in samples.values()])
                             + "\n", encoding="utf-8")
        return samples

    def _write(self, record: dict | Sample) -> None:
        self._file.write((record.to_json() if isinstance(record, Sample) else json.dumps(record)) + "\n")
        self._file.flush()

    def add(self, sample: Sample) -> None:
        self.samples[sample.index] = sample
        self._write(sample)

    def close(self) -> None:
        self._file.close()


def inputs_sha256(xq: tuple[np.ndarray, ...]) -> str:
    h = hashlib.sha256()
    for a in xq:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclass
class Run:
    """What measuring needs besides the link: the model, the data and how to count (from the
    firmware's manifest, edgeq.codegen.sources.Manifest)."""

    tflite: bytes
    model_name: str
    x: np.ndarray
    y: np.ndarray | None
    journal: Path
    runtime: str  # what the firmware runs
    reference: str  # the interpreter its outputs must equal
    clock_hz: int
    cycles_unit: str
    macs: int | None = None
    output_names: tuple[str, ...] = ()  # as the model's signature names them
    label_output: int = 0  # the output `y` labels
    steps: tuple = ()  # what each step the profiled firmware counts computes (edgeq.codegen.sources.Step)
    resume: bool = False
    timeout: float = DEFAULT_TIMEOUT_S  # for each reply
    hello_timeout: float = DEFAULT_TIMEOUT_S  # for the first HELLO: a board may still be booting


def measure(link: Link, run: Run, on_sample=None) -> dict:
    """Checks the firmware is this model's, sends every sample not yet in the journal, and returns the
    summary of all of them. Link failures propagate (exit 4); the journal keeps what was measured."""
    info = link.hello(timeout=run.hello_timeout)
    check_firmware(info, run.tflite, run.model_name, link.name, run.runtime)
    if len(run.x) == 0:
        raise BadInput("no samples to measure")
    xq = device_inputs(run.x, info.inputs)
    if len(sample_bytes(xq, 0)) != info.input_bytes:
        raise BadInput(f"samples of {len(sample_bytes(xq, 0))} bytes, but the device's inputs take {info.input_bytes}")
    reference = reference_outputs(run.reference, run.tflite, xq)
    count = len(xq[0])
    header = {"model_sha256": info.model_hash.hex(), "inputs_sha256": inputs_sha256(xq),
              "samples_planned": count, "runtime": info.runtime, "runtime_version": info.runtime_version,
              "device": link.name, "clock_hz": run.clock_hz, "cycles_unit": run.cycles_unit}
    journal = Journal(run.journal, header, run.resume)

    def summary() -> dict:
        return summarize(list(journal.samples.values()), reference, run.y, info.outputs, planned=count,
                         runtime=info.runtime, reference_name=run.reference, macs=run.macs, clock_hz=run.clock_hz,
                         cycles_unit=run.cycles_unit, names=run.output_names, label_output=run.label_output)

    try:
        todo = [i for i in range(count) if i not in journal.samples]
        for i in progress(todo, len(todo), "device"):
            start = time.perf_counter()
            cycles, output = link.infer(sample_bytes(xq, i), timeout=run.timeout)
            journal.add(Sample(i, cycles, output, time.perf_counter() - start))
            if on_sample is not None:
                on_sample(i)
    except ToolFailed as exc:
        exc.measured = summary()  # what the report keeps of an interrupted run
        raise
    finally:
        journal.close()
    result = summary()
    memory = link.memory(timeout=run.timeout)
    if memory is not None and memory.stack_bytes:
        result.update(stack_bytes=memory.stack_bytes, stack_peak_bytes=memory.stack_peak_bytes)
        result["sources"]["stack_peak_bytes"] = STACK_PAINT.to_dict()
    return result
