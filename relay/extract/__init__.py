"""Text out of a parsed message: the body and every document, extracted once.

Content scanners (language, contracts, figures, confidentiality, personal
data) all read the same :class:`Extraction`; nothing extracts twice.
Extraction is bounded in bytes and time; a document that cannot be read
becomes an ``extraction_failed`` finding in ``Extraction.problems``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from relay.findings import Finding
from relay.message import ParsedMessage, Part


@dataclass(frozen=True, slots=True)
class TextChunk:
    where: str                 # "body", "header Subject", 'part 2 "cv.docx"'
    text: str
    source: str                # "body" | "header" | "attachment"
    protected: bool = False    # the text came out of content that needed a key (never, today)


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings) -> ExtractLimits:
        return cls(settings.max_extract_bytes, settings.extract_timeout)


@dataclass(frozen=True, slots=True)
class Extraction:
    chunks: tuple[TextChunk, ...] = ()
    problems: tuple[Finding, ...] = ()

    def body_text(self) -> str:
        return "\n".join(c.text for c in self.chunks if c.source == "body")


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def html_to_text(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", markup))


def _is_body(part: Part) -> bool:
    return part.content_type in ("text/plain", "text/html") and part.disposition != "attachment" and not part.filename


def extract(message: ParsedMessage, limits: ExtractLimits = ExtractLimits()) -> Extraction:
    chunks = [TextChunk("header Subject", message.subject, "header")] if message.subject else []
    for part in message.leaves():
        if _is_body(part):
            text = part.text()
            if part.content_type == "text/html":
                text = html_to_text(text)
            chunks.append(TextChunk("body", text, "body"))
        elif part.content_type.startswith("text/"):
            chunks.append(TextChunk(part.label, part.text(), "attachment"))
    return Extraction(tuple(chunks))
