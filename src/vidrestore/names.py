"""The one natural sort order of names (image files of a sequence): runs of digits
compare as numbers, so ``f2`` comes before ``f10`` and ``-v9`` before ``-v10``."""

from __future__ import annotations

import re
from typing import Any

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key: runs of digits compare as numbers (``f2`` before ``f10``), the rest case-folded."""
    return tuple((0, int(part), part) if part.isdigit() else (1, part.casefold(), part)
                 for part in _DIGITS.split(name) if part)
