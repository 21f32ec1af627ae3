"""`relay serve` as a subprocess between real SMTP clients (swaks, aiosmtplib) and a real capture sink."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import aiosmtplib
import pytest

pytestmark = [pytest.mark.clamd]

MSG = (b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: integration\r\n\r\n"
       b"line one\r\n.starts with a dot\r\n..two dots\r\n" + b"z" * 3000 + b"\r\n")


def swaks(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/system-deps.sh test installs it)")
    return subprocess.run(["swaks", "--hide-informational", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def server_lines(output: str) -> list[str]:
    return [line.strip()[4:] for line in output.splitlines() if line.strip().startswith(("<-", "<**"))]


def test_swaks_through_relay_with_a_refused_recipient(start_relay, make_sink):
    sink = make_sink(refuse_rcpt={"nobody@example.net": "550 5.1.1 unknown user"})
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    out = swaks("--server", f"127.0.0.1:{relay.port}", "--from", "alice@example.org",
                "--to", "bob@example.org,nobody@example.net", "--body", "hello from swaks")
    lines = server_lines(out.stdout + out.stderr)
    assert "550 5.1.1 unknown user" in lines
    assert any(line.startswith("250 2.0.0 OK captured") for line in lines)
    [captured] = sink.wait_for_messages(1)
    assert captured.rcpt_tos == ("bob@example.org",)
    [event] = relay.wait_for_event("decision")
    assert event["action"] == "accept" and event["envelope"]["rcpt_tos"] == ["bob@example.org"]
    assert event["reply"] == "250 2.0.0" and event["policy_version"].startswith("sha256:")


def test_content_and_envelope_byte_exact_at_the_sink(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    utf8 = "Subject: r\u00e9sum\u00e9 \u2603\r\nFrom: \u00e9l\u00e8ve@\u00e9cole.example\r\n\r\n".encode() + MSG

    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        await smtp.sendmail("\u00e9l\u00e8ve@\u00e9cole.example", ["bob@example.org"], utf8,
                            mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        await smtp.sendmail("", ["postmaster@example.org"], MSG)
        await smtp.quit()

    asyncio.run(asyncio.wait_for(go(), 60))
    first, second = sink.wait_for_messages(2)
    # byte for byte, apart from the verdict headers the relay puts on top
    tags = b"X-Policy-Action: accept\r\nX-Policy-Rules:\r\n"
    assert first.data == tags + utf8 and first.mail_from == "\u00e9l\u00e8ve@\u00e9cole.example"
    assert second.data == tags + MSG and second.mail_from == "<>"


def test_open_relay_attempt_from_outside_allowed_networks(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_ALLOWED_CLIENTS": "127.0.0.1/32"})
    out = swaks("--server", f"127.0.0.1:{relay.port}", "--local-interface", "127.0.0.2",
                "--from", "spammer@example.net", "--to", "victim@example.com", "--body", "buy now")
    text = out.stdout + out.stderr
    assert "554 5.7.1" in text
    assert "250 2.0.0 OK captured" not in text
    assert out.returncode != 0
    assert sink.messages == [] and sink.handler.sessions == 0


def test_oversize_message_is_refused_with_552(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_MAX_MESSAGE_SIZE": "4096"})
    out = swaks("--server", f"127.0.0.1:{relay.port}", "--from", "alice@example.org", "--to", "bob@example.org",
                "--body", "x" * 8000)
    assert "552 5.3.4 Message size exceeds fixed maximum message size" in server_lines(out.stdout + out.stderr)
    assert sink.messages == []


def test_next_hop_down_gives_4xx_and_a_session_error_event(start_relay):
    from tests.fixtures.common import free_port

    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{free_port()}"})
    out = swaks("--server", f"127.0.0.1:{relay.port}", "--from", "alice@example.org", "--to", "bob@example.org")
    lines = server_lines(out.stdout + out.stderr)
    assert any(line.startswith("451 4.4.1") for line in lines)
    assert not any(line.startswith("250 2.0.0 OK captured") for line in lines)
    [event] = relay.wait_for_event("session.upstream_unavailable")
    assert event["stage"] == "mail"
