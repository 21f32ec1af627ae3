"""The received bytes, parsed once into a read-only tree of parts.

The bytes are the truth (``ParsedMessage.raw`` is never changed); scanners read
this parsed view. Parsing is bounded by :class:`ParseLimits`; anything over a
bound, and anything the parser cannot make sense of, becomes a finding in
``ParsedMessage.problems`` (kinds ``limit_exceeded`` and ``malformed``), never
an exception and never "clean".

How: each entity's header section goes to the stdlib parser (compat32: its
header defects, RFC 2231 parameters); bodies are never read line by line --
multipart bodies are split at their delimiter lines with ``bytes.find`` over
offsets into one buffer, and leaf bodies are decoded in one call. Attached
messages (``message/rfc822``) become children; so do the members of archives
(zip, 7z, tar, gzip, bzip2, xz, rar, TNEF ``winmail.dat``; see
:mod:`relay.archives`), as parts with ``origin="archive"``.

Problem types -- ``malformed``: ``broken_boundary`` (no boundary parameter,
no delimiter, no close delimiter), ``bad_base64``, ``bad_transfer_encoding``
(unknown, or on a multipart), ``encoded_message_rfc822`` (an attached message
sent base64/QP, which RFC 2046 forbids), ``duplicate_header`` (two From,
Subject, Content-Type...), ``nul_in_header``, ``nul_in_text`` (NUL bytes
in a text part that is not UTF-16/32), ``bad_header``,
``bad_filename``, ``bad_archive``, ``unsupported_compression``,
``bad_structure``, ``unparseable``; ``limit_exceeded``: ``max_mime_depth``,
``max_parts`` (MIME parts and archive members together),
``max_decoded_bytes``, ``max_archive_members``, ``max_archive_depth``,
``max_compression_ratio``. Each is reported once, with a count.
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.parser
import email.policy
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from relay import archives
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
    index: str                                  # "1", "1.2"; archive members "1.2/1", "1.2/1/3"
    content_type: str                           # declared, lower case, e.g. "text/plain"
    filename: str = ""                          # decoded (RFC 2231, encoded words); "" if none
    charset: str = ""
    disposition: str = ""                       # "attachment", "inline" or ""
    headers: tuple[tuple[str, str], ...] = ()
    payload: bytes = b""                        # transfer encoding removed; b"" for containers
    children: tuple[Part, ...] = ()
    origin: str = "mime"                        # mime | archive (archive and TNEF members)
    container: str = ""                         # label of the enclosing attachment for archive members
    archive: str = ""                           # this part's archive format if its members are children
    encrypted: bool = False                     # an archive member whose bytes need a password

    @property
    def label(self) -> str:
        """Where the part is, for findings: ``part 2 "docs.zip" > "a.exe"``."""
        if self.container:
            return f'{self.container} > "{self.filename}"'
        name = f' "{self.filename}"' if self.filename else ""
        return f"part {self.index}{name}"

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
        except (LookupError, ValueError):     # ValueError: a NUL or a lone surrogate in the charset name
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
        """Parts with content of their own: no multipart or message/rfc822 containers.

        An archive is a leaf (it has bytes of its own) and so is each of its members.
        """
        return (p for p in self.walk() if p.payload or (not p.children and not p.is_multipart))

    def attachments(self) -> Iterator[Part]:
        """Leaves that are files: named, marked as attachments, archive members, or not text."""
        for p in self.leaves():
            if (p.filename or p.origin != "mime" or p.disposition == "attachment"
                    or not p.content_type.startswith("text/")):
                yield p


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; a bad encoding leaves the text as it is.

    The stdlib's decoder is quadratic in the number of words (a 500 KB header took
    seconds), so a long value is decoded in pieces of about ``_WORDS_PIECE``
    characters cut at whitespace; only the space between two encoded words that
    meet at a cut is kept where RFC 2047 would drop it.
    """
    if "=?" not in value:
        return value
    if len(value) <= _WORDS_PIECE:
        return _decode_words(value)
    out, piece, size = [], [], 0
    for token in re.split(r"(\s+)", value):
        piece.append(token)
        size += len(token)
        if size >= _WORDS_PIECE and token.isspace():
            out.append(_decode_words("".join(piece[:-1])) + token)   # the space at the cut is kept
            piece, size = [], 0
    out.append(_decode_words("".join(piece)))
    return "".join(out)


