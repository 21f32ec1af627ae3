"""The SMTP edge, in-process, against real SMTP peers on 127.0.0.1.

The relay runs inside the test's event loop (``serving.serve``) in front of a
real aiosmtpd capture sink (``make_sink``); clients are aiosmtplib or raw
sockets. Only the policy (verdicts on demand) and the quarantine store (its
narrow ``hold`` interface, to show its failure) are small fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from relay.config import HostPort
from relay.errors import StoreUnavailable
from relay.organisation import Organisation
from relay.pipeline import Pipeline
from relay.server import RelaySMTP, ServerState
from relay.serving import Collaborators, serve
from relay.verdict import Action, RuleMatch, Verdict
from tests.fixtures.smtp import self_signed, server_context

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
async def relay(make_settings, sink_port: int, policy=None, store=None, tagger=None, signer=None, **overrides):
    values = {"upstream": f"127.0.0.1:{sink_port}", "hostname": "relay.test", "upstream_tls": "off", **overrides}
    settings = make_settings(**values).replace(listen=HostPort("127.0.0.1", 0))
    pipeline = Pipeline(settings, policy or FakePolicy(), [])
    stop = asyncio.Event()
    bound = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, stop.wait, pipeline=pipeline,
                                     collaborators=Collaborators(store=store, tagger=tagger, signer=signer),
                                     ready=bound.set_result))
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
    for _ in range(200):                       # the client's QUIT is passed on (bounded wait)
        if sink.handler.commands[-1:] == ["QUIT"]:
            break
        time.sleep(0.01)
    assert sink.handler.commands[-1] == "QUIT"


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


def test_the_ehlo_reply_is_written_at_once(make_settings, make_sink, monkeypatch):
    """One write per reply: a multi-line EHLO reply written line by line costs a send and a
    wake-up of the client per line."""
    pushed = []
    push = RelaySMTP.push

    async def recording(self, status):
        pushed.append(status)
        await push(self, status)

    monkeypatch.setattr(RelaySMTP, "push", recording)
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            extensions = smtp.esmtp_extensions
            await smtp.quit()
            return extensions

    extensions = run(go())
    [ehlo] = [p for p in pushed if p.startswith("250-")]
    assert ehlo.split("\r\n")[-1] == "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"
    assert "pipelining" in extensions and "xforward" in extensions


def _protocol(make_settings) -> RelaySMTP:
    from relay.act import RelayHandler

    settings = make_settings(hostname="relay.test")
    return RelaySMTP(ServerState(settings, RelayHandler(settings, None), None, "relay.test"))


def test_the_protocol_finds_the_same_hooks_as_with_a_full_dir(make_settings):
    """``RelaySMTP.__dir__`` and ``RelayHandler.__dir__`` list only what aiosmtpd looks for
    at each connection; what it finds must be what the full listing gives."""
    async def go():
        protocol = _protocol(make_settings)
        full = object.__dir__(protocol)
        assert sorted(protocol._smtp_methods) == sorted(n[5:] for n in full if n.startswith("smtp_"))
        assert "XFORWARD" in protocol._smtp_methods and "AUTH" in protocol._smtp_methods
        assert sorted(protocol._auth_methods) == ["LOGIN", "PLAIN"]
        hooks = object.__dir__(protocol.event_handler)
        assert sorted(protocol._handle_hooks) == sorted(n[7:] for n in hooks if n.startswith("handle_"))
        assert {"MAIL", "RCPT", "RSET", "QUIT"} <= set(protocol._handle_hooks)

    asyncio.run(go())


_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"


@hsettings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.text(alphabet=_ATEXT + ".@<>()\" \t\\[]:,;\x00\r\né", max_size=24),
    st.builds(lambda local, domain, rest: f"<{local}@{domain}>{rest}",
              st.text(alphabet=_ATEXT + ".", min_size=1, max_size=10),
              st.text(alphabet="abcz09-.", min_size=1, max_size=10),
              st.sampled_from(["", " SIZE=20480", "  BODY=8BITMIME", " ", "\t(comment) X", "(c)", ">", "\x0b X"])),
))
def test_address_parse_matches_aiosmtpd(arg):
    """The fast path for plain ``<local@domain>`` gives exactly what aiosmtpd's own parse gives."""
    def outcome(parse):
        try:
            return parse(arg)
        except Exception as exc:  # noqa: BLE001 - the stdlib parser raises on some input ('0@'): so must we
            return type(exc)

    protocol = RelaySMTP.__new__(RelaySMTP)
    stock = SMTP.__new__(SMTP)
    for limit in (0, 3):
        protocol.local_part_limit = stock.local_part_limit = limit
        assert outcome(protocol._getaddr) == outcome(stock._getaddr)


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


