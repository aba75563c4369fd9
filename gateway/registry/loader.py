"""Read a registry YAML file into a :class:`Registry`, or say exactly what is wrong.

An integrator editing ``sites.yaml`` must be told the file, the line and the key of a
mistake (CONTRACT.md §2), e.g. ``sites.yaml:14: enterprises[0].devices[1].points.dp.hihg:
unknown key; did you mean 'hihi'?``.  PyYAML's composed node tree keeps the line of
every key and sequence item, so the loader composes first, checks what pydantic cannot
see (duplicate keys, which PyYAML silently overwrites; ids repeated across entries),
validates with the models, and maps each pydantic error location back to a line.
"""

from __future__ import annotations

import os

import yaml
from pydantic import ValidationError

from gateway.registry.models import RegistrySpec
from gateway.registry.registry import Registry
from gateway.registry.yaml_paths import (
    Loc,
    LocatedError,
    from_pydantic,
    key_path,
    line_of,
    locate,
    parse_yaml,
    raise_all,
    read_text,
)

__all__ = ["RegistryError", "load_registry", "load_registry_data", "load_registry_text"]



class RegistryError(LocatedError):
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


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Load and validate the registry file at ``path`` (UTF-8 YAML).

    Raises :class:`RegistryError` naming the file, line and key of the first problem.
    """
    return load_registry_text(read_text(path, RegistryError), source=os.fspath(path))


def load_registry_text(text: str, source: str = "<string>") -> Registry:
    """Load a registry from YAML text; ``source`` names it in error messages."""
    root, data, duplicates = parse_yaml(text, source, RegistryError)
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


def _validate(
    data: object, root: yaml.Node | None, source: str, problems: list[RegistryError]
) -> Registry:
    """Validate with the models plus cross-entry id checks; raise all problems at once."""
    problems = [*problems, *_duplicate_ids(data, root, source)]
    try:
        spec = RegistrySpec.model_validate(data)
    except ValidationError as exc:
        raise_all([*problems, *(from_pydantic(e, root, source, RegistrySpec, RegistryError)
                                for e in exc.errors())], exc)
    if problems:
        raise_all(problems)
    try:
        return Registry(spec, source=source)
    except ValueError as exc:  # duplicate ids the checks above could not see
        raise RegistryError(str(exc), file=source) from exc


# --- duplicate ids --------------------------------------------------------------------


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
