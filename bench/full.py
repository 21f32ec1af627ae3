"""`make bench`: the relay with the full shipped policy against amavisd-new and the next hop, in one run.

Paths (all on 127.0.0.1, all forwarding to one Postfix smtp-sink):

  sink      client -> smtp-sink                                   (the ceiling)
  relay1    client -> relay serve --workers 1 (full policy, clamd) -> smtp-sink
  relay2    client -> relay serve --workers 2 (same)                -> smtp-sink
  amavis    client -> amavisd-new (virus checks via the same clamd) -> smtp-sink

Workloads (bench/workload.py, fixed seeds): ``mixed`` (60 % short mail, 25 %
office/PDF attachments 50 KB-2 MB, 10 % personal data, 5 % EICAR/risky
types), ``plain20k`` and ``mime20k`` (one clean 20 KB message, text only / with
a base64 docx attachment). Each is sent with C concurrent sessions (C = 1, 10,
50) by an asyncio SMTP client in this process (one connection per session,
reopened after 20 messages as an MTA's connection cache does, no pipelining)
that times each message from MAIL to the answer
after the final dot (the first of a session from the connect: waiting for a
free server process is latency too). A message counts as done on any final 2xx or 5xx;
outcomes are counted (accepted / held / rejected / tempfail / error).

Measured per run: msg/s, MB/s, p50/p95/p99 latency, CPU seconds per message
of the server's process tree (utime+stime+cutime+cstime from /proc, clamd
separately), peak RSS (per process and tree). Then: pass-through (relay
--workers 2, pass-through policy, clean 20 KB) against a bare aiosmtpd server
with smtp-source (bench/smtp_paths.py's method); peak RSS per worker with 50
sessions of 10 MB messages; RSS over a longer mixed run (growth check).

    .venv/bin/python bench/full.py                      # everything, ~25 min on 2 cores
    .venv/bin/python bench/full.py --quick              # a smaller smoke run
    .venv/bin/python bench/full.py --paths sink,relay2 --concurrency 10 --workloads plain20k

The machine is shared: compare paths within one run (ratios), not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import smtp_paths as sp  # noqa: E402
import workload as wl  # noqa: E402

PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ------------------------------------------------------------------ process accounting

def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()        # fields from 3 (state) on


def group_pids(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat(int(entry))
            if f and int(f[2]) == pgid and f[0] != "Z":
                out.append(int(entry))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of each process plus cutime+cstime (its reaped children)."""
    total = 0
    for pid in pids:
        f = _stat(pid)
        if f:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK


def rss_kb(pid: int) -> int:
    f = _stat(pid)
    return int(f[21]) * PAGE_KB if f else 0


class Sampler:
    """Samples RSS of a process group (and one extra pid) every ``interval`` s in a thread."""

    def __init__(self, pgid: int, extra: int | None = None, interval: float = 0.25) -> None:
        self.pgid, self.extra, self.interval = pgid, extra, interval
        self.peak_proc: dict[int, int] = {}
        self.peak_tree = 0
        self.series: list[tuple[float, int]] = []     # (t, tree kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            pids = group_pids(self.pgid)
            tree = 0
            for pid in pids:
                kb = rss_kb(pid)
                tree += kb
                self.peak_proc[pid] = max(self.peak_proc.get(pid, 0), kb)
            self.peak_tree = max(self.peak_tree, tree)
            self.series.append((time.monotonic() - t0, tree))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


# ------------------------------------------------------------------ the client

@dataclass
class RunResult:
    path: str
    workload: str
    concurrency: int
    sent: int = 0
    done: int = 0
    bytes: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0
    clamd_cpu: float = 0.0
    peak_rss_proc_kb: int = 0
    peak_rss_tree_kb: int = 0

    @property
    def rate(self) -> float:
        return self.done / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        return sp.pct(self.latencies, q) * 1e3 if self.latencies else float("nan")


def _stuff(data: bytes) -> bytes:
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            break
    return int(lines[-1][:3]), b"".join(lines).decode("utf-8", "replace")


def _classify(code: int, text: str) -> str:
    if 200 <= code < 300:
        return "held" if "held" in text.lower() else "accepted"
    if 400 <= code < 500:
        return "tempfail"
    return "rejected"