# --------------------------------------------------------------------------- acting on the verdict


async def _send(port: int, rcpts, data: bytes = MSG):
    """MAIL, RCPTs, DATA; the DATA reply as (code, message) whatever it is."""
    smtp = await client(port)
    await smtp.mail("alice@example.org")
    for rcpt in rcpts:
        await smtp.rcpt(rcpt)
    try:
        answer = await smtp.data(data)
        result = (answer.code, answer.message)
    except aiosmtplib.SMTPDataError as exc:
        result = (exc.code, exc.message)
    await smtp.quit()
    return result


def test_reject_cites_rule_and_clause_and_forwards_nothing(make_settings, make_sink):
    sink = make_sink()
    policy = FakePolicy({"bob@example.org": Action.REJECT})

    async def go():
        async with relay(make_settings, sink.port, policy=policy) as port:
            return await _send(port, ["bob@example.org", "carol@example.org"])

    code, text = run(go())
    assert (code, text) == (550, "5.7.1 because reject [rule rule-reject, clause 5.1]")
    assert sink.messages == []
    assert [c for c in sink.handler.commands if c != "QUIT"][-1] == "RSET"   # the next hop's transaction ended


def test_tempfail_answers_451(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy({"bob@example.org": Action.TEMPFAIL})) as port:
            return await _send(port, ["bob@example.org"])

    code, text = run(go())
    assert code == 451 and text.startswith("4.7.1 because tempfail [rule rule-tempfail")
    assert sink.messages == []


def test_hold_without_store_is_451_never_250(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy({"bob@example.org": Action.HOLD})) as port:
            return await _send(port, ["bob@example.org"])

    code, text = run(go())
    assert code == 451 and text.startswith("4.3.0")
    assert sink.messages == []


def test_hold_stores_and_answers_with_the_id(make_settings, make_sink):
    sink = make_sink()
    store = FakeStore()

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy({"bob@example.org": Action.HOLD}),
                         store=store) as port:
            return await _send(port, ["bob@example.org"])

    code, text = run(go())
    assert (code, text) == (250, f"2.0.0 held for review q-{1:026d}")
    [(decision, raw)] = store.held
    assert raw == MSG and decision.envelope.rcpt_tos == ("bob@example.org",)
    assert sink.messages == []


def test_mixed_verdict_forwards_to_some_and_holds_for_others(make_settings, make_sink):
    sink = make_sink()
    store = FakeStore()
    policy = FakePolicy({"ext@example.net": Action.HOLD, "tagged@example.org": Action.TAG})

    async def go():
        async with relay(make_settings, sink.port, policy=policy, store=store) as port:
            return await _send(port, ["bob@example.org", "ext@example.net", "tagged@example.org"])

    code, text = run(go())
    assert code == 250 and text.startswith(f"2.0.0 held for review q-{1:026d} (1 of 3 recipients); forwarded")
    [captured] = sink.messages
    assert captured.rcpt_tos == ("bob@example.org", "tagged@example.org")
    [(decision, _)] = store.held
    assert decision.envelope.rcpt_tos == ("ext@example.net",)
    # the next-hop transaction was re-opened for the forwarded recipients only
    assert [c for c in sink.handler.commands if c != "QUIT"][-5:] == ["RSET", "MAIL alice@example.org", "RCPT bob@example.org",
                                         "RCPT tagged@example.org", "DATA"]


