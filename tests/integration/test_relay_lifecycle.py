"""`relay serve` lifecycle as a subprocess: SIGTERM drain, SIGKILL mid-DATA, --workers, SIGHUP reload."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import time
from pathlib import Path

import aiosmtplib
import pytest

from tests.fixtures.smtp import MINIMAL_POLICY

pytestmark = [pytest.mark.clamd, pytest.mark.slow]

MSG = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: lifecycle\r\n\r\nbody\r\n"


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


def test_sigterm_lets_the_transaction_in_flight_finish_and_exits_0(start_relay, make_sink):
    sink = make_sink(data_delay=1.5)
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_SHUTDOWN_GRACE": "20"})

    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        await smtp.mail("alice@example.org")
        await smtp.rcpt("bob@example.org")
        sending = asyncio.create_task(smtp.data(MSG))
        await wait_until(lambda: "DATA" in sink.handler.commands)   # the message is at the next hop now
        relay.signal(signal.SIGTERM)
        answer = await sending
        smtp.close()
        return answer

    answer = asyncio.run(asyncio.wait_for(go(), 60))
    assert answer.code == 250 and "captured" in answer.message
    assert relay.wait(30) == 0
    assert len(sink.messages) == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()


def test_sigkill_mid_data_never_gives_250(start_relay, make_sink):
    sink = make_sink(data_delay=30)
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})

    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        try:
            await reader.readline()
            writer.write(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
            writer.write(b"Subject: half\r\n\r\nfirst half of the body\r\n")
            await writer.drain()
            got = b""
            while b"354 " not in got:
                got += await asyncio.wait_for(reader.read(4096), 10)
            relay.proc.kill()                                    # mid-DATA: no end of data yet
            rest = await asyncio.wait_for(reader.read(), 10)
            return got + rest
        finally:
            writer.close()

    received = asyncio.run(asyncio.wait_for(go(), 60))
    assert b"354 " in received
    assert b"\r\n250 " not in received.split(b"354 ", 1)[1]
    assert sink.messages == []


def _socket_inodes(local_port: int, state: str, remote_port: int | None = None) -> set[str]:
    """Inodes of the TCP sockets on ``local_port`` in ``state`` ("0A" listening, "01" established)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if (int(fields[1].rsplit(":", 1)[1], 16) == local_port and fields[3] == state
                    and (remote_port is None or int(fields[2].rsplit(":", 1)[1], 16) == remote_port)):
                inodes.add(fields[9])
    return inodes


def _pids_holding(inodes: set[str]) -> set[int]:
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def _listening_pids(port: int) -> set[int]:
    return _pids_holding(_socket_inodes(port, "0A"))


def _serving_pid(port: int, smtp: aiosmtplib.SMTP) -> int:
    """The worker process holding the relay's end of ``smtp``'s connection."""
    client_port = smtp.get_transport_info("sockname")[1]
    [pid] = _pids_holding(_socket_inodes(port, "01", client_port))
    return pid


def test_two_workers_serve_the_same_port(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, args=("--workers", "2"))

    async def settle():
        await wait_until(lambda: len(_listening_pids(relay.port)) == 2, 30)

    asyncio.run(settle())
    pids = _listening_pids(relay.port)
    assert len(pids) == 2 and relay.pid not in pids

    async def go():
        for n in range(6):
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
            await smtp.connect()
            await smtp.sendmail("alice@example.org", [f"r{n}@example.org"], MSG)
            await smtp.quit()

    asyncio.run(asyncio.wait_for(go(), 60))
    assert len(sink.wait_for_messages(6)) == 6
    served_by = {e["pid"] for e in relay.events("serving")}
    assert served_by == pids
    relay.signal(signal.SIGTERM)
    assert relay.wait(30) == 0
    assert _listening_pids(relay.port) == set()


REJECT_ALL = MINIMAL_POLICY + """\
  - id: no-mail-today
    clause: "9.9"
    reason: "no mail today"
    when: {recipients: 1}
    action: reject
"""


