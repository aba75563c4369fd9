"""Locations in a composed YAML document, and errors that name file, line and key.

Pydantic reports errors as paths (``('enterprises', 0, 'devices')``); PyYAML's node
tree knows where every key starts.  These helpers join the two so that every YAML file
the service reads (the registry, the routing file) can name the line a person has to
edit, with the same wording: compose, look for duplicate keys (which PyYAML would
silently overwrite), validate with a pydantic model, and map each error back to a line.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]
"""A location in the document: mapping keys and sequence indices, outermost first."""


class LocatedError(Exception):
    """A problem in an input file, located as precisely as the input allows.

    ``str(err)`` is ``"{file}:{line}: {key}: {message}"`` with missing parts left out.
    When a file has several problems the exception describes the first by line and
    :attr:`errors` holds all of them (each of the same class), so a CLI or the API can
    show the full list in one round trip.  Each kind of file subclasses it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str = "<string>",
        line: int | None = None,
        key: str | None = None,
        errors: Sequence[LocatedError] | None = None,
    ) -> None:
        self.file = file
        self.line = line
        """1-based line in ``file``; ``None`` when the problem has no single line."""
        self.key = key
        """Key path such as ``enterprises[0].devices[1].points.dp.hihg``."""
        self.message = message
        self.errors: list[LocatedError] = list(errors) if errors else [self]
        super().__init__(str(self))

    def __str__(self) -> str:
        head = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [head] if self.key is None else [head, self.key]
        return ": ".join([*parts, self.message])

    def report(self) -> str:
        """All problems, one per line, in line order."""
        return "\n".join(str(error) for error in self.errors)


E = TypeVar("E", bound=LocatedError)


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def locate(root: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the key (or sequence item) at ``loc``; the deepest one found.

    For a mapping key the line is the key's own, for a sequence item the line where the
    item starts.  Where ``loc`` leaves the document (a key pydantic invented), the line
    of the last part that exists is the best answer.
    """
    if root is None:
        return None
    node, line = root, line_of(root)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            # Compare as YAML text (``1:`` is the key 1); the last duplicate wins, as in
            # the constructed data.
            matches = [
                (k, v)
                for k, v in node.value
                if isinstance(k, yaml.ScalarNode) and k.value == str(part)
            ]
            if not matches:
                break
            key_node, node = matches[-1]
            line = line_of(key_node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = line_of(node)
        else:
            break
    return line


def key_path(loc: Loc) -> str:
    """``('enterprises', 0, 'devices')`` -> ``'enterprises[0].devices'``.

    >>> key_path(("enterprises", 0, "devices", 1, "points", "dp", "hihg"))
    'enterprises[0].devices[1].points.dp.hihg'
    """
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# --- reading ----------------------------------------------------------------------------


def read_text(path: str | os.PathLike[str], error: type[E]) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped), or ``error`` saying why not."""
    source = os.fspath(path)
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise error("file not found", file=source) from exc
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 text (byte offset {exc.start})", file=source) from exc
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", file=source) from exc


def parse_yaml(text: str, source: str, error: type[E]) -> tuple[yaml.Node | None, object, list[E]]:
    """Compose the node tree, find duplicate keys, then construct plain Python data.

    Duplicate keys are looked for before construction, which merges ``<<`` keys into
    their mappings in place and would make legitimate overrides look like duplicates.
    Raises ``error`` for a syntax error.
    """
    # libyaml's loader builds the same node tree (with marks) about 3x faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None, []
        duplicates = duplicate_keys(root, source, error)
        return root, loader.construct_document(root), duplicates
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source, error) from exc
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", file=source) from exc
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, source: str, error: type[E]) -> E:
    """``invalid YAML: while parsing a flow sequence started at line 1: expected ','...``"""
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        where = ""
        if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
            where = f" started at line {exc.context_mark.line + 1}"
        message = f"{exc.context}{where}: {exc.problem}"
    line = None if mark is None else mark.line + 1
    return error(f"invalid YAML: {message}", file=source, line=line)


def duplicate_keys(root: yaml.Node, source: str, error: type[E]) -> list[E]:
    """Every key repeated within one mapping; PyYAML would keep the last silently."""
    problems: list[E] = []
    seen_nodes: set[int] = set()  # aliases may share (or even contain) a node

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                if key in first_line:
                    problems.append(
                        error(
                            f"duplicate key (first defined at line {first_line[key]})",
                            file=source,
                            line=line_of(key_node),
                            key=key_path((*loc, key)),
                        )
                    )
                else:
                    first_line[key] = line_of(key_node)
                walk(value_node, (*loc, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))

    walk(root, ())
    return problems


