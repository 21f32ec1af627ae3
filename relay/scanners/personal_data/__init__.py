"""Personal data detection (policy clauses 3.1, 5.2, 5.3).

:class:`PersonalDataScanner` (name ``personal_data``) reads the text the
pipeline extracted once (``ctx.extraction.chunks``) and reports:

* ``personal_data`` of a type in ``PERSONAL_DATA_TYPES`` (uk_nino, nhs_number,
  payment_card, iban, uk_bank_account, uk_passport, uk_driving_licence,
  uk_utr, date_of_birth; single phone_number/postal_address LOW) or
  ``custom:<name>`` for the policy's own detectors;
* ``special_category`` (GDPR Art. 9 terms next to an identified person);
* ``bulk_contacts`` (many people's e-mail addresses, phones or postal addresses);
* ``credential`` (password, private_key, api_token).

One finding per (kind, type, where, confidence), ``count`` = distinct values
(a value found twice is counted once, in its highest band); ``evidence`` is
redacted (:mod:`.redact`); ``protected`` is the chunk's. Detection is CPU
work: :meth:`PersonalDataScanner.scan` runs it inline for small messages (up
to 64 KiB of text) and in a worker thread past that
(:func:`relay.scanners.text.off_loop`, as the other text scanners do).
Module map: :mod:`.engine` (the combined pass), one module per family
(:mod:`.nino`, :mod:`.nhs`, :mod:`.cards`, :mod:`.banking`, :mod:`.uk_ids`,
:mod:`.dob`, :mod:`.contacts`, :mod:`.special_category`, :mod:`.credentials`,
:mod:`.custom`), :mod:`.confidence` (context scoring), :mod:`.validators`,
:mod:`.redact`, ``data/`` (term lists with their sources).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.utils import getaddresses

from relay.findings import Confidence, Finding
from relay.scanners.text import off_loop

from . import contacts, engine
from .confidence import ChunkContext, Hit
from .engine import scan_chunk

__all__ = ["PersonalDataScanner", "detect", "spans"]

# No-break and thin spaces (&nbsp; in HTML, typographic digit grouping) and
# Unicode dashes become plain ones, one character for one, so offsets hold.
_SAME_WIDTH = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ",
                             "\u2003": " ", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
                             "\u2014": "-", "\u2212": "-"})
_ODD_CHARS = tuple(chr(c) for c in _SAME_WIDTH)


def detect(chunks: Iterable[object], detectors: Iterable[object] = (),
           exclude: Iterable[str] = ()) -> list[Finding]:
    """Findings for text chunks (``where``, ``text``, ``source``, ``protected``), synchronously.

    ``exclude``: e-mail addresses (lower case) that are not third parties'
    contact details: the sender and the recipients.
    """
    detectors = tuple(detectors)
    excluded = frozenset(a.lower() for a in exclude if a)
    # chunks that share a place (a text/plain body and its text/html twin) report together
    by_place: dict[tuple[str, bool], list[Hit]] = {}
    for chunk in chunks:
        text = getattr(chunk, "text", "")
        if not text:
            continue
        if not text.isascii() and any(c in text for c in _ODD_CHARS):   # translate() is slow
            text = text.translate(_SAME_WIDTH)
        cc = ChunkContext(text, getattr(chunk, "where", "body"), getattr(chunk, "source", "body"),
                          bool(getattr(chunk, "protected", False)))
        by_place.setdefault((cc.where, cc.protected), []).extend(scan_chunk(cc, detectors, excluded))
    findings: list[Finding] = []
    for (where, protected), hits in by_place.items():
        findings.extend(_aggregate(hits, where, protected))
    return findings


def spans(text: str) -> list[tuple[int, int, str]]:
    """Where in ``text`` the detector found something: ``(start, end, kind)``, for masking a view of it.

    ``kind`` is the hit's kind (``personal_data``, ``special_category``,
    ``bulk_contacts``, ``credential``). A special-category span is the term
    itself (the caller decides how much around it to hide); a postal address
    runs from its street line to the end of its postcode; other values cover
    the text they were read from (``3 March 1985``, ``AB 12 34 56 C``).
    Hits carry only where they start, so the end is found again here.
    """
    if not text.isascii() and any(c in text for c in _ODD_CHARS):
        text = text.translate(_SAME_WIDTH)
    cc = ChunkContext(text)
    out = []
    for hit in scan_chunk(cc):
        if hit.type == "postal_address":
            start, end = _address(cc, hit.start)
        else:
            start, end = hit.start, _value_end(text, hit.start, hit.value)
        out.append((start, end, hit.kind))
    return sorted(out)


def _address(cc: ChunkContext, start: int) -> tuple[int, int]:
    """The street line (on the postcode's line or the two before, as contacts looks) to the postcode's end."""
    top = cc.line_start(start)
    for _ in range(2):
        top = cc.line_start(top - 1) if top > 0 else 0
    street = None
    for street in contacts._STREET.finditer(cc.text, max(top, start - 160), start):
        pass
    postcode = contacts._POSTCODE.match(cc.text, start)
    return (street.start() if street else start), (postcode.end() if postcode else start + 1)


def _value_end(text: str, start: int, value: str) -> int:
    """The end of the value found at ``start``: its characters as written (spaces and dashes between) on
    the same line, else the token the engine's first pass reads there (a date, a digit run), else the
    word at ``start``."""
    chars = [re.escape(c) for c in value if c.isalnum()]
    if chars:
        line_end = text.find("\n", start)
        found = re.compile(r"[\W_]{0,3}".join(chars), re.IGNORECASE).search(
            text, start, len(text) if line_end < 0 else line_end)   # a secret sits after its keyword
        if found:
            return found.end()
    token = engine._SCAN.match(text, start)
    if token:
        return token.end()
    word = _WORD.match(text, start)
    return word.end() if word else min(len(text), start + 1)


_WORD = re.compile(r"\S+")


def _aggregate(hits: list[Hit], where: str, protected: bool) -> list[Finding]:
    """One finding per (kind, type, confidence); each distinct value once, in its highest band."""
    best: dict[tuple[str, str], dict[str, Hit]] = {}
    for hit in hits:
        values = best.setdefault((hit.kind, hit.type), {})
        old = values.get(hit.value)
        if old is None or hit.confidence > old.confidence:
            values[hit.value] = hit
    out = []
    for (kind, type_), values in best.items():
        bands: dict[Confidence, list] = {}          # confidence -> [count, the first hit in the text]
        for h in values.values():
            group = bands.get(h.confidence)
            if group is None:
                bands[h.confidence] = [1, h]
            else:
                group[0] += 1
                if h.start < group[1].start:
                    group[1] = h
        for conf in (Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW):
            group = bands.get(conf)
            if group:
                out.append(Finding(kind, type_, conf, group[0], where, group[1].evidence, protected))
    return out


class _Chunk:
    __slots__ = ("where", "text", "source", "protected")

    def __init__(self, text: str) -> None:
        self.where, self.text, self.source, self.protected = "body", text, "body", False


def _addresses(ctx) -> set[str]:
    found = {ctx.envelope.mail_from, *ctx.envelope.rcpt_tos}
    for name in ("From", "Sender", "Reply-To", "To", "Cc"):
        for value in ctx.message.header_all(name):
            found.update(addr for _, addr in getaddresses([value]))
    return {a.lower().strip("<>") for a in found if a}


class PersonalDataScanner:
    """Finds personal data, special category data, bulk contact lists and written-out secrets."""

    name = "personal_data"

    def __init__(self) -> None:
        # load phonenumbers' GB metadata and the matchers now, not inside the first message's time-out
        detect([_Chunk("warm-up: 0161 496 0000, AB123456C, password: x1y2z3w4")])

    async def scan(self, ctx) -> Sequence[Finding]:
        return await off_loop(self.scan_sync, ctx)

    def scan_sync(self, ctx) -> list[Finding]:
        return detect(ctx.extraction.chunks, ctx.custom_detectors, _addresses(ctx))
