"""Sizes as people write them: '256 KB' out, '256K' in (binary units, as datasheets use)."""

from __future__ import annotations

import re

from edgeq.errors import BadInput

_UNITS = (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10))


def format_bytes(n: int | float | None) -> str:
    """1048576 -> '1 MB', 983040 -> '960 KB', 1536 -> '1.5 KB', 4161536 -> '3.97 MB'; None -> '-'.

    A unit that says the size exactly in fewer than four digits wins; otherwise one decimal for KB,
    two for MB and GB.
    """
    if n is None:
        return "-"
    for unit, size in _UNITS:
        if n >= size and n % size == 0 and n // size < 1024:
            return f"{int(n // size)} {unit}"
    for unit, size in _UNITS:
        if n >= size:
            return f"{n / size:.{1 if unit == 'KB' else 2}f} {unit}"
    return f"{int(n)} B"


def parse_bytes(text: str | int) -> int:
    """'256K', '256 KB', '1.5M', '2097152' -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise BadInput(f"size {text} must be positive")
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(i?[bB])?\s*", str(text))
    if not m:
        raise BadInput(f"cannot read '{text}' as a size: use bytes or a K/M/G suffix, e.g. 256K")
    value = float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    if value <= 0:
        raise BadInput(f"size '{text}' must be positive")
    return int(value)
