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


@pytest.mark.parametrize(("text", "message"), [
    # an unclosed '{': PyYAML gives up on the next line; the context names the line with the mistake
    ("rules:\n  - id: a\n    when: {finding: {kind: m}\n    action: reject\n",
     "f.yaml:4: not valid YAML: expected ',' or '}', but got '<scalar>' (line 4, column 5), "
     "while parsing a flow mapping that starts at line 3, column 11"),
    ("a: [1, 2\nb: 3\n",
     "f.yaml:2: not valid YAML: expected ',' or ']', but got ':' (line 2, column 2), "
     "while parsing a flow sequence that starts at line 1, column 4"),
    # a line indented wrongly: the problem's line leads, the block it breaks is named
    ("a:\n  b: 1\n c: 2\n",
     "f.yaml:3: not valid YAML: expected <block end>, but found '<block mapping start>' (line 3, column 2), "
     "while parsing a block mapping that starts at line 1, column 1"),
    # the problem is the end of the file: the context's line leads (nothing to fix after the last line)
    ("a: 1\nb: [x\n\n\n",
     "f.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>', "
     "while parsing a flow sequence that starts at line 2, column 4"),
    ("a: 1\nb: 'x\n",
     "f.yaml:2: not valid YAML: found unexpected end of stream, while scanning a quoted scalar that starts at "
     "line 2, column 4"),
    # no context at all, or a context without a place
    ("a: b: c\n", "f.yaml:1: not valid YAML: mapping values are not allowed here (line 1, column 5)"),
    ("a:\n\t- 1\n", "f.yaml:2: not valid YAML: found character '\\t' that cannot start any token (line 2, column 1), "
                    "while scanning for the next token"),
])
def test_syntax_error_names_the_problem_and_where_its_construct_started(text, message):
    with pytest.raises(PolicyError) as info:
        load(text, "f.yaml")
    assert str(info.value) == message


def test_complex_keys_are_refused():
    with pytest.raises(PolicyError, match=r"f.yaml:1: a key must be a plain word"):
        load("? [a, b]\n: 1\n", "f.yaml")


def test_only_safe_tags():
    with pytest.raises(PolicyError, match=r"not valid YAML"):
        load("a: !!python/object:os.system {}\n", "f.yaml")


def test_anchors_and_merge_keys_still_work():
    data = load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert data["other"] == {"x": 1, "y": 2}
