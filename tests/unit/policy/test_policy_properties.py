"""Properties of every verdict, for any findings and recipients (hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_helpers import message

from relay.envelope import Envelope
from relay.findings import KINDS, TYPES, Confidence, Finding
from relay.policy import load_policy
from relay.verdict import Action

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_policy(ROOT / "policies" / "icmp-email-use.yaml")
MSG = message()
SECRET = "SECRET-EVIDENCE-42"


@st.composite
def findings(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    types = TYPES.get(kind, ("", "clamav", "Eicar-Test-Signature", "gbp"))
    return Finding(kind, draw(st.sampled_from(types)), draw(st.sampled_from(list(Confidence))),
                   draw(st.integers(1, 80)), draw(st.sampled_from(["body", "message", 'part 2 "a.pdf"', "header Subject"])),
                   SECRET, draw(st.booleans()))


ADDRESSES = st.sampled_from(["bob@partner.example.com", "eve@other.org", "carol@example.ac.uk",
                             "dan@students.example.ac.uk", "all-staff@example.ac.uk"])
SENDERS = st.sampled_from(["alice@example.ac.uk", "sam@students.example.ac.uk", "x@elsewhere.org", ""])


@settings(max_examples=300, deadline=None)
@given(st.lists(findings(), max_size=8), st.lists(ADDRESSES, min_size=1, max_size=5), SENDERS)
def test_verdict_invariants(found, rcpts, sender):
    verdict = POLICY.evaluate(Envelope(sender, tuple(rcpts)), MSG, found)
    # every envelope recipient has an action; the message's is the most severe
    assert set(verdict.recipient_actions) == set(rcpts)
    assert verdict.action == max(verdict.recipient_actions.values())
    # an enforced match raises each recipient it names to at least its action
    for m in verdict.enforced:
        for r in m.recipients if m.recipients is not None else rcpts:
            assert verdict.recipient_actions[r] >= m.action
    # no recipient is above every enforced match (the default is accept)
    top = max((m.action for m in verdict.enforced), default=Action.ACCEPT)
    assert verdict.action == top
    # fail closed; never personal data in a reason; always the version
    if any(f.kind == "scanner_unavailable" for f in found):
        assert all(a >= Action.TEMPFAIL for a in verdict.recipient_actions.values())
    if any(f.kind == "malware" for f in found):
        assert verdict.action is Action.REJECT
    assert all(SECRET not in m.reason for m in verdict.matches)
    assert verdict.policy_version == POLICY.version
    assert verdict.deciding is None or verdict.deciding.action == verdict.action
