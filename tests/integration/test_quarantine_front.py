"""The SMTP front and the quarantine together: a held message is answered 250 with its id only
once it is in the store, byte for byte, and a reviewer's release sends that original on.

The relay runs in-process (``serving.serve``) in front of a real aiosmtpd sink; the client is
aiosmtplib. The policy is a small stand-in that holds every message (the policy is not what is
tested here); the store is the real one, on both backends.
"""

from __future__ import annotations

import asyncio
import re

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from relay.config import HostPort
from relay.organisation import Organisation
from relay.pipeline import Pipeline
from relay.quarantine import lease_for, open_store
from relay.quarantine import release as actions
from relay.quarantine.store import sha256
from relay.serving import Collaborators, serve
from relay.verdict import Action, RuleMatch, Verdict
from tests.fixtures.common import free_port

MSG = (b"From: alice@example.ac.uk\r\nTo: bob@partner.example\r\nSubject: payroll\r\nMessage-ID: <p1@example.ac.uk>\r\n"
       b"\r\nNI number AB123456C.\r\n..leading dot line\r\n")


class HoldExternal:
    """Holds recipients outside example.ac.uk; accepts the rest."""

    version = "front-test"
    organisation = Organisation(internal_domains=("example.ac.uk",))
    custom_detectors = ()

    def evaluate(self, envelope, message, findings):
        per = {r: Action.ACCEPT if r.endswith("@example.ac.uk") else Action.HOLD for r in envelope.rcpt_tos}
        worst = max(per.values(), default=Action.ACCEPT)
        matches = (RuleMatch("pd-external", "5.2", Action.HOLD, "Personal data to an external recipient"),)
        return Verdict(worst, matches if worst == Action.HOLD else (), per, self.version)


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK"


@pytest.fixture
def sink():
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.mark.parametrize("recipients", [["bob@partner.example"], ["bob@partner.example", "carol@example.ac.uk"]])
def test_held_reply_comes_after_a_durable_hold_and_release_sends_the_original(quarantine_url, make_settings, sink,
                                                                             recipients):
    handler, sink_port = sink
    settings = make_settings(quarantine=quarantine_url, upstream=f"127.0.0.1:{sink_port}", hostname="relay.test",
                             upstream_tls="off").replace(listen=HostPort("127.0.0.1", 0))

    async def go():
        store = open_store(settings.quarantine, lease=lease_for(settings))
        stop = asyncio.Event()
        bound = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(settings, stop.wait, pipeline=Pipeline(settings, HoldExternal(), []),
                                         collaborators=Collaborators(store=store, close=store.close),
                                         ready=bound.set_result))
        try:
            _, port = await asyncio.wait_for(bound, 10)
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20)
            await smtp.connect()
            try:
                errors, reply = await smtp.sendmail("alice@example.ac.uk", recipients, MSG)
            finally:
                await smtp.quit()
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await store.close()
        return errors, reply

    errors, reply = asyncio.run(go())
    assert not errors
    qid = re.search(r"q-[0-9a-z]{26}", reply).group()
    forwarded_now = list(handler.received)
    assert [rcpts for _, rcpts, _ in forwarded_now] == ([["carol@example.ac.uk"]] if len(recipients) > 1 else [])

    async def review():
        async with open_store(quarantine_url) as store:  # a new connection: what the reply promised is there
            msg = await store.get(qid)
            raw = await store.raw(qid)
            done = await actions.release(store, settings, qid, "reviewer")
            return msg, raw, done

    msg, raw, done = asyncio.run(review())
    assert msg.recipients == ("bob@partner.example",) and msg.mail_from == "alice@example.ac.uk"
    assert msg.rules[0]["id"] == "pd-external" and msg.policy_version == "front-test"
    assert msg.client_address == "127.0.0.1"
    assert raw == MSG and msg.sha256 == sha256(MSG)
    assert done.message.status == "released"
    tags = b"X-Policy-Action: tag\r\nX-Policy-Rules: pd-external\r\n"   # released mail is tagged like forwarded mail
    assert handler.received[len(forwarded_now):] == [("alice@example.ac.uk", ["bob@partner.example"], tags + MSG)]
