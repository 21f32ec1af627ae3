"""Crashes of real processes around the quarantine, on both backends.

- ``relay serve`` holding everything is SIGKILLed while clients send: every
  message that got ``250 ... held for review <id>`` is in the store, byte-exact,
  and the store's own check finds nothing wrong.
- ``relay quarantine release`` is SIGKILLed while the next hop holds back its
  answer to the end of the data: the message may have been delivered, so a
  plain release refuses it and only ``--force`` (logged) sends it again.
- The next hop drops the connection after the data: the same uncertain state,
  reported by the release itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiosmtplib
import pytest

from relay.quarantine import open_store
from relay.quarantine.store import sha256
from tests.fixtures.smtp import HELD, HOLD_ALL, ROOT

pytestmark = pytest.mark.slow

CLI_TIMEOUT = 120



def _message(sender: int, n: int) -> bytes:
    body = b"\r\n".join(os.urandom(24 * 1024).hex().encode()[i:i + 76] for i in range(0, 48 * 1024, 76))
    return (b"From: alice@example.org\r\nTo: ext@example.net\r\nSubject: crash %d-%d\r\n\r\n" % (sender, n)
            + body + b"\r\n")


async def _sender(port: int, k: int, acked: dict[str, bytes], stop: asyncio.Event) -> None:
    """Send messages one after another until the relay goes away; record each held id with its bytes."""
    n = 0
    while not stop.is_set():
        n += 1
        raw = _message(k, n)
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, start_tls=False)
        try:
            await smtp.connect()
            _, reply = await smtp.sendmail("alice@example.org", ["ext@example.net"], raw)
        except (aiosmtplib.SMTPException, OSError):
            return                              # the relay was killed: this one got no 250
        finally:
            smtp.close()
        held = HELD.search(reply)
        assert held, reply
        acked[held.group(1)] = raw


@pytest.mark.clamd
def test_sigkill_of_a_holding_relay_loses_no_acknowledged_message(start_relay, make_sink, quarantine_url):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_QUARANTINE": quarantine_url},
                        policy=HOLD_ALL)
    acked: dict[str, bytes] = {}

    async def go():
        stop = asyncio.Event()
        senders = [asyncio.create_task(_sender(relay.port, k, acked, stop)) for k in range(4)]
        deadline = time.monotonic() + 60
        while len(acked) < 20 and time.monotonic() < deadline and not all(s.done() for s in senders):
            await asyncio.sleep(0.01)
        relay.proc.kill()                       # SIGKILL with four transactions in flight
        stop.set()
        await asyncio.gather(*senders)

    asyncio.run(asyncio.wait_for(go(), 120))
    assert relay.wait(10) == -signal.SIGKILL
    assert len(acked) >= 20, "the relay did not hold enough messages before the kill"

    async def inspect():
        async with open_store(quarantine_url) as store:
            return (await store.check(), {r.id: r for r in await store.list()},
                    {qid: await store.raw(qid) for qid in acked})

    problems, rows, raws = asyncio.run(inspect())
    assert problems == []
    assert set(acked) <= set(rows)
    assert len(rows) - len(acked) <= 4          # at most the transactions in flight, never acknowledged
    for qid, raw in acked.items():
        assert raws[qid] == raw and rows[qid].sha256 == sha256(raw) and rows[qid].status == "held"
    assert sink.messages == []


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)


def _cli_env(quarantine_url: str, sink_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update({"RELAY_QUARANTINE": quarantine_url, "RELAY_UPSTREAM": f"127.0.0.1:{sink_port}",
                "RELAY_UPSTREAM_TLS": "off", "RELAY_HOSTNAME": "relay.test", "RELAY_LOG_FORMAT": "json"})
    return env


def _events(stderr: str, name: str) -> list[dict]:
    return [e for e in (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
            if e.get("event") == name]


async def _hold_one(url: str, decision) -> str:
    async with open_store(url) as store:
        return await store.hold(decision, decision.message.raw)


async def _expire_claims(url: str, qid: str):
    """Read the message as a store whose lease is short: the dead release's claim has run out."""
    async with open_store(url, lease=0.01) as store:
        await asyncio.sleep(0.05)
        return await store.get(qid)


def test_sigkill_of_a_release_waiting_for_the_final_reply_never_resends_on_its_own(
        quarantine_url, make_sink, make_decision):
    sink = make_sink(data_delay=3600)           # the next hop has the data and sits on its answer
    decision = make_decision()
    qid = asyncio.run(_hold_one(quarantine_url, decision))
    env = _cli_env(quarantine_url, sink.port)
    proc = subprocess.Popen([sys.executable, "-m", "relay.cli", "quarantine", "release", qid, "--reviewer", "rev1"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "DATA" not in sink.handler.commands and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)                    # handle_DATA runs once the final dot has arrived
        assert "DATA" in sink.handler.commands, "the release never reached the end of the data"
        proc.kill()
    finally:
        proc.kill()
        proc.wait(30)

    uncertain = asyncio.run(_expire_claims(quarantine_url, qid))
    assert uncertain.status == "release_uncertain"
    assert uncertain.history[-1].action == "release_uncertain" and "--force" in uncertain.history[-1].note

    sink.handler.data_delay = 0
    listed = json.loads(_cli(env, "list", "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(qid, "release_uncertain")]
    plain = _cli(env, "release", qid, "--reviewer", "rev2")
    assert plain.returncode == 4, plain.stderr
    assert "may already have reached the next hop" in plain.stderr and "--force" in plain.stderr
    assert "Traceback" not in plain.stderr
    assert sink.messages == []                  # the first copy was never answered, nothing else sent

    forced = _cli(env, "release", qid, "--reviewer", "rev2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"released {qid}" in forced.stdout
    [event] = _events(forced.stderr, "quarantine.release_forced")
    assert event["reviewer"] == "rev2" and event["sha256"] == sha256(decision.message.raw) and event["id"] == qid
    assert len(sink.wait_for_messages(1)) == 1
    shown = _cli(env, "show", qid)
    assert "Status:    released" in shown.stdout and "duplicate is possible" in shown.stdout


def test_a_reply_lost_after_the_final_dot_leaves_it_uncertain(quarantine_url, make_sink, make_decision):
    sink = make_sink(drop_in_data=True)         # reads the whole message, then drops the connection
    decision = make_decision()
    qid = asyncio.run(_hold_one(quarantine_url, decision))
    env = _cli_env(quarantine_url, sink.port)

    lost = _cli(env, "release", qid, "--reviewer", "rev1")
    assert lost.returncode == 6, lost.stderr
    assert "release_uncertain" in lost.stderr and "--force" in lost.stderr and "Traceback" not in lost.stderr
    assert _events(lost.stderr, "quarantine.release_uncertain")

    again = _cli(env, "release", qid, "--reviewer", "rev1")
    assert again.returncode == 4 and "may already have reached the next hop" in again.stderr
    assert sink.handler.commands.count("DATA") == 1          # a plain release sent nothing more

    shown = _cli(env, "show", qid)
    assert "Status:    release_uncertain" in shown.stdout and "no answer from the next hop" in shown.stdout
