"""The milter front's lifecycle: ``serve(settings, shutdown_trigger=None, ...)`` (Hypercorn's shape).

Bind ``milter_listen`` (``inet:host:port``, ``inet6:[::1]:port`` or ``unix:/path``;
a stale socket file is replaced, a new one made mode 0660), serve until
``shutdown_trigger()`` returns, then drain: stop accepting, close idle
connections, let messages in flight finish within ``shutdown_grace``, close
the rest. Signals belong to the CLI (``relay/commands/milter.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time

import structlog

from relay.config import Settings
from relay.milter.server import READ_SIZE, MilterServer

log = structlog.get_logger("relay.milter")

def parse_listen(address: str) -> tuple[str, str, int]:
    """``inet:host:port`` / ``inet6:host:port`` / ``unix:/path`` -> (kind, host or path, port)."""
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return "unix", rest, 0
    host, _, port = rest.rpartition(":")
    return "inet", host.strip("[]") or "127.0.0.1", int(port)


async def serve(settings: Settings, shutdown_trigger=None, *, pipeline=None, store=None, signer=None,
                ready=None, on_state=None) -> None:
    """Serve the milter protocol on ``settings.milter_listen`` until ``shutdown_trigger()`` returns,
    then stop accepting, let messages being decided finish within ``shutdown_grace``, close the rest."""
    kind, where, port = parse_listen(settings.milter_listen)
    state = MilterServer(settings, pipeline, store=store, signer=signer)
    if on_state is not None:
        on_state(state)                 # the CLI swaps state.pipeline on SIGHUP
    if kind == "unix":
        try:
            if stat.S_ISSOCK(os.lstat(where).st_mode):
                os.unlink(where)                    # a stale socket from an earlier run
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(state.handle_connection, path=where, limit=READ_SIZE)
        os.chmod(where, 0o660)
        bound = where
    else:
        server = await asyncio.start_server(state.handle_connection, where, port, reuse_address=True,
                                            backlog=512, limit=READ_SIZE)
        sockname = server.sockets[0].getsockname()
        bound = f"inet:{sockname[0]}:{sockname[1]}"
    log.info("serving", front="milter", listen=bound, policy_version=getattr(pipeline.policy, "version", ""),
             quarantine=store is not None, dkim=signer is not None)
    if ready is not None:
        ready(bound)
    try:
        if shutdown_trigger is None:
            await asyncio.Event().wait()
        else:
            await shutdown_trigger()
    finally:
        server.close()
        state.drain()
        log.info("draining", front="milter", sessions=len(state.sessions), grace=settings.shutdown_grace)
        deadline = time.monotonic() + settings.shutdown_grace
        while any(s.busy for s in state.sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if state.sessions:
            if any(s.busy for s in state.sessions):
                log.warning("drain.timeout", front="milter", sessions=len(state.sessions))
            for session in list(state.sessions):
                session.abort()
        if state.background:   # sender notices still going out: let them finish within the grace
            await asyncio.wait(set(state.background), timeout=max(deadline - time.monotonic(), 0.1))
        await asyncio.sleep(0)
        if kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(where)
        log.info("stopped", front="milter")
