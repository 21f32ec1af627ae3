"""Scan, then decide: one message's way from bytes to a verdict.

``Pipeline.decide`` parses the received bytes once, extracts text once, runs
every scanner (a scanner that raises or times out becomes a
``scanner_unavailable`` finding and the others go on) and hands all findings
to the policy engine, which returns exactly one
:class:`~relay.verdict.Verdict`. No side effects here: the act stage (hold,
tag, sign, forward) belongs to the fronts (``server.py``, ``milter``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from relay import extract as extract_mod
from relay import message as message_mod
from relay.config import Settings
from relay.envelope import Envelope
from relay.findings import Confidence, Finding
from relay.message import ParsedMessage
from relay.organisation import Organisation
from relay.scanners import ScanContext, Scanner, kinds_of, reads_text, small
from relay.scanners.text import small_text
from relay.verdict import Verdict

log = structlog.get_logger("relay.pipeline")

_NO_TEXT = extract_mod.Extraction()
# Parsing or extracting a message this small takes well under a millisecond: done inline, as a
# thread hop would cost more than the work (and wait for the GIL behind the event loop).
PARSE_INLINE_BYTES = 64 * 1024


class Policy(Protocol):
    version: str
    organisation: Organisation
    custom_detectors: tuple
    kinds: frozenset[str]   # finding kinds the rules test

    def evaluate(self, envelope: Envelope, message: ParsedMessage, findings: Sequence[Finding]) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class Decision:
    envelope: Envelope
    message: ParsedMessage
    findings: tuple[Finding, ...]
    verdict: Verdict
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds

    def for_recipients(self, rcpt_tos: Sequence[str]) -> Decision:
        """This decision as it concerns only ``rcpt_tos`` (a hold of some of the recipients)."""
        return dataclasses.replace(self, envelope=dataclasses.replace(self.envelope, rcpt_tos=tuple(rcpt_tos)))


class Pipeline:
    def __init__(self, settings: Settings, policy: Policy, scanners: Sequence[Scanner]) -> None:
        self.settings = settings
        self.policy = policy
        self.available = tuple(scanners)
        # Work sized to the policy: run only the scanners reporting a kind some rule tests.
        needed = getattr(policy, "kinds", None)
        self.scanners = tuple(s for s in self.available if needed is None or not kinds_of(s).isdisjoint(needed))
        self._extracts = any(reads_text(s) for s in self.scanners) or needed is None or "extraction_failed" in needed
        # the CPU-only scanners (scan_sync: run together) and the others (clamd: I/O, each a task),
        # with their places in self.scanners, which orders the findings
        sync = [callable(getattr(s, "scan_sync", None)) for s in self.scanners]
        self._cpu = [(i, s) for i, s in enumerate(self.scanners) if sync[i]]
        self._waiting = [(i, s) for i, s in enumerate(self.scanners) if not sync[i]]
        # A policy that tests no finding (envelope, size, headers only) runs no scanner and
        # needs no body: parse problems (malformed, limit_exceeded) are findings it does not test.
        self._head_only = needed is not None and not needed
        self._parse_limits = message_mod.ParseLimits.from_settings(settings)
        self._extract_limits = extract_mod.ExtractLimits.from_settings(settings)

    def with_policy(self, policy: Policy) -> Pipeline:
        """The same pipeline under a new policy (SIGHUP reload)."""
        return Pipeline(self.settings, policy, self.available)

    async def decide(self, envelope: Envelope, raw: bytes) -> Decision:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if self._head_only:            # nothing reads the body: its header block is all we need
            message = message_mod.parse_head(raw, self._parse_limits)
        elif len(raw) <= PARSE_INLINE_BYTES:   # microseconds: cheaper than a thread hop
            message = message_mod.parse(raw, self._parse_limits)
        else:                          # a large message (archives to list, parts to decode) off the loop
            message = await asyncio.to_thread(message_mod.parse, raw, self._parse_limits)
        t1 = time.perf_counter()
        timings["parse"] = t1 - t0
        extraction = await self._extract(message) if self._extracts else _NO_TEXT
        t2 = time.perf_counter()
        timings["extract"] = t2 - t1
        policy = self.policy
        ctx = ScanContext(message, envelope, policy.organisation, extraction, policy.custom_detectors)
        findings: list[Finding] = [*message.problems, *extraction.problems]
        findings.extend(await self._scan(ctx, timings))
        t3 = time.perf_counter()
        verdict = policy.evaluate(envelope, message, findings)
        timings["policy"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        return Decision(envelope, message, tuple(findings), verdict, timings)

    async def _extract(self, message: ParsedMessage) -> extract_mod.Extraction:
        limits = self._extract_limits
        try:
            if message.size <= PARSE_INLINE_BYTES and next(message.attachments(), None) is None:
                return extract_mod.extract(message, limits)     # small text mail: no document to read
            return await asyncio.wait_for(asyncio.to_thread(extract_mod.extract, message, limits), limits.timeout)
        except TimeoutError:
            return extract_mod.Extraction((), (Finding("limit_exceeded", "extract_timeout", Confidence.HIGH, 1, "message"),))
        except Exception:  # noqa: BLE001 - an extractor bug must not pass the message unscanned
            log.exception("extraction failed")
            return extract_mod.Extraction((), (Finding("scanner_unavailable", "extract", Confidence.HIGH, 1, "message"),))

    async def _scan(self, ctx: ScanContext, timings: dict[str, float]) -> list[Finding]:
        """Every scanner's findings, in scanner order.

        The CPU-only scans (``scan_sync``) run together: inline for a small text-only message,
        else one after another in one worker thread under ``scan_timeout``, while the others
        (clamd: I/O) run as tasks, each under its own ``scan_timeout``."""
        results: list[Sequence[Finding] | None] = [None] * len(self.scanners)
        cpu, waiting = self._cpu, self._waiting
        if cpu and small(ctx.message) and small_text(ctx):
            _run_sync(cpu, ctx, results, timings)
            cpu = []
        if cpu or waiting:
            async with asyncio.TaskGroup() as tg:
                if cpu:
                    tg.create_task(self._run_sync_off_loop(cpu, ctx, results, timings))
                tasks = [(i, tg.create_task(self._run(s, ctx, timings))) for i, s in waiting]
            for i, task in tasks:
                results[i] = task.result()
        return [f for found in results if found is not None for f in found]

    async def _run_sync_off_loop(self, cpu: list[tuple[int, Scanner]], ctx: ScanContext,
                                 results: list[Sequence[Finding] | None], timings: dict[str, float]) -> None:
        """One thread hop for all of them; on time-out, every scan not finished fails closed."""
        stop = threading.Event()
        try:
            async with asyncio.timeout(self.settings.scan_timeout):
                await asyncio.to_thread(_run_sync, cpu, ctx, results, timings, stop)
        except TimeoutError:
            stop.set()             # the thread stops before its next scanner
            late = [s.name for i, s in cpu if results[i] is None]
            log.warning("scanner timed out", scanner=",".join(late), timeout=self.settings.scan_timeout)
            for i, scanner in cpu:
                if results[i] is None:
                    results[i] = _unavailable(scanner, "timeout")

    async def _run(self, scanner: Scanner, ctx: ScanContext, timings: dict[str, float]) -> Sequence[Finding]:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.scan_timeout):
                return tuple(await scanner.scan(ctx))
        except TimeoutError:
            log.warning("scanner timed out", scanner=scanner.name, timeout=self.settings.scan_timeout)
            return _unavailable(scanner, "timeout")
        except Exception as exc:  # noqa: BLE001 - one scanner's bug must not stop the others
            return _failed(scanner, exc)
        finally:
            timings[f"scan.{scanner.name}"] = time.perf_counter() - start


def _run_sync(cpu: list[tuple[int, Scanner]], ctx: ScanContext, results: list[Sequence[Finding] | None],
              timings: dict[str, float], stop: threading.Event | None = None) -> None:
    """Each scanner's ``scan_sync`` in turn; a scanner's exception is its own finding."""
    for i, scanner in cpu:
        if stop is not None and stop.is_set():
            return
        start = time.perf_counter()
        try:
            found: Sequence[Finding] = tuple(scanner.scan_sync(ctx))
        except Exception as exc:  # noqa: BLE001 - one scanner's bug must not stop the others
            found = _failed(scanner, exc)
        timings[f"scan.{scanner.name}"] = time.perf_counter() - start
        results[i] = found


def _unavailable(scanner: Scanner, reason: str) -> tuple[Finding, ...]:
    return (Finding("scanner_unavailable", scanner.name, Confidence.HIGH, 1, "message", reason),)


def _failed(scanner: Scanner, exc: Exception) -> tuple[Finding, ...]:
    log.error("scanner failed", scanner=scanner.name, exc_info=exc)
    return _unavailable(scanner, type(exc).__name__)
