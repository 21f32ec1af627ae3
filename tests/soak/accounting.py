"""Where every soak message ended up, and the report.

A message is *delivered* when its Message-ID is at the sink, *held* when the
quarantine has it in state ``held`` (``relay serve``: by SHA-256 of the bytes
the client sent, which the relay stores unchanged; ``relay milter``: by
Message-ID, because Postfix adds its Received header before the milter sees
the message), *rejected* when the client got a 5xx. It is *lost* when:

- the client gave up retrying;
- it was answered 250 as delivered but is not at the sink;
- it was answered as held but is not held;
- it was held for some recipients and forwarded to the others (``held+delivered``)
  and either copy is missing: the forwarded one at the sink, the held one in the store;
- (milter front) Postfix answered 250 and it is neither at the sink nor held.

Through Postfix the client's 250 says nothing about the verdict (a hold is a
discard at Postfix), so there the outcome is what was found: at the sink,
held, or both.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.fixtures.smtp import ROOT

_MID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")
_FOUND = {(True, True): "held+delivered", (False, True): "held", (True, False): "delivered"}


def message_id(raw: bytes) -> str:
    m = _MID.search(raw.partition(b"\r\n\r\n")[0])
    return m.group(1).decode() if m else ""


def held_hashes(svc) -> collections.Counter:
    """SHA-256 of every message held (state ``held``) in the quarantine, through ``relay quarantine list``."""
    out = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "list", "--json", "--status", "held",
                          "--limit", "100000"], env=svc.env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    if out.returncode:
        raise RuntimeError(f"relay quarantine list failed: {out.stderr[-2000:]}")
    return collections.Counter(row["sha256"] for row in json.loads(out.stdout))


def held_message_ids(db_path: Path) -> collections.Counter:
    """Message-IDs of every message held (state ``held``) in a SQLite quarantine, read from the stored bytes."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as conn:
        rows = conn.execute("SELECT held_raw.raw FROM held JOIN held_raw ON held_raw.id = held.id"
                            " WHERE held.status = 'held'").fetchall()
    return collections.Counter(message_id(bytes(raw)) for (raw,) in rows)


def account(items, sink_messages, held: collections.Counter, front: str = "smtp") -> dict:
    """Count every message by outcome; ``held`` is keyed by SHA-256 (``smtp``) or Message-ID (``milter``)."""
    delivered = collections.Counter()
    notices = 0
    for captured in sink_messages:
        mid = message_id(captured.data)
        if mid.startswith("<soak-"):
            delivered[mid] += 1
        else:
            notices += 1                       # sender notices (notify_sender rules) from the relay itself
    counts = collections.Counter()
    lost, wrong, dup, dup_unexplained, held_dup = [], [], 0, [], 0
    for i in items:
        at_sink, in_store = delivered[i.message_id], held[i.message_id if front == "milter" else i.sha256]
        outcome = i.outcome
        if front == "milter" and outcome == "delivered":     # Postfix's 250: look where it went
            outcome = _FOUND.get((at_sink > 0, in_store > 0), "accepted")
        counts[outcome] += 1
        if outcome == "gave_up":
            lost.append((i.n, i.kind, "client gave up", i.attempts[-5:]))
        elif outcome == "accepted":
            lost.append((i.n, i.kind, "250 but neither at the next hop nor held", i.reply))
        elif outcome == "delivered" and not at_sink:
            lost.append((i.n, i.kind, "250 but not at the next hop", i.reply))
        elif outcome.startswith("held") and not in_store:
            lost.append((i.n, i.kind, "held reply but not in the quarantine", i.reply))
        elif outcome == "held+delivered" and not at_sink:
            lost.append((i.n, i.kind, "held for some recipients, the others' copy not at the next hop", i.reply))
        elif front == "milter" and i.expect == "held+delivered" and outcome in ("held", "delivered"):
            lost.append((i.n, i.kind, f"held for some recipients and forwarded to the others, only {outcome}",
                         i.reply))
        if outcome in ("delivered", "held", "held+delivered", "rejected") and outcome != i.expect:
            wrong.append((i.n, i.kind, f"expected {i.expect}, got {outcome}", i.reply))
        if outcome == "rejected" and at_sink:
            wrong.append((i.n, i.kind, "rejected but delivered", i.reply))
        if at_sink > 1:
            dup += at_sink - 1
            if at_sink - 1 > i.after_data_failures:
                dup_unexplained.append((i.n, i.kind, at_sink, i.attempts))
        held_dup += max(0, in_store - 1)
    retries = sum(len(i.attempts) - 1 for i in items)
    answers = collections.Counter(a for i in items for a in i.attempts if a != "250")   # 4xx, 5xx, broken:...
    return {"messages": len(items), "outcomes": dict(counts), "accounted": len(items) - len(lost),
            "lost": len(lost), "lost_detail": lost[:20],
            "wrong_verdict": len(wrong), "wrong_detail": wrong[:20],
            "duplicate_deliveries": dup, "duplicates_unexplained": len(dup_unexplained),
            "duplicate_detail": dup_unexplained[:20], "duplicate_holds": held_dup,
            "sink_deliveries": sum(delivered.values()), "sender_notices": notices,
            "held_rows": sum(held.values()), "retried_attempts": retries,
            "attempts_not_250": dict(answers.most_common())}


