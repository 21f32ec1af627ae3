"""How rules combine: all matches reported, most severe enforced action wins, per recipient."""

from __future__ import annotations

import pytest
from policy_helpers import ORG, envelope, finding, message, policy_from

from relay.envelope import Envelope
from relay.verdict import Action, TagSpec

EXT, EXT2 = "bob@partner.example.com", "eve@other.org"
INT, LIST = "carol@example.ac.uk", "all-staff@example.ac.uk"

RULES = """
- id: pd-external
  clause: "5.2"
  reason: "personal data ({types}) to {recipients} external"
  when: {finding: {kind: personal_data, confidence: high, protected: false}}
  recipients: external
  action: hold
  notify_sender: true
- id: pd-internal
  clause: "5.2"
  reason: "personal data internally"
  when: {finding: {kind: personal_data}}
  recipients: internal
  action: tag
  tag: {headers: {X-PD: "yes"}}
- id: list
  clause: "3.5"
  reason: "list"
  when: {distribution_list: true}
  recipients: distribution_lists
  action: hold
- id: macro
  clause: "5.1"
  reason: "macro in {where}"
  when: {finding: {kind: macro}}
  action: hold
- id: exe
  clause: "5.1"
  reason: "{kind} {type}"
  when: {finding: {kind: executable}}
  action: reject
- id: desktop
  clause: "5.4"
  reason: "desktop {type}"
  when: {finding: {kind: desktop_client}}
  action: tag
  tag: {headers: {X-Client: desktop}, subject_prefix: "[DESKTOP]"}
- id: contract
  clause: "4.1"
  reason: "contract"
  when: {finding: {kind: contract_language}}
  action: tag
  tag: {headers: {X-Client: contract, X-Contract: review}, subject_prefix: "[CONTRACT]"}
- id: watch-abuse
  clause: "3.4"
  reason: "abusive {type}"
  when: {finding: {kind: abusive_language}}
  action: reject
  mode: monitor
- id: failure
  clause: "5.1"
  reason: "scanner {scanner} down"
  when: {finding: {kind: scanner_unavailable, type: clamav}}
  action: tempfail
"""

F = finding
A = Action

# (findings, recipients, expected action, expected rule ids, expected per-recipient actions)
TABLE = [
    ([], (EXT,), A.ACCEPT, [], {EXT: A.ACCEPT}),
    ([F("personal_data", "uk_nino")], (EXT,), A.HOLD, ["pd-external"], {EXT: A.HOLD}),
    ([F("personal_data", "uk_nino")], (INT, EXT, EXT2), A.HOLD, ["pd-external", "pd-internal"],
     {INT: A.TAG, EXT: A.HOLD, EXT2: A.HOLD}),
    ([F("personal_data", "uk_nino")], (INT,), A.TAG, ["pd-internal"], {INT: A.TAG}),
    ([F("personal_data", "uk_nino", protected=True)], (INT, EXT), A.TAG, ["pd-internal"], {INT: A.TAG, EXT: A.ACCEPT}),
    ([], (INT, LIST), A.HOLD, ["list"], {INT: A.ACCEPT, LIST: A.HOLD}),
    # most severe enforced action wins, every match reported
    ([F("macro", "vba"), F("executable", "pe"), F("desktop_client", "outlook")], (EXT,), A.REJECT,
     ["macro", "exe", "desktop"], {EXT: A.REJECT}),
    ([F("macro", "vba"), F("desktop_client", "outlook")], (EXT, INT), A.HOLD, ["macro", "desktop"],
     {EXT: A.HOLD, INT: A.HOLD}),
    # monitor: reported, not enforced
    ([F("abusive_language", "abusive")], (EXT,), A.ACCEPT, ["watch-abuse"], {EXT: A.ACCEPT}),
    ([F("abusive_language", "abusive"), F("desktop_client", "outlook")], (EXT,), A.TAG, ["desktop", "watch-abuse"],
     {EXT: A.TAG}),
    # an explicit rule covers the scanner failure: the default does not add a second match
    ([F("scanner_unavailable", "clamav")], (EXT,), A.TEMPFAIL, ["failure"], {EXT: A.TEMPFAIL}),
    # a failure no rule covers: fail closed by the built-in default
    ([F("scanner_unavailable", "personal_data")], (EXT,), A.TEMPFAIL, ["defaults.scanner_failure"], {EXT: A.TEMPFAIL}),
    # the default does not lower a reject
    ([F("scanner_unavailable", "filetypes"), F("executable", "pe")], (EXT,), A.REJECT, ["exe"], {EXT: A.REJECT}),
]


