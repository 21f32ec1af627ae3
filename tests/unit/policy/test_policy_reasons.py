"""Reason templates: placeholders filled from kinds, types, counts and places, never evidence."""

from __future__ import annotations

import pytest
from policy_helpers import envelope, finding, message, policy_from

from relay.policy import reasons, schema

F = finding


def reason_for(template: str, findings, rcpts=("bob@partner.example.com",), msg=None, sender="alice@example.ac.uk"):
    policy = policy_from(f"""
        - id: r1
          clause: "9.9"
          reason: {template!r}
          when: {{any: [{{finding: {{kind: [personal_data, malware, scanner_unavailable]}}}}, {{recipients: 1}}]}}
          recipients: external
          action: hold
        """)
    verdict = policy.evaluate(envelope(sender, *rcpts), msg or message(), findings)
    return verdict.matches[0].reason


@pytest.mark.parametrize(("template", "findings", "expected"), [
    ("{rule} {clause}", [], "r1 9.9"),
    ("{kind}", [F("personal_data", "iban"), F("malware", "Eicar")], "personal_data, malware"),
    ("{type}", [F("personal_data", "iban"), F("personal_data", "iban"), F("personal_data", "uk_nino")], "iban, uk_nino"),
    ("{signature} / {scanner}", [F("malware", "Win.Test.EICAR_HDB-1")], "Win.Test.EICAR_HDB-1 / Win.Test.EICAR_HDB-1"),
    ("{types}", [F("personal_data", "iban", count=2), F("personal_data", "uk_nino"), F("personal_data", "iban")],
     "iban (3), uk_nino (1)"),
    ("{types}", [F("malware")], "malware (1)"),
    ("{count}", [F("personal_data", "iban", count=2), F("personal_data", "uk_nino", count=5)], "7"),
    ("{where}", [F("malware", where='part 2 "a.zip" > part 2/1 "x.exe"'), F("malware", where="body")],
     'part 2 "a.zip" > part 2/1 "x.exe", body'),
    ("{where}", [F("malware", where=f"part {i}") for i in range(6)], "part 0, part 1, part 2 and 3 more"),
    ("{type}", [], "-"),
    ("{{literal}} {count}", [F("malware")], "{literal} 1"),
    ("no placeholders {{x}}", [], "no placeholders {x}"),
])
def test_placeholders(template, findings, expected):
    assert reason_for(template, findings) == expected


def test_envelope_placeholders():
    msg = message(to="a@x.org, b@y.org, carol@example.ac.uk")
    text = reason_for("{sender_group} {recipients} {external} {visible} {size}", [],
                      rcpts=("a@x.org", "b@y.org", "carol@example.ac.uk"), msg=msg, sender="s@students.example.ac.uk")
    assert text == f"students 2 2 2 {msg.size}"
    assert reason_for("{sender_group}", [], sender="x@elsewhere.org") == "none"


def test_values_are_sanitised_and_bounded():
    text = reason_for("{where}", [F("malware", where='part 2 "evil\r\n250 OK.exe"')])
    assert "\r" not in text and "\n" not in text and "\\x0d\\x0a" in text
    long = reason_for("{type}", [F("malware", "A" * 500)])
    assert len(long) <= 120 and long.endswith("…")


def test_evidence_is_never_used():
    assert "evidence" not in schema.PLACEHOLDERS
    text = reason_for("{kind} {type} {types} {where} {count}", [F("personal_data", "uk_nino", evidence="AB123456C")])
    assert "AB123456C" not in text


def test_check_lists_unknown_placeholders():
    assert reasons.check("{type} {nope} {{escaped}} {count:>3}") == ["nope", "count:>3"]
    assert reasons.check("plain") == []


def test_every_placeholder_has_a_filler():
    template = " ".join("{" + p + "}" for p in schema.PLACEHOLDERS)
    text = reason_for(template, [F("personal_data", "iban")])
    assert "{" not in text
