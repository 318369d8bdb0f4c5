"""Numbered run folders: runs/track/exp1, exp2, ... (the first free number, created atomically)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["next_run_dir"]


def next_run_dir(root: str | os.PathLike, prefix: str = "exp") -> Path:
    """Create and return root/<prefix>N with N one more than the highest existing number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)$")
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))]
    number = max(numbers, default=0) + 1
    while True:
        path = root / f"{prefix}{number}"
        try:
            path.mkdir()        # fails if a parallel run took this number first
            return path
        except FileExistsError:
            number += 1
