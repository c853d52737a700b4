"""Named records registered at run time: the base of the feature kinds and stages registries.

Records are registered by avvp's own modules, by user code, or by plug-ins (installed packages'
entry points); `load` runs once, on the first look-up, to bring in those that are not registered
on import.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Records of one sort by name; `what` names the sort in messages."""

    def __init__(self, what: str, load: Callable[[], None] = lambda: None) -> None:
        self.what = what
        self._load = load
        self._loaded = False
        self._records: dict[str, T] = {}

    def register(self, name: str, record: T, replace: bool = False) -> T:
        if name in self._records and not replace:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._records[name] = record
        return record

    def unregister(self, name: str) -> None:
        """Forget a record registered in this process (tests, notebooks)."""
        self._records.pop(name, None)

    def all(self) -> dict[str, T]:
        """Every record by name, in registration order."""
        if not self._loaded:
            self._loaded = True
            self._load()
        return dict(self._records)

    def get(self, name: str) -> T:
        """The record of `name`; an error naming the known ones otherwise."""
        records = self.all()
        if name not in records:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(records)}")
        return records[name]