def test_mixed_verdict_with_store_down_delivers_nothing(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy({"ext@example.net": Action.HOLD}),
                         store=FakeStore(fail=True)) as port:
            return await _send(port, ["bob@example.org", "ext@example.net"])

    code, text = run(go())
    assert code == 451 and text.startswith("4.3.0 Quarantine unavailable")
    assert sink.messages == []


def test_unexpected_exception_is_generic_451_with_traceback_logged(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy(fail=True)) as port:
            return await _send(port, ["bob@example.org"])

    with capture_logs() as logs:
        code, text = run(go())
    assert (code, text) == (451, "4.3.0 Internal error, try again later")
    assert "secret" not in text
    errors = [e for e in logs if e["event"] == "message.error"]
    assert errors and errors[0]["exc_info"].__class__ is RuntimeError
    [decision] = [e for e in logs if e["event"] == "decision"]
    assert decision["action"] == "error" and decision["reply"] == "451 4.3.0"
    assert sink.messages == []


def test_one_decision_event_per_message_with_xforward_client(make_settings, make_sink):
    sink = make_sink()
    policy = FakePolicy({"bob@example.org": Action.TAG})

    async def go():
        async with relay(make_settings, sink.port, policy=policy) as port:
            smtp = await client(port)
            xf = await smtp.execute_command(b"XFORWARD", b"ADDR=192.0.2.7", b"NAME=mx.example.com",
                                            b"HELO=[192.0.2.7]")
            await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
            await smtp.sendmail("alice@example.org", ["carol@example.org"], MSG)
            await smtp.quit()
            return xf

    with capture_logs() as logs:
        xf = run(go())
    assert xf.code == 250
    first, second = [e for e in logs if e["event"] == "decision"]
    assert first["client"]["address"] == "192.0.2.7" and first["client"]["name"] == "mx.example.com"
    assert first["client"]["peer"] == "127.0.0.1"
    assert second["client"]["address"] == "127.0.0.1"      # XFORWARD lasts one transaction
    assert first["envelope"] == {"mail_from": "alice@example.org", "rcpt_tos": ["bob@example.org"]}
    assert first["action"] == "tag" and first["size"] == len(MSG) and first["policy_version"] == "test-1"
    assert first["rules"] == [{"id": "rule-tag", "clause": "5.1", "action": "tag", "reason": "because tag"}]
    assert first["header_message_id"] == "<m1@example.org>" and first["reply"] == "250 2.0.0"
    assert {"parse", "total", "receive", "act"} <= set(first["timings_ms"])


# --------------------------------------------------------------------------- smuggling and limits

SMUGGLED = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nspoofed\r\n"
SMUGGLING_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.\r"]


@pytest.mark.parametrize("end", SMUGGLING_ENDS, ids=[repr(e) for e in SMUGGLING_ENDS])
def test_smuggling_payloads_never_split_a_message(make_settings, make_sink, end):
    sink = make_sink()
    payload = (b"EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
               b"Subject: one\r\n\r\nfirst part" + end + SMUGGLED + b"\r\n.\r\nQUIT\r\n")

    async def go():
        async with relay(make_settings, sink.port) as port:
            return await raw_exchange(port, payload, expect=6)

    lines = run(go())
    # EHLO, MAIL, RCPT, 354, then ONE reply for the whole data, then QUIT: nothing smuggled through
    assert [line[:3] for line in lines[1:5]] == [b"250", b"250", b"250", b"354"]
    assert lines[5].startswith(b"550 5.5.2 Bare CR or LF")
    assert lines[6].startswith(b"221 2.0.0")
    assert sink.messages == []
    assert not any("evil" in c for c in sink.handler.commands)


