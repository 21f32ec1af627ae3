"""One worker's lifecycle: ``serve(settings, shutdown_trigger=None)`` (Hypercorn's shape).

Build everything and check it (policy, scanners, collaborators, next-hop
name and TLS), bind the listen port (``SO_REUSEPORT`` when several workers
share it), serve until ``shutdown_trigger`` returns, then drain: stop
accepting, tell idle sessions ``421 4.3.2``, let transactions in flight finish
within ``shutdown_grace``, close what is left and the collaborators.
``reload_trigger`` (awaited in a loop) reloads the policy: a valid new policy
replaces the old for the next message without touching sessions; an invalid
one is logged and ignored. Signals belong to the CLI (``commands/serve.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from relay import replies
from relay.config import HostPort, Settings
from relay.errors import PolicyError
from relay.pipeline import Pipeline
from relay.server import RelayHandler, ServerState
from relay.upstream import Upstream

log = structlog.get_logger("relay.serving")

Trigger = Callable[[], Awaitable[Any]]

_M_MMAP_THRESHOLD = -3          # glibc mallopt parameter
_MMAP_THRESHOLD = 256 * 1024


def return_large_buffers() -> bool:
    """Make glibc serve every allocation past 256 KiB with its own mmap, given back on free.

    By default glibc raises that threshold each time a large block is freed,
    so message-sized buffers end up in the heap, which keeps its peak: with 50
    sessions of 10 MB mail a worker stayed near 1 GB; with this and the large
    message bound in ``server.py`` it stays under 300 MB (bench/profile.md).
    Called once per worker process; False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


@dataclass(slots=True)
class Collaborators:
    """The act stage's optional helpers (see ``RelayHandler``) and how to close them."""
    store: Any = None
    tagger: Callable[[bytes, Any], bytes] | None = None     # tag(raw, verdict) -> bytes
    signer: Any = None                                       # async sign(raw, mail_from) -> bytes
    close: Callable[[], Awaitable[None]] | None = None


async def build_collaborators(settings: Settings) -> Collaborators:
    """The quarantine store, the tagger and the DKIM signer, built in each worker (after any fork).

    The store is opened lazily by its backend; ``ping`` here makes a broken store
    URL fail at start-up rather than at the first hold. Signing keys are loaded
    and checked now (a bad key stops start-up with a ConfigError).
    """
    from relay import dkim, tagging
    from relay.quarantine import lease_for, open_store

    signer = await asyncio.to_thread(dkim.Signer.from_settings, settings)
    store = open_store(settings.quarantine, lease=lease_for(settings))
    try:
        await store.ping()
    except Exception:
        await store.close()
        raise
    return Collaborators(store=store, tagger=lambda raw, verdict: tagging.tag(raw, verdict, settings),
                         signer=signer, close=store.close)


def load_policy(path):
    """The policy at ``path`` (PolicyError on any problem)."""
    from relay.policy import load_policy as _load

    return _load(path)


def build_pipeline(settings: Settings, policy=None) -> Pipeline:
    from relay.scanners import build_scanners

    return Pipeline(settings, policy if policy is not None else load_policy(settings.policy), build_scanners(settings))


def server_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """STARTTLS for clients when ``tls_cert``/``tls_key`` are set."""
    if settings.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


