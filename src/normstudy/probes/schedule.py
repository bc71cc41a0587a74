"""When probes run: the ``probes:`` list of a cell config, parsed into :class:`ProbeEntry`.

An entry is a probe name (default schedule) or a mapping::

    {name: hessian, every_epochs: 5, every_steps: 0, at_steps: [50], at_init: true,
     at_end: true, options: {mode: eval}, label: hessian_eval}

Defaults: ``at_init`` and ``at_end`` true, ``every_epochs`` 1 for cheap probes and 0
(never) for expensive ones (hessian, ics, smoothness), ``every_steps`` 0 (never),
``at_steps`` none. ``at_steps`` lists optimizer steps after which the probe runs, for the
early-training measurements of "Is Batch Norm unique?" §5-6 (the first ~1,000 steps,
figure 3; the Hessian 50 steps in, figure 4), which a fixed period cannot place densely
early and sparsely late.
``label`` (default: the name) is the ``probe`` column of the records, so one probe can
be scheduled twice with different options; labels must be unique within a cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from normstudy.catalog import PROBES
from normstudy.probes.base import Probe
from normstudy.probes.registry import build_probe

PHASES = ("init", "epoch", "step", "end")
ENTRY_KEYS = (
    "name",
    "every_epochs",
    "every_steps",
    "at_steps",
    "at_init",
    "at_end",
    "options",
    "label",
)


@dataclass(frozen=True)
class ProbeEntry:
    """One scheduled probe."""

    name: str
    every_epochs: int
    every_steps: int = 0
    at_init: bool = True
    at_end: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    at_steps: tuple[int, ...] = ()

    def build(self) -> Probe:
        """A fresh probe with this entry's options and label."""
        probe = build_probe(self.name, **self.options)
        probe.label = self.label or self.name
        return probe

    def due(self, phase: str, epoch: int, step: int) -> bool:
        """Whether the probe runs at ``phase`` after ``epoch`` epochs and ``step`` steps.

        ``init`` before the first step, ``epoch`` after every completed epoch (due when
        ``epoch`` is a multiple of ``every_epochs``), ``step`` after every optimizer step
        (due when ``step`` is a multiple of ``every_steps`` or one of ``at_steps``), ``end``
        after training.
        At the last epoch, ``epoch`` and ``end`` may both be due; the loop decides whether
        to run twice.
        """
        if phase == "init":
            return self.at_init
        if phase == "end":
            return self.at_end
        if phase == "epoch":
            return self.every_epochs > 0 and epoch % self.every_epochs == 0
        if phase == "step":
            return (self.every_steps > 0 and step % self.every_steps == 0) or (
                step in self.at_steps
            )
        raise ValueError(f"unknown probe phase {phase!r}; valid phases: {', '.join(PHASES)}")


def _count(where: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {key!r} must be an integer >= 0 (0 = never); got {value!r}")
    return value


def _steps(where: str, value: object) -> tuple[int, ...]:
    """``at_steps``: increasing optimizer step counts >= 1 (step 0 is ``at_init``)."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(step, int) and not isinstance(step, bool) and step >= 1 for step in value
    ):
        raise ValueError(
            f"{where}: 'at_steps' must be a list of optimizer steps >= 1 (step 0 is "
            f"at_init); got {value!r}"
        )
    if any(later <= earlier for earlier, later in zip(value, value[1:], strict=False)):
        raise ValueError(f"{where}: 'at_steps' must increase; got {list(value)!r}")
    return tuple(value)


def _flag(where: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key!r} must be true or false; got {value!r}")
    return value


def parse_probe_entry(entry: object, position: int = 0) -> ProbeEntry:
    """One ``probes:`` list item as a :class:`ProbeEntry` (the probe is built to check it)."""
    where = f"probes[{position}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where} = {entry!r} must be a probe name or a mapping with keys "
            f"{', '.join(ENTRY_KEYS)}"
        )
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
            f"{', '.join(ENTRY_KEYS)}"
        )
    if "name" not in entry:
        raise ValueError(
            f"{where} = {dict(entry)!r} has no 'name'; valid probes: {', '.join(sorted(PROBES))}"
        )
    name = entry["name"]
    if not isinstance(name, str) or name not in PROBES:
        raise ValueError(
            f"{where}: unknown probe {name!r}; valid probes: {', '.join(sorted(PROBES))}"
        )
    options = entry.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{where}: 'options' must be a mapping; got {options!r}")
    label = entry.get("label", name)
    if not isinstance(label, str) or not label:
        raise ValueError(f"{where}: 'label' must be a non-empty string; got {label!r}")
    default_every = 0 if PROBES[name].expensive else 1
    parsed = ProbeEntry(
        name=name,
        every_epochs=_count(where, "every_epochs", entry.get("every_epochs", default_every)),
        every_steps=_count(where, "every_steps", entry.get("every_steps", 0)),
        at_steps=_steps(where, entry.get("at_steps", [])),
        at_init=_flag(where, "at_init", entry.get("at_init", True)),
        at_end=_flag(where, "at_end", entry.get("at_end", True)),
        options=dict(options),
        label=label,
    )
    try:
        parsed.build()
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return parsed


def parse_probe_entries(entries: object) -> list[ProbeEntry]:
    """The config's ``probes:`` list, validated; errors name the entry, key and valid values."""
    if entries is None:
        return []
    if not isinstance(entries, (list, tuple)):
        raise ValueError(
            f"'probes' must be a list of probe names or mappings; got {entries!r} "
            f"(valid probes: {', '.join(sorted(PROBES))})"
        )
    parsed = [parse_probe_entry(entry, i) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for i, entry in enumerate(parsed):
        if entry.label in seen:
            raise ValueError(
                f"probes[{i}]: label {entry.label!r} is used twice; give one of the entries "
                f"a different 'label'"
            )
        seen.add(entry.label)
    return parsed


def samples_needed(entries: list[ProbeEntry], config: dict, minimum: int = 0) -> int:
    """Size of the probe data subset the cell must provide: the most any entry uses."""
    return max([minimum] + [entry.build().samples_needed(config) for entry in entries])
