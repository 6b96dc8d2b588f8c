"""The fit verdict: the flash and RAM a model needs against what the device offers it.

Each side of the verdict says where its figure came from (edgeq.sources): the linked image once
the firmware is built, or, before that, what the runtime measured or estimated (each runtime of
edgeq.runtimes makes its own Fit: the profile's compiler on edgeq-c's generated code, TFLM's own
allocator, an estimate named as one).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.sources import BUNDLE_FILES, LINKED_IMAGE, Source, measured
from edgeq.units import format_bytes


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

    @classmethod
    def from_dict(cls, data: dict) -> Budget:
        return cls(data["needed_bytes"], data["budget_bytes"], data["what"], Source.from_dict(data["source"]))


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

    @classmethod
    def from_dict(cls, data: dict) -> Fit:
        return cls(Budget.from_dict(data["flash"]), Budget.from_dict(data["ram"]))


def bundle_fit(profile, bundle_bytes: int, peak_rss_bytes: int, where: str) -> Fit:
    """The verdict from the native harness on a phone or Linux board: its bundle in storage, the peak RSS
    the device measured against the RAM the profile leaves a model."""
    return Fit(Budget(bundle_bytes, profile.memory.flash_bytes, "harness bundle: harness, model, libLiteRt.so, libc",
                      BUNDLE_FILES),
               Budget(peak_rss_bytes, profile.ram_for_model_bytes, "harness process: peak RSS",
                      measured(f"the harness's peak RSS (getrusage) on {where}")))


def linked_fit(profile, flash_bytes: int, ram_bytes: int) -> Fit:
    """The verdict from the linked firmware: the whole image against the whole device. The image is
    the application, so its RAM (arena, data, stack) is set against all of the device's RAM, not
    the share the profile leaves a model inside someone else's application."""
    return Fit(Budget(flash_bytes, profile.memory.flash_bytes, "whole firmware image", LINKED_IMAGE),
               Budget(ram_bytes, profile.memory.ram_bytes, "whole firmware image: arena, data and stack",
                      LINKED_IMAGE))
