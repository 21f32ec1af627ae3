"""The shipped ICMP policy, clause by clause, on findings directly (no scanners involved).

One row per row of the clause table: (findings, sender, recipients, message)
-> expected action and the exact rule ids that match. The corpus test
(tests/integration/test_shipped_policy.py) runs the same policy through the
real scanners.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import finding, message

from relay.envelope import Envelope
from relay.policy import load_policy
from relay.verdict import Action

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_policy(ROOT / "policies" / "icmp-email-use.yaml")
MINIMAL = load_policy(ROOT / "policies" / "minimal.yaml")

STAFF, STUDENT, CONTRACTOR, GUEST = (
    "alice@example.ac.uk", "sam@students.example.ac.uk", "joe@contractors.example.ac.uk", "gus@guests.example.ac.uk")
EXT, EXT2, INT = "bob@partner.example.com", "eve@supplier.example.net", "carol@example.ac.uk"
LIST = "all-staff@example.ac.uk"
F = finding
A = Action
MANY = ", ".join(f"p{i}@firm{i}.example.com" for i in range(12))
MASS = ", ".join(f"p{i}@firm{i}.example.com" for i in range(60))

# (id, findings, sender, recipients, message or None, action, rule ids, per-recipient overrides)
ROWS = [
    ("clean", [], STAFF, (EXT, INT), None, A.ACCEPT, [], {}),
    # 2.1 sender groups
    ("2.1 groups", [], STUDENT, (EXT,), None, A.ACCEPT, [], {}),
    # 3.1 (with 5.2, 5.3) content marked confidential: held for externals when unprotected, tagged when protected
    ("3.1 confidential external", [F("confidential_marker", "marker", where="header Subject")], STAFF, (EXT,), None,
     A.HOLD, ["confidential-external"], {}),
    ("3.1 confidential mixed", [F("confidential_marker", "marker")], STAFF, (EXT, INT), None, A.HOLD,
     ["confidential-external"], {INT: A.ACCEPT}),
    ("3.1 sensitivity label", [F("confidential_marker", "sensitivity_label", where="header msip_labels")], STAFF,
     (EXT,), None, A.HOLD, ["confidential-external"], {}),
    ("3.1 prose mention", [F("confidential_marker", "marker", "medium")], STAFF, (EXT,), None, A.ACCEPT, [], {}),
    ("3.1 low label", [F("confidential_marker", "sensitivity_label", "medium", where="header msip_labels")], STAFF,
     (EXT,), None, A.ACCEPT, [], {}),
    ("3.1 encrypted message", [F("confidential_marker", "marker", where="header Subject"),
                               F("encrypted_message", "smime", where="message")], STAFF, (EXT,), None, A.TAG,
     ["confidential-protected-external"], {}),
    ("3.1 protected document", [F("confidential_marker", "marker", where="header Subject"),
                                F("encrypted_content", "office", where='part 2 "plan.docx"', protected=True)],
     STAFF, (EXT,), None, A.TAG, ["unscannable-encrypted", "confidential-protected-external"], {}),
    ("3.1 marker found inside protected content", [F("confidential_marker", "marker", protected=True)], STAFF, (EXT,),
     None, A.TAG, ["confidential-protected-external"], {}),
    ("3.1 weak protection is none", [F("confidential_marker", "marker"),
                                     F("weak_protection", "pdf_owner_password", where='part 2 "a.pdf"')], STAFF,
     (EXT,), None, A.HOLD, ["confidential-external"], {}),
    ("3.1 confidential internal", [F("confidential_marker", "marker")], STAFF, (INT,), None, A.ACCEPT, [], {}),
    # 3.1.2, 3.2-3.4 abusive language: hold
    ("3.2 abusive", [F("abusive_language", "abusive", "high", 2)], STAFF, (INT,), None, A.HOLD, ["abusive-language"], {}),
    ("3.4 intimidating", [F("abusive_language", "intimidating", "medium")], STAFF, (EXT,), None, A.HOLD, ["abusive-language"], {}),
    ("3.3 gossip low", [F("abusive_language", "disparaging", "low")], STAFF, (INT,), None, A.ACCEPT, [], {}),
    # 3.5 distribution lists and visible recipients
    ("3.5 list envelope", [], STAFF, (LIST,), None, A.HOLD, ["distribution-list"], {}),
    ("3.5 list finding", [F("distribution_list", where="header To/Cc")], STAFF, (INT,), None, A.HOLD, ["distribution-list"], {}),
    ("3.5 visible 12", [], STAFF, (EXT,), message(to=MANY), A.HOLD, ["visible-recipients"], {}),
    ("3.5 visible finding", [F("visible_recipients", count=15, where="header To/Cc")], STAFF, (EXT,), None, A.HOLD,
     ["visible-recipients"], {}),
    ("3.5 visible 60", [], STAFF, (EXT,), message(to=MASS), A.REJECT, ["visible-recipients", "visible-recipients-mass"], {}),
    ("3.5 visible few", [F("visible_recipients", count=3, where="header To/Cc")], STAFF, (EXT,), None, A.ACCEPT, [], {}),
    # 4.1 contracts to externals: tag
    ("4.1 contract external", [F("contract_language", "offer", "medium")], STAFF, (EXT,), None, A.TAG, ["contract-external"], {}),
    ("4.1 contract internal", [F("contract_language", "offer")], STAFF, (INT,), None, A.ACCEPT, [], {}),
    # 4.2 non-staff + external + contract: hold for the external recipients
    ("4.2 student contract", [F("contract_language", "acceptance")], STUDENT, (EXT, INT), None, A.HOLD,
     ["contract-external", "non-staff-business-external"], {INT: A.TAG}),
    ("4.2 contractor contract", [F("contract_language", "order")], CONTRACTOR, (EXT,), None, A.HOLD,
     ["contract-external", "non-staff-business-external"], {}),
    ("4.2 guest contract", [F("contract_language", "order")], GUEST, (EXT,), None, A.HOLD,
     ["contract-external", "non-staff-business-external"], {}),
    ("4.2 student internal", [F("contract_language", "order")], STUDENT, (INT,), None, A.ACCEPT, [], {}),
    ("4.2 unworded figure", [F("unworded_figure", "gbp", count=2)], STAFF, (EXT,), None, A.TAG, ["figures-external"], {}),
    ("4.2 figure mismatch", [F("figure_mismatch", "gbp")], STAFF, (EXT,), None, A.TAG, ["figures-external"], {}),
    ("4.2 figures internal", [F("unworded_figure", "gbp")], STAFF, (INT,), None, A.ACCEPT, [], {}),
    # 5.1 attachments
    ("5.1 malware", [F("malware", "Eicar-Test-Signature", where='part 2 "invoice.pdf"')], STAFF, (EXT,), None,
     A.REJECT, ["malware"], {}),
    ("5.1 executable", [F("executable", "pe", where='part 2 "setup.exe"')], STAFF, (INT,), None, A.REJECT, ["dangerous-file"], {}),
    ("5.1 script", [F("script", "js")], STAFF, (EXT,), None, A.REJECT, ["dangerous-file"], {}),
    ("5.1 disk image", [F("disk_image", "iso")], STAFF, (EXT,), None, A.REJECT, ["dangerous-file"], {}),
    ("5.1 type mismatch", [F("type_mismatch", "pe")], STAFF, (EXT,), None, A.REJECT, ["disguised-file"], {}),
    ("5.1 macro", [F("macro", "vba")], STAFF, (EXT,), None, A.HOLD, ["office-macro"], {}),
    ("5.1 dde", [F("dde", "dde")], STAFF, (INT,), None, A.HOLD, ["office-macro"], {}),
    ("5.1 encrypted content", [F("encrypted_content", "office", protected=True)], STAFF, (EXT,), None, A.TAG,
     ["unscannable-encrypted"], {}),
    ("5.1 scanner unavailable", [F("scanner_unavailable", "clamav", where="message")], STAFF, (EXT,), None, A.TEMPFAIL,
     ["scanner-unavailable"], {}),
    ("5.1 malformed", [F("malformed", "bad_base64", where="part 2")], STAFF, (INT,), None, A.HOLD, ["malformed-message"], {}),
    ("5.1 limit", [F("limit_exceeded", "max_mime_depth")], STAFF, (INT,), None, A.HOLD, ["malformed-message"], {}),
    ("5.1 malware beats scanner failure", [F("malware", "X"), F("scanner_unavailable", "language")], STAFF, (EXT,), None,
     A.REJECT, ["malware", "scanner-unavailable"], {}),
    # 5.2, 5.3 personal data
    ("5.2 pd external", [F("personal_data", "uk_nino", count=2), F("personal_data", "payment_card")], STAFF, (EXT,), None,
     A.HOLD, ["personal-data-external"], {}),
    ("5.2 pd mixed", [F("personal_data", "uk_nino")], STAFF, (EXT, INT), None, A.HOLD,
     ["personal-data-external"], {INT: A.ACCEPT}),
    ("5.2 pd internal", [F("personal_data", "nhs_number")], STAFF, (INT, "dan@students.example.ac.uk"), None, A.TAG,
     ["personal-data-internal"], {}),
    ("5.2 pd medium", [F("personal_data", "phone_number", "medium")], STAFF, (EXT,), None, A.ACCEPT, [], {}),
    ("5.3 pd protected", [F("personal_data", "uk_nino", protected=True), F("encrypted_content", "office", protected=True)],
     STAFF, (EXT,), None, A.TAG, ["unscannable-encrypted"], {}),
    ("5.3 pd encrypted message", [F("personal_data", "uk_nino"), F("encrypted_message", "smime")], STAFF, (EXT,), None,
     A.ACCEPT, [], {}),
    ("5.3 special category", [F("special_category", "health", "medium")], STAFF, (EXT,), None, A.HOLD,
     ["sensitive-data-external"], {}),
    ("5.3 bulk contacts", [F("bulk_contacts", "email_address", count=40)], STAFF, (EXT,), None, A.HOLD,
     ["sensitive-data-external"], {}),
    ("5.3 credential", [F("credential", "password")], STAFF, (EXT, INT), None, A.HOLD,
     ["sensitive-data-external"], {INT: A.ACCEPT}),
    ("5.3 weak protection", [F("weak_protection", "pdf_owner_password", where='part 2 "a.pdf"'),
                              F("personal_data", "uk_nino", "medium", where='part 2 "a.pdf"')], STAFF, (EXT,), None,
     A.HOLD, ["weak-protection"], {}),
    ("5.3 weak protection alone", [F("weak_protection", "pdf_owner_password")], STAFF, (EXT,), None, A.ACCEPT, [], {}),
    # 5.4 desktop clients
    ("5.4 desktop", [F("desktop_client", "outlook", where="header X-Mailer")], STAFF, (EXT,), None, A.TAG,
     ["desktop-client"], {}),
]


@pytest.mark.parametrize(("findings", "sender", "rcpts", "msg", "action", "rule_ids", "overrides"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_shipped_policy_clause_table(findings, sender, rcpts, msg, action, rule_ids, overrides):
    verdict = POLICY.evaluate(Envelope(sender, rcpts), msg or message(), findings)
    assert (verdict.action, [m.rule_id for m in verdict.matches]) == (action, rule_ids)
    expected = {r: overrides.get(r, action) for r in rcpts}
    assert dict(verdict.recipient_actions) == expected
    assert verdict.policy_version == POLICY.version
    for m in verdict.matches:
        assert m.reason and "{" not in m.reason


def test_shipped_reasons_read_well():
    verdict = POLICY.evaluate(Envelope(STAFF, (EXT, EXT2, INT)), message(),
                              [F("personal_data", "uk_nino", count=2, evidence="AB •• •• •• C"), F("personal_data", "iban")])
    [m] = verdict.matches
    assert m.reason == "unprotected personal data (uk_nino (2), iban (1)) to 2 external recipient(s); send it encrypted"
    assert m.clause == "5.2, 5.3" and m.recipients == (EXT, EXT2) and m.notify_sender
    verdict = POLICY.evaluate(Envelope(STAFF, (EXT,)), message(),
                              [F("malware", "Win.Test.EICAR_HDB-1", where='part 2 "invoice.pdf"')])
    assert verdict.deciding.reason == 'virus found: Win.Test.EICAR_HDB-1 in part 2 "invoice.pdf"'


def test_confidential_reason_names_the_marking_not_the_text():
    verdict = POLICY.evaluate(Envelope(STAFF, (EXT, INT)), message(),
                              [F("confidential_marker", "sensitivity_label", where="header msip_labels",
                                 evidence="Highly Confidential")])
    [m] = verdict.matches
    assert m.reason == ("content marked confidential (sensitivity_label in header msip_labels) sent unprotected to 1 "
                        "external recipient(s); send it encrypted or in a password-protected document")
    assert (m.clause, m.recipients, m.notify_sender) == ("3.1, 5.3", (EXT,), True)
    assert dict(verdict.tag.headers) == {}
    verdict = POLICY.evaluate(Envelope(STAFF, (EXT,)), message(),
                              [F("confidential_marker", "marker", where="header Subject"),
                               F("encrypted_message", "smime", where="message")])
    assert dict(verdict.tag.headers) == {"X-Policy-Confidential": "protected"}


def test_every_clause_of_the_table_has_a_rule():
    clauses = {part.strip() for r in POLICY.rules for part in r.clause.split(",")}
    assert clauses >= {"3.1", "3.1.2", "3.2-3.4", "3.5", "4.1", "4.2", "5.1", "5.2", "5.3", "5.4"}


def test_every_group_of_clause_2_1_is_declared():
    assert set(POLICY.organisation.groups) == {"staff", "students", "contractors", "guests"}
    assert POLICY.organisation.group_of(STUDENT) == "students"
    assert POLICY.organisation.group_of(STAFF) == "staff"
    assert POLICY.organisation.group_of("contractor.x@example.ac.uk") == "contractors"


@pytest.mark.parametrize(("findings", "rcpts", "action", "rule_ids"), [
    ([F("malware", "X")], (EXT,), A.REJECT, ["malware"]),
    ([F("scanner_unavailable", "clamav")], (EXT,), A.TEMPFAIL, ["scanner-unavailable"]),
    ([F("personal_data", "uk_nino")], (EXT, "x@example.org"), A.HOLD, ["personal-data-external"]),
    ([F("personal_data", "uk_nino")], ("x@example.org",), A.ACCEPT, []),
    ([F("macro", "vba"), F("desktop_client", "outlook")], (EXT,), A.ACCEPT, []),
    ([F("malformed", "bad_base64")], (EXT,), A.HOLD, ["unreadable-message"]),
])
def test_minimal_policy(findings, rcpts, action, rule_ids):
    verdict = MINIMAL.evaluate(Envelope("a@example.org", rcpts), message(), findings)
    assert (verdict.action, [m.rule_id for m in verdict.matches]) == (action, rule_ids)
