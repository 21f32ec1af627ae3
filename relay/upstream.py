"""The next hop: an SMTP session mirrored from the client's, and one-shot delivery.

:class:`Upstream` is built once per worker (TLS context, our EHLO name).
:meth:`Upstream.session` gives an :class:`UpstreamSession`, opened lazily for
one client session and reused across its transactions: MAIL FROM and each
RCPT TO are mirrored there so the client gets the next hop's own answers,
and DATA is sent after the policy decided. When the client leaves with no
transaction open, its next-hop session is kept (idle, at most ``IDLE_MAX``
per worker, for ``IDLE_SECONDS``) for the next client session instead of
QUIT and a new connect + EHLO (bench/profile.md); a kept session that turns
out dead is replaced once, transparently. :func:`deliver` sends one message
and closes (quarantine release).

Replies come back as :class:`~relay.replies.Reply` values, whatever their
code. Anything that is not a reply (refused connection, timeout past
``upstream_timeout``, dropped session, TLS failure) raises
:class:`~relay.errors.UpstreamUnavailable`; aiosmtplib and OS errors never
leave this module.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Sequence

import aiosmtplib

from relay import replies
from relay.config import Settings
from relay.errors import UpstreamRejected, UpstreamUnavailable
from relay.replies import Reply

IDLE_MAX = 32              # idle next-hop sessions kept per worker
IDLE_SECONDS = 30.0        # ... for at most this long (well under Postfix's 300 s smtpd_timeout)

# Failures that mean "no usable answer from the next hop".
_UNAVAILABLE = (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError, ValueError)


class Upstream:
    """Where the next hop is and how to talk to it (one per worker)."""

    def __init__(self, settings: Settings, local_hostname: str, tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self.tls_context = tls_context
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []
        self._closed = False

    @classmethod
    async def create(cls, settings: Settings) -> Upstream:
        """Resolve our name and build the TLS context off the event loop (both may block)."""
        name = settings.hostname or await asyncio.to_thread(socket.getfqdn)
        context = None
        if settings.upstream_tls != "off":
            context = await asyncio.to_thread(client_tls_context, settings.upstream_tls_verify)
        return cls(settings, name, context)

    def session(self) -> UpstreamSession:
        return UpstreamSession(self)

    def _take(self) -> aiosmtplib.SMTP | None:
        """The most recently kept idle session still connected and young enough, or None."""
        now = time.monotonic()
        while self._idle:
            since, smtp = self._idle.pop()
            if now - since < IDLE_SECONDS and smtp.is_connected:
                return smtp
            _quit_and_close(smtp)
        return None

    def _keep(self, smtp: aiosmtplib.SMTP) -> None:
        if self._closed or len(self._idle) >= IDLE_MAX or not smtp.is_connected:
            _quit_and_close(smtp)
        else:
            self._idle.append((time.monotonic(), smtp))

    def close(self) -> None:
        """QUIT and close the idle sessions kept (at shutdown); later ones are closed, not kept.
        A TLS session is cut, not shut down politely: its close_notify exchange would outlive
        the event loop and leave the socket open."""
        self._closed = True
        idle, self._idle = self._idle, []
        for _, smtp in idle:
            transport = smtp.transport
            _quit_and_close(smtp)
            if transport is not None and transport.get_extra_info("sslcontext") is not None:
                transport.abort()

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        start_tls = {"off": False, "opportunistic": None, "required": True}[s.upstream_tls]
        return aiosmtplib.SMTP(
            hostname=s.upstream.host, port=s.upstream.port, local_hostname=self.local_hostname,
            timeout=s.upstream_timeout, start_tls=start_tls, validate_certs=s.upstream_tls_verify,
            tls_context=self.tls_context if start_tls is not False else None,
        )


def _quit_and_close(smtp: aiosmtplib.SMTP) -> None:
    """Send QUIT without waiting for the answer, then close."""
    if smtp.is_connected and smtp.protocol is not None:
        try:
            smtp.protocol.write(b"QUIT\r\n")
        except _UNAVAILABLE:
            pass
    smtp.close()


def client_tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamSession:
    """One SMTP session to the next hop. Not safe for concurrent use (one client session drives it)."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._smtp: aiosmtplib.SMTP | None = None
        self.in_transaction = False

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def open(self, kept: bool = False) -> bool:
        """Connect, EHLO (HELO if refused) and STARTTLS as configured; with ``kept``, take an
        idle session kept from an earlier client instead if there is one. True if it was kept."""
        self.close()
        if kept and (smtp := self._upstream._take()) is not None:
            self._smtp = smtp
            return True
        smtp = self._upstream._client()
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
        except _UNAVAILABLE as exc:
            smtp.close()
            raise UpstreamUnavailable(f"cannot open a session to {self._upstream.settings.upstream}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        except BaseException:   # cancelled (the client left, or shutdown): don't leak the socket
            smtp.close()
            raise
        self._smtp = smtp
        return False

    async def mail(self, sender: str, options: Sequence[str] = ()) -> Reply:
        """Mirror ``MAIL FROM``; reconnects once if a reused session turns out to be dead."""
        self.in_transaction = False
        for attempt in (1, 2):
            reused = self.connected
            if not reused:
                reused = await self.open(kept=attempt == 1)
            args = [b"FROM:" + _path(sender), *self._supported(options)]
            try:
                response = await self._command(b"MAIL", *args)
            except UpstreamUnavailable:
                if reused and attempt == 1:
                    continue
                raise
            answer = self._reply(response)
            self.in_transaction = answer.ok
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def rcpt(self, recipient: str, options: Sequence[str] = ()) -> Reply:
        """Mirror one ``RCPT TO``; the next hop's answer for this recipient."""
        response = await self._command(b"RCPT", b"TO:" + _path(recipient), *(o.encode("ascii") for o in options))
        return self._reply(response)

    async def data(self, message: bytes) -> Reply:
        """Send the message; the next hop's final answer (any code).

        The transaction ends with the answer to the data. If the next hop refuses the DATA
        command itself (anything but 354) its transaction is still open (Postfix keeps it until
        RSET): ``in_transaction`` stays True, so the caller's :meth:`rset` ends it.
        """
        if self._smtp is None or not self.in_transaction:
            raise UpstreamUnavailable("no open transaction at the next hop")
        response = await self._command(b"DATA")
        if response.code != 354:
            return self._reply(response)
        self.in_transaction = False
        protocol = self._smtp.protocol
        try:
            # One write: the bytes are already CRLF-clean (server.read_message refuses bare CR/LF),
            # so only dot-stuffing is needed (aiosmtplib's data() would copy the message twice);
            # the message and its end go out in one send, not a 20 KB one and a 3-byte one.
            stuffed = message.replace(b"\r\n.", b"\r\n..") if b"\r\n." in message else message
            end = b".\r\n" if not message or message.endswith(b"\r\n") else b"\r\n.\r\n"
            protocol.write(b"".join((b"." if message[:1] == b"." else b"", stuffed, end)))
            response = await protocol.read_response(timeout=self._upstream.settings.upstream_timeout)
        except _UNAVAILABLE as exc:
            self.close()
            raise UpstreamUnavailable(f"next hop failed during DATA: {type(exc).__name__}: {exc}") from exc
        return self._reply(response)

    async def restart(self, sender: str, options: Sequence[str], recipients: Sequence[str]) -> Reply | None:
        """RSET, then MAIL and RCPT for ``recipients`` only. None if all were accepted, else the refusal."""
        await self.rset()
        answer = await self.mail(sender, options)
        if not answer.ok:
            return answer
        for rcpt in recipients:
            answer = await self.rcpt(rcpt)
            if not answer.ok:
                await self.rset()
                return answer
        return None

    async def rset(self) -> None:
        """End the open transaction at the next hop, if any. A failure closes the session."""
        if not self.in_transaction:
            return
        self.in_transaction = False
        if not self.connected:
            return
        try:
            response = await self._command(b"RSET")
        except UpstreamUnavailable:
            return
        if response.code != 250:
            self.close()

    async def quit(self) -> None:
        """Say goodbye politely (bounded by upstream_timeout), then close."""
        if self.connected:
            try:
                await self._command(b"QUIT")
            except UpstreamUnavailable:
                pass
        self.close()

    def quit_nowait(self) -> None:
        """The client is leaving: keep the session for the next client if no transaction is
        open, else send QUIT without waiting for the answer and close."""
        if self._smtp is not None and not self.in_transaction:
            smtp, self._smtp = self._smtp, None
            self._upstream._keep(smtp)
            return
        if self._smtp is not None:
            _quit_and_close(self._smtp)
        self.close()

    def close(self) -> None:
        self.in_transaction = False
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    # ---------------------------------------------------------------- helpers

    async def _command(self, *args: bytes) -> aiosmtplib.SMTPResponse:
        if self._smtp is None or not self._smtp.is_connected:
            self.close()
            raise UpstreamUnavailable("next hop session is not open")
        try:
            return await self._smtp.execute_command(*args)
        except _UNAVAILABLE as exc:
            self.close()
            raise UpstreamUnavailable(f"next hop failed: {type(exc).__name__}: {exc}") from exc

    def _reply(self, response) -> Reply:
        answer = replies.from_upstream(response.code, response.message)
        if answer.code == 421:         # the next hop is closing: its session is gone
            self.close()
            return replies.upstream_closing(answer)
        return answer

    def _supported(self, options: Sequence[str]) -> list[bytes]:
        """The client's MAIL parameters the next hop advertised (SIZE, BODY=8BITMIME, SMTPUTF8)."""
        assert self._smtp is not None
        out = []
        for option in options:
            keyword = option.split("=", 1)[0].upper()
            extension = {"BODY": "8bitmime"}.get(keyword, keyword.lower())
            if self._smtp.supports_extension(extension):
                out.append(option.encode("ascii", "replace"))
        return out


def _path(address: str) -> bytes:
    """``<address>`` as the client sent it (UTF-8 bytes kept as received); ``<>`` for the null sender."""
    address = address.strip()
    if address in ("", "<>"):
        return b"<>"
    if not (address.startswith("<") and address.endswith(">")):
        address = f"<{address}>"
    return address.encode("utf-8", "surrogateescape")


async def deliver(settings: Settings, mail_from: str, rcpt_tos: Sequence[str], data: bytes,
                  mail_options: Sequence[str] = (), *, upstream: Upstream | None = None,
                  on_data: Callable[[], None] | None = None) -> Reply:
    """Deliver one message to the next hop and close. All or nothing: if the next hop refuses
    the sender, any recipient or the data, nothing is sent and :class:`UpstreamRejected`
    carries its reply; no answer at all raises :class:`UpstreamUnavailable`. ``on_data`` is
    called as the DATA command goes out: from then on a lost answer leaves it unknown whether
    the next hop kept the message."""
    upstream = upstream or await Upstream.create(settings)
    session = upstream.session()
    try:
        answer = await session.mail(mail_from, mail_options)
        if not answer.ok:
            raise UpstreamRejected(answer.code, f"{answer.status} {answer.text}")
        for rcpt in rcpt_tos:
            answer = await session.rcpt(rcpt)
            if not answer.ok:
                raise UpstreamRejected(answer.code, f"{answer.status} {answer.text} (recipient {rcpt})")
        if on_data is not None:
            on_data()
        answer = await session.data(data)
        if not answer.ok:
            raise UpstreamRejected(answer.code, f"{answer.status} {answer.text}")
        await session.quit()
        return answer
    finally:
        session.close()
