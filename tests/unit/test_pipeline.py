"""The pipeline: scanners run concurrently, failures become findings, work is sized to the policy."""

from __future__ import annotations

import asyncio

import pytest

from relay.envelope import Envelope
from relay.findings import Finding
from relay.pipeline import Pipeline
from relay.policy import parse_policy
from relay.scanners import build_scanners
from relay.verdict import Action

POLICY = """
name: test
organisation:
  internal_domains: [example.ac.uk]
rules:
  - id: no-pd
    clause: "5.2"
    reason: "personal data ({types})"
    when: {finding: {kind: personal_data, confidence: high}}
    action: hold
"""

ENV = Envelope("alice@example.ac.uk", ("bob@example.org",), "127.0.0.1")


class Boom:
    name = "boom"

    async def scan(self, ctx):
        raise ValueError("bug in a scanner")


class Slow:
    name = "slow"

    async def scan(self, ctx):
        await asyncio.sleep(30)
        return ()


class Says:
    name = "says"

    def __init__(self, finding):
        self.finding = finding
        self.seen = None

    async def scan(self, ctx):
        self.seen = ctx
        return (self.finding,)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def policy(text=POLICY):
    return parse_policy(text, "test.yaml")


def test_only_scanners_the_policy_needs_run(make_settings):
    settings = make_settings()
    pipeline = Pipeline(settings, policy(), build_scanners(settings))
    assert [s.name for s in pipeline.scanners] == ["personal_data"]
    assert len(pipeline.available) == 10
    assert pipeline._extracts


def test_failing_and_slow_scanners_become_findings_and_fail_closed(make_settings, make_message):
    settings = make_settings(scan_timeout=0.2)
    says = Says(Finding("personal_data", "uk_nino"))
    pipeline = Pipeline(settings, policy(), [Boom(), Slow(), says])
    decision = run(pipeline.decide(ENV, make_message()))
    failed = {f.type: f.evidence for f in decision.findings if f.kind == "scanner_unavailable"}
    assert failed == {"boom": "ValueError", "slow": "timeout"}
    assert decision.verdict.action is Action.TEMPFAIL
    assert says.seen is not None and "scan.says" in decision.timings
    assert "bug in a scanner" not in repr(decision.findings)


def test_verdict_from_findings(make_settings, make_message):
    pipeline = Pipeline(make_settings(), policy(), [Says(Finding("personal_data", "uk_nino"))])
    decision = run(pipeline.decide(ENV, make_message()))
    assert decision.verdict.action is Action.HOLD
    assert [m.rule_id for m in decision.verdict.matches] == ["no-pd"]
    assert decision.message.subject == "Hello"


def test_parse_problems_reach_the_policy(make_settings):
    text = POLICY.replace("kind: personal_data, confidence: high", "kind: malformed")
    pipeline = Pipeline(make_settings(), policy(text), [])
    raw = (b"From: a@example.ac.uk\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")
    decision = run(pipeline.decide(ENV, raw))
    assert decision.verdict.action is Action.HOLD, decision.findings


@pytest.mark.parametrize("size", [100, 300 * 1024])
def test_large_and_small_messages_parse(make_settings, make_message, size):
    pipeline = Pipeline(make_settings(), policy(), [])
    decision = run(pipeline.decide(ENV, make_message(body="x" * size)))
    assert decision.verdict.action is Action.ACCEPT
    assert decision.message.size > size


class Quick:
    """Answers at once for small messages (``scan_now``), else through ``scan``."""

    def __init__(self, name, finding=None, fail=False):
        self.name, self.finding, self.fail = name, finding, fail
        self.calls = []

    def scan_now(self, ctx):
        if self.fail:
            raise KeyError("bug in a fast path")
        if ctx.message.size > 64 * 1024:
            return None
        self.calls.append("now")
        return [self.finding] if self.finding else []

    async def scan(self, ctx):
        self.calls.append("scan")
        await asyncio.sleep(0)
        return [self.finding] if self.finding else []


@pytest.mark.parametrize("size, path", [(100, "now"), (100 * 1024, "scan")])
def test_quick_scans_answer_inline_and_findings_keep_scanner_order(make_settings, make_message, size, path):
    first = Quick("first", Finding("personal_data", "uk_nino"))
    broken = Quick("broken", fail=True)
    last = Says(Finding("personal_data", "nhs_number"))
    pipeline = Pipeline(make_settings(), policy(), [first, broken, last])
    decision = run(pipeline.decide(ENV, make_message(body="x" * size)))
    assert first.calls == [path]
    assert [(f.kind, f.type) for f in decision.findings] == [
        ("personal_data", "uk_nino"), ("scanner_unavailable", "broken"), ("personal_data", "nhs_number")]
    assert {"scan.first", "scan.broken", "scan.says"} <= set(decision.timings)
    assert decision.verdict.action is Action.TEMPFAIL


@pytest.mark.parametrize("size, on_loop", [(1000, True), (200 * 1024, False)])
def test_small_messages_are_parsed_and_extracted_on_the_loop_large_ones_in_a_thread(
        make_settings, make_message, monkeypatch, size, on_loop):
    import threading

    from relay import extract, message

    threads = {}
    real_parse, real_extract = message.parse, extract.extract

    def parse(*args):
        threads["parse"] = threading.get_ident()
        return real_parse(*args)

    def extract_(*args):
        threads["extract"] = threading.get_ident()
        return real_extract(*args)

    monkeypatch.setattr(message, "parse", parse)
    monkeypatch.setattr(extract, "extract", extract_)
    pipeline = Pipeline(make_settings(), policy(), [Says(Finding("personal_data", "uk_nino"))])

    async def go():
        decision = await pipeline.decide(ENV, make_message(body="word " * (size // 5)))
        return decision, threading.get_ident()

    decision, loop_thread = run(go())
    assert decision.verdict.action is Action.HOLD
    assert (threads["parse"] == loop_thread, threads["extract"] == loop_thread) == (on_loop, on_loop)


@pytest.mark.parametrize("body", [
    "Hello Bob, the meeting is at ten.",
    "CONFIDENTIAL\n\nWe accept your offer of \u00a312,500 (twelve thousand pounds) per annum, you idiot.",
    "Please find the purchase order attached. Payment terms: 30 days. Total \u00a31,250.00",
])
def test_every_shipped_quick_scan_equals_its_full_scan(make_settings, make_message, body):
    from relay import extract, message
    from relay.scanners import ScanContext

    settings = make_settings()
    org = policy().organisation
    raw = make_message(body=body, to="a@x.example, b@y.example, c@z.example",
                       headers={"Sensitivity": "Company-Confidential", "X-Mailer": "Microsoft Outlook 16.0"})
    parsed = message.parse(raw, message.ParseLimits.from_settings(settings))
    ctx = ScanContext(parsed, ENV, org, extract.extract(parsed, extract.ExtractLimits.from_settings(settings)))
    quick = [s for s in build_scanners(settings) if hasattr(s, "scan_now")]
    assert {s.name for s in quick} >= {"filetypes", "protection", "confidential", "language", "recipients",
                                       "contracts", "figures", "client"}
    found = 0
    for scanner in quick:
        now = scanner.scan_now(ctx)
        assert now is not None, scanner.name
        assert list(now) == list(run(scanner.scan(ctx))), scanner.name
        found += len(now)
    assert found or body.startswith("Hello")
