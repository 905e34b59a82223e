"""
Per-stream detector state kept as columns (one numpy array per variable, one row per stream
slot), so a batch of streams is read and written with one index per variable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Index = slice | np.ndarray


class Columns:
    """
    Named arrays sharing one capacity; C{spec} maps a name to (row shape, dtype, initial value).
    """

    def __init__(self, spec: dict[str, tuple[tuple[int, ...], Any, Any]], capacity: int) -> None:
        self._spec = spec
        self.capacity = 0
        for name, (shape, dtype, fill) in spec.items():
            setattr(self, name, np.full((0, *shape), fill, dtype=dtype))
        self.grow(capacity)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        for name, (shape, dtype, fill) in self._spec.items():
            old = getattr(self, name)
            new = np.full((capacity, *shape), fill, dtype=dtype)
            new[: self.capacity] = old
            setattr(self, name, new)
        self.capacity = capacity

    def reset(self, slot: int) -> None:
        for name, (_shape, _dtype, fill) in self._spec.items():
            getattr(self, name)[slot] = fill

    def __getattr__(self, name: str) -> Any:  # for type checkers: columns are set dynamically
        raise AttributeError(name)


def as_index(slots: np.ndarray) -> Index:
    """
    A slice when C{slots} is a contiguous ascending run (the common case: every stream has a
    frame), which numpy reads and writes faster than a fancy index.
    """
    if len(slots) and slots[-1] - slots[0] == len(slots) - 1 and np.all(np.diff(slots) == 1):
        return slice(int(slots[0]), int(slots[-1]) + 1)
    return slots
