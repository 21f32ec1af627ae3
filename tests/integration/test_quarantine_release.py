"""Release to a real next hop (an aiosmtpd sink on 127.0.0.1), on both store backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest
import structlog
from aiosmtpd.controller import Controller

from relay.errors import AlreadyHandled, UpstreamRejected, UpstreamUnavailable
from relay.quarantine import open_store
from relay.quarantine import release as actions
from relay.quarantine.notify import notify_sender
from relay.quarantine.store import sha256
from tests.fixtures.common import free_port

SUBPROCESS_TIMEOUT = 120


class SinkHandler:
    """Stores every message it accepts; ``refuse`` makes it answer that reply to RCPT instead."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse: str | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK queued"


@pytest.fixture
def sink():
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def settings_for(make_settings):
    def factory(url: str, port: int):
        return make_settings(quarantine=url, upstream=f"127.0.0.1:{port}", hostname="relay.test",
                             upstream_tls="off", upstream_timeout="10s")

    return factory


def run(coro):
    return asyncio.run(coro)


async def _hold(url: str, decision, recipients=None) -> str:
    async with open_store(url) as store:
        return await store.hold(decision, decision.message.raw, recipients=recipients)


def test_release_sends_the_original_bytes_once(quarantine_url, make_decision, sink, settings_for, make_message):
    handler, port = sink
    raw = make_message(body="Ünïcode body\nwith a line\n.\nthat is a dot\n")
    decision = make_decision(raw, rcpt_tos=("bob@example.org", "carol@example.net"))
    settings = settings_for(quarantine_url, port)
    qid = run(_hold(quarantine_url, decision, recipients=["carol@example.net"]))

    async def go():
        async with open_store(quarantine_url) as store:
            with structlog.testing.capture_logs() as logs:
                done = await actions.release(store, settings, qid, "rev1", "looks fine")
            return done, logs

    done, logs = run(go())
    # the original bytes, tagged like forwarded mail (X-Policy-* on top; no DKIM key configured here)
    rules = ", ".join(r["id"] for r in done.message.rules)
    tags = f"X-Policy-Action: tag\r\nX-Policy-Rules: {rules}\r\n".encode()
    assert handler.received == [("alice@example.ac.uk", ["carol@example.net"], tags + raw)]
    assert done.message.status == "released"
    assert done.reply.startswith("250")
    assert done.message.history[-1].actor == "rev1" and "looks fine" in done.message.history[-1].note
    events = [e for e in logs if e["event"] == "quarantine.release"]
    assert len(events) == 1
    assert events[0]["reviewer"] == "rev1" and events[0]["id"] == qid and events[0]["sha256"] == sha256(raw)
    assert "Ünïcode" not in repr(logs)


def test_two_concurrent_releases_deliver_exactly_once(quarantine_url, make_decision, sink, settings_for):
    handler, port = sink
    decision = make_decision()
    settings = settings_for(quarantine_url, port)
    qid = run(_hold(quarantine_url, decision))

    async def go():
        async with open_store(quarantine_url) as s1, open_store(quarantine_url) as s2:
            return await asyncio.gather(actions.release(s1, settings, qid, "rev1"),
                                        actions.release(s2, settings, qid, "rev2"), return_exceptions=True)

    results = run(go())
    assert len(handler.received) == 1
    assert sum(isinstance(r, actions.Released) for r in results) == 1
    assert sum(isinstance(r, AlreadyHandled) for r in results) == 1


