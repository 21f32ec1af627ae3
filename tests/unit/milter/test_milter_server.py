"""The milter server in-process over loopback TCP: an MTA side scripted from packets (and the
recorded Postfix session), the real Pipeline with a small stand-in policy, the real SQLite store."""

from __future__ import annotations

import asyncio
import email
import email.policy
import contextlib
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from relay.milter import protocol as p
from relay.milter import server, serving
from relay.organisation import Organisation
from relay.pipeline import Pipeline
from relay.quarantine import open_store, postgres
from relay.quarantine.sqlite import HOLD_TIMEOUT, SqliteStore
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

POSTFIX_OFFER = p.encode(p.OPTNEG, b"\0\0\0\6\0\0\1\xff\0\x1f\xff\xff")
RECORDED = (Path(__file__).parent / "data" / "postfix-to-milter.bin").read_bytes()


class StubPolicy:
    """reject.example: reject; tempfail.example: tempfail; a 'SECRET' subject held for externals;
    an X-Mailer header tagged with a subject prefix; the rest accepted."""

    version = "unit"
    organisation = Organisation(internal_domains=("example.ac.uk",))
    custom_detectors = ()

    def evaluate(self, envelope, message, findings):
        subject = message.header("Subject") or ""
        per = {}
        for r in envelope.rcpt_tos:
            if r.endswith("@reject.example"):
                per[r] = Action.REJECT
            elif r.endswith("@tempfail.example"):
                per[r] = Action.TEMPFAIL
            elif "SECRET" in subject and not r.endswith("@example.ac.uk"):
                per[r] = Action.HOLD
            elif message.header("X-Mailer"):
                per[r] = Action.TAG
            else:
                per[r] = Action.ACCEPT
        worst = max(per.values(), default=Action.ACCEPT)
        matches = (RuleMatch(f"rule-{worst}", "9.9", worst, f"stub {worst}"),) if worst else ()
        tag = TagSpec(subject_prefix="[ext]") if worst == Action.TAG else TagSpec()
        return Verdict(worst, matches, per, self.version, tag)


class Exploding(StubPolicy):
    def evaluate(self, envelope, message, findings):
        raise RuntimeError("policy bug")


def mta(*messages, offer: bytes = POSTFIX_OFFER, quit: bool = True) -> bytes:
    """An MTA's side of a session: negotiation, connect, HELO, then each (rcpts, headers, body)."""
    out = [offer, p.encode(p.CONNECT, b"[192.0.2.7]\0" + b"4" + b"\x30\x39" + b"192.0.2.7\0"),
           p.encode(p.HELO, b"client.example.ac.uk\0")]
    for rcpts, headers, body in messages:
        out.append(p.encode(p.MAIL, b"<alice@example.ac.uk>\0SIZE=100\0"))
        out += [p.encode(p.RCPT, b"<" + r.encode() + b">\0") for r in rcpts]
        out.append(p.encode(p.MACRO, b"Li\0QID1\0"))
        out += [p.encode(p.HEADER, n.encode() + b"\0" + v.encode() + b"\0") for n, v in headers]
        out.append(p.encode(p.EOH))
        out += [p.encode(p.BODY, body[i:i + 65535]) for i in range(0, len(body), 65535)]
        out.append(p.encode(p.BODYEOB))
    if quit:
        out.append(p.encode(p.QUIT))
    return b"".join(out)


HEADERS = [("From", " Alice <alice@example.ac.uk>"), ("To", " bob@partner.example"), ("Subject", " Hi"),
           ("X-Folded", " one\n\ttwo")]


class SlowScanner:
    """Takes ``delay`` seconds (a long clamd scan, say); finds nothing."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def scan(self, ctx):
        await asyncio.sleep(self.delay)
        return ()


@contextlib.asynccontextmanager
async def running(make_settings, policy=None, store=None, scanners=(), listen="inet:127.0.0.1:0", stop=None,
                  pipeline=None, **overrides):
    settings = make_settings(milter_listen=listen, **overrides)
    pipeline = pipeline or Pipeline(settings, policy or StubPolicy(), list(scanners))
    stop = stop or asyncio.Event()
    bound = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serving.serve(settings, stop.wait, pipeline=pipeline, store=store,
                                            ready=bound.set_result))
    try:
        address = await asyncio.wait_for(bound, 10)
        yield int(address.rsplit(":", 1)[1]) if address.startswith("inet:") else address
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def exchange(port: int, data: bytes, chunk: int = 0) -> list[p.Packet]:
    """Send ``data`` (all at once, or ``chunk`` bytes at a time) and read replies until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if chunk:
            for i in range(0, len(data), chunk):
                writer.write(data[i:i + chunk])
                await writer.drain()
        else:
            writer.write(data)
        received = b""
        with contextlib.suppress(ConnectionError):           # a reset after a refusal ends the reading too
            async with asyncio.timeout(20):
                while block := await reader.read(65536):
                    received += block
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return p.Decoder().feed(received)


