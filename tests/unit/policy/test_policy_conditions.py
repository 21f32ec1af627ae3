"""Every condition test, table-driven: (condition, findings, envelope, message) -> matches or not."""

from __future__ import annotations

import pytest
from policy_helpers import envelope, finding, message, policy_from

from relay.verdict import Action

EXT = "bob@partner.example.com"
INT = "carol@example.ac.uk"
F = finding

CASES = [
    # ---- finding: kind
    ("{finding: {kind: malware}}", [F("malware", "Eicar")], None, None, True),
    ("{finding: {kind: malware}}", [F("executable", "pe")], None, None, False),
    ("{finding: {kind: malware}}", [], None, None, False),
    ("{finding: {kind: [executable, script]}}", [F("script", "js")], None, None, True),
    # ---- type
    ("{finding: {kind: personal_data, type: uk_nino}}", [F("personal_data", "uk_nino")], None, None, True),
    ("{finding: {kind: personal_data, type: [iban, nhs_number]}}", [F("personal_data", "uk_nino")], None, None, False),
    ("{finding: {kind: malware, type: Eicar-Test-Signature}}", [F("malware", "Eicar-Test-Signature")], None, None, True),
    # ---- confidence minimum
    ("{finding: {kind: personal_data, confidence: high}}", [F("personal_data", "iban", "medium")], None, None, False),
    ("{finding: {kind: personal_data, confidence: medium}}", [F("personal_data", "iban", "medium")], None, None, True),
    ("{finding: {kind: personal_data, confidence: medium}}", [F("personal_data", "iban", "high")], None, None, True),
    ("{finding: {kind: personal_data, confidence: medium}}", [F("personal_data", "iban", "low")], None, None, False),
    # ---- count minimum: counts of the passing findings add up
    ("{finding: {kind: personal_data, count: 3}}", [F("personal_data", "iban", count=2)], None, None, False),
    ("{finding: {kind: personal_data, count: 3}}", [F("personal_data", "iban", count=2), F("personal_data", "uk_nino")], None, None, True),
    ("{finding: {kind: personal_data, confidence: high, count: 3}}",
     [F("personal_data", "iban", count=2), F("personal_data", "uk_nino", "low")], None, None, False),
    ("{finding: {kind: visible_recipients, count: 10}}", [F("visible_recipients", count=12, where="header To/Cc")], None, None, True),
    # ---- where
    ("{finding: {kind: personal_data, where: body}}", [F("personal_data", where="body")], None, None, True),
    ("{finding: {kind: personal_data, where: body}}", [F("personal_data", where='part 2 "cv.pdf"')], None, None, False),
    ("{finding: {kind: personal_data, where: attachment}}", [F("personal_data", where='part 2 "cv.pdf"')], None, None, True),
    ("{finding: {kind: confidential_marker, where: header}}", [F("confidential_marker", "marker", where="header Subject")], None, None, True),
    ("{finding: {kind: malware, where: message}}", [F("malware", where="message")], None, None, True),
    ("{finding: {kind: executable, where: '*.zip\" > *'}}", [F("executable", "pe", where='part 2 "a.zip" > part 2/1 "x.exe"')], None, None, True),
    ("{finding: {kind: executable, where: '*.zip\" > *'}}", [F("executable", "pe", where='part 2 "x.exe"')], None, None, False),
    ("{finding: {kind: personal_data, where: [header, attachment]}}", [F("personal_data", where="body")], None, None, False),
    # ---- protected
    ("{finding: {kind: personal_data, protected: false}}", [F("personal_data", protected=True)], None, None, False),
    ("{finding: {kind: personal_data, protected: true}}", [F("personal_data", protected=True)], None, None, True),
    ("{finding: {kind: personal_data, protected: false}}", [F("personal_data", protected=True), F("personal_data")], None, None, True),
    # ---- combinators
    ("{all: [{finding: {kind: macro}}, {finding: {kind: dde}}]}", [F("macro", "vba")], None, None, False),
    ("{all: [{finding: {kind: macro}}, {finding: {kind: dde}}]}", [F("macro", "vba"), F("dde")], None, None, True),
    ("{any: [{finding: {kind: macro}}, {finding: {kind: dde}}]}", [F("dde")], None, None, True),
    ("{any: [{finding: {kind: macro}}, {finding: {kind: dde}}, {encrypted: true}]}", [], None, None, False),
    ("{not: {finding: {kind: macro}}}", [], None, None, True),
    ("{not: {not: {finding: {kind: macro}}}}", [F("macro", "vba")], None, None, True),
    ("{all: [{finding: {kind: macro}}, {any: [{external_recipients: true}, {sender_group: students}]}]}",
     [F("macro", "vba")], ("alice@example.ac.uk", INT), None, False),
    # ---- sender group (first matching group wins; none for no group)
    ("{sender_group: staff}", [], ("alice@example.ac.uk", EXT), None, True),
    ("{sender_group: staff}", [], ("s1@students.example.ac.uk", EXT), None, False),
    ("{sender_group: students}", [], ("s1@students.example.ac.uk", EXT), None, True),
    ("{sender_group: contractors}", [], ("contractor.joe@example.ac.uk", EXT), None, True),
    ("{sender_group: [students, contractors]}", [], ("alice@example.ac.uk", EXT), None, False),
    ("{sender_group: none}", [], ("someone@elsewhere.org", EXT), None, True),
    ("{sender_group: none}", [], ("", EXT), None, True),
    ("{not: {sender_group: staff}}", [], ("someone@elsewhere.org", EXT), None, True),
    # ---- sender glob
    ("{sender: '*@students.example.ac.uk'}", [], ("S1@Students.Example.ac.uk", EXT), None, True),
    ("{sender: ['noreply@*', 'bounce*@*']}", [], ("alice@example.ac.uk", EXT), None, False),
    # ---- external recipients
    ("{external_recipients: true}", [], ("alice@example.ac.uk", INT, EXT), None, True),
    ("{external_recipients: true}", [], ("alice@example.ac.uk", INT, "dave@sub.example.ac.uk"), None, False),
    ("{external_recipients: false}", [], ("alice@example.ac.uk", INT), None, True),
    ("{external_recipients: 2}", [], ("alice@example.ac.uk", INT, EXT), None, False),
    ("{external_recipients: 2}", [], ("alice@example.ac.uk", EXT, "eve@other.org"), None, True),
    ("{external_recipients: true}", [], ("alice@example.ac.uk", "x@notexample.ac.uk"), None, True),
    # ---- internal only
    ("{internal_only: true}", [], ("alice@example.ac.uk", INT, "s@students.example.ac.uk"), None, True),
    ("{internal_only: true}", [], ("alice@example.ac.uk", INT, EXT), None, False),
    ("{internal_only: false}", [], ("alice@example.ac.uk", INT, EXT), None, True),
    # ---- distribution lists (envelope)
    ("{distribution_list: true}", [], ("alice@example.ac.uk", "All-Staff@example.ac.uk"), None, True),
    ("{distribution_list: true}", [], ("alice@example.ac.uk", INT), None, False),
    ("{distribution_list: false}", [], ("alice@example.ac.uk", INT), None, True),
    # ---- visible recipients (external, distinct, To and Cc)
    ("{visible_recipients: 3}", [], None,
     message(to="a@x.org, B <b@y.org>", cc="a@x.org, c@z.org, carol@example.ac.uk"), True),
    ("{visible_recipients: 4}", [], None,
     message(to="a@x.org, B <b@y.org>", cc="A@X.org, c@z.org, carol@example.ac.uk"), False),
    # ---- recipients count
    ("{recipients: 3}", [], ("alice@example.ac.uk", INT, EXT), None, False),
    ("{recipients: 2}", [], ("alice@example.ac.uk", INT, EXT), None, True),
    # ---- message size
    ("{message_size: 100}", [], None, message(body="x" * 200), True),
    ("{message_size: 1KiB}", [], None, message(body="x" * 200), False),
    ("{message_size: '1k'}", [], None, message(body="x" * 2000), True),
    # ---- encrypted / signed: structure or finding
    ("{encrypted: true}", [], None, message(content_type='multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b'), True),
    ("{encrypted: true}", [], None, message(content_type="application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m"), True),
    ("{encrypted: true}", [], None, message(content_type="application/pkcs7-mime; smime-type=signed-data; name=smime.p7m"), False),
    ("{encrypted: true}", [F("encrypted_message", "pgp")], None, None, True),
    ("{encrypted: false}", [], None, None, True),
    ("{signed: true}", [], None, message(content_type='multipart/signed; protocol="application/pkcs7-signature"; boundary=b'), True),
    ("{signed: true}", [], None, message(content_type="application/pkcs7-mime; smime-type=signed-data"), True),
    ("{signed: true}", [F("signed_message", "smime")], None, None, True),
    ("{signed: true}", [], None, None, False),
]


@pytest.mark.parametrize(("condition", "findings", "env", "msg", "expected"), CASES,
                         ids=[f"{i}:{c[0][:50]}" for i, c in enumerate(CASES)])
def test_condition(condition, findings, env, msg, expected):
    policy = policy_from(f"""
        - id: r
          clause: "1"
          reason: "matched"
          when: {condition}
          action: hold
        """)
    env = envelope(env[0], *env[1:]) if env else envelope()
    verdict = policy.evaluate(env, msg or message(), findings)
    assert (verdict.action is Action.HOLD) is expected
    assert [m.rule_id for m in verdict.matches] == (["r"] if expected else [])
