"""Soak run: thousands of mixed messages through the real relay while its services fail.

    .venv/bin/python -m tests.soak.run --messages 3000                   # make soak
    .venv/bin/python -m tests.soak.run --messages 300 --short            # what CI runs (tests/soak/test_soak.py)
    .venv/bin/python -m tests.soak.run --messages 1000 --front milter    # make soak-milter

The relay (``relay serve`` with ``policies/icmp-email-use.yaml``), a private
clamd and an aiosmtpd capture sink run for real (:mod:`tests.soak.faults`).
With ``--front milter`` the client talks to a private Postfix whose
``smtpd_milters`` is ``relay milter`` (:mod:`tests.soak.milter_front`).
The messages are the shipped policy's corpus (``tests/data/policy-cases``:
clean, tagged, held, rejected, with attachments, malware and personal data)
mixed with generated clean mail, each with its own Message-ID. The client
behaves like an MTA: a 4xx or a broken session is retried with backoff
(bounded attempts and time), a 5xx is final. Faults (see ``faults.py``) start
on a schedule tied to how far the traffic has got, so each one meets traffic.

At the end every message is accounted for (:mod:`tests.soak.accounting`):
delivered (by Message-ID at the sink), held (in the relay's quarantine) or
rejected (5xx received); anything else is lost. A second delivery is
allowed only where the client saw a DATA attempt fail after the data was sent
(the next hop accepted, the relay's 250 never arrived: the documented duplicate
window); those are counted separately. With the milter front, Postfix's queue
is flushed until empty first (mail the sink deferred). The run prints the
counts, the fault schedule, the sustained rate and the relay's peak RSS, writes
them as JSON with ``--json PATH``, and exits 1 if anything was lost, a verdict
went wrong or a fault could not be injected.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import yaml

from tests.soak import faults as F
from tests.soak.accounting import account, held_hashes, held_message_ids, ok, print_report, steady_rate

CASES = F.ROOT / "tests" / "data" / "policy-cases"
FULL_SCHEDULE = ["clamd_kill", "sink_slow", "relay_kill", "sink_down", "clamd_hang", "sink_refuse", "store_lock",
                 "sink_rcpt_4xx", "sink_drop", "relay_kill", "sink_busy", "clamd_kill", "store_restart"]
SHORT_SCHEDULE = ["clamd_kill", "sink_down", "relay_kill", "sink_rcpt_4xx", "sink_drop", "sink_busy", "store_lock"]
# --front milter: the relay's faults as before (relay_kill SIGKILLs `relay milter`); the sink's make Postfix queue
MILTER_SCHEDULE = ["clamd_kill", "sink_refuse", "relay_kill", "clamd_hang", "sink_down", "store_lock",
                   "relay_kill", "sink_rcpt_4xx", "clamd_kill", "sink_busy"]
MILTER_SHORT_SCHEDULE = ["relay_kill", "sink_down", "clamd_hang", "store_lock"]
DURATIONS = {"clamd_kill": 3.0, "clamd_hang": 5.0, "sink_refuse": 3.0, "sink_drop": 3.0, "sink_slow": 5.0,
             "sink_down": 4.0, "sink_busy": 3.0, "sink_rcpt_4xx": 3.0,
             "relay_kill": 0.5, "store_lock": 12.0,     # store_lock: past the SQLite store's 10 s busy timeout
             "store_restart": 4.0}
_EXPECT = {"accept": "delivered", "tag": "delivered", "hold": "held", "reject": "rejected"}


@dataclass
class Item:
    n: int
    kind: str                      # corpus file name or "generated"
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    expect: str                    # delivered | held | held+delivered | rejected
    message_id: str = ""
    sha256: str = ""
    outcome: str = ""              # delivered | held | held+delivered | rejected | gave_up
    reply: str = ""
    attempts: list[str] = field(default_factory=list)   # one word per attempt
    after_data_failures: int = 0   # attempts that sent the data and then failed (duplicate window)
    done_at: float = 0.0           # monotonic time of the final answer


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _with_message_id(raw: bytes, mid: str) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    new = f"Message-ID: {mid}".encode()
    head, count = re.subn(rb"(?im)^message-id:[^\r\n]*", new.replace(b"\\", b"\\\\"), head, count=1)
    if not count:
        head = new + b"\r\n" + head
    return head + sep + body


def _generated(rng: random.Random) -> tuple[bytes, str, list[str]]:
    msg = EmailMessage()
    msg["From"] = "alice@example.ac.uk"
    msg["To"] = "bob@partner.example.com"
    msg["Subject"] = f"Project notes {rng.randrange(1000)}"
    lines = ["Hello Bob,", "", "here are the notes from the planning meeting."]
    lines += [f"Item {i}: the agenda for the next session, the room and the timetable." for i in range(rng.randrange(5, 400))]
    msg.set_content("\n".join(lines) + "\n\nBest wishes,\nAlice\n")
    if rng.random() < 0.4:
        msg.add_attachment(("Agenda line\n" * rng.randrange(10, 2000)).encode(), maintype="text", subtype="plain",
                           filename="agenda.txt")
    return _crlf(msg.as_bytes()), "alice@example.ac.uk", ["bob@partner.example.com"]


def workload(count: int, seed: int = 7) -> list[Item]:
    manifest = yaml.safe_load((CASES / "manifest.yaml").read_text(encoding="utf-8"))
    cases = manifest["cases"] + manifest["clamd_cases"]
    rng = random.Random(seed)
    items = []
    for n in range(count):
        mid = f"<soak-{n}-{seed}@soak.test>"
        if n % 2:
            case = cases[(n // 2) % len(cases)]
            raw = _crlf((CASES / case["file"]).read_bytes())
            expect = _EXPECT[case["action"]]
            if any(_EXPECT[a] != expect for a in case.get("recipients", {}).values()):
                expect = "held+delivered"
            item = Item(n, case["file"], case["mail_from"], list(case["rcpt_tos"]), raw, expect)
        else:
            raw, sender, rcpts = _generated(rng)
            item = Item(n, "generated", sender, rcpts, raw, "delivered")
        item.raw = _with_message_id(item.raw, mid)
        item.message_id = mid
        item.sha256 = hashlib.sha256(item.raw).hexdigest()
        items.append(item)
    return items


# ------------------------------------------------------------------------------- the MTA-like client


async def attempt(port: int, item: Item, timeout: float) -> tuple[str, bool]:
    """One delivery attempt: ('final', ...) or ('retry', ...); second value: the data was sent."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
    data_sent = False
    try:
        await smtp.connect()
        await smtp.ehlo()
        await smtp.mail(item.mail_from)
        for rcpt in item.rcpt_tos:
            await smtp.rcpt(rcpt)
        data_sent = True
        reply = await smtp.data(item.raw)
        item.reply = f"{reply.code} {reply.message}"[:200]
        held = "held for review" in reply.message
        item.outcome = ("held+delivered" if "forwarded to the others" in reply.message else "held") if held else "delivered"
        item.attempts.append("250")
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        return "final", data_sent
    except aiosmtplib.SMTPResponseException as exc:
        item.attempts.append(str(exc.code))
        item.reply = f"{exc.code} {exc.message}"[:200]
        if 500 <= exc.code < 600:
            item.outcome = "rejected"
            return "final", data_sent
        return "retry", data_sent
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        item.attempts.append(f"broken:{type(exc).__name__}")
        return "retry", data_sent
    finally:
        smtp.close()