def raise_all(problems: Sequence[E], cause: BaseException | None = None) -> NoReturn:
    """Raise the first problem by line, carrying all of them in ``errors``."""
    ordered = sorted(problems, key=lambda p: 0 if p.line is None else p.line)
    first = ordered[0]
    raise type(first)(
        first.message, file=first.file, line=first.line, key=first.key, errors=ordered
    ) from cause


# --- pydantic errors -> file, line, key -------------------------------------------------


def from_pydantic(
    details: ErrorDetails,
    root: yaml.Node | None,
    source: str,
    model: type[BaseModel],
    error: type[E],
) -> E:
    """One pydantic error of validating ``model`` as ``error`` with file, line and key.

    Tags of discriminated unions (``channels[0].dingtalk.url``) are not YAML keys and
    are left out of the key path (``channels[0].url``).
    """
    raw: Loc = tuple(details["loc"])
    is_key_error = bool(raw) and raw[-1] == "[key]"  # a dict key (point name) is invalid
    if is_key_error:
        raw = raw[:-1]
    loc, _ = _walk_model(model, raw)
    kind = details["type"]
    ctx = details.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # The tag key (``type``) is what is wrong or missing: name it.
        loc = (*loc, str(ctx.get("discriminator", "type")).strip("'\""))
    # A missing key has no line of its own: point at the mapping that lacks it.
    missing = kind in ("missing", "union_tag_not_found")
    line = locate(root, loc[:-1] if missing else loc)
    message = _message(details, model, raw, loc)
    if is_key_error:
        message = f"invalid name: {message}"
    return error(message, file=source, line=line, key=key_path(loc) or None)


def _message(details: ErrorDetails, model: type[BaseModel], raw: Loc, loc: Loc) -> str:
    """pydantic's message, reworded where the YAML author needs a different hint."""
    kind = details["type"]
    value = details.get("input")
    ctx = details.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, raw[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
        if guess:
            return f"unknown key; did you mean {guess[0]!r}?"
        return ("unknown key; expected one of: " + ", ".join(allowed)) if allowed else "unknown key"
    if kind in ("missing", "union_tag_not_found"):
        return "missing required key"
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"unknown {loc[-1]} {ctx.get('tag')!r}; expected one of: {expected}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {_show(value)}"
    if kind == "string_type" and isinstance(value, int | float | bool | date):
        return f'expected text, got {_show(value)}; quote it in YAML, e.g. "{value}"'
    message = details["msg"].removeprefix("Value error, ")
    if kind == "value_error" or not _is_scalar(value):
        return message
    return f"{message} (got {_show(value)})"


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | date)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Keys the model at ``loc`` accepts (YAML spelling, e.g. ``from``), for hints."""
    _, node_type = _walk_model(model, loc)
    node_type = _unwrap(node_type)
    if isinstance(node_type, type) and issubclass(node_type, BaseModel):
        return [field.alias or name for name, field in node_type.model_fields.items()]
    return []


def _walk_model(model: type[BaseModel], loc: Loc) -> tuple[Loc, Any]:
    """``loc`` without union tags, and the annotation found at its end (``None`` once
    the path leaves the model)."""
    kept: list[str | int] = []
    node_type: Any = model
    for part in loc:
        member = _tagged_member(node_type, part)
        if member is not None:
            node_type = member
            continue
        kept.append(part)
        node_type = None if node_type is None else _child_type(node_type, part)
    return tuple(kept), node_type


def _tagged_member(annotation: Any, part: str | int) -> Any:
    """The member of a union of models whose ``Literal`` tag is ``part``, if any."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) not in (Union, types.UnionType) or not isinstance(part, str):
        return None
    for member in get_args(annotation):
        member = _unwrap(member)
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for field in member.model_fields.values():
            if get_origin(field.annotation) is Literal and part in get_args(field.annotation):
                return member
    return None


def _child_type(parent: Any, part: str | int) -> Any:
    parent = _unwrap(parent)
    if isinstance(parent, type) and issubclass(parent, BaseModel) and isinstance(part, str):
        for name, field in parent.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin, args = get_origin(parent), get_args(parent)
    if origin in (list, tuple) and isinstance(part, int) and args:
        return args[0]
    if origin is dict:
        return args[1]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
