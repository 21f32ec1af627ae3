"""The next hop client, against a real aiosmtpd capture sink on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from relay import replies
from relay.errors import UpstreamRejected, UpstreamUnavailable
from relay.upstream import Upstream, deliver
from tests.fixtures.common import free_port

MSG = b"Subject: release\r\n\r\n.dot line\r\nbody \xc3\xa9\r\n"


def settings_for(make_settings, port: int, **overrides):
    return make_settings(upstream=f"127.0.0.1:{port}", hostname="relay.test", upstream_tls="off", **overrides)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_deliver_sends_one_message_byte_exact(make_settings, make_sink):
    sink = make_sink()
    answer = run(deliver(settings_for(make_settings, sink.port), "alice@example.org",
                         ["bob@example.org", "carol@example.org"], MSG, ["BODY=8BITMIME"]))
    assert answer.ok and answer.code == 250 and answer.text == "OK captured"
    [captured] = sink.messages
    assert captured.data == MSG
    assert captured.rcpt_tos == ("bob@example.org", "carol@example.org")
    assert captured.mail_options == ("BODY=8BITMIME",)


def test_deliver_null_sender(make_settings, make_sink):
    sink = make_sink()
    run(deliver(settings_for(make_settings, sink.port), "", ["bob@example.org"], MSG))
    assert sink.messages[0].mail_from == "<>"


def test_deliver_is_all_or_nothing_when_a_recipient_is_refused(make_settings, make_sink):
    sink = make_sink(refuse_rcpt={"gone@example.org": "550 5.1.1 gone"})
    with pytest.raises(UpstreamRejected) as refused:
        run(deliver(settings_for(make_settings, sink.port), "alice@example.org",
                    ["bob@example.org", "gone@example.org"], MSG))
    assert refused.value.code == 550 and refused.value.permanent
    assert "gone@example.org" in refused.value.message
    assert sink.messages == []


@pytest.mark.parametrize("fault, code", [({"data_reply": "452 4.3.1 full"}, 452),
                                         ({"refuse_mail": "553 5.7.1 sender refused"}, 553)])
def test_deliver_rejected_carries_the_reply(make_settings, make_sink, fault, code):
    sink = make_sink(**fault)
    with pytest.raises(UpstreamRejected) as refused:
        run(deliver(settings_for(make_settings, sink.port), "alice@example.org", ["bob@example.org"], MSG))
    assert refused.value.code == code
    assert sink.messages == []


@pytest.mark.parametrize("fault", [{"drop_in_data": True}, {"data_delay": 2.0}, {"refuse_connect": True}, None])
def test_deliver_unavailable(make_settings, make_sink, fault):
    port = make_sink(**fault).port if fault is not None else free_port()
    with pytest.raises(UpstreamUnavailable):
        run(deliver(settings_for(make_settings, port, upstream_timeout=0.5), "alice@example.org",
                    ["bob@example.org"], MSG))


def test_session_mirrors_and_is_reused_across_transactions(make_settings, make_sink):
    sink = make_sink(refuse_rcpt={"no@example.org": "550 5.1.1 no"})

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        session = upstream.session()
        try:
            results = []
            for n in range(2):
                assert (await session.mail("alice@example.org", ["SIZE=100", "SMTPUTF8"])).ok
                results.append(await session.rcpt("no@example.org"))
                assert (await session.rcpt("bob@example.org")).ok
                results.append(await session.data(MSG))
            await session.quit()
            return results
        finally:
            session.close()

    refused, sent, refused2, sent2 = run(go())
    assert (refused.code, refused.status, refused.text) == (550, "5.1.1", "no")
    assert sent.ok and sent2.ok
    assert sink.handler.sessions == 1 and len(sink.messages) == 2
    assert sink.handler.commands[0] == "MAIL alice@example.org SIZE=100 SMTPUTF8"


def test_session_reconnects_when_a_reused_session_died(make_settings, make_sink):
    sink = make_sink()

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        session = upstream.session()
        try:
            await session.open()
            session._smtp.transport.abort()          # the next hop went away while idle
            await asyncio.sleep(0.05)
            answer = await session.mail("alice@example.org")
            await session.rcpt("bob@example.org")
            sent = await session.data(MSG)
            return answer, sent
        finally:
            session.close()

    answer, sent = run(go())
    assert answer.ok and sent.ok
    assert sink.handler.sessions == 2


def test_a_left_session_is_kept_for_the_next_client_and_quit_at_close(make_settings, make_sink):
    sink = make_sink()

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        answers = []
        for n in range(3):                          # three client sessions one after the other
            session = upstream.session()
            try:
                answers.append(await session.mail("alice@example.org"))
                await session.rcpt("bob@example.org")
                answers.append(await session.data(MSG))
                session.quit_nowait()               # the client said QUIT, no transaction open
            finally:
                session.close()
        kept = len(upstream._idle)
        upstream.close()
        await asyncio.sleep(0.05)
        return answers, kept

    answers, kept = run(go())
    assert all(a.ok for a in answers) and len(sink.messages) == 3
    assert sink.handler.sessions == 1 and kept == 1
    for _ in range(200):                            # bounded wait for the QUIT sent at close
        if sink.handler.commands[-1:] == ["QUIT"]:
            break
        run(asyncio.sleep(0.01))
    assert sink.handler.commands[-1] == "QUIT"


def test_a_session_left_mid_transaction_is_not_kept(make_settings, make_sink):
    sink = make_sink()

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        session = upstream.session()
        try:
            await session.mail("alice@example.org")
            session.quit_nowait()
            return len(upstream._idle)
        finally:
            session.close()
            upstream.close()

    assert run(go()) == 0


def test_a_kept_session_that_died_is_replaced_transparently(make_settings, make_sink):
    sink = make_sink()

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        first = upstream.session()
        await first.mail("alice@example.org")
        await first.rcpt("bob@example.org")
        await first.data(MSG)
        first.quit_nowait()
        upstream._idle[0][1].transport.abort()      # the next hop dropped it while idle
        await asyncio.sleep(0.05)
        second = upstream.session()
        try:
            answer = await second.mail("carol@example.org")
            await second.rcpt("bob@example.org")
            return answer, await second.data(MSG)
        finally:
            second.close()
            upstream.close()

    answer, sent = run(go())
    assert answer.ok and sent.ok and len(sink.messages) == 2


def test_upstream_421_is_not_passed_on_as_our_own_421():
    answer = replies.from_upstream(421, "4.3.2 shutting down")
    assert answer.code == 421
    translated = replies.upstream_closing(answer)
    assert translated.code == 451 and str(translated).startswith("451 4.4.2 Next hop closing")


def test_reply_parsing_and_rendering():
    multi = replies.from_upstream(250, "2.0.0 first line\n2.0.0 second\r")
    assert str(multi) == "250-2.0.0 first line\r\n250 2.0.0 second"
    bare = replies.from_upstream(550, "no such user")
    assert str(bare) == "550 5.0.0 no such user"
    assert replies.enhance("500 Error: bad syntax") == "500 5.5.2 Error: bad syntax"
    assert replies.enhance("354 End data") == "354 End data"
    assert replies.enhance("250 2.1.5 ok") == "250 2.1.5 ok"
    assert str(replies.rejected("bad\r\nthing", "r1", "5.1")) == "550 5.7.1 bad  thing [rule r1, clause 5.1]"


@pytest.mark.parametrize("data, expected", [
    (b".first\r\n..second\r\n.\r\nlast\r\n", b".first\r\n..second\r\n.\r\nlast\r\n"),
    (b"no final newline", b"no final newline\r\n"),
    (b"", b""),
])
def test_deliver_dot_stuffs_and_ends_the_data_properly(make_settings, make_sink, data, expected):
    sink = make_sink()
    run(deliver(settings_for(make_settings, sink.port), "alice@example.org", ["bob@example.org"], data))
    assert sink.messages[0].data == expected


def test_the_message_and_its_end_go_out_in_one_write(make_settings, make_sink, monkeypatch):
    """A 20 KB write and then a 3-byte ".<CRLF>" are two sends and two wake-ups of the next hop."""
    import aiosmtplib.protocol

    writes = []
    write = aiosmtplib.protocol.SMTPProtocol.write

    def recording(self, data):
        writes.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(aiosmtplib.protocol.SMTPProtocol, "write", recording)
    sink = make_sink()
    body = b"Subject: x\r\n\r\n" + b".line starting with a dot\r\n" * 800
    run(deliver(settings_for(make_settings, sink.port), "alice@example.org", ["bob@example.org"], body))
    assert sink.messages[0].data == body
    assert body.replace(b"\r\n.", b"\r\n..") + b".\r\n" in writes


def test_a_refused_data_command_leaves_the_transaction_for_rset_to_end(make_settings):
    """Postfix's smtpd_data_restrictions answer the DATA command itself and keep the
    transaction open until RSET; a later MAIL must not meet 503 nested MAIL."""
    from relay.sink import CaptureSMTP
    from tests.fixtures.smtp import FaultyHandler

    class RefusesDataOnce(CaptureSMTP):
        refused = False

        async def smtp_DATA(self, arg):
            if not RefusesDataOnce.refused:     # aiosmtpd keeps the envelope: MAIL now gets 503
                RefusesDataOnce.refused = True
                await self.push("451 4.3.0 data restriction, try later")
                return
            await super().smtp_DATA(arg)

    handler = FaultyHandler()

    async def go():
        server = await asyncio.get_running_loop().create_server(
            lambda: RefusesDataOnce(handler, hostname="sink.test"), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = await Upstream.create(settings_for(make_settings, port))
        session = upstream.session()
        try:
            assert (await session.mail("alice@example.org")).ok
            assert (await session.rcpt("bob@example.org")).ok
            refused = await session.data(MSG)
            assert session.in_transaction
            await session.rset()
            again = await session.mail("alice@example.org")
            assert (await session.rcpt("bob@example.org")).ok
            sent = await session.data(MSG)
            await session.quit()
            return refused, again, sent
        finally:
            session.close()
            server.close()
            await server.wait_closed()

    refused, again, sent = run(go())
    assert refused.code == 451
    assert again.ok, again
    assert sent.ok and [m.data for m in handler.messages] == [MSG]


@pytest.mark.parametrize("greets", [False, True], ids=["no-greeting", "no-ehlo-answer"])
def test_an_open_cancelled_while_the_next_hop_is_slow_closes_its_socket(make_settings, greets):
    """The client leaves (or the relay shuts down) while the next hop is slow to greet or to
    answer EHLO: the half-open session is closed at once, not left to the garbage collector."""
    peer_closed = asyncio.Event()
    accepted = asyncio.Event()

    async def silent(reader, writer):       # accepts, stalls, notices when we hang up
        if greets:
            writer.write(b"220 slow.test ESMTP\r\n")
            await reader.readline()         # the EHLO, never answered
        accepted.set()
        await reader.read()
        peer_closed.set()
        writer.close()

    async def go():
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = await Upstream.create(settings_for(make_settings, port))
        session = upstream.session()
        opening = asyncio.create_task(session.open())
        try:
            await asyncio.wait_for(accepted.wait(), 10)
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            await asyncio.wait_for(peer_closed.wait(), 5)
            return session.connected
        finally:
            server.close()
            await server.wait_closed()

    assert run(go()) is False


def test_a_session_left_after_shutdown_is_closed_not_kept(make_settings, make_sink):
    sink = make_sink()

    async def go():
        upstream = await Upstream.create(settings_for(make_settings, sink.port))
        session = upstream.session()
        await session.mail("alice@example.org")
        await session.rset()
        upstream.close()                    # shutdown while this client is still connected
        session.quit_nowait()               # ... which then leaves with no transaction open
        return len(upstream._idle)

    assert run(go()) == 0
    for _ in range(200):                    # bounded wait for the QUIT sent on closing
        if sink.handler.commands[-1:] == ["QUIT"]:
            break
        run(asyncio.sleep(0.01))
    assert sink.handler.commands[-1] == "QUIT"


def test_the_test_sink_closes_connections_still_open_when_it_stops():
    """Else their sockets are left to the garbage collector, whose ResourceWarning then fails
    whichever test happens to be running (seen in CI): the fixture must not leak."""
    import gc
    import socket

    from tests.fixtures.smtp import FaultyHandler, SinkServer

    handler = FaultyHandler()
    sink = SinkServer(handler).start()
    with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as peer:
        assert peer.recv(100).startswith(b"220 ")
        sink.stop()
        peer.settimeout(5)
        assert peer.recv(100) == b""                 # the sink's side was closed, not abandoned
    gc.collect()
    assert handler.transports and all(t.is_closing() for t in handler.transports)
