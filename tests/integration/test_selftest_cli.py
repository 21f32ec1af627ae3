"""``relay selftest`` against real parts: a private clamd, an aiosmtpd next hop, a SQLite store.

All pass with working parts; each broken part (clamd down, a clamd without the
EICAR signature, the next hop down or without the STARTTLS it must offer, an
unwritable store path, an invalid policy, an invalid setting) gives a FAIL line
naming that part and the reason, the other parts still PASS, and the exit
status is 1. The command runs as a subprocess, as an operator runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.commands.dkim import generate
from relay.policy.loader import load_policy
from tests.fixtures.clamd import TESTFILES, stop_pid
from tests.fixtures.common import free_port
from tests.fixtures.smtp import self_signed, server_context

pytestmark = [pytest.mark.clamd]

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "icmp-email-use.yaml"
SHIPPED_RULES = len(load_policy(POLICY).rules)      # what the report must count


def selftest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "relay.cli", "selftest", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def lines(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{check name prefix: its whole line} from the text report."""
    out = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "SKIP"):
            out[rest.split("  ")[0].strip()] = line
    return out


def statuses(result: subprocess.CompletedProcess) -> dict[str, str]:
    return {name.split(" ")[0] if not name.startswith("next hop") else "next hop": line.split(" ")[0]
            for name, line in lines(result).items()}


@pytest.fixture
def env(clamd, make_sink, tmp_path) -> dict[str, str]:
    """Settings where every part works."""
    sink = make_sink()
    return {"RELAY_CLAMD": clamd, "RELAY_UPSTREAM": f"127.0.0.1:{sink.port}", "RELAY_POLICY": str(POLICY),
            "RELAY_QUARANTINE": f"sqlite:///{tmp_path}/q/quarantine.sqlite3", "RELAY_HOSTNAME": "relay.test"}


