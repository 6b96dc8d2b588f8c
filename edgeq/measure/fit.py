"""The fit verdict: the flash and RAM a model needs against what the device offers it.

Each side of the verdict says where its figure came from (edgeq.sources): the linked image once
the firmware is built, the profile's compiler on edgeq-c's generated code, TFLM's own allocator,
or, where nothing could be measured, an estimate named as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.sources import (
    COMPILED_OBJECTS,
    EDGEQ_C_MEMORY_PLAN,
    FLATBUFFER,
    LINKED_IMAGE,
    TFLM_FIRMWARE_ARENA,
    Source,
    estimated,
)
from edgeq.units import format_bytes

# Until the TFLM firmware is linked, its interpreter and kernels are an estimate: TFLM's
# interpreter with a handful of reference kernels for Cortex-M at -Os.
TFLM_CODE_BYTES_ESTIMATE = 64 * 1024
# edgeq-c's kernels and glue when no compiler for the profile is at hand to measure them
# (the KWS model's come to about 6 KB on Cortex-M4 at -Os).
EDGEQ_C_CODE_BYTES_ESTIMATE = 16 * 1024
# An OS loads the flatbuffer into RAM and the interpreter's buffers come on top: about twice the model.
LITERT_RAM_PER_MODEL_BYTE = 2


@dataclass(frozen=True)
class Budget:
    needed_bytes: int
    budget_bytes: int
    what: str  # how `needed` is made up
    source: Source

    @property
    def used_fraction(self) -> float:
        return self.needed_bytes / self.budget_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.budget_bytes

    def to_dict(self) -> dict:
        return {"needed_bytes": self.needed_bytes, "budget_bytes": self.budget_bytes,
                "used_fraction": round(self.used_fraction, 4), "what": self.what, "source": self.source.to_dict()}


@dataclass(frozen=True)
class Fit:
    flash: Budget
    ram: Budget

    @property
    def verdict(self) -> str:
        return "fits" if self.flash.fits and self.ram.fits else "does-not-fit"

    @property
    def measured(self) -> bool:
        return self.flash.source.measured and self.ram.source.measured

    def reasons(self) -> list[str]:
        out = []
        if not self.flash.fits:
            out.append(f"flash: {format_bytes(self.flash.needed_bytes)} needed ({self.flash.what}) > "
                       f"{format_bytes(self.flash.budget_bytes)} on the device")
        if not self.ram.fits:
            out.append(f"RAM: {format_bytes(self.ram.needed_bytes)} needed ({self.ram.what}) > "
                       f"{format_bytes(self.ram.budget_bytes)} left for the model")
        return out

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "flash": self.flash.to_dict(), "ram": self.ram.to_dict(),
                "reasons": self.reasons()}


def tflm_fit(profile, tflite_bytes: int, arena_bytes: int | None) -> Fit:
    """TFLM before its firmware is linked: the model and an estimate of TFLM's code in flash; in
    RAM the arena the firmware reserves (the smallest TFLM accepts, plus the codegen margin)."""
    flash = Budget(tflite_bytes + TFLM_CODE_BYTES_ESTIMATE, profile.memory.flash_bytes,
                   f"model {format_bytes(tflite_bytes)} + TFLM code {format_bytes(TFLM_CODE_BYTES_ESTIMATE)}",
                   estimated(f"the .tflite plus {format_bytes(TFLM_CODE_BYTES_ESTIMATE)} for TFLM's interpreter "
                             "and kernels (typical for Cortex-M at -Os), until the firmware is linked"))
    if arena_bytes is None:
        ram = Budget(0, profile.ram_for_model_bytes, "tensor arena", estimated("no TFLM arena could be measured"))
    else:
        ram = Budget(arena_bytes, profile.ram_for_model_bytes, "tensor arena", TFLM_FIRMWARE_ARENA)
    return Fit(flash, ram)


def litert_fit(profile, tflite_bytes: int) -> Fit:
    """LiteRT on an OS: the model file in storage; in RAM the flatbuffer and the interpreter's buffers."""
    flash = Budget(tflite_bytes, profile.memory.flash_bytes, "model file", FLATBUFFER)
    ram = Budget(tflite_bytes * LITERT_RAM_PER_MODEL_BYTE, profile.ram_for_model_bytes,
                 "model and interpreter buffers",
                 estimated(f"{LITERT_RAM_PER_MODEL_BYTE}x the model file: the flatbuffer an OS loads and the "
                           "interpreter's buffers"))
    return Fit(flash, ram)


def edgeq_c_fit(profile, flash_bytes: int | None, ram_bytes: int | None, const_bytes: int,
                arena_bytes: int, compiled_by: Source = COMPILED_OBJECTS) -> Fit:
    """edgeq-c before a build: its constants and code in flash, its arena (and any data) in RAM,
    from the compiled objects when a compiler measured them (`flash_bytes`, `ram_bytes`, measured
    as `compiled_by` says), else from the generated constants and a code estimate."""
    if flash_bytes is not None and ram_bytes is not None:
        return Fit(Budget(flash_bytes, profile.memory.flash_bytes, "edgeq-c model and kernels", compiled_by),
                   Budget(ram_bytes, profile.ram_for_model_bytes, "edgeq-c arena and data", compiled_by))
    flash = const_bytes + EDGEQ_C_CODE_BYTES_ESTIMATE
    return Fit(Budget(flash, profile.memory.flash_bytes, "edgeq-c constants + kernels",
                      estimated(f"the generated model's constant arrays plus {format_bytes(EDGEQ_C_CODE_BYTES_ESTIMATE)} "
                                "for edgeq-c's kernels (no compiler for the profile to measure them)")),
               Budget(arena_bytes, profile.ram_for_model_bytes, "edgeq-c arena", EDGEQ_C_MEMORY_PLAN))


def linked_fit(profile, flash_bytes: int, ram_bytes: int) -> Fit:
    """The verdict from the linked firmware: the whole image against the whole device. The image is
    the application, so its RAM (arena, data, stack) is set against all of the device's RAM, not
    the share the profile leaves a model inside someone else's application."""
    return Fit(Budget(flash_bytes, profile.memory.flash_bytes, "whole firmware image", LINKED_IMAGE),
               Budget(ram_bytes, profile.memory.ram_bytes, "whole firmware image: arena, data and stack",
                      LINKED_IMAGE))