async def send(port: int, messages: list[wl.Message], concurrency: int, max_seconds: float,
               result: RunResult, reuse: int = 20) -> None:
    """Replay ``messages`` with ``concurrency`` sessions, recording per-message latency and outcome."""
    payloads = [(m.sender, m.recipients, _stuff(m.data), len(m.data)) for m in messages]
    index = iter(range(len(payloads)))
    deadline = time.monotonic() + max_seconds

    def record(outcome: str) -> None:
        result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1

    async def session() -> None:
        reader = writer = None
        used = 0
        try:
            while time.monotonic() < deadline:
                if writer is not None and used >= reuse:     # like Postfix's connection reuse limit
                    try:
                        writer.write(b"QUIT\r\n")
                        await asyncio.wait_for(_reply(reader), 30)
                    except (OSError, ConnectionError, TimeoutError, ValueError):
                        pass
                    writer.close()
                    writer, used = None, 0
                i = next(index, None)
                if i is None:
                    return
                sender, rcpts, data, size = payloads[i]
                result.sent += 1
                try:
                    # a message waiting for a session slot waits: connect, banner and EHLO count
                    # towards the first message of a session (amavisd serves $max_servers at once)
                    t0 = time.perf_counter()
                    async with asyncio.timeout(300):
                        if writer is None:
                            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
                            await _reply(reader)
                            writer.write(b"EHLO bench.example.ac.uk\r\n")
                            await _reply(reader)
                        used += 1
                        writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
                        code, text = await _reply(reader)
                        ok = code == 250
                        for r in rcpts:
                            if ok:
                                writer.write(f"RCPT TO:<{r}>\r\n".encode())
                                code, text = await _reply(reader)
                                ok = code in (250, 251)
                        if ok:
                            writer.write(b"DATA\r\n")
                            code, text = await _reply(reader)
                            if code == 354:
                                writer.write(data)
                                code, text = await _reply(reader)
                            ok = True
                        latency = time.perf_counter() - t0
                    if code >= 400 and code < 500 or not ok:
                        writer.write(b"RSET\r\n")
                        await _reply(reader)
                    outcome = _classify(code, text)
                    record(outcome)
                    if outcome != "tempfail":
                        result.done += 1
                        result.bytes += size
                        result.latencies.append(latency)
                except (OSError, ConnectionError, TimeoutError, ValueError):
                    record("error")
                    if writer is not None:
                        writer.close()
                    writer = None
        finally:
            if writer is not None:
                try:
                    writer.write(b"QUIT\r\n")
                    await asyncio.wait_for(_reply(reader), 5)
                except (OSError, ConnectionError, TimeoutError, ValueError):
                    pass
                writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(concurrency)))
    result.wall = time.perf_counter() - t0


# ------------------------------------------------------------------ servers

class Procs(sp.Procs):
    """bench/smtp_paths.py's process set, with stdout choosable (the relay's decision log)."""

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=kw.pop("stdout", subprocess.DEVNULL),
                             stderr=kw.pop("stderr", subprocess.DEVNULL), start_new_session=True, **kw)
        self.procs.append(p)
        return p


@dataclass
class Path_:
    name: str
    port: int
    pgid: int | None        # process group to account (None: not measured, e.g. the sink)


