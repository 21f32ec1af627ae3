"""relay.log.decision_event: every matching rule in file order, and the deciding one named apart."""

from __future__ import annotations

import json

import pytest

from relay.log import decision_event
from relay.pipeline import Decision
from tests.unit.policy.policy_helpers import envelope, finding, message, policy_from

RULES = """
- id: contract-tag
  clause: "4.1"
  reason: "contract"
  when: {finding: {kind: contract_language}}
  action: tag
- id: figures-hold
  clause: "4.2"
  reason: "figures"
  when: {finding: {kind: unworded_figure}}
  action: hold
- id: malware-reject
  clause: "5.1"
  reason: "virus"
  when: {finding: {kind: malware}}
  action: reject
- id: desktop-watch
  clause: "5.4"
  reason: "desktop"
  mode: monitor
  when: {finding: {kind: desktop_client}}
  action: reject
"""
POLICY = policy_from(RULES)


def event_for(findings) -> dict[str, object]:
    env = envelope()
    msg = message()
    decision = Decision(env, msg, tuple(findings), POLICY.evaluate(env, msg, findings))
    event = decision_event(message_id="m", session_id="s", client={"address": "127.0.0.1"},
                           mail_from=env.mail_from, rcpt_tos=env.rcpt_tos, size=10, decision=decision)
    json.dumps(event)   # what the log writes
    return event


def ids(event) -> list[str]:
    return [r["id"] for r in event["rules"]]


@pytest.mark.parametrize(("kinds", "rules", "deciding"), [
    # the deciding rule is not the first one listed: rules stay in file order
    (["contract_language", "unworded_figure"], ["contract-tag", "figures-hold"], "figures-hold"),
    (["malware", "contract_language", "unworded_figure"], ["contract-tag", "figures-hold", "malware-reject"],
     "malware-reject"),
    (["contract_language"], ["contract-tag"], "contract-tag"),
    ([], [], None),
])
def test_rules_in_file_order_and_the_deciding_rule_named(kinds, rules, deciding):
    event = event_for([finding(k) for k in kinds])
    assert ids(event) == rules
    assert event["deciding_rule"] == deciding


def test_a_monitored_rule_never_decides():
    event = event_for([finding("desktop_client", "outlook")])
    assert event["rules"] == [{"id": "desktop-watch", "clause": "5.4", "action": "reject", "reason": "desktop",
                               "monitor": True}]
    assert (event["action"], event["deciding_rule"]) == ("accept", None)
    event = event_for([finding("desktop_client", "outlook"), finding("contract_language")])
    assert (event["action"], event["deciding_rule"]) == ("tag", "contract-tag")


def test_scanner_failure_is_listed_last_and_decides():
    event = event_for([finding("contract_language"), finding("scanner_unavailable", "language", where="message")])
    assert ids(event) == ["contract-tag", "defaults.scanner_failure"]
    assert (event["action"], event["deciding_rule"]) == ("tempfail", "defaults.scanner_failure")


def test_no_decision_no_deciding_rule():
    event = decision_event(message_id="m", session_id="s", client={"address": "127.0.0.1"}, mail_from="a@b",
                           rcpt_tos=["c@d"], size=1, action="error", error="x")
    assert (event["rules"], event["deciding_rule"]) == ([], None)
