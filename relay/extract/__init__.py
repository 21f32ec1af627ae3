"""Text out of a parsed message: the body and every document, extracted once.

Content scanners (language, contracts, figures, confidentiality, personal
data) all read the same :class:`Extraction`; nothing extracts twice.

What becomes a :class:`TextChunk`
    - the Subject header (``where="header Subject"``, ``source="header"``);
    - each text/plain or text/html body part (``where="body"``,
      ``source="body"``; both alternatives of a multipart/alternative, since
      both are sent);
    - each document attachment (``where`` = the part label, e.g.
      ``part 2 "cv.docx"``, ``source="attachment"``, ``kind`` = document
      type): text, html, csv, rtf, pdf, docx, xlsx, pptx, odt, ods, odp,
      xls and doc (Excel and Word 97-2003; PowerPoint 97-2003 is not read);
      attachments inside attached messages (message/rfc822) and archive
      members (child parts with ``origin="archive"``, labelled
      ``part 1.2 "docs.zip" > part 1.2/1 "a/letter.docx"``) the same way,
      all with ``source="attachment"``. An attached message's Subject is a
      chunk ``"<label> header Subject"``.

Text parts are decoded by :mod:`relay.extract.plain` (BOM, declared
charset if it fits, UTF-8, else windows-1252; CRLF as LF). Document text has
its whitespace normalised (single spaces, at most one blank line).

HTML (:func:`html_to_text`): entities decoded, script/style and comments
dropped, *hidden text kept* (``display:none`` text is still sent data),
block elements end lines, tables kept as rows.

Tables: the contract for detectors
    Every table-shaped thing -- docx/doc/odt/rtf/html tables, pptx tables,
    xlsx/xls/ods sheets, csv/tsv files -- is written the same way: one line per
    row, cells joined by ``" | "`` (space, bar, space). When the first row
    looks like a header (every non-empty cell has a letter, at most 60
    characters and at most 4 digits, so not a value, date or id; an html
    ``<th>`` row always counts) and a row follows it, that header
    row is written as a plain line and *every cell of every later row is
    prefixed with its column header and ": "*::

        NHS No | Name | DOB
        NHS No: 943 476 5919 | Name: Ann Smith | DOB: 01/02/1980
        NHS No: 401 023 2137 | DOB: 12/12/1975          <- empty Name cell left out

    So a value and its column label are always on the same line, the label
    right before the value: a detector corroborates ``943 476 5919`` by
    looking back from the match to the previous ``" | "`` (or line start)
    for ``"NHS No: "``. A header ending in ":" is not doubled. A one-cell
    title row above the header stays a plain line. Without a header, cells
    are just joined by ``" | "``. Spreadsheet sheets start with a line
    ``Sheet: <name>``; date-formatted xlsx/xls numbers appear as ``dd/mm/yyyy``.
    PDF tables have no recoverable structure: their text is in reading order.

Protection: text only ever comes from content that opened without a secret:
an owner-password-only PDF (empty user password) and an Office file
encrypted with the default ``VelvetSweatshop`` password are extracted as
usual, ``protected=False``. A PDF needing a user password, an Office or ODF
file with a real password: no chunk and no finding here (the protection
scanner reports them).

Problems (``Extraction.problems``, never exceptions):
    ``extraction_failed`` type = document type, where = part label (corrupt
    docx, truncated pdf, XML with a DTD, ...); ``limit_exceeded`` type
    ``max_extract_bytes`` (text past ``ExtractLimits.max_bytes`` UTF-8 bytes
    per message: text up to the bound is kept, the rest of the message is
    not extracted), ``max_unpacked_bytes`` (a document's zip members
    inflating past the bound), ``extract_timeout`` (the deadline passed
    between or inside documents).
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass

from relay.extract import documents, plain
from relay.extract.budget import Budget, OutOfRoom, OutOfTime
from relay.extract.html import html_to_text
from relay.findings import Confidence, Finding
from relay.message import ParsedMessage, Part

__all__ = ["ExtractLimits", "Extraction", "TextChunk", "extract", "html_to_text"]

# What a reader never sees (zero-width characters, soft hyphens, bidi and other format
# controls) is dropped, and compatibility forms (fullwidth digits, ligatures) folded (NFKC),
# so "9<U+200B>43 476 5919" or fullwidth digits read to a scanner as they read to a person.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                        "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")


def visible(text: str) -> str:
    """``text`` as a reader sees it (see ``_INVISIBLE``); ASCII is returned as it is."""
    return text if text.isascii() else unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


@dataclass(frozen=True, slots=True)
class TextChunk:
    where: str                 # "body", "header Subject", 'part 2 "cv.docx"'
    text: str
    source: str                # "body" | "header" | "attachment"
    protected: bool = False    # the text came out of content that needed a key (never, today)
    kind: str = ""             # text html csv rtf pdf docx doc xlsx xls pptx odt ods odp


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    max_bytes: int = 20 * 1024 * 1024            # UTF-8 bytes of text kept per message
    timeout: float = 20.0                        # seconds for the whole message
    max_unpacked_bytes: int = 100 * 1024 * 1024  # bytes inflated from document zips per message

    @classmethod
    def from_settings(cls, settings) -> ExtractLimits:
        return cls(settings.max_extract_bytes, settings.extract_timeout,
                   getattr(settings, "max_decoded_bytes", cls.max_unpacked_bytes))


@dataclass(frozen=True, slots=True)
class Extraction:
    chunks: tuple[TextChunk, ...] = ()
    problems: tuple[Finding, ...] = ()

    def body_text(self) -> str:
        return "\n".join(c.text for c in self.chunks if c.source == "body")


class _Stop(Exception):
    """The byte bound or the deadline ended this message's extraction."""


