"""report.json as a type: `Report`, one dataclass per section, with `to_json`/`from_json`
(docs/report-schema.md). `edgeq deploy` makes one, `edgeq report` reads one back; report.md and
report.html are drawn from it. Bump SCHEMA_VERSION when a key changes meaning or goes away (adding
keys does not need a bump).

Two sections stay as JSON the stage that measures them writes: `measure` (measure.json, from the
device loop) and, inside `memory`, each runtime's own figures (edgeq.runtimes names them).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field

from edgeq.errors import BadInput
from edgeq.measure.fit import Fit

# 2: every figure sits beside a `sources` entry, and the fit verdict comes from the linked image once built.
# 3: every key is always there (null when it does not apply: model.conversion_fidelity, quantization.plan,
#    model.input's layout keys); build.command names the project by its folder in the output folder.
SCHEMA_VERSION = 3


@dataclass
class TensorDesc:
    name: str  # as the model's signature names it
    shape: list[int]
    dtype: str
    layout: str | None = None  # NHWC or NLC, for a model that came channel-first (ONNX, .pt2)
    source_shape: list[int] | None = None  # the shape the source model takes
    source_layout: str | None = None


@dataclass
class ModelInfo:
    path: str
    name: str
    format: str
    sha256: str
    inputs: list[TensorDesc]  # in the model's order, which the firmware and the data files follow
    outputs: list[TensorDesc]
    ops: list[str]
    conversion_fidelity: dict | None = None  # ONNX and .pt2: the float .tflite against the source
    folded: list[str] = field(default_factory=list)  # a float .tflite's DEQUANTIZE/DENSIFY of constants, folded at load


@dataclass
class DeviceInfo:
    name: str
    display_name: str
    kind: str
    core: str
    clock_mhz: float
    flash_bytes: int
    ram_bytes: int
    ram_for_model_bytes: int
    source: str


@dataclass
class Calibration:
    source: str
    samples: int
    synthetic: bool


@dataclass
class Quantization:
    mode: str
    description: str
    runtime: str
    reason: str
    came_quantized: bool
    calibration: Calibration
    plan: dict | None = None  # the planner's choice: candidate, file, how many candidates


@dataclass
class Size:
    float_tflite_bytes: int | None
    tflite_bytes: int
    ratio: float | None
    constant_bytes: int
    sources: dict


@dataclass
class Memory:
    """Each runtime's figures (`figures`, keyed as edgeq.runtimes names them) and the linked image's."""

    figures: dict
    flash_used_bytes: int | None = None  # from the linked firmware, once it is built
    ram_used_bytes: int | None = None
    sources: dict = field(default_factory=dict)

    def get(self, key: str):
        """A figure by its report.json key, None when the report has none."""
        return {"flash_used_bytes": self.flash_used_bytes, "ram_used_bytes": self.ram_used_bytes}.get(
            key, self.figures.get(key))

    def to_dict(self) -> dict:
        return {**self.figures, "flash_used_bytes": self.flash_used_bytes, "ram_used_bytes": self.ram_used_bytes,
                "sources": self.sources}

    @classmethod
    def from_dict(cls, data: dict) -> Memory:
        own = ("flash_used_bytes", "ram_used_bytes", "sources")
        return cls({k: v for k, v in data.items() if k not in own}, data.get("flash_used_bytes"),
                   data.get("ram_used_bytes"), data.get("sources") or {})


@dataclass
class OutputAccuracy:
    name: str
    sqnr_db: float | None  # against the float model; null without one
    agreement: float | None  # top-1 agreement with the float model, for an output of more than one element


@dataclass
class Accuracy:
    data: str
    samples: int
    labelled: bool
    float: float | None  # top-1 on the output `label_output` names
    quantized: float | None
    drop_pp: float | None
    agreement: float | None
    sqnr_db: float | None  # the worst output's
    sources: dict
    outputs: list[OutputAccuracy] = field(default_factory=list)  # one a model output, in order
    label_output: str | None = None


@dataclass
class Latency:
    host_ms_median: float
    host_ms_p95: float
    runs: int
    threads: int
    interpreter: str
    sources: dict


@dataclass
class Build:
    elf: str
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    flash_used_bytes: int
    flash_budget_bytes: int
    flash_used_fraction: float
    ram_used_bytes: int
    ram_budget_bytes: int
    ram_used_fraction: float
    command: str


@dataclass
class DeviceStatus:
    status: str  # measured, failed or skipped
    reason: str | None = None


@dataclass
class Report:
    model: ModelInfo
    profile: DeviceInfo
    quantization: Quantization
    size: Size
    memory: Memory
    accuracy: Accuracy | None  # None when LiteRT on this host cannot run the model (`not_measured` says why)
    latency: Latency | None
    fit: Fit
    build: Build | None = None
    measure: dict | None = None  # measure.json's figures (edgeq.device.measure), once measured on the device
    device: DeviceStatus | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    edgeq_version: str = ""
    not_measured: str | None = None  # why accuracy and latency were not measured on this host
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        out = {"schema_version": self.schema_version, "edgeq_version": self.edgeq_version}
        for f in dataclasses.fields(self):
            if f.name not in out:
                out[f.name] = _plain(getattr(self, f.name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str = "report.json") -> Report:
        if not isinstance(data, dict):
            raise BadInput(f"{source}: not a report (a JSON object is expected)")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BadInput(f"{source}: report schema {version}, this edgeq reads schema {SCHEMA_VERSION} "
                           "(docs/report-schema.md): run edgeq deploy again")
        try:
            return _fields(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{source}: not a report this edgeq wrote ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str, source: str = "report.json") -> Report:
        try:
            return cls.from_dict(json.loads(text), source)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source}: not valid JSON: {exc}") from None


def _plain(value):
    """A section as JSON-ready data: its own to_dict where it has one, else its fields."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _section_type(hint):
    """The class a field holds when it is a section (a dataclass or a type with from_dict), else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        found = [t for t in typing.get_args(hint) if t is not type(None)]
        return _section_type(found[0]) if len(found) == 1 else None
    return hint if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or hasattr(hint, "from_dict")) \
        else None


def _build(cls, data: dict):
    return cls.from_dict(data) if "from_dict" in vars(cls) else _fields(cls, data)


def _fields(cls, data: dict):
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f.name)
            continue
        value, hint = data[f.name], hints[f.name]
        section = _section_type(hint)
        if section is not None and value is not None:
            value = _build(section, value)
        elif typing.get_origin(hint) is list and value is not None:
            item = _section_type(typing.get_args(hint)[0])
            value = [_build(item, v) for v in value] if item is not None else value
        values[f.name] = value
    return cls(**values)
