"""Properties of the whole decision path, checked by hypothesis: any bytes get a verdict.

``Pipeline.decide`` with the shipped policy (policies/icmp-email-use.yaml) and
every scanner but ClamAV (no network here) over arbitrary bytes and over real
messages mutated at random, with internal and external recipients:

- it never raises, and every recipient gets an action;
- invariant 5: when the parser or an extractor reports the message as
  malformed or over a bound, the verdict is hold or worse, never accept/tag;
- a failed scanner (``scanner_unavailable``) is tempfail or worse;
- the decision event (``relay.log.decision_event``) is JSON, and the rule
  reasons in it carry no control characters.

Example counts are bounded so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import Settings
from relay.envelope import Envelope
from relay.log import decision_event
from relay.pipeline import Pipeline
from relay.policy import load_policy
from relay.scanners import build_scanners
from relay.verdict import Action
from tests.unit.test_properties_message import mutated

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "icmp-email-use.yaml"
RECIPIENTS = ["carol@example.ac.uk", "bob@partner.example.com", "all-staff@example.ac.uk", "x@students.example.ac.uk"]
SENDERS = ["alice@example.ac.uk", "sam@students.example.ac.uk", "", "guest.one@example.ac.uk"]
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def decide(tmp_path_factory):
    """``decide(envelope, raw)`` -> Decision, on one event loop for the module; scanners closed at the end."""
    directory = tmp_path_factory.mktemp("props")
    cfg = Settings.from_mapping({"quarantine": f"sqlite:///{directory}/q.sqlite3", "scan_timeout": "20s",
                                 "extract_timeout": "20s"})
    scanners = [s for s in build_scanners(cfg) if s.name != "clamav"]
    pipeline = Pipeline(cfg, load_policy(POLICY), scanners)
    loop = asyncio.new_event_loop()
    try:
        yield lambda envelope, raw: loop.run_until_complete(asyncio.wait_for(pipeline.decide(envelope, raw), 60))
    finally:
        for scanner in scanners:
            closer = getattr(scanner, "aclose", None) or getattr(scanner, "close", None)
            if callable(closer):
                result = closer()
                if asyncio.iscoroutine(result):
                    loop.run_until_complete(result)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def check(decision, envelope: Envelope) -> None:
    verdict = decision.verdict
    assert isinstance(verdict.action, Action)
    assert set(verdict.recipient_actions) == set(envelope.rcpt_tos)
    assert verdict.action == max(verdict.recipient_actions.values())
    kinds = {f.kind for f in decision.findings}
    if kinds & {"malformed", "limit_exceeded"}:
        assert verdict.action >= Action.HOLD, (verdict, decision.findings)          # invariant 5
    if "scanner_unavailable" in kinds:
        assert verdict.action >= Action.TEMPFAIL, (verdict, decision.findings)      # invariant 3
    event = decision_event(message_id="m", session_id="s", client={"address": "127.0.0.1"},
                           mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos, size=len(decision.message.raw),
                           decision=decision)
    text = json.dumps(event)
    assert "\n" not in text
    for rule in event["rules"]:
        assert not CONTROL.search(rule["reason"]), rule


envelopes = st.builds(lambda s, r: Envelope(s, tuple(r), client_address="127.0.0.1"),
                      st.sampled_from(SENDERS), st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True))


@EXAMPLES
@given(envelopes, st.binary(max_size=4000))
def test_any_bytes_get_a_verdict(decide, envelope, raw):
    check(decide(envelope, raw), envelope)


@EXAMPLES
@given(envelopes, mutated())
def test_mutated_real_messages_get_a_verdict_and_malformed_is_never_clean(decide, envelope, raw):
    check(decide(envelope, raw), envelope)


def test_the_property_is_not_vacuous(decide):
    """Malformed input really is seen as such: a broken base64 body is held, a clean note accepted."""
    env = Envelope("alice@example.ac.uk", ("carol@example.ac.uk",), client_address="127.0.0.1")
    broken = (b"From: alice@example.ac.uk\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\nTWFu!!!ZGF0YQ=\r\n")
    assert decide(env, broken).verdict.action == Action.HOLD
    clean = b"From: alice@example.ac.uk\r\nTo: carol@example.ac.uk\r\nSubject: lunch\r\n\r\nSee you at one.\r\n"
    assert decide(env, clean).verdict.action == Action.ACCEPT


@pytest.mark.parametrize("number", ["9\u200b43 476 5919", "943\u00ad 476 5919", "9\u200d4\u200d3 476 5919",
                                    "\u202d943 476 5919\u202c", "\ufeff943 476\u2060 5919",
                                    "\uff19\uff14\uff13 \uff14\uff17\uff16 \uff15\uff19\uff11\uff19"],
                         ids=["zwsp", "soft-hyphen", "zwj", "bidi-override", "bom-word-joiner", "fullwidth"])
def test_invisible_and_fullwidth_characters_do_not_hide_personal_data(decide, number):
    """Found by the hostile tests: characters a reader never sees (or sees as plain digits) hid an NHS
    number from the scanner and the message was accepted; extraction now reads text as a person does."""
    env = Envelope("alice@example.ac.uk", ("bob@partner.example.com",), client_address="127.0.0.1")
    raw = ("From: alice@example.ac.uk\r\nTo: bob@partner.example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           f"Hello Bob, the patient's NHS number is {number} as requested.\r\n").encode()
    decision = decide(env, raw)
    assert decision.verdict.action == Action.HOLD
    assert ("personal_data", "nhs_number") in {(f.kind, f.type) for f in decision.findings}
