"""The received bytes, parsed once into a read-only tree of parts.

The bytes are the truth (``ParsedMessage.raw`` is never changed); scanners read
this parsed view. Parsing is bounded by :class:`ParseLimits`; anything over a
bound, and anything the parser cannot make sense of, becomes a finding in
``ParsedMessage.problems`` (kinds ``limit_exceeded`` and ``malformed``), never
an exception and never "clean".
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.parser
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from relay.findings import Confidence, Finding


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_depth: int = 30
    max_parts: int = 1000
    max_decoded_bytes: int = 100 * 1024 * 1024
    max_archive_members: int = 1000
    max_archive_depth: int = 3
    max_compression_ratio: int = 100

    @classmethod
    def from_settings(cls, settings) -> ParseLimits:
        return cls(
            max_depth=settings.max_mime_depth,
            max_parts=settings.max_parts,
            max_decoded_bytes=settings.max_decoded_bytes,
            max_archive_members=settings.max_archive_members,
            max_archive_depth=settings.max_archive_depth,
            max_compression_ratio=settings.max_compression_ratio,
        )


@dataclass(frozen=True, slots=True)
class Part:
    index: str                                  # "1", "1.2"; archive members "2/a.exe"
    content_type: str                           # declared, lower case, e.g. "text/plain"
    filename: str = ""                          # decoded (RFC 2231, encoded words); "" if none
    charset: str = ""
    disposition: str = ""                       # "attachment", "inline" or ""
    headers: tuple[tuple[str, str], ...] = ()
    payload: bytes = b""                        # transfer encoding removed; b"" for containers
    children: tuple[Part, ...] = ()
    origin: str = "mime"                        # mime | archive
    container: str = ""                         # label of the enclosing attachment for archive members

    @property
    def label(self) -> str:
        name = f' "{self.filename}"' if self.filename else ""
        inner = f"part {self.index}{name}"
        return f"{self.container} > {inner}" if self.container else inner

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def extension(self) -> str:
        _, dot, ext = self.filename.rpartition(".")
        return ext.lower() if dot else ""

    def text(self) -> str:
        """The payload decoded with its charset (replacement characters for bad bytes)."""
        charset = self.charset or "utf-8"
        try:
            return self.payload.decode(charset, errors="replace")
        except LookupError:
            return self.payload.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    raw: bytes
    root: Part
    problems: tuple[Finding, ...] = ()

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self.root.headers

    def header(self, name: str) -> str | None:
        return self.root.header(name)

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.root.headers if k.lower() == lname]

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def size(self) -> int:
        return len(self.raw)

    def walk(self) -> Iterator[Part]:
        """Every part, depth first, the root included."""
        stack = [self.root]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children))

    def leaves(self) -> Iterator[Part]:
        """Parts with content of their own (no multipart containers)."""
        return (p for p in self.walk() if not p.children and not p.is_multipart)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; a bad encoding leaves the text as it is."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


class _Walker:
    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.decoded = 0
        self.problems: list[Finding] = []
        self._reported: set[tuple[str, str]] = set()

    def problem(self, kind: str, type_: str, where: str) -> None:
        if (kind, type_) in self._reported:
            return
        self._reported.add((kind, type_))
        self.problems.append(Finding(kind, type_, Confidence.HIGH, 1, where))

    def part(self, msg: Message, index: str, depth: int) -> Part:
        self.parts += 1
        headers = tuple((k, decode_words(str(v))) for k, v in msg.raw_items())
        where = f"part {index}"
        for defect in msg.defects:
            self.problem("malformed", _defect_type(defect), where)
        ctype = msg.get_content_type()
        filename = ""
        try:
            raw_name = msg.get_filename()
        except (LookupError, ValueError, UnicodeError):
            raw_name = None
            self.problem("malformed", "bad_filename", where)
        if raw_name:
            filename = decode_words(str(raw_name)).replace("\x00", "")
        disposition = (msg.get_content_disposition() or "").lower()
        charset = msg.get_content_charset() or ""
        children: list[Part] = []
        payload = b""
        if msg.is_multipart():
            subparts = msg.get_payload()
            if depth >= self.limits.max_depth:
                self.problem("limit_exceeded", "max_mime_depth", where)
            else:
                for n, sub in enumerate(subparts if isinstance(subparts, list) else [], 1):
                    if self.parts >= self.limits.max_parts:
                        self.problem("limit_exceeded", "max_parts", where)
                        break
                    if isinstance(sub, Message):
                        children.append(self.part(sub, f"{index}.{n}", depth + 1))
        else:
            payload = self._decode(msg, where)
        return Part(index, ctype, filename, charset, disposition, headers, payload, tuple(children))

    def _decode(self, msg: Message, where: str) -> bytes:
        cte = str(msg.get("Content-Transfer-Encoding", "")).strip().lower()
        try:
            if cte == "base64":
                body = msg.get_payload(decode=False)
                if isinstance(body, str):
                    data = _strict_b64(body)
                    if data is None:
                        self.problem("malformed", "bad_base64", where)
                        data = msg.get_payload(decode=True) or b""
                else:
                    data = b""
            else:
                data = msg.get_payload(decode=True) or b""
        except (ValueError, LookupError, binascii.Error):
            self.problem("malformed", "bad_transfer_encoding", where)
            data = b""
        room = self.limits.max_decoded_bytes - self.decoded
        if len(data) > room:
            self.problem("limit_exceeded", "max_decoded_bytes", where)
            data = data[: max(room, 0)]
        self.decoded += len(data)
        return data


def _strict_b64(body: str) -> bytes | None:
    compact = "".join(body.split())
    try:
        return binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _defect_type(defect: object) -> str:
    name = type(defect).__name__
    return {
        "StartBoundaryNotFoundDefect": "broken_boundary",
        "CloseBoundaryNotFoundDefect": "broken_boundary",
        "NoBoundaryInMultipartDefect": "broken_boundary",
        "MultipartInvariantViolationDefect": "broken_boundary",
        "InvalidBase64PaddingDefect": "bad_base64",
        "InvalidBase64CharactersDefect": "bad_base64",
        "InvalidBase64LengthDefect": "bad_base64",
        "MissingHeaderBodySeparatorDefect": "bad_header",
        "MisplacedEnvelopeHeaderDefect": "bad_header",
        "FirstHeaderLineIsContinuationDefect": "bad_header",
        "InvalidMultipartContentTransferEncodingDefect": "bad_transfer_encoding",
    }.get(name, "bad_structure")


_PARSER = email.parser.BytesParser(policy=email.policy.compat32)


def parse(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMessage:
    """Parse ``raw`` into a :class:`ParsedMessage`. Never raises on bad input."""
    walker = _Walker(limits)
    try:
        msg = _PARSER.parsebytes(raw)
        root = walker.part(msg, "1", 0)
    except RecursionError:
        walker.problem("limit_exceeded", "max_mime_depth", "message")
        root = Part("1", "application/octet-stream", payload=raw[: limits.max_decoded_bytes])
    except Exception as exc:  # noqa: BLE001 - the stdlib parser may raise on hostile input
        walker.problem("malformed", "unparseable", f"message ({type(exc).__name__})")
        root = Part("1", "application/octet-stream", payload=raw[: limits.max_decoded_bytes])
    return ParsedMessage(raw, root, tuple(walker.problems))
