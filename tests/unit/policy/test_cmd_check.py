"""``relay check``: envelope defaults, the printed report and its JSON (the pipeline run itself
is covered with real scanners in tests/integration/test_shipped_policy.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from policy_helpers import finding, message, policy_from

from relay.cli import main
from relay.commands.check import decision_dict, default_envelope, render
from relay.pipeline import Decision

ROOT = Path(__file__).resolve().parents[3]
RAW = (b"Return-Path: <bounce@example.ac.uk>\r\nFrom: Alice <alice@example.ac.uk>\r\n"
       b"To: Bob <bob@partner.example.com>, carol@example.ac.uk\r\nCc: dave@x.org\r\nBcc: eve@y.org\r\n"
       b"Subject: hi\r\n\r\nHello\r\n")

POLICY = policy_from("""
    - id: pd
      clause: "5.2"
      reason: "personal data ({types})"
      when: {finding: {kind: personal_data}}
      recipients: external
      action: hold
      notify_sender: true
    - id: watch
      clause: "3.4"
      reason: "abusive"
      when: {finding: {kind: personal_data}}
      action: reject
      mode: monitor
    """)


def test_envelope_from_headers():
    env = default_envelope(RAW, None, ())
    assert env.mail_from == "bounce@example.ac.uk"
    assert env.rcpt_tos == ("bob@partner.example.com", "carol@example.ac.uk", "dave@x.org", "eve@y.org")


def test_envelope_from_options():
    env = default_envelope(RAW, "", ("x@z.org",))
    assert env.mail_from == "" and env.rcpt_tos == ("x@z.org",)


def test_envelope_without_return_path_uses_from():
    env = default_envelope(b"From: a@b.org\r\nTo: c@d.org\r\n\r\nx\r\n", None, ())
    assert (env.mail_from, env.rcpt_tos) == ("a@b.org", ("c@d.org",))


def _decision():
    env = default_envelope(RAW, None, ("bob@partner.example.com", "carol@example.ac.uk"))
    msg = message()
    findings = (finding("personal_data", "uk_nino", evidence="AB •• •• •• C"),)
    return Decision(env, msg, findings, POLICY.evaluate(env, msg, findings), {"total": 0.0012})


def test_report_names_verdict_rules_recipients_and_findings():
    out = decision_dict(_decision(), POLICY)
    assert out["action"] == "hold" and out["policy_version"] == POLICY.version
    assert out["recipients"] == {"bob@partner.example.com": "hold", "carol@example.ac.uk": "accept"}
    assert out["rules"][0] == {"id": "pd", "clause": "5.2", "action": "hold", "reason": "personal data (uk_nino (1))",
                               "recipients": ["bob@partner.example.com"], "notify_sender": True}
    assert out["rules"][1]["monitor"] is True
    assert out["findings"][0]["evidence"] == "AB •• •• •• C"
    text = "\n".join(render(out))
    assert text.startswith(f"verdict: hold   (policy test.yaml, {POLICY.version})")
    assert "hold     pd  clause 5.2 for bob@partner.example.com [notify sender]" in text
    assert "monitor (would reject) watch  clause 3.4" in text
    assert "personal_data/uk_nino  high x1  in body  [AB •• •• •• C]" in text
    json.dumps(out)  # serialisable as is


def test_check_refuses_a_bad_policy(tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(RAW)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    result = CliRunner().invoke(main, ["check", str(eml), "--policy", str(bad)], env={"RELAY_CONFIG": ""})
    assert result.exit_code == 1 and "invalid policy:" in result.output and "missing key 'organisation'" in result.output


def test_check_needs_recipients(tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@b.org\r\nSubject: x\r\n\r\nx\r\n")
    result = CliRunner().invoke(main, ["check", str(eml), "--policy", str(ROOT / "policies" / "minimal.yaml")], env={"RELAY_CONFIG": ""})
    assert result.exit_code == 1 and "no recipients" in result.output
