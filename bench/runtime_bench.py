"""edgeq-c against TensorFlow Lite Micro and LiteRT: RAM, flash and host time per inference.

    python bench/runtime_bench.py [--runs 50] [--strict]

One row per model: the four MLPerf Tiny int8 models (from ../shared/models/mlperf-tiny, skipped
when absent) and the digits example (trained and converted to int8 first if its artifacts are
missing). Columns:

- TFLM arena: what the TFLM interpreter's recording allocator reports (`tflm_arena().total_bytes`).
- RAM: edgeq-c's arena plus every other .data/.bss byte of the generated code and kernels, from
  `arm-none-eabi-size` of the Cortex-M4 -Os objects; its ratio to TFLM's arena.
- bound: the most activation bytes alive at once for this op order (no arena without in-place
  kernels can be smaller) and the arena's ratio to it.
- flash: the model's constants (.rodata of the generated model file) and code (.text of kernels
  and glue), Cortex-M4 -Os.
- host time per inference: median of --runs invokes, one thread, all engines in this process,
  interleaved so that background load hits them alike; edgeq-c through ctypes (built -O3),
  the TFLM Python interpreter and LiteRT with its reference kernels (BUILTIN_REF).

Targets (MLPerf rows): RAM <= 0.7x TFLM's arena; KWS code <= 16 KiB; time <= 0.5x TFLM on VWW
and ResNet-8. Each is printed PASS or FAIL; --strict exits 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeq.aot import compile_model  # noqa: E402
from edgeq.aot.footprint import measure_footprint  # noqa: E402
from edgeq.aot.host import HostModel, build_shared_library  # noqa: E402

MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
MLPERF_MODELS = (("KWS", "kws_ref_model.tflite"), ("VWW", "vww_96_int8.tflite"),
                 ("ResNet-8", "pretrainedResnet_quant.tflite"), ("AD01", "ad01_int8.tflite"))
DIGITS = REPO / "examples" / "digits" / "artifacts"
RAM_TARGET, CODE_TARGET, TIME_TARGET = 0.7, 16 * 1024, 0.5
TIME_TARGET_MODELS = ("VWW", "ResNet-8")


@dataclass(frozen=True)
class Row:
    model: str
    tflm_arena: int
    ram: int
    lower_bound: int
    arena: int
    weights: int
    code: int
    edgeq_ms: float
    tflm_ms: float
    litert_ms: float
    mlperf: bool

    @property
    def ram_ratio(self) -> float:
        return self.ram / self.tflm_arena

    @property
    def tflm_time_ratio(self) -> float:
        return self.edgeq_ms / self.tflm_ms

    @property
    def litert_time_ratio(self) -> float:
        return self.edgeq_ms / self.litert_ms


# --- pure: targets and the table --------------------------------------------------------------

def targets(rows: list[Row]) -> list[tuple[str, bool]]:
    """(description, met) for every target that applies to these rows."""
    checks = []
    for r in rows:
        if not r.mlperf:
            continue
        checks.append((f"{r.model} RAM {r.ram:,} B = {r.ram_ratio:.2f}x TFLM <= {RAM_TARGET}x",
                       r.ram <= RAM_TARGET * r.tflm_arena))
        if r.model == "KWS":
            checks.append((f"KWS code {r.code:,} B <= {CODE_TARGET:,} B", r.code <= CODE_TARGET))
        if r.model in TIME_TARGET_MODELS:
            checks.append((f"{r.model} host time {r.tflm_time_ratio:.2f}x TFLM <= {TIME_TARGET}x",
                           r.tflm_time_ratio <= TIME_TARGET))
    return checks


def format_table(rows: list[Row]) -> str:
    head = ("model", "TFLM arena", "edgeq-c RAM", "RAM/TFLM", "bound", "arena/bound", "weights", "code",
            "edgeq-c ms", "TFLM ms", "vs TFLM", "LiteRT ref ms", "vs LiteRT")
    body = [(r.model, f"{r.tflm_arena:,}", f"{r.ram:,}", f"{r.ram_ratio:.2f}x", f"{r.lower_bound:,}",
             f"{r.arena / r.lower_bound:.2f}x", f"{r.weights:,}", f"{r.code:,}", f"{r.edgeq_ms:.3f}",
             f"{r.tflm_ms:.3f}", f"{r.tflm_time_ratio:.2f}x", f"{r.litert_ms:.3f}", f"{r.litert_time_ratio:.2f}x")
            for r in rows]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]

    def fmt(line) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(line, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(head), rule] + [fmt(line) for line in body])


# --- shell: models, compilers, interpreters ---------------------------------------------------

def digits_tflite() -> bytes:
    """The digits example quantized to int8, trained first when its artifacts are missing."""
    from edgeq.convert.converter import convert
    from edgeq.load import load_dataset, load_model

    model_path, calib = DIGITS / "digits.keras", DIGITS / "calib.npz"
    if not model_path.exists() or not calib.exists():
        print("digits artifacts missing: training examples/digits (about 15 s)", file=sys.stderr)
        subprocess.run([sys.executable, str(REPO / "examples" / "digits" / "train.py")], check=True)
    with quiet_stderr():  # TensorFlow's start-up log lines
        model = load_model(model_path)
        return convert(model, "int8", load_dataset(str(calib), model.input))


def random_inputs(compiled, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in compiled.inputs:
        if t.dtype == "FLOAT32":
            out.append(rng.random(t.shape, dtype=np.float32))
        else:
            info = np.iinfo(np.int8 if t.dtype == "INT8" else np.int16)
            out.append(rng.integers(info.min, info.max + 1, size=t.shape).astype(info.dtype))
    return out


def host_times(tflite: bytes, compiled, directory: Path, runs: int) -> tuple[float, float, float]:
    """Median milliseconds per invoke of edgeq-c, the TFLM interpreter and LiteRT's reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    xs = random_inputs(compiled)
    ours = HostModel(build_shared_library(compiled, directory), compiled)
    tflm = runtime.Interpreter.from_bytes(tflite)
    litert = Interpreter(model_content=tflite, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    litert.allocate_tensors()
    litert_inputs = [d["index"] for d in litert.get_input_details()]

    # Inputs are written before every invoke, untimed: edgeq-c reuses the input's bytes.
    def set_ours() -> None:
        for i, x in enumerate(xs):
            ours.set_input(i, x)

    def set_tflm() -> None:
        for i, x in enumerate(xs):
            tflm.set_input(x, i)

    def set_litert() -> None:
        for index, x in zip(litert_inputs, xs):
            litert.set_tensor(index, x)
    engines = ((set_ours, ours.invoke), (set_tflm, tflm.invoke), (set_litert, litert.invoke))
    samples: list[list[float]] = [[] for _ in engines]
    for run in range(runs + 3):  # three warm-up rounds
        for (set_inputs, invoke), times in zip(engines, samples):
            set_inputs()
            start = time.perf_counter()
            invoke()
            if run >= 3:
                times.append(time.perf_counter() - start)
    return tuple(float(np.median(t)) * 1e3 for t in samples)  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_stderr():
    """TFLM's allocator reports failed trial allocations on fd 2 from C++; keep them off the table."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def measure(name: str, tflite: bytes, runs: int, mlperf: bool) -> Row:
    from edgeq.measure.interpreters import tflm_arena

    with quiet_stderr():
        tflm_total = tflm_arena(tflite).total_bytes
    compiled = compile_model(tflite, prefix="bench")
    with tempfile.TemporaryDirectory() as tmp:
        size = measure_footprint(compiled, Path(tmp) / "arm")
        edgeq_ms, tflm_ms, litert_ms = host_times(tflite, compiled, Path(tmp) / "host", runs)
    return Row(model=name, tflm_arena=tflm_total, ram=size.ram_bytes,
               lower_bound=compiled.lower_bound_bytes, arena=compiled.arena_bytes,
               weights=size.weights_bytes, code=size.code_bytes + size.other_rodata_bytes,
               edgeq_ms=edgeq_ms, tflm_ms=tflm_ms, litert_ms=litert_ms, mlperf=mlperf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed invokes per engine (at least 50)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--mlperf", type=Path, default=MLPERF, help=f"MLPerf Tiny models (default {MLPERF})")
    args = parser.parse_args(argv)
    runs = max(args.runs, 50)
    rows = []
    present = [(name, args.mlperf / file) for name, file in MLPERF_MODELS if (args.mlperf / file).is_file()]
    for name, path in present:
        rows.append(measure(name, path.read_bytes(), runs, mlperf=True))
    if len(present) < len(MLPERF_MODELS):
        missing = ", ".join(name for name, _ in MLPERF_MODELS if name not in dict(present))
        print(f"skipping the MLPerf Tiny rows {missing}: not in {args.mlperf}")
    rows.append(measure("digits", digits_tflite(), runs, mlperf=False))
    print(f"edgeq-c vs TFLM and LiteRT (Cortex-M4 -Os sizes in bytes; host ms per inference, median of {runs})")
    print(format_table(rows))
    checks = targets(rows)
    for text, met in checks:
        print(f"{'PASS' if met else 'FAIL'}  {text}")
    return 1 if args.strict and not all(met for _, met in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
