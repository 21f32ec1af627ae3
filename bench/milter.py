"""Postfix with the milter front vs Postfix with the SMTP hop vs Postfix alone, same workload, one run.

Three paths, each a fresh private Postfix (``tests/fixtures/postfix.py``) delivering to
Postfix's ``smtp-sink``:

  alone    smtp-source -> Postfix -> smtp-sink
  milter   smtp-source -> Postfix (smtpd_milters = relay milter) -> smtp-sink
  smtp     smtp-source -> Postfix (content_filter = smtp:[127.0.0.1]:RELAY) -> relay serve
                       -> Postfix reinjection smtpd (master.cf) -> smtp-sink

Workload: ``smtp-source`` with ``-s C`` parallel sessions sends N messages of S bytes
(From/To/Subject/Date/Message-ID headers, plain text body). Reported per path:

- submit msg/s: N / smtp-source's wall time (what the sending client sees);
- delivered msg/s: N / time until Postfix logged the N-th delivery to the sink;
- submit p50/p95: a sequential probe (aiosmtplib, idle path) timing MAIL..end of DATA reply;
- deliver p50/p95: the same probe messages, from the start of the submission to arrival at an
  aiosmtpd probe sink (``transport_maps`` routes the probe domain there), i.e. end to end.

The relay scans with the policy given (default: the shipped policy with a private clamd).
Ratios matter more than absolute numbers: the machine is shared.

    .venv/bin/python bench/milter.py --messages 1000 --concurrency 10 --size 20k

Recorded 2026-11-28 (Postfix 3.7.11, Python 3.11, 2 shared cores, shipped policy + private clamd):

    1000 messages of 20480 bytes, 10 parallel sessions (smtp-source); probe: 40 sequential messages
    path     submit msg/s delivered msg/s  submit p50/p95 ms  deliver p50/p95 ms added p50 ms
    alone             261             255     13.4 / 23.2         20.0 / 36.0             0.0
    milter             46              46     75.0 / 95.6         80.0 / 105.9           60.0
    smtp              338              34      7.2 / 14.9        139.4 / 162.9          119.4

The milter delivers ~35% more per second than the SMTP hop and adds half the
latency (one queue pass instead of two, no second SMTP session per message);
the SMTP hop answers the client sooner (Postfix queues first, scans later).
Both are bound by the pipeline's CPU (one relay process; `relay serve --workers`
scales the hop, the milter runs one process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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
sys.path.insert(0, str(ROOT))

from tests.fixtures.clamd import start_clamd, stop_pid  # noqa: E402
from tests.fixtures.postfix import PostfixInstance, default_main  # noqa: E402
from tests.fixtures.smtp import FaultyHandler, SinkServer  # noqa: E402

PROBE_DOMAIN = "probe.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port}")


def make_message(size: int, message_id: str = "bench@example.ac.uk", to: str = "bob@partner.example.com") -> bytes:
    head = (f"From: Alice Example <alice@example.ac.uk>\r\nTo: {to}\r\n"
            "Subject: Quarterly figures and the agenda for Thursday\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            ).encode()
    line = b"Thanks for the notes from the meeting; the draft looks good and we will discuss it on Thursday.\r\n"
    body = line * (max(size - len(head), 0) // len(line) + 1)
    return head + body[: max(size - len(head), len(line))]


class ProbeHandler(FaultyHandler):
    """Records when each probe message arrives (by Message-ID)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    async def handle_DATA(self, server, session, envelope):
        m = re.search(rb"Message-ID: <([^>]+)>", envelope.original_content or b"")
        if m:
            self.arrived[m.group(1).decode()] = time.perf_counter()
        return "250 2.0.0 OK"