def cmds(packets):
    return [pk.command for pk in packets]


def decisions(logs):
    return [e for e in logs if e["event"] == "decision"]


def test_accepted_message_gets_our_headers_and_one_decision_event(make_settings):
    async def go():
        async with running(make_settings) as port:
            return await exchange(port, mta((["bob@partner.example"], HEADERS, b"Hello\r\n")))

    with capture_logs() as logs:
        replies = asyncio.run(go())
    assert cmds(replies) == [p.OPTNEG, p.CONTINUE, p.CONTINUE, p.INSHEADER, p.INSHEADER, p.CONTINUE]
    assert replies[3].data == b"\0\0\0\0X-Policy-Action\0 accept\0"
    [event] = decisions(logs)
    assert event["front"] == "milter" and event["action"] == "accept" and event["queue_id"] == "QID1"
    assert event["client"]["address"] == "192.0.2.7" and event["client"]["helo"] == "client.example.ac.uk"
    assert event["envelope"] == {"mail_from": "alice@example.ac.uk", "rcpt_tos": ["bob@partner.example"]}


def test_held_message_is_stored_byte_exact_before_discard(make_settings, tmp_path):
    async def go():
        store = open_store(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            headers = [(n, " SECRET pay" if n == "Subject" else v) for n, v in HEADERS]
            async with running(make_settings, store=store) as port:
                replies = await exchange(port, mta((["bob@partner.example"], headers, b"NI\r\n.dot\r\n")))
            [held] = await store.list()
            return replies, held, await store.raw(held.id)
        finally:
            await store.close()

    with capture_logs() as logs:
        replies, held, raw = asyncio.run(go())
    assert cmds(replies)[-1] == p.DISCARD
    assert raw == (b"From: Alice <alice@example.ac.uk>\r\nTo: bob@partner.example\r\nSubject: SECRET pay\r\n"
                   b"X-Folded: one\r\n\ttwo\r\n\r\nNI\r\n.dot\r\n")
    [event] = decisions(logs)
    assert event["action"] == "hold" and event["quarantine_id"] == held.id


def test_held_for_some_recipients_deletes_them_and_tags_the_rest(make_settings, tmp_path):
    async def go():
        store = open_store(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            headers = [(n, " SECRET pay" if n == "Subject" else v) for n, v in HEADERS]
            async with running(make_settings, store=store) as port:
                return await exchange(port, mta((["bob@partner.example", "carol@example.ac.uk"], headers, b"x\r\n")))
        finally:
            await store.close()

    replies = asyncio.run(go())
    assert cmds(replies)[-4:] == [p.DELRCPT, p.INSHEADER, p.INSHEADER, p.CONTINUE]
    assert replies[-4].data == b"<bob@partner.example>\0"


def test_store_failure_tempfails_and_never_discards(make_settings, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    async def go():
        store = open_store(f"sqlite:///{blocker}/q.sqlite3")          # a real store that cannot write
        try:
            async with running(make_settings, store=store) as port:
                headers = [(n, " SECRET" if n == "Subject" else v) for n, v in HEADERS]
                return await exchange(port, mta((["bob@partner.example"], headers, b"x\r\n")))
        finally:
            await store.close()

    replies = asyncio.run(go())
    assert p.DISCARD not in cmds(replies)
    assert replies[-1] == p.Packet(p.REPLYCODE, b"451 4.3.0 Quarantine unavailable, try again later\0")


@pytest.mark.parametrize("rcpt, expected", [
    ("x@reject.example", b"550 5.7.1 stub reject [rule rule-reject, clause 9.9]\0"),
    ("x@tempfail.example", b"451 4.7.1 stub tempfail [rule rule-tempfail, clause 9.9]\0"),
])
def test_reject_and_tempfail_are_reply_codes(make_settings, rcpt, expected):
    async def go():
        async with running(make_settings) as port:
            return await exchange(port, mta(([rcpt, "carol@example.ac.uk"], HEADERS, b"x\r\n")))

    replies = asyncio.run(go())
    assert replies[-1] == p.Packet(p.REPLYCODE, expected)


def test_tagged_subject_is_changed_and_forged_verdict_deleted(make_settings):
    headers = HEADERS + [("X-Mailer", " Outlook"), ("X-Policy-Action", " accept")]

    async def go():
        async with running(make_settings) as port:
            return await exchange(port, mta((["bob@partner.example"], headers, b"x\r\n")))

    replies = asyncio.run(go())
    assert p.Packet(p.CHGHEADER, b"\0\0\0\1X-Policy-Action\0\0") in replies
    assert p.Packet(p.CHGHEADER, b"\0\0\0\1Subject\0 [ext] Hi\0") in replies
    assert p.Packet(p.INSHEADER, b"\0\0\0\0X-Policy-Action\0 tag\0") in replies


def test_pipeline_failure_is_451_and_logged_once(make_settings):
    async def go():
        async with running(make_settings, policy=Exploding()) as port:
            return await exchange(port, mta((["bob@partner.example"], HEADERS, b"x\r\n")))

    with capture_logs() as logs:
        replies = asyncio.run(go())
    assert replies[-1] == p.Packet(p.REPLYCODE, b"451 4.3.0 Internal error, try again later\0")
    [event] = decisions(logs)
    assert event["action"] == "error" and event["error"] == "RuntimeError"


def test_size_cap_refuses_at_the_first_chunk_past_it(make_settings):
    body = b"y" * 70000 + b"\r\n"

    async def go():
        async with running(make_settings, max_message_size=1000) as port:
            return await exchange(port, mta((["bob@partner.example"], HEADERS, body)))

    with capture_logs() as logs:
        replies = asyncio.run(go())
    refusal = p.Packet(p.REPLYCODE, b"552 5.3.4 Message size exceeds fixed maximum message size\0")
    assert replies[-3:] == [refusal, refusal, refusal]        # both body chunks and the end of body
    [event] = decisions(logs)
    assert event["action"] == "refused" and event["reply"] == "552 5.3.4"


def test_recipient_cap(make_settings):
    rcpts = ["a@partner.example", "b@partner.example", "c@partner.example"]

    async def go():
        async with running(make_settings, max_recipients=2) as port:
            return await exchange(port, mta((rcpts, HEADERS, b"x\r\n")))

    replies = asyncio.run(go())
    assert replies[1:4] == [p.Packet(p.CONTINUE, b""), p.Packet(p.CONTINUE, b""),
                            p.Packet(p.REPLYCODE, b"452 4.5.3 Too many recipients\0")]


def test_recorded_postfix_session_fragmented_gives_the_same_replies(make_settings, tmp_path):
    async def go():
        store = open_store(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            async with running(make_settings, store=store) as port:
                return await exchange(port, RECORDED), await exchange(port, RECORDED, chunk=7)
        finally:
            await store.close()

    whole, pieces = asyncio.run(go())
    assert whole == pieces
    assert cmds(whole)[0] == p.OPTNEG and cmds(whole).count(p.CONTINUE) >= 4


@pytest.mark.parametrize("data, error", [
    (POSTFIX_OFFER + b"\xff\xff\xff\xff", "over the limit"),
    (POSTFIX_OFFER + p.encode(b"Z"), "unknown command"),
    (p.encode(p.HELO, b"x\0"), "before option negotiation"),
    (POSTFIX_OFFER + p.encode(p.RCPT, b"<a@b>\0"), "outside a transaction"),
    (p.encode(p.OPTNEG, b"\0\0\0\2\0\0\0\x3f\0\0\0\x7f"), "version 2"),
    (b"\0\0\0\0", "length 0"),
])
def test_hostile_packets_close_the_connection_with_a_log_event(make_settings, data, error):
    async def go():
        async with running(make_settings) as port:
            return await exchange(port, data)

    with capture_logs() as logs:
        replies = asyncio.run(go())
    assert p.CONTINUE not in cmds(replies)
    [event] = [e for e in logs if e["event"] == "milter.protocol_error"]
    assert error in event["error"]
    assert not any("exc_info" in e for e in logs)


def test_idle_connection_times_out(make_settings):
    async def go():
        async with running(make_settings, command_timeout=0.2) as port:
            return await exchange(port, POSTFIX_OFFER)

    with capture_logs() as logs:
        replies = asyncio.run(go())
    assert cmds(replies) == [p.OPTNEG]
    assert any(e["event"] == "milter.timeout" for e in logs)


def test_connections_past_max_sessions_are_closed_at_once(make_settings):
    async def go():
        async with running(make_settings, max_sessions=1) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(POSTFIX_OFFER)
                await reader.readexactly(4 + 13)                 # the first is served
                second = await exchange(port, POSTFIX_OFFER)
            finally:
                writer.close()
                await writer.wait_closed()
            return second

    with capture_logs() as logs:
        assert asyncio.run(go()) == []
    assert any(e["event"] == "milter.refused" for e in logs)


def test_progress_keepalives_while_a_long_scan_runs(make_settings, monkeypatch):
    monkeypatch.setattr(server, "PROGRESS_INTERVAL", 0.05)

    async def go():
        async with running(make_settings, scanners=[SlowScanner(0.5)]) as port:
            return await exchange(port, mta((["bob@partner.example"], HEADERS, b"x\r\n")))

    replies = cmds(asyncio.run(go()))
    assert replies.count(p.PROGRESS) >= 2
    assert replies[-1] == p.CONTINUE and p.PROGRESS not in replies[replies.index(p.INSHEADER):]


def test_stop_lets_the_message_in_flight_finish_then_closes(make_settings):
    async def go():
        stop = asyncio.Event()
        async with running(make_settings, scanners=[SlowScanner(0.5)], stop=stop) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
            idle_writer.write(POSTFIX_OFFER)
            await idle_reader.readexactly(17)
            writer.write(mta((["bob@partner.example"], HEADERS, b"x\r\n"), quit=False))
            await asyncio.sleep(0.2)                     # the message is being scanned now
            stop.set()
            async with asyncio.timeout(10):
                received = await reader.read()            # until the server closes
                idle = await idle_reader.read()
            for w in (writer, idle_writer):
                w.close()
                await w.wait_closed()
            return p.Decoder().feed(received), idle

    replies, idle = asyncio.run(go())
    assert cmds(replies)[-1] == p.CONTINUE and p.INSHEADER in cmds(replies)
    assert idle == b""


def test_unix_socket_and_an_mta_without_leading_space(make_settings, tmp_path):
    path = tmp_path / "milter.sock"
    offer = p.encode(p.OPTNEG, b"\0\0\0\6\0\0\1\xff\0\x0f\xff\xff")      # no SMFIP_HDR_LEADSPC
    headers = [(n, v.lstrip(" ")) for n, v in HEADERS]

    async def go():
        store = open_store(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            async with running(make_settings, store=store, listen=f"unix:{path}") as where:
                assert where == str(path) and oct(path.stat().st_mode & 0o777) == "0o660"
                reader, writer = await asyncio.open_unix_connection(str(path))
                writer.write(mta((["bob@partner.example"], [(n, "SECRET" if n == "Subject" else v)
                                                            for n, v in headers], b"x\r\n"), offer=offer))
                async with asyncio.timeout(10):
                    received = await reader.read()
                writer.close()
                await writer.wait_closed()
                [held] = await store.list()
                return p.Decoder().feed(received), await store.raw(held.id)
        finally:
            await store.close()

    replies, raw = asyncio.run(go())
    assert cmds(replies)[-1] == p.DISCARD
    assert raw.startswith(b"From: Alice <alice@example.ac.uk>\r\nTo: bob@partner.example\r\nSubject: SECRET\r\n")
    assert not path.exists()                             # removed on stop


class Notifying(StubPolicy):
    """StubPolicy whose rule asks for a sender notice."""

    def evaluate(self, envelope, message, findings):
        verdict = super().evaluate(envelope, message, findings)
        matches = tuple(RuleMatch(m.rule_id, m.clause, m.action, m.reason, notify_sender=True) for m in verdict.matches)
        return Verdict(verdict.action, matches, verdict.recipient_actions, verdict.policy_version, verdict.tag)


def test_a_hold_tells_the_sender_when_the_rule_asks(make_settings, make_sink, tmp_path):
    sink = make_sink()

    async def go():
        store = open_store(f"sqlite:///{tmp_path}/q.sqlite3")
        try:
            headers = [(n, " SECRET pay" if n == "Subject" else v) for n, v in HEADERS]
            async with running(make_settings, policy=Notifying(), store=store,
                               upstream=f"127.0.0.1:{sink.port}", upstream_tls="off") as port:
                replies = await exchange(port, mta((["bob@partner.example"], headers, b"NI\r\n")))
                for _ in range(200):                     # the notice goes out after the reply
                    if sink.messages:
                        break
                    await asyncio.sleep(0.05)
            [held] = await store.list()
            return replies, held
        finally:
            await store.close()

    replies, held = asyncio.run(go())
    assert cmds(replies)[-1] == p.DISCARD
    [notice] = sink.messages
    assert notice.rcpt_tos == ("alice@example.ac.uk",) and notice.mail_from in ("", "<>")
    text = email.message_from_bytes(notice.data, policy=email.policy.default).get_body().get_content()
    assert held.id in text and "rule-hold" in text


class NeverFinishes:
    """A pipeline stuck for good (a coroutine that never returns: a real stage can't be made to
    hang on purpose, each has its own timeout). Counts how often it was asked."""

    def __init__(self) -> None:
        self.policy = StubPolicy()
        self.started = 0

    async def decide(self, envelope, raw):
        self.started += 1
        await asyncio.Event().wait()


def test_decision_deadline_is_the_stage_bounds_plus_margin_and_under_the_mta_timeouts(make_settings, tmp_path):
    settings = make_settings()
    with_store = server.decision_deadline(settings, store=SqliteStore(f"sqlite:///{tmp_path}/q.sqlite3"))
    assert with_store == (settings.extract_timeout + settings.scan_timeout + HOLD_TIMEOUT
                          + server.DEADLINE_MARGIN)
    assert server.decision_deadline(settings) == with_store - HOLD_TIMEOUT
    assert with_store < 300          # Postfix's milter_content_timeout and Sendmail's T=E: defaults
    assert postgres.OP_TIMEOUT <= HOLD_TIMEOUT           # the bound covers either store
    pg = postgres.PostgresStore("postgresql://relay@127.0.0.1:1/none")    # not opened: no connection
    assert server.decision_deadline(settings, store=pg) == settings.extract_timeout + settings.scan_timeout \
        + postgres.OP_TIMEOUT + server.DEADLINE_MARGIN


def test_a_pipeline_that_never_finishes_gets_451_within_the_deadline(make_settings, monkeypatch):
    monkeypatch.setattr(server, "PROGRESS_INTERVAL", 0.05)
    monkeypatch.setattr(server, "DEADLINE_MARGIN", 0.2)
    pipeline = NeverFinishes()

    async def go():
        async with running(make_settings, pipeline=pipeline, scan_timeout=0.2, extract_timeout=0.1) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(mta((["bob@partner.example"], HEADERS, b"x\r\n"), quit=False))
                decoder, packets = p.Decoder(), []
                loop = asyncio.get_running_loop()
                started = loop.time()
                async with asyncio.timeout(5):
                    while not packets or packets[-1].command != p.REPLYCODE:
                        packets += decoder.feed(await reader.read(65536))
                elapsed = loop.time() - started
                await asyncio.sleep(0.3)                          # keepalives stop with the answer
                writer.write(p.encode(p.QUIT))
                async with asyncio.timeout(5):
                    packets += decoder.feed(await reader.read())  # until the server closes
            finally:
                writer.close()
                await writer.wait_closed()
        return packets, elapsed

    with capture_logs() as logs:
        packets, elapsed = asyncio.run(go())
    answer = p.Packet(p.REPLYCODE, b"451 4.3.0 Content checks did not finish in time, try again later\0")
    assert answer in packets and 0.45 <= elapsed < 2.0, elapsed
    after = packets[packets.index(answer) + 1:]
    assert after == [] and cmds(packets).count(p.PROGRESS) >= 2
    assert pipeline.started == 1
    [warning] = [e for e in logs if e["event"] == "milter.deadline"]
    assert warning["deadline"] == pytest.approx(0.5) and warning["stage"] == "decide"
    assert not any(e["event"] == "message.error" for e in logs)
    [event] = decisions(logs)
    assert event["action"] == "error" and event["error"] == "deadline" and event["reply"] == "451 4.3.0"
