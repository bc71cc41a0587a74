"""Which paper-scale settings of ``config.yaml`` say where their value comes from.

Every value the paper-scale study uses must name its source (paper and section, table or
figure) or say it is the project's own choice and why, so that a reader can check the
study against the papers setting by setting. This reads the file as text, because YAML
parsers drop comments: a key is cited when its line ends with such a comment, or when a
comment line above it in the same paragraph (no blank line between) and inside the same
block cites, so that one comment can head a group of related keys.

Checked keys: each key of ``defaults:``, each grid axis and ``set:`` key of a study, and
a study's ``exclude:`` and ``when:`` lists; ``demo:`` blocks are not paper scale.
"""

from __future__ import annotations

import re

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.+-]*):(?:\s|$)")
TRAILING_COMMENT = re.compile(r"\s#\s*(?P<text>.*)$")
CITATION = re.compile(
    r"§|\btable\b|\bfigure\b|\bappendix\b|\babstract\b|our choice|et al|\(\d{4}\)|"
    r"\b(?:Frankle|G42|Morwani|Torri|Santurkar|Zagoruyko|He et al|Goyal)\b",
    re.IGNORECASE,
)
STUDY_BLOCKS = ("grid", "set")
STUDY_LISTS = ("exclude", "when")


def is_checked(path: list[str]) -> bool:
    """Whether the key at ``path`` (outermost first) is a paper-scale setting."""
    if "demo" in path:
        return False
    if len(path) == 2 and path[0] == "defaults":
        return True
    if len(path) == 3 and path[0] == "studies" and path[2] in STUDY_LISTS:
        return True
    return len(path) == 4 and path[0] == "studies" and path[2] in STUDY_BLOCKS


def cites(text: str) -> bool:
    return bool(CITATION.search(text))


def cited_above(lines: list[str], index: int, indent: int) -> bool:
    """A citing comment line above ``lines[index]`` in its paragraph and block."""
    for line in reversed(lines[:index]):
        stripped = line.strip()
        if not stripped:
            return False
        if stripped.startswith("#"):
            if cites(stripped.lstrip("#")):
                return True
            continue
        match = KEY_LINE.match(line)
        if match and len(match["indent"]) < indent:
            return False
    return False


def uncited_keys(text: str) -> list[str]:
    """``"line N: path.to.key"`` for every checked key without a citing comment."""
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    missing = []
    for index, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = [key for _, key in stack]
        if not is_checked(path):
            continue
        trailing = TRAILING_COMMENT.search(line)
        if trailing and cites(trailing["text"]):
            continue
        if not cited_above(lines, index, indent):
            missing.append(f"line {index + 1}: {'.'.join(path)}")
    return missing