def bind_socket(address: HostPort, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, address.port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(settings: Settings, shutdown_trigger: Trigger | None = None, *,
                reload_trigger: Trigger | None = None, pipeline: Pipeline | None = None,
                collaborators: Collaborators | None = None,
                ready: Callable[[tuple[str, int]], None] | None = None) -> None:
    """Serve SMTP until ``shutdown_trigger()`` returns (never, if None), then drain and close."""
    loop = asyncio.get_running_loop()
    if pipeline is None:
        pipeline = await asyncio.to_thread(build_pipeline, settings)
    collaborators = collaborators if collaborators is not None else await build_collaborators(settings)
    upstream = await Upstream.create(settings)
    tls_context = await asyncio.to_thread(server_tls_context, settings)
    handler = RelayHandler(settings, pipeline, store=collaborators.store, tagger=collaborators.tagger,
                           signer=collaborators.signer)
    state = ServerState(settings, handler, upstream, upstream.local_hostname, tls_context)
    sock = bind_socket(settings.listen, reuse_port=settings.workers > 1)
    server = await loop.create_server(state.factory, sock=sock, backlog=512)
    metrics_server = metrics_close = None
    if settings.metrics is not None and not os.environ.get("RELAY_WORKER_OF"):
        metrics_server, metrics_close = await start_metrics(settings, collaborators.store)
    bound = sock.getsockname()[:2]
    log.info("serving", listen=f"{bound[0]}:{bound[1]}", upstream=str(settings.upstream), pid=os.getpid(),
             policy_version=pipeline.policy.version, tls=tls_context is not None)
    if ready is not None:
        ready(bound)
    reloader = loop.create_task(_reload_loop(reload_trigger, handler)) if reload_trigger else None
    try:
        if shutdown_trigger is None:
            await asyncio.Event().wait()
        else:
            await shutdown_trigger()
    finally:
        if reloader is not None:
            reloader.cancel()
        server.close()
        await _drain(state, settings.shutdown_grace)
        if handler.background:   # sender notices still going out: let them finish, bounded
            await asyncio.wait(set(handler.background), timeout=settings.shutdown_grace)
        upstream.close()
        if metrics_server is not None:
            metrics_server.close()
            await metrics_close()
        if collaborators.close is not None:
            await collaborators.close()
        for session in list(state.sessions):   # still closing (a TLS goodbye unanswered): cut it
            if session.transport is not None:
                session.transport.abort()
        log.info("stopped", pid=os.getpid())


async def _drain(state: ServerState, grace: float) -> None:
    started = time.monotonic()
    state.drain()
    log.info("draining", sessions=len(state.sessions), grace=grace)
    deadline = started + grace
    while state.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if state.sessions:
        log.warning("drain.timeout", sessions=len(state.sessions))
        for session in list(state.sessions):
            session.close_with(replies.SHUTTING_DOWN)
        await asyncio.sleep(0)


async def _reload_loop(trigger: Trigger, handler: RelayHandler) -> None:
    while True:
        await trigger()
        path = handler.settings.policy
        try:
            policy = await asyncio.to_thread(load_policy, path)
        except PolicyError as exc:
            log.error("policy.reload_failed", path=str(path), error=str(exc),
                      kept_version=handler.pipeline.policy.version)
            continue
        except Exception as exc:  # noqa: BLE001 - a bad reload must never stop the relay
            log.error("policy.reload_failed", path=str(path), error=f"{type(exc).__name__}: {exc}",
                      kept_version=handler.pipeline.policy.version)
            continue
        handler.set_pipeline(handler.pipeline.with_policy(policy))
        log.info("policy.reloaded", path=str(path), version=policy.version)


async def start_metrics(settings: Settings, store=None):
    """/metrics, /healthz and /readyz (clamd, quarantine store, next hop), and the
    :class:`~relay.metrics.HeldGauge` that keeps ``relay_quarantine_held`` current; returns the
    server and a ``close`` that stops the gauge (and closes a store opened here). ``store``: the
    worker's own quarantine store, reused; without it one is opened."""
    from relay import metrics
    from relay.quarantine import open_store

    owned = store is None
    store = open_store(settings.quarantine) if owned else store
    try:
        server = await metrics.serve_http(settings.metrics.host, settings.metrics.port,
                                          metrics.Readiness(metrics.standard_checks(settings, store)))
    except BaseException:          # the port is taken, ...: close a store opened for it
        if owned:
            await store.close()
        raise
    held = metrics.HeldGauge(store)
    held.start()

    async def close() -> None:
        await held.stop()
        if owned:
            await store.close()

    return server, close
