"""A name -> builder registry, one per family (datasets, models, normalizers, probes).

In the style of open_lth's registries: adding an entry is one module plus one
``register`` line. A registry builds what its family's catalog (:mod:`normstudy.catalog`)
declares: registering a name the catalog lacks fails at import, and asking for an
unknown name fails with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from normstudy.catalog import Catalog, UnknownNameError

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError"]


class Registry(Generic[T]):
    """Maps the names of ``catalog`` to their builders."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if name not in self.catalog:
            raise ValueError(
                f"{self.catalog.kind} {name!r} has a builder but no catalog entry; add one to "
                f"normstudy.catalog ({', '.join(self.catalog)} are there)"
            )

        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.catalog.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def add(self, name: str, entry: T) -> None:
        self.register(name)(entry)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.catalog.unknown(name)) from None

    def unbuilt(self) -> list[str]:
        """Catalog entries without a builder (a test keeps this empty)."""
        return [name for name in self.catalog if name not in self._entries]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
