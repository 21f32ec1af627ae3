"""A local capture SMTP server: stores each message it receives byte for byte.

For ``make run`` and tests: it stands in for the next hop. Each message is
written to a Maildir (``tmp/`` then renamed into ``new/``) exactly as received
after dot-unstuffing (CRLF line ends kept), and its envelope to
``envelopes/<name>.json``. Lines of any length are accepted (up to the size
limit), so long lines can be checked end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.smtp import SMTP

_counter = 0


class CaptureSMTP(SMTP):
    """aiosmtpd with data lines of any length (the reader limit also bounds command lines)."""

    line_length_limit = 1 << 20


@dataclass(frozen=True, slots=True)
class Captured:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    peer: str
    name: str = ""


class CaptureHandler:
    """Keeps every message in ``messages``; writes it to ``maildir`` too when given."""

    def __init__(self, maildir: str | os.PathLike | None = None) -> None:
        self.maildir = Path(maildir) if maildir else None
        self.messages: list[Captured] = []
        if self.maildir:
            for sub in ("tmp", "new", "cur", "envelopes"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        data = envelope.original_content or b""
        name = ""
        if self.maildir:
            name = await asyncio.to_thread(self._store, envelope, data)
        self.messages.append(Captured(envelope.mail_from, tuple(envelope.rcpt_tos), data,
                                      tuple(envelope.mail_options), peer, name))
        return "250 2.0.0 OK captured"

    def _store(self, envelope, data: bytes) -> str:
        global _counter
        _counter += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{_counter}.{socket.gethostname()}"
        tmp = self.maildir / "tmp" / name
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, self.maildir / "new" / name)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options), "size": len(data)}
        (self.maildir / "envelopes" / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
        return name


def make_server(handler, hostname: str = "sink.localhost", max_size: int = 64 * 1024 * 1024) -> SMTP:
    return CaptureSMTP(handler, hostname=hostname, enable_SMTPUTF8=True, data_size_limit=max_size,
                       ident="capture sink", loop=asyncio.get_running_loop())


async def run(host: str, port: int, maildir: str | os.PathLike, shutdown_trigger: Callable[[], Awaitable[object]],
              ready: Callable[[tuple[str, int]], None] | None = None) -> None:
    """Serve the capture sink until ``shutdown_trigger()`` returns."""
    handler = CaptureHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: make_server(handler), host, port, reuse_address=True)
    if ready is not None:
        ready(server.sockets[0].getsockname()[:2])
    try:
        await shutdown_trigger()
    finally:
        server.close()