_WORDS_PIECE = 2048


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


# Fields RFC 5322 allows at most once in a message header, and per-part MIME fields.
_SINGLE_ROOT = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date",
                          "message-id", "in-reply-to", "references"})
_SINGLE_PART = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})


class _Walker:
    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.budget = archives.Budget(limits.max_archive_members, limits.max_decoded_bytes,
                                      limits.max_compression_ratio)
        self._problems: dict[tuple[str, str], list] = {}

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(Finding(k, t, Confidence.HIGH, n, where) for (k, t), (where, n) in self._problems.items())

    def problem(self, kind: str, type_: str, where: str) -> None:
        """Record one problem; repeats of the same (kind, type) only count up."""
        seen = self._problems.get((kind, type_))
        if seen:
            seen[1] += 1
        else:
            self._problems[(kind, type_)] = [where, 1]

    def _check_headers(self, msg: Message, where: str, root: bool) -> tuple[tuple[str, str], ...]:
        headers = []
        counts: dict[str, int] = {}
        prefix = "" if root else f"{where} "
        for k, v in msg.raw_items():
            value = str(v)
            if "\x00" in value or "\x00" in k:
                self.problem("malformed", "nul_in_header", f"{prefix}header {k.replace(chr(0), '')}")
                value = value.replace("\x00", "")
            lk = k.lower()
            counts[lk] = counts.get(lk, 0) + 1
            headers.append((k, decode_words(value)))
        for name, n in counts.items():
            if n > 1 and (name in _SINGLE_PART or (root and name in _SINGLE_ROOT)):
                self.problem("malformed", "duplicate_header", f"{prefix}header {name}")
        return tuple(headers)

    def part(self, buf: bytes, start: int, end: int, index: str, depth: int, root: bool = False,
             default_type: str = "text/plain") -> Part:
        """Parse the entity ``buf[start:end]`` (headers + body) and, below it, its parts and members.

        Entities are offsets into one buffer: nesting copies nothing but leaf bodies.
        """
        self.parts += 1
        where = f"part {index}"
        msg, buf, start, end = _split_entity(buf, start, end)
        if default_type != "text/plain":
            msg.set_default_type(default_type)
        headers = self._check_headers(msg, where, root)
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
        archive = ""
        cte = _cte(msg)
        if ctype.startswith("multipart/") and not msg.get_boundary():
            self.problem("malformed", "broken_boundary", where)
            ctype = "text/plain"  # as the stdlib and most readers do: the body is text
        if ctype.startswith("multipart/") or ctype in ("message/rfc822", "message/global"):
            if cte not in ("", "7bit", "8bit", "binary") and ctype.startswith("multipart/"):
                self.problem("malformed", "bad_transfer_encoding", where)  # RFC 2045 6.4
            if depth >= self.limits.max_depth:
                self.problem("limit_exceeded", "max_mime_depth", where)
            elif ctype.startswith("multipart/"):
                child_type = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                spans = self._split(buf, start, end, msg.get_boundary() or "", where)
                for n, (s, e) in enumerate(spans, 1):
                    if self.parts >= self.limits.max_parts:
                        self.problem("limit_exceeded", "max_parts", where)
                        break
                    children.append(self.part(buf, s, e, f"{index}.{n}", depth + 1, default_type=child_type))
            elif self.parts >= self.limits.max_parts:       # an attached message's body is one more part
                self.problem("limit_exceeded", "max_parts", where)
            elif cte not in ("", "7bit", "8bit", "binary"):
                self.problem("malformed", "encoded_message_rfc822", where)  # RFC 2046 5.2.1 forbids it
                inner = self._decode(buf[start:end], cte, where)
                children.append(self.part(inner, 0, len(inner), f"{index}.1", depth + 1))
            else:
                children.append(self.part(buf, start, end, f"{index}.1", depth + 1))
        else:
            payload = self._decode(buf[start:end], cte, where)
            if ctype.startswith("text/") and _stray_nul(payload, charset):
                self.problem("malformed", "nul_in_text", where)   # NULs split words a reader never sees split
            label = Part(index, ctype, filename).label
            archive, members = self._members(payload, filename, index, label, 1)
            children.extend(members)
        return Part(index, ctype, filename, charset, disposition, headers, payload, tuple(children),
                    archive=archive)

    def _split(self, buf: bytes, start: int, end: int, boundary: str, where: str) -> list[tuple[int, int]]:
        room = max(self.limits.max_parts - self.parts, 0) + 1   # one more, so the bound is seen
        parts, closed = split_multipart(buf, boundary, start, end, room)
        if parts is None:
            self.problem("malformed", "broken_boundary", where)
            return []
        if not closed:
            self.problem("malformed", "broken_boundary", where)
        return parts

    def _members(self, data: bytes, filename: str, index: str, label: str, level: int) -> tuple[str, list[Part]]:
        """The members of ``data`` if it is an archive, as child parts (origin "archive")."""
        fmt = archives.sniff(data)
        if not fmt:
            return "", []
        if level > self.limits.max_archive_depth:
            self.problem("limit_exceeded", "max_archive_depth", label)
            return "", []
        listing = archives.list_members(data, self.budget, filename, fmt)
        if listing is None:
            return "", []
        for kind, type_ in listing.problems:
            self.problem(kind, type_, label)
        out = []
        members = listing.members
        if listing.encrypted:  # even the names need the password: one opaque member stands for them
            members = (archives.Member("(encrypted)", b"", -1, True),)
        for n, member in enumerate(members, 1):
            if self.parts >= self.limits.max_parts:
                self.problem("limit_exceeded", "max_parts", label)
                break
            self.parts += 1
            name = member.name.replace("\x00", "")
            child_index = f"{index}/{n}"
            child_label = f'{label} > "{name}"'
            fmt_inner, grandchildren = self._members(member.data, name, child_index, child_label, level + 1)
            ctype = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
            out.append(Part(child_index, ctype, name, payload=member.data, children=tuple(grandchildren),
                            origin="archive", container=label, archive=fmt_inner, encrypted=member.encrypted))
        return listing.format, out

    def _decode(self, body: bytes, cte: str, where: str) -> bytes:
        """Remove the transfer encoding; bad encodings are findings, and decoded as far as possible."""
        if cte == "base64":
            data = _strict_b64(body)
            if data is None:
                self.problem("malformed", "bad_base64", where)
                data = _lenient_b64(body)
        elif cte == "quoted-printable":
            data = binascii.a2b_qp(body)
        elif cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
            data = _uudecode(body)
            if data is None:
                self.problem("malformed", "bad_transfer_encoding", where)
                data = body
        else:
            if cte not in ("", "7bit", "8bit", "binary"):
                self.problem("malformed", "bad_transfer_encoding", where)
            data = body
        room = self.budget.room
        if len(data) > room:
            self.problem("limit_exceeded", "max_decoded_bytes", where)
            data = data[:room]
        self.budget.used += len(data)
        return data


