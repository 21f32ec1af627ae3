"""``relay policy validate``: exit 0 and a summary, or exit 1 and the loader's precise message."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from relay.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_validate_shipped_policy():
    result = CliRunner().invoke(main, ["policy", "validate", str(ROOT / "policies" / "icmp-email-use.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid policy 'ICMP Email Use Policy V1.1' (sha256:" in result.output
    assert "internal domains: example.ac.uk" in result.output
    assert "custom detectors: student_number" in result.output
    assert "scanner failure: tempfail" in result.output


def test_validate_json_summary():
    result = CliRunner().invoke(main, ["policy", "validate", "--json", str(ROOT / "policies" / "minimal.yaml")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rules"] == 4 and summary["mode"] == "enforce" and summary["version"].startswith("sha256:")
    assert summary["actions"] == {"reject": 1, "tempfail": 1, "hold": 2}


def test_validate_bad_policy_exits_1_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "organisation:\n  internal_domains: [example.org]\nrules:\n"
        "  - id: x\n    clause: '1'\n    reason: r\n    when: {finding: {kind: virus}}\n    action: reject\n"
    )
    result = CliRunner().invoke(main, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"invalid policy: {bad}:7: rules[0] (x).when.finding.kind: unknown finding kind 'virus'" in result.output


def test_validate_missing_file_exits_1(tmp_path):
    result = CliRunner().invoke(main, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read policy file" in result.output
