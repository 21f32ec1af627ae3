"""Durability across processes: a SIGKILLed holder leaves nothing half-stored; replicas share one store."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from relay.quarantine import open_store
from relay.quarantine.store import ID_RE, sha256

READ_TIMEOUT = 60.0

HOLDER = r'''
import asyncio, os, sys
from relay.envelope import Envelope
from relay.message import parse
from relay.pipeline import Decision
from relay.verdict import Action, RuleMatch, Verdict
from relay.quarantine import open_store

async def holder(store, k):
    n = 0
    while True:
        n += 1
        body = os.urandom(96 * 1024).hex().encode()  # ~190 KB: each hold spends real time writing
        raw = b"From: a@example.ac.uk\r\nTo: b@example.org\r\nSubject: %d-%d\r\n\r\n" % (k, n) + body + b"\r\n"
        d = Decision(Envelope("a@example.ac.uk", ("b@example.org",)), parse(raw), (),
                     Verdict(Action.HOLD, (RuleMatch("r", "5.2", Action.HOLD, "why"),)))
        qid = await store.hold(d, raw)
        print(qid, flush=True)

async def main(url):
    async with open_store(url) as store:  # four concurrent holders: SQLite commits them in groups
        await asyncio.gather(*(holder(store, k) for k in range(4)))

asyncio.run(main(sys.argv[1]))
'''


def _read_ids(proc: subprocess.Popen, want: int) -> list[str]:
    ids: list[str] = []
    deadline = time.monotonic() + READ_TIMEOUT
    buffer = b""
    while len(ids) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        ids.extend(line.decode() for line in lines)
    return ids


@pytest.mark.slow
def test_sigkill_mid_hold_leaves_nothing_half_stored(quarantine_url):
    printed: list[str] = []
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, quarantine_url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            printed += _read_ids(proc, 10 + 5 * round_)
            proc.send_signal(signal.SIGKILL)  # most likely in the middle of the next hold
        finally:
            proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()
            proc.stderr.close()
    assert len(printed) >= 30, "the holder did not get going"
    assert all(ID_RE.fullmatch(i) for i in printed)

    async def go():
        async with open_store(quarantine_url) as store:
            problems = await store.check()
            rows = await store.list()
            raws = {i: await store.raw(i) for i in printed}
            return problems, rows, raws

    problems, rows, raws = run(go())
    assert problems == []
    stored = {r.id: r for r in rows}
    assert set(printed) <= set(stored)  # every hold that returned survived the kill
    assert len(stored) - len(printed) <= 3 * 4  # at most one committed-but-unprinted hold per holder per kill
    for qid, raw in raws.items():
        assert sha256(raw) == stored[qid].sha256


def run(coro):
    return asyncio.run(coro)


@pytest.mark.postgres
@pytest.mark.clamd
def test_two_processes_share_one_postgres_store(postgres_url, start_relay, make_sink):
    """A `relay serve` replica holds over SMTP; another process's CLI releases from the shared store."""
    import aiosmtplib

    from tests.fixtures.smtp import ROOT
    from tests.fixtures.smtp import HELD, HOLD_ALL

    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_QUARANTINE": postgres_url},
                        policy=HOLD_ALL)
    raw = b"From: alice@example.org\r\nTo: ext@example.net\r\nSubject: shared\r\n\r\nHello.\r\n"

    async def send() -> str:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        try:
            _, reply = await smtp.sendmail("alice@example.org", ["ext@example.net"], raw)
            await smtp.quit()
        finally:
            smtp.close()
        return reply

    reply = run(asyncio.wait_for(send(), 60))
    held = HELD.search(reply)
    assert held, reply
    qid = held.group(1)
    assert sink.messages == []          # held, not forwarded
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update({"RELAY_QUARANTINE": postgres_url, "RELAY_UPSTREAM": f"127.0.0.1:{sink.port}",
                "RELAY_UPSTREAM_TLS": "off", "RELAY_HOSTNAME": "relay.test", "RELAY_LOG_FORMAT": "json"})
    out = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "release", qid, "--reviewer", "ops",
                          "--note", "checked"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"released {qid}" in out.stdout
    tags = b"X-Policy-Action: tag\r\nX-Policy-Rules: external-review\r\n"   # released mail is tagged
    [released] = sink.wait_for_messages(1)
    assert (released.mail_from, released.rcpt_tos, released.data) == ("alice@example.org", ("ext@example.net",),
                                                                       tags + raw)

    async def status():
        async with open_store(postgres_url) as store:
            return await store.get(qid)

    msg = run(status())
    assert msg.status == "released" and msg.history[-1].actor == "ops" and msg.sha256 == sha256(raw)