def test_sighup_reloads_a_valid_policy_without_dropping_sessions_and_ignores_an_invalid_one(
        start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"})
    policy_path = relay.policy_path

    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
        await smtp.connect()
        before = await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
        policy_path.write_text(REJECT_ALL, encoding="utf-8")
        relay.signal(signal.SIGHUP)
        await wait_until(lambda: relay.events("policy.reloaded"), 15)
        with pytest.raises(aiosmtplib.SMTPDataError) as rejected:          # same session, new policy
            await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
        policy_path.write_text("rules: [oops\n", encoding="utf-8")
        relay.signal(signal.SIGHUP)
        await wait_until(lambda: relay.events("policy.reload_failed"), 15)
        with pytest.raises(aiosmtplib.SMTPDataError) as still:
            await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
        await smtp.quit()
        return before, rejected.value, still.value

    before, rejected, still = asyncio.run(asyncio.wait_for(go(), 60))
    assert before[1].startswith("2.0.0 OK captured")
    assert rejected.code == 550 and rejected.message == "5.7.1 no mail today [rule no-mail-today, clause 9.9]"
    assert still.code == 550
    assert relay.proc.poll() is None
    assert len(sink.messages) == 1


def _version(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


def test_sighup_with_two_workers_reloads_the_policy_in_each(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, args=("--workers", "2"))
    asyncio.run(wait_until(lambda: len(_listening_pids(relay.port)) == 2, 30))
    workers = _listening_pids(relay.port)
    old_version, new_version = _version(relay.policy_path.read_text(encoding="utf-8")), _version(REJECT_ALL)

    async def go():
        sessions: dict[int, aiosmtplib.SMTP] = {}       # one open session per worker
        for _ in range(64):                              # the kernel spreads connections over the workers
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
            await smtp.connect()
            pid = _serving_pid(relay.port, smtp)
            if pid in sessions:
                await smtp.quit()
            else:
                sessions[pid] = smtp
            if len(sessions) == len(workers):
                break
        before = [await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG) for smtp in sessions.values()]
        relay.policy_path.write_text(REJECT_ALL, encoding="utf-8")
        relay.signal(signal.SIGHUP)                        # to the supervisor, which forwards it
        await wait_until(lambda: len(relay.events("policy.reloaded")) == len(workers), 15)
        after = {}
        for pid, smtp in sessions.items():                 # the same sessions, each worker's new policy
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
            after[pid] = refused.value
            await smtp.quit()
        return set(sessions), before, after

    served, before, after = asyncio.run(asyncio.wait_for(go(), 90))
    assert served == workers
    assert all(answer[1].startswith("2.0.0 OK captured") for answer in before)
    assert {pid: (e.code, e.message) for pid, e in after.items()} == dict.fromkeys(
        workers, (550, "5.7.1 no mail today [rule no-mail-today, clause 9.9]"))
    assert [e["version"] for e in relay.events("policy.reloaded")] == [new_version, new_version]
    decisions = relay.events("decision")
    assert [d["policy_version"] for d in decisions] == [old_version] * 2 + [new_version] * 2
    assert [d["deciding_rule"] for d in decisions[2:]] == ["no-mail-today"] * 2
    assert relay.proc.poll() is None and len(sink.messages) == 2
    relay.signal(signal.SIGTERM)
    assert relay.wait(30) == 0


def test_a_worker_that_dies_is_replaced(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, args=("--workers", "2"))

    async def wait_pids(check):
        await wait_until(lambda: check(_listening_pids(relay.port)), 30)

    asyncio.run(wait_pids(lambda p: len(p) == 2))
    first = _listening_pids(relay.port)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    asyncio.run(wait_pids(lambda p: len(p) == 2 and victim not in p))
    assert relay.events("worker.died")
    relay.signal(signal.SIGTERM)
    assert relay.wait(30) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_stops_start_up_with_exit_1(start_relay, make_sink, workers):
    busy = make_sink()
    relay = start_relay({"RELAY_LISTEN": f"127.0.0.1:{busy.port}"}, args=("--workers", workers), wait=False)
    assert relay.wait(60) == 1
    assert "cannot listen on" in relay.log_path.read_text()


# An invalid policy, and the line its error must name.
INVALID = {
    "unknown-kind": (MINIMAL_POLICY.replace("kind: scanner_unavailable", "kind: scanner_unavailabel"), 13,
                     "unknown finding kind 'scanner_unavailabel'"),
    "yaml-syntax": (MINIMAL_POLICY.replace("{finding: {kind: scanner_unavailable}}",
                                           "{finding: {kind: scanner_unavailable}"), 14,
                    "not valid YAML: expected ',' or '}'"),
}


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("case", INVALID)
def test_an_invalid_policy_stops_start_up_with_exit_1_and_file_line(start_relay, workers, case):
    text, line, what = INVALID[case]
    relay = start_relay({"RELAY_CLAMD": "tcp://127.0.0.1:9"}, args=("--workers", workers), wait=False, policy=text)
    assert relay.wait(60) == 1
    output = relay.log_path.read_text(encoding="utf-8")
    assert f"Error: invalid policy: {relay.policy_path}:{line}: " in output and what in output, output
    assert "Traceback" not in output
    assert not relay.events("serving") and not relay.events("supervising")