def test_aiosmtpd_sink_itself_ends_data_only_on_crlf_dot_crlf(make_sink):
    """The capture sink (aiosmtpd >= 1.4.5) keeps a bare-LF 'end' inside the data: proof for the fixture."""
    sink = make_sink()
    payload = (b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
               b"x\n.\nMAIL FROM:<evil@attacker.example>\r\n.\r\nQUIT\r\n")

    async def go():
        return await raw_exchange(sink.port, payload, expect=6)

    run(go())
    [captured] = sink.wait_for_messages(1)
    assert captured.data == b"x\n.\nMAIL FROM:<evil@attacker.example>\r\n"
    assert not any("evil" in c for c in sink.handler.commands)


def test_size_limits(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, max_message_size=2000, max_header_size=500) as port:
            smtp = await client(port)
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as declared:
                await smtp.mail("alice@example.org", options=["SIZE=5000"])
            big = await _send(port, ["bob@example.org"], MSG + b"y" * 3000 + b"\r\n")
            header = await _send(port, ["bob@example.org"], b"X-Long: " + b"h" * 600 + b"\r\n" + MSG)
            fits = await _send(port, ["bob@example.org"], MSG)
            await smtp.quit()
            return declared.value, big, header, fits

    declared, big, header, fits = run(go())
    assert declared.code == 552 and declared.message.startswith("5.3.4")
    assert big[0] == 552 and big[1].startswith("5.3.4 Message size")
    assert header[0] == 552 and header[1].startswith("5.3.4 Message header size")
    assert fits[0] == 250
    assert len(sink.messages) == 1


def test_recipient_and_line_limits(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, max_recipients=2, max_line_length=100) as port:
            smtp = await client(port)
            await smtp.mail("alice@example.org")
            await smtp.rcpt("a@example.org")
            await smtp.rcpt("b@example.org")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as third:
                await smtp.rcpt("c@example.org")
            long_line = await smtp.execute_command(b"NOOP", b"x" * 120)
            await smtp.quit()
            return third.value, long_line

    third, long_line = run(go())
    assert third.code == 452 and third.message.startswith("4.5.3")
    assert long_line.code == 500 and long_line.message.startswith("5.5.2")


# --------------------------------------------------------------------------- access and sessions


def test_client_outside_allowed_networks_gets_5xx_before_data(make_settings, make_sink):
    sink = make_sink()
    payload = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nQUIT\r\n"

    async def go():
        async with relay(make_settings, sink.port, allowed_clients="127.0.0.1/32") as port:
            denied = await raw_exchange(port, payload, expect=5, source="127.0.0.2")
            allowed = await raw_exchange(port, b"EHLO c\r\nQUIT\r\n", expect=2, source="127.0.0.1")
            return denied, allowed

    denied, allowed = run(go())
    assert denied[0].startswith(b"554 5.7.1")
    assert [line[:9] for line in denied[1:]] == [b"503 5.7.1"] * 4 + [b"221 2.0.0"]
    assert allowed[0].startswith(b"220 relay.test")
    assert sink.handler.sessions == 0 and sink.messages == []


def test_sessions_past_max_get_421_and_others_are_served(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, max_sessions=1) as port:
            first = await client(port)
            with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
                await client(port)
            await first.sendmail("alice@example.org", ["bob@example.org"], MSG)
            await first.quit()
            return refused.value

    refused = run(go())
    assert refused.code == 421 and refused.message.startswith("4.7.0")
    assert len(sink.messages) == 1


def test_command_timeout_closes_with_421(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, command_timeout=0.5) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                greeting = await reader.readline()
                closing = await asyncio.wait_for(reader.readline(), 10)
                eof = await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
            return greeting, closing, eof

    greeting, closing, eof = run(go())
    assert greeting.startswith(b"220 ")
    assert closing.startswith(b"421 4.4.2")
    assert eof == b""


def test_message_refused_while_received_still_gets_one_decision_event(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, max_message_size=1000) as port:
            return await _send(port, ["bob@example.org"], MSG + b"q" * 2000 + b"\r\n")

    with capture_logs() as logs:
        code, _ = run(go())
    assert code == 552
    [event] = [e for e in logs if e["event"] == "decision"]
    assert event["action"] == "refused" and event["reply"] == "552 5.3.4" and event["size"] > 2000


