"""Turn pydantic validation errors into `file:line:col: message` problems.

pydantic reports an error at a `loc` made of field names, list indexes and,
inside discriminated unions, the tag of the chosen member. The data the user
wrote has no tags, so `data_loc` walks the model types alongside the loc to
recover the path in the YAML, and from it the line and column.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem, SpecError
from .yamlpos import Positions


def unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the interesting type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _union_members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
    return []


def _tag_member(members: list[Any], tag: Any) -> type[BaseModel] | None:
    """The union member whose Literal discriminator field has the value `tag`."""
    for m in members:
        if isinstance(m, type) and issubclass(m, BaseModel):
            for f in m.model_fields.values():
                ann = unwrap(f.annotation)
                if typing.get_origin(ann) is typing.Literal and tag in typing.get_args(ann):
                    return m
    return None


def data_loc(root: type[BaseModel], loc: tuple) -> tuple[tuple, type[BaseModel] | None]:
    """Map a pydantic loc to (path in the user's data, model class owning the last key)."""
    out: list = []
    tp: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        tp = unwrap(tp)
        members = _union_members(tp)
        if members:
            chosen = _tag_member(members, part)
            if chosen is not None:
                tp = chosen
                continue
            if isinstance(part, str) and not any(
                isinstance(m, type) and issubclass(m, BaseModel) and part in m.model_fields
                for m in members
            ):
                continue  # a branch name such as 'int' or "literal['auto']"
            tp = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            out.append(part)
            field = tp.model_fields.get(part)
            tp = field.annotation if field else Any
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple) and isinstance(part, int):
            out.append(part)
            args = typing.get_args(tp)
            tp = args[0] if args else Any
            continue
        if origin is dict:
            out.append(part)
            tp = typing.get_args(tp)[1]
            continue
        if isinstance(part, str) and "[" in part or part in ("int", "float", "str", "bool"):
            continue  # union branch label for scalars
        out.append(part)
    return tuple(out), owner


def error_message(err: dict, key: Any, owner: type[BaseModel] | None) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        return f"missing required key '{key}'"
    if kind == "extra_forbidden":
        names = sorted(owner.model_fields) if owner else []
        hint = difflib.get_close_matches(str(key), names, n=1)
        if hint:
            return f"unknown key '{key}' (did you mean '{hint[0]}'?)"
        return f"unknown key '{key}'; allowed keys: {', '.join(names)}"
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        return f"'{value}' is not allowed here; expected {expected}"
    if kind == "union_tag_invalid":
        ctx = err["ctx"]
        field = str(ctx["discriminator"]).strip("'")
        hint = difflib.get_close_matches(str(ctx["tag"]), [t.strip(" '") for t in
                                         str(ctx["expected_tags"]).split(",")], n=1)
        guess = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown {field} '{ctx['tag']}'{guess}; choose one of {ctx['expected_tags']}"
    if kind == "union_tag_not_found":
        return f"missing required key {err['ctx'].get('discriminator')}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    if kind not in ("value_error", "assertion_error") and not isinstance(value, (dict, list)):
        msg = f"{msg[0].lower()}{msg[1:]}, got {value!r}"
    return msg


_EXPECTED = {"int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
             "float_parsing": "a number", "float_type": "a number", "string_type": "a string",
             "bool_parsing": "true or false", "bool_type": "true or false",
             "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}


def _expected(err: dict) -> str | None:
    """What a union branch wanted, in a few words, for merging branch errors."""
    if err["type"] == "literal_error":
        return err.get("ctx", {}).get("expected")
    return _EXPECTED.get(err["type"])


def problems_from(exc: ValidationError, root: type[BaseModel], pos: Positions,
                  prefix: tuple = ()) -> list[Problem]:
    """One problem per user-visible place; union branches at one place are merged."""
    by_place: dict[tuple, list[str]] = {}
    expectations: dict[tuple, list[str | None]] = {}
    inputs: dict[tuple, Any] = {}
    at_key: dict[tuple, bool] = {}
    for err in exc.errors(include_url=False):
        where, owner = data_loc(root, tuple(err["loc"]))
        where = prefix + where
        key = where[-1] if where else ""
        msg = error_message(err, key, owner)
        place = where[:-1] if err["type"] == "missing" else where
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            place = where + (str(err["ctx"]["discriminator"]).strip("'"),)
            if err["type"] == "union_tag_not_found":
                place = where
        elif err["type"] == "value_error" and isinstance(err.get("input"), dict):
            # A model-level check names the field to fix first ("hysteresis (0.7) must ...");
            # point at that field rather than at the start of the section.
            first = msg.replace(":", " ").replace("(", " ").split()[0] if msg else ""
            if first in err["input"]:
                place = where + (first,)
        at_key[place] = err["type"] == "extra_forbidden"
        if msg not in by_place.setdefault(place, []):
            by_place[place].append(msg)
            expectations.setdefault(place, []).append(_expected(err))
            inputs[place] = err.get("input")
    out = []
    for place, msgs in by_place.items():
        wanted = expectations[place]
        if len(msgs) > 1 and all(wanted):
            text = f"{inputs[place]!r} is not valid here; expected {' or '.join(wanted)}"
        else:
            text = "; ".join(msgs)
        out.append(pos.problem(place, text, at_key=at_key[place]))
    return out


def validate(root: type[BaseModel], data: Any, pos: Positions, context: dict | None = None):
    """Validate `data` as `root`, raising SpecError with positions on failure."""
    try:
        return root.model_validate(data, context=context)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, root, pos)) from None
