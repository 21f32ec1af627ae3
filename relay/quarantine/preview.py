"""A text preview of a held message for ``relay quarantine show``, personal data masked.

The preview shows the header fields (routing ones such as From, To, Cc,
Date, Message-ID and Received as they are, the others masked), the list of
parts and the start of the text body. Unless the reviewer asks to
``--reveal``, the Subject and other non-routing fields, the part names and
the body are masked in two ways. First, everything the personal-data
detector finds in that text (:func:`relay.scanners.personal_data.spans`):
identifiers, dates of birth, street lines with their postcode, written-out
secrets, and each special-category term together with the sentence it sits
in, which is where the detector saw the person it is about ("Priya Shah has
been diagnosed with HIV"), bounded by the detector's own window. Second,
anything that merely looks like an identifier: e-mail addresses, IBANs, UK National Insurance numbers, driving
licence numbers, postcodes, and every run of digits of four or more (card,
account, NHS, passport, phone numbers, dates). Masking keeps the shape
(``•••• •••• •••• ••••``) so the reviewer can still tell what kind of thing
was there. It errs on the side of masking too much.

Control characters (terminal escapes, CR) are shown escaped in every mode:
a held message is hostile input and the preview goes to a terminal.
"""

from __future__ import annotations

import html
import re

from relay.message import ParsedMessage, Part, parse
from relay.scanners.personal_data import spans
from relay.scanners.personal_data.special_category import WINDOW

BULLET = "•"
DEFAULT_CHARS = 4000

_ROUTING_HEADERS = {"from", "to", "cc", "reply-to", "sender", "date", "message-id", "in-reply-to", "references",
                    "received", "return-path", "mime-version", "content-type", "content-transfer-encoding"}
MAX_HEADERS = 60
MAX_HEADER_CHARS = 300

_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+",                                   # e-mail address
    r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b",  # IBAN
    r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D]\b",  # UK NI number
    r"\b[A-Z9]{5}\d{6}[A-Z9]{2}\d[A-Z]{2}\b",                            # UK driving licence
    r"\b[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}\b",                           # UK postcode
    r"\+?\(?\d(?:[\d \-./()]*\d)?",                                      # digit runs (checked below)
))
_DIGIT_RUN = _PATTERNS[-1]
_MIN_DIGITS = 4

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")


def _bullets(text: str) -> str:
    return "".join(BULLET if ch.isalnum() else ch for ch in text)


_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n[ \t]*\n")


def mask(text: str) -> str:
    """``text`` with what the personal-data detector finds and every identifier-like substring masked
    (see the module docstring). The shape stays: one bullet for one letter or digit."""
    found = spans(text)
    if found:
        chars = list(text)
        for start, end, kind in found:
            if kind == "special_category":
                start, end = _sentence(text, start, end)
            chars[start:end] = _bullets(text[start:end])
        text = "".join(chars)
    for pattern in _PATTERNS:
        if pattern is _DIGIT_RUN:
            text = pattern.sub(_mask_digit_run, text)
        else:
            text = pattern.sub(lambda m: _bullets(m.group()), text)
    return text


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around ``text[start:end]`` (ended by . ! ? or a blank line), whole lines at its edges,
    at most the detector's window either side."""
    lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
    begin = text.rfind("\n", 0, lo) + 1 if lo else 0
    for m in _SENTENCE_END.finditer(text, lo, start):
        begin = m.end()
    after = _SENTENCE_END.search(text, end, hi)
    if after:
        return begin, after.start()
    stop = text.find("\n", hi)
    return begin, len(text) if stop < 0 or hi == len(text) else stop


def _mask_digit_run(m: re.Match) -> str:
    token = m.group()
    return _bullets(token) if sum(ch.isdigit() for ch in token) >= _MIN_DIGITS else token


def safe(text: str) -> str:
    """Control characters escaped (``\\x1b``), newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


def _body_text(message: ParsedMessage) -> tuple[str, str]:
    """(text, where) of the first plain text part, else the first HTML part without its tags."""
    leaves = list(message.leaves())
    for part in leaves:
        if part.content_type == "text/plain" and part.disposition != "attachment":
            return part.text(), f"part {part.index} text/plain"
    for part in leaves:
        if part.content_type == "text/html" and part.disposition != "attachment":
            text = html.unescape(_TAGS.sub(" ", part.text()))
            text = "\n".join(line.strip() for line in text.splitlines())
            return _BLANK_LINES.sub("\n\n", text).strip(), f"part {part.index} text/html, tags removed"
    return "", "no text part"


def _part_line(part: Part, shown) -> str:
    name = f' "{shown(part.filename)}"' if part.filename else ""
    return f"  {part.index:<8} {part.content_type}{name} ({_size(len(part.payload))})"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render(raw: bytes, reveal: bool = False, max_chars: int = DEFAULT_CHARS) -> str:
    """The preview of ``raw`` as text lines; masked unless ``reveal``."""
    def shown(text: str) -> str:
        return safe(text if reveal else mask(text))

    message = parse(raw)
    lines = ["Headers:"]
    for n, (name, value) in enumerate(message.headers):
        if n == MAX_HEADERS:
            lines.append(f"  [... {len(message.headers) - MAX_HEADERS} more header fields]")
            break
        value = " ".join(value.split())
        value = value if len(value) <= MAX_HEADER_CHARS else value[:MAX_HEADER_CHARS] + "…"
        routing = name.lower() in _ROUTING_HEADERS
        lines.append(f"  {safe(name)}: {safe(value) if routing else shown(value)}")
    lines.append("Parts:")
    lines.extend(_part_line(p, shown) for p in message.leaves())
    text, where = _body_text(message)
    cut = len(text) > max_chars
    state = "as sent (revealed)" if reveal else "personal data masked"
    lines.append(f"Body ({where}; {state}{f'; first {max_chars} characters' if cut else ''}):")
    body = shown(text[:max_chars])
    lines.extend("  " + line for line in body.splitlines())
    if cut:
        lines.append(f"  [... {len(text) - max_chars} more characters]")
    return "\n".join(lines)
