"""Attachments: ``relay serve`` (shipped policy) + clamd vs ``clamdscan --stream``, same clamd, one run.

    .venv/bin/python bench/attachments.py [--n 40] [--concurrency 4] [--workers 1] [--probe 15]

Starts, and stops at the end: a private clamd (scripts/start-clamd.sh, test
signatures, no freshclam), Postfix's ``smtp-sink`` as the next hop, and
``relay serve`` with policies/icmp-email-use.yaml (every scanner, the clamd
above, SQLite quarantine). Messages (built in memory, fixed seed):

* ``plain 20KB``: text only (the baseline: what attachments add);
* ``pdf 1MB``: one 1 MB PDF attachment (pypdf, 20 pages plus an
  incompressible embedded file);
* ``zip 20``: one zip of 20 members (text, CSV, small PDFs, random bytes).

For each message, side by side:

* ``relay msg/s``: N messages sent over SMTP to ``relay serve`` by
  ``--concurrency`` aiosmtplib sessions, wall clock from the first MAIL to the
  last reply; the relay's actions (from its decision log) are counted;
* ``clamdscan msg/s``: the same N messages (the .eml files, the bytes the
  relay receives) scanned by ``--concurrency`` ``clamdscan --stream``
  processes at once, wall clock;
* ``relay p50 ms`` / ``added p50 ms``: a sequential probe (one session) to the
  relay, and its p50 minus the p50 of the same message sent straight to the
  sink (what the relay hop adds);
* ``clamdscan p50 ms``: one ``clamdscan --stream FILE`` at a time (process
  start included: what a content filter that shells out to it pays);
* then, per input, the median of the relay's own stage timings (its decision
  log's ``timings_ms``) over every message: where the relay's time goes
  (``clamav`` is the one INSTREAM of the raw message to the same clamd).

The machine is shared: compare the ratios of one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import smtp_paths  # noqa: E402

from tests.data.attachments import samples  # noqa: E402
from tests.fixtures.clamd import start_clamd, stop_pid  # noqa: E402

SENDER, RECIPIENT = "alice@example.ac.uk", "bob@partner.example.com"


def pdf_1mb(rng: random.Random) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(20):
        writer.add_blank_page(595, 842)
    writer.add_attachment("data.bin", rng.randbytes(1000 * 1024))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zip_20(rng: random.Random) -> bytes:
    members = {}
    for i in range(20):
        kind = i % 4
        if kind == 0:
            members[f"notes{i}.txt"] = (" ".join(rng.choice(["alpha", "beta", "report", "budget", "2024"])
                                                  for _ in range(8000))).encode()
        elif kind == 1:
            members[f"table{i}.csv"] = "\n".join(f"{j},{rng.randint(0, 10**6)},item {j}"
                                                 for j in range(3000)).encode()
        elif kind == 2:
            members[f"doc{i}.pdf"] = samples.pdf()
        else:
            members[f"blob{i}.bin"] = rng.randbytes(200 * 1024)
    return samples.zip_of(members)


def inputs() -> dict[str, bytes]:
    rng = random.Random(5)
    return {
        "plain 20KB": samples.message(body="Dear colleague, the minutes of the meeting follow.\n" * 400),
        "pdf 1MB": samples.message([("report.pdf", pdf_1mb(rng), "application/pdf")]),
        "zip 20": samples.message([("bundle.zip", zip_20(rng), "application/zip")]),
    }


def start_relay(clamd_url: str, sink_port: int, workers: int, tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    """``relay serve`` under the shipped policy, its JSON decision log to a file; process, port, log."""
    port, log = smtp_paths.free_port(), tmp / "relay.log"
    env = dict(os.environ, RELAY_LISTEN=f"127.0.0.1:{port}", RELAY_UPSTREAM=f"127.0.0.1:{sink_port}",
               RELAY_POLICY=str(ROOT / "policies" / "icmp-email-use.yaml"), RELAY_CLAMD=clamd_url,
               RELAY_CLAMD_TIMEOUT="60s", RELAY_QUARANTINE=f"sqlite:///{tmp}/q.sqlite3", RELAY_LOG_FORMAT="json",
               RELAY_WORKERS=str(workers))
    with log.open("wb") as out:
        relay = subprocess.Popen([sys.executable, "-m", "relay.cli", "serve"], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True)
    smtp_paths.wait_port(port)
    return relay, port, log


def decisions(log: Path, offset: int) -> tuple[list[dict], int]:
    """The decision events logged since ``offset``, and the new offset."""
    with log.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    data = data[:data.rfind(b"\n") + 1]
    events = []
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "decision":
            events.append(event)
    return events, offset + len(data)


async def send_all(port: int, raw: bytes, n: int, concurrency: int) -> tuple[float, collections.Counter]:
    """``n`` messages over ``concurrency`` sessions; returns msg/s and the reply codes seen."""
    import aiosmtplib

    codes: collections.Counter[int] = collections.Counter()
    shares = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]

    async def session(count: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120)
        await client.connect()
        try:
            for _ in range(count):
                try:
                    await client.sendmail(SENDER, [RECIPIENT], raw)
                    codes[250] += 1
                except aiosmtplib.SMTPResponseException as exc:
                    codes[exc.code] += 1
                    await client.rset()
        finally:
            await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(session(k) for k in shares if k))
    return n / (time.perf_counter() - start), codes


def clamdscan_rate(conf: Path, path: Path, n: int, concurrency: int) -> float:
    """``n`` scans of ``path`` by ``concurrency`` clamdscan --stream processes at once; msg/s."""
    cmd = ["clamdscan", f"--config-file={conf}", "--stream", "--no-summary", "--quiet"]
    shares = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd + [str(path)] * k, stdin=subprocess.DEVNULL) for k in shares if k]
    for p in procs:
        p.wait(600)
    return n / (time.perf_counter() - start)


def clamdscan_p50_ms(conf: Path, path: Path, count: int) -> float:
    cmd = ["clamdscan", f"--config-file={conf}", "--stream", "--no-summary", "--quiet", str(path)]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="messages per input and path")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="relay serve --workers")
    ap.add_argument("--probe", type=int, default=15, help="sequential messages for the latency probes")
    args = ap.parse_args()
    if not shutil.which("smtp-sink") or not shutil.which("clamdscan"):
        print("needs Postfix's smtp-sink and clamdscan: scripts/system-deps.sh", file=sys.stderr)
        return 2

    procs = smtp_paths.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-attach-"))
    clamd_pid = relay = None
    try:
        clamd_url, clamd_pid = start_clamd(tmp / "clamd")
        sink_port = smtp_paths.free_port()
        procs.start(["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "1024"])
        smtp_paths.wait_port(sink_port)
        relay, relay_port, log = start_relay(clamd_url, sink_port, args.workers, tmp)
        conf = tmp / "clamd" / "clamd.conf"
        print(f"clamd {clamd_url} (test signatures); relay serve --workers {args.workers}, shipped policy; "
              f"N={args.n}, concurrency {args.concurrency}; {os.cpu_count()} cores; "
              f"load average at start {os.getloadavg()[0]:.2f}\n")
        rows, stages, offset = [], {}, 0
        for name, raw in inputs().items():
            path = tmp / f"{name.replace(' ', '_')}.eml"
            path.write_bytes(raw)
            asyncio.run(send_all(relay_port, raw, args.concurrency, args.concurrency))   # warm-up
            _, offset = decisions(log, offset)
            relay_rate, codes = asyncio.run(send_all(relay_port, raw, args.n, args.concurrency))
            scan_rate = clamdscan_rate(conf, path, args.n, args.concurrency)
            direct = asyncio.run(smtp_paths.probe_latency(sink_port, raw, args.probe))
            through = asyncio.run(smtp_paths.probe_latency(relay_port, raw, args.probe))
            relay_p50 = smtp_paths.pct(through, .5) * 1e3
            added = relay_p50 - smtp_paths.pct(direct, .5) * 1e3
            scan_p50 = clamdscan_p50_ms(conf, path, args.probe)
            events, offset = decisions(log, offset)
            actions = collections.Counter(e["action"] for e in events)
            timings = collections.defaultdict(list)
            for event in events:
                for stage, ms in event["timings_ms"].items():
                    timings[stage].append(ms)
            stages[name] = {stage: statistics.median(v) for stage, v in timings.items()}
            done = ", ".join(f"{a} x{c}" for a, c in sorted(actions.items()))
            rows.append((name, len(raw), relay_rate, scan_rate, relay_p50, added, scan_p50, done))
            print(f"{name}: relay {relay_rate:.1f} msg/s ({done}; replies {dict(codes)}), "
                  f"clamdscan {scan_rate:.1f} msg/s", file=sys.stderr, flush=True)

        print("| input | bytes | relay msg/s | clamdscan msg/s | relay/clamdscan | relay p50 ms | added p50 ms "
              "| clamdscan p50 ms | relay actions |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, size, relay_rate, scan_rate, relay_p50, added, scan_p50, done in rows:
            print(f"| {name} | {size:,} | {relay_rate:.1f} | {scan_rate:.1f} | {relay_rate / scan_rate:.2f}x | "
                  f"{relay_p50:.1f} | {added:.1f} | {scan_p50:.1f} | {done} |")
        print("\nThe relay's stage timings, median ms per message (decision log; stages overlap: clamd runs "
              "beside the CPU-only scanners):\n")
        for name, by_stage in stages.items():
            top = sorted(by_stage.items(), key=lambda kv: -kv[1])[:8]
            print(f"- {name}: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in top))
        print(f"\nload average at end {os.getloadavg()[0]:.2f}")
        return 0
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(20)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(5)
        procs.stop_all()
        if clamd_pid:
            stop_pid(clamd_pid)
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
