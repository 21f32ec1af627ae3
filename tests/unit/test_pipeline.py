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
