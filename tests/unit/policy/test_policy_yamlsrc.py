"""YAML with line numbers: mappings and lists remember where they are; duplicates are errors."""

from __future__ import annotations

import pytest

from relay.errors import PolicyError
from relay.policy.yamlsrc import LineList, LineMap, load

TEXT = """\
# comment
top:
  a: 1
  b:
    - x
    - {c: 2}
list: [1, 2]
"""


def test_line_numbers_of_keys_and_items():
    data = load(TEXT, "f.yaml")
    assert isinstance(data, LineMap) and data.line == 2
    assert data.line_of("top") == 2 and data.line_of("list") == 7
    top = data["top"]
    assert top.line_of("a") == 3 and top.line_of("b") == 4
    items = top["b"]
    assert isinstance(items, LineList) and items == ["x", {"c": 2}]
    assert items.line_of(0) == 5 and items.line_of(1) == 6 and items[1].line == 6
    assert data.line_of("missing") == data.line


def test_duplicate_key_is_an_error_with_both_lines():
    with pytest.raises(PolicyError, match=r"^f.yaml:3: duplicate key 'a' \(first at line 2\)$"):
        load("top: 1\na: 1\na: 2\n", "f.yaml")


def test_syntax_error_names_the_line():
    with pytest.raises(PolicyError, match=r"^f.yaml:3: not valid YAML"):
        load("a: 1\nb: [1,\nc: }\n", "f.yaml")


def test_complex_keys_are_refused():
    with pytest.raises(PolicyError, match=r"f.yaml:1: a key must be a plain word"):
        load("? [a, b]\n: 1\n", "f.yaml")


def test_only_safe_tags():
    with pytest.raises(PolicyError, match=r"not valid YAML"):
        load("a: !!python/object:os.system {}\n", "f.yaml")


def test_anchors_and_merge_keys_still_work():
    data = load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert data["other"] == {"x": 1, "y": 2}
