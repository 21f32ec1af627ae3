"""The policy language's vocabulary: every key, test, action and placeholder.

This module is the single list the loader validates against and the docs
test (``tests/unit/test_policy_docs.py``) checks ``policies/README.md``
against, so the language and its reference cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.organisation import Organisation
from relay.verdict import Action, TagSpec


@dataclass(frozen=True, slots=True)
class CustomDetector:
    name: str                        # findings report kind "personal_data", type "custom:<name>"
    pattern: re.Pattern[str]
    validator: str = ""              # one of "", "luhn", "mod11", "mod97"
    keywords: tuple[str, ...] = ()   # corroborating words (lower case)
    window: int = 60                 # characters either side searched for keywords
    confidence: str = "medium"       # confidence when validated but not corroborated: low|medium|high


# ----------------------------------------------------------------- keys

POLICY_KEYS = ("name", "mode", "organisation", "defaults", "detectors", "rules")
ORGANISATION_KEYS = ("name", "internal_domains", "groups", "distribution_lists")
DEFAULTS_KEYS = ("action", "scanner_failure")
DETECTOR_KEYS = ("name", "pattern", "validator", "keywords", "window", "confidence")
RULE_KEYS = ("id", "clause", "reason", "when", "action", "mode", "recipients", "notify_sender", "tag")
TAG_KEYS = ("headers", "subject_prefix")

MODES = ("enforce", "monitor")
ACTIONS = tuple(str(a) for a in Action)                       # accept, tag, hold, tempfail, reject
SCANNER_FAILURE_ACTIONS = ("tempfail", "hold", "reject")       # fail closed: never accept or tag
VALIDATORS = ("", "luhn", "mod11", "mod97")
CONFIDENCES = ("low", "medium", "high")

# Rule scope: which envelope recipients a matching rule's action applies to.
SCOPES = ("all", "external", "internal", "distribution_lists")

# ----------------------------------------------------------------- conditions

COMBINATORS = ("all", "any", "not")
# Tests inside ``finding: {...}``; a finding matches when it passes every one given.
FINDING_TESTS = ("kind", "type", "confidence", "count", "where", "protected")
# Names ``where:`` understands besides a glob pattern.
WHERE_NAMES = ("body", "attachment", "header", "message")
# Envelope and message facts (each a key of a condition mapping).
FACT_TESTS = (
    "sender_group",          # sender's group (name or list; "none" for a sender in no group)
    "sender",                # sender address glob(s)
    "external_recipients",   # at least N external envelope recipients (true = 1)
    "internal_only",         # every envelope recipient is internal (true/false)
    "distribution_list",     # an envelope recipient is a distribution list (true/false)
    "visible_recipients",    # at least N external addresses visible in To/Cc
    "recipients",            # at least N envelope recipients
    "message_size",          # message is at least this big (bytes or "10MiB")
    "encrypted",             # message is S/MIME or PGP encrypted (true/false)
    "signed",                # message is S/MIME or PGP signed (true/false)
)
CONDITION_TESTS = COMBINATORS + ("finding",) + FACT_TESTS

# ----------------------------------------------------------------- reasons

PLACEHOLDERS = (
    "rule",          # the rule's id
    "clause",        # the rule's clause
    "kind",          # kinds of the findings the rule matched
    "type",          # types of the findings the rule matched
    "signature",     # same as type, reads better for malware
    "scanner",       # same as type, reads better for scanner_unavailable
    "types",         # types with their counts: "uk_nino (3), payment_card (1)"
    "count",         # total count of the findings the rule matched
    "where",         # where those findings were ("body", 'part 2 "cv.pdf"')
    "sender_group",  # the sender's group, or "none"
    "recipients",    # how many recipients the rule applied to
    "external",      # how many envelope recipients are external
    "visible",       # how many external addresses are visible in To/Cc
    "size",          # message size in bytes
)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def placeholders_in(text: str) -> list[str]:
    """Placeholder names used in ``text`` (``{{`` and ``}}`` are literal braces)."""
    return _PLACEHOLDER.findall(text.replace("{{", "").replace("}}", ""))


# ----------------------------------------------------------------- compiled rules

Test = Callable[["object"], bool]  # a compiled condition: EvalContext -> bool


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    clause: str
    reason: str
    action: Action
    test: Test = field(compare=False, repr=False)        # EvalContext -> bool
    cite: Callable = field(compare=False, repr=False)    # EvalContext -> the findings the reason talks about
    fill: Callable = field(compare=False, repr=False)    # (ctx, cited, rule, n_recipients) -> reason text
    monitor: bool = False
    scope: str = "all"
    notify_sender: bool = False
    tag: TagSpec = TagSpec()
    line: int = 0
    kinds: frozenset[str] = frozenset()                  # finding kinds the condition looks at


@dataclass(frozen=True, slots=True)
class Defaults:
    action: Action = Action.ACCEPT
    scanner_failure: Action = Action.TEMPFAIL


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """Everything a policy file says, validated and compiled."""

    name: str
    path: str
    version: str
    organisation: Organisation
    defaults: Defaults
    detectors: tuple[CustomDetector, ...]
    rules: tuple[Rule, ...]
    monitor: bool = False