@pytest.fixture
def clamd_without_eicar(tmp_path):
    """A real clamd whose signature database has clam.exe's MD5 but no EICAR signature."""
    import hashlib

    directory = tmp_path / "clamd-no-eicar"
    (directory / "db").mkdir(parents=True)
    clam = (TESTFILES / "clam.exe").read_bytes()
    (directory / "db" / "test.hdb").write_text(f"{hashlib.md5(clam).hexdigest()}:{len(clam)}:ClamAV-Test-File\n")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "start-clamd.sh"), str(directory), "--tcp"],
                            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                            env={**os.environ, "CLAMD_NO_FRESHCLAM": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    pid = int((directory / "clamd.pid").read_text().strip())
    try:
        yield result.stdout.strip().splitlines()[-1]
    finally:
        stop_pid(pid)


def test_all_pass_with_tls_and_dkim(env, make_sink, tmp_path):
    cert, key = self_signed(tmp_path, "relay.example.ac.uk")
    hop = make_sink(tls_context=server_context(*self_signed(tmp_path, "smarthost.test")))
    pem, public = generate("rsa", 2048)
    dkim_key = tmp_path / "dkim.pem"
    dkim_key.write_bytes(pem)
    dkim_key.chmod(0o600)
    env.update({"RELAY_TLS_CERT": str(cert), "RELAY_TLS_KEY": str(key), "RELAY_UPSTREAM": f"127.0.0.1:{hop.port}",
                "RELAY_UPSTREAM_TLS": "required", "RELAY_UPSTREAM_TLS_VERIFY": "false",
                "RELAY_DKIM_DOMAIN": "example.ac.uk", "RELAY_DKIM_SELECTOR": "relay2026",
                "RELAY_DKIM_KEY": str(dkim_key)})
    result = selftest(env)
    assert result.returncode == 0, result.stdout + result.stderr
    found = statuses(result)
    assert found == {"settings": "PASS", "tls": "PASS", "policy": "PASS", "clamd": "PASS", "quarantine": "PASS",
                     "next hop": "PASS", "dkim": "PASS"}, result.stdout
    text = lines(result)
    assert "relay.example.ac.uk" in text["tls"]
    assert "ICMP Email Use Policy V1.1" in text["policy"] and f"{SHIPPED_RULES} rules" in text["policy"]
    assert "EICAR found as Eicar-Test-Signature" in text[f"clamd {env['RELAY_CLAMD']}"]
    assert "writable" in text["quarantine"]
    hop_line = text[f"next hop 127.0.0.1:{hop.port}"]
    assert "STARTTLS" in hop_line and "STARTTLS ok (TLSv1." in hop_line
    assert f'relay2026._domainkey.example.ac.uk IN TXT "v=DKIM1; k=rsa; p={public[:40]}' in \
        text["dkim relay2026._domainkey.example.ac.uk"]
    assert result.stdout.rstrip().endswith("selftest: 7 passed, 0 failed, 0 skipped")
    assert hop.messages == []                               # no mail sent to the next hop
    assert hop.handler.commands == ["QUIT"]                 # EHLO, STARTTLS, EHLO, QUIT: not even MAIL FROM


def test_json_report_and_nothing_left_in_the_store(env):
    result = selftest(env, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["policy"]["rules"] == SHIPPED_RULES
    assert by_name["quarantine"]["schema_version"] >= 1 and by_name["quarantine"]["held"] == 0
    assert by_name["dkim"]["status"] == "SKIP" and by_name["tls"]["status"] == "SKIP"
    import sqlite3

    path = env["RELAY_QUARANTINE"][len("sqlite:///"):]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version WHERE version < 1").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM held").fetchone()[0] == 0
    conn.close()


def _one_failure(result: subprocess.CompletedProcess, part: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    found = statuses(result)
    failed = [name for name, status in found.items() if status == "FAIL"]
    assert failed == [part], result.stdout
    assert "1 failed" in result.stdout.splitlines()[-1]
    return next(line for name, line in lines(result).items() if name.startswith(part))


def test_clamd_down(env, clamd_down):
    env["RELAY_CLAMD"] = clamd_down
    line = _one_failure(selftest(env), "clamd")
    assert clamd_down in line and "cannot connect" in line


def test_clamd_without_eicar_signature_fails_loudly(env, clamd_without_eicar):
    env["RELAY_CLAMD"] = clamd_without_eicar
    line = _one_failure(selftest(env), "clamd")
    assert "answered OK (clean) for the EICAR test string" in line
    assert "signature database is missing or empty" in line


def test_second_clamd_down_is_named(env, clamd_down):
    env["RELAY_CLAMD"] = f"{env['RELAY_CLAMD']},{clamd_down}"
    result = selftest(env)
    assert result.returncode == 1
    text = lines(result)
    assert text[f"clamd {env['RELAY_CLAMD'].split(',')[0]}"].startswith("PASS")
    assert text[f"clamd {clamd_down}"].startswith("FAIL")


def test_next_hop_down(env):
    port = free_port()
    env["RELAY_UPSTREAM"] = f"127.0.0.1:{port}"
    line = _one_failure(selftest(env), "next hop")
    assert f"127.0.0.1:{port}" in line and "cannot connect" in line


def test_next_hop_without_required_starttls(env):
    env["RELAY_UPSTREAM_TLS"] = "required"
    line = _one_failure(selftest(env), "next hop")
    assert "does not offer STARTTLS but upstream_tls is required" in line


def test_unwritable_store_path(env, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be\n")
    env["RELAY_QUARANTINE"] = f"sqlite:///{blocker}/quarantine.sqlite3"
    line = _one_failure(selftest(env), "quarantine")
    assert f"quarantine database {blocker}/quarantine.sqlite3" in line and "File exists" in line


@pytest.mark.postgres
def test_postgres_store(env, postgres_url):
    env["RELAY_QUARANTINE"] = postgres_url
    result = selftest(env, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    store = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["quarantine"]
    assert store["status"] == "PASS" and store["held"] == 0 and store["schema_version"] >= 1
    assert "?" not in store["detail"] and "postgres@" not in store["detail"]    # no credentials or options shown


def test_postgres_store_down(env):
    port = free_port()
    env["RELAY_QUARANTINE"] = f"postgresql://relay:secret@127.0.0.1:{port}/relay"
    line = _one_failure(selftest(env), "quarantine")
    assert f"cannot connect to the quarantine database postgresql://127.0.0.1:{port}/relay" in line
    assert "Connection refused" in line and "secret" not in line


def test_invalid_policy(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.read_text(encoding="utf-8").replace("kind: malware", "kind: malwar", 1), encoding="utf-8")
    env["RELAY_POLICY"] = str(bad)
    line = _one_failure(selftest(env), "policy")
    assert str(bad) in line and "malwar" in line


def test_invalid_setting_stops_at_settings(env):
    env["RELAY_LISTEN"] = "no-port-here"
    result = selftest(env)
    assert result.returncode == 1
    assert statuses(result) == {"settings": "FAIL"}
    assert "RELAY_LISTEN" in lines(result)["settings"]
