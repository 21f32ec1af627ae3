"""Envelope and message facts: computed once per message, the same answers as Organisation."""

from __future__ import annotations

from policy_helpers import finding, message, policy_from

from relay.envelope import Envelope
from relay.policy.facts import EvalContext

POLICY = policy_from("""
    - id: r
      clause: "1"
      reason: "x"
      when: {encrypted: true}
      action: hold
    """)
ORG = POLICY.organisation


def ctx(rcpts=(), mail_from="alice@example.ac.uk", msg=None, findings=()):
    return EvalContext(Envelope(mail_from, tuple(rcpts)), msg or message(), list(findings), ORG,
                       frozenset(ORG.internal_domains), tuple("." + d for d in ORG.internal_domains))


def test_internal_answer_matches_organisation():
    c = ctx()
    for addr in ("a@example.ac.uk", "a@EXAMPLE.AC.UK", "a@students.example.ac.uk", "a@notexample.ac.uk",
                 "a@example.ac.uk.evil.com", "<a@example.ac.uk>", "no-at-sign", ""):
        assert c.is_internal(addr) == ORG.is_internal(addr), addr


def test_domains_are_derived_when_not_given():
    c = EvalContext(Envelope("a@example.ac.uk", ("b@x.org", "c@example.ac.uk")), message(), [], ORG)
    assert c.external == ("b@x.org",) and c.sender_group == "staff"


def test_recipients_split_and_scopes():
    c = ctx(["a@example.ac.uk", "b@x.org", "all-staff@example.ac.uk"])
    assert c.external == ("b@x.org",)
    assert c.internal == ("a@example.ac.uk", "all-staff@example.ac.uk")
    assert c.lists == ("all-staff@example.ac.uk",)
    assert c.scope("all") is None
    assert c.scope("external") == ("b@x.org",)
    assert c.scope("internal") == c.internal
    assert c.scope("distribution_lists") == c.lists


def test_findings_grouped_by_kind():
    f1, f2, f3 = finding("malware"), finding("personal_data", "iban"), finding("personal_data", "uk_nino")
    c = ctx(findings=[f1, f2, f3])
    assert c.by_kind == {"malware": [f1], "personal_data": [f2, f3]}


def test_visible_counts_distinct_external_to_and_cc():
    msg = message(to='"Smith, J" <j@x.org>, k@y.org', cc="J@X.ORG, carol@example.ac.uk, l@z.org")
    assert ctx(msg=msg).visible == 3


def test_sender_group():
    assert ctx(mail_from="s@students.example.ac.uk").sender_group == "students"
    assert ctx(mail_from="").sender_group == "none"
    assert ctx(mail_from="x@other.org").sender_group == "none"


def test_pgp_inline_needs_the_scanner():
    # only structure or a finding says "encrypted"; the engine does not read bodies
    msg = message(body="-----BEGIN PGP MESSAGE-----\r\nabc\r\n-----END PGP MESSAGE-----\r\n")
    assert ctx(msg=msg).encrypted is False
    assert ctx(msg=msg, findings=[finding("encrypted_message", "pgp")]).encrypted is True
