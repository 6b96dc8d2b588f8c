"""Where a figure came from: measured (by what) or estimated (from what).

Every size, memory, latency and accuracy figure in report.json and plan.json sits beside a
`sources` entry made here, and every terminal table marks the estimated ones with ESTIMATE_MARK,
so nobody takes an estimate for a measurement (docs/report-schema.md).
"""

from __future__ import annotations

from dataclasses import dataclass

ESTIMATE_MARK = "~"


@dataclass(frozen=True)
class Source:
    measured: bool
    how: str  # by what it was measured, or from what it was estimated

    def to_dict(self) -> dict:
        return {"kind": "measured", "by": self.how} if self.measured else {"kind": "estimated", "from": self.how}

    @classmethod
    def from_dict(cls, entry: dict) -> Source:
        return cls(True, entry["by"]) if entry["kind"] == "measured" else cls(False, entry["from"])

    def mark(self, text: str) -> str:
        """`text` as a table shows it: estimates carry ESTIMATE_MARK."""
        return text if self.measured else ESTIMATE_MARK + text


def measured(by: str) -> Source:
    return Source(True, by)


def estimated(from_: str) -> Source:
    return Source(False, from_)


def source_text(entry: dict, estimated_label: str = "estimated") -> str:
    """A `sources` entry (Source.to_dict()) as people read it: 'measured: by what' or
    'estimated: from what'."""
    if entry["kind"] == "measured":
        return f"measured: {entry['by']}"
    return f"{estimated_label}: {entry['from']}"


def sources_dict(sources: dict[str, Source | None]) -> dict:
    """The `sources` entry of a report section: figure key -> {kind, by|from}; unknown figures left out."""
    return {key: s.to_dict() for key, s in sources.items() if s is not None}


# The measurements edgeq makes, named once.
LINKED_IMAGE = measured("the size tool on the linked firmware image")
BUNDLE_FILES = measured("the files of the native harness bundle edgeq build gathered")
COMPILED_OBJECTS = measured("the profile's compiler: edgeq-c's generated model and kernels compiled and sized")
TFLM_RECORDING_ALLOCATOR = measured("tflite-micro's recording allocator on this host")
TFLM_ALLOCATE_TENSORS = measured("tflite-micro's AllocateTensors on this host, smallest arena that succeeds")
TFLM_FIRMWARE_ARENA = measured("tflite-micro's AllocateTensors on this host (the smallest arena that succeeds), "
                               "plus the firmware's margin")
EDGEQ_C_MEMORY_PLAN = measured("edgeq-c's static memory plan (exact: the arena the generated code declares)")
EDGEQ_C_CONSTANTS = measured("edgeq-c's generated model (exact: the bytes of its constant arrays)")
LITERT_HOST = measured("LiteRT on this host")
FLATBUFFER = measured("the .tflite file")
STACK_PAINT = measured("the stack painted at reset, read back over serial (MEMORY) after the last sample")
