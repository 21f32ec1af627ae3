"""The act stage with the real policy engine and the real SQLite quarantine, in front of a real sink."""

from __future__ import annotations

import asyncio
import contextlib

import aiosmtplib
import pytest
import structlog

from relay.config import HostPort
from relay.pipeline import Pipeline
from relay.policy import parse_policy
from relay.quarantine import open_store
from relay.quarantine.store import ID_RE
from relay.serving import Collaborators, serve

POLICY = """\
name: hold external
mode: enforce
organisation:
  name: Example
  internal_domains: [example.org]
defaults:
  action: accept
rules:
  - id: external-review
    clause: "3.5"
    reason: "mail to {recipients} external recipient(s) is reviewed"
    when: {external_recipients: true}
    recipients: external
    action: hold
"""

MSG = b"From: alice@example.org\r\nTo: bob@example.org, ext@example.net\r\nSubject: q\r\n\r\nHello.\r\n"


@contextlib.asynccontextmanager
async def relay_serving(settings, policy_text: str, store):
    """``serve`` (what ``relay serve`` runs) on a free port with ``policy_text``: yields an SMTP client.
    Leaving the block stops the relay, which closes ``store``."""
    stop = asyncio.Event()
    bound = asyncio.get_running_loop().create_future()
    pipeline = Pipeline(settings, parse_policy(policy_text, "policy.yaml"), [])
    task = asyncio.create_task(serve(settings, stop.wait, pipeline=pipeline,
                                     collaborators=Collaborators(store=store, close=store.close),
                                     ready=bound.set_result))
    try:
        _, port = await asyncio.wait_for(bound, 10)
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, start_tls=False)
        await smtp.connect()
        try:
            yield smtp
        finally:
            await smtp.quit()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def relay_settings(make_settings, sink, tmp_path):
    return make_settings(upstream=f"127.0.0.1:{sink.port}", hostname="relay.test", upstream_tls="off",
                         quarantine=f"sqlite:///{tmp_path}/q.sqlite3").replace(listen=HostPort("127.0.0.1", 0))


def test_mixed_verdict_with_real_engine_and_store(make_settings, make_sink, tmp_path):
    sink = make_sink()
    settings = relay_settings(make_settings, sink, tmp_path)
    store = open_store(settings.quarantine)

    async def go():
        async with relay_serving(settings, POLICY, store) as smtp:
            mixed = await smtp.sendmail("alice@example.org", ["bob@example.org", "ext@example.net"], MSG)
            only_held = await smtp.sendmail("alice@example.org", ["ext@example.net"], MSG)
            qid = only_held[1].rsplit(" ", 1)[1]
            return mixed, only_held, qid, await store.raw(qid), await store.get(qid)   # serve closes the store

    mixed, only_held, qid, raw, record = asyncio.run(asyncio.wait_for(go(), 60))
    assert mixed[1].startswith("2.0.0 held for review q-") and "(1 of 2 recipients)" in mixed[1]
    assert only_held[1] == f"2.0.0 held for review {qid}" and ID_RE.fullmatch(qid)
    assert raw == MSG
    assert record.recipients == ("ext@example.net",) and record.mail_from == "alice@example.org"
    assert record.client_address == "127.0.0.1" and record.rules[0]["id"] == "external-review"
    [forwarded] = sink.messages
    assert forwarded.rcpt_tos == ("bob@example.org",) and forwarded.data == MSG


# The same hold rule in monitor mode: on the rule, or for the whole file.
MONITORED = {
    "rule": POLICY.replace("    action: hold\n", "    action: hold\n    mode: monitor\n"),
    "file": POLICY.replace("mode: enforce", "mode: monitor"),
}


@pytest.mark.parametrize("where", MONITORED)
def test_a_monitored_hold_rule_forwards_and_logs_what_it_would_have_done(make_settings, make_sink, tmp_path, where):
    sink = make_sink()
    settings = relay_settings(make_settings, sink, tmp_path)
    store = open_store(settings.quarantine)

    async def go():
        with structlog.testing.capture_logs() as logs:
            async with relay_serving(settings, MONITORED[where], store) as smtp:
                answer = await smtp.sendmail("alice@example.org", ["bob@example.org", "ext@example.net"], MSG)
                held = await store.count()
        return answer, logs, held

    answer, logs, held = asyncio.run(asyncio.wait_for(go(), 60))
    assert answer[1].startswith("2.0.0 OK captured")           # the next hop's own reply: nothing held
    [forwarded] = sink.messages
    assert forwarded.rcpt_tos == ("bob@example.org", "ext@example.net")
    assert held == 0
    [event] = [e for e in logs if e["event"] == "decision"]
    assert event["action"] == "accept" and event["quarantine_id"] is None
    assert event["rules"] == [{"id": "external-review", "clause": "3.5", "action": "hold", "monitor": True,
                               "reason": "mail to 1 external recipient(s) is reviewed",
                               "recipients": ["ext@example.net"]}]
    assert event["deciding_rule"] is None
    assert event["reply"] == "250 2.0.0"
