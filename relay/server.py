"""The SMTP edge: an aiosmtpd protocol in front of the next hop, and the act stage.

The relay is a proxy, not a queue. Each client session gets one
:class:`~relay.upstream.UpstreamSession` (opened at the first MAIL, reused for
later transactions). MAIL FROM and each RCPT TO are mirrored to the next hop
and its own answer goes back to the client, so a recipient the next hop
refuses is refused to the client too. After DATA the pipeline decides and
:class:`RelayHandler` acts: reject, tempfail, hold, or tag/accept and forward;
the client hears 250 only after the next hop did or the hold is durable.

What :class:`RelaySMTP` adds to aiosmtpd's protocol:

- access control at connect: a client outside ``allowed_clients`` gets
  ``554 5.7.1`` as greeting and ``503 5.7.1`` to every command but QUIT
  (RFC 5321 3.1), so it never reaches MAIL; past ``max_sessions`` a client
  gets ``421 4.7.0`` and is closed while the others go on;
- enhanced status codes on every reply (``replies.enhance``); EHLO advertises
  SIZE, 8BITMIME, SMTPUTF8, PIPELINING, ENHANCEDSTATUSCODES, XFORWARD and
  STARTTLS when ``tls_cert`` is set; no AUTH;
- its own DATA reader: ends only on CRLF.CRLF, rejects bare CR or LF anywhere
  in the data with ``550 5.5.2`` once the real end is read (invariant 6, as
  Postfix's ``smtpd_forbid_bare_newline``), keeps long lines, enforces
  ``max_message_size`` and ``max_header_size`` while receiving (552 5.3.4,
  nothing kept past the bound) and ``data_timeout``;
- Postfix XFORWARD, so the decision log shows the original client;
- ``421 4.4.2`` on ``command_timeout``; ``451 4.3.0`` with generic text for an
  unexpected exception, the traceback in the log.
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP

from relay import metrics, replies
from relay.act import HookListing, RelayHandler  # the act stage; `relay.server.RelayHandler` still names it
from relay.config import Settings
from relay.envelope import Envelope
from relay.replies import Reply
from relay.upstream import Upstream, UpstreamSession

log = structlog.get_logger("relay.server")

_XFORWARD_NAMES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
# Memory bound per worker: a message is "large" once 1 MiB of it was received, and at most
# LARGE_IN_FLIGHT large messages are received and processed at once (each costs a few times
# its size while parsed, scanned, tagged and forwarded; bench/profile.md).
LARGE_MESSAGE = 1024 * 1024
LARGE_IN_FLIGHT = 3
_DENIED_COMMAND_BUDGET = 10
# ``<local@domain>`` with both sides plain dot-atoms (RFC 5321 Dot-string, ASCII): the common address,
# whose parse by the stdlib's header parser gives back the same text; anything else takes that parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_ADDRESS = re.compile(rf"<({_ATOM}@{_ATOM})>")


class ServerState:
    """What every session of one worker shares."""

    def __init__(self, settings: Settings, handler: RelayHandler, upstream: Upstream, hostname: str,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.handler = handler
        self.upstream = upstream
        self.hostname = hostname
        self.tls_context = tls_context
        self.sessions: set[RelaySMTP] = set()
        self.draining = False
        # Large messages in flight at once (received past LARGE_MESSAGE bytes, until answered):
        # the others wait while reading their DATA, their bytes held back by TCP, not in memory.
        self.large = asyncio.Semaphore(LARGE_IN_FLIGHT)

    def factory(self) -> RelaySMTP:
        return RelaySMTP(self)

    def refusal(self, peer: Any) -> Reply | None:
        """The greeting that refuses this client, or None to serve it."""
        if self.draining:
            return replies.SHUTTING_DOWN
        address = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self.settings.allows(address):
            return replies.ACCESS_DENIED
        if len(self.sessions) > self.settings.max_sessions:
            return replies.TOO_MANY_SESSIONS
        return None

    def drain(self) -> None:
        """Stop taking work: idle sessions get 421 now, busy ones after their transaction."""
        self.draining = True
        for session in list(self.sessions):
            if session.idle:
                session.close_with(replies.SHUTTING_DOWN)


class RelaySMTP(HookListing, SMTP):
    """aiosmtpd's protocol with the relay's edge rules (see the module docstring)."""

    HOOK_PREFIXES = ("smtp_", "auth_")     # all aiosmtpd's __init__ looks for in dir(self)

    def __init__(self, state: ServerState) -> None:
        s = state.settings
        # aiosmtpd sizes its StreamReader from this: DATA is read in pieces of up to 64 KiB;
        # command lines are held to max_line_length by command_size_limit below.
        self.line_length_limit = max(65536, s.max_line_length)
        super().__init__(
            state.handler, data_size_limit=s.max_message_size, enable_SMTPUTF8=True, decode_data=False,
            hostname=state.hostname, ident="ESMTP relay", tls_context=state.tls_context,
            timeout=s.command_timeout, loop=asyncio.get_running_loop(),
        )
        self.state = state
        self.settings = s
        self.command_size_limit = max(s.max_line_length - 2, 16)
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        self.session_id = secrets.token_hex(6)
        self.log = log.bind(session_id=self.session_id)
        self.upstream: UpstreamSession | None = None
        self.xforward: dict[str, str] = {}
        self.refused: Reply | None = None
        self.busy = False               # a command that starts or carries a transaction is running
        self._greeted = False
        self._plain = False             # replies to HELO/EHLO carry no enhanced code (RFC 2034)
        self._denied_budget = _DENIED_COMMAND_BUDGET
        self._counted = False

    # ---------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None and self._original_transport is None
        super().connection_made(transport)
        if not first:
            return                                         # STARTTLS re-entry: same session
        self.state.sessions.add(self)
        self.refused = self.state.refusal(self.session.peer)
        peer = self.session.peer
        self.log = self.log.bind(peer=peer[0] if isinstance(peer, tuple) else str(peer))
        if self.refused is None:
            self._counted = True
            metrics.SESSIONS_OPEN.inc()
        else:
            self.log.info("session.refused", reply=f"{self.refused.code} {self.refused.status}")

    def connection_lost(self, error: Exception | None) -> None:
        self.state.sessions.discard(self)
        if self._counted:
            self._counted = False
            metrics.SESSIONS_OPEN.dec()
        if self.upstream is not None:
            self.upstream.close()
        super().connection_lost(error)

    @property
    def idle(self) -> bool:
        """No transaction open and no command running: safe to close on shutdown."""
        return not self.busy and (self.envelope is None or self.envelope.mail_from is None)

    def close_with(self, reply: Reply) -> None:
        """Send ``reply`` (a 421) and close, from outside the session's own task."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(str(reply).encode("ascii") + b"\r\n")
            self.transport.close()

    def _timeout_cb(self) -> None:
        self.log.info("session.timeout")
        self.close_with(replies.TIMEOUT)

    async def push(self, status: str | bytes) -> None:
        if not self._greeted:
            self._greeted = True
            if self.refused is not None:
                await super().push(str(self.refused))
                if self.refused.code == 421:
                    self.transport.close()
                else:
                    self._smtp_methods = {name: self._denied for name in self._smtp_methods}
                    self._smtp_methods["QUIT"] = self.smtp_QUIT
                return
        elif isinstance(status, str) and not self._plain:
            status = replies.enhance(status)
        await super().push(status)

    async def _denied(self, arg: str | None) -> None:
        self._denied_budget -= 1
        await self.push(str(replies.DENIED_SEQUENCE))
        if self._denied_budget <= 0:
            self.transport.close()

    async def handle_exception(self, error: Exception) -> str:
        self.log.error("session.error", error=type(error).__name__, exc_info=error)
        if self.upstream is not None:
            self.upstream.close()
        self._set_rset_state()
        return str(replies.INTERNAL_ERROR)

    # ---------------------------------------------------------------- commands

    async def smtp_HELO(self, hostname: str) -> None:
        self._plain = True
        try:
            if hostname:   # aiosmtpd resets the client's envelope: end the next hop's transaction too
                await self._end_transaction()
            await super().smtp_HELO(hostname)
        finally:
            self._plain = False

    async def smtp_EHLO(self, hostname: str) -> None:
        self._plain = True
        try:
            if not hostname:
                await self.push("501 Syntax: EHLO hostname")
                return
            await self._end_transaction()
            self.session.extended_smtp = True
            self.session.host_name = hostname
            self.command_size_limits["MAIL"] = self.command_size_limit + 26 + 10
            lines = [self.hostname, f"SIZE {self.settings.max_message_size}", "8BITMIME", "SMTPUTF8",
                     "PIPELINING", "ENHANCEDSTATUSCODES", "XFORWARD " + " ".join(_XFORWARD_NAMES)]
            if self.tls_context and not self._tls_protocol:
                lines.append("STARTTLS")
            # One write for the whole reply: one segment, one wake-up of the client.
            await self.push("\r\n".join(f"250{' ' if i == len(lines) - 1 else '-'}{line}"
                                          for i, line in enumerate(lines)))
        finally:
            self._plain = False

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(str(replies.AUTH_UNAVAILABLE))

    async def smtp_RSET(self, arg: str) -> None:
        await super().smtp_RSET(arg)
        self.xforward.clear()
        if self.state.draining:
            self.close_with(replies.SHUTTING_DOWN)

    async def smtp_QUIT(self, arg: str) -> None:
        if self.upstream is not None:
            self.upstream.quit_nowait()
        await super().smtp_QUIT(arg)

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """Postfix XFORWARD: the original client's NAME, ADDR, HELO... for the decision log."""
        if self.envelope.mail_from is not None:
            await self.push(str(replies.XFORWARD_IN_TRANSACTION))
            return
        attrs = {}
        for item in (arg or "").split():
            name, eq, value = item.partition("=")
            if not eq or name.upper() not in _XFORWARD_NAMES:
                await self.push(str(replies.XFORWARD_SYNTAX))
                return
            attrs[name.upper()] = _xtext_decode(value)
        if not attrs:
            await self.push(str(replies.XFORWARD_SYNTAX))
            return
        self.xforward.update(attrs)
        await self.push(str(replies.XFORWARD_OK))

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self.state.draining:
            self.close_with(replies.SHUTTING_DOWN)
            return
        self.busy = True
        try:
            await super().smtp_MAIL(arg)
        finally:
            self.busy = False

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if not self.envelope.rcpt_tos:
            await self.push(str(replies.NEED_RCPT))
            return
        if arg:
            await self.push(str(replies.DATA_SYNTAX))
            return
        if self.upstream is None or not self.upstream.in_transaction:
            await self._end_transaction()
            await self.push(str(replies.UPSTREAM_LOST))
            return
        self.busy = True
        large = False

        async def admit_large() -> None:
            nonlocal large
            await self.state.large.acquire()
            large = True

        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self._reset_timeout(self.settings.data_timeout)
            started = time.perf_counter()
            raw, size, problem = await self._read_data(admit_large)
            received = time.perf_counter() - started
            self._timeout_handle.cancel()   # what follows is bounded by scanner and next-hop timeouts
            if problem is not None:
                self.event_handler.log_refused(self, size, problem)
                await self._end_transaction()
                self.xforward.clear()
                answer = problem
            else:
                answer = await self.event_handler.handle_message(self, raw, received)
                self._set_post_data_state()
                self.xforward.clear()
            self._reset_timeout()
            await self.push(str(answer))
        finally:
            self.busy = False
            if large:
                self.state.large.release()
        if self.state.draining:
            self.close_with(replies.SHUTTING_DOWN)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parse (the stdlib header parser, ~0.15 ms per address), with a
        fast path for a plain ``<local@domain>``, for which that parser gives back the same text."""
        plain = _PLAIN_ADDRESS.match(arg) if arg else None
        if plain is None:
            return super()._getaddr(arg)
        rest = arg[plain.end():]
        if rest[:1] in (" ", "\t"):      # the parser drops the white space after ">" (str.lstrip) ...
            rest = rest.lstrip()
        if rest[:1] == "(":              # ... and reads a comment there: leave that to it
            return super()._getaddr(arg)
        addr = plain.group(1)
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    async def _end_transaction(self) -> None:
        self._set_rset_state()
        if self.upstream is not None:
            await self.upstream.rset()

    async def _read_data(self, admit_large=None) -> tuple[bytes, int, Reply | None]:
        return await read_message(self._reader, self.settings.max_message_size, self.settings.max_header_size,
                                  admit_large)

    # ---------------------------------------------------------------- for the handler

    async def upstream_session(self) -> UpstreamSession:
        if self.upstream is None:
            self.upstream = self.state.upstream.session()
        return self.upstream

    def core_envelope(self) -> Envelope:
        """The transaction as the pipeline sees it; the client as XFORWARD named it, if it did."""
        env = self.envelope
        peer = self.session.peer
        address = self.xforward.get("ADDR") or (peer[0] if isinstance(peer, tuple) else "")
        mail_from = env.mail_from or ""
        return Envelope(
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_tos=tuple(env.rcpt_tos),
            client_address=address,
            client_name=self.xforward.get("NAME", ""),
            helo=self.xforward.get("HELO") or self.session.host_name or "",
            mail_options=tuple(env.mail_options),
            smtputf8=bool(env.smtp_utf8),
        )


_END = b"\r\n.\r\n"


async def read_message(reader: asyncio.StreamReader, max_size: int, max_header: int,
                       admit_large: Callable[[], Awaitable[None]] | None = None) -> tuple[bytes, int, Reply | None]:
    """The message up to CRLF.CRLF, dot-unstuffed, and the bytes received; or the reply
    refusing it (the data is read to its end anyway, and nothing is kept past ``max_size``).

    The end is the first CRLF.CRLF, DATA's own CRLF counting as the first
    CRLF (so ``.<CRLF>`` right away is an empty message); a bare LF or CR never
    ends the data early. The reader is asked for pieces ending in the whole
    CRLF.CRLF (or up to its buffer limit, which never cuts one in two), not
    line by line: only the first bytes, where the end could straddle DATA's
    CRLF, are read a few at a time. Then the whole buffer is checked: a bare CR
    or LF anywhere refuses it (550 5.5.2), as does a header section past
    ``max_header`` (552 5.3.4). Once ``LARGE_MESSAGE`` bytes came, ``admit_large()``
    is awaited before reading on (the server's bound on large messages in flight).
    """
    pieces: list[bytes] = []
    size = 0
    gate = admit_large

    async def add(piece: bytes) -> None:
        nonlocal size, gate
        size += len(piece)
        if gate is not None and size > LARGE_MESSAGE:
            admit, gate = gate, None
            await admit()
        if size <= max_size:
            pieces.append(piece)
        elif pieces:
            pieces.clear()

    head = await reader.readexactly(3)          # any data ends with ".<CRLF>": 3 bytes are there
    if head == b".\r\n":
        await add(b"")
    else:
        while (partial := _partial_end(head)) and not head.endswith(_END):
            head += await reader.readexactly(len(_END) - partial)
        if head.endswith(_END):
            await add(head[:-3])
        else:
            await add(head)
            while True:
                try:
                    piece = await reader.readuntil(_END)
                except asyncio.LimitOverrunError as exc:
                    await add(await reader.read(exc.consumed))
                else:
                    await add(piece[:-3])
                    break
    if size > max_size:
        return b"", size, replies.SIZE_EXCEEDED
    data = b"".join(pieces)
    pieces.clear()
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        return b"", size, replies.BARE_NEWLINE
    if data[:1] == b".":
        data = data[1:]
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n")
    blank = 0 if data[:2] == b"\r\n" else data.find(b"\r\n\r\n")
    if (len(data) if blank < 0 else blank) > max_header:
        return b"", size, replies.HEADER_EXCEEDED
    return data, size, None


def _partial_end(data: bytes) -> int:
    """Length of the longest tail of ``data`` that begins CRLF.CRLF (0: none)."""
    for k in (4, 3, 2, 1):
        if data.endswith(_END[:k]):
            return k
    return 0


def _xtext_decode(value: str) -> str:
    """RFC 1891 xtext (``+XX``); Postfix's ``[UNAVAILABLE]``/``[TEMPUNAVAIL]`` become ''."""
    if value.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]"):
        return ""
    out, i = [], 0
    while i < len(value):
        if value[i] == "+" and i + 2 < len(value) and all(c in "0123456789ABCDEFabcdef" for c in value[i + 1:i + 3]):
            out.append(chr(int(value[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(value[i])
            i += 1
    text = "".join(out)
    return text[5:] if text.upper().startswith("IPV6:") else text
