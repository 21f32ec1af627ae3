"""/metrics, /healthz and /readyz of a running relay (real clamd, real sink, real store).

Past the names: each metric moves when the thing it counts happens (a verdict, a rule, a scan,
clamd down, the next hop down or refusing, a session opening and closing, a message held)."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import aiosmtplib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.metrics import HELD_INTERVAL, METRIC_NAMES
from tests.data.attachments import samples
from tests.fixtures.common import free_port
from tests.fixtures.smtp import MINIMAL_POLICY

MSG = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nhello\r\n"
EICAR_MSG = samples.message([("eicar.com", samples.EICAR, "application/octet-stream")])
# the fixture's accept-all policy (clamd down -> tempfail) plus malware -> reject and
# mail to outside example.org -> hold
POLICY = MINIMAL_POLICY + """\
  - id: malware
    clause: "1"
    reason: "virus found: {signature}"
    when: {finding: {kind: malware}}
    action: reject
  - id: external-review
    clause: "3"
    reason: "mail to {recipients} external recipient(s) is reviewed"
    when: {external_recipients: true}
    recipients: external
    action: hold
"""


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


Samples = dict[tuple[str, frozenset], float]


def scrape(port: int) -> Samples:
    """Every sample of /metrics, keyed by (sample name, labels)."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def send_one(port: int, rcpts: list[str], data: bytes) -> int:
    """One message in its own session; the SMTP code the relay answered DATA (or MAIL/RCPT) with."""
    async def go() -> int:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20, start_tls=False)
        await smtp.connect()
        try:
            refused, _ = await smtp.sendmail("alice@example.org", rcpts, data)
            return 250 if not refused else min(r.code for r in refused.values())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return min(r.code for r in exc.recipients)
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code
        finally:
            smtp.close()

    return asyncio.run(asyncio.wait_for(go(), 60))


def start(start_relay, upstream_port: int, clamd: str, **env: str):
    mport = free_port()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{upstream_port}", "RELAY_METRICS": f"127.0.0.1:{mport}",
                         "RELAY_CLAMD": clamd, **env}, policy=POLICY)
    assert wait_http(mport, "/healthz") == (200, "ok\n")
    return relay, mport


@pytest.mark.clamd
def test_verdicts_rules_scan_times_and_bytes_are_counted(start_relay, make_sink, clamd):
    sink = make_sink()
    relay, mport = start(start_relay, sink.port, clamd)
    cases = [  # (recipients, message, reply, action, rule)
        (["bob@example.org"], MSG, 250, "accept", None),
        (["bob@example.org"], EICAR_MSG, 550, "reject", ("malware", "reject")),
        (["carol@example.net"], MSG, 250, "hold", ("external-review", "hold")),
        (["bob@example.org"], MSG, 250, "accept", None),
    ]
    before = scrape(mport)
    for rcpts, data, reply, action, rule in cases:
        assert send_one(relay.port, rcpts, data) == reply
        after = scrape(mport)
        # counters are updated before the reply is sent, so one scrape after the reply sees them
        assert value(after, "relay_messages_total", action=action) == value(before, "relay_messages_total",
                                                                            action=action) + 1
        assert value(after, "relay_scanner_seconds_count", scanner="clamav") == value(
            before, "relay_scanner_seconds_count", scanner="clamav") + 1
        assert value(after, "relay_decision_seconds_count") == value(before, "relay_decision_seconds_count") + 1
        assert value(after, "relay_message_bytes_total") == value(before, "relay_message_bytes_total") + len(data)
        if rule is not None:
            labels = {"rule": rule[0], "action": rule[1], "mode": "enforce"}
            assert value(after, "relay_rule_matches_total", **labels) == value(
                before, "relay_rule_matches_total", **labels) + 1
        before = after
    assert value(after, "relay_messages_total", action="accept") == 2
    assert sum(v for (name, _), v in after.items() if name == "relay_rule_matches_total") == 2
    assert value(after, "relay_scanner_failures_total", scanner="clamav") == 0
    assert sum(v for (name, _), v in after.items() if name == "relay_upstream_failures_total") == 0
    sink.wait_for_messages(2)


