"""Sender notices (relay/quarantine/notify.py); delivery to a real sink is in the integration tests."""

from __future__ import annotations

import asyncio
from email import message_from_bytes

from relay.errors import UpstreamUnavailable
from relay.quarantine.notify import build_notice, notify_sender, rules_to_notify
from relay.verdict import Action


def test_only_rules_that_ask_and_decide_are_named(make_decision):
    assert rules_to_notify(make_decision(notify=False)) == ()
    assert len(rules_to_notify(make_decision(notify=True))) == 1
    assert rules_to_notify(make_decision(notify=True, action=Action.TAG)) == ()
    assert rules_to_notify(make_decision(notify=True, mail_from="")) == ()


def test_reject_notice_names_reason_and_clause_only(make_decision, make_settings, make_message):
    raw = make_message(subject="Payroll AB123456C")
    decision = make_decision(raw, notify=True, action=Action.REJECT, rules=(("malware", "5.1", "A virus was found"),))
    data = build_notice(make_settings(hostname="relay.test"), decision, None, rules_to_notify(decision))
    msg = message_from_bytes(data)
    assert msg["To"] == "alice@example.ac.uk" and msg["Subject"] == "Your message was not sent"
    assert msg["In-Reply-To"] == "<test@example.ac.uk>" and msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_payload()
    assert "A virus was found [rule malware, clause 5.1]" in body and "1 recipient " in body
    assert "AB123456C" not in data.decode() and "Payroll" not in data.decode()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_a_failed_notice_is_reported_not_raised(make_decision, make_settings):
    async def down(*args, **kwargs):
        raise UpstreamUnavailable("connection refused")

    ok = asyncio.run(notify_sender(make_settings(hostname="relay.test"), make_decision(notify=True), None, deliver=down))
    assert ok is False
