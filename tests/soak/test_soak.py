"""The soak run, shortened for CI: 300 mixed messages, four faults, nothing lost.

The full run is ``make soak`` (``python -m tests.soak.run --messages 3000``).
The run happens in a subprocess so its services, sockets and threads are its
own; its JSON report is what the test checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.soak import faults, run

pytestmark = [pytest.mark.slow, pytest.mark.clamd]


def test_short_soak_accounts_for_every_message(tmp_path):
    report_path = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "tests.soak.run", "--messages", "300", "--short",
                           "--max-time", "120", "--json", str(report_path), "--workdir", str(tmp_path / "work")],
                          cwd=faults.ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    summary = proc.stdout[-4000:]
    assert report["lost"] == 0, summary
    assert report["wrong_verdict"] == 0, summary
    assert report["duplicates_unexplained"] == 0, summary
    assert report["faults_failed"] == 0, summary
    assert [f["fault"] for f in report["faults"]] == run.SHORT_SCHEDULE
    assert report["relay_starts"] == 2                       # the SIGKILL was real and the relay came back
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 300
    assert {"delivered", "held", "rejected"} <= set(outcomes), outcomes     # the mix was really mixed
    assert report["retried_attempts"] > 0, summary           # the faults were met by traffic
    assert proc.returncode == 0, summary


def test_accounting_catches_a_lost_message_and_an_unexplained_duplicate():
    """The accounting itself can fail: a 250 with nothing at the sink is lost; a second copy without a failed DATA is flagged."""
    items = run.workload(4)
    for item in items:
        item.outcome, item.attempts = item.expect, ["250"]

    class Captured:
        def __init__(self, data: bytes) -> None:
            self.data = data

    delivered = [i for i in items if i.expect == "delivered"]
    sink = [Captured(delivered[0].raw), Captured(delivered[0].raw)]          # delivered[0] twice, the rest never
    held = run.collections.Counter(i.sha256 for i in items if i.expect.startswith("held"))
    report = run.account(items, sink, held)
    assert report["lost"] == len(delivered) - 1
    assert report["duplicates_unexplained"] == 1
    assert not run.ok(report)


@pytest.mark.postgres
def test_short_soak_with_the_postgres_store_restarted_under_load(tmp_path):
    report_path = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "tests.soak.run", "--messages", "150", "--store", "postgres",
                           "--faults", "store_restart,relay_kill,store_restart", "--max-time", "120",
                           "--json", str(report_path), "--workdir", str(tmp_path / "work")],
                          cwd=faults.ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    summary = proc.stdout[-4000:]
    assert (report["lost"], report["wrong_verdict"], report["duplicates_unexplained"], report["faults_failed"]) \
        == (0, 0, 0, 0), summary
    assert [f["fault"] for f in report["faults"]] == ["store_restart", "relay_kill", "store_restart"]
    assert "PostgreSQL" in report["faults"][0]["what"]
    assert report["outcomes"].get("held", 0) > 0 and report["held_rows"] >= report["outcomes"]["held"], summary
    assert proc.returncode == 0, summary
