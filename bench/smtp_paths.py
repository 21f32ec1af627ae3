"""SMTP throughput and latency of the relay against the ceiling and bare aiosmtpd, in one run.

Three paths, same messages, same client (Postfix's smtp-source) and same next hop
(Postfix's smtp-sink):

  direct   smtp-source -> smtp-sink                      (the ceiling)
  bare     smtp-source -> aiosmtpd that accepts/discards  (what pure-Python SMTP costs here)
  relay    smtp-source -> relay serve -> smtp-sink        (pass-through policy, or --policy)

For each message size S and concurrency C it prints messages/s per path, the
ratios, and the p50/p99 latency the relay adds (measured by a sequential
aiosmtplib probe on an otherwise idle path). Ratios, not absolute figures,
are what to compare: the machine is shared.

    .venv/bin/python bench/smtp_paths.py --sizes 2k,20k,200k --concurrency 1,10,50 --workers 1,2

``--ab ROUNDS`` compares instead, side by side for one size and one C: each
round runs bare aiosmtpd and the relay with each ``--workers`` value one
after the other (the order rotates every round), and prints per round msg/s,
the CPU milliseconds per message of each server (user + system time of its
processes, from /proc) and the relay/bare ratios, then the medians and the
latency probes (direct, bare, relay, interleaved):

    .venv/bin/python bench/smtp_paths.py --ab 5 --sizes 20k --concurrency 10 --workers 1,2 --messages 2000

``--before DIR`` adds, in the same rounds, the relay run from another source
tree (before/after a change), e.g. ``git archive HEAD~1 | tar -x -C /tmp/before``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
PASS_THROUGH_POLICY = """\
name: pass-through
organisation:
  name: Benchmark
  internal_domains: [example.ac.uk]
rules:
  - id: never-matches
    clause: "none"
    reason: "messages of 1 GiB or more"
    when: {message_size: "1024MiB"}
    action: reject
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.recv(512)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port} within {timeout}s")


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = 1024 if text.endswith("k") else 1024 * 1024 if text.endswith("m") else 1
    return int(text.rstrip("km")) * mult


def make_message(size: int) -> bytes:
    head = (
        "From: Alice Example <alice@example.ac.uk>\r\n"
        "To: Bob Partner <bob@partner.example.com>\r\n"
        "Subject: Quarterly figures and the agenda for Thursday\r\n"
        "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <bench@example.ac.uk>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"Thanks for the notes from the meeting; the draft looks good and we will discuss it on Thursday.\r\n"
    body = line * (max(size - len(head), 0) // len(line) + 1)
    return head + body[: max(size - len(head), len(line))]


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=kw.pop("stderr", subprocess.DEVNULL), start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p)


def rss_tree_kb(pid: int) -> int:
    """Resident memory of a process and its children (kB)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
        pids = [int(x) for x in out] or [pid]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and the others in its process group (seconds)."""
    out = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in [int(x) for x in out] or [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])    # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def run_source(port: int, msgfile: Path, sessions: int, count: int) -> float:
    """Send ``count`` messages with ``sessions`` parallel sessions; returns msg/s."""
    args = ["smtp-source", "-s", str(sessions), "-m", str(count), "-F", str(msgfile),
            "-f", "alice@example.ac.uk", "-t", "bob@partner.example.com", f"127.0.0.1:{port}"]
    t0 = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"smtp-source failed on port {port}: {result.stderr.strip()[:300]}")
    return count / elapsed


async def probe_latency(port: int, message: bytes, count: int) -> list[float]:
    import aiosmtplib

    out = []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await client.connect()
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            await client.sendmail("alice@example.ac.uk", ["bob@partner.example.com"], message)
            out.append(time.perf_counter() - t0)
    finally:
        await client.quit()
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_relay(procs: Procs, workers: int, sink_port: int, policy: Path, tmp: Path,
                tree: Path = ROOT) -> tuple[subprocess.Popen, int]:
    """``relay serve --workers N`` (from source tree ``tree``) forwarding to smtp-sink; returns the process and its port."""
    relay_port = free_port()
    env = dict(os.environ, RELAY_LISTEN=f"127.0.0.1:{relay_port}",
               RELAY_UPSTREAM=f"127.0.0.1:{sink_port}", RELAY_POLICY=str(policy),
               RELAY_QUARANTINE=f"sqlite:///{tmp}/q.sqlite3", RELAY_LOG_FORMAT="json",
               RELAY_MAX_SESSIONS="500", RELAY_WORKERS=str(workers))
    relay = procs.start([PY, "-m", "relay.cli", "serve"], env=env, cwd=str(tree))
    wait_port(relay_port)
    return relay, relay_port


