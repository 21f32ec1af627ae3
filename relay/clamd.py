"""A small async clamd client: PING, VERSION and INSTREAM over TCP or a unix socket.

The ``clamd`` PyPI library blocks; this one runs on asyncio streams, so a slow
clamd never stalls the event loop. Every call is bounded by a timeout. Anything
but a well-formed answer -- refused connection, time-out, a reply that is not
clamd's protocol, ``INSTREAM size limit exceeded`` -- raises
:class:`~relay.errors.ScannerUnavailable`: the caller never mistakes a failure
for "clean".

Addresses are ``tcp://host:port`` or ``unix:///path/to/clamd.sock``. Given
several, :meth:`Clamd.scan_bytes` tries them in order (failover) within one
overall time-out, and :class:`Clamd` caps the scans in flight with a semaphore
and keeps its connections open between scans (IDSESSION).

Protocol (clamd(8)): commands are sent ``z``-prefixed and NUL-terminated;
replies end in NUL. INSTREAM is followed by chunks, each a 4-byte big-endian
length then the bytes, and a zero-length chunk ends the stream. The reply is
``stream: OK``, ``stream: <signature> FOUND`` or ``<reason> ERROR``.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relay.errors import ScannerUnavailable

CHUNK = 1024 * 1024
# The EICAR anti-virus test string, for self-tests: every clamd detects it (a harmless file by design).
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_MAX_REPLY = 64 * 1024
SESSION_IDLE = 5.0          # seconds a kept clamd connection may stay unused
_REPLY = re.compile(r"stream: (?:(OK)|(\S.*?) FOUND)")


@dataclass(frozen=True, slots=True)
class ScanResult:
    signature: str | None   # None: clean
    url: str                # the clamd that answered

    @property
    def clean(self) -> bool:
        return self.signature is None


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        if url.startswith("unix://"):
            return await asyncio.open_unix_connection(url[len("unix://"):], limit=_MAX_REPLY)
        if url.startswith("tcp://"):
            host, _, port = url[len("tcp://"):].rpartition(":")
            return await asyncio.open_connection(host.strip("[]"), int(port), limit=_MAX_REPLY)
    except (OSError, ValueError) as exc:
        raise ScannerUnavailable(f"clamd {url}: cannot connect ({type(exc).__name__})") from exc
    raise ScannerUnavailable(f"clamd {url}: not a tcp:// or unix:// address")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


class NoReply(ScannerUnavailable):
    """clamd closed the connection (or it broke) before a byte of its reply arrived."""


async def _reply(url: str, reader: asyncio.StreamReader) -> str:
    try:
        line = await reader.readuntil(b"\0")
    except asyncio.IncompleteReadError as exc:
        kind = ScannerUnavailable if exc.partial else NoReply
        raise kind(f"clamd {url}: connection closed without a complete reply") from exc
    except asyncio.LimitOverrunError as exc:
        raise ScannerUnavailable(f"clamd {url}: reply too long (not clamd?)") from exc
    except OSError as exc:
        raise NoReply(f"clamd {url}: {type(exc).__name__} while reading the reply") from exc
    try:
        return line[:-1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScannerUnavailable(f"clamd {url}: reply is not text (not clamd?)") from exc


async def _command(url: str, command: str, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(url)
            try:
                writer.write(b"z" + command.encode("ascii") + b"\0")
                await writer.drain()
                return await _reply(url, reader)
            except OSError as exc:
                raise ScannerUnavailable(f"clamd {url}: {type(exc).__name__}") from exc
            finally:
                await _close(writer)
    except TimeoutError as exc:
        raise ScannerUnavailable(f"clamd {url}: no answer to {command} within {timeout:g}s") from exc


async def ping(url: str, timeout: float = 5.0) -> bool:
    """True if clamd at ``url`` answers PONG; raises ScannerUnavailable otherwise."""
    reply = await _command(url, "PING", timeout)
    if reply != "PONG":
        raise ScannerUnavailable(f"clamd {url}: unexpected reply to PING (not clamd?)")
    return True


async def version(url: str, timeout: float = 5.0) -> str:
    """clamd's version line, e.g. ``ClamAV 1.4.6/27000/...``."""
    reply = await _command(url, "VERSION", timeout)
    if not reply.startswith("ClamAV "):
        raise ScannerUnavailable(f"clamd {url}: unexpected reply to VERSION (not clamd?)")
    return reply


