"""Spec problems: one line each, naming the file, the YAML line, the field path and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class SpecError(Exception):
    """A cluster spec that cannot be used. `problems` holds one line per problem:
    "<file>:<line>: <field.path>: <what> — <fix>"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def field_path(loc: Sequence[str | int]) -> str:
    """("servers", 3, "roles", 0) -> "servers[3].roles[0]"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class LineMap:
    """Field path -> 1-based YAML line, from the line marks of PyYAML's composed nodes."""

    def __init__(self, lines: dict[Loc, int] | None = None) -> None:
        self.lines = lines or {}

    @classmethod
    def from_yaml(cls, node: Any) -> tuple[LineMap, list[tuple[Loc, int, str]]]:
        """Lines of every key and list item of a composed PyYAML node tree, and the
        duplicate keys found on the way as (path, line, key)."""
        lines: dict[Loc, int] = {}
        duplicates: list[tuple[Loc, int, str]] = []
        stack: list[tuple[Any, Loc]] = [(node, ())]
        while stack:
            current, loc = stack.pop()
            if isinstance(current, yaml.MappingNode):
                seen: set[str] = set()
                for key_node, value_node in current.value:
                    key = str(key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        duplicates.append(((*loc, key), line, key))
                    seen.add(key)
                    lines.setdefault((*loc, key), line)
                    stack.append((value_node, (*loc, key)))
            elif isinstance(current, yaml.SequenceNode):
                for i, item in enumerate(current.value):
                    lines[(*loc, i)] = item.start_mark.line + 1
                    stack.append((item, (*loc, i)))
        return cls(lines), duplicates

    def line(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest known prefix of `loc`."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None


class Problems:
    """Collects problems for one spec file; `raise_if_any()` turns them into a SpecError."""

    def __init__(self, path: Path | str, lines: LineMap | None = None) -> None:
        self.path = str(path)
        self.lines = lines or LineMap()
        self.items: list[str] = []

    def add(self, loc: Sequence[str | int], what: str, fix: str, line: int | None = None) -> None:
        line = line if line is not None else self.lines.line(loc)
        where = f"{self.path}:{line}" if line else self.path
        self.items.append(f"{where}: {field_path(loc)}: {what} — {fix}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)