def steady_rate(items, fault_log: list[dict], elapsed: float, settle: float = 5.0) -> float | None:
    """Messages answered per second outside the fault windows (each plus ``settle`` s of recovery);
    None when less than 10 s of the run was outside them."""
    if not fault_log:
        return round(len(items) / elapsed, 1)
    t0 = fault_log[0]["t0"]
    windows: list[list[float]] = []
    for a, b in sorted((f["start_s"], min(f["end_s"] + settle, elapsed)) for f in fault_log):
        if windows and a <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    quiet = elapsed - sum(b - a for a, b in windows)
    if quiet < 10:
        return None
    outside = [i for i in items if not any(a <= i.done_at - t0 <= b for a, b in windows)]
    return round(len(outside) / quiet, 1)


def print_report(r: dict) -> None:
    print("\n== soak result ==")
    print(f"front {r['front']}, messages {r['messages']}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
          + f"; accounted for {r['accounted']}")
    print(f"LOST {r['lost']}   wrong verdicts {r['wrong_verdict']}   duplicate deliveries {r['duplicate_deliveries']}"
          f" (unexplained {r['duplicates_unexplained']})   duplicate holds {r['duplicate_holds']}")
    print(f"at the next hop {r['sink_deliveries']} (+{r['sender_notices']} sender notices); held rows {r['held_rows']};"
          f" retried attempts {r['retried_attempts']}; relay started {r['relay_starts']}x")
    print("attempts not answered 250: " + ", ".join(f"{k} {v}" for k, v in r.get("attempts_not_250", {}).items()))
    if "mta_queue_left" in r:
        print(f"Postfix queue after the flush: {r['mta_queue_left']} files (drained in {r['mta_drain_s']} s);"
              f" deliveries to the sink deferred and retried {r['mta_deferrals']}; Postfix 4xx for the milter"
              f" {r['mta_milter_tempfails']}, 5xx {r['mta_milter_rejects']}")
    print(f"elapsed {r['elapsed_s']} s, sustained {r['rate_msg_s']} msg/s (faults included),"
          f" {r['rate_between_faults_msg_s']} msg/s between faults; concurrency {r['concurrency']};"
          f" store {r['store']}; relay peak RSS {r['relay_peak_rss_mb']} MB")
    print(f"faults ({len(r['faults'])}, failed to inject: {r['faults_failed']}):")
    for f in r["faults"]:
        print(f"  {f['start_s']:7.1f}-{f['end_s']:.1f}s after msg {f['at_message']}: {f['fault']}: {f['what']}")
    for key in ("lost_detail", "wrong_detail", "duplicate_detail"):
        for row in r[key]:
            print(f"  {key}: {row}")


def ok(r: dict) -> bool:
    return not (r["lost"] or r["wrong_verdict"] or r["duplicates_unexplained"] or r["faults_failed"]
                or r.get("mta_queue_left"))
