"""/metrics, /healthz and /readyz of a running relay (real clamd, real sink, real store)."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import aiosmtplib
import pytest

from relay.metrics import METRIC_NAMES
from tests.fixtures.common import free_port

MSG = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nhello\r\n"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_http(port: int, path: str, timeout: float = 20.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(port, path)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def send(port: int, count: int) -> None:
    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, start_tls=False)
        await smtp.connect()
        for _ in range(count):
            await smtp.sendmail("alice@example.org", ["bob@example.org"], MSG)
        await smtp.quit()

    asyncio.run(asyncio.wait_for(go(), 60))


@pytest.mark.clamd
@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_count_messages_and_readyz_checks_every_dependency(start_relay, make_sink, clamd, workers):
    sink = make_sink()
    mport = free_port()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_METRICS": f"127.0.0.1:{mport}",
                         "RELAY_CLAMD": clamd, "RELAY_WORKERS": workers})
    assert wait_http(mport, "/healthz") == (200, "ok\n")
    status, text = get(mport, "/readyz")
    assert status == 200, text
    assert {line.split(":")[0] for line in text.splitlines()} == {"clamd", "quarantine", "next_hop"}
    send(relay.port, 3)
    sink.wait_for_messages(3)
    status, text = get(mport, "/metrics")
    assert status == 200
    # one process lists every family; the multiprocess sum lists those with samples
    names = METRIC_NAMES if workers == "1" else ("relay_messages_total", "relay_message_bytes_total",
                                                  "relay_decision_seconds", "relay_sessions_open")
    for name in names:
        assert name in text, name
    assert 'relay_messages_total{action="accept"} 3.0' in text
    assert "relay_quarantine_held 0.0" in text


def test_readyz_names_the_failing_dependency(start_relay, make_sink, clamd_down):
    sink = make_sink()
    mport = free_port()
    start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_METRICS": f"127.0.0.1:{mport}",
                 "RELAY_CLAMD": clamd_down})
    assert wait_http(mport, "/healthz")[0] == 200
    status, text = get(mport, "/readyz")
    assert status == 503
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert lines["quarantine"] == "ok" and lines["next_hop"] == "ok"
    assert lines["clamd"] != "ok" and "clamd" in lines["clamd"]
    assert get(mport, "/nope")[0] == 404