@pytest.mark.parametrize(("findings", "rcpts", "action", "rule_ids", "per_rcpt"), TABLE,
                         ids=[str(i) for i in range(len(TABLE))])
def test_combination_table(findings, rcpts, action, rule_ids, per_rcpt):
    policy = policy_from(RULES)
    verdict = policy.evaluate(envelope("alice@example.ac.uk", *rcpts), message(), findings)
    assert verdict.action is action
    assert [m.rule_id for m in verdict.matches] == rule_ids
    assert dict(verdict.recipient_actions) == per_rcpt
    assert list(verdict.recipient_actions) == list(rcpts)
    assert verdict.policy_version == policy.version


def test_scoped_match_names_its_recipients_and_counts_them():
    policy = policy_from(RULES)
    verdict = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT, EXT2), message(),
                              [F("personal_data", "uk_nino", count=2), F("personal_data", "iban")])
    pd = verdict.matches[0]
    assert pd.recipients == (EXT, EXT2)
    assert pd.notify_sender is True
    assert pd.reason == "personal data (uk_nino (2), iban (1)) to 2 external"
    assert verdict.matches[1].recipients == (INT,)
    assert verdict.recipients_with(A.HOLD) == (EXT, EXT2)
    assert verdict.deciding is pd


def test_unscoped_match_has_no_recipient_list():
    verdict = policy_from(RULES).evaluate(envelope("alice@example.ac.uk", EXT), message(), [F("macro", "vba")])
    assert verdict.matches[0].recipients is None
    assert verdict.matches[0].reason == "macro in body"


def test_monitor_match_is_flagged():
    verdict = policy_from(RULES).evaluate(envelope(), message(), [F("abusive_language", "abusive")])
    [m] = verdict.matches
    assert m.monitor is True and m.action is A.REJECT and m.as_dict()["monitor"] is True
    assert verdict.enforced == () and verdict.deciding is None


def test_policy_wide_monitor_enforces_nothing_but_scanner_failure():
    policy = policy_from(RULES, head="mode: monitor\n" + ORG)
    verdict = policy.evaluate(envelope(), message(), [F("executable", "pe"), F("macro", "vba")])
    assert verdict.action is A.ACCEPT and all(m.monitor for m in verdict.matches)
    assert [m.rule_id for m in verdict.matches] == ["macro", "exe"]
    verdict = policy.evaluate(envelope(), message(), [F("scanner_unavailable", "clamav")])
    assert verdict.action is A.TEMPFAIL
    assert [(m.rule_id, m.monitor) for m in verdict.matches] == [("failure", True), ("defaults.scanner_failure", False)]
    assert "clamav" in verdict.matches[-1].reason and verdict.deciding.clause == "defaults"


def test_scanner_failure_default_is_configurable_but_fail_closed():
    policy = policy_from(RULES, head=ORG + "defaults: {scanner_failure: hold}\n")
    verdict = policy.evaluate(envelope(), message(), [F("scanner_unavailable", "language")])
    assert verdict.action is A.HOLD and verdict.matches[-1].rule_id == "defaults.scanner_failure"


def test_scanner_failure_default_covers_every_recipient_below_it():
    # hold for the external recipient does not hide that the internal one would get unscanned mail
    policy = policy_from(RULES, head=ORG + "defaults: {scanner_failure: hold}\n")
    verdict = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT), message(),
                              [F("personal_data", "iban"), F("scanner_unavailable", "language")])
    assert verdict.recipient_actions == {INT: A.HOLD, EXT: A.HOLD}
    assert verdict.matches[-1].rule_id == "defaults.scanner_failure" and verdict.matches[-1].recipients is None


