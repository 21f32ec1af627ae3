"""The shipped policy on a corpus of real messages, through the whole pipeline.

Every case in tests/data/policy-cases/manifest.yaml is parsed, extracted and
scanned by the relay's own scanners (``build_scanners(settings)``) and
decided by policies/icmp-email-use.yaml; the verdict, the matching rule ids
and the per-recipient actions must be the manifest's. ``cases`` run without
the antivirus scanner (no clamd); ``clamd_cases`` run every scanner against a
private clamd. ``relay check`` is run the same way, with clamd down too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from relay.envelope import Envelope
from relay.pipeline import Pipeline
from relay.policy import load_policy
from relay.scanners import build_scanners
from relay.verdict import Action

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "data" / "policy-cases"
POLICY_FILE = ROOT / "policies" / "icmp-email-use.yaml"
MANIFEST = yaml.safe_load((CASES / "manifest.yaml").read_text(encoding="utf-8"))
ANTIVIRUS = frozenset({"clamav"})  # scanner names that need clamd
NINO = "JG 10 37 59 A"
CLAUSE_ROWS = ("2.1", "3.1", "3.1.2, 3.2-3.4", "3.5", "4.1", "4.2", "5.1", "5.2, 5.3", "5.4")


async def _decide(settings, envelope: Envelope, raw: bytes, skip: frozenset[str]):
    scanners = [s for s in build_scanners(settings) if s.name not in skip]
    try:
        return await Pipeline(settings, load_policy(POLICY_FILE), scanners).decide(envelope, raw)
    finally:
        for scanner in scanners:
            closer = getattr(scanner, "aclose", None) or getattr(scanner, "close", None)
            if callable(closer):
                result = closer()
                if inspect.isawaitable(result):
                    await result


def run_case(case: dict, settings, skip: frozenset[str] = frozenset()) -> None:
    raw = (CASES / case["file"]).read_bytes()
    envelope = Envelope(case["mail_from"], tuple(case["rcpt_tos"]), client_address="127.0.0.1")
    decision = asyncio.run(_decide(settings, envelope, raw, skip))
    verdict = decision.verdict
    got = (str(verdict.action), sorted(m.rule_id for m in verdict.matches))
    found = [f"{f.kind}/{f.type} {f.confidence} x{f.count} in {f.where}" for f in decision.findings]
    assert got == (case["action"], sorted(case["rules"])), f"{case['file']}: findings were {found}"
    expected = {r: Action.parse(case.get("recipients", {}).get(r, case["action"])) for r in case["rcpt_tos"]}
    assert dict(verdict.recipient_actions) == expected
    assert verdict.policy_version.startswith("sha256:")
    for match in verdict.matches:
        assert NINO not in match.reason and NINO.replace(" ", "") not in match.reason


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=[c["file"] for c in MANIFEST["cases"]])
def test_corpus_case(case, make_settings):
    run_case(case, make_settings(), skip=ANTIVIRUS)


@pytest.mark.clamd
@pytest.mark.parametrize("case", MANIFEST["clamd_cases"], ids=[c["file"] for c in MANIFEST["clamd_cases"]])
def test_corpus_case_with_clamd(case, clamd, make_settings):
    run_case(case, make_settings(clamd=clamd))


def test_manifest_lists_every_file_once_and_covers_every_clause():
    listed = [c["file"] for c in MANIFEST["cases"] + MANIFEST["clamd_cases"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.name for p in CASES.glob("*.eml")}
    clauses = {c["clause"] for c in MANIFEST["cases"] + MANIFEST["clamd_cases"]}
    assert set(CLAUSE_ROWS) <= clauses
    assert sum(1 for c in MANIFEST["cases"] if c["clause"] == "-" and c["action"] == "accept") >= 2
    rule_ids = {r.id for r in load_policy(POLICY_FILE).rules}
    for case in MANIFEST["cases"] + MANIFEST["clamd_cases"]:
        assert set(case["rules"]) <= rule_ids, case["file"]
        assert set(case) <= {"file", "clause", "mail_from", "rcpt_tos", "action", "rules", "recipients"}


def _check(args: list[str], settings_env: dict[str, str]) -> subprocess.CompletedProcess:
    """``relay check`` in its own process, as an operator runs it (it configures logging globally)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(settings_env)
    return subprocess.run([sys.executable, "-m", "relay.cli", "check", *args, "--policy", str(POLICY_FILE)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)


def test_check_without_clamd_reports_the_failure_and_tempfails(clamd_down, tmp_path):
    result = _check([str(CASES / "clean-meeting.eml"), "--json"],
                    {"RELAY_CLAMD": clamd_down, "RELAY_QUARANTINE": f"sqlite:///{tmp_path}/q.db"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["action"] == "tempfail"
    assert any(f["kind"] == "scanner_unavailable" and f["type"] == "clamav" for f in out["findings"])
    assert "scanner-unavailable" in [r["id"] for r in out["rules"]]
    assert out["recipients"] == {"bob@partner.example.com": "tempfail"}


@pytest.mark.clamd
def test_check_prints_the_verdict_per_recipient(clamd, tmp_path):
    result = _check([str(CASES / "personal-data-mixed.eml"), "--from", "alice@example.ac.uk",
                     "--to", "bob@partner.example.com", "--to", "carol@example.ac.uk"],
                    {"RELAY_CLAMD": clamd, "RELAY_QUARANTINE": f"sqlite:///{tmp_path}/q.db"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("verdict: hold   (policy ") and "sha256:" in lines[0]
    assert "  hold     bob@partner.example.com" in lines
    assert "  accept   carol@example.ac.uk" in lines
    assert any("personal-data-external  clause 5.2, 5.3 for bob@partner.example.com [notify sender]" in ln for ln in lines)
    assert NINO not in result.stdout + result.stderr  # evidence is redacted by the scanner
