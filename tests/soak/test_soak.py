"""The soak run, shortened for CI: 300 mixed messages through ``relay serve`` and 150 through
Postfix with ``relay milter``, each under faults, nothing lost.

The full runs are ``make soak`` (``python -m tests.soak.run --messages 3000``) and
``make soak-milter`` (``--front milter --messages 1000``).
The run happens in a subprocess so its services, sockets and threads are its
own; its JSON report is what the test checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.soak import accounting, faults, run

pytestmark = [pytest.mark.slow, pytest.mark.clamd]


def test_short_soak_accounts_for_every_message(tmp_path):
    report, summary, returncode = soak(tmp_path, "--messages", "300", "--short")
    assert report["lost"] == 0, summary
    assert report["wrong_verdict"] == 0, summary
    assert report["duplicates_unexplained"] == 0, summary
    assert report["faults_failed"] == 0, summary
    assert [f["fault"] for f in report["faults"]] == run.SHORT_SCHEDULE
    assert report["relay_starts"] == 2                       # the SIGKILL was real and the relay came back
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == report["accounted"] == 300
    assert {"delivered", "held", "rejected"} <= set(outcomes), outcomes     # the mix was really mixed
    assert report["retried_attempts"] > 0, summary           # the faults were met by traffic
    assert "450" in report["attempts_not_250"], summary      # ... the next hop's 450 at RCPT reached the client
    assert returncode == 0, summary


def soak(tmp_path, *args: str) -> tuple[dict, str, int]:
    """Run ``python -m tests.soak.run ARGS`` in a subprocess: (its JSON report, the tail of its output, exit status)."""
    report_path = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "tests.soak.run", *args, "--max-time", "120",
                           "--json", str(report_path), "--workdir", str(tmp_path / "work")],
                          cwd=faults.ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(report_path.read_text()), proc.stdout[-4000:], proc.returncode


class Captured:
    def __init__(self, data: bytes) -> None:
        self.data = data


def test_accounting_catches_a_lost_message_and_an_unexplained_duplicate():
    """The accounting itself can fail: a 250 with nothing at the sink is lost; a second copy without a
    failed DATA is flagged; a message held for some recipients whose forwarded copy never reached the
    sink is lost although its held copy is in the quarantine."""
    items = run.workload(4)
    for item in items:
        item.outcome, item.attempts = item.expect, ["250"]
    delivered = [i for i in items if i.expect == "delivered"]
    sink = [Captured(delivered[0].raw), Captured(delivered[0].raw)]          # delivered[0] twice, the rest never
    held = accounting.collections.Counter(i.sha256 for i in items if i.expect.startswith("held"))
    report = accounting.account(items, sink, held)
    assert report["lost"] == len(delivered) - 1
    assert report["duplicates_unexplained"] == 1
    assert not accounting.ok(report)

    split = run.workload(4)[0]
    split.outcome, split.attempts, split.expect = "held+delivered", ["250"], "held+delivered"
    in_store = accounting.collections.Counter([split.sha256])
    report = accounting.account([split], [], in_store)
    assert report["lost"] == 1 and "others' copy not at the next hop" in report["lost_detail"][0][2]
    assert accounting.account([split], [Captured(split.raw)], in_store)["lost"] == 0


def test_milter_accounting_looks_where_postfix_250_went():
    """Through Postfix a 250 is found at the sink, in the quarantine (by Message-ID), or both; found
    nowhere it is lost, and a split message found only on one side is lost too."""
    items = run.workload(3)
    for item in items:
        item.outcome, item.attempts = "delivered", ["250"]
    at_sink, held_only, nowhere = items
    held_only.expect = "held"
    held = accounting.collections.Counter([held_only.message_id])
    report = accounting.account(items, [Captured(at_sink.raw)], held, front="milter")
    assert report["outcomes"] == {"delivered": 1, "held": 1, "accepted": 1}
    assert report["lost"] == 1 and report["lost_detail"][0][0] == nowhere.n
    assert report["wrong_verdict"] == 0

    nowhere.expect = "held+delivered"
    report = accounting.account([nowhere], [], accounting.collections.Counter([nowhere.message_id]), front="milter")
    assert report["lost"] == 1 and "only held" in report["lost_detail"][0][2]
    both = accounting.account([nowhere], [Captured(nowhere.raw)],
                              accounting.collections.Counter([nowhere.message_id]), front="milter")
    assert (both["lost"], both["outcomes"]) == (0, {"held+delivered": 1})


@pytest.mark.postfix
def test_short_milter_soak_through_postfix_accounts_for_every_message(tmp_path):
    """client -> Postfix (smtpd_milters: relay milter, milter_default_action = tempfail) -> sink, with
    the milter SIGKILLed, the sink down, clamd hung and the store locked; Postfix's queue flushed, then
    every message found delivered, held or rejected."""
    report, summary, returncode = soak(tmp_path, "--front", "milter", "--messages", "150", "--short")
    assert (report["lost"], report["wrong_verdict"], report["duplicates_unexplained"], report["faults_failed"]) \
        == (0, 0, 0, 0), summary
    assert [f["fault"] for f in report["faults"]] == run.MILTER_SHORT_SCHEDULE
    assert report["relay_starts"] == 2                       # the milter was SIGKILLed and came back
    assert report["mta_queue_left"] == 0, summary
    assert sum(report["outcomes"].values()) == report["accounted"] == 150
    assert {"delivered", "held", "rejected"} <= set(report["outcomes"]), report["outcomes"]
    assert report["mta_deferrals"] > 0, summary              # the sink's outage made Postfix queue and retry
    assert report["mta_milter_tempfails"] > 0, summary       # the milter's faults reached the client as 4xx
    assert report["retried_attempts"] > 0, summary
    assert returncode == 0, summary


@pytest.mark.postgres
def test_short_soak_with_the_postgres_store_restarted_under_load(tmp_path):
    report, summary, returncode = soak(tmp_path, "--messages", "150", "--store", "postgres",
                                       "--faults", "store_restart,relay_kill,store_restart")
    assert (report["lost"], report["wrong_verdict"], report["duplicates_unexplained"], report["faults_failed"]) \
        == (0, 0, 0, 0), summary
    assert [f["fault"] for f in report["faults"]] == ["store_restart", "relay_kill", "store_restart"]
    assert "PostgreSQL" in report["faults"][0]["what"]
    assert report["outcomes"].get("held", 0) > 0 and report["held_rows"] >= report["outcomes"]["held"], summary
    assert returncode == 0, summary
