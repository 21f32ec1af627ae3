"""Quarantine throughput: holds into each backend, releases to an SMTP sink.

    .venv/bin/python bench/quarantine.py [--messages 400] [--size 20480] [--postgres URL] [--backends sqlite,postgres]

Hold: 20 KB messages, each hold durable before it returns (SQLite WAL with
synchronous=FULL on local disk; PostgreSQL with synchronous_commit=on),
sequentially and with 10 concurrent holders sharing one store (as the SMTP
front's sessions do). Release: held messages released to an aiosmtpd sink in
a separate process (claim, deliver over a fresh SMTP connection, commit),
sequentially and 10 at a time. Without --postgres a private PostgreSQL 15 is
started (initdb in a temp dir, as the postgres user when run as root) and
stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.config import Settings  # noqa: E402
from relay.envelope import Envelope  # noqa: E402
from relay.findings import Finding  # noqa: E402
from relay.message import parse  # noqa: E402
from relay.pipeline import Decision  # noqa: E402
from relay.quarantine import open_store  # noqa: E402
from relay.quarantine import release as actions  # noqa: E402
from relay.verdict import Action, RuleMatch, Verdict  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONCURRENCY = 10

SINK = r'''
import asyncio, sys
from aiosmtpd.controller import Controller
class H:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        H.n += 1
        return "250 2.0.0 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]), decode_data=False)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
print(H.n, flush=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(size: int) -> bytes:
    head = (b"From: alice@example.ac.uk\r\nTo: bob@example.org\r\nSubject: quarterly figures\r\n"
            b"Message-ID: <bench@example.ac.uk>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog, figures attached for review.\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head) - 2] + b"\r\n"


def decision(raw: bytes) -> Decision:
    env = Envelope("alice@example.ac.uk", ("bob@example.org",), "192.0.2.1", "client", "client")
    verdict = Verdict(Action.HOLD, (RuleMatch("pd-external", "5.2", Action.HOLD, "Personal data to an external"),),
                      policy_version="bench")
    return Decision(env, parse(raw), (Finding("personal_data", "uk_nino", evidence="AB •• •• •• C"),), verdict)


async def bench_hold(url: str, d: Decision, raw: bytes, n: int, concurrency: int) -> tuple[float, list[float], list[str]]:
    lat: list[float] = []
    ids: list[str] = []
    async with open_store(url) as store:
        await store.list()  # open and migrate outside the timing

        async def worker(count: int) -> None:
            for _ in range(count):
                t = time.perf_counter()
                ids.append(await store.hold(d, raw))
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, ids


async def bench_release(url: str, settings: Settings, ids: list[str], concurrency: int) -> float:
    async with open_store(url) as store:
        queue = list(ids)

        async def worker() -> None:
            while queue:
                await actions.release(store, settings, queue.pop(), "bench")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def start_postgres() -> tuple[str, int, Path]:
    base = Path(tempfile.mkdtemp(prefix="relay-bench-pg-"))
    data = base / "data"
    data.mkdir()
    run_as = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        os.chown(data, pg.pw_uid, pg.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    port = free_port()
    opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1"
    subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", opts, "-w",
                    "start"], check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=90)
    pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", pid, base


def stop_postgres(pid: int, base: Path) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # events cost time
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--size", type=int, default=20 * 1024)
    ap.add_argument("--postgres", help="postgresql:// URL to use instead of a private server (tables are created)")
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    raw = message(args.size)
    d = decision(raw)
    backends = args.backends.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-q-"))
    pg = None
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        sink.stdout.readline()
        urls = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if "postgres" in backends:
            if args.postgres:
                urls["postgres"] = args.postgres
            else:
                pg = start_postgres()
                urls["postgres"] = pg[0]
        for name in backends:
            url = urls[name]
            settings = Settings.from_mapping({"quarantine": url, "upstream": f"127.0.0.1:{sink_port}",
                                              "upstream_tls": "off", "hostname": "relay.bench"})
            held: list[str] = []
            for label, conc in (("hold, sequential", 1), (f"hold, {CONCURRENCY} concurrent", CONCURRENCY)):
                secs, lat, ids = asyncio.run(bench_hold(url, d, raw, args.messages, conc))
                held += ids
                lat.sort()
                rows.append((name, label, len(ids), secs, len(ids) / secs,
                             statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000))
            half = len(held) // 2
            for label, conc, ids in (("release, sequential", 1, held[:half]),
                                     (f"release, {CONCURRENCY} concurrent", CONCURRENCY, held[half:])):
                secs = asyncio.run(bench_release(url, settings, ids, conc))
                rows.append((name, label, len(ids), secs, len(ids) / secs, None, None))
    finally:
        sink.stdin.close()
        delivered = sink.stdout.readline().strip()
        sink.wait(timeout=30)
        sink.stdout.close()
        if pg:
            stop_postgres(pg[1], pg[2])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"quarantine benchmark: {args.size // 1024} KB messages, {os.cpu_count()} CPUs, sink received {delivered}")
    print(f"{'backend':<9} {'test':<24} {'msgs':>6} {'seconds':>8} {'msg/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for name, label, n, secs, rate, p50, p99 in rows:
        lat = f"{p50:7.1f} {p99:7.1f}" if p50 is not None else f"{'-':>7} {'-':>7}"
        print(f"{name:<9} {label:<24} {n:>6} {secs:>8.2f} {rate:>8.0f} {lat}")


if __name__ == "__main__":
    main()