def test_two_cli_processes_releasing_at_once_deliver_exactly_once(quarantine_url, make_decision, sink, settings_for):
    handler, port = sink
    decision = make_decision()
    qid = run(_hold(quarantine_url, decision))
    env = {**os.environ, "RELAY_QUARANTINE": quarantine_url, "RELAY_UPSTREAM": f"127.0.0.1:{port}",
           "RELAY_UPSTREAM_TLS": "off", "RELAY_HOSTNAME": "relay.test", "RELAY_LOG_FORMAT": "json"}
    env.pop("RELAY_CONFIG", None)
    procs = [subprocess.Popen([sys.executable, "-m", "relay.cli", "quarantine", "release", qid, "--reviewer", f"r{i}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=SUBPROCESS_TIMEOUT) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 4], outs
    assert len(handler.received) == 1
    loser = outs[[p.returncode for p in procs].index(4)]
    assert qid in loser[1] and ("being released" in loser[1] or "already released" in loser[1])


def test_release_while_the_next_hop_is_down_keeps_it_held(quarantine_url, make_decision, settings_for):
    decision = make_decision()
    settings = settings_for(quarantine_url, free_port())  # nothing listens there
    qid = run(_hold(quarantine_url, decision))

    async def go():
        async with open_store(quarantine_url) as store:
            with pytest.raises(UpstreamUnavailable):
                await actions.release(store, settings, qid, "rev1")
            return await store.get(qid)

    msg = run(go())
    assert msg.status == "held"
    assert msg.history[-1].action == "release_failed" and "unavailable" in msg.history[-1].note


def test_release_refused_by_the_next_hop_keeps_it_held(quarantine_url, make_decision, sink, settings_for):
    handler, port = sink
    handler.refuse = "550 5.1.1 no such user"
    decision = make_decision()
    settings = settings_for(quarantine_url, port)
    qid = run(_hold(quarantine_url, decision))

    async def go():
        async with open_store(quarantine_url) as store:
            with pytest.raises(UpstreamRejected) as info:
                await actions.release(store, settings, qid, "rev1")
            assert info.value.code == 550
            msg = await store.get(qid)
            handler.refuse = None
            again = await actions.release(store, settings, qid, "rev1", "retry after fix")
            return msg, again

    msg, again = run(go())
    assert msg.status == "held"
    assert msg.history[-1].action == "release_failed" and "550" in msg.history[-1].note
    assert again.message.status == "released"
    assert len(handler.received) == 1


def test_a_claim_left_by_a_dead_releaser_is_uncertain_after_the_lease_and_force_sends_it(
        quarantine_url, make_decision, sink, settings_for):
    handler, port = sink
    decision = make_decision()
    settings = settings_for(quarantine_url, port)
    qid = run(_hold(quarantine_url, decision))

    async def go():
        async with open_store(quarantine_url, lease=0.2) as store:
            await store.claim(qid, "died")  # a releaser that claimed, then died (before or after delivering)
            with pytest.raises(AlreadyHandled, match="being released"):
                await actions.release(store, settings, qid, "rev2")
            await asyncio.sleep(0.5)
            with pytest.raises(AlreadyHandled, match="--force"):
                await actions.release(store, settings, qid, "rev2")
            assert handler.received == []
            return await actions.release(store, settings, qid, "rev2", force=True)

    done = run(go())
    assert done.message.status == "released"
    assert len(handler.received) == 1


def test_notify_sender_sends_a_null_sender_notice_without_personal_data(make_decision, sink, make_settings, make_message):
    handler, port = sink
    settings = make_settings(upstream=f"127.0.0.1:{port}", hostname="relay.test", upstream_tls="off")
    raw = make_message(subject="Salary of AB123456C", body="NI AB123456C\n")
    decision = make_decision(raw, notify=True, rules=(("pd-external", "5.2", "Personal data sent to an external recipient"),))
    quiet = make_decision(raw, notify=False)
    null_sender = make_decision(raw, notify=True, mail_from="")

    async def go():
        return (await notify_sender(settings, decision, "q-" + "0" * 26), await notify_sender(settings, quiet, None),
                await notify_sender(settings, null_sender, None))

    assert run(go()) == (True, False, False)
    assert len(handler.received) == 1
    mail_from, rcpts, data = handler.received[0]
    assert mail_from == "<>" and rcpts == ["alice@example.ac.uk"]  # aiosmtpd shows the null sender as <>
    text = data.decode()
    assert "Personal data sent to an external recipient [rule pd-external, clause 5.2]" in text
    assert "q-" + "0" * 26 in text and "Auto-Submitted: auto-generated" in text
    assert "AB123456C" not in text and "Salary" not in text and "bob@example.org" not in text
