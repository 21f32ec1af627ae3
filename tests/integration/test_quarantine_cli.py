"""``relay quarantine ...`` end to end through click's CliRunner, on both store backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.quarantine import open_store
from relay.quarantine.store import sha256

SECRET_NI = "AB123456C"
SECRET_CARD = "4111 1111 1111 1111"


@pytest.fixture
def cli(quarantine_url, monkeypatch, tmp_path):
    monkeypatch.delenv("RELAY_CONFIG", raising=False)
    runner = CliRunner()
    env = {"RELAY_QUARANTINE": quarantine_url, "RELAY_LOG_FORMAT": "json", "USER": "reviewer-a",
           "RELAY_UPSTREAM": "127.0.0.1:9", "RELAY_UPSTREAM_TLS": "off", "RELAY_HOSTNAME": "relay.test",
           "RELAY_UPSTREAM_TIMEOUT": "5s"}

    def invoke(*args: str):
        return runner.invoke(main, ["quarantine", *args], env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def held(quarantine_url, make_decision, make_message):
    """Two held messages: (id with personal data, id of a second one)."""
    raw = make_message(subject=f"Re: {SECRET_NI}", body=f"Card {SECRET_CARD}, NI {SECRET_NI}, ring 07700 900123.\n")
    first = make_decision(raw, rcpt_tos=("bob@partner.example", "carol@partner.example"),
                          rules=(("pd-external", "5.2", "Personal data to an external recipient"),))
    second = make_decision(mail_from="dave@example.ac.uk", rules=(("macro", "5.1", "Office macro"),))

    async def go():
        async with open_store(quarantine_url) as store:
            return await store.hold(first, raw), await store.hold(second, second.message.raw)

    a, b = asyncio.run(go())
    return a, b, raw


def _events(result) -> list[dict]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_list_table_and_json(cli, held):
    a, b, _ = held
    table = cli("list")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "HELD", "(UTC)"]
    assert a in table.stdout and b in table.stdout
    assert SECRET_NI not in table.stdout
    out = cli("list", "--json")
    assert out.exit_code == 0
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == [b, a]
    row = rows[1]
    assert set(row) == {"id", "held_at", "status", "mail_from", "recipients", "action", "rules", "size", "sha256",
                        "subject_masked"}
    assert row["status"] == "held" and row["action"] == "hold"
    assert row["recipients"] == ["bob@partner.example", "carol@partner.example"]
    assert row["rules"] == [{"id": "pd-external", "clause": "5.2", "action": "hold",
                             "reason": "Personal data to an external recipient"}]
    assert SECRET_NI not in out.stdout
    dt.datetime.fromisoformat(row["held_at"])


@pytest.mark.parametrize("args, expect", [
    (["--rule", "macro"], "b"), (["--sender", "dave@"], "b"), (["--recipient", "partner.example"], "a"),
    (["--since", "2d"], "ab"), (["--until", "2d"], ""), (["--since", "2999-01-01"], ""),
    (["--status", "released"], ""), (["--status", "held", "--limit", "1"], "b"),
])
def test_list_filters(cli, held, args, expect):
    ids = {"a": held[0], "b": held[1]}
    out = cli("list", "--json", *args)
    assert out.exit_code == 0, out.stderr
    assert {r["id"] for r in json.loads(out.stdout)} == {ids[c] for c in expect}


def test_list_rejects_a_bad_date(cli, held):
    out = cli("list", "--since", "yesterday-ish")
    assert out.exit_code == 2 and "expected an ISO date" in out.stderr


def test_show_masks_unless_revealed_and_logs_the_reveal(cli, held):
    a, _, raw = held
    masked = cli("show", a)
    assert masked.exit_code == 0
    assert "pd-external [clause 5.2] hold: Personal data to an external recipient" in masked.stdout
    assert "personal_data/uk_nino" in masked.stdout and sha256(raw) in masked.stdout
    assert SECRET_NI not in masked.stdout and SECRET_CARD not in masked.stdout and "900123" not in masked.stdout
    assert "•••• •••• •••• ••••" in masked.stdout
    assert not any(e["event"] == "quarantine.reveal" for e in _events(masked))
    shown = cli("show", a, "--reveal", "--reviewer", "carol")
    assert shown.exit_code == 0
    assert SECRET_NI in shown.stdout and SECRET_CARD in shown.stdout
    (event,) = [e for e in _events(shown) if e["event"] == "quarantine.reveal"]
    assert event["reviewer"] == "carol" and event["id"] == a and event["sha256"] == sha256(raw)
    assert SECRET_NI not in shown.stderr
    history = json.loads(cli("show", a, "--json").stdout)["history"]
    assert [h["action"] for h in history] == ["held", "reveal"] and history[-1]["actor"] == "carol"


def test_show_json_shape(cli, held):
    a, _, _ = held
    data = json.loads(cli("show", a, "--json").stdout)
    assert {"id", "status", "mail_from", "recipients", "rules", "findings", "history", "sha256", "preview",
            "policy_version", "client_address", "helo"} <= set(data)
    assert SECRET_NI not in data["preview"]


def test_export_is_byte_exact_and_logged(cli, held, tmp_path):
    a, _, raw = held
    out = cli("export", a)
    assert out.exit_code == 0
    assert out.stdout_bytes == raw
    target = tmp_path / "msg.eml"
    assert cli("export", a, "--output", str(target)).exit_code == 0
    assert target.read_bytes() == raw
    assert any(e["event"] == "quarantine.export" and e["id"] == a for e in _events(out))


def test_delete_then_release_and_export_fail_clearly(cli, held):
    a, _, raw = held
    out = cli("delete", a, "--note", "spam")
    assert out.exit_code == 0 and f"deleted {a}" in out.stdout
    (event,) = [e for e in _events(out) if e["event"] == "quarantine.delete"]
    assert event["reviewer"] == "reviewer-a" and event["sha256"] == sha256(raw)
    again = cli("release", a)
    assert again.exit_code == 4 and "already deleted" in again.stderr
    gone = cli("export", a)
    assert gone.exit_code == 3 and "gone" in gone.stderr
    shown = cli("show", a)
    assert shown.exit_code == 0 and "bytes were deleted" in shown.stdout


def test_release_with_the_next_hop_down_is_a_clear_error(cli, held):
    a, _, _ = held
    out = cli("release", a, "--reviewer", "bob")
    assert out.exit_code == 6
    assert "unavailable" in out.stderr and "stays held" in out.stderr
    data = json.loads(cli("show", a, "--json").stdout)
    assert data["status"] == "held" and data["history"][-1]["action"] == "release_failed"


def test_purge_older_than(cli, held):
    kept = cli("purge", "--older-than", "30d", "--json")
    assert kept.exit_code == 0 and json.loads(kept.stdout) == {"purged": []}
    assert len(json.loads(cli("list", "--json").stdout)) == 2
    bad = cli("purge", "--older-than", "forever")
    assert bad.exit_code == 2
    missing = cli("purge")
    assert missing.exit_code == 2 and "--older-than" in missing.stderr


def test_purge_removes_old_messages_and_logs_each(cli, held, quarantine_url):
    a, b, _ = held
    backdate = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)

    async def age():
        # Reach into the database to make one message 40 days old (the store has no API to change time).
        if quarantine_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(quarantine_url[len("sqlite:///"):]) as conn:
                conn.execute("UPDATE held SET held_at = ? WHERE id = ?", (backdate.timestamp(), a))
            conn.close()
        else:
            import psycopg

            async with await psycopg.AsyncConnection.connect(quarantine_url, autocommit=True) as conn:
                await conn.execute("UPDATE held SET held_at = %s WHERE id = %s", (backdate, a))

    asyncio.run(age())
    out = cli("purge", "--older-than", "30d")
    assert out.exit_code == 0 and "purged 1 message " in out.stdout
    assert [e["id"] for e in _events(out) if e["event"] == "quarantine.purge"] == [a]
    assert [r["id"] for r in json.loads(cli("list", "--json").stdout)] == [b]
    assert cli("show", a).exit_code == 3
    assert cli("check").stdout.strip() == "ok"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "'; DROP TABLE held; --", "", "q-" + "x" * 10_000,
                                 "\x1b[2J", "Q-01M8HBPH70J20PST2AQVY7AEMV"])
def test_hostile_ids_get_a_clear_error(cli, held, bad):
    for command in ("show", "release", "delete", "export"):
        out = cli(command, bad)
        assert out.exit_code == 3, command
        assert "is not a quarantine id" in out.stderr
        assert len(out.stderr) < 300 and "\x1b" not in out.stderr
    assert len(json.loads(cli("list", "--json").stdout)) == 2
