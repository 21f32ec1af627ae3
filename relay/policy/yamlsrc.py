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
        raise PolicyError(syntax_error(exc, text, path)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def syntax_error(exc: yaml.MarkedYAMLError, text: str, path: str) -> str:
    """PyYAML's error as ``path:line: not valid YAML: ...``, naming both places it knows.

    PyYAML marks where it gave up (``problem_mark``) and, for many errors,
    where the construct it was reading started (``context_mark``): for an
    unclosed ``{`` the problem is on a later line and the mistake on the
    context's. The message gives both lines. The leading line is the
    problem's, except when the problem is the end of the file (nothing there to
    fix): then the context's, or the last line with text on it.
    """
    problem, context = exc.problem_mark, exc.context_mark
    end = len(text.rstrip())

    def at_end(mark) -> bool:
        return mark is not None and mark.index >= end

    if problem is not None and not at_end(problem):
        line = problem.line + 1
    elif context is not None and not at_end(context):
        line = context.line + 1
    else:
        line = text[:end].count("\n") + 1
    what = exc.problem or "syntax error"
    if at_end(problem):
        what += "" if "stream" in what else " at the end of the file"
    elif problem is not None:
        what += f" (line {problem.line + 1}, column {problem.column + 1})"
    if exc.context:
        what += f", {exc.context}"
        if context is not None and not at_end(context):
            what += f" that starts at line {context.line + 1}, column {context.column + 1}"
    return f"{path}:{line}: not valid YAML: {what}"