class Relay:
    """``relay serve`` or ``relay milter`` as a subprocess."""

    def __init__(self, command: str, env: dict[str, str], workdir: Path) -> None:
        self.log = workdir / f"{command}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "relay.cli", command], env=env, cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log.read_text()[-2000:]}")
            if '"event": "serving"' in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise TimeoutError("relay did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def delivered(postfix: PostfixInstance, sink_port: int) -> int:
    return len(re.findall(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port}, .*status=sent", postfix.log()))


async def probe(port: int, count: int, size: int, handler: ProbeHandler, tag: str) -> tuple[list[float], list[float]]:
    import aiosmtplib

    submit, deliver = [], []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    await client.connect()
    try:
        for i in range(count):
            mid = f"probe-{tag}-{i}@example.ac.uk"
            message = make_message(size, mid, f"p@{PROBE_DOMAIN}")
            t0 = time.perf_counter()
            await client.sendmail("alice@example.ac.uk", [f"p@{PROBE_DOMAIN}"], message)
            submit.append(time.perf_counter() - t0)
            deadline = time.monotonic() + 60
            while mid not in handler.arrived and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            if mid not in handler.arrived:
                raise TimeoutError(f"probe {mid} never arrived")
            deliver.append(handler.arrived[mid] - t0)
    finally:
        await client.quit()
    return submit, deliver


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_path(name: str, args, workdir: Path, msgfile: Path, env: dict[str, str], sink_port: int,
             probe_sink: SinkServer) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix=f"relay-bench-{name}-"))
    main = default_main(directory, sink_port)
    main.update({"transport_maps": f"inline:{{ {PROBE_DOMAIN}=smtp:[127.0.0.1]:{probe_sink.port} }}",
                 "in_flow_delay": "0", "default_destination_concurrency_limit": "50",
                 "milter_default_action": "tempfail"})
    relay = None
    master_extra = ""
    if name == "milter":
        port = free_port()
        relay = Relay("milter", {**env, "RELAY_MILTER_LISTEN": f"inet:127.0.0.1:{port}"}, workdir)
        relay.wait_serving()
        main["smtpd_milters"] = f"inet:127.0.0.1:{port}"
    elif name == "smtp":
        relay_port, reinject = free_port(), free_port()
        relay = Relay("serve", {**env, "RELAY_LISTEN": f"127.0.0.1:{relay_port}",
                                "RELAY_UPSTREAM": f"127.0.0.1:{reinject}"}, workdir)
        relay.wait_serving()
        main["content_filter"] = f"smtp:[127.0.0.1]:{relay_port}"
        master_extra = (f"127.0.0.1:{reinject} inet n - n - - smtpd\n  -o content_filter=\n"
                        "  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters\n"
                        "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n")
        main["smtp_send_xforward_command"] = "yes"
    postfix = PostfixInstance(directory, free_port(), main, {}, master_extra)
    try:
        postfix.start()
        n = args.messages
        t0 = time.perf_counter()
        result = subprocess.run(["smtp-source", "-s", str(args.concurrency), "-m", str(n), "-F", str(msgfile),
                                 "-f", "alice@example.ac.uk", "-t", "bob@partner.example.com",
                                 f"127.0.0.1:{postfix.port}"], capture_output=True, text=True, timeout=1800)
        submitted = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {result.stderr[-500:]}")
        deadline = time.monotonic() + 600
        while delivered(postfix, sink_port) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        done = time.perf_counter() - t0
        count = delivered(postfix, sink_port)
        if count < n:
            raise RuntimeError(f"{name}: only {count} of {n} delivered")
        submit, deliver = asyncio.run(probe(postfix.port, args.probes, args.size, probe_sink.handler, name))
        return {"submit_rate": n / submitted, "deliver_rate": n / done,
                "submit_p50": pct(submit, 0.5) * 1000, "submit_p95": pct(submit, 0.95) * 1000,
                "deliver_p50": pct(deliver, 0.5) * 1000, "deliver_p95": pct(deliver, 0.95) * 1000,
                "deliver_mean": statistics.mean(deliver) * 1000}
    finally:
        postfix.stop()
        if relay is not None:
            relay.stop()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", default="20k")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--policy", default=str(ROOT / "policies" / "icmp-email-use.yaml"))
    parser.add_argument("--paths", default="alone,milter,smtp")
    args = parser.parse_args()
    args.size = int(args.size.rstrip("kK")) * 1024 if args.size[-1] in "kK" else int(args.size)
    if not shutil.which("smtp-source") or not shutil.which("smtp-sink"):
        print("needs Postfix's smtp-source and smtp-sink: apt-get install postfix", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-milter-"))
    clamd_url, clamd_pid = start_clamd(workdir / "clamd")
    sink_port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "1024"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    probe_sink = SinkServer(ProbeHandler()).start()
    msgfile = workdir / "message.eml"
    msgfile.write_bytes(make_message(args.size))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update({"RELAY_CLAMD": clamd_url, "RELAY_POLICY": args.policy, "RELAY_LOG_FORMAT": "json",
                "RELAY_HOSTNAME": "relay.bench", "RELAY_UPSTREAM_TLS": "off",
                "RELAY_QUARANTINE": f"sqlite:///{workdir}/quarantine.sqlite3", "RELAY_UPSTREAM": "127.0.0.1:9"})
    results: dict[str, dict[str, float]] = {}
    try:
        wait_port(sink_port)
        for name in args.paths.split(","):
            results[name] = run_path(name, args, workdir, msgfile, env, sink_port, probe_sink)
    finally:
        probe_sink.stop()
        sink.terminate()
        sink.wait(10)
        stop_pid(clamd_pid)
    print(f"\n{args.messages} messages of {args.size} bytes, {args.concurrency} parallel sessions (smtp-source), "
          f"policy {Path(args.policy).name}, {os.cpu_count()} cores; probe: {args.probes} sequential messages\n")
    print(f"{'path':<8} {'submit msg/s':>12} {'delivered msg/s':>15} {'submit p50/p95 ms':>18} "
          f"{'deliver p50/p95 ms':>19} {'added p50 ms':>12}")
    base = results.get("alone", {}).get("deliver_p50", 0.0)
    for name, r in results.items():
        print(f"{name:<8} {r['submit_rate']:>12.0f} {r['deliver_rate']:>15.0f} "
              f"{r['submit_p50']:>8.1f} / {r['submit_p95']:<7.1f} {r['deliver_p50']:>9.1f} / {r['deliver_p95']:<7.1f} "
              f"{r['deliver_p50'] - base:>12.1f}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
