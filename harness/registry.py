"""The one registry mechanism: metrics, task kinds, model aliases, tuners, executors and report formats.

An entry is registered at once (`add`, or the `@register(name)` decorator) or lazily: `register(name,
lazy="package.module:attribute")` records only where the entry lives, so its name is known (for a config check, a
`--choices` list, `sftbench ls`) without importing the module, which may import torch, Ray or matplotlib. The
module is imported on the entry's first `get`. A lazy target without `:attribute` names a module that registers
the entry itself when imported (a tuner's folder ends in its one register call; a report module in `@renderer`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from harness.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module" or "module:attribute", until first loaded

    def add(self, name: str, item: T) -> T:
        """Register `item` now; the module a lazy entry names calls this for its own name when imported."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        self._lazy.pop(name, None)
        return item

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, lazy: str) -> None: ...

    def register(self, name: str, lazy: str | None = None) -> Callable[[T], T] | None:
        """`@register(name)` registers what it decorates; `register(name, lazy="module[:attribute]")` registers
        the name now and imports the module on first use."""
        if lazy is None:
            return lambda item: self.add(name, item)
        if name in self:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._lazy[name] = lazy
        return None

    def get(self, name: str, path: str | None = None) -> T:
        if name in self._lazy:
            self._load(name)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self) or "none"
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {known}", path) from None

    def _load(self, name: str) -> None:
        module, _, attribute = self._lazy[name].partition(":")
        loaded = importlib.import_module(module)
        if attribute:
            self.add(name, getattr(loaded, attribute))
        elif name not in self._items:  # the module was to register this entry itself
            raise RuntimeError(f"{self.kind} '{name}': importing {module} did not register it")

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        """Every name, lazy ones included, without importing anything."""
        return iter(sorted(self._items.keys() | self._lazy.keys()))

    def items(self) -> list[tuple[str, T]]:
        """Every entry, lazy ones imported."""
        return [(name, self.get(name)) for name in self]
