"""Read a registry YAML file into a :class:`Registry`, or say exactly what is wrong.

An integrator editing ``sites.yaml`` must be told the file, the line and the key of a
mistake (CONTRACT.md §2), e.g. ``sites.yaml:14: enterprises[0].devices[1].points.dp.hihg:
unknown key; did you mean 'hihi'?``.  PyYAML's composed node tree keeps the line of
every key and sequence item, so the loader composes first, checks what pydantic cannot
see (duplicate keys, which PyYAML silently overwrites; ids repeated across entries),
validates with the models, and maps each pydantic error location back to a line.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.registry.models import RegistrySpec
from gateway.registry.registry import Registry
from gateway.registry.yaml_paths import Loc, key_path, line_of, locate

__all__ = ["RegistryError", "load_registry", "load_registry_data", "load_registry_text"]



class RegistryError(Exception):
    """A registry that cannot be loaded, located as precisely as the input allows.

    ``str(err)`` is ``"{file}:{line}: {key}: {message}"`` with missing parts left out.
    When a file has several problems the exception describes the first by line and
    :attr:`errors` holds all of them (each a ``RegistryError`` itself), so a CLI or the
    API can show the full list in one round trip.

    >>> err = RegistryError("unknown key", file="sites.yaml", line=14, key="enterprises[0].x")
    >>> str(err)
    'sites.yaml:14: enterprises[0].x: unknown key'
    >>> str(RegistryError("file not found", file="missing.yaml"))
    'missing.yaml: file not found'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str = "<string>",
        line: int | None = None,
        key: str | None = None,
        errors: Sequence[RegistryError] | None = None,
    ) -> None:
        self.file = file
        self.line = line
        """1-based line in ``file``; ``None`` when the problem has no single line."""
        self.key = key
        """Key path such as ``enterprises[0].devices[1].points.dp.hihg``."""
        self.message = message
        self.errors: list[RegistryError] = list(errors) if errors else [self]
        super().__init__(str(self))

    def __str__(self) -> str:
        head = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [head] if self.key is None else [head, self.key]
        return ": ".join([*parts, self.message])

    def report(self) -> str:
        """All problems, one per line, in line order."""
        return "\n".join(str(error) for error in self.errors)


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Load and validate the registry file at ``path`` (UTF-8 YAML).

    Raises :class:`RegistryError` naming the file, line and key of the first problem.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise RegistryError("file not found", file=source) from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(f"not valid UTF-8 text (byte offset {exc.start})", file=source) from exc
    except OSError as exc:
        raise RegistryError(f"cannot read file: {exc.strerror or exc}", file=source) from exc
    return load_registry_text(text, source=source)


def load_registry_text(text: str, source: str = "<string>") -> Registry:
    """Load a registry from YAML text; ``source`` names it in error messages."""
    root, data, duplicates = _parse_yaml(text, source)
    if root is None:
        raise RegistryError(
            "registry is empty; expected a mapping with key 'enterprises'", file=source
        )
    if not isinstance(root, yaml.MappingNode):
        raise RegistryError(
            "expected a mapping with key 'enterprises' at the top level",
            file=source,
            line=line_of(root),
        )
    return _validate(data, root, source, duplicates)


def load_registry_data(data: object, source: str = "<data>") -> Registry:
    """Validate already-parsed data (e.g. a JSON body from the API) into a ``Registry``.

    Same checks as for a file, but errors carry key paths only, no line numbers.
    """
    return _validate(data, None, source, [])


def _parse_yaml(text: str, source: str) -> tuple[yaml.Node | None, object, list[RegistryError]]:
    """Compose the node tree, find duplicate keys, then construct plain Python data.

    Duplicate keys are looked for before construction, which merges ``<<`` keys into
    their mappings in place and would make legitimate overrides look like duplicates.
    """
    # libyaml's loader builds the same node tree (with marks) about 3x faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None, []
        duplicates = _duplicate_keys(root, source)
        return root, loader.construct_document(root), duplicates
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source) from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"invalid YAML: {exc}", file=source) from exc
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, source: str) -> RegistryError:
    """``invalid YAML: while parsing a flow sequence started at line 1: expected ','...``"""
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        where = ""
        if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
            where = f" started at line {exc.context_mark.line + 1}"
        message = f"{exc.context}{where}: {exc.problem}"
    line = None if mark is None else mark.line + 1
    return RegistryError(f"invalid YAML: {message}", file=source, line=line)


def _validate(
    data: object, root: yaml.Node | None, source: str, problems: list[RegistryError]
) -> Registry:
    """Validate with the models plus cross-entry id checks; raise all problems at once."""
    problems = [*problems, *_duplicate_ids(data, root, source)]
    try:
        spec = RegistrySpec.model_validate(data)
    except ValidationError as exc:
        _raise_all([*problems, *(_from_pydantic(e, root, source) for e in exc.errors())], exc)
    if problems:
        _raise_all(problems)
    try:
        return Registry(spec, source=source)
    except ValueError as exc:  # duplicate ids the checks above could not see
        raise RegistryError(str(exc), file=source) from exc


