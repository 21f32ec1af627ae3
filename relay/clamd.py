"""A small async clamd client: PING, VERSION and INSTREAM over TCP or a unix socket.

The ``clamd`` PyPI library blocks; this one runs on asyncio streams, so a slow
clamd never stalls the event loop. Every call is bounded by a timeout. Anything
but a well-formed answer -- refused connection, time-out, a reply that is not
clamd's protocol, ``INSTREAM size limit exceeded`` -- raises
:class:`~relay.errors.ScannerUnavailable`: the caller never mistakes a failure
for "clean".

Addresses are ``tcp://host:port`` or ``unix:///path/to/clamd.sock``. Given
several, :meth:`Clamd.scan_bytes` tries them in order (failover) within one
overall time-out, and :class:`Clamd` caps the scans in flight with a semaphore.

Protocol (clamd(8)): commands are sent ``z``-prefixed and NUL-terminated;
replies end in NUL. INSTREAM is followed by chunks, each a 4-byte big-endian
length then the bytes, and a zero-length chunk ends the stream. The reply is
``stream: OK``, ``stream: <signature> FOUND`` or ``<reason> ERROR``.
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass

from relay.errors import ScannerUnavailable

CHUNK = 1024 * 1024
# The EICAR anti-virus test string, for self-tests: every clamd detects it (a harmless file by design).
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_MAX_REPLY = 64 * 1024
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


async def _reply(url: str, reader: asyncio.StreamReader) -> str:
    try:
        line = await reader.readuntil(b"\0")
    except asyncio.IncompleteReadError as exc:
        raise ScannerUnavailable(f"clamd {url}: connection closed without a complete reply") from exc
    except asyncio.LimitOverrunError as exc:
        raise ScannerUnavailable(f"clamd {url}: reply too long (not clamd?)") from exc
    except OSError as exc:
        raise ScannerUnavailable(f"clamd {url}: {type(exc).__name__} while reading the reply") from exc
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


async def _instream(url: str, data: bytes) -> ScanResult:
    reader, writer = await _connect(url)
    try:
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
                reply = await _reply(url, reader)
            except ScannerUnavailable:
                raise ScannerUnavailable(f"clamd {url}: closed the stream early (over its StreamMaxLength?)") from exc
        else:
            reply = await _reply(url, reader)
    finally:
        await _close(writer)
    m = _REPLY.fullmatch(reply)
    if m:
        return ScanResult(None if m.group(1) else m.group(2), url)
    if reply.endswith("ERROR"):
        reason = "stream over clamd's StreamMaxLength" if "size limit" in reply else "clamd reported an error"
        raise ScannerUnavailable(f"clamd {url}: {reason}")
    raise ScannerUnavailable(f"clamd {url}: unexpected reply to INSTREAM (not clamd?)")


async def scan_bytes(data: bytes, urls: tuple[str, ...] | str = ("tcp://127.0.0.1:3310",),
                     timeout: float = 30.0, stream_max: int | None = None) -> ScanResult:
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
                    return await _instream(url, data)
                except ScannerUnavailable as exc:
                    if "StreamMaxLength" in str(exc):
                        raise
                    errors.append(str(exc))
    except TimeoutError as exc:
        raise ScannerUnavailable(f"clamd: no answer within {timeout:g}s") from exc
    raise ScannerUnavailable("; ".join(errors) or "clamd: no address configured")


class Clamd:
    """clamd addresses, time-out and a cap on scans in flight, from settings."""

    def __init__(self, urls: tuple[str, ...], timeout: float = 30.0, concurrency: int = 8,
                 stream_max: int | None = None) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout
        self.stream_max = stream_max
        self._concurrency = concurrency
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @classmethod
    def from_settings(cls, settings) -> Clamd:
        return cls(settings.clamd, settings.clamd_timeout, settings.clamd_concurrency, settings.clamd_stream_max)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            self._semaphores = {loop: asyncio.Semaphore(self._concurrency)}  # one loop at a time
            sem = self._semaphores[loop]
        return sem

    async def scan_bytes(self, data: bytes) -> ScanResult:
        """Waiting for a free slot counts against the time-out too."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._semaphore():
                    return await scan_bytes(data, self.urls, self.timeout, self.stream_max)
        except TimeoutError as exc:
            raise ScannerUnavailable(f"clamd: no answer (queue and scan) within {self.timeout:g}s") from exc

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