@pytest.mark.clamd
def test_scanner_failures_are_counted_when_clamd_is_down(start_relay, make_sink, clamd_down):
    sink = make_sink()
    relay, mport = start(start_relay, sink.port, clamd_down)
    assert value(scrape(mport), "relay_scanner_failures_total", scanner="clamav") == 0
    for expected in (1, 2):
        assert send_one(relay.port, ["bob@example.org"], MSG) == 451
        after = scrape(mport)
        assert value(after, "relay_scanner_failures_total", scanner="clamav") == expected
        assert value(after, "relay_messages_total", action="tempfail") == expected
        assert value(after, "relay_rule_matches_total", rule="scanner-unavailable", action="tempfail",
                     mode="enforce") == expected
    assert sink.messages == []


@pytest.mark.clamd
@pytest.mark.parametrize(("fault", "kind", "reply"), [("down", "mail", 451), ("refuses", "refused", 554)])
def test_next_hop_failures_are_counted_by_kind(start_relay, make_sink, clamd, fault, kind, reply):
    if fault == "down":
        upstream_port = free_port()    # nothing listens there
    else:
        upstream_port = make_sink(data_reply="554 5.7.1 refused by the test sink").port
    relay, mport = start(start_relay, upstream_port, clamd)
    assert value(scrape(mport), "relay_upstream_failures_total", kind=kind) == 0
    assert send_one(relay.port, ["bob@example.org"], MSG) == reply
    after = scrape(mport)
    assert value(after, "relay_upstream_failures_total", kind=kind) == 1
    assert sum(v for (name, _), v in after.items() if name == "relay_upstream_failures_total") == 1


def wait_for_value(port: int, name: str, expected: float, timeout: float) -> Samples:
    """Scrape until ``name`` (no labels) reads ``expected``; AssertionError with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if value(samples, name) == expected:
            return samples
        assert time.monotonic() < deadline, f"{name} is {value(samples, name)}, expected {expected}"
        time.sleep(0.1)


@pytest.mark.clamd
def test_sessions_open_goes_up_while_sessions_are_open_and_back_down(start_relay, make_sink, clamd):
    sink = make_sink()
    relay, mport = start(start_relay, sink.port, clamd)
    assert value(scrape(mport), "relay_sessions_open") == 0

    async def go() -> list[float]:
        seen = []
        clients = []
        try:
            for _ in range(2):
                smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=20, start_tls=False)
                clients.append(smtp)
                await smtp.connect()
                await smtp.ehlo()   # answered: the relay has counted the session
                seen.append(value(await asyncio.to_thread(scrape, mport), "relay_sessions_open"))
            for smtp in clients:
                await smtp.quit()
        finally:
            for smtp in clients:
                smtp.close()
        return seen

    assert asyncio.run(asyncio.wait_for(go(), 60)) == [1, 2]
    # the relay counts a session closed when its side of the connection is gone, just after QUIT's reply
    wait_for_value(mport, "relay_sessions_open", 0, timeout=10)


@pytest.mark.clamd
@pytest.mark.parametrize("workers", ["1", "2"])
def test_quarantine_held_is_counted_without_a_readiness_probe(start_relay, make_sink, clamd, workers):
    """relay_quarantine_held follows the store with nothing calling /readyz (it used to be set only there)."""
    sink = make_sink()
    relay, mport = start(start_relay, sink.port, clamd, RELAY_WORKERS=workers)
    assert send_one(relay.port, ["carol@example.net"], MSG) == 250
    [decision] = relay.wait_for_event("decision")
    assert decision["action"] == "hold" and decision["quarantine_id"]
    wait_for_value(mport, "relay_quarantine_held", 1, timeout=3 * HELD_INTERVAL)
    assert send_one(relay.port, ["dave@example.net"], MSG) == 250
    wait_for_value(mport, "relay_quarantine_held", 2, timeout=3 * HELD_INTERVAL)
    assert sink.messages == []
