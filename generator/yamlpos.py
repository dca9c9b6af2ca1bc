"""YAML loading that remembers where every value came from.

`load(path)` returns plain Python data plus a `Positions` table mapping each
key path (a tuple of keys and list indexes) to the 1-based line and column of
its value and of its key. Validation errors are then reported at the exact
place in the user's file, as ESPHome and RenderCV do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import Problem, SpecError

Loc = tuple  # a path of str keys and int indexes


@dataclass
class Positions:
    path: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def of_value(self, loc: Loc) -> tuple[int, int]:
        """Line and column of the value at `loc`, or of its nearest ancestor."""
        loc = tuple(loc)
        while loc not in self.values and loc:
            loc = loc[:-1]
        return self.values.get(loc, (1, 1))

    def of_key(self, loc: Loc) -> tuple[int, int]:
        """Line and column of the key that names `loc` (its value for list items)."""
        loc = tuple(loc)
        if loc in self.keys:
            return self.keys[loc]
        return self.of_value(loc)

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.of_key(loc) if at_key else self.of_value(loc)
        return Problem(self.path, line, col, message)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans.

    YAML 1.1 reads yes/no/on/off as booleans, which turns a keyword list such as
    `[yes, no, up, down]` into `[True, False, 'up', 'down']`.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def _walk(node: yaml.Node, loc: Loc, pos: Positions, loader: _Loader):
    pos.values[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise SpecError(Problem(pos.path, *_mark(key_node), f"key {key!r} must be a string"))
            if key in out:
                raise SpecError(Problem(pos.path, *_mark(key_node),
                                        f"duplicate key '{key}': remove one of the two"))
            pos.keys[loc + (key,)] = _mark(key_node)
            out[key] = _walk(value_node, loc + (key,), pos, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loc + (i,), pos, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def loads(text: str, path: str) -> tuple[object, Positions]:
    """Parse YAML text; `path` is used only in messages."""
    pos = Positions(path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise SpecError(Problem(path, line, col, f"YAML syntax error: {exc.problem}")) from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError(Problem(path, 0, 0, "the file is empty: a spec is a YAML mapping"))
    return _walk(node, (), pos, loader), pos


def load(path: str | Path, display: str | None = None) -> tuple[object, Positions]:
    """Read and parse a YAML file, naming it `display` (default: the path) in messages."""
    path = Path(path)
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Problem(name, 0, 0, "no such file")) from None
    except UnicodeDecodeError as exc:
        raise SpecError(Problem(name, 0, 0, f"not UTF-8 text ({exc.reason})")) from None
    return loads(text, name)
