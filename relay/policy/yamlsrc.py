"""YAML that remembers where things were: mappings and lists carry line numbers.

``load(text, path)`` returns plain Python values, except that every mapping is
a :class:`LineMap` (a dict with ``line`` and ``key_lines``) and every list a
:class:`LineList` (a list with ``line`` and ``item_lines``), so the loader can
say "policies/x.yaml:42: ..." about any key or item. Duplicate keys are an
error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from typing import Any

import yaml

from relay.errors import PolicyError


class LineMap(dict):
    """A mapping from the file; ``line`` is where it starts, ``key_lines[key]`` where each key is."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list from the file; ``item_lines[i]`` is where item ``i`` starts."""

    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    path = ""


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    yield out
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise PolicyError(f"{loader.path}:{line}: a key must be a plain word, not {type(key).__name__}")
        if key in out:
            raise PolicyError(f"{loader.path}:{line}: duplicate key {key!r} (first at line {out.key_lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line


def _construct_seq(loader: _Loader, node: yaml.SequenceNode):
    out = LineList()
    out.line = node.start_mark.line + 1
    out.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield out
    out.extend(loader.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load(text: str, path: str) -> Any:
    """Parse one YAML document; a syntax error becomes a PolicyError with file and line."""
    loader = _Loader(text)
    loader.path = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise PolicyError(f"{path}:{line}: not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
