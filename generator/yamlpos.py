"""YAML loading that remembers where every value came from.

`load(path)` returns plain Python data plus a `Positions` table mapping each
key path (a tuple of keys and list indexes) to the 1-based line and column of
its value and of its key. Validation errors are then reported at the exact
place in the user's file, as ESPHome and RenderCV do.

Plain YAML only, and bounded. Anchors, aliases and merge keys (`<<: *base`) work;
a merged value keeps the position where it is written. A custom tag (`!secret`),
a recursive alias, more than MAX_NODES values once aliases are expanded (a
"billion laughs" file) and more than MAX_DEPTH levels of nesting are errors at
their line, found before anything is expanded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.composer import Composer

from .errors import Problem, SpecError

Loc = tuple  # a path of str keys and int indexes

MAX_NODES = 100_000  # keys and values once aliases are expanded; a spec has a few hundred
MAX_DEPTH = 64  # levels of nesting; a spec has about five


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


@dataclass(frozen=True)
class _Alias:
    """An alias as written (`*base`): the node it names, and where the alias itself stands."""

    node: yaml.Node
    anchor: str
    start_mark: yaml.Mark


class _Refused(Exception):
    """Input this loader will not read, at a node, event or alias; `loads` reports it."""

    def __init__(self, at, message: str):
        super().__init__(message)
        self.at, self.message = at, message


def _mark(node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _target(node):
    return node.node if isinstance(node, _Alias) else node


_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAG = {yaml.MappingNode: "tag:yaml.org,2002:map",
                   yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _tag_name(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader), Composer):
    """SafeLoader (libyaml's parser when present) with YAML 1.2 booleans and a guarded composer.

    YAML 1.1 reads yes/no/on/off as booleans, which turns a keyword list such as
    `[yes, no, up, down]` into `[True, False, 'up', 'down']`.

    PyYAML's composer turns an alias into the very node it names, which loses the alias's
    line and makes a recursive alias a cyclic graph; libyaml's composer recurses in C and
    crashes the interpreter on deep nesting. This one keeps each alias as an `_Alias`,
    stops at MAX_DEPTH and refuses tags that no safe constructor reads, as it goes.
    """

    def get_single_node(self):
        self.anchors, self._depth = {}, 0
        return Composer.get_single_node(self)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            return _Alias(Composer.compose_node(self, parent, index), event.anchor,
                          event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(self.peek_event(), f"values nest more than {MAX_DEPTH} levels deep; "
                                              f"a spec needs a few")
        self._depth += 1
        try:
            node = Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1
        wanted = _COLLECTION_TAG.get(type(node))
        if (node.tag != wanted) if wanted else (
                node.tag != _MERGE and node.tag not in self.yaml_constructors):
            raise _Refused(node, f"tag '{_tag_name(node.tag)}' is not supported: a spec is plain "
                                 f"YAML (anchors, aliases and '<<' merges work); remove the tag "
                                 f"and write the value itself")
        return node


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _check_expansion(root) -> None:
    """Refuse, at the alias responsible, a recursive alias or an expansion beyond MAX_NODES
    values or MAX_DEPTH levels. Each anchored value is measured once, so a file that would
    expand to billions of values is refused in about a millisecond, before anything is
    expanded."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) once expanded
    open_nodes: set[int] = set()  # being measured: an alias to one of these is recursive

    def measure(node, alias: _Alias, level: int) -> tuple[int, int]:
        if isinstance(node, _Alias):
            if id(node.node) in open_nodes:
                raise _Refused(node, f"alias *{node.anchor} is inside the value it names (a "
                                     f"recursive alias), so it never ends; write that value out")
            node = node.node
        if id(node) not in measured:
            if level > MAX_DEPTH:  # also bounds this recursion
                raise _Refused(alias, _too_deep(alias))
            open_nodes.add(id(node))
            count, levels = 1, 1
            for child in _children(node):
                c, lv = measure(child, alias, level + 1)
                count, levels = count + c, max(levels, lv + 1)
            open_nodes.discard(id(node))
            measured[id(node)] = (count, levels)
        return measured[id(node)]

    total = 0

    def visit(node, level: int) -> None:  # the file as written: aliases not entered
        nonlocal total
        if isinstance(node, _Alias):
            count, levels = measure(node, node, 1)
            total += count
            if total > MAX_NODES:
                raise _Refused(node, f"alias *{node.anchor} expands the file to more than "
                                     f"{MAX_NODES:,} values (aliases of aliases multiply, as in "
                                     f"a 'billion laughs' file); a spec needs a few hundred: "
                                     f"write the values out")
            if level + levels - 1 > MAX_DEPTH:
                raise _Refused(node, _too_deep(node))
            return
        total += 1
        if total > MAX_NODES:
            raise _Refused(node, f"more than {MAX_NODES:,} values; a spec needs a few hundred")
        for child in _children(node):
            visit(child, level + 1)

    visit(root, 1)


def _too_deep(alias: _Alias) -> str:
    return (f"alias *{alias.anchor} nests values more than {MAX_DEPTH} levels deep; "
            f"a spec needs a few")


def _scalar(node: yaml.ScalarNode, path: str, loader: _Loader):
    if node.tag == _MERGE:  # '<<' anywhere but as a key is just text
        return node.value
    try:
        return loader.construct_object(node, deep=True)
    except Exception:  # noqa: BLE001 - an explicit tag on text it cannot read: the user's typo
        raise SpecError(Problem(path, *_mark(node), f"cannot read '{node.value}' as "
                                                     f"{_tag_name(node.tag)}")) from None


def _key(key_node, path: str, loader: _Loader) -> str:
    node = _target(key_node)
    if not isinstance(node, yaml.ScalarNode):  # not constructed: it may hold any number of aliases
        raise SpecError(Problem(path, *_mark(key_node), "a key must be a string, not a mapping "
                                                        "or a list"))
    key = _scalar(node, path, loader)
    if not isinstance(key, str):
        raise SpecError(Problem(path, *_mark(key_node), f"key {key!r} must be a string"))
    return key


def _pairs(node: yaml.MappingNode, path: str, loader: _Loader) -> list[tuple[str, object, object]]:
    """The mapping's (key, key node, value node) with its `<<` merges applied: a key written
    in the mapping wins over a merged one, and of several merged mappings the first wins."""
    own: dict[str, tuple] = {}
    merged: dict[str, tuple] = {}
    merge_seen = False
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE:
            if merge_seen:
                raise SpecError(Problem(path, *_mark(key_node),
                                        "duplicate key '<<': merge several mappings with one "
                                        "list, <<: [*first, *second]"))
            merge_seen = True
            sources = _target(value_node)
            sources = sources.value if isinstance(sources, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(_target(source), yaml.MappingNode):
                    raise SpecError(Problem(path, *_mark(source),
                                            "'<<' merges mappings: give an alias of a mapping "
                                            "(<<: *base) or a list of them"))
                for key, k_node, v_node in _pairs(_target(source), path, loader):
                    merged.setdefault(key, (k_node, v_node))
            continue
        key = _key(key_node, path, loader)
        if key in own:
            raise SpecError(Problem(path, *_mark(key_node),
                                    f"duplicate key '{key}': remove one of the two"))
        own[key] = (key_node, value_node)
    return [(key, *nodes) for key, nodes in {**merged, **own}.items()]


def _walk(node, loc: Loc, pos: Positions, loader: _Loader):
    pos.values[loc] = _mark(node)  # an alias's own place; what it names keeps its places
    node = _target(node)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key, key_node, value_node in _pairs(node, pos.path, loader):
            pos.keys[loc + (key,)] = _mark(key_node)
            out[key] = _walk(value_node, loc + (key,), pos, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loc + (i,), pos, loader) for i, item in enumerate(node.value)]
    return _scalar(node, pos.path, loader)


def _syntax_problem(exc: yaml.MarkedYAMLError, path: str) -> Problem:
    mark = exc.problem_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    context = exc.context or ""
    if context.startswith("found duplicate anchor") and exc.context_mark:
        return Problem(path, line, col, f"anchor defined twice (first at line "
                                        f"{exc.context_mark.line + 1}); rename one")
    if context.startswith("expected a single document"):
        return Problem(path, line, col, "a second YAML document starts here; a spec is one "
                                        "document: remove the '---' or the rest")
    return Problem(path, line, col, f"YAML syntax error: {exc.problem}")


def loads(text: str, path: str) -> tuple[object, Positions]:
    """Parse YAML text; `path` is used only in messages."""
    pos = Positions(path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node)
    except _Refused as exc:
        raise SpecError(Problem(path, *_mark(exc.at), exc.message)) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError(_syntax_problem(exc, path)) from None
    except yaml.reader.ReaderError as exc:  # a control character: libyaml gives an offset
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SpecError(Problem(path, line, col, f"character U+{code:04X} is not allowed in "
                                                 f"YAML ({exc.reason})")) from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError(Problem(path, 0, 0, "the file is empty: a spec is a YAML mapping"))
    return _walk(node, (), pos, loader), pos


def read_text(path: str | Path, display: str | None = None) -> str:
    """A YAML file's text; a missing file, a folder or an unreadable file is a SpecError."""
    path = Path(path)
    name = display or str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Problem(name, 0, 0, "no such file")) from None
    except IsADirectoryError:
        raise SpecError(Problem(name, 0, 0, "is a folder; give the YAML file itself")) from None
    except UnicodeDecodeError as exc:
        raise SpecError(Problem(name, 0, 0, f"not UTF-8 text ({exc.reason})")) from None
    except OSError as exc:
        raise SpecError(Problem(name, 0, 0, f"cannot be read: {exc.strerror}")) from None


def load(path: str | Path, display: str | None = None) -> tuple[object, Positions]:
    """Read and parse a YAML file, naming it `display` (default: the path) in messages."""
    return loads(read_text(path, display), display or str(path))
