"""Helpers for the policy tests (imported as ``policy_helpers``): policies from YAML text, envelopes, messages, findings."""

from __future__ import annotations

import textwrap

from relay.envelope import Envelope
from relay.findings import Confidence, Finding
from relay.message import ParsedMessage, parse
from relay.policy import Policy, parse_policy

ORG = """\
organisation:
  name: Example
  internal_domains: [example.ac.uk]
  groups:
    students: [students.example.ac.uk]
    contractors: ["contractor.*@example.ac.uk"]
    staff: [example.ac.uk]
  distribution_lists: [all-staff@example.ac.uk]
"""


def policy_from(rules: str, head: str = ORG, path: str = "test.yaml") -> Policy:
    """A policy made of ``head`` (organisation etc.) and ``rules`` (the YAML list under ``rules:``)."""
    text = head + "rules:\n" + textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ") + "\n"
    return parse_policy(text, path)


def envelope(mail_from: str = "alice@example.ac.uk", *rcpts: str) -> Envelope:
    return Envelope(mail_from, rcpts or ("bob@partner.example.com",))


def message(to: str = "bob@partner.example.com", cc: str = "", content_type: str = "text/plain",
            body: str = "Hello.\r\n") -> ParsedMessage:
    head = f"From: alice@example.ac.uk\r\nTo: {to}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    head += f"Subject: test\r\nContent-Type: {content_type}\r\n\r\n"
    return parse((head + body).encode())


def finding(kind: str, type_: str = "", confidence: str = "high", count: int = 1, where: str = "body",
            protected: bool = False, evidence: str = "") -> Finding:
    return Finding(kind, type_, Confidence[confidence.upper()], count, where, evidence, protected)