def test_data_timeout_closes_with_421_and_forwards_nothing(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, data_timeout=0.5) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                await reader.readline()
                writer.write(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
                             b"Subject: slow\r\n")
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()

    received = run(go())
    assert b"354 " in received and received.rstrip().endswith(b"421 4.4.2 Timeout exceeded, closing connection")
    assert sink.messages == []


def test_starttls_offered_and_working_when_configured(make_settings, make_sink, tmp_path):
    cert, key = self_signed(tmp_path, "relay.test")
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, tls_cert=str(cert), tls_key=str(key)) as port:
            smtp = await client(port, validate_certs=False)
            offered = smtp.supports_extension("starttls")
            await smtp.starttls()
            await smtp.ehlo()
            await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
            await smtp.quit()
            return offered

    assert run(go()) is True
    assert [m.data for m in sink.messages] == [MSG]


@pytest.mark.parametrize("verify, delivered", [(False, True), (True, False)])
def test_starttls_to_the_next_hop_when_offered(make_settings, make_sink, tmp_path, verify, delivered):
    sink = make_sink(tls_context=server_context(*self_signed(tmp_path)))

    async def go():
        async with relay(make_settings, sink.port, upstream_tls="opportunistic", upstream_tls_verify=verify) as port:
            return await _send(port, ["bob@example.org"]) if delivered else await _mail_reply(port)

    answer = run(go())
    if delivered:
        assert answer[0] == 250 and sink.handler.tls_transactions == 1
    else:                                   # a self-signed certificate fails verification: 4xx, nothing sent
        assert answer.code == 451 and sink.messages == []


async def _mail_reply(port: int):
    smtp = await client(port)
    try:
        await smtp.mail("alice@example.org")
    except aiosmtplib.SMTPSenderRefused as exc:
        return exc
    finally:
        await smtp.quit()
    raise AssertionError("MAIL was accepted")


def test_upstream_tls_required_but_not_offered_is_4xx(make_settings, make_sink):
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port, upstream_tls="required") as port:
            smtp = await client(port)
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await smtp.mail("alice@example.org")
            await smtp.quit()
            return refused.value

    assert run(go()).code == 451


def test_forwarded_copy_is_tagged_then_signed_and_the_hold_keeps_the_received_bytes(make_settings, make_sink):
    sink = make_sink()
    store = FakeStore()
    calls = []

    def tagger(raw, verdict):
        calls.append(("tag", str(verdict.action)))
        return b"X-Policy-Action: " + str(verdict.action).encode() + b"\r\n" + raw

    class Signer:
        async def sign(self, raw, mail_from, own=()):
            calls.append(("sign", mail_from))
            assert raw.startswith(b"X-Policy-Action")
            return b"DKIM-Signature: fake\r\n" + raw

    async def go():
        async with relay(make_settings, sink.port, policy=FakePolicy({"ext@example.net": Action.HOLD}),
                         store=store, tagger=tagger, signer=Signer()) as port:
            return await _send(port, ["bob@example.org", "ext@example.net"])

    assert run(go())[0] == 250
    assert calls == [("tag", "accept"), ("sign", "alice@example.org")]   # the forwarded part was accepted
    assert sink.messages[0].data == b"DKIM-Signature: fake\r\nX-Policy-Action: accept\r\n" + MSG
    assert store.held[0][1] == MSG


# --------------------------------------------------------------------------- the DATA reader