def side_by_side(args, procs: Procs, tmp: Path, sink_port: int, bare: subprocess.Popen, bare_port: int,
                 policy: Path) -> int:
    """``--ab``: rounds of bare and relay (each workers value) back to back, CPU per message, latency."""
    size = parse_size(args.sizes.split(",")[0])
    c = int(args.concurrency.split(",")[0])
    workers = [int(w) for w in args.workers.split(",")]
    message = make_message(size)
    msgfile = tmp / f"msg-{size}.eml"
    msgfile.write_bytes(message.replace(b"\r\n", b"\n"))
    n = args.messages
    servers = {"bare": (bare, bare_port)}
    for w in workers:
        servers[f"relay{w}"] = start_relay(procs, w, sink_port, policy, tmp)
        if args.before:
            servers[f"before{w}"] = start_relay(procs, w, sink_port, policy, tmp, Path(args.before))
    names = list(servers)
    for name, (_, port) in servers.items():       # warm up (imports, kept next-hop sessions)
        run_source(port, msgfile, c, min(n, 200))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    print(f"{size // 1024} KB, C={c}, {n} messages per measurement, smtp-source (one connection per message), "
          f"next hop smtp-sink; load average at start {os.getloadavg()[0]:.2f}\n")
    head = " | ".join(f"{name} msg/s | {name} CPU ms/msg" for name in names)
    ratios = [name for name in names if name != "bare"]
    print(f"| round | {head} | " + " | ".join(f"{r}/bare" for r in ratios) + " |")
    print("|---:|" + "---:|" * (2 * len(names) + len(ratios)))
    for i in range(args.ab):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            proc, port = servers[name]
            cpu0 = cpu_seconds(proc.pid)
            rate = run_source(port, msgfile, c, n)
            results[name].append((rate, (cpu_seconds(proc.pid) - cpu0) / n * 1e3))
        cells = " | ".join(f"{results[name][i][0]:.0f} | {results[name][i][1]:.2f}" for name in names)
        print(f"| {i + 1} | {cells} | "
              + " | ".join(f"{results[r][i][0] / results['bare'][i][0]:.2f}x" for r in ratios) + " |", flush=True)
    med = {name: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v)) for name, v in results.items()}
    cells = " | ".join(f"{med[name][0]:.0f} | {med[name][1]:.2f}" for name in names)
    per_round = {r: statistics.median(results[r][i][0] / results["bare"][i][0] for i in range(args.ab)) for r in ratios}
    print(f"| median | {cells} | " + " | ".join(f"{per_round[r]:.2f}x" for r in ratios) + " |")
    print(f"\nLatency (sequential probe, one session, {args.probe} messages, paths interleaved in 5 rounds):\n")
    lat: dict[str, list[float]] = {"direct": [], **{name: [] for name in names}}
    ports = {"direct": sink_port, **{name: port for name, (_, port) in servers.items()}}
    for _ in range(5):
        for name in lat:
            lat[name].extend(asyncio.run(probe_latency(ports[name], message, max(args.probe // 5, 1))))
    print("| path | p50 ms | p99 ms | added p50 ms (vs direct) |")
    print("|---|---:|---:|---:|")
    d50 = pct(lat["direct"], .5)
    for name, values in lat.items():
        print(f"| {name} | {pct(values, .5) * 1e3:.2f} | {pct(values, .99) * 1e3:.2f} | "
              f"{(pct(values, .5) - d50) * 1e3:.2f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2k,20k,200k")
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--messages", type=int, default=2000, help="messages per measurement (fewer for 200k)")
    ap.add_argument("--probe", type=int, default=200, help="sequential messages for the latency probe")
    ap.add_argument("--policy", default="", help="policy file for the relay path (default: pass-through)")
    ap.add_argument("--ab", type=int, default=0, metavar="ROUNDS",
                    help="side by side: ROUNDS rounds of bare and relay per --workers value (first size and C)")
    ap.add_argument("--before", default="", metavar="DIR",
                    help="with --ab: also the relay from this source tree (named before1, before2...)")
    args = ap.parse_args()
    if not shutil.which("smtp-source") or not shutil.which("smtp-sink"):
        print("needs Postfix's smtp-source and smtp-sink: apt-get install postfix", file=sys.stderr)
        return 2
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    workers = [int(w) for w in args.workers.split(",")]

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    try:
        sink_port, bare_port = free_port(), free_port()
        procs.start(["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "1024"])
        bare_proc = procs.start([PY, str(HERE / "bare_aiosmtpd.py"), str(bare_port)])
        wait_port(sink_port)
        wait_port(bare_port)
        policy = Path(args.policy) if args.policy else tmp / "pass-through.yaml"
        if not args.policy:
            policy.write_text(PASS_THROUGH_POLICY)
        if args.ab:
            return side_by_side(args, procs, tmp, sink_port, bare_proc, bare_port, policy)

        rows = []
        latency_rows = []
        for size in sizes:
            msgfile = tmp / f"msg-{size}.eml"
            message = make_message(size)
            msgfile.write_bytes(message.replace(b"\r\n", b"\n"))   # smtp-source adds the CR itself
            n = args.messages if size <= 64 * 1024 else max(args.messages // 4, 100)
            for w in workers:
                relay, relay_port = start_relay(procs, w, sink_port, policy, tmp)
                peak_rss = 0
                for c in concurrency:
                    direct = run_source(sink_port, msgfile, c, n)
                    bare = run_source(bare_port, msgfile, c, n) if w == workers[0] else None
                    through = run_source(relay_port, msgfile, c, n)
                    peak_rss = max(peak_rss, rss_tree_kb(relay.pid))
                    rows.append((size, c, w, direct, bare, through))
                    print(f"size={size} C={c} workers={w}: direct {direct:.0f}/s"
                          + (f", bare aiosmtpd {bare:.0f}/s" if bare else "")
                          + f", relay {through:.0f}/s", file=sys.stderr, flush=True)
                lat_direct = asyncio.run(probe_latency(sink_port, message, args.probe))
                lat_relay = asyncio.run(probe_latency(relay_port, message, args.probe))
                latency_rows.append((size, w, lat_direct, lat_relay, peak_rss))
                procs.stop(relay)

        bare_by = {(s, c): b for s, c, w, _, b, _ in rows if b}
        print(f"\nmessages per measurement: {args.messages} (200 KB: {max(args.messages // 4, 100)}); "
              f"client: smtp-source (one connection per message); next hop: smtp-sink\n")
        print("| size | C | workers | direct msg/s | bare aiosmtpd msg/s | relay msg/s | relay/bare | relay/direct |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size, c, w, direct, _, through in rows:
            bare = bare_by.get((size, c))
            print(f"| {size // 1024} KB | {c} | {w} | {direct:.0f} | {bare:.0f} | {through:.0f} | "
                  f"{through / bare:.2f}x | {through / direct:.2f}x |")
        print("\nLatency added by the relay (sequential probe, one session, "
              f"{args.probe} messages):\n")
        print("| size | workers | direct p50 ms | relay p50 ms | added p50 ms | direct p99 ms | relay p99 ms | added p99 ms | relay peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size, w, ld, lr, rss in latency_rows:
            d50, r50, d99, r99 = (pct(ld, .5) * 1e3, pct(lr, .5) * 1e3, pct(ld, .99) * 1e3, pct(lr, .99) * 1e3)
            print(f"| {size // 1024} KB | {w} | {d50:.2f} | {r50:.2f} | {r50 - d50:.2f} | {d99:.2f} | {r99:.2f} | "
                  f"{r99 - d99:.2f} | {rss / 1024:.0f} |")
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
