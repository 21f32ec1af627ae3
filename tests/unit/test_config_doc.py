"""docs/admin.md stays true to the code: the settings table is describe()'s, every metric and
every decision-event field is documented, and the integration guides it links exist."""

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


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_metric_is_documented(name):
    assert name in CODE, f"docs/admin.md does not document the metric `{name}`"


def test_every_decision_field_is_documented():
    event = decision_event(message_id="m", session_id="s", client={"address": "127.0.0.1"}, mail_from="a@b",
                           rcpt_tos=["c@d"], size=1, action="error", recipients={"held": ["c@d"]}, error="x",
                           timings={"receive": 0.1})
    for field in [*event, "header_message_id", "reply"]:
        assert field in CODE, f"docs/admin.md does not document the decision field `{field}`"


@pytest.mark.parametrize("event", ["quarantine.release", "quarantine.release_failed", "quarantine.delete",
                                   "quarantine.reveal", "quarantine.export", "quarantine.purge",
                                   "quarantine.purged", "policy.reloaded", "policy.reload_failed"])
def test_events_are_documented(event):
    assert event in CODE


def test_linked_guides_exist():
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", TEXT):
        assert (DOC.parent / link).resolve().exists(), link
    assert "../deploy/postfix/README.md" in TEXT and "../deploy/m365.md" in TEXT


def test_health_endpoints_are_documented():
    assert {"/healthz", "/readyz", "/metrics"} <= {c.split()[-1] for c in CODE}
