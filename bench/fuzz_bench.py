"""The parsers' fuzzing properties of tests/test_fuzz.py, run for longer: cases tried and failures per target.

    python bench/fuzz_bench.py [--seconds 30] [--examples N] [--targets tflite,profiles,data,protocol]
                               [--seed 0] [--hang 10]

Four targets, each a group of properties (tests/test_fuzz.py `TARGETS`): the .tflite reader, device
profiles, data sets and the serial protocol's host side. A property holds when the parser returns a value
or raises one of edgeq's own errors naming the file, key or message it read. Each target gets --seconds
(shared among its properties), or each property --examples cases. Hypothesis generates the cases, in
batches with seeds from --seed on, without shrinking; a case that runs longer than --hang seconds
counts as a failure. Columns:

- cases: inputs tried; failures: those that broke the property; kinds: distinct exception types and
  places they were raised (each listed below the table with its first message and input); cases/s.

Exits 1 when any property failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.test_fuzz import TARGETS, tiny_models  # noqa: E402

BATCH = 100


class Hang(BaseException):
    """Raised by the alarm inside a case; a BaseException, so no `except Exception` in edgeq hides it."""


@dataclass
class Tally:
    target: str
    prop: str
    cases: int = 0
    seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)
    first: dict = field(default_factory=dict)  # failure kind -> (first message, first input)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def _where(exc: BaseException) -> str:
    """The innermost frame in edgeq (or else in the properties) that the exception passed through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/edgeq/" in f.filename] or [f for f in frames if "test_fuzz" in f.filename]
    f = (ours or frames)[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.name})"


def _on_alarm(signum, frame):
    raise Hang()


def run_property(tally: Tally, strategy, check, seconds: float | None, examples: int | None, first_seed: int,
                 hang: float) -> None:
    start = time.monotonic()
    deadline = start + seconds if seconds is not None else None

    def more() -> bool:
        return tally.cases < examples if examples is not None else time.monotonic() < deadline

    batch = 0
    while more():
        count = min(BATCH, examples - tally.cases) if examples is not None else BATCH

        @settings(max_examples=count, deadline=None, database=None, derandomize=False, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(first_seed + batch)
        @given(strategy)
        def one(case):
            if not more():
                return
            tally.cases += 1
            signal.setitimer(signal.ITIMER_REAL, hang)
            try:
                check(case)
            except Hang:
                kind = f"Hang: no answer within {hang:g} s"
                tally.failures[kind] += 1
                tally.first.setdefault(kind, ("", case))
            except Exception as exc:  # noqa: BLE001 -- any exception that escapes is the finding
                kind = f"{type(exc).__name__} at {_where(exc)}"
                tally.failures[kind] += 1
                lines = str(exc).strip().splitlines()
                tally.first.setdefault(kind, (lines[0][:200] if lines else "", case))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        one()
        batch += 1
    tally.seconds = time.monotonic() - start


def format_table(tallies: list[Tally]) -> str:
    header = ("target", "property", "cases", "failures", "kinds", "cases/s")
    lines = [header] + [(t.target, t.prop, f"{t.cases:,}", f"{t.failed:,}", str(len(t.failures)),
                         f"{t.cases / t.seconds:,.0f}" if t.seconds else "-") for t in tallies]
    for target in dict.fromkeys(t.target for t in tallies):
        group = [t for t in tallies if t.target == target]
        if len(group) > 1:
            lines.append((target, "(all)", f"{sum(t.cases for t in group):,}", f"{sum(t.failed for t in group):,}",
                          str(sum(len(t.failures) for t in group)), ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="time per target (default 30)")
    parser.add_argument("--examples", type=int, default=None, help="cases per property instead of a time")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--seed", type=int, default=0, help="the first batch's seed (default 0)")
    parser.add_argument("--hang", type=float, default=10.0, help="seconds after which a case counts as a hang")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if "tflite" in targets:
        print("building the tiny model (Conv2D + Dense, int8 and fp32) ...", file=sys.stderr)
        tiny_models()
    signal.signal(signal.SIGALRM, _on_alarm)
    tallies = []
    for target in targets:
        props = TARGETS[target]
        for prop, strategy, check in props:
            tally = Tally(target, prop)
            run_property(tally, strategy, check, None if args.examples else args.seconds / len(props),
                         args.examples, args.seed, args.hang)
            tallies.append(tally)
            print(f"  {target} / {prop}: {tally.cases:,} cases, {tally.failed:,} failures", file=sys.stderr)
    budget = f"{args.examples:,} cases per property" if args.examples else f"{args.seconds:g} s per target"
    print(f"edgeq parsers under fuzzing ({budget}, seeds from {args.seed}): only edgeq's errors may escape")
    print(format_table(tallies))
    failed = [t for t in tallies if t.failures]
    for t in failed:
        for kind, n in t.failures.most_common():
            message, case = t.first[kind]
            print(f"\nFAIL  {t.target} / {t.prop}: {n} x {kind}\n      first: {message}\n"
                  f"      input: {' '.join(repr(case).split()):.300}")
    if not failed:
        print("PASS  no input made a parser raise anything but an edgeq error")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
