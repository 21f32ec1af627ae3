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
    """A CPU-only scanner (``scan_sync``) that notes the thread it ran on."""

    def __init__(self, name, finding=None, fail=False, sleep=0.0):
        self.name, self.finding, self.fail, self.sleep = name, finding, fail, sleep
        self.threads = []

    def scan_sync(self, ctx):
        import threading
        import time

        self.threads.append(threading.get_ident())
        time.sleep(self.sleep)
        if self.fail:
            raise KeyError("bug in a scanner")
        return [self.finding] if self.finding else []

    async def scan(self, ctx):
        return self.scan_sync(ctx)


@pytest.mark.parametrize("size, on_loop", [(100, True), (100 * 1024, False)])
def test_cpu_scans_run_inline_for_small_mail_else_together_in_one_thread(make_settings, make_message, size, on_loop):
    import threading

    first = Quick("first", Finding("personal_data", "uk_nino"))
    broken = Quick("broken", fail=True)
    middle = Says(Finding("personal_data", "nhs_number"))      # async: a task of its own
    last = Quick("last", Finding("personal_data", "uk_passport"))
    pipeline = Pipeline(make_settings(), policy(), [first, broken, middle, last])

    async def go():
        return await pipeline.decide(ENV, make_message(body="x" * size)), threading.get_ident()

    decision, loop_thread = run(go())
    assert len({*first.threads, *broken.threads, *last.threads}) == 1        # one hop (or none) for all
    assert (first.threads[0] == loop_thread) == on_loop
    assert [(f.kind, f.type) for f in decision.findings] == [
        ("personal_data", "uk_nino"), ("scanner_unavailable", "broken"), ("personal_data", "nhs_number"),
        ("personal_data", "uk_passport")]
    assert {"scan.first", "scan.broken", "scan.says", "scan.last"} <= set(decision.timings)
    assert decision.verdict.action is Action.TEMPFAIL


def test_cpu_scans_past_the_time_out_fail_closed_and_the_rest_are_not_started(make_settings, make_message):
    import time

    done = Quick("done", Finding("personal_data", "uk_nino"))
    slow = Quick("slow", sleep=1.0)
    never = Quick("never")
    pipeline = Pipeline(make_settings(scan_timeout=0.3), policy(), [done, slow, never])
    decision = run(pipeline.decide(ENV, make_message(body="x" * 100 * 1024)))
    time.sleep(1.0)                                    # the thread finishes "slow", then stops
    assert [(f.kind, f.type, f.evidence) for f in decision.findings] == [
        ("personal_data", "uk_nino", ""), ("scanner_unavailable", "slow", "timeout"),
        ("scanner_unavailable", "never", "timeout")]
    assert never.threads == []
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
def test_every_shipped_sync_scan_equals_its_async_scan(make_settings, make_message, body):
    from relay import extract, message
    from relay.scanners import ScanContext

    settings = make_settings()
    org = policy().organisation
    raw = make_message(body=body, to="a@x.example, b@y.example, c@z.example",
                       headers={"Sensitivity": "Company-Confidential", "X-Mailer": "Microsoft Outlook 16.0"})
    parsed = message.parse(raw, message.ParseLimits.from_settings(settings))
    ctx = ScanContext(parsed, ENV, org, extract.extract(parsed, extract.ExtractLimits.from_settings(settings)))
    quick = [s for s in build_scanners(settings) if hasattr(s, "scan_sync")]
    assert {s.name for s in quick} >= {"filetypes", "protection", "confidential", "language", "recipients",
                                       "contracts", "figures", "client", "personal_data"}
    found = 0
    for scanner in quick:
        now = scanner.scan_sync(ctx)
        assert list(now) == list(run(scanner.scan(ctx))), scanner.name
        found += len(now)
    assert found or body.startswith("Hello")


SIZE_ONLY = """
name: size only
organisation:
  internal_domains: [example.ac.uk]
rules:
  - id: huge
    clause: "1"
    reason: "too big"
    when: {message_size: "1MiB"}
    action: reject
"""


@pytest.mark.parametrize("text, head_only", [(SIZE_ONLY, True), (POLICY, False),
                                             (POLICY.replace("kind: personal_data, confidence: high",
                                                             "kind: malformed"), False)])
def test_a_policy_that_tests_no_content_parses_only_the_header_block(make_settings, make_message, text, head_only):
    settings = make_settings()
    pipeline = Pipeline(settings, policy(text), build_scanners(settings, policy(text).kinds))
    raw = make_message(body="hello", attachments=[("a.txt", b"attached", "text/plain")])
    decision = run(pipeline.decide(ENV, raw))
    assert decision.message.header("Subject") == "Hello" and decision.message.size == len(raw)
    assert (decision.message.root.children == ()) == head_only
    assert decision.verdict.action is Action.ACCEPT


def test_header_block_alone_keeps_header_problems_and_never_raises():
    from relay.message import parse_head

    head = parse_head(b"From: a@example.ac.uk\r\nSubject: one\r\nSubject: two\r\nContent-Type: multipart/mixed;"
                      b" boundary=x\r\n\r\n--x\r\n\xff\xfe garbage")
    assert head.root.content_type == "multipart/mixed" and head.header("Subject") == "one"
    assert [(f.kind, f.type) for f in head.problems] == [("malformed", "duplicate_header")]
    assert parse_head(b"").root.headers == () and parse_head(b"\xff" * 100).root.children == ()
