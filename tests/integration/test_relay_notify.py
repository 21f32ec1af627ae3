"""A hold made by a rule with notify_sender tells the internal sender why, through the next hop."""

from __future__ import annotations

import asyncio

import aiosmtplib

POLICY = """\
name: notify test
organisation:
  name: Example
  internal_domains: [example.org]
rules:
  - id: review-external
    clause: "5.2"
    reason: "mail to external recipients is reviewed"
    when: {external_recipients: true}
    recipients: external
    action: hold
    notify_sender: true
"""

MSG = (b"From: alice@example.org\r\nTo: ext@example.net\r\nSubject: the secret plan\r\n"
       b"Message-ID: <n1@example.org>\r\n\r\nNHS number 943 476 5919\r\n")


def test_held_message_notifies_the_sender_without_its_content(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=POLICY)

    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        answer = await smtp.sendmail("alice@example.org", ["ext@example.net"], MSG)
        await smtp.quit()
        return answer

    _, reply = asyncio.run(asyncio.wait_for(go(), 60))
    assert reply.startswith("2.0.0 held for review q-")
    qid = reply.rsplit(" ", 1)[1]
    [notice] = sink.wait_for_messages(1, timeout=20)
    assert notice.mail_from in ("", "<>") and notice.rcpt_tos == ("alice@example.org",)
    text = notice.data.decode("utf-8", "replace")
    assert qid in text and "review-external" in text and "5.2" in text
    assert "943 476 5919" not in text and "ext@example.net" not in text
    [event] = relay.wait_for_event("quarantine.notify")
    assert event["id"] == qid