def _raise_all(problems: list[RegistryError], cause: Exception | None = None) -> NoReturn:
    """Raise the first problem by line, carrying all of them in ``errors``."""
    ordered = sorted(problems, key=lambda p: 0 if p.line is None else p.line)
    first = ordered[0]
    raise RegistryError(
        first.message, file=first.file, line=first.line, key=first.key, errors=ordered
    ) from cause


# --- duplicate keys and ids -------------------------------------------------------------


def _duplicate_keys(root: yaml.Node, source: str) -> list[RegistryError]:
    """Every key repeated within one mapping; PyYAML would keep the last silently."""
    problems: list[RegistryError] = []
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
                        RegistryError(
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


def _duplicate_ids(data: object, root: yaml.Node | None, source: str) -> list[RegistryError]:
    """Enterprise ids repeated, and device ids used twice anywhere in the registry.

    Works on the raw data so these are reported together with schema errors.
    """
    problems: list[RegistryError] = []
    enterprises = data.get("enterprises") if isinstance(data, dict) else None
    if not isinstance(enterprises, list):
        return problems
    enterprise_line: dict[str, int | None] = {}
    device_owner: dict[str, tuple[str, int | None]] = {}

    def report(loc: Loc, message: str) -> None:
        problems.append(
            RegistryError(message, file=source, line=locate(root, loc), key=key_path(loc))
        )

    for i, enterprise in enumerate(enterprises):
        if not isinstance(enterprise, dict):
            continue
        enterprise_id = _stripped(enterprise.get("id"))
        if enterprise_id is not None:
            loc: Loc = ("enterprises", i, "id")
            if enterprise_id in enterprise_line:
                first = enterprise_line[enterprise_id]
                report(loc, f"duplicate enterprise id {enterprise_id}{_at_line(first)}")
            else:
                enterprise_line[enterprise_id] = locate(root, loc)
        devices = enterprise.get("devices")
        if not isinstance(devices, list):
            continue
        for j, device in enumerate(devices):
            device_id = _stripped(device.get("id")) if isinstance(device, dict) else None
            if device_id is None:
                continue
            loc = ("enterprises", i, "devices", j, "id")
            if device_id in device_owner:
                owner, first = device_owner[device_id]
                report(
                    loc,
                    f"device {device_id} already belongs to enterprise {owner}{_at_line(first)}",
                )
            else:
                device_owner[device_id] = (enterprise_id or f"enterprises[{i}]", locate(root, loc))
    return problems


def _stripped(value: object) -> str | None:
    # The models strip whitespace from strings, so " DC1" and "DC1" are the same id.
    return value.strip() if isinstance(value, str) else None


def _at_line(line: int | None) -> str:
    return "" if line is None else f" (line {line})"


# --- pydantic errors -> file, line, key -------------------------------------------------


def _from_pydantic(error: ErrorDetails, root: yaml.Node | None, source: str) -> RegistryError:
    loc: Loc = tuple(error["loc"])
    is_key_error = bool(loc) and loc[-1] == "[key]"  # a dict key (point name) is invalid
    if is_key_error:
        loc = loc[:-1]
    # A missing key has no line of its own: point at the mapping that lacks it.
    line = locate(root, loc[:-1] if error["type"] == "missing" else loc)
    message = _message(error, loc)
    if is_key_error:
        message = f"invalid name: {message}"
    return RegistryError(message, file=source, line=line, key=key_path(loc) or None)


def _message(error: ErrorDetails, loc: Loc) -> str:
    """pydantic's message, reworded where the YAML author needs a different hint."""
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
        if guess:
            return f"unknown key; did you mean {guess[0]!r}?"
        return ("unknown key; expected one of: " + ", ".join(allowed)) if allowed else "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {_show(value)}"
    if kind == "string_type" and isinstance(value, int | float | bool | date):
        return f'expected text, got {_show(value)}; quote it in YAML, e.g. "{value}"'
    message = error["msg"].removeprefix("Value error, ")
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


def _allowed_keys(loc: Loc) -> list[str]:
    """Keys the model at ``loc`` accepts (YAML spelling, e.g. ``from``), for hints."""
    node_type: Any = RegistrySpec
    for part in loc:
        node_type = _child_type(node_type, part)
        if node_type is None:
            return []
    node_type = _unwrap(node_type)
    if isinstance(node_type, type) and issubclass(node_type, BaseModel):
        return [field.alias or name for name, field in node_type.model_fields.items()]
    return []


def _child_type(parent: Any, part: str | int) -> Any:
    parent = _unwrap(parent)
    if isinstance(parent, type) and issubclass(parent, BaseModel) and isinstance(part, str):
        for name, field in parent.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin, args = get_origin(parent), get_args(parent)
    if origin is list and isinstance(part, int):
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
