"""docs/admin.md stays true to the code: the settings table is describe()'s, every metric and
every decision-event field is documented, and the integration guides it links exist. The
README's metric table lists exactly the metrics the code has."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from relay.log import decision_event
from relay.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "admin.md"
TEXT = DOC.read_text(encoding="utf-8")
CODE = set(re.findall(r"`([^`\n]+)`", TEXT))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_doc", ROOT / "scripts" / "gen-config-doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_table_is_describe():
    gen = _generator()
    assert gen.current_table(TEXT) == gen.render_table(), "run scripts/gen-config-doc.py --write"


def test_settings_table_has_every_setting_once():
    from relay.config import describe

    table = _generator().current_table(TEXT)
    for name, env, _, _ in describe():
        assert table.count(f"| `{name}` |") == 1, name
        if env:
            assert f"`{env}`" in table


def test_the_check_fails_when_the_table_is_stale(tmp_path, monkeypatch):
    gen = _generator()
    stale = tmp_path / "admin.md"
    stale.write_text(TEXT.replace("| `listen` |", "| `listen_old` |"), encoding="utf-8")
    monkeypatch.setattr(gen, "DOC", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main(["--write"]) == 0
    assert gen.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == TEXT


def _metric_table(text: str) -> list[str]:
    """The metric names in the first column of a Markdown table (rows starting with | `relay_...`)."""
    return re.findall(r"^\| `(relay_[a-z_]+)` \|", text, re.M)


@pytest.mark.parametrize("doc", ["docs/admin.md", "README.md"])
def test_every_metric_is_documented_and_no_other(doc):
    table = _metric_table((ROOT / doc).read_text(encoding="utf-8"))
    missing = [name for name in METRIC_NAMES if name not in table]
    assert not missing, f"{doc}'s metric table lacks {missing}"
    unknown = [name for name in table if name not in METRIC_NAMES]
    assert not unknown, f"{doc}'s metric table lists metrics the code does not have: {unknown}"
    assert len(table) == len(set(table)), f"{doc}'s metric table lists a metric twice"


def test_every_decision_field_is_documented():
    event = decision_event(message_id="m", session_id="s", client={"address": "127.0.0.1"}, mail_from="a@b",
                           rcpt_tos=["c@d"], size=1, action="error", recipients={"held": ["c@d"]}, error="x",
                           timings={"receive": 0.1})
    for field in [*event, "header_message_id", "reply"]:
        assert field in CODE, f"docs/admin.md does not document the decision field `{field}`"


@pytest.mark.parametrize("event", ["quarantine.release", "quarantine.release_failed", "quarantine.release_uncertain",
                                   "quarantine.release_forced", "milter.deadline", "quarantine.delete",
                                   "quarantine.reveal", "quarantine.export", "quarantine.purge",
                                   "quarantine.purged", "policy.reloaded", "policy.reload_failed"])
def test_events_are_documented(event):
    assert event in CODE


def test_linked_guides_exist():
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", TEXT):
        assert (DOC.parent / link).resolve().exists(), link
    assert "../deploy/postfix/README.md" in TEXT and "../deploy/m365.md" in TEXT


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of the Markdown headings in ``text``."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_admin_links_resolve():
    """The README's short admin sections point into docs/admin.md and deploy/: every file and heading exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s:]+)\)", readme)
    assert "docs/admin.md#metrics" in links and "docs/admin.md#configuration-reference" in links
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target.read_text(encoding="utf-8")), link


def test_health_endpoints_are_documented():
    assert {"/healthz", "/readyz", "/metrics"} <= {c.split()[-1] for c in CODE}