class Bench:
    def __init__(self, tmp: Path, args) -> None:
        self.tmp, self.args = tmp, args
        self.procs = Procs()
        self.paths: dict[str, Path_] = {}
        self.clamd_pid = 0
        self.amavis = None

    def start_clamd(self) -> Path:
        d = self.tmp / "clamd"
        env = dict(os.environ, CLAMD_NO_FRESHCLAM="1")
        out = subprocess.run(["bash", str(ROOT / "scripts/start-clamd.sh"), str(d)], env=env, capture_output=True,
                             text=True, timeout=180, check=True).stdout.strip()
        self.clamd_pid = int((d / "clamd.pid").read_text())
        return Path(out.removeprefix("unix://"))

    def start_sink(self) -> int:
        port = sp.free_port()
        sinkdir = self.tmp / "sink"
        sinkdir.mkdir()
        shutil.chown(sinkdir, "postfix")
        self.procs.start(["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "1024"], cwd=str(sinkdir))
        sp.wait_port(port)
        self.paths["sink"] = Path_("sink", port, None)
        return port

    def start_relay(self, name: str, workers: int, policy: Path, clamd: Path, sink: int) -> None:
        port = sp.free_port()
        env = dict(os.environ, RELAY_LISTEN=f"127.0.0.1:{port}", RELAY_UPSTREAM=f"127.0.0.1:{sink}",
                   RELAY_POLICY=str(policy), RELAY_CLAMD=f"unix://{clamd}", RELAY_UPSTREAM_TLS="off",
                   RELAY_QUARANTINE=f"sqlite:///{self.tmp}/q-{name}.sqlite3", RELAY_LOG_FORMAT="json",
                   RELAY_MAX_SESSIONS="500", RELAY_WORKERS=str(workers), RELAY_HOSTNAME="relay.bench.example.ac.uk")
        env.update(dict(kv.split("=", 1) for kv in self.args.relay_env))
        keep = getattr(self.args, "keep_log", None)
        with open(self.tmp / f"{name}.log", "wb") as log, \
                open(Path(keep) / f"{name}.decisions.jsonl" if keep else os.devnull, "wb") as decisions:
            p = self.procs.start([PY, "-m", "relay.cli", "serve"], env=env, cwd=str(ROOT), stderr=log,
                                 stdout=decisions)
        sp.wait_port(port, 60)
        self.paths[name] = Path_(name, port, p.pid)

    def start_amavis(self, clamd: Path, sink: int) -> None:
        from amavis import Amavis

        port = sp.free_port()
        self.amavis = Amavis(self.tmp / "amavis", clamd, sink, port)
        pid = self.amavis.start()
        self.paths["amavis"] = Path_("amavis", port, pid)

    def stop(self) -> None:
        if self.amavis is not None:
            self.amavis.stop()
        self.procs.stop_all()
        if self.clamd_pid:
            try:
                os.kill(self.clamd_pid, 15)
            except ProcessLookupError:
                pass
            self.clamd_pid = 0

    def run(self, path: str, workload: str, messages: list[wl.Message], c: int) -> RunResult:
        p = self.paths[path]
        res = RunResult(path, workload, c)
        pids = group_pids(p.pgid) if p.pgid else []
        cpu0 = cpu_seconds(pids)
        clam0 = cpu_seconds([self.clamd_pid])
        if p.pgid:
            with Sampler(p.pgid) as s:
                asyncio.run(send(p.port, messages, c, self.args.max_seconds, res))
            res.peak_rss_proc_kb = max(s.peak_proc.values(), default=0)
            res.peak_rss_tree_kb = s.peak_tree
            res.cpu = cpu_seconds(group_pids(p.pgid)) - cpu0
        else:
            asyncio.run(send(p.port, messages, c, self.args.max_seconds, res))
        res.clamd_cpu = cpu_seconds([self.clamd_pid]) - clam0
        return res


# ------------------------------------------------------------------ output

def stage_table(decisions: Path) -> list[str]:
    """Median and p95 of each stage's time (the decision events' timings_ms), over all messages in the log.

    Scanners run concurrently, so their times overlap; ``receive`` is DATA's
    transfer, ``act`` is hold/tag/sign/forward, ``total`` is the pipeline (parse to policy).
    """
    import json

    stages: dict[str, list[float]] = {}
    for line in decisions.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") != "decision":
            continue
        for k, v in (event.get("timings_ms") or {}).items():
            stages.setdefault(k, []).append(v)
    out = [f"{decisions.name}: {len(stages.get('receive', []))} decisions", "",
           "| stage | median ms | p95 ms | mean ms |", "|---|---:|---:|---:|"]
    for k, v in sorted(stages.items(), key=lambda kv: -statistics.mean(kv[1])):
        out.append(f"| {k} | {statistics.median(v):.2f} | {sp.pct(v, .95):.2f} | {statistics.mean(v):.2f} |")
    return out


def fmt_row(r: RunResult) -> str:
    per = (r.cpu / r.done * 1e3) if r.done else float("nan")
    clam = (r.clamd_cpu / r.done * 1e3) if r.done else float("nan")
    out = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
    rss = f"{r.peak_rss_proc_kb / 1024:.0f} / {r.peak_rss_tree_kb / 1024:.0f}" if r.peak_rss_tree_kb else "-"
    return (f"| {r.workload} | {r.concurrency} | {r.path} | {r.done} | {r.rate:.1f} | {r.bytes / r.wall / 1e6:.2f} | "
            f"{r.pct(.5):.1f} | {r.pct(.95):.1f} | {r.pct(.99):.1f} | {per:.1f} | {clam:.1f} | {rss} | {out} |")


HEADER = ("| workload | C | path | msgs | msg/s | MB/s | p50 ms | p95 ms | p99 ms | CPU ms/msg (server tree) | "
          "clamd CPU ms/msg | peak RSS MB (largest process / tree) | outcomes |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def ratios(results: list[RunResult]) -> list[str]:
    by = {(r.workload, r.concurrency, r.path): r for r in results}
    lines = ["| workload | C | relay | relay/amavis msg/s | amavis p99 / relay p99 | relay/sink msg/s |",
             "|---|---:|---|---:|---:|---:|"]
    for (w, c, path), r in by.items():
        if not path.startswith("relay"):
            continue
        a, s = by.get((w, c, "amavis")), by.get((w, c, "sink"))
        ra = f"{r.rate / a.rate:.2f}x" if a and a.rate else "-"
        la = f"{a.pct(.99) / r.pct(.99):.2f}x" if a and a.latencies and r.latencies else "-"
        rs = f"{r.rate / s.rate:.2f}x" if s and s.rate else "-"
        lines.append(f"| {w} | {c} | {path} | {ra} | {la} | {rs} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="sink,relay1,relay2,amavis")
    ap.add_argument("--workloads", default="plain20k,mime20k,mixed")
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--mixed", type=int, default=400, help="messages in the mixed workload")
    ap.add_argument("--fixed", type=int, default=500, help="messages per fixed 20 KB workload")
    ap.add_argument("--max-seconds", type=float, default=40.0, help="cap per run (the count sent is reported)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--policy", default=str(ROOT / "policies/icmp-email-use.yaml"))
    ap.add_argument("--passthrough", type=int, default=2000, help="messages per pass-through measurement (0: skip)")
    ap.add_argument("--memory", type=int, default=50, help="10 MB messages for the memory check (0: skip)")
    ap.add_argument("--soak", type=int, default=10000, help="mixed messages for the RSS growth check (0: skip)")
    ap.add_argument("--relay-env", action="append", default=[], help="extra RELAY_*=value for the relays")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--keep-log", type=Path, default=None,
                    help="keep each relay's decision log (JSON lines) in this directory and print stage timings")
    args = ap.parse_args()
    if args.quick:
        args.mixed, args.fixed, args.passthrough, args.memory, args.soak = 120, 200, 500, 20, 300
        args.max_seconds = min(args.max_seconds, 20)
    for tool in ("smtp-sink", "smtp-source", "clamd"):
        if not shutil.which(tool):
            print(f"needs {tool}: apt-get install postfix clamav-daemon", file=sys.stderr)
            return 2
    paths = args.paths.split(",")
    conc = [int(c) for c in args.concurrency.split(",")]
    workloads = {}
    for name in args.workloads.split(","):
        if name == "mixed":
            workloads[name] = wl.generate(args.mixed, args.seed)
        elif name in ("plain20k", "mime20k"):
            workloads[name] = wl.fixed(name[:-3], 20 * 1024, args.fixed)
        else:
            raise SystemExit(f"unknown workload {name}")
    command = "bench/full.py " + " ".join(sys.argv[1:])
    print(f"# {command}\n# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    for name, msgs in workloads.items():
        print(f"workload {name}: " + wl.describe(msgs).replace("\n", "\n    "))
    tmp = Path(tempfile.mkdtemp(prefix="relay-fullbench-"))
    os.chmod(tmp, 0o755)
    bench = Bench(tmp, args)
    results: list[RunResult] = []
    try:
        clamd = bench.start_clamd()
        sink = bench.start_sink()
        for name in paths:
            if name.startswith("relay"):
                bench.start_relay(name, int(name[5:] or 1), Path(args.policy), clamd, sink)
            elif name == "amavis":
                bench.start_amavis(clamd, sink)
        warm = wl.generate(40, args.seed + 1)
        for name in paths:
            bench.run(name, "warm-up", warm, 4)
        print(f"\npaths: {', '.join(paths)}; per-run cap {args.max_seconds:.0f} s\n", flush=True)
        print(HEADER, flush=True)
        for wname, msgs in workloads.items():
            for c in conc:
                for name in paths:
                    r = bench.run(name, wname, msgs, c)
                    results.append(r)
                    print(fmt_row(r), flush=True)
        print("\nRatios (same run):\n")
        print("\n".join(ratios(results)))
        if args.keep_log:
            for name in paths:
                if name.startswith("relay"):
                    print("\nStage times, " + "\n".join(stage_table(args.keep_log / f"{name}.decisions.jsonl")))
        bench.stop()
        extra(args, tmp)
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def extra(args, tmp: Path) -> None:
    """Pass-through against bare aiosmtpd; memory with 10 MB messages; RSS over a longer run."""
    bench = Bench(tmp / "extra", args)
    (tmp / "extra").mkdir()
    os.chmod(tmp / "extra", 0o755)
    try:
        sink = bench.start_sink()
        clamd = bench.start_clamd()
        if args.passthrough:
            policy = tmp / "pass-through.yaml"
            policy.write_text(sp.PASS_THROUGH_POLICY)
            bench.start_relay("pt2", 2, policy, clamd, sink)
            bare = sp.free_port()
            bench.procs.start([PY, str(HERE / "bare_aiosmtpd.py"), str(bare)])
            sp.wait_port(bare)
            msgfile = tmp / "clean20k.eml"
            msgfile.write_bytes(sp.make_message(20 * 1024).replace(b"\r\n", b"\n"))   # smtp-source sends CRLF
            port = bench.paths["pt2"].port
            sp.run_source(port, msgfile, 10, 200)            # warm-up
            rates = []
            for _ in range(2):                               # interleaved, twice
                b = sp.run_source(bare, msgfile, 10, args.passthrough)
                r = sp.run_source(port, msgfile, 10, args.passthrough)
                rates.append((b, r))
            print("\nPass-through (relay --workers 2, pass-through policy, clean 20 KB, C=10, smtp-source, "
                  f"{args.passthrough} msgs per measurement, interleaved twice):\n")
            print("| round | bare aiosmtpd msg/s | relay --workers 2 msg/s | relay/bare |\n|---:|---:|---:|---:|")
            for i, (b, r) in enumerate(rates, 1):
                print(f"| {i} | {b:.0f} | {r:.0f} | {r / b:.2f}x |")
            print(f"| median | | | {statistics.median(r / b for b, r in rates):.2f}x |", flush=True)
        full = Path(args.policy)
        bench.start_relay("mem2", 2, full, clamd, sink)
        pgid = bench.paths["mem2"].pgid
        if args.memory:
            big = wl.fixed("mime", 10 * 1024 * 1024, args.memory)
            res = RunResult("mem2", "mime10m", 50)
            with Sampler(pgid) as s:
                asyncio.run(send(bench.paths["mem2"].port, big, 50, 600, res))
            workers = {pid: kb for pid, kb in s.peak_proc.items() if pid != pgid}
            print(f"\nMemory: relay --workers 2, full policy, {res.done} x {len(big[0].data) / 1e6:.1f} MB MIME "
                  f"messages, C=50, {res.wall:.0f} s, outcomes {res.outcomes}: peak RSS per worker "
                  + ", ".join(f"{kb / 1024:.0f} MB" for kb in workers.values())
                  + f"; supervisor {s.peak_proc.get(pgid, 0) / 1024:.0f} MB; tree peak {s.peak_tree / 1024:.0f} MB",
                  flush=True)
        if args.soak:
            msgs = wl.generate(args.soak, args.seed + 2)
            res = RunResult("mem2", "soak", 10)
            with Sampler(pgid, interval=1.0) as s:
                asyncio.run(send(bench.paths["mem2"].port, msgs, 10, 3600, res))
            series = s.series
            marks = [series[min(len(series) - 1, int(len(series) * q))] for q in (0.1, 0.25, 0.5, 0.75, 1.0)] if series else []
            print(f"\nRSS over a longer run: relay --workers 2, full policy, {res.done} mixed messages, C=10, "
                  f"{res.wall:.0f} s, {res.rate:.1f} msg/s, outcomes {res.outcomes}; tree RSS at "
                  + ", ".join(f"{t:.0f} s: {kb / 1024:.0f} MB" for t, kb in marks), flush=True)
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
