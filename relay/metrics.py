"""Prometheus metrics and the /healthz and /readyz endpoints.

Metric names are part of the operator's contract (documented in the README,
checked by a test). With ``--workers N`` every worker writes its samples to a
shared directory (prometheus-client's multiprocess mode, set up by the
parent before the workers start) and the parent serves the sum.

``/healthz`` answers 200 while the process runs. ``/readyz`` answers 200 only
when every readiness check passes (clamd answers PING, the store is
writable, the next hop answers its greeting) and 503 naming the failing
checks otherwise; checks are cached for a few seconds so probes stay cheap.

``relay_quarantine_held`` is counted by the process that serves ``/metrics``
every few seconds (:class:`HeldGauge`), whether or not anything probes
``/readyz``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from relay.errors import StoreError

log = structlog.get_logger("relay.metrics")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

MESSAGES = Counter("relay_messages_total", "Messages decided, by action.", ["action"])
RULES = Counter("relay_rule_matches_total", "Rule matches, by rule id, action and mode.", ["rule", "action", "mode"])
MESSAGE_BYTES = Counter("relay_message_bytes_total", "Bytes of messages received.")
MESSAGE_SIZE = Histogram("relay_message_size_bytes", "Size of messages received.", buckets=_SIZE_BUCKETS)
DECISION_SECONDS = Histogram("relay_decision_seconds", "Time from end of DATA to a verdict.", buckets=_LATENCY_BUCKETS)
SCANNER_SECONDS = Histogram("relay_scanner_seconds", "Time each scanner took, by scanner.", ["scanner"],
                            buckets=_LATENCY_BUCKETS)
SCANNER_FAILURES = Counter("relay_scanner_failures_total", "Scanner failures (scanner_unavailable findings).", ["scanner"])
UPSTREAM_FAILURES = Counter("relay_upstream_failures_total", "Next-hop failures, by kind.", ["kind"])
SESSIONS_OPEN = Gauge("relay_sessions_open", "Client sessions open.", multiprocess_mode="livesum")
QUARANTINE_HELD = Gauge("relay_quarantine_held", "Messages held in the quarantine (counted every few seconds).",
                        multiprocess_mode="max")
HELD_INTERVAL = 5.0   # seconds between two counts of held messages

METRIC_NAMES = (
    "relay_messages_total", "relay_rule_matches_total", "relay_message_bytes_total", "relay_message_size_bytes",
    "relay_decision_seconds", "relay_scanner_seconds", "relay_scanner_failures_total",
    "relay_upstream_failures_total", "relay_sessions_open", "relay_quarantine_held",
)


def observe_decision(decision, size: int) -> None:
    """Record one message's verdict, rules, scanner timings and failures."""
    verdict = decision.verdict
    MESSAGES.labels(str(verdict.action)).inc()
    MESSAGE_BYTES.inc(size)
    MESSAGE_SIZE.observe(size)
    for match in verdict.matches:
        RULES.labels(match.rule_id, str(match.action), "monitor" if match.monitor else "enforce").inc()
    for stage, seconds in decision.timings.items():
        if stage.startswith("scan."):
            SCANNER_SECONDS.labels(stage[5:]).observe(seconds)
    if "total" in decision.timings:
        DECISION_SECONDS.observe(decision.timings["total"])
    for finding in decision.findings:
        if finding.kind == "scanner_unavailable":
            SCANNER_FAILURES.labels(finding.type or "unknown").inc()


def render() -> tuple[bytes, str]:
    """The exposition text: this process's registry, or the sum of all workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


Check = Callable[[], Awaitable[None]]  # raises on failure; the message is shown in /readyz


class Readiness:
    """Runs named readiness checks, caching the result for ``ttl`` seconds."""

    def __init__(self, checks: Mapping[str, Check], ttl: float = 5.0, timeout: float = 5.0) -> None:
        self.checks = dict(checks)
        self.ttl = ttl
        self.timeout = timeout
        self._at = 0.0
        self._result: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def results(self) -> dict[str, str]:
        """{check name: "ok" or the reason it failed}."""
        async with self._lock:
            if time.monotonic() - self._at > self.ttl:
                names = list(self.checks)
                outcomes = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
                self._result = dict(zip(names, outcomes, strict=True))
                self._at = time.monotonic()
            return dict(self._result)

    async def _run(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                await check()
            return "ok"
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure makes the relay not ready
            return f"{type(exc).__name__}: {exc}"[:200]


async def serve_http(host: str, port: int, readiness: Readiness | None) -> asyncio.Server:
    """A minimal HTTP/1.0 server for /metrics, /healthz and /readyz."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, body, ctype = await _route(path, readiness)
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


async def _route(path: str, readiness: Readiness | None) -> tuple[str, bytes, str]:
    if path == "/metrics":
        body, ctype = render()
        return "200 OK", body, ctype
    if path == "/healthz":
        return "200 OK", b"ok\n", "text/plain"
    if path == "/readyz":
        results = await readiness.results() if readiness else {}
        failing = {k: v for k, v in results.items() if v != "ok"}
        text = "".join(f"{k}: {v}\n" for k, v in results.items()) or "ok\n"
        return ("503 Service Unavailable" if failing else "200 OK"), text.encode(), "text/plain"
    return "404 Not Found", b"not found\n", "text/plain"


class HeldGauge:
    """Keeps ``relay_quarantine_held`` current: one COUNT query every ``interval`` seconds while started
    (the store runs it off the event loop), so the gauge is right without a readiness probe and a
    scrape storm costs the store nothing. A failing count keeps the last value and is logged once
    until a count succeeds again; ``/readyz`` names the store's problem."""

    def __init__(self, store, interval: float = HELD_INTERVAL, timeout: float = 5.0) -> None:
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task | None = None
        self._failing = False

    async def refresh(self) -> None:
        """Count held messages now and set the gauge."""
        try:
            async with asyncio.timeout(self.timeout):
                held = await self.store.count("held")
        except (StoreError, TimeoutError) as exc:
            if not self._failing:
                log.warning("metrics.held_count_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            self._failing = True
            return
        self._failing = False
        QUARANTINE_HELD.set(held)

    def start(self) -> None:
        """Count now and then every ``interval`` seconds, on the running loop, until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)


def standard_checks(settings, store) -> dict[str, Check]:
    """The readiness checks of a relay: clamd answers PING (any address: failover), the quarantine
    ``store`` is writable (a rolled-back probe write), and the next hop answers EHLO."""
    import aiosmtplib

    from relay.clamd import Clamd

    clamd = Clamd.from_settings(settings)

    async def clamd_check() -> None:
        await clamd.ping()

    async def store_check() -> None:
        await store.ping(write=True)

    async def next_hop_check() -> None:
        client = aiosmtplib.SMTP(hostname=settings.upstream.host, port=settings.upstream.port,
                                 timeout=settings.upstream_timeout, start_tls=False)
        await client.connect()
        try:
            await client.ehlo()
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()

    return {"clamd": clamd_check, "quarantine": store_check, "next_hop": next_hop_check}