def _stuffed(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


@pytest.mark.parametrize("message", [
    b"", b"\r\n", b"a\r\n", b".\r\n", b"..\r\n", b"x.\r\n.y\r\n", b"Subject: s\r\n\r\nend.\r\n.\r\n",
    b"Subject: s\r\n\r\n" + b"line of text.\r\n" * 40 + b".\r\n" * 5 + b"z" * 300 + b"\r\n",
])
def test_read_message_at_every_piece_size(message):
    from relay.server import read_message

    async def go(limit, step):
        reader = asyncio.StreamReader(limit=limit)
        wire = _stuffed(message) + b".\r\nQUIT\r\n"

        async def feed():                # as the network would: a few bytes at a time
            for i in range(0, len(wire), step):
                reader.feed_data(wire[i:i + step])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        data, size, problem = await read_message(reader, 10_000, 10_000)
        await feeder
        return data, size, problem, await reader.read()

    for limit in (5, 6, 7, 8, 9, 12, 17, 64):
        for step in (1, 2, 3, 5, 4096):
            data, size, problem, rest = asyncio.run(go(limit, step))
            assert (data, problem, rest) == (message, None, b"QUIT\r\n"), (limit, step)
            assert size == len(_stuffed(message))


@pytest.mark.parametrize("body, expected", [
    (b"a\nb\r\n", "5.5.2"), (b"a\rb\r\n", "5.5.2"), (b"a\n.\nb\r\n", "5.5.2"), (b"x" * 200 + b"\r\n", "5.3.4"),
    (b"H: " + b"h" * 60 + b"\r\n\r\nbody\r\n", "5.3.4"),
])
def test_read_message_refusals_read_to_the_real_end(body, expected):
    from relay.server import read_message

    async def go():
        reader = asyncio.StreamReader(limit=16)
        reader.feed_data(body + b".\r\nQUIT\r\n")
        reader.feed_eof()
        data, size, problem = await read_message(reader, 100, 50)
        return data, problem, await reader.read()

    data, problem, rest = asyncio.run(go())
    assert data == b"" and problem.status == expected and rest == b"QUIT\r\n"


@pytest.mark.parametrize("size, admitted", [(1000, 0), (3 * 1024 * 1024, 1)])
def test_read_message_waits_for_admission_once_past_the_large_size(size, admitted):
    from relay.server import LARGE_MESSAGE, read_message

    async def go():
        calls, fed = [], [0]

        async def admit():
            calls.append(fed[0])                 # how much the client had sent when we asked
            await asyncio.sleep(0)

        reader = asyncio.StreamReader(limit=65536)
        body = (b"x" * 998 + b"\r\n") * (size // 1000)
        wire = body + b".\r\nQUIT\r\n"

        async def feed():                        # as the network would, 64 KiB at a time
            for i in range(0, len(wire), 65536):
                reader.feed_data(wire[i:i + 65536])
                fed[0] = i + 65536
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        data, _, problem = await read_message(reader, 10 * 1024 * 1024, 10 * 1024 * 1024, admit)
        await feeder
        return data == body and problem is None, calls

    ok, calls = asyncio.run(go())
    assert ok and len(calls) == admitted
    assert all(sent < LARGE_MESSAGE + 4 * 65536 for sent in calls)    # asked early, not at the end


def test_shutdown_tells_idle_sessions_421_and_lets_busy_ones_finish(make_settings, make_sink):
    sink = make_sink(data_delay=1.0)

    async def go():
        settings = make_settings(upstream=f"127.0.0.1:{sink.port}", hostname="relay.test", upstream_tls="off",
                                 shutdown_grace=10).replace(listen=HostPort("127.0.0.1", 0))
        stop = asyncio.Event()
        bound = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(settings, stop.wait, pipeline=Pipeline(settings, FakePolicy(), []),
                                         collaborators=Collaborators(), ready=bound.set_result))
        _, port = await bound
        idle = await client(port)
        busy = await client(port)
        await busy.mail("alice@example.org")
        await busy.rcpt("bob@example.org")
        sending = asyncio.create_task(busy.data(MSG))
        while "DATA" not in sink.handler.commands:
            await asyncio.sleep(0.01)
        stop.set()
        answer = await sending
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await idle.noop()
        await asyncio.wait_for(task, 20)
        idle.close()
        busy.close()
        return answer

    answer = run(go())
    assert answer.code == 250 and len(sink.messages) == 1


def test_a_bug_in_a_command_hook_is_a_generic_451_and_the_session_goes_on(make_settings, make_sink, monkeypatch):
    from relay.server import RelayHandler

    async def broken(self, server, session, envelope, address, options):
        raise KeyError("internal detail")

    monkeypatch.setattr(RelayHandler, "handle_RCPT", broken)
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            await smtp.mail("alice@example.org")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await smtp.rcpt("bob@example.org")
            noop = await smtp.noop()
            await smtp.quit()
            return refused.value, noop

    with capture_logs() as logs:
        refused, noop = run(go())
    assert (refused.code, refused.message) == (451, "4.3.0 Internal error, try again later")
    assert noop.code == 250
    [error] = [e for e in logs if e["event"] == "session.error"]
    assert error["error"] == "KeyError" and isinstance(error["exc_info"], KeyError)


def test_helo_mid_transaction_ends_the_next_hops_transaction_too(make_settings, make_sink):
    """HELO resets the client's envelope (RFC 5321 4.1.4), as EHLO does: the next hop's open
    transaction must end with it, or the next MAIL meets 503 nested MAIL there."""
    sink = make_sink()

    async def go():
        async with relay(make_settings, sink.port) as port:
            smtp = await client(port)
            assert (await smtp.mail("a@example.org")).code == 250
            assert (await smtp.rcpt("old@example.org")).code == 250
            assert (await smtp.helo()).code == 250
            again = await smtp.mail("b@example.org")
            assert (await smtp.rcpt("new@example.org")).code == 250
            answer = await smtp.data(MSG)
            await smtp.quit()
            return again, answer

    again, answer = run(go())
    assert again.code == 250, again
    assert answer.code == 250
    assert [(m.mail_from, m.rcpt_tos) for m in sink.messages] == [("b@example.org", ("new@example.org",))]
    assert "RSET" in sink.handler.commands


@pytest.mark.parametrize(("fault", "code"), [({"data_reply": "451 4.3.0 next hop busy, try later"}, 451),
                                             ({"data_reply": "554 5.7.1 refused"}, 554),
                                             ({"drop_in_data": True}, 451)])
def test_a_failed_forward_after_a_hold_keeps_no_held_copy_so_retries_do_not_pile_up(make_settings, make_sink,
                                                                                   tmp_path, fault, code):
    """The client gets the failure and retries the whole message: each retry holds it again, so
    the copy held on a failed attempt must go, or releasing them all delivers it N times."""
    from relay.quarantine.sqlite import SqliteStore
    from relay.quarantine.store import Filter

    sink = make_sink(**fault)
    policy = FakePolicy({"ext@example.net": Action.HOLD})

    async def go():
        store = SqliteStore(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            async with relay(make_settings, sink.port, policy=policy, store=store) as port:
                with capture_logs() as logs:
                    answers = [await _send(port, ["bob@example.org", "ext@example.net"]) for _ in range(3)]
            return answers, await store.list(), await store.list(Filter(status="deleted")), logs
        finally:
            await store.close()

    answers, held, deleted, logs = run(go())
    assert [c for c, _ in answers] == [code] * 3
    assert [h.status for h in held] == ["deleted"] * 3     # three attempts, no copy left to release
    assert len(deleted) == 3
    decisions = [e for e in logs if e["event"] == "decision"]
    assert len(decisions) == 3 and all(e["quarantine_id"] is None for e in decisions)


def test_shutdown_leaves_no_socket_open_with_tls_on_both_sides(make_settings, make_sink, tmp_path):
    """A kept TLS session to the next hop and a TLS client are cut at shutdown, not left in a
    close_notify exchange the ended event loop never finishes (their sockets would reach the
    garbage collector, which warns in some later test)."""
    import gc
    import warnings

    cert, key = self_signed(tmp_path, "relay.test")
    sink = make_sink(tls_context=server_context(*self_signed(tmp_path, "sink.test")))

    async def go():
        async with relay(make_settings, sink.port, upstream_tls="opportunistic", upstream_tls_verify=False,
                         tls_cert=str(cert), tls_key=str(key)) as port:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=15, start_tls=True,
                                   validate_certs=False)
            await smtp.connect()
            answer = await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
            await smtp.quit()
            return answer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        answer = run(go())
        gc.collect()
    assert answer[0] == {}, answer             # no recipient refused
    assert sink.handler.tls_transactions == 1
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
