"""The SMTP edge, in-process, against real SMTP peers on 127.0.0.1.

The relay runs inside the test's event loop (``serving.serve``) in front of a
real aiosmtpd capture sink (``make_sink``); clients are aiosmtplib or raw
sockets. Only the policy (verdicts on demand) and the quarantine store (its
narrow ``hold`` interface, to show its failure) are small fakes.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiosmtplib
import pytest
from structlog.testing import capture_logs

from relay.config import HostPort
from relay.errors import StoreUnavailable
from relay.organisation import Organisation
from relay.pipeline import Pipeline
from relay.serving import Collaborators, serve
from relay.verdict import Action, RuleMatch, Verdict

MSG = (b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\n"
       b"Hello Bob.\r\n")


class FakePolicy:
    """Verdicts on demand: ``actions`` maps recipient -> Action (default accept)."""

    version = "test-1"
    organisation = Organisation(internal_domains=("example.org",))
    custom_detectors = ()

    def __init__(self, actions=None, fail: bool = False) -> None:
        self.actions = actions or {}
        self.fail = fail

    def evaluate(self, envelope, message, findings):
        if self.fail:
            raise RuntimeError("policy bug with secret details")
        per = {r: self.actions.get(r, Action.ACCEPT) for r in envelope.rcpt_tos}
        worst = max(per.values(), default=Action.ACCEPT)
        matches = tuple(RuleMatch(f"rule-{a}", "5.1", a, f"because {a}") for a in sorted(set(per.values())) if a)
        return Verdict(worst, matches, per, self.version)


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.held = []

    async def hold(self, decision, raw):
        if self.fail:
            raise StoreUnavailable("disk full")
        self.held.append((decision, raw))
        return f"q-{len(self.held):026d}"


@contextlib.asynccontextmanager
async def relay(make_settings, sink_port: int, policy=None, store=None, **overrides):
    settings = make_settings(upstream=f"127.0.0.1:{sink_port}", hostname="relay.test", upstream_tls="off",
                             **overrides).replace(listen=HostPort("127.0.0.1", 0))
    pipeline = Pipeline(settings, policy or FakePolicy(), [])
    stop = asyncio.Event()
    bound = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, stop.wait, pipeline=pipeline,
                                     collaborators=Collaborators(store=store), ready=bound.set_result))
    try:
        host, port = await asyncio.wait_for(bound, 10)
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def client(port: int, **kw) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=15, start_tls=False, **kw)
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def raw_exchange(port: int, payload: bytes, expect: int, source: str | None = None,
                       timeout: float = 10.0) -> list[bytes]:
    """Send ``payload`` in one write after the greeting; the greeting and the next ``expect`` reply lines."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0) if source else None)
    try:
        lines = [await asyncio.wait_for(reader.readline(), timeout)]
        writer.write(payload)
        await writer.drain()
        while len(lines) < expect + 1:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            if line[3:4] == b"-":
                continue                     # only the last line of a multi-line reply
            lines.append(line)
        return lines
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# --------------------------------------------------------------------------- forwarding


def test_forwards_and_passes_per_recipient_answers_through(make_settings, make_sink):
    sink = make_sink(refuse_rcpt={"nobody@example.net": "550 5.1.1 no such user here"})

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            assert (await smtp.mail("alice@example.org")).code == 250
            ok = await smtp.rcpt("bob@example.org")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await smtp.rcpt("nobody@example.net")
            answer = await smtp.data(MSG)
            await smtp.quit()
            return ok, refused.value, answer

    ok, refused, answer = run(go())
    assert ok.code == 250
    assert refused.code == 550 and refused.message.startswith("5.1.1 no such user here")
    assert answer.code == 250 and "captured" in answer.message        # the next hop's own reply
    [captured] = sink.messages
    assert captured.rcpt_tos == ("bob@example.org",)
    assert captured.data == MSG


def test_envelope_and_content_byte_exact(make_settings, make_sink):
    sink = make_sink()
    body = ("Subject: caf\u00e9\r\nFrom: j\u00f6rg@b\u00fccher.example\r\n\r\n".encode()
            + b".leading dot\r\n..two dots\r\n.\r\n".replace(b".\r\n.", b". \r\n.")
            + b"8bit \xe9\xe8 latin-1 bytes\r\n" + b"x" * 5000 + b"\r\n" + b"end\r\n")

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            await smtp.sendmail("j\u00f6rg@b\u00fccher.example", ["\u00fcser@example.org"], body,
                                mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            await smtp.sendmail("", ["bob@example.org"], b"Subject: bounce\r\n\r\nnull sender\r\n")
            await smtp.quit()

    run(go())
    first, second = sink.wait_for_messages(2)
    assert first.data == body
    assert first.mail_from == "j\u00f6rg@b\u00fccher.example" and first.rcpt_tos == ("\u00fcser@example.org",)
    assert "SMTPUTF8" in first.mail_options and "BODY=8BITMIME" in first.mail_options
    assert second.mail_from == "<>"
    assert sink.handler.sessions == 1          # one next-hop session per client session, reused


def test_ehlo_advertises_extensions_and_replies_carry_enhanced_codes(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, max_message_size=12345) as port:
            smtp = await client(port)
            ehlo = smtp.esmtp_extensions
            bad = await smtp.execute_command(b"FROB")
            noop = await smtp.noop()
            await smtp.quit()
            return ehlo, bad, noop

    ehlo, bad, noop = run(go())
    for ext in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes", "xforward"):
        assert ext in ehlo
    assert ehlo["size"] == "12345"
    assert "auth" not in ehlo and "starttls" not in ehlo
    assert bad.code == 500 and bad.message.startswith("5.5.2")
    assert noop.message.startswith("2.0.0")


# --------------------------------------------------------------------------- the next hop failing


@pytest.mark.parametrize("fault, expected", [
    ({"data_reply": "451 4.3.0 try again later"}, (451, "4.3.0")),
    ({"data_reply": "554 5.7.0 not today"}, (554, "5.7.0")),
    ({"drop_in_data": True}, (451, "4.4.1")),
    ({"data_delay": 3.0}, (451, "4.4.1")),
])
def test_next_hop_failure_at_data_never_gives_250(make_settings, make_sink, fault, expected):
    sink = make_sink(**fault)

    async def go():
        async with relay(make_settings, sink.port, upstream_timeout=1) as port:
            smtp = await client(port)
            await smtp.mail("alice@example.org")
            await smtp.rcpt("bob@example.org")
            with pytest.raises(aiosmtplib.SMTPDataError) as failed:
                await smtp.data(MSG)
            await smtp.quit()
            return failed.value

    failed = run(go())
    assert (failed.code, failed.message[:5]) == expected
    assert sink.messages == []


def test_next_hop_down_or_refusing_gives_4xx_before_data(make_settings, make_sink):
    from tests.fixtures.common import free_port

    refusing = make_sink(refuse_connect=True)

    async def go(port_of_next_hop):
        async with relay(make_settings, port_of_next_hop) as port:
            smtp = await client(port)
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await smtp.mail("alice@example.org")
            await smtp.quit()
            return refused.value

    for next_hop in (free_port(), refusing.port):
        refused = run(go(next_hop))
        assert refused.code == 451 and refused.message.startswith("4.4.1")


def test_next_hop_refusing_sender_is_passed_through(make_settings, make_sink):
    sink = make_sink(refuse_mail="553 5.7.1 sender not allowed here")

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await smtp.mail("alice@example.org")
            await smtp.quit()
            return refused.value

    refused = run(go())
    assert refused.code == 553 and refused.message == "5.7.1 sender not allowed here"