def _stray_nul(payload: bytes, charset: str) -> bool:
    """NUL bytes in text that is not UTF-16/32 (declared, by BOM, or BOM-less: every other byte NUL)."""
    if b"\x00" not in payload or charset.startswith(("utf-16", "utf-32")) or payload[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return False
    even, odd = payload[0::2].count(0), payload[1::2].count(0)
    return not (max(even, odd) > len(payload) // 2 * 0.8 and min(even, odd) < len(payload) // 2 * 0.1)


def _cte(msg: Message) -> str:
    return str(msg.get("Content-Transfer-Encoding", "")).strip().lower()


def _strict_b64(body: bytes) -> bytes | None:
    try:
        return binascii.a2b_base64(body.translate(None, b" \t\r\n"), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _lenient_b64(body: bytes) -> bytes:
    """What a forgiving reader makes of bad base64: base64 characters only, padding repaired."""
    clean = _NOT_B64.sub(b"", body)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def _uudecode(body: bytes) -> bytes | None:
    lines = body.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(b"begin ")), None)
    if start is None:
        return None
    out = bytearray()
    for line in lines[start + 1:]:
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                return bytes(out)
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            return None
    return bytes(out)


_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/]")


def _split_entity(buf: bytes, start: int, end: int) -> tuple[Message, bytes, int, int]:
    """The headers of ``buf[start:end]`` (parsed by the stdlib, defects and all) and its body's span."""
    if buf.startswith(b"\r\n", start, end):
        head, body = b"", start + 2
    elif buf.startswith(b"\n", start, end):
        head, body = b"", start + 1
    else:
        crlf = buf.find(b"\n\r\n", start, end)
        lf = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else end)  # only before the first CRLF CRLF
        if crlf >= 0 and (lf < 0 or crlf < lf):
            head, body = buf[start:crlf + 1], crlf + 3
        elif lf >= 0:
            head, body = buf[start:lf + 1], lf + 2
        else:
            head, body = buf[start:end], end
    if not head.strip():
        return Message(), buf, body, end
    if head.isascii():
        msg = _PARSER.parsebytes(head + b"\r\n\r\n", headersonly=True)
    else:  # 8-bit header bytes: UTF-8 (RFC 6532) if they are, else Latin-1 -- text, not escapes
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = head.decode("latin-1")
        msg = _TEXT_PARSER.parsestr(text + "\r\n\r\n", headersonly=True)
    extra = msg.get_payload()
    msg.set_payload(None)
    if isinstance(extra, str) and extra.strip():  # a line that is no header ended the header section early
        rebuilt = extra.encode("utf-8", "surrogateescape") + buf[body:end]
        return msg, rebuilt, 0, len(rebuilt)
    return msg, buf, body, end