def test_default_action_applies_to_unmatched_recipients():
    policy = policy_from(RULES, head=ORG + "defaults: {action: tag}\n")
    verdict = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT), message(), [F("personal_data", "iban")])
    assert verdict.recipient_actions == {INT: A.TAG, EXT: A.HOLD}


def test_tags_collect_headers_and_prefixes_of_enforced_tag_rules():
    policy = policy_from(RULES)
    verdict = policy.evaluate(envelope(), message(), [F("contract_language", "offer"), F("desktop_client", "outlook")])
    assert verdict.action is A.TAG
    # first rule (file order) wins a header both set; prefixes joined in order
    assert verdict.tag == TagSpec((("X-Client", "desktop"), ("X-Contract", "review")), "[DESKTOP] [CONTRACT]")


def test_tags_only_for_recipients_that_are_forwarded_tagged():
    policy = policy_from(RULES)
    # internal recipient tagged by pd-internal, external held: the forwarded copy carries X-PD
    verdict = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT), message(), [F("personal_data", "iban")])
    assert verdict.tag == TagSpec((("X-PD", "yes"),), "")
    # every recipient held: nothing is forwarded, no tag
    verdict = policy.evaluate(envelope("alice@example.ac.uk", EXT), message(),
                              [F("personal_data", "iban"), F("desktop_client", "outlook"), F("macro", "vba")])
    assert verdict.action is A.HOLD and verdict.tag == TagSpec()


def test_monitored_tag_rule_adds_no_tag():
    policy = policy_from(RULES.replace("action: tag\n  tag: {headers: {X-Client: desktop}",
                                       "action: tag\n  mode: monitor\n  tag: {headers: {X-Client: desktop}"))
    verdict = policy.evaluate(envelope(), message(), [F("desktop_client", "outlook")])
    assert verdict.action is A.ACCEPT and verdict.tag == TagSpec()


def test_no_recipients_still_gets_a_verdict():
    verdict = policy_from(RULES).evaluate(Envelope("alice@example.ac.uk", ()), message(), [F("macro", "vba")])
    assert verdict.action is A.HOLD and verdict.recipient_actions == {}


def test_duplicate_recipients_collapse():
    verdict = policy_from(RULES).evaluate(envelope("a@example.ac.uk", EXT, EXT), message(), [F("personal_data", "iban")])
    assert verdict.recipient_actions == {EXT: A.HOLD}


def test_reason_never_contains_evidence():
    secret = "AB123456C"
    verdict = policy_from(RULES).evaluate(envelope(), message(), [F("personal_data", "uk_nino", evidence=secret)])
    assert secret not in repr(verdict)


def test_evaluate_is_repeatable_and_does_not_keep_state():
    policy = policy_from(RULES)
    a = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT), message(), [F("personal_data", "iban")])
    b = policy.evaluate(envelope("alice@example.ac.uk", INT, EXT), message(), [F("personal_data", "iban")])
    assert a == b
    c = policy.evaluate(envelope("s@students.example.ac.uk", EXT), message(), [])
    assert c.action is A.ACCEPT


def test_policy_kinds_name_every_kind_a_condition_looks_at():
    policy = policy_from("""
        - id: a
          clause: "1"
          reason: "x"
          when: {all: [{finding: {kind: [macro, dde]}}, {not: {finding: {kind: malware}}}, {encrypted: false}]}
          action: hold
        - id: b
          clause: "1"
          reason: "x"
          when: {any: [{signed: true}, {external_recipients: true}]}
          action: tag
          mode: monitor
        """)
    assert policy.kinds == {"macro", "dde", "malware", "encrypted_message", "signed_message"}
    assert policy.rules[0].kinds == {"macro", "dde", "malware", "encrypted_message"}
    assert policy.summary()["kinds"] == sorted(policy.kinds)
