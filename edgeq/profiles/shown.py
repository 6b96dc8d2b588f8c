"""How a profile's value is quoted in an error message."""

from __future__ import annotations

import reprlib
from typing import Any

# A value as messages show it: repr(), unless it is large. YAML aliases can make a small file a
# huge (or self-referencing) structure whose repr() would never end; that one is abbreviated.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 4, 200, 200


def shown_value(value: Any, budget: int = 200) -> str:
    stack = [value]
    while stack and budget > 0:
        item = stack.pop()
        budget -= 1
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack += item
    return repr(value) if not stack else _REPR.repr(value)