async def _stream(url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> str:
    """Send ``data`` with INSTREAM on an open connection; clamd's reply."""
    try:
        writer.write(b"zINSTREAM\0")
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            chunk = view[start:start + CHUNK]
            writer.write(struct.pack("!L", len(chunk)))
            writer.write(chunk)
            await writer.drain()
        writer.write(struct.pack("!L", 0))
        await writer.drain()
    except OSError as exc:
        # clamd stops reading and closes once a stream passes its StreamMaxLength; its reply,
        # if it still arrives, says so
        try:
            return await _reply(url, reader)
        except NoReply:
            raise NoReply(f"clamd {url}: closed the stream early (over its StreamMaxLength?)") from exc
    return await _reply(url, reader)


def _result(url: str, reply: str) -> ScanResult:
    m = _REPLY.fullmatch(reply)
    if m:
        return ScanResult(None if m.group(1) else m.group(2), url)
    if reply.endswith("ERROR"):
        reason = "stream over clamd's StreamMaxLength" if "size limit" in reply else "clamd reported an error"
        raise ScannerUnavailable(f"clamd {url}: {reason}")
    raise ScannerUnavailable(f"clamd {url}: unexpected reply to INSTREAM (not clamd?)")


async def _instream(url: str, data: bytes) -> ScanResult:
    """One INSTREAM on a connection of its own."""
    reader, writer = await _connect(url)
    try:
        reply = await _stream(url, reader, writer, data)
    finally:
        await _close(writer)
    return _result(url, reply)


async def scan_bytes(data: bytes, urls: tuple[str, ...] | str = ("tcp://127.0.0.1:3310",),
                     timeout: float = 30.0, stream_max: int | None = None, *,
                     instream: Callable[[str, bytes], Awaitable[ScanResult]] = _instream) -> ScanResult:
    """Scan ``data`` with INSTREAM on the first clamd of ``urls`` that answers.

    One overall time-out covers every attempt. A refused connection or a
    garbled reply moves on to the next address; a time-out or a size-limit
    error does not (the next one would fare no better).
    """
    if isinstance(urls, str):
        urls = (urls,)
    if stream_max is not None and len(data) > stream_max:
        raise ScannerUnavailable(f"{len(data)} bytes is over clamd_stream_max ({stream_max})")
    errors: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            for url in urls:
                try:
                    return await instream(url, data)
                except ScannerUnavailable as exc:
                    if "StreamMaxLength" in str(exc):
                        raise
                    errors.append(str(exc))
    except TimeoutError as exc:
        raise ScannerUnavailable(f"clamd: no answer within {timeout:g}s") from exc
    raise ScannerUnavailable("; ".join(errors) or "clamd: no address configured")


class _Session:
    """A clamd connection in IDSESSION mode: many INSTREAMs, one at a time, replies ``N: ...``."""

    def __init__(self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.url, self.reader, self.writer = url, reader, writer
        self.sent = 0
        self.since = time.monotonic()

    @classmethod
    async def open(cls, url: str) -> _Session:
        reader, writer = await _connect(url)
        writer.write(b"zIDSESSION\0")
        return cls(url, reader, writer)

    async def instream(self, data: bytes) -> ScanResult:
        self.sent += 1
        reply = await _stream(self.url, self.reader, self.writer, data)
        number, sep, rest = reply.partition(": ")
        if sep and number == str(self.sent):
            return _result(self.url, rest)
        if reply.endswith("ERROR"):          # e.g. the size limit, which ends the session
            return _result(self.url, reply)
        raise ScannerUnavailable(f"clamd {self.url}: unexpected reply in a session (not clamd?)")

    def close(self) -> None:
        if not self.writer.is_closing():
            try:
                self.writer.write(b"zEND\0")
            except OSError:
                pass
            self.writer.close()


class Clamd:
    """clamd addresses, time-out and a cap on scans in flight, from settings.

    Connections are kept open between scans (clamd's IDSESSION: one INSTREAM
    after another on the same socket) and shared by the scans of one event
    loop, at most ``concurrency`` of them, each for ``SESSION_IDLE`` seconds
    unused. A kept connection that clamd closed meanwhile (restart, its own
    time-outs) is replaced once, transparently; one that errs or times out is
    closed, never reused. They are closed when their loop ends.
    """

    def __init__(self, urls: tuple[str, ...], timeout: float = 30.0, concurrency: int = 8,
                 stream_max: int | None = None) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout
        self.stream_max = stream_max
        self._concurrency = concurrency
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._idle: list[_Session] = []
        self._reaper: asyncio.Task | None = None
        self.opened = 0                      # connections opened (for tests and metrics)

    @classmethod
    def from_settings(cls, settings) -> Clamd:
        return cls(settings.clamd, settings.clamd_timeout, settings.clamd_concurrency, settings.clamd_stream_max)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            self._semaphores = {loop: asyncio.Semaphore(self._concurrency)}  # one loop at a time
            sem = self._semaphores[loop]
            self._idle = []                  # kept by a loop that has ended (and closed them)
        return sem

    async def scan_bytes(self, data: bytes) -> ScanResult:
        """Waiting for a free slot counts against the time-out too."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._semaphore():
                    return await scan_bytes(data, self.urls, self.timeout, self.stream_max,
                                            instream=self._session_instream)
        except TimeoutError as exc:
            raise ScannerUnavailable(f"clamd: no answer (queue and scan) within {self.timeout:g}s") from exc

    async def _session_instream(self, url: str, data: bytes) -> ScanResult:
        session = self._take(url)
        if session is not None:
            try:
                return self._done(session, await session.instream(data))
            except NoReply:
                session.close()              # clamd closed the kept connection meanwhile: once more
            except BaseException:
                session.close()
                raise
        self.opened += 1
        session = await _Session.open(url)
        try:
            return self._done(session, await session.instream(data))
        except BaseException:
            session.close()
            raise

    def _take(self, url: str) -> _Session | None:
        now = time.monotonic()
        while self._idle:
            session = self._idle.pop()
            if session.url == url and now - session.since < SESSION_IDLE and not session.reader.at_eof():
                return session
            session.close()
        return None

    def _done(self, session: _Session, result: ScanResult) -> ScanResult:
        session.since = time.monotonic()
        if len(self._idle) < self._concurrency:
            self._idle.append(session)
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="clamd-sessions")
        else:
            session.close()
        return result

    async def _reap(self) -> None:
        """Close sessions unused for SESSION_IDLE; all of them when the loop ends (cancelled)."""
        try:
            while self._idle:
                await asyncio.sleep(SESSION_IDLE / 2)
                now = time.monotonic()
                for session in [s for s in self._idle if now - s.since >= SESSION_IDLE]:
                    self._idle.remove(session)
                    session.close()
        finally:
            if asyncio.current_task().cancelling():
                idle, self._idle = self._idle, []
                for session in idle:
                    session.close()

    async def ping(self) -> str:
        """The first address that answers PING; raises ScannerUnavailable if none does."""
        errors = []
        for url in self.urls:
            try:
                await ping(url, min(self.timeout, 5.0))
                return url
            except ScannerUnavailable as exc:
                errors.append(str(exc))
        raise ScannerUnavailable("; ".join(errors))

    async def version(self) -> str:
        return await version(await self.ping(), min(self.timeout, 5.0))