class _Run:
    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.room = limits.max_bytes
        self.budget = Budget(limits.max_bytes, limits.max_unpacked_bytes, time.monotonic() + limits.timeout)
        self.chunks: list[TextChunk] = []
        self.problems: list[Finding] = []

    def problem(self, kind: str, type_: str, where: str, evidence: str = "") -> None:
        self.problems.append(Finding(kind, type_, Confidence.HIGH, 1, where, evidence))

    def add(self, where: str, text: str, source: str, kind: str) -> None:
        text = visible(text)
        if not text or text.isspace():
            return
        size = len(text) if len(text) * 4 <= self.room else len(text.encode("utf-8", "surrogatepass"))
        if size > self.room:
            text = text.encode("utf-8", "surrogatepass")[: self.room].decode("utf-8", "ignore")
            self.chunks.append(TextChunk(where, text, source, False, kind))
            self.problem("limit_exceeded", "max_extract_bytes", where)
            raise _Stop
        self.room -= size
        self.budget.chars = self.room
        self.chunks.append(TextChunk(where, text, source, False, kind))


def _is_body(part: Part, nested: bool) -> bool:
    return (not nested and part.origin == "mime" and part.content_type in ("text/plain", "text/html")
            and part.disposition != "attachment" and not part.filename)


def extract(message: ParsedMessage, limits: ExtractLimits = ExtractLimits()) -> Extraction:
    """All text of ``message`` within ``limits``; see the module docstring. Never raises on bad input."""
    run = _Run(limits)
    try:
        if message.subject:
            run.add("header Subject", message.subject, "header", "text")
        stack: list[tuple[Part, bool]] = [(message.root, False)]
        while stack:
            part, nested = stack.pop()
            if part.children or part.is_multipart:
                if part.children and part.payload and documents.is_document(part):
                    _document(run, part)      # e.g. a docx whose members are listed
                    continue
                inner = nested or part.content_type.startswith("message/") or part.origin == "archive"
                for child in reversed(part.children):
                    stack.append((child, inner or child.origin == "archive"))
                if part.content_type.startswith("message/"):
                    for child in part.children:
                        subject = child.header("Subject")
                        if subject:
                            run.add(f"{child.label} header Subject", subject, "attachment", "text")
                continue
            run.budget.tick()
            if _is_body(part, nested):
                if part.content_type == "text/html":
                    markup = plain.decode(part.payload, part.charset or plain.html_charset(part.payload))
                    text = html_to_text(markup, run.budget.tick)
                    run.add("body", text, "body", "html")
                else:
                    run.add("body", plain.decode(part.payload, part.charset), "body", "text")
            elif part.payload:
                _document(run, part)
    except OutOfTime:
        run.problem("limit_exceeded", "extract_timeout", "message")
    except _Stop:
        pass
    return Extraction(tuple(run.chunks), tuple(run.problems))


def _document(run: _Run, part: Part) -> None:
    kind = documents.guess(part)
    if kind is None:
        return
    try:
        kind, text = documents.read(kind, part, run.budget)
    except OutOfTime:
        raise
    except OutOfRoom:
        run.problem("limit_exceeded", "max_unpacked_bytes", part.label)
        return
    except documents.NoText:
        return
    except documents.Failed as exc:
        run.problem("extraction_failed", exc.kind, part.label, type(exc.__cause__).__name__)
        return
    if text is not None:
        run.add(part.label, text, "attachment", kind)
