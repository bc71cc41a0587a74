"""Checks of raw input that YAML and JSON Schema let through. Imports no torch.

* A key given twice in one mapping (YAML keeps the last one silently: a study pasted twice
  under the same name would replace the first without a word).
* YAML aliases that expand to a huge document (an "alias bomb": a few lines that expand to
  billions of nodes when serialized, validated or printed).
* Numbers that are not finite (``.nan``, ``.inf``) or absurdly large anywhere in a config;
  JSON cannot hold them and no hyperparameter means them (an Lp normalizer's infinite
  ``p`` is written as the text ``inf``).

Every check raises :class:`InputError` with one line per problem naming the file, the line
and the key.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

MAX_NODES = 200_000
"""Largest number of YAML nodes a config may expand to (config.yaml has about 1,500)."""
MAX_MAGNITUDE = 1e15
"""Largest absolute value of any number in a config (seeds included)."""


class InputError(ValueError):
    """Input that cannot be used; the message names where and why (one line per problem)."""


def _key_text(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def _where(source: str, node: yaml.Node) -> str:
    return f"{source}, line {node.start_mark.line + 1}"


def check_yaml_nodes(root: yaml.Node | None, source: str, max_nodes: int = MAX_NODES) -> None:
    """Refuse duplicate keys and documents that expand beyond ``max_nodes`` nodes.

    Works on the composed node graph, where an alias is a second reference to one node:
    the expanded size is counted with one visit per distinct node, so an alias bomb is
    measured in microseconds instead of being expanded.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    errors: list[str] = []
    visiting: set[int] = set()

    def size(node: yaml.Node, path: str) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in visiting:  # a recursive alias: infinite
            errors.append(f"{_where(source, node)}: {path or 'the document'} refers to itself")
            return max_nodes + 1
        visiting.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                name = _key_text(key)
                if isinstance(key, yaml.ScalarNode) and (key.tag, name) in first:
                    earlier = first[(key.tag, name)].start_mark.line + 1
                    inside = f" in {path}" if path else " at the top level"
                    errors.append(
                        f"{_where(source, key)}: key {name!r} is given twice{inside} (first on "
                        f"line {earlier}); YAML would silently keep only the last: rename or "
                        "merge them"
                    )
                else:
                    first[(key.tag, name)] = key
                total += size(key, path) + size(value, f"{path}.{name}" if path else name)
                if total > max_nodes:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += size(item, f"{path}[{index}]")
                if total > max_nodes:
                    break
        visiting.discard(id(node))
        sizes[id(node)] = total
        return total

    total = size(root, "")
    if total > max_nodes and not errors:
        errors.append(
            f"{source}: the document expands to more than {max_nodes:,} YAML nodes (through "
            "aliases, '*name'); a config is a few thousand: refusing to expand it"
        )
    if errors:
        raise InputError("\n".join(errors[:20]))


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and alias bombs (see the module doc)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise InputError(f"{source} is not valid YAML/JSON: {error}") from None
    check_yaml_nodes(root, source)
    return yaml.safe_load(text)


def check_yaml_file(path: str | Path) -> None:
    """Refuse duplicate keys and alias bombs in the YAML (or JSON) file ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    load_yaml(text, str(path))


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, f"[{index}]"))
    else:
        yield path, value


def number_errors(config: Any, *, prefix: str = "") -> list[str]:
    """Every non-finite or absurdly large number in ``config``, by its dotted key."""
    errors = []
    for path, value in _walk(config, ()):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        key = ".".join(path).replace(".[", "[") or "(value)"
        if isinstance(value, float) and math.isnan(value):
            problem = "is not a number (nan)"
        elif math.isinf(value):
            problem = "is infinite"
            if path and path[-1] in ("p", "norm_options.p") or path[-2:-1] == ("norm_options.p",):
                problem += " (an Lp norm of infinite order is written p: inf, as text)"
        elif abs(value) > MAX_MAGNITUDE:
            problem = f"is absurdly large (the limit is ±{MAX_MAGNITUDE:g})"
        else:
            continue
        errors.append(f"{prefix}key {key!r} = {value!r} {problem}; give a finite number")
    return errors


def check_workflow_config(paths: list, config: Mapping[str, Any]) -> None:
    """The checks above for the workflow's config files and its merged config."""
    for path in paths:
        if Path(path).is_file():
            check_yaml_file(path)
    errors = number_errors(config, prefix="config ")
    if errors:
        raise InputError("\n".join(errors[:20]))


EXIT_BAD_INPUT = 2


def refuse(message: str, heading: str = "invalid config") -> None:
    """End the workflow's planning with ``message`` and exit status 2, without a traceback
    (Snakemake would print a WorkflowError with the workflow's file and line)."""
    import sys

    print(f"normstudy: {heading}:\n{message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)


def describe_schema_error(error: BaseException) -> str:
    """One line for a config that fails ``workflow/schemas/config.schema.yaml``: the key,
    the value (shortened) and what the schema wants, instead of jsonschema's dump of both."""
    import jsonschema

    candidates = [*getattr(error, "args", ()), error.__cause__, error.__context__]
    found = [arg for arg in candidates if isinstance(arg, jsonschema.ValidationError)]
    if not found:
        return str(error)
    cause = jsonschema.exceptions.best_match([found[0]])
    key = ".".join(str(part) for part in cause.absolute_path) or "(top level)"
    message = cause.message if len(cause.message) <= 300 else cause.message[:300] + " ..."
    hint = ""
    if isinstance(cause.instance, str) and cause.instance.lower() in ("true", "false"):
        # Snakemake's --config reads only True and False as booleans; true is a string.
        word = cause.instance.capitalize()
        hint = f"; on the command line Snakemake reads booleans as True/False: {key}={word}"
    return f"config key {key!r}: {message} (workflow/schemas/config.schema.yaml){hint}"