async def deliver(port_of, item: Item, args) -> None:
    deadline = time.monotonic() + args.max_time
    for n in range(args.max_attempts):
        verdict, data_sent = await attempt(port_of(), item, args.timeout)
        item.done_at = time.monotonic()
        if verdict == "final":
            return
        item.after_data_failures += data_sent
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(min(args.backoff_max, 0.2 * 2 ** n) * random.uniform(0.5, 1.0))
    item.outcome = "gave_up"


# ------------------------------------------------------------------------------- the run


async def run_traffic(svc: F.Services, items: list[Item], schedule: list[str], args) -> tuple[list[dict], float]:
    fed = 0
    triggers = [int(len(items) * (0.08 + 0.8 * i / max(1, len(schedule)))) for i in range(len(schedule))]
    started = [asyncio.Event() for _ in schedule]
    log: list[dict] = []
    t0 = time.monotonic()

    async def fault_loop() -> None:
        for i, name in enumerate(schedule):
            while fed < triggers[i]:
                await asyncio.sleep(0.02)
            start = time.monotonic() - t0
            started[i].set()
            try:
                what = await F.FAULTS[name](svc, DURATIONS[name] * args.fault_scale)
            except Exception as exc:  # noqa: BLE001 - report it, keep the run going
                what = f"FAULT FAILED: {type(exc).__name__}: {exc}"
            log.append({"fault": name, "at_message": triggers[i], "start_s": round(start, 1),
                        "end_s": round(time.monotonic() - t0, 1), "what": what, "t0": t0})
            print(f"  [{start:6.1f}s] {name}: {what}", flush=True)

    async def worker() -> None:
        nonlocal fed
        while fed < len(items):
            item = items[fed]
            fed += 1
            for i, trigger in enumerate(triggers):
                if item.n >= trigger:
                    await started[i].wait()
            await deliver(lambda: svc.relay_port, item, args)

    faults_task = asyncio.create_task(fault_loop())
    async with asyncio.TaskGroup() as tg:
        for _ in range(args.concurrency):
            tg.create_task(worker())
    elapsed = time.monotonic() - t0
    await faults_task
    return log, elapsed


