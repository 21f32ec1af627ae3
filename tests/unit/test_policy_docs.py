"""policies/README.md documents every key, test, value, placeholder and finding kind the loader knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.findings import KINDS, TYPES
from relay.policy import schema

README = (Path(__file__).resolve().parents[2] / "policies" / "README.md").read_text(encoding="utf-8")
CODE = set(re.findall(r"`([^`\n]+)`", README))

KEYS = sorted(set(schema.POLICY_KEYS + schema.ORGANISATION_KEYS + schema.DEFAULTS_KEYS + schema.DETECTOR_KEYS
                  + schema.RULE_KEYS + schema.TAG_KEYS))
VALUES = sorted(set(schema.MODES + schema.ACTIONS + schema.SCANNER_FAILURE_ACTIONS + schema.SCOPES
                    + schema.CONFIDENCES + schema.WHERE_NAMES + tuple(v for v in schema.VALIDATORS if v)))


@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_documented(key):
    assert key in CODE, f"policies/README.md does not mention `{key}`"


@pytest.mark.parametrize("test", schema.CONDITION_TESTS + schema.FINDING_TESTS)
def test_every_condition_test_is_documented(test):
    assert test in CODE, f"policies/README.md does not mention the condition test `{test}`"


@pytest.mark.parametrize("value", VALUES)
def test_every_value_is_documented(value):
    assert value in CODE, f"policies/README.md does not mention the value `{value}`"


@pytest.mark.parametrize("name", schema.PLACEHOLDERS)
def test_every_placeholder_is_documented(name):
    assert "{" + name + "}" in CODE, f"policies/README.md does not document the placeholder `{{{name}}}`"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_finding_kind_is_documented(kind):
    row = re.search(rf"^\| `{re.escape(kind)}` \|.*$", README, re.M)
    assert row, f"policies/README.md has no table row for the finding kind `{kind}`"
    for type_ in TYPES.get(kind, ()):
        assert f"`{type_}`" in row.group(), f"the row of `{kind}` does not list its type `{type_}`"


def test_documented_kinds_exist():
    table = re.search(r"## Finding kinds\n(.*?)\n## ", README, re.S).group(1)
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(KINDS)


def test_no_unknown_placeholder_is_documented():
    documented = set(re.findall(r"^\| `\{([a-z_]+)\}` \|", README, re.M))
    assert documented == set(schema.PLACEHOLDERS)


def test_every_rule_of_the_shipped_policy_is_in_the_clause_table():
    from relay.policy import load_policy

    table = re.search(r"## The shipped policy, clause by clause\n(.*?)\n## ", README, re.S).group(1)
    policy = load_policy(Path(__file__).resolve().parents[2] / "policies" / "icmp-email-use.yaml")
    for rule in policy.rules:
        assert f"`{rule.id}`" in table, f"the clause table in policies/README.md does not name `{rule.id}`"


def test_the_example_policy_in_the_reference_is_valid():
    from relay.policy import parse_policy

    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    full = [b for b in blocks if b.startswith("name:")]
    assert full, "policies/README.md lost its example policy"
    for block in full:
        policy = parse_policy(block, "README example")
        assert policy.rules


def test_the_clause_table_states_each_rules_action():
    """Where the clause table says a rule's action ("`a`, `b` (hold ..."), it is the rule's action in the file."""
    from relay.policy import load_policy

    table = re.search(r"## The shipped policy, clause by clause\n(.*?)\n## ", README, re.S).group(1)
    policy = load_policy(Path(__file__).resolve().parents[2] / "policies" / "icmp-email-use.yaml")
    actions = {r.id: str(r.action) for r in policy.rules}
    stated = {}
    for ids, action in re.findall(r"((?:`[a-z0-9.:_-]+`(?:, )?)+) \((\w+)", table):
        if action in schema.ACTIONS:
            stated.update(dict.fromkeys(re.findall(r"`([^`]+)`", ids), action))
    assert {"confidential-external", "confidential-protected-external", "malware"} <= set(stated)
    assert {rule_id: actions.get(rule_id) for rule_id in stated} == stated
