"""Which executor Snakemake was asked to run this workflow with.

Snakemake decides the executor after it has parsed the Snakefile, and a dry run replaces
it with its own ``dryrun`` executor; but the workflow must plan differently for SLURM
(GPUs, time limits, partitions) at parse time, and a dry run must show what the real run
will submit. So the command line is read again with Snakemake's own parser, profiles
included, exactly as Snakemake read it. The decision is passed to the jobs Snakemake
starts (on SLURM nodes, or as subprocesses) in ``NORMSTUDY_EXECUTOR``, so that they plan
their resources the same way as the process that submitted them.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV = "NORMSTUDY_EXECUTOR"
GROUPS_ENV = "NORMSTUDY_GROUPED_RULES"
SLURM_EXECUTORS = ("slurm", "slurm-jobstep")


@dataclass(frozen=True)
class Invocation:
    """What the ``snakemake`` command line (and its profiles) asked for."""

    executor: str
    default_resources: Mapping[str, str] = field(default_factory=dict)
    status_command: str | None = None
    """``slurm-status-command`` as given (None: the SLURM plugin's own choice)."""
    grouped_rules: frozenset[str] = frozenset()
    """Rules that ``--groups`` puts in a group (Snakemake sets its own group settings only
    after the Snakefile is parsed)."""
    groups: Mapping[str, str] = field(default_factory=dict)
    """Rule -> its group, as ``--groups`` gave it (read in the process the user started)."""
    group_components: Mapping[str, int] = field(default_factory=dict)
    """Group -> ``--group-components``: how many of its rules' jobs one bundle holds."""
    targets: tuple[str, ...] = ()
    """The targets given on the command line (empty: the default target)."""

    def target_studies(self, prefix: str = "study_") -> list[str] | None:
        """The studies the targets ask for when every target is a ``study_<name>`` rule;
        None when any other target (or the default one) may need cells of every study."""
        if not self.targets or not all(t.startswith(prefix) for t in self.targets):
            return None
        return [t.removeprefix(prefix) for t in self.targets]

    def unknown_component_groups(self) -> list[str]:
        """``--group-components`` groups that no ``--groups`` entry names (Snakemake
        accepts them and bundles nothing by them)."""
        return sorted(set(self.group_components) - set(self.groups.values()))

    def bundle_size(self, rule: str) -> int:
        """Jobs of ``rule`` per bundle: its group's ``--group-components``, 1 for a group
        without it (Snakemake then bundles only jobs connected in the DAG, and no two
        jobs of one rule here are) or for a rule in no group."""
        group = self.groups.get(rule)
        return int(self.group_components.get(group, 1)) if group is not None else 1

    @property
    def slurm(self) -> bool:
        return self.executor in SLURM_EXECUTORS


def resource_values(resources) -> dict[str, str]:
    """Name -> value as written, of the ``default-resources`` Snakemake parsed (its
    ``Resources``: each entry keeps the text it was given as ``raw``)."""
    if resources is None:
        return {}
    raws = {name: getattr(resources[name], "raw", None) for name in resources.keys()}
    return {name: str(raw).strip("'\"") for name, raw in raws.items() if raw is not None}


def command_line_invocation(argv: Sequence[str]) -> Invocation:
    """The executor and default resources of a ``snakemake`` command line, read with
    Snakemake's parser (so ``--profile`` and the workflow profile count as they do)."""
    from snakemake.cli import parse_args

    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            _, args = parse_args(list(argv))
    except SystemExit as exit:
        raise RuntimeError(
            "cannot read the snakemake command line to tell the executor: "
            f"{messages.getvalue().strip() or exit}"
        ) from None
    status = getattr(args, "slurm_status_command", None)
    groups = getattr(args, "groups", None)
    groups = dict(groups) if isinstance(groups, Mapping) else {}
    components = getattr(args, "group_components", None)
    return Invocation(
        executor=args.executor or "local",
        default_resources=resource_values(args.default_resources),
        status_command=status if isinstance(status, str) else None,
        grouped_rules=frozenset(groups),
        groups=groups,
        group_components=dict(components) if isinstance(components, Mapping) else {},
        targets=tuple(getattr(args, "targets", None) or ()),
    )


def current_invocation(
    argv: Sequence[str], main_process: bool, environ: MutableMapping[str, str] = os.environ
) -> Invocation:
    """The invocation of the running Snakemake: read from ``argv`` in the process the user
    started (``main_process``, and recorded in ``environ`` for the jobs it starts), from
    ``environ`` in those jobs. Snakemake driven through its Python API (no ``snakemake``
    command line) counts as local execution."""
    if not main_process:
        grouped = frozenset(filter(None, environ.get(GROUPS_ENV, "").split(",")))
        return Invocation(executor=environ.get(ENV, "local"), grouped_rules=grouped)
    program = Path(argv[0]).name if argv else ""
    invoked = program == "snakemake" or argv[0].endswith(os.path.join("snakemake", "__main__.py"))
    invocation = command_line_invocation(argv[1:]) if invoked else Invocation("local")
    environ[ENV] = "slurm" if invocation.slurm else invocation.executor
    environ[GROUPS_ENV] = ",".join(sorted(invocation.grouped_rules))
    return invocation