def split_multipart(buf: bytes, boundary: str, start: int = 0, end: int | None = None,
                    limit: int = 1 << 30) -> tuple[list[tuple[int, int]] | None, bool]:
    """Spans of the entities between ``--boundary`` delimiter lines in ``buf[start:end]``, and
    whether the close delimiter was seen; None if there is no delimiter at all.

    A delimiter is ``--boundary`` at the start of a line, followed by optional
    white space and the line end (RFC 2046 5.1.1); the line break before it
    belongs to it. At most ``limit`` spans are returned.
    """
    end = len(buf) if end is None else end
    delim = b"--" + boundary.encode("ascii", "surrogateescape")
    spans: list[tuple[int, int]] = []
    first = -1          # where the current entity begins
    pos = start
    while True:
        pos = buf.find(delim, pos, end)
        if pos < 0:
            break
        after = pos + len(delim)
        if pos > start and buf[pos - 1] != 0x0A:
            pos = after
            continue
        closing = buf.startswith(b"--", after, end)
        eol = buf.find(b"\n", after, end)
        line_end = eol if eol >= 0 else end
        if not closing and buf[after:line_end].strip(b" \t\r"):
            pos = after  # "--boundaryX": another boundary
            continue
        if first >= 0:
            stop = pos - 1 if pos > first else first
            if stop > first and buf[stop - 1] == 0x0D:
                stop -= 1
            spans.append((first, stop))
            if len(spans) >= limit:
                return spans, True
        if closing:
            return spans, True
        first = pos = line_end + 1 if eol >= 0 else end
    if first < 0:
        return None, False
    spans.append((first, end))
    return spans, False


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
_TEXT_PARSER = email.parser.Parser(policy=email.policy.compat32)


def parse_head(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMessage:
    """Only the top-level header block of ``raw``; the body is not read (no parts, no payload).

    For a policy that tests nothing in the content (envelope, size and headers only): the work
    is sized to it. Never raises on bad input."""
    walker = _Walker(limits)
    try:
        msg, _, _, _ = _split_entity(raw, 0, len(raw))
        headers = walker._check_headers(msg, "part 1", True)
        root = Part("1", msg.get_content_type(), headers=headers)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser may raise on hostile input
        walker.problem("malformed", "unparseable", f"message ({type(exc).__name__})")
        root = Part("1", "application/octet-stream")
    return ParsedMessage(raw, root, walker.problems)


def parse(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMessage:
    """Parse ``raw`` into a :class:`ParsedMessage`. Never raises on bad input."""
    walker = _Walker(limits)
    try:
        root = walker.part(raw, 0, len(raw), "1", 0, root=True)
    except RecursionError:
        walker.problem("limit_exceeded", "max_mime_depth", "message")
        root = Part("1", "application/octet-stream", payload=raw[: limits.max_decoded_bytes])
    except Exception as exc:  # noqa: BLE001 - the stdlib parser may raise on hostile input
        walker.problem("malformed", "unparseable", f"message ({type(exc).__name__})")
        root = Part("1", "application/octet-stream", payload=raw[: limits.max_decoded_bytes])
    return ParsedMessage(raw, root, walker.problems)
