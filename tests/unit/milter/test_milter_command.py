"""``relay milter``: start-up failures are clear messages and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from relay.commands.milter import milter
from tests.fixtures.smtp import MINIMAL_POLICY


def env(tmp_path, **extra):
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL_POLICY, encoding="utf-8")
    out = {"RELAY_POLICY": str(policy), "RELAY_QUARANTINE": f"sqlite:///{tmp_path}/q.sqlite3",
           "RELAY_LOG_FORMAT": "json", "RELAY_CLAMD": "tcp://127.0.0.1:9"}
    out.update(extra)
    return out


def test_invalid_policy_stops_start_up(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [", encoding="utf-8")
    result = CliRunner().invoke(milter, [], env=env(tmp_path, RELAY_POLICY=str(bad)))
    assert result.exit_code == 1 and "invalid policy" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unusable_dkim_key_stops_start_up(tmp_path):
    result = CliRunner().invoke(milter, [], env=env(tmp_path, RELAY_DKIM_DOMAIN="example.ac.uk",
                                                    RELAY_DKIM_SELECTOR="s1", RELAY_DKIM_KEY=str(tmp_path / "none.pem")))
    assert result.exit_code == 1 and "cannot read" in result.output


def test_address_in_use_is_exit_1_with_the_address(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(milter, [], env=env(tmp_path, RELAY_MILTER_LISTEN=f"inet:127.0.0.1:{port}"))
    assert result.exit_code == 1
    assert f"cannot listen on inet:127.0.0.1:{port}" in result.output
