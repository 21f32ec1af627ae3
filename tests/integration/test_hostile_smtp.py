"""Hostile SMTP clients against ``relay serve`` (a subprocess) in front of a real capture sink.

Each attack gets a precise reply, never a traceback, never a hang (every read
is bounded), and nothing reaches the next hop that should not. What the unit
tests (tests/unit/test_server.py) already prove in-process is not repeated
here: these go through the real process, its real log and a real next hop.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

pytestmark = [pytest.mark.clamd]
BAD = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

MSG = b"From: alice@example.ac.uk\r\nTo: bob@example.ac.uk\r\nSubject: hi\r\nMessage-ID: <h1@example.ac.uk>\r\n\r\nHello.\r\n"


def converse(port: int, payload: bytes, replies: int, source: str | None = None, timeout: float = 15.0,
             pieces: int = 1) -> list[bytes]:
    """Greeting + the last line of each of the next ``replies`` replies (fewer if the server closes).

    ``pieces`` > 1 sends the payload in that many writes with short pauses (segment boundaries).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        reader = sock.makefile("rb")
        try:
            lines = [reader.readline()]
            step = max(1, -(-len(payload) // pieces))
            try:
                for at in range(0, len(payload), step):
                    sock.sendall(payload[at:at + step])
                    if pieces > 1:
                        time.sleep(0.05)
            except OSError:
                pass                                   # the server closed first: read what it said
            while len(lines) < replies + 1:
                try:
                    line = reader.readline()
                except ConnectionResetError:           # closed while our data was unread: the end
                    break
                if not line:
                    break
                if line[3:4] != b"-":
                    lines.append(line)
            return lines
        finally:
            reader.close()


def log_lines(relay) -> list[str]:
    return relay.log_path.read_text(encoding="utf-8", errors="strict").splitlines()


def assert_no_traceback(lines: list[bytes]) -> None:
    for line in lines:
        assert b"Traceback" not in line and b"Error(" not in line and b"Exception" not in line, line


# --------------------------------------------------------------------------- addresses


BAD_ADDRESSES = [  # (name, commands after EHLO, the reply to the last of them)
    ("nul-sender", b"MAIL FROM:<a\x00b@example.ac.uk>", b"501 5.1.7"),
    ("bad-utf8-sender", b"MAIL FROM:<\xff\xfe@example.ac.uk> SMTPUTF8", b"501 5.1.7"),
    ("ctl-sender", b"MAIL FROM:<al\x01ice@example.ac.uk>", b"501 5.1.7"),
    ("nul-rcpt", b"MAIL FROM:<alice@example.ac.uk>\r\nRCPT TO:<b\x00ob@example.org>", b"501 5.1.3"),
    ("bad-utf8-rcpt", b"MAIL FROM:<alice@example.ac.uk> SMTPUTF8\r\nRCPT TO:<\xc3\x28@example.org>", b"501 5.1.3"),
    ("del-rcpt", b"MAIL FROM:<alice@example.ac.uk>\r\nRCPT TO:<bob\x7f@example.org>", b"501 5.1.3"),
]


def test_nul_control_and_invalid_utf8_addresses_are_501_and_never_reach_the_next_hop(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    for name, command, expected in BAD_ADDRESSES:
        payload = b"EHLO client.test\r\n" + command + b"\r\nQUIT\r\n"
        lines = converse(relay.port, payload, payload.count(b"\r\n"))
        assert lines[-2].startswith(expected), (name, lines)     # the reply to the hostile command (QUIT is last)
        assert lines[-1].startswith(b"221 2.0.0"), (name, lines)
        assert_no_traceback(lines)
    assert not any(BAD.search(c) for c in sink.handler.commands), sink.handler.commands
    assert sink.messages == []


# --------------------------------------------------------------------------- open relay


def test_denied_client_cannot_pipeline_or_xforward_its_way_in_and_is_cut_off(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_ALLOWED_CLIENTS": "127.0.0.1/32"})
    attempt = (b"EHLO c\r\nXFORWARD ADDR=127.0.0.1 NAME=localhost\r\nHELO c\r\nSTARTTLS\r\nAUTH PLAIN AGFAAGI=\r\n"
               b"MAIL FROM:<spam@example.net>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nbuy now\r\n.\r\n" * 3)
    lines = converse(relay.port, attempt, 40, source="127.0.0.2")
    assert lines[0].startswith(b"554 5.7.1")
    answers = {line[:9] for line in lines[1:]}
    assert answers <= {b"503 5.7.1", b"500 5.5.2"} and b"503 5.7.1" in answers, lines   # "buy now" is no command
    assert sum(line.startswith(b"503") for line in lines) == 10      # a bounded number of answers ...
    assert len(lines) - 1 < attempt.count(b"\r\n")                  # ... then the door closes, the rest unread
    assert sink.handler.sessions == 0 and sink.messages == []
    [refused] = relay.wait_for_event("session.refused")
    assert refused["peer"] == "127.0.0.2"


# --------------------------------------------------------------------------- smuggling end to end

SMUGGLED = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n"


SMUGGLING_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n\x00.\r\n", b"\r\n.\r\r\n", b"\r\n .\r\n"]


@pytest.mark.parametrize("pieces", [1, 7], ids=["one-write", "seven-pieces"])
def test_smuggling_through_the_real_process_never_yields_a_second_message(start_relay, make_sink, pieces):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    for end in SMUGGLING_ENDS:
        before = len(sink.messages)
        payload = (b"EHLO c\r\nMAIL FROM:<alice@example.ac.uk>\r\nRCPT TO:<bob@example.ac.uk>\r\nDATA\r\n"
                   + MSG + b"first" + end + SMUGGLED + b"\r\n.\r\nQUIT\r\n")
        lines = converse(relay.port, payload, 6, pieces=pieces)
        assert [line[:3] for line in lines[1:5]] == [b"250", b"250", b"250", b"354"], (end, lines)
        assert lines[5][:3] in (b"550", b"250"), (end, lines)          # ONE answer for the whole data
        assert lines[6].startswith(b"221 2.0.0"), (end, lines)         # the next thing it heard was QUIT, not MAIL
        assert not any("evil" in c for c in sink.handler.commands), end
        assert len(sink.wait_for_messages(before, timeout=1)) - before <= 1, end
        if len(sink.messages) > before:                              # a variant the relay may take (no bare CR/LF)
            assert SMUGGLED.split(b"\r\n")[0] in sink.messages[-1].data, end


# --------------------------------------------------------------------------- log injection


def test_log_injection_through_helo_xforward_addresses_and_headers_stays_one_escaped_line_per_event(
        start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    esc = b"\x1b[31m"
    data = (b"From: alice@example.ac.uk\r\nTo: bob@example.ac.uk\r\nSubject: =?utf-8?q?hi=0D=0A=1B[2J{\"event\":\"decision\"}?=\r\n"
            b"Message-ID: =?utf-8?q?<x=0D=0A=1B[31m@example.ac.uk>?=\r\n\r\nhello\r\n")
    payload = (b"EHLO evil" + esc + b"helo\r\n"
               b"XFORWARD NAME=evil+0D+0A{\"event\":\"decision\"}+1B[31m HELO=h+00+1B[2J ADDR=192.0.2.1+0A\r\n"
               b"MAIL FROM:<\xc3\xa9l\xc3\xa8ve@example.ac.uk> SMTPUTF8\r\nRCPT TO:<bob@example.ac.uk>\r\nDATA\r\n"
               + data + b".\r\nQUIT\r\n")
    lines = converse(relay.port, payload, 7)
    assert lines[-2].startswith(b"250 "), lines
    [event] = relay.wait_for_event("decision")
    for line in log_lines(relay):                           # every line is one JSON object, nothing split
        if line.strip():
            assert isinstance(json.loads(line), dict), line
    raw_log = relay.log_path.read_bytes()
    assert b"\x1b" not in raw_log and b"\\u001b" not in raw_log      # escapes escaped, as text
    assert b"\r" not in raw_log
    assert event["client"]["name"] == 'evil\\x0d\\x0a{"event":"decision"}\\x1b[31m'
    assert event["client"]["helo"] == "h\\x00\\x1b[2J"
    assert event["client"]["address"] == "192.0.2.1\\x0a"
    assert event["envelope"]["mail_from"] == "\u00e9l\u00e8ve@example.ac.uk"
    assert "\\x0d\\x0a\\x1b[31m" in event["header_message_id"]
    assert len([e for e in relay.events() if e.get("event") == "decision"]) == 1


# --------------------------------------------------------------------------- slow clients and session floods


def _trickle(port: int, payload: bytes, interval: float, result: list, stop: threading.Event) -> None:
    """Send ``payload`` a byte at a time every ``interval`` s; record (closed by the server?, what it said)."""
    got, closed = b"", False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.settimeout(interval)
            for byte in payload:
                if stop.is_set():
                    break
                try:
                    sock.sendall(bytes([byte]))
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:                        # reset: the server closed on us
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                got += chunk
    except OSError as exc:
        got += f"<{type(exc).__name__}>".encode()
    result.append((closed, got))


def test_slowloris_connections_are_closed_by_the_timeouts_while_others_are_served(start_relay, make_sink):
    import asyncio

    import aiosmtplib

    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_COMMAND_TIMEOUT": "2",
                         "RELAY_DATA_TIMEOUT": "3", "RELAY_MAX_SESSIONS": "40"})
    in_command = b"EHLO slow.client.example.with.a.long.name.that.takes.forever" * 4
    in_data = (b"EHLO c\r\nMAIL FROM:<alice@example.ac.uk>\r\nRCPT TO:<bob@example.ac.uk>\r\nDATA\r\n"
               + b"Subject: slow\r\n\r\n" + b"x" * 400)
    stop, results, threads = threading.Event(), [], []
    for n in range(16):
        payload = in_command if n % 2 else in_data
        t = threading.Thread(target=_trickle, args=(relay.port, payload, 0.5 if n % 2 else 0.4, results, stop))
        t.start()
        threads.append(t)

    async def normal_client() -> list[int]:
        codes = []
        for _ in range(3):
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
            await smtp.connect()
            _, reply = await smtp.sendmail("alice@example.ac.uk", ["bob@example.ac.uk"], MSG)
            codes.append(reply.startswith("2") and 250)
            await smtp.quit()
        return codes

    try:
        assert asyncio.run(asyncio.wait_for(normal_client(), 60)) == [250, 250, 250]
        for t in threads:
            t.join(60)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert len(results) == 16
    for closed, got in results:
        assert closed, got                                   # every slow client was cut off ...
        assert got.rstrip().endswith(b"421 4.4.2 Timeout exceeded, closing connection"), got   # ... and told why
    assert len(sink.messages) == 3                           # only the normal client's mail went through


def test_sessions_past_max_sessions_get_421_and_a_freed_slot_is_served(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_MAX_SESSIONS": "5"})
    held = [socket.create_connection(("127.0.0.1", relay.port), timeout=10) for _ in range(5)]
    try:
        for sock in held:
            assert sock.recv(512).startswith(b"220 ")
        extra = [converse(relay.port, b"EHLO c\r\n", 1) for _ in range(3)]
        for lines in extra:
            assert lines[0].startswith(b"421 4.7.0"), lines
            assert len(lines) == 1                           # and closed: no answer to EHLO
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:                                          # the relay notices the close (bounded)
            lines = converse(relay.port, b"EHLO c\r\nQUIT\r\n", 2)
            if lines[0].startswith(b"220 ") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert lines[0].startswith(b"220 ") and lines[-1].startswith(b"221"), lines
    finally:
        for sock in held:
            sock.close()