def default_schedule(front: str, short: bool) -> list[str]:
    if front == "milter":
        return MILTER_SHORT_SCHEDULE if short else MILTER_SCHEDULE
    return SHORT_SCHEDULE if short else FULL_SCHEDULE


async def main_async(args) -> dict:
    items = workload(args.messages, args.seed)
    schedule = args.faults.split(",") if args.faults else default_schedule(args.front, args.short)
    unknown = [f for f in schedule if f and f not in F.FAULTS]
    if unknown:
        raise SystemExit(f"unknown faults {unknown}; known: {sorted(F.FAULTS)}")
    schedule = [f for f in schedule if f]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="relay-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.front == "milter":
        if args.store != "sqlite":
            raise SystemExit("--front milter runs with the SQLite store only")
        from tests.soak.milter_front import MilterServices

        svc = MilterServices(workdir)
    else:
        svc = F.Services(workdir, store=args.store)
    rss = F.RssMonitor(svc.relay_pid)
    drained: dict = {}
    try:
        await asyncio.to_thread(svc.start)
        rss.start()
        print(f"soak: {len(items)} messages, front {args.front}, concurrency {args.concurrency}, faults {schedule},"
              f" in {workdir}", flush=True)
        fault_log, elapsed = await run_traffic(svc, items, schedule, args)
        steady = steady_rate(items, fault_log, elapsed)
        for entry in fault_log:
            entry.pop("t0")
        rss.sample()
        if args.front == "milter":                       # mail the sink deferred waits in Postfix's queue
            left, took = await asyncio.to_thread(svc.drain_mta)
            drained = {"mta_queue_left": left, "mta_drain_s": took, **svc.mta_counts()}
            held = await asyncio.to_thread(held_message_ids, svc.db_path)
        else:
            held = await asyncio.to_thread(held_hashes, svc)
        await asyncio.sleep(0.5)                         # the sink thread stores its last message
        report = account(items, list(svc.sink.messages), held, args.front)
    finally:
        rss.stop()
        await asyncio.to_thread(svc.stop)
    report.update(drained)
    report.update({"front": args.front, "elapsed_s": round(elapsed, 1), "rate_msg_s": round(len(items) / elapsed, 1),
                   "rate_between_faults_msg_s": steady, "store": args.store, "concurrency": args.concurrency,
                   "relay_peak_rss_mb": round(rss.peak_kb / 1024, 1), "relay_starts": svc.relay_starts,
                   "faults": fault_log, "faults_failed": sum("FAULT FAILED" in f["what"] for f in fault_log),
                   "workdir": str(workdir)})
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=6)
    p.add_argument("--short", action="store_true", help="fewer faults (CI)")
    p.add_argument("--front", choices=("smtp", "milter"), default="smtp",
                   help="smtp: client -> relay serve -> sink; milter: client -> Postfix (relay milter) -> sink")
    p.add_argument("--faults", default="", help="comma-separated schedule, e.g. clamd_kill,relay_kill")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                   help="quarantine backend (postgres: a private server, stopped and started by store_restart)")
    p.add_argument("--fault-scale", type=float, default=1.0, help="multiply every fault's duration")
    p.add_argument("--max-attempts", type=int, default=40)
    p.add_argument("--max-time", type=float, default=240.0, help="seconds a message may keep being retried")
    p.add_argument("--backoff-max", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=60.0, help="client SMTP timeout per command")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", default="")
    p.add_argument("--json", default="", help="write the report here")
    args = p.parse_args(argv)
    report = asyncio.run(main_async(args))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 0 if ok(report) else 1


if __name__ == "__main__":
    sys.exit(main())
