"""Locations in a composed YAML document: key paths to line numbers.

Pydantic reports errors as paths (``('enterprises', 0, 'devices')``); PyYAML's node
tree knows where every key starts.  These helpers join the two so registry errors can
name the line a person has to edit.
"""

from __future__ import annotations

import yaml

Loc = tuple[str | int, ...]
"""A location in the document: mapping keys and sequence indices, outermost first."""


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
