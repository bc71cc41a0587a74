"""The catalog container: named entries of one family, in display order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from normstudy.catalog.options import Option, option_problems, resolve_options


class UnknownNameError(KeyError, ValueError):
    """An unknown name of a family; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    """What every entry has: its name, a readable label, and its options (name ->
    :class:`~normstudy.catalog.options.Option`; none by default)."""

    name: str
    label: str
    options: Mapping[str, Option] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, object]:
        """Option name -> its default."""
        return {key: option.default for key, option in self.options.items()}

    def option_problems(self, kind: str, given: object) -> list[str]:
        """What is wrong with the options ``given`` to this entry (empty if nothing)."""
        return option_problems(kind, self.name, given, self.options)

    def resolve(self, kind: str, given: Mapping[str, object]) -> dict[str, object]:
        """The defaults merged with ``given``, checked and converted; ValueError if not."""
        problems = self.option_problems(kind, given)
        if problems:
            raise ValueError("; ".join(problems))
        return resolve_options(kind, self.name, given, self.options)


E = TypeVar("E", bound=Entry)


class Catalog(Generic[E]):
    """The entries of one family by name (``kind`` names the family in errors). Iterates
    in the order the entries were declared: the order of figure legends and tables."""

    def __init__(self, kind: str, entries: Iterable[E], plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, E] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"{kind} {entry.name!r} is in the catalog twice")
            self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> E:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown(name)) from None

    def get(self, name: str, default: E | None = None) -> E | None:
        return self._entries.get(name, default) if isinstance(name, str) else default

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name``: it and the valid names."""
        return f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(sorted(self))}"

    def names(self) -> list[str]:
        """The names in declared order."""
        return list(self._entries)

    def where(self, **facts: object) -> list[str]:
        """Names of the entries whose attributes equal ``facts`` (``inputs="tokens"``)."""
        return [
            name
            for name, entry in self._entries.items()
            if all(getattr(entry, key) == value for key, value in facts.items())
        ]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, E]]:
        return iter(self._entries.items())
